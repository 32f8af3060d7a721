"""How right the suggestions that `curate export --policy auto` accepts are, at several `--confidence` values.

Usage: python bench/export_confidence.py RUN_DIR LABELS [RUN_DIR LABELS ...] [--confidences 0.5,0.6,0.8,1.0]

LABELS holds the truth of the run's faces: a FERPlus-style ``labels.csv`` or a flip suite's
``OUT/SETTING/train.csv`` (truth: ``ferplus_label``, the crowd plurality; faces without one are left
out of the figures), or a synthetic set's ``labels.csv`` (truth: ``true_label``, in FER2013's class
order). For every run: the suggestion's accuracy on the flagged faces whose suggestion differs from
the given label, by its probability in ``label_distribution`` (the number `--confidence` compares),
then the auto export at each confidence (1.0: only certain suggestions): how many suggestions it
accepts and the share of them that are right, the faces it writes and the share of those whose
written label is not the truth. Nothing is written; each run's scores are read as the export reads them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from curate.benchmark.matching import rows_by_path
from curate.benchmark.report import fer2013_to_run, truth_of_faces
from curate.data.table import FER2013_CLASSES
from curate.export.policies import apply_policy
from curate.export.source import DecisionTable, load_scores

BINS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)


def truth_labels(table: DecisionTable, labels_csv: Path) -> np.ndarray:
    """(N,) int: each scored face's true class as an index into ``table.classes`` (-1: unknown)."""
    labels = pd.read_csv(labels_csv)
    if sorted(table.classes) != sorted(FER2013_CLASSES):
        raise SystemExit(f"{labels_csv}: the run's classes {table.classes} are not FER2013's")
    if "true_label" in labels:  # a synthetic set: FER2013's class order, paths relative to the CSV
        order = rows_by_path(table.faces["filepath"], labels["path"], labels_csv.parent)
        if (order < 0).any():
            raise SystemExit(f"{(order < 0).sum()} scored faces are not rows of {labels_csv}")
        return fer2013_to_run(labels["true_label"].to_numpy()[order], table.classes)
    truth = truth_of_faces(table.faces["sample_id"], labels_csv)
    return fer2013_to_run(truth["ferplus_label"].to_numpy(), table.classes)


def calibration(table: DecisionTable, truth: np.ndarray) -> list[tuple[float, int, float | None]]:
    """Per probability bin [lo, next lo): (lo, faces, share whose suggestion is the truth), over the
    flagged faces (verdict not ok) with a known truth whose suggestion differs from the given label."""
    f = table.faces
    given, suggested = f["given_label"].to_numpy(), f["suggested_label"].to_numpy()
    p = table.distribution[np.arange(len(f)), suggested.clip(0)]
    pool = (f["verdict"].to_numpy() != "ok") & (suggested >= 0) & (suggested != given) & (truth >= 0)
    out = []
    for lo, hi in zip(BINS[:-1], BINS[1:], strict=True):
        m = pool & (p >= lo) & ((p < hi) if hi < 1.0 else (p <= hi))
        out.append((lo, int(m.sum()), float((suggested[m] == truth[m]).mean()) if m.any() else None))
    return out


def export_row(table: DecisionTable, truth: np.ndarray, confidence: float) -> dict[str, float | int | None]:
    """The auto export at ``confidence`` judged against ``truth`` (faces without one left out)."""
    cleaned = apply_policy(table, "auto", confidence=confidence)
    label, action = cleaned.faces["clean_label"].to_numpy(), cleaned.faces["action"].to_numpy()
    known = truth >= 0
    accepted, written = (action == "accept_suggestion") & known, (label >= 0) & known
    return {
        "accepted": int((action == "accept_suggestion").sum()),
        "accepted_right": float((label[accepted] == truth[accepted]).mean()) if accepted.any() else None,
        "written": int((label >= 0).sum()),
        "written_noise": float((label[written] != truth[written]).mean()) if written.any() else None,
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f} %"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs", nargs="+", help="RUN_DIR LABELS, repeated")
    ap.add_argument("--confidences", default="0.5,0.6,0.8,1.0")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    if len(args.pairs) % 2:
        raise SystemExit("pass RUN_DIR LABELS pairs")
    confidences = [float(c) for c in args.confidences.split(",")]
    header = " | ".join(f"confidence {c}" for c in confidences)
    calib_rows, export_rows, record = [], [], {}
    for run, labels in zip(args.pairs[::2], args.pairs[1::2], strict=True):
        table = load_scores(Path(run) / "scores.parquet")
        truth = truth_labels(table, Path(labels))
        known = truth >= 0
        noise = float((table.faces["given_label"].to_numpy()[known] != truth[known]).mean())
        cal = calibration(table, truth)
        rows = [export_row(table, truth, c) for c in confidences]
        record[run] = {
            "labels": labels,
            "noise": noise,
            "calibration": cal,
            "export": dict(zip(map(str, confidences), rows, strict=True)),
        }
        calib_rows.append(f"| {run} | " + " | ".join(f"{n}: {_pct(acc)}" for _, n, acc in cal) + " |")
        cells = [
            f"{r['accepted']} ({_pct(r['accepted_right'])}) · {r['written']}, {_pct(r['written_noise'])}" for r in rows
        ]
        export_rows.append(f"| {run} | {_pct(noise)} | " + " | ".join(cells) + " |")
    bins = " | ".join(
        f"[{lo}, {hi})" if hi < 1 else f"[{lo}, {hi}]" for lo, hi in zip(BINS[:-1], BINS[1:], strict=True)
    )
    print("Flagged faces whose suggestion differs from the given label, by the suggestion's probability:")
    print("faces: share whose suggestion is the truth\n")
    print(f"| run | {bins} |\n|---|" + "---|" * (len(BINS) - 1))
    print("\n".join(calib_rows))
    print("\nThe auto export: suggestions accepted (share right) · faces written, share of them wrong\n")
    print(f"| run | given labels wrong | {header} |\n|---|---|" + "---|" * len(confidences))
    print("\n".join(export_rows))
    if args.json:
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
