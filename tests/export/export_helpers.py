"""Helpers for the export tests: tiny images, hand-made scores files, a scenario with known decisions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import score_records
from PIL import Image

from curate.records import write_scores

CLASSES = ["a", "b", "c"]
CURATION_LOG = {
    "f4": [{"action": "relabel", "from": "b", "to": "a", "when": "2024-05-01T10:00:00", "by": "ann"}],
    "f5": [{"action": "relabel", "from": "c", "to": "a", "when": "2024-05-01T10:01:00", "by": "ann"},
           {"action": "keep", "from": "c", "to": "c", "when": "2024-05-02T09:00:00", "by": "bob"}],
    "f6": [{"action": "exclude", "from": "a", "to": None, "when": "2024-05-01T10:02:00", "by": "ann"}],
    "f8": [{"action": "accept_suggestion", "from": "a", "to": "b", "when": "2024-05-01T10:03:00", "by": "bob"}],
}  # fmt: skip
#: sample -> (clean_label field, excluded tag), as the FiftyOne App leaves them
CURATION_STATE = {"f4": ("a", False), "f5": ("c", False), "f6": (None, True), "f8": ("b", False)}
#: id, given, verdict, label_distribution
SCENARIO = [
    ("f0", "a", "ok", [0.90, 0.05, 0.05]),
    ("f1", "a", "likely_mislabeled", [0.05, 0.90, 0.05]),
    ("f2", "b", "likely_mislabeled", [0.50, 0.30, 0.20]),
    ("f3", "c", "ambiguous", [0.10, 0.45, 0.45]),
    ("f4", "b", "likely_mislabeled", [0.05, 0.05, 0.90]),
    ("f5", "c", "ambiguous", [0.10, 0.50, 0.40]),
    ("f6", "a", "ok", [0.80, 0.10, 0.10]),
    ("f7", "b", "likely_mislabeled", [0.10, 0.10, 0.80]),
    ("f8", "a", "likely_mislabeled", [0.30, 0.60, 0.10]),
]


def make_image(path: Path, color: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), color).save(path)
    return path


def scores_frame(
    ids: Sequence[str],
    filepaths: Sequence[str],
    given: Sequence[int],
    dist: np.ndarray,
    verdict: Sequence[str],
    split: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Score records from hand-made arrays (suggested = argmax, mislabel = 1 - p[given])."""
    n = len(ids)
    return score_records.scores_frame(
        ids, given, dist, filepath=[str(p) for p in filepaths], split=list(split) if split is not None else "train",
        uncertainty=np.full(n, 0.5, np.float32), ambiguity_score=np.full(n, 0.3, np.float32), verdict=list(verdict),
    )  # fmt: skip


def save_scores(path: Path, frame: pd.DataFrame, classes: Sequence[str], **meta: object) -> Path:
    return write_scores(path, frame, len(classes), {"classes": list(classes), "model": "runs/m/model.pt", **meta})


def auto_scores(table: pd.DataFrame, path: Path, **meta: object) -> Path:
    """Scores for a LabelTable in a fixed pattern by row i: i%4==1 confident other class (auto accepts),
    2 unconfident likely-mislabeled (auto drops), 3 ambiguous (auto keeps soft), 0 ok."""
    classes = table.attrs["classes"]
    c, n = len(classes), len(table)
    given = table["label"].to_numpy()
    dist = np.zeros((n, c), np.float32)
    for i in range(n):
        kind, other = i % 4, (given[i] + 1) % c
        if kind == 3:
            dist[i, given[i]], dist[i, other] = 0.55, 0.45
        else:
            p, top = {0: (0.9, given[i]), 1: (0.9, other), 2: (0.5, other)}[kind]
            dist[i] = (1 - p) / (c - 1)
            dist[i, top] = p
    verdict = [["ok", "likely_mislabeled", "likely_mislabeled", "ambiguous"][i % 4] for i in range(n)]
    frame = scores_frame(table["sample_id"], table["filepath"], given, dist, verdict, table["split"])
    return save_scores(path, frame, classes, dataset=table.attrs["source"], **meta)


def expected_auto(table: pd.DataFrame) -> pd.DataFrame:
    """The kept faces of ``auto_scores`` under policy auto: sample_id, filepath, split, label (clean id)."""
    c = len(table.attrs["classes"])
    rows = []
    for i, row in enumerate(table.itertuples()):
        if i % 4 == 2:
            continue
        label = (row.label + 1) % c if i % 4 == 1 else row.label
        rows.append((row.sample_id, row.filepath, row.split, label))
    return pd.DataFrame(rows, columns=["sample_id", "filepath", "split", "label"])


def scenario_curations() -> dict:
    """CURATION_LOG and CURATION_STATE as :class:`curate.export.Curation` objects."""
    from curate.export import Curation

    return {
        sid: Curation(tuple(CURATION_LOG[sid]), label, excluded) for sid, (label, excluded) in CURATION_STATE.items()
    }


_CURATED = {"f4": ("a", "relabel", "curator"), "f5": ("c", "keep", "curator"),
            "f6": (None, "exclude", "curator"), "f8": ("b", "accept_suggestion", "curator")}  # fmt: skip
#: policy -> sample -> (clean label, action, decided_by) for SCENARIO with the curations
EXPECTED = {
    "decisions": {"f0": ("a", "keep", "auto"), "f1": ("a", "review", "auto"), "f2": ("b", "review", "auto"),
                  "f3": ("c", "review", "auto"), "f7": ("b", "review", "auto"), **_CURATED},
    "auto": {"f0": ("a", "keep", "auto"), "f1": ("b", "accept_suggestion", "auto"), "f2": (None, "drop", "auto"),
             "f3": ("c", "soft", "auto"), "f7": ("c", "accept_suggestion", "auto"), **_CURATED},
    "soft": {"f0": ("a", "soft", "auto"), "f1": ("a", "soft", "auto"), "f2": ("b", "soft", "auto"),
             "f3": ("c", "soft", "auto"), "f7": ("b", "soft", "auto"), **_CURATED},
}  # fmt: skip


def results(cleaned) -> dict:
    """sample -> (clean label name or None, action, decided_by) of a CleanedLabels."""
    f = cleaned.faces
    names = [*cleaned.classes, None]
    return {s: (names[c], a, d) for s, c, a, d in zip(f["sample_id"], f["clean_label"], f["action"], f["decided_by"])}
