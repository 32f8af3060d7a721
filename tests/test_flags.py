"""The verdict rule: quotas from the estimated noise rate (global or per class), overrides, reasons."""

import numpy as np
import pytest

from curate.flags import FlagRule, decide
from curate.noise import class_share, confident_other, per_class_thresholds

CLASSES = ["a", "b", "c"]


def _case():
    # 6 faces given "a": 2 of them the model confidently puts in "b"; 3 given "b", 3 given "c", all clean.
    given = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    dist = np.array(
        [[0.9, 0.05, 0.05]] * 4 + [[0.1, 0.85, 0.05]] * 2 + [[0.05, 0.9, 0.05]] * 3 + [[0.05, 0.05, 0.9]] * 3
    )
    mis = 1 - dist[np.arange(12), given]
    amb = np.zeros(12)
    knn = np.zeros(12)
    return given, dist, mis, amb, knn


def test_thresholds_and_noise_rate_by_hand():
    given, dist, *_ = _case()
    t = per_class_thresholds(given, dist)
    assert t[0] == pytest.approx((0.9 * 4 + 0.1 * 2) / 6)
    # b's threshold: mean p_b over faces given b = 0.9 -> the two "a" faces at 0.85 are below it
    assert class_share(given, confident_other(given, dist) >= 0, 3)[0] == 0.0
    dist[4:6] = [0.05, 0.92, 0.03]
    assert class_share(given, confident_other(given, dist) >= 0, 3)[0] == pytest.approx(2 / 6)


def test_quota_is_the_confident_share_and_a_hard_class_is_not_noise():
    """Two "a" faces are confidently "b" (2/12 overall): the top 2/12 by score are flagged. Class
    "c" is hard (its own faces give it only 0.4) but no face of it is confidently another class,
    so its low scores flag none of it."""
    given = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    dist = np.array(
        [[0.9, 0.05, 0.05]] * 4 + [[0.05, 0.92, 0.03]] * 2 + [[0.05, 0.9, 0.05]] * 3 + [[0.3, 0.3, 0.4]] * 3
    )
    mis = 1 - dist[np.arange(12), given]  # 0.1 clean, 0.95 faces 4-5, 0.6 the hard class
    zeros = np.zeros(12)
    verdict, reasons, rule = decide(given, dist, mis, zeros, zeros, CLASSES)
    assert rule.noise_rate["a"] == pytest.approx(2 / 6) and rule.noise_rate["c"] == 0
    assert rule.noise_rate["overall"] == pytest.approx(2 / 12) == rule.flag_share["overall"]
    assert list(np.flatnonzero(verdict == "likely_mislabeled")) == [4, 5]
    assert "confident:b" in reasons[4]
    clean = dist.copy()
    clean[4:6] = [0.9, 0.05, 0.05]
    verdict, _, rule = decide(given, clean, 1 - clean[np.arange(12), given], zeros, zeros, CLASSES)
    assert rule.noise_rate["overall"] == 0 and not (verdict == "likely_mislabeled").any()


def test_decide_flags_top_share_of_each_class():
    given, dist, mis, amb, knn = _case()
    dist[4:6] = [0.05, 0.92, 0.03]
    mis = 1 - dist[np.arange(12), given]
    verdict, reasons, rule = decide(given, dist, mis, amb, knn, CLASSES, FlagRule(quota="per_class"))
    assert list(np.flatnonzero(verdict == "likely_mislabeled")) == [4, 5]
    assert "confident:b" in reasons[4]
    assert rule.noise_rate["a"] == pytest.approx(2 / 6)
    assert "b" not in rule.resolved  # no estimated noise in b: nothing flagged there


def test_global_quota_ranks_all_faces_together():
    """Overall estimated rate 2/12 -> the top 2/12 of all faces by score, whatever their class: a
    face given c that no class claims confidently but that scores high is flagged; per class it is
    not, because class c has no estimated noise."""
    given = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    dist = np.array(
        [[0.9, 0.05, 0.05]] * 4
        + [[0.3, 0.65, 0.05]] * 2
        + [[0.3, 0.6, 0.1]] * 3
        + [[0.05, 0.05, 0.9]] * 2
        + [[0.5, 0.25, 0.25]]
    )
    mis = 1 - dist[np.arange(12), given]  # faces 4, 5: 0.7, confidently b; face 11: 0.75, claimed by none
    zeros = np.zeros(12)
    verdict, _, rule = decide(given, dist, mis, zeros, zeros, CLASSES)
    assert rule.noise_rate["overall"] == pytest.approx(2 / 12)
    assert list(np.flatnonzero(verdict == "likely_mislabeled")) == [4, 5, 11]  # threshold 0.7 (ties kept)
    assert len(set(rule.resolved.values())) == 1 and set(rule.resolved) == set(CLASSES)
    verdict, _, _ = decide(given, dist, mis, zeros, zeros, CLASSES, FlagRule(quota="per_class"))
    assert list(np.flatnonzero(verdict == "likely_mislabeled")) == [4, 5]
    with pytest.raises(ValueError, match="quota"):
        FlagRule(quota="both")


