"""The verdicts of `curate run`'s defaults on synthetic faces with known flips: a second kind of data
for the flag count and the per-class behaviour that the flip suite measures on FERPlus faces.

Usage: python bench/synthetic_flips.py --out OUT [--faces 4000] [--rates 0.1,0.2,0.4]
       [--kinds uniform,confusable] [--shares longtail,balanced] [--classes happy,sad,neutral]
       [--jobs 2] [-- EXTRA curate run flags]

Every setting is a synthetic set (``curate.data.synthetic``: 48 px cartoon faces whose true class,
true ambiguity and flips are known) of ``--faces`` faces with one class mix and one kind and rate of
flips, plus a clean set per mix. Mixes: ``balanced`` (equal classes) and ``longtail`` (the class
shares of the flip suite's 5,000 FERPlus Training faces: disgust 0.7 %, fear 2.4 %, neutral 35 %),
where a rare class is still easy to tell apart, unlike FER2013's disgust. ``--classes`` draws the
faces of other classes (any of FER2013's seven, e.g. three; balanced mix only). Flips: ``uniform`` (any
other class) or ``confusable`` (the nearest other prototype, a face's most confusable class). The
same faces in every setting of a mix (seed 0); only the flips differ.

Each set is scored by `curate run DATA --no-load` with its defaults (at 4,000 faces: 20 epochs,
flag count from 3 cross-fitted fold models; docs/small-data.md), ``--jobs`` runs at a time with one
thread each; a finished run is reused, an interrupted one resumes. Written: ``OUT/synthetic_flips.md``
and ``.json``: AUROC / AP of ``mislabel_score``, the share flagged against the true rate and the two
estimates it was chosen from (the full model's and the fold models'; scores metadata
``flag_count``), flag precision / recall, each class's share of its correctly labelled faces
flagged, the lowest class mean target p[given], the suggestion's accuracy on the flipped faces, and
the ambiguity score's Spearman correlation with the true ambiguity (all faces / correct faces).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from curate import metrics, records
from curate.benchmark.matching import rows_by_path
from curate.benchmark.report import write_texts
from curate.data.synthetic import generate
from curate.data.table import FER2013_CLASSES
from curate.expression_names import ids_in

#: faces per class of the flip suite's 5,000 FERPlus Training faces (crowd plurality, seed 0;
#: docs/robustness.md §7), in FER2013's class order
LONGTAIL = (448, 33, 121, 1384, 635, 631, 1748)
MIXES = {"balanced": None, "longtail": LONGTAIL}
KINDS = ("uniform", "confusable")


def settings(mixes: list[str], kinds: list[str], rates: list[float]) -> list[tuple[str, str, str, float]]:
    """(name, mix, kind, rate) of every setting, each mix's clean set first."""
    out = []
    for mix in mixes:
        out.append((f"{mix}-clean", mix, "uniform", 0.0))
        out += [(f"{mix}-{kind}-{rate:g}", mix, kind, rate) for kind in kinds for rate in rates]
    return out


def _curate(args: list[str], log: Path) -> None:
    """Run one `curate` command with one thread, its output in ``log``; raise if it fails."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(log, "a") as fh:
        done = subprocess.run([sys.executable, "-m", "curate", *args], stdout=fh, stderr=subprocess.STDOUT, env=env)
    if done.returncode:
        raise RuntimeError(f"curate {args[0]} failed (exit {done.returncode}); see {log}")


def run_curate(labels_csv: Path, run: Path, extra: list[str]) -> None:
    """`curate run LABELS_CSV --no-load --out RUN EXTRA`, unless RUN is scored (an interrupted run resumes)."""
    run.parent.mkdir(parents=True, exist_ok=True)
    if not (run / "scores.parquet").exists():
        _curate(["run", str(labels_csv), "--no-load", "--out", str(run), *extra], run.parent / f"{run.name}.log")


def run_setting(
    out: Path, name: str, mix: str, kind: str, rate: float, faces: int, classes: list[str], extra: list[str]
) -> None:
    """Write the setting's faces, then train and score them (resumable)."""
    data = out / "data" / name
    generate(faces, data, seed=0, noise_rate=rate, noise=kind, splits={"train": 1.0},
             class_shares=MIXES[mix], classes=classes)  # fmt: skip
    run_curate(data / "labels.csv", out / "runs" / name, extra)


