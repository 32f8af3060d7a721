"""The flag count of cross-fitted runs under other rules, re-decided from each run's own outputs.

Usage: python bench/flag_count_rules.py RUN LABELS [RUN LABELS ...]

The shipped count (``curate.scoring.pipeline``) is the larger of two confident shares
(``curate.noise.confident_rate``): the full model's believed distribution, and the one built from
the fold models' outputs on the faces they did not train on. Each RUN (a ``curate run`` folder with
``folds/``) is re-scored with ``curate score`` into a temporary folder, keeping the two
distributions the count reads, and every rule below gives a share; the top that share of the faces
by ``mislabel_score`` is what would be flagged. Rules: ``model``, ``folds``, ``larger`` (shipped),
``geometric`` (the geometric mean of the two), and ``folds, margin r``: a face counts only when its
given class has less than r times the probability of the class it is confidently in (r = 0.6 is
the ``ambiguous`` verdict's top-two ratio: a near tie is ambiguous, not mislabelled). Three
well-known noise-rate estimators read the fold models' outputs too: ``folds, loss mixture``
(DivideMix's two-component Gaussian mixture on each face's cross-entropy), ``folds, anchors``
(Patrini et al.'s noise matrix read at each class's most confident faces) and ``folds, calibrated
joint`` (cleanlab's calibrated confident joint, one minus its trace). The ``no latent`` rules read
the same mixtures without their latent term (``score.w_latent`` 0 for the count alone; the ranking
keeps it): the latent distribution is 0 at the given label by construction, so it moves every
face's mass off its label, mislabelled or not.

A RUN without ``folds/`` (``--cross-fit 0``, e.g. a flip suite's ``SETTING/dmue/run``) is
re-decided from its stored outputs alone, with the ``model`` rules.

Printed per run: the true rate, then per rule the share flagged (x the true rate), flag precision
and recall, and the worst class's share of its correctly labelled faces flagged. Truth: the
``label_disagrees`` column (FERPlus CSVs, a flip suite's ``train.csv``; -1 rows left out) or
``is_noisy`` (``curate.data.synthetic``'s ``labels.csv``), matched by the image file name.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MARGINS = (0.6, 0.5, 0.4)


def confident_share(given: np.ndarray, probs: np.ndarray, margin: float | None = None) -> float:
    """Share of the faces confidently another class (``curate.noise.confident_other``); with
    ``margin`` r only those whose given class has < r x the probability of that class."""
    from curate.noise import confident_other

    hit = confident_other(given, probs) >= 0
    if margin is not None:
        rows = np.arange(len(given))
        hit &= probs[rows, given] < margin * probs.max(axis=1)
    return float(hit.mean()) if len(given) else 0.0


def loss_mixture_share(given: np.ndarray, probs: np.ndarray) -> float:
    """DivideMix's clean/noisy split (Li et al., ICLR 2020): a two-component Gaussian mixture on the
    faces' cross-entropy -log p[given], scaled to [0, 1]; the mean posterior of the component with
    the larger mean."""
    from sklearn.mixture import GaussianMixture

    loss = -np.log(np.clip(probs[np.arange(len(given)), given], 1e-6, 1.0))
    loss = ((loss - loss.min()) / max(loss.max() - loss.min(), 1e-12))[:, None]
    gmm = GaussianMixture(2, max_iter=20, tol=1e-2, reg_covar=5e-4, random_state=0).fit(loss)
    return float(gmm.predict_proba(loss)[:, gmm.means_.ravel().argmax()].mean())


def anchor_share(given: np.ndarray, probs: np.ndarray, percentile: float = 97.0) -> float:
    """Patrini et al. (CVPR 2017): row i of the noise matrix T[i, j] = P(given j | true i) is the
    mean of ``probs`` over the faces at or above the ``percentile`` of p_i (taken to be truly i);
    the true class shares solve shares(given) = T^T shares(true) (least squares, clipped at 0);
    the noise rate is sum_i share(true i) (1 - T[i, i])."""
    C = probs.shape[1]
    T = np.stack([probs[probs[:, i] >= np.percentile(probs[:, i], percentile)].mean(axis=0) for i in range(C)])
    noisy = np.bincount(given, minlength=C) / len(given)
    true = np.clip(np.linalg.lstsq(T.T, noisy, rcond=None)[0], 0.0, None)
    return float((true / max(true.sum(), 1e-12) * (1.0 - np.diag(T))).sum())


def joint_share(given: np.ndarray, probs: np.ndarray) -> float:
    """One minus the trace of cleanlab's calibrated confident joint (``cleanlab.count.estimate_joint``)."""
    from cleanlab.count import estimate_joint

    return float(1.0 - np.trace(estimate_joint(given, probs)))


