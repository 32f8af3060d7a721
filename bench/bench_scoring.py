"""Scoring throughput vs plain inference of the exported model, measured in one run.

Usage: python bench/bench_scoring.py [--backbone fer_cnn] [--n 4096] [--size 48] [--threads 2]

Scoring = what ``curate score`` runs per image: one trunk pass, the target branch and the given
label's auxiliary branch for the latent distribution, rows visited sorted by label, eval mode,
channels-last. Plain inference = the exported target-only model (a plain torchvision-style
backbone) through the same loader, in channels-last (its fastest format here) and, for reference,
in the default contiguous format. Scoring runs with the mining pass in fp32 and in bf16. Rounds
run round-robin; each figure is the best of ``--rounds``. Goal: scoring / plain >= 0.9.
Both sides run one view per face; ``curate score``'s defaults cost more: the mirror-image TTA
doubles it, and the auxiliary consensus runs all C auxiliary branches on every face (docs/benchmark.md,
"Scoring speed"; the benchmark's speed stage measures both on real faces).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import TensorDataset

from curate.scoring.infer import iterate_outputs
from dmue_core import DMUE, DMUEConfig
from dmue_core.export import to_target_model
from dmue_core.precision import native_bf16


class _Items(TensorDataset):
    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return x, y, i


def _drain(model, data, order, precision: str, batch: int) -> np.ndarray | None:
    latents = [
        c.latent
        for c in iterate_outputs(model, data, batch_size=batch, order=order, mining_precision=precision, progress=False)
    ]
    return None if latents[0] is None else np.concatenate(latents)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="fer_cnn")
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = DMUE(DMUEConfig(num_classes=7, backbone=args.backbone, small_input=True)).eval()
    plain = to_target_model(model).eval()
    contiguous = to_target_model(model).eval()  # its own copy: iterate_outputs converts in place
    x = torch.randn(args.n, 3, args.size, args.size)
    y = torch.randint(0, 7, (args.n,))
    data = _Items(x, y)
    by_label = np.argsort(y.numpy(), kind="stable")

    @torch.no_grad()
    def plain_contiguous() -> None:
        for s in range(0, args.n, args.batch):
            contiguous(x[s : s + args.batch])

    runs: dict[str, Callable[[], object]] = {
        "plain inference, contiguous (eager default)": plain_contiguous,
        "plain inference, channels-last": lambda: _drain(plain, data, None, "fp32", args.batch),
        "scoring, mining fp32": lambda: _drain(model, data, by_label, "fp32", args.batch),
        "scoring, mining bf16": lambda: _drain(model, data, by_label, "bf16", args.batch),
    }
    best = {name: float("inf") for name in runs}
    for fn in runs.values():
        fn()  # warm-up
    for _ in range(args.rounds):
        for name, fn in runs.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    ips = {name: args.n / s for name, s in best.items()}
    lat32 = _drain(model, data, by_label, "fp32", args.batch)
    lat16 = _drain(model, data, by_label, "bf16", args.batch)

    print(
        f"{args.backbone}, {args.size}x{args.size}, batch {args.batch}, {args.threads} threads, {args.n} images, "
        f"native bf16: {native_bf16('cpu')}"
    )
    for name, v in ips.items():
        print(f"{name:45s} {v:8.0f} images/s")
    base = ips["plain inference, channels-last"]
    for name in ("scoring, mining fp32", "scoring, mining bf16"):
        print(f"{name} / plain channels-last = {ips[name] / base:.2f}  (goal >= 0.9)")
    print(f"plain channels-last / plain contiguous = {base / ips['plain inference, contiguous (eager default)']:.2f}")
    print(
        f"latent distribution, bf16 vs fp32 mining: max |diff| {np.abs(lat16 - lat32).max():.2e}, "
        f"mean |diff| {np.abs(lat16 - lat32).mean():.2e}"
    )


if __name__ == "__main__":
    main()
