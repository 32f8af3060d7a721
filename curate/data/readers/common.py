"""Helpers shared by the readers: CSV loading with clear errors, row-problem collection, file checks."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from curate.data.errors import DataError, OnBad, SkipReport, display_path, reject
from curate.data.images import FILE_HINT, RENAME_HINT, file_problem

DELIMITERS = (",", "\t", ";", "|")


class RowErrors:
    """Bad rows found by the checks of one read: frame index -> first problem found.

    ``line(index)`` is the 1-based line of a frame row: ``index + first_line``.
    """

    def __init__(self, source: str | os.PathLike[str], *, first_line: int) -> None:
        self.source = source
        self.first_line = first_line
        self._errors: dict[int, DataError] = {}

    def line(self, index: int) -> int:
        return int(index) + self.first_line

    def add(self, index: int, problem: str, hint: str) -> None:
        self._errors.setdefault(int(index), DataError(self.source, self.line(index), problem, hint))

    def apply(self, frame: pd.DataFrame, *, on_bad: OnBad, report: SkipReport | None) -> pd.DataFrame:
        """Raise the earliest problem (``on_bad="error"``), or drop bad rows and record them."""
        for index in sorted(self._errors):
            reject(self._errors[index], on_bad=on_bad, report=report)
        return frame.drop(index=list(self._errors)) if self._errors else frame


def sniff_delimiter(path: Path) -> str:
    """``\\t`` for ``.tsv``/``.tab``; else the most frequent of ``, TAB ; |`` in the header line."""
    if path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        header = fh.readline()
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def load_csv(
    path: str | os.PathLike[str],
    *,
    delimiter: str | None = None,
    encoding: str = "utf-8-sig",
    names: Sequence[str] | None = None,
    text_columns: Sequence[str] = (),
) -> pd.DataFrame:
    """Read a delimited text file (BOM, CRLF and blank lines handled) into a frame whose index
    is the data line number minus the first data line: line = index + (1 if names else 2).

    ``names`` reads a header-less file; ``text_columns`` are kept as text. Empty cells are NaN.
    Raises :class:`DataError` for unreadable, non-UTF-8 or malformed files.
    """
    path_obj = Path(path)
    if not path_obj.is_file():
        problem = "is a directory, not a CSV file" if path_obj.is_dir() else "file not found"
        raise DataError(path, None, problem, "Check the path.")
    sep = delimiter or sniff_delimiter(path_obj)
    header = None if names is not None else "infer"
    try:
        columns = names or list(pd.read_csv(path_obj, sep=sep, nrows=0, encoding=encoding).columns)
        frame = pd.read_csv(
            path_obj,
            sep=sep,
            header=header,
            names=names,
            encoding=encoding,
            dtype={c: str for c in columns if str(c).strip() in text_columns},  # header cells may be padded
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
        )
    except UnicodeDecodeError as exc:
        raise DataError(
            path,
            None,
            f"is not {encoding} text ({exc.reason} at byte {exc.start})",
            "Re-save the file as UTF-8.",
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(path, None, "file is empty", "Check that it is the right file.") from None
    except pd.errors.ParserError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise DataError(
            path,
            int(match.group(1)) if match else None,
            f"cannot be parsed as a {sep!r}-delimited table ({exc})".replace("Error tokenizing data. ", ""),
            "Quote fields that contain the delimiter, or give the right delimiter.",
        ) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame[frame.notna().any(axis=1)]


def require_columns(frame: pd.DataFrame, columns: Sequence[str], *, source: str | os.PathLike[str], hint: str) -> None:
    """Raise a file-level :class:`DataError` naming the first of ``columns`` that is missing."""
    for column in columns:
        if column not in frame.columns:
            raise DataError(
                source,
                None,
                f"column {column!r} not found (columns: {', '.join(map(str, frame.columns))})",
                hint,
            )


def absolute_paths(paths: Sequence[str], base: str | os.PathLike[str]) -> list[str]:
    """Normalised absolute paths; relative ones are taken relative to ``base``."""
    base = os.path.abspath(base)
    return [os.path.normpath(os.path.join(base, p)) for p in paths]


def check_files(filepaths: Sequence[str], index: Sequence[int], errors: RowErrors, *, shown: Sequence[str]) -> None:
    """Record missing, empty, directory and non-UTF-8 image files (``stat`` only, no decoding)."""
    for i, filepath, name in zip(index, filepaths, shown):
        problem = file_problem(filepath)
        if problem:
            hint = RENAME_HINT if problem.startswith("file name") else FILE_HINT
            looked = "" if name == filepath else f" (looked for {display_path(filepath)})"
            errors.add(i, f"{problem}: '{display_path(name)}'{looked}", hint)
