"""bench/synthetic_flips.py: the judge reads a run in its own class order (a CSV run sorts the
names) against the truth's, which is the generator's (FER2013's order, or the classes asked for)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import score_records

from curate import records
from curate.data.synthetic import generate
from curate.data.table import FER2013_CLASSES

spec = importlib.util.spec_from_file_location(
    "synthetic_flips", Path(__file__).resolve().parents[2] / "bench" / "synthetic_flips.py"
)
synthetic_flips = importlib.util.module_from_spec(spec)
spec.loader.exec_module(synthetic_flips)


def _fake_run(
    run: Path, truth: pd.DataFrame, data: Path, classes: list[str], flagged: np.ndarray, made: tuple = FER2013_CLASSES
) -> None:
    """A run whose model is right about every face: given = the noisy label, suggestion = the truth
    (``made``: the truth's classes, in the generator's order)."""
    to_run = np.array([classes.index(c) for c in made])
    given, true = to_run[truth["label"].map(made.index)], to_run[truth["true_label"]]
    probs = np.full((len(truth), len(classes)), 0.02)
    probs[np.arange(len(truth)), given] = 0.88
    frame = score_records.scores_frame(
        truth["path"], given, probs, filepath=[str(data / p) for p in truth["path"]],
        mislabel_score=truth["is_noisy"].astype(float) * 0.9 + 0.05, ambiguity_score=truth["ambiguity"],
        suggested_label=true, verdict=np.where(flagged, "likely_mislabeled", "ok"),
    )  # fmt: skip
    run.mkdir(parents=True)
    (run / "classes.json").write_text(json.dumps(classes))
    meta = {"classes": classes, "cross_fit": 3, "flag_count": {"from": "model", "model": 0.3, "folds": 0.2}}
    records.write_scores(run / "scores.parquet", frame, len(classes), meta)


def test_judge_maps_the_runs_class_order_onto_the_truth(tmp_path: Path) -> None:
    name = "balanced-uniform-0.3"
    generate(70, tmp_path / "data" / name, seed=0, noise_rate=0.3, noise="uniform", splits={"train": 1.0})
    truth = pd.read_csv(tmp_path / "data" / name / "labels.csv")  # labels as names, paths relative
    wrong = truth["is_noisy"].to_numpy()
    happy_correct = ((truth["label"] == "happy") & ~wrong).to_numpy()
    flagged = wrong | happy_correct  # every flip, plus the correct happy faces
    _fake_run(tmp_path / "runs" / name, truth, tmp_path / "data" / name, sorted(FER2013_CLASSES), flagged)

    got = synthetic_flips.judge(tmp_path, name)

    assert got["true_rate"] == pytest.approx(0.3)
    assert got["auroc"] == pytest.approx(1.0) and got["ap"] == pytest.approx(1.0)
    assert got["suggestion_right_on_flips"] == pytest.approx(1.0)  # wrong if the class orders were mixed up
    assert got["flags"]["recall"] == pytest.approx(1.0)
    assert got["flags"]["precision"] == pytest.approx(wrong.sum() / flagged.sum())
    assert got["flags"]["correct_flagged_by_class"]["happy"] == pytest.approx(1.0)
    assert max(v for c, v in got["flags"]["correct_flagged_by_class"].items() if c != "happy") == 0.0
    assert got["flag_count"]["from"] == "model"
    assert got["min_class_p_given"][0] == pytest.approx(0.88)
    assert got["ambiguity_spearman"] == pytest.approx([1.0, 1.0])
    table = synthetic_flips.markdown({"settings": {name: got}}, "title")
    share = flagged.mean()
    assert f"| {name} | 0.30 | 1.000 / 1.000 | {share:.3f} ({share / 0.3:.2f}x) | 0.300 / 0.200 (model) |" in table


def test_judge_names_the_command_that_re_scores_a_run_from_before_the_flag_count_record(tmp_path: Path) -> None:
    name = "balanced-clean"
    generate(30, tmp_path / "data" / name, seed=0, noise_rate=0.0, noise="uniform", splits={"train": 1.0})
    truth = pd.read_csv(tmp_path / "data" / name / "labels.csv")
    run = tmp_path / "runs" / name
    _fake_run(run, truth, tmp_path / "data" / name, sorted(FER2013_CLASSES), np.zeros(len(truth), dtype=bool))
    frame = records.read_scores(run / "scores.parquet")
    records.write_scores(run / "scores.parquet", frame, len(FER2013_CLASSES), {"classes": sorted(FER2013_CLASSES)})
    with pytest.raises(SystemExit, match=r"predate the flag-count record.*curate score .* --force"):
        synthetic_flips.judge(tmp_path, name)


def test_judge_reads_a_set_of_other_classes_and_names_each_class_by_the_run(tmp_path: Path) -> None:
    name = "balanced-uniform-0.2"
    made = ("happy", "sad", "neutral")  # generator order; the run sorts: happy, neutral, sad
    generate(60, tmp_path / "data" / name, seed=1, noise_rate=0.2, noise="uniform", splits={"train": 1.0}, classes=made)
    truth = pd.read_csv(tmp_path / "data" / name / "labels.csv")
    wrong = truth["is_noisy"].to_numpy()
    _fake_run(tmp_path / "runs" / name, truth, tmp_path / "data" / name, sorted(made), wrong, made)

    got = synthetic_flips.judge(tmp_path, name)

    assert got["suggestion_right_on_flips"] == pytest.approx(1.0)
    assert got["flags"]["precision"] == pytest.approx(1.0) and got["flags"]["recall"] == pytest.approx(1.0)
    assert sorted(got["flags"]["correct_flagged_by_class"]) == sorted(made)
    assert got["min_class_p_given"][1] in made
    table = synthetic_flips.markdown({"settings": {name: got}}, "title")
    assert "| labels | happy | neutral | sad |" in table and "angry" not in table


def test_judge_refuses_a_run_of_other_classes_than_the_truths(tmp_path: Path) -> None:
    name = "balanced-clean"
    made = ("happy", "sad", "neutral")
    generate(30, tmp_path / "data" / name, seed=0, noise_rate=0.0, noise="uniform", splits={"train": 1.0}, classes=made)
    truth = pd.read_csv(tmp_path / "data" / name / "labels.csv")
    run_classes = ["happy", "neutral", "sad", "surprise"]
    _fake_run(tmp_path / "runs" / name, truth, tmp_path / "data" / name, run_classes, np.zeros(30, bool), made)
    with pytest.raises(SystemExit, match=r"are not the truth's \['happy', 'sad', 'neutral'\]"):
        synthetic_flips.judge(tmp_path, name)
