"""Options shared by ``curate train`` and ``curate run``: the config file and its overrides."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from curate.sizing import INIT_FROM_EPOCHS, MAX_PRETRAIN_EPOCHS, TABLE, start_sizes

F = TypeVar("F", bound=Callable[..., Any])
#: the size table's self-supervised start: the faces it passes over, and the sizes it is chosen for
_PASSES = max(r.pretrain_passes for r in TABLE)
_START = start_sizes()

_OPTIONS = (
    click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
                 help="Run directory (created; an existing one is resumed)."),
    click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                 help="A config.yaml written by an earlier run; the flags below override it."),
    click.option("--backbone", help="Backbone name (see `curate backbones`), e.g. resnet18, mobilenet_v2, fer_cnn."),
    click.option("--weights", callback=lambda ctx, param, value: _weights(value), metavar="FILE|imagenet",
                 help="Pretrained backbone weights: a local file (state dict or checkpoint), or imagenet for "
                      "torchvision's ImageNet weights of resnet18/34/50 and mobilenet_v2, downloaded once into "
                      "torch's cache ($TORCH_HOME) and read from there after."),
    click.option("--init-from", type=click.Path(exists=True, path_type=Path), metavar="RUN_DIR|model.pt",
                 help="Start from an earlier model: its trunk, and the heads of the classes it shares with this "
                      "dataset, by name or as the same expression spelt another way (anger = angry, happiness = "
                      f"happy, sadness = sad); new classes start fresh; then {INIT_FROM_EPOCHS} epochs unless --epochs "
                      "says otherwise; recorded in config.yaml."),
    click.option("--pretrain-epochs", type=click.IntRange(min=0), metavar="N",
                 help="First train the backbone self-supervised (SimCLR) on the same faces, labels unused, for N "
                      "epochs, and start from it (its cost is printed first; RUN_DIR/pretrain/; 0 = off) "
                      f"[default: the size table's, {MAX_PRETRAIN_EPOCHS} epochs ({_PASSES:,} faces passed above "
                      f"{_PASSES // MAX_PRETRAIN_EPOCHS:,}) for {_START[0]:,}-{_START[1]:,} faces without --weights or "
                      "--init-from, else 0; docs/small-data.md]."),
    click.option("--epochs", type=click.IntRange(min=1)),
    click.option("--batch-size", type=click.IntRange(min=2)),
    click.option("--image-size", type=click.IntRange(min=16), help="Square input size in pixels [default: 48]."),
    click.option("--small-input/--no-small-input", default=None, help="Lighter stem for small (e.g. 48x48) faces."),
    click.option("--ramp-a", type=float, help="Width of DMUE's ramp-up/down schedule in epochs."),
    click.option("--aux-fraction", type=click.FloatRange(0, 1, min_open=True),
                 help="Train each auxiliary branch on this random share of its rows per step (1 = all; "
                      "0.5 halves DMUE's extra cost)."),
    click.option("--balanced-sampler/--no-balanced-sampler", default=None,
                 help="Class-balanced draws with replacement (the paper) instead of every face once per "
                      "epoch [default: the config's, no]."),
    click.option("--faithful", is_flag=True, default=False,
                 help="Switch on every quirk of the official DMUE code (see docs)."),
    click.option("--device", help="auto, cpu, cuda, cuda:1, ... [default: auto]."),
    click.option("--amp", type=click.Choice(["auto", "on", "off"]),
                 help="Mixed-precision training: auto = on for CUDA and for CPUs with native bfloat16 "
                      "(AVX512-BF16/AMX, ~1.5x faster epochs), on, off [default: the config's, auto]."),
    click.option("--workers", "num_workers", type=click.IntRange(min=0), help="Data-loader worker processes."),
    click.option("--seed", type=int),
    click.option("--deterministic", is_flag=True, default=None, help="Bit-reproducible training (slower)."),
    click.option("--keep-snapshots", type=click.IntRange(min=0), metavar="N",
                 help="Keep the weights of the last N epochs in RUN_DIR/checkpoints/step_*.pt, e.g. to average "
                      "them [default: 0, only the resumable checkpoints/last.pt and model.pt]."),
)  # fmt: skip


def _weights(value: str | None) -> str | None:
    """``imagenet`` or the path of an existing file."""
    if value is None or value == "imagenet" or Path(value).is_file():
        return value
    raise click.BadParameter(f"{value} is not a file (give a weights file, or imagenet)", param_hint="--weights")


def train_options(command: F) -> F:
    """Add the run-directory, config and training override options."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command
