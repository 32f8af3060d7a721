from __future__ import annotations

import pytest

from curate.data.errors import DataError, SkipReport
from curate.data.readers.csvlist import read_csvlist
from curate.data.table import name_class_ids, validate_table, vote_columns


@pytest.fixture
def images(tmp_path, make_image):
    for name in ("a.png", "b.png", "c.png", "sub/d.png"):
        make_image(tmp_path / "img" / name)
    return tmp_path / "img"


def test_names_with_split_and_extra_columns(tmp_path, images, write_csv):
    csv = write_csv(
        tmp_path / "labels.csv",
        [
            ["path", "label", "split", "note"],
            ["img/a.png", "happy", "train", "x"],
            ["img/b.png", "sad", "val", "y"],
            ["img/sub/d.png", "happy", "train", ""],
        ],
    )
    df = read_csvlist(csv)
    validate_table(df)
    assert df.attrs == {"classes": ["happy", "sad"], "source": str(csv), "format": "csv", "label_column": "label"}
    assert df["sample_id"].tolist() == ["img/a.png", "img/b.png", "img/sub/d.png"]
    assert df["filepath"].tolist() == [
        str(images / "a.png"),
        str(images / "b.png"),
        str(images / "sub" / "d.png"),
    ]
    assert df["label"].tolist() == [0, 1, 0]
    assert df["split"].tolist() == ["train", "val", "train"]
    assert df["note"].tolist()[:2] == ["x", "y"]


def test_integer_labels_classes_and_unlabeled(tmp_path, images, write_csv):
    csv = write_csv(tmp_path / "l.csv", [["file", "emotion"], ["img/a.png", 2], ["img/b.png", ""], ["img/c.png", -1]])
    df = read_csvlist(csv)
    assert df.attrs["classes"] == ["0", "1", "2"] and df["label"].tolist() == [2, -1, -1]
    assert df["label_name"].tolist() == ["2", "", ""]
    df = read_csvlist(csv, classes=["angry", "fear", "sad"], path_column="file", label_column="emotion")
    assert df["label_name"].tolist() == ["sad", "", ""]
    assert df["split"].tolist() == ["train"] * 3
    other = write_csv(tmp_path / "o.csv", [["file", "y"], ["img/a.png", 1], ["img/b.png", ""]])  # y parses as float
    assert read_csvlist(other, label_column="y", classes=["a", "b"])["label"].tolist() == [1, -1]


def test_bare_class_ids_take_a_models_names(tmp_path, images, write_csv):
    """Integer labels read without --classes take a model's class names in order, votes included;
    a table with names, or ids the names do not cover, is left alone."""
    rows = [["path", "label", "v0", "v1"], ["img/a.png", 2, 1, 3], ["img/b.png", "", 0, 0], ["img/c.png", 0, 4, 1]]
    df = read_csvlist(write_csv(tmp_path / "l.csv", rows), vote_columns={"v0": "0", "v1": "1"})
    named = name_class_ids(df, ["angry", "fear", "sad", "happy"])
    validate_table(named)
    assert named.attrs["classes"] == ["angry", "fear", "sad", "happy"]
    assert named["label"].tolist() == [2, -1, 0] and named["label_name"].tolist() == ["sad", "", "angry"]
    assert vote_columns(named) == ["votes_angry", "votes_fear", "votes_sad", "votes_happy"]
    assert named[vote_columns(named)].values.tolist() == [[1, 3, 0, 0], [0, 0, 0, 0], [4, 1, 0, 0]]
    assert name_class_ids(df, ["angry", "fear"]) is None  # id 2 has no name
    assert name_class_ids(df, ["0", "1", "2", "3"]) is None  # the model's classes are ids too
    assert name_class_ids(named, ["a", "b", "c", "d"]) is None  # the data has names


