"""Scoring at scale: time and peak memory of each stage of ``curate score`` for N faces, N in a list.

Usage: python bench/bench_scale.py --sizes 100000,300000,1000000 [--image-size 32] [--shards 1]
       [--workdir DIR] [--json scale.json] [--plot scale.png]

Once, in ``--workdir`` (reused by a later call): ``max(sizes)`` synthetic faces
(``curate.data.synthetic``, ``--image-size`` px PNGs) and a tiny trained run (``curate train``, 1
epoch on ``--train-faces`` other synthetic faces). Then, for each N, a fresh process (so that each
peak is its own) reads the label CSV of the first N faces (``load_table``, as ``curate score`` does)
and scores them with the run (``score_job``, ``curate score``'s defaults; ``--shards``: that many
local processes). Per stage (``read`` and the stages of
``curate.scoring.forward.StageClock``): wall seconds and the peak resident memory of the scoring
process and its shard processes (summed), sampled every 20 ms with psutil; with shards the stages'
seconds are the shards' own and the memory is one peak over all of scoring. Writes the figures to ``--json`` and plots time and peak
memory against N to ``--plot`` (matplotlib). Run it with ``OMP_NUM_THREADS`` set to the threads you
mean to measure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

SAMPLE_S = 0.02


def tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of ``proc`` and all its descendants (the shards): an upper bound, since pages
    the processes share (the libraries) count once per process."""
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


