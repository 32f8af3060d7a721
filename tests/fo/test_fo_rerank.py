"""``curate rerank fiftyone:NAME``: new fields on undecided faces only, the review-next view, undo."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from curate.cli import main

pytestmark = pytest.mark.mongo

FIELDS = ("mislabel_score_rerank", "suggested_rerank", "relabel_rerank")


def test_rerank_writes_new_fields_on_undecided_faces_only(make_scores, dataset_name):
    import fiftyone as fo
    from fiftyone import ViewField as F

    from curate.fiftyone import load_scores, review

    ds = load_scores(make_scores(12), dataset_name, similarity=False, progress=False)
    runner = CliRunner()
    first = runner.invoke(main, ["rerank", f"fiftyone:{dataset_name}"])
    assert first.exit_code == 0, first.output
    # no decisions: the new queue is the loaded one
    keys, score, new = ds.values(["sample_key", "mislabel_score", "mislabel_score_rerank"])
    assert np.allclose(score, new, atol=1e-6)
    assert ds.load_saved_view("review-next").values("sample_key") == ds.sort_by("mislabel_score", reverse=True).values(
        "sample_key"
    )

    f0 = ds.match(F("sample_key") == "f0")
    review.relabel(f0, "happy", by="t")
    review.mark_reviewed(ds.match(F("sample_key") == "f4"), by="t")  # given happy, kept
    decided_before = {
        s.sample_key: s.to_dict()
        for s in ds.match(F(review.REVIEWED) == True)  # noqa: E712
    }
    second = runner.invoke(main, ["rerank", f"fiftyone:{dataset_name}"])
    assert second.exit_code == 0 and "2 decided, 10 rescored" in second.output, second.output
    ds.reload()
    for s in ds.match(F(review.REVIEWED) == True):  # noqa: E712
        assert s.to_dict() == decided_before[s.sample_key]  # decided faces: not a field touched
    queue = ds.load_saved_view("review-next").values("sample_key")
    assert set(queue) == set(keys) - {"f0", "f4"}
    ranked = ds.load_saved_view("review-next").values("mislabel_score_rerank")
    assert ranked == sorted(ranked, reverse=True)
    # f0 (given angry) is really happy: f11 (given sad), whose only neighbour it is, rises
    after = dict(zip(*ds.values(["sample_key", "mislabel_score_rerank"])))
    before = dict(zip(keys, score))
    assert after["f11"] > before["f11"]
    assert any(k.startswith("curate_rerank_") for k in ds.list_runs())

    # undo the decisions, rerank again: the first ranking is back
    review.undo(ds.match(F(review.REVIEWED) == True))  # noqa: E712
    assert runner.invoke(main, ["rerank", f"fiftyone:{dataset_name}"]).exit_code == 0
    assert np.allclose(ds.values("mislabel_score_rerank"), score, atol=1e-6)
    assert fo.load_dataset(dataset_name).load_saved_view("review-next").count() == 12


def test_rerank_refuses_an_unknown_dataset():
    result = CliRunner().invoke(main, ["rerank", "fiftyone:no-such-dataset-xyz"])
    assert result.exit_code == 1 and "no FiftyOne dataset named" in result.output


def test_rerank_on_a_scores_file(make_scores, tmp_path):
    import pandas as pd

    path = make_scores(9)
    decisions = tmp_path / "decided.csv"
    decisions.write_text("sample_id,label\nf0,sad\nf1,correct\n")
    out = tmp_path / "reranked.parquet"
    result = CliRunner().invoke(main, ["rerank", str(path), "--decisions", str(decisions), "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out)
    assert table["decided"].sum() == 2 and "mislabel_score_rerank" in table


def test_vector_rows_decodes_a_raw_vector_field_read():
    import fiftyone.core.utils as fou

    from curate.fiftyone.load import _serialized_rows, vector_rows

    matrix = np.random.default_rng(0).dirichlet(np.ones(7), size=50).astype(np.float32)
    assert np.array_equal(vector_rows(_serialized_rows(matrix)), matrix)  # one shared header
    mixed = [*_serialized_rows(matrix[:2]), fou.serialize_numpy_array(matrix[2].astype(np.float64))]
    assert np.allclose(vector_rows(mixed), matrix[:3])  # another header: decoded row by row
    with pytest.raises(ValueError, match="1 samples have no vector"):
        vector_rows([*_serialized_rows(matrix[:2]), None])


def test_rerank_refits_a_head_on_the_loaded_embeddings(make_scores, dataset_name):
    from fiftyone import ViewField as F

    from curate.fiftyone import load_scores, review
    from curate.fiftyone.rerank import read_inputs, rerank_dataset, stored_embeddings
    from curate.records import load_embeddings
    from curate.rerank import RerankConfig

    path = make_scores(30)
    ds = load_scores(path, dataset_name, similarity=True, progress=False)
    inputs = read_inputs(ds)
    order = {k: i for i, k in enumerate(read_scores_keys(path))}
    np.testing.assert_allclose(
        stored_embeddings(ds, inputs.ids),
        np.asarray(load_embeddings(path))[[order[k] for k in inputs.table["sample_id"]]],
        rtol=1e-6,
    )
    review.relabel(ds.match(F("sample_key").is_in(["f0", "f1", "f2"])), "happy", by="t")
    no_head = RerankConfig(head_strength=0.0, head_mix=0.0)
    rerank_dataset(ds, RerankConfig(head_min_decided=3), record=False)
    with_head = ds.values("mislabel_score_rerank")
    rerank_dataset(ds, no_head, record=False)
    without = ds.values("mislabel_score_rerank")
    changed = [a != b for a, b in zip(with_head, without) if a is not None]
    assert any(changed)  # the head moved the undecided faces' scores
    ds.delete_brain_runs()  # no embeddings left: the rerank goes without the head
    assert stored_embeddings(ds, inputs.ids) is None
    rerank_dataset(ds, RerankConfig(head_min_decided=3), record=False)
    np.testing.assert_allclose(
        [v for v in ds.values("mislabel_score_rerank") if v is not None], [v for v in without if v is not None]
    )


def read_scores_keys(path) -> list[str]:
    from curate.records import read_scores

    return read_scores(path)["sample_id"].tolist()
