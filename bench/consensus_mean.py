"""The same runs scored with the auxiliary consensus as a plain mean over the C - 1 branches (the
shipped consensus until 2026-12-07) and per class (``dmue_core.losses.aux_consensus`` since):
AUROC, the share flagged and its precision (docs/robustness.md section 5, the re-run of 2026-12-08).

Usage: python bench/consensus_mean.py RUN LABELS [RUN LABELS ...]

Each RUN is a run without fold models (``--cross-fit 0``, e.g. a flip suite's ``SETTING/dmue/run``):
its count reads the full model's mixture, rebuilt from the stored outputs of ``scores.parquet``
(``flag_count_rules.stored_inputs``). The plain mean is recovered exactly from the stored per-class
consensus: every class but the given one times (C - 2) / (C - 1), renormalised. Truth as in
``flag_count_rules``: ``label_disagrees`` or ``is_noisy``, matched by file name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from flag_count_rules import confident_share, flag_figures, run_label_pairs, stored_inputs, truth_by_name

from curate import metrics
from curate.scoring.scores import compute_scores


def plain_mean(consensus: np.ndarray, given: np.ndarray) -> np.ndarray:
    """(N, C) the plain mean over the C - 1 branches that trained on each face's given label, from
    the per-class consensus (N, C) (rows summing to 1) and ``given`` (N,) int."""
    C = consensus.shape[1]
    rows = np.arange(len(given))
    out = consensus * (C - 2) / (C - 1)
    out[rows, given] = consensus[rows, given]
    return out / out.sum(axis=1, keepdims=True)


def run_row(run: Path, labels_csv: Path) -> str:
    if (run / "folds").is_dir():
        raise SystemExit(f"{run} has fold models, which its count reads; pass a run without (--cross-fit 0)")
    r = stored_inputs(run)
    given = r["given"]
    known, wrong = truth_by_name(labels_csv, r["ids"])
    cells = [str(run)]
    plain = compute_scores(given, *r["outputs"], r["cfg"], plain_mean(r["consensus"], given))
    for name, out in (("plain mean", plain), ("per class", r["shipped"])):
        share = confident_share(given, out["mixed_distribution"])
        fig = flag_figures(share, out["mislabel_score"], wrong, known, given)
        auroc = metrics.auroc(wrong[known], out["mislabel_score"][known]) if wrong[known].any() else float("nan")
        true = float(wrong[known].mean())
        ratio = f" ({share / true:.2f}x)" if true else ""
        cells.append(f"{name}: AUROC {auroc:.4f}, flagged {share:.3f}{ratio}, P {fig['precision']:.3f}")
    return " | ".join(cells)


def main() -> None:
    for run, csv in run_label_pairs(__doc__):
        print(run_row(run, csv))


if __name__ == "__main__":
    main()
