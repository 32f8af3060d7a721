"""Metrics against values computed by hand on a 10-row example (and against scikit-learn)."""

import numpy as np
import pytest

from curate import metrics

# 10 samples, 4 true issues. Sorted by score: 0.9(T) 0.8(F) 0.7(T) 0.6(T) 0.5(F) 0.4(F) 0.35(T) 0.3(F) 0.2(F) 0.1(F)
TRUTH = np.array([1, 0, 1, 1, 0, 0, 1, 0, 0, 0], dtype=bool)
SCORE = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.35, 0.3, 0.2, 0.1])


def test_auroc_by_hand():
    # pairs (pos, neg) where pos outranks neg: 0.9 beats 6, 0.7 beats 5, 0.6 beats 5, 0.35 beats 3 -> 19 of 24
    assert metrics.auroc(TRUTH, SCORE) == pytest.approx(19 / 24)


def test_auroc_ties_count_half():
    assert metrics.auroc(np.array([1, 0], bool), np.array([0.5, 0.5])) == pytest.approx(0.5)


def test_average_precision_by_hand():
    # hits at ranks 1, 3, 4, 7: precisions 1, 2/3, 3/4, 4/7, averaged over the 4 positives
    expected = (1 + 2 / 3 + 3 / 4 + 4 / 7) / 4
    assert metrics.average_precision(TRUTH, SCORE) == pytest.approx(expected)


def test_precision_at_k_and_fnr_by_hand():
    assert metrics.precision_at_k(TRUTH, SCORE, 4) == pytest.approx(3 / 4)
    assert metrics.precision_at_k(TRUTH, SCORE, 1) == 1.0
    # budget = 4 issues: top 4 holds 3 of them -> 1 missed of 4
    assert metrics.fnr_at_budget(TRUTH, SCORE) == pytest.approx(1 / 4)


def test_flag_precision_recall_by_hand():
    flag = np.array([1, 1, 0, 1, 0, 0, 0, 0, 0, 1], dtype=bool)
    assert metrics.flag_precision_recall(TRUTH, flag) == pytest.approx((2 / 4, 2 / 4))


def test_spearman_perfect_and_reversed():
    x = np.arange(10.0)
    assert metrics.spearman(x, x**3) == pytest.approx(1.0)
    assert metrics.spearman(x, -x) == pytest.approx(-1.0)


def test_matches_sklearn_with_ties():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    truth = rng.random(500) < 0.3
    score = np.round(rng.random(500) + truth * 0.3, 1)  # many ties
    assert metrics.auroc(truth, score) == pytest.approx(sk.roc_auc_score(truth, score))
    assert metrics.average_precision(truth, score) == pytest.approx(sk.average_precision_score(truth, score))


def test_rejects_nan_and_shape_mismatch():
    with pytest.raises(ValueError, match="NaN"):
        metrics.auroc(TRUTH, np.where(TRUTH, np.nan, 0.0))
    with pytest.raises(ValueError, match="same length"):
        metrics.auroc(TRUTH, SCORE[:5])
