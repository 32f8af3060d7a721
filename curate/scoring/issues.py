"""Data issues of a scored table, beside wrong labels: duplicates, leakage, near duplicates,
outliers and class balance (issue 21; measurements in docs/data-issues.md).

Per face: ``duplicate_group`` (exact copies by decoded pixels, ``curate.data.duplicates``),
``near_duplicates`` (faiss neighbours at cosine >= ``near_threshold`` that are not exact copies),
``outlier_score`` in [0, 1] and ``issues``, a list from ``curate.records.ISSUES``:

* ``label`` / ``ambiguous``: the verdict (a face in a conflicting duplicate group is
  ``likely_mislabeled`` with the reason ``conflicting_duplicate``);
* ``duplicate``: the face has an exact copy; ``conflicting_duplicate``: its copies carry other labels;
* ``leak``: an exact copy or a near duplicate lies in another split (for a run on some splits,
  the other splits of the dataset, when given as ``reference``, are checked for exact copies);
* ``near_duplicate``: it has near duplicates; ``outlier``: ``outlier_score >= OUTLIER_FLAG``.

Outlier score: the larger of an embedding score and a pixel score. Embedding: how far the face
is from every class, 1 - the largest cosine between its target embedding and the class means (the
mean L2-normalised embedding of the faces given each class), as a robust z against all scored
faces (median, 1.4826 MAD), mapped by ``sigmoid(2 (z - 3))``: 0.5 at z = 3. (The distance to the
k-th neighbour was measured first and failed: planted outliers are each other's neighbours,
AUROC 0.18; docs/data-issues.md.) A face without a usable embedding scores 1. Pixels: a constant image scores 1, a nearly constant one
(one value covers half the pixels, or standard deviation < 5 grey levels) or one without image
structure (adjacent pixels correlate below 0.3, as noise does) scores 0.9.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from curate.data.balance import ClassBalance, class_balance
from curate.data.duplicates import DuplicateReport, PixelFacts, find_duplicates

#: cosine similarity (target embedding) from which two faces are near duplicates (docs/data-issues.md)
NEAR_DUPLICATE_COSINE = 0.995
#: outlier_score from which a face gets the ``outlier`` issue
OUTLIER_FLAG = 0.5
#: robust z of the neighbour distance where the embedding score is 0.5
OUTLIER_Z = 3.0
CONSTANT_STD = 1.0
NEAR_CONSTANT_STD = 5.0
NEAR_CONSTANT_SHARE = 0.5
NO_STRUCTURE_SMOOTHNESS = 0.3
CONFLICT_REASON = "conflicting_duplicate"


@dataclass
class DataIssues:
    """Per-face columns (N rows) and the dataset summary of :func:`find_issues`."""

    duplicate_group: np.ndarray
    near_duplicates: list[list[str]]
    outlier_score: np.ndarray
    issues: list[list[str]]
    verdict: np.ndarray
    reasons: np.ndarray
    duplicates: DuplicateReport
    balance: ClassBalance
    near_threshold: float
    near_pairs: int = 0
    near_leakage: dict[str, int] = field(default_factory=dict)
    pixel_flags: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """{issue: faces with it}."""
        from curate.records import ISSUES

        flat = pd.Series([i for row in self.issues for i in row], dtype=object).value_counts()
        return {i: int(flat.get(i, 0)) for i in ISSUES}

    def to_dict(self) -> dict[str, Any]:
        return {
            "issues": self.counts(),
            "duplicates": self.duplicates.to_dict(),
            "near_duplicates": {"cosine": self.near_threshold, "pairs": self.near_pairs, "leakage": self.near_leakage},
            "outliers": {"flag": OUTLIER_FLAG, "faces": int((self.outlier_score >= OUTLIER_FLAG).sum()),
                         "pixel_checks": self.pixel_flags},
            "class_balance": self.balance.to_dict(),
        }  # fmt: skip

    def summary_lines(self) -> list[str]:
        lines = ["data issues: " + ", ".join(f"{k} {v}" for k, v in self.counts().items())]
        lines += self.duplicates.summary_lines()
        lines.append(
            f"near duplicates (cosine >= {self.near_threshold:g}, not exact copies): {self.near_pairs:,} pairs"
        )
        lines += [f"  across {pair}: {n:,} pairs" for pair, n in self.near_leakage.items()]
        flags = ", ".join(f"{k} {v}" for k, v in self.pixel_flags.items() if v) or "none"
        lines.append(
            f"outliers (outlier_score >= {OUTLIER_FLAG:g}): {int((self.outlier_score >= OUTLIER_FLAG).sum()):,}"
            f" faces; pixel checks: {flags}"
        )
        lines += self.balance.summary_lines()
        return lines


def pixel_outlier_score(facts: Sequence[PixelFacts]) -> tuple[np.ndarray, np.ndarray]:
    """((N,) pixel score, (N,) kind: "" | constant | nearly_constant | no_structure)."""
    std = np.array([f.std for f in facts], dtype=np.float64)
    share = np.array([f.mode_share for f in facts], dtype=np.float64)
    smooth = np.array([f.smoothness for f in facts], dtype=np.float64)
    kind = np.full(len(facts), "", dtype=object)
    kind[smooth < NO_STRUCTURE_SMOOTHNESS] = "no_structure"
    kind[(share >= NEAR_CONSTANT_SHARE) | (std < NEAR_CONSTANT_STD)] = "nearly_constant"
    kind[std < CONSTANT_STD] = "constant"
    score = np.select([kind == "constant", kind != ""], [1.0, 0.9], 0.0)
    return score, kind


def class_distance(emb: np.ndarray, means: np.ndarray, *, chunk: int = 65_536) -> np.ndarray:
    """(N,) 1 - the largest cosine between each row of ``emb`` and the (C, D) class ``means``
    (NaN rows, absent classes, ignored); NaN for rows without a usable (finite, non-zero) embedding."""
    m = np.asarray(means, dtype=np.float32)
    m = m[np.isfinite(m).all(axis=1)]
    m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
    out = np.full(len(emb), np.nan)
    for s in range(0, len(emb), chunk):
        e = np.asarray(emb[s : s + chunk], dtype=np.float32)
        norm = np.linalg.norm(e, axis=1)
        ok = np.isfinite(e).all(axis=1) & (norm > 0)
        if ok.any() and len(m):
            out[s : s + chunk][ok] = 1.0 - ((e[ok] / norm[ok, None]) @ m.T).max(axis=1)
    return out


def embedding_outlier_score(distance: np.ndarray) -> np.ndarray:
    """(N,) in [0, 1] from a (N,) distance (NaN = unknown, scores 1): robust z, sigmoid(2 (z - 3))."""
    mean = np.asarray(distance, dtype=np.float64)
    known = mean[np.isfinite(mean)]
    if len(known) < 3:
        return np.where(np.isfinite(mean), 0.0, 1.0)
    med = np.median(known)
    mad = 1.4826 * np.median(np.abs(known - med))
    z = (mean - med) / max(mad, 1e-6)
    score = 1.0 / (1.0 + np.exp(-2.0 * (z - OUTLIER_Z)))
    return np.where(np.isfinite(mean), score, 1.0)


def find_issues(
    table: pd.DataFrame,
    facts: Sequence[PixelFacts],
    knn_indices: np.ndarray,
    knn_sims: np.ndarray,
    verdict: np.ndarray,
    reasons: np.ndarray,
    classes: list[str],
    *,
    distance: np.ndarray | None = None,
    near_threshold: float = NEAR_DUPLICATE_COSINE,
    batch_size: int = 64,
    reference: pd.DataFrame | None = None,
    reference_facts: Sequence[PixelFacts] | None = None,
) -> DataIssues:
    """Data issues of the N faces of ``table`` (its rows, in order, match ``facts``, the neighbour
    arrays (N, k; -1 = none) and ``verdict``/``reasons`` from ``curate.flags.decide``).
    ``distance``: (N,) :func:`class_distance` of the embeddings (None: no embedding score).
    ``reference``: other rows of the dataset (e.g. the splits a ``--split`` run left out) whose
    exact copies among the scored faces count as duplicates and leaks."""
    n = len(table)
    ids = table["sample_id"].astype(str).to_numpy()
    splits = table["split"].astype(str).to_numpy()
    labels = table["label"].to_numpy()
    digests = [f.digest for f in facts]
    all_splits, all_labels, all_ids = list(splits), list(labels), list(ids)
    if reference is not None and reference_facts is not None and len(reference):
        digests += [f.digest for f in reference_facts]
        all_splits += list(reference["split"].astype(str))
        all_labels += list(reference["label"])
        all_ids += list(reference["sample_id"].astype(str))
    dup = find_duplicates(digests, np.asarray(all_labels), all_splits, all_ids, classes)
    group = dup.group[:n]
    conflicting_groups = set(dup.groups.loc[dup.groups["conflicting"], "group"])
    cross_groups = set(dup.groups.loc[dup.groups["cross_split"], "group"])
    conflicting = np.isin(group, list(conflicting_groups)) & (group >= 0)
    exact_leak = np.isin(group, list(cross_groups)) & (group >= 0)

    idx = np.asarray(knn_indices)
    sims = np.asarray(knn_sims, dtype=np.float32)
    found = idx >= 0
    same_group = found & (group[:, None] >= 0) & (group[np.maximum(idx, 0)] == group[:, None])
    near = found & ~same_group & (sims >= near_threshold)
    near_lists = [list(ids[idx[i][near[i]]]) for i in range(n)]
    near_leak = np.zeros(n, dtype=bool)
    pairs: set[tuple[int, int]] = set()
    for i, j in zip(*np.nonzero(near)):
        a, b = int(i), int(idx[i, j])
        pairs.add((min(a, b), max(a, b)))
        if splits[a] != splits[b]:
            near_leak[a] = near_leak[b] = True
    split_order = {s: k for k, s in enumerate(dict.fromkeys(splits))}
    near_leakage: dict[str, int] = {}
    for a, b in sorted(pairs):
        if splits[a] != splits[b]:
            x, y = sorted((splits[a], splits[b]), key=split_order.get)
            near_leakage[f"{x} | {y}"] = near_leakage.get(f"{x} | {y}", 0) + 1

    pixel_score, kind = pixel_outlier_score(facts)
    emb_score = np.zeros(n) if distance is None else embedding_outlier_score(distance)
    outlier = np.maximum(pixel_score, emb_score).astype(np.float32)

    verdict = np.asarray(verdict, dtype=object).copy()
    reasons = np.asarray(reasons, dtype=object).copy()
    verdict[conflicting] = "likely_mislabeled"
    for i in np.flatnonzero(conflicting):
        parts = [r for r in str(reasons[i]).split(";") if r]
        reasons[i] = ";".join([*parts, CONFLICT_REASON] if CONFLICT_REASON not in parts else parts)
    issues: list[list[str]] = []
    for i in range(n):
        row = []
        if verdict[i] == "likely_mislabeled":
            row.append("label")
        elif verdict[i] == "ambiguous":
            row.append("ambiguous")
        if group[i] >= 0:
            row.append("duplicate")
        if conflicting[i]:
            row.append("conflicting_duplicate")
        if exact_leak[i] or near_leak[i]:
            row.append("leak")
        if near_lists[i]:
            row.append("near_duplicate")
        if outlier[i] >= OUTLIER_FLAG:
            row.append("outlier")
        issues.append(row)
    return DataIssues(
        duplicate_group=group.astype(np.int64),
        near_duplicates=near_lists,
        outlier_score=outlier,
        issues=issues,
        verdict=verdict,
        reasons=reasons,
        duplicates=dup,
        balance=class_balance(labels, classes, batch_size=batch_size),
        near_threshold=float(near_threshold),
        near_pairs=len(pairs),
        near_leakage=near_leakage,
        pixel_flags={k: int((kind == k).sum()) for k in ("constant", "nearly_constant", "no_structure")},
    )
