"""Data layer: read any supported dataset into a LabelTable (see :mod:`curate.data.table`).

``read_dataset(path)`` finds the dataset's format in the registry (:mod:`curate.formats`) and
calls its reader (:mod:`curate.data.readers`); every reader takes ``on_bad`` and ``report``
(see :mod:`curate.data.errors`).
"""

from __future__ import annotations

import os

import pandas as pd

from curate.data.errors import DataError, OnBad, SkipReport
from curate.data.table import make_table
from curate.formats import detect_format, get_format

__all__ = ["DataError", "SkipReport", "make_table", "read_dataset"]


def read_dataset(
    path: str | os.PathLike[str],
    *,
    format: str = "auto",
    on_bad: OnBad = "error",
    report: SkipReport | None = None,
    **options: object,
) -> pd.DataFrame:
    """Read a dataset into a LabelTable, detecting its format when ``format="auto"``.

    Detection and the options each format takes are the registry's (:mod:`curate.formats`: each
    format's module says what it detects). ``options`` set to None are ignored; others must be
    options of the chosen format (``label_column``/``split_column`` name FiftyOne fields), else
    DataError. An unknown ``format`` is a ValueError.
    """
    given = {k: v for k, v in options.items() if v is not None}
    fmt = get_format(detect_format(path, set(given)) if format == "auto" else format)
    given = {fmt.aliases.get(k, k): v for k, v in given.items()}
    unknown = sorted(set(given) - set(fmt.options))
    if unknown:
        raise DataError(
            path,
            None,
            f"option(s) {', '.join(unknown)} do not apply to the {fmt.name} reader"
            f" (it takes: {', '.join(sorted(fmt.options)) or 'none'})",
            "Leave them out, or choose another --format.",
        )
    table = fmt.read(path, on_bad=on_bad, report=report, **given)
    if os.path.exists(table.attrs.get("source", "")):  # a record that stays valid from any directory
        table.attrs["source"] = os.path.abspath(table.attrs["source"])
    return table
