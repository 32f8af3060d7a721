"""Safety: existing outputs, the source never overwritten, path traversal, interrupted writes; the audit."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
from export_helpers import CLASSES, make_image, save_scores, scores_frame

from curate.data import read_dataset
from curate.export import ExportError, export_cleaned, formats
from curate.export.formats import Format


def leftovers(folder):
    """Temporary files or folders an export left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_existing_output_needs_force(scenario, tmp_path):
    out = tmp_path / "clean.csv"
    out.write_text("keep me\n")
    with pytest.raises(ExportError, match=r"clean.csv exists; pass --force"):
        export_cleaned(scenario, format="csv", policy="auto", out=out)
    assert out.read_text() == "keep me\n" and not (tmp_path / "clean.csv.audit.json").exists()
    export_cleaned(scenario, format="csv", policy="auto", out=out, force=True)
    assert out.read_text().startswith("sample_id,") and (tmp_path / "clean.csv.audit.json").is_file()


def test_existing_audit_alone_needs_force(scenario, tmp_path):
    (tmp_path / "clean.csv.audit.json").write_text("{}")
    with pytest.raises(ExportError, match=r"clean.csv.audit.json exists"):
        export_cleaned(scenario, format="csv", policy="auto", out=tmp_path / "clean.csv")
    assert not (tmp_path / "clean.csv").exists()


def test_never_overwrites_the_source(tmp_path):
    src = tmp_path / "labels.csv"
    make_image(tmp_path / "0.png")
    src.write_text("path,label\n0.png,a\n")
    table = read_dataset(src, classes=CLASSES)
    frame = scores_frame(table["sample_id"], table["filepath"], [0], np.array([[0.1, 0.9, 0.0]], np.float32),
                         ["likely_mislabeled"])  # fmt: skip
    scores = save_scores(tmp_path / "scores.parquet", frame, CLASSES, dataset=str(src))
    for target in (src, scores):
        with pytest.raises(ExportError, match="is the source file"):
            export_cleaned(scores, format="native", policy="auto", out=target, force=True)
    assert src.read_text() == "path,label\n0.png,a\n" and leftovers(tmp_path) == []


def test_refuses_out_inside_source_tree_and_foreign_folders(tmp_path):
    root = tmp_path / "ds"
    for k in range(3):
        make_image(root / "abc"[k] / f"{k}.png")
    table = read_dataset(root)
    frame = scores_frame(table["sample_id"], table["filepath"], table["label"], np.eye(3, dtype=np.float32),
                         ["ok"] * 3)  # fmt: skip
    scores = save_scores(tmp_path / "scores.parquet", frame, ["a", "b", "c"], dataset=str(root))
    with pytest.raises(ExportError, match="overlaps the source image tree"):
        export_cleaned(scores, format="imagefolder", policy="auto", out=root / "a" / "clean")
    with pytest.raises(ExportError, match="overlaps the source image tree"):
        export_cleaned(scores, format="csv", policy="auto", out=root / "clean.csv")
    (tmp_path / "mine").mkdir()
    with pytest.raises(ExportError, match="no curate export wrote"):
        export_cleaned(scores, format="imagefolder", policy="auto", out=tmp_path / "mine", force=True)
    assert sorted(p.name for p in root.rglob("*")) == ["0.png", "1.png", "2.png", "a", "b", "c"]


def test_never_writes_over_images_into_their_tree_or_over_run_files(tmp_path):
    """Without a recorded dataset too: a scored image, the folder holding the images (through a
    symlink as well) and the files of the run the scores belong to are refused even with --force."""
    root = tmp_path / "ds"
    for k in range(3):
        make_image(root / "images" / "abc"[k] / f"{k}.png")
    table = read_dataset(root / "images")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: {}\n")
    (run / "classes.json").write_text('["a", "b", "c"]')
    frame = scores_frame(table["sample_id"], table["filepath"], table["label"], np.eye(3, dtype=np.float32),
                         ["ok"] * 3)  # fmt: skip
    scores = save_scores(run / "scores.parquet", frame, ["a", "b", "c"])  # no dataset recorded
    (tmp_path / "link").symlink_to(root)
    image = table["filepath"][0]
    before = {p: p.read_bytes() for p in [*root.rglob("*.png"), run / "classes.json"]}
    for fmt, out, why in (
        ("csv", image, "is the source image"),
        ("imagefolder", root / "images" / "zz", "folder that holds the source images"),
        ("imagefolder", tmp_path / "link" / "images" / "zz", "folder that holds the source images"),
        ("csv", run / "classes.json", "is the source file"),
        ("jsonl", run / "scores.embeddings.npy", "is the source file"),
    ):
        with pytest.raises(ExportError, match=why):
            export_cleaned(scores, format=fmt, policy="auto", out=out, force=True)
    assert {p: p.read_bytes() for p in before} == before and not (root / "images" / "zz").exists()
    export_cleaned(scores, format="csv", policy="auto", out=run / "clean.csv")
    export_cleaned(scores, format="csv", policy="auto", out=run / "clean.csv", force=True)  # an earlier export


