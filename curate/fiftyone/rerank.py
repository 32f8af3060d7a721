"""Re-rank a curated FiftyOne dataset with its curator decisions (:mod:`curate.rerank`).

Reads the decision fields (:mod:`curate.fiftyone.review`) and the loaded scores, and writes, on the
**undecided** samples only, new fields (never a load's field, never a decision field):

=======================  ==============  ==========================================================
mislabel_score_rerank    float           the score after the decisions
suggested_rerank         string          argmax of the re-ranked distribution
relabel_rerank           string          the most likely class other than the given label
=======================  ==============  ==========================================================

plus the saved view ``review-next`` (undecided faces, highest ``mislabel_score_rerank`` first) and
one custom run ``curate_rerank_<n>`` per call (config: the weights; results: counts, seconds).
A decision means: the label in force when it differs from the given label, ``correct`` when the
given label was kept or confirmed, nothing (decided, no label) when the face is excluded.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import fiftyone as fo
import numpy as np
import pandas as pd
from fiftyone import ViewField as F

from curate.fiftyone import review
from curate.rerank import CORRECT, RerankConfig, Reranker

SCORE_FIELD = "mislabel_score_rerank"
SUGGESTED_FIELD = "suggested_rerank"
RELABEL_FIELD = "relabel_rerank"
VIEW = "review-next"
RUN_PREFIX = "curate_rerank_"


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


def rerank_dataset(dataset: fo.Dataset, cfg: RerankConfig | None = None) -> dict:
    """Re-rank ``dataset`` in place (module docstring); returns a summary dict."""
    t0 = time.perf_counter()
    review.ensure_decision_fields(dataset)
    classes = list(dataset.default_classes or dataset.info.get("classes") or [])
    if not classes:
        raise ValueError(f"dataset {dataset.name!r} has no default_classes: load a scores file with `curate load`")
    ids, keys, given, dists, scores, neighbours, histories = dataset.values(
        [
            "id",
            "sample_key",
            f"{review.GIVEN}.label",
            "label_distribution",
            review.MISLABEL,
            "neighbors",
            review.DECISIONS,
        ]
    )
    table = pd.DataFrame({
        "sample_id": keys, "given_label": [classes.index(g) for g in given],
        "label_distribution": [np.asarray(d, dtype=np.float64) for d in dists],
        "mislabel_score": scores, "neighbors": [list(n or []) for n in neighbours],
    })  # fmt: skip
    decisions = decisions_of(given, histories, keys, classes)
    cfg = cfg or RerankConfig()
    result = Reranker(table).rerank(decisions, cfg)
    open_ = np.flatnonzero(~result["decided"])
    names = np.asarray(classes, dtype=object)
    for field, ftype in (
        (SCORE_FIELD, fo.FloatField),
        (SUGGESTED_FIELD, fo.StringField),
        (RELABEL_FIELD, fo.StringField),
    ):
        if field not in dataset.get_field_schema():
            dataset.add_sample_field(field, ftype)
    open_ids = [ids[i] for i in open_]
    dataset.set_values(
        SCORE_FIELD, dict(zip(open_ids, result["mislabel_score"][open_].astype(float).tolist())), key_field="id"
    )
    dataset.set_values(SUGGESTED_FIELD, dict(zip(open_ids, names[result["suggested_label"][open_]])), key_field="id")
    dataset.set_values(RELABEL_FIELD, dict(zip(open_ids, names[result["relabel_label"][open_]])), key_field="id")
    view = dataset.match(F(review.REVIEWED) != True).sort_by(SCORE_FIELD, reverse=True)  # noqa: E712
    dataset.save_view(
        VIEW, view, description="undecided faces, most likely mislabeled first after the curator's decisions",
        overwrite=True,
    )  # fmt: skip
    summary = {
        "faces": len(ids),
        "decided": int(result["decided"].sum()),
        "rescored": len(open_ids),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    number = 1 + sum(1 for key in dataset.list_runs() if key.startswith(RUN_PREFIX))
    key = f"{RUN_PREFIX}{number}"
    dataset.register_run(key, dataset.init_run(method="curate.rerank", **asdict(cfg)))
    dataset.save_run_results(key, dataset.init_run_results(key, **summary))
    return summary
