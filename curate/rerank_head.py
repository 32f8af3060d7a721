"""A linear head refit on the stored embeddings with the curator's labels (issue 22, rerank update 4).

The run's target head learnt from the given labels, a third of them wrong on FER2013. A curator's
decisions are clean labels; a multinomial logistic regression on the run's embeddings (the
``scores.embeddings.npy`` side file, L2-normalised) fitted to them, plus the undecided faces the
run is surest of with their given labels as anchors (so every class keeps examples of what it
looks like), gives a second opinion of each undecided face's class in about a second: no image is
read again, nothing of the run is retrained.

Inputs: ``embeddings`` (N, D) float, ``labels`` (M,) int class indices of the rows ``rows`` (M,),
``weights`` (M,) float > 0. Output of :func:`fit_predict`: (N, C) class probabilities, rows summing to 1.
"""

from __future__ import annotations

import numpy as np
import torch


def normalised(embeddings: np.ndarray) -> np.ndarray:
    """(N, D) float32 rows scaled to unit length (all-zero rows stay 0)."""
    e = np.asarray(embeddings, dtype=np.float32)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def fit_predict(
    embeddings: np.ndarray,
    rows: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    num_classes: int,
    *,
    l2: float = 1.0,
    max_iter: int = 100,
) -> np.ndarray:
    """Fit ``softmax(x W + b)`` to (``embeddings[rows]``, ``labels``) minimising the ``weights``-weighted
    sum of cross-entropies plus ``l2`` / 2 ||W||^2 (L-BFGS, deterministic), and return its (N, C)
    probabilities for every row of ``embeddings``."""
    x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
    xs, y = x[torch.as_tensor(rows)], torch.as_tensor(labels, dtype=torch.long)
    w = torch.as_tensor(weights, dtype=torch.float32)
    W = torch.zeros(x.shape[1], num_classes, requires_grad=True)
    b = torch.zeros(num_classes, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (torch.nn.functional.cross_entropy(xs @ W + b, y, reduction="none") * w).sum() + 0.5 * l2 * (W * W).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return torch.softmax(x @ W + b, dim=1).double().numpy()
