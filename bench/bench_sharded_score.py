"""Sharded scoring throughput: one process against ``--shards``, on synthetic faces, in one run.

Usage: python bench/bench_sharded_score.py [--n 4000] [--image-size 48] [--backbone fer_cnn]
       [--threads 2] [--workdir DIR]

The same N synthetic faces (``curate.data.synthetic``) are scored by ``score_table`` (what
``curate score`` runs, with its defaults: mirror-image TTA and the auxiliary consensus) with the
same DMUE model (untrained: a trained one costs the same), three ways:

1. one process, 1 torch thread;
2. one process, ``--threads`` torch threads (the baseline);
3. ``--threads`` shards (``curate score --shards``: spawned processes, gloo), 1 thread each,
   so the total thread count equals the baseline's.

Figures: faces/s end to end (the shards' start-up included: new interpreters, torch import) and of
the per-face phase (forward passes and pixel hash, plus waiting for the shards and merging their
parts), as ratios against the baseline and against the faster of the two one-process runs. Goal:
sharded / baseline >= 1.6 on the per-face phase where the work is CPU-bound per face. The load
average is printed: on a shared machine other processes take cores from every run, and a
2-thread process suffers most (its threads wait for each other). The sharded result is checked
against the baseline's.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from curate import records
from curate.data.load import load_table
from curate.data.synthetic import generate
from curate.scoring.launch import run_local
from curate.scoring.pipeline import score_table
from dmue_core import DMUE, DMUEConfig

PER_FACE = ("forward", "pixels", "merge")


def _score(model, table, out: Path, image_size: int, shards: int, threads: int) -> tuple[float, dict[str, float]]:
    """(wall seconds, stage seconds) of scoring ``table`` in ``shards`` processes of ``threads`` threads."""
    kwargs = dict(image_size=image_size, model_classes=table.attrs["classes"], progress=False)
    t0 = time.perf_counter()
    if shards == 1:
        torch.set_num_threads(threads)
        result = score_table(model, table, out, **kwargs)
    else:
        result = run_local(shards, score_table, model, table, out, threads=threads, **kwargs)
    return time.perf_counter() - t0, result.stages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--image-size", type=int, default=48)
    ap.add_argument("--backbone", default="fer_cnn")
    ap.add_argument("--threads", type=int, default=2, help="the baseline's threads = the number of shards")
    ap.add_argument("--workdir", type=Path, help="keeps the generated faces (default: a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp:
        work = args.workdir or Path(tmp)
        generate(args.n, work / "faces", seed=0, image_size=args.image_size)
        table = load_table(str(work / "faces" / "labels.csv"), path_column="path", label_column="label")
        torch.manual_seed(0)
        cfg = DMUEConfig(num_classes=len(table.attrs["classes"]), backbone=args.backbone, small_input=True)
        model = DMUE(cfg).eval()
        runs = {
            "1 process, 1 thread": (1, 1),
            f"1 process, {args.threads} threads (baseline)": (1, args.threads),
            f"{args.threads} shards, 1 thread each": (args.threads, 1),
        }
        print(f"{args.n} faces {args.image_size}px, {args.backbone}, curate score defaults; "
              f"{os.cpu_count()} cores, load average before {os.getloadavg()[0]:.2f}")  # fmt: skip
        figures = {}
        for i, (name, (shards, threads)) in enumerate(runs.items()):
            wall, stages = _score(model, table, work / f"run{i}.parquet", args.image_size, shards, threads)
            phase = sum(stages.get(s, 0.0) for s in PER_FACE)
            figures[name] = (args.n / wall, args.n / phase)
            detail = ", ".join(f"{k} {v:.1f}" for k, v in stages.items())
            print(f"{name:34s} end to end {args.n / wall:7.1f} faces/s ({wall:5.1f} s)   per-face phase "
                  f"{args.n / phase:7.1f} faces/s ({phase:5.1f} s)   stages [s]: {detail}")  # fmt: skip
        one, base, sharded = figures.values()
        best = max(one, base, key=lambda f: f[1])
        print(f"ratio sharded / baseline: end to end {sharded[0] / base[0]:.2f}x, per-face phase {sharded[1] / base[1]:.2f}x"
              f" (goal >= 1.6x); sharded / faster one-process run: end to end {sharded[0] / best[0]:.2f}x, "
              f"per-face phase {sharded[1] / best[1]:.2f}x; baseline / 1 thread: {base[1] / one[1]:.2f}x")  # fmt: skip
        a, b = records.read_scores(work / "run1.parquet"), records.read_scores(work / "run2.parquet")
        diff = max(float(np.abs(a[c] - b[c]).max()) for c in ("mislabel_score", "ambiguity_score", "uncertainty"))
        print(f"sharded vs baseline scores: max |difference| {diff:.1e}; load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
