from __future__ import annotations

import uuid

import pytest

from curate.data import read_dataset
from curate.data.errors import DataError, SkipReport
from curate.data.table import validate_table

pytestmark = pytest.mark.mongo


@pytest.fixture
def fo_dataset(tmp_path, make_image):
    import fiftyone as fo

    dataset = fo.Dataset(f"curate-test-{uuid.uuid4().hex[:8]}")
    samples = []
    for i, (label, tags) in enumerate([("happy", ["train"]), ("sad", ["test", "x"]), (None, []), ("sad", ["val"])]):
        sample = fo.Sample(filepath=str(make_image(tmp_path / f"{i}.png")), tags=tags)
        if label:
            sample["ground_truth"] = fo.Classification(label=label)
        samples.append(sample)
    dataset.add_samples(samples)
    yield dataset
    dataset.delete()


def test_reads_labels_ids_and_tag_splits(fo_dataset):
    df = read_dataset(f"fiftyone:{fo_dataset.name}")
    validate_table(df)
    assert df.attrs["format"] == "fiftyone" and df.attrs["classes"] == ["happy", "sad"]
    assert df["sample_id"].tolist() == fo_dataset.values("id")
    assert df["label"].tolist() == [0, 1, -1, 1]
    assert df["split"].tolist() == ["train", "test", "train", "val"]


def test_split_field_classes_and_missing_file(fo_dataset, tmp_path):
    fo_dataset.default_classes = ["angry", "happy", "sad"]
    fo_dataset.set_values("split", ["a", "b", "c", "d"])
    fo_dataset.save()
    (tmp_path / "1.png").unlink()
    with pytest.raises(DataError, match=rf"fiftyone:{fo_dataset.name}, row 2: image file not found"):
        read_dataset(fo_dataset.name, format="fiftyone")
    report = SkipReport()
    df = read_dataset(fo_dataset.name, format="fiftyone", on_bad="skip", report=report)
    assert df.attrs["classes"] == ["angry", "happy", "sad"]
    assert df["split"].tolist() == ["a", "c", "d"] and df["label"].tolist() == [1, -1, 2]
    assert [s.row for s in report] == [2]


def test_unknown_dataset_and_field(fo_dataset):
    with pytest.raises(
        DataError, match=r"fiftyone:no-such-dataset-xyz: no FiftyOne dataset named 'no-such-dataset-xyz'"
    ):
        read_dataset("fiftyone:no-such-dataset-xyz")
    with pytest.raises(
        DataError,
        match=r"field 'labels' is not a Classification field \(Classification fields: ground_truth\)\. Pass the label field with --label-column",
    ):
        read_dataset(f"fiftyone:{fo_dataset.name}", label_column="labels")
