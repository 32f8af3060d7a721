"""Re-rank the review queue with the curator's decisions (issue 22), in plain numpy/pandas.

A run's scores are computed once; a curator who reviews the top of the queue teaches them nothing.
This module takes the scores table (the columns of ``scores.parquet``: ``sample_id``,
``given_label``, ``label_distribution``, ``neighbors`` ...) and the decisions so far and recomputes,
for the faces still **undecided**, the believed distribution, ``mislabel_score`` and
``suggested_label``. Decided faces never change: their row is returned as it was.

A decision is the label the curator put in force: ``sample_id -> class index``, or ``"correct"``
(the given label was confirmed: keep / accept of the given label), or ``None`` (the face was
decided but says nothing about its label, e.g. excluded as unusable). Two updates use them:

1. **Label propagation over the run's kNN graph** (``weight`` = w). Each face's ``neighbors`` are
   the k nearest faces the run already stored (faiss, ``scores.parquet``). For an undecided face,
   the trusted labels of its decided neighbours (the curator's label; the given label for a
   confirmed-correct one) are counted into a histogram ``h`` (counts divided by the number of
   neighbours found, so each decided neighbour carries 1/k) and mixed in::

       dist' = normalise( label_distribution + w * h )

   A neighbour confirmed as an error pulls the face towards the neighbour's true class (its score
   rises when that class differs from its own given label, and the suggestion moves there); a
   neighbour confirmed correct pulls towards that label. One step of propagation, not an iterative
   solve: the graph is the run's and the decided set grows by a batch at a time, so the next
   rerank propagates from the newly decided faces. With no decision ``h`` is 0 and the scores are
   the run's own.

2. **Per-class calibration of the score** (``class_strength`` = s). Among the decided faces given
   class c, the curator overturned ``e_c`` of ``n_c``; the run predicted ``m_c`` = the sum of their
   original ``mislabel_score``. The observed error rate, shrunk to the prediction with a pseudo-count
   ``shrink`` (=a), is ``r_c = (e_c + a * m_c / n_c) / (n_c + a)``; the predicted one is
   ``q_c = m_c / n_c``. The odds that an undecided face of class c is mislabeled are multiplied by
   ``[odds(r_c) / odds(q_c)] ** s`` (a Bayes update as in ``curate.scoring.scores.apply_class_prior``,
   rates clipped to [0.01, 0.99]). Comparing with the prediction *on the same decided faces* matters:
   the curator reviews the top of the queue, so raw error rates among decided faces are far above
   the population's; only the gap between what the run expected and what the curator found says the
   class is over- or under-flagged. A class without decisions keeps factor 1.

3. **Where the curator's corrections go** (``transition_strength`` = t). Among decided faces given
   class c that the curator overturned, the share relabelled to each class d, shrunk (``shrink``)
   to what the run's distribution expected for those faces (its mass on d, renormalised over the
   classes other than c), gives a ratio observed / expected per (c, d); the other-class entries of
   an undecided face given c are multiplied by that ratio ** t and rescaled to keep their sum.
   This changes which class is suggested, never the score. (FERPlus: most FER2013 errors are
   neutral or sad in the crowd's eyes, more often than the model believes.)

Then ``mislabel_score = 1 - dist'[given]`` (applied as an odds update of the run's own score, so a
face nothing moved keeps its score exactly) and ``suggested_label = argmax dist'``; a second
suggestion, ``relabel_label``, is the argmax over the classes other than the given one. These
updates are O(N k) and vectorised: a rerank of 30,000 faces with k = 10 takes well under a second.

4. **A head refit on the embeddings** (``head_strength`` = b, ``head_mix`` = m; needs the run's
   embeddings and at least ``head_min_decided`` labelled decisions): a logistic regression on the
   stored embeddings (``curate.rerank_head``) fitted to the decided faces' trusted labels (weight
   ``head_decided_weight``) and to anchors, up to ``head_anchors`` undecided faces drawn from the
   ``head_anchor_share`` with the lowest score after updates 1-3, with their given labels (weight 1).
   p_h estimates P(true class | face). The label a face was *given* says more when one knows how
   labels go wrong (``head_noise_model``): with the noise matrix ``T[c, g]`` = P(given g | true c),
   estimated from p_h itself (each face's p_h, or its one-hot trusted label when decided, summed per
   given label, every row normalised: the "confident joint" of cleanlab with soft counts), the
   posterior is ``post[c] ∝ p_h[c] * T[c, given]``: a face given "sad" whose head hesitates between
   sad and neutral is less suspect when neutral faces are seldom labelled sad. With
   ``h = logit(1 - post[given])`` (``p_h`` in place of ``post`` without the noise model), the
   mislabel log-odds of an undecided face move by ``b * (h - median h)``, and its distribution
   becomes ``normalise(dist' + m * p_h)`` (for the suggestions: ``post`` leans to the given label,
   which is the evidence a score needs and not what a relabel needs). On the FERPlus Training split
   (simulated curator, docs/review-loop.md) the head lifted the errors found after 5,000 reviewed
   faces from +6.2 % to +11.0 % over the static queue (+9.4 % without the noise model), and the
   best-other-class suggestion on the undecided errors after 2,000 from 71.8 % to 79.1 %. The
   noise model matters where labels go wrong in patterns (class-dependent flips: +2 to +8 points of
   errors found at 400-1,000 reviewed faces); under uniform flips it is level or up to 1.2 points
   behind (docs/review-loop.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from curate.records import neighbour_rows
from curate.rerank_head import fit_predict, normalised
from curate.scoring.scores import best_other

#: a decision value meaning "the given label is right"
CORRECT = "correct"


@dataclass(frozen=True)
class RerankConfig:
    """``weight``: mass of one fully-decided neighbourhood in the mixed distribution (0 = no
    propagation); ``class_strength``: exponent of the per-class odds update (0 = off); ``shrink``:
    pseudo-count pulling a class's observed error rate to the run's prediction."""

    weight: float = 1.0
    class_strength: float = 0.5
    shrink: float = 50.0
    transition_strength: float = 1.0
    head_strength: float = 2.0
    head_mix: float = 1.0
    head_min_decided: int = 200
    head_decided_weight: float = 3.0
    head_anchor_share: float = 0.3
    head_anchors: int = 3000
    head_noise_model: bool = True

    def __post_init__(self) -> None:
        if min(self.weight, self.class_strength, self.shrink, self.transition_strength, self.head_strength,
               self.head_mix, self.head_min_decided, self.head_decided_weight, self.head_anchors) < 0:  # fmt: skip
            raise ValueError(f"rerank weights must be >= 0: {self}")
        if not 0 <= self.head_anchor_share <= 1:
            raise ValueError(f"head_anchor_share must lie in [0, 1], not {self.head_anchor_share}")

    def head_applies(self, labelled: int) -> bool:
        """Whether the head refit (update 4) runs with ``labelled`` decisions that carry a label."""
        return self.head_strength + self.head_mix > 0 and labelled >= self.head_min_decided


def _odds(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 0.01, 0.99)
    return p / (1 - p)


class Reranker:
    """The parts of a scores table a rerank needs, indexed once (the benchmark reranks many times).

    ``scores``: a DataFrame with ``sample_id``, ``given_label`` (int), ``label_distribution``
    (per-row length-C arrays), ``mislabel_score`` and ``neighbors`` (per-row lists of sample ids;
    ids not in the table are ignored).
    """

    def __init__(self, scores: pd.DataFrame, embeddings: np.ndarray | None = None) -> None:
        """``embeddings``: (N, D) in the rows' order (the run's side file), for the head refit
        (update 4); None leaves it out."""
        if embeddings is not None and len(embeddings) != len(scores):
            raise ValueError(f"{len(embeddings)} embeddings for {len(scores)} scored faces")
        self.embeddings = None if embeddings is None else normalised(embeddings)
        self.sample_ids = scores["sample_id"].astype(str).to_numpy()
        self.row_of = {sid: i for i, sid in enumerate(self.sample_ids)}
        if len(self.row_of) != len(self.sample_ids):
            raise ValueError("scores hold duplicate sample_id values")
        self.given = scores["given_label"].to_numpy(dtype=np.int64)
        self.dist = np.stack(scores["label_distribution"].to_numpy()).astype(np.float64)
        self.num_classes = self.dist.shape[1]
        if "mislabel_score" in scores:
            self.mislabel = scores["mislabel_score"].to_numpy(dtype=np.float64)
        else:
            self.mislabel = 1.0 - self.dist[np.arange(len(self.given)), self.given]
        neighbours = scores["neighbors"] if "neighbors" in scores else [None] * len(scores)
        self.knn = neighbour_rows(self.sample_ids, neighbours)  # -1: not in the table

    def trusted_labels(self, decisions: Mapping[str, int | str | None]) -> tuple[np.ndarray, np.ndarray]:
        """(N,) trusted label per row (-1: none) and (N,) bool decided, from ``decisions``
        (sample id -> class index, ``"correct"`` or None; unknown ids are ignored)."""
        trusted = np.full(len(self.given), -1, dtype=np.int64)
        decided = np.zeros(len(self.given), dtype=bool)
        for sid, label in decisions.items():
            i = self.row_of.get(str(sid))
            if i is None:
                continue
            decided[i] = True
            if label is None:
                continue
            if isinstance(label, str):
                if label != CORRECT:
                    raise ValueError(f"decision for {sid!r} must be a class index, {CORRECT!r} or None, not {label!r}")
                trusted[i] = self.given[i]
            else:
                if not 0 <= int(label) < self.num_classes:
                    raise ValueError(f"decision for {sid!r}: class {label} outside 0..{self.num_classes - 1}")
                trusted[i] = int(label)
        return trusted, decided

    def class_factors(self, trusted: np.ndarray, cfg: RerankConfig) -> np.ndarray:
        """(C,) multiplier of the mislabel odds per given class (module docstring, update 2)."""
        C = self.num_classes
        known = trusted >= 0
        if cfg.class_strength == 0 or not known.any():
            return np.ones(C)
        g = self.given[known]
        n = np.bincount(g, minlength=C).astype(np.float64)
        errors = np.bincount(g, weights=(trusted[known] != g).astype(np.float64), minlength=C)
        predicted = np.bincount(g, weights=self.mislabel[known], minlength=C)
        q = predicted / np.maximum(n, 1)
        r = (errors + cfg.shrink * q) / np.maximum(n + cfg.shrink, 1e-9)
        factor = (_odds(r) / _odds(q)) ** cfg.class_strength
        return np.where(n > 0, factor, 1.0)

    def transition_factors(self, trusted: np.ndarray, cfg: RerankConfig) -> np.ndarray:
        """(C, C) multiplier of the other-class entries per (given, class) (module docstring, update 3)."""
        C = self.num_classes
        rows = np.arange(len(self.given))
        other = self.dist.copy()
        other[rows, self.given] = 0.0
        other /= np.maximum(other.sum(axis=1, keepdims=True), 1e-12)
        known = (trusted >= 0) & (trusted != self.given)
        if cfg.transition_strength == 0 or not known.any():
            return np.ones((C, C))
        base = np.zeros((C, C))
        np.add.at(base, self.given[known], other[known])
        n = np.bincount(self.given[known], minlength=C).astype(np.float64)
        base /= np.maximum(n, 1)[:, None]
        seen = np.zeros((C, C))
        np.add.at(seen, (self.given[known], trusted[known]), 1.0)
        observed = (seen + cfg.shrink * base) / (n + cfg.shrink)[:, None]
        factor = (np.clip(observed, 1e-3, None) / np.clip(base, 1e-3, None)) ** cfg.transition_strength
        factor[n == 0] = 1.0
        factor[np.arange(C), np.arange(C)] = 1.0
        return factor

    def rerank(self, decisions: Mapping[str, int | str | None], cfg: RerankConfig | None = None) -> dict:
        """Recomputed scores (module docstring) as arrays over all rows: ``label_distribution``
        (N, C), ``mislabel_score`` (N,), ``suggested_label`` (N,, the argmax, which may be the given
        label), ``relabel_label`` (N,, the most likely class other than the given one: what to
        relabel to if the face is wrong), ``decided`` (N,) bool and
        ``class_factor`` (C,). Rows of decided faces hold the run's original values."""
        cfg = cfg or RerankConfig()
        trusted, decided = self.trusted_labels(decisions)
        n, C = self.dist.shape
        rows = np.arange(n)
        found = self.knn >= 0
        nbr_label = np.where(found, trusted[np.clip(self.knn, 0, None)], -1)
        hist = np.zeros((n, C))
        has = nbr_label >= 0
        np.add.at(hist, (np.repeat(rows, self.knn.shape[1])[has.ravel()], nbr_label[has]), 1.0)
        hist /= np.maximum(found.sum(axis=1, keepdims=True), 1)
        mixed = self.dist + cfg.weight * hist
        mixed /= mixed.sum(axis=1, keepdims=True)
        if cfg.transition_strength:
            kept = mixed[rows, self.given].copy()
            mixed = mixed * self.transition_factors(trusted, cfg)[self.given]
            mixed[rows, self.given] = 0.0
            mixed *= ((1 - kept) / np.maximum(mixed.sum(axis=1), 1e-12))[:, None]
            mixed[rows, self.given] = kept

        factor = self.class_factors(trusted, cfg)
        p = np.clip(mixed[rows, self.given], 1e-9, 1 - 1e-9)
        wrong_odds = (1 - p) / p * factor[self.given]
        new_p = 1 / (1 + wrong_odds)
        out = mixed * ((1 - new_p) / (1 - p))[:, None]
        out[rows, self.given] = new_p

        # the run's score, its odds moved by as much as the updates moved 1 - dist[given]: equal to
        # 1 - out[given] where the run's score is 1 - dist[given] (scores.parquet), and exactly the
        # run's score (and order) where nothing moved
        p0 = np.clip(self.dist[rows, self.given], 1e-9, 1 - 1e-9)
        m0 = np.clip(self.mislabel, 1e-9, 1 - 1e-9)
        odds = m0 / (1 - m0) * (1 - new_p) / new_p * p0 / (1 - p0)
        score = odds / (1 + odds)
        labelled = np.flatnonzero(decided & (trusted >= 0))
        if self.embeddings is not None and cfg.head_applies(len(labelled)):
            score, out = self._head_update(score, out, trusted, decided, labelled, cfg)
        score = np.where(decided, self.mislabel, score)
        out[decided] = self.dist[decided]
        return {
            "label_distribution": out,
            "mislabel_score": np.clip(score, 0.0, 1.0),
            "suggested_label": out.argmax(axis=1),
            "relabel_label": best_other(self.given, out),
            "decided": decided,
            "class_factor": factor,
        }

    def _head_update(
        self,
        score: np.ndarray,
        dist: np.ndarray,
        trusted: np.ndarray,
        decided: np.ndarray,
        labelled: np.ndarray,
        cfg: RerankConfig,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(score, dist) of every row moved by the head refit (module docstring, update 4)."""
        assert self.embeddings is not None
        open_ = np.flatnonzero(~decided)
        anchors = open_[score[open_] <= np.quantile(score[open_], cfg.head_anchor_share)] if len(open_) else open_
        anchors = np.random.default_rng(0).permutation(anchors)[: cfg.head_anchors]
        rows = np.concatenate([labelled, anchors])
        labels = np.concatenate([trusted[labelled], self.given[anchors]])
        weights = np.concatenate([np.full(len(labelled), cfg.head_decided_weight), np.ones(len(anchors))])
        p = fit_predict(self.embeddings, rows, labels, weights, self.num_classes)
        post = noise_posterior(p, self.given, trusted) if cfg.head_noise_model else p
        h = _logit(1.0 - post[np.arange(len(score)), self.given])
        score = 1.0 / (1.0 + np.exp(-(_logit(score) + cfg.head_strength * (h - np.median(h)))))
        dist = dist + cfg.head_mix * p
        return score, dist / dist.sum(axis=1, keepdims=True)


def noise_posterior(p: np.ndarray, given: np.ndarray, trusted: np.ndarray) -> np.ndarray:
    """(N, C) P(true class | face, given label) from ``p`` (N, C) P(true class | face), ``given`` (N,)
    and ``trusted`` (N,, -1: none; a trusted label replaces its row of ``p`` in the counts): the
    noise matrix ``T[c, g]`` = P(given g | true c) is estimated by soft counts, and
    ``post[c] ∝ p[c] * T[c, given]`` (module docstring, update 4). Rows sum to 1; a row whose
    product is all zero keeps ``p``."""
    C = p.shape[1]
    counts = np.zeros((C, C))  # [given g, true c]
    q = p.copy()
    known = trusted >= 0
    q[known] = np.eye(C)[trusted[known]]
    np.add.at(counts, given, q)
    given_of_true = counts / np.maximum(counts.sum(axis=0, keepdims=True), 1e-12)  # [g, c] = T[c, g]
    post = p * given_of_true[given]
    total = post.sum(axis=1, keepdims=True)
    return np.where(total > 0, post / np.maximum(total, 1e-300), p)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def rerank_scores(
    scores: pd.DataFrame,
    decisions: Mapping[str, int | str | None],
    cfg: RerankConfig | None = None,
    embeddings: np.ndarray | None = None,
) -> pd.DataFrame:
    """``scores`` with new columns ``mislabel_score_rerank``, ``suggested_rerank``,
    ``relabel_rerank`` and ``label_distribution_rerank`` (decided faces: their original values) plus ``decided`` (bool).
    No original column is changed. ``embeddings``: (N, D) in the rows' order, for the head refit."""
    result = Reranker(scores, embeddings).rerank(decisions, cfg)
    out = scores.copy()
    out["mislabel_score_rerank"] = result["mislabel_score"].astype(np.float32)
    out["suggested_rerank"] = result["suggested_label"].astype(np.int32)
    out["relabel_rerank"] = result["relabel_label"].astype(np.int32)
    out["label_distribution_rerank"] = list(result["label_distribution"].astype(np.float32))
    out["decided"] = result["decided"]
    return out


def read_decisions(path, classes: list[str] | None = None) -> dict[str, int | str | None]:
    """Decisions from a CSV with columns ``sample_id`` and ``label``: a class index, a class name
    (needs ``classes``), ``correct``, or empty (decided, no label: e.g. excluded)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"sample_id", "label"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: decisions CSV needs columns sample_id and label (missing {sorted(missing)})")
    out: dict[str, int | str | None] = {}
    for sid, label in zip(table["sample_id"], table["label"]):
        label = label.strip()
        if label == "":
            out[sid] = None
        elif label == CORRECT:
            out[sid] = CORRECT
        elif label.lstrip("-").isdigit():
            out[sid] = int(label)
        elif classes and label in classes:
            out[sid] = classes.index(label)
        else:
            raise ValueError(f"{path}: unknown label {label!r} for {sid!r}")
    return out
