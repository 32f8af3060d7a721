from __future__ import annotations

import time

import pandas as pd
import pytest

from curate.data import read_dataset
from curate.data.errors import DataError, SkipReport
from curate.data.readers.ferplus_labels import read_ferplus_labels
from curate.data.table import FER2013_CLASSES, validate_table, vote_columns

HEADER = (
    "path,row,split,ferplus_name,fer2013_label,fer2013_label_name,label_source,neutral,happiness,surprise,"
    "sadness,anger,disgust,fear,contempt,unknown,NF,n_votes,ferplus_majority,ferplus_label,label_disagrees,"
    "votes_for_fer2013_label,vote_entropy,dup_group"
)


@pytest.fixture
def small(tmp_path, make_image):
    make_image(tmp_path / "images" / "FER2013Train" / "row00000.png")
    make_image(tmp_path / "images" / "FER2013Valid" / "row00012.png")
    csv = tmp_path / "labels.csv"
    csv.write_text(
        HEADER + "\n"
        "images/FER2013Train/row00000.png,0,Training,fer0000000.png,0,angry,row_index,4,0,0,1,3,2,0,0,0,0,10,neutral,6,1,3,1.8464,-1\n"
        "images/FER2013Valid/row00012.png,12,PublicTest,fer0000012.png,3,happy,row_index,0,9,0,0,0,0,0,0,0,1,10,happiness,3,0,9,0.0,7\n"
    )
    return csv


def test_small_file(small, tmp_path):
    df = read_ferplus_labels(small)
    validate_table(df)
    assert df.attrs["classes"] == list(FER2013_CLASSES) and df.attrs["format"] == "ferplus"
    assert df["sample_id"].tolist() == [
        "images/FER2013Train/row00000.png",
        "images/FER2013Valid/row00012.png",
    ]
    assert df["filepath"][1] == str(tmp_path / "images" / "FER2013Valid" / "row00012.png")
    assert df["label_name"].tolist() == ["angry", "happy"] and df["split"].tolist() == [
        "Training",
        "PublicTest",
    ]
    assert vote_columns(df) == [f"votes_{c}" for c in FER2013_CLASSES]
    # anger->angry, disgust->disgust, sadness->sad, neutral->neutral
    assert df.loc[0, ["votes_angry", "votes_disgust", "votes_sad", "votes_neutral", "votes_happy"]].tolist() == [
        3,
        2,
        1,
        4,
        0,
    ]
    assert df.loc[1, ["votes_happy", "NF"]].tolist() == [9, 1]
    for column in (
        "row",
        "ferplus_label",
        "label_disagrees",
        "vote_entropy",
        "dup_group",
        "contempt",
        "unknown",
        "NF",
    ):
        assert column in df.columns
    assert df["row"].tolist() == [0, 12] and df["dup_group"].tolist() == [-1, 7]


def test_auto_detected(small):
    assert read_dataset(small).attrs["format"] == "ferplus"


def test_label_out_of_range_and_missing_image(small):
    small.write_text(small.read_text().replace(",0,angry,", ",9,angry,").replace("row00012.png,12", "row00099.png,12"))
    with pytest.raises(
        DataError,
        match=r"labels.csv, row 2: label 9 in column 'fer2013_label' is not a class id \(known: 0 angry, 1 disgust",
    ):
        read_ferplus_labels(small)
    report = SkipReport()
    assert len(read_ferplus_labels(small, on_bad="skip", report=report)) == 0
    assert [s.row for s in report] == [2, 3] and report.items[1].reason.startswith("image file not found")


def test_not_a_ferplus_file(tmp_path):
    (tmp_path / "x.csv").write_text("path,label\na.png,1\n")
    with pytest.raises(DataError, match=r"x.csv: column 'row' not found .*use --format csv"):
        read_ferplus_labels(tmp_path / "x.csv")


@pytest.mark.realdata
def test_full_ferplus_labels(shared_data):
    start = time.perf_counter()
    df = read_dataset(shared_data / "ferplus" / "labels.csv", format="ferplus")
    assert time.perf_counter() - start < 2.0
    validate_table(df)
    assert len(df) == 35_710
    train = df[df["split"] == "Training"]
    counts = train["label_name"].value_counts().reindex(FER2013_CLASSES).tolist()
    assert counts == [3970, 434, 4078, 7186, 4797, 3161, 4932]
    assert df["split"].value_counts().to_dict() == {
        "Training": 28_558,
        "PublicTest": 3_579,
        "PrivateTest": 3_573,
    }
    raw = pd.read_csv(shared_data / "ferplus" / "labels.csv")
    for src, cls in (("happiness", "happy"), ("anger", "angry"), ("sadness", "sad"), ("fear", "fear")):
        assert (df[f"votes_{cls}"].to_numpy() == raw[src].to_numpy()).all()
    assert (df["label"].to_numpy() == raw["fer2013_label"].to_numpy()).all()
    assert int((df["label_disagrees"] == 1).sum()) == 11_483


def test_a_ferplus_file_with_a_label_column_says_which_column_its_labels_come_from(small):
    """A FERPlus labels.csv with an added ``label`` column (here the crowd's) is still read as FERPlus,
    so the one line a run logs names the column the labels came from and how to read the other."""
    from curate.data.table import describe

    table = pd.read_csv(small)
    table.assign(label=["neutral", "happy"]).to_csv(small, index=False)
    ferplus = read_dataset(small)
    assert ferplus["label_name"].tolist() == ["angry", "happy"]
    assert describe(ferplus) == (
        "read labels.csv as ferplus: 2 faces of 7 classes, the labels of its column fer2013_label"
        " (--format csv --label-column NAME reads another)"
    )
    crowd = read_dataset(small, format="csv", label_column="label", classes=list(FER2013_CLASSES))
    assert crowd["label_name"].tolist() == ["neutral", "happy"]
    assert describe(crowd).endswith("the labels of its column label (--label-column NAME reads another)")
