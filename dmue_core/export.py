"""Collapse a trained DMUE model to the plain single-branch backbone (zero inference overhead).

The exported network is the registry's plain model (e.g. torchvision resnet18 with a C-way ``fc``
with bias): trunk + target last stage copied, and the target BN-neck (eval: running statistics and
affine) folded into the final linear layer, so it computes ``model.eval()(x)``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from torch import Tensor, nn

from .backbones import build_backbone, plain_backbone
from .model import DMUE

FORMAT = "dmue-target/1"


def _folded_head(neck: nn.BatchNorm1d, weight: Tensor) -> tuple[Tensor, Tensor]:
    """W (BN(v)) == W' v + b' for BN in eval mode; computed in float64."""
    scale = neck.weight.double() / torch.sqrt(neck.running_var.double() + neck.eps)
    shift = neck.bias.double() - neck.running_mean.double() * scale
    w = weight.double()
    return (w * scale).to(weight.dtype), (w @ shift).to(weight.dtype)


def to_target_model(model: DMUE) -> nn.Module:
    """The plain backbone with C outputs, equal to ``model.eval()(x)``; returned in eval mode."""
    cfg = model.cfg
    parts = build_backbone(cfg.backbone, cfg.num_classes, small_input=cfg.small_input, official_stem=cfg.official_stem)
    weight, bias = _folded_head(model.target_neck, model.target_head.weight.detach())
    state = parts.plain_state_dict(model.trunk.state_dict(), model.target_stage.state_dict(), weight, bias)
    net = parts.plain(cfg.num_classes)
    net.load_state_dict(state)
    return net.eval()


def _plain_config(model: DMUE) -> dict:
    cfg = model.cfg
    return {
        "format": FORMAT,
        "backbone": cfg.backbone,
        "num_classes": cfg.num_classes,
        "small_input": cfg.small_input,
        "official_stem": cfg.official_stem,
    }


def save_target_model(model: DMUE, path: str | Path) -> Path:
    """Write {"state_dict", "config"} of ``to_target_model(model)`` atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"state_dict": to_target_model(model).state_dict(), "config": _plain_config(model)}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes it private; give the mode a plain open would
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_target_model(path: str | Path) -> nn.Module:
    """The plain network saved by ``save_target_model``, in eval mode."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    config = payload.get("config", {}) if isinstance(payload, dict) else {}
    if config.get("format") != FORMAT:
        raise ValueError(f"{path} is not a target model saved by save_target_model ({FORMAT})")
    net = plain_backbone(
        config["backbone"],
        config["num_classes"],
        small_input=config["small_input"],
        official_stem=config["official_stem"],
    )
    net.load_state_dict(payload["state_dict"])
    return net.eval()
