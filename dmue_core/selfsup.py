"""Self-supervised warm start from a dataset's own faces, no labels: SimCLR (Chen et al., 2020).

Each face gives two random views (random resized crop, horizontal flip, small rotation: one
affine resample per view, done on the whole batch; brightness and contrast jitter), the backbone
(trunk, last stage, pooling) and a small projection head (D -> D -> ``proj_dim``, discarded after)
map them to z, and the NT-Xent loss pulls each face's two views together against the other
2B - 2 views of the batch. Adam, cosine learning rate after a one-epoch linear warm-up.

Input: ``images`` uint8 [N, C, S, S] (C = 1 or 3; faces read as three equal channels), normalised
like ``curate.data.torch_dataset`` (x / 255, mean = std = 0.5). Output layout under ``out_dir``::

    checkpoints/last.pt   backbone, head, optimizer, epoch and step in epoch, configs; rewritten
                          atomically every ``ckpt_every`` steps and when done or stopped
    pretrain_log.jsonl    one JSON object per finished epoch (loss, seconds, images/s)
    weights.pt            {"model": the plain backbone's state dict without its classifier,
                          "selfsup": config, "backbone": name and stem, "epochs": E}, written when
                          training completes: what ``--weights FILE`` loads (the "model" entry)

Exact resume: epoch e's order depends only on (seed, e) and the views of its step s only on
(seed, e, s), so a run stopped after any step and resumed continues as if uninterrupted.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from dmue_core.backbones import build_backbone
from dmue_core.config import _JsonRecord
from dmue_core.distributed import resolve_device
from dmue_core.precision import autocast_for, training_autocast
from dmue_core.trainer import _atomic_write, _stop_signals, batch_bounds, derive_seed

Log = Callable[[str], Any]
WEIGHTS = "weights.pt"
CHECKPOINT_FORMAT = 1
#: steps ``seconds_per_step`` times, after ``WARMUP_STEPS`` untimed ones
TIMED_STEPS, WARMUP_STEPS = 5, 4


@dataclass
class SelfSupConfig(_JsonRecord):
    """SimCLR settings. epochs: passes over the faces (each face two views per pass). batch_size:
    faces per step (2 x as many views; 128: on 2 CPU cores a face costs 0.78x what it does in
    steps of 256, whose activations outgrow the caches; the ranking after it is level on average,
    AUROC -0.010 to +0.005 on four kinds of 2,000 faces; docs/small-data.md).
    lr, weight_decay: Adam's. temperature: NT-Xent's (SimCLR's small-batch value 0.5).
    proj_dim: projection head output. crop_area: smallest share of the face a crop keeps.
    rotation: largest rotation in degrees. jitter: brightness and contrast factors drawn from
    [1 - jitter, 1 + jitter]. view_size: side of each view in pixels, the crop resampled to it
    (0: two thirds of the faces' side, ``view_side``); a step's time goes with view_size².
    seed, device ("auto", "cpu", "cuda", ...), amp ("auto", True,
    False; ``precision.training_autocast``), ckpt_every (steps; 0: at every epoch end)."""

    epochs: int = 0
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-6
    temperature: float = 0.5
    proj_dim: int = 128
    crop_area: float = 0.35
    rotation: float = 15.0
    jitter: float = 0.4
    view_size: int = 0
    seed: int = 0
    device: str = "auto"
    amp: str | bool = "auto"
    ckpt_every: int = 50

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 2 or self.proj_dim < 1:
            raise ValueError("pretrain epochs must be >= 0, batch_size >= 2 and proj_dim >= 1")
        if self.temperature <= 0 or self.lr <= 0:
            raise ValueError("pretrain temperature and lr must be > 0")
        if not 0 < self.crop_area <= 1 or not 0 <= self.jitter < 1:
            raise ValueError("pretrain crop_area must be in (0, 1] and jitter in [0, 1)")
        if self.view_size < 0 or 0 < self.view_size < 8:
            raise ValueError("pretrain view_size must be 0 (two thirds of the faces' side) or >= 8 pixels")

    def view_side(self, face_side: int) -> int:
        """Side in pixels of the views of ``face_side``-pixel faces: ``view_size``, or when 0 two
        thirds of ``face_side`` (at least 8). A random resized crop shows a face larger than the
        whole image does (FixRes, Touvron et al. 2019), so views smaller than the faces the model
        will see match their scale, at 4/9 of the cost (docs/small-data.md: on ferplus-mini 32-pixel
        views for 48-pixel faces, 400 epochs, learn as well as 48-pixel views for 500 in a third of
        the time)."""
        return self.view_size or max(8, round(face_side * 2 / 3))


@dataclass(frozen=True)
class Backbone:
    """Which registered backbone to pretrain, with its input stem (as in ``DMUEConfig``)."""

    name: str = "fer_cnn"
    small_input: bool = True
    official_stem: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "small_input": self.small_input, "official_stem": self.official_stem}


@dataclass(frozen=True)
class PretrainResult:
    weights: Path  # out_dir/weights.pt (written only when completed)
    completed: bool  # False when stopped (signal or max_steps); run again to resume
    epochs_done: int
    seconds: float  # this call
    losses: list[float]  # mean loss of every finished epoch, all calls


# ------------------------------------------------------------------------------- pieces
def augment(images: Tensor, cfg: SelfSupConfig, generator: torch.Generator) -> Tensor:
    """One random view of each face: uint8 [B, C, S, S] -> float32 [B, 3, V, V] in [-1, 1]
    (V = ``cfg.view_side(S)``).

    A random resized crop (area in [crop_area, 1], aspect ratio in [3/4, 4/3]), a horizontal flip
    (p = 0.5) and a rotation in [-rotation, rotation] degrees make one affine map per face (the
    edges reflected where a rotated crop leaves the face); then brightness and contrast factors
    in [1 - jitter, 1 + jitter], each face's mean kept by the contrast change."""
    b = images.shape[0]
    x = images.float().div(255)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)

    def uniform(lo: float, hi: float) -> Tensor:
        return torch.rand(b, generator=generator) * (hi - lo) + lo

    area = uniform(cfg.crop_area, 1.0)
    ratio = torch.exp(uniform(math.log(3 / 4), math.log(4 / 3)))
    sx, sy = (area * ratio).sqrt().clamp(max=1.0), (area / ratio).sqrt().clamp(max=1.0)
    tx, ty = uniform(-1, 1) * (1 - sx), uniform(-1, 1) * (1 - sy)
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    angle = uniform(-cfg.rotation, cfg.rotation) * math.pi / 180
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack(
        [torch.stack([cos * sx * flip, -sin * sy, tx], 1), torch.stack([sin * sx * flip, cos * sy, ty], 1)], 1
    )
    side = cfg.view_side(x.shape[-1])
    grid = F.affine_grid(theta, [b, 3, side, side], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    brightness = uniform(1 - cfg.jitter, 1 + cfg.jitter).view(b, 1, 1, 1)
    contrast = uniform(1 - cfg.jitter, 1 + cfg.jitter).view(b, 1, 1, 1)
    x = x * brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * contrast + mean).clamp(0, 1)
    return (x - 0.5) / 0.5


def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """SimCLR's NT-Xent loss of the projections of two views, z1 and z2 [B, P] (row i of each
    from face i): cross-entropy of each view's cosine similarities / temperature to the 2B - 1
    other views, its partner the target. Float32 whatever the input precision."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    b = len(z1)
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(sim, target)


class _Encoder(nn.Module):
    """Backbone (trunk, last stage, pooling: [B, 3, S, S] -> [B, D]) and projection head."""

    def __init__(self, backbone: Backbone, proj_dim: int) -> None:
        super().__init__()
        self.parts = parts = build_backbone(
            backbone.name, 1, small_input=backbone.small_input, official_stem=backbone.official_stem
        )
        self.trunk, self.last_stage, self.pool = parts.trunk, parts.make_last_stage(), parts.pool
        d = parts.feat_dim
        self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, proj_dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.pool(self.last_stage(self.trunk(x))))

    def plain_state(self) -> dict[str, Tensor]:
        """The plain backbone's state dict without its classifier (``load_backbone_weights`` format)."""
        d = self.parts.feat_dim
        state = self.parts.plain_state_dict(
            self.trunk.state_dict(), self.last_stage.state_dict(), torch.zeros(1, d), torch.zeros(1)
        )
        return {k: v.detach().cpu().clone() for k, v in state.items() if k not in self.parts.head_keys}


def _lr(cfg: SelfSupConfig, step: int, steps_per_epoch: int) -> float:
    """Linear warm-up over the first epoch, then cosine to 0 at the end of the last."""
    total = cfg.epochs * steps_per_epoch
    warm = min(steps_per_epoch, total)
    return cfg.lr * min(1.0, (step + 1) / warm) * 0.5 * (1 + math.cos(math.pi * step / max(total, 1)))


class _Stepper:
    """Encoder, optimizer and precision of one pretraining; ``step`` trains on one batch."""

    def __init__(self, images: Tensor, cfg: SelfSupConfig, backbone: Backbone) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images must be uint8 [N, 1 or 3, S, S], got {images.dtype} {tuple(images.shape)}")
        if len(images) < 2:
            raise ValueError("self-supervised pretraining needs at least 2 faces")
        self.images, self.cfg = images, cfg
        self.device = resolve_device(cfg.device)
        with torch.random.fork_rng(devices=[]):  # the initial weights depend on the seed only
            torch.manual_seed(derive_seed(cfg.seed, 0x55))
            model = _Encoder(backbone, cfg.proj_dim)
        self.model = model.to(self.device, memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.amp_dtype, use_scaler = training_autocast(self.device, cfg.amp)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=use_scaler)
        self.bounds = batch_bounds(len(images), min(cfg.batch_size, len(images)))

    def order(self, epoch: int) -> Tensor:
        return torch.randperm(
            len(self.images), generator=torch.Generator().manual_seed(derive_seed(self.cfg.seed, epoch))
        )

    def step(self, batch: Tensor, key: tuple[int, int], lr: float) -> float:
        """One optimizer step on the faces ``batch`` (uint8), views drawn from ``key`` = (epoch, step)."""
        gen = torch.Generator().manual_seed(derive_seed(self.cfg.seed, *key, 0x5E1F))
        views = [augment(batch, self.cfg, gen) for _ in range(2)]
        x = torch.cat(views).to(self.device, memory_format=torch.channels_last, non_blocking=True)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        with autocast_for(self.device, self.amp_dtype):
            z = self.model(x)
        loss = nt_xent(z[: len(batch)], z[len(batch) :], self.cfg.temperature)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite NT-Xent loss at epoch {key[0] + 1}, step {key[1] + 1}")
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach())


