"""Reader options shared by every command that reads a dataset, and ``load_table``.

This module imports no pandas at import time so that ``curate --help`` stays fast: the format
choices come from the registry (:mod:`curate.formats`), which is light.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from curate.scoring.scores import MINING_PRECISIONS, TTA_MODES  # numpy only

if TYPE_CHECKING:
    import pandas as pd

    from curate.data.errors import SkipReport

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


#: Keyword arguments that :func:`reader_options` adds to a command (all passed to :func:`load_table`).
READER_KEYS = (
    "format", "path_column", "label_column", "split_column", "id_column",
    "classes", "splits", "ferplus_csv", "on_bad", "skip_report",
)  # fmt: skip

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
    """Add the reader options (passed to the command as keyword arguments for :func:`load_table`)."""
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


def absolute_if_path(source: str) -> str:
    """``source`` as an absolute path when it names an existing file or folder (so a run's record
    stays valid from any working directory), else unchanged (e.g. ``fiftyone:NAME``)."""
    return str(Path(source).resolve()) if Path(source).exists() else source


def load_table(
    dataset: str,
    *,
    format: str | None = None,
    path_column: str | None = None,
    label_column: str | None = None,
    split_column: str | None = None,
    id_column: str | None = None,
    classes: str | None = None,
    splits: Sequence[str] = (),
    ferplus_csv: str | None = None,
    on_bad: str | None = None,
    skip_report: str | None = None,
    report: SkipReport | None = None,
    decodable: bool = False,
) -> pd.DataFrame:
    """Read ``dataset`` with the reader options; a DataError becomes a ``click.ClickException``.

    Skipped items go to ``report``, or, when none is given, are summarised on stderr; with
    ``skip_report`` they are also written to that CSV. ``splits`` keeps only those splits
    (each must exist). ``decodable`` with ``on_bad="skip"`` also decodes every image and skips
    those that do not decode (the readers only check that the files exist and are not empty), for
    commands that will load every image.
    """
    from curate.data import DataError, SkipReport, read_dataset

    if skip_report:
        _check_report_path(Path(skip_report), [dataset, ferplus_csv])
    echo_summary = report is None
    report = report if report is not None else SkipReport()
    try:
        df = read_dataset(
            dataset,
            format=format or "auto",
            on_bad=on_bad or "error",
            report=report,
            path_column=path_column,
            label_column=label_column,
            split_column=split_column,
            id_column=id_column,
            classes=[c.strip() for c in classes.split(",") if c.strip()] if classes else None,
            ferplus_csv=ferplus_csv,
        )
        if decodable and on_bad == "skip":
            df = _drop_undecodable(df, report)
    except DataError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if skip_report:
            report.to_csv(skip_report)
    if echo_summary and report.items:
        click.echo(report.summary(), err=True)
    splits = [s for s in splits if s]  # '' = every split
    if splits:
        unknown = sorted(set(splits) - set(df["split"]))
        if unknown:
            known = ", ".join(dict.fromkeys(df["split"]))
            raise click.ClickException(
                f"{dataset}: split(s) {', '.join(unknown)} not found (splits: {known}). Fix --split."
            )
        df = df[df["split"].isin(splits)].reset_index(drop=True)
    return df


def _check_report_path(report: Path, inputs: list[str | None]) -> None:
    """Refuse a --skip-report path that is an input (or lies inside an input folder) or whose
    folder does not exist, before anything is read or written."""
    target = report.resolve()
    for given in inputs:
        if given and Path(given).exists():
            source = Path(given).resolve()
            if target == source or (source.is_dir() and target.is_relative_to(source)):
                raise click.ClickException(
                    f"--skip-report {report} would overwrite or add to the input {given}; write the report elsewhere"
                )
    if not target.parent.is_dir():
        raise click.ClickException(f"--skip-report {report}: folder {report.parent} does not exist")


def _drop_undecodable(df: pd.DataFrame, report: SkipReport) -> pd.DataFrame:
    """``df`` without the rows whose image does not decode; each one recorded in ``report``."""
    import os

    from curate.data.errors import DataError
    from curate.data.images import FILE_HINT, check_images

    paths = df["filepath"].tolist()
    problems = check_images(paths, workers=os.cpu_count() or 1)
    bad = [i for i, problem in enumerate(problems) if problem]
    for i in bad:
        report.add(DataError(paths[i], None, problems[i], FILE_HINT))
    return df.drop(index=df.index[bad]).reset_index(drop=True) if bad else df
