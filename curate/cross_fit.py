"""Cross-fitting: how many faces to flag, estimated from models that did not train on them.

The faces are split into K folds, stratified by given label. Fold model i trains on the other K-1
folds and gives the outputs (target probabilities, mined latent distribution, auxiliary consensus)
of the faces in fold i. A model trained on every face leans each probability towards the face's
given label the longer it trains, so the share of faces it finds confidently another class (the
flag quota, ``curate.flags``) undercounts; the fold models' out-of-fold outputs do not. On data
the models learn well the fold models' share falls short instead (synthetic faces: 0.5-0.8x the
flips, the full model's 1.0-1.2x; docs/robustness.md §9), so scoring uses the larger of the two
shares (the scores' metadata ``flag_count`` records both). The scores themselves, the order of
the queues, the embeddings and the exported ``model.pt`` stay the full model's: on 2,000 faces its
ranking beat the fold models' (each sees a third fewer faces), and the pairing gave the best queue
(docs/small-data.md).

With ``models`` M < K only the first M fold models train, and only the faces of their folds get
out-of-fold outputs: the share is then estimated on that held-out sample, M/K of the faces, for
M(K-1)/K of a training (the size table's choice from 10,000 faces: one model of two).

Layout inside a run directory: ``folds/folds.json`` (``{"k": K, "models": M, "seed": S, "fold":
{sample_id: i}}``) and ``folds/fold<i>/``, each an ordinary run directory that trains and resumes
on its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from curate.runs import write_json

FOLDS_DIR = "folds"


@dataclass
class Fold:
    """One fold model's run directory and the rows (indices into the scored table) it judges."""

    run_dir: Path
    rows: np.ndarray  # (n_i,) int64


def assign_folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """(N,) int fold of each face in [0, k): every class's faces shuffled (seeded) and dealt round-robin,
    so each fold holds each class's share of the faces up to one face."""
    if k < 2:
        raise ValueError(f"cross-fitting needs at least 2 folds, not {k}")
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        fold[rows] = (np.arange(len(rows)) + offset) % k  # offsets spread the remainders over the folds
        offset += len(rows)
    return fold


def too_small_classes(labels: np.ndarray, classes: list[str]) -> list[str]:
    """Classes with fewer than 2 faces: some fold model would train without them."""
    counts = np.bincount(labels, minlength=len(classes))
    return [name for name, n in zip(classes, counts) if n < 2]


def _folds_path(run_dir: Path) -> Path:
    return Path(run_dir) / FOLDS_DIR / "folds.json"


def _as_folds(path: Path, fold: np.ndarray, k: int, models: int) -> list[Fold]:
    return [Fold(path.parent / f"fold{i}", np.flatnonzero(fold == i)) for i in range(models or k)]


def folds_for(run_dir: Path, table: pd.DataFrame, k: int, seed: int, models: int = 0) -> list[Fold]:
    """The first ``models`` (0: all ``k``) of the run's folds: read from ``folds/folds.json`` when it
    was written for these faces, else assigned; the file is (re)written, atomically, with ``models``.
    A file written for other faces or another K raises ValueError rather than mixing fold models that
    saw different faces."""
    ids = table["sample_id"].astype(str).to_numpy()
    path = _folds_path(run_dir)
    saved = json.loads(path.read_text()) if path.exists() else None
    if saved is not None:
        if saved.get("k") != k or set(saved.get("fold", {})) != set(ids):
            raise ValueError(
                f"{path} was written for {len(saved.get('fold', {}))} faces in {saved.get('k')} folds, not these "
                f"{len(ids)} faces in {k}: use another --out, or delete {path.parent} to train the folds again"
            )
        fold = np.array([saved["fold"][i] for i in ids], dtype=np.int64)
        seed = saved.get("seed", seed)
    else:
        fold = assign_folds(table["label"].to_numpy(), k, seed)
    if saved is None or saved.get("models", 0) != models:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {"k": k, "models": models, "seed": seed, "fold": {i: int(f) for i, f in zip(ids, fold)}})
    return _as_folds(path, fold, k, models)


def saved_folds(run_dir: Path, table: pd.DataFrame) -> list[Fold]:
    """The folds of a cross-fitted run when ``table`` holds exactly the faces it was trained on
    (so ``curate score RUN`` on the run's own faces reproduces its scores); [] otherwise, e.g. for a
    new batch, which every fold model may judge and the full model does."""
    path = _folds_path(run_dir)
    if not path.exists():
        return []
    saved = json.loads(path.read_text())
    ids = table["sample_id"].astype(str).to_numpy()
    if len(ids) != len(saved["fold"]) or set(ids) != set(saved["fold"]):
        return []
    return _as_folds(
        path, np.array([saved["fold"][i] for i in ids], dtype=np.int64), saved["k"], saved.get("models", 0)
    )


def training_table(table: pd.DataFrame, fold: Fold) -> pd.DataFrame:
    """The training table of ``fold``'s model: every row it does not judge (attrs kept)."""
    keep = np.ones(len(table), dtype=bool)
    keep[fold.rows] = False
    out = table[keep].reset_index(drop=True)
    out.attrs = dict(table.attrs)
    return out


def budget(n_faces: int, k: int, epochs: int, models: int = 0) -> str:
    """The training cost of a cross-fitted run (``models`` of ``k`` fold models trained; 0: all), in
    images, against one training on the same faces."""
    m = models or k
    fold_faces = n_faces * (k - 1) // k
    images = n_faces * epochs + m * fold_faces * epochs  # the full model, and M fold models on (K-1)/K of the faces
    which = (
        f"{k} fold models"
        if m == k
        else f"{m} of {k} fold models (the count from the {m * n_faces // k:,} faces they judge)"
    )
    return (
        f"cross-fitting: the model on all {n_faces:,} faces and {which} on ~{fold_faces:,} faces "
        f"each, {epochs} epochs: {images:,} training images, {images / (n_faces * epochs):.1f}x one training"
    )
