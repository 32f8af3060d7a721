"""torchrun / DDP support for :func:`dmue_core.trainer.train` (one code path for 1..N processes).

Launch a script that calls ``train(...)`` with ``torchrun --nproc_per_node N script.py``. The
trainer calls :func:`setup`, which reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` and initialises
the process group (NCCL for CUDA devices, gloo on CPU) unless the caller already did. ``out_dir``
must be visible to every rank (one machine or a shared file system): all ranks read the resume
checkpoint, only rank 0 writes checkpoints, logs and dynamics.

Work split. ``TrainConfig.batch_size`` is the *global* batch; each rank gets
``batch_size / world_size`` samples. All ranks draw the same global per-epoch sample sequence and
rank r takes its positions r, r+W, r+2W, ... (``trainer.EpochBatchSampler``), so the union of the
rank batches at step s is exactly the one-process batch s. Gradients are averaged by
``DistributedDataParallel``; per-sample dynamics and loss tallies are summed onto rank 0 at every
checkpoint and epoch end.

What differs from one process with the same global batch. DMUE uses in-batch statistics, and
under DDP they are computed per process, over the local batch only:

* BatchNorm (trunk, branches, the shared BN-neck including the mining pass on one-class subsets)
  normalises with local batch statistics; running statistics are rank 0's (DDP broadcasts buffers
  at every forward). No ``SyncBatchNorm``: the number of BN-neck calls per step depends on which
  classes the local batch holds, so synchronised BN would issue mismatched collectives and hang.
* PUE: the class-mean cosine similarities m_ic that feed the uncertainty MLP are means over the
  local batch, so sigma, and with it ``wce``, differ from the one-process values.
* L_sp: Gram matrices only hold pairs within a rank; cross-rank pairs are missing.
* Mean-reduced losses: DDP averages per-rank means. For per-sample terms over equal local batch
  sizes (``soft``; ``wce`` given sigma) that equals the global mean; the auxiliary CE of branch c
  averages over S_c = {y != c}, whose size differs between ranks, so it is re-weighted.
* Classes with fewer than 2 samples occur more often in the smaller local batches (reported in
  the epoch's notes counts).

The official code has the same per-GPU statistics (its README notes slightly lower accuracy).
Not implemented: all-gathering target embeddings with ``torch.distributed.nn.functional.all_gather``
(autograd-aware) to compute the PUE class means over the global batch; this needs a hook in
``DMUE.training_step``, which computes sigma internally.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: rank in [0, world_size), its device and the collective device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool  # this module created the process group and destroys it in teardown()

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def comm_device(self) -> torch.device:
        """NCCL collectives need CUDA tensors; gloo takes CPU tensors."""
        return self.device if self.enabled and dist.get_backend() == "nccl" else torch.device("cpu")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"``: ``cuda:<local_rank>`` when CUDA is available, else CPU;
    ``"cuda"``: ``cuda:<local_rank>``; anything else as given."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def setup(device: str, *, backend: str | None = None, timeout: timedelta | None = None) -> DistContext:
    """Read the torchrun environment and join (or create) the process group: ``backend`` (default
    NCCL for CUDA devices, gloo otherwise) and collective ``timeout`` (default torch's)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    owns_group = False
    if dist.is_available() and dist.is_initialized():
        world_size, rank = dist.get_world_size(), dist.get_rank()
    elif world_size > 1:
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
        backend = backend or ("nccl" if resolved.type == "cuda" else "gloo")
        dist.init_process_group(backend, **({"timeout": timeout} if timeout is not None else {}))
        owns_group = True
    return DistContext(rank, world_size, local_rank, resolved, owns_group)


def teardown(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


class _TrainingStep(nn.Module):
    """Exposes ``model.training_step`` as ``forward`` so DDP hooks it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, y: Tensor, epoch: int) -> Any:
        return self.model.training_step(x, y, epoch)


def wrap_training_step(model: nn.Module, ctx: DistContext) -> Callable[[Tensor, Tensor, int], Any]:
    """``model.training_step`` itself in one process, a DDP-wrapped equivalent under torchrun.

    ``find_unused_parameters``: a branch gets no samples when the local batch lacks its classes.
    Wrapping broadcasts rank 0's parameters and buffers to all ranks.
    """
    if not ctx.enabled:
        return model.training_step
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(_TrainingStep(model), device_ids=device_ids, find_unused_parameters=True)


def any_rank(flags: Sequence[bool], ctx: DistContext) -> list[bool]:
    """Element-wise logical OR of ``flags`` over all ranks."""
    if not ctx.enabled:
        return list(flags)
    t = torch.tensor([int(f) for f in flags], dtype=torch.int32, device=ctx.comm_device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def sum_to_main(tensors: Sequence[Tensor], ctx: DistContext) -> None:
    """In place: on rank 0 each tensor becomes its sum over ranks; on the other ranks it is zeroed."""
    if not ctx.enabled:
        return
    for t in tensors:
        buf = t.to(ctx.comm_device)
        dist.reduce(buf, dst=0, op=dist.ReduceOp.SUM)
        if ctx.is_main:
            t.copy_(buf)
        else:
            t.zero_()


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``obj`` (picklable), indexed by rank, on every rank."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
