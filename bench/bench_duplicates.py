"""Exact duplicates on FERPlus against the data's own truth (``labels.csv`` column ``dup_group``).

    python bench/bench_duplicates.py ../shared/data/ferplus/labels.csv [--workers 4] [--json out.json]

Reads the table with curate's ferplus reader, decodes and hashes every image
(``curate.data.duplicates``), and compares the groups with ``dup_group``: a found group must be
exactly one truth group (no pair that is not pixel-identical reported as exact) and every truth
group must be found (recall). Prints the wall time of the decode + grouping, the conflicting and
cross-split counts, and the leakage per split pair.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import pandas as pd

from curate.data import read_dataset
from curate.data.duplicates import table_duplicates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("labels", type=Path)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    table = read_dataset(str(args.labels), format="ferplus")
    truth = pd.read_csv(args.labels, usecols=["path", "dup_group"])
    t0 = time.perf_counter()
    report = table_duplicates(table, workers=args.workers)
    wall = time.perf_counter() - t0
    # join on the absolute image path
    truth_group = dict(zip((str((args.labels.parent / p).resolve()) for p in truth["path"]), truth["dup_group"]))
    found = pd.DataFrame({"path": [str(Path(p).resolve()) for p in table["filepath"]], "found": report.group})
    found["truth"] = found["path"].map(truth_group)
    in_truth = found[found["truth"] >= 0].groupby("truth")["found"].agg(lambda s: s.nunique() == 1 and s.iloc[0] >= 0)
    in_found = found[found["found"] >= 0].groupby("found")["truth"].agg(lambda s: s.nunique() == 1 and s.iloc[0] >= 0)
    result = {
        "faces": len(table),
        "truth_groups": int(found.loc[found["truth"] >= 0, "truth"].nunique()),
        "found_groups": report.n_groups,
        "truth_groups_found_whole": int(in_truth.sum()),
        "recall": round(float(in_truth.mean()), 6),
        "found_groups_pure": int(in_found.sum()),
        "false_exact_groups": int((~in_found).sum()),
        "faces_in_groups": report.n_faces,
        "conflicting_groups": report.conflicting,
        "cross_split_groups": report.cross_split,
        "leakage": report.leakage,
        "wall_s": round(wall, 1),
        "workers": args.workers,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
