"""Simulated curator (issue 22): does re-ranking with the curator's decisions find more real errors?

A curator reviews the top of the queue in batches of ``--batch`` faces and answers with the FERPlus
crowd plurality (``ferplus_label``; a face without plurality, -1, is decided with no label: it is
"excluded" and teaches nothing). Three queues are compared after each checkpoint of reviewed faces:

* ``static``: the run's ``mislabel_score``, computed once (today's queue);
* ``rerank w=W``: ``curate.rerank`` after every batch (label propagation weight W, class update and
  head refit on the run's embeddings on), with ablations of each update;
* ``cleanlab``: ``cleanlab.rank.get_label_quality_scores(given, target_probs, method="self_confidence")``,
  lowest quality first, suggestion = argmax target_probs.

Reported per checkpoint: real errors found (reviewed faces with ``label_disagrees == 1``) and the
accuracy of the suggestion on the true errors still undecided (``suggested == ferplus_label``), both
for the suggestion as stored (argmax, which may be the given label) and for the best other class
(argmax over classes other than the given one: what a curator who relabels would pick).

    OMP_NUM_THREADS=1 python bench/simulated_curator.py TRAIN_RUN \\
        --labels ../shared/data/ferplus/labels.csv --md docs/review-loop.md --plot docs/img/review-loop.png
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from curate.records import load_embeddings
from curate.rerank import CORRECT, RerankConfig, Reranker


def load(run_dir: Path, labels: Path) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Scores table, crowd label (N,) and disagrees flag (N,) aligned row by row."""
    scores = pd.read_parquet(run_dir / "scores.parquet")
    table = pd.read_csv(labels)
    root = labels.resolve().parent
    key = {str((root / p).resolve()): i for i, p in enumerate(table["path"])}
    rows = np.array([key.get(str(Path(f).resolve()), -1) for f in scores["filepath"]])
    if (rows < 0).any():
        raise SystemExit(f"{(rows < 0).sum()} faces of the run are not in {labels}")
    crowd = table["ferplus_label"].to_numpy()[rows]
    wrong = table["label_disagrees"].to_numpy()[rows] == 1
    given_csv = table["fer2013_label"].to_numpy()[rows]
    if not (given_csv == scores["given_label"].to_numpy()).all():
        raise SystemExit("given labels of the run and of labels.csv differ")
    return scores, crowd, wrong


def other_best(dist: np.ndarray, given: np.ndarray) -> np.ndarray:
    d = dist.copy()
    d[np.arange(len(given)), given] = -np.inf
    return d.argmax(axis=1)


