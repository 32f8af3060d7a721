"""The flip suite: settings with known flips, the detectors on each, the summary."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from curate.benchmark.flip_suite import FlipSuiteConfig, confusion_map, flip_to_confused, run_flip_suite, write_settings
from curate.cli import main


def test_confusion_map_picks_the_commonest_other_label_and_never_the_class_itself():
    crowd = np.array([0, 0, 0, 0, 1, 1, 2])
    fer = np.array([0, 2, 2, 1, 0, 1, 2])  # crowd 0: given 2 twice, 1 once; crowd 1: given 0; crowd 2: never other
    assert confusion_map(crowd, fer, 3).tolist() == [2, 0, 0]


def test_flip_to_confused_moves_the_rate_to_the_mapped_class():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 100)
    noisy = flip_to_confused(labels, 0.2, np.array([2, 0, 0]), rng)
    moved = noisy != labels
    assert moved.sum() == 60
    assert (noisy[moved] == np.array([2, 0, 0])[labels[moved]]).all()


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="kinds"):
        FlipSuiteConfig(labels_csv=tmp_path / "x.csv", out=tmp_path, kinds=("random",))
    with pytest.raises(ValueError, match="rates"):
        FlipSuiteConfig(labels_csv=tmp_path / "x.csv", out=tmp_path, rates=(0.0,))
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\n")
    res = CliRunner().invoke(
        main, ["bench", str(labels), "--suite", "flips", "--flip-cross-fit", "1", "--out", str(tmp_path)]
    )
    assert res.exit_code != 0 and "cross-fitting needs at least 2 folds (0: off), not 1" in res.output


@pytest.mark.realdata
def test_settings_share_faces_and_flip_exactly_their_rate(shared_data, tmp_path):
    cfg = FlipSuiteConfig(labels_csv=shared_data / "ferplus" / "labels.csv", out=tmp_path, faces=700,
                          rates=(0.1, 0.4), progress=False)  # fmt: skip
    written = dict(write_settings(cfg))
    assert list(written) == ["clean", "uniform-0.1", "uniform-0.4", "classdep-0.1", "classdep-0.4"]
    tables = {name: pd.read_csv(folder / "train.csv") for name, folder in written.items()}
    paths = tables["clean"]["path"]
    for name, t in tables.items():
        assert t["path"].equals(paths), name  # the same faces in every setting
        rate = 0.0 if name == "clean" else float(name.split("-")[1])
        assert t["label_disagrees"].mean() == pytest.approx(rate, abs=1 / 700)
        crowd = np.asarray(["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"])[t["ferplus_label"]]
        assert ((t["label"] != crowd) == (t["label_disagrees"] == 1)).all()
    moved = tables["classdep-0.4"][tables["classdep-0.4"]["label_disagrees"] == 1]
    assert moved.groupby("ferplus_label")["label"].nunique().max() == 1  # one confused class per crowd class
    assert set(pd.read_csv(written["clean"] / "eval.csv")["path"].str.contains("FER2013Valid")) == {True}
    assert not any("FER2013Test" in p for p in paths)


@pytest.mark.realdata
@pytest.mark.slow
def test_tiny_flip_suite_runs_every_detector_and_resumes(shared_data, tmp_path):
    cfg = FlipSuiteConfig(labels_csv=shared_data / "ferplus" / "labels.csv", out=tmp_path / "flips", faces=240,
                          rates=(0.3,), kinds=("classdep",), epochs=1, folds=2, source_faces=150,
                          cross_fit=2, progress=False)  # fmt: skip
    lines: list[str] = []
    record = run_flip_suite(cfg, lines.append)
    assert list(record["settings"]) == ["clean", "classdep-0.3"]
    clean, noisy = record["settings"]["clean"], record["settings"]["classdep-0.3"]
    assert clean["true_rate"] == 0 and clean["auroc"] == {}
    assert noisy["true_rate"] == pytest.approx(0.3, abs=0.01)
    assert {"DMUE mislabel_score (ours)", "cleanlab self_confidence + find_label_issues",
            "FiftyOne Brain mistakenness", "plain CE loss (in-sample)"} <= set(noisy["auroc"])  # fmt: skip
    flags = noisy["dmue_flags"]
    assert flags["share_over_true"] == pytest.approx(flags["share"] / 0.3, rel=0.05)
    assert flags["worst_class_correct_flagged"] == max(flags["correct_flagged_by_class"].values())
    assert set(noisy["dmue_mean_p_given"]) <= {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
    assert 0 <= noisy["accuracy"]["dmue"] <= 1 and 0 <= noisy["accuracy"]["ce"] <= 1
    source = pd.read_csv(cfg.out / "source" / "train.csv")
    assert len(source) == 150 and not set(source["path"]) & set(pd.read_csv(cfg.out / "clean" / "train.csv")["path"])
    assert (cfg.out / "source" / "run" / "model.pt").exists()
    assert "init_from: null" not in (cfg.out / "classdep-0.3" / "dmue_init" / "run" / "config.yaml").read_text()
    assert clean["init"]["auroc"] is None and 0 <= noisy["init"]["auroc"] <= 1
    warm = noisy["init"]["flags"]
    assert warm["worst_class_correct_flagged"] == max(warm["correct_flagged_by_class"].values())
    for stage, key in (("dmue", "cross_fit"), ("dmue_init", "init_cross_fit")):
        folded = cfg.out / "clean" / f"{stage}_cf2" / "run"  # clean: 2 disgust faces, so the folds train
        assert len(json.loads((folded / "folds" / "folds.json").read_text())["fold"]) == 240
        assert clean[key]["fold_models"] == 2 and clean[key]["auroc"] is None
        reused = [torch.load(d / "checkpoints" / "last.pt", weights_only=True)["model"]
                  for d in (folded, folded.parents[1] / stage / "run")]  # fmt: skip
        assert all(torch.equal(reused[0][k], reused[1][k]) for k in reused[0])  # the full model was not retrained
        # classdep-0.3 keeps 1 disgust face: cross-fitting is skipped there, and the table says so
        assert (
            noisy[key]["fold_models"] == 0
            and not (cfg.out / "classdep-0.3" / f"{stage}_cf2" / "run" / "folds").exists()
        )
        same = noisy["auroc"]["DMUE mislabel_score (ours)"] if stage == "dmue" else noisy["init"]["auroc"]
        assert noisy[key]["auroc"] == pytest.approx(same, abs=1e-9)  # the count may change, not the ranking
    text = (cfg.out / "flips.md").read_text()
    assert "| classdep-0.3 (no folds: a class has fewer than 2 faces) |" in text
    assert "DMUE from scratch, the flag count from 2 cross-fitted fold models" in text
    assert "DMUE started with --init-from, the flag count from 2 cross-fitted fold models" in text
    assert "| clean | 0.000 |" in text and "| classdep-0.3 |" in text
    assert "--init-from a model trained on 150 other Training faces" in text
    assert json.loads((cfg.out / "flips.json").read_text())["settings"].keys() == record["settings"].keys()
    again: list[str] = []
    assert run_flip_suite(cfg, again.append)["settings"] == record["settings"]
    assert sum("cached" in line for line in again) == 2 * 8  # every stage of both settings read back
