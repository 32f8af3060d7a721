"""Fixtures for the FiftyOne tests: tiny scores files (random records, 8x8 PNGs) made in tmp_path.

FiftyOne finds the review plugin in the repository's ``plugins/`` folder (``fo.config.plugins_dir``,
and ``FIFTYONE_PLUGINS_DIR`` for subprocesses); faiss index files go to a per-session folder
(``fo.config.default_dataset_dir``). Every dataset a test creates is deleted afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fo_helpers import PLUGINS, scores_frame, write


@pytest.fixture(scope="session", autouse=True)
def fiftyone_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point FiftyOne (this process and subprocesses) at the repo's plugins and a temp data dir."""
    import fiftyone as fo

    data_dir = tmp_path_factory.mktemp("fiftyone-data")
    settings = {"plugins_dir": str(PLUGINS), "default_dataset_dir": str(data_dir)}
    saved_config = {key: getattr(fo.config, key) for key in settings}
    saved_env = {f"FIFTYONE_{key.upper()}": os.environ.get(f"FIFTYONE_{key.upper()}") for key in settings}
    for key, value in settings.items():
        setattr(fo.config, key, value)
        os.environ[f"FIFTYONE_{key.upper()}"] = value
    yield data_dir
    for key, value in saved_config.items():
        setattr(fo.config, key, value)
    for var, value in saved_env.items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value


@pytest.fixture
def make_scores(tmp_path: Path) -> Callable[..., Path]:
    """``make_scores(n=12, name="scores.parquet", **scores_frame kwargs)`` -> a scores file path."""

    def make(n: int = 12, name: str = "scores.parquet", **kwargs: object) -> Path:
        frame = scores_frame(n, image_dir=tmp_path / "img", **kwargs)
        return write(tmp_path / name, frame)

    return make


@pytest.fixture
def dataset_name() -> Iterator[str]:
    """A unique dataset name; the dataset (and its faiss index files) is deleted afterwards."""
    import fiftyone as fo

    name = f"curate-fo-test-{uuid.uuid4().hex[:8]}"
    yield name
    if fo.dataset_exists(name):
        dataset = fo.load_dataset(name)
        dataset.delete_brain_runs()
        dataset.delete()
