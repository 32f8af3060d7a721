"""Cosine k-nearest neighbours with faiss: all-kNN over a set of embeddings, a reusable index.

Data contract: embeddings are (N, D) float16/32/64 arrays of finite, non-zero vectors; they
are L2-normalised (in float32) before indexing, so inner product = cosine similarity.
Results are ``indices`` (N, k) int64 into the indexed rows, best first, and
``similarities`` (N, k) float32 in [-1, 1]. An approximate index may find fewer than k
neighbours for a query: the missing slots hold index -1 and similarity -inf.

Index kinds: ``flat`` (exact ``IndexFlatIP``), ``ivf`` (``IVF<nlist>,Flat``, nlist =
2 sqrt(N) -- for all-kNN the coarse and list-scan costs balance there -- k-means trained on
20 rows per list), ``hnsw`` (``HNSW32,Flat``); ``auto`` = flat up to ``exact_threshold``
rows, ivf above. Unless given, the IVF ``nprobe`` (HNSW ``efSearch``) is tuned on a sample
of ``SAMPLE_QUERIES`` (1,000) indexed rows to reach ``target_recall`` (+0.01) against exact search;
an approximate all-kNN then checks its result on another such sample (``KnnResult.recall``). A GPU index
is used when faiss has GPU support (HNSW stays on the CPU; GPU search needs k <= 2047).
faiss uses its own thread setting (``faiss.omp_set_num_threads``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import faiss
import numpy as np
from faiss.contrib.ivf_tools import add_preassigned
from tqdm import tqdm

IndexKind = Literal["auto", "flat", "ivf", "hnsw"]

_SEARCH_PARAM = {"ivf": "nprobe", "hnsw": "efSearch"}
SAMPLE_QUERIES = 1000  # faces in the nprobe tuning sample, and in the held-out recall check
_RECALL_MARGIN = 0.01  # the sample estimate must clear target_recall by this (sampling error)
_ADD_BATCH = 16384
_LISTS_PER_SQRT_N = 2  # IVF nlist = 2 sqrt(N); 4 sqrt(N) measured ~1.4x slower for all-kNN
_TRAIN_PER_LIST = 20  # k-means training points per IVF list (nlist <= N / 20)
_KEPT_PROBES = 16  # top IVF lists kept per indexed row for all-kNN
_PROGRESS_MIN_ROWS = 50_000


@dataclass(frozen=True)
class KnnResult:
    """Neighbours per query: ``indices`` (M, k) int64 (-1 = none), ``similarities`` (M, k) float32;
    ``recall``: recall@k against exact search on a held-out sample of the queries (approximate
    all-kNN), None where the search was exact or not checked."""

    indices: np.ndarray
    similarities: np.ndarray
    recall: float | None = None


def _check_vectors(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D (N, D) array, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must be float16/32/64, got {x.dtype}; cast with .astype(np.float32)")
    return x


def _normalized(x: np.ndarray, rows: np.ndarray, name: str) -> np.ndarray:
    """float32 copy of ``x`` with L2-normalised rows; ``rows`` = their row numbers, for errors."""
    out = x.astype(np.float32, copy=True)
    bad = ~np.isfinite(out).all(axis=1)
    if bad.any():
        bad_rows = rows[bad][:5].tolist()
        raise ValueError(f"{name} contain NaN or inf in rows {bad_rows} (first 5); drop or recompute them")
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    if (norms == 0).any():
        zero = rows[norms[:, 0] == 0][:5].tolist()
        raise ValueError(f"{name} have zero-norm rows {zero} (first 5): cosine is undefined; drop them")
    out /= norms
    return out


def _batches(
    x: np.ndarray, batch_size: int, name: str, order: np.ndarray | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(row numbers, their normalised float32 rows) over ``x`` in batches of ``batch_size`` rows,
    in row order or the given ``order`` (a permutation); progress bar from 50,000 rows."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    starts = range(0, len(x), batch_size)
    for start in tqdm(starts, desc=f"kNN {name}", unit="batch", disable=len(x) < _PROGRESS_MIN_ROWS):
        if order is None:
            rows, chunk = np.arange(start, min(start + batch_size, len(x))), x[start : start + batch_size]
        else:
            rows = order[start : start + batch_size]
            chunk = x[rows]
        yield rows, _normalized(chunk, rows, name)


def drop_self(ids: np.ndarray, sims: np.ndarray, row_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own id from its (M, k+1) results (else its last entry) -> (M, k)."""
    keep = ids != row_ids[:, None]
    keep[keep.all(axis=1), -1] = False
    k = ids.shape[1] - 1
    return ids[keep].reshape(-1, k), sims[keep].reshape(-1, k)


