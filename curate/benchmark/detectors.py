"""The detectors a curator would otherwise use, applied to out-of-fold or in-sample outputs.

Every function returns (N,) arrays where higher = more likely mislabeled, plus the detector's own
yes/no flag where it has one. ``labels`` (N,) int given labels; ``probs``/``logits`` (N, C).
"""

from __future__ import annotations

import uuid

import numpy as np

from curate.neighbors import knn
from curate.scoring.scores import knn_disagreement


def cleanlab_detect(labels: np.ndarray, probs: np.ndarray) -> dict[str, np.ndarray]:
    """cleanlab 2.x: ``find_label_issues`` with its default filter (prune_by_noise_rate) and the
    label quality scores self_confidence and normalized_margin, turned into 1 - quality."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    return {
        "flag": np.asarray(find_label_issues(labels, probs), dtype=bool),
        "self_confidence": 1 - get_label_quality_scores(labels, probs, method="self_confidence"),
        "normalized_margin": 1 - get_label_quality_scores(labels, probs, method="normalized_margin"),
    }


def fiftyone_mistakenness(
    filepaths: list[str], labels: np.ndarray, logits: np.ndarray, classes: list[str]
) -> np.ndarray:
    """FiftyOne Brain ``compute_mistakenness`` (use_logits) on a temporary dataset; (N,) in [0, 1]."""
    import fiftyone as fo
    import fiftyone.brain as fob

    dataset = fo.Dataset(f"curate-bench-{uuid.uuid4().hex[:8]}")
    try:
        pred = logits.argmax(axis=1)
        dataset.add_samples(
            [fo.Sample(filepath=path, ground_truth=fo.Classification(label=classes[g]),
                       oof=fo.Classification(label=classes[p], logits=z.tolist()))
             for path, g, p, z in zip(filepaths, labels, pred, logits, strict=True)],
            progress=False,
        )  # fmt: skip
        fob.compute_mistakenness(dataset, "oof", label_field="ground_truth", use_logits=True, progress=False)
        return np.asarray(dataset.values("mistakenness"), dtype=np.float64)
    finally:
        dataset.delete()


def knn_label_disagreement(embeddings: np.ndarray, labels: np.ndarray, k: int = 10) -> np.ndarray:
    """Share of the k cosine nearest neighbours (faiss) whose given label differs; (N,) in [0, 1]."""
    return knn_disagreement(labels, knn(embeddings, k).indices)
