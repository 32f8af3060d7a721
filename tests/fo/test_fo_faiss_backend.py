"""The faiss similarity backend: the same neighbours as curate.neighbors.knn, view-restricted, reversed and
radius queries, persistence across processes, cleanup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from curate.fiftyone import SIMILARITY_KEY, load_scores
from curate.fiftyone.faiss_backend import EMBEDDINGS_FILE, INDEX_FILE, SAMPLE_IDS_FILE
from curate.neighbors import knn
from curate.records import load_embeddings

pytestmark = pytest.mark.mongo


@pytest.fixture
def loaded(make_scores, dataset_name):
    """(dataset, its embeddings in row order, FiftyOne ids in row order)."""
    path = make_scores(40)
    ds = load_scores(path, dataset_name, progress=False)
    id_of = dict(zip(ds.values("sample_key"), ds.values("id")))
    return ds, np.asarray(load_embeddings(path), dtype=np.float64), [id_of[f"f{i}"] for i in range(40)]


def cosine(emb: np.ndarray) -> np.ndarray:
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    return unit @ unit.T


def test_same_neighbours_as_curate_knn(loaded):
    ds, emb, ids = loaded
    expected = knn(emb, 5)
    index = ds.load_brain_results(SIMILARITY_KEY)
    assert list(index.sample_ids) == ids

    inds, dists = index._kneighbors(k=5, return_dists=True)
    np.testing.assert_array_equal(np.stack(inds), expected.indices)
    np.testing.assert_allclose(np.stack(dists), 1 - expected.similarities, atol=1e-5)
    for row in (0, 7, 39):
        view = ds.sort_by_similarity(ids[row], k=6, brain_key=SIMILARITY_KEY)
        assert view.values("id") == [ids[row]] + [ids[j] for j in expected.indices[row]]
    by_vector = ds.sort_by_similarity(emb[3], k=1, brain_key=SIMILARITY_KEY)
    assert by_vector.values("id") == [ids[3]]


def test_view_reverse_and_radius_queries(loaded):
    ds, emb, ids = loaded
    sims = cosine(emb)
    least = ds.sort_by_similarity(ids[0], k=3, reverse=True, brain_key=SIMILARITY_KEY).values("id")
    assert least == [ids[j] for j in np.argsort(sims[0])[:3]]

    subset = ds.match_tags("ambiguous")  # rows 1, 4, 7, ...
    rows = [i for i in range(40) if i % 3 == 1]
    got = subset.sort_by_similarity(ids[0], k=4, brain_key=SIMILARITY_KEY).values("id")
    assert got == [ids[rows[j]] for j in np.argsort(-sims[0, rows])[:4]]

    index = ds.load_brain_results(SIMILARITY_KEY)
    near = index._radius_neighbors(thresh=0.5)
    for i in range(40):
        assert set(near[i]) == {j for j in range(40) if j != i and 1 - sims[i, j] <= 0.5}
    index.find_duplicates(thresh=0.05)
    assert index.duplicate_ids == []  # random embeddings: no near-duplicates


def test_index_persists_across_processes_and_cleanup(loaded):
    ds, emb, ids = loaded
    index = ds.load_brain_results(SIMILARITY_KEY)
    folder = Path(ds.get_brain_info(SIMILARITY_KEY).config.index_dir)
    assert {p.name for p in folder.iterdir()} == {INDEX_FILE, EMBEDDINGS_FILE, SAMPLE_IDS_FILE}
    index.remove_from_index(sample_ids=[ids[5]])
    here = ds.sort_by_similarity(ids[0], k=8, brain_key=SIMILARITY_KEY).values("id")
    assert ids[5] not in here

    code = (
        "import json, sys, fiftyone as fo\n"
        f"ds = fo.load_dataset({ds.name!r})\n"
        f"index = ds.load_brain_results({SIMILARITY_KEY!r})\n"
        f"view = ds.sort_by_similarity({ids[0]!r}, k=8, brain_key={SIMILARITY_KEY!r})\n"
        "print(json.dumps({'size': index.total_index_size, 'ids': view.values('id')}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"size": 39, "ids": here}

    ds.delete_brain_run(SIMILARITY_KEY)
    assert not folder.exists()


def test_backend_name_and_in_memory_index(loaded):
    import fiftyone.brain as fob

    ds, emb, ids = loaded
    assert fob.brain_config.similarity_backends["faiss"]["config_cls"].endswith("faiss_backend.FaissSimilarityConfig")
    index = fob.compute_similarity(ds.select(ids, ordered=True), embeddings=emb, backend="faiss")
    assert index.config.index_dir is None and index.total_index_size == 40
    assert index.sort_by_similarity(ids[9], k=2).values("id")[0] == ids[9]


def test_missing_index_files_are_reported_and_rebuilt_by_a_reload(make_scores, dataset_name):
    import shutil

    path = make_scores(40)
    ds = load_scores(path, dataset_name, progress=False)
    shutil.rmtree(ds.get_brain_info(SIMILARITY_KEY).config.index_dir)
    ds.clear_cache()
    with pytest.raises(FileNotFoundError, match="is missing from"):
        ds.load_brain_results(SIMILARITY_KEY)
    ds = load_scores(path, dataset_name, progress=False)
    assert ds.load_brain_results(SIMILARITY_KEY).total_index_size == 40


def test_a_clone_gets_its_own_index_files(loaded):
    """Deleting a clone's brain run, before or after it used the index, leaves the source's files."""
    import fiftyone as fo

    ds, _, ids = loaded
    folder = Path(ds.get_brain_info(SIMILARITY_KEY).config.index_dir)
    expected = ds.sort_by_similarity(ids[0], k=5, brain_key=SIMILARITY_KEY).values("id")
    clones = [ds.clone(f"{ds.name}-clone{i}") for i in range(2)]
    try:
        clones[0].delete_brain_runs()  # never opened: nothing of the source's is removed
        used = clones[1]
        assert used.sort_by_similarity(ids[0], k=5, brain_key=SIMILARITY_KEY).values("id") == expected
        own = Path(used.get_brain_info(SIMILARITY_KEY).config.index_dir)
        assert own != folder and (own / SAMPLE_IDS_FILE).exists()
        used.load_brain_results(SIMILARITY_KEY).remove_from_index(sample_ids=[ids[1]])
        used.delete_brain_runs()
        assert not own.exists()
    finally:
        for clone in clones:
            clone.delete()
    ds.clear_cache()
    assert {p.name for p in folder.iterdir()} == {INDEX_FILE, EMBEDDINGS_FILE, SAMPLE_IDS_FILE}
    assert fo.load_dataset(ds.name).load_brain_results(SIMILARITY_KEY).total_index_size == 40
    assert ds.sort_by_similarity(ids[0], k=5, brain_key=SIMILARITY_KEY).values("id") == expected
