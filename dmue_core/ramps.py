"""Laine & Aila style ramps that weight DMUE's loss terms per epoch (method doc §2.4).

``ramp_up`` multiplies every target-branch term, ``ramp_down`` the auxiliary cross-entropy.
Both are constant within an epoch in the official code; fractional epochs are accepted.
"""

import math


def _check_width(a: float) -> None:
    if a <= 0:
        raise ValueError(f"ramp width a must be > 0, got {a}")


def ramp_up(epoch: float, a: float) -> float:
    """exp(-5 (1 - e/a)^2) for e <= a, else 1; in (0, 1], e.g. a=6: 0.0067 at e=0, 1 from e=6."""
    _check_width(a)
    if epoch >= a:
        return 1.0
    return math.exp(-5.0 * (1.0 - epoch / a) ** 2)


def ramp_down(epoch: float, a: float) -> float:
    """1 for e < a, else exp(-(1 - a/e)^2); in (exp(-1), 1], e.g. a=6: 0.98 at e=7, 0.50 at e=35."""
    _check_width(a)
    if epoch < a:
        return 1.0
    return math.exp(-((1.0 - a / epoch) ** 2))
