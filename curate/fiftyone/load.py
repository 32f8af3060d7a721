"""Load a scores file (``curate.records``) into a persistent FiftyOne dataset; re-loading updates it.

Sample fields written by a load:

=======================  ==============  ==========================================================
field                    type            contract
=======================  ==============  ==========================================================
sample_key               string          the scores file's ``sample_id``: the match key of a re-load
                                         (then ``filepath`` for samples whose key is not in the file)
split                    string
ground_truth             Classification  the given label
dmue                     Classification  label = suggested class, confidence = its probability in
                                         ``label_distribution``, logits = log(target_probs) (probs
                                         clipped at 1e-12), so ``compute_hardness`` /
                                         ``compute_mistakenness(use_logits=True)`` run on it
mislabel_score, ambiguity_score, uncertainty, knn_disagreement   float
latent_distribution,     vector          float32, classes in ``dataset.default_classes`` order
aux_consensus,
label_distribution
suggested_label          string          class name
verdict, reasons         string          ``ok`` | ``ambiguous`` | ``likely_mislabeled``; the signals
neighbors                list<string>    sample keys of the k nearest neighbours
duplicate_group          int             exact-duplicate group (decoded pixels), -1 for none
near_duplicates          list<string>    sample keys of its near duplicates (not exact copies)
outlier_score            float           [0, 1]; ``outlier`` issue at >= 0.5
issues                   list<string>    data issues: label, ambiguous, duplicate,
                                         conflicting_duplicate, leak, near_duplicate, outlier
tags                                     ``likely_mislabeled`` / ``ambiguous`` = the verdict; a load
                                         replaces only these two tags
=======================  ==============  ==========================================================

The decision fields (:mod:`curate.fiftyone.review`) get their initial values on new samples only; a load
never writes them on existing samples, nor their other tags. The dataset also gets:
media type ``image``, ``default_classes`` and ``info["classes"]``; ``info["scores"]``, the last
scores file loaded (:func:`loaded_from` lists them all); the review queues as saved views
(:data:`QUEUES` and ``given-<class>``; the data-issue views :data:`ISSUE_VIEWS`) and the database
indexes they use (:data:`INDEXES`); the embeddings side file as the faiss similarity brain run
:data:`SIMILARITY_KEY`; one custom run ``curate_load_<n>`` per load (config: scores path,
classes, model; results: row/added/updated/verdict counts, seconds).
"""

from __future__ import annotations

import io
import logging
import time
import zlib
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import fiftyone as fo
import fiftyone.brain as fob
import fiftyone.core.odm.database as foodb
import numpy as np
import pandas as pd
from bson import ObjectId
from fiftyone import ViewField as F
from fiftyone.core.odm.sample import _generate_rand
from pymongo import UpdateOne

from curate.fiftyone import faiss_backend, review
from curate.records import COLUMNS, VERDICTS, embeddings_path, load_embeddings, read_scores, vectors

logger = logging.getLogger(__name__)

SIMILARITY_KEY = "dmue_sim"
VERDICT_TAGS = ("likely_mislabeled", "ambiguous")
RUN_PREFIX = "curate_load_"
SCORE_FIELDS = ("mislabel_score", "ambiguity_score", "uncertainty", "knn_disagreement")
VECTOR_FIELDS = ("latent_distribution", "aux_consensus", "label_distribution")
STRING_FIELDS = ("sample_key", "split", "suggested_label", "verdict", "reasons")
#: saved view name -> description; plus one "given-<class>" queue per class
QUEUES = {
    "likely-mislabeled": "faces flagged likely mislabeled, most likely first",
    "ambiguous": "faces flagged ambiguous, most ambiguous first",
    "unreviewed-flagged": "flagged faces without a curator decision, most likely mislabeled first",
}
#: saved views of the data issues (issue 21): name -> description
ISSUE_VIEWS = {
    "duplicates": "faces with an exact copy, grouped: by duplicate_group, lowest mislabel_score first in each group",
    "leaks": "faces with a copy or near duplicate in another split, copies together",
    "outliers": "faces with the outlier issue, highest outlier_score first",
}
#: per-face data-issue fields, as in the scores file (``curate.records.ISSUE_COLUMNS``)
ISSUE_FIELDS = ("duplicate_group", "near_duplicates", "outlier_score", "issues")
#: indexes a load creates when missing: the re-load's match key and the fields the saved views
#: (:data:`QUEUES`, ``given-<class>``, :data:`ISSUE_VIEWS`) and the App's sidebar filter and sort
#: on; compound ones for the per-class queue and the duplicate groups (docs/scale.md)
INDEXES: tuple[str | list[tuple[str, int]], ...] = (
    "sample_key", "tags", "ground_truth.label", review.REVIEWED, "verdict", "split",
    "mislabel_score", "ambiguity_score", "outlier_score", "duplicate_group", "issues",
    [("ground_truth.label", 1), ("mislabel_score", -1)],
    [("duplicate_group", 1), ("mislabel_score", 1)],
)  # fmt: skip
_MIN_PROB = 1e-12
#: fields a load copies as they are (``_owned_fields``)
_PLAIN_FIELDS = (*SCORE_FIELDS, *VECTOR_FIELDS, "suggested_label", "verdict", "reasons", "neighbors", *ISSUE_FIELDS)


