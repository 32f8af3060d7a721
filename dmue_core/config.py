"""Configuration records of the DMUE model and its training run (JSON-safe dataclasses)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

#: how the pairwise uncertainty sigma enters the target loss (``DMUEConfig.uncertainty_use``)
UNCERTAINTY_USES = ("logit_scale", "probe")
#: the fewest classes DMUE trains on: each auxiliary branch is a (C-1)-way classifier of the others
MIN_CLASSES = 3

_Record = TypeVar("_Record", bound="_JsonRecord")


class _JsonRecord:
    """to_dict / from_dict for flat dataclasses of JSON scalars; unknown keys are an error."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[_Record], data: dict[str, Any]) -> _Record:
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {unknown}; known keys: {sorted(known)}")
        return cls(**data)


@dataclass
class DMUEConfig(_JsonRecord):
    """Model and loss settings: defaults = "improved" mode, ``faithful()`` = the official code.

    Method settings (official values, method doc §4.1):
        num_classes: C >= 3 (each auxiliary branch is a (C-1)-way classifier).
        backbone: registry name (see ``dmue_core.backbones.list_backbones()``).
        small_input: lighter stem for ~48x48 faces (see ``build_backbone``).
        weights: local file with pretrained backbone weights, or None for random init.
        dropout: 0.5, before the BN-neck, training rows only (never on the mining pass).
        temperature: T = 1.2; latent distribution q^(1/T), renormalised. T > 1 flattens it
            (the official comment calls it sharpening; the value is kept as shipped).
        w_soft: 0.5, weight of L_soft (target softmax vs latent distribution, not renormalised).
        gamma_sp: default 10 (official 1000, set by ``faithful()``), weight of the
            similarity-preserving loss L_sp. Measured from random init (fer_cnn, 1,200 synthetic
            faces, 30 % noise, 8 epochs, cosine lr 2e-3): with 1000, L_sp dominates the loss and
            the target and auxiliary branches stay at chance (clean accuracy 0.25, CE baseline
            0.88); with 10, 0.89. The official value assumes a pretrained backbone.
        ramp_a: 6 (AffectNet); FERPlus 10-14, RAF-DB 9-10. Width of ``ramps.ramp_up/ramp_down``.
        uncertainty_use: how sigma enters the target loss. "logit_scale" (the paper, ``faithful()``):
            L_wce = CE(sigma * z, y). The MLP sees the one-hot label, so it can give a whole hard or
            noisy class sigma -> 0, which switches L_wce off for that class: the target branch stops
            predicting it (FER2013, fer_cnn from scratch: angry, disgust and fear by epoch 3;
            5,000 crowd-labelled faces with 20 % uniform flips: angry, disgust, fear and sad, mean
            p[given] <= 0.05), and the unscaled probabilities it reports are not those it was
            trained on. "probe" (default): the classifier trains on plain CE(z, y); sigma still
            learns from CE(sigma * z, y), with z and the embedding detached, so it keeps measuring
            how well a face's similarity profile fits its label without reaching the classifier.
            On those 5,000 faces (20 % flips / FER2013's own labels) the target branch's 1 - p[given]
            detects the errors with AUROC 0.912 / 0.822 against 0.822 / 0.809 (docs/robustness.md).
        centred_uncertainty: default False. True: the MLP's output before the sigmoid is centred
            per class, minus its mean over the batch's faces of the same class in training (and a
            running mean of those, momentum 0.1, in eval mode and for batch-free scoring), so sigma
            only ranks faces within their class. With "logit_scale" every sigma is then ~0.5,
            which halves the logits' scale in L_wce; on the 20 % flips no class was given up, but
            1 - p[given] detected the errors with AUROC 0.846 (0.912 with "probe").

    Speed switches:
        aux_detach_trunk: default False (= official). True: the auxiliary passes read the shared
            trunk output detached, so L_aux and the auxiliary side of L_sp do not reach the trunk.
            Measured saving only ~3% of the step (resnet18, CPU), and the trunk is then trained by
            the target terms alone, which ramp_up scales to ~0.007 in the first epochs, so with
            Adam's L2 weight decay the decay term can dominate a pretrained trunk's updates there.
        aux_bf16: default False. Run the auxiliary and mining passes (the extra work of DMUE)
            under bfloat16 autocast; the trunk, target branch and losses stay in the ambient
            precision. ~2x faster auxiliary passes on CPUs with AVX512-BF16/AMX (slower on CPUs
            without), redundant under CUDA AMP.
        aux_fraction: default 1.0 (= official). Each step, auxiliary branch c trains on a random
            ``aux_fraction`` of its rows S_c (at least 2 when S_c has 2), drawn from torch's seeded
            RNG. The auxiliary passes are most of DMUE's extra cost (C-1 last-stage passes per
            face), so 0.5 brings the ResNet-18 CPU step from ~2.6x to under 2x a plain CE step;
            each branch then sees each face every other epoch on average.

    Official-code quirks (the official behaviour when True):
        official_frozen_uncertainty: default False. The official optimizer holds only the backbone
            and the classifiers, so the uncertainty MLP (and PReLU) and the BN-neck weights stay at
            their initial values: sigma is a fixed random function of its inputs. Default trains
            them at the classifier learning rate, as the paper describes.
        official_shared_neck: default False. Official: one BN-neck shared by all C+1 branches, whose
            running statistics (used by the target at inference) are updated 2C+1 times per step,
            mostly by auxiliary and single-class mining batches. Default: one BN-neck per branch.
        official_stem: default False. Official ResNet-18 stem: no ReLU after the first BN and a 2x2
            stride-2 max-pool. Only useful to load the official checkpoint; ``faithful()`` turns it
            on for resnet18 at full input size only.
        official_mining_stats: default False. Official: the mining pass runs in BN train mode on
            the single-class subset {y = c}, i.e. normalised with that subset's own statistics
            (which removes the class mean and is undefined for one sample) and updating the
            running statistics with class-c data. Default: the mining pass uses the branch's
            running statistics (eval mode, as ``mine()`` at scoring time), so branch c never sees
            class-c data in any statistic. In official mode a 1-sample subset falls back to the
            running statistics.
        official_sp_logits: default True (the code; the figure differs). L_sp compares the Gram
            matrix of the auxiliary (C-1)-dim logits with the target's dropout+neck features.
            False: auxiliary dropout+neck features on both sides, as the paper's figure draws it.
    """

    num_classes: int
    backbone: str = "resnet18"
    small_input: bool = False
    weights: str | None = None
    dropout: float = 0.5
    temperature: float = 1.2
    w_soft: float = 0.5
    gamma_sp: float = 10.0
    ramp_a: float = 6.0
    centred_uncertainty: bool = False
    uncertainty_use: str = "probe"
    aux_detach_trunk: bool = False
    aux_bf16: bool = False
    aux_fraction: float = 1.0
    official_frozen_uncertainty: bool = False
    official_shared_neck: bool = False
    official_stem: bool = False
    official_mining_stats: bool = False
    official_sp_logits: bool = True

    def __post_init__(self) -> None:
        if self.num_classes < MIN_CLASSES:
            raise ValueError(f"DMUE needs num_classes >= {MIN_CLASSES}, got {self.num_classes}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 < self.aux_fraction <= 1.0:
            raise ValueError(f"aux_fraction must be in (0, 1], got {self.aux_fraction}")
        if self.uncertainty_use not in UNCERTAINTY_USES:
            raise ValueError(f"uncertainty_use must be one of {UNCERTAINTY_USES}, got {self.uncertainty_use!r}")
        if self.temperature <= 0 or self.ramp_a <= 0:
            raise ValueError("temperature and ramp_a must be > 0")
        if self.official_stem and self.small_input:
            raise ValueError("official_stem and small_input are exclusive stems")

    @classmethod
    def faithful(cls, num_classes: int, **overrides: Any) -> DMUEConfig:
        """All official-code behaviours on (method doc §6.1); ``overrides`` win."""
        backbone = overrides.get("backbone", "resnet18")
        small_input = overrides.get("small_input", False)
        settings: dict[str, Any] = {
            "aux_detach_trunk": False,
            "aux_fraction": 1.0,
            "official_frozen_uncertainty": True,
            "official_shared_neck": True,
            "official_stem": backbone == "resnet18" and not small_input,
            "official_mining_stats": True,
            "official_sp_logits": True,
            "gamma_sp": 1000.0,
            "uncertainty_use": "logit_scale",
        }
        settings.update(overrides)
        return cls(num_classes=num_classes, **settings)


@dataclass
class TrainConfig(_JsonRecord):
    """Optimisation settings; defaults are the official run (method doc §4.2).

    epochs: 36. batch_size: 72 (one process; DDP splits it).
    lr_backbone / lr_classifier: 1e-4 / 1e-3, the base rates of the two ``param_groups``.
    schedule: "official" (step table of §4.2, stretched to ``epochs``) or "cosine".
    weight_decay: 1e-4 (Adam). balanced_sampler: class-balanced sampling with replacement.
    seed, deterministic: reproducibility. amp: mixed precision, "auto" (on for CUDA and for
    CPUs with native bfloat16; ``dmue_core.precision.training_autocast``), True or False.
    device: "auto", "cpu", "cuda", "cuda:1", ... num_workers: data-loader workers.
    ckpt_every: checkpoint every this many optimizer steps (0: only at epoch ends).
    keep_snapshots: keep the weights of the last N epochs as ``checkpoints/step_N.pt`` (0: none; a
    snapshot is about a third of ``last.pt``, so 30 epochs of every fold model would add up).
    """

    epochs: int = 36
    batch_size: int = 72
    lr_backbone: float = 1e-4
    lr_classifier: float = 1e-3
    schedule: str = "official"
    weight_decay: float = 1e-4
    balanced_sampler: bool = True
    seed: int = 0
    deterministic: bool = False
    amp: str | bool = "auto"
    device: str = "auto"
    num_workers: int = 2
    ckpt_every: int = 200
    keep_snapshots: int = 0

    def __post_init__(self) -> None:
        if self.schedule not in ("official", "cosine"):
            raise ValueError(f"schedule must be 'official' or 'cosine', got {self.schedule!r}")
        if self.amp not in ("auto", True, False):
            raise ValueError(f"amp must be 'auto', True or False, got {self.amp!r}")
        if self.keep_snapshots < 0:
            raise ValueError(f"keep_snapshots must be >= 0, got {self.keep_snapshots}")
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError("epochs must be >= 1 and batch_size >= 2")
