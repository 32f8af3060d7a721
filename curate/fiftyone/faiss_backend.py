"""A FiftyOne Brain similarity backend on faiss, built on :class:`curate.neighbors.NeighborIndex`.

Use it like any Brain backend::

    import curate.fiftyone.faiss_backend  # registers the name "faiss"
    fob.compute_similarity(dataset, backend="faiss", embeddings=emb, brain_key="dmue_sim")
    dataset.sort_by_similarity(sample_id, k=50, brain_key="dmue_sim")

Data contract: one embedding per sample (no patches), compared by cosine similarity; distances
returned to FiftyOne are cosine distances ``1 - cos``. An index with a brain key lives in
``config.index_dir`` (default ``<fo.config.default_dataset_dir>/curate/similarity/<dataset id>-<brain
key>``) as three files: ``index.faiss`` (``NeighborIndex.save``), ``embeddings.npy`` (rows as
added, their original dtype) and ``sample_ids.npy`` (row -> FiftyOne sample id). Every
``add_to_index`` / ``remove_from_index`` rewrites them, so the index reloads in a new process;
deleting the brain run deletes them. A cloned dataset's run first names its source's folder: the
clone copies the files into its own folder when it first opens the index, and deleting the
clone's run never deletes the source's files. Queries restricted to a view (``use_view``) search an exact
index built over that view's rows. Least-similar queries search with the negated query (exact for
flat indexes). This module path is stored on datasets: keep it stable.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import fiftyone as fo
import fiftyone.brain as fob
import fiftyone.brain.internal.core.utils as fbu
import numpy as np
from fiftyone.brain.similarity import DuplicatesMixin, Similarity, SimilarityConfig, SimilarityIndex

from curate.neighbors import IndexKind, NeighborIndex, drop_self

logger = logging.getLogger(__name__)

BACKEND = "faiss"
INDEX_FILE = "index.faiss"
EMBEDDINGS_FILE = "embeddings.npy"
SAMPLE_IDS_FILE = "sample_ids.npy"
_RADIUS_START_K = 16  # radius queries: first k, doubled for rows whose k-th neighbour is still inside


class FaissSimilarityConfig(SimilarityConfig):
    """Configuration of a faiss similarity index.

    Args:
        index_dir: folder of the index files; None = the default per-dataset folder (set when
            the index is created under a brain key)
        index_kind: ``curate.neighbors`` index kind: "auto" (exact up to 200,000 rows), "flat",
            "ivf" or "hnsw"
        nprobe: IVF nprobe / HNSW efSearch; None = tuned for recall 0.95
        metric: only "cosine"
        **kwargs: :class:`fiftyone.brain.similarity.SimilarityConfig` arguments
    """

    def __init__(
        self,
        index_dir: str | None = None,
        index_kind: IndexKind = "auto",
        nprobe: int | None = None,
        metric: str = "cosine",
        **kwargs: Any,
    ) -> None:
        if metric != "cosine":
            raise ValueError(f"the faiss backend compares embeddings by cosine only, got metric={metric!r}")
        if kwargs.get("patches_field") is not None or kwargs.get("roi_field") is not None:
            raise ValueError("the faiss backend indexes whole samples; patches_field/roi_field are not supported")
        super().__init__(**kwargs)
        self.index_dir = index_dir
        self.index_kind = index_kind
        self.nprobe = nprobe
        self.metric = metric

    @property
    def method(self) -> str:
        return BACKEND

    @property
    def max_k(self) -> None:
        return None

    @property
    def supports_least_similarity(self) -> bool:
        return True

    @property
    def supported_aggregations(self) -> tuple[str, ...]:
        return ("mean",)


class FaissSimilarity(Similarity):
    """Factory of :class:`FaissSimilarityIndex`; deleting the brain run deletes the index files."""

    def ensure_requirements(self) -> None:
        import faiss  # noqa: F401  (faiss-cpu or faiss-gpu)

    def ensure_usage_requirements(self) -> None:
        self.ensure_requirements()

    def initialize(self, samples: fo.core.collections.SampleCollection, brain_key: str | None) -> FaissSimilarityIndex:
        return FaissSimilarityIndex(samples, self.config, brain_key, backend=self)

    def cleanup(self, samples: fo.core.collections.SampleCollection, brain_key: str) -> None:
        if self.config.index_dir and not _other_datasets(Path(self.config.index_dir), samples._root_dataset):
            _remove_files(Path(self.config.index_dir))


def default_index_dir(dataset: fo.Dataset, brain_key: str) -> Path:
    """Where the index of ``brain_key`` on ``dataset`` lives unless its config names a folder."""
    return _default_root() / f"{dataset._doc.id}-{brain_key}"


def _default_root() -> Path:
    return Path(fo.config.default_dataset_dir) / "curate" / "similarity"


def _other_datasets(index_dir: Path, dataset: fo.Dataset) -> bool:
    """True when ``index_dir`` is the default folder of another dataset: ``dataset`` is a clone,
    whose run config still names its source's files."""
    return index_dir.parent == _default_root() and not index_dir.name.startswith(f"{dataset._doc.id}-")


