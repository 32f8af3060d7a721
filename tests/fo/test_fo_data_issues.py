"""Data issues in FiftyOne (issue 21): the per-face issue fields a load writes, the saved views
duplicates / leaks / outliers, and the plugin's keep_one_per_group (with undo and curator choice)."""

from __future__ import annotations

import pytest
from fo_helpers import PLUGIN, scores_frame, write

from curate.fiftyone import ISSUE_VIEWS, load_scores, review

pytestmark = pytest.mark.mongo

#: sample -> (duplicate_group, mislabel_score, split, outlier_score, issues); the other faces: none
ISSUES = {
    "f0": (0, 0.40, "train", 0.1, ["duplicate"]),
    "f1": (0, 0.20, "train", 0.1, ["duplicate"]),
    "f2": (0, 0.30, "train", 0.1, ["duplicate"]),
    "f3": (1, 0.70, "train", 0.2, ["duplicate", "leak"]),
    "f4": (1, 0.60, "test", 0.2, ["duplicate", "leak"]),
    "f5": (-1, 0.10, "test", 0.9, ["outlier"]),
    "f6": (-1, 0.10, "train", 0.6, ["outlier", "near_duplicate", "leak"]),
    "f7": (-1, 0.10, "test", 0.3, ["near_duplicate", "leak"]),
}


def issue_frame(tmp_path, n: int = 10):
    frame = scores_frame(n, image_dir=tmp_path / "img")
    rows = [ISSUES.get(sid, (-1, 0.05, "train", 0.0, [])) for sid in frame["sample_id"]]
    group, score, split, outlier, issues = (list(column) for column in zip(*rows))
    near = {"f6": ["f7"], "f7": ["f6"]}
    return frame.assign(
        duplicate_group=group, mislabel_score=score, split=split, outlier_score=outlier, issues=issues,
        near_duplicates=[near.get(sid, []) for sid in frame["sample_id"]],
    )  # fmt: skip


@pytest.fixture
def ds(tmp_path, dataset_name):
    return load_scores(write(tmp_path / "issues.parquet", issue_frame(tmp_path)), dataset_name, progress=False)


def run(uri: str, dataset, **ctx):
    import fiftyone.operators as foo

    return foo.execute_operator(f"{PLUGIN}/{uri}", ctx={"dataset": dataset, **ctx})


def keyed(dataset, field: str) -> dict:
    return dict(zip(dataset.values("sample_key"), dataset.values(field)))


def test_issue_fields_and_saved_views(ds):
    s = ds.first()
    assert (s.duplicate_group, s.issues, s.near_duplicates) == (0, ["duplicate"], [])
    assert keyed(ds, "near_duplicates")["f6"] == ["f7"] and keyed(ds, "duplicate_group")["f9"] == -1
    assert keyed(ds, "outlier_score")["f5"] == pytest.approx(0.9)
    schema = ds.get_field_schema()
    assert type(schema["duplicate_group"]).__name__ == "IntField"
    assert type(schema["issues"]).__name__ == "ListField"

    views = ds.list_saved_views()
    assert views[-3:] == list(ISSUE_VIEWS) == ["duplicates", "leaks", "outliers"]
    # a group together, its lowest mislabel_score first
    assert ds.load_saved_view("duplicates").values("sample_key") == ["f1", "f2", "f0", "f4", "f3"]
    assert ds.load_saved_view("leaks").values("sample_key") == ["f7", "f6", "f4", "f3"]
    assert ds.load_saved_view("outliers").values("sample_key") == ["f5", "f6"]
    assert review.queue_counts(ds)["duplicates"] == 5


def test_a_reload_fills_the_issue_fields_of_a_dataset_loaded_without_them(tmp_path, dataset_name, make_scores):
    plain = load_scores(make_scores(10, name="plain.parquet"), dataset_name, progress=False)
    assert set(keyed(plain, "duplicate_group").values()) == {-1} and len(plain.load_saved_view("duplicates")) == 0
    ds = load_scores(write(tmp_path / "issues.parquet", issue_frame(tmp_path)), dataset_name, progress=False)
    assert len(ds) == 10 and ds.load_saved_view("outliers").values("sample_key") == ["f5", "f6"]
    assert keyed(ds, "issues")["f3"] == ["duplicate", "leak"]


