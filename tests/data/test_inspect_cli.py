from __future__ import annotations

import csv
from inspect import signature

import click
import pytest
from click.testing import CliRunner

from curate.cli import main
from curate.cli.options import reader_options
from curate.data.errors import SkipReport
from curate.data.inspect import format_report, inspect_table
from curate.data.load import READER_KEYS, load_table
from curate.data.table import make_table


def run(*args: str):
    return CliRunner().invoke(main, ["inspect", *map(str, args)])


@pytest.fixture
def folder(tmp_path, make_image):
    for color, name in enumerate(  # distinct pixels: identical images would be reported as duplicates
        ("train/happy/1.png", "train/happy/2.png", "train/sad/1.png", "val/happy/3.png", "val/sad/4.png")
    ):
        make_image(tmp_path / "ds" / name, color=color * 40)
    (tmp_path / "ds" / "train" / "fear").mkdir()
    return tmp_path / "ds"


def test_histogram_splits_and_warnings_exit_0(folder):
    result = run(folder)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"Dataset: {folder} (format: imagefolder)" in out
    assert "5 images, 3 classes, 2 split(s): train 3, val 2" in out
    lines = out.splitlines()
    assert lines[lines.index("Images per class and split:") + 1].split() == ["class", "train", "val", "total"]
    assert ["happy", "2", "1", "3"] in [line.split() for line in lines]
    assert ["total", "3", "2", "5"] in [line.split() for line in lines]
    assert "Problems: 0 error(s), 1 warning(s)" in out
    assert (
        "WARNING: empty class (1)\n  class 'fear' has no images. Add images for it, or leave it out of --classes."
        in out
    )


