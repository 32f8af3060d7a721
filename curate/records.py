"""The per-sample record: ``scores.parquet``, one row per image.

=====================  ==================  ==================================================
column                 type                contract
=====================  ==================  ==================================================
sample_id              string              the LabelTable's ``sample_id``
filepath               string              absolute image path
split                  string              the LabelTable's ``split``
given_label            int32               class index of the label the dataset came with
target_probs           list<float32>[C]    target-branch softmax, sums to 1
latent_distribution    list<float32>[C]    DMUE's mined distribution, 0 at given_label, sums to 1
aux_consensus          list<float32>[C]    the C-1 auxiliary branches trained on given_label: per class,
                                           the mean over those able to predict it, sums to 1 (plain
                                           models: target_probs)
label_distribution     list<float32>[C]    the distribution the tool believes, sums to 1
uncertainty            float32             batch-free pairwise uncertainty sigma in [0, 1] (a sigmoid; float32 can round it to 1)
mislabel_score         float32             [0, 1], higher = more likely mislabeled
ambiguity_score        float32             [0, 1], higher = more ambiguous
suggested_label        int32               argmax of label_distribution; for a face whose verdict is
                                           not ok, the most likely class other than given_label
knn_disagreement       float32             [0, 1], share of the k neighbours with another label (0: none)
neighbors              list<string>[k]     sample_ids of the k nearest neighbours
verdict                string              ok | ambiguous | likely_mislabeled
reasons                string              ";"-joined signals that fired ("" when none)
duplicate_group        int64               exact-duplicate group (decoded pixels), -1 for none
near_duplicates        list<string>        sample_ids of the neighbours at cosine >= the near-duplicate
                                           threshold that are not exact copies of the face
outlier_score          float32             [0, 1], higher = further from every face (docs/data-issues.md)
issues                 list<string>        from ISSUES: label, ambiguous, duplicate,
                                           conflicting_duplicate, leak, near_duplicate, outlier
=====================  ==================  ==================================================

The last four columns (``ISSUE_COLUMNS``, issue 21) are optional when reading: files written
before them lack them, and records written without them get the defaults (-1, [], 0, []).

Class names and provenance live in the parquet schema metadata (key ``curate``, JSON:
``{"classes": [...], "model": ..., "created": ..., ...}``). Embeddings go to a side file
``<stem>.embeddings.npy`` (float16 or float32, rows in the parquet's row order, memory-mappable).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from curate.files import temp_beside

VERDICTS = ("ok", "ambiguous", "likely_mislabeled")
ISSUES = ("label", "ambiguous", "duplicate", "conflicting_duplicate", "leak", "near_duplicate", "outlier")
META_KEY = b"curate"

SCALAR_COLUMNS = {
    "sample_id": pa.string(),
    "filepath": pa.string(),
    "split": pa.string(),
    "given_label": pa.int32(),
    "uncertainty": pa.float32(),
    "mislabel_score": pa.float32(),
    "ambiguity_score": pa.float32(),
    "suggested_label": pa.int32(),
    "knn_disagreement": pa.float32(),
    "verdict": pa.string(),
    "reasons": pa.string(),
}
VECTOR_COLUMNS = ("target_probs", "latent_distribution", "aux_consensus", "label_distribution")
COLUMNS = (
    "sample_id",
    "filepath",
    "split",
    "given_label",
    "target_probs",
    "latent_distribution",
    "aux_consensus",
    "label_distribution",
    "uncertainty",
    "mislabel_score",
    "ambiguity_score",
    "suggested_label",
    "knn_disagreement",
    "neighbors",
    "verdict",
    "reasons",
)
ISSUE_COLUMNS = ("duplicate_group", "near_duplicates", "outlier_score", "issues")
_ISSUE_TYPES = {
    "duplicate_group": pa.int64(),
    "near_duplicates": pa.list_(pa.string()),
    "outlier_score": pa.float32(),
    "issues": pa.list_(pa.string()),
}


def issue_defaults(n: int) -> dict[str, list]:
    """The ISSUE_COLUMNS of ``n`` records that carry no data-issue information."""
    return {"duplicate_group": [-1] * n, "near_duplicates": [[] for _ in range(n)], "outlier_score": [0.0] * n,
            "issues": [[] for _ in range(n)]}  # fmt: skip


def schema(num_classes: int, metadata: dict[str, Any]) -> pa.Schema:
    """The arrow schema of a scores file with C = ``num_classes`` and ``metadata`` stored as JSON."""
    fields = []
    for name in COLUMNS:
        if name in VECTOR_COLUMNS:
            fields.append(pa.field(name, pa.list_(pa.float32(), num_classes)))
        elif name == "neighbors":
            fields.append(pa.field(name, pa.list_(pa.string())))
        else:
            fields.append(pa.field(name, SCALAR_COLUMNS[name]))
    fields += [pa.field(name, _ISSUE_TYPES[name]) for name in ISSUE_COLUMNS]
    return pa.schema(fields, metadata={META_KEY: json.dumps(metadata).encode()})


def to_arrow(df: pd.DataFrame, sch: pa.Schema) -> pa.Table:
    """Convert a chunk of records (vector columns as (n, C) arrays or lists) to an arrow table."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"score records are missing columns: {missing}")
    defaults = issue_defaults(len(df))
    arrays = []
    for field in sch:
        col = df[field.name] if field.name in df.columns else pd.Series(defaults[field.name], dtype=object)
        if pa.types.is_fixed_size_list(field.type):
            mat = np.asarray(np.stack(col.to_numpy()), dtype=np.float32)
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(mat.ravel()), field.type.list_size))
        else:
            arrays.append(pa.array(col.tolist(), type=field.type))
    return pa.Table.from_arrays(arrays, schema=sch)


