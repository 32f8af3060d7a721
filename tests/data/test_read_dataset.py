from __future__ import annotations

from inspect import signature

import pytest

from curate.cli.options import reader_format_choices
from curate.data import DataError, read_dataset
from curate.formats import Lazy, detect_format, format_names, registered_formats

FERPLUS_HEADER = (
    "path,row,split,fer2013_label,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
)


def test_cli_format_choices_match_readers():
    assert ("auto", *format_names()) == reader_format_choices()


def test_declared_options_are_the_readers_parameters():
    for fmt in registered_formats():
        if isinstance(fmt.read, Lazy):
            parameters = set(signature(fmt.read.resolve()).parameters) - {"path", "name", "on_bad", "report"}
            assert set(fmt.options) == parameters, fmt.name


def test_detection(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "fer2013.csv").write_text("emotion,pixels,Usage\n")
    (tmp_path / "labels.csv").write_text(FERPLUS_HEADER)
    (tmp_path / "list.tsv").write_text("file\tlabel\n")
    (tmp_path / "training.csv").write_text("subDirectory_filePath,face_x,expression\n")
    (tmp_path / "list_patition_label.txt").write_text("train_00001.jpg 1\n")
    assert detect_format(tmp_path / "folder") == "imagefolder"
    assert detect_format(tmp_path / "fer2013.csv") == "fer2013"
    assert detect_format(tmp_path / "labels.csv") == "ferplus"
    assert detect_format(tmp_path / "labels.csv", {"label_column"}) == "csv"  # column options: generic reader
    assert detect_format(tmp_path / "list.tsv") == "csv"
    assert detect_format(tmp_path / "training.csv") == "affectnet"
    assert detect_format(tmp_path / "list_patition_label.txt") == "rafdb"
    assert detect_format("fiftyone:my-set") == "fiftyone"
    with pytest.raises(DataError, match=r"nothing.csv: not found\. Check the path"):
        detect_format(tmp_path / "nothing.csv")


def test_options_are_checked_against_the_reader(tmp_path, make_image):
    make_image(tmp_path / "happy" / "1.png")
    assert len(read_dataset(tmp_path, classes=["happy", "sad"], path_column=None)) == 1  # None options are ignored
    with pytest.raises(
        DataError,
        match=r"option\(s\) label_column do not apply to the imagefolder reader \(it takes: classes\)",
    ):
        read_dataset(tmp_path, label_column="x")
    with pytest.raises(ValueError, match="unknown format 'parquet'"):
        read_dataset(tmp_path, format="parquet")


def test_explicit_format_and_skip(tmp_path, make_image, write_csv):
    make_image(tmp_path / "a.png")
    csv = write_csv(tmp_path / "labels.txt", [["image", "label"], ["a.png", "x"], ["b.png", "y"]])
    df = read_dataset(csv, format="csv", on_bad="skip")
    assert df["sample_id"].tolist() == ["a.png"] and df.attrs["classes"] == ["x", "y"]