def rule_shares(
    given: np.ndarray, model: np.ndarray, judged: np.ndarray, folds: np.ndarray, margins: Sequence[float] = MARGINS
) -> dict[str, float]:
    """{rule: share of faces to flag}: given (N,) int, model (N, C) and folds (M, C) rows summing to
    1, folds on the rows ``judged`` (M,) int (the fold models' faces: all N, or fewer where fewer
    fold models than folds trained)."""
    m, f = confident_share(given, model), confident_share(given[judged], folds)
    given = given[judged]
    shares = {"model": m, "folds": f, "larger": max(m, f), "geometric": float(np.sqrt(m * f))}
    shares.update({f"folds, margin {r:g}": confident_share(given, folds, r) for r in margins})
    shares["folds, loss mixture"] = loss_mixture_share(given, folds)
    shares["folds, anchors"] = anchor_share(given, folds)
    shares["folds, calibrated joint"] = joint_share(given, folds)
    return shares


def flag_figures(
    share: float, score: np.ndarray, wrong: np.ndarray, known: np.ndarray, given: np.ndarray
) -> dict[str, float]:
    """Flag the top ``share`` of the faces by ``score`` (N,); against ``wrong`` (N,) bool on the
    ``known`` faces: precision, recall and the largest share of a class's correct faces flagged."""
    flag = np.zeros(len(score), dtype=bool)
    flag[np.argsort(-score, kind="stable")[: int(round(share * len(score)))]] = True
    flag, wrong, given = flag[known], wrong[known], given[known]
    correct = [flag[~wrong & (given == c)].mean() for c in np.unique(given) if (~wrong & (given == c)).any()]
    return {
        "precision": float(wrong[flag].mean()) if flag.any() else float("nan"),
        "recall": float(flag[wrong].mean()) if wrong.any() else float("nan"),
        "worst_class": float(max(correct, default=0.0)),
    }


