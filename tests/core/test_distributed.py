"""Two gloo processes on CPU, forked with torch.multiprocessing and configured through the torchrun
environment variables (RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT); forking skips
the ~5 s torch import per process.

Loss agreement. DMUE's in-batch statistics are per process under DDP (see the
``dmue_core.distributed`` docstring), so the 2-process and 1-process losses only agree where the
math is per sample: with the model in eval mode (BatchNorm on running statistics, no dropout),
the global batch split so that both ranks hold the same class counts, the rank-averaged ``soft``
(per-sample MSE, equal local batch sizes) and ``aux`` (per-class CE means over equally sized
S_c) equal the one-process values up to float32 summation order: |diff| < 1e-5 for O(1) values
(observed ~1e-7). ``wce`` (PUE class means) and ``sp`` (Gram matrices) use local-batch statistics
and legitimately differ, so they are not compared.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import Dataset

from dmue_core import distributed
from dmue_core.config import DMUEConfig, TrainConfig
from dmue_core.model import DMUE
from dmue_core.trainer import EpochBatchSampler, load_dynamics, train

WORLD = 2
NUM_CLASSES = 4
NUM_SAMPLES = 32
BATCH = 8  # global; 4 per rank
EPOCHS = 2
PARTS_EPOCH = 3  # ramp weights past their start, all terms active
TOLERANCE = 1e-5


class Faces(Dataset):
    """3x16x16 noise images with a class-dependent offset; labels cycle 0, 1, 2, 3, 0, ..."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.labels = [i % NUM_CLASSES for i in range(NUM_SAMPLES)]
        self.x = torch.randn(NUM_SAMPLES, 3, 16, 16, generator=g)
        self.x += torch.tensor(self.labels, dtype=torch.float32).view(-1, 1, 1, 1) / 2

    def __len__(self) -> int:
        return NUM_SAMPLES

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        return self.x[i], self.labels[i], i


def make_model() -> DMUE:
    torch.manual_seed(0)
    return DMUE(DMUEConfig(num_classes=NUM_CLASSES, backbone="fer_cnn", small_input=True, ramp_a=2))


def make_cfg() -> TrainConfig:
    return TrainConfig(
        epochs=EPOCHS,
        batch_size=BATCH,
        lr_backbone=1e-3,
        lr_classifier=1e-2,
        weight_decay=1e-4,
        balanced_sampler=True,
        seed=3,
        deterministic=True,
        amp=False,
        device="cpu",
        num_workers=0,
        ckpt_every=3,
    )


def global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """16 samples, labels 0,0,1,1,2,2,3,3,...: rank r (positions r::2) gets 2 of each class."""
    data = Faces()
    order = [b + c + NUM_CLASSES * k for b in (0, 8) for c in range(NUM_CLASSES) for k in (0, 1)]
    x = torch.stack([data.x[i] for i in order])
    y = torch.tensor([data.labels[i] for i in order])
    return x, y


def _worker(rank: int, workdir: Path, port: int) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(WORLD), RANK=str(rank), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    ctx = distributed.setup("cpu")
    # 1) loss parts of one global batch, through the DDP wrapper
    model = make_model().eval()
    x, y = global_batch()
    step = distributed.wrap_training_step(model, ctx)
    out = step(x[ctx.rank :: ctx.world_size], y[ctx.rank :: ctx.world_size], PARTS_EPOCH)
    out.loss.backward()  # DDP expects the backward of every forward
    names = sorted(out.parts)
    parts = torch.stack([out.parts[k].detach().float() for k in names])
    dist.all_reduce(parts)
    parts /= ctx.world_size
    # 2) a short training run through the normal trainer path
    trained = make_model()
    result = train(trained, Faces(), make_cfg(), workdir / "run", resume=False, progress=False)
    checksum = sum(p.detach().double().sum().item() for p in trained.parameters())
    report = {
        "parts": dict(zip(names, parts.tolist(), strict=True)),
        "checksum": checksum,
        "completed": result.completed,
        "global_step": result.global_step,
    }
    (workdir / f"rank{ctx.rank}.json").write_text(json.dumps(report))
    distributed.teardown(ctx)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_train_and_match_one_process(tmp_path: Path) -> None:
    workers = mp.start_processes(_worker, args=(tmp_path, _free_port()), nprocs=WORLD, join=False, start_method="fork")
    deadline = time.monotonic() + 120
    while not workers.join(timeout=1):  # raises if a worker failed, with its traceback
        if time.monotonic() > deadline:
            for proc in workers.processes:
                proc.kill()
            pytest.fail("the 2-process run did not finish within 120 s")
    # one process, same global batch and weights
    x, y = global_batch()
    reference = make_model().eval().training_step(x, y, PARTS_EPOCH)
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]

    # loss parts: 2 processes (rank-averaged) vs 1 process
    for name in ("soft", "aux"):
        assert abs(reports[0]["parts"][name] - reference.parts[name].item()) < TOLERANCE, name
    for name in ("ramp_up", "ramp_down"):
        assert reports[0]["parts"][name] == reference.parts[name].item()

    # training: same steps, identical weights on both ranks (gradients were averaged)
    assert all(r["completed"] and r["global_step"] == EPOCHS * NUM_SAMPLES // BATCH for r in reports)
    assert reports[0]["checksum"] == reports[1]["checksum"]
    run = tmp_path / "run"
    assert (run / "checkpoints" / "last.pt").is_file()
    assert len((run / "train_log.jsonl").read_text().splitlines()) == EPOCHS
    # dynamics gathered from both ranks: draws per idx equal the one global sample sequence
    seen = load_dynamics(run)["seen"]
    sampler = EpochBatchSampler(Faces().labels, BATCH, balanced=True, seed=make_cfg().seed)
    for epoch in range(EPOCHS):
        expected = np.bincount(sampler.global_order(epoch), minlength=NUM_SAMPLES)
        assert np.array_equal(seen[epoch], expected)
