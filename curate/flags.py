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
   ``noise_probs[i, k] >= t_k`` and k is its argmax; ``c_y`` is the share of such faces among those
   given y. It undercounts the errors of faces the model was trained on, whose probabilities lean
   to their given labels: 0.20-0.25 overall on five FERPlus Training runs, true 0.34.
3. The noise rate ``r_y`` is cleanlab's calibrated confident joint: each face above some class's
   threshold counts for its most probable such class, and ``r_y`` is the share of class y's counted
   faces that landed off the diagonal (0.30-0.36 overall on the same runs; ``noise_rate``).
4. ``likely_mislabeled`` (``quota="global"``, the default): the top ``s`` share of all faces by
   ``mislabel_score``, one threshold for every class, with ``s = sqrt(c * r)`` over all faces: a
   queue a little shorter than the noise, so that what it flags is mostly wrong. On the five
   Training runs ``s`` = 0.26-0.29 flagged precision 0.75-0.81 at recall 0.57-0.61 (the window
   where precision >= 0.75 and recall >= 0.55 spans shares 0.24-0.34 in the best run, 0.255-0.29
   in the worst); ``c`` alone flagged 0.20-0.25 of the faces (recall 0.47-0.55), ``r`` alone
   0.30-0.36 (precision 0.68-0.74 on three of them). Chosen on those runs, it is not robust to
   other training settings: with 18 half-auxiliary epochs (seed 0) c = 0.30, r = 0.39, and the
   0.34 flagged had precision 0.71 at recall 0.68. With ``quota="per_class"``: the top
   ``sqrt(c_y * r_y)`` share of each class y (precision 0.74-0.78 at the same shares: the
   per-class rates are the noisier estimates). A threshold given in the rule replaces the derived
   one. On faces the model never saw (PublicTest, four models) both estimates run higher: ``s`` =
   0.32-0.34 flagged precision 0.69-0.75 at recall 0.61-0.65.
5. ``ambiguous`` (among the rest): ``ambiguity_score >= ambiguity_threshold`` (0.6: on three FERPlus
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
    #: estimated noise rate per class name and "overall" (filled by ``decide``)
    noise_rate: dict[str, float] = field(default_factory=dict)
    #: share of faces flagged per class name and "overall" by the derived quotas (filled by ``decide``)
    flag_share: dict[str, float] = field(default_factory=dict)

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


def confident_share(given: np.ndarray, dist: np.ndarray, num_classes: int) -> np.ndarray:
    """(C,) share of faces given class y that are confidently another class."""
    return _class_share(given, confident_other(given, dist) >= 0, num_classes)


def calibrated_noise_rate(given: np.ndarray, dist: np.ndarray, num_classes: int) -> np.ndarray:
    """(C,) cleanlab's calibrated confident-joint noise rate of each given class: among the faces
    given y with some class above its threshold ``t_k``, the share whose most probable such class
    is not y (0 for a class with no such face)."""
    above = dist >= per_class_thresholds(given, dist)[None, :]
    claim = np.where(above, dist, -np.inf).argmax(axis=1)
    return _class_share(given, claim != given, num_classes, among=above.any(axis=1))


def _class_share(
    given: np.ndarray, hit: np.ndarray, num_classes: int, among: np.ndarray | None = None
) -> np.ndarray:
    """(C,) share of the faces given class y (restricted to the bool mask ``among``) where the
    bool ``hit`` (N,) holds; 0 for a class with no such face."""
    rows = given if among is None else given[among]
    hits = hit if among is None else hit[among]
    counts = np.bincount(rows, minlength=num_classes)
    return np.bincount(rows, weights=hits.astype(np.float64), minlength=num_classes) / np.maximum(counts, 1)


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
    counts = np.bincount(given, minlength=C)
    confident = _class_share(given, other >= 0, C)
    noise = calibrated_noise_rate(given, belief, C)
    noise_overall = float(counts @ noise / n)
    share = np.sqrt(confident * noise)
    overall = float(np.sqrt(counts @ confident / n * noise_overall))

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
        elif m.any() and share[y] > 0:
            thresholds[y] = float(np.quantile(mislabel_score[m], 1.0 - share[y]))
    rule.resolved = {classes[y]: float(thresholds[y]) for y in range(C) if np.isfinite(thresholds[y])}
    rule.noise_rate = {**{classes[y]: float(noise[y]) for y in range(C)}, "overall": noise_overall}
    rule.flag_share = {**{classes[y]: float(share[y]) for y in range(C)}, "overall": overall}

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
