"""Fixtures for the data-layer tests: tiny images and text files made in ``tmp_path``.

``shared_data`` (the real data folder) comes from ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image


@pytest.fixture
def make_image() -> Callable[..., Path]:
    """``make_image(path, mode="L", size=(8, 8), color=128)`` writes an image (format from the suffix)."""

    def make(path: Path, *, mode: str = "L", size: tuple[int, int] = (8, 8), color: object = 128) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new(mode, size, color).save(path)
        return path

    return make


@pytest.fixture
def write_csv() -> Callable[..., Path]:
    """``write_csv(path, rows, sep=",", newline="\\n", bom=False)`` writes rows (lists of cells)."""

    def write(path: Path, rows: list[list[object]], *, sep: str = ",", newline: str = "\n", bom: bool = False) -> Path:
        text = newline.join(sep.join(str(c) for c in row) for row in rows) + newline
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
        return path

    return write
