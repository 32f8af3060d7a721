from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from curate.data import read_dataset
from curate.data.errors import DataError, SkipReport
from curate.data.readers.fer2013 import read_fer2013
from curate.data.table import validate_table

VOTES = "neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"


def pixels(value: int) -> str:
    return " ".join([str(value)] * 2304)


@pytest.fixture
def fer_csv(tmp_path):
    csv = tmp_path / "fer2013.csv"
    rows = [(0, 10, "Training"), (3, 20, "Training"), (6, 30, "PublicTest"), (2, 40, "PrivateTest")]
    csv.write_text("emotion,pixels,Usage\n" + "".join(f"{e},{pixels(v)},{u}\n" for e, v, u in rows))
    return csv


def test_reads_and_writes_pngs_once(fer_csv, tmp_path):
    df = read_fer2013(fer_csv)
    validate_table(df)
    assert df.attrs["format"] == "fer2013"
    assert df["sample_id"].tolist() == ["row00000", "row00001", "row00002", "row00003"]
    assert df["label_name"].tolist() == ["angry", "happy", "neutral", "fear"]
    assert df["split"].tolist() == ["Training", "Training", "PublicTest", "PrivateTest"]
    cache = tmp_path / ".fer2013_png"
    names = [os.path.basename(f) for f in df["filepath"]]
    assert [n[:9] for n in names] == [f"row{i:05d}-" for i in range(4)] and len(set(names)) == 4
    assert df["filepath"].tolist() == [str(cache / n) for n in names]
    img = Image.open(cache / names[1])
    assert img.size == (48, 48) and img.mode == "L" and np.asarray(img).max() == 20
    assert sorted(p.name for p in cache.iterdir()) == sorted(names)  # no temp files
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    os.utime(cache / names[0], ns=(1, 1))
    df2 = read_fer2013(fer_csv)
    assert df2["filepath"].tolist() == df["filepath"].tolist()
    assert (cache / names[0]).stat().st_mtime_ns == 1  # reused, not rewritten
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir() if p.name != names[0]} == {
        k: v for k, v in stamps.items() if k != names[0]
    }


def test_another_file_in_the_same_folder_never_reuses_a_face(fer_csv, tmp_path):
    first = read_fer2013(fer_csv)
    other = tmp_path / "other.csv"
    other.write_text("emotion,pixels,Usage\n" + f"0,{pixels(200)},Training\n" * 2 + "0,1 2 3,Training\n")
    with pytest.raises(DataError, match="row 4: 'pixels' holds 3 values"):  # checked, not taken from the cache
        read_fer2013(other)
    df = read_fer2013(other, on_bad="skip")
    assert len(df) == 2 and not set(df["filepath"]) & set(first["filepath"])
    assert all(np.asarray(Image.open(f)).min() == 200 for f in df["filepath"])


def test_cache_dir_and_auto_detection(fer_csv, tmp_path):
    df = read_dataset(fer_csv, cache_dir=tmp_path / "cache")
    assert df.attrs["format"] == "fer2013" and os.path.dirname(df["filepath"][3]) == str(tmp_path / "cache")
    assert os.path.isfile(df["filepath"][3])


def test_bad_pixels(fer_csv):
    fer_csv.write_text(fer_csv.read_text().replace(pixels(20), "1 2 3").replace(pixels(30), pixels(300)))
    with pytest.raises(DataError) as info:
        read_fer2013(fer_csv)
    assert (
        str(info.value)
        == f"{fer_csv}, row 3: 'pixels' holds 3 values, not 2304 (a 48x48 face). Restore the row from the original fer2013.csv or delete it."
    )
    report = SkipReport()
    df = read_fer2013(fer_csv, on_bad="skip", report=report)
    assert df["sample_id"].tolist() == ["row00000", "row00003"]
    assert [(s.row, s.reason) for s in report] == [
        (3, "'pixels' holds 3 values, not 2304 (a 48x48 face)"),
        (4, "'pixels' holds values that are not whole numbers 0..255"),
    ]


def test_ferplus_votes_join_by_row_position(fer_csv, tmp_path):
    new = tmp_path / "fer2013new.csv"
    new.write_text(
        f"Usage,Image name,{VOTES}\n"
        "Training,fer0000000.png,4,0,0,1,3,2,0,0,0,0\n"
        "Training,,0,0,0,0,0,0,0,0,0,10\n"
        "PublicTest,fer0000001.png,0,8,0,0,0,0,0,1,1,0\n"  # the name says 1, the row is 2: rows win
        "PrivateTest,fer0000002.png,0,0,0,0,0,0,7,0,3,0\n"
    )
    report = SkipReport()
    df = read_fer2013(fer_csv, ferplus_csv=new, report=report)
    validate_table(df)
    assert df["sample_id"].tolist() == ["row00000", "row00002", "row00003"]
    assert df["votes_happy"].tolist() == [0, 8, 0] and df["votes_angry"].tolist() == [3, 0, 0]
    assert df["votes_fear"].tolist() == [0, 0, 7] and df["unknown"].tolist() == [0, 1, 3]
    assert df["ferplus_name"].tolist() == ["fer0000000.png", "fer0000001.png", "fer0000002.png"]
    assert [(os.path.basename(s.path), s.row) for s in report.excluded] == [("fer2013new.csv", 3)]
    assert "no image name" in report.excluded[0].reason and report.items == []


def test_ferplus_csv_not_aligned(fer_csv, tmp_path):
    new = tmp_path / "fer2013new.csv"
    new.write_text(f"Usage,Image name,{VOTES}\nTraining,a.png,1,0,0,0,0,0,0,0,0,0\n")
    with pytest.raises(
        DataError,
        match=r"fer2013new.csv: has 1 data rows but .*fer2013.csv has 4; the two files must be row-aligned",
    ):
        read_fer2013(fer_csv, ferplus_csv=new)
    new.write_text(f"Usage,Image name,{VOTES}\n" + "PublicTest,a.png,1,0,0,0,0,0,0,0,0,0\n" * 4)
    with pytest.raises(
        DataError,
        match=r"fer2013.csv, row 2: Usage 'Training' here but 'PublicTest' on the same row of .*not row-aligned",
    ):
        read_fer2013(fer_csv, ferplus_csv=new)
