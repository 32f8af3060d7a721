"""bench/fold_agreement.py: accuracy and Cohen's kappa of predictions against the given labels."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
spec = importlib.util.spec_from_file_location("fold_agreement", BENCH / "fold_agreement.py")
fold_agreement = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fold_agreement)


def test_kappa_is_one_for_the_labels_and_zero_for_the_majority_class() -> None:
    given = np.array([0, 0, 0, 1, 1, 2])
    assert fold_agreement.agreement(given, given) == pytest.approx({"accuracy": 1.0, "kappa": 1.0})
    majority = fold_agreement.agreement(np.zeros(6, dtype=np.int64), given)
    assert majority == pytest.approx({"accuracy": 0.5, "kappa": 0.0})


def test_kappa_takes_out_the_agreement_of_chance() -> None:
    rng = np.random.default_rng(0)
    given = rng.integers(0, 4, 20_000)
    unrelated = rng.integers(0, 4, 20_000)
    assert fold_agreement.agreement(unrelated, given)["kappa"] == pytest.approx(0.0, abs=0.02)
    half = np.where(rng.random(20_000) < 0.5, given, unrelated)  # right on half, a chance guess on the rest
    row = fold_agreement.agreement(half, given)
    assert row["accuracy"] == pytest.approx(0.625, abs=0.02)
    assert row["kappa"] == pytest.approx(0.5, abs=0.02)


def test_best_other_right_skips_the_given_label_and_counts_only_the_errors() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.6, 0.1, 0.3], [0.1, 0.8, 0.1], [0.5, 0.4, 0.1]])
    given = np.array([0, 0, 1, 0])
    crowd = np.array([1, 1, 0, 2])
    errors = np.array([True, True, True, False])  # face 3 is right by the crowd: left out
    # best other: face 0 -> 1 (right), face 1 -> 2 (wrong), face 2 -> 0 or 2 tied at 0.1 -> 0 (right)
    assert fold_agreement.best_other_right(probs, given, crowd, errors) == pytest.approx(2 / 3)
