"""bench/ambiguous_queue.py: a rule is judged on the faces not ``likely_mislabeled`` only, and its
precision, recall and queue multiple are counted as the docs state them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))  # the script imports its sibling ambiguity_variants
spec = importlib.util.spec_from_file_location("ambiguous_queue", BENCH / "ambiguous_queue.py")
ambiguous_queue = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ambiguous_queue)


def test_judge_leaves_out_flagged_faces_and_counts_precision_and_recall() -> None:
    # 8 faces; truth top quartile (>= the 0.75 quantile) = faces 6 and 7
    truth = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.9, 1.0])
    mislabeled = np.array([0, 0, 0, 0, 0, 0, 0, 1], dtype=bool)
    marked = np.array([0, 0, 0, 0, 0, 1, 1, 1], dtype=bool)  # face 7 is flagged: not ambiguous
    share, ratio, precision, precision_ok, recall = ambiguous_queue.judge(marked, mislabeled, truth)
    assert share == pytest.approx(2 / 8)
    assert ratio == pytest.approx((3 / 8) / (1 / 8))  # not ok: 5, 6 and 7
    assert precision == pytest.approx(1 / 2)  # of 5 and 6, face 6 is in the top quartile
    assert precision_ok == pytest.approx(0.0)
    assert recall == pytest.approx(1.0)  # the one top-quartile face not flagged is marked


def test_judge_skips_faces_without_truth() -> None:
    truth = np.array([np.nan, 0.1, 0.2, 0.9])
    nothing = np.zeros(4, dtype=bool)
    _, ratio, precision, precision_ok, recall = ambiguous_queue.judge(
        np.array([1, 1, 0, 0], dtype=bool), nothing, truth
    )
    assert np.isnan(ratio)  # no estimated noise: no multiple
    assert precision == pytest.approx(0.0)  # face 0 has no truth; face 1 is below the top quartile
    assert precision_ok == pytest.approx(1 / 2)
    assert recall == pytest.approx(0.0)