class ScoresWriter:
    """Streams record chunks into one parquet file, atomically: the target appears only on ``close()``.

    Use as a context manager; an exception inside the block removes the temporary file and leaves
    any existing target untouched.
    """

    def __init__(self, path: str | Path, num_classes: int, metadata: dict[str, Any]):
        self.path = Path(path)
        self.schema = schema(num_classes, metadata)
        self._tmp = temp_beside(self.path)
        self._writer = pq.ParquetWriter(self._tmp, self.schema)
        self.rows = 0

    def write(self, chunk: pd.DataFrame) -> None:
        self._writer.write_table(to_arrow(chunk, self.schema))
        self.rows += len(chunk)

    def close(self) -> Path:
        self._writer.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        self._writer.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> ScoresWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_scores(
    path: str | Path, records: pd.DataFrame | Iterable[pd.DataFrame], num_classes: int, metadata: dict[str, Any]
) -> Path:
    """Write records (one DataFrame or an iterable of chunks) to ``path`` atomically."""
    chunks = [records] if isinstance(records, pd.DataFrame) else records
    with ScoresWriter(path, num_classes, metadata) as w:
        for chunk in chunks:
            w.write(chunk)
    return Path(path)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``curate`` metadata (classes, model, ...) of a scores file."""
    meta = pq.read_schema(path).metadata or {}
    if META_KEY not in meta:
        raise ValueError(f"{path}: not a curate scores file (no '{META_KEY.decode()}' metadata)")
    return json.loads(meta[META_KEY])


def read_scores(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a scores file; vector columns come back as numpy arrays per row, classes in ``df.attrs``.
    ISSUE_COLUMNS missing from an older file come back with their defaults."""
    meta = read_metadata(path)
    present = set(pq.read_schema(path).names)
    wanted = list(columns) if columns is not None else [*COLUMNS, *ISSUE_COLUMNS]
    df = pq.read_table(path, columns=[c for c in wanted if c in present or c not in ISSUE_COLUMNS]).to_pandas()
    defaults = issue_defaults(len(df))
    for c in wanted:
        if c in ISSUE_COLUMNS and c not in present:
            df[c] = defaults[c]
    if columns is None:
        df = df[[c for c in wanted if c in df.columns] + [c for c in df.columns if c not in wanted]]
    df.attrs.update(meta)
    return df


def vectors(df: pd.DataFrame, column: str) -> np.ndarray:
    """A vector column as one (N, C) float32 array."""
    return np.asarray(np.stack(df[column].to_numpy()), dtype=np.float32)


def neighbour_rows(sample_ids: Iterable[str], neighbors: Iterable[Iterable[str] | None]) -> np.ndarray:
    """(N, k) int64 row of each listed neighbour in ``sample_ids`` (the ``neighbors`` column turned
    back into row indices; k = the longest list, at least 1); -1 pads short lists and marks ids
    that are not in ``sample_ids``."""
    ids = pd.Index([str(s) for s in sample_ids])
    lists = [[] if n is None else [str(x) for x in n] for n in neighbors]
    lengths = np.array([len(n) for n in lists], dtype=np.int64)
    knn = np.full((len(lists), max(int(lengths.max(initial=0)), 1)), -1, dtype=np.int64)
    rows = np.repeat(np.arange(len(lists)), lengths)
    columns = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    knn[rows, columns] = ids.get_indexer([x for n in lists for x in n])
    return knn


def embeddings_path(scores_path: str | Path) -> Path:
    """The side file holding the embeddings of a scores file."""
    p = Path(scores_path)
    return p.with_name(p.stem + ".embeddings.npy")


def stage_embeddings(scores_path: str | Path, emb: np.ndarray, *, dtype: str = "float16") -> Path:
    """Write (N, D) embeddings to a temporary file beside the scores file's side file; returns it
    (``os.replace`` it onto ``embeddings_path(scores_path)``, e.g. right after the scores file)."""
    tmp = temp_beside(embeddings_path(scores_path))
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(emb, dtype=dtype))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def save_embeddings(scores_path: str | Path, emb: np.ndarray, *, dtype: str = "float16") -> Path:
    """Save (N, D) embeddings beside the scores file, atomically; returns the path."""
    target = embeddings_path(scores_path)
    os.replace(stage_embeddings(scores_path, emb, dtype=dtype), target)
    return target


def load_embeddings(scores_path: str | Path) -> np.ndarray:
    """Memory-map the embeddings side file of a scores file."""
    return np.load(embeddings_path(scores_path), mmap_mode="r")


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write records as CSV (vector and list columns as JSON lists), atomically."""
    path = Path(path)
    out = df.copy()
    for col in (*VECTOR_COLUMNS, "neighbors", "near_duplicates", "issues"):
        if col in out.columns:
            out[col] = [json.dumps(np.asarray(v).tolist()) for v in out[col]]
    tmp = temp_beside(path)
    with open(tmp, "w", newline="") as fh:
        out.to_csv(fh, index=False)
    os.replace(tmp, path)
    return path