class ScoresFileError(ValueError):
    """The input is not a usable scores file, or does not fit the dataset it should update."""


def load_scores(
    scores_path: str | Path,
    name: str,
    *,
    overwrite: bool = False,
    similarity: bool = True,
    progress: bool = True,
) -> fo.Dataset:
    """Create or update the persistent dataset ``name`` from ``scores_path``; returns the dataset.

    ``overwrite`` deletes an existing dataset first (its decisions too). ``similarity`` indexes the
    embeddings side file (``<stem>.embeddings.npy``) as brain run :data:`SIMILARITY_KEY`.
    """
    started = time.time()
    scores_path = Path(scores_path).resolve()
    df = _read(scores_path)
    classes = list(df.attrs["classes"])
    embeddings = _read_embeddings(scores_path, len(df)) if similarity else None
    dataset = _open(name, classes, overwrite)
    _declare_issue_fields(dataset)
    values = _values(df, classes)

    matched = _match(dataset, df)
    new_rows = np.flatnonzero([m is None for m in matched])
    old_rows = np.flatnonzero([m is not None for m in matched])
    if len(new_rows):
        _insert(dataset, values, new_rows, progress)
    if len(old_rows):
        _update(dataset, values, old_rows, [matched[i] for i in old_rows], progress)
    dataset.info["scores"] = str(scores_path)
    dataset.save()
    for spec in INDEXES:  # after the writes: building an index once is cheaper than keeping it up to date
        dataset.create_index(spec)
    _save_queues(dataset, classes)
    if embeddings is not None:
        _index(dataset, values["sample_key"], embeddings)
    _record_load(dataset, scores_path, df, added=len(new_rows), updated=len(old_rows), seconds=time.time() - started)
    return dataset


def loaded_from(name: str) -> list[str]:
    """The scores files (resolved paths, in load order, once each) that ``curate load`` put into
    the dataset ``name``; empty when there is no such dataset. Raises :class:`ScoresFileError`
    when ``name`` is a dataset that ``curate load`` did not make."""
    if not fo.dataset_exists(name):
        return []
    dataset = _curate_dataset(name)
    paths = [dataset.get_run_info(key).config.scores_path for key in sorted(_load_keys(dataset), key=_load_number)]
    return list(dict.fromkeys(paths))


def _curate_dataset(name: str) -> fo.Dataset:
    """The existing dataset ``name``; ScoresFileError unless ``curate load`` made it."""
    dataset = fo.load_dataset(name)
    if "classes" not in dataset.info:
        raise ScoresFileError(f"dataset {name!r} exists and was not made by `curate load`; choose another --name")
    return dataset


def _load_keys(dataset: fo.Dataset) -> list[str]:
    return [key for key in dataset.list_runs() if key.startswith(RUN_PREFIX) and key[len(RUN_PREFIX) :].isdigit()]


def _load_number(key: str) -> int:
    return int(key[len(RUN_PREFIX) :])


def _read(path: Path) -> pd.DataFrame:
    """The records of a scores file, validated; raises :class:`ScoresFileError`."""
    if not path.is_file():
        raise ScoresFileError(f"{path}: no such file")
    try:
        df = read_scores(path)
    except Exception as e:  # pyarrow's errors for non-parquet input, or no curate metadata
        raise ScoresFileError(f"{path}: not a curate scores file ({e}); write one with `curate score`") from e
    missing = [c for c in COLUMNS if c not in df.columns]
    classes = df.attrs.get("classes")
    if missing or not classes:
        what = f"columns {missing}" if missing else "the class list in its metadata"
        raise ScoresFileError(f"{path}: not a curate scores file (missing {what})")
    if df.empty:
        raise ScoresFileError(f"{path}: the scores file holds no faces")
    unknown = sorted(set(df["verdict"]) - set(VERDICTS))
    if unknown:
        raise ScoresFileError(f"{path}: verdicts {unknown} are not one of {', '.join(VERDICTS)}")
    duplicated = df["sample_id"][df["sample_id"].duplicated()].tolist()
    if duplicated:
        raise ScoresFileError(f"{path}: duplicate sample_id values {duplicated[:5]} (first 5)")
    for col in ("given_label", "suggested_label"):
        bad = ~df[col].between(0, len(classes) - 1)
        if bad.any():
            raise ScoresFileError(
                f"{path}: {col} holds {df[col][bad].iloc[0]} but there are {len(classes)} classes {classes}"
            )
    return df