@pytest.mark.parametrize(("sep", "suffix"), [("\t", ".tsv"), (";", ".csv"), ("\t", ".txt")])
def test_delimiter_is_sniffed(tmp_path, images, write_csv, sep, suffix):
    csv = write_csv(tmp_path / f"l{suffix}", [["img", "class"], ["img/a.png", "x"], ["img/b.png", "y"]], sep=sep)
    assert read_csvlist(csv)["label_name"].tolist() == ["x", "y"]


def test_bom_and_crlf(tmp_path, images, write_csv):
    csv = write_csv(
        tmp_path / "l.csv",
        [["path", "label"], ["img/a.png", "happy"], ["img/b.png", "sad"]],
        bom=True,
        newline="\r\n",
    )
    df = read_csvlist(csv, path_column="path", label_column="label")
    assert df["label_name"].tolist() == ["happy", "sad"]  # no '\r' in the last column, no BOM in 'path'
    assert df["sample_id"].tolist() == ["img/a.png", "img/b.png"]


def test_vote_columns(tmp_path, images, write_csv):
    csv = write_csv(
        tmp_path / "l.csv",
        [["path", "label", "v_h", "v_s"], ["img/a.png", "happy", 3, 1], ["img/b.png", "sad", 0, 4]],
    )
    df = read_csvlist(csv, classes=["happy", "sad", "fear"], vote_columns={"v_h": "happy", "v_s": "sad"})
    assert df[["votes_happy", "votes_sad", "votes_fear"]].values.tolist() == [[3, 1, 0], [0, 4, 0]]
    assert str(df["votes_happy"].dtype) == "int64"


def test_bad_vote_value(tmp_path, images, write_csv):
    csv = write_csv(
        tmp_path / "l.csv",
        [["path", "label", "v"], ["img/a.png", "happy", 3], ["img/b.png", "happy", "lots"]],
    )
    with pytest.raises(DataError, match=r"l.csv, row 3: vote column 'v' holds 'lots', not a whole number >= 0"):
        read_csvlist(csv, vote_columns={"v": "happy"})


def test_label_not_in_class_list(tmp_path, images, write_csv):
    csv = write_csv(tmp_path / "labels.csv", [["path", "label"], ["img/a.png", "angry"], ["img/b.png", "happpy"]])
    with pytest.raises(DataError) as info:
        read_csvlist(csv, classes=["angry", "happy"])
    assert str(info.value) == (
        f"{csv}, row 3: label 'happpy' in column 'label' is not a known class (known: angry, happy). Fix the label or pass --classes."
    )


def test_integer_label_out_of_range(tmp_path, images, write_csv):
    csv = write_csv(tmp_path / "l.csv", [["path", "label"], ["img/a.png", 1], ["img/b.png", 7]])
    with pytest.raises(DataError, match=r"row 3: label 7 in column 'label' is not a class id \(known: 0 a, 1 b\)"):
        read_csvlist(csv, classes=["a", "b"])


def test_missing_zero_byte_and_directory_files(tmp_path, images, write_csv):
    (images / "empty.png").write_bytes(b"")
    (images / "folder.png").mkdir()
    csv = write_csv(
        tmp_path / "l.csv",
        [
            ["path", "label"],
            ["img/a.png", "x"],
            ["img/gone.png", "x"],
            ["img/empty.png", "x"],
            ["img/folder.png", "x"],
        ],
    )
    with pytest.raises(DataError) as info:
        read_csvlist(csv)
    assert str(info.value).startswith(
        f"{csv}, row 3: image file not found: 'img/gone.png' (looked for {images / 'gone.png'}). Restore"
    )
    report = SkipReport()
    df = read_csvlist(csv, on_bad="skip", report=report)
    assert df["sample_id"].tolist() == ["img/a.png"]
    assert [(s.row, s.reason.split(":")[0]) for s in report] == [
        (3, "image file not found"),
        (4, "image file is empty (0 bytes)"),
        (5, "is a directory where an image file is expected"),
    ]


