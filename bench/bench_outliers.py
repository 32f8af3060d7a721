"""Outlier score against planted outliers: AUROC overall and per planted kind, with a plot.

    python bench/bench_outliers.py SCORES.parquet PLANTED_LABELS.csv [--plot docs/outliers.png]

PLANTED_LABELS.csv is the CSV the scores were made from, with a column ``planted`` (empty for a
real face, else the kind: constant, noise, digit). Reports the AUROC of ``outlier_score`` (planted
= positive) over all faces and for each kind against the real faces, and the same for the
embedding part alone (recomputed from the embeddings side file with the run's k), so the pixel
checks' share is visible, and for the rejected k-neighbour distance.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

from curate.benchmark.matching import rows_by_path
from curate.neighbors import knn
from curate.records import load_embeddings, read_scores
from curate.scoring.issues import OUTLIER_FLAG, class_distance, embedding_outlier_score
from curate.scoring.pipeline import class_means


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scores", type=Path)
    ap.add_argument("labels", type=Path)
    ap.add_argument("--plot", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    df = read_scores(args.scores, columns=["sample_id", "filepath", "outlier_score", "duplicate_group", "given_label"])
    planted = pd.read_csv(args.labels, keep_default_na=False)
    rows = rows_by_path(df["filepath"], planted["path"], args.labels.parent)
    if (rows < 0).any():
        raise SystemExit(f"{args.labels}: {(rows < 0).sum()} scored faces are not in this table")
    kind = planted["planted"].to_numpy(dtype=object)[rows]
    k = int(df.attrs.get("score_config", {}).get("k", 10))
    emb = np.asarray(load_embeddings(args.scores), dtype=np.float32)
    given = df["given_label"].to_numpy().astype(np.int64)
    emb_score = embedding_outlier_score(class_distance(emb, class_means(emb, given, int(given.max()) + 1)))
    # the first candidate, measured and rejected: mean cosine distance to the k neighbours (exact copies left out)
    res = knn(emb, k=k, index="flat")
    group = df["duplicate_group"].to_numpy()
    found = res.indices >= 0
    same = found & (group[:, None] >= 0) & (group[np.maximum(res.indices, 0)] == group[:, None])
    knn_dist = np.where(found & ~same, 1.0 - res.similarities, np.nan)
    with np.errstate(invalid="ignore"):
        knn_score = embedding_outlier_score(np.nanmean(knn_dist, axis=1))
    score = df["outlier_score"].to_numpy()
    real = kind == ""
    out: dict = {"faces": len(df), "real": int(real.sum()), "planted": {}, "k": k}
    for name, s in (("outlier_score", score), ("embedding_only", emb_score), ("knn_distance_rejected", knn_score)):
        out[name] = {"auroc_all": round(float(roc_auc_score(~real, s)), 4)}
        for kd in sorted(set(kind) - {""}):
            m = real | (kind == kd)
            out[name][f"auroc_{kd}"] = round(float(roc_auc_score(kind[m] == kd, s[m])), 4)
        out[name]["flagged_real"] = int((s[real] >= OUTLIER_FLAG).sum())
        out[name]["flagged_planted"] = int((s[~real] >= OUTLIER_FLAG).sum())
    out["planted"] = {kd: int((kind == kd).sum()) for kd in sorted(set(kind) - {""})}
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for name, s, style in (("outlier_score", score, "-"), ("embedding part only", emb_score, "--")):
            fpr, tpr, _ = roc_curve(~real, s)
            auc = roc_auc_score(~real, s)
            axes[0].plot(fpr, tpr, style, label=f"{name} (AUROC {auc:.3f})")
        axes[0].plot([0, 1], [0, 1], ":", color="grey")
        axes[0].set(xlabel="false positive rate (real faces)", ylabel="true positive rate (planted)",
                    title=f"{int((~real).sum())} planted outliers among {int(real.sum())} real faces")  # fmt: skip
        axes[0].legend(loc="lower right", fontsize=8)
        bins = np.linspace(0, 1, 41)
        axes[1].hist(score[real], bins=bins, alpha=0.6, label="real faces", log=True)
        for kd in sorted(set(kind) - {""}):
            axes[1].hist(score[kind == kd], bins=bins, alpha=0.6, label=f"planted: {kd}", log=True)
        axes[1].axvline(OUTLIER_FLAG, color="k", lw=0.8)
        axes[1].set(xlabel="outlier_score", ylabel="faces (log)", title="outlier_score by kind")
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=90)


if __name__ == "__main__":
    main()
