"""Per-face scores from model outputs, in plain numpy (N faces, C classes, k neighbours).

Inputs
    given        (N,) int        the given labels
    target_probs (N, C) float    target-branch softmax
    latent       (N, C) float    DMUE latent distribution: aux branch ``given`` on the face, 0 at given
    consensus    (N, C) float    DMUE auxiliary consensus: the C-1 aux branches that trained on the
                                 face's given label, per class the mean over those able to predict
                                 it (``dmue_core.losses.aux_consensus``); None for plain models
    sigma        (N,) float      batch-free pairwise uncertainty in (0, 1); low = the face's similarity
                                 profile disagrees with its label
    knn_indices  (N, k) int      rows of the k nearest neighbours among the N faces; -1 = no neighbour
                                 found (an approximate index can leave slots empty), ignored

The believed distribution mixes four views of the face, each a distribution over C classes:

    label_distribution = normalise( w_model * target_probs
                                    + w_knn * knn_histogram
                                    + w_latent * (1 - sigma) * latent
                                    + w_aux * consensus )

The latent term moves mass away from the given label in proportion to the face's uncertainty,
towards the classes DMUE mined for it. The consensus is a second classifier's view from the same
training run: the auxiliary branches are trained with plain cross-entropy and no uncertainty
scaling, so they kept predicting the classes that the paper's sigma made the target branch give
up (docs/scores.md). Without auxiliary branches (a plain exported model) the term is left out. Then

    mislabel_score  = 1 - label_distribution[given]
    suggested_label = argmax label_distribution; for a face in a review queue (verdict not ``ok``)
                      the most likely class other than its given label (``suggest``)
    face_ambiguity  = entropy(model view) / log(C), the model view = target_probs, averaged with
                      consensus where there is one
    ambiguity_score = ( (1 - a) * face_ambiguity + a * mean over neighbours of face_ambiguity
                        + w_c * contested ) / (1 + w_c)
    contested       = mean of two class means of mislabel_score: over the faces given the face's
                      class, and over the faces whose label_distribution puts it in the same class

Ambiguity is a property of the face, so the face's own term never reads its given label: it is the
spread of what the model predicts for it. Two pooled terms make it steadier: ambiguity belongs to a
region of face space, so half comes from the face's neighbours (``ambiguity_neighbours`` = a =
0.5); and classes whose labels the crowd contests are more ambiguous, so a class term is added with
weight ``ambiguity_class`` = w_c = 1. The class term reads the class two ways because each fails
alone: pooled by given label it ranks the classes that random flips land in first (on synthetic
faces with 20 % uniform flips the score's Spearman with the true ambiguity fell to -0.06); pooled
by the believed class it misses FER2013's contested labels. Until 2026-12-05 the face term was the
mean of entropy(label_distribution) and 1 - sigma, and the class term by given label only: both
read the label, so flipped faces looked ambiguous (docs/robustness.md section 10 has the
comparison on six kinds of data). Both weights 0 give the face term alone, e.g. for one face
scored on its own.

All three scores lie in [0, 1]. The weights are a ``ScoreConfig``; the defaults and their measured
quality on the FERPlus benchmark are documented in docs/scores.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from curate.noise import class_noise_prior

#: ``ScoreConfig.mining_precision`` values
MINING_PRECISIONS = ("auto", "fp32", "bf16")
#: ``ScoreConfig.tta`` values: ``"hflip"`` averages each face's outputs with its mirror image's
TTA_MODES = ("none", "hflip")


@dataclass
class ScoreConfig:
    """Weights of the four views in ``label_distribution`` and of the pooled terms of
    ``ambiguity_score`` (see the module docstring), the neighbour count, the precision
    of the mining pass (``"auto"``: bfloat16 where the hardware has it natively, ``"fp32"``,
    ``"bf16"``) and test-time augmentation (``"hflip"``: every output is the mean over the face
    and its mirror image, at twice the model cost; ``"none"``); see ``curate.scoring.infer``."""

    w_model: float = 1.0
    w_knn: float = 0.5
    w_latent: float = 1.0
    w_aux: float = 1.5
    class_prior: float = 0.5
    ambiguity_neighbours: float = 0.5
    ambiguity_class: float = 1.0
    k: int = 10
    mining_precision: str = "auto"
    tta: str = "hflip"

    def __post_init__(self) -> None:
        if self.mining_precision not in MINING_PRECISIONS:
            raise ValueError(
                f"score.mining_precision must be one of {MINING_PRECISIONS}, not {self.mining_precision!r}"
            )
        if self.tta not in TTA_MODES:
            raise ValueError(f"score.tta must be one of {TTA_MODES}, not {self.tta!r}")
        if not 0.0 <= self.ambiguity_neighbours <= 1.0:
            raise ValueError(f"score.ambiguity_neighbours must be in [0, 1], not {self.ambiguity_neighbours}")
        if self.class_prior < 0:
            raise ValueError(f"score.class_prior must be >= 0, not {self.class_prior}")
        if self.ambiguity_class < 0:
            raise ValueError(f"score.ambiguity_class must be >= 0, not {self.ambiguity_class}")

    def to_dict(self) -> dict:
        return asdict(self)


def knn_histogram(knn_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(N, C) share of each class among the found neighbours' given labels (-1 slots ignored;
    a row with no neighbour is all zeros)."""
    n, k = knn_labels.shape
    rows, labels = np.repeat(np.arange(n), k), knn_labels.ravel()
    found = labels >= 0
    hist = np.zeros((n, num_classes), dtype=np.float64)
    np.add.at(hist, (rows[found], labels[found]), 1.0)
    return hist / np.maximum(hist.sum(axis=1, keepdims=True), 1.0)


