"""A format added in one file (``toy_format.py``) is detected, read, run and exported like a built-in."""

from __future__ import annotations

import importlib
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

from curate import records
from curate.cli import main
from curate.data import read_dataset
from curate.data.synthetic import generate
from curate.formats import detect_format, registry

FAST = ["--epochs", "1", "--ramp-a", "1", "--workers", "0", "--image-size", "32", "--no-load"]


@pytest.fixture
def toy(monkeypatch):
    """The toy format, registered for this test only."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    sys.modules.pop("toy_format", None)
    return importlib.import_module("toy_format")


@pytest.fixture(scope="module")
def toy_file(tmp_path_factory):
    """A ``.toy`` list of 40 synthetic faces, one of them missing on disk."""
    root = tmp_path_factory.mktemp("toy")
    generate(40, root, seed=3, noise_rate=0.3, image_size=32)
    labels = pd.read_csv(root / "labels.csv")
    classes = sorted(set(labels["label"]))
    lines = [f"classes: {','.join(classes)}", *(f"{p} {c}" for p, c in zip(labels["path"], labels["label"]))]
    (root / "faces.toy").write_text("\n".join([*lines, f"images/missing.png {classes[0]}"]) + "\n")
    return root / "faces.toy"


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_detected_and_read(toy, toy_file):
    assert detect_format(toy_file) == "toy"
    table = read_dataset(toy_file, on_bad="skip", split="val")
    assert len(table) == 40 and set(table["split"]) == {"val"} and table.attrs["format"] == "toy"


def test_inspect(toy, toy_file):
    for args in ([], ["--format", "toy"]):
        result = invoke("inspect", toy_file, "--no-check-images", *args)
        assert result.exit_code == 1, result.output  # the missing image is an error
        assert "missing.png" in result.output and "40" in result.output


def test_run_then_export_native(toy, toy_file, tmp_path):
    result = invoke("run", toy_file, "--on-bad", "skip", "--out", tmp_path / "run", *FAST)
    assert result.exit_code == 0, result.output
    scores = tmp_path / "run" / "scores.parquet"
    assert len(records.read_scores(scores)) == 40
    assert records.read_metadata(scores)["dataset_format"] == "toy"

    out = toy_file.with_name("clean.toy")  # beside the original: its image paths are relative
    result = invoke("export", scores, "--format", "native", "--policy", "decisions", "--out", out)
    assert result.exit_code == 0, result.output
    assert "format toy" in result.output
    cleaned, given = read_dataset(out), read_dataset(toy_file, on_bad="skip")
    assert cleaned.attrs["format"] == "toy"  # every face kept with its given label (no curator decided)
    assert cleaned[["sample_id", "label"]].equals(given[["sample_id", "label"]])
