"""Class balance: counts, imbalance ratio, classes too small for DMUE's auxiliary branches."""

from __future__ import annotations

import math

import numpy as np

from curate.data.balance import MIN_CLASS_FACES, class_balance


def test_counts_ratio_and_small_classes():
    rng = np.random.default_rng(0)
    sizes = {"a": 500, "b": 40, "c": 10, "d": 200}
    labels = rng.permutation(np.repeat(np.arange(4), list(sizes.values())))
    labels = np.concatenate([labels, [-1, -1]])  # unlabeled rows are not counted
    bal = class_balance(labels, list(sizes), batch_size=64)
    assert bal.counts == sizes
    assert math.isclose(bal.imbalance_ratio, 500 / 10)
    n = sum(sizes.values())
    assert bal.min_faces == max(MIN_CLASS_FACES, math.ceil(n / 64))
    assert bal.too_small == [c for c, k in sizes.items() if k < bal.min_faces]
    assert "c" in bal.too_small and "a" not in bal.too_small
    # a bigger batch lowers the per-batch threshold to the absolute floor
    assert class_balance(labels, list(sizes), batch_size=10_000).too_small == ["c"]
    text = "\n".join(bal.summary_lines())
    assert "imbalance ratio (largest / smallest class): 50.0" in text and "c" in text.splitlines()[-1]


def test_empty_class_is_infinite_imbalance():
    bal = class_balance(np.array([0, 0, 1]), ["x", "y", "z"])
    assert bal.imbalance_ratio == math.inf and bal.too_small == ["x", "y", "z"]
    assert bal.to_dict()["imbalance_ratio"] is None