def knn_disagreement(labels: np.ndarray, neighbor_indices: np.ndarray) -> np.ndarray:
    """(N,) float64 in [0, 1]: share of each face's neighbours whose label differs from its own.

    ``labels`` (N,) int; ``neighbor_indices`` (N, k) int indices into ``labels``, -1 entries (no
    neighbour found) ignored. A face without any neighbour (an all-zero or non-finite embedding:
    the scoring summary counts them) gets 0: no neighbour disagrees, so kNN never flags it. 0
    rather than NaN keeps the column in [0, 1] everywhere it goes (scores.parquet, FiftyOne's
    float field and its filters, the flag rule's ``>=`` threshold, the benchmark's rankings).
    """
    labels = np.asarray(labels)
    nbrs = np.asarray(neighbor_indices)
    if labels.ndim != 1 or nbrs.ndim != 2 or len(nbrs) != len(labels):
        raise ValueError(
            f"need labels (N,) and neighbor_indices (N, k) with the same N, got {labels.shape} and {nbrs.shape}"
        )
    if nbrs.size and nbrs.max() >= len(labels):
        raise ValueError(f"neighbor_indices holds index {nbrs.max()} but there are only {len(labels)} labels")
    found = nbrs >= 0
    differs = (labels[np.where(found, nbrs, 0)] != labels[:, None]) & found
    return differs.sum(axis=1) / np.maximum(found.sum(axis=1), 1)


