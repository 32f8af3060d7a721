"""``curate run``: the main job - train, score, neighbours, flags - in one command."""

from __future__ import annotations

import click

from curate.cli.options import mining_precision_option, reader_options, tta_option
from curate.cli.train_cmd import table_and_config
from curate.cli.train_options import train_options


@click.command("run")
@click.argument("dataset")
@reader_options
@train_options
@click.option("--top", default=10, show_default=True, help="How many flagged faces to list at the end.")
@click.option("--load/--no-load", default=True, show_default=True, help="Load the scores into FiftyOne at the end.")
@click.option("--name", help="FiftyOne dataset name [default: the run directory's name].")
@mining_precision_option
@tta_option
def run(dataset: str, top: int, load: bool, name: str | None, mining_precision: str | None,
        tta: str | None, **kwargs) -> None:
    """Train DMUE on DATASET, score every face (label distribution, uncertainty, mislabel and
    ambiguity scores, suggested label, faiss neighbours, verdict), write RUN_DIR/scores.parquet and
    load it into FiftyOne.
    Re-running resumes training where it stopped.

    \b
    Examples:
      curate run ../shared/data/ferplus-mini/labels.csv --label-column fer2013_label --out runs/mini
      curate run faces/ --format imagefolder --backbone resnet18 --epochs 15 --out runs/faces
    """
    from curate.jobs import TrainingInterrupted, run_job
    from curate.report import top_flagged
    from curate.run_config import override

    table, cfg, out = table_and_config(dataset, kwargs)
    override(cfg, "score", mining_precision=mining_precision, tta=tta)
    try:
        result = run_job(table, cfg, out, log=click.echo)
    except (ValueError, TrainingInterrupted) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"scores: {result.scores.path}")
    click.echo(result.scores.summary())
    click.echo(top_flagged(result.scores.path, top))
    if load:
        from curate.fiftyone import load_scores

        name = name or result.paths.root.resolve().name
        load_scores(result.scores.path, name)
        click.echo(f"\nloaded into FiftyOne as '{name}': review with `curate app {name}`")
