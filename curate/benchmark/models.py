"""Train and apply the benchmark's models in-process: DMUE and the plain cross-entropy baseline,
same backbone, input pipeline, trainer and budget (``curate.run_config`` defaults)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from curate.data.torch_dataset import FaceDataset, eval_transform, train_transform
from curate.run_config import MODEL_DEFAULTS, TRAIN_DEFAULTS
from curate.scoring.infer import mean_of_views, tta_views
from dmue_core.baseline import PlainClassifier
from dmue_core.config import DMUEConfig, TrainConfig
from dmue_core.model import DMUE
from dmue_core.trainer import train

IMAGE_SIZE = 48


def model_config(epochs: int, num_classes: int, backbone: str = MODEL_DEFAULTS["backbone"]) -> DMUEConfig:
    """The run's model config (``MODEL_DEFAULTS`` with ``backbone``, ramps scaled to ``epochs`` as
    the benchmark's ``curate run`` does)."""
    return DMUEConfig(**{**MODEL_DEFAULTS, "num_classes": num_classes, "backbone": backbone, "ramp_a": epochs / 3})


def train_config(epochs: int, seed: int) -> TrainConfig:
    return TrainConfig(**{**TRAIN_DEFAULTS, "epochs": epochs, "seed": seed})


def fit(
    kind: str,
    table: pd.DataFrame,
    out_dir: Path,
    *,
    epochs: int,
    seed: int,
    backbone: str = MODEL_DEFAULTS["backbone"],
    progress: bool = True,
) -> nn.Module:
    """Train ``kind`` ("dmue" or "ce") on ``table`` into ``out_dir`` (on the trainer's default
    device: a GPU when there is one); resumes a stopped training and returns at once when it
    already finished."""
    num_classes = len(table.attrs["classes"])
    cfg = model_config(epochs, num_classes, backbone)
    torch.manual_seed(seed)
    model = DMUE(cfg) if kind == "dmue" else PlainClassifier(cfg)
    data = FaceDataset(table, IMAGE_SIZE, transform=train_transform(IMAGE_SIZE), preload=True)
    result = train(model, data, train_config(epochs, seed), out_dir, resume=True, progress=progress, log=lambda _: None)
    if not result.completed:
        raise KeyboardInterrupt(f"training in {out_dir} stopped; run the benchmark again to resume")
    return model.eval()


def train_images_per_s(out_dir: Path) -> float:
    """Training throughput over all epochs in ``out_dir/train_log.jsonl`` (images / seconds)."""
    records = [json.loads(line) for line in (Path(out_dir) / "train_log.jsonl").read_text().splitlines() if line]
    return sum(r["images"] for r in records) / sum(r["seconds"] for r in records)


@torch.no_grad()
def predict(
    model: nn.Module, table: pd.DataFrame, *, tta: str = "none", batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """(logits [N,C] float32, embeddings [N,D] float32) in table order, eval mode, averaged over
    the ``tta`` views as ``curate score`` does. ``model`` has ``embed(x) -> (emb, logits)`` (DMUE
    target path or the CE baseline)."""
    data = FaceDataset(table, IMAGE_SIZE, transform=eval_transform(IMAGE_SIZE))
    logits, embs = [], []
    model.eval()
    device = next(model.parameters()).device
    for x, _, _ in DataLoader(data, batch_size=batch_size, num_workers=1):
        views = tta_views(x.to(device, memory_format=torch.channels_last), tta)
        emb, z = (mean_of_views(list(out)) for out in zip(*(model.embed(v) for v in views)))
        logits.append(z.float().cpu().numpy())
        embs.append(emb.float().cpu().numpy())
    return np.concatenate(logits), np.concatenate(embs)


def stratified_folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """(N,) fold id in [0, k): each class dealt round-robin over the folds after a shuffle."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        fold[rows] = np.arange(len(rows)) % k
    return fold