def _read_embeddings(scores_path: Path, rows: int) -> np.ndarray:
    path = embeddings_path(scores_path)
    if not path.is_file():
        raise ScoresFileError(f"{path}: no embeddings side file; load without similarity (--no-similarity)")
    emb = load_embeddings(scores_path)
    if emb.ndim != 2 or len(emb) != rows:
        raise ScoresFileError(f"{path}: embeddings have shape {emb.shape} but the scores file has {rows} rows")
    return emb


def _open(name: str, classes: list[str], overwrite: bool) -> fo.Dataset:
    """The dataset to fill: new, emptied (``overwrite``), or an existing curate dataset with ``classes``."""
    if fo.dataset_exists(name):
        if overwrite:
            dataset = fo.load_dataset(name)
            dataset.delete_brain_runs()  # removes the faiss index files too
            dataset.delete()
        else:
            dataset = _curate_dataset(name)
            if dataset.info["classes"] != classes:
                raise ScoresFileError(
                    f"dataset {name!r} has classes {dataset.info['classes']} but the scores file has {classes}; "
                    "load it under another --name, or pass --overwrite to replace the dataset (and its decisions)"
                )
            return dataset
    dataset = fo.Dataset(name, persistent=True)
    dataset.media_type = "image"  # samples are inserted as raw documents, which does not set it
    dataset.default_classes = classes
    dataset.info["classes"] = classes
    dataset.save()
    _declare_fields(dataset)
    return dataset


