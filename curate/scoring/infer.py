"""Run a trained model over a dataset, in eval mode, chunk by chunk.

Two kinds of model are accepted:

* a ``dmue_core.DMUE`` (a run directory's checkpoint): target logits, target embedding, the
  latent distribution mined by the auxiliary branch of each face's given label and, with
  ``consensus=True``, the auxiliary consensus (the view of the C-1 auxiliary branches that trained
  on the face's given label, ``dmue_core.losses.aux_consensus``; ``score_outputs``: one trunk pass, the target branch and
  either one routed auxiliary branch per face or all C of them);
* a plain exported target model (any torchvision classifier): target logits and the input of its
  final linear layer as the embedding; no auxiliary branches.

Speed: the model and the images run in channels-last memory format (measured 1.2-1.6x faster
convolutions on CPU for both kinds of model, ``bench/bench_scoring.py``). Rows may be visited in
any ``order``; scoring visits them sorted by given label, so that without the consensus most
batches reach a single auxiliary branch in one call instead of C small ones. The mining pass can run in bfloat16
(``mining_precision``): on hardware with native bfloat16 it costs ~0.6x, and the mined
distribution moves by ~1e-3 (docs/benchmark.md, "Scoring speed"). Test-time augmentation ``tta="hflip"``
runs every batch a second time mirrored left-right and averages the embeddings, logits and latent
distributions of the two views (twice the model cost; docs/benchmark.md, "Scoring speed").
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from curate.scoring.scores import MINING_PRECISIONS, TTA_MODES
from dmue_core.precision import native_bf16


@dataclass
class Chunk:
    """Model outputs for ``n`` rows of the dataset."""

    idx: np.ndarray  # (n,) int64 row indices into the dataset
    emb: np.ndarray  # (n, D) float32 target embedding (pre-classifier)
    logits: np.ndarray  # (n, C) float32 target logits
    latent: np.ndarray | None  # (n, C) float32 latent distribution (0 at the given label); None for plain models
    consensus: np.ndarray | None  # (n, C) float32 auxiliary consensus; None for plain models or consensus=False


def resolve_mining_precision(precision: str, device: str | torch.device) -> str:
    """``"fp32"`` or ``"bf16"`` for a requested ``precision`` (``"auto"``: bf16 where native)."""
    if precision not in MINING_PRECISIONS:
        raise ValueError(f"mining precision must be one of {MINING_PRECISIONS}, not {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


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
    order: Sequence[int] | None = None,
    mining_precision: str = "fp32",
    tta: str = "none",
    consensus: bool = False,
    progress: bool = True,
) -> Iterator[Chunk]:
    """Yield one ``Chunk`` per batch of rows taken in ``order`` (default: dataset order). Items
    are ``(x, y, idx)``. ``mining_precision``: ``"fp32"`` or ``"bf16"`` (DMUE models only);
    ``tta``: ``"none"`` or ``"hflip"`` (outputs averaged over the batch and its mirror image);
    ``consensus``: also compute the auxiliary consensus (DMUE models; C auxiliary passes).
    The model is moved to ``device`` and to channels-last format in place."""
    if mining_precision not in ("fp32", "bf16"):
        raise ValueError(f"mining_precision must be 'fp32' or 'bf16', not {mining_precision!r}")
    _check_tta(tta)
    model = model.to(device, memory_format=torch.channels_last).eval()
    is_dmue = hasattr(model, "score_outputs")
    captured: list[torch.Tensor] = []
    hook = None
    if not is_dmue:
        hook = _final_linear(model).register_forward_pre_hook(lambda m, inp: captured.append(inp[0]))
    sampler = None if order is None else [int(i) for i in order]
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler)
    try:
        for x, y, idx in tqdm(loader, desc="scoring", unit="batch", disable=not progress):
            x = x.to(device, memory_format=torch.channels_last, non_blocking=True)
            views = tta_views(x, tta)
            if is_dmue:
                y = y.to(device)
                outs = [
                    model.score_outputs(v, y, mining_bf16=mining_precision == "bf16", consensus=consensus)
                    for v in views
                ]
            else:
                outs = []
                for v in views:
                    captured.clear()
                    logits = model(v)
                    outs.append((captured[-1].flatten(1), logits, None, None))
            emb, logits, latent, agree = (mean_of_views([o[i] for o in outs]) for i in range(4))
            yield Chunk(
                idx=np.asarray(idx, dtype=np.int64),
                emb=emb.float().cpu().numpy(),
                logits=logits.float().cpu().numpy(),
                latent=None if latent is None else latent.float().cpu().numpy(),
                consensus=None if agree is None else agree.float().cpu().numpy(),
            )
    finally:
        if hook is not None:
            hook.remove()


def _check_tta(tta: str) -> None:
    if tta not in TTA_MODES:
        raise ValueError(f"tta must be one of {TTA_MODES}, not {tta!r}")


def tta_views(x: torch.Tensor, tta: str) -> tuple[torch.Tensor, ...]:
    """The views of a batch x [B,3,H,W] whose outputs ``tta`` averages: (x,) for ``"none"``,
    (x, x mirrored left-right in channels-last format) for ``"hflip"``."""
    _check_tta(tta)
    if tta == "none":
        return (x,)
    return x, torch.flip(x, dims=[3]).contiguous(memory_format=torch.channels_last)


def mean_of_views(outputs: list[torch.Tensor | None]) -> torch.Tensor | None:
    """Element-wise mean of one output over the views (None when the model has no such output)."""
    if outputs[0] is None:
        return None
    return outputs[0] if len(outputs) == 1 else torch.stack(outputs).mean(dim=0)
