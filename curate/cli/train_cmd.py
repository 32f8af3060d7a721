"""``curate train``: train DMUE on a dataset into a run directory."""

from __future__ import annotations

from pathlib import Path

import click

from curate.cli.options import READER_KEYS, absolute_if_path, load_table, reader_options
from curate.cli.train_options import resolve_config, train_options


def table_and_config(dataset: str, kwargs: dict):
    """(LabelTable, RunConfig, run directory) from a train/run command's arguments.

    The base config is ``--config``, else the existing run's own ``config.yaml`` (re-running on an
    ``--out`` resumes its settings), else the defaults; flags override it. The table is read with the
    resolved reader options: those given on the command line, else those recorded in the base
    config's ``data`` section (so a config replays the same columns and class order), else the
    defaults. DATASET itself and ``--skip-report`` (an output) are never replayed.
    """
    from curate.runs import RunPaths

    reader = {k: kwargs.pop(k) for k in READER_KEYS if k in kwargs}
    out = kwargs.pop("out")
    own = RunPaths(Path(out)).config
    if kwargs.get("config_file") is None and own.exists():
        click.echo(f"resuming {out}: settings from {own}, flags override them")
        kwargs["config_file"] = own
    cfg = resolve_config({"dataset": absolute_if_path(dataset), **reader}, **kwargs)
    replayed = {k: v for k, v in cfg.data.items() if k in READER_KEYS and k != "skip_report"}
    table = load_table(dataset, **{**replayed, "skip_report": reader.get("skip_report")}, decodable=True)
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
    try:
        paths = train_job(table, cfg, out, log=click.echo)
    except (ValueError, TrainingInterrupted, DataError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"run directory: {paths.root}\nexported model: {paths.model}")