def _flags(flag: np.ndarray, wrong: np.ndarray, given: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Share flagged, precision, recall and each class's share of its correct faces flagged."""
    per_class = {classes[c]: float(flag[~wrong & (given == c)].mean())
                 for c in range(len(classes)) if (~wrong & (given == c)).any()}  # fmt: skip
    return {
        "share": float(flag.mean()),
        "precision": float(wrong[flag].mean()) if flag.any() else None,
        "recall": float(flag[wrong].mean()) if wrong.any() else None,
        "correct_flagged_by_class": per_class,
    }


def truth_classes(truth: pd.DataFrame) -> list[str]:
    """The classes ``true_label`` indexes: the ``votes_<class>`` columns, in order."""
    return [c.removeprefix("votes_") for c in truth.columns if c.startswith("votes_")]


def judge(out: Path, name: str) -> dict[str, Any]:
    """One setting's figures against its truth, ``OUT/data/NAME/labels.csv``: columns path, label,
    true_label (int, index into the ``votes_<class>`` columns' classes), is_noisy, ambiguity (the
    generator's; other sets may write the same columns)."""
    truth = pd.read_csv(out / "data" / name / "labels.csv")
    run = out / "runs" / name
    scores = records.read_scores(run / "scores.parquet")
    if "flag_count" not in scores.attrs:  # scored before 2026-12-05: no record of the two flag counts
        raise SystemExit(f"{run}: its scores predate the flag-count record; re-score it with "
                         f"`curate score {run} {out / 'data' / name / 'labels.csv'} --out {run / 'scores.parquet'} --force`")  # fmt: skip
    classes = json.loads((run / "classes.json").read_text())  # the run's class order (CSV: sorted names)
    made = truth_classes(truth)
    to_run = ids_in(made, classes)
    if to_run is None or len(classes) != len(made):
        raise SystemExit(f"{run}: classes {classes} are not the truth's {made}")
    order = rows_by_path(scores["filepath"], truth["path"], out / "data" / name)
    if (order < 0).any():
        raise SystemExit(f"{run}: {(order < 0).sum()} scored faces are not in {out / 'data' / name / 'labels.csv'}")
    truth = truth.iloc[order].reset_index(drop=True)
    true_label = to_run[truth["true_label"].to_numpy()]
    wrong = truth["is_noisy"].to_numpy(dtype=bool)
    given = scores["given_label"].to_numpy()
    p_given = records.vectors(scores, "target_probs")[np.arange(len(given)), given]
    ranked = bool(wrong.any())
    suggested = scores["suggested_label"].to_numpy()
    return {
        "true_rate": float(wrong.mean()),
        "auroc": metrics.auroc(wrong, scores["mislabel_score"].to_numpy()) if ranked else None,
        "ap": metrics.average_precision(wrong, scores["mislabel_score"].to_numpy()) if ranked else None,
        "flag_count": scores.attrs["flag_count"],
        "flags": _flags(scores["verdict"].to_numpy() == "likely_mislabeled", wrong, given, classes),
        "min_class_p_given": min(
            (float(p_given[given == c].mean()), classes[c]) for c in range(len(classes)) if (given == c).any()
        ),
        "suggestion_right_on_flips": float((suggested[wrong] == true_label[wrong]).mean()) if ranked else None,
        "ambiguity_spearman": [
            float(spearmanr(scores["ambiguity_score"][m], truth["ambiguity"][m]).statistic)
            for m in (np.ones_like(wrong), ~wrong)
        ],  # fmt: skip
    }


def _cell(x: float | None, fmt: str = ".3f") -> str:
    return "—" if x is None else format(x, fmt)


def markdown(record: dict[str, Any], title: str) -> str:
    """The settings' table under ``title`` (one line: what was run, with which command)."""
    lines = [
        title,
        "",
        "| labels | true rate | AUROC / AP | flagged (x true) | estimates: full model / folds | flag P / R | "
        "worst class: correct faces flagged | min class p[given] | suggestion right on flips | "
        "ambiguity Spearman: all / correct faces |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in record["settings"].items():
        f, count = s["flags"], s["flag_count"]
        ratio = f" ({f['share'] / s['true_rate']:.2f}x)" if s["true_rate"] else ""
        estimates = f"{count['model']:.3f} / {_cell(count.get('folds'))} ({count['from']})"
        by = f["correct_flagged_by_class"]
        worst = max(by, key=by.get)
        p, low = s["min_class_p_given"]
        lines.append(
            f"| {name} | {s['true_rate']:.2f} | {_cell(s['auroc'])} / {_cell(s['ap'])} | {f['share']:.3f}{ratio} | "
            f"{estimates} | {_cell(f['precision'])} / {_cell(f['recall'])} | {by[worst]:.2f} ({worst}) | "
            f"{p:.3f} ({low}) | {_cell(s['suggestion_right_on_flips'])} | "
            f"{s['ambiguity_spearman'][0]:.3f} / {s['ambiguity_spearman'][1]:.3f} |"
        )
    named = [c for s in record["settings"].values() for c in s["flags"]["correct_flagged_by_class"]]
    columns = sorted(set(named), key=named.index)
    lines += ["", "Each class's share of its correctly labelled faces flagged:", "",
              "| labels | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]  # fmt: skip
    for name, s in record["settings"].items():
        by = s["flags"]["correct_flagged_by_class"]
        lines.append(f"| {name} | " + " | ".join(_cell(by.get(c), ".2f") for c in columns) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--faces", type=int, default=4000)
    ap.add_argument("--rates", default="0.1,0.2,0.4")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--shares", default="longtail,balanced", help="class mixes: longtail and/or balanced")
    ap.add_argument("--classes", default=",".join(FER2013_CLASSES), help="the classes, comma-separated")
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    ap.add_argument("extra", nargs="*", help="more `curate run` flags, after --")
    args = ap.parse_args()
    mixes, kinds = args.shares.split(","), args.kinds.split(",")
    if set(mixes) - set(MIXES) or set(kinds) - set(KINDS):
        raise SystemExit(f"--shares from {list(MIXES)}, --kinds from {list(KINDS)}")
    classes = args.classes.split(",")
    if "longtail" in mixes and classes != list(FER2013_CLASSES):
        raise SystemExit(f"--shares longtail holds FER2013's seven classes; with --classes {args.classes} use balanced")
    todo = settings(mixes, kinds, [float(r) for r in args.rates.split(",")])
    out = args.out.resolve()
    with ThreadPoolExecutor(args.jobs) as pool:
        done = [pool.submit(run_setting, out, *s, args.faces, classes, args.extra) for s in todo]
        for (name, *_), job in zip(todo, done):
            job.result()
            print(f"[synthetic flips] {name} done", flush=True)
    record = {
        "date": dt.date.today().isoformat(),
        "config": {"faces": args.faces, "classes": classes, "extra": args.extra},
        "settings": {name: judge(out, name) for name, *_ in todo},
    }
    text = markdown(
        record,
        f"Synthetic flips {record['date']}: {args.faces} synthetic faces a setting, classes {args.classes}, "
        f"`curate run` defaults {' '.join(args.extra)}(`python bench/synthetic_flips.py`).",
    )
    write_texts(out, {"synthetic_flips.md": text, "synthetic_flips.json": json.dumps(record, indent=1)})
    print(text)


if __name__ == "__main__":
    main()