def test_bad_images_are_errors_exit_1(folder):
    (folder / "train" / "happy" / "1.png").write_bytes(b"")
    (folder / "val" / "sad" / "4.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = run(folder, "--skip-report", folder.parent / "skipped.csv")
    assert result.exit_code == 1
    assert "ERROR: skipped while reading (1)" in result.stdout
    assert f"{folder}/train/happy/1.png: image file is empty (0 bytes)" in result.stdout
    assert "ERROR: bad image file (1)" in result.stdout
    assert (
        f"{folder}/val/sad/4.png: image is corrupt or truncated (Truncated File Read). Restore or re-export"
        in result.stdout
    )
    assert "Problems: 2 error(s), 1 warning(s)" in result.stdout
    rows = list(csv.DictReader((folder.parent / "skipped.csv").open()))
    assert [(r["level"], r["reason"]) for r in rows] == [("skipped", "image file is empty (0 bytes)")]
    assert run(folder, "--no-check-images").stdout.count("bad image file") == 0

    for bad, why in (
        (folder / "train" / "report.csv", "would overwrite or add to the input"),
        (folder.parent / "nope" / "report.csv", "does not exist"),
    ):
        result = run(folder, "--skip-report", bad)
        assert result.exit_code == 1 and why in result.output and not bad.exists()


def test_on_bad_error_stops_with_the_message(folder):
    (folder / "train" / "happy" / "1.png").write_bytes(b"")
    result = run(folder, "--on-bad", "error")
    assert result.exit_code == 1
    assert (
        f"Error: {folder}/train/happy/1.png: image file is empty (0 bytes). Restore or re-export the image"
        in result.output
    )


def test_csv_problems(tmp_path, make_image, write_csv):
    make_image(tmp_path / "a.png")
    make_image(tmp_path / "b.png")
    labels = write_csv(
        tmp_path / "labels.csv",
        [
            ["path", "label"],
            ["a.png", "happy"],
            ["b.png", "happpy"],
            ["a.png", "sad"],
            ["c.png", "happy"],
        ],
    )
    result = run(labels, "--classes", "happy,sad")
    assert result.exit_code == 1
    out = result.stdout
    assert "Problems: 4 error(s), 2 warning(s)" in out
    assert f"{labels}, row 3: label 'happpy' in column 'label' is not a known class (known: happy, sad)" in out
    assert f"{labels}, row 2: image path 'a.png' has conflicting labels: 'happy' on row 2, 'sad' on row 4" in out
    assert f"{labels}, row 5: image file not found: 'c.png'" in out
    assert "class 'happy' has no images" in out and "class 'sad' has no images" in out
    result = run(labels, "--classes", "happy,sad", "--on-bad", "error")
    assert (
        result.exit_code == 1
        and "Error: " + f"{labels}, row 2: image path 'a.png' has conflicting labels" in result.output
    )


def test_split_filter(folder):
    result = run(folder, "--split", "val")
    assert result.exit_code == 0 and "2 images, 3 classes, 1 split(s): val 2" in result.stdout
    result = run(folder, "--split", "test")
    assert result.exit_code == 1 and "split(s) test not found (splits: train, val). Fix --split." in result.output


def test_reader_option_not_for_format(folder):
    result = run(folder, "--label-column", "x")
    assert result.exit_code == 1 and "option(s) label_column do not apply to the imagefolder reader" in result.output


def test_help_has_examples():
    result = CliRunner().invoke(main, ["inspect", "--help"])
    assert result.exit_code == 0 and "Examples:\n    curate inspect" in result.output
    for option in (
        "--format",
        "--path-column",
        "--label-column",
        "--split-column",
        "--id-column",
        "--classes",
        "--split",
        "--ferplus-csv",
        "--on-bad",
        "--skip-report",
        "--check-images / --no-check-images",
    ):
        assert option in result.output


def test_reader_keys_match_options_and_load_table():
    command = click.command("x")(reader_options(lambda **kw: None))
    assert tuple(p.name for p in command.params) == READER_KEYS
    assert tuple(signature(load_table).parameters)[1:-3] == READER_KEYS  # then report, decodable, log


def test_inspect_table_duplicates_single_class_and_votes(tmp_path, make_image):
    path = str(make_image(tmp_path / "a.png"))
    df = make_table(["s1", "s2", "s3"], [path, path, path], [0, 0, 1], ["x", "y", "z"], extra=None)
    df["votes_x"], df["votes_y"] = [1, 0, -2], [0, 0, 1]
    report = SkipReport()
    result = inspect_table(df, report)
    messages = {(p.level, p.kind): p.message for p in result.problems}
    assert (
        messages[("error", "duplicate image path")] == f"{path} appears 3 times (labels: x, y). Keep one row per image."
    )
    assert messages[("warning", "class with one image")].startswith("class 'y' has only one image (s3)")
    assert messages[("warning", "empty class")].startswith("class 'z' has no images")
    assert messages[("warning", "incomplete vote columns")].startswith("vote columns votes_z are missing")
    assert messages[("error", "bad vote counts")] == "s3: vote counts must be whole numbers >= 0. Fix the votes."
    assert messages[("warning", "rows without votes")].startswith("1 image(s) have no votes for any class (s2)")
    assert result.counts.loc["total", "total"] == 3 and result.counts.loc["z", "train"] == 0
    assert "ERROR: duplicate image path (1)" in format_report(result)


def test_a_dataset_without_images_is_an_error(tmp_path):
    (tmp_path / "l.csv").write_text("path,label\n")
    result = run(tmp_path / "l.csv")
    assert result.exit_code == 1 and "ERROR: no images (1)" in result.output


def test_unlabeled_rows_in_histogram(tmp_path, make_image):
    path = str(make_image(tmp_path / "a.png"))
    df = make_table(["s1", "s2"], [path, path + "x"], [0, -1], ["x"])
    result = inspect_table(df)
    assert result.counts.loc["(unlabeled)", "total"] == 1
    assert [p.message for p in result.problems if p.kind == "no label"] == [
        "s2: no label. `curate train`, `run` and `score` need one: label it or remove its row."
    ]


@pytest.mark.realdata
def test_realdata_ferplus_generic_csv(shared_data):
    result = run(
        shared_data / "ferplus" / "labels.csv",
        "--path-column",
        "path",
        "--label-column",
        "fer2013_label",
        "--no-check-images",
    )
    assert result.exit_code == 0, result.output
    assert "(format: csv)" in result.stdout
    assert "35,710 images, 7 classes, 3 split(s): Training 28,558, PublicTest 3,579, PrivateTest 3,573" in result.stdout


@pytest.mark.realdata
def test_realdata_ferplus_mini_with_image_check(shared_data):
    result = run(shared_data / "ferplus-mini" / "labels.csv")
    assert result.exit_code == 0, result.output
    assert (
        "(format: ferplus)" in result.stdout and "2,000 images, 7 classes, 1 split(s): Training 2,000" in result.stdout
    )
    assert [line.split() for line in result.stdout.splitlines() if line.startswith("disgust")] == [
        ["disgust", "286", "286"]
    ]
    assert "No problems found." in result.stdout
