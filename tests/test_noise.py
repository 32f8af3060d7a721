"""Noise estimates: the per-class prior is the confident share, shrunk towards the overall share."""

import numpy as np
import pytest

from curate.noise import class_noise_prior, confident_other


def test_class_noise_prior_by_hand():
    """10 faces given a, 4 of them confidently b; 2 faces given b, both clean. The overall share is
    4/12; with 2 pseudo-faces at that share, a's rate is (4 + 2 * 1/3) / 12 and b's (0 + 2/3) / 4."""
    given = np.array([0] * 10 + [1] * 2)
    probs = np.array([[0.9, 0.1]] * 6 + [[0.1, 0.9]] * 4 + [[0.2, 0.8]] * 2)
    assert list(confident_other(given, probs)) == [-1] * 6 + [1] * 4 + [-1] * 2
    rates, overall = class_noise_prior(given, probs, 2, pseudo_count=2)
    assert overall == pytest.approx(4 / 12)
    np.testing.assert_allclose(rates, [(4 + 2 / 3) / 12, (2 / 3) / 4])
    raw, _ = class_noise_prior(given, probs, 2, pseudo_count=0)
    np.testing.assert_allclose(raw, [0.4, 0.0])
