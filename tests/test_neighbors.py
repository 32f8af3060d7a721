"""Tests of curate.neighbors: exactness, self-exclusion, approximate recall, persistence, errors."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from curate.neighbors import NeighborIndex, knn, recall_at_k


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute_force(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """All-kNN by cosine, self excluded: (N, k) indices and similarities."""
    sims = _unit(x) @ _unit(x).T
    np.fill_diagonal(sims, -np.inf)
    idx = np.argsort(-sims, axis=1)[:, :k]
    return idx, np.take_along_axis(sims, idx, axis=1)


def _clustered(n: int, dim: int, clusters: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim))
    member = rng.integers(0, clusters, n)
    spread = rng.uniform(0.3, 1.0, clusters)[member, None]
    return (centers[member] + spread * rng.normal(size=(n, dim))).astype(np.float32)


def test_exact_matches_brute_force() -> None:
    x = np.random.default_rng(0).normal(size=(500, 32)).astype(np.float32)
    res = knn(x, 10)
    idx, sims = _brute_force(x.astype(np.float64), 10)
    assert res.indices.shape == (500, 10) and res.indices.dtype == np.int64
    assert res.similarities.dtype == np.float32
    assert np.array_equal(res.indices, idx)
    np.testing.assert_allclose(res.similarities, sims, atol=1e-5)
    assert (np.diff(res.similarities, axis=1) <= 1e-6).all()  # best first
    assert np.array_equal(knn(x, 10, batch_size=64).indices, res.indices)


def test_search_new_queries_matches_brute_force() -> None:
    rng = np.random.default_rng(4)
    x, q = rng.normal(size=(400, 24)), rng.normal(size=(30, 24))
    found = NeighborIndex.build(x).search(q, 5)
    expected = np.argsort(-(_unit(q) @ _unit(x).T), axis=1)[:, :5]
    assert np.array_equal(found.indices, expected)


def test_float16_input() -> None:
    x = np.random.default_rng(1).normal(size=(300, 16)).astype(np.float16)
    idx, _ = _brute_force(x.astype(np.float64), 5)
    assert (knn(x, 5).indices == idx).mean() > 0.99


def test_self_excluded_with_duplicates() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    x[10:25] = x[10]  # 15 exact copies, more than k + 1
    x[50] = x[51]
    res = knn(x, 5)
    rows = np.arange(200)
    assert not (res.indices == rows[:, None]).any()
    assert set(res.indices[10:25].ravel()) <= set(range(10, 25))
    np.testing.assert_allclose(res.similarities[10:25], 1.0, atol=1e-6)
    assert res.indices[50, 0] == 51 and res.indices[51, 0] == 50


def test_recall_at_k() -> None:
    exact = np.array([[1, 2, 3], [0, 2, 3]])
    assert recall_at_k(exact, exact) == 1.0
    assert recall_at_k(np.array([[3, 9, 1], [-1, -1, 0]]), exact) == pytest.approx(3 / 6)


@pytest.mark.parametrize(("kind", "n"), [("ivf", 10_000), ("hnsw", 4000)])
def test_approximate_recall_on_clustered_data(kind: str, n: int) -> None:
    x = _clustered(n, 64, 50)
    exact = knn(x, 10, index="flat")
    approx = knn(x, 10, index=kind)
    assert recall_at_k(approx.indices, exact.indices) >= 0.95


def test_approximate_knn_reports_its_recall_on_a_held_out_sample() -> None:
    x = _clustered(6000, 32, 40)
    exact = knn(x, 10, index="flat")
    assert exact.recall is None
    for nprobe in (1, 4):  # a low recall must be reported as low, not as the tuning target
        approx = knn(x, 10, index="ivf", nprobe=nprobe)
        true = recall_at_k(approx.indices, exact.indices)
        assert approx.recall is not None
        assert abs(approx.recall - true) < 0.03, (nprobe, approx.recall, true)
    assert knn(x, 10, index="ivf", nprobe=1).recall < 0.9


def test_auto_switches_to_ivf_above_threshold() -> None:
    x = _clustered(4000, 16, 10)
    assert NeighborIndex.build(x).kind == "flat"
    built = NeighborIndex.build(x, exact_threshold=1000)
    assert built.kind == "ivf" and built.search_param >= 1


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_save_load_round_trip(tmp_path: Path, kind: str) -> None:
    x = _clustered(3000, 16, 10)
    built = NeighborIndex.build(x, index=kind)
    queries = _clustered(50, 16, 10, seed=9)
    before = built.search(queries, 7)
    path = tmp_path / "index.faiss"
    built.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["index.faiss"]
    loaded = NeighborIndex.load(path)
    assert (loaded.kind, loaded.search_param) == (kind, built.search_param)
    assert (loaded.ntotal, loaded.dim) == (3000, 16)
    after = loaded.search(queries, 7)
    assert np.array_equal(before.indices, after.indices)
    np.testing.assert_array_equal(before.similarities, after.similarities)


def test_bad_input() -> None:
    x = np.random.default_rng(3).normal(size=(20, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="N-1=19"):
        knn(x, 20)
    with pytest.raises(ValueError, match="2-D"):
        knn(x[0], 3)
    with pytest.raises(TypeError, match="astype"):
        knn(x.astype(np.int64), 3)
    nan = x.copy()
    nan[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf in rows \[7\]"):
        knn(nan, 3)
    zero = x.copy()
    zero[4] = 0
    with pytest.raises(ValueError, match=r"zero-norm rows \[4\]"):
        knn(zero, 3)
    with pytest.raises(ValueError, match="index must be"):
        knn(x, 3, index="lsh")  # type: ignore[arg-type]
    built = NeighborIndex.build(x)
    with pytest.raises(ValueError, match="dimension 5 but the index holds 4-d"):
        built.search(np.ones((2, 5), np.float32), 3)


@pytest.mark.skipif(faiss.get_num_gpus() > 0, reason="machine has a faiss GPU")
def test_use_gpu_without_gpu_says_what_to_install() -> None:
    with pytest.raises(RuntimeError, match="faiss-gpu"):
        knn(np.ones((10, 3), np.float32) + np.eye(10, 3, dtype=np.float32), 2, use_gpu=True)
