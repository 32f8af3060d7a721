from __future__ import annotations

import pytest

from curate.data import read_dataset
from curate.data.errors import DataError, SkipReport
from curate.data.readers.affectnet import AFFECTNET_CLASSES, read_affectnet
from curate.data.table import validate_table
from curate.formats.affectnet import AFFECTNET_COLUMNS


@pytest.fixture
def affectnet(tmp_path, make_image):
    for i in range(6):
        make_image(tmp_path / "Manually_Annotated_Images" / "1" / f"{i}.jpg")
    rows = [(0, 1), (1, 7), (2, 8), (3, 10), (4, 3), (5, 0)]
    lines = [f'1/{i}.jpg,10,10,100,100,"1.0;2.0",{e},0.5,-0.25' for i, e in rows]
    csv = tmp_path / "training.csv"
    csv.write_text(",".join(AFFECTNET_COLUMNS) + "\n" + "\n".join(lines) + "\n")
    return csv


def test_eight_classes_and_non_emotions_skipped(affectnet, tmp_path):
    report = SkipReport()
    df = read_affectnet(affectnet, report=report)
    validate_table(df)
    assert df.attrs["classes"] == list(AFFECTNET_CLASSES) and df.attrs["format"] == "affectnet"
    assert df["sample_id"].tolist() == ["1/0.jpg", "1/1.jpg", "1/4.jpg", "1/5.jpg"]
    assert df["label_name"].tolist() == ["happy", "contempt", "surprise", "neutral"]
    assert df["split"].tolist() == ["train"] * 4
    assert df["filepath"][0] == str(tmp_path / "Manually_Annotated_Images" / "1" / "0.jpg")
    assert df["valence"].tolist()[0] == 0.5 and df["facial_landmarks"][0] == "1.0;2.0"
    assert [(s.row, s.reason) for s in report.excluded] == [  # by design: not problems
        (4, "expression 8 (None) is not one of the 8 classes"),
        (5, "expression 10 (Non-Face) is not one of the 8 classes"),
    ]
    assert report.items == [] and "left out 2 row(s) by design" in report.summary()


def test_seven_classes_and_headerless_validation_file(affectnet, tmp_path):
    validation = tmp_path / "validation.csv"
    validation.write_text(affectnet.read_text().split("\n", 1)[1])
    report = SkipReport()
    df = read_affectnet(validation, num_classes=7, report=report)
    assert df.attrs["classes"] == list(AFFECTNET_CLASSES[:7])
    assert df["sample_id"].tolist() == ["1/0.jpg", "1/4.jpg", "1/5.jpg"] and set(df["split"]) == {"val"}
    assert [s.row for s in report.excluded] == [2, 3, 4]  # no header: data starts on line 1
    assert report.excluded[0].reason == "expression 7 (contempt) is not one of the 7 classes"


def test_auto_detection(affectnet):
    assert read_dataset(affectnet).attrs["format"] == "affectnet"


def test_bad_expression_and_missing_image(affectnet):
    affectnet.write_text(
        affectnet.read_text().replace('"1.0;2.0",3,', '"1.0;2.0",smile,').replace("1/5.jpg", "1/99.jpg")
    )
    with pytest.raises(
        DataError, match=r"training.csv, row 6: label 'smile' in column 'expression' is not a known class"
    ):
        read_affectnet(affectnet)
    report = SkipReport()
    df = read_affectnet(affectnet, on_bad="skip", report=report)
    assert df["sample_id"].tolist() == ["1/0.jpg", "1/1.jpg"]
    assert [s.row for s in report.excluded] == [4, 5]  # non-emotion categories: by design
    assert [s.row for s in report] == [6, 7] and report.items[1].reason.startswith("image file not found: '1/99.jpg'")


def test_inspect_lists_the_non_emotion_rows_as_warnings(affectnet):
    from click.testing import CliRunner

    from curate.cli import main

    result = CliRunner().invoke(main, ["inspect", str(affectnet), "--no-check-images"])
    assert result.exit_code == 0, result.output
    assert "WARNING: left out by design (2)" in result.output and "ERROR" not in result.output
