"""Ambiguity-score variants on stored runs: Spearman with the true ambiguity, one column per run
(the comparison behind the ambiguity score of 2026-12-05, docs/robustness.md section 10).

Usage: python bench/ambiguity_variants.py RUN_DIR LABELS_CSV [RUN_DIR LABELS_CSV ...]

Every variant is computed from the run's stored outputs (``scores.parquet``: target_probs,
aux_consensus, label_distribution, uncertainty, neighbours); no model is run. Truth per face:
``ambiguity`` (a synthetic set's labels.csv, the entropy of its true class posterior) or
``vote_entropy`` (a FERPlus labels.csv or a flip suite's train.csv); faces without it are left
out. Also prints, per run, the share of the faces not ``likely_mislabeled`` at or above the
``ambiguous`` threshold, for the score before and after.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from curate import metrics, records
from curate.benchmark.matching import rows_by_path
from curate.scoring.scores import ScoreConfig, ambiguity_score, class_mean, face_ambiguity, model_view, neighbour_mean


def truth_for(scores: pd.DataFrame, labels_csv: Path) -> np.ndarray:
    """(N,) the true ambiguity of each scored face (NaN where unknown), matched by resolved path."""
    table = pd.read_csv(labels_csv)
    column = "ambiguity" if "ambiguity" in table else "vote_entropy"
    rows = rows_by_path(scores["filepath"], table["path"], labels_csv.parent)
    if (rows < 0).any():
        raise SystemExit(f"{labels_csv}: {(rows < 0).sum()} scored faces are not in this table")
    return table[column].to_numpy(dtype=float)[rows]


def stored_outputs(scores: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(label_distribution (N, C), the model's view (N, C): target + consensus where stored,
    given (N,) int, neighbour rows (N, k) int) of one run's scores, in float64."""
    dist = records.vectors(scores, "label_distribution").astype(np.float64)
    target = records.vectors(scores, "target_probs").astype(np.float64)
    aux = records.vectors(scores, "aux_consensus").astype(np.float64)
    view = model_view(target, aux if np.isfinite(aux).all() else None)
    given = scores["given_label"].to_numpy(dtype=np.int64)
    return dist, view, given, records.neighbour_rows(scores["sample_id"], scores["neighbors"])


def variants(scores: pd.DataFrame) -> dict[str, np.ndarray]:
    """name -> (N,) ambiguity variant, from one run's stored outputs; the shipped one is
    :func:`curate.scoring.scores.ambiguity_score` with the default weights."""
    dist, view, given, knn = stored_outputs(scores)
    sigma = scores["uncertainty"].to_numpy(dtype=np.float64)
    C = dist.shape[1]
    believed = dist.argmax(axis=1)
    overturned = 1.0 - dist[np.arange(len(given)), given]

    def pool(x: np.ndarray) -> np.ndarray:
        return 0.5 * x + 0.5 * neighbour_mean(x, knn)

    by_given, by_belief = class_mean(overturned, given, C), class_mean(overturned, believed, C)
    both = (by_given + by_belief) / 2
    old_face = pool((face_ambiguity(dist) + 1 - sigma) / 2)
    new_face = pool(face_ambiguity(view))
    shipped = ambiguity_score(given, dist, view, knn, ScoreConfig()).astype(np.float64)
    with_doubt = pool((face_ambiguity(view) + 1 - sigma) / 2)
    three = pool((face_ambiguity(dist) + face_ambiguity(view) + 1 - sigma) / 3)
    return {
        "before 2026-12-05: spread(dist), 1-sigma + class by given": (old_face + by_given) / 2,
        "spread(dist), 1-sigma + class by given and belief": (old_face + both) / 2,
        "spread(dist), 1-sigma, no class term": old_face,
        "spread(view) alone": new_face,
        "spread(view) + class by given": (new_face + by_given) / 2,
        "spread(view) + class by belief": (new_face + by_belief) / 2,
        "shipped: spread(view) + class by given and belief": shipped,
        "spread(view), 1-sigma + class by belief": (with_doubt + by_belief) / 2,
        "spread(dist), spread(view), 1-sigma + class by belief": (three + by_belief) / 2,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs", nargs="+", help="RUN_DIR LABELS_CSV, repeated")
    ap.add_argument("--threshold", type=float, nargs=2, default=(0.6, 0.7), help="before / shipped ambiguous threshold")
    args = ap.parse_args()
    if len(args.pairs) % 2:
        raise SystemExit("pass RUN_DIR LABELS_CSV pairs")
    table: dict[str, list[float]] = {}
    names, shares = [], []
    for run, labels in zip(args.pairs[::2], args.pairs[1::2], strict=True):
        run_dir = Path(run)
        scores = records.read_scores(run_dir / "scores.parquet")
        truth = truth_for(scores, Path(labels))
        known = ~np.isnan(truth)
        found = variants(scores)
        for name, v in found.items():
            table.setdefault(name, []).append(metrics.spearman(v[known], truth[known]))
        rest = scores["verdict"].to_numpy() != "likely_mislabeled"
        before, after = found[next(iter(found))], found["shipped: spread(view) + class by given and belief"]
        shares.append((np.mean(rest & (before >= args.threshold[0])), np.mean(rest & (after >= args.threshold[1]))))
        names.append(f"{run_dir.parent.name}/{run_dir.name}")
    print("| variant | " + " | ".join(names) + " | mean |")
    print("|---" * (len(names) + 2) + "|")
    for name, values in table.items():
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + f" | {np.mean(values):.3f} |")
    t0, t1 = args.threshold
    print(f"\nfaces not likely_mislabeled marked by the threshold, before (>= {t0:g}) / shipped (>= {t1:g}):")
    for name, (b, a) in zip(names, shares, strict=True):
        print(f"  {name}: {b:.3f} / {a:.3f}")


if __name__ == "__main__":
    main()