def truth_by_name(labels_csv: Path, sample_ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(known, wrong) (N,) bool for the scored faces, matched to ``labels_csv`` rows by file name."""
    labels = pd.read_csv(labels_csv)
    truth = labels["is_noisy"].astype(int) if "is_noisy" in labels else labels["label_disagrees"]
    by_name = pd.Series(truth.to_numpy(), index=labels["path"].astype(str).map(lambda p: Path(p).name))
    if by_name.index.has_duplicates:
        raise SystemExit(f"{labels_csv}: two rows name the same image file; faces are matched by file name")
    names = sample_ids.astype(str).map(lambda p: Path(p).name)
    missing = names[~names.isin(by_name.index)]
    if len(missing):
        raise SystemExit(f"{len(missing)} scored faces have no row in {labels_csv} (first: {missing.iloc[0]})")
    t = by_name.loc[names].to_numpy()
    return t >= 0, t == 1


def rescore(run: Path, labels_csv: Path) -> dict[str, Any]:
    """Score ``run`` on ``labels_csv`` again (``curate score``, into a temporary folder) and return
    the two distributions the flag count read, the given labels, mislabel scores and sample ids."""
    import curate.scoring.pipeline as pipeline
    import curate.scoring.scores as scores_module
    from curate import records
    from curate.cli import main as cli

    read: list[tuple[np.ndarray, np.ndarray]] = []
    no_latent: list[np.ndarray] = []  # the model's mixture, then the folds', without the latent term
    target: list[np.ndarray] = []  # the target probabilities each mixture read
    shipped_rate, shipped_mix = pipeline.confident_rate, scores_module.label_distribution

    def spy_rate(given: np.ndarray, probs: np.ndarray) -> float:
        read.append((np.array(given), np.array(probs)))
        return shipped_rate(given, probs)

    def spy_mix(*args: Any) -> np.ndarray:
        *views, cfg, consensus = args
        no_latent.append(shipped_mix(*views, replace(cfg, w_latent=0.0), consensus))
        target.append(np.array(views[0]))
        return shipped_mix(*args)

    pipeline.confident_rate, pipeline.label_distribution, scores_module.label_distribution = spy_rate, spy_mix, spy_mix
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "scores.parquet"
            cli.main(["score", str(run), str(labels_csv), "--out", str(out)], standalone_mode=False)
            scores = records.read_scores(out, columns=["sample_id", "mislabel_score"])
    finally:
        pipeline.confident_rate, pipeline.label_distribution = shipped_rate, shipped_mix
        scores_module.label_distribution = shipped_mix
    if len(read) != 2:
        raise SystemExit(f"{run}: no fold models' outputs were scored; pass a cross-fitted run (with folds/)")
    (given, model), (_, folds) = read
    # the faces no fold model judged keep the full model's outputs (curate.scoring.forward)
    judged = np.flatnonzero((target[1] != target[0]).any(axis=1))
    if len(judged) != len(folds):
        raise SystemExit(f"{run}: {len(judged)} faces judged by fold models, {len(folds)} counted")
    return {"given": given, "model": model, "judged": judged, "folds": folds,
            "score": scores["mislabel_score"].to_numpy(), "ids": scores["sample_id"],
            "no_latent": (no_latent[0], no_latent[1][judged])}  # fmt: skip


def stored_inputs(run: Path) -> dict[str, Any]:
    """What ``compute_scores`` read in ``run``, from its ``scores.parquet`` (no model is run):
    ``given`` (N,), ``outputs`` (target probabilities, latent, sigma, neighbour rows), ``consensus``
    (N, C), ``cfg``, with the stored ``score`` (N,) mislabel_score and ``ids``, and ``shipped``: what
    ``compute_scores`` gives on them. Refused when that is not the stored scores (a run scored by
    older code)."""
    from curate import records
    from curate.scoring.scores import ScoreConfig, compute_scores

    s = records.read_scores(run / "scores.parquet")
    inputs = {
        "given": s["given_label"].to_numpy(dtype=np.int64), "cfg": ScoreConfig(**s.attrs["score_config"]),
        "outputs": (records.vectors(s, "target_probs"), records.vectors(s, "latent_distribution"),
                    s["uncertainty"].to_numpy(), records.neighbour_rows(s["sample_id"], s["neighbors"])),
        "consensus": records.vectors(s, "aux_consensus").astype(np.float64),
        "score": s["mislabel_score"].to_numpy(), "ids": s["sample_id"],
    }  # fmt: skip
    inputs["shipped"] = compute_scores(inputs["given"], *inputs["outputs"], inputs["cfg"], inputs["consensus"])
    drift = float(np.abs(inputs["shipped"]["mislabel_score"] - inputs["score"]).max())
    if drift > 1e-3:
        raise SystemExit(f"{run}: the stored outputs give other scores (by {drift:.4f}) than the run's; re-score it")
    return inputs


def stored(run: Path) -> dict[str, Any]:
    """A run without fold models (``--cross-fit 0``): its count reads the full model's mixture
    alone, rebuilt from the stored outputs (:func:`stored_inputs`), with and without the latent term."""
    from curate.scoring.scores import compute_scores

    r = stored_inputs(run)
    r["model"] = r["shipped"]["mixed_distribution"]
    without = compute_scores(r["given"], *r["outputs"], replace(r["cfg"], w_latent=0.0), r["consensus"])
    r["no_latent"] = without["mixed_distribution"]
    return r


def run_rows(run: Path, labels_csv: Path, name: str) -> list[dict[str, Any]]:
    if (run / "folds").is_dir():
        r = rescore(run, labels_csv)
        shares = rule_shares(r["given"], r["model"], r["judged"], r["folds"])
        m = confident_share(r["given"], r["no_latent"][0])
        f = confident_share(r["given"][r["judged"]], r["no_latent"][1])
        shares.update({"model, no latent": m, "folds, no latent": f, "larger, no latent": max(m, f)})
    else:
        r = stored(run)
        shares = {"model": confident_share(r["given"], r["model"]),
                  "model, no latent": confident_share(r["given"], r["no_latent"])}  # fmt: skip
    known, wrong = truth_by_name(labels_csv, r["ids"])
    true = float(wrong[known].mean())
    rows = []
    for rule, share in shares.items():
        row = {"run": name, "rule": rule, "share": share, "x_true": share / true if true else float("nan")}
        rows.append({**row, **flag_figures(share, r["score"], wrong, known, r["given"]), "true_rate": true})
    return rows


def run_label_pairs(doc: str) -> list[tuple[Path, Path]]:
    """The command line's RUN LABELS [RUN LABELS ...] pairs, for a script whose docstring is ``doc``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("pairs", nargs="+", help="RUN LABELS [RUN LABELS ...]")
    pairs = ap.parse_args().pairs
    if len(pairs) % 2:
        raise SystemExit("pass RUN LABELS pairs")
    return [(Path(run), Path(csv)) for run, csv in zip(pairs[::2], pairs[1::2])]


def main() -> None:
    pairs = run_label_pairs(__doc__)
    runs = [run.resolve() for run, _ in pairs]
    common = Path(os.path.commonpath(runs)) if len(runs) > 1 else runs[0].parent
    names = [str(run.relative_to(common)) for run in runs]  # unique: e.g. clean/dmue/run, uniform-0.1/dmue/run
    rows = [row for run, (_, csv), name in zip(runs, pairs, names) for row in run_rows(run, csv, name)]
    table = pd.DataFrame(rows)
    cells = table.apply(
        lambda r: f"{r.share:.3f} ({r.x_true:.2f}x) P {r.precision:.2f} R {r.recall:.2f} w {r.worst_class:.2f}", axis=1
    )
    grid = table.assign(cell=cells).pivot(index="rule", columns="run", values="cell")
    print(grid.reindex(index=table["rule"].unique(), columns=table["run"].unique()).to_string())
    print("\ntrue rates: " + ", ".join(f"{k} {v:.3f}" for k, v in table.groupby("run")["true_rate"].first().items()))


if __name__ == "__main__":
    main()
