from __future__ import annotations

import pytest

from curate.data import read_dataset
from curate.data.errors import DataError, SkipReport
from curate.data.readers.rafdb import RAFDB_CLASSES, read_rafdb
from curate.data.table import validate_table


@pytest.fixture
def raf(tmp_path, make_image):
    root = tmp_path / "basic"
    for name in ("train_00001", "train_00002", "test_0001"):
        make_image(root / "Image" / "aligned" / f"{name}_aligned.jpg")
        make_image(root / "Image" / "original" / f"{name}.jpg")
    labels = root / "EmoLabel" / "list_patition_label.txt"
    labels.parent.mkdir()
    labels.write_text("train_00001.jpg 5\ntrain_00002.jpg 1\r\ntest_0001.jpg 7 \n")
    return root


def test_aligned_and_original(raf):
    df = read_rafdb(raf / "EmoLabel" / "list_patition_label.txt")
    validate_table(df)
    assert df.attrs["classes"] == list(RAFDB_CLASSES) and df.attrs["format"] == "rafdb"
    assert df["sample_id"].tolist() == ["train_00001.jpg", "train_00002.jpg", "test_0001.jpg"]
    assert df["label_name"].tolist() == ["sadness", "surprise", "neutral"] and df["label"].tolist() == [
        4,
        0,
        6,
    ]
    assert df["split"].tolist() == ["train", "train", "test"]
    assert df["filepath"][0] == str(raf / "Image" / "aligned" / "train_00001_aligned.jpg")
    original = read_rafdb(raf / "EmoLabel" / "list_patition_label.txt", images="original")
    assert original["filepath"][2] == str(raf / "Image" / "original" / "test_0001.jpg")


def test_auto_detection_from_file_and_folder(raf):
    assert read_dataset(raf / "EmoLabel" / "list_patition_label.txt").attrs["format"] == "rafdb"
    assert len(read_dataset(raf, images="original")) == 3


def test_bad_label_and_missing_image(raf):
    labels = raf / "EmoLabel" / "list_patition_label.txt"
    labels.write_text("train_00001.jpg 8\ntrain_00009.jpg 2\ntrain_00002.jpg 1\ntest_0001.jpg\n")
    with pytest.raises(DataError) as info:
        read_rafdb(labels)
    assert str(info.value).startswith(
        f"{labels}, row 1: label '8' is not 1..7 (1 surprise, 2 fear, 3 disgust, 4 happiness, 5 sadness, 6 anger, 7 neutral). Each line must read `<image name> <label 1..7>`."
    )
    report = SkipReport()
    df = read_rafdb(labels, on_bad="skip", report=report)
    assert df["sample_id"].tolist() == ["train_00002.jpg"]
    assert [(s.row, s.reason.split(" (")[0]) for s in report] == [
        (1, "label '8' is not 1..7"),
        (4, "the line has no label"),
        (2, "image file not found: 'Image/aligned/train_00009_aligned.jpg'"),
    ]


def test_a_line_with_extra_fields_is_named(raf):
    labels = raf / "EmoLabel" / "list_patition_label.txt"
    original = labels.read_text().splitlines()
    labels.write_text("\n".join([original[0] + " extra", *original[1:]]) + "\n")
    with pytest.raises(DataError, match=r"row 1: the line has 3 fields, not 2\. Each line must read"):
        read_rafdb(labels)
    report = SkipReport()
    df = read_rafdb(labels, on_bad="skip", report=report)
    assert len(df) == len(original) - 1 and [s.row for s in report] == [1]
