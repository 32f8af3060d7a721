"""Near duplicates: precision and recall of a cosine threshold on a run's embeddings, against the
pixel-identical pairs of FERPlus (``labels.csv`` column ``dup_group``).

    python bench/bench_near_duplicates.py RUN/scores.parquet ../shared/data/ferplus/labels.csv \
        [--k 10] [--sheet pairs.png --sheet-threshold 0.97 --sheet-pairs 50]

Candidate pairs are the faiss k nearest neighbours (cosine on the target embedding, as the run
computes them). A pair is *exact* when both faces share a ``dup_group``. For each threshold t:
precision = exact pairs / pairs at cosine >= t; recall = exact pairs at cosine >= t / all exact
pairs among the scored faces. ``--sheet`` draws a random sample of pairs at cosine >= the sheet
threshold that are *not* pixel-identical, side by side, numbered, for checking by eye.
"""

from __future__ import annotations

import argparse
import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from curate.benchmark.matching import rows_by_path
from curate.neighbors import knn
from curate.records import load_embeddings, read_scores

THRESHOLDS = (0.9, 0.93, 0.95, 0.96, 0.97, 0.98, 0.985, 0.99, 0.995, 0.999)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scores", type=Path)
    ap.add_argument("labels", type=Path)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--sheet", type=Path)
    ap.add_argument("--sheet-threshold", type=float, default=0.97)
    ap.add_argument("--sheet-pairs", type=int, default=50)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    df = read_scores(args.scores, columns=["sample_id", "filepath"])
    emb = np.asarray(load_embeddings(args.scores), dtype=np.float32)
    truth = pd.read_csv(args.labels, usecols=["path", "dup_group"])
    rows = rows_by_path(df["filepath"], truth["path"], args.labels.parent)
    group = np.where(rows >= 0, truth["dup_group"].to_numpy()[rows], -1)
    res = knn(emb, k=args.k, index="flat")
    n = len(df)
    i = np.repeat(np.arange(n), args.k)
    j, s = res.indices.ravel(), res.similarities.ravel()
    ok = j >= 0
    pairs = pd.DataFrame({"a": np.minimum(i[ok], j[ok]), "b": np.maximum(i[ok], j[ok]), "cos": s[ok]})
    pairs = pairs.groupby(["a", "b"], as_index=False)["cos"].max()
    pairs["exact"] = (group[pairs["a"]] >= 0) & (group[pairs["a"]] == group[pairs["b"]])
    exact_total = 0
    for _, members in pd.Series(np.arange(n))[group >= 0].groupby(group[group >= 0]):
        exact_total += len(list(combinations(members, 2)))
    rows = []
    for t in THRESHOLDS:
        sel = pairs[pairs["cos"] >= t]
        tp = int(sel["exact"].sum())
        rows.append({"cosine": t, "pairs": len(sel), "exact": tp, "precision": round(tp / max(len(sel), 1), 4),
                     "recall": round(tp / max(exact_total, 1), 4), "not_exact": len(sel) - tp})  # fmt: skip
    exact_cos = pairs.loc[pairs["exact"], "cos"]
    result = {
        "faces": n,
        "k": args.k,
        "exact_pairs_total": exact_total,
        "exact_pairs_in_knn": int(pairs["exact"].sum()),
        "exact_pair_cosine_quantiles": {str(q): round(float(exact_cos.quantile(q)), 4) for q in (0, 0.01, 0.05, 0.5)},
        "thresholds": rows,
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.sheet:
        from PIL import Image, ImageDraw

        near = pairs[(pairs["cos"] >= args.sheet_threshold) & ~pairs["exact"]]
        near = near.sample(min(args.sheet_pairs, len(near)), random_state=0).reset_index(drop=True)
        cols, cell = 5, 48
        sheet = Image.new("L", (cols * (2 * cell + 24), ((len(near) + cols - 1) // cols) * (cell + 14)), 255)
        draw = ImageDraw.Draw(sheet)
        for r, p in near.iterrows():
            x, y = (r % cols) * (2 * cell + 24), (r // cols) * (cell + 14)
            for m, idx in enumerate((p["a"], p["b"])):
                sheet.paste(Image.open(df["filepath"][idx]).convert("L").resize((cell, cell)), (x + m * cell, y))
            draw.text((x + 2 * cell + 2, y + 2), str(r), fill=0)
        sheet = sheet.resize((sheet.width * 2, sheet.height * 2))
        sheet.save(args.sheet)
        near.assign(a_id=df["sample_id"].to_numpy()[near["a"]], b_id=df["sample_id"].to_numpy()[near["b"]]).to_csv(
            args.sheet.with_suffix(".csv"), index=True
        )


if __name__ == "__main__":
    main()
