"""Every plugin operator and the panel, run through execute_operator on a MongoDB-backed dataset:
the fields, tags and decision records they leave, undo, and the export built from them."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from fiftyone import ViewField as F
from fo_helpers import PLUGIN

from curate.fiftyone import load_scores, review

pytestmark = pytest.mark.mongo


@pytest.fixture
def ds(make_scores, dataset_name):
    return load_scores(make_scores(12), dataset_name, progress=False)


def run(uri: str, dataset, **ctx):
    import fiftyone.operators as foo

    return foo.execute_operator(f"{PLUGIN}/{uri}", ctx={"dataset": dataset, **ctx})


def keyed(dataset, field: str) -> dict:
    return dict(zip(dataset.values("sample_key"), dataset.values(field)))


def ids_of(dataset, *keys: str) -> list[str]:
    id_of = keyed(dataset, "id")
    return [id_of[k] for k in keys]


def requests(result) -> list[dict]:
    return result.executor.to_json()["requests"]


def test_relabel_selected_records_decisions(ds):
    result = run("relabel", ds, params={"label": "sad"}, selected=ids_of(ds, "f0", "f1"))
    assert result.result == {"count": 2}
    assert [r["operator_uri"] for r in requests(result)] == ["notify", "reload_dataset"]
    decisions = keyed(ds, "decisions")
    assert {k: v for k, v in keyed(ds, "clean_label.label").items() if v} == {"f0": "sad", "f1": "sad"}
    d0 = decisions["f0"][0]
    assert (d0["action"], d0["from"], d0["to"]) == ("relabel", "angry", "sad")
    assert d0["by"] == review.curator() != ""
    assert dt.datetime.fromisoformat(d0["when"]).utcoffset() == dt.timedelta(0)
    assert decisions["f2"] == [] and ds.count_sample_tags()["reviewed"] == 2

    with pytest.raises(Exception, match="Invalid enum value"):  # the form only offers the classes
        run("relabel", ds, params={"label": "joy"}, selected=ids_of(ds, "f0"))
    with pytest.raises(ValueError, match="unknown class 'joy'"):
        review.relabel(ds.select(ids_of(ds, "f0")), "joy")
    with pytest.raises(Exception, match="select faces in the grid first"):
        run("relabel", ds, params={"label": "sad"})
    assert len(keyed(ds, "decisions")["f0"]) == 1


def test_decisions_on_more_faces_than_one_id_batch(ds, monkeypatch):
    monkeypatch.setattr(review, "ID_BATCH", 5)  # 12 faces: the reads and tag writes go in 3 batches
    assert review.relabel(ds, "sad") == 12
    assert set(keyed(ds, "clean_label.label").values()) == {"sad"}
    assert ds.count_sample_tags()["reviewed"] == 12
    assert review.undo(ds.limit(7)) == 7
    assert ds.count_sample_tags()["reviewed"] == 5
    assert sum(len(d) for d in keyed(ds, "decisions").values()) == 5


def test_accept_keep_exclude_include_on_selection_or_view(ds):
    flagged = ds.match_tags("likely_mislabeled")
    result = run("accept_suggestions", ds, view=flagged)
    assert result.result == {"count": 4}
    suggested, clean = keyed(ds, "suggested_label"), keyed(ds, "clean_label.label")
    for key in flagged.values("sample_key"):
        assert clean[key] == suggested[key] and keyed(ds, "decisions")[key][-1]["action"] == "accept_suggestion"

    assert run("mark_reviewed", ds, selected=ids_of(ds, "f0")).result == {"count": 1}
    f0 = keyed(ds, "decisions")["f0"][-1]
    assert (f0["action"], f0["from"], f0["to"]) == ("keep", "angry", "angry")
    assert keyed(ds, "clean_label.label")["f0"] == "angry"

    chosen = run("mark_reviewed", ds, view=ds.match_tags("ambiguous"), selected=ids_of(ds, "f0"),
                 params={"view_target": "CURRENT_VIEW"})  # fmt: skip
    assert chosen.result == {"count": 4} and len(keyed(ds, "decisions")["f0"]) == 1  # the App's target choice wins

    run("exclude", ds, selected=ids_of(ds, "f0", "f3"))
    assert keyed(ds, "excluded")["f0"] and keyed(ds, "excluded")["f3"] and len(ds) == 12
    assert set(ds.match_tags("excluded").values("sample_key")) == {"f0", "f3"}
    run("include", ds, selected=ids_of(ds, "f3"))
    assert set(ds.match_tags("excluded").values("sample_key")) == {"f0"} and keyed(ds, "excluded")["f3"] is False
    assert [d["action"] for d in keyed(ds, "decisions")["f3"]] == ["exclude", "include"]


def test_undo_pops_the_last_decision_and_restores(ds):
    f1 = ids_of(ds, "f1")
    run("relabel", ds, params={"label": "angry"}, selected=f1)
    run("exclude", ds, selected=f1)
    assert run("undo", ds, selected=f1).result == {"count": 1}
    assert [d["action"] for d in keyed(ds, "decisions")["f1"]] == ["relabel"]
    assert keyed(ds, "excluded")["f1"] is False and keyed(ds, "clean_label.label")["f1"] == "angry"
    assert "excluded" not in ds.count_sample_tags()
    run("undo", ds, selected=f1)
    assert keyed(ds, "decisions")["f1"] == [] and keyed(ds, "clean_label.label")["f1"] is None
    assert keyed(ds, "reviewed")["f1"] is False and "reviewed" not in ds.count_sample_tags()
    assert run("undo", ds, selected=f1).result == {"count": 0}

    flagged = ds.match_tags("likely_mislabeled")  # a batch decision on a queue, undone on the queue
    before = keyed(ds, "decisions")
    run("accept_suggestions", ds, view=flagged)
    assert run("undo", ds, view=flagged).result == {"count": len(flagged)}
    assert keyed(ds, "decisions") == before


def test_rerank_operator_rescores_only_undecided_faces_and_opens_review_next(ds):
    run("relabel", ds, params={"label": "sad"}, selected=ids_of(ds, "f0"))
    before = keyed(ds, "decisions")
    result = run("rerank", ds)
    assert result.result == {"count": 11}
    assert [r["operator_uri"] for r in requests(result)] == ["set_view", "notify", "reload_dataset"]
    assert requests(result)[0]["params"] == {"name": "review-next"}  # by name: the App shows the saved view
    scores = keyed(ds, "mislabel_score_rerank")
    assert scores["f0"] is None and all(v is not None for k, v in scores.items() if k != "f0")
    assert keyed(ds, "decisions") == before  # no decision written or changed
    queue = ds.load_saved_view("review-next")
    assert "f0" not in queue.values("sample_key") and len(queue) == 11
    assert queue.values("mislabel_score_rerank") == sorted(queue.values("mislabel_score_rerank"), reverse=True)


def test_show_similar_sets_a_similarity_view(ds):
    query = ids_of(ds, "f2")
    result = run("show_similar", ds, params={"k": 4}, selected=query)
    assert result.result == {"count": 4}
    (set_view,) = [r for r in requests(result) if r["operator_uri"] == "set_view"]
    (stage,) = set_view["params"]["view"]
    assert stage["_cls"] == "fiftyone.core.stages.SortBySimilarity"
    assert dict(stage["kwargs"])["brain_key"] == "dmue_sim"
    expected = ds.sort_by_similarity(query, k=4, brain_key="dmue_sim").values("id")
    assert expected[0] == query[0] and len(expected) == 4

    angry = ds.load_saved_view("given-angry")  # from a queue: the similar faces come from that queue
    result = run("show_similar", ds, view=angry, params={"k": None}, selected=angry.values("id")[:1])
    assert 0 < result.result["count"] <= len(angry)


def test_panel_counts_confusion_and_queue_buttons(ds):
    run("relabel", ds, params={"label": "happy"}, selected=ids_of(ds, "f2"))
    result = run("review_queues", ds, params={"__method__": "on_load", "panel_id": "p1", "state": {}})
    patches = {
        k: v
        for r in requests(result)
        if r["operator_uri"] == "patch_panel_state"
        for k, v in r["params"]["state"].items()
    }
    assert patches["counts"] == review.queue_counts(ds) and patches["counts"]["unreviewed-flagged"] == 7
    confusion = review.confusion(ds)
    assert int(confusion.values.sum()) == 12 and list(confusion.index) == ["angry", "happy", "sad"]
    assert patches["confusion"].splitlines()[0].split("|")[1].strip() == "given"
    (output,) = [r for r in requests(result) if r["operator_uri"] == "show_panel_output"]
    buttons = [
        p["view"] for p in output["params"]["output"]["type"]["properties"].values() if p["view"]["name"] == "Button"
    ]
    assert {"likely-mislabeled: 4", "unreviewed-flagged: 7"} <= {b["label"] for b in buttons}

    opened = run(
        "review_queues", ds, params={"__method__": "open_queue", "panel_id": "p1", "state": {}, "queue": "ambiguous"}
    )
    assert {"operator_uri": "set_view", "params": {"name": "ambiguous"}} in requests(opened)


def test_decisions_are_recorded_and_exported(ds, tmp_path):
    run("relabel", ds, params={"label": "sad"}, selected=ids_of(ds, "f0"))
    run("exclude", ds, selected=ids_of(ds, "f1"))
    keys, histories = ds.match(F(review.REVIEWED)).values(["sample_key", review.DECISIONS])
    steps = [[k, i, d["action"], d["from"], d["to"]] for k, h in zip(keys, histories) for i, d in enumerate(h)]
    assert steps == [
        ["f0", 0, "relabel", "angry", "sad"],
        ["f1", 0, "exclude", "happy", "happy"],
    ]

    out = tmp_path / "clean.csv"
    result = run("export_cleaned", ds, params={"out": str(out), "format": "csv", "policy": "decisions"})
    assert result.result["written"] == 11 and out.is_file()
    written = pd.read_csv(out, keep_default_na=False).set_index("sample_id")
    assert written.loc["f0", "clean_label"] == "sad" and "f1" not in written.index

    with pytest.raises(Exception, match="tick 'Replace an existing output'"):  # the form's name for --force
        run("export_cleaned", ds, params={"out": str(out), "format": "csv", "policy": "decisions"})
    with pytest.raises(Exception, match="give the output as an absolute path"):
        run("export_cleaned", ds, params={"out": "clean.csv", "format": "csv", "policy": "decisions"})


def test_a_dataset_curate_did_not_load_is_refused_untouched(dataset_name):
    import fiftyone as fo

    plain = fo.Dataset(dataset_name)
    plain.add_sample(fo.Sample(filepath="/tmp/x.png"))
    fields = set(plain.get_field_schema())
    for uri, ctx in (
        ("accept_suggestions", {"view": plain.view()}),
        ("review_queues", {"params": {"__method__": "on_load", "panel_id": "p", "panel_state": {}}}),
    ):
        with pytest.raises(Exception, match="it was not made by `curate load`"):
            run(uri, plain, **ctx)
    assert set(plain.get_field_schema()) == fields


def test_curator_is_the_app_user_else_the_os_user(monkeypatch):
    from types import SimpleNamespace

    assert review.curator(SimpleNamespace(email="ann@lab.org", name="Ann")) == "ann@lab.org"
    assert review.curator(SimpleNamespace(email=None, name="Ann")) == "Ann"
    monkeypatch.setenv("USER", "bob")
    assert review.curator(None) == "bob"
    monkeypatch.delenv("USER")
    assert review.curator(None) == "curator"


CURATOR_FIELDS = ("decisions", "clean_label.label", "reviewed", "excluded", "tags")
RERANK_FIELDS = ("mislabel_score_rerank", "suggested_rerank", "relabel_rerank")


def fields_of(dataset, fields) -> dict:
    return {f: keyed(dataset, f) for f in fields}


def rerank_untouched_curation(dataset) -> tuple[dict, list[str]]:
    """Run the rerank operator, assert it changed no curator field and no field of a decided face,
    and return the rerank fields and the review-next order."""
    curation = fields_of(dataset, CURATOR_FIELDS)
    decided = {s.sample_key: s.to_dict() for s in dataset.match_tags("reviewed")}
    run("rerank", dataset)
    dataset.reload()
    assert fields_of(dataset, CURATOR_FIELDS) == curation
    after = {s.sample_key: s.to_dict() for s in dataset.match_tags("reviewed")}
    for key, doc in decided.items():  # a field the rerank declared is None on a decided face
        assert {f: v for f, v in after[key].items() if f in doc or v is not None} == doc, key
    return fields_of(dataset, RERANK_FIELDS), dataset.load_saved_view("review-next").values("sample_key")


def test_undo_of_a_batch_followed_by_rerank_restores_the_earlier_ranking(ds):
    run("relabel", ds, params={"label": "sad"}, selected=ids_of(ds, "f3"))  # a decision before the batches
    first, first_queue = rerank_untouched_curation(ds)
    state = fields_of(ds, CURATOR_FIELDS)
    assert "f3" not in first_queue and len(first_queue) == 11

    flagged = ds.match_tags("likely_mislabeled")  # f2, f5, f8, f11
    batches = [  # (operator, the App's context): each batch is undone on the same target
        ("relabel", {"params": {"label": "happy"}, "selected": ids_of(ds, "f0", "f6")}),
        ("accept_suggestions", {"view": flagged}),
        ("mark_reviewed", {"selected": ids_of(ds, "f1", "f4", "f7")}),
        ("exclude", {"selected": ids_of(ds, "f9", "f10")}),
    ]
    for uri, ctx in batches:
        count = run(uri, ds, **ctx).result["count"]
        assert count > 0, uri
        reranked, queue = rerank_untouched_curation(ds)
        assert len(queue) == 11 - count and (reranked != first or queue != first_queue[: len(queue)]), uri

        assert run("undo", ds, **{k: v for k, v in ctx.items() if k != "params"}).result == {"count": count}
        assert fields_of(ds, CURATOR_FIELDS) == state, uri  # the undecided state is back
        assert fields_of(ds, RERANK_FIELDS) == first, uri  # re-ranked automatically after the undo
        again, again_queue = rerank_untouched_curation(ds)
        assert again == first and again_queue == first_queue, uri


def test_each_decision_reranks_unless_turned_off(ds):
    notes = lambda result: [r["params"]["message"] for r in requests(result) if r["operator_uri"] == "notify"]  # noqa: E731
    off = run("relabel", ds, params={"label": "sad", "rerank": False}, selected=ids_of(ds, "f1"))
    assert notes(off) == ["Relabeled 1 faces to sad"] and "mislabel_score_rerank" not in ds.get_field_schema()

    ds.app_config.plugins[PLUGIN] = {"auto_rerank": False}  # the plugin setting turns it off
    ds.save()
    run("mark_reviewed", ds, selected=ids_of(ds, "f4"))
    assert "mislabel_score_rerank" not in ds.get_field_schema()

    on = run("exclude", ds, params={"rerank": True}, selected=ids_of(ds, "f7"))  # the form's box wins
    assert notes(on) == ["Exclude faces: 1 faces; re-ranked 9 undecided faces"]
    scores = keyed(ds, "mislabel_score_rerank")
    assert {k for k, v in scores.items() if v is None} == {"f1", "f4", "f7"}
    assert ds.load_saved_view("review-next").count() == 9
    assert not [k for k in ds.list_runs() if k.startswith("curate_rerank_")]  # automatic: no run recorded

    ds.app_config.plugins[PLUGIN] = {}  # unset: on
    ds.save()
    run("relabel", ds, params={"label": "angry"}, selected=ids_of(ds, "f2"))  # the first sad face overturned
    after = keyed(ds, "mislabel_score_rerank")
    assert after["f2"] == scores["f2"] and after["f1"] is None  # decided faces: not written
    assert all(after[k] > scores[k] for k in ("f5", "f8", "f11"))  # the other sad faces rise
    assert ds.load_saved_view("review-next").count() == 8