class FaissSimilarityIndex(SimilarityIndex, DuplicatesMixin):
    """A faiss similarity index over sample embeddings, persisted in ``config.index_dir``."""

    def __init__(
        self,
        samples: fo.core.collections.SampleCollection,
        config: FaissSimilarityConfig,
        brain_key: str | None,
        backend: FaissSimilarity | None = None,
    ) -> None:
        self._embeddings = np.empty((0, 0), dtype=np.float32)
        self._sample_ids = np.array([], dtype="<U24")
        self._full: NeighborIndex | None = None
        self._view_index: tuple[np.ndarray, NeighborIndex] | None = None
        self._ids_to_inds: dict[str, int] | None = None
        SimilarityIndex.__init__(self, samples, config, brain_key, backend=backend)
        DuplicatesMixin.__init__(self)
        if config.index_dir is None and brain_key is not None:
            config.index_dir = str(default_index_dir(samples._root_dataset, brain_key))
            self.save_config()
        elif brain_key is not None and _other_datasets(Path(config.index_dir), samples._root_dataset):
            own = default_index_dir(samples._root_dataset, brain_key)  # a clone: copy, then diverge
            own.mkdir(parents=True, exist_ok=True)
            for name in (INDEX_FILE, EMBEDDINGS_FILE, SAMPLE_IDS_FILE):
                if (Path(config.index_dir) / name).exists():
                    shutil.copyfile(Path(config.index_dir) / name, own / f"{name}.tmp")
                    os.replace(own / f"{name}.tmp", own / name)
            config.index_dir = str(own)
            self.save_config()
        if self._dir is not None and (self._dir / SAMPLE_IDS_FILE).exists():
            self._embeddings = np.load(self._dir / EMBEDDINGS_FILE)
            self._sample_ids = np.load(self._dir / SAMPLE_IDS_FILE)

    @property
    def _dir(self) -> Path | None:
        return None if self.config.index_dir is None else Path(self.config.index_dir)

    @property
    def embeddings(self) -> np.ndarray:
        return self._embeddings

    @property
    def sample_ids(self) -> np.ndarray:
        return self._sample_ids

    @property
    def label_ids(self) -> None:
        return None

    @property
    def total_index_size(self) -> int:
        return len(self._sample_ids)

    # -- changing the index -------------------------------------------------------------------

    def add_to_index(
        self,
        embeddings: np.ndarray,
        sample_ids: Any,
        label_ids: Any = None,
        overwrite: bool = True,
        allow_existing: bool = True,
        warn_existing: bool = False,
        reload: bool = True,
    ) -> None:
        if label_ids is not None:
            raise ValueError("the faiss backend indexes whole samples; label_ids are not supported")
        embeddings = np.asarray(embeddings)
        new_ids, _, ii, jj = fbu.add_ids(
            np.asarray(sample_ids), None, self._sample_ids, None,
            overwrite=overwrite, allow_existing=allow_existing, warn_existing=warn_existing,
        )  # fmt: skip
        if ii.size == 0:
            return
        n, d = len(self._sample_ids), embeddings.shape[1]
        if n and self._embeddings.shape[1] != d:
            raise ValueError(f"embeddings have dimension {d} but the index holds {self._embeddings.shape[1]}-d vectors")
        grown = np.empty((len(new_ids), d), dtype=embeddings.dtype if n == 0 else self._embeddings.dtype)
        if n:
            grown[:n] = self._embeddings
        grown[jj] = embeddings[ii]
        self._set_rows(grown, new_ids)
        if reload:
            super().reload()

    def remove_from_index(
        self,
        sample_ids: Any = None,
        label_ids: Any = None,
        allow_missing: bool = True,
        warn_missing: bool = False,
        reload: bool = True,
    ) -> None:
        if label_ids is not None:
            raise ValueError("the faiss backend indexes whole samples; label_ids are not supported")
        kept_ids, _, rm = fbu.remove_ids(
            sample_ids, None, self._sample_ids, None, allow_missing=allow_missing, warn_missing=warn_missing
        )
        if rm.size == 0:
            return
        self._set_rows(np.delete(self._embeddings, rm, axis=0), kept_ids)
        if reload:
            super().reload()

    def _set_rows(self, embeddings: np.ndarray, sample_ids: np.ndarray) -> None:
        """Replace the indexed rows, rebuild the faiss index and persist all three files."""
        self._embeddings, self._sample_ids = embeddings, np.asarray(sample_ids)
        self._full = NeighborIndex.build(
            embeddings, index=self.config.index_kind, nprobe=self.config.nprobe
        ) if len(embeddings) else None  # fmt: skip
        self._view_index = None
        self._ids_to_inds = None
        if self._dir is None:
            return
        self._dir.mkdir(parents=True, exist_ok=True)
        _save_npy(self._dir / EMBEDDINGS_FILE, self._embeddings)
        _save_npy(self._dir / SAMPLE_IDS_FILE, self._sample_ids)
        if self._full is None:
            (self._dir / INDEX_FILE).unlink(missing_ok=True)
        else:
            self._full.save(self._dir / INDEX_FILE)

    def cleanup(self) -> None:
        if self._dir is not None:
            _remove_files(self._dir)

    def get_embeddings(
        self,
        sample_ids: Any = None,
        label_ids: Any = None,
        allow_missing: bool = True,
        warn_missing: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, None]:
        if label_ids is not None:
            raise ValueError("the faiss backend indexes whole samples; label_ids are not supported")
        if sample_ids is None:
            return self._embeddings.copy(), self._sample_ids.copy(), None
        ids = [sample_ids] if isinstance(sample_ids, str) else list(sample_ids)
        lookup = self._lookup()
        missing = [i for i in ids if i not in lookup]
        if missing and not allow_missing:
            raise ValueError(f"{len(missing)} sample ids (e.g. {missing[0]!r}) are not in the index")
        if missing and warn_missing:
            logger.warning("Ignoring %d sample ids that are not in the index", len(missing))
        inds = np.array([lookup[i] for i in ids if i in lookup], dtype=np.int64)
        return self._embeddings[inds], self._sample_ids[inds], None

    # -- queries ----------------------------------------------------------------------------

    def _lookup(self) -> dict[str, int]:
        if self._ids_to_inds is None:
            self._ids_to_inds = {sid: i for i, sid in enumerate(self._sample_ids)}
        return self._ids_to_inds

    def _full_index(self) -> NeighborIndex | None:
        """The faiss index over all rows: read from ``index.faiss``, rebuilt if stale or missing."""
        if self._full is None and len(self._embeddings):
            path = None if self._dir is None else self._dir / INDEX_FILE
            if path is not None and path.exists():
                self._full = NeighborIndex.load(path)
            if self._full is None or self._full.ntotal != len(self._embeddings):
                self._full = NeighborIndex.build(
                    self._embeddings, index=self.config.index_kind, nprobe=self.config.nprobe
                )
        return self._full

    def _active(self) -> tuple[NeighborIndex | None, np.ndarray | None]:
        """The index to search for the current view and its rows (None = all rows)."""
        keep = self._current_inds
        if keep is None or (len(keep) == len(self._sample_ids) and np.array_equal(keep, np.arange(len(keep)))):
            return self._full_index(), None
        if len(keep) == 0:
            return None, keep
        if self._view_index is None or not np.array_equal(self._view_index[0], keep):
            self._view_index = (keep, NeighborIndex.build(self._embeddings[keep], index="flat"))
        return self._view_index[1], keep

    def _active_rows(self, keep: np.ndarray | None) -> np.ndarray:
        return self._embeddings if keep is None else self._embeddings[keep]

    def _queries(self, query: Any) -> tuple[np.ndarray, bool]:
        """(M, D) query vectors from ids or vectors, and whether a single query was given."""
        if isinstance(query, str):
            query = [query]
            single = True
        else:
            single = False
        arr = np.asarray(query)
        if np.issubdtype(arr.dtype, np.number):
            return (arr[None, :], True) if arr.ndim == 1 else (arr, False)
        lookup = self._lookup()
        missing = [q for q in query if q not in lookup]
        if missing:
            raise ValueError(f"query ids {missing[:5]} are not in this index")
        return self._embeddings[[lookup[q] for q in query]], single

    def _kneighbors(
        self,
        query: Any = None,
        k: int | None = None,
        reverse: bool = False,
        aggregation: str | None = None,
        return_dists: bool = False,
    ) -> Any:
        if aggregation not in (None, "mean"):
            raise ValueError(f"the faiss backend supports aggregation 'mean' only, got {aggregation!r}")
        index, keep = self._active()
        if query is None:
            if reverse:
                raise ValueError("least-similar queries need a query")
            return self._all_neighbors(index, keep, k, return_dists)
        q, single = self._queries(query)
        if aggregation == "mean":  # one query: the mean of the unit query vectors
            q32 = q.astype(np.float32)
            q, single = (q32 / np.linalg.norm(q32, axis=1, keepdims=True)).mean(axis=0, keepdims=True), True
        if index is None:
            found = [np.empty(0, np.int64)] * len(q), [np.empty(0, np.float32)] * len(q)
        else:
            k = index.ntotal if k is None else min(k, index.ntotal)
            res = index.search(-q if reverse else q, k)
            sims = -res.similarities if reverse else res.similarities
            valid = res.indices >= 0
            found = [i[v] for i, v in zip(res.indices, valid)], [s[v] for s, v in zip(sims, valid)]
        return self._format(found, single, return_dists)

    def _all_neighbors(
        self, index: NeighborIndex | None, keep: np.ndarray | None, k: int | None, return_dists: bool
    ) -> Any:
        """Full-index query: for every active row, the positions of its k nearest other rows."""
        n = 0 if index is None else index.ntotal
        if n < 2:
            inds, dists = [np.empty(0, np.int64)] * n, [np.empty(0, np.float32)] * n
        else:
            k = n - 1 if k is None else min(k, n - 1)
            res = index.search(self._active_rows(keep), k + 1)
            ids, sims = drop_self(res.indices, res.similarities, np.arange(n))
            inds, dists = list(ids), list(1.0 - sims)
        return (inds, dists) if return_dists else inds

    def _radius_neighbors(self, query: Any = None, thresh: float | None = None, return_dists: bool = False) -> Any:
        if thresh is None:
            raise ValueError("a distance threshold is required")
        index, keep = self._active()
        full = query is None
        q, single = (self._active_rows(keep), False) if full else self._queries(query)
        n = 0 if index is None else index.ntotal
        found_i = [np.empty(0, np.int64)] * len(q)
        found_s = [np.empty(0, np.float32)] * len(q)
        pending, k = np.arange(len(q)), min(_RADIUS_START_K, n)
        while n and pending.size:
            res = index.search(q[pending], k)
            done = (res.similarities[:, -1] < 1.0 - thresh) | (k == n)
            for row, ids, sims in zip(pending[done], res.indices[done], res.similarities[done]):
                inside = (ids >= 0) & (sims >= 1.0 - thresh) & ((ids != row) if full else True)
                found_i[row], found_s[row] = ids[inside], sims[inside]
            pending, k = pending[~done], min(2 * k, n)
        if full:
            dists = [1.0 - s for s in found_s]
            return (found_i, dists) if return_dists else found_i
        return self._format((found_i, found_s), single, return_dists)

    def _format(self, found: tuple[list[np.ndarray], list[np.ndarray]], single: bool, return_dists: bool) -> Any:
        """(sample_ids, None[, dists]) per query from positions and similarities in the active index."""
        current = self.current_sample_ids
        sample_ids = [[current[i] for i in inds] for inds in found[0]]
        dists = [list(1.0 - sims) for sims in found[1]]
        if single:
            sample_ids, dists = sample_ids[0], dists[0]
        return (sample_ids, None, dists) if return_dists else (sample_ids, None)

    @classmethod
    def _from_dict(
        cls,
        d: dict[str, Any],
        samples: fo.core.collections.SampleCollection,
        config: FaissSimilarityConfig,
        brain_key: str,
    ) -> FaissSimilarityIndex:
        if config.index_dir is not None and not (Path(config.index_dir) / SAMPLE_IDS_FILE).exists():
            raise FileNotFoundError(
                f"the faiss index of brain run {brain_key!r} is missing from {config.index_dir}; "
                f"delete the run (dataset.delete_brain_run({brain_key!r})) and compute it again"
            )
        return cls(samples, config, brain_key)


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
    os.replace(tmp, path)


def _remove_files(folder: Path) -> None:
    for name in (INDEX_FILE, EMBEDDINGS_FILE, SAMPLE_IDS_FILE):
        (folder / name).unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        shutil.rmtree(folder, ignore_errors=True)


def register() -> None:
    """Make ``backend="faiss"`` resolve to this module (done on import)."""
    fob.brain_config.similarity_backends.setdefault(BACKEND, {"config_cls": f"{__name__}.FaissSimilarityConfig"})


register()