def test_duplicate_paths_same_label(tmp_path, images, write_csv):
    csv = write_csv(
        tmp_path / "l.csv", [["path", "label"], ["img/a.png", "x"], ["img/b.png", "y"], ["./img/a.png", "x"]]
    )
    with pytest.raises(
        DataError,
        match=r"l.csv, row 4: duplicate image path 'img/a.png' \(first on row 2\)\. Delete the repeated row",
    ):
        read_csvlist(csv)
    report = SkipReport()
    df = read_csvlist(csv, on_bad="skip", report=report)
    assert df["sample_id"].tolist() == ["img/a.png", "img/b.png"]  # first kept
    assert [s.row for s in report] == [4]


def test_conflicting_labels_name_both_rows(tmp_path, images, write_csv):
    csv = write_csv(
        tmp_path / "l.csv",
        [["path", "label"], ["img/a.png", "happy"], ["img/b.png", "sad"], ["img/a.png", "sad"]],
    )
    with pytest.raises(DataError) as info:
        read_csvlist(csv)
    assert str(info.value) == (
        f"{csv}, row 2: image path 'img/a.png' has conflicting labels: 'happy' on row 2, 'sad' on row 4. "
        "Keep one row per image with the right label."
    )
    report = SkipReport()
    df = read_csvlist(csv, on_bad="skip", report=report)
    assert df["sample_id"].tolist() == ["img/b.png"]
    assert [s.row for s in report] == [2, 4]


def test_duplicate_ids(tmp_path, images, write_csv):
    csv = write_csv(tmp_path / "l.csv", [["id", "path", "label"], ["s1", "img/a.png", "x"], ["s1", "img/b.png", "x"]])
    with pytest.raises(DataError, match=r"row 3: duplicate sample id \(column 'id'\) 's1' \(first on row 2\)"):
        read_csvlist(csv, id_column="id")


def test_ids_stay_text_under_a_padded_header(tmp_path, images):
    csv = tmp_path / "l.csv"
    csv.write_text("path, id, label\nimg/a.png,007,x\nimg/b.png,7,x\n")
    df = read_csvlist(csv, id_column="id")
    assert df["sample_id"].tolist() == ["007", "7"]


def test_empty_path_and_blank_lines_keep_line_numbers(tmp_path, images):
    csv = tmp_path / "l.csv"
    csv.write_text("path,label\nimg/a.png,x\n\n,x\n")
    with pytest.raises(DataError, match=r"l.csv, row 4: the path in column 'path' is empty"):
        read_csvlist(csv)


def test_missing_column_and_guess_failures(tmp_path, images, write_csv):
    csv = write_csv(tmp_path / "l.csv", [["where", "what"], ["img/a.png", "x"]])
    with pytest.raises(
        DataError, match=r"l.csv: no path column found \(columns: where, what\)\. Pass --path-column NAME\."
    ):
        read_csvlist(csv)
    with pytest.raises(DataError, match=r"l.csv: column 'lbl' not found \(columns: where, what\)"):
        read_csvlist(csv, path_column="where", label_column="lbl")


def test_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="missing.csv: file not found"):
        read_csvlist(tmp_path / "missing.csv")
    (tmp_path / "latin1.csv").write_bytes("path,label\nimg/a.png,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.csv: is not utf-8-sig text .*Re-save the file as UTF-8"):
        read_csvlist(tmp_path / "latin1.csv")
    (tmp_path / "ragged.csv").write_text("path,label\na.png,x\nb.png,x,extra,more\n")
    with pytest.raises(DataError, match=r"ragged.csv, row 3: cannot be parsed"):
        read_csvlist(tmp_path / "ragged.csv")


def test_absolute_paths_and_image_root(tmp_path, images, write_csv):
    csv = write_csv(tmp_path / "lists" / "l.csv", [["path", "label"], [str(images / "a.png"), "x"], ["b.png", "y"]])
    df = read_csvlist(csv, image_root=images)
    assert df["filepath"].tolist() == [str(images / "a.png"), str(images / "b.png")]
