"""Size-aware defaults: the settings a run leaves unset are chosen from its number of faces.

A model trained from scratch on a few thousand faces needs more passes over them than one trained
on 28,000 (docs/small-data.md: 2,000 faces 0.722 -> 0.756 AUROC from 12 to 30 epochs, 3,579 faces
0.827 -> 0.851 from 12 to 20), and a model that fits its few faces leans their probabilities to
the given labels, so its own estimate of how many faces to flag falls short: on small sets the
count comes from cross-fitted fold models (``curate.cross_fit``; for 42 % noise on 2,000 faces,
7.7 % flagged at precision / recall 0.86 / 0.16 became 25.9 % at 0.74 / 0.45; for 35 % noise on
3,579 faces, 11.1 % at 0.83 / 0.27 became 23.7 % at 0.75 / 0.51). The table:

    faces            epochs   cross_fit
    < 3,000            30         3
    3,000 - 9,999      20         3
    >= 10,000          12         0

The ramp width (``model.ramp_a``) follows the epochs (a third of them). Every value is overridable:
a flag or a ``--config`` file that sets one takes it off ``RunConfig.size_aware``, the list of the
settings still to be chosen; ``apply`` chooses them once, for the faces the run trains on, and
empties the list, so ``config.yaml`` records the values used and a resume or ``--config`` replay
reproduces them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: the settings the size table can choose, as ``RunConfig.size_aware`` names them
SIZE_AWARE = ("train.epochs", "model.ramp_a", "cross_fit")


@dataclass(frozen=True)
class SizeRow:
    below: int | None  # faces; None = no upper bound
    epochs: int
    cross_fit: int


TABLE = (SizeRow(3000, epochs=30, cross_fit=3), SizeRow(10000, epochs=20, cross_fit=3), SizeRow(None, 12, 0))


def row_for(n_faces: int) -> SizeRow:
    """The table row of a dataset of ``n_faces`` faces."""
    return next(r for r in TABLE if r.below is None or n_faces < r.below)


def apply(cfg: Any, n_faces: int, log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Set the settings named in ``cfg.size_aware`` (a ``RunConfig``) from the row of ``n_faces``,
    empty the list and return {setting: value} of what was chosen (logged when not empty)."""
    row = row_for(n_faces)
    chosen: dict[str, Any] = {}
    if "train.epochs" in cfg.size_aware:
        cfg.train.epochs = chosen["train.epochs"] = row.epochs
    if "model.ramp_a" in cfg.size_aware:
        cfg.model.ramp_a = chosen["model.ramp_a"] = round(cfg.train.epochs / 3, 2)
    if "cross_fit" in cfg.size_aware:
        cfg.cross_fit = chosen["cross_fit"] = row.cross_fit
    cfg.size_aware = []
    if chosen:
        listed = ", ".join(f"{k} {v}" for k, v in chosen.items())
        log(f"size-aware defaults for {n_faces:,} faces: {listed} (docs/small-data.md; a flag or --config overrides)")
    return chosen
