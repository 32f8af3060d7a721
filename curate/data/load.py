"""``load_table``: read a dataset with the reader options a command takes, as one call.

It adds to :func:`curate.data.read_dataset` what every command needs: the class list as text,
the split filter, the image decode check and the skip report.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from curate.data import read_dataset
from curate.data.errors import DataError, OptionError, SkipReport
from curate.data.images import FILE_HINT, check_images

#: The reader options :func:`load_table` takes by keyword (the CLI's reader options, and what a run's
#: config records in its ``data`` section).
READER_KEYS = (
    "format", "path_column", "label_column", "split_column", "id_column",
    "classes", "splits", "ferplus_csv", "on_bad", "skip_report",
)  # fmt: skip


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr)


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
    log: Callable[[str], object] = _to_stderr,
) -> pd.DataFrame:
    """Read ``dataset`` with the reader options (``classes`` comma-separated; None = the default).

    Skipped items go to ``report``, or, when none is given, are summarised through ``log``; with
    ``skip_report`` they are also written to that CSV. ``splits`` keeps only those splits (each must
    exist; ``''`` keeps every split). ``decodable`` with ``on_bad="skip"`` also decodes every image
    and skips those that do not decode (the readers only check that the files exist and are not
    empty), for commands that will load every image. Raises DataError for bad data and
    OptionError for a split the dataset lacks or an unusable ``skip_report`` path.
    """
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
    finally:
        if skip_report:
            report.to_csv(skip_report)
    if echo_summary and report.items:
        log(report.summary())
    splits = [s for s in splits if s]  # '' = every split
    if splits:
        unknown = sorted(set(splits) - set(df["split"]))
        if unknown:
            known = ", ".join(dict.fromkeys(df["split"]))
            raise OptionError(f"{dataset}: split(s) {', '.join(unknown)} not found (splits: {known}). Fix --split.")
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
                raise OptionError(
                    f"--skip-report {report} would overwrite or add to the input {given}; write the report elsewhere"
                )
    if not target.parent.is_dir():
        raise OptionError(f"--skip-report {report}: folder {report.parent} does not exist")


def _drop_undecodable(df: pd.DataFrame, report: SkipReport) -> pd.DataFrame:
    """``df`` without the rows whose image does not decode; each one recorded in ``report``."""
    paths = df["filepath"].tolist()
    problems = check_images(paths, workers=os.cpu_count() or 1)
    bad = [i for i, problem in enumerate(problems) if problem]
    for i in bad:
        report.add(DataError(paths[i], None, problems[i], FILE_HINT))
    return df.drop(index=df.index[bad]).reset_index(drop=True) if bad else df