@pytest.mark.parametrize("odd_id", ["../escape.png", "/etc/escape.png", "a/../../escape.png"])
def test_ids_with_absolute_or_parent_paths_stay_inside_the_tree(tmp_path, odd_id):
    img = make_image(tmp_path / "img" / "x.png")
    frame = scores_frame(["ok.png", odd_id], [img, img], [0, 1], np.eye(3, dtype=np.float32)[:2], ["ok", "ok"])
    scores = save_scores(tmp_path / "scores.parquet", frame, CLASSES)
    out = tmp_path / "out" / "tree"
    out.parent.mkdir()
    export_cleaned(scores, format="imagefolder", policy="auto", out=out)
    assert (out / "train" / CLASSES[1] / "escape.png").is_symlink() and not (tmp_path / "escape.png").exists()
    assert not (tmp_path / "out" / "escape.png").exists() and not (out / "escape.png").exists()


def test_class_name_traversal_is_refused(tmp_path):
    img = make_image(tmp_path / "img" / "x.png")
    frame = scores_frame(["x.png"], [img], [0], np.eye(2, dtype=np.float32)[:1], ["ok"])
    scores = save_scores(tmp_path / "scores.parquet", frame, ["..", "b"])
    with pytest.raises(ExportError, match=r"class name '\.\.' is not a plain file or folder name"):
        export_cleaned(scores, format="imagefolder", policy="auto", out=tmp_path / "tree")
    assert not (tmp_path / "tree").exists()


def test_interrupted_file_write_keeps_previous_file(scenario, tmp_path, monkeypatch):
    out = tmp_path / "clean.csv"
    export_cleaned(scenario, format="csv", policy="decisions", out=out)
    before = out.read_bytes(), (tmp_path / "clean.csv.audit.json").read_bytes()

    def crash_midway(cleaned, tmp, ctx):
        formats.write_csv(cleaned, tmp, ctx)
        with open(tmp, "r+b") as fh:
            fh.truncate(fh.seek(0, 2) // 2)  # half a file on disk, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setitem(formats.GENERIC, "csv", Format(crash_midway, soft=True))
    with pytest.raises(KeyboardInterrupt):
        export_cleaned(scenario, format="csv", policy="auto", out=out, force=True)
    assert (out.read_bytes(), (tmp_path / "clean.csv.audit.json").read_bytes()) == before
    assert leftovers(tmp_path) == []


def test_interrupted_tree_write_keeps_previous_tree(scenario, tmp_path, monkeypatch):
    out = tmp_path / "tree"
    export_cleaned(scenario, format="imagefolder", links="copy", policy="decisions", out=out)
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    copies = []

    def copy_then_fail(src, dst):
        if copies:
            raise OSError(28, "No space left on device")
        copies.append(shutil.copyfile(src, dst))

    monkeypatch.setattr(shutil, "copy2", copy_then_fail)
    with pytest.raises(OSError, match="No space left"):
        export_cleaned(scenario, format="imagefolder", links="copy", policy="auto", out=out, force=True)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before and len(copies) == 1
    assert leftovers(tmp_path) == []


def test_audit_records_inputs_policy_and_output(scenario, tmp_path):
    out = tmp_path / "clean.csv"
    summary = export_cleaned(scenario, format="csv", policy="auto", confidence=0.85, out=out, by="carol")
    audit = json.loads((tmp_path / "clean.csv.audit.json").read_text())
    assert audit["source"] == {
        "kind": "scores",
        "path": str(scenario.resolve()),
        "sha256": hashlib.sha256(scenario.read_bytes()).hexdigest(),
    }
    assert audit["output"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert audit["model"] == "runs/m/model.pt" and audit["exported_by"] == "carol"
    assert audit["policy"] == "auto" and audit["thresholds"]["confidence"] == 0.85
    assert audit["tool"] == {"name": "dmue-curate", "version": "0.1.0"} and audit["classes"] == CLASSES
    assert audit["summary"]["actions"] == summary.actions == {"keep": 2, "accept_suggestion": 2, "soft": 2, "drop": 3}
    assert {c["sample_id"]: c["to"] for c in audit["changes"] if c["action"] == "drop"} == {
        "f2": None,
        "f7": None,
        "f8": None,
    }
    assert audit["decisions"] == []


def test_refusals_name_the_problem_and_write_nothing(tmp_path):
    ds = tmp_path / "ds"
    for k in range(3):
        make_image(ds / f"{k}.png")
    (ds / "labels.csv").write_text("path,label\n0.png,a\n1.png,b\n2.png,c\n")
    (ds / "other.csv").write_text("path,label\n0.png,b\n1.png,b\n2.png,c\n")
    table = read_dataset(ds / "labels.csv")
    frame = scores_frame(table["sample_id"], table["filepath"], table["label"], np.eye(3, dtype=np.float32),
                         ["ok"] * 3)  # fmt: skip
    scores = save_scores(tmp_path / "scores.parquet", frame, CLASSES, dataset=str(tmp_path / "moved.csv"))
    out = tmp_path / "out.csv"
    cases = [
        (dict(format="native"), r"original dataset .*moved.csv is not found \(moved\?\); pass it with --dataset"),
        (
            dict(format="native", dataset=ds / "other.csv"),
            r"other.csv, row 2: column 'label' holds 'b' but the scores give a for '0.png'",
        ),
        (dict(format="rafdb", dataset=ds / "labels.csv"), r"--format rafdb does not match .* a csv dataset"),
        (dict(format="imagefolder", policy="soft"), r"policy soft gives every face a distribution"),
        (dict(format="csv", policy="strict"), r"unknown policy 'strict'"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ExportError, match=message):
            export_cleaned(scores, **{"policy": "auto", "out": out, **kwargs})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "scores.parquet"]
