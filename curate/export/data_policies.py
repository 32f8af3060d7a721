"""Data policies (issue 21): leave out duplicate copies, leaked faces and outliers at export.

They run after the label policy (:mod:`curate.export.policies`) on the faces it keeps, in this
order, each on the faces still kept:

==================  ===================================================================================
option              faces left out (action)
==================  ===================================================================================
``drop_outliers``   ``outlier_score >= drop_outliers`` -> ``drop_outlier``; not faces a curator
                    decided on (relabel, keep, accept_suggestion): the curator has looked at them
``leaks="drop"``    faces with the ``leak`` issue (an exact copy or a near duplicate in another split)
                    whose split is in ``leak_splits`` (empty: every split) -> ``drop_leak``;
                    curator decisions do not exempt a face, a leak is a fact about the split
``dedupe``          ``keep-one``: in each exact-duplicate group (``duplicate_group`` >= 0), every
                    face but one -> ``drop_duplicate``. The face kept: one a curator decided on,
                    else the lowest ``mislabel_score``, else the first in the source. Faces
                    already left out (curator ``exclude``, a ``drop``, the two options above) do
                    not compete, so a curator who excluded all copies but one keeps that one.
==================  ===================================================================================

``--leaks drop --leak-split Training --dedupe keep-one`` therefore removes the training copies
of faces that leak into the test splits and keeps one copy of each remaining group.

The per-face columns come from the source: a scores file's ``duplicate_group``,
``outlier_score`` and ``issues`` columns, or the same fields of a FiftyOne dataset (written by
``curate load``; else the scores file it was loaded from). A data policy on a source without
them is an error. The audit sidecar gets ``data_policy``: the options, and the sample ids left out
per action (and, for keep-one, the face kept per group).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from curate.export.safety import ExportError
from curate.export.source import DecisionTable
from curate.records import ISSUE_COLUMNS, read_scores

if TYPE_CHECKING:
    from curate.export.policies import CleanedLabels

DEDUPE = ("keep-all", "keep-one")
LEAKS = ("keep", "drop")
#: action -> how the summary names the clean label of a face it left out
DROPPED_AS = {"drop_outlier": "(outlier)", "drop_leak": "(leak)", "drop_duplicate": "(duplicate)"}
DATA_ACTIONS = tuple(DROPPED_AS)
#: curator actions that say the curator looked at the face and kept it
_CURATOR_KEPT = ("keep", "relabel", "accept_suggestion")
_FIELDS = ("duplicate_group", "outlier_score", "issues")


@dataclass(frozen=True)
class DataPolicy:
    """What to leave out beside the label policy (see the module docstring); the default leaves
    out nothing."""

    dedupe: str = "keep-all"
    leaks: str = "keep"
    leak_splits: tuple[str, ...] = ()
    drop_outliers: float | None = None

    @property
    def active(self) -> bool:
        return self.dedupe != "keep-all" or self.leaks != "keep" or self.drop_outliers is not None

    def check(self) -> None:
        """Raise :class:`ExportError` for options that do not fit together."""
        if self.dedupe not in DEDUPE:
            raise ExportError(f"dedupe must be one of {', '.join(DEDUPE)}, not {self.dedupe!r}")
        if self.leaks not in LEAKS:
            raise ExportError(f"leaks must be one of {', '.join(LEAKS)}, not {self.leaks!r}")
        if self.leak_splits and self.leaks != "drop":
            raise ExportError("--leak-split names the splits whose leaked faces are dropped; add --leaks drop")
        if self.drop_outliers is not None and not 0.0 <= self.drop_outliers <= 1.0:
            raise ExportError(f"the outlier threshold must lie in [0, 1], not {self.drop_outliers}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "leak_splits": list(self.leak_splits) or None}


@dataclass
class DataPolicyResult:
    """What :func:`apply_data_policy` left out: sample ids per action, the face kept per
    duplicate group (keep-one), and notes for the summary."""

    policy: DataPolicy
    dropped: dict[str, list[str]] = field(default_factory=dict)
    kept_per_group: dict[int, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def audit(self) -> dict[str, Any]:
        """The sidecar's ``data_policy`` entry."""
        return {
            "data_policy": {
                **self.policy.to_dict(),
                "dropped": {action: self.dropped.get(action, []) for action in DATA_ACTIONS},
                "kept_per_group": {str(g): sid for g, sid in sorted(self.kept_per_group.items())},
            }
        }


