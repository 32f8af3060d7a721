"""Per-epoch learning rates for the two parameter groups (backbone, classifiers).

"official" is the step table of the official code (method doc §4.2), written for 36 epochs and
lr_backbone=1e-4 / lr_classifier=1e-3; other epoch counts stretch it proportionally and other base
rates scale it. "cosine" anneals both base rates to 0 over ``cfg.epochs``.
"""

import math

from .config import TrainConfig

OFFICIAL_EPOCHS = 36
# (first epoch of the step, backbone factor, classifier factor), factors relative to 1e-4 / 1e-3.
OFFICIAL_STEPS: tuple[tuple[int, float, float], ...] = (
    (0, 1.0, 1.0),
    (4, 1.0, 0.5),
    (6, 0.5, 0.5),
    (8, 0.5, 0.1),
    (12, 0.1, 0.1),
    (14, 0.1, 0.01),
    (22, 0.5, 0.05),  # the official small warm restart
    (25, 0.1, 0.01),
)


def lr_at(epoch: float, cfg: TrainConfig) -> tuple[float, float]:
    """(lr_backbone, lr_classifier) to use during ``epoch`` (0-based, fractional allowed)."""
    if cfg.schedule == "cosine":
        scale = 0.5 * (1.0 + math.cos(math.pi * min(epoch / cfg.epochs, 1.0)))
        return cfg.lr_backbone * scale, cfg.lr_classifier * scale
    official_epoch = epoch * OFFICIAL_EPOCHS / cfg.epochs
    factors = [(bb, cl) for start, bb, cl in OFFICIAL_STEPS if start <= official_epoch]
    bb, cl = factors[-1]
    return cfg.lr_backbone * bb, cfg.lr_classifier * cl
