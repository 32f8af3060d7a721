"""The per-face detection signals of one ``curate run``, for the benchmark and ``bench/score_quality.py``.

``run_signals(run_dir, sample_ids)`` reads ``RUN_DIR/scores.parquet`` and the training dynamics
and returns (N,) arrays in the order of ``sample_ids``: the shipped scores and each signal alone
(ablations). Higher = more likely mislabeled / more ambiguous, except ``flag`` (bool: the verdict
``likely_mislabeled``), ``in_queue`` (bool: any verdict other than ``ok``) and ``suggested_label``
(int class index).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from curate import records
from curate.scoring.scores import normalised_entropy
from dmue_core.trainer import load_dynamics

#: signal name -> label used in reports
ABLATIONS = {
    "one_minus_p_given": "1 - target p[given label]",
    "one_minus_consensus": "auxiliary consensus alone (1 - its p[given label])",
    "knn_disagreement": "kNN disagreement (DMUE embeddings)",
    "one_minus_sigma": "uncertainty alone (1 - sigma)",
    "latent_peak": "latent distribution alone (its peak)",
    "dynamics": "training dynamics (1 - mean p[given] over epochs)",
}


def run_signals(run_dir: str | Path, sample_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """(N,) arrays for the faces ``sample_ids`` of the run in ``run_dir`` (see the module docstring)."""
    run_dir = Path(run_dir)
    scores = records.read_scores(run_dir / "scores.parquet")
    rows = pd.Index(scores["sample_id"]).get_indexer(list(sample_ids))
    if (rows < 0).any():
        raise ValueError(f"{int((rows < 0).sum())} of the requested faces are not in {run_dir}/scores.parquet")
    df = scores.iloc[rows]
    given = df["given_label"].to_numpy()
    probs = records.vectors(df, "target_probs")
    latent = records.vectors(df, "latent_distribution")
    dyn = load_dynamics(run_dir)
    p_dyn = np.full(len(df), np.nan)
    if len(dyn["target_prob_given"]):  # indexed by the run's table row = scores.parquet's row
        with warnings.catch_warnings():  # with the class-balanced sampler, a face never drawn has only NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            p_dyn = np.nanmean(np.asarray(dyn["target_prob_given"], dtype=np.float64), axis=0)[rows]
    return {
        "mislabel_score": df["mislabel_score"].to_numpy(),
        "ambiguity_score": df["ambiguity_score"].to_numpy(),
        "one_minus_p_given": 1 - probs[np.arange(len(df)), given],
        "one_minus_consensus": 1 - records.vectors(df, "aux_consensus")[np.arange(len(df)), given],
        "knn_disagreement": df["knn_disagreement"].to_numpy(),
        "one_minus_sigma": 1 - df["uncertainty"].to_numpy(),
        "latent_peak": latent.max(axis=1),
        "dynamics": 1 - np.nan_to_num(p_dyn, nan=0.5),
        "target_entropy": normalised_entropy(probs),
        "flag": (df["verdict"] == "likely_mislabeled").to_numpy(),
        "in_queue": (df["verdict"] != "ok").to_numpy(),
        "given_label": given,
        "suggested_label": df["suggested_label"].to_numpy(),
    }
