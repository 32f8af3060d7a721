"""Generic CSV/TSV list reader: one row per image, a path column and a label column.

Contract of the file: a header line, then one row per image. Paths are relative to the CSV's
folder (or ``image_root``) unless absolute. A label is a class name or an integer class id;
an empty label or ``-1`` means unlabeled. Every other column is kept as an extra column.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from curate.data.errors import DataError, OnBad, SkipReport, check_on_bad
from curate.data.readers.common import RowErrors, absolute_paths, check_files, load_csv, require_columns
from curate.data.table import BASE_COLUMNS, VOTE_PREFIX, make_table

PATH_GUESSES = ("path", "filepath", "file_path", "filename", "file", "image", "image_path", "img")
LABEL_GUESSES = ("label", "class", "expression", "emotion", "target", "category")
UNLABELED = "-1"


def read_csvlist(
    path: str | os.PathLike[str],
    *,
    path_column: str | None = None,
    label_column: str | None = None,
    split_column: str | None = None,
    id_column: str | None = None,
    classes: Sequence[str] | None = None,
    vote_columns: Mapping[str, str] | None = None,
    delimiter: str | None = None,
    image_root: str | os.PathLike[str] | None = None,
    on_bad: OnBad = "error",
    report: SkipReport | None = None,
) -> pd.DataFrame:
    """Read a CSV/TSV image list into a LabelTable (format ``"csv"``).

    ``path_column``/``label_column`` default to the first present of :data:`PATH_GUESSES` /
    :data:`LABEL_GUESSES`; ``split_column`` to ``split`` when present (else every row is
    ``"train"``); ``id_column`` to the path as written. ``classes`` defaults to the sorted
    label names, or ``0..max`` for integer labels. ``vote_columns`` maps source columns to
    class names and yields ``votes_<class>`` columns (missing classes get 0 votes).
    ``delimiter`` is sniffed from the header when not given.
    """
    check_on_bad(on_bad)
    given = [c for c in (path_column, label_column, split_column, id_column) if c]
    frame = load_csv(path, delimiter=delimiter, text_columns=(*given, *PATH_GUESSES, *LABEL_GUESSES, "split"))
    path_column = path_column or _guess(frame, PATH_GUESSES, "--path-column", path)
    label_column = label_column or _guess(frame, LABEL_GUESSES, "--label-column", path)
    table = table_from_frame(
        frame,
        source=path,
        path_column=path_column,
        label_column=label_column,
        split_column=split_column or ("split" if "split" in frame.columns else None),
        id_column=id_column,
        classes=classes,
        vote_columns=vote_columns,
        image_root=image_root if image_root is not None else Path(path).parent,
        first_line=2,
        on_bad=on_bad,
        report=report,
        fmt="csv",
    )
    table.attrs["label_column"] = label_column  # the file's column: another may hold other labels
    return table


def table_from_frame(
    frame: pd.DataFrame,
    *,
    source: str | os.PathLike[str],
    path_column: str,
    label_column: str,
    split_column: str | None,
    id_column: str | None,
    classes: Sequence[str] | None,
    vote_columns: Mapping[str, str] | None,
    image_root: str | os.PathLike[str],
    first_line: int,
    on_bad: OnBad,
    report: SkipReport | None,
    fmt: str,
    default_split: str = "train",
) -> pd.DataFrame:
    """Validate a raw frame (index + ``first_line`` = line in ``source``) and build the LabelTable.

    Row problems (empty path, unknown label, missing/empty/directory image file, duplicate
    path or id, bad vote) follow ``on_bad``; file-level problems always raise.
    """
    used = [c for c in (path_column, label_column, split_column, id_column) if c] + list(vote_columns or {})
    require_columns(
        frame,
        used,
        source=source,
        hint=f"Name the right columns (--path-column, --label-column, ...) for {Path(source).name}.",
    )
    errors = RowErrors(source, first_line=first_line)

    paths = _text(frame[path_column])
    for i in frame.index[paths == ""]:
        errors.add(i, f"the path in column {path_column!r} is empty", "Fill in the image path or delete the row.")

    raw_labels = _text(frame[label_column]).replace("", UNLABELED)
    classes, codes = _encode_labels(raw_labels, classes, errors, label_column)

    if split_column:
        split = _text(frame[split_column])
        for i in frame.index[split == ""]:
            errors.add(
                i,
                f"the split in column {split_column!r} is empty",
                "Fill in the split (e.g. train) or delete the row.",
            )
    else:
        split = pd.Series(default_split, index=frame.index, dtype=str)

    if id_column:
        ids = _text(frame[id_column])
        _flag_repeats(ids, errors, what=f"sample id (column {id_column!r})", labels=None)
    else:
        ids = paths

    filepaths = pd.Series(absolute_paths(paths.tolist(), image_root), index=frame.index, dtype=object)
    _flag_repeats(filepaths, errors, what="image path", labels=raw_labels, shown=paths)
    check_files(filepaths.tolist(), frame.index, errors, shown=paths.tolist())

    votes = _votes(frame, vote_columns or {}, classes, errors, source=source)

    keep = errors.apply(frame, on_bad=on_bad, report=report).index
    taken = set(BASE_COLUMNS) | set(votes.columns if votes is not None else ())
    extra = frame.loc[keep, [c for c in frame.columns if c not in used]]
    extra = extra.rename(columns={c: f"source_{c}" for c in extra.columns if c in taken})
    if votes is not None:
        extra = pd.concat([votes.loc[keep], extra], axis=1)
    return make_table(
        ids.loc[keep].tolist(),
        filepaths.loc[keep].tolist(),
        codes[frame.index.get_indexer(keep)],
        classes,
        split.loc[keep].tolist(),
        source=str(source),
        fmt=fmt,
        extra=extra,
    )


def _text(column: pd.Series) -> pd.Series:
    """A column as stripped ``str`` values, empty cells as ``""`` (whole floats as ``"3"``, not ``"3.0"``)."""
    if pd.api.types.is_float_dtype(column) and (column.dropna() % 1 == 0).all():
        column = column.astype("Int64")
    return column.astype("string").str.strip().fillna("").astype(object)


def _guess(frame: pd.DataFrame, candidates: Sequence[str], option: str, source: str | os.PathLike[str]) -> str:
    for name in candidates:
        if name in frame.columns:
            return name
    raise DataError(
        source,
        None,
        f"no {option[2:].replace('-', ' ')} found (columns: {', '.join(map(str, frame.columns))})",
        f"Pass {option} NAME.",
    )


def _encode_labels(
    raw: pd.Series, classes: Sequence[str] | None, errors: RowErrors, column: str
) -> tuple[list[str], np.ndarray]:
    """Class list and int64 codes (-1 unlabeled or bad); bad labels are recorded in ``errors``.

    A label is a class name, else an integer class id. Without ``classes``: ``0..max`` when
    every label is an integer, else the sorted label names.
    """
    labeled = (raw != UNLABELED).to_numpy(dtype=bool)
    is_int = raw.str.fullmatch(r"[+-]?\d+").to_numpy(dtype=bool)
    ints = pd.to_numeric(raw.where(is_int), errors="coerce").fillna(-1).astype("int64").to_numpy()
    if classes is None:
        classes = (
            [str(i) for i in range(ints.max(initial=-1) + 1)]
            if is_int[labeled].all()
            else sorted(raw[labeled].unique())
        )
    classes = [str(c) for c in classes]
    if len(set(classes)) < len(classes):
        raise DataError(
            errors.source,
            None,
            f"the class list repeats names ({', '.join(classes)})",
            "Pass each class once.",
        )
    codes = pd.Index(classes).get_indexer(raw.to_numpy())
    by_id = labeled & (codes < 0) & is_int & (ints >= 0) & (ints < len(classes))
    codes = np.where(by_id, ints, codes)
    bad = labeled & (codes < 0)
    for i, value, numeric in zip(raw.index[bad], raw[bad], is_int[bad]):
        if numeric:
            known = ", ".join(f"{k} {c}" for k, c in enumerate(classes))
            problem = f"label {value} in column {column!r} is not a class id (known: {known})"
        else:
            problem = f"label {value!r} in column {column!r} is not a known class (known: {', '.join(classes)})"
        errors.add(i, problem, "Fix the label or pass --classes.")
    return classes, codes.astype("int64")


def _flag_repeats(
    keys: pd.Series, errors: RowErrors, *, what: str, labels: pd.Series | None, shown: pd.Series | None = None
) -> None:
    """Record rows whose key repeats an earlier row's; with ``labels``, conflicting labels flag
    every row of the group, equal labels flag all but the first (which ``on_bad="skip"`` keeps)."""
    repeated = keys[keys.duplicated(keep=False) & (keys != "")]
    for _, group in repeated.groupby(repeated, sort=False):
        index = list(group.index)
        lines = [errors.line(i) for i in index]
        name = (shown if shown is not None else keys)[index[0]]
        if labels is not None and labels[index].nunique() > 1:
            listing = ", ".join(f"{labels[i]!r} on row {n}" for i, n in zip(index, lines))
            for i in index:
                errors.add(
                    i,
                    f"{what} '{name}' has conflicting labels: {listing}",
                    "Keep one row per image with the right label.",
                )
            continue
        for i in index[1:]:
            errors.add(
                i,
                f"duplicate {what} '{name}' (first on row {lines[0]})",
                "Delete the repeated row, or pass --on-bad skip to keep the first.",
            )


def _votes(
    frame: pd.DataFrame,
    mapping: Mapping[str, str],
    classes: Sequence[str],
    errors: RowErrors,
    *,
    source: str | os.PathLike[str],
) -> pd.DataFrame | None:
    """``votes_<class>`` int64 columns (class order) summed from the mapped source columns."""
    if not mapping:
        return None
    unknown = sorted(set(mapping.values()) - set(classes))
    if unknown:
        raise DataError(
            source,
            None,
            f"vote columns map to unknown classes {unknown} (classes: {', '.join(classes)})",
            "Fix the vote column mapping.",
        )
    votes = pd.DataFrame(0, index=frame.index, columns=[VOTE_PREFIX + c for c in classes], dtype="int64")
    for column, cls in mapping.items():
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() | (values < 0) | (values % 1 != 0)
        for i in frame.index[bad]:
            cell = frame.at[i, column]
            errors.add(
                i,
                f"vote column {column!r} holds {'nothing' if pd.isna(cell) else repr(cell)}, not a whole number >= 0",
                "Fix the vote count or delete the row.",
            )
        votes[VOTE_PREFIX + cls] += values.where(~bad, 0).astype("int64")
    return votes