class PeakSampler:
    """Peak RSS (bytes) of this process and its children per stage: ``mark(name)`` ends the
    current stage."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.stages: dict[str, dict[str, float]] = {}
        self._name: str | None = None
        self._since = time.perf_counter()
        self._peak = tree_rss(self.proc)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            rss = tree_rss(self.proc)
            with self._lock:
                self._peak = max(self._peak, rss)

    def mark(self, name: str | None) -> None:
        rss, now = tree_rss(self.proc), time.perf_counter()
        with self._lock:
            if self._name is not None:
                entry = self.stages.setdefault(self._name, {"seconds": 0.0, "peak_rss_mb": 0.0})
                entry["seconds"] += now - self._since
                entry["peak_rss_mb"] = max(entry["peak_rss_mb"], max(self._peak, rss) / 2**20)
            self._name, self._since, self._peak = name, now, rss

    def close(self) -> None:
        self.mark(None)
        self._stop.set()
        self._thread.join()


def prepare(workdir: Path, n: int, image_size: int, train_faces: int) -> Path:
    """The faces (``workdir/faces``) and the trained run (``workdir/run``); returns the run."""
    from curate.data.synthetic import generate

    generate(n, workdir / "faces", seed=0, image_size=image_size)
    run = workdir / "run"
    if not (run / "model.pt").exists():
        generate(train_faces, workdir / "train", seed=1, image_size=image_size)
        cmd = [sys.executable, "-m", "curate", "train", str(workdir / "train" / "labels.csv"), "--path-column",
               "path", "--label-column", "label", "--out", str(run), "--epochs", "1", "--ramp-a", "1",
               "--workers", "0", "--image-size", str(image_size)]  # fmt: skip
        subprocess.run(cmd, check=True)
    return run


def labels_of_first(workdir: Path, n: int) -> Path:
    """A label CSV of the first ``n`` faces (written once)."""
    import pandas as pd

    path = workdir / f"labels_{n}.csv"
    if not path.exists():
        frame = pd.read_csv(workdir / "faces" / "labels.csv", nrows=n)
        frame["path"] = [str((workdir / "faces" / p).resolve()) for p in frame["path"]]
        frame.to_csv(path.with_suffix(".tmp"), index=False)
        os.replace(path.with_suffix(".tmp"), path)
    return path


def measure(workdir: Path, n: int, shards: int) -> dict:
    """Score the first ``n`` faces in this process: {"stages": ..., "total_s", "peak_rss_mb", ...}."""
    from curate.data.load import load_table
    from curate.jobs import score_job
    from curate.scoring.launch import run

    labels = labels_of_first(workdir, n)
    sampler = PeakSampler()
    t0 = time.perf_counter()
    sampler.mark("read")
    table = load_table(str(labels), path_column="path", label_column="label")
    out = workdir / f"scores_{n}.parquet"
    hook = {"on_stage": sampler.mark} if shards == 1 else {}  # a hook does not travel to spawned processes
    if shards > 1:
        sampler.mark("sharded scoring")  # one memory peak over the shard processes and the merge
    result = run(shards, score_job, workdir / "run", table, out, progress=False, **hook)
    sampler.close()
    total = time.perf_counter() - t0
    stages = sampler.stages
    if shards > 1:  # the spawned processes report their own stage times; this one only waited
        stages = {"read": stages["read"], **{k: {"seconds": v} for k, v in result.stages.items()}}
    return {
        "faces": n, "shards": shards, "stages": stages, "total_s": total, "faces_per_s": n / total,
        "peak_rss_mb": max(s.get("peak_rss_mb", 0.0) for s in sampler.stages.values()),
        "threads": os.environ.get("OMP_NUM_THREADS"), "neighbour_recall": result.neighbour_recall,
    }  # fmt: skip


def plot(figures: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [f["faces"] for f in figures]
    names = list(dict.fromkeys(name for f in figures for name in f["stages"]))
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4))
    for name in names:
        ax_t.plot(sizes, [f["stages"].get(name, {}).get("seconds", 0.0) for f in figures], marker="o", label=name)
        if any("peak_rss_mb" in f["stages"].get(name, {}) for f in figures):
            peaks = [f["stages"].get(name, {}).get("peak_rss_mb", float("nan")) for f in figures]
            ax_m.plot(sizes, peaks, marker="o", label=name)
    ax_t.plot(sizes, [f["total_s"] for f in figures], "k--", marker="s", label="total")
    ax_m.plot(sizes, [f["peak_rss_mb"] for f in figures], "k--", marker="s", label="whole run (all processes)")
    ax_t.set_yscale("log")
    ax_t.set_xscale("log")  # memory on a linear axis: linear growth is a straight line
    for ax, label in ((ax_t, "seconds"), (ax_m, "peak RSS of the stage [MiB]")):
        ax.set_xlabel("faces scored")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.legend(fontsize=7)
    ax_m.legend(fontsize=7)
    fig.suptitle("curate score: time and memory per stage")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,300000,1000000", help="comma-separated face counts")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--train-faces", type=int, default=2000)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=Path("bench-scale"))
    ap.add_argument("--json", type=Path, default=Path("bench_scale.json"))
    ap.add_argument("--plot", type=Path, default=Path("bench_scale.png"))
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one size, print JSON
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.workdir, args.one, args.shards)))
        return
    sizes = sorted(int(s) for s in args.sizes.split(","))
    args.workdir.mkdir(parents=True, exist_ok=True)
    prepare(args.workdir, sizes[-1], args.image_size, args.train_faces)
    figures = []
    for n in sizes:
        cmd = [sys.executable, __file__, "--one", str(n), "--shards", str(args.shards), "--workdir", str(args.workdir)]
        line = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]
        fig = json.loads(line)
        figures.append(fig)
        stages = ", ".join(
            f"{k} {v['seconds']:.1f} s" + (f"/{v['peak_rss_mb']:.0f} MiB" if "peak_rss_mb" in v else "")
            for k, v in fig["stages"].items()
        )
        recall = "" if fig["neighbour_recall"] is None else f", neighbour recall@10 {fig['neighbour_recall']:.3f}"
        print(f"{n:>9,} faces: {fig['total_s']:7.1f} s, {fig['faces_per_s']:6.0f} faces/s, "
              f"peak RSS {fig['peak_rss_mb']:.0f} MiB{recall} | {stages}", flush=True)  # fmt: skip
    report = {"date": dt.date.today().isoformat(), "image_size": args.image_size, "cpu_count": os.cpu_count(),
              "figures": figures}  # fmt: skip
    args.json.write_text(json.dumps(report, indent=1))
    plot(figures, args.plot)
    print(f"wrote {args.json} and {args.plot}")


if __name__ == "__main__":
    main()
