"""Benchmark all-kNN (every point a query, self excluded) by cosine similarity.

Methods: exact faiss (``curate.neighbors.knn(index="flat")``), scikit-learn
``NearestNeighbors(algorithm="brute", metric="cosine")``, and the approximate index
(``index="ivf"`` or ``"hnsw"``, nprobe/efSearch tuned to recall 0.95). Each method runs in
its own subprocess; its peak memory is the growth of ``ru_maxrss`` over the process's size
after loading the data (faiss and numpy allocate outside tracemalloc's view). Wall and CPU
times are both reported: on a shared machine the CPU-time ratios are the steadier ones.

    python bench/bench_knn.py                      # 100,000 x 512 clustered float32 vectors
    python bench/bench_knn.py --n 20000            # quicker
    python bench/bench_knn.py --embeddings emb.npy # real (N, D) embeddings

Goals: faiss exact / sklearn time <= 0.8; approximate / exact time <= 0.1 at recall >= 0.95.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

METHODS = ("faiss-exact", "sklearn-brute", "approx")


def clustered_embeddings(n: int, dim: int, *, clusters: int = 300, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 Gaussian mixture: ``clusters`` centres ~ N(0, I), uneven cluster sizes
    (Dirichlet(1)), per-cluster isotropic spread uniform in [0.4, 1.2]."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim)).astype(np.float32)
    spread = rng.uniform(0.4, 1.2, clusters).astype(np.float32)
    member = rng.choice(clusters, size=n, p=rng.dirichlet(np.ones(clusters)))
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 16384):
        m = member[start : start + 16384]
        noise = rng.standard_normal((len(m), dim), dtype=np.float32)
        out[start : start + 16384] = centers[m] + spread[m, None] * noise
    return out


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _worker(method: str, data: Path, out: Path, k: int, approx: str) -> None:
    """Run one method on the saved embeddings; save its indices, print {seconds, cpu, peak_mb}."""
    if method == "sklearn-brute":
        from sklearn.neighbors import NearestNeighbors
    else:
        from curate.neighbors import knn
    x = np.load(data)
    base, cpu0 = _maxrss_mb(), _cpu_seconds()
    t0 = time.perf_counter()
    if method == "sklearn-brute":
        nn = NearestNeighbors(n_neighbors=k, algorithm="brute", metric="cosine").fit(x)
        indices = nn.kneighbors(return_distance=False)  # X=None: self excluded
    else:
        indices = knn(x, k, index="flat" if method == "faiss-exact" else approx).indices
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    peak = _maxrss_mb() - base
    np.save(out, indices)
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_mb": peak}))


def _run(method: str, data: Path, out: Path, k: int, approx: str) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--_worker", method, "--_data", str(data), "--_out", str(out)]
    cmd += ["--k", str(k), "--approx", approx]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="points (synthetic data)")
    parser.add_argument("--dim", type=int, default=512, help="dimensions (synthetic data)")
    parser.add_argument("--clusters", type=int, default=300, help="Gaussian clusters (synthetic data)")
    parser.add_argument("--embeddings", type=Path, help="(N, D) .npy of real embeddings instead")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--approx", choices=("ivf", "hnsw"), default="ivf")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-sklearn", action="store_true", help="skip the (slow) scikit-learn run")
    parser.add_argument("--_worker", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--_data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--_out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._worker:
        _worker(args._worker, args._data, args._out, args.k, args.approx)
        return

    with tempfile.TemporaryDirectory(prefix="bench_knn_") as tmp:
        data = Path(tmp) / "x.npy"
        if args.embeddings:
            x = np.load(args.embeddings).astype(np.float32)
            source = str(args.embeddings)
        else:
            x = clustered_embeddings(args.n, args.dim, clusters=args.clusters, seed=args.seed)
            source = f"synthetic, {args.clusters} clusters"
        np.save(data, x)
        print(f"all-kNN k={args.k} on {x.shape[0]:,} x {x.shape[1]} float32 ({source})", flush=True)
        del x

        results, indices = {}, {}
        for method in [m for m in METHODS if not (args.skip_sklearn and m == "sklearn-brute")]:
            out = Path(tmp) / f"{method}.npy"
            results[method] = _run(method, data, out, args.k, args.approx)
            indices[method] = np.load(out)
            r = results[method]
            wall, cpu, peak = r["seconds"], r["cpu"], r["peak_mb"]
            print(f"  {method:14s} {wall:8.2f} s wall {cpu:8.2f} s CPU   peak +{peak:6.0f} MB", flush=True)

    from curate.neighbors import recall_at_k

    exact = indices["faiss-exact"]
    recall = recall_at_k(indices["approx"], exact)

    def ratio(a: str, b: str) -> str:
        wall = results[a]["seconds"] / results[b]["seconds"]
        return f"{wall:.3f} wall, {results[a]['cpu'] / results[b]['cpu']:.3f} CPU"

    print(f"  {args.approx} recall@{args.k} vs exact: {recall:.4f}")
    if "sklearn-brute" in results:
        agree = recall_at_k(indices["sklearn-brute"], exact)
        print(f"  sklearn agrees with faiss exact on {agree:.4f} of neighbours")
        print(f"  faiss exact / sklearn time: {ratio('faiss-exact', 'sklearn-brute')}  (goal <= 0.8)")
    print(f"  {args.approx} / exact time: {ratio('approx', 'faiss-exact')}  (goal <= 0.1 at recall >= 0.95)")


if __name__ == "__main__":
    main()