def _use_gpu(use_gpu: bool | None) -> bool:
    has_gpu = faiss.get_num_gpus() > 0
    if use_gpu and not has_gpu:
        raise RuntimeError(
            "use_gpu=True but faiss has no GPU support (faiss.get_num_gpus() == 0); "
            "install the 'gpu' extra (faiss-gpu-cu12) or pass use_gpu=None"
        )
    return has_gpu if use_gpu is None else use_gpu


def _kind_of(index: faiss.Index) -> Literal["flat", "ivf", "hnsw"]:
    if isinstance(index, faiss.IndexFlat):
        return "flat"
    if isinstance(index, faiss.IndexHNSW):
        return "hnsw"
    if faiss.try_extract_index_ivf(index) is not None:
        return "ivf"
    name = type(index).__name__
    raise ValueError(f"unsupported faiss index type {name}; build it with NeighborIndex.build")


def _empty_index(kind: str, n: int, d: int, *, gpu: bool, seed: int) -> tuple[faiss.Index, int]:
    """Untrained, empty inner-product index of ``kind`` for ``n`` vectors, and its IVF nlist."""
    nlist = max(1, min(round(_LISTS_PER_SQRT_N * math.sqrt(n)), n // _TRAIN_PER_LIST))
    factory = {"flat": "Flat", "hnsw": "HNSW32,Flat", "ivf": f"IVF{nlist},Flat"}[kind]
    cpu_index = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
    if kind == "hnsw":
        cpu_index.hnsw.efConstruction = 64
    if kind == "ivf":
        clustering = faiss.extract_index_ivf(cpu_index).cp
        clustering.seed, clustering.min_points_per_centroid = seed, _TRAIN_PER_LIST
    return (faiss.index_cpu_to_all_gpus(cpu_index) if gpu else cpu_index), nlist


class NeighborIndex:
    """A cosine-similarity faiss index over L2-normalised float32 vectors (rows 0..ntotal-1)."""

    def __init__(self, index: faiss.Index, kind: Literal["flat", "ivf", "hnsw"], search_param: int | None) -> None:
        """Wrap a built faiss ``index``; use ``build`` or ``load`` instead. ``search_param``: IVF
        nprobe / HNSW efSearch in use (None for flat)."""
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise ValueError("NeighborIndex needs an inner-product faiss index (METRIC_INNER_PRODUCT)")
        self.index = index
        self.kind = kind
        self.search_param = search_param
        self._member_lists: np.ndarray | None = None  # (ntotal, P) int32: each row's top IVF lists

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @classmethod
    def build(
        cls,
        embeddings: np.ndarray,
        *,
        index: IndexKind = "auto",
        exact_threshold: int = 200_000,
        nprobe: int | None = None,
        target_recall: float = 0.95,
        tune_k: int = 10,
        use_gpu: bool | None = None,
        seed: int = 0,
    ) -> NeighborIndex:
        """Index the (N, D) ``embeddings`` (row i gets id i).

        ``index``: "auto" = "flat" up to ``exact_threshold`` rows, "ivf" above; ``nprobe`` = IVF
        lists probed / HNSW efSearch (None: tuned so that recall@``tune_k`` on a sample
        reaches ``target_recall``); ``use_gpu`` None = GPU when faiss has one.
        """
        x = _check_vectors(embeddings, "embeddings")
        n, d = x.shape
        if index not in ("auto", "flat", "ivf", "hnsw"):
            raise ValueError(f"index must be 'auto', 'flat', 'ivf' or 'hnsw', got {index!r}")
        kind = ("flat" if n <= exact_threshold else "ivf") if index == "auto" else index
        if kind == "hnsw" and use_gpu:
            raise ValueError("faiss has no GPU HNSW index: use index='ivf' or 'flat' with use_gpu=True")
        gpu = kind != "hnsw" and _use_gpu(use_gpu)
        rng = np.random.default_rng(seed)
        faiss_index, nlist = _empty_index(kind, n, d, gpu=gpu, seed=seed)
        if kind == "ivf":
            sample = np.sort(rng.choice(n, size=min(n, _TRAIN_PER_LIST * nlist), replace=False))
            faiss_index.train(_normalized(x[sample], sample, "embeddings"))

        # CPU IVF: assign rows to their top lists ourselves and keep that, so that all-kNN
        # queries of indexed rows skip the coarse search (about half of the search time)
        ivf = faiss.extract_index_ivf(faiss_index) if kind == "ivf" and not gpu else None
        member_lists = None if ivf is None else np.empty((n, min(nlist, _KEPT_PROBES)), np.int32)
        tune = kind != "flat" and nprobe is None
        tuner = _ExactSample(x, rng, k=min(tune_k, n - 1)) if tune else None
        for rows, chunk in _batches(x, _ADD_BATCH, "indexing"):
            if ivf is None:
                faiss_index.add(chunk)
            else:
                _, lists = ivf.quantizer.search(chunk, member_lists.shape[1])
                add_preassigned(ivf, chunk, np.ascontiguousarray(lists[:, 0]))
                member_lists[rows] = lists
            if tuner is not None:
                tuner.update(rows[0], chunk)

        built = cls(faiss_index, kind, None)
        built._member_lists = member_lists
        if kind != "flat":
            ceiling = nlist if kind == "ivf" else 4096
            built._set_search_param(nprobe if tuner is None else built._tune(tuner, target_recall, ceiling))
        return built

    def _set_search_param(self, value: int) -> None:
        if value < 1:
            raise ValueError(f"nprobe/efSearch must be >= 1, got {value}")
        _params(self.index).set_index_parameter(self.index, _SEARCH_PARAM[self.kind], int(value))
        self.search_param = int(value)

    def _tune(self, tuner: _ExactSample, target: float, ceiling: int) -> int:
        """Smallest search parameter <= ``ceiling`` (doubling, then bisection to ~12 %) whose
        sample recall reaches ``target`` + margin."""

        def recall(value: int) -> float:
            self._set_search_param(value)
            found = self._search(tuner.queries, tuner.k, batch_size=SAMPLE_QUERIES, self_ids=tuner.ids)
            return recall_at_k(found.indices, tuner.best_ids)

        goal = min(1.0, target + _RECALL_MARGIN)
        lo = 0 if self.kind == "ivf" else tuner.k  # below the useful range; hi: first candidate
        hi = lo + 1
        while hi < ceiling and recall(hi) < goal:
            lo, hi = hi, min(2 * hi, ceiling)
        while hi - lo > max(1, hi // 8):  # invariant: recall(lo) < goal <= recall(hi) (or hi = ceiling)
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if recall(mid) >= goal else (mid, hi)
        return hi

    def search(self, queries: np.ndarray, k: int, *, batch_size: int = 16384) -> KnnResult:
        """The ``k`` most similar indexed rows for each of the (M, D) ``queries``."""
        q = _check_vectors(queries, "queries")
        if q.shape[1] != self.dim:
            raise ValueError(f"queries have dimension {q.shape[1]} but the index holds {self.dim}-d vectors")
        if not 1 <= k <= self.ntotal:
            raise ValueError(f"k={k} must be between 1 and the number of indexed vectors ({self.ntotal})")
        return self._search(q, k, batch_size=batch_size)

    def _search(
        self,
        q: np.ndarray,
        k: int,
        *,
        batch_size: int,
        self_ids: np.ndarray | None = None,
        order: np.ndarray | None = None,
    ) -> KnnResult:
        """Search in batches (in ``order``, a permutation of the queries, if given); with
        ``self_ids`` (M,), the queries' own row numbers, search k+1 and drop each own id."""
        ids = np.empty((len(q), k), dtype=np.int64)
        sims = np.empty((len(q), k), dtype=np.float32)
        extra = 0 if self_ids is None else 1
        lists = self._member_lists
        nprobe = self.search_param
        preassigned = self_ids is not None and lists is not None and nprobe <= lists.shape[1]
        for rows, chunk in _batches(q, batch_size, "queries", order):
            if preassigned:
                probe = lists[self_ids[rows], :nprobe].astype(np.int64)
                coarse = np.zeros(probe.shape, np.float32)  # unused by IVF-Flat
                d, i = self.index.search_preassigned(chunk, k + extra, probe, coarse)
            else:
                d, i = self.index.search(chunk, k + extra)
            if self_ids is not None:
                i, d = drop_self(i, d, self_ids[rows])
            ids[rows] = i
            sims[rows] = np.where(i < 0, -np.inf, d)
        return KnnResult(ids, sims)

    def _list_order(self) -> np.ndarray | None:
        """Indexed rows grouped by IVF list (CPU index), else None. Queries searched in this
        order probe the same lists one after another, which keeps them in cache (~2x faster)."""
        if self.kind != "ivf" or _on_gpu(self.index):
            return None
        invlists = faiss.extract_index_ivf(self.index).invlists
        sizes = [invlists.list_size(i) for i in range(invlists.nlist)]
        ids = [faiss.rev_swig_ptr(invlists.get_ids(i), size).copy() for i, size in enumerate(sizes) if size]
        return np.concatenate(ids).astype(np.int64)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index with faiss.write_index (atomically: temp file + os.replace)."""
        path = Path(path)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        cpu_index = faiss.index_gpu_to_cpu(self.index) if _on_gpu(self.index) else self.index
        faiss.write_index(cpu_index, str(tmp))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, use_gpu: bool | None = None) -> NeighborIndex:
        """Read an index written by ``save`` (moved to the GPU when available, except HNSW)."""
        index = faiss.read_index(str(path))
        kind = _kind_of(index)
        if kind == "hnsw" and use_gpu:
            raise ValueError("faiss has no GPU HNSW index: load it with use_gpu=None or False")
        param = None
        if kind == "ivf":
            param = int(faiss.extract_index_ivf(index).nprobe)
        elif kind == "hnsw":
            param = int(index.hnsw.efSearch)
        if kind != "hnsw" and _use_gpu(use_gpu):
            index = faiss.index_cpu_to_all_gpus(index)
        return cls(index, kind, param)


def _on_gpu(index: faiss.Index) -> bool:
    return "Gpu" in type(index).__name__ or "IndexReplicas" in type(index).__name__


def _params(index: faiss.Index) -> faiss.ParameterSpace:
    return faiss.GpuParameterSpace() if _on_gpu(index) else faiss.ParameterSpace()


class _ExactSample:
    """Exact top-k (self excluded) of up to ``SAMPLE_QUERIES`` indexed rows, accumulated chunk by chunk."""

    def __init__(self, x: np.ndarray, rng: np.random.Generator, *, k: int) -> None:
        self.ids = np.sort(rng.choice(len(x), size=min(len(x), SAMPLE_QUERIES), replace=False))
        self.queries = x[self.ids]
        self.k = k
        self._q = _normalized(self.queries, self.ids, "embeddings")
        self.best_ids = np.empty((len(self.ids), 0), dtype=np.int64)
        self._best_sims = np.empty((len(self.ids), 0), dtype=np.float32)

    def update(self, start: int, chunk: np.ndarray) -> None:
        """Merge the normalised indexed rows ``chunk`` (row numbers start, start+1, ...)."""
        sims, ids = faiss.knn(self._q, chunk, self.k + 1, metric=faiss.METRIC_INNER_PRODUCT)  # -1 pads
        ids, sims = drop_self(np.where(ids >= 0, ids + start, -1), sims, self.ids)
        all_ids = np.hstack([self.best_ids, ids])
        all_sims = np.hstack([self._best_sims, sims])
        order = np.argsort(-all_sims, axis=1, kind="stable")[:, : self.k]
        self.best_ids = np.take_along_axis(all_ids, order, axis=1)
        self._best_sims = np.take_along_axis(all_sims, order, axis=1)


def knn(
    embeddings: np.ndarray,
    k: int = 10,
    *,
    index: IndexKind = "auto",
    exact_threshold: int = 200_000,
    nprobe: int | None = None,
    target_recall: float = 0.95,
    use_gpu: bool | None = None,
    batch_size: int = 16384,
    seed: int = 0,
) -> KnnResult:
    """All-kNN by cosine similarity: the ``k`` most similar other rows of each of the (N, D) rows.

    Each point is excluded from its own list by index (exact duplicates stay neighbours).
    ``index``/``exact_threshold``/``nprobe``/``target_recall`` choose the index (see module
    doc); ``use_gpu`` None = GPU when faiss has one. Queries run in ``batch_size`` rows.
    """
    x = _check_vectors(embeddings, "embeddings")
    if not 1 <= k < len(x):
        raise ValueError(f"k={k} must be between 1 and N-1={len(x) - 1} (each point has N-1 others); lower k")
    built = NeighborIndex.build(
        x, index=index, exact_threshold=exact_threshold, nprobe=nprobe,
        target_recall=target_recall, tune_k=k, use_gpu=use_gpu, seed=seed,
    )  # fmt: skip
    result = built._search(x, k, batch_size=batch_size, self_ids=np.arange(len(x)), order=built._list_order())
    if built.kind == "flat":
        return result
    check = _ExactSample(x, np.random.default_rng(seed + 1), k=k)  # not the rows nprobe was tuned on
    for rows, chunk in _batches(x, _ADD_BATCH, "recall check"):
        check.update(rows[0], chunk)
    recall = recall_at_k(result.indices[check.ids], check.best_ids)
    return KnnResult(result.indices, result.similarities, recall)


def recall_at_k(approx_indices: np.ndarray, exact_indices: np.ndarray) -> float:
    """Share of the exact (N, k) neighbours (entries >= 0) found in the same row of the approximate
    (N, k) ones, in [0, 1]."""
    approx, exact = np.asarray(approx_indices), np.asarray(exact_indices)
    if approx.shape != exact.shape or approx.ndim != 2:
        raise ValueError(f"need two (N, k) arrays of the same shape, got {approx.shape} and {exact.shape}")
    hits = 0
    for start in range(0, len(exact), 65536):
        a, e = approx[start : start + 65536], exact[start : start + 65536]
        hits += int(((e[:, :, None] == a[:, None, :]).any(axis=2) & (e >= 0)).sum())
    return hits / max(1, int((exact >= 0).sum()))
