"""Output formats: generic tables, or a dataset format's own (its label file, an ImageFolder tree).

Generic ``csv`` / ``jsonl`` / ``parquet``: one row per kept face, columns

    sample_id, filepath, split, given_label, given_label_id, clean_label, clean_label_id,
    suggested_label, suggested_label_id, action, decided_by, verdict, mislabel_score,
    ambiguity_score, then the training target distribution (see
    :mod:`curate.export.policies`): ``p_<class>`` columns in csv, a ``soft_label`` list (class
    order) in jsonl/parquet.

Labels are class names (``""`` = none) with their ids beside them (-1 = none). The parquet
file's schema metadata ``curate_export`` holds ``{"classes": [...]}``. A generic csv reads back
with ``read_dataset(out, format="csv", path_column="filepath", label_column="clean_label",
id_column="sample_id", classes=...)``.

Own formats (``native`` picks the original dataset's) are the registered dataset formats' exports
(:mod:`curate.formats`), written by :mod:`curate.export.native` and :mod:`curate.export.tree`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from curate.export.native import WriteContext, Written
from curate.export.policies import CleanedLabels
from curate.export.safety import ExportError
from curate.formats import find_format, registered_formats

Writer = Callable[[CleanedLabels, Path, WriteContext], Written]


def generic_frame(cleaned: CleanedLabels) -> pd.DataFrame:
    """The generic columns (without the distribution) of the kept faces."""
    kept = cleaned.kept
    f = cleaned.faces[kept]
    names = pd.Series([*cleaned.classes, ""])

    def name(column: str) -> list[str]:
        return names.iloc[f[column].to_numpy()].tolist()  # -1 -> the trailing ""

    return pd.DataFrame({
        "sample_id": f["sample_id"], "filepath": f["filepath"], "split": f["split"],
        "given_label": name("given_label"), "given_label_id": f["given_label"],
        "clean_label": name("clean_label"), "clean_label_id": f["clean_label"],
        "suggested_label": name("suggested_label"), "suggested_label_id": f["suggested_label"],
        "action": f["action"], "decided_by": f["decided_by"], "verdict": f["verdict"],
        "mislabel_score": f["mislabel_score"], "ambiguity_score": f["ambiguity_score"],
    }).reset_index(drop=True)  # fmt: skip


def write_csv(cleaned: CleanedLabels, tmp: Path, ctx: WriteContext) -> Written:
    """Generic CSV: the generic columns, then one ``p_<class>`` column per class."""
    frame = generic_frame(cleaned)
    target = cleaned.target[cleaned.kept]
    for k, cls in enumerate(cleaned.classes):
        frame[f"p_{cls}"] = target[:, k]
    frame.to_csv(tmp, index=False, float_format="%.6g")
    return Written(len(frame))


def write_jsonl(cleaned: CleanedLabels, tmp: Path, ctx: WriteContext) -> Written:
    """JSON lines: one object per face, ``soft_label`` a list in class order."""
    soft = cleaned.target[cleaned.kept].astype(np.float64).round(6)  # float32 noise would bloat the text
    frame = generic_frame(cleaned).assign(soft_label=soft.tolist())
    frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
    return Written(len(frame))


def write_parquet(cleaned: CleanedLabels, tmp: Path, ctx: WriteContext) -> Written:
    """Parquet: ``soft_label`` a list<float32> column, the classes in the schema metadata."""
    frame = generic_frame(cleaned).assign(soft_label=list(cleaned.target[cleaned.kept]))
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = {**(table.schema.metadata or {}), b"curate_export": json.dumps({"classes": cleaned.classes}).encode()}
    pq.write_table(table.replace_schema_metadata(meta), tmp)
    return Written(len(frame))


@dataclass(frozen=True)
class Format:
    """A writer (fills a temporary file, or folder when ``folder``); ``native`` formats re-emit the
    original label file, whose image paths are relative to ``image_root(label file)`` (None: it holds
    none); ``soft`` formats carry the distribution, the others one hard label."""

    write: Writer
    folder: bool = False
    native: bool = False
    soft: bool = False
    image_root: Callable[[Path], Path] | None = None


#: The generic formats, written from a dataset of any format.
GENERIC: dict[str, Format] = {
    "csv": Format(write_csv, soft=True),
    "jsonl": Format(write_jsonl, soft=True),
    "parquet": Format(write_parquet, soft=True),
}


def export_formats() -> dict[str, Format]:
    """``--format`` name -> Format: the generic ones, then each registered dataset format's own."""
    own = {
        f.export.name: Format(
            f.export.write, folder=f.export.folder, native=f.export.own_only, image_root=f.export.image_root
        )  # fmt: skip
        for f in registered_formats()
        if f.export is not None
    }
    return {**GENERIC, **own}


def format_choices() -> tuple[str, ...]:
    """Every ``--format`` value: ``native`` (the original dataset's own), then :func:`export_formats`."""
    return ("native", *export_formats())


def resolve_format(name: str, dataset_format: str | None) -> str:
    """The export format to write: ``native`` becomes the original dataset's own format; a native
    format must match the original dataset."""
    formats = export_formats()
    if name not in ("native", *formats):
        raise ExportError(f"unknown format {name!r}; choose one of {', '.join(format_choices())}")
    if name != "native" and not formats[name].native:
        return name
    source = find_format(dataset_format)
    own = source.export.name if source is not None and source.export is not None else None
    if own is None:
        what = f"a {dataset_format} dataset" if dataset_format else "no original dataset (pass --dataset)"
        anywhere = [n for n, f in formats.items() if not f.native]
        raise ExportError(
            f"--format {name} re-emits the original dataset's label file, but there is {what};"
            f" choose {', '.join(anywhere[:-1])} or {anywhere[-1]}"
        )
    if name not in ("native", own):
        raise ExportError(
            f"--format {name} does not match the original dataset, a {dataset_format} dataset;"
            f" use --format native (= {own})"
        )
    return own
