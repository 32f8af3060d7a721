"""The DMUE multi-branch network (method doc §1-§4) and its training step.

Branches: C auxiliary branches (index c, a (C-1)-way classifier that never trains on class c) and
one target branch (index C, C-way). Each branch = its own copy of the backbone's last stage ->
GAP -> dropout (training rows only) -> BN-neck (bias fixed at 0) -> bias-free linear classifier.
All branches share the trunk. Only the target path is kept for inference (``export.py``).

The branches run as a Python loop over the stage copies, one call per branch on its row subset.
Batched alternatives measured slower on CPU (resnet18 last stage, fwd+bwd): the C stages stacked
into one grouped convolution ~2x, ``torch.func.vmap`` over stacked weights (which lowers to the
same grouped convolution) ~1.7x; and vmap cannot restrict each branch's BatchNorm statistics to
its own rows. The step is FLOP-bound; ``DMUEConfig.aux_detach_trunk`` / ``aux_bf16`` / ``aux_fraction`` cut work.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones import build_backbone
from .config import DMUEConfig
from .losses import (
    aux_consensus,
    aux_labels,
    class_similarity_from_means,
    class_similarity_in_batch,
    latent_from_aux_logits,
    minmax_rows,
    soft_loss,
    sp_loss,
    weighted_ce,
)
from .ramps import ramp_down, ramp_up


@dataclass
class StepOutput:
    """Result of ``DMUE.training_step`` on a batch of B samples and C classes.

    loss: scalar with grad, r_up*(L_wce + w*L_soft + gamma*L_sp) + r_down*L_aux.
    parts: detached scalars "wce", "soft", "sp", "aux", "ramp_up", "ramp_down".
    target_probs [B,C]: softmax of the unscaled target logits. latent [B,C]: mined latent
    distribution (0 at y, rows sum to 1). uncertainty [B]: sigma in (0,1). All detached.
    notes: counts about the batch composition:
        rows (the batch size; summed over an epoch, the rows seen), aux_rows (rows over all auxiliary
        passes, sum of |{y != c}|),
        classes_absent, classes_with_1_sample,
        aux_branches_empty (every sample has label c: branch c has nothing to train on),
        aux_running_stats (auxiliary passes on 1 row, normalised with running statistics),
        mining_running_stats (official_mining_stats only: 1-sample mining subsets normalised
        with running statistics instead of their own; default mode always uses running stats).
    """

    loss: Tensor
    parts: dict[str, Tensor]
    target_probs: Tensor
    latent: Tensor
    uncertainty: Tensor
    notes: dict[str, int]


class _AuxOutput(NamedTuple):
    """One auxiliary branch's training pass: rows of the batch [n], neck features [n,D],
    logits [n,C-1], labels re-indexed to the branch's (C-1)-way space [n]."""

    rows: Tensor
    features: Tensor
    logits: Tensor
    labels: Tensor


def _bf16_autocast(h: Tensor, enabled: bool) -> AbstractContextManager:
    """bfloat16 autocast on ``h``'s device when ``enabled``; otherwise the ambient precision
    (a disabled autocast would switch off the trainer's AMP around the auxiliary passes)."""
    return torch.autocast(h.device.type, torch.bfloat16) if enabled else nullcontext()


