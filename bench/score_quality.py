"""Detection quality of one existing run's scores against the FERPlus crowd (the real-noise benchmark).

Usage: python bench/score_quality.py RUN_DIR [--labels ../shared/data/ferplus/labels.csv]
(use the ferplus-mini labels.csv for a run on the mini set)

The same figures as ``curate bench`` reports for its DMUE stage (``curate.benchmark.signals`` and
``report``): AUROC / AP / precision@k / FNR at the noise-rate budget / flag precision and recall /
suggestion accuracy (on the flagged faces, and over all true errors) for the shipped ``mislabel_score`` and each signal alone, and the Spearman
correlations with the vote entropy, and per given class the mean target p[given] and the share of
its correctly labelled faces flagged. Truth: ``label_disagrees == 1`` (rows with -1 excluded); a flip
suite's ``OUT/SETTING/train.csv`` passed as --labels judges against its flips.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from curate import records
from curate.benchmark.flip_suite import flag_summary
from curate.benchmark.report import (
    ambiguity_rows,
    ambiguity_table,
    cell,
    detection_rows,
    detection_table,
    fer2013_to_run,
    truth_of_faces,
)
from curate.benchmark.signals import run_signals


def suggestion_line(signals: dict[str, np.ndarray], crowd: np.ndarray, errors: np.ndarray) -> str:
    """How often the suggested label is the crowd's (``crowd``, in the run's class order) on the true
    errors (``errors``, (N,) bool, at least one): over all of them, and over those in the review queue
    (verdict not ``ok``; a face left ``ok`` is suggested its given label)."""
    right = signals["suggested_label"] == crowd
    queued = errors & signals["in_queue"]
    in_queue = f"{right[queued].mean():.3f}" if queued.any() else "-"
    return (
        f"suggested label = the crowd's on {right[errors].mean():.3f} of the {errors.sum()} true errors "
        f"(all of them, flagged or not); {queued.sum() / errors.sum():.3f} of them are in the queue "
        f"(verdict not ok), the suggestion right on {in_queue} of those"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument(
        "--labels", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/ferplus/labels.csv"
    )
    args = ap.parse_args()
    if not (args.run_dir / "scores.parquet").exists():
        raise SystemExit(
            f"{args.run_dir} holds no scores.parquet: pass a `curate run --out` folder "
            "(for a `curate bench --out OUT` run: OUT/dmue/run)"
        )
    ids = records.read_scores(args.run_dir / "scores.parquet")["sample_id"]
    truth = truth_of_faces(ids, args.labels)
    # ferplus_label counts in FER2013's class order; the run's suggested labels in its own order and spelling
    run_classes = json.loads((args.run_dir / "classes.json").read_text())
    try:
        truth["ferplus_label"] = fer2013_to_run(truth["ferplus_label"].to_numpy(), run_classes)
    except ValueError as err:
        raise SystemExit(f"{args.run_dir}: {err}") from None
    signals = run_signals(args.run_dir, ids)
    results = {"stages": {"dmue": ({}, signals)}, "truth": truth}
    wrong = truth["label_disagrees"].to_numpy()
    print(
        f"{len(ids)} faces, {(wrong >= 0).sum()} with a crowd plurality, {(wrong == 1).sum() / (wrong >= 0).sum():.1%} mislabeled\n"
    )
    errors = wrong == 1
    if errors.any():
        print("\n".join(detection_table(detection_rows(results))))
        print("\n" + suggestion_line(signals, truth["ferplus_label"].to_numpy(), errors))
    else:  # e.g. a flip suite's clean setting
        print("No face is mislabeled by this truth: no AUROC, AP or suggestion figures; flags and classes below.")
    print("\nAmbiguity, Spearman with the vote entropy:\n")
    print("\n".join(ambiguity_table(ambiguity_rows(results))))
    print("\n".join(class_table(signals, truth, run_classes)))


def class_table(signals: dict[str, np.ndarray], truth: pd.DataFrame, classes: list[str]) -> list[str]:
    """The flagged share against the true rate, then per given class: faces, the share wrong, mean
    target p[given label], and the share of its correctly labelled faces flagged ``likely_mislabeled``
    (issue 20's class goal: <= 15 %). ``signals``: ``run_signals`` of the faces in ``truth``'s rows."""
    given, flag = signals["given_label"], signals["flag"]
    p_given = 1 - signals["one_minus_p_given"]
    flags = flag_summary(flag, truth, given, classes)
    disagrees = truth["label_disagrees"].to_numpy()
    ratio = f" ({flags['share_over_true']:.2f}x the true rate)" if flags["share_over_true"] is not None else ""
    lines = [f"\nflagged likely_mislabeled: {flags['share']:.3f} of the faces{ratio}, precision "
             f"{cell(flags['precision'])}, recall {cell(flags['recall'])}\n\nPer given class:\n",
             "| class | faces | share wrong (truth) | mean target p[given] | correct faces flagged |",
             "|---|---|---|---|---|"]  # fmt: skip
    for c, name in enumerate(classes):
        mine = given == c
        if not mine.any():
            continue
        known = mine & (disagrees >= 0)
        wrong = cell(np.mean(disagrees[known] == 1) if known.any() else None, ".2f")
        correct = cell(flags["correct_flagged_by_class"].get(name), ".2f")
        lines.append(f"| {name} | {mine.sum()} | {wrong} | {p_given[mine].mean():.3f} | {correct} |")
    return lines


if __name__ == "__main__":
    main()
