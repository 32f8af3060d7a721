"""Ranking and flag metrics for label-issue detection, in plain numpy.

Inputs: ``truth`` (N,) bool, True = the label really is wrong; ``score`` (N,) float, higher = more
suspicious; ``flag`` (N,) bool, the detector's yes/no answer. Ties in ``score`` are handled exactly
(average ranks for AUROC, grouped thresholds for average precision), matching scikit-learn.
"""

from __future__ import annotations

import numpy as np


def _check(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(truth, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    if truth.shape != score.shape or truth.ndim != 1:
        raise ValueError(f"truth and score must be 1-d of the same length, got {truth.shape} and {score.shape}")
    if np.isnan(score).any():
        raise ValueError("score contains NaN")
    return truth, score


def rankdata(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (as scipy.stats.rankdata)."""
    x = np.asarray(x)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    boundaries = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1], True])
    avg = (boundaries[:-1] + boundaries[1:] + 1) / 2.0
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(avg, np.diff(boundaries))
    return ranks


def auroc(truth: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (probability a true issue outranks a clean sample; ties count 1/2)."""
    truth, score = _check(truth, score)
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs both positive and negative samples")
    ranks = rankdata(score)
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(truth: np.ndarray, score: np.ndarray) -> float:
    """Average precision: sum over score thresholds of (recall step) x precision."""
    truth, score = _check(truth, score)
    if not truth.any():
        raise ValueError("average precision needs at least one positive sample")
    order = np.argsort(-score, kind="mergesort")
    s, t = score[order], truth[order]
    last_of_group = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(t)[last_of_group]
    seen = np.flatnonzero(last_of_group) + 1
    precision = tp / seen
    recall_step = np.diff(np.r_[0, tp]) / truth.sum()
    return float((precision * recall_step).sum())


def precision_at_k(truth: np.ndarray, score: np.ndarray, k: int) -> float:
    """Share of true issues among the k highest scores (a review budget of k samples)."""
    truth, score = _check(truth, score)
    k = min(int(k), len(truth))
    if k <= 0:
        raise ValueError("k must be positive")
    top = np.argsort(-score, kind="mergesort")[:k]
    return float(truth[top].mean())


def fnr_at_budget(truth: np.ndarray, score: np.ndarray, budget: int | None = None) -> float:
    """Share of true issues missed when reviewing the top ``budget`` samples (default: as many as there are issues)."""
    truth, score = _check(truth, score)
    budget = int(truth.sum()) if budget is None else int(budget)
    top = np.argsort(-score, kind="mergesort")[:budget]
    return float(1.0 - truth[top].sum() / truth.sum())


def flag_precision_recall(truth: np.ndarray, flag: np.ndarray) -> tuple[float, float]:
    """(precision, recall) of a yes/no flag; precision is 0.0 when nothing is flagged."""
    truth = np.asarray(truth, dtype=bool)
    flag = np.asarray(flag, dtype=bool)
    tp = int((truth & flag).sum())
    precision = tp / int(flag.sum()) if flag.any() else 0.0
    recall = tp / int(truth.sum()) if truth.any() else 0.0
    return float(precision), float(recall)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks)."""
    ra, rb = rankdata(np.asarray(a, dtype=np.float64)), rankdata(np.asarray(b, dtype=np.float64))
    ra -= ra.mean()
    rb -= rb.mean()
    denom = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else 0.0


def detection_report(
    truth: np.ndarray, score: np.ndarray, flag: np.ndarray | None = None, *, ks: tuple[int, ...] = (500, 2000)
) -> dict[str, float]:
    """All ranking metrics (and the flag's precision/recall when given) as one dict."""
    out = {
        "auroc": auroc(truth, score),
        "ap": average_precision(truth, score),
        "fnr_at_noise_rate": fnr_at_budget(truth, score),
    }
    for k in ks:
        out[f"p@{k}"] = precision_at_k(truth, score, k)
    if flag is not None:
        out["flag_precision"], out["flag_recall"] = flag_precision_recall(truth, flag)
    return out
