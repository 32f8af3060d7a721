from __future__ import annotations

import os

import pytest

from curate.data.errors import DataError, SkipReport
from curate.data.readers.imagefolder import read_imagefolder
from curate.data.table import validate_table


def test_class_folders(tmp_path, make_image):
    for name in ("happy/1.png", "happy/2.jpg", "sad/1.png", "angry/x.PNG"):
        make_image(tmp_path / name)
    df = read_imagefolder(tmp_path)
    validate_table(df)
    assert df.attrs["classes"] == ["angry", "happy", "sad"] and df.attrs["format"] == "imagefolder"
    assert df["sample_id"].tolist() == ["angry/x.PNG", "happy/1.png", "happy/2.jpg", "sad/1.png"]
    assert df["label"].tolist() == [0, 1, 1, 2]
    assert set(df["split"]) == {"train"}
    assert df["filepath"][0] == str(tmp_path / "angry" / "x.PNG")


def test_split_folders(tmp_path, make_image):
    for name in ("train/happy/1.png", "train/sad/1.png", "Valid/happy/2.png", "test/fear/3.png"):
        make_image(tmp_path / name)
    df = read_imagefolder(tmp_path)
    assert df.attrs["classes"] == ["fear", "happy", "sad"]
    assert list(zip(df["split"], df["label_name"])) == [
        ("Valid", "happy"),
        ("test", "fear"),
        ("train", "happy"),
        ("train", "sad"),
    ]


def test_hidden_ignored_non_images_and_loose_files_warned(tmp_path, make_image):
    make_image(tmp_path / "happy" / "1.png")
    make_image(tmp_path / "happy" / ".hidden.png")
    make_image(tmp_path / ".cache" / "x.png")
    (tmp_path / "happy" / "notes.txt").write_text("hi")
    (tmp_path / "README.md").write_text("hi")
    report = SkipReport()
    df = read_imagefolder(tmp_path, report=report)
    assert df["sample_id"].tolist() == ["happy/1.png"] and df.attrs["classes"] == ["happy"]
    assert len(report) == 0
    assert sorted((os.path.basename(w.path), w.reason) for w in report.warnings) == [
        ("README.md", "file outside a class folder ignored"),
        ("notes.txt", "non-image file ignored"),
    ]


def test_empty_class_folder_keeps_the_class(tmp_path, make_image):
    make_image(tmp_path / "happy" / "1.png")
    (tmp_path / "sad").mkdir()
    df = read_imagefolder(tmp_path)
    assert df.attrs["classes"] == ["happy", "sad"] and len(df) == 1


def test_given_classes_and_unknown_folder(tmp_path, make_image):
    make_image(tmp_path / "happy" / "1.png")
    make_image(tmp_path / "misc" / "1.png")
    with pytest.raises(DataError) as info:
        read_imagefolder(tmp_path, classes=["sad", "happy"])
    assert (
        str(info.value)
        == f"{tmp_path / 'misc'}: class folder 'misc' is not in the class list (sad, happy). Add it to --classes or remove the folder."
    )
    report = SkipReport()
    df = read_imagefolder(tmp_path, classes=["sad", "happy"], on_bad="skip", report=report)
    assert df["label"].tolist() == [1] and df.attrs["classes"] == ["sad", "happy"]
    assert [s.path for s in report] == [str(tmp_path / "misc")]


def test_zero_byte_and_directory_named_like_an_image(tmp_path, make_image):
    make_image(tmp_path / "happy" / "1.png")
    (tmp_path / "happy" / "0.png").write_bytes(b"")
    (tmp_path / "happy" / "dir.jpg").mkdir()
    with pytest.raises(DataError, match=r"happy/0.png: image file is empty \(0 bytes\)\. Restore or re-export"):
        read_imagefolder(tmp_path)
    report = SkipReport()
    df = read_imagefolder(tmp_path, on_bad="skip", report=report)
    assert df["sample_id"].tolist() == ["happy/1.png"]
    assert [s.reason for s in report] == [
        "image file is empty (0 bytes)",
        "is a directory where an image file is expected",
    ]


def test_non_utf8_file_and_folder_names(tmp_path, make_image):
    make_image(tmp_path / "happy" / "1.png")
    try:
        open(os.fsencode(tmp_path / "happy") + b"/caf\xe9.png", "wb").close()
        os.mkdir(os.fsencode(tmp_path) + b"/tr\xe8s")
    except OSError:
        pytest.skip("this filesystem refuses non-UTF-8 names")
    with pytest.raises(DataError) as info:
        read_imagefolder(tmp_path)
    assert str(info.value).startswith(f"{tmp_path}/tr\\xe8s: folder name is not valid UTF-8. Rename it to a UTF-8 name")
    report = SkipReport()
    df = read_imagefolder(tmp_path, on_bad="skip", report=report)
    assert df["sample_id"].tolist() == ["happy/1.png"]
    assert sorted(s.path.rsplit("/", 1)[1] for s in report) == ["caf\\xe9.png", "tr\\xe8s"]
    report.to_csv(tmp_path / "skipped.csv")  # printable, writable as UTF-8


def test_not_a_folder_or_no_classes(tmp_path):
    with pytest.raises(DataError, match="nothing: is not a folder"):
        read_imagefolder(tmp_path / "nothing")
    with pytest.raises(DataError, match=r"holds no class folders\. Put images in <root>/<class>/"):
        read_imagefolder(tmp_path)
