"""The self-supervised stage (``dmue_core.selfsup``, SimCLR) as a job: its cost said before it
starts and recorded, then the pretraining, resumable.

Used by ``curate pretrain DATASET --out DIR`` and by ``curate train/run --pretrain-epochs N``
(into ``RUN_DIR/pretrain/``). Layout of the stage's folder, besides ``dmue_core.selfsup``'s
(``weights.pt``, ``checkpoints/``, ``pretrain_log.jsonl``)::

    pretrain.json   the cost: faces, epochs, views (faces x epochs x 2) and their side, steps, the seconds per
                    step timed on a few steps and the estimate from them; once run, the seconds
                    it took (all calls) and the last epoch's loss
    config.yaml     (``curate pretrain`` only) the dataset and reader options, image size,
                    backbone and the pretraining settings
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml

from curate.data.torch_dataset import FaceDataset
from curate.files import temp_beside
from curate.runs import write_json
from dmue_core.selfsup import (
    TIMED_STEPS,
    WEIGHTS,
    Backbone,
    SelfSupConfig,
    pretrain,
    seconds_per_step,
    steps_per_epoch,
)

Log = Callable[[str], Any]
RECORD = "pretrain.json"
CONFIG = "config.yaml"


class PretrainInterrupted(RuntimeError):
    """The pretraining was stopped (Ctrl-C, SIGTERM) after saving a resumable checkpoint."""


def cost(n_faces: int, cfg: SelfSupConfig, step_seconds: float, view_side: int) -> dict[str, Any]:
    """The cost record of pretraining ``n_faces`` faces: views (of ``view_side`` pixels), steps and
    the time estimated from ``step_seconds`` (seconds of one full-batch step)."""
    steps = steps_per_epoch(n_faces, cfg.batch_size) * cfg.epochs
    return {
        "faces": n_faces,
        "epochs": cfg.epochs,
        "views": n_faces * cfg.epochs * 2,
        "view_side": view_side,
        "batch_size": min(cfg.batch_size, n_faces),
        "steps": steps,
        "seconds_per_step": round(step_seconds, 4),
        "estimated_seconds": round(steps * step_seconds, 1),
    }


def describe(record: dict[str, Any]) -> str:
    est = record["estimated_seconds"]
    return (
        f"self-supervised pretraining: {record['faces']:,} faces x {record['epochs']} epochs x 2 views = "
        f"{record['views']:,} views of {record['view_side']} px in {record['steps']:,} steps of {record['batch_size']}; "
        f"{record['seconds_per_step']:.2f} s per step (median of {TIMED_STEPS} timed steps) -> about {est / 60:.1f} min"
    )


def _complete(weights: Path, cfg: SelfSupConfig, backbone: Backbone) -> bool:
    """True when ``weights`` holds a finished pretraining with these settings."""
    if not weights.is_file():
        return False
    saved = torch.load(weights, map_location="cpu", weights_only=True)
    return saved.get("selfsup") == cfg.to_dict() and saved.get("backbone") == backbone.to_dict()


def pretrain_stage(
    images: torch.Tensor,
    cfg: SelfSupConfig,
    backbone: Backbone,
    out_dir: Path,
    *,
    log: Log = print,
    progress: bool = True,
) -> Path:
    """Pretrain ``backbone`` on ``images`` (uint8 [N, C, S, S]) into ``out_dir`` and return its
    ``weights.pt``: the cost (timed on a few steps) logged and recorded in ``pretrain.json``
    before it starts, the seconds it took after. A finished stage with the same settings is reused.
    Raises PretrainInterrupted when stopped (a checkpoint was written; the same call resumes)."""
    out_dir = Path(out_dir)
    weights = out_dir / WEIGHTS
    if _complete(weights, cfg, backbone):
        log(f"self-supervised pretraining already done: reusing {weights}")
        return weights
    path = out_dir / RECORD
    earlier = json.loads(path.read_text()) if path.exists() else {}
    step_seconds = seconds_per_step(images, cfg, backbone)
    record = {**cost(len(images), cfg, step_seconds, cfg.view_side(images.shape[-1])), "backbone": backbone.to_dict()}
    record["selfsup"] = cfg.to_dict()
    log(describe(record))
    out_dir.mkdir(parents=True, exist_ok=True)
    record["seconds"] = earlier.get("seconds", 0.0) if earlier.get("selfsup") == cfg.to_dict() else 0.0
    write_json(path, record)
    tick = time.perf_counter()
    result = pretrain(images, cfg, out_dir, backbone=backbone, progress=progress)
    record["seconds"] = round(record["seconds"] + time.perf_counter() - tick, 1)
    record["completed"] = result.completed
    record["last_loss"] = result.losses[-1] if result.losses else None
    write_json(path, record)
    if not result.completed:
        raise PretrainInterrupted(
            f"self-supervised pretraining stopped after {result.epochs_done} of {cfg.epochs} epochs; "
            "run the same command again to resume"
        )
    log(f"self-supervised pretraining done in {record['seconds'] / 60:.1f} min: {weights}")
    return weights


def pretrain_job(
    table: pd.DataFrame,
    cfg: SelfSupConfig,
    backbone: Backbone,
    out_dir: Path,
    *,
    image_size: int = 48,
    data: dict[str, Any] | None = None,
    log: Log = print,
    progress: bool = True,
) -> Path:
    """``curate pretrain``: every face of ``table`` (labels unused) read at ``image_size``, the
    settings written to ``out_dir/config.yaml`` (``data``: the dataset and reader options), then
    :func:`pretrain_stage`; returns the weights file."""
    if len(table) < 2:
        raise ValueError(f"self-supervised pretraining needs at least 2 faces, the dataset has {len(table)}")
    images = FaceDataset(table, image_size=image_size, preload=True).images
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = {"data": dict(data or {}), "image_size": image_size, "backbone": backbone.to_dict(),
              "pretrain": cfg.to_dict()}  # fmt: skip
    tmp = temp_beside(out_dir / CONFIG)
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    os.replace(tmp, out_dir / CONFIG)
    return pretrain_stage(images, cfg, backbone, out_dir, log=log, progress=progress)
