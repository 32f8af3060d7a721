"""Which floating-point precision a device computes fast, and the training autocast that follows.

Mixed precision on CPU: PyTorch's bfloat16 autocast runs convolutions and matrix products in
bfloat16 and keeps the weights, the optimizer state and the losses in float32. On a CPU with
native bfloat16 (AVX512-BF16 or AMX-BF16) a training step of the 48x48 ``fer_cnn`` takes ~0.6x
the float32 time, for DMUE and the plain network alike (``bench/bench_train_step.py``); on a CPU
without it bfloat16 is emulated and slower, so "auto" leaves it off there.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


def native_bf16(device: str | torch.device) -> bool:
    """True when ``device`` computes bfloat16 natively: a CUDA GPU that supports it, or a CPU with
    AVX512-BF16 or AMX-BF16 (read from /proc/cpuinfo; False where that cannot be read)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})


def training_autocast(device: torch.device, amp: str | bool) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, use a GradScaler) for ``TrainConfig.amp`` on ``device``.

    CUDA: "auto" or True -> bfloat16 where supported, else float16 with a GradScaler.
    CPU: "auto" -> bfloat16 where native (``native_bf16``), else off; True -> bfloat16.
    False, or any other device -> off.
    """
    if not amp:
        return None, False
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, False
        return torch.float16, True
    if device.type == "cpu" and (amp is True or native_bf16(device)):
        return torch.bfloat16, False
    return None, False


def autocast_for(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """The autocast context of a training step: ``dtype`` from :func:`training_autocast` (None: none)."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
