"""The simulated-curator suite (issue 22): does re-ranking with the curator's decisions find more
real errors?

A curator reviews the top of the queue in batches of ``batch`` faces and answers with the FERPlus
crowd plurality (``ferplus_label``; a face without plurality, -1, is decided with no label: it is
"excluded" and teaches nothing). The queues compared after each checkpoint of reviewed faces:

* ``static``: the run's ``mislabel_score``, computed once (today's queue);
* ``rerank w=W``: ``curate.rerank`` after every batch (label propagation weight W, class updates and
  the head refit on the run's embeddings on), and ablations that leave updates out;
* ``calibration oracle``: the static score recalibrated per class with the *true* error rate of each
  score (isotonic regression on every face's crowd label): the most any per-class calibration of
  the static score could find, a reference, not a method;
* ``embedding oracle``: a static queue by ``1 - p[given]`` of a linear head (``curate.rerank_head``)
  fitted on the crowd labels of half of the faces and applied to the other half (2 folds): what
  the run's embeddings tell with about as many clean labels as half the dataset, a reference;
* ``cleanlab``: ``cleanlab.rank.get_label_quality_scores(given, target_probs, method="self_confidence")``,
  lowest quality first, suggestion = argmax target_probs.

Reported per checkpoint: real errors found (reviewed faces whose given label the crowd overturns), the
reviewed faces without a crowd plurality (they can never count as an error, so errors found plus
these is the most a queue could have found among the faces it showed: on FERPlus they are the
larger part of what a good queue wastes), and the accuracy of the suggestion on the true errors
still undecided (``suggested == ferplus_label``), both for the argmax (which may be the given label)
and for the best other class (what a curator who relabels would pick). The run is ``run_dir`` (any ``curate run`` on FERPlus faces with the FER2013
labels, or on a flip setting of the flips suite with its labels), or one trained here on the
Training split as stage ``OUT/dmue``. ``OUT/curator.md``,
``OUT/curator.json`` and ``OUT/curator.png`` hold the results.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from curate.benchmark.matching import rows_by_path
from curate.benchmark.protocol import BenchConfig, Benchmark, Log
from curate.benchmark.report import fer2013_to_run, write_texts
from curate.data.table import FER2013_CLASSES
from curate.records import load_embeddings
from curate.rerank import CORRECT, RerankConfig, Reranker
from curate.rerank_head import fit_predict
from curate.scoring.scores import best_other


def load(run_dir: Path, labels: Path) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Scores table, crowd label (N,, -1: no plurality) and "the given label is wrong" (N,: a
    plurality that differs from it) aligned row by row. ``labels`` is FERPlus's labels.csv (the
    given labels: ``fer2013_label``) or a split the benchmark wrote, e.g. a flip setting's
    ``train.csv`` (the given labels: ``label``, class names). Raises ValueError when the run is not
    one on ``labels``' faces with its given labels and FER2013's classes (in any order: the crowd's
    class indices, in FER2013's order, are mapped to the run's)."""
    scores = pd.read_parquet(run_dir / "scores.parquet")
    classes = json.loads((run_dir / "classes.json").read_text())
    if sorted(classes) != sorted(FER2013_CLASSES):
        raise ValueError(f"{run_dir}: classes {classes} are not FER2013's {list(FER2013_CLASSES)}")
    table = pd.read_csv(labels)
    rows = rows_by_path(scores["filepath"], table["path"], labels.resolve().parent)
    if (rows < 0).any():
        raise ValueError(f"{(rows < 0).sum()} faces of the run {run_dir} are not in {labels}")
    crowd = fer2013_to_run(table["ferplus_label"].to_numpy()[rows], classes)
    if "label" in table:
        given_csv = table["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()[rows]
    else:
        given_csv = fer2013_to_run(table["fer2013_label"].to_numpy()[rows], classes)
    given = scores["given_label"].to_numpy()
    if not (given_csv == given).all():
        raise ValueError(f"the given labels of {run_dir} are not the labels of {labels}")
    return scores, crowd, (crowd >= 0) & (crowd != given)


def _share(hits: np.ndarray) -> float:
    """The share of True in ``hits``; NaN when there is none (every error decided)."""
    return float(hits.mean()) if len(hits) else float("nan")


def simulate(order_fn, n: int, batch: int, checkpoints, crowd, wrong, given) -> list[dict]:
    """``order_fn(decided_mask, decisions) -> (scores, dist)``; reviews the top ``batch`` undecided
    faces per step; returns one row per checkpoint."""
    decided = np.zeros(n, dtype=bool)
    decisions: dict[int, int | str | None] = {}
    out, reviewed = [], 0
    score, dist = order_fn(decided, decisions)
    while reviewed < max(checkpoints):
        cand = np.flatnonzero(~decided)
        if not len(cand):
            raise ValueError(f"checkpoint {max(checkpoints)} exceeds the {n} faces")
        take = cand[np.argsort(-score[cand], kind="stable")[:batch]]
        for i in take:
            c = int(crowd[i])
            decisions[i] = None if c < 0 else (CORRECT if c == given[i] else c)
        decided[take] = True
        reviewed += len(take)
        score, dist = order_fn(decided, decisions)
        if reviewed in checkpoints:
            open_err = ~decided & wrong
            out.append(
                {
                    "reviewed": reviewed,
                    "errors_found": int((decided & wrong).sum()),
                    "no_plurality": int((decided & (crowd < 0)).sum()),
                    "sugg_acc": _share(dist[open_err].argmax(axis=1) == crowd[open_err]),
                    "other_acc": _share(best_other(given[open_err], dist[open_err]) == crowd[open_err]),
                    "curve": None,
                }
            )
        if reviewed % 200 == 0:
            out.append({"reviewed": reviewed, "errors_found": int((decided & wrong).sum()), "curve": True})
    return out


@dataclass
class CuratorSuiteConfig:
    """``run_dir``: the run whose queue the curator works through (None: train DMUE on the Training
    split as stage ``OUT/dmue`` with ``epochs`` / ``backbone`` / ``seed``); ``checkpoints`` beyond
    the number of faces are dropped."""

    labels_csv: Path
    out: Path
    run_dir: Path | None = None
    batch: int = 200
    checkpoints: tuple[int, ...] = (1000, 2000, 5000)
    weights: tuple[float, ...] = (0.5, 1.0, 2.0)
    epochs: int = 12
    backbone: str = "fer_cnn"
    seed: int = 0
    progress: bool = True


def embedding_oracle(rr: Reranker, crowd: np.ndarray) -> np.ndarray:
    """(N,) ``1 - p[given]`` of a linear head on the run's embeddings fitted on the crowd labels
    (``crowd`` (N,), -1: no plurality, left out) of one half of the faces (a seeded split) and
    applied to the other, both ways."""
    assert rr.embeddings is not None
    n = len(crowd)
    half = np.random.default_rng(0).permutation(n) % 2
    p = np.zeros((n, rr.num_classes))
    for k in (0, 1):
        fit = np.flatnonzero((half != k) & (crowd >= 0))
        p[half == k] = fit_predict(rr.embeddings, fit, crowd[fit], np.ones(len(fit)), rr.num_classes)[half == k]
    return 1.0 - p[np.arange(n), rr.given]


def queues(
    scores: pd.DataFrame, crowd: np.ndarray, wrong: np.ndarray, rr: Reranker, weights: tuple[float, ...], log: Log
) -> dict:
    """{queue name: order_fn} for :func:`simulate`."""
    given = rr.given

    def reranked(cfg: RerankConfig):
        def fn(d, dec):
            r = rr.rerank({rr.sample_ids[i]: v for i, v in dec.items()}, cfg)
            return r["mislabel_score"], r["label_distribution"]

        return fn

    methods: dict[str, object] = {"static": lambda d, dec: (rr.mislabel, rr.dist)}
    for w in weights:
        methods[f"rerank w={w:g}"] = reranked(RerankConfig(weight=w))
    no_head = {"head_strength": 0.0, "head_mix": 0.0}
    methods |= {
        "rerank w=1, no head refit": reranked(RerankConfig(weight=1.0, **no_head)),
        "rerank w=1, head without noise model": reranked(RerankConfig(weight=1.0, head_noise_model=False)),
        "rerank w=1, no class update": reranked(RerankConfig(weight=1.0, class_strength=0.0)),
        "rerank w=1, propagation only": reranked(
            RerankConfig(weight=1.0, class_strength=0.0, transition_strength=0.0, **no_head)
        ),
        "rerank w=0, class updates only": reranked(RerankConfig(weight=0.0, **no_head)),
        "rerank w=0, head refit only": reranked(RerankConfig(weight=0.0, class_strength=0.0, transition_strength=0.0)),
    }
    if rr.embeddings is not None:
        head_oracle = embedding_oracle(rr, crowd)
        methods["embedding oracle"] = lambda d, dec: (head_oracle, rr.dist)
    try:
        from cleanlab.rank import get_label_quality_scores
        from sklearn.isotonic import IsotonicRegression
    except ImportError:
        log("[curator] cleanlab or scikit-learn not installed (the bench extra): their rows are left out")
        return methods
    oracle = np.zeros(len(given))
    for c in np.unique(given):
        m = given == c
        oracle[m] = IsotonicRegression(out_of_bounds="clip").fit(rr.mislabel[m], wrong[m]).predict(rr.mislabel[m])
    methods["calibration oracle"] = lambda d, dec: (oracle, rr.dist)
    probs = np.stack(scores["target_probs"].to_numpy()).astype(np.float64)
    quality = get_label_quality_scores(given, probs, method="self_confidence")
    methods["cleanlab self_confidence"] = lambda d, dec: (1.0 - quality, probs)
    return methods


def run_curator_suite(cfg: CuratorSuiteConfig, log: Log = print) -> dict[str, Any]:
    """Train the run if needed (resumable), simulate every queue, write ``OUT/curator.md``,
    ``OUT/curator.json`` and ``OUT/curator.png``; return the record."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    run_dir = cfg.run_dir
    if run_dir is None:
        bench = Benchmark(BenchConfig(labels_csv=cfg.labels_csv, out=cfg.out, epochs=cfg.epochs, backbone=cfg.backbone,
                                      seed=cfg.seed, faithful=False, flip_rates=(), progress=cfg.progress), log)  # fmt: skip
        bench.store.get("dmue", lambda: bench.curate_run("dmue"))
        run_dir = bench.store.dir("dmue") / "run"
    scores, crowd, wrong = load(Path(run_dir), Path(cfg.labels_csv))
    rr = Reranker(scores, load_embeddings(Path(run_dir) / "scores.parquet"))
    n, given = len(scores), rr.given
    checkpoints = [c for c in cfg.checkpoints if c <= n]
    if not checkpoints:
        raise ValueError(f"every checkpoint {list(cfg.checkpoints)} exceeds the run's {n} faces")
    log(
        f"[curator] {n} faces, {wrong.sum()} real errors (given label != crowd plurality), {(crowd < 0).sum()} without plurality"
    )
    rows, curves = [], {}
    for name, fn in queues(scores, crowd, wrong, rr, cfg.weights, log).items():
        t0 = time.perf_counter()
        res = simulate(fn, n, cfg.batch, checkpoints, crowd, wrong, given)
        curves[name] = [(r["reviewed"], r["errors_found"]) for r in res if r.get("curve")]
        rows += [
            {"method": name, **{k: v for k, v in r.items() if k != "curve"}} for r in res if r.get("curve") is None
        ]
        log(f"[curator] {name}: {time.perf_counter() - t0:.1f} s")
    table = pd.DataFrame(rows)
    static = table[table.method == "static"].set_index("reviewed")["errors_found"]
    table["vs_static"] = [f / static[r] - 1 for f, r in zip(table.errors_found, table.reviewed)]
    record = {"date": dt.date.today().isoformat(), "run": str(run_dir), "faces": n, "errors": int(wrong.sum()),
              "batch": cfg.batch, "rows": table.to_dict("records"), "curves": curves}  # fmt: skip
    write_texts(
        cfg.out, {"curator.md": to_markdown(table), "curator.json": json.dumps(record, indent=1, default=float)}
    )
    plot(curves, int(wrong.sum()), cfg.out / "curator.png")
    return record


def to_markdown(table: pd.DataFrame) -> str:
    """The results table (one row per queue and checkpoint) as markdown."""
    lines = [
        "| queue | reviewed | real errors found | vs static | without crowd plurality | suggestion right (undecided errors) "
        "| best other class right |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.method} | {r.reviewed:,} | {r.errors_found:,} | {r.vs_static:+.1%} | {r.no_plurality:,} "
            f"| {r.sugg_acc:.1%} | {r.other_acc:.1%} |"
        )
    return "\n".join(lines) + "\n"


def plot(curves: dict, total: int, path: Path) -> None:
    """Errors found against faces reviewed, one line per queue."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, pts in curves.items():
        x, y = zip(*pts)
        ax.plot(x, y, label=name, lw=1.5)
    ax.plot([0, max(x)], [0, max(x)], ":", color="grey", lw=1, label="every face an error")
    ax.set_xlabel("faces reviewed (batches of 200)")
    ax.set_ylabel(f"real errors found (of {total:,})")
    ax.set_title("Simulated curator, FERPlus")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
