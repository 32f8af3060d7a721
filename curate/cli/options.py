"""Reader options shared by every command that reads a dataset (for :func:`curate.data.load.load_table`).

This module imports no pandas at import time so that ``curate --help`` stays fast: the format
choices come from the registry (:mod:`curate.formats`), which is light.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

import click

from curate.scoring.scores import MINING_PRECISIONS, TTA_MODES  # numpy only

F = TypeVar("F", bound=Callable[..., object])


class RegistryChoice(click.Choice):
    """A choice among names read from a registry when they are needed (not when the command is
    defined), so that a format registered later (a plugin, a test) is offered too."""

    def __init__(self, names: Callable[[], Sequence[str]]) -> None:
        self.names = names
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.names())


def reader_format_choices() -> tuple[str, ...]:
    """``auto`` and every registered dataset format."""
    from curate.formats import format_names

    return ("auto", *format_names())


_OPTIONS = (
    click.option(
        "--format",
        "format",
        type=RegistryChoice(reader_format_choices),
        help="Dataset format; auto detects it from the path and the CSV header [default: auto; train and run with "
        "--config: the format it recorded].",
    ),
    click.option(
        "--path-column",
        metavar="NAME",
        help="CSV column with the image path (default: path, filepath, file, image, ...).",
    ),
    click.option(
        "--label-column",
        metavar="NAME",
        help="CSV column with the label, a class name or id (FiftyOne: the Classification field).",
    ),
    click.option(
        "--split-column",
        metavar="NAME",
        help="CSV column with the split (default: 'split' when present; FiftyOne: the split field).",
    ),
    click.option(
        "--id-column",
        metavar="NAME",
        help="CSV column with a unique sample id (default: the path as written).",
    ),
    click.option("--classes", metavar="A,B,...", help="Comma-separated class names, in label-id order."),
    click.option(
        "--split",
        "splits",
        multiple=True,
        metavar="NAME",
        help="Keep only this split (repeatable); --split '' keeps every split (e.g. over a --config's).",
    ),
    click.option(
        "--ferplus-csv",
        type=click.Path(exists=True, dir_okay=False),
        help="FERPlus fer2013new.csv whose votes join a fer2013.csv by row.",
    ),
    click.option(
        "--on-bad",
        type=click.Choice(["error", "skip"]),
        default=None,
        help="Bad row or image: stop with an error, or skip and report it [default: error; inspect: skip].",
    ),
    click.option(
        "--skip-report",
        type=click.Path(dir_okay=False, writable=True),
        metavar="FILE",
        help="Write skipped items and reader warnings to this CSV.",
    ),
)


def reader_options(command: F) -> F:
    """Add the reader options: keyword arguments :data:`curate.data.load.READER_KEYS` of the command."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


mining_precision_option = click.option(
    "--mining-precision",
    type=click.Choice(MINING_PRECISIONS),
    help="Precision of DMUE's mining pass when scoring: auto = bfloat16 where the CPU/GPU has it "
    "natively (faster, scores move by ~1e-3), else fp32 [default: the run's config, auto].",
)

tta_option = click.option(
    "--tta",
    type=click.Choice(TTA_MODES),
    help="Test-time augmentation when scoring: hflip = average each face with its mirror image "
    "(better scores, twice the model cost), none = one pass [default: the run's config, hflip].",
)


@contextmanager
def as_click_errors() -> Iterator[None]:
    """Turn the library's input errors (bad data, a reader option or config that cannot be used)
    into click's one-line error with the same message."""
    from curate.data.errors import DataError, OptionError
    from curate.run_config import ConfigError

    try:
        yield
    except (DataError, OptionError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
