"""Round trip per format: export (policy auto on a fixed score pattern), read the file back with the data
layer's reader (or pandas for jsonl/parquet), and compare with what was exported."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from export_helpers import auto_scores, expected_auto, make_image
from PIL import Image

from curate.data import read_dataset
from curate.data.readers.rafdb import RAFDB_CLASSES
from curate.data.table import FER2013_CLASSES
from curate.export import export_cleaned
from curate.formats.affectnet import AFFECTNET_COLUMNS
from curate.formats.ferplus import FERPLUS_LABELS_COLUMNS

COLUMNS = ["sample_id", "filepath", "split", "label"]


@pytest.fixture
def folder_table(tmp_path):
    """An ImageFolder with split folders: 9 faces over classes a, b, c."""
    root = tmp_path / "ds"
    for k in range(9):
        make_image(root / ("train" if k < 6 else "test") / "abc"[k % 3] / f"{k}.png", 20 * k)
    return read_dataset(root)


def export(tmp_path: Path, table: pd.DataFrame, out: Path | str, **kw) -> tuple[Path, object]:
    """Score ``table`` with ``auto_scores`` and export with policy auto to ``out`` (a name: in tmp_path/out)."""
    scores = auto_scores(table, tmp_path / "scores.parquet")
    out = tmp_path / "out" / out if isinstance(out, str) else out
    out.parent.mkdir(exist_ok=True)
    return out, export_cleaned(scores, policy="auto", out=out, **kw)


def records(df: pd.DataFrame) -> list[dict]:
    return df[COLUMNS].astype({"label": int}).to_dict("records")


def test_generic_csv(tmp_path, folder_table):
    out, summary = export(tmp_path, folder_table, "clean.csv", format="csv")
    classes = folder_table.attrs["classes"]
    back = read_dataset(
        out,
        format="csv",
        path_column="filepath",
        label_column="clean_label",
        split_column="split",
        id_column="sample_id",
        classes=classes,
    )
    expected = expected_auto(folder_table)
    assert records(back) == records(expected) and summary.written == len(back) == 7
    raw = pd.read_csv(out).set_index("sample_id")
    soft = raw.loc[folder_table["sample_id"][3]]  # row 3: ambiguous -> soft, p = 0.55 / 0.45
    assert soft["action"] == "soft" and soft["given_label"] == soft["clean_label"]
    assert sorted(soft[[f"p_{c}" for c in classes]].round(2)) == [0.0, 0.45, 0.55]
    assert raw["clean_label_id"].tolist() == expected["label"].tolist()


def test_generic_jsonl(tmp_path, folder_table):
    out, _ = export(tmp_path, folder_table, "clean.jsonl", format="jsonl")
    classes = folder_table.attrs["classes"]
    back = pd.read_json(out, lines=True)
    expected = expected_auto(folder_table)
    assert back["sample_id"].tolist() == expected["sample_id"].tolist()
    assert back["filepath"].tolist() == expected["filepath"].tolist()
    assert back["clean_label"].tolist() == [classes[i] for i in expected["label"]]
    assert [int(np.argmax(p)) for p in back["soft_label"]] == expected["label"].tolist()
    assert all(len(p) == len(classes) and abs(sum(p) - 1) < 1e-6 for p in back["soft_label"])


def test_generic_parquet(tmp_path, folder_table):
    out, _ = export(tmp_path, folder_table, "clean.parquet", format="parquet")
    back = pd.read_parquet(out)
    classes = json.loads(pq.read_schema(out).metadata[b"curate_export"])["classes"]
    expected = expected_auto(folder_table)
    assert classes == folder_table.attrs["classes"]
    assert back["sample_id"].tolist() == expected["sample_id"].tolist()
    assert back["clean_label"].tolist() == [classes[i] for i in expected["label"]]
    assert back["clean_label_id"].tolist() == expected["label"].tolist()
    assert back["split"].tolist() == expected["split"].tolist()


@pytest.mark.parametrize("links", ["symlink", "copy"])
def test_imagefolder(tmp_path, folder_table, links):
    out, summary = export(tmp_path, folder_table, "tree", format="imagefolder", links=links)
    back = read_dataset(out)
    classes = folder_table.attrs["classes"]
    expected = expected_auto(folder_table)
    expected.index = [Path(p).name for p in expected["filepath"]]  # file names are unique here
    origin = expected.loc[[Path(p).name for p in back["filepath"]]]
    assert len(back) == len(expected) == summary.written and set(origin.index) == set(expected.index)
    assert back["label_name"].tolist() == [classes[k] for k in origin["label"]]
    assert back["split"].tolist() == origin["split"].tolist()
    assert all(Path(a).read_bytes() == Path(b).read_bytes() for a, b in zip(back["filepath"], origin["filepath"]))
    if links == "symlink":
        assert [os.path.realpath(p) for p in back["filepath"]] == origin["filepath"].tolist()
    else:
        assert not any(os.path.islink(p) for p in back["filepath"])


def test_source_csv(tmp_path):
    src = tmp_path / "ds" / "labels.csv"
    rows = [f"imgs/{k}.png,{'abc'[k % 3]},{'train' if k < 6 else 'val'},note {k}" for k in range(9)]
    for k in range(9):
        make_image(src.parent / "imgs" / f"{k}.png", 20 * k)
    src.write_text("file,emotion,split,note\n" + "\n".join(rows) + "\n")
    table = read_dataset(src)
    scored = table[table["sample_id"] != "imgs/8.png"].reset_index(drop=True)
    scored.attrs = table.attrs
    # relative image paths: the cleaned file goes beside the original, as training code expects
    out, summary = export(tmp_path, scored, src.parent / "labels.clean.csv", format="native")
    back = read_dataset(out).set_index("sample_id")
    expected = expected_auto(scored)
    assert summary.format == "source-csv" and summary.unscored_rows == 1
    assert list(back.index) == [*expected["sample_id"], "imgs/8.png"]
    assert back["label"].tolist() == [*expected["label"], table["label"][8]]
    assert back["filepath"].tolist() == [*expected["filepath"], table["filepath"][8]]
    assert back["note"].tolist() == [f"note {k}" for k in (0, 1, 3, 4, 5, 7, 8)]


def test_a_repeated_row_the_reader_skipped_is_copied_unchanged(tmp_path):
    src = tmp_path / "ds" / "labels.csv"
    for k in range(4):
        make_image(src.parent / f"{k}.png", 30 * k)
    src.write_text("path,label\n0.png,a\n1.png,b\n1.png,b\n2.png,c\n3.png,a\n")
    table = read_dataset(src, on_bad="skip", classes=["a", "b", "c"])
    assert len(table) == 4
    out, summary = export(tmp_path, table, src.parent / "clean.csv", format="native")
    lines = out.read_text().splitlines()
    assert summary.unscored_rows == 1 and summary.written == len(expected_auto(table)) == 3
    assert lines[2:4] == ["1.png,c", "1.png,b"]  # the face's row relabeled, its repeat copied as it was


def test_ferplus(tmp_path):
    src = tmp_path / "ferplus" / "labels.csv"
    lines = [",".join(FERPLUS_LABELS_COLUMNS)]
    for k in range(8):
        make_image(src.parent / "Training" / f"fer{k:07d}.png", 20 * k)
        votes = [str((k + j) % 5) for j in range(10)]
        lines.append(f"Training/fer{k:07d}.png,{k},Training,{k % 7}," + ",".join(votes))
    src.write_text("\n".join(lines) + "\n")
    table = read_dataset(src)
    out, summary = export(tmp_path, table, src.parent / "labels.clean.csv", format="ferplus")
    back = read_dataset(out, format="ferplus")
    expected = expected_auto(table)
    assert summary.format == "ferplus" and records(back) == records(expected)
    keep = table.set_index("sample_id").loc[back["sample_id"]]
    assert (back["votes_happy"].to_numpy() == keep["votes_happy"].to_numpy()).all()


def test_ferplus_columns_derived_from_the_label_follow_it(tmp_path):
    from curate.export.native import FERPLUS_VOTES

    src = tmp_path / "ferplus" / "labels.csv"
    derived = ("fer2013_label_name", "ferplus_label", "label_disagrees", "votes_for_fer2013_label")
    lines = [",".join((*FERPLUS_LABELS_COLUMNS, *derived))]
    for k in range(8):
        make_image(src.parent / "Training" / f"fer{k:07d}.png", 20 * k)
        votes = [str((k + j) % 5) for j in range(10)]
        given, crowd = k % 7, (k + 3) % 7
        cells = dict(zip(FERPLUS_LABELS_COLUMNS[4:], votes))
        lines.append(
            f"Training/fer{k:07d}.png,{k},Training,{given},"
            + ",".join(votes)
            + f",{FER2013_CLASSES[given]},{crowd},{int(given != crowd)},{cells[FERPLUS_VOTES[FER2013_CLASSES[given]]]}"
        )
    src.write_text("\n".join(lines) + "\n")
    table = read_dataset(src)
    out, _ = export(tmp_path, table, src.parent / "labels.clean.csv", format="ferplus")
    before = pd.read_csv(src, dtype=str).set_index("path")
    after = pd.read_csv(out, dtype=str).set_index("path")
    changed = after.index[after["fer2013_label"] != before.loc[after.index, "fer2013_label"]]
    assert len(changed) > 0
    for path, row in after.iterrows():
        name = FER2013_CLASSES[int(row["fer2013_label"])]
        assert row["fer2013_label_name"] == name
        assert row["votes_for_fer2013_label"] == row[FERPLUS_VOTES[name]]
        assert row["label_disagrees"] == str(int(int(row["ferplus_label"]) != int(row["fer2013_label"])))
        if path not in changed:
            assert row.equals(before.loc[path])


def test_native_export_follows_how_the_scores_were_read(tmp_path):
    """A FERPlus file read as a generic CSV (its label column named) exports as that CSV, and a
    cleaned file written away from the original notes that its relative image paths break."""
    src = tmp_path / "ferplus" / "labels.csv"
    lines = [",".join(FERPLUS_LABELS_COLUMNS)]
    for k in range(8):
        make_image(src.parent / "Training" / f"fer{k:07d}.png", 20 * k)
        lines.append(f"Training/fer{k:07d}.png,{k},Training,{k % 7}," + ",".join(["1"] * 10))
    src.write_text("\n".join(lines) + "\n")
    reader = {"path_column": "path", "label_column": "fer2013_label"}
    table = read_dataset(src, format="csv", **reader)
    assert table.attrs["classes"] == [str(k) for k in range(7)]
    scores = auto_scores(table, tmp_path / "scores.parquet", dataset_format="csv", reader=reader)
    beside = export_cleaned(scores, policy="auto", format="native", out=src.parent / "clean.csv")
    assert beside.format == "source-csv" and not any("do not resolve" in note for note in beside.notes)
    back = read_dataset(src.parent / "clean.csv", format="csv", **reader, classes=table.attrs["classes"])
    assert records(back) == records(expected_auto(table))
    (tmp_path / "elsewhere").mkdir()
    away = export_cleaned(scores, policy="auto", format="native", out=tmp_path / "elsewhere" / "clean.csv")
    assert any("do not resolve" in note for note in away.notes)


def test_fer2013(tmp_path):
    src = tmp_path / "fer" / "fer2013.csv"
    src.parent.mkdir()
    usage = ["Training"] * 6 + ["PublicTest"] * 2
    src.write_text(
        "emotion,pixels,Usage\n" + "".join(f"{k % 7},{' '.join([str(20 * k)] * 2304)},{usage[k]}\n" for k in range(8))
    )
    table = read_dataset(src)
    out, summary = export(tmp_path, table, "fer2013.csv", format="native")
    back = read_dataset(out)  # its PNG cache goes to out's folder
    expected = expected_auto(table)
    assert summary.format == "fer2013" and len(back) == len(expected) == 6
    assert not any("do not resolve" in note for note in summary.notes)  # the pixels travel with the file
    assert back["label"].tolist() == expected["label"].tolist()
    assert back["split"].tolist() == expected["split"].tolist()
    pixels = [np.asarray(Image.open(p)) for p in back["filepath"]]
    assert all((a == np.asarray(Image.open(b))).all() for a, b in zip(pixels, expected["filepath"]))


def test_affectnet(tmp_path):
    src = tmp_path / "affectnet" / "training.csv"
    lines = [",".join(AFFECTNET_COLUMNS)]
    for k in range(8):
        make_image(src.parent / "Manually_Annotated_Images" / str(k) / f"img{k}.jpg", 20 * k)
        lines.append(f'{k}/img{k}.jpg,0,0,8,8,"1.0;2.0",{k % 8},0.1,-0.2')
    lines.append('9/none.jpg,0,0,8,8,"1.0;2.0",9,0.0,0.0')  # Uncertain: not a face class, not scored
    src.write_text("\n".join(lines) + "\n")
    table = read_dataset(src)
    out, summary = export(tmp_path, table, src.parent / "training.clean.csv", format="affectnet")
    back = read_dataset(out)
    expected = expected_auto(table)
    assert summary.unscored_rows == 1 and records(back) == records(expected)
    assert out.read_text().splitlines()[-1] == lines[-1]


def rafdb_layout(root: Path, names: list[str]) -> Path:
    """A RAF-DB folder at ``root``: an aligned image per name, the k-th labelled k % 7 + 1."""
    for k, name in enumerate(names):
        make_image(root / "Image" / "aligned" / name.replace(".jpg", "_aligned.jpg"), 20 * k)
    (root / "EmoLabel").mkdir()
    (root / "EmoLabel" / "list_patition_label.txt").write_text(
        "".join(f"{n} {k % 7 + 1}\n" for k, n in enumerate(names))
    )
    return root


def test_rafdb(tmp_path):
    names = [f"train_{k:05d}.jpg" for k in range(1, 7)] + [f"test_{k:04d}.jpg" for k in range(1, 3)]
    root = rafdb_layout(tmp_path / "raf", names)
    table = read_dataset(root)
    out, summary = export(tmp_path, table, root / "EmoLabel" / "list_patition_label.clean.txt", format="rafdb")
    back = read_dataset(out, format="rafdb")
    expected = expected_auto(table)
    assert summary.written == len(back) == 6 and records(back) == records(expected)
    first_changed = expected["sample_id"][1]  # row 1 accepted the next class: 1-based label + 1
    assert f"{first_changed} {table['label'][1] + 2}" in out.read_text().splitlines()
    assert table.attrs["classes"] == list(RAFDB_CLASSES)
    assert not any("do not resolve" in note for note in summary.notes)
    _, away = export(tmp_path, table, "list_patition_label.txt", format="rafdb", force=True)
    assert any("do not resolve" in note for note in away.notes)


def test_rafdb_scored_by_a_model_of_fer2013_spellings(tmp_path):
    """A RAF-DB list scored by a FER2013 model (its happiness, sadness, anger read as happy, sad,
    angry, in FER2013's order) is written back in RAF-DB's own ids."""
    from curate.jobs import in_model_order

    root = rafdb_layout(tmp_path / "raf", [f"train_{k:05d}.jpg" for k in range(1, 9)])
    table = read_dataset(root)
    said: list[str] = []
    scored = in_model_order(table, list(FER2013_CLASSES), log=said.append)
    assert said == [
        "the dataset's classes happiness, sadness, anger are scored as the model's happy, sad, angry "
        "(the same expressions spelt another way)"
    ]
    to_raf = {"happy": "happiness", "sad": "sadness", "angry": "anger"}
    assert scored.attrs["classes"] == list(FER2013_CLASSES)
    assert [to_raf.get(n, n) for n in scored["label_name"]] == table["label_name"].tolist()
    out, summary = export(tmp_path, scored, root / "EmoLabel" / "list_patition_label.clean.txt", format="rafdb")
    back = read_dataset(out, format="rafdb")
    expected = expected_auto(scored)  # clean ids in FER2013's order
    assert summary.written == len(back) == 6
    assert back["sample_id"].tolist() == expected["sample_id"].tolist()
    assert back["label_name"].tolist() == [
        to_raf.get(FER2013_CLASSES[i], FER2013_CLASSES[i]) for i in expected["label"]
    ]


def test_a_csv_list_scored_by_a_model_of_other_spellings_keeps_its_own(tmp_path):
    """A CSV list labelled happiness / sadness / anger, scored by a FER2013 model (happy, sad, angry):
    its native export reads those cells as the scores' classes and writes changed labels in the
    file's own spelling."""
    from curate.jobs import in_model_order

    src = tmp_path / "ds" / "labels.csv"
    own = ["happiness", "sadness", "anger"]
    for k in range(8):
        make_image(src.parent / "imgs" / f"{k}.png", 20 * k)
    src.write_text("path,label\n" + "".join(f"imgs/{k}.png,{own[k % 3]}\n" for k in range(8)))
    table = read_dataset(src)
    scored = in_model_order(table, list(FER2013_CLASSES), log=lambda _: None)
    out, summary = export(tmp_path, scored, src.parent / "labels.clean.csv", format="native")
    expected = expected_auto(scored)  # clean ids in FER2013's order: next class of happy is sad, of angry disgust
    to_own = {"happy": "happiness", "sad": "sadness", "angry": "anger"}
    written = pd.read_csv(out)
    assert summary.format == "source-csv" and written["path"].tolist() == [f"imgs/{k}.png" for k in (0, 1, 3, 4, 5, 7)]
    assert written["label"].tolist() == [to_own.get(FER2013_CLASSES[i], FER2013_CLASSES[i]) for i in expected["label"]]
    assert "disgust" in written["label"].tolist()  # a class the file never named: the scores' name


def test_an_imagefolder_scored_by_a_model_of_other_spellings_keeps_its_folder_names(tmp_path):
    """SFEW-style folders Angry / Happy / Sad, scored by a FER2013 model (angry, happy, sad): the
    exported tree puts each face under the dataset's own folder name; a class the dataset has no
    folder for is named as the scores name it."""
    from curate.jobs import in_model_order

    own = ["Angry", "Happy", "Sad"]
    root = tmp_path / "sfew"
    for k in range(9):
        make_image(root / "train" / own[k % 3] / f"{k}.png", 20 * k)
    table = read_dataset(root)
    scored = in_model_order(table, list(FER2013_CLASSES), log=lambda _: None)
    out, summary = export(tmp_path, scored, "tree", format="imagefolder")
    expected = expected_auto(scored).set_index("sample_id")  # clean ids in FER2013's order
    to_own = {name.lower(): name for name in own}
    written = {Path(p).name: Path(p).parent.name for p in (out / "train").glob("*/*.png")}
    assert summary.written == len(written) == len(expected)
    for sid, row in expected.iterrows():
        name = FER2013_CLASSES[row["label"]]
        assert written[Path(sid).name] == to_own.get(name, name)
    assert {"Angry", "Happy", "Sad"} <= set(written.values())