def test_explicit_threshold_overrides_rule():
    given, dist, mis, amb, knn = _case()
    verdict, _, rule = decide(given, dist, mis, amb, knn, CLASSES, FlagRule(mislabel_threshold=0.5))
    assert set(np.flatnonzero(verdict == "likely_mislabeled")) == {4, 5}
    assert rule.resolved == {"a": 0.5, "b": 0.5, "c": 0.5}
    verdict, _, _ = decide(given, dist, mis, amb, knn, CLASSES, FlagRule(mislabel_threshold={"a": 0.95}))
    assert (verdict == "likely_mislabeled").sum() == 0


def test_ambiguous_from_close_top2_and_reason():
    given = np.array([0, 1, 2])
    dist = np.array([[0.45, 0.4, 0.15], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    verdict, reasons, _ = decide(given, dist, 1 - dist[[0, 1, 2], given], np.zeros(3), np.array([0.7, 0, 0]), CLASSES)
    assert verdict[0] == "ambiguous" and "top2:a|b" in reasons[0] and "knn>=0.6" in reasons[0]
    assert verdict[1] == verdict[2] == "ok"


def test_class_name_count_must_match():
    given, dist, mis, amb, knn = _case()
    with pytest.raises(ValueError, match="class names"):
        decide(given, dist, mis, amb, knn, ["a", "b"])


def test_noise_rate_from_separate_probabilities():
    """The quota comes from ``noise_probs`` when given; the ranking still from ``mislabel_score``.
    The smoothed distribution claims no face confidently; the sharper probabilities claim two."""
    given = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    dist = np.array([[0.6, 0.3, 0.1]] * 4 + [[0.45, 0.44, 0.11]] * 2 + [[0.2, 0.7, 0.1]] * 3 + [[0.1, 0.2, 0.7]] * 3)
    probs = np.array(
        [[0.9, 0.05, 0.05]] * 4 + [[0.02, 0.95, 0.03]] * 2 + [[0.05, 0.9, 0.05]] * 3 + [[0.05, 0.05, 0.9]] * 3
    )
    mis = 1 - dist[np.arange(12), given]
    zeros = np.zeros(12)
    verdict, _, rule = decide(given, dist, mis, zeros, zeros, CLASSES)
    assert rule.noise_rate["overall"] == 0.0 and not (verdict == "likely_mislabeled").any()
    verdict, reasons, rule = decide(given, dist, mis, zeros, zeros, CLASSES, noise_probs=probs)
    assert rule.noise_rate["overall"] == pytest.approx(2 / 12)
    assert list(np.flatnonzero(verdict == "likely_mislabeled")) == [4, 5]
    assert "confident:b" in reasons[4]
    with pytest.raises(ValueError, match="noise_probs"):
        decide(given, dist, mis, zeros, zeros, CLASSES, noise_probs=probs[:, :2])


def test_noise_rate_from_a_held_out_sample_sets_the_quota_of_every_face():
    """``noise_rows``: the rate is estimated on those rows alone (their own class thresholds), and
    that share of all the faces is flagged. Rows 3-8 hold 2 confident faces in 6: a third of all 12."""
    given = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    probs = np.array(
        [[0.9, 0.05, 0.05]] * 4 + [[0.02, 0.95, 0.03]] * 2 + [[0.05, 0.9, 0.05]] * 3 + [[0.05, 0.05, 0.9]] * 3
    )
    mis = np.linspace(0.9, 0.0, 12)
    zeros = np.zeros(12)
    rows = np.arange(3, 9)
    verdict, _, rule = decide(given, probs, mis, zeros, zeros, CLASSES, noise_probs=probs, noise_rows=rows)
    assert rule.noise_rate["overall"] == pytest.approx(2 / 6)
    assert rule.noise_rate["a"] == pytest.approx(2 / 3) and rule.noise_rate["c"] == 0.0  # a: rows 3-5; c: none
    assert list(np.flatnonzero(verdict == "likely_mislabeled")) == [0, 1, 2, 3]  # the top third of all 12
    every = decide(given, probs, mis, zeros, zeros, CLASSES, noise_probs=probs)[2]
    assert every.noise_rate["overall"] == pytest.approx(2 / 12)


def test_decide_leaves_the_callers_rule_alone():
    given, dist, mis, amb, knn = _case()
    mine = FlagRule(quota="per_class")
    _, _, used = decide(given, dist, mis, amb, knn, CLASSES, mine)
    assert used is not mine and used.quota == "per_class" and used.noise_rate
    assert mine.resolved == {} and mine.noise_rate == {} and mine.flag_share == {}
