"""bench/flag_count_rules.py: flag shares under other count rules, and what flagging that share gives."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import score_records

from curate import records
from curate.scoring.scores import ScoreConfig, compute_scores, label_distribution

BENCH = Path(__file__).resolve().parents[2] / "bench"
spec = importlib.util.spec_from_file_location("flag_count_rules", BENCH / "flag_count_rules.py")
flag_count_rules = importlib.util.module_from_spec(spec)
spec.loader.exec_module(flag_count_rules)


def _faces() -> tuple[np.ndarray, np.ndarray]:
    """8 faces given class 0, 2 given class 1. In the fold models' view faces 6 and 7 are
    confidently class 1 (its threshold: 0.5, the mean over its own faces): face 6 clearly (0.1 / 0.9),
    face 7 a near tie (0.45 / 0.55)."""
    given = np.array([0] * 8 + [1] * 2)
    folds = np.array([[0.9, 0.1]] * 6 + [[0.1, 0.9], [0.45, 0.55]] + [[0.5, 0.5]] * 2)
    return given, folds


def test_the_margin_leaves_out_a_near_tie_and_the_combinations_follow_the_two_counts() -> None:
    given, folds = _faces()
    model = folds.copy()
    model[7] = [0.9, 0.1]  # the full model keeps face 7 in its label
    shares = flag_count_rules.rule_shares(given, model, np.arange(10), folds, margins=(0.6, 0.05))
    assert shares["folds"] == pytest.approx(0.2) and shares["model"] == pytest.approx(0.1)
    assert shares["larger"] == pytest.approx(0.2)
    assert shares["geometric"] == pytest.approx(np.sqrt(0.02))
    assert shares["folds, margin 0.6"] == pytest.approx(0.1)  # 0.45 >= 0.6 x 0.55: a near tie, not counted
    assert shares["folds, margin 0.05"] == 0.0  # 0.1 >= 0.05 x 0.9 too


def test_the_fold_count_reads_only_the_faces_the_fold_models_judged() -> None:
    given, folds = _faces()
    judged = np.array([0, 1, 6, 9])  # two of three fold models trained: their faces alone
    shares = flag_count_rules.rule_shares(given, folds, judged, folds[judged], margins=())
    assert shares["folds"] == pytest.approx(1 / 4)  # face 6 of the four; over all ten it would be 0.2
    assert shares["model"] == pytest.approx(0.2)


def test_flag_figures_take_the_top_share_by_score_and_the_worst_class() -> None:
    given = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    wrong = np.array([1, 0, 0, 0, 1, 0, 0, 0], dtype=bool)
    score = np.array([0.9, 0.1, 0.2, 0.3, 0.8, 0.7, 0.0, 0.1])
    known = np.ones(8, dtype=bool)
    got = flag_count_rules.flag_figures(3 / 8, score, wrong, known, given)  # faces 0, 4, 5
    assert got == pytest.approx({"precision": 2 / 3, "recall": 1.0, "worst_class": 1 / 3})
    known[5] = False  # a face without truth is left out of every figure
    assert flag_count_rules.flag_figures(3 / 8, score, wrong, known, given)["worst_class"] == 0.0


def test_truth_by_name_reads_either_truth_column_and_names_a_missing_face(tmp_path: Path) -> None:
    crowd = tmp_path / "crowd.csv"
    pd.DataFrame({"path": ["images/a.png", "images/b.png"], "label_disagrees": [1, -1]}).to_csv(crowd, index=False)
    known, wrong = flag_count_rules.truth_by_name(crowd, pd.Series(["/x/images/b.png", "images/a.png"]))
    assert list(known) == [False, True] and list(wrong) == [False, True]
    synthetic = tmp_path / "labels.csv"
    pd.DataFrame({"path": ["face_0.png", "face_1.png"], "is_noisy": [False, True]}).to_csv(synthetic, index=False)
    known, wrong = flag_count_rules.truth_by_name(synthetic, pd.Series(["face_1.png", "face_0.png"]))
    assert list(known) == [True, True] and list(wrong) == [True, False]
    with pytest.raises(SystemExit, match="face_9.png"):
        flag_count_rules.truth_by_name(synthetic, pd.Series(["face_9.png"]))
    twice = tmp_path / "twice.csv"
    pd.DataFrame({"path": ["a/face_0.png", "b/face_0.png"], "is_noisy": [False, True]}).to_csv(twice, index=False)
    with pytest.raises(SystemExit, match="same image file"):
        flag_count_rules.truth_by_name(twice, pd.Series(["a/face_0.png"]))


def _calibrated(noise: float, n_per_class: int = 200, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Faces whose probabilities are the noisy-label posterior of their true class under uniform
    flips at rate ``noise`` (every row of a true class equal to T[true]), with given labels drawn so
    that exactly that share of each class is flipped, evenly over the other classes."""
    T = np.full((classes, classes), noise / (classes - 1))
    np.fill_diagonal(T, 1 - noise)
    true = np.repeat(np.arange(classes), n_per_class)
    flipped = int(round(noise * n_per_class))
    given = true.copy()
    for c in range(classes):
        rows = np.flatnonzero(true == c)[:flipped]
        given[rows] = (c + 1 + np.arange(flipped) % (classes - 1)) % classes
    return given, T[true]