def _declare_fields(dataset: fo.Dataset) -> None:
    for field in STRING_FIELDS:
        dataset.add_sample_field(field, fo.StringField)
    for field in SCORE_FIELDS:
        dataset.add_sample_field(field, fo.FloatField)
    for field in VECTOR_FIELDS:
        dataset.add_sample_field(field, fo.VectorField)
    for field in ("ground_truth", "dmue"):
        dataset.add_sample_field(field, fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
    dataset.add_sample_field("neighbors", fo.ListField, subfield=fo.StringField)
    review.ensure_decision_fields(dataset)


def _declare_issue_fields(dataset: fo.Dataset) -> None:
    """Declare the data-issue fields (also on datasets loaded before they existed)."""
    schema = dataset.get_field_schema()
    kinds = {
        "duplicate_group": (fo.IntField, {}),
        "near_duplicates": (fo.ListField, {"subfield": fo.StringField}),
        "outlier_score": (fo.FloatField, {}),
        "issues": (fo.ListField, {"subfield": fo.StringField}),
    }
    for field, (ftype, kwargs) in kinds.items():
        if field not in schema:
            dataset.add_sample_field(field, ftype, **kwargs)


def _values(df: pd.DataFrame, classes: list[str]) -> dict[str, Any]:
    """Per-field sequences in row order: labels as class names, vectors (logits and the
    distributions, float32) as ``VectorField`` bytes."""
    names = np.asarray(classes, dtype=object)
    given = df["given_label"].to_numpy()
    suggested = df["suggested_label"].to_numpy()
    dists = {f: vectors(df, f) for f in VECTOR_FIELDS}
    label_dist = dists["label_distribution"]
    return {
        "sample_key": df["sample_id"].tolist(),
        "filepath": df["filepath"].tolist(),
        "split": df["split"].tolist(),
        "given": names[given].tolist(),
        "suggested_label": names[suggested].tolist(),
        "confidence": label_dist[np.arange(len(df)), suggested].astype(float).tolist(),
        "logits": _serialized_rows(np.log(np.clip(vectors(df, "target_probs"), _MIN_PROB, None))),
        **{f: _serialized_rows(d) for f, d in dists.items()},
        **{f: df[f].astype(float).tolist() for f in SCORE_FIELDS},
        "verdict": df["verdict"].tolist(),
        "reasons": df["reasons"].tolist(),
        "neighbors": [list(n) for n in df["neighbors"]],
        "duplicate_group": df["duplicate_group"].astype(int).tolist(),
        "near_duplicates": [list(n) for n in df["near_duplicates"]],
        "outlier_score": df["outlier_score"].astype(float).tolist(),
        "issues": [list(n) for n in df["issues"]],
    }


def _serialized_rows(matrix: np.ndarray) -> list[bytes]:
    """``fiftyone.core.utils.serialize_numpy_array`` of each row (zlib'd ``numpy.save`` bytes, as a
    ``VectorField`` stores them), with the ``.npy`` header built once."""
    with io.BytesIO() as f:
        np.save(f, matrix[0], allow_pickle=False)
        header = f.getvalue()[: -matrix[0].nbytes]
    return [zlib.compress(header + row.tobytes()) for row in matrix]


def vector_rows(raw: list[Any]) -> np.ndarray:
    """A ``VectorField`` read with ``values(field, _raw=True)`` as one (N, C) array: the inverse of
    :func:`_serialized_rows`, parsing the ``.npy`` header once when all rows share it (else each row
    through FiftyOne's own decoding, ~50x slower). Raises ValueError on a sample without the vector."""
    if any(r is None for r in raw):
        raise ValueError(f"{sum(r is None for r in raw)} samples have no vector")
    if not raw:
        return np.zeros((0, 0), dtype=np.float32)
    rows = [zlib.decompress(r) if isinstance(r, bytes) else None for r in raw]
    if rows[0] is not None:
        first = np.load(io.BytesIO(rows[0]), allow_pickle=False)
        size, header = len(rows[0]), rows[0][: len(rows[0]) - first.nbytes]
        if all(r is not None and len(r) == size and r.startswith(header) for r in rows):
            body = b"".join(r[len(header) :] for r in rows)
            return np.frombuffer(body, dtype=first.dtype).reshape(len(rows), *first.shape)
    return np.stack([fo.VectorField().to_python(r) for r in raw])


def _classification(**fields: Any) -> dict[str, Any]:
    return {"_id": ObjectId(), "_cls": "Classification", "tags": [], **fields}


def _owned_fields(v: dict[str, Any], i: int) -> dict[str, Any]:
    """The fields a load owns for row ``i``, in the form FiftyOne stores them (``Sample.to_mongo_dict``:
    labels as Classification documents, vectors as ``VectorField`` bytes)."""
    return {
        "sample_key": v["sample_key"][i],
        "split": v["split"][i],
        "ground_truth": _classification(label=v["given"][i]),
        "dmue": _classification(label=v["suggested_label"][i], confidence=v["confidence"][i], logits=v["logits"][i]),
        **{f: v[f][i] for f in _PLAIN_FIELDS},
    }


def _insert(dataset: fo.Dataset, v: dict[str, Any], rows: np.ndarray, progress: bool) -> None:
    """Add new samples with FiftyOne's batch-import primitive (``insert_documents``, as FiftyOne's own
    importers do): building ``fo.Sample`` objects for ``add_samples`` costs ~15x the write itself."""
    now = datetime.utcnow()
    docs = (
        {
            "filepath": v["filepath"][i],
            "tags": [v["verdict"][i]] if v["verdict"][i] in VERDICT_TAGS else [],
            "_media_type": "image",
            "_rand": _generate_rand(),
            "_dataset_id": dataset._doc.id,
            "created_at": now,
            "last_modified_at": now,
            **_owned_fields(v, i),
            review.DECISIONS: [],
            review.REVIEWED: False,
            review.EXCLUDED: False,
        }
        for i in rows
    )
    foodb.insert_documents(docs, dataset._sample_collection, progress=progress, num_docs=len(rows))


def _match(dataset: fo.Dataset, df: pd.DataFrame) -> list[str | None]:
    """Per row, the id of the existing sample it updates (same sample_key, else same filepath), or None."""
    if not len(dataset):
        return [None] * len(df)
    ids, keys, paths = dataset.values(["id", "sample_key", "filepath"])
    by_key = dict(zip(keys, ids))
    wanted = set(df["sample_id"])
    path_counts = Counter(paths)
    by_path = {p: i for i, k, p in zip(ids, keys, paths) if k not in wanted and path_counts[p] == 1}
    return [by_key.get(k) or by_path.pop(p, None) for k, p in zip(df["sample_id"], df["filepath"])]


def _update(dataset: fo.Dataset, v: dict[str, Any], rows: np.ndarray, ids: list[str], progress: bool) -> None:
    """Overwrite the load-owned fields and verdict tags of existing samples: one atomic ``$set`` of
    the fields with a ``$pull`` of the verdict tags per sample (as ``set_values`` writes), then an
    ``$addToSet`` of the new verdict tag; decision fields and other tags are not touched. Bulk
    writes by id only: a view selecting the ids would send them all in one command, which MongoDB
    refuses (16 MB) from about 500,000 faces."""
    now = datetime.utcnow()
    ops = [
        UpdateOne(
            {"_id": ObjectId(sid)},
            {"$set": {**_owned_fields(v, i), "last_modified_at": now}, "$pull": {"tags": {"$in": list(VERDICT_TAGS)}}},
        )
        for sid, i in zip(ids, rows)
    ]
    dataset._bulk_write(ops, ids=ids, progress=progress)
    tagged = [(sid, v["verdict"][i]) for sid, i in zip(ids, rows) if v["verdict"][i] in VERDICT_TAGS]
    if tagged:  # a second write: one update cannot both pull from and add to the same array
        adds = [UpdateOne({"_id": ObjectId(sid)}, {"$addToSet": {"tags": tag}}) for sid, tag in tagged]
        dataset._bulk_write(adds, ids=[sid for sid, _ in tagged], progress=progress)


def _save_queues(dataset: fo.Dataset, classes: list[str]) -> None:
    flagged = dataset.match_tags(list(VERDICT_TAGS))
    views = {
        "likely-mislabeled": dataset.match_tags("likely_mislabeled").sort_by("mislabel_score", reverse=True),
        "ambiguous": dataset.match_tags("ambiguous").sort_by("ambiguity_score", reverse=True),
        "unreviewed-flagged": flagged.match(F(review.REVIEWED) != True).sort_by("mislabel_score", reverse=True),  # noqa: E712
    }
    for name, view in views.items():
        dataset.save_view(name, view, description=QUEUES[name], overwrite=True)
    for cls in classes:
        view = dataset.match(F("ground_truth.label") == cls).sort_by("mislabel_score", reverse=True)
        dataset.save_view(
            f"given-{cls}", view, description=f"faces given {cls!r}, most likely mislabeled first", overwrite=True
        )
    for name, view in issue_views(dataset).items():
        dataset.save_view(name, view, description=ISSUE_VIEWS[name], overwrite=True)


def issue_views(samples: Any) -> dict[str, fo.DatasetView]:
    """The :data:`ISSUE_VIEWS` of ``samples`` (a loaded dataset or a view of it)."""
    by_group = [("duplicate_group", 1), ("mislabel_score", 1)]
    return {
        "duplicates": samples.match(F("duplicate_group") >= 0).sort_by(by_group),
        "leaks": samples.match(F("issues").contains("leak")).sort_by([*by_group, ("split", 1)]),
        "outliers": samples.match(F("issues").contains("outlier")).sort_by("outlier_score", reverse=True),
    }


def _index(dataset: fo.Dataset, keys: list[str], embeddings: np.ndarray) -> None:
    """Add the rows' embeddings to brain run :data:`SIMILARITY_KEY`; the run is created, or rebuilt
    from these rows alone when its embeddings have another dimension or its files are gone."""
    id_of = dict(zip(*dataset.values(["sample_key", "id"])))
    sample_ids = [id_of[k] for k in keys]
    if SIMILARITY_KEY in dataset.list_brain_runs():
        try:
            index = dataset.load_brain_results(SIMILARITY_KEY)
            stale = index.total_index_size and index.embeddings.shape[1] != embeddings.shape[1]
        except FileNotFoundError:
            stale = True
        if stale:
            logger.warning("rebuilding similarity run %r from %d embeddings", SIMILARITY_KEY, len(keys))
            dataset.delete_brain_run(SIMILARITY_KEY)
    if SIMILARITY_KEY not in dataset.list_brain_runs():
        index = fob.compute_similarity(
            dataset, embeddings=False, backend=faiss_backend.BACKEND, brain_key=SIMILARITY_KEY
        )
    index.add_to_index(np.asarray(embeddings), np.asarray(sample_ids))
    index.save()


def _record_load(
    dataset: fo.Dataset, scores_path: Path, df: pd.DataFrame, *, added: int, updated: int, seconds: float
) -> None:
    number = 1 + max((_load_number(key) for key in _load_keys(dataset)), default=0)
    key = f"{RUN_PREFIX}{number}"
    meta = df.attrs
    config = dataset.init_run(
        method="curate.load", scores_path=str(scores_path), classes=meta["classes"], model=meta.get("model")
    )
    dataset.register_run(key, config)
    counts = {str(k): int(n) for k, n in df["verdict"].value_counts().items()}
    results = dataset.init_run_results(
        key, rows=len(df), added=added, updated=updated, verdicts=counts, seconds=round(seconds, 3)
    )
    dataset.save_run_results(key, results)
