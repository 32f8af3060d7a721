"""The benchmark's faces: a training table (noisy FER2013 labels) and an evaluation table.

Input: a FERPlus ``labels.csv`` (``../shared/data/ferplus`` or ``ferplus-mini``) with columns
``path, split, fer2013_label, ferplus_label, label_disagrees, vote_entropy``. Output CSVs hold
absolute image paths, the class name in ``label`` and the truth columns, so every stage (and
``curate run``) reads the same rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from curate.data.table import FER2013_CLASSES

TRUTH_COLUMNS = ("ferplus_label", "label_disagrees", "vote_entropy")


def stratified_sample(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of exactly ``n`` rows drawn without replacement, each class keeping its share
    (largest-remainder rounding; n <= len(labels))."""
    if n >= len(labels):
        return np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    quota = n * counts / len(labels)
    take = np.floor(quota).astype(int)
    take[np.argsort(take - quota)[: n - take.sum()]] += 1
    keep = [rng.choice(np.flatnonzero(labels == c), size=k, replace=False) for c, k in zip(classes, take, strict=True)]
    return np.sort(np.concatenate(keep))


def read_labels(labels_csv: Path) -> pd.DataFrame:
    """Every row of a FERPlus ``labels.csv`` with absolute image paths and the FER2013 class name in
    ``label``; ValueError naming the file when a column is missing."""
    df = pd.read_csv(labels_csv)
    missing = {"path", "split", "fer2013_label", *TRUTH_COLUMNS} - set(df.columns)
    if missing:
        raise ValueError(f"{labels_csv}: not a FERPlus labels.csv, columns {sorted(missing)} are missing")
    df["path"] = [str((labels_csv.parent / p).resolve()) for p in df["path"]]
    df["label"] = np.asarray(FER2013_CLASSES)[df["fer2013_label"].to_numpy()]
    return df


def training_and_public_test(labels_csv: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(Training rows, PublicTest rows) of a FERPlus ``labels.csv`` (``read_labels``), for the suites
    that measure accuracy on PublicTest; ValueError when the file has no PublicTest faces."""
    df = read_labels(labels_csv)
    evaluation = df[df["split"] == "PublicTest"].reset_index(drop=True)
    if evaluation.empty:
        raise ValueError(f"{labels_csv} has no PublicTest faces to measure accuracy on")
    return df[df["split"] == "Training"].reset_index(drop=True), evaluation


def write_split(table: pd.DataFrame, path: Path) -> None:
    """Write ``table``'s split columns (path, label, fer2013_label and the truth) to ``path`` atomically,
    its folder created if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    table[["path", "label", "fer2013_label", *TRUTH_COLUMNS]].to_csv(tmp, index=False)
    tmp.replace(path)


def init_source(outside: pd.DataFrame, faces: int | None, rng: np.random.Generator) -> pd.DataFrame:
    """The ``--init-from`` source table of a suite: ``faces`` rows of ``outside`` (Training rows the
    suite's subsets do not use) drawn stratified by their FER2013 label, or all of them (``faces``
    None or 0, or at least ``len(outside)``); write it with :func:`write_split`."""
    if faces:
        outside = outside.iloc[stratified_sample(outside["fer2013_label"].to_numpy(), faces, rng)]
    return outside


def make_splits(
    labels_csv: Path, out: Path, *, max_train: int | None, eval_fraction: float, seed: int
) -> tuple[Path, Path]:
    """Write ``out/train.csv`` (split Training, optionally subsampled to ``max_train``) and
    ``out/eval.csv`` (split PublicTest, or, when the file has none, ``eval_fraction`` of the
    Training rows held out). PrivateTest is never read."""
    df = read_labels(labels_csv)
    rng = np.random.default_rng(seed)
    train = df[df["split"] == "Training"].reset_index(drop=True)
    evaluation = df[df["split"] == "PublicTest"].reset_index(drop=True)
    if evaluation.empty:
        held = stratified_sample(train["fer2013_label"].to_numpy(), round(eval_fraction * len(train)), rng)
        evaluation = train.iloc[held].reset_index(drop=True)
        train = train.drop(index=held).reset_index(drop=True)
    if max_train:
        train = train.iloc[stratified_sample(train["fer2013_label"].to_numpy(), max_train, rng)]
    paths = out / "train.csv", out / "eval.csv"
    for table, path in zip((train, evaluation), paths, strict=True):
        write_split(table, path)
    return paths


def flip_labels(labels: np.ndarray, rate: float, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Copy of ``labels`` with round(rate * N) rows moved to a uniformly drawn *other* class."""
    out = labels.copy()
    rows = rng.choice(len(labels), size=round(rate * len(labels)), replace=False)
    out[rows] = (labels[rows] + rng.integers(1, num_classes, size=len(rows))) % num_classes
    return out
