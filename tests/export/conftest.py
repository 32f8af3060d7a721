"""Fixtures for the export tests (helpers live in ``export_helpers``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from export_helpers import CLASSES, SCENARIO, make_image, save_scores, scores_frame


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    """SCENARIO as a scores file over tiny PNGs (tmp_path/img/<id>.png)."""
    ids = [s[0] for s in SCENARIO]
    files = [make_image(tmp_path / "img" / f"{i}.png", 10 * k) for k, i in enumerate(ids)]
    frame = scores_frame(
        ids,
        files,
        [CLASSES.index(s[1]) for s in SCENARIO],
        np.array([s[3] for s in SCENARIO], np.float32),
        [s[2] for s in SCENARIO],
    )
    return save_scores(tmp_path / "scores.parquet", frame, CLASSES)