def test_keep_one_per_group_excludes_the_others_and_undoes(ds):
    dups = ds.load_saved_view("duplicates")
    result = run("keep_one_per_group", ds, view=dups, params={"view_target": "CURRENT_VIEW"})
    assert result.result == {"count": 3}
    assert set(ds.match_tags("excluded").values("sample_key")) == {"f0", "f2", "f3"}  # kept f1 and f4
    last = {k: d[-1] for k, d in keyed(ds, "decisions").items() if d}
    assert set(last) == {"f0", "f2", "f3"} and {d["action"] for d in last.values()} == {"exclude"}
    assert last["f0"]["note"] == "duplicate_group 0: kept f1" and last["f3"]["note"] == "duplicate_group 1: kept f4"
    assert run("keep_one_per_group", ds, view=dups, params={"view_target": "CURRENT_VIEW"}).result == {"count": 0}

    excluded = ds.match_tags("excluded")
    assert run("undo", ds, view=excluded, params={"view_target": "CURRENT_VIEW"}).result == {"count": 3}
    assert "excluded" not in ds.count_sample_tags()
    assert all(d == [] for d in keyed(ds, "decisions").values())


def test_keep_one_per_group_follows_the_curator(ds):
    id_of = keyed(ds, "id")
    review.exclude(ds.select([id_of["f1"]]), by="ann")  # the lowest score, excluded by hand
    review.relabel(ds.select([id_of["f3"]]), "sad", by="ann")  # a face the curator decided on wins
    assert review.keep_one_per_group(ds, by="bob") == 2
    assert set(ds.match_tags("excluded").values("sample_key")) == {"f0", "f1", "f4"}
    assert [d["action"] for d in keyed(ds, "decisions")["f1"]] == ["exclude"]  # no second decision
    assert keyed(ds, "decisions")["f0"][-1]["note"] == "duplicate_group 0: kept f2"

    # on a selection only the selected faces count
    review.undo(ds.select([id_of["f0"]]))
    assert review.keep_one_per_group(ds.select([id_of["f0"], id_of["f5"]])) == 0  # f2 is not selected
    assert "f0" not in ds.match_tags("excluded").values("sample_key")
    assert review.keep_one_per_group(ds.select([id_of["f0"], id_of["f2"], id_of["f5"]])) == 1
    assert keyed(ds, "decisions")["f0"][-1]["note"] == "duplicate_group 0: kept f2"


def test_keep_one_per_group_needs_the_issue_fields(dataset_name):
    import fiftyone as fo

    plain = fo.Dataset(dataset_name)
    plain.add_sample(fo.Sample(filepath="/tmp/x.png"))
    with pytest.raises(ValueError, match="no duplicate_group field"):
        review.keep_one_per_group(plain)


def test_export_from_the_app_keeps_the_curators_choice(ds, tmp_path):
    import json

    import pandas as pd

    id_of = keyed(ds, "id")
    review.exclude(ds.select([id_of["f1"], id_of["f2"]]), by="ann")  # the curator keeps f0 of group 0
    out = tmp_path / "clean.csv"
    params = {"out": str(out), "format": "csv", "policy": "decisions", "dedupe": "keep-one", "leaks": "drop",
              "leak_splits": "train", "drop_outliers": 0.5}  # fmt: skip
    result = run("export_cleaned", ds, params=params)
    written = pd.read_csv(out, keep_default_na=False)["sample_id"].tolist()
    # f1, f2 excluded; f3 (train) and f6 leak; f5, f6 outliers; f4 alone left of group 1
    assert written == ["f0", "f4", "f7", "f8", "f9"] and result.result["written"] == 5
    audit = json.loads(out.with_name("clean.csv.audit.json").read_text())["data_policy"]
    assert audit["dropped"] == {"drop_outlier": ["f5", "f6"], "drop_leak": ["f3"], "drop_duplicate": []}
    assert audit["kept_per_group"] == {"0": "f0", "1": "f4"} and audit["leak_splits"] == ["train"]


def test_fiftyone_near_duplicates_through_the_faiss_index(tmp_path, dataset_name):
    """FiftyOne's near-duplicate tool on the dmue_sim index finds the pairs at the run's cosine."""
    import fiftyone.brain as fob
    import numpy as np

    from curate.records import save_embeddings
    from curate.scoring.issues import NEAR_DUPLICATE_COSINE

    path = write(tmp_path / "near.parquet", issue_frame(tmp_path))
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(10, 16)).astype(np.float32)
    emb[1] = emb[0] + 0.02 * rng.normal(size=16)  # cosine ~0.9998
    emb[7] = emb[6] + 0.02 * rng.normal(size=16)
    emb[9] = emb[8] + 0.3 * rng.normal(size=16)  # cosine ~0.96: not a near duplicate
    save_embeddings(path, emb, dtype="float32")
    ds = load_scores(path, dataset_name, progress=False)
    results = fob.compute_near_duplicates(ds, threshold=1 - NEAR_DUPLICATE_COSINE, similarity_index="dmue_sim")
    key = dict(zip(ds.values("id"), ds.values("sample_key")))
    pairs = {frozenset((key[a], key[b])) for a, dups in results.neighbors_map.items() for b, _ in dups}
    assert pairs == {frozenset(("f0", "f1")), frozenset(("f6", "f7"))}