@contextmanager
def _eval_mode(*modules: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Temporarily switch ``modules`` to eval mode (BatchNorm uses running statistics)."""
    if not enabled:
        yield
        return
    flags = [m.training for m in modules]
    for m in modules:
        m.train(False)
    try:
        yield
    finally:
        for m, flag in zip(modules, flags):
            m.train(flag)


def _bn_neck(dim: int) -> nn.BatchNorm1d:
    neck = nn.BatchNorm1d(dim)
    neck.bias.requires_grad_(False)  # BN-neck bias frozen at 0
    return neck


def _classifier(dim: int, classes: int) -> nn.Linear:
    head = nn.Linear(dim, classes, bias=False)
    nn.init.normal_(head.weight, std=0.001)
    return head


def _aux_probs_from_logits(logits: list[Tensor]) -> Tensor:
    """[B,C,C] from the C auxiliary branches' logits (C x [B,C-1]): row c is branch c's softmax
    (temperature 1) with 0 at class c."""
    own = [torch.full((len(z),), c, dtype=torch.long, device=z.device) for c, z in enumerate(logits)]
    return torch.stack([latent_from_aux_logits(z, o, temperature=1.0) for z, o in zip(logits, own)], dim=1)


class DMUE(nn.Module):
    """DMUE network for ``cfg.num_classes`` = C classes; ``forward`` is the target path.

    x: FloatTensor[B,3,H,W]; y: LongTensor[B] in [0, C); D = backbone feature dim.
    """

    def __init__(self, cfg: DMUEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n = cfg.num_classes
        parts = build_backbone(
            cfg.backbone,
            n,
            small_input=cfg.small_input,
            weights=cfg.weights,
            official_stem=cfg.official_stem,
        )
        self.feat_dim = d = parts.feat_dim
        self.trunk = parts.trunk
        self.pool = parts.pool
        self.aux_stages = nn.ModuleList(parts.make_last_stage() for _ in range(n))
        self.target_stage = parts.make_last_stage()
        self.dropout = nn.Dropout(cfg.dropout)
        self.necks = nn.ModuleList(_bn_neck(d) for _ in range(1 if cfg.official_shared_neck else n + 1))
        self.aux_heads = nn.ModuleList(_classifier(d, n - 1) for _ in range(n))
        self.target_head = _classifier(d, n)
        self.uncertainty_mlp = nn.Sequential(nn.Linear(2 * n, n), nn.PReLU(), nn.Linear(n, 1))
        if cfg.official_frozen_uncertainty:
            self.uncertainty_mlp.requires_grad_(False)
            for neck in self.necks:
                neck.weight.requires_grad_(False)
        if cfg.centred_uncertainty:
            self.register_buffer("uncertainty_centre", torch.zeros(n))

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    @property
    def target_neck(self) -> nn.BatchNorm1d:
        return self._neck(self.num_classes)

    def _neck(self, branch: int) -> nn.BatchNorm1d:
        return self.necks[0 if self.cfg.official_shared_neck else branch]

    def _run_branch(
        self, branch: int, h: Tensor, *, training_rows: bool, running_stats: bool = False
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Branch ``branch`` (C = target) on trunk output rows h [n,...] -> (GAP v [n,D],
        neck features [n,D], logits [n,C or C-1]). Dropout only on training rows; a single row
        (or ``running_stats``) is normalised with the branch's running statistics."""
        target = branch == self.num_classes
        stage = self.target_stage if target else self.aux_stages[branch]
        head = self.target_head if target else self.aux_heads[branch]
        neck = self._neck(branch)
        with _eval_mode(stage, neck, enabled=running_stats or h.shape[0] < 2):
            v = self.pool(stage(h))
            f = neck(self.dropout(v) if training_rows else v)
        return v, f, head(f)

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Target GAP embedding [B,D] (before dropout and neck) and target logits [B,C]."""
        v, _, z = self._run_branch(self.num_classes, self.trunk(x), training_rows=True)
        return v, z

    def forward(self, x: Tensor) -> Tensor:
        """Target logits [B,C] (the inference path; dropout and batch statistics in train mode)."""
        return self.embed(x)[1]

    def _latent(self, h: Tensor, y: Tensor, *, running_stats: bool) -> tuple[Tensor, int]:
        """Mining pass without gradient: rows of class c through auxiliary branch c, no dropout.
        Returns the latent distribution [B,C] and the number of 1-sample subsets."""
        latent = h.new_zeros(len(y), self.num_classes, dtype=torch.float32)
        single = 0
        with torch.no_grad():
            for c in y.unique().tolist():
                rows = (y == c).nonzero().squeeze(1)
                single += rows.numel() == 1
                h_c = h if rows.numel() == len(y) else h[rows]
                _, _, logits = self._run_branch(c, h_c, training_rows=False, running_stats=running_stats)
                latent[rows] = latent_from_aux_logits(logits, y[rows], self.cfg.temperature)
        return latent, single

    def _aux_pass(self, h: Tensor, y: Tensor, notes: dict[str, int]) -> list[_AuxOutput]:
        """Auxiliary training passes: branch c on the rows S_c = {y != c} of h (or a random
        ``cfg.aux_fraction`` of them), with dropout."""
        outputs = []
        for c in range(self.num_classes):
            rows = (y != c).nonzero().squeeze(1)
            if self.cfg.aux_fraction < 1.0 and rows.numel() > 2:
                keep = max(2, math.ceil(self.cfg.aux_fraction * rows.numel()))
                rows = rows[torch.randperm(rows.numel(), device=rows.device)[:keep]].sort().values
            if rows.numel() == 0:
                notes["aux_branches_empty"] += 1
                continue
            notes["aux_rows"] += rows.numel()
            notes["aux_running_stats"] += int(rows.numel() == 1)
            _, features, logits = self._run_branch(c, h[rows], training_rows=True)
            outputs.append(_AuxOutput(rows, features, logits, aux_labels(y[rows], c)))
        return outputs

    def training_step(self, x: Tensor, y: Tensor, epoch: float) -> StepOutput:
        """One DMUE step on (x [B,3,H,W], y [B]) at ``epoch`` (sets the ramps); call in train mode.

        Order as in the official code (it matters for a shared BN-neck): auxiliary training
        passes, target pass, mining pass. Branch c trains on S_c = {y != c} only; its BatchNorm
        statistics come from S_c only, so class-c samples never influence it.
        """
        cfg, n = self.cfg, self.num_classes
        counts = torch.bincount(y, minlength=n)
        notes = {
            "rows": len(y),
            "aux_rows": 0,
            "classes_absent": int((counts == 0).sum()),
            "classes_with_1_sample": int((counts == 1).sum()),
            "aux_branches_empty": 0,
            "aux_running_stats": 0,
            "mining_running_stats": 0,
        }
        h = self.trunk(x)
        aux_precision = _bf16_autocast(h, cfg.aux_bf16)
        with aux_precision:
            aux = self._aux_pass(h.detach() if cfg.aux_detach_trunk else h, y, notes)
        v, f_t, z = self._run_branch(n, h, training_rows=True)
        with aux_precision:
            mining_stats = cfg.official_mining_stats
            latent, single = self._latent(h.detach(), y, running_stats=not mining_stats)
        if cfg.official_mining_stats:
            notes["mining_running_stats"] = single

        sigma = self.uncertainty(v.detach() if cfg.uncertainty_use == "probe" else v, y)
        parts = {
            "wce": self._target_ce(z, sigma, y),
            "soft": soft_loss(z, latent, y),
            "sp": torch.stack(
                [sp_loss(a.logits if cfg.official_sp_logits else a.features, f_t[a.rows]) for a in aux]
            ).mean(),
            "aux": torch.stack([F.cross_entropy(a.logits.float(), a.labels) for a in aux]).mean(),
        }
        r_up, r_down = ramp_up(epoch, cfg.ramp_a), ramp_down(epoch, cfg.ramp_a)
        target_terms = parts["wce"] + cfg.w_soft * parts["soft"] + cfg.gamma_sp * parts["sp"]
        loss = r_up * target_terms + r_down * parts["aux"]
        parts = {k: t.detach() for k, t in parts.items()}
        parts.update(ramp_up=torch.tensor(r_up), ramp_down=torch.tensor(r_down))
        return StepOutput(
            loss=loss,
            parts=parts,
            target_probs=torch.softmax(z.detach().float(), dim=1),
            latent=latent,
            uncertainty=sigma.detach(),
            notes=notes,
        )

    def _target_ce(self, z: Tensor, sigma: Tensor, y: Tensor) -> Tensor:
        """L_wce = CE(sigma * z, y) ("logit_scale", the paper); with "probe" the classifier's plain
        CE(z, y) plus CE(sigma * z.detach(), y), which trains only sigma (``DMUEConfig``)."""
        if self.cfg.uncertainty_use == "logit_scale":
            return weighted_ce(z, sigma, y)
        return F.cross_entropy(z.float(), y) + weighted_ce(z.detach(), sigma, y)

    def _sigma(self, class_similarity: Tensor, y: Tensor, *, batch_centre: bool) -> Tensor:
        u = torch.cat([minmax_rows(class_similarity), F.one_hot(y, self.num_classes).float()], 1)
        g = self.uncertainty_mlp(u).float().squeeze(1)
        if self.cfg.centred_uncertainty:
            g = g - (self._batch_class_centre(g, y) if batch_centre else self.uncertainty_centre[y])
        return torch.sigmoid(g)

    def _batch_class_centre(self, g: Tensor, y: Tensor, momentum: float = 0.1) -> Tensor:
        """[B] mean of g [B] over the batch's faces of each face's class; moves the running
        per-class centre towards the batch's (classes present in the batch only)."""
        members = F.one_hot(y, self.num_classes).float()
        counts = members.sum(0)
        means = members.T @ g / counts.clamp_min(1)
        with torch.no_grad():
            present = counts > 0
            centre = self.uncertainty_centre
            centre[present] = (1 - momentum) * centre[present] + momentum * means.detach()[present]
        return means[y]

    def uncertainty(self, emb: Tensor, y: Tensor) -> Tensor:
        """In-batch PUE sigma [B] in (0,1) from target embeddings emb [B,D] (official); with
        ``centred_uncertainty``, centred on the batch's class means in train mode (updating the
        running centres) and on the running centres in eval mode."""
        similarity = class_similarity_in_batch(emb, y, self.num_classes)
        return self._sigma(similarity, y, batch_centre=self.training)

    def uncertainty_from_stats(self, emb: Tensor, y: Tensor, class_means: Tensor) -> Tensor:
        """Batch-free PUE sigma [B]: class similarities from ``class_means`` [C,D] (per-class mean
        of L2-normalised embeddings over a whole dataset, ``losses.normalized_class_means``;
        NaN rows = classes without samples) instead of the batch, centred on the running class
        centres. Equals ``uncertainty`` in eval mode when the means come from the same batch; a
        sample's score does not depend on its companions."""
        return self._sigma(class_similarity_from_means(emb, class_means), y, batch_centre=False)

    def mine(self, x: Tensor, y: Tensor) -> Tensor:
        """Latent distribution [B,C] (0 at y, rows sum to 1) in eval mode, without gradient."""
        with torch.no_grad(), _eval_mode(self):
            return self._latent(self.trunk(x), y, running_stats=True)[0]

    def score_outputs(
        self, x: Tensor, y: Tensor, *, mining_bf16: bool = False, consensus: bool = False
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """Everything scoring needs in one eval-mode pass with one trunk evaluation:
        (target embedding [B,D], target logits [B,C], latent distribution [B,C], auxiliary
        consensus [B,C] or None), float32. ``consensus``: run every auxiliary branch on every face
        and also return ``losses.aux_consensus`` (C branch passes instead of one routed pass).
        ``mining_bf16``: the auxiliary passes run under bfloat16 autocast; the trunk and the target
        branch stay in full precision."""
        with torch.no_grad(), _eval_mode(self):
            h = self.trunk(x)
            v, _, z = self._run_branch(self.num_classes, h, training_rows=False)
            with _bf16_autocast(h, mining_bf16):
                if not consensus:
                    return v, z, self._latent(h, y, running_stats=True)[0], None
                logits = self._aux_logits(h)
            own = torch.stack(logits)[y, torch.arange(len(y), device=y.device)]  # branch y_i's logits for face i
            latent = latent_from_aux_logits(own, y, self.cfg.temperature)  # eval mode: == the routed mining pass
            return v, z, latent, aux_consensus(_aux_probs_from_logits(logits), y)

    def _aux_logits(self, h: Tensor) -> list[Tensor]:
        """Every auxiliary branch c on all rows of trunk output h (eval statistics): C x [B,C-1]."""
        return [self._run_branch(c, h, training_rows=False, running_stats=True)[2] for c in range(self.num_classes)]

    def aux_probs(self, x: Tensor) -> Tensor:
        """[B,C,C]: out[i,c] = auxiliary branch c's softmax (temperature 1) for sample i, embedded
        into C dims with 0 at class c. out[i, y_i] is out-of-sample for label y_i. Eval mode."""
        with torch.no_grad(), _eval_mode(self):
            return _aux_probs_from_logits(self._aux_logits(self.trunk(x)))

    def param_groups(self, lr_backbone: float, lr_classifier: float) -> list[dict]:
        """Optimizer groups "backbone" (trunk + all last stages) and "classifier" (classifiers,
        BN-neck weights, uncertainty MLP; the frozen ones are left out)."""
        backbone = [self.trunk, self.target_stage, self.aux_stages]
        heads = [self.target_head, self.aux_heads, self.necks, self.uncertainty_mlp]

        def trainable(modules: list[nn.Module]) -> list[nn.Parameter]:
            return [p for m in modules for p in m.parameters() if p.requires_grad]

        return [
            {"name": "backbone", "params": trainable(backbone), "lr": lr_backbone},
            {"name": "classifier", "params": trainable(heads), "lr": lr_classifier},
        ]
