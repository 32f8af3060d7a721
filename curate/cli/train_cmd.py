"""``curate train``: train DMUE on a dataset into a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from curate.cli.options import as_click_errors, reader_options
from curate.cli.train_options import train_options


def table_and_config(dataset: str, kwargs: dict) -> tuple[Any, Any, Path]:
    """(LabelTable, RunConfig, run directory) from a train/run command's arguments, by the rules of
    :func:`curate.job_inputs.table_and_config`."""
    from curate.data.load import READER_KEYS
    from curate.job_inputs import table_and_config as job_inputs

    reader = {k: kwargs.pop(k) for k in READER_KEYS if k in kwargs}
    out = kwargs.pop("out")
    with as_click_errors():
        table, cfg = job_inputs(dataset, out, reader, log=click.echo, **kwargs)
    return table, cfg, out


@click.command("train")
@click.argument("dataset")
@reader_options
@train_options
def train(dataset: str, **kwargs) -> None:
    """Train DMUE on DATASET; write checkpoints, training dynamics, the exported target model and
    the resolved config (readable again with --config) into --out. Re-running resumes.

    \b
    Examples:
      curate train ../shared/data/ferplus-mini/labels.csv --out runs/mini
      curate train faces/ --format imagefolder --backbone resnet18 --epochs 20 --out runs/r18
      curate train faces/ --config runs/r18/config.yaml --epochs 30 --out runs/r18-long
    """
    from curate.data.errors import DataError
    from curate.jobs import TrainingInterrupted, train_job

    table, cfg, out = table_and_config(dataset, kwargs)
    cfg.set_explicitly("cross_fit")  # fold models are trained by `curate run`, never here: recorded as 0
    try:
        paths = train_job(table, cfg, out, log=click.echo)
    except (ValueError, TrainingInterrupted, DataError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"run directory: {paths.root}\nexported model: {paths.model}")
