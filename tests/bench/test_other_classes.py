"""bench/other_classes.py: the crowd-labelled sets of other classes hold only faces of their classes,
exactly the flips asked for, and a truth that bench/synthetic_flips.py's judge reads."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))  # other_classes imports its sibling synthetic_flips, as `python bench/...` does
spec = importlib.util.spec_from_file_location("other_classes", BENCH / "other_classes.py")
other_classes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(other_classes)

VOTES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")


def _ferplus(n_each: int) -> pd.DataFrame:
    """A FERPlus-like labels.csv: for each vote column, n_each Training faces with 8 of 10 votes for
    it (2 for neutral, or for happiness when the plurality is neutral), plus PublicTest and tied faces."""
    rows = []
    for i, col in enumerate([c for c in VOTES if c != "NF"] * n_each):
        votes = dict.fromkeys(VOTES, 0)
        votes[col] += 8
        votes["happiness" if col == "neutral" else "neutral"] += 2
        rows.append({"path": f"images/row{i:05d}.png", "split": "Training", "ferplus_majority": col, **votes})
    tie = dict.fromkeys(VOTES, 0) | {"anger": 5, "sadness": 5}
    rows += [{"path": "images/tie.png", "split": "Training", "ferplus_majority": "tie", **tie}]
    rows += [dict(rows[0], path="images/public.png", split="PublicTest")]
    return pd.DataFrame(rows)


def test_eight_classes_with_contempt_flipped_uniformly(tmp_path: Path) -> None:
    _ferplus(10).to_csv(tmp_path / "labels.csv", index=False)
    folder = tmp_path / "out" / "data" / "eight"

    other_classes.write_set(tmp_path / "labels.csv", folder, other_classes.SETS["eight"], faces=60, rate=0.2)

    truth = pd.read_csv(folder / "labels.csv")
    names = [c.removeprefix("votes_") for c in truth.columns if c.startswith("votes_")]
    assert names == ["neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt"]
    assert len(truth) == 60 and truth["is_noisy"].sum() == 12  # round(0.2 * 60) flips, no more
    assert not any(s in p for p in truth["path"] for s in ("tie", "public", "row00007", "row00008"))  # unknown at 7
    true_names = np.array(names)[truth["true_label"]]
    assert ((truth["label"] != true_names) == truth["is_noisy"]).all()  # a flip always moves to another class
    assert set(truth["label"]) <= set(names) and "contempt" in set(true_names)
    assert truth["ambiguity"].between(0.0, 1.0).all() and truth["ambiguity"].nunique() == 1  # 8 + 2 votes each
    assert all(Path(p).is_absolute() for p in truth["path"])
    listed = pd.read_csv(folder / "list.csv")
    assert list(listed.columns) == ["path", "label"]  # the run sees no truth
    assert listed.equals(truth[["path", "label"]])


def test_a_written_set_is_kept(tmp_path: Path) -> None:
    _ferplus(5).to_csv(tmp_path / "labels.csv", index=False)
    folder = tmp_path / "four"
    other_classes.write_set(tmp_path / "labels.csv", folder, other_classes.SETS["four"], faces=12, rate=0.25)
    first = pd.read_csv(folder / "labels.csv")
    assert set(first["label"]) <= {"happy", "neutral", "sad", "surprise"}
    other_classes.write_set(tmp_path / "labels.csv", folder, other_classes.SETS["four"], faces=12, rate=0.5)
    assert pd.read_csv(folder / "labels.csv").equals(first)
    assert first["is_noisy"].mean() == pytest.approx(0.25)
