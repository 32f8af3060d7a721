"""DMUE (She et al., CVPR 2021) in pure PyTorch: multi-branch model, losses, trainer, export.

Must not import FiftyOne, pandas or click.
"""

from .backbones import (
    BackboneParts,
    FerCNN,
    build_backbone,
    list_backbones,
    plain_backbone,
    register_backbone,
)
from .config import DMUEConfig, TrainConfig
from .export import load_target_model, save_target_model, to_target_model
from .losses import normalized_class_means
from .model import DMUE, StepOutput
from .ramps import ramp_down, ramp_up
from .schedule import lr_at

__all__ = [
    "DMUE",
    "BackboneParts",
    "DMUEConfig",
    "FerCNN",
    "StepOutput",
    "TrainConfig",
    "build_backbone",
    "list_backbones",
    "load_target_model",
    "lr_at",
    "normalized_class_means",
    "plain_backbone",
    "ramp_down",
    "ramp_up",
    "register_backbone",
    "save_target_model",
    "to_target_model",
]
