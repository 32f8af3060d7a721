"""Label-noise estimates from predicted class probabilities (confident learning: Northcutt et al.,
JAIR 2021, as cleanlab counts it), shared by the scores (a class's noise prior) and the verdicts
(how many faces to flag).

Inputs: ``given`` (N,) int labels in [0, C); ``probs`` (N, C) predicted class probabilities, rows
summing to 1. Outputs are per class, (C,), or per face, (N,).
"""

from __future__ import annotations

import numpy as np


def per_class_thresholds(given: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(C,) mean predicted probability of class k over faces given k (1.0 for classes with no faces)."""
    C = probs.shape[1]
    t = np.ones(C, dtype=np.float64)
    for k in range(C):
        m = given == k
        if m.any():
            t[k] = probs[m, k].mean()
    return t


def confident_other(given: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(N,) int: the class a face is confidently in instead of its given label, or -1. Confidently
    k: k is the face's most probable class, k is not its label, and its probability reaches
    ``t_k``, the mean probability of k among the faces given k (so a class the model finds hard,
    with low probabilities even on its own faces, is judged on its own scale)."""
    t = per_class_thresholds(given, probs)
    top = probs.argmax(axis=1)
    conf = (top != given) & (probs[np.arange(len(given)), top] >= t[top])
    return np.where(conf, top, -1)


def confident_rate(given: np.ndarray, probs: np.ndarray) -> float:
    """Share of all faces that are confidently another class (0.0 for no face)."""
    return float((confident_other(given, probs) >= 0).mean()) if len(given) else 0.0


def class_share(given: np.ndarray, hit: np.ndarray, num_classes: int) -> np.ndarray:
    """(C,) share of the faces given class y where the bool ``hit`` (N,) holds; 0 for a class with
    no face."""
    counts = np.bincount(given, minlength=num_classes)
    return np.bincount(given, weights=hit.astype(np.float64), minlength=num_classes) / np.maximum(counts, 1)


def class_noise_prior(
    given: np.ndarray, probs: np.ndarray, num_classes: int, *, pseudo_count: float = 20.0
) -> tuple[np.ndarray, float]:
    """((C,) per-class noise rate, overall rate): the confident share of each class, shrunk towards
    the overall share with ``pseudo_count`` faces of prior weight (empirical Bayes: a class of a
    few faces keeps close to the overall rate instead of swinging to 0 or 1)."""
    hit = confident_other(given, probs) >= 0
    overall = float(hit.mean()) if len(hit) else 0.0
    counts = np.bincount(given, minlength=num_classes)
    share = class_share(given, hit, num_classes)
    return (share * counts + pseudo_count * overall) / (counts + pseudo_count), overall
