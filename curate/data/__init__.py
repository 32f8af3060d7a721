"""Data layer: read any supported dataset into a LabelTable (see :mod:`curate.data.table`).

``read_dataset(path)`` detects the format and dispatches to one reader per format in
:mod:`curate.data.readers`; every reader takes ``on_bad`` and ``report`` (see
:mod:`curate.data.errors`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from inspect import signature
from pathlib import Path

import pandas as pd

from curate.data.errors import DataError, OnBad, SkipReport
from curate.data.readers.affectnet import AFFECTNET_COLUMNS, read_affectnet
from curate.data.readers.common import sniff_delimiter
from curate.data.readers.csvlist import read_csvlist
from curate.data.readers.fer2013 import read_fer2013
from curate.data.readers.ferplus_labels import FERPLUS_LABELS_COLUMNS, read_ferplus_labels
from curate.data.readers.fiftyone_dataset import PREFIX as FIFTYONE_PREFIX
from curate.data.readers.fiftyone_dataset import read_fiftyone
from curate.data.readers.imagefolder import read_imagefolder
from curate.data.readers.rafdb import LABEL_FILE as RAFDB_LABEL_FILE
from curate.data.readers.rafdb import read_rafdb
from curate.data.table import make_table

__all__ = ["FORMATS", "DataError", "SkipReport", "detect_format", "make_table", "read_dataset"]

READERS: dict[str, Callable[..., pd.DataFrame]] = {
    "imagefolder": read_imagefolder,
    "csv": read_csvlist,
    "ferplus": read_ferplus_labels,
    "fer2013": read_fer2013,
    "rafdb": read_rafdb,
    "affectnet": read_affectnet,
    "fiftyone": read_fiftyone,
}
FORMATS: tuple[str, ...] = tuple(READERS)
#: Generic option names that a reader spells differently.
ALIASES = {"fiftyone": {"label_column": "label_field", "split_column": "split_field"}}
#: Options that make a FERPlus labels.csv be read by the generic CSV reader instead.
CSV_COLUMN_OPTIONS = frozenset({"path_column", "label_column", "split_column", "id_column", "vote_columns", "classes"})


def detect_format(path: str | os.PathLike[str], options: frozenset[str] | set[str] = frozenset()) -> str:
    """The format of ``path`` (see :func:`read_dataset`); ``options`` are the option names given."""
    text = os.fspath(path)
    if text.startswith(FIFTYONE_PREFIX):
        return "fiftyone"
    p = Path(text)
    if p.is_dir():
        return "rafdb" if (p / "EmoLabel" / RAFDB_LABEL_FILE).is_file() else "imagefolder"
    if not p.exists():
        raise DataError(path, None, "not found", "Check the path, or use fiftyone:NAME for a FiftyOne dataset.")
    if p.name == RAFDB_LABEL_FILE:
        return "rafdb"
    with open(p, encoding="utf-8-sig", errors="replace") as fh:
        header = [c.strip() for c in fh.readline().rstrip("\r\n").split(sniff_delimiter(p))]
    if "pixels" in header:
        return "fer2013"
    if AFFECTNET_COLUMNS[0] in header:
        return "affectnet"
    if set(FERPLUS_LABELS_COLUMNS) <= set(header) and not options & CSV_COLUMN_OPTIONS:
        return "ferplus"
    return "csv"


def read_dataset(
    path: str | os.PathLike[str],
    *,
    format: str = "auto",
    on_bad: OnBad = "error",
    report: SkipReport | None = None,
    **options: object,
) -> pd.DataFrame:
    """Read a dataset into a LabelTable, detecting its format when ``format="auto"``.

    Detection: ``fiftyone:NAME`` -> fiftyone; a folder -> rafdb when it holds
    ``EmoLabel/list_patition_label.txt``, else imagefolder; ``list_patition_label.txt`` ->
    rafdb; a CSV with a ``pixels`` column -> fer2013, with ``subDirectory_filePath`` ->
    affectnet, with the FERPlus labels.csv header (and no column options) -> ferplus; any
    other file -> csv. ``options`` set to None are ignored; others must be parameters of the
    chosen reader (``label_column``/``split_column`` name FiftyOne fields), else DataError.
    """
    given = {k: v for k, v in options.items() if v is not None}
    fmt = detect_format(path, set(given)) if format == "auto" else format
    if fmt not in READERS:
        raise ValueError(f"unknown format {fmt!r}; choose one of: auto, {', '.join(FORMATS)}")
    given = {ALIASES.get(fmt, {}).get(k, k): v for k, v in given.items()}
    reader = READERS[fmt]
    accepted = set(signature(reader).parameters) - {"path", "name", "on_bad", "report"}
    unknown = sorted(set(given) - accepted)
    if unknown:
        raise DataError(
            path,
            None,
            f"option(s) {', '.join(unknown)} do not apply to the {fmt} reader"
            f" (it takes: {', '.join(sorted(accepted)) or 'none'})",
            "Leave them out, or choose another --format.",
        )
    table = reader(path, on_bad=on_bad, report=report, **given)
    if os.path.exists(table.attrs.get("source", "")):  # a record that stays valid from any directory
        table.attrs["source"] = os.path.abspath(table.attrs["source"])
    return table
