"""Benchmark loading scores into FiftyOne: the bulk path of ``curate.fiftyone.load_scores`` against
per-sample writes, and ``sort_by_similarity`` with the faiss backend.

Synthetic records (7 classes, random distributions and scores, placeholder image paths: FiftyOne
does not need the files to load) and float16 embeddings. Timed:

* bulk insert: ``load_scores`` into a new dataset (no similarity);
* bulk update: ``load_scores`` of new scores for the same faces (``set_values``);
* per-sample insert: ``dataset.add_sample`` for ``--subset`` faces, scaled to N;
* per-sample update: set the same fields and ``sample.save()`` for ``--subset`` faces, scaled to N;
* similarity index: the faiss brain run over N embeddings;
* ``sort_by_similarity`` (one query face, k=50 and, up to 200,000 faces, all N), cold (index read
  from disk) and warm, including evaluating the sorted view's ids;
* opening a queue: the first page (50 faces) of the saved view ``likely-mislabeled`` (filtered by
  verdict, sorted by score, on the load's indexes), cold and warm, against the unsorted first page
  of the dataset in the same run.

Uses ``FIFTYONE_DATABASE_URI`` when set (else FiftyOne's embedded MongoDB). Wall seconds; the
machine is shared, so the ratios are the figures to quote.

    python bench/bench_fiftyone_load.py                 # 30,000 faces, 512-d, subset 500
    python bench/bench_fiftyone_load.py --n 5000 --subset 200

Goal: bulk >= 20x faster than per-sample writes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from curate.records import save_embeddings, write_scores

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
#: Above this many faces the all-faces ``sort_by_similarity`` is skipped: FiftyOne sends every sorted
#: id in the aggregation (an ordered ``Select``: the id list twice, about 17 bytes per id each), which
#: passes MongoDB's 16 MB command limit near 500,000 faces (by that arithmetic; not measured).
SORT_ALL_MAX = 200_000


def synthetic_scores(path: Path, n: int, dim: int, *, seed: int) -> Path:
    """Write ``n`` random records (and (n, dim) float16 embeddings beside them) to ``path``."""
    rng = np.random.default_rng(seed)
    c = len(CLASSES)
    probs = rng.dirichlet(np.ones(c) * 0.5, size=n).astype(np.float32)
    frame = pd.DataFrame({
        "sample_id": [f"face{i:06d}" for i in range(n)], "filepath": [f"/data/faces/face{i:06d}.png" for i in range(n)],
        "split": rng.choice(["train", "val", "test"], n), "given_label": rng.integers(0, c, n).astype(np.int32),
        "target_probs": list(probs), "latent_distribution": list(probs), "aux_consensus": list(probs), "label_distribution": list(probs),
        "uncertainty": rng.random(n).astype(np.float32), "mislabel_score": rng.random(n).astype(np.float32),
        "ambiguity_score": rng.random(n).astype(np.float32), "suggested_label": probs.argmax(1).astype(np.int32),
        "knn_disagreement": rng.random(n).astype(np.float32),
        "neighbors": [[f"face{j:06d}" for j in rng.integers(0, n, 10)] for _ in range(n)],
        "verdict": rng.choice(["ok", "ambiguous", "likely_mislabeled"], n, p=[0.8, 0.1, 0.1]),
        "reasons": [""] * n,
    })  # fmt: skip
    write_scores(path, frame, c, {"classes": CLASSES, "model": "bench"})
    save_embeddings(path, rng.normal(size=(n, dim)).astype(np.float32))
    return path


def sample_fields(df: pd.DataFrame, v: dict, i: int) -> dict:
    """The fields ``load_scores`` writes for row ``i``, as FiftyOne objects (the per-sample path)."""
    import fiftyone as fo

    from curate.fiftyone import load

    row = df.iloc[i]
    return {
        "sample_key": v["sample_key"][i], "split": v["split"][i],
        "ground_truth": fo.Classification(label=v["given"][i]),
        "dmue": fo.Classification(label=v["suggested_label"][i], confidence=v["confidence"][i],
                                  logits=np.log(np.clip(row["target_probs"], 1e-12, None))),
        **{f: np.asarray(row[f]) for f in load.VECTOR_FIELDS},
        **{f: v[f][i] for f in (*load.SCORE_FIELDS, "suggested_label", "verdict", "reasons", "neighbors")},
    }  # fmt: skip


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=30_000, help="faces")
    parser.add_argument("--dim", type=int, default=512, help="embedding dimension")
    parser.add_argument("--subset", type=int, default=500, help="faces written one by one (then scaled)")
    parser.add_argument("--repeats", type=int, default=5, help="sort_by_similarity repeats (median)")
    args = parser.parse_args()

    import fiftyone as fo

    from curate.fiftyone import SIMILARITY_KEY, load
    from curate.records import load_embeddings, read_scores

    name, per_sample_name = f"bench-load-{uuid.uuid4().hex[:6]}", f"bench-save-{uuid.uuid4().hex[:6]}"
    n, m = args.n, args.subset
    scale = n / m
    with tempfile.TemporaryDirectory() as tmp:
        first = synthetic_scores(Path(tmp) / "s1.parquet", n, args.dim, seed=0)
        second = synthetic_scores(Path(tmp) / "s2.parquet", n, args.dim, seed=1)
        print(
            f"{n} faces, {len(CLASSES)} classes, {args.dim}-d embeddings; per-sample paths on {m}, scaled x{scale:.0f}"
        )
        try:
            t_insert, ds = timed(lambda: load.load_scores(first, name, similarity=False, progress=False))
            t_update, _ = timed(lambda: load.load_scores(second, name, similarity=False, progress=False))

            queue_times = {}
            for label, page in (
                ("likely-mislabeled, first 50", lambda: ds.load_saved_view("likely-mislabeled").limit(50).values("id")),
                ("dataset, first 50 (baseline)", lambda: ds.limit(50).values("id")),
            ):
                ds.clear_cache()
                cold, _ = timed(page)
                queue_times[label] = (cold, statistics.median(timed(page)[0] for _ in range(args.repeats)))

            df = read_scores(second)
            values = load._values(df, CLASSES)
            rows = np.arange(m)
            per = fo.Dataset(per_sample_name)
            load._declare_fields(per)

            def add_each() -> None:
                for i in rows:
                    fields = sample_fields(df, values, i)
                    per.add_sample(fo.Sample(filepath=values["filepath"][i], **fields, decisions=[], reviewed=False,
                                             excluded=False))  # fmt: skip

            t_add, _ = timed(add_each)
            id_of = dict(zip(*ds.values(["sample_key", "id"])))

            def save_each() -> None:
                for i in rows:
                    sample = ds[id_of[values["sample_key"][i]]]
                    for field, value in sample_fields(df, values, i).items():
                        sample[field] = value
                    sample.save()

            t_save, _ = timed(save_each)
            emb = np.asarray(load_embeddings(second))
            t_index, _ = timed(lambda: load._index(ds, values["sample_key"], emb))

            query = id_of["face000000"]
            sort_times = {}
            for k in (50, None) if n <= SORT_ALL_MAX else (50,):
                ds.clear_cache()

                def sort(k=k):
                    return ds.sort_by_similarity(query, k=k, brain_key=SIMILARITY_KEY).values("id")

                cold, _ = timed(sort)
                warm = [timed(sort)[0] for _ in range(args.repeats)]
                sort_times[k] = (cold, statistics.median(warm))
        finally:
            for dataset_name in (name, per_sample_name):
                if fo.dataset_exists(dataset_name):
                    dataset = fo.load_dataset(dataset_name)
                    dataset.delete_brain_runs()
                    dataset.delete()

    print(f"bulk insert  (load_scores, new dataset): {t_insert:8.1f} s  ({n / t_insert:7.0f} faces/s)")
    print(f"per-sample insert (add_sample) x{scale:.0f}:   {t_add * scale:8.1f} s  ({m / t_add:7.0f} faces/s)"
          f"  -> bulk {t_add * scale / t_insert:.1f}x faster")  # fmt: skip
    print(f"bulk update  (load_scores, re-load):     {t_update:8.1f} s  ({n / t_update:7.0f} faces/s)")
    print(f"per-sample update (sample.save()) x{scale:.0f}: {t_save * scale:8.1f} s  ({m / t_save:7.0f} faces/s)"
          f"  -> bulk {t_save * scale / t_update:.1f}x faster")  # fmt: skip
    print(f"similarity index (faiss brain run):      {t_index:8.1f} s")
    for label, (cold, warm) in queue_times.items():
        print(f"open {label:<29} cold {cold * 1000:7.0f} ms, warm median {warm * 1000:6.0f} ms")
    for k, (cold, warm) in sort_times.items():
        label = "all" if k is None else k
        print(f"sort_by_similarity k={label!s:<4} cold {cold * 1000:7.0f} ms, warm median {warm * 1000:6.0f} ms")


if __name__ == "__main__":
    main()
