"""Verdicts from scores: ``ok``, ``ambiguous`` or ``likely_mislabeled``, with the reasons that fired.

Inputs (N faces, C classes): ``given`` (N,) int given labels, ``label_distribution`` (N, C) rows
summing to 1, ``mislabel_score`` and ``ambiguity_score`` (N,) in [0, 1], ``knn_disagreement`` (N,)
in [0, 1], and optionally ``noise_probs`` (N, C) rows summing to 1: the distribution the noise rate
is estimated from (default ``label_distribution``; the scorer passes the believed distribution
before its class prior, since that prior is itself a noise estimate and would count twice).

The rule (confident learning on the believed distribution, ``curate.noise``):

1. A face given class y is *confidently another class* k when k is its most probable class in
   ``noise_probs`` and that probability reaches ``t_k``, the mean probability of k over the
   faces given k (cleanlab's per-class threshold: a class the model finds hard is judged on its
   own scale). The share of such faces is the noise rate estimate, per class and overall
   (``noise_rate``).
2. ``likely_mislabeled`` (``quota="global"``, the default): the top share of all faces by
   ``mislabel_score`` equal to the estimated overall rate, one threshold for every class; with
   ``quota="per_class"`` the top share of each class y equal to its own rate. A threshold given
   in the rule replaces the derived one. The estimate follows the data's noise instead of a
   fixed quota: in the flip suite (``curate bench --suite flips``, 5,000 crowd-labelled faces)
   it flagged 5.1 % with no label wrong and 0.68-1.26x the true share of flips at 10-40 %, uniform
   or to each class's most confused class. The earlier rule, the geometric mean of this share on
   the target probabilities and cleanlab's calibrated rate (which counts every face above some
   class threshold), flagged 11 % of clean faces and 1.5x 20 % uniform flips. Models that fit
   their training labels closely lean every probability to its label, and the share undercounts:
   10 % flagged for FER2013's 34 % on the Training split from the full model's own outputs, 16 %
   from one held-out fold model (the default from 10,000 faces; docs/robustness.md §11).
3. ``ambiguous`` (among the rest): ``ambiguity_score >= ambiguity_threshold`` (0.7: with the
   score of 2026-12-05 it marks 3.4 % of a FERPlus Training run's other faces, as 0.6 did with the
   earlier score (3.5 %); 1.6-7.1 % on FERPlus faces with 20 % flips, docs/robustness.md), or
   the two most likely classes are close (second >= ``top2_ratio`` x first, in ``label_distribution``).

Reasons: ``mislabel_score>=T`` (with T), ``confident:<class>`` (step 1 fired), ``knn>=0.6`` (the
neighbours mostly carry another label), ``ambiguity>=T``, ``top2:<a>|<b>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from curate.noise import class_share, confident_other


@dataclass
class FlagRule:
    """Thresholds of the verdict rule. ``None`` = derived from the data as the module docstring says."""

    mislabel_threshold: float | Mapping[str, float] | None = None
    #: how derived thresholds are set: "global" (one quota over all faces) or "per_class"
    quota: str = "global"
    ambiguity_threshold: float = 0.7
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


def top_two_close(dist: np.ndarray, ratio: float) -> np.ndarray:
    """(N,) bool: the second most likely class of each row of ``dist`` (N, C) has at least ``ratio``
    times the probability of the first (the ``top2`` reason)."""
    order = np.sort(dist, axis=1)
    return order[:, -2] >= ratio * order[:, -1]


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
    noise_rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, FlagRule]:
    """Return (verdict (N,) str, reasons (N,) str, a copy of the rule with its resolved thresholds;
    the caller's rule is left as it was). ``noise_probs`` (N, C): what the noise rate is estimated
    from (default ``label_distribution``); ``noise_rows`` (M,) int: the rows it is estimated on (a
    held-out sample whose ``noise_probs`` come from models that did not train on them; default
    every row). The quotas then apply to all N faces."""
    rule = replace(rule) if rule is not None else FlagRule()
    given = np.asarray(given)
    dist = np.asarray(label_distribution, dtype=np.float64)
    n, C = dist.shape
    if len(classes) != C:
        raise ValueError(f"{len(classes)} class names for {C}-class distributions")
    belief = dist if noise_probs is None else np.asarray(noise_probs, dtype=np.float64)
    if belief.shape != dist.shape:
        raise ValueError(f"noise_probs has shape {belief.shape}, label_distribution {dist.shape}")
    other = confident_other(given, belief)
    rows = np.arange(n) if noise_rows is None else np.asarray(noise_rows, dtype=np.int64)
    hit = other >= 0 if noise_rows is None else confident_other(given[rows], belief[rows]) >= 0
    noise = class_share(given[rows], hit, C)
    overall = float(hit.mean()) if len(hit) else 0.0

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
        elif m.any() and noise[y] > 0:
            thresholds[y] = float(np.quantile(mislabel_score[m], 1.0 - noise[y]))
    rule.resolved = {classes[y]: float(thresholds[y]) for y in range(C) if np.isfinite(thresholds[y])}
    rule.noise_rate = {**{classes[y]: float(noise[y]) for y in range(C)}, "overall": overall}
    quota = noise if rule.quota == "per_class" else np.full(C, overall)
    rule.flag_share = {**{classes[y]: float(quota[y]) for y in range(C)}, "overall": overall}

    mis = mislabel_score >= thresholds[given]
    top2 = top_two_close(dist, rule.top2_ratio)
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
