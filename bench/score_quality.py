"""Detection quality of a run's scores against the FERPlus crowd (the real-noise benchmark).

Usage: python bench/score_quality.py RUN_DIR [--labels ../shared/data/ferplus/labels.csv]

Truth: ``label_disagrees == 1`` (FER2013 label != FERPlus plurality; rows with -1 excluded) for
"mislabeled", ``vote_entropy`` for ambiguity. Prints AUROC / AP / precision@k / flag precision
and recall for the shipped ``mislabel_score`` and for each signal alone (ablations), Spearman
correlations with the vote entropy, and the accuracy of ``suggested_label`` on flagged faces.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from curate import metrics, records
from curate.scoring.scores import normalised_entropy
from dmue_core.trainer import load_dynamics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--labels", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/ferplus/labels.csv")
    args = ap.parse_args()
    df = records.read_scores(args.run_dir / "scores.parquet")
    truth = pd.read_csv(args.labels).set_index("path").loc[df["sample_id"]]
    given = df["given_label"].to_numpy()
    rows = np.arange(len(df))
    probs = records.vectors(df, "target_probs")
    latent = records.vectors(df, "latent_distribution")
    signals = {
        "mislabel_score (shipped)": df["mislabel_score"].to_numpy(),
        "1 - target p[given] (final model)": 1 - probs[rows, given],
        "knn_disagreement": df["knn_disagreement"].to_numpy(),
        "1 - uncertainty sigma": 1 - df["uncertainty"].to_numpy(),
        "latent peak max(latent)": latent.max(axis=1),
    }
    dyn = load_dynamics(args.run_dir)
    if len(dyn["target_prob_given"]):
        p_given = np.nanmean(np.asarray(dyn["target_prob_given"], dtype=np.float64), axis=0)
        signals["1 - mean over epochs of p[given] (dynamics)"] = 1 - np.nan_to_num(p_given, nan=0.5)
    known = truth["label_disagrees"].to_numpy() >= 0
    is_wrong = truth["label_disagrees"].to_numpy()[known] == 1
    flag = (df["verdict"] == "likely_mislabeled").to_numpy()[known]
    print(f"{len(df)} faces, {known.sum()} with a determinate crowd label, {is_wrong.mean():.1%} mislabeled")
    print("| signal | AUROC | AP | P@500 | P@2000 | FNR@noise |\n|---|---|---|---|---|---|")
    for name, s in signals.items():
        r = metrics.detection_report(is_wrong, s[known])
        print(f"| {name} | {r['auroc']:.3f} | {r['ap']:.3f} | {r['p@500']:.3f} | {r['p@2000']:.3f} | {r['fnr_at_noise_rate']:.3f} |")
    p, rc = metrics.flag_precision_recall(is_wrong, flag)
    print(f"\nflag likely_mislabeled: {flag.sum()} faces, precision {p:.3f}, recall {rc:.3f}")
    ent = truth["vote_entropy"].to_numpy(dtype=float)
    ok = ~np.isnan(ent)
    print("\nambiguity, Spearman with vote entropy:")
    for name, s in {"ambiguity_score (shipped)": df["ambiguity_score"].to_numpy(),
                    "entropy of target_probs": normalised_entropy(probs),
                    "1 - uncertainty sigma": 1 - df["uncertainty"].to_numpy()}.items():
        print(f"  {name}: {metrics.spearman(s[ok], ent[ok]):.3f}")
    crowd = truth["ferplus_label"].to_numpy()
    sel = (df["verdict"] == "likely_mislabeled").to_numpy() & (crowd >= 0)
    print(f"\nsuggested_label == FERPlus plurality on {sel.sum()} flagged faces: "
          f"{np.mean(df['suggested_label'].to_numpy()[sel] == crowd[sel]):.3f}")


if __name__ == "__main__":
    main()
