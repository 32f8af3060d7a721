"""Which row of a labels table holds each scored face: the join every judge of a run makes."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np


def rows_by_path(filepaths: Iterable[str], table_paths: Iterable[str], root: Path) -> np.ndarray:
    """(N,) int64: for each of the N ``filepaths`` (a scores table's ``filepath`` column), the row
    of ``table_paths`` (a labels table's ``path`` column, relative to ``root`` or absolute) naming
    the same file once both are resolved (links, ``..``); -1 where no row does."""
    where = {str((Path(root) / p).resolve()): i for i, p in enumerate(table_paths)}
    return np.array([where.get(str(Path(f).resolve()), -1) for f in filepaths], dtype=np.int64)
