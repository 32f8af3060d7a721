"""Rules for the ``ambiguous`` verdict on stored runs: how big a queue each makes and how many of
its faces are truly ambiguous (docs/small-data.md, "The ambiguous verdict").

Usage: python bench/ambiguous_queue.py SCORES LABELS_CSV [SCORES LABELS_CSV ...]

SCORES is a run directory (its ``scores.parquet``) or a scores parquet written by ``curate score``;
LABELS_CSV as in ``bench/ambiguity_variants.py`` (true ambiguity per face). Every rule reads the
stored outputs and the stored ``likely_mislabeled`` verdicts (no model is run) and marks faces
among the rest. Per rule and run: the share of all faces marked ambiguous; the faces not ``ok``
as a multiple of the estimated noise rate (the share ``likely_mislabeled``); precision, the share
of the marked faces in the top quartile of the true ambiguity, against that share among the faces
left ``ok``; recall, the share of the rest's top-quartile faces marked.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from ambiguity_variants import stored_outputs, truth_for

from curate import records
from curate.flags import FlagRule, top_two_close
from curate.scoring.scores import ScoreConfig, ambiguity_score

SHIPPED = FlagRule()


def rules(scores: pd.DataFrame) -> dict[str, np.ndarray]:
    """rule name -> (N,) bool, before the ``likely_mislabeled`` faces are taken out."""
    dist, view, given, knn = stored_outputs(scores)
    amb = ambiguity_score(given, dist, view, knn, ScoreConfig()).astype(np.float64)
    high, r = amb >= SHIPPED.ambiguity_threshold, SHIPPED.top2_ratio
    close_dist, close_view = top_two_close(dist, r), top_two_close(view, r)
    return {
        f"shipped: score >= {SHIPPED.ambiguity_threshold:g} or top two close (>= {r:g}) in the belief": high
        | close_dist,
        "score alone": high,
        "score >= 0.65 alone": amb >= 0.65,
        "top two close in the belief at 0.8": high | top_two_close(dist, 0.8),
        "top two close in the model's view": high | close_view,
        "top two close in both": high | (close_dist & close_view),
        "top two close in the belief and score >= 0.6": high | (close_dist & (amb >= 0.6)),
    }


def judge(marked: np.ndarray, mislabeled: np.ndarray, truth: np.ndarray) -> tuple[float, ...]:
    """(share marked, not-ok / estimated noise, precision, precision among ok faces, recall)."""
    rest = ~mislabeled
    marked = marked & rest
    top = truth >= np.nanquantile(truth, 0.75)
    known = ~np.isnan(truth)
    ok = rest & ~marked

    def share(where: np.ndarray) -> float:
        return float(top[where & known].mean()) if (where & known).any() else float("nan")

    ratio = (1 - ok.mean()) / mislabeled.mean() if mislabeled.any() else float("nan")
    return marked.mean(), ratio, share(marked), share(ok), float(marked[rest & top & known].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs", nargs="+", help="SCORES LABELS_CSV, repeated")
    args = ap.parse_args()
    if len(args.pairs) % 2:
        raise SystemExit("pass SCORES LABELS_CSV pairs")
    rows: dict[str, list[str]] = {}
    names = []
    for where, labels in zip(args.pairs[::2], args.pairs[1::2], strict=True):
        path = Path(where)
        scores = records.read_scores(path / "scores.parquet" if path.is_dir() else path)
        truth = truth_for(scores, Path(labels))
        mislabeled = scores["verdict"].to_numpy() == "likely_mislabeled"
        found = rules(scores)
        for name, marked in found.items():
            m, ratio, p, p_ok, rec = judge(marked, mislabeled, truth)
            rows.setdefault(name, []).append(f"{m:.3f} / {ratio:.2f}x / {p:.2f} ({p_ok:.2f}) / {rec:.2f}")
        names.append(path.stem if path.suffix else f"{path.parent.name}/{path.name}")
    print("ambiguous share / not ok per estimated noise / precision (among ok) / recall\n")
    print("| rule | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for name, cells in rows.items():
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