def softmax(logits: np.ndarray) -> np.ndarray:
    """(N, C) row-wise softmax of (N, C) logits, computed stably."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def normalised_entropy(dist: np.ndarray) -> np.ndarray:
    """(N,) entropy of each row divided by log(C): 0 = one-hot, 1 = uniform."""
    p = np.clip(dist, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1) / np.log(dist.shape[1])


def neighbour_labels(given: np.ndarray, knn_indices: np.ndarray) -> np.ndarray:
    """(N, k) int the given label of each neighbour in ``knn_indices`` (N, k) int; -1 where none."""
    given = np.asarray(given, dtype=np.int64)
    knn_indices = np.asarray(knn_indices, dtype=np.int64)
    return np.where(knn_indices >= 0, given[np.clip(knn_indices, 0, None)], -1)


def label_distribution(
    target_probs: np.ndarray,
    latent: np.ndarray,
    sigma: np.ndarray,
    knn_labels: np.ndarray,
    cfg: ScoreConfig,
    consensus: np.ndarray | None = None,
) -> np.ndarray:
    """(N, C) the believed distribution (rows sum to 1); see the module docstring."""
    C = target_probs.shape[1]
    mix = cfg.w_model * target_probs.astype(np.float64)
    if cfg.w_knn:
        mix += cfg.w_knn * knn_histogram(knn_labels, C)
    if cfg.w_latent:
        mix += cfg.w_latent * (1.0 - sigma.astype(np.float64))[:, None] * latent
    if cfg.w_aux and consensus is not None:
        mix += cfg.w_aux * consensus.astype(np.float64)
    total = mix.sum(axis=1, keepdims=True)
    if (total <= 0).any():
        raise ValueError("all score weights are zero")
    return mix / total


def apply_class_prior(
    dist: np.ndarray, given: np.ndarray, noise: np.ndarray, overall: float, strength: float
) -> np.ndarray:
    """(N, C) ``dist`` (rows sum to 1) with each face's belief in its given label moved by its class's
    estimated noise rate ``noise`` (C,) against the ``overall`` rate: the odds of the given label
    are multiplied by ``[(1 - r_y) / r_y  /  ((1 - r) / r)] ** strength`` and the other entries
    rescaled to keep the row's sum (a Bayes update of the prior, ``strength`` 1 in full, 0 not at
    all). Rates are clipped to [0.01, 0.99]."""
    if strength == 0 or len(given) == 0:
        return dist
    r_y, r = np.clip(noise, 0.01, 0.99), float(np.clip(overall, 0.01, 0.99))
    factor = ((1 - r_y) / r_y / ((1 - r) / r)) ** strength
    rows = np.arange(len(given))
    p = np.clip(dist[rows, given], 1e-9, 1 - 1e-9)
    odds = p / (1 - p) * factor[given]
    new_p = odds / (1 + odds)
    out = dist * ((1 - new_p) / (1 - p))[:, None]
    out[rows, given] = new_p
    return out


def model_view(target_probs: np.ndarray, consensus: np.ndarray | None) -> np.ndarray:
    """(N, C) what the model predicts for each face, its given label unread: ``target_probs``
    (N, C), averaged with the auxiliary ``consensus`` (N, C) where there is one."""
    probs = np.asarray(target_probs, dtype=np.float64)
    return probs if consensus is None else (probs + np.asarray(consensus, dtype=np.float64)) / 2


def face_ambiguity(view: np.ndarray) -> np.ndarray:
    """(N,) in [0, 1]: the normalised entropy of the model view (N, C) (:func:`model_view`)."""
    return np.clip(normalised_entropy(view), 0.0, 1.0)


def neighbour_mean(values: np.ndarray, knn_indices: np.ndarray) -> np.ndarray:
    """(N,) mean of ``values`` (N,) over each face's found neighbours (-1 slots ignored); a face
    with no neighbour keeps its own value."""
    found = knn_indices >= 0
    picked = np.where(found, values[np.clip(knn_indices, 0, None)], 0.0)
    n = found.sum(axis=1)
    return np.where(n > 0, picked.sum(axis=1) / np.maximum(n, 1), values)


def class_mean(values: np.ndarray, classes: np.ndarray, num_classes: int) -> np.ndarray:
    """(N,) the mean of ``values`` (N,) over the faces of the same entry of ``classes`` (N,) int."""
    sums = np.bincount(classes, weights=values, minlength=num_classes)
    counts = np.bincount(classes, minlength=num_classes)
    return (sums / np.maximum(counts, 1))[classes]


def ambiguity_score(
    given: np.ndarray, dist: np.ndarray, view: np.ndarray, knn_indices: np.ndarray, cfg: ScoreConfig
) -> np.ndarray:
    """(N,) float32 in [0, 1]: the face term of the model ``view`` (N, C) pooled with its
    neighbours' and the class term of ``mislabel_score`` (``1 - dist[given]``, ``dist`` (N, C)),
    as the module docstring says."""
    own = face_ambiguity(view)
    a = cfg.ambiguity_neighbours
    local = (1 - a) * own + a * neighbour_mean(own, knn_indices) if a else own
    C = dist.shape[1]
    overturned = 1.0 - dist[np.arange(len(given)), given]
    contested = (class_mean(overturned, given, C) + class_mean(overturned, dist.argmax(axis=1), C)) / 2
    score = (local + cfg.ambiguity_class * contested) / (1 + cfg.ambiguity_class)
    return np.clip(score, 0.0, 1.0).astype(np.float32)


def compute_scores(
    given: np.ndarray,
    target_probs: np.ndarray,
    latent: np.ndarray,
    sigma: np.ndarray,
    knn_indices: np.ndarray,
    cfg: ScoreConfig | None = None,
    consensus: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """All per-face scores as arrays: label_distribution, mixed_distribution (the same before the
    class prior), mislabel_score, ambiguity_score, knn_disagreement (the suggestion needs the
    verdicts: :func:`suggest`).
    ``consensus`` None: the auxiliary view is left out."""
    cfg = cfg or ScoreConfig()
    given = np.asarray(given, dtype=np.int64)
    knn_indices = np.asarray(knn_indices, dtype=np.int64)
    mixed = label_distribution(target_probs, latent, sigma, neighbour_labels(given, knn_indices), cfg, consensus)
    dist = mixed
    if cfg.class_prior:
        noise, overall = class_noise_prior(given, target_probs, target_probs.shape[1])
        dist = apply_class_prior(mixed, given, noise, overall, cfg.class_prior)
    rows = np.arange(len(given))
    return {
        "label_distribution": dist.astype(np.float32),
        "mixed_distribution": mixed.astype(np.float32),
        "mislabel_score": np.clip(1.0 - dist[rows, given], 0.0, 1.0).astype(np.float32),
        "ambiguity_score": ambiguity_score(given, dist, model_view(target_probs, consensus), knn_indices, cfg),
        "knn_disagreement": knn_disagreement(given, knn_indices).astype(np.float32),
    }


def suggest(given: np.ndarray, dist: np.ndarray, in_queue: np.ndarray) -> np.ndarray:
    """(N,) int32 suggested label: the argmax of ``dist`` (N, C), and for the faces ``in_queue``
    (N,) bool (a verdict other than ``ok``) the most likely class other than the given one, since a
    face is in a queue because its label is in doubt. Where a model fits its training faces, the
    argmax of a flagged face is often still its given label: on ferplus-mini (30 epochs, 3 folds)
    52 % of the true errors had it, and the suggestion was right on 25.7 % of them against 31.8 %
    with this rule (FERPlus Training 41.0 -> 49.6 %, PublicTest 36.1 -> 43.8 %; docs/small-data.md)."""
    return np.where(in_queue, best_other(given, dist), np.asarray(dist).argmax(axis=1)).astype(np.int32)


def best_other(given: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """(N,) int the most likely class in ``dist`` (N, C) other than each face's ``given`` label."""
    given = np.asarray(given, dtype=np.int64)
    other = np.array(dist, dtype=np.float64)
    other[np.arange(len(given)), given] = -np.inf
    return other.argmax(axis=1)