def apply_data_policy(table: DecisionTable, cleaned: CleanedLabels, policy: DataPolicy) -> DataPolicyResult:
    """Leave out of ``cleaned`` (in place: action, clean_label -1, decided_by auto, zero target)
    the faces ``policy`` removes; ``table`` is the decisions table ``cleaned`` was made from."""
    from curate.export.policies import REMOVED

    policy.check()
    result = DataPolicyResult(policy)
    if not policy.active:
        return result
    issues = issue_columns(table)
    f = cleaned.faces
    action = f["action"].to_numpy(dtype=object).copy()
    curated = table.faces["curator_action"].isin(_CURATOR_KEPT).to_numpy()
    split = f["split"].astype(str).to_numpy()

    def kept() -> np.ndarray:
        return ~np.isin(action, list(REMOVED))

    if policy.drop_outliers is not None:
        score = issues["outlier_score"].to_numpy(np.float32)  # compared as stored (float32): 0.9 >= 0.9
        hit = kept() & ~curated & (score >= np.float32(policy.drop_outliers))
        action[hit] = "drop_outlier"
    if policy.leaks == "drop":
        unknown = sorted(set(policy.leak_splits) - set(split))
        if unknown:
            raise ExportError(
                f"--leak-split {', '.join(unknown)}: no such split (splits: {', '.join(sorted(set(split)))})"
            )
        leaked = np.array(["leak" in list(i) for i in issues["issues"]], dtype=bool)
        in_split = np.isin(split, list(policy.leak_splits)) if policy.leak_splits else np.ones(len(f), bool)
        action[kept() & leaked & in_split] = "drop_leak"
    if policy.dedupe == "keep-one":
        group = issues["duplicate_group"].to_numpy()
        rank = pd.DataFrame({
            "group": group, "uncurated": ~curated, "score": f["mislabel_score"].to_numpy(dtype=float),
            "row": np.arange(len(f)),
        })[kept() & (group >= 0)].sort_values(["group", "uncurated", "score", "row"])  # fmt: skip
        first = ~rank["group"].duplicated()
        result.kept_per_group = {
            int(g): str(f["sample_id"].iat[r]) for g, r in zip(rank["group"][first], rank["row"][first])
        }
        action[rank["row"][~first].to_numpy()] = "drop_duplicate"

    changed = action != f["action"].to_numpy(dtype=object)
    if changed.any():
        cleaned.faces = f.assign(
            action=action,
            clean_label=np.where(changed, -1, f["clean_label"].to_numpy()).astype("int64"),
            decided_by=np.where(changed, "auto", f["decided_by"].to_numpy(dtype=object)),
        )
        cleaned.target[changed] = 0.0
    ids = cleaned.faces["sample_id"].astype(str).to_numpy()
    result.dropped = {a: ids[action == a].tolist() for a in DATA_ACTIONS if (action == a).any()}
    result.notes.append(_note(policy, result))
    return result


def issue_columns(table: DecisionTable) -> pd.DataFrame:
    """``duplicate_group``, ``outlier_score`` and ``issues`` of the table's faces, in its order.
    Raises :class:`ExportError` when the source has none."""
    ids = table.faces["sample_id"]
    origin = table.origin
    if origin["kind"] == "fiftyone":
        frame = _from_fiftyone(origin["name"])
        where = f"fiftyone:{origin['name']}"
        if frame is None and origin.get("scores"):
            frame, where = _from_scores(origin["scores"]), origin["scores"]
    else:
        frame, where = _from_scores(origin["path"]), origin["path"]
    if frame is None:
        raise ExportError(
            f"{where}: no data-issue columns ({', '.join(_FIELDS)}): the scores were written before"
            " them; score again (curate score / curate run) and load them again to use --dedupe,"
            " --leaks or --drop-outliers"
        )
    frame = frame.drop_duplicates("sample_id").set_index("sample_id")
    missing = ids[~ids.isin(frame.index)]
    if len(missing):
        raise ExportError(f"{where}: no data-issue columns for sample {missing.iloc[0]!r}; score it again")
    out = frame.loc[ids.to_numpy()].reset_index(drop=True)
    out["duplicate_group"] = out["duplicate_group"].fillna(-1).astype("int64")
    out["outlier_score"] = out["outlier_score"].fillna(0.0).astype(float)
    out["issues"] = [list(i) if i is not None else [] for i in out["issues"]]
    return out


def _from_scores(path: str | os.PathLike[str]) -> pd.DataFrame | None:
    if not os.path.isfile(path) or not set(_FIELDS) <= set(pq.read_schema(path).names):
        return None
    return read_scores(path, columns=["sample_id", *(c for c in ISSUE_COLUMNS if c in _FIELDS)])


def _from_fiftyone(name: str) -> pd.DataFrame | None:
    import fiftyone as fo

    dataset = fo.load_dataset(name)
    if not set(_FIELDS) <= set(dataset.get_field_schema()):
        return None
    keys, *values = dataset.values(["sample_key", *_FIELDS])
    return pd.DataFrame({"sample_id": keys, **dict(zip(_FIELDS, values))})


def _note(policy: DataPolicy, result: DataPolicyResult) -> str:
    n = {a: len(result.dropped.get(a, [])) for a in DATA_ACTIONS}
    parts = []
    if policy.drop_outliers is not None:
        parts.append(f"{n['drop_outlier']} outlier(s) with outlier_score >= {policy.drop_outliers:g} left out")
    if policy.leaks == "drop":
        where = ", ".join(policy.leak_splits) if policy.leak_splits else "every split"
        parts.append(f"{n['drop_leak']} leaked face(s) left out ({where})")
    if policy.dedupe == "keep-one":
        parts.append(
            f"{n['drop_duplicate']} duplicate copies left out, one face kept of each of"
            f" {len(result.kept_per_group)} duplicate group(s)"
        )
    return "data policy: " + "; ".join(parts)
