"""Data policies at export (issue 21 item 8): --dedupe, --leaks (per split) and --drop-outliers.
Each exports, reads the written file back and checks exactly which faces are kept, and that the
audit sidecar records the options and the ids left out."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from export_helpers import CLASSES, make_image, save_scores, scores_frame

from curate.cli import main
from curate.cli.export_cmd import DEDUPE_CHOICES, LEAK_CHOICES
from curate.data import read_dataset
from curate.export import (
    DEDUPE,
    LEAKS,
    Curation,
    DataPolicy,
    ExportError,
    apply_data_policy,
    apply_policy,
    export_cleaned,
    load_source,
    with_curations,
)

#: id, split, given, mislabel_score, duplicate_group, outlier_score, issues (every verdict ok)
FACES = [
    ("d0", "train", "a", 0.30, 0, 0.1, ["duplicate"]),
    ("d1", "train", "a", 0.10, 0, 0.1, ["duplicate"]),
    ("d2", "test", "a", 0.20, 1, 0.1, ["duplicate", "leak"]),
    ("d3", "train", "a", 0.05, 1, 0.1, ["duplicate", "leak"]),
    ("d4", "train", "b", 0.20, -1, 0.9, ["outlier"]),
    ("d5", "test", "b", 0.20, -1, 0.6, ["outlier", "near_duplicate", "leak"]),
    ("d6", "train", "c", 0.10, -1, 0.2, ["near_duplicate", "leak"]),
    ("d7", "train", "c", 0.10, -1, 0.0, []),
]
IDS = [f[0] for f in FACES]


@pytest.fixture
def issues_scores(tmp_path):
    files = [make_image(tmp_path / "img" / f"{f[0]}.png", 20 * k) for k, f in enumerate(FACES)]
    given = [CLASSES.index(f[2]) for f in FACES]
    dist = np.eye(3, dtype=np.float32)[given] * 0.8 + 0.2 / 3
    frame = scores_frame(IDS, files, given, dist, ["ok"] * len(FACES), [f[1] for f in FACES]).assign(
        mislabel_score=np.array([f[3] for f in FACES], np.float32),
        duplicate_group=[f[4] for f in FACES],
        outlier_score=np.array([f[5] for f in FACES], np.float32),
        issues=[f[6] for f in FACES],
        near_duplicates=[["d6"] if f[0] == "d5" else ["d5"] if f[0] == "d6" else [] for f in FACES],
    )
    return save_scores(tmp_path / "scores.parquet", frame, CLASSES)


def export(tmp_path, scores, name="clean.csv", **data):
    out = tmp_path / "out" / name
    out.parent.mkdir(exist_ok=True)
    summary = export_cleaned(scores, format=name.rsplit(".", 1)[-1], policy="decisions", out=out,
                             data_policy=DataPolicy(**data))  # fmt: skip
    audit = json.loads(out.with_name(out.name + ".audit.json").read_text())
    return out, summary, audit


def written_ids(out) -> list[str]:
    return pd.read_csv(out, keep_default_na=False)["sample_id"].tolist()


def kept(*left_out: str) -> list[str]:
    return [i for i in IDS if i not in left_out]


def test_no_data_policy_keeps_every_face_and_the_audit_says_nothing(tmp_path, issues_scores):
    out, summary, audit = export(tmp_path, issues_scores)
    assert written_ids(out) == IDS and summary.written == 8
    assert "data_policy" not in audit and not any(n.startswith("data policy") for n in summary.notes)


def test_dedupe_keep_one_keeps_the_lowest_mislabel_score(tmp_path, issues_scores):
    out, summary, audit = export(tmp_path, issues_scores, dedupe="keep-one")
    assert written_ids(out) == kept("d0", "d2")
    assert audit["data_policy"] == {
        "dedupe": "keep-one", "leaks": "keep", "leak_splits": None, "drop_outliers": None,
        "dropped": {"drop_outlier": [], "drop_leak": [], "drop_duplicate": ["d0", "d2"]},
        "kept_per_group": {"0": "d1", "1": "d3"},
    }  # fmt: skip
    changes = {c["sample_id"]: c for c in audit["changes"]}
    assert set(changes) == {"d0", "d2"} and changes["d0"]["action"] == "drop_duplicate"
    assert changes["d0"]["to"] is None and changes["d0"]["decided_by"] == "auto"
    assert summary.actions == {"keep": 6, "drop_duplicate": 2}
    assert summary.transitions["a -> (duplicate)"] == 2
    assert "data policy: 2 duplicate copies left out, one face kept of each of 2 duplicate group(s)" in summary.notes


def test_leaks_drop_in_every_split_or_in_the_named_ones(tmp_path, issues_scores):
    out, _, audit = export(tmp_path, issues_scores, leaks="drop")
    assert written_ids(out) == kept("d2", "d3", "d5", "d6")
    assert audit["data_policy"]["dropped"]["drop_leak"] == ["d2", "d3", "d5", "d6"]

    out, _, audit = export(tmp_path, issues_scores, "test-kept.csv", leaks="drop", leak_splits=("train",))
    assert written_ids(out) == kept("d3", "d6")  # the test copies stay
    assert audit["data_policy"]["leak_splits"] == ["train"]
    assert audit["data_policy"]["dropped"]["drop_leak"] == ["d3", "d6"]


def test_leaks_run_before_dedupe(tmp_path, issues_scores):
    out, _, audit = export(tmp_path, issues_scores, leaks="drop", leak_splits=("train",), dedupe="keep-one")
    assert written_ids(out) == kept("d0", "d3", "d6")  # d2 (test) is all that is left of group 1
    assert audit["data_policy"]["dropped"] == {
        "drop_outlier": [], "drop_leak": ["d3", "d6"], "drop_duplicate": ["d0"]
    }  # fmt: skip
    assert audit["data_policy"]["kept_per_group"] == {"0": "d1", "1": "d2"}


def test_drop_outliers_at_a_threshold(tmp_path, issues_scores):
    out, _, audit = export(tmp_path, issues_scores, drop_outliers=0.5)
    assert written_ids(out) == kept("d4", "d5")
    assert audit["data_policy"]["drop_outliers"] == 0.5
    assert audit["data_policy"]["dropped"]["drop_outlier"] == ["d4", "d5"]
    out, _, audit = export(tmp_path, issues_scores, "strict.csv", drop_outliers=0.9)  # inclusive
    assert written_ids(out) == kept("d4")


def test_every_policy_at_once_in_parquet(tmp_path, issues_scores):
    out, summary, audit = export(tmp_path, issues_scores, "clean.parquet", dedupe="keep-one", leaks="drop",
                                 drop_outliers=0.5)  # fmt: skip
    back = pq.read_table(out).to_pandas()
    assert back["sample_id"].tolist() == ["d1", "d7"]
    assert audit["data_policy"]["dropped"] == {
        "drop_outlier": ["d4", "d5"], "drop_leak": ["d2", "d3", "d6"], "drop_duplicate": ["d0"]
    }  # fmt: skip
    assert summary.written == 2 and summary.faces == 8


def test_curator_choice_wins_in_a_group(issues_scores):
    log = ({"action": "relabel", "from": "a", "to": "b", "when": "2024-05-01T10:00:00", "by": "ann"},)
    table = with_curations(load_source(str(issues_scores)), {"d0": Curation(log, "b")})  # decided on d0
    cleaned = apply_policy(table, "decisions")
    result = apply_data_policy(table, cleaned, DataPolicy(dedupe="keep-one"))
    got = dict(zip(cleaned.faces["sample_id"], cleaned.faces["action"]))
    assert got["d0"] == "relabel" and got["d1"] == "drop_duplicate" and result.kept_per_group[0] == "d0"
    assert cleaned.kept.tolist() == [i not in ("d1", "d2") for i in IDS]
    # drop_outliers 0 leaves out every face but the one the curator decided on
    cleaned = apply_policy(table, "decisions")
    apply_data_policy(table, cleaned, DataPolicy(drop_outliers=0.0))
    assert cleaned.faces["sample_id"][cleaned.kept].tolist() == ["d0"]
    assert cleaned.target[cleaned.kept].tolist() == [[0.0, 1.0, 0.0]] and not cleaned.target[~cleaned.kept].any()

    excluded = ({"action": "exclude", "from": "a", "to": None, "when": "2024-05-01T10:00:00", "by": "ann"},)
    table = with_curations(load_source(str(issues_scores)), {"d1": Curation(excluded, None, True)})
    cleaned = apply_policy(table, "decisions")
    result = apply_data_policy(table, cleaned, DataPolicy(dedupe="keep-one"))
    got = dict(zip(cleaned.faces["sample_id"], cleaned.faces["action"]))
    assert got["d1"] == "exclude" and got["d0"] == "keep" and result.dropped == {"drop_duplicate": ["d2"]}


def test_imagefolder_tree_round_trip(tmp_path):
    root = tmp_path / "ds"
    for k, (sid, split, label, *_rest) in enumerate(FACES):
        make_image(root / split / label / f"{sid}.png", 20 * k)
    table = read_dataset(root)
    by_name = {p.rsplit("/", 1)[-1][:-4]: i for i, p in enumerate(table["filepath"])}
    order = [by_name[i] for i in IDS]
    given = table["label"].to_numpy()[order]
    frame = scores_frame(table["sample_id"].to_numpy()[order], table["filepath"].to_numpy()[order], given,
                         np.eye(3, dtype=np.float32)[given], ["ok"] * 8, table["split"].to_numpy()[order]).assign(
        duplicate_group=[f[4] for f in FACES], outlier_score=np.array([f[5] for f in FACES], np.float32),
        issues=[f[6] for f in FACES], mislabel_score=np.array([f[3] for f in FACES], np.float32),
    )  # fmt: skip
    scores = save_scores(tmp_path / "scores.parquet", frame, table.attrs["classes"], dataset=str(root))
    out = tmp_path / "tree"
    export_cleaned(scores, format="native", policy="decisions", out=out,
                   data_policy=DataPolicy(dedupe="keep-one", leaks="drop", leak_splits=("train",)))  # fmt: skip
    back = read_dataset(out)
    assert sorted(p.rsplit("/", 1)[-1][:-4] for p in back["filepath"]) == ["d1", "d2", "d4", "d5", "d7"]


def test_errors_before_anything_is_written(tmp_path, issues_scores):
    out = tmp_path / "x.csv"
    cases = [
        (DataPolicy(leak_splits=("train",)), "add --leaks drop"),
        (DataPolicy(leaks="drop", leak_splits=("Training",)), r"--leak-split Training: no such split \(splits: test, train\)"),
        (DataPolicy(dedupe="one"), "dedupe must be one of keep-all, keep-one"),
    ]  # fmt: skip
    for data, message in cases:
        with pytest.raises(ExportError, match=message):
            export_cleaned(issues_scores, format="csv", policy="decisions", out=out, data_policy=data)
    assert not out.exists()


def test_scores_without_issue_columns_are_refused(tmp_path, issues_scores):
    old = tmp_path / "old.parquet"
    table = pq.read_table(issues_scores)
    pq.write_table(table.drop_columns(["duplicate_group", "near_duplicates", "outlier_score", "issues"]), old)
    export_cleaned(old, format="csv", policy="decisions", out=tmp_path / "plain.csv")  # no data policy: fine
    with pytest.raises(ExportError, match="no data-issue columns"):
        export_cleaned(old, format="csv", policy="decisions", out=tmp_path / "y.csv",
                       data_policy=DataPolicy(dedupe="keep-one"))  # fmt: skip


def test_cli_options(tmp_path, issues_scores):
    out = tmp_path / "cli.csv"
    args = ["export", str(issues_scores), "--format", "csv", "--policy", "decisions", "--out", str(out),
            "--dedupe", "keep-one", "--leaks", "drop", "--leak-split", "train", "--drop-outliers", "0.8"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert written_ids(out) == ["d1", "d2", "d5", "d7"]
    lines = result.output.splitlines()
    assert lines[0] == f"exported 4 of 8 faces -> {out} (format csv, policy decisions)"
    assert lines[1] == "actions:    keep 4, drop_outlier 1, drop_leak 2, drop_duplicate 1"
    assert (
        "note: data policy: 1 outlier(s) with outlier_score >= 0.8 left out; 2 leaked face(s) left out (train);"
        " 1 duplicate copies left out, one face kept of each of 2 duplicate group(s)"
    ) in lines

    bad = CliRunner().invoke(main, [*args[:8], "--leak-split", "train", "--out", str(tmp_path / "z.csv")])
    assert bad.exit_code == 1 and "add --leaks drop" in bad.output
    help_text = CliRunner().invoke(main, ["export", "--help"]).output
    assert "--dedupe [keep-all|keep-one]" in help_text and "--drop-outliers THRESHOLD" in help_text
    assert DEDUPE_CHOICES == DEDUPE and LEAK_CHOICES == LEAKS
