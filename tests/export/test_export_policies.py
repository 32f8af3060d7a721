"""Policies on SCENARIO: exact labels and actions per policy; curator decisions beat automatic ones."""

from __future__ import annotations

import numpy as np
import pytest
from export_helpers import CLASSES, EXPECTED, SCENARIO, results, scenario_curations

from curate.export import Curation, ExportError, apply_policy, load_source, with_curations


@pytest.mark.parametrize("policy", ["decisions", "auto", "soft"])
def test_policy_labels_and_actions(scenario, policy):
    table = with_curations(load_source(str(scenario)), scenario_curations())
    cleaned = apply_policy(table, policy, confidence=0.8)
    assert results(cleaned) == EXPECTED[policy]
    assert cleaned.kept.tolist() == [EXPECTED[policy][s[0]][1] not in ("drop", "exclude") for s in SCENARIO]


def test_targets_soft_for_soft_faces_else_one_hot(scenario):
    table = with_curations(load_source(str(scenario)), scenario_curations())
    cleaned = apply_policy(table, "auto")
    dist = np.array([s[3] for s in SCENARIO], np.float32)
    np.testing.assert_allclose(cleaned.target[3], dist[3])  # f3 ambiguous -> soft
    np.testing.assert_array_equal(cleaned.target[1], [0, 1, 0])  # f1 accepted b
    np.testing.assert_array_equal(cleaned.target[2], [0, 0, 0])  # f2 dropped


def test_curator_decisions_beat_automatic_ones(scenario):
    plain = apply_policy(load_source(str(scenario)), "auto")
    curated = apply_policy(with_curations(load_source(str(scenario)), scenario_curations()), "auto")
    before, after = results(plain), results(curated)
    # without curators, auto would accept c for f4, keep f5 soft, keep f6 and drop f8
    assert before["f4"] == ("c", "accept_suggestion", "auto") and after["f4"] == ("a", "relabel", "curator")
    assert before["f5"] == ("c", "soft", "auto") and after["f5"] == ("c", "keep", "curator")
    assert before["f6"] == ("a", "keep", "auto") and after["f6"] == (None, "exclude", "curator")
    assert before["f8"] == (None, "drop", "auto") and after["f8"] == ("b", "accept_suggestion", "curator")


def test_confidence_threshold_is_inclusive(scenario):
    table = load_source(str(scenario))
    assert results(apply_policy(table, "auto", confidence=0.8))["f7"] == ("c", "accept_suggestion", "auto")
    assert results(apply_policy(table, "auto", confidence=0.85))["f7"] == (None, "drop", "auto")


def test_decisions_policy_on_scores_marks_every_flagged_face_review(scenario):
    got = results(apply_policy(load_source(str(scenario)), "decisions"))
    flagged = {s[0] for s in SCENARIO if s[2] != "ok"}
    assert {sid for sid, (_, action, _) in got.items() if action == "review"} == flagged
    assert {r[1] for sid, r in got.items() if sid not in flagged} == {"keep"}
    assert {r[2] for r in got.values()} == {"auto"}


def test_curation_state_comes_from_clean_label_and_tag():
    log = ({"action": "relabel", "from": "a", "to": "b"},)
    accepted = log + ({"action": "accept_suggestion", "from": "b", "to": "c"},)
    assert Curation(log, None).resolve(0, CLASSES, "x") == ("", -1)  # relabel undone
    assert Curation((), "c").resolve(0, CLASSES, "x") == ("relabel", 2)
    assert Curation(accepted, "c").resolve(0, CLASSES, "x") == ("accept_suggestion", 2)
    # the action recorded when it was taken, whatever a later load suggests; exclude/include don't reset it
    assert Curation(accepted + ({"action": "exclude", "to": "c"}, {"action": "include", "to": "c"}), "c").resolve(
        0, CLASSES, "x"
    ) == ("accept_suggestion", 2)
    assert Curation(accepted + ({"action": "relabel", "from": "c", "to": "b"},), "b").resolve(0, CLASSES, "x") == (
        "relabel",
        1,
    )
    assert Curation(log, "b", excluded=True).resolve(0, CLASSES, "x") == ("exclude", -1)
    with pytest.raises(ExportError, match="sample 'x': clean_label 'zebra' is not a class"):
        Curation((), "zebra").resolve(0, CLASSES, "x")
