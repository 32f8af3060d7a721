"""Size-aware defaults: the settings a run leaves unset are chosen from its number of faces.

A model trained from scratch on a few thousand faces needs more passes over them than one trained
on 28,000 (docs/small-data.md: 2,000 faces 0.722 -> 0.756 AUROC from 12 to 30 epochs, 3,579 faces
0.827 -> 0.851 from 12 to 20). The table:

    faces            epochs
    < 3,000            30
    3,000 - 9,999      20
    >= 10,000          12

The ramp width (``model.ramp_a``) follows the epochs (a third of them). Cross-fitting
(``--cross-fit``) is not chosen by size: on 2,000 faces it gave a more honest flag count but a
weaker ranking (docs/small-data.md). Every value is overridable:
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
SIZE_AWARE = ("train.epochs", "model.ramp_a")


@dataclass(frozen=True)
class SizeRow:
    below: int | None  # faces; None = no upper bound
    epochs: int


TABLE = (SizeRow(3000, epochs=30), SizeRow(10000, epochs=20), SizeRow(None, epochs=12))


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
    cfg.size_aware = []
    if chosen:
        listed = ", ".join(f"{k} {v}" for k, v in chosen.items())
        log(f"size-aware defaults for {n_faces:,} faces: {listed} (docs/small-data.md; a flag or --config overrides)")
    return chosen
