"""The benchmark's pieces on hand-made data: splits, flips, folds, the baselines' detectors and the
report's metrics (which must equal curate.metrics on the same arrays)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from curate import metrics
from curate.benchmark import detectors, report
from curate.benchmark.models import stratified_folds
from curate.benchmark.splits import flip_labels, make_splits, stratified_sample


def test_flip_labels_moves_exactly_the_rate_to_other_classes():
    labels = np.repeat(np.arange(7), 100)
    flipped = flip_labels(labels, 0.2, 7, np.random.default_rng(0))
    assert np.sum(flipped != labels) == 140
    assert flipped.min() >= 0 and flipped.max() < 7


def test_stratified_folds_and_sample_keep_class_shares():
    labels = np.array([0] * 90 + [1] * 30 + [2] * 9)
    folds = stratified_folds(labels, 3, seed=0)
    for f in range(3):
        counts = np.bincount(labels[folds == f], minlength=3)
        np.testing.assert_array_equal(counts, [30, 10, 3])
    rows = stratified_sample(labels, 43, np.random.default_rng(0))
    assert len(np.unique(rows)) == len(rows)
    np.testing.assert_array_equal(np.bincount(labels[rows]), [30, 10, 3])


def _labels_csv(tmp_path, splits):
    df = pd.DataFrame({"path": [f"img/{i}.png" for i in range(len(splits))], "split": splits,
                       "fer2013_label": np.arange(len(splits)) % 7, "ferplus_label": np.arange(len(splits)) % 7,
                       "label_disagrees": 0, "vote_entropy": 0.5})  # fmt: skip
    path = tmp_path / "labels.csv"
    df.to_csv(path, index=False)
    return path


def test_make_splits_uses_publictest_and_never_privatetest(tmp_path):
    csv = _labels_csv(tmp_path, ["Training"] * 70 + ["PublicTest"] * 14 + ["PrivateTest"] * 14)
    train, evaluation = (
        pd.read_csv(p) for p in make_splits(csv, tmp_path / "b", max_train=None, eval_fraction=0.25, seed=0)
    )
    assert len(train) == 70 and len(evaluation) == 14
    assert all(p.startswith(str(tmp_path)) for p in train["path"])  # absolute paths
    assert set(train["label"]) == {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}


def test_make_splits_holds_out_training_faces_when_there_is_no_publictest(tmp_path):
    csv = _labels_csv(tmp_path, ["Training"] * 140)
    train, evaluation = (
        pd.read_csv(p) for p in make_splits(csv, tmp_path / "b", max_train=None, eval_fraction=0.25, seed=0)
    )
    assert len(evaluation) == 35 and len(train) == 105
    assert not set(train["path"]) & set(evaluation["path"])


def test_make_splits_rejects_a_file_without_crowd_columns(tmp_path):
    path = tmp_path / "plain.csv"
    pd.DataFrame({"path": ["a.png"], "label": ["happy"]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="not a FERPlus labels.csv.*label_disagrees"):
        make_splits(path, tmp_path / "b", max_train=None, eval_fraction=0.25, seed=0)


def _confident_probs(labels: np.ndarray, wrong: np.ndarray, rng) -> np.ndarray:
    """Probabilities near the given label, except on ``wrong`` rows, where another class wins."""
    probs = rng.dirichlet(np.ones(3), size=len(labels)) * 0.2
    true = np.where(wrong, (labels + 1) % 3, labels)
    probs[np.arange(len(labels)), true] += 0.8
    return probs / probs.sum(axis=1, keepdims=True)


def test_cleanlab_detector_finds_planted_errors():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    wrong = np.zeros(120, bool)
    wrong[::10] = True
    out = detectors.cleanlab_detect(labels, _confident_probs(labels, wrong, rng))
    assert metrics.auroc(wrong, out["self_confidence"]) > 0.99
    assert out["flag"][wrong].mean() > 0.9 and out["flag"][~wrong].mean() < 0.05


def test_knn_disagreement_detector_on_clusters():
    rng = np.random.default_rng(0)
    centers = np.eye(3, 16) * 10
    labels = np.repeat(np.arange(3), 30)
    emb = (centers[labels] + rng.normal(size=(90, 16))).astype(np.float32)
    noisy = labels.copy()
    noisy[[0, 31, 62]] = [1, 2, 0]
    score = detectors.knn_label_disagreement(emb, noisy, k=5)
    assert set(np.argsort(-score)[:3]) == {0, 31, 62}


def test_fiftyone_mistakenness_ranks_confident_mistakes_first():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 10)
    wrong = np.zeros(30, bool)
    wrong[[3, 17]] = True
    logits = np.log(_confident_probs(labels, wrong, rng)).astype(np.float32)
    score = detectors.fiftyone_mistakenness(
        [f"/nonexistent/{i}.png" for i in range(30)], labels, logits, ["a", "b", "c"]
    )
    assert score.shape == (30,) and set(np.argsort(-score)[:2]) == {3, 17}


def test_report_rows_equal_metrics_on_the_same_arrays():
    truth_wrong = np.array([1, 0, 1, 1, 0, 0, 1, 0, 0, 0, 0])
    known = np.r_[np.ones(10, bool), False]  # the last face has no crowd plurality: left out
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.35, 0.3, 0.2, 0.1, 1.0])
    flag = score >= 0.6
    truth = pd.DataFrame({"label_disagrees": np.where(known, truth_wrong, -1),
                          "ferplus_label": np.where(known, 0, -1), "vote_entropy": score})  # fmt: skip
    stages = {"cleanlab": ({"seconds": 1.0}, {"self_confidence": score, "normalized_margin": score, "flag": flag}),
              "kfold": ({"seconds": 60.0}, {"oof_logits": np.zeros((11, 7)), "folds": np.zeros(11)})}  # fmt: skip
    rows = report.detection_rows({"truth": truth, "stages": stages})
    first = rows[0]
    assert first["method"].startswith("cleanlab")
    assert first["auroc"] == pytest.approx(19 / 24)
    assert first["ap"] == pytest.approx((1 + 2 / 3 + 3 / 4 + 4 / 7) / 4)
    assert (first["flag_precision"], first["flag_recall"]) == pytest.approx((3 / 4, 3 / 4))
    assert first["flagged"] == 5 and first["seconds"] == 61.0
    assert first["suggestion_accuracy"] == pytest.approx(1.0)  # argmax of zero logits is class 0


def test_fer2013_to_run_maps_fer2013_class_indices_into_a_run_order_and_keeps_minus_one() -> None:
    run_classes = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]  # sorted names
    # FER2013's order: angry 0, disgust 1, fear 2, happy 3, sad 4, surprise 5, neutral 6
    got = report.fer2013_to_run(np.array([4, 6, 5, -1, 0]), run_classes)
    assert list(got) == [5, 4, 6, -1, 0]


def test_fer2013_to_run_takes_a_run_that_spells_the_classes_another_way_and_refuses_other_classes() -> None:
    run_classes = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]  # RAF-DB's
    got = report.fer2013_to_run(np.array([0, 3, 4, -1]), run_classes)
    assert list(got) == [5, 3, 4, -1]
    with pytest.raises(ValueError, match="not FER2013's"):
        report.fer2013_to_run(np.array([0]), ["angry", "happy", "sad"])