def test_anchor_share_reads_the_noise_matrix_of_calibrated_probabilities() -> None:
    for noise in (0.0, 0.2, 0.4):
        given, probs = _calibrated(noise)
        assert flag_count_rules.anchor_share(given, probs) == pytest.approx(noise, abs=1e-6)


def test_loss_mixture_share_is_the_share_of_the_high_loss_mode() -> None:
    rng = np.random.default_rng(0)
    given = np.zeros(500, dtype=np.int64)
    p_given = np.concatenate([rng.uniform(0.85, 0.95, 400), rng.uniform(0.02, 0.08, 100)])
    probs = np.stack([p_given, 1 - p_given], axis=1)
    assert flag_count_rules.loss_mixture_share(given, probs) == pytest.approx(0.2, abs=0.01)


def test_joint_share_counts_confident_disagreements_and_nothing_on_agreeing_labels() -> None:
    true = np.repeat(np.arange(3), 100)
    probs = np.full((300, 3), 0.05)
    probs[np.arange(300), true] = 0.9
    assert flag_count_rules.joint_share(true, probs) == pytest.approx(0.0, abs=1e-9)
    given = true.copy()
    given[np.flatnonzero(true == 0)[:30]] = 1  # 30 of 300 faces carry another label
    assert flag_count_rules.joint_share(given, probs) == pytest.approx(0.1, abs=0.01)


def _stored_run(tmp_path: Path, *, tamper: bool = False) -> Path:
    """A run of six faces, three classes and no fold models: stored outputs and the scores they give."""
    rng = np.random.default_rng(0)
    given = np.array([0, 0, 1, 1, 2, 2])
    target, consensus = rng.dirichlet(np.ones(3), 6), rng.dirichlet(np.ones(3), 6)
    latent = rng.dirichlet(np.ones(3), 6)
    latent[np.arange(6), given] = 0.0
    latent /= latent.sum(axis=1, keepdims=True)
    sigma = np.full(6, 0.4)
    cfg = ScoreConfig()
    out = compute_scores(given, target, latent, sigma, np.full((6, 1), -1), cfg, consensus)
    mislabel = out["mislabel_score"] + (0.1 if tamper else 0.0)
    frame = score_records.scores_frame(
        [f"f{i}.png" for i in range(6)], given, target, latent_distribution=list(latent.astype(np.float32)),
        aux_consensus=list(consensus.astype(np.float32)), uncertainty=sigma.astype(np.float32), mislabel_score=mislabel,
    )  # fmt: skip
    run = tmp_path / "run"
    run.mkdir()
    records.write_scores(run / "scores.parquet", frame, 3, {"classes": ["a", "b", "c"], "score_config": cfg.to_dict()})
    return run


def test_a_run_without_folds_is_recounted_from_its_stored_outputs_with_and_without_the_latent(tmp_path: Path) -> None:
    r = flag_count_rules.stored(_stored_run(tmp_path))
    s = records.read_scores(tmp_path / "run" / "scores.parquet")
    target, latent, consensus = (
        records.vectors(s, c) for c in ("target_probs", "latent_distribution", "aux_consensus")
    )
    no_neighbours = np.full((6, 1), -1)
    mixed = label_distribution(target, latent, s["uncertainty"].to_numpy(), no_neighbours, ScoreConfig(), consensus)
    assert np.allclose(r["model"], mixed, atol=1e-6)
    rows = np.arange(6)
    # the latent term is 0 at the given label: leaving it out raises every face's belief in its label
    assert (r["no_latent"][rows, r["given"]] > r["model"][rows, r["given"]]).all()
    assert np.allclose(r["no_latent"].sum(axis=1), 1.0)


def test_stored_outputs_that_no_longer_give_the_runs_scores_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="re-score it"):
        flag_count_rules.stored(_stored_run(tmp_path, tamper=True))
