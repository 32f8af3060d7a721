"""Tests of curate.data.synthetic: determinism, ground truth, noise, caching, learnability."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from curate.data.synthetic import (
    LABELS_CSV,
    MANIFEST,
    PARAM_PREFIX,
    PARAMETERS,
    class_counts,
    class_posterior,
    generate,
    normalized_entropy,
    prototypes,
    sample_parameters,
)
from curate.data.table import BASE_COLUMNS, FER2013_CLASSES, vote_columns


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return generate(600, tmp_path_factory.mktemp("faces"), seed=0, noise_rate=0.3)


def _pixels(df: pd.DataFrame, size: int | None = None) -> np.ndarray:
    def load(p: str) -> np.ndarray:
        img = Image.open(p)
        if size is not None:
            img = img.resize((size, size), Image.Resampling.BOX)
        return np.asarray(img, dtype=np.float32)

    return np.stack([load(p) for p in df["filepath"]])


def test_table_contract(faces: pd.DataFrame) -> None:
    assert list(faces.columns[: len(BASE_COLUMNS)]) == list(BASE_COLUMNS)
    assert faces.attrs["classes"] == list(FER2013_CLASSES)
    assert faces["label"].dtype == np.int64 and faces["true_label"].dtype == np.int64
    assert faces["sample_id"].is_unique
    assert all(Path(p).is_absolute() and Path(p).exists() for p in faces["filepath"])
    assert (faces["label_name"] == [FER2013_CLASSES[i] for i in faces["label"]]).all()
    assert faces["ambiguity"].between(0, 1).all()
    votes = faces[vote_columns(faces)].to_numpy()
    assert votes.shape == (600, 7) and (votes.sum(axis=1) == 10).all()
    assert faces["split"].value_counts().to_dict() == {"train": 480, "val": 60, "test": 60}
    assert _pixels(faces.head(3)).shape == (3, 48, 48)


def test_determinism(tmp_path: Path) -> None:
    a = generate(40, tmp_path / "a", seed=7)
    b = generate(40, tmp_path / "b", seed=7)
    c = generate(40, tmp_path / "c", seed=8)
    assert np.array_equal(_pixels(a), _pixels(b))
    pd.testing.assert_frame_equal(a.drop(columns="filepath"), b.drop(columns="filepath"), check_like=True)
    assert not np.array_equal(_pixels(a), _pixels(c))
    assert not np.array_equal(a["label"], c["label"])


@pytest.mark.parametrize("noise", ["uniform", "confusable"])
def test_noise_exact_count_and_flags(tmp_path: Path, noise: str) -> None:
    df = generate(101, tmp_path, seed=3, noise_rate=0.25, noise=noise)
    noisy = df["is_noisy"].to_numpy()
    assert noisy.sum() == round(0.25 * 101)
    assert (df.loc[noisy, "label"] != df.loc[noisy, "true_label"]).all()
    assert (df.loc[~noisy, "label"] == df.loc[~noisy, "true_label"]).all()


def test_confusable_noise_flips_to_second_nearest_prototype(faces: pd.DataFrame) -> None:
    params = faces[[PARAM_PREFIX + p for p in PARAMETERS]].to_numpy()
    dist = np.linalg.norm(params[:, None] - prototypes(FER2013_CLASSES)[None], axis=2)
    order = np.argsort(dist, axis=1)
    assert (order[:, 0] == faces["true_label"]).all()
    noisy = faces["is_noisy"].to_numpy()
    assert (order[noisy, 1] == faces.loc[noisy, "label"]).all()


def test_ambiguity_higher_near_borders() -> None:
    protos = prototypes(FER2013_CLASSES)
    at_proto = normalized_entropy(class_posterior(protos, protos))
    i, j = np.triu_indices(len(protos), 1)
    mids = (protos[i] + protos[j]) / 2
    dist = np.linalg.norm(mids[:, None] - protos[None], axis=2)
    on_border = np.sort(dist, axis=1)[:, 1] - dist[np.arange(len(i)), i] < 1e-9  # i, j both nearest
    assert on_border.sum() >= 5
    assert normalized_entropy(class_posterior(mids[on_border], protos)).min() > at_proto.max()

    params, _ = sample_parameters(2000, protos, np.random.default_rng(0))
    d = np.sort(np.linalg.norm(params[:, None] - protos[None], axis=2), axis=1)
    margin = d[:, 1] - d[:, 0]
    amb = normalized_entropy(class_posterior(params, protos))
    near, far = margin < np.quantile(margin, 0.1), margin > np.quantile(margin, 0.9)
    assert amb[near].mean() > 2 * amb[far].mean()


def test_ambiguity_matches_annotator_disagreement(faces: pd.DataFrame) -> None:
    votes = faces[vote_columns(faces)].to_numpy()
    disagreement = 1 - votes.max(axis=1) / 10
    assert np.corrcoef(faces["ambiguity"], disagreement)[0, 1] > 0.5


def test_class_balance(faces: pd.DataFrame) -> None:
    counts = faces["true_label"].value_counts()
    assert len(counts) == 7 and counts.max() - counts.min() <= 1


def test_class_shares_give_a_long_tail(tmp_path: Path) -> None:
    assert class_counts(10, [1, 1, 2]).tolist() == [3, 2, 5]  # 2.5 / 2.5 / 5: one remainder to the first
    df = generate(200, tmp_path, seed=2, classes=["happy", "sad", "neutral"], class_shares=[0.05, 0.25, 0.7])
    assert df["true_label"].value_counts().sort_index().tolist() == [10, 50, 140]
    assert json.loads((tmp_path / MANIFEST).read_text())["class_shares"] == [0.05, 0.25, 0.7]
    with pytest.raises(ValueError, match="2 class shares for 3 classes"):
        generate(20, tmp_path / "bad", classes=["happy", "sad", "neutral"], class_shares=[1, 1])
    with pytest.raises(ValueError, match="not all 0"):
        generate(20, tmp_path / "bad", classes=["happy", "sad"], class_shares=[0, 0])
    assert not (tmp_path / "bad").exists()  # rejected before anything is written


def test_reuse_and_regenerate(tmp_path: Path) -> None:
    first = generate(30, tmp_path, seed=1)
    files = sorted(tmp_path.rglob("*.png")) + [tmp_path / LABELS_CSV, tmp_path / MANIFEST]
    mtimes = [f.stat().st_mtime_ns for f in files]
    again = generate(30, tmp_path, seed=1)
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    pd.testing.assert_frame_equal(first, again)

    changed = generate(20, tmp_path, seed=1, noise_rate=0.1)
    assert changed["is_noisy"].sum() == 2
    assert len(list(tmp_path.rglob("*.png"))) == 20  # stale images removed
    assert not list(tmp_path.rglob("*.tmp"))


def test_csv_round_trip(faces: pd.DataFrame) -> None:
    root = Path(faces.attrs["source"]).parent
    csv = pd.read_csv(root / LABELS_CSV)
    assert [str(root / p) for p in csv["path"]] == faces["filepath"].tolist()
    assert (csv["label"] == faces["label_name"]).all()
    for col in ["split", "true_label", "ambiguity", "is_noisy", *vote_columns(faces)]:
        assert (csv[col].to_numpy() == faces[col].to_numpy()).all(), col


def test_learnable_from_pixels(faces: pd.DataFrame) -> None:
    """Ridge regression onto one-hot clean labels, on 24x24 pixels, is far above chance (1/7)."""
    x = _pixels(faces, 24).reshape(len(faces), -1)
    x = (x - x.mean(axis=1, keepdims=True)) / (x.std(axis=1, keepdims=True) + 1e-6)
    x = np.hstack([x, np.ones((len(x), 1), np.float32)])
    y = faces["true_label"].to_numpy()
    train = np.arange(len(faces)) < 450
    onehot = np.eye(7)[y[train]]
    w = np.linalg.solve(x[train].T @ x[train] + 10.0 * np.eye(x.shape[1]), x[train].T @ onehot)
    assert ((x[~train] @ w).argmax(axis=1) == y[~train]).mean() > 0.5


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="contempt"):
        generate(10, tmp_path, classes=["happy", "contempt"])
    with pytest.raises(ValueError, match="splits"):
        generate(10, tmp_path, splits={"train": 0.5, "val": 0.1})
    with pytest.raises(ValueError, match="noise"):
        generate(10, tmp_path, noise="random")  # type: ignore[arg-type]
