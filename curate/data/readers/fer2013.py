"""Reader for the original Kaggle ``fer2013.csv`` (columns ``emotion,pixels,Usage``).

Each row holds a 48x48 grey face as 2,304 space-separated values 0..255. The faces are written
once as ``row{N:05d}-{D}.png`` (``N`` = 0-based data row, ``D`` = the first 16 hex digits of the
SHA-1 of its ``pixels`` text) into a cache folder and reused by later reads: another file, or an
edited row, gets its own PNG, never another face's. ``sample_id`` is ``row{N:05d}``, ``split``
the ``Usage`` value, the label the FER2013 ``emotion`` (0..6). ``ferplus_csv`` joins FERPlus
``fer2013new.csv`` votes by row position.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from curate.data.errors import DataError, OnBad, SkipReport, check_on_bad
from curate.data.readers.common import RowErrors, load_csv, require_columns
from curate.data.readers.csvlist import table_from_frame
from curate.data.table import FER2013_CLASSES
from curate.formats.ferplus import FERPLUS_TO_FER2013, FERPLUS_VOTE_COLUMNS

SIDE = 48
FERPLUS_NEW_COLUMNS = ("Usage", "Image name", *FERPLUS_VOTE_COLUMNS)


def read_fer2013(
    path: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    ferplus_csv: str | os.PathLike[str] | None = None,
    on_bad: OnBad = "error",
    report: SkipReport | None = None,
) -> pd.DataFrame:
    """Read ``fer2013.csv`` into a LabelTable (format ``"fer2013"``), writing missing PNGs.

    ``cache_dir`` defaults to ``<csv folder>/.fer2013_png``. With ``ferplus_csv``, rows get
    ``votes_<class>`` plus ``contempt``/``unknown``/``NF``/``ferplus_name`` columns; rows to
    which FERPlus gives no image name are left out and recorded in ``report`` (under both
    ``on_bad`` policies, as FERPlus published no image for them).
    """
    check_on_bad(on_bad)
    frame = load_csv(path, delimiter=",", text_columns=("pixels", "Usage"))
    require_columns(frame, ("emotion", "pixels"), source=path, hint="This is not a fer2013.csv: check --format.")
    cache = Path(cache_dir) if cache_dir is not None else Path(path).parent / ".fer2013_png"
    cache.mkdir(parents=True, exist_ok=True)
    n_rows = len(frame)
    frame = frame.assign(
        sample_id=[f"row{n:05d}" for n in frame.index],
        filepath=[str(cache.absolute() / f"row{n:05d}-{_digest(p)}.png") for n, p in zip(frame.index, frame["pixels"])],
    )
    frame = _write_pngs(frame, path, on_bad=on_bad, report=report)
    if ferplus_csv is not None:
        frame = _join_ferplus(frame, path, ferplus_csv, n_rows=n_rows, on_bad=on_bad, report=report)
    return table_from_frame(
        frame.drop(columns="pixels"),
        source=path,
        path_column="filepath",
        label_column="emotion",
        split_column="Usage" if "Usage" in frame.columns else None,
        id_column="sample_id",
        classes=FER2013_CLASSES,
        vote_columns=FERPLUS_TO_FER2013 if ferplus_csv is not None else None,
        image_root=cache,
        first_line=2,
        on_bad=on_bad,
        report=report,
        fmt="fer2013",
    )


def _write_pngs(
    frame: pd.DataFrame, source: str | os.PathLike[str], *, on_bad: OnBad, report: SkipReport | None
) -> pd.DataFrame:
    """Write each row's PNG unless it exists (temp file + ``os.replace``); bad rows follow ``on_bad``."""
    errors = RowErrors(source, first_line=2)
    todo = [(i, f, p) for i, f, p in zip(frame.index, frame["filepath"], frame["pixels"]) if not os.path.exists(f)]
    for i, filepath, pixels in tqdm(
        todo, desc="fer2013 -> PNG", unit="img", disable=None if len(todo) > 1000 else True
    ):
        problem = _pixel_problem(pixels)
        if problem:
            errors.add(i, problem, "Restore the row from the original fer2013.csv or delete it.")
            continue
        values = np.array(pixels.split(), dtype=np.int64)
        tmp = f"{filepath}.{os.getpid()}.tmp"
        try:
            Image.fromarray(values.astype(np.uint8).reshape(SIDE, SIDE), "L").save(tmp, format="PNG")
            os.replace(tmp, filepath)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return errors.apply(frame, on_bad=on_bad, report=report)


def _digest(pixels: object) -> str:
    """16 hex digits naming a row's face by its ``pixels`` text (any cell, valid or not)."""
    return hashlib.sha1(str(pixels).encode("utf-8", "surrogateescape"), usedforsecurity=False).hexdigest()[:16]


def _pixel_problem(pixels: object) -> str | None:
    """Why a ``pixels`` cell is not 2,304 integers 0..255, or None."""
    parts = pixels.split() if isinstance(pixels, str) else []
    if len(parts) != SIDE * SIDE:
        return f"'pixels' holds {len(parts)} values, not {SIDE * SIDE} (a {SIDE}x{SIDE} face)"
    if not all(p.isdigit() and int(p) <= 255 for p in parts):
        return "'pixels' holds values that are not whole numbers 0..255"
    return None


def _join_ferplus(
    frame: pd.DataFrame,
    source: str | os.PathLike[str],
    ferplus_csv: str | os.PathLike[str],
    *,
    n_rows: int,
    on_bad: OnBad,
    report: SkipReport | None,
) -> pd.DataFrame:
    """Add FERPlus votes to ``frame`` row by row position (data row N of both files)."""
    votes = load_csv(ferplus_csv, delimiter=",", text_columns=("Usage", "Image name"))
    require_columns(
        votes, FERPLUS_NEW_COLUMNS, source=ferplus_csv, hint="Pass FERPlus's fer2013new.csv as --ferplus-csv."
    )
    if len(votes) != n_rows:
        raise DataError(
            ferplus_csv,
            None,
            f"has {len(votes)} data rows but {os.fspath(source)} has {n_rows}; the two files must be row-aligned",
            "Pass the fer2013new.csv that belongs to this fer2013.csv.",
        )
    votes = votes.reindex(frame.index)
    errors = RowErrors(source, first_line=2)
    if "Usage" in frame.columns:
        differs = frame["Usage"].fillna("").to_numpy() != votes["Usage"].fillna("").to_numpy()
        for i in frame.index[differs]:
            errors.add(
                i,
                f"Usage {frame.at[i, 'Usage']!r} here but {votes.at[i, 'Usage']!r}"
                f" on the same row of {os.fspath(ferplus_csv)}",
                "The files are not row-aligned: pass the matching fer2013new.csv.",
            )
    frame = errors.apply(frame, on_bad=on_bad, report=report)
    no_image = votes["Image name"].loc[frame.index].isna()
    if report is not None:
        for i in frame.index[no_image]:
            report.exclude(
                DataError(
                    ferplus_csv,
                    i + 2,
                    "FERPlus gives no image name for this row (it published no image)",
                    "Nothing to do: the row is left out.",
                )
            )
    frame = frame[~no_image.to_numpy()]
    joined = votes.loc[frame.index, list(FERPLUS_VOTE_COLUMNS)].assign(
        ferplus_name=votes.loc[frame.index, "Image name"]
    )
    return pd.concat([frame, joined], axis=1)
