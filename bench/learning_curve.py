"""One learning curve from several suite runs: AUROC / AP against the number of faces, every
curve the runs hold (docs/small-data.md, "Learning curve").

Usage: python bench/learning_curve.py CURVE_JSON [CURVE_JSON ...] [--whole RESULTS_JSON]
       [--run CURVE=RUN_DIR ...] [--labels CSV] [--out-md FILE] [--out-png FILE]

CURVE_JSON: a ``curate bench --suite curve`` record (``OUT/curve.json``). Where two runs measured
the same size, each keeps its own row in the table (their subsets are drawn on their own) and the
plot shows the latest run's points for that size, so that the curves at one size always compare
models trained on the same faces; a curve the latest run lacks is taken from the latest earlier
run of that size that has it (only the whole split, where every run has the same faces, has such
a mix). ``--whole``: a main-suite record (``curate bench``'s ``results.json``) for the point of the
whole Training split (DMUE from scratch, cleanlab and FiftyOne mistakenness; its own epochs).
``--run``: ``curate run`` folders that scored the same faces, one per curve (e.g.
``--run dmue=RUN --run dmue_warm=WARM_RUN``), judged against ``--labels`` (the FERPlus crowd) as
one row. Every row names the run it came from.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from curate import metrics, records
from curate.benchmark.curve_suite import CURVES, plot
from curate.benchmark.report import CLEANLAB_METHOD, DMUE_METHOD, FIFTYONE_METHOD, mislabel_truth, truth_of_faces

WHOLE = {"dmue": DMUE_METHOD, "cleanlab": CLEANLAB_METHOD, "mistakenness": FIFTYONE_METHOD}


def rows_of_curve(path: Path) -> list[dict[str, Any]]:
    """One row per size of a curve-suite record, each naming the run (its date and epochs)."""
    record = json.loads(path.read_text())
    run = f"curve suite {record['date']}, {record['config']['epochs']} epochs"
    return [{**s, "size": int(n), "run": run, "date": record["date"]} for n, s in record["sizes"].items()]


def row_of_whole(path: Path) -> dict[str, Any]:
    """The whole-Training row of a main-suite record."""
    record = json.loads(path.read_text())
    found = {d["method"]: d for d in record["detection"]}
    missing = [m for m in WHOLE.values() if m not in found]
    if missing:
        raise SystemExit(f"{path}: no detection row for {missing}")
    return {
        "size": int(record["faces"]),
        "run": f"main suite {record['date']}, {record['config']['epochs']} epochs",
        "date": record["date"],
        "true_rate": None,
        "auroc": {c: found[m]["auroc"] for c, m in WHOLE.items()},
        "ap": {c: found[m]["ap"] for c, m in WHOLE.items()},
    }


def row_of_runs(runs: dict[str, Path], labels_csv: Path) -> dict[str, Any]:
    """One row from ``curate run`` folders ({curve: RUN_DIR}) that scored the same faces: AUROC / AP
    of each run's ``mislabel_score`` against the crowd in ``labels_csv``; named by the latest scoring
    date and the runs' epochs."""
    unknown = sorted(set(runs) - set(CURVES))
    if unknown:
        raise SystemExit(f"--run: unknown curve {unknown}; one of {list(CURVES)}")
    ids, auroc, ap, dates, epochs = None, {}, {}, [], set()
    for curve, run_dir in runs.items():
        scores = records.read_scores(run_dir / "scores.parquet", columns=["sample_id", "mislabel_score"])
        if ids is None:
            ids = scores["sample_id"]
            known, wrong = mislabel_truth(truth_of_faces(ids, labels_csv))
        elif not scores["sample_id"].equals(ids):
            raise SystemExit(
                f"--run {curve}={run_dir} scored other faces than the first --run: one row is one set of faces"
            )
        score = scores["mislabel_score"].to_numpy()[known]
        auroc[curve], ap[curve] = metrics.auroc(wrong, score), metrics.average_precision(wrong, score)
        dates.append(scores.attrs["created"][:10])  # read_scores keeps the file's metadata in attrs
        epochs.add(yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["epochs"])
    date = max(dates)
    run = f"curate run {date}, {'/'.join(str(e) for e in sorted(epochs))} epochs"
    return {"size": len(ids), "run": run, "date": date, "true_rate": float(np.mean(wrong)), "auroc": auroc, "ap": ap}


def markdown(rows: list[dict[str, Any]]) -> str:
    curves = [c for c in CURVES if any(c in r["auroc"] for r in rows)]
    lines = [
        "| faces | run | " + " | ".join(f"{CURVES[c]} AUROC / AP" for c in curves) + " |",
        "|---|---|" + "---|" * len(curves),
    ]
    for r in rows:
        cells = [f"{r['auroc'][c]:.3f} / {r['ap'][c]:.3f}" if c in r["auroc"] else "—" for c in curves]
        lines.append(f"| {r['size']:,} | {r['run']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plotted_points(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The rows as one record for ``curve_suite.plot``: per size and curve, the latest run's point."""
    points: dict[int, dict[str, dict[str, float]]] = {}
    for r in sorted(rows, key=lambda r: r["date"], reverse=True):
        point = points.setdefault(r["size"], {"auroc": {}, "ap": {}})
        for curve in r["auroc"]:
            if curve not in point["auroc"]:
                point["auroc"][curve], point["ap"][curve] = r["auroc"][curve], r["ap"][curve]
    return {"sizes": {str(n): points[n] for n in sorted(points)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("curves", nargs="+", type=Path, help="curve-suite records (OUT/curve.json)")
    ap.add_argument("--whole", type=Path, help="a main-suite results.json: the whole-Training point")
    ap.add_argument("--run", action="append", default=[], metavar="CURVE=RUN_DIR",
                    help="a curate run folder as one curve's point (repeat: one row)")  # fmt: skip
    ap.add_argument(
        "--labels", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/ferplus/labels.csv"
    )
    ap.add_argument("--out-md", type=Path, help="write the table here (default: print it)")
    ap.add_argument("--out-png", type=Path, help="write the plot here")
    args = ap.parse_args()
    rows = [row for path in args.curves for row in rows_of_curve(path)]
    if args.whole:
        rows.append(row_of_whole(args.whole))
    if args.run:
        pairs = [r.split("=", 1) for r in args.run]
        if any(len(p) != 2 for p in pairs):
            raise SystemExit(f"--run takes CURVE=RUN_DIR, not {args.run}")
        rows.append(row_of_runs({c: Path(d) for c, d in pairs}, args.labels))
    rows.sort(key=lambda r: (r["size"], r["run"]))
    text = markdown(rows)
    if args.out_md:
        head = "# Learning curve: every run\n\nAUROC / AP against the crowd, by `python bench/learning_curve.py`.\n\n"
        args.out_md.write_text(head + text)
    print(text)
    if args.out_png:
        runs = sorted({r["run"] for r in rows})
        sources = textwrap.fill("; ".join(runs), width=120)  # one line per 120 characters: the figure is 10 in wide
        plot(plotted_points(rows), args.out_png, f"Label-error detection against dataset size\n({sources})")


if __name__ == "__main__":
    main()
