"""Policies on SCENARIO: exact labels and actions per policy; curator decisions beat automatic ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from export_helpers import (
    CLASSES,
    EXPECTED,
    SCENARIO,
    make_image,
    results,
    save_scores,
    scenario_curations,
    scores_frame,
)

from curate.cli import main
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


def _unlearnt_class(tmp_path: Path) -> Path:
    """Class b is flagged wholesale by a model that puts none of its 4 faces in it, so auto leaves
    none of them b; class c keeps 3 of 4."""
    rows = [  # id, given, verdict, label_distribution
        ("a0", "a", "ok", [0.9, 0.05, 0.05]), ("a1", "a", "ok", [0.8, 0.1, 0.1]),
        ("b0", "b", "likely_mislabeled", [0.05, 0.05, 0.9]),  # accepted: c
        ("b1", "b", "likely_mislabeled", [0.6, 0.2, 0.2]), ("b2", "b", "likely_mislabeled", [0.5, 0.3, 0.2]),
        ("b3", "b", "likely_mislabeled", [0.45, 0.15, 0.4]),  # dropped
        ("c0", "c", "ok", [0.1, 0.1, 0.8]), ("c1", "c", "ok", [0.2, 0.1, 0.7]),
        ("c2", "c", "likely_mislabeled", [0.6, 0.1, 0.3]), ("c3", "c", "ok", [0.1, 0.2, 0.7]),
    ]  # fmt: skip
    files = [make_image(tmp_path / "img" / f"{r[0]}.png", 10 * k) for k, r in enumerate(rows)]
    frame = scores_frame([r[0] for r in rows], files, [CLASSES.index(r[1]) for r in rows],
                         np.array([r[3] for r in rows], np.float32), [r[2] for r in rows])  # fmt: skip
    return save_scores(tmp_path / "scores.parquet", frame, CLASSES)


def test_recognised_counts_the_faces_the_model_puts_in_their_given_class(tmp_path):
    assert load_source(str(_unlearnt_class(tmp_path))).recognised().tolist() == [2, 0, 3]


def test_the_summary_counts_every_class_and_names_one_the_file_empties(tmp_path):
    out = tmp_path / "clean.csv"
    result = CliRunner().invoke(main, ["export", str(_unlearnt_class(tmp_path)), "--format", "csv", "--policy", "auto",
                                       "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "per class, given -> written: a 2 -> 2, b 4 -> 0, c 4 -> 4" in result.output  # b0 became c, c2 dropped
    note = next(line for line in result.output.splitlines() if line.startswith("note: classes left almost empty"))
    assert note.startswith("note: classes left almost empty: b 0 of 4 (the model put 0 of them in it). A classifier")
    audit = json.loads(out.with_name("clean.csv.audit.json").read_text())
    assert audit["summary"]["per_class"] == {"a": [2, 2], "b": [4, 0], "c": [4, 4]}
    decisions = CliRunner().invoke(main, ["export", str(_unlearnt_class(tmp_path)), "--format", "csv", "--policy",
                                          "decisions", "--out", str(tmp_path / "kept.csv")])  # fmt: skip
    assert "b 4 -> 4" in decisions.output and "almost empty" not in decisions.output  # review keeps the labels
