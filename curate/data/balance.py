"""Class balance: per-class counts, the imbalance ratio, and classes too small for DMUE.

DMUE trains C auxiliary branches; branch c is a (C-1)-way classifier over every class but c, and
mines the latent distribution of the faces *given* c. So a class y is one of the outputs of the
C-1 branches that do not leave it out: when y has few faces, those branches rarely see it and
seldom put mass on it, and the mined distributions of other classes' faces (the faces whose right
label may be y) cannot point at it. A class is reported as too small for its auxiliary branches
when it has fewer than ``max(MIN_CLASS_FACES, ceil(N / batch_size))`` faces: under 30 faces a
classifier output has almost nothing to learn from (and DMUE's single-class mining statistics run
on one or two faces), and under N / batch_size faces a shuffled training batch holds fewer than
one face of the class on average, so most of the auxiliary steps never see it
(``--balanced-sampler`` draws small classes more often).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: fewest faces a class needs to be learned as an output of the auxiliary branches
MIN_CLASS_FACES = 30
#: the run's default training batch size (``curate.run_config.TRAIN_DEFAULTS``)
DEFAULT_BATCH_SIZE = 64


@dataclass(frozen=True)
class ClassBalance:
    """``counts`` {class: faces} over labelled faces; ``imbalance_ratio`` largest / smallest count
    (inf with an empty class, nan without classes); ``min_faces`` the threshold (module docstring);
    ``too_small`` the classes below it."""

    counts: dict[str, int]
    imbalance_ratio: float
    min_faces: int
    too_small: list[str]
    batch_size: int

    def to_dict(self) -> dict[str, Any]:
        ratio = self.imbalance_ratio
        return {
            "counts": self.counts,
            "imbalance_ratio": None if not math.isfinite(ratio) else round(ratio, 3),
            "min_faces": self.min_faces,
            "too_small": self.too_small,
            "batch_size": self.batch_size,
        }

    def summary_lines(self) -> list[str]:
        total = sum(self.counts.values())
        shares = ", ".join(f"{c} {n:,} ({n / max(total, 1):.1%})" for c, n in self.counts.items())
        ratio = f"{self.imbalance_ratio:.1f}" if math.isfinite(self.imbalance_ratio) else "inf (an empty class)"
        lines = [f"class balance: {shares}", f"  imbalance ratio (largest / smallest class): {ratio}"]
        if self.too_small:
            lines.append(
                f"  too small for DMUE's auxiliary branches (< {self.min_faces} faces = max({MIN_CLASS_FACES}, "
                f"faces / batch size {self.batch_size})): {', '.join(self.too_small)}"
            )
        return lines


def class_balance(labels: np.ndarray, classes: list[str], *, batch_size: int = DEFAULT_BATCH_SIZE) -> ClassBalance:
    """Balance of the labelled faces (``labels`` >= 0, indexes into ``classes``)."""
    labels = np.asarray(labels, dtype=np.int64)
    labelled = labels[(labels >= 0) & (labels < len(classes))]
    counts = np.bincount(labelled, minlength=len(classes))
    min_faces = max(MIN_CLASS_FACES, math.ceil(len(labelled) / max(batch_size, 1)))
    if len(classes) == 0:
        ratio = float("nan")
    elif counts.min() == 0:
        ratio = float("inf")
    else:
        ratio = float(counts.max() / counts.min())
    return ClassBalance(
        counts={c: int(n) for c, n in zip(classes, counts)},
        imbalance_ratio=ratio,
        min_faces=int(min_faces),
        too_small=[c for c, n in zip(classes, counts) if n < min_faces],
        batch_size=int(batch_size),
    )