def seconds_per_step(
    images: Tensor,
    cfg: SelfSupConfig,
    backbone: Backbone = Backbone(),
    steps: int = TIMED_STEPS,
    warmup: int = WARMUP_STEPS,
) -> float:
    """Wall seconds of one full-batch step: the median of ``steps`` steps timed after ``warmup``
    untimed ones (the first steps of a process run up to 2.5x slower while the allocator and the
    kernels warm up), on a throw-away encoder (nothing written; the global RNG state is restored)."""
    with torch.random.fork_rng(devices=[]):
        stepper = _Stepper(images, cfg, backbone)
        start, stop = stepper.bounds[0]
        batch = images[start:stop]
        times = []
        for s in range(warmup + steps):
            tick = time.perf_counter()
            stepper.step(batch, (0, s), cfg.lr)
            times.append(time.perf_counter() - tick)
        return statistics.median(times[warmup:])


def steps_per_epoch(n_faces: int, batch_size: int) -> int:
    return len(batch_bounds(n_faces, min(batch_size, n_faces)))


# ---------------------------------------------------------------------------------- train
def pretrain(
    images: Tensor,
    cfg: SelfSupConfig,
    out_dir: str | Path,
    *,
    backbone: Backbone = Backbone(),
    progress: bool = True,
    log: Log = tqdm.write,
    max_steps: int | None = None,
) -> PretrainResult:
    """Pretrain ``backbone`` on ``images`` (uint8 [N, C, S, S]) for ``cfg.epochs`` epochs into
    ``out_dir``, resuming from its checkpoint when there is one for the same backbone, batch size
    and number of faces (ValueError otherwise; ``cfg.epochs`` may change). ``max_steps``: stop
    (saving) once this many steps are done in all. Ctrl-C or SIGTERM stops after the current step
    with a checkpoint. A completed run writes ``weights.pt``; called again it only returns."""
    if cfg.epochs < 1:
        raise ValueError("self-supervised pretraining needs epochs >= 1")
    started = time.perf_counter()
    run = _Run(_Stepper(images, cfg, backbone), Path(out_dir), backbone, log)
    run.loop(progress, max_steps)
    completed = run.epoch >= cfg.epochs
    weights = run.out / WEIGHTS
    if completed and (run.steps_now or not weights.exists()):
        payload = {"model": run.stepper.model.plain_state(), "selfsup": cfg.to_dict(), "backbone": backbone.to_dict(),
                   "epochs": run.epoch}  # fmt: skip
        _atomic_write(weights, lambda f: torch.save(payload, f))
    losses = [r["loss"] for r in run.records]
    return PretrainResult(weights, completed, run.epoch, time.perf_counter() - started, losses)


