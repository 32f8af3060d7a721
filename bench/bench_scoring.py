"""Scoring throughput vs plain inference of the exported model, measured in one run.

Usage: python bench/bench_scoring.py [--backbone fer_cnn] [--n 4096] [--size 48] [--threads 2]

Scoring = what ``curate score`` runs per image (one trunk pass, target branch, the routed
auxiliary branch for the latent distribution; eval mode). Plain inference = the exported
target-only model (a plain torchvision-style backbone). Goal: ratio >= 0.9.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import TensorDataset

from curate.scoring.infer import iterate_outputs
from dmue_core import DMUE, DMUEConfig
from dmue_core.export import to_target_model


class _Items(TensorDataset):
    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return x, y, i


def _images_per_s(fn, n: int, repeats: int = 3) -> float:
    fn()  # warm-up
    best = min(_timed(fn) for _ in range(repeats))
    return n / best


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="fer_cnn")
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = DMUE(DMUEConfig(num_classes=7, backbone=args.backbone, small_input=True)).eval()
    plain = to_target_model(model)
    x = torch.randn(args.n, 3, args.size, args.size)
    y = torch.randint(0, 7, (args.n,))
    data = _Items(x, y)

    def score() -> None:
        for _ in iterate_outputs(model, data, batch_size=args.batch, progress=False):
            pass

    @torch.no_grad()
    def infer() -> None:
        for s in range(0, args.n, args.batch):
            plain(x[s : s + args.batch])

    ips_plain = _images_per_s(infer, args.n)
    ips_score = _images_per_s(score, args.n)
    print(f"{args.backbone}, {args.size}x{args.size}, batch {args.batch}, {args.threads} threads, {args.n} images")
    print(f"plain inference (exported model): {ips_plain:8.0f} images/s")
    print(f"scoring (DMUE score_outputs):     {ips_score:8.0f} images/s")
    print(f"scoring / plain = {ips_score / ips_plain:.2f}  (goal >= 0.9)")


if __name__ == "__main__":
    main()
