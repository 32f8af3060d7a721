"""A folder of finished benchmark stages: each stage's figures (``result.json``) and arrays
(``arrays.npz``); ``result.json`` is written last, so a stage interrupted midway is simply redone."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Computed = tuple[dict[str, Any], dict[str, np.ndarray]]


class StageStore:
    def __init__(self, root: Path, log: Callable[[str], Any] = print) -> None:
        self.root = Path(root)
        self.log = log

    def dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def done(self, name: str) -> bool:
        return (self.root / name / "result.json").exists()

    def load(self, name: str) -> Computed:
        folder = self.root / name
        with np.load(folder / "arrays.npz", allow_pickle=False) as arrays:
            return json.loads((folder / "result.json").read_text()), dict(arrays)

    def get(self, name: str, compute: Callable[[], Computed]) -> Computed:
        """The stage's cached result, or ``compute()`` saved atomically."""
        if self.done(name):
            self.log(f"[bench] {name}: cached in {self.root / name}")
            return self.load(name)
        self.log(f"[bench] {name}: running")
        scalars, arrays = compute()
        folder = self.dir(name)
        with open(folder / "arrays.tmp.npz", "wb") as fh:
            np.savez(fh, **arrays)
        (folder / "arrays.tmp.npz").replace(folder / "arrays.npz")
        (folder / "result.tmp").write_text(json.dumps(scalars, indent=1))
        (folder / "result.tmp").replace(folder / "result.json")
        return scalars, arrays
