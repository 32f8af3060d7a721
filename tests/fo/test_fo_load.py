"""load_scores: fields, tags, saved views, runs; idempotent re-load that keeps curator decisions; errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from fo_helpers import CLASSES, scores_frame, write

from curate.cli import main
from curate.fiftyone import ScoresFileError, load_scores, loaded_from, review
from curate.records import read_scores

pytestmark = pytest.mark.mongo


def test_fields_tags_queues_and_runs(make_scores, dataset_name):
    import fiftyone as fo
    import fiftyone.brain as fob

    path = make_scores(12)
    df = read_scores(path)
    ds = load_scores(path, dataset_name, progress=False)

    assert fo.load_dataset(dataset_name).persistent and len(ds) == 12 and ds.media_type == "image"
    assert ds.default_classes == CLASSES and ds.info["classes"] == CLASSES and ds.info["scores"] == str(path)
    s = ds.one(fo.ViewField("sample_key") == "f4")
    row = df.set_index("sample_id").loc["f4"]
    probs, dist = np.asarray(row["target_probs"]), np.asarray(row["label_distribution"])
    assert s.ground_truth.label == CLASSES[row["given_label"]] and s.split == "train"
    assert s.dmue.label == s.suggested_label == CLASSES[int(dist.argmax())]
    assert s.dmue.confidence == pytest.approx(dist.max(), rel=1e-6)
    np.testing.assert_allclose(s.dmue.logits, np.log(probs), rtol=1e-5)
    np.testing.assert_allclose(s.label_distribution, dist)
    np.testing.assert_allclose(s.latent_distribution, dist)
    np.testing.assert_allclose(s.aux_consensus, np.asarray(row["aux_consensus"]))
    assert not np.allclose(s.aux_consensus, dist)
    assert s.mislabel_score == pytest.approx(float(row["mislabel_score"]))
    assert s.verdict == "ambiguous" and s.tags == ["ambiguous"] and s.neighbors == ["f5"]
    assert s.decisions == [] and s.clean_label is None and s.reviewed is False and s.excluded is False

    assert ds.list_saved_views() == [
        "likely-mislabeled",
        "ambiguous",
        "unreviewed-flagged",
        "given-angry",
        "given-happy",
        "given-sad",
        "duplicates",
        "leaks",
        "outliers",
    ]
    queue = ds.load_saved_view("likely-mislabeled")
    expected = df[df["verdict"] == "likely_mislabeled"].sort_values("mislabel_score", ascending=False)
    assert queue.values("sample_key") == expected["sample_id"].tolist()
    assert set(ds.load_saved_view("given-happy").values("ground_truth.label")) == {"happy"}
    assert len(ds.load_saved_view("unreviewed-flagged")) == 8

    assert ds.list_runs() == ["curate_load_1"]
    info = ds.get_run_info("curate_load_1")
    assert info.config.scores_path == str(path) and info.config.classes == CLASSES
    results = ds.load_run_results("curate_load_1")
    assert (results.rows, results.added, results.updated) == (12, 12, 0)
    assert results.verdicts == {"ok": 4, "ambiguous": 4, "likely_mislabeled": 4}
    assert ds.list_brain_runs() == ["dmue_sim"]

    fob.compute_hardness(ds, "dmue", progress=False)
    fob.compute_mistakenness(ds, "dmue", label_field="ground_truth", progress=False)
    lo, hi = ds.bounds("mistakenness")
    assert 0 <= lo <= hi <= 1 and ds.count("hardness") == 12


def test_a_load_indexes_the_fields_the_views_filter_and_sort_on(make_scores, dataset_name):
    from curate.fiftyone.load import INDEXES

    path = make_scores(12)
    ds = load_scores(path, dataset_name, progress=False)
    info = ds.get_index_information()
    keys = [[k for k, _ in index["key"]] for index in info.values()]
    for field in ("sample_key", "tags", "ground_truth.label", "reviewed", "mislabel_score", "ambiguity_score",
                  "outlier_score", "duplicate_group", "issues"):  # fmt: skip
        assert [field] in keys, field
    assert ["ground_truth.label", "mislabel_score"] in keys and ["duplicate_group", "mislabel_score"] in keys
    ds.drop_index("mislabel_score")  # a dataset loaded before the indexes existed gets them on its next load
    load_scores(path, dataset_name, progress=False)
    assert len(ds.get_index_information()) == len(info) >= len(INDEXES)
    assert "mislabel_score" in ds.list_indexes()


def test_reload_updates_in_place_and_keeps_decisions(tmp_path, make_scores, dataset_name):
    import fiftyone as fo

    path = make_scores(12)
    ds = load_scores(path, dataset_name, progress=False)
    by_key = dict(zip(ds.values("sample_key"), ds.values("id")))
    review.relabel(ds.select([by_key["f1"], by_key["f2"]]), "sad", by="ann")
    review.exclude(ds.select(by_key["f2"]), by="ann")
    ds.select(by_key["f5"]).tag_samples("blurry")
    before = {k: d for k, d in zip(ds.values("sample_key"), ds.values("decisions"))}

    frame = scores_frame(14, seed=1, image_dir=tmp_path / "img")  # same ids/paths f0..f11, new scores, +2 faces
    frame.loc[3, "sample_id"] = "renamed3"  # same file, new id: matched by filepath
    frame["verdict"] = ["likely_mislabeled"] * 14
    ds = load_scores(write(tmp_path / "v2.parquet", frame, seed=1), dataset_name, progress=False)

    assert len(ds) == 14 and len(set(ds.values("filepath"))) == 14
    assert sorted(ds.values("sample_key")) == sorted(frame["sample_id"])
    assert ds.one(fo.ViewField("sample_key") == "renamed3").id == by_key["f3"]
    new = ds.one(fo.ViewField("sample_key") == "f5")
    assert new.mislabel_score == pytest.approx(float(frame.loc[5, "mislabel_score"]))
    np.testing.assert_allclose(new.label_distribution, frame.loc[5, "label_distribution"])
    assert sorted(new.tags) == ["blurry", "likely_mislabeled"]  # verdict tag replaced, own tag kept
    assert ds.count_sample_tags() == {"likely_mislabeled": 14, "blurry": 1, "reviewed": 2, "excluded": 1}
    after = dict(zip(ds.values("sample_key"), ds.values("decisions")))
    assert {k: after[k] for k in ("f1", "f2")} == {k: before[k] for k in ("f1", "f2")}
    assert [d["action"] for d in after["f2"]] == ["relabel", "exclude"]
    f2 = ds[by_key["f2"]]
    assert f2.clean_label.label == "sad" and f2.excluded and f2.reviewed
    assert ds.list_runs() == ["curate_load_1", "curate_load_2"]
    assert (ds.load_run_results("curate_load_2").added, ds.load_run_results("curate_load_2").updated) == (2, 12)
    assert ds.load_brain_results("dmue_sim").total_index_size == 14
    assert loaded_from(dataset_name) == [str(path), str(tmp_path / "v2.parquet")]

    ds.delete_run("curate_load_1")  # a curator tidying the records: the next load still gets a free key
    load_scores(tmp_path / "v2.parquet", dataset_name, similarity=False, progress=False)
    assert ds.list_runs() == ["curate_load_2", "curate_load_3"]


def test_a_load_that_crashed_half_way_is_completed_by_running_it_again(monkeypatch, make_scores, dataset_name):
    import fiftyone as fo
    import fiftyone.core.odm.database as foodb

    path = make_scores(12)
    insert = foodb.insert_documents

    def crash_after_five(docs, coll, **kwargs):  # the process dies after the first batch reached the database
        insert([next(docs) for _ in range(5)], coll, **{**kwargs, "num_docs": 5})
        raise KeyboardInterrupt

    monkeypatch.setattr(foodb, "insert_documents", crash_after_five)
    with pytest.raises(KeyboardInterrupt):
        load_scores(path, dataset_name, progress=False)
    monkeypatch.setattr(foodb, "insert_documents", insert)
    assert len(fo.load_dataset(dataset_name)) == 5

    ds = load_scores(path, dataset_name, progress=False)
    df = read_scores(path)
    assert len(ds) == 12 and sorted(ds.values("sample_key")) == sorted(df["sample_id"])
    results = ds.load_run_results(ds.list_runs()[-1])
    assert (results.added, results.updated) == (7, 5)
    scores = dict(zip(ds.values("sample_key"), ds.values("mislabel_score")))
    assert scores == pytest.approx(dict(zip(df["sample_id"], df["mislabel_score"].astype(float))))
    queue = ds.load_saved_view("likely-mislabeled")
    expected = df[df["verdict"] == "likely_mislabeled"].sort_values("mislabel_score", ascending=False)
    assert queue.values("sample_key") == expected["sample_id"].tolist()


def test_a_reload_never_sends_the_list_of_ids_in_one_command(monkeypatch, tmp_path, make_scores, dataset_name):
    """At a million faces a view selecting every id exceeds MongoDB's 16 MB command limit (measured:
    ``DocumentTooLarge`` from the 1,000,000-face bench), so a re-load writes by id only."""
    import fiftyone as fo

    path = make_scores(12)
    load_scores(path, dataset_name, similarity=False, progress=False)

    def refuse(self, *args, **kwargs):
        raise AssertionError("a load must not build a view of the ids it writes")

    monkeypatch.setattr(fo.core.collections.SampleCollection, "select", refuse)
    frame = scores_frame(12, seed=3, image_dir=tmp_path / "img")
    ds = load_scores(write(tmp_path / "v2.parquet", frame, seed=3), dataset_name, similarity=False, progress=False)
    tags = dict(zip(ds.values("sample_key"), ds.values("tags")))
    expected = {k: [t] if t != "ok" else [] for k, t in zip(frame["sample_id"], frame["verdict"])}
    assert tags == expected


def test_errors_name_the_problem(tmp_path, make_scores, dataset_name):
    text = tmp_path / "notes.parquet"
    text.write_text("not parquet")
    with pytest.raises(ScoresFileError, match="not a curate scores file"):
        load_scores(text, dataset_name)
    plain = tmp_path / "plain.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(plain)
    with pytest.raises(ScoresFileError, match="not a curate scores file"):
        load_scores(plain, dataset_name)

    path = make_scores(6)
    (path.parent / "scores.embeddings.npy").unlink()
    with pytest.raises(ScoresFileError, match="no embeddings side file"):
        load_scores(path, dataset_name)
    ds = load_scores(path, dataset_name, similarity=False, progress=False)
    assert len(ds) == 6 and ds.list_brain_runs() == []

    other = scores_frame(6, image_dir=tmp_path / "img", classes=["a", "b", "c"])
    other_path = write(tmp_path / "other.parquet", other, classes=["a", "b", "c"])
    with pytest.raises(ScoresFileError, match=r"has classes \['angry', 'happy', 'sad'\] but the scores file has"):
        load_scores(other_path, dataset_name)
    ds = load_scores(other_path, dataset_name, overwrite=True, progress=False)
    assert ds.default_classes == ["a", "b", "c"]


def test_cli_load(tmp_path, make_scores, dataset_name):
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    result = CliRunner().invoke(main, ["load", str(bad), "--name", dataset_name])
    assert result.exit_code == 1 and "not a curate scores file" in result.output
    result = CliRunner().invoke(main, ["load", str(make_scores(9)), "--name", dataset_name, "--no-similarity"])
    assert result.exit_code == 0, result.output
    assert (
        "9 faces, 3 likely mislabeled, 3 ambiguous" in result.output and f"curate app {dataset_name}" in result.output
    )
    assert "also holds faces scored in" not in result.output
    batch2 = make_scores(9, name="batch2.parquet")
    result = CliRunner().invoke(main, ["load", str(batch2), "--name", dataset_name, "--no-similarity"])
    assert result.exit_code == 0 and "also holds faces scored in" in result.output


def test_documents_match_what_fiftyone_writes(make_scores, dataset_name):
    """The bulk insert writes the same document FiftyOne's add_samples writes for the same fields."""
    import fiftyone as fo

    path = make_scores(3)
    ds = load_scores(path, dataset_name, similarity=False, progress=False)
    ours = ds._sample_collection.find_one({"sample_key": "f1"})
    row = read_scores(path).set_index("sample_id").loc["f1"]
    probs, dist = np.asarray(row["target_probs"]), np.asarray(row["label_distribution"])
    reference = fo.Dataset()
    try:
        reference.add_sample(fo.Sample(
            filepath=row["filepath"], tags=["ambiguous"], sample_key="f1", split="train",
            ground_truth=fo.Classification(label=CLASSES[row["given_label"]]),
            dmue=fo.Classification(label=CLASSES[int(dist.argmax())], confidence=float(dist.max()),
                                   logits=np.log(probs)),
            latent_distribution=np.asarray(row["latent_distribution"]), label_distribution=dist,
            aux_consensus=np.asarray(row["aux_consensus"]),
            **{f: float(row[f]) for f in ("mislabel_score", "ambiguity_score", "uncertainty", "knn_disagreement")},
            suggested_label=CLASSES[int(dist.argmax())], verdict="ambiguous", reasons=row["reasons"],
            neighbors=list(row["neighbors"]), decisions=[], reviewed=False, excluded=False,
            duplicate_group=int(row["duplicate_group"]), near_duplicates=list(row["near_duplicates"]),
            outlier_score=float(row["outlier_score"]), issues=list(row["issues"])))  # fmt: skip
        theirs = reference._sample_collection.find_one()
    finally:
        reference.delete()
    volatile = {"_id", "_rand", "_dataset_id", "created_at", "last_modified_at"}
    assert set(ours) == set(theirs)
    for key in set(ours) - volatile:
        if isinstance(ours[key], dict):
            assert {k: v for k, v in ours[key].items() if k != "_id"} == {
                k: v for k, v in theirs[key].items() if k != "_id"
            }, key
        else:
            assert ours[key] == theirs[key] and type(ours[key]) is type(theirs[key]), key
    assert 0.999 <= ours["_rand"] <= 1.0 and ours["_dataset_id"] == ds._doc.id
