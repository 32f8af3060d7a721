"""Re-score one run's stored outputs with a post-hoc class balance of the probabilities (tried for
issue 20, not kept: docs/robustness.md section 6) and print detection and per-class flag figures.

Usage: python bench/class_balance.py RUN_DIR --labels LABELS_CSV [--tau 0 0.5]

The balance divides the target probabilities and the auxiliary consensus by each class's share of
the given labels to the power tau and renormalises (logit adjustment, Menon et al. 2021); the noise
quota is read from the unadjusted believed distribution, so the share flagged stays the run's.
Truth: a flip-suite ``train.csv`` (columns ``label`` and ``ferplus_label``: wrong where the given
name is not the crowd's class) or a FERPlus ``labels.csv`` (``label_disagrees``; -1 rows left out).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from curate import metrics, records
from curate.data.table import FER2013_CLASSES
from curate.flags import decide
from curate.scoring.scores import ScoreConfig, compute_scores


def balanced(probs: np.ndarray, given: np.ndarray, tau: float) -> np.ndarray:
    """(N, C) rows of ``probs`` divided by the given-label shares ** tau, renormalised."""
    share = np.bincount(given, minlength=probs.shape[1]) / len(given)
    p = probs / np.maximum(share, 1e-6) ** tau
    return p / p.sum(axis=1, keepdims=True)


def truth_of(scores: pd.DataFrame, labels_csv: Path) -> np.ndarray:
    """(N,) 1 wrong, 0 right, -1 unknown, in the order of ``scores``."""
    t = pd.read_csv(labels_csv)
    if not scores["filepath"].isin(t["path"]).all():
        t["path"] = [str((labels_csv.parent / p).resolve()) for p in t["path"]]
    t = t.set_index("path").loc[scores["filepath"]]
    if "label" in t and "ferplus_label" in t:  # flip suite: crowd class ids in FER2013's order
        given = np.array([FER2013_CLASSES.index(c) for c in t["label"]])
        return np.where(t["ferplus_label"] < 0, -1, (given != t["ferplus_label"]).astype(int))
    return t["label_disagrees"].to_numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--labels", type=Path, required=True)
    ap.add_argument("--tau", type=float, nargs="+", default=[0.0, 0.5])
    args = ap.parse_args()
    s = records.read_scores(args.run_dir / "scores.parquet")
    classes = json.loads((args.run_dir / "classes.json").read_text())
    wrong = truth_of(s, args.labels)
    known = wrong >= 0
    given = s["given_label"].to_numpy(np.int64)
    knn = records.neighbour_rows(s["sample_id"], s["neighbors"])
    tp, cs, latent = (np.stack(s[c].to_numpy()) for c in ("target_probs", "aux_consensus", "latent_distribution"))
    sigma = s["uncertainty"].to_numpy()
    raw = compute_scores(given, tp, latent, sigma, knn, ScoreConfig(), cs)
    print("tau  AUROC  AP     flagged precision recall worst-class(correct flagged) min-class-p[given]")
    for tau in args.tau:
        sc = compute_scores(
            given, balanced(tp, given, tau), latent, sigma, knn, ScoreConfig(), balanced(cs, given, tau)
        )
        verdict, _, _ = decide(given, sc["label_distribution"], sc["mislabel_score"], sc["ambiguity_score"],
                               sc["knn_disagreement"], classes, noise_probs=raw["mixed_distribution"])  # fmt: skip
        flag, w, g, ms = verdict[known] == "likely_mislabeled", wrong[known], given[known], sc["mislabel_score"][known]
        both = 0 < w.sum() < len(w)
        auroc = metrics.auroc(w, ms) if both else float("nan")
        ap_ = metrics.average_precision(w, ms) if both else float("nan")
        per_class = [
            flag[(g == c) & (w == 0)].mean() if ((g == c) & (w == 0)).any() else 0.0 for c in range(len(classes))
        ]
        worst = int(np.argmax(per_class))
        p_given = balanced(tp, given, tau)[np.arange(len(given)), given]
        min_p = min(p_given[given == c].mean() for c in np.unique(given))
        prec = w[flag].mean() if flag.any() else float("nan")
        print(f"{tau:<4g} {auroc:.3f}  {ap_:.3f}  {flag.mean():.3f}   {prec:.3f}     {flag[w == 1].mean() if w.any() else float('nan'):.3f}  "
              f"{per_class[worst]:.2f} ({classes[worst]})  {min_p:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
