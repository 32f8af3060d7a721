"""Run a trained model over a dataset, in eval mode, chunk by chunk.

Two kinds of model are accepted:

* a ``dmue_core.DMUE`` (a run directory's checkpoint): target logits, target embedding and the
  latent distribution mined by the auxiliary branch of each face's given label
  (``score_outputs``: one trunk pass, the target branch and one routed auxiliary branch per face);
* a plain exported target model (any torchvision classifier): target logits and the input of its
  final linear layer as the embedding; no auxiliary branches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm


@dataclass
class Chunk:
    """Model outputs for ``n`` consecutive rows of the dataset."""

    idx: np.ndarray  # (n,) int64 row indices into the dataset
    emb: np.ndarray  # (n, D) float32 target embedding (pre-classifier)
    logits: np.ndarray  # (n, C) float32 target logits
    latent: np.ndarray | None  # (n, C) float32 latent distribution (0 at the given label); None for plain models


def _final_linear(model: nn.Module) -> nn.Linear:
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    if last is None:
        raise ValueError("the model has no nn.Linear classifier to take embeddings from")
    return last


@torch.no_grad()
def iterate_outputs(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = True,
) -> Iterator[Chunk]:
    """Yield one ``Chunk`` per batch, in dataset order. Items are ``(x, y, idx)``."""
    model = model.to(device).eval()
    is_dmue = hasattr(model, "score_outputs")
    captured: list[torch.Tensor] = []
    hook = None
    if not is_dmue:
        hook = _final_linear(model).register_forward_pre_hook(lambda m, inp: captured.append(inp[0]))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    try:
        for x, y, idx in tqdm(loader, desc="scoring", unit="batch", disable=not progress):
            x = x.to(device, non_blocking=True)
            if is_dmue:
                emb, logits, lat = model.score_outputs(x, y.to(device))
                latent = lat.float().cpu().numpy()
            else:
                captured.clear()
                logits = model(x)
                emb = captured[-1].flatten(1)
                latent = None
            yield Chunk(
                idx=np.asarray(idx, dtype=np.int64),
                emb=emb.float().cpu().numpy(),
                logits=logits.float().cpu().numpy(),
                latent=latent,
            )
    finally:
        if hook is not None:
            hook.remove()
