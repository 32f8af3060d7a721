"""Cost of DMUE relative to the plain network, measured in one run on the same backbone, batch
and input size.

1. Training step: DMUE ``training_step`` + backward + Adam step (improved and faithful mode, and
   improved with ``aux_fraction=0.5``: each auxiliary branch on a random half of its rows)
   divided by a plain cross-entropy step (forward + backward + Adam) of the plain registry network
   (torchvision model, same stem). Goal on CPU, resnet18, batch 64: <= 2.0.
2. Inference: ``dmue_core.export.to_target_model(model)`` in eval mode divided by the plain network
   in eval mode (no_grad forward). Goal: 1.00 +- 0.05.
3. Mixed precision (``TrainConfig.amp``, on by default on CPUs with native bfloat16): the plain
   and the improved DMUE step under CPU bfloat16 autocast divided by the same step in float32.

All variants run round-robin (plain, improved, faithful, ... in every round) so that load
changes on a shared machine hit them alike; each time is the median over ``--iters`` rounds after
``--warmup`` untimed rounds, each ratio the median of the per-round ratios. Two clocks: wall time,
and the process CPU time (``time.process_time``), which other processes on a shared machine
disturb much less; with ``--threads 1`` the CPU time is the cleanest measure of work.
Default input 48x48 with ``small_input``; ``--size 112`` (or 224) adds that size with the
standard stem. Example: ``python bench/bench_train_step.py --threads 2 --size 112``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from dmue_core.backbones import plain_backbone
from dmue_core.config import DMUEConfig
from dmue_core.export import to_target_model
from dmue_core.model import DMUE
from dmue_core.precision import native_bf16

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def round_robin(fns: dict[str, Callable[[], object]], warmup: int, iters: int) -> dict[str, dict[str, list[float]]]:
    """{clock: {name: seconds per call}}, ``iters`` rounds, every function once per round."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, dict[str, list[float]]] = {c: {name: [] for name in fns} for c in CLOCKS}
    for _ in range(iters):
        for name, fn in fns.items():
            start = {c: clock() for c, clock in CLOCKS.items()}
            fn()
            for c, clock in CLOCKS.items():
                times[c][name].append(clock() - start[c])
    return times


def median_ratio(num: list[float], den: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(num, den, strict=True))


def plain_train_step(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], object]:
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4, weight_decay=1e-4)
    net.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()

    return step


def dmue_train_step(model: DMUE, x: torch.Tensor, y: torch.Tensor, epoch: int) -> Callable[[], object]:
    optimizer = torch.optim.Adam(model.param_groups(1e-4, 1e-3), weight_decay=1e-4)
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model.training_step(x, y, epoch).loss.backward()
        optimizer.step()

    return step


def under_bf16_autocast(step: Callable[[], object]) -> Callable[[], object]:
    """``step`` inside CPU bfloat16 autocast, as the trainer runs it with ``amp`` on."""

    def run() -> None:
        with torch.autocast("cpu", torch.bfloat16):
            step()

    return run


def inference(net: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    net.eval()

    @torch.no_grad()
    def run() -> None:
        net(x)

    return run


def batch(size: int, batch_size: int, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images and labels cycling over the classes (every class has >= 2 samples)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 3, size, size, generator=g)
    y = torch.arange(batch_size) % num_classes
    return x, y


def bench_size(args: argparse.Namespace, size: int, small_input: bool) -> list[str]:
    x, y = batch(size, args.batch, args.classes)
    epoch = 100  # past the ramps: every loss term has full weight
    torch.manual_seed(0)
    plain_net = plain_backbone(args.backbone, args.classes, small_input=small_input)
    steps = {"plain": plain_train_step(plain_net, x, y)}
    infers = {"plain": inference(plain_net, x)}
    modes = {
        "improved": DMUEConfig(args.classes, backbone=args.backbone, small_input=small_input),
        "faithful": DMUEConfig.faithful(args.classes, backbone=args.backbone, small_input=small_input),
        "aux_half": DMUEConfig(args.classes, backbone=args.backbone, small_input=small_input, aux_fraction=0.5),
    }
    for mode, cfg in modes.items():
        torch.manual_seed(0)
        model = DMUE(cfg)
        steps[mode] = dmue_train_step(model, x, y, epoch)
        infers[mode] = inference(to_target_model(model), x)
    mixed = {"plain": "plain_bf16", "improved": "improved_bf16"}
    for fp32, bf16 in mixed.items():
        steps[bf16] = under_bf16_autocast(steps[fp32])
    step_times = round_robin(steps, args.warmup, args.iters)
    infer_times = round_robin(infers, args.warmup, args.iters)

    def ms(t: list[float]) -> str:
        return f"{statistics.median(t) * 1e3:.0f} ms"

    rows = []
    for clock in CLOCKS:
        step_s, infer_s = step_times[clock], infer_times[clock]
        rows.append(
            f"{size}x{size} small_input={small_input} [{clock} clock]: plain CE step "
            f"{ms(step_s['plain'])}, plain inference {ms(infer_s['plain'])}"
        )
        for fp32, bf16 in mixed.items():
            rows.append(
                f"  {fp32:9s} step under bf16 autocast {ms(step_s[bf16])} -> "
                f"{median_ratio(step_s[bf16], step_s[fp32]):.2f} x its fp32 step "
                f"(native bf16: {native_bf16('cpu')})"
            )
        for mode in modes:
            rows.append(
                f"  {mode:9s} DMUE step {ms(step_s[mode])} -> train ratio "
                f"{median_ratio(step_s[mode], step_s['plain']):.2f} (goal <= 2.0); exported "
                f"inference {ms(infer_s[mode])} -> inference ratio "
                f"{median_ratio(infer_s[mode], infer_s['plain']):.3f} (goal 1.00 +- 0.05)"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--classes", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=None, help="also measure this input size (standard stem)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"backbone {args.backbone}, batch {args.batch}, C={args.classes}, "
        f"torch.set_num_threads({args.threads}), CPU, fp32, median of {args.iters} rounds "
        f"after {args.warmup} warm-up"
    )
    sizes = [(48, True)] + ([(args.size, False)] if args.size else [])
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    for size, small_input in sizes:
        for row in bench_size(args, size, small_input):
            print(row, flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f} (> threads: other processes shared the cores)")


if __name__ == "__main__":
    main()
