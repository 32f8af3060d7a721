"""Size-aware defaults: the settings a run leaves unset are chosen from its number of faces.

A model trained from scratch on a few thousand faces needs more passes over them than one trained
on 28,000 (docs/small-data.md: 2,000 faces 0.722 -> 0.756 AUROC from 12 to 30 epochs, 3,579 faces
0.827 -> 0.851 from 12 to 20), and a model that fits its few faces leans their probabilities to
the given labels, so its own estimate of how many faces to flag falls short: on small sets the
count comes from cross-fitted fold models (``curate.cross_fit``; for 42 % noise on 2,000 faces,
7.7 % flagged at precision / recall 0.86 / 0.16 became 25.9 % at 0.74 / 0.45; for 35 % noise on
3,579 faces, 11.1 % at 0.83 / 0.27 became 23.7 % at 0.75 / 0.51). The count is one share, so it
needs out-of-fold outputs on enough faces, not on all: the table trains the fewest of the K fold
models whose folds hold ``MIN_JUDGED_FACES`` (1,000) faces (``cross_fit_models``; each fold model
trained costs (K-1)/K of a training). On 20 runs of 2,000 faces the share one fold model's faces give
varied by 12.8 % of the share (standard deviation), so the estimate from 1,000 faces varies by about
10 %, from 3 folds of 2,000 by 7 %: small against how far the estimate itself is from the true noise
on different data (0.6-1.8x; docs/small-data.md, "Fewer fold models"). The table:

    faces            epochs   cross_fit (fold models trained)    self-supervised start
    < 300              30         3                                -
    300 - 1,499        20         3                                SimCLR, 819,200 faces passed (at most 400 epochs)
    1,500 - 2,999      20         3 (2 trained)                    the same
    3,000 - 5,999      20         3 (1 trained)                    the same
    6,000 - 9,999      20         3 (1 trained)                    -
    >= 10,000          12         2 (1 trained: docs/robustness.md §11)  -

Between 300 and 6,000 faces the run first trains its backbone self-supervised on the same faces
(``curate.pretrain``, labels unused; about 9.5 min on 2 cores from 2,048 faces up, its budget being
faces passed, 3 min for 300-500) and then DMUE for 20 epochs from it: on ferplus-mini AUROC 0.756 ->
0.78 with 12 epochs after it, and on four kinds of 2,000 faces 20 epochs ranked level with 12 or
better (mini level, +0.010 to +0.020 on the others) with a shorter queue (docs/small-data.md, "Warm
epochs after the start"); on eleven sets of 300 and 500 faces of four kinds it gave a better AP than
30 epochs from scratch on all and a better AUROC on nine (docs/small-data.md, "The start on 300, 500
and 1,000 faces"); and on three kinds of labelled FERPlus faces of 3,579-5,000 faces it ranked better
(+0.009 to +0.020 AUROC, +0.027 to +0.059 AP) and the exported model predicted PublicTest 2.0-5.0
points better (docs/small-data.md, "The start for 3,000-5,999 faces"). From 6,000 faces there is
no start: its gain fell to +0.002 AUROC at 10,000 faces in the learning curve.
No start is chosen where the run has one (``--weights``, ``--init-from``). A self-supervised start
chosen by ``--pretrain-epochs`` also gets the row's 20 epochs where the row has a start. A run that
starts from an earlier model of labelled faces (``--init-from``) trains ``INIT_FROM_EPOCHS`` (12)
at every size: the rows' longer runs are for models that have not learnt the classes yet, and from
such a start they fit the new faces' labels: PublicTest from a Training run 0.881 AUROC against 0.860
with 20 epochs, ferplus-mini from a PublicTest run 0.791 against 0.731 with 30 (docs/small-data.md,
"A start from a dataset that spells its classes another way, and the epochs after a start from an
earlier run"); on crowd labels with 20 % flips and on synthetic faces 12 ranked better or level
(docs/small-data.md, "The epochs after a start from an earlier run, on other noise").

The ramp width (``model.ramp_a``) follows the epochs (a third of them). The trunk's learning rate,
the augmentation and the neighbour count stay fixed at every size: at 2,000 faces a fifth or twice
the rate ranked worse on average (AUROC 0.842 / 0.844 against 0.850 on four kinds of data), a
stronger augmentation lost up to 0.031 AUROC and 0.083 AP, and 5-40 neighbours moved AUROC by at
most 0.004 there and on 28,558 faces (docs/small-data.md, "The learning rate, augmentation and the
neighbour count"). Every value the table chooses is overridable:
a flag or a ``--config`` file that sets one takes it off ``RunConfig.size_aware``, the list of the
settings still to be chosen; ``apply`` chooses them once, for the faces the run trains on, and
empties the list, so ``config.yaml`` records the values used and a resume or ``--config`` replay
reproduces them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

#: the settings the size table can choose, as ``RunConfig.size_aware`` names them
SIZE_AWARE = ("pretrain.epochs", "train.epochs", "model.ramp_a", "cross_fit")
#: the most self-supervised epochs the table chooses (the fewer the faces, the more epochs its budget of faces makes)
MAX_PRETRAIN_EPOCHS = 400
#: DMUE epochs after ``--init-from`` at every size
INIT_FROM_EPOCHS = 12
#: the held-out faces the flag count is estimated on: the table trains the fewest fold models whose
#: folds hold at least this many
MIN_JUDGED_FACES = 1000


@dataclass(frozen=True)
class SizeRow:
    below: int | None  # faces; None = no upper bound
    epochs: int  # DMUE epochs from scratch or from the user's start
    cross_fit: int
    pretrain_passes: int = 0  # faces the self-supervised start passes over, epochs x faces (0: no start)
    warm_epochs: int = 0  # DMUE epochs after a self-supervised start (0: ``epochs``)


TABLE = (
    SizeRow(300, epochs=30, cross_fit=3),
    SizeRow(3000, epochs=30, cross_fit=3, pretrain_passes=819_200, warm_epochs=20),
    SizeRow(6000, epochs=20, cross_fit=3, pretrain_passes=819_200),
    SizeRow(10000, epochs=20, cross_fit=3),
    SizeRow(None, epochs=12, cross_fit=2),
)


def row_for(n_faces: int) -> SizeRow:
    """The table row of a dataset of ``n_faces`` faces."""
    return next(r for r in TABLE if r.below is None or n_faces < r.below)


def start_sizes() -> tuple[int, int]:
    """(fewest, most) faces for which the table chooses a self-supervised start."""
    lower = [0, *(r.below for r in TABLE)]
    sizes = [(lo, r.below - 1) for lo, r in zip(lower, TABLE, strict=False) if r.pretrain_passes and r.below]
    return sizes[0][0], sizes[-1][1]


def pretrain_epochs(row: SizeRow, n_faces: int) -> int:
    """Self-supervised epochs that pass ``row.pretrain_passes`` faces on a set of ``n_faces``, at most
    ``MAX_PRETRAIN_EPOCHS`` (0 when the row has no start); the same at any batch size."""
    if not row.pretrain_passes:
        return 0
    return min(MAX_PRETRAIN_EPOCHS, math.ceil(row.pretrain_passes / max(n_faces, 1)))


def fold_models(n_faces: int, k: int) -> int:
    """The fewest of ``k`` fold models whose folds (n_faces / k faces each) hold at least
    ``MIN_JUDGED_FACES`` faces; 0 (all k) when that takes every one."""
    m = math.ceil(MIN_JUDGED_FACES * k / max(n_faces, 1))
    return m if m < k else 0


def apply(cfg: Any, n_faces: int, log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Set the settings named in ``cfg.size_aware`` (a ``RunConfig``) from the row of ``n_faces``,
    empty the list and return {setting: value} of what was chosen (logged when not empty)."""
    row = row_for(n_faces)
    chosen: dict[str, Any] = {}
    has_start = cfg.model.weights is not None or cfg.init_from is not None
    if "pretrain.epochs" in cfg.size_aware and not has_start:
        epochs = pretrain_epochs(row, n_faces)
        if epochs:
            cfg.pretrain = replace(cfg.pretrain, epochs=epochs)
            chosen["pretrain.epochs"] = epochs
    if "train.epochs" in cfg.size_aware:
        warm = cfg.pretrain.epochs and row.warm_epochs
        epochs = INIT_FROM_EPOCHS if cfg.init_from is not None else row.warm_epochs if warm else row.epochs
        cfg.train.epochs = chosen["train.epochs"] = epochs
    if "model.ramp_a" in cfg.size_aware:
        cfg.model.ramp_a = chosen["model.ramp_a"] = round(cfg.train.epochs / 3, 2)
    if "cross_fit" in cfg.size_aware:
        cfg.cross_fit = chosen["cross_fit"] = row.cross_fit
        cfg.cross_fit_models = fold_models(n_faces, row.cross_fit)
        if cfg.cross_fit_models:
            chosen["cross_fit_models"] = cfg.cross_fit_models
    cfg.size_aware = []
    if chosen:
        listed = ", ".join(f"{k} {v}" for k, v in chosen.items())
        log(f"size-aware defaults for {n_faces:,} faces: {listed} (docs/small-data.md; a flag or --config overrides)")
    return chosen
