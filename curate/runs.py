"""A run directory: what ``curate train`` / ``curate run`` write, and how a model is loaded back.

Layout::

    RUN_DIR/config.yaml              the resolved RunConfig (``--config`` reads it back)
    RUN_DIR/classes.json             the ordered class names the model was trained on
    RUN_DIR/faces.json               the training faces' count and a digest of their ids and labels
    RUN_DIR/checkpoints/last.pt      the trainer's full checkpoint (DMUE weights, optimizer, RNG, ...)
    RUN_DIR/dynamics/, train_log.jsonl  the trainer's per-sample training dynamics and epoch log
    RUN_DIR/model.pt                 the exported target-only model (a plain backbone)
    RUN_DIR/scores.parquet (+ .embeddings.npy)  per-face records (``curate.records``)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from curate.files import temp_beside
from curate.run_config import RunConfig
from dmue_core.export import FORMAT as TARGET_FORMAT
from dmue_core.export import load_target_model
from dmue_core.model import DMUE


@dataclass
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def classes(self) -> Path:
        return self.root / "classes.json"

    @property
    def faces(self) -> Path:
        return self.root / "faces.json"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoints" / "last.pt"

    @property
    def model(self) -> Path:
        return self.root / "model.pt"

    @property
    def scores(self) -> Path:
        return self.root / "scores.parquet"


def write_json(path: Path, obj: object) -> None:
    """Write JSON atomically."""
    tmp = temp_beside(path)
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2)
    os.replace(tmp, path)


@dataclass
class LoadedModel:
    model: nn.Module
    classes: list[str] | None
    image_size: int
    source: Path


def _load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated / not a torch file: torch raises several types
        raise ValueError(
            f"{path}: cannot read the checkpoint ({type(exc).__name__}: {exc}); "
            "it may be truncated - re-run `curate train` or point to another file"
        ) from exc


def recorded_classes(source: str | Path) -> list[str] | None:
    """The class names a model was trained on: ``classes.json`` of the run directory ``source``
    or beside the model file ``source``; None when there is none."""
    source = Path(source).resolve()
    found = RunPaths(source).classes if source.is_dir() else source.with_name("classes.json")
    return json.loads(found.read_text()) if found.exists() else None


def load_model(source: str | Path) -> LoadedModel:
    """Load a model from a run directory (full DMUE with auxiliary branches) or from an exported
    ``model.pt`` (plain target model; class names read from a ``classes.json`` beside it if any)."""
    source = Path(source).resolve()
    if source.is_dir():
        paths = RunPaths(source)
        if not paths.config.exists():
            raise ValueError(
                f"{source} is not a run directory: {paths.config.name} is missing (run `curate train` first)"
            )
        if not paths.checkpoint.exists():
            raise ValueError(f"{source}: no trained checkpoint at {paths.checkpoint}; run or resume `curate train`")
        cfg = RunConfig.load(paths.config)
        state = _load_checkpoint(paths.checkpoint)
        if "model" not in state:
            raise ValueError(f"{paths.checkpoint}: not a trainer checkpoint (no 'model' entry)")
        model = DMUE(replace(cfg.model, weights=None))  # the checkpoint holds every weight: no pretrained file needed
        model.load_state_dict(state["model"])
        return LoadedModel(model.eval(), recorded_classes(source), cfg.image_size, source)
    if not source.exists():
        raise ValueError(f"{source}: no such run directory or model file")
    payload = _load_checkpoint(source)
    if not isinstance(payload, dict) or payload.get("config", {}).get("format") != TARGET_FORMAT:
        raise ValueError(f"{source}: not a model exported by curate ({TARGET_FORMAT}); pass a run directory instead")
    model = load_target_model(source)
    classes = recorded_classes(source)
    run_cfg = source.with_name("config.yaml")
    image_size = RunConfig.load(run_cfg).image_size if run_cfg.exists() else 48
    return LoadedModel(model, classes, image_size, source)
