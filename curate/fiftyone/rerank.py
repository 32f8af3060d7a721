"""Re-rank a curated FiftyOne dataset with its curator decisions (:mod:`curate.rerank`).

Reads the decision fields (:mod:`curate.fiftyone.review`) and the loaded scores, and writes, on the
**undecided** samples only, new fields (never a load's field, never a decision field):

=======================  ==============  ==========================================================
mislabel_score_rerank    float           the score after the decisions
suggested_rerank         string          argmax of the re-ranked distribution
relabel_rerank           string          the most likely class other than the given label
=======================  ==============  ==========================================================

plus the saved view ``review-next`` (undecided faces, highest ``mislabel_score_rerank`` first) and
one custom run ``curate_rerank_<n>`` per call (config: the weights; results: counts, seconds; none
with ``record=False``).
A decision means: the label in force when it differs from the given label, ``correct`` when the
given label was kept or confirmed, nothing (decided, no label) when the face is excluded.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime

import fiftyone as fo
import numpy as np
import pandas as pd
from bson import ObjectId
from fiftyone import ViewField as F
from pymongo import UpdateOne

from curate.fiftyone import review
from curate.fiftyone.load import SIMILARITY_KEY, vector_rows
from curate.rerank import CORRECT, RerankConfig, Reranker

SCORE_FIELD = "mislabel_score_rerank"
SUGGESTED_FIELD = "suggested_rerank"
RELABEL_FIELD = "relabel_rerank"
VIEW = "review-next"
RUN_PREFIX = "curate_rerank_"
#: the loaded fields a rerank reads for every sample (the decisions: for the reviewed ones)
READ_FIELDS = ["id", "sample_key", f"{review.GIVEN}.label", "label_distribution", review.MISLABEL, "neighbors"]


def decisions_of(given: list[str | None], histories: list, keys: list[str], classes: list[str]) -> dict:
    """sample key -> class index / ``correct`` / None for every sample with a decision."""
    out: dict[str, int | str | None] = {}
    for key, g, h in zip(keys, given, histories):
        if not h:
            continue
        state = review.derive(g, list(h))
        if state.excluded or state.label is None:
            out[key] = None
        elif state.label == g:
            out[key] = CORRECT
        else:
            out[key] = classes.index(state.label)
    return out


@dataclass(frozen=True)
class Inputs:
    """What a rerank reads from a dataset: sample ``ids`` (table order), ``classes``, the scores
    ``table`` (:class:`curate.rerank.Reranker`'s columns) and the ``decisions`` (sample key ->
    class index / ``correct`` / None)."""

    ids: list[str]
    classes: list[str]
    table: pd.DataFrame
    decisions: dict


def stored_embeddings(dataset: fo.Dataset, ids: list[str]) -> np.ndarray | None:
    """(N, D) the embeddings of samples ``ids`` (in that order) from the load's similarity run
    (``curate.fiftyone.load.SIMILARITY_KEY``); None when the run, its files or some sample's row are
    missing (the rerank then goes without the head refit)."""
    if SIMILARITY_KEY not in dataset.list_brain_runs():
        return None
    try:
        index = dataset.load_brain_results(SIMILARITY_KEY)
    except FileNotFoundError:
        return None
    row = {str(sid): i for i, sid in enumerate(index.sample_ids)}
    rows = [row.get(sid, -1) for sid in ids]
    if not rows or min(rows) < 0:
        return None
    return np.asarray(index.embeddings)[rows]


def read_inputs(dataset: fo.Dataset) -> Inputs:
    """The loaded scores of ``dataset`` (one bulk read; the distributions as raw bytes, decoded in
    one pass) and the decisions of its reviewed samples."""
    review.ensure_decision_fields(dataset)
    classes = list(dataset.default_classes or dataset.info.get("classes") or [])
    if not classes:
        raise ValueError(f"dataset {dataset.name!r} has no default_classes: load a scores file with `curate load`")
    ids, keys, given, dists, scores, neighbours = dataset.values(READ_FIELDS, _raw=True)
    try:
        matrix = vector_rows(dists)
    except ValueError as exc:
        raise ValueError(f"dataset {dataset.name!r}: label_distribution: {exc}; re-load its scores") from None
    index = {c: i for i, c in enumerate(classes)}
    table = pd.DataFrame({
        "sample_id": keys, "given_label": [index[g] for g in given], "label_distribution": list(matrix),
        "mislabel_score": scores, "neighbors": neighbours,
    })  # fmt: skip
    decided = dataset.match(F(review.REVIEWED) == True)  # noqa: E712
    d_keys, d_given, histories = decided.values(["sample_key", f"{review.GIVEN}.label", review.DECISIONS])
    return Inputs(ids, classes, table, decisions_of(d_given, histories, d_keys, classes))


def write_results(dataset: fo.Dataset, inputs: Inputs, result: dict) -> int:
    """Write ``result`` (:meth:`curate.rerank.Reranker.rerank`) on the undecided samples, one ``$set``
    of the three fields per sample (as ``set_values`` writes one field), and save the
    ``review-next`` view; returns how many samples were written."""
    schema = dataset.get_field_schema()
    for field, ftype in (
        (SCORE_FIELD, fo.FloatField),
        (SUGGESTED_FIELD, fo.StringField),
        (RELABEL_FIELD, fo.StringField),
    ):
        if field not in schema:
            dataset.add_sample_field(field, ftype)
    open_ = np.flatnonzero(~result["decided"])
    names = np.asarray(inputs.classes, dtype=object)
    columns = zip(
        result["mislabel_score"][open_].astype(float).tolist(),
        names[result["suggested_label"][open_]].tolist(),
        names[result["relabel_label"][open_]].tolist(),
    )
    open_ids = [inputs.ids[i] for i in open_]
    now = datetime.utcnow()
    ops = [
        UpdateOne(
            {"_id": ObjectId(sid)},
            {"$set": {SCORE_FIELD: score, SUGGESTED_FIELD: best, RELABEL_FIELD: other, "last_modified_at": now}},
        )
        for sid, (score, best, other) in zip(open_ids, columns)
    ]
    if ops:
        dataset._bulk_write(ops, ids=open_ids)
    view = dataset.match(F(review.REVIEWED) != True).sort_by(SCORE_FIELD, reverse=True)  # noqa: E712
    dataset.save_view(
        VIEW, view, description="undecided faces, most likely mislabeled first after the curator's decisions",
        overwrite=True,
    )  # fmt: skip
    return len(open_ids)


def rerank_dataset(dataset: fo.Dataset, cfg: RerankConfig | None = None, *, record: bool = True) -> dict:
    """Re-rank ``dataset`` in place (module docstring); returns a summary dict. ``record``: register
    the custom run (the plugin's automatic rerank after each decision does not)."""
    t0 = time.perf_counter()
    cfg = cfg or RerankConfig()
    inputs = read_inputs(dataset)
    labelled = sum(v is not None for v in inputs.decisions.values())
    # the embeddings are read only when the head refit will run (the automatic rerank after each decision)
    embeddings = stored_embeddings(dataset, inputs.ids) if cfg.head_applies(labelled) else None
    result = Reranker(inputs.table, embeddings).rerank(inputs.decisions, cfg)
    rescored = write_results(dataset, inputs, result)
    summary = {
        "faces": len(inputs.ids),
        "decided": int(result["decided"].sum()),
        "rescored": rescored,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if not record:
        return summary
    number = 1 + sum(1 for key in dataset.list_runs() if key.startswith(RUN_PREFIX))
    key = f"{RUN_PREFIX}{number}"
    dataset.register_run(key, dataset.init_run(method="curate.rerank", **asdict(cfg)))
    dataset.save_run_results(key, dataset.init_run_results(key, **summary))
    return summary
