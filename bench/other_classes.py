"""`curate run`'s defaults on FERPlus crowd labels with other class sets than FER2013's seven, with
known flips: do the scores, the flag count and the per-class behaviour hold when the classes change?

Usage: python bench/other_classes.py --out OUT [--labels ../shared/data/ferplus/labels.csv]
       [--faces 2000] [--rate 0.2] [--sets seven,eight,four] [--jobs 2] [-- EXTRA curate run flags]

Sets, each a stratified draw (seed 0) of ``--faces`` Training faces whose FERPlus plurality (no tie)
is one of the set's classes: ``seven`` (FER2013's classes: the reference), ``eight`` (FERPlus's
eight emotions, AffectNet's classes: contempt added, a class of 0.6 % of the faces) and ``four``
(happy, sad, surprise, neutral). A face's true class is the crowd's plurality; its given label is
that class or, for round(rate x N) faces, a uniformly drawn other class of the set. The run reads
``OUT/data/SET/list.csv`` (path, label: nothing else); the truth is ``OUT/data/SET/labels.csv`` in
the columns ``bench/synthetic_flips.py`` judges (true_label, is_noisy, ambiguity = the entropy of
the crowd's votes over the set's classes / log C, votes_<class>). Runs as that script does
(``--jobs`` at a time, one thread each, resumable); written: ``OUT/other_classes.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from synthetic_flips import judge, markdown, run_curate

from curate.benchmark.report import write_texts
from curate.benchmark.splits import flip_labels, stratified_sample
from curate.data.synthetic import normalized_entropy
from curate.formats.ferplus import FERPLUS_TO_FER2013

#: set name -> its FERPlus vote columns (the class order of the truth)
SETS = {
    "seven": tuple(FERPLUS_TO_FER2013),
    "eight": (*FERPLUS_TO_FER2013, "contempt"),
    "four": ("happiness", "sadness", "surprise", "neutral"),
}


def class_name(column: str) -> str:
    """A FERPlus vote column's class name as a curator's list spells it (FER2013's, or ``contempt``)."""
    return FERPLUS_TO_FER2013.get(column, column)


def write_set(labels_csv: Path, folder: Path, columns: tuple[str, ...], faces: int, rate: float) -> None:
    """Write ``folder/labels.csv`` (the truth) and ``folder/list.csv`` (what the run reads), once."""
    if (folder / "list.csv").exists():
        return
    every = pd.read_csv(labels_csv)
    pool = every[(every["split"] == "Training") & every["ferplus_majority"].isin(columns)].reset_index(drop=True)
    crowd = pool["ferplus_majority"].map(columns.index).to_numpy()
    rng = np.random.default_rng(0)
    rows = stratified_sample(crowd, faces, rng)
    pool, crowd = pool.iloc[rows].reset_index(drop=True), crowd[rows]
    given = flip_labels(crowd, rate, len(columns), rng)
    names = np.array([class_name(c) for c in columns])
    votes = pool[list(columns)].to_numpy(dtype=np.float64)
    truth = pd.DataFrame({
        "path": [str((labels_csv.parent / p).resolve()) for p in pool["path"]],
        "label": names[given],
        "true_label": crowd,
        "is_noisy": given != crowd,
        "ambiguity": normalized_entropy(votes / votes.sum(axis=1, keepdims=True)),
        **{f"votes_{n}": pool[c].to_numpy() for n, c in zip(names, columns, strict=True)},
    })  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    # in this order: list.csv, written last, marks the set written
    write_texts(
        folder, {"labels.csv": truth.to_csv(index=False), "list.csv": truth[["path", "label"]].to_csv(index=False)}
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--labels", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/ferplus/labels.csv"
    )
    ap.add_argument("--faces", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=0.2)
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    ap.add_argument("extra", nargs="*", help="more `curate run` flags, after --")
    args = ap.parse_args()
    sets = args.sets.split(",")
    if set(sets) - set(SETS):
        raise SystemExit(f"--sets from {list(SETS)}")
    out = args.out.resolve()
    for name in sets:
        write_set(args.labels.resolve(), out / "data" / name, SETS[name], args.faces, args.rate)
    with ThreadPoolExecutor(args.jobs) as pool:
        done = [pool.submit(run_curate, out / "data" / n / "list.csv", out / "runs" / n, args.extra) for n in sets]
        for name, job in zip(sets, done, strict=True):
            job.result()
            print(f"[other classes] {name} done", flush=True)
    record = {
        "date": dt.date.today().isoformat(),
        "config": {"faces": args.faces, "rate": args.rate, "extra": args.extra},
        "settings": {name: judge(out, name) for name in sets},
    }
    title = (
        f"Other class sets {record['date']}: {args.faces} FERPlus Training faces a set, crowd labels with "
        f"{args.rate:.0%} uniform flips, `curate run` defaults {' '.join(args.extra)}(`python bench/other_classes.py`)."
    )
    text = markdown(record, title)
    write_texts(out, {"other_classes.md": text, "other_classes.json": json.dumps(record, indent=1)})
    print(text)


if __name__ == "__main__":
    main()
