"""``curate train``: train DMUE on a dataset into a run directory."""

from __future__ import annotations

import click

from curate.cli.options import READER_KEYS, load_table, reader_options
from curate.cli.train_options import resolve_config, train_options


def table_and_config(dataset: str, kwargs: dict):
    """(LabelTable, RunConfig, run directory) from a train/run command's arguments.

    The table is read with the resolved reader options: those given on the command line, else those
    recorded in ``--config``'s ``data`` section (so a config replays the same columns and class
    order), else the defaults. DATASET itself and ``--skip-report`` (an output) are never replayed.
    """
    reader = {k: kwargs.pop(k) for k in READER_KEYS if k in kwargs}
    out = kwargs.pop("out")
    cfg = resolve_config({"dataset": dataset, **reader}, **kwargs)
    replayed = {k: v for k, v in cfg.data.items() if k in READER_KEYS and k != "skip_report"}
    table = load_table(dataset, **{**replayed, "skip_report": reader.get("skip_report")})
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
      curate train ../shared/data/ferplus-mini/labels.csv --label-column fer2013_label --out runs/mini
      curate train faces/ --format imagefolder --backbone resnet18 --epochs 20 --out runs/r18
      curate train faces/ --config runs/r18/config.yaml --epochs 30 --out runs/r18-long
    """
    from curate.jobs import TrainingInterrupted, train_job

    table, cfg, out = table_and_config(dataset, kwargs)
    try:
        paths = train_job(table, cfg, out, log=click.echo)
    except (ValueError, TrainingInterrupted) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"run directory: {paths.root}\nexported model: {paths.model}")