class _Run:
    """The position of one pretraining (epoch, step in epoch, the epoch's sums), its log and checkpoint."""

    def __init__(self, stepper: _Stepper, out: Path, backbone: Backbone, log: Log) -> None:
        self.stepper, self.out, self.backbone, self.log = stepper, out, backbone, log
        self.last, self.log_path = out / "checkpoints" / "last.pt", out / "pretrain_log.jsonl"
        self.epoch = self.step = self.steps_now = 0
        self.sums = {"loss": 0.0, "seconds": 0.0}
        self.records: list[dict[str, Any]] = []
        if self.last.exists():
            self._load()
        self.last.parent.mkdir(parents=True, exist_ok=True)

    def loop(self, progress: bool, max_steps: int | None) -> None:
        """Train until done or stopped (signal, ``max_steps``); a checkpoint is written either way."""
        s, cfg, n_steps = self.stepper, self.stepper.cfg, len(self.stepper.bounds)
        bar = tqdm(total=cfg.epochs * n_steps, initial=min(self.epoch * n_steps + self.step, cfg.epochs * n_steps),
                   desc="self-supervised pretraining", disable=not progress, dynamic_ncols=True)  # fmt: skip
        s.model.train()
        stopped, unsaved = False, 0
        with _stop_signals(self.log) as stop_requested:
            while self.epoch < cfg.epochs and not stopped:
                order = s.order(self.epoch)
                while self.step < n_steps and not stopped:
                    tick = time.perf_counter()
                    start, stop = s.bounds[self.step]
                    global_step = self.epoch * n_steps + self.step
                    loss = s.step(s.images[order[start:stop]], (self.epoch, self.step), _lr(cfg, global_step, n_steps))
                    self.sums["loss"] += loss
                    self.sums["seconds"] += time.perf_counter() - tick
                    self.step, self.steps_now = self.step + 1, self.steps_now + 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
                    stopped = stop_requested() or (max_steps is not None and global_step + 1 >= max_steps)
                    unsaved += 1
                    if cfg.ckpt_every and unsaved >= cfg.ckpt_every and self.step < n_steps:
                        self._save()
                        unsaved = 0
                if self.step == n_steps:
                    self._finish_epoch(n_steps)
                if stopped or self.epoch >= cfg.epochs or unsaved >= cfg.ckpt_every:
                    self._save()  # not at every epoch end: small sets have epochs of a few steps
                    unsaved = 0
        bar.close()

    def _finish_epoch(self, n_steps: int) -> None:
        faces = len(self.stepper.images)
        record = {
            "epoch": self.epoch,
            "loss": self.sums["loss"] / n_steps,
            "seconds": self.sums["seconds"],
            "images_per_s": 2 * faces / max(self.sums["seconds"], 1e-9),
        }
        self.records.append(record)
        _atomic_write(self.log_path, lambda f: f.write("".join(json.dumps(r) + "\n" for r in self.records)), "w")
        self.log(
            f"pretrain epoch {self.epoch + 1}/{self.stepper.cfg.epochs}: NT-Xent {record['loss']:.4f}, "
            f"{record['seconds']:.1f} s, {record['images_per_s']:.0f} views/s"
        )
        self.epoch, self.step, self.sums = self.epoch + 1, 0, {"loss": 0.0, "seconds": 0.0}

    def _save(self) -> None:
        s = self.stepper
        state = {
            "format": CHECKPOINT_FORMAT,
            "model": s.model.state_dict(),
            "optimizer": s.optimizer.state_dict(),
            "scaler": s.scaler.state_dict(),
            "epoch": self.epoch,  # 0-based epoch in progress (== epochs done)
            "step_in_epoch": self.step,
            "sums": dict(self.sums),
            "num_faces": len(s.images),
            "backbone": self.backbone.to_dict(),
            "config": s.cfg.to_dict(),
        }
        _atomic_write(self.last, lambda f: torch.save(state, f))

    def _load(self) -> None:
        state = torch.load(self.last, map_location="cpu", weights_only=True)
        if state["format"] != CHECKPOINT_FORMAT:
            raise ValueError(f"{self.last}: checkpoint format {state['format']}, expected {CHECKPOINT_FORMAT}")
        s, old_cfg, new_cfg = self.stepper, state["config"], self.stepper.cfg.to_dict()
        differs = [
            f"{what} {old} (now {new})"
            for what, old, new in (
                ("backbone", state["backbone"], self.backbone.to_dict()),
                ("number of faces", state["num_faces"], len(s.images)),
                ("batch size", old_cfg["batch_size"], new_cfg["batch_size"]),
                ("projection size", old_cfg["proj_dim"], new_cfg["proj_dim"]),
            )
            if old != new
        ]
        if differs:
            raise ValueError(
                f"{self.last} holds a pretraining with another {', '.join(differs)}: use another output folder"
            )
        changed = {k: (v, new_cfg[k]) for k, v in old_cfg.items() if new_cfg[k] != v}
        if changed:
            self.log(f"resuming the pretraining with changed settings: {changed}")
        s.model.load_state_dict(state["model"])
        s.optimizer.load_state_dict(state["optimizer"])
        if state["scaler"] and s.scaler.is_enabled():
            s.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step, self.sums = state["epoch"], state["step_in_epoch"], state["sums"]
        lines = self.log_path.read_text().splitlines() if self.log_path.exists() else []
        self.records = [r for r in map(json.loads, lines) if r["epoch"] < self.epoch]
        if self.epoch < s.cfg.epochs:
            self.log(f"resumed the pretraining from {self.last}: epoch {self.epoch + 1}, step {self.step}")
