"""Score records for tests: a frame with every column ``curate.records.COLUMNS`` names, built from
a few arrays, so that each test spells out only the columns it is about."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from curate.records import COLUMNS, VECTOR_COLUMNS


def scores_frame(ids: Sequence[str], given: Sequence[int], probs: np.ndarray, **columns: Any) -> pd.DataFrame:
    """One record per id. ``probs`` [N, C] fills every distribution column, ``given`` (class
    indices) the given label; then ``mislabel_score`` = 1 - probs[given], ``suggested_label`` = the
    argmax, ``filepath`` = the id, split "train", verdict "ok", no neighbours, 0 elsewhere.
    ``columns`` replace any of them (a scalar is repeated)."""
    n = len(ids)
    probs = np.asarray(probs, dtype=np.float32)
    given = np.asarray(given, dtype=np.int32)
    if probs.shape[0] != n or len(given) != n:
        raise ValueError(f"{n} ids, {len(given)} given labels and {probs.shape[0]} rows of probabilities")
    unknown = set(columns) - set(COLUMNS)
    if unknown:
        raise ValueError(f"not scores columns: {sorted(unknown)}")
    frame: dict[str, Any] = {
        "sample_id": list(ids), "filepath": [str(i) for i in ids], "split": "train", "given_label": given,
        **{name: list(probs) for name in VECTOR_COLUMNS},
        "uncertainty": np.zeros(n, np.float32), "mislabel_score": 1 - probs[np.arange(n), given],
        "ambiguity_score": np.zeros(n, np.float32), "suggested_label": probs.argmax(1).astype(np.int32),
        "knn_disagreement": np.zeros(n, np.float32), "neighbors": [[] for _ in range(n)],
        "verdict": "ok", "reasons": "",
    }  # fmt: skip
    frame.update(columns)
    return pd.DataFrame(frame, columns=list(COLUMNS))