def simulate(order_fn, n: int, batch: int, checkpoints, crowd, wrong, given) -> list[dict]:
    """``order_fn(decided_mask, decisions) -> (scores, dist)``; reviews the top ``batch`` undecided
    faces per step; returns one row per checkpoint."""
    decided = np.zeros(n, dtype=bool)
    decisions: dict[int, int | str | None] = {}
    out, reviewed = [], 0
    score, dist = order_fn(decided, decisions)
    while reviewed < max(checkpoints):
        cand = np.flatnonzero(~decided)
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
                    "sugg_acc": float((dist[open_err].argmax(axis=1) == crowd[open_err]).mean()),
                    "other_acc": float((other_best(dist[open_err], given[open_err]) == crowd[open_err]).mean()),
                    "curve": None,
                }
            )
        if reviewed % 200 == 0:
            out.append({"reviewed": reviewed, "errors_found": int((decided & wrong).sum()), "curve": True})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--labels", type=Path, required=True)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--checkpoints", default="1000,2000,5000")
    ap.add_argument("--weights", default="0.5,1,2", help="propagation weights to try")
    ap.add_argument("--class-strength", type=float, default=1.0)
    ap.add_argument("--json", type=Path, help="write all rows as JSON")
    ap.add_argument("--plot", type=Path, help="write the errors-found curves (PNG)")
    ap.add_argument("--md", type=Path, help="print the table as markdown to this file (replaced)")
    args = ap.parse_args()
    checkpoints = [int(c) for c in args.checkpoints.split(",")]

    scores, crowd, wrong = load(args.run_dir, args.labels)
    rr = Reranker(scores, load_embeddings(args.run_dir / "scores.parquet"))
    n, given = len(scores), rr.given
    print(f"{n} faces, {wrong.sum()} real errors (label_disagrees == 1), {(crowd < 0).sum()} without plurality")

    static_dist = rr.dist
    methods: dict[str, object] = {"static": lambda d, dec: (rr.mislabel, static_dist)}
    for w in [float(x) for x in args.weights.split(",")]:
        cfg = RerankConfig(weight=w, class_strength=args.class_strength)

        def fn(d, dec, cfg=cfg):
            r = rr.rerank({rr.sample_ids[i]: v for i, v in dec.items()}, cfg)
            return r["mislabel_score"], r["label_distribution"]

        methods[f"rerank w={w:g}"] = fn
    ablations = {
        "rerank w=1, no head refit": RerankConfig(weight=1.0, head_strength=0.0, head_mix=0.0),
        "rerank w=1, no class update": RerankConfig(weight=1.0, class_strength=0.0),
        "rerank w=1, propagation only": RerankConfig(
            weight=1.0, class_strength=0.0, transition_strength=0.0, head_strength=0.0, head_mix=0.0
        ),
        "rerank w=0, class updates only": RerankConfig(
            weight=0.0, class_strength=args.class_strength, head_strength=0.0, head_mix=0.0
        ),
        "rerank w=0, head refit only": RerankConfig(weight=0.0, class_strength=0.0, transition_strength=0.0),
    }
    for name, cfg in ablations.items():

        def fn0(d, dec, cfg=cfg):
            r = rr.rerank({rr.sample_ids[i]: v for i, v in dec.items()}, cfg)
            return r["mislabel_score"], r["label_distribution"]

        methods[name] = fn0
    try:
        from cleanlab.rank import get_label_quality_scores

        probs = np.stack(scores["target_probs"].to_numpy()).astype(np.float64)
        quality = get_label_quality_scores(given, probs, method="self_confidence")
        methods["cleanlab self_confidence"] = lambda d, dec: (1.0 - quality, probs)
    except ImportError:
        print("cleanlab not installed: its row is left out")

    rows, curves = [], {}
    for name, fn in methods.items():
        t0 = time.perf_counter()
        res = simulate(fn, n, args.batch, checkpoints, crowd, wrong, given)
        took = time.perf_counter() - t0
        curves[name] = [(r["reviewed"], r["errors_found"]) for r in res if r.get("curve")]
        for r in res:
            if r.get("curve") is None:
                rows.append({"method": name, **{k: v for k, v in r.items() if k != "curve"}})
        print(f"{name}: {took:.1f} s")

    table = pd.DataFrame(rows)
    static = table[table.method == "static"].set_index("reviewed")["errors_found"]
    table["vs_static"] = [f / static[r] - 1 for f, r in zip(table.errors_found, table.reviewed)]
    print(table.to_string(index=False))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "curves": curves}, indent=1))
    if args.md:
        args.md.write_text(to_markdown(table))
    if args.plot:
        plot(curves, wrong.sum(), args.plot)


def to_markdown(table: pd.DataFrame) -> str:
    lines = [
        "| queue | reviewed | real errors found | vs static | suggestion right (undecided errors) | best other class right |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.method} | {r.reviewed:,} | {r.errors_found:,} | {r.vs_static:+.1%} | {r.sugg_acc:.1%} | {r.other_acc:.1%} |"
        )
    return "\n".join(lines) + "\n"


def plot(curves: dict, total: int, path: Path) -> None:
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
    ax.set_title("Simulated curator, FERPlus Training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
