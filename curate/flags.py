"""Verdicts from scores: ``ok``, ``ambiguous`` or ``likely_mislabeled``, with the reasons that fired.

Inputs (N faces, C classes): ``given`` (N,) int given labels, ``label_distribution`` (N, C) rows
summing to 1, ``mislabel_score`` and ``ambiguity_score`` (N,) in [0, 1], ``knn_disagreement`` (N,)
in [0, 1], and optionally ``noise_probs`` (N, C) rows summing to 1: the distribution the noise rates
are estimated from (default ``label_distribution``; the scorer passes the target branch's
probabilities).

The rule (confident-learning style, per class):

1. Per-class confidence threshold ``t_k`` = mean of ``noise_probs[:, k]`` over faces given class k
   (cleanlab's per-class threshold).
2. A face given class y is *confidently another class* when some k != y has
   ``noise_probs[i, k] >= t_k`` and k is its argmax. The share of such faces among those given y is
   the estimated noise rate ``r_y``. The target branch's own probabilities estimate it better than
   the smoothed ``label_distribution`` (which mixes in neighbour votes): on FERPlus Training (three
   full runs) 0.28-0.30 overall against 0.20-0.22, true 0.34, and a mean per-class error of 0.12
   against 0.15.
3. ``likely_mislabeled`` (``quota="global"``, the default): the top ``r`` share of all faces by
   ``mislabel_score``, where ``r`` is the overall estimated noise rate (the share of faces that are
   confidently another class); one threshold for every class. With ``quota="per_class"``: the
   top ``r_y`` share of each class y. A threshold given in the rule replaces the derived one.
   On FERPlus Training (three full runs, the same number of faces flagged) the global quota
   reached precision 0.754 / 0.749 / 0.739 at recall 0.62 / 0.59 / 0.61, per-class quotas 0.746 /
   0.748 / 0.716 at 0.61 / 0.59 / 0.59: the per-class rates are the noisier estimates.
4. ``ambiguous`` (among the rest): ``ambiguity_score >= ambiguity_threshold`` (0.6: on three FERPlus
   Training runs 20-30 % of the faces, about the share the face-level score flagged at 0.65), or
   the two most likely classes are close (second >= ``top2_ratio`` x first, in ``label_distribution``).

Reasons: ``mislabel_score>=T`` (with T), ``confident:<class>`` (step 2 fired), ``knn>=0.6`` (the
neighbours mostly carry another label), ``ambiguity>=T``, ``top2:<a>|<b>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class FlagRule:
    """Thresholds of the verdict rule. ``None`` = derived from the data as the module docstring says."""

    mislabel_threshold: float | Mapping[str, float] | None = None
    #: how derived thresholds are set: "global" (one quota over all faces) or "per_class"
    quota: str = "global"
    ambiguity_threshold: float = 0.6
    top2_ratio: float = 0.6
    knn_threshold: float = 0.6
    #: thresholds actually used, per class name (filled by ``decide``)
    resolved: dict[str, float] = field(default_factory=dict)
    #: estimated noise rate per class name (filled by ``decide``)
    noise_rate: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.quota not in ("global", "per_class"):
            raise ValueError(f"flags.quota must be 'global' or 'per_class', not {self.quota!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def per_class_thresholds(given: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """(C,) mean predicted probability of class k over faces given k (1.0 for classes with no faces)."""
    C = dist.shape[1]
    t = np.ones(C, dtype=np.float64)
    for k in range(C):
        m = given == k
        if m.any():
            t[k] = dist[m, k].mean()
    return t


def confident_other(given: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """(N,) int: the class a face is confidently in instead of its given label, or -1."""
    t = per_class_thresholds(given, dist)
    top = dist.argmax(axis=1)
    conf = (top != given) & (dist[np.arange(len(given)), top] >= t[top])
    return np.where(conf, top, -1)


def estimated_noise_rate(given: np.ndarray, dist: np.ndarray, num_classes: int) -> np.ndarray:
    """(C,) share of faces given class y that are confidently another class."""
    return _share_claimed(given, confident_other(given, dist), num_classes)


def _share_claimed(given: np.ndarray, other: np.ndarray, num_classes: int) -> np.ndarray:
    """(C,) share of faces given class y whose ``other`` (from ``confident_other``) is not -1."""
    rate = np.zeros(num_classes)
    for y in range(num_classes):
        m = given == y
        if m.any():
            rate[y] = (other[m] >= 0).mean()
    return rate


def decide(
    given: np.ndarray,
    label_distribution: np.ndarray,
    mislabel_score: np.ndarray,
    ambiguity_score: np.ndarray,
    knn_disagreement: np.ndarray,
    classes: Sequence[str],
    rule: FlagRule | None = None,
    *,
    noise_probs: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, FlagRule]:
    """Return (verdict (N,) str, reasons (N,) str, the rule with its resolved thresholds).
    ``noise_probs`` (N, C): what the noise rates are estimated from (default ``label_distribution``)."""
    rule = rule or FlagRule()
    given = np.asarray(given)
    dist = np.asarray(label_distribution, dtype=np.float64)
    n, C = dist.shape
    if len(classes) != C:
        raise ValueError(f"{len(classes)} class names for {C}-class distributions")
    belief = dist if noise_probs is None else np.asarray(noise_probs, dtype=np.float64)
    if belief.shape != dist.shape:
        raise ValueError(f"noise_probs has shape {belief.shape}, label_distribution {dist.shape}")
    other = confident_other(given, belief)
    rate = _share_claimed(given, other, C)

    overall = float((other >= 0).mean())
    global_threshold = float(np.quantile(mislabel_score, 1.0 - overall)) if overall > 0 else np.inf
    thresholds = np.full(C, np.inf)  # no estimated noise (in a class) -> flag nothing there
    for y in range(C):
        name = classes[y]
        m = given == y
        if isinstance(rule.mislabel_threshold, Mapping):
            if name in rule.mislabel_threshold:
                thresholds[y] = float(rule.mislabel_threshold[name])
                continue
        elif rule.mislabel_threshold is not None:
            thresholds[y] = float(rule.mislabel_threshold)
            continue
        if rule.quota == "global":
            thresholds[y] = global_threshold
        elif m.any() and rate[y] > 0:
            thresholds[y] = float(np.quantile(mislabel_score[m], 1.0 - rate[y]))
    rule.resolved = {classes[y]: float(thresholds[y]) for y in range(C) if np.isfinite(thresholds[y])}
    rule.noise_rate = {**{classes[y]: float(rate[y]) for y in range(C)}, "overall": overall}

    mis = mislabel_score >= thresholds[given]
    order = np.sort(dist, axis=1)
    top2 = order[:, -2] >= rule.top2_ratio * order[:, -1]
    amb = ~mis & ((ambiguity_score >= rule.ambiguity_threshold) | top2)

    verdict = np.where(mis, "likely_mislabeled", np.where(amb, "ambiguous", "ok")).astype(object)
    reasons = np.empty(n, dtype=object)
    top_two = np.argsort(dist, axis=1)[:, -2:]
    for i in range(n):
        r = []
        if mis[i]:
            r.append(f"mislabel_score>={thresholds[given[i]]:.3f}")
        if other[i] >= 0:
            r.append(f"confident:{classes[other[i]]}")
        if knn_disagreement[i] >= rule.knn_threshold:
            r.append(f"knn>={rule.knn_threshold:g}")
        if ambiguity_score[i] >= rule.ambiguity_threshold:
            r.append(f"ambiguity>={rule.ambiguity_threshold:g}")
        if top2[i]:
            r.append(f"top2:{classes[top_two[i, 1]]}|{classes[top_two[i, 0]]}")
        reasons[i] = ";".join(r)
    return verdict, reasons, rule
