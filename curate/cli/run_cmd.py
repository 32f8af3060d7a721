"""``curate run``: the main job - train, score, neighbours, flags - in one command."""

from __future__ import annotations

from pathlib import Path

import click

from curate.cli.options import as_click_errors, mining_precision_option, reader_options, tta_option
from curate.cli.train_cmd import table_and_config
from curate.cli.train_options import train_options


@click.command("run")
@click.argument("dataset")
@reader_options
@train_options
@click.option("--top", default=10, show_default=True, help="How many flagged faces to list at the end.")
@click.option("--load/--no-load", default=True, show_default=True, help="Load the scores into FiftyOne at the end.")
@click.option("--name", help="FiftyOne dataset name [default: the run directory's name].")
@click.option(
    "--cross-fit",
    type=click.IntRange(min=0),
    metavar="K",
    help="Train K fold models besides the full one, so every face is scored by a model that did not "
    "train on it: the share of faces to flag is estimated from them and from the full model, and the larger "
    "estimate is used (K times the training cost; 0 = off) "
    "[default: 3 below 10,000 faces, else 2; docs/small-data.md].",
)
@click.option(
    "--fold-models",
    type=click.IntRange(min=1),
    metavar="M",
    help="With --cross-fit K: train only M of the K fold models; the share to flag is then estimated on "
    "the faces of their folds alone, a held-out sample (M(K-1)/K of a training instead of K-1) [default: with "
    "the size table's K, the fewest whose folds hold 1,000 faces: all 3 below 1,500 faces, 2 below 3,000, then 1; "
    "with your own --cross-fit, all K].",
)
@mining_precision_option
@tta_option
def run(
    dataset: str,
    top: int,
    load: bool,
    name: str | None,
    cross_fit: int | None,
    fold_models: int | None,
    mining_precision: str | None,
    tta: str | None,
    **kwargs,
) -> None:
    """Train DMUE on DATASET, score every face (label distribution, uncertainty, mislabel and
    ambiguity scores, suggested label, faiss neighbours, verdict), write RUN_DIR/scores.parquet and
    load it into FiftyOne.
    Re-running resumes training where it stopped.

    \b
    Examples:
      curate run ../shared/data/ferplus-mini/labels.csv --out runs/mini
      curate run faces/ --format imagefolder --backbone resnet18 --epochs 15 --out runs/faces
      curate run small-batch/ --format imagefolder --cross-fit 4 --out runs/small
      curate run big.csv --cross-fit 5 --fold-models 1 --out runs/big
    """
    from curate.data.errors import DataError
    from curate.job_inputs import other_splits
    from curate.jobs import TrainingInterrupted, run_job
    from curate.report import top_flagged
    from curate.run_config import check_fold_count, check_fold_models, override

    table, cfg, out = table_and_config(dataset, kwargs)
    override(cfg, "score", mining_precision=mining_precision, tta=tta)
    if fold_models is not None and cross_fit is None:
        raise click.BadParameter(
            "needs --cross-fit K: how many folds the fold models are of", param_hint="--fold-models"
        )
    if cross_fit is not None:
        try:
            check_fold_count(cross_fit)
            check_fold_models(cross_fit, fold_models or 0)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--cross-fit / --fold-models") from None
        cfg.cross_fit, cfg.cross_fit_models = cross_fit, fold_models or 0
        cfg.set_explicitly("cross_fit")
    name = name or Path(out).resolve().name
    if load:
        _check_dataset_name(name, Path(out).resolve() / "scores.parquet")
    with as_click_errors():
        reference = other_splits(dataset, cfg.data, table)
    try:
        result = run_job(table, cfg, out, log=click.echo, reference=reference)
    except (ValueError, TrainingInterrupted, DataError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"scores: {result.scores.path}")
    click.echo(result.scores.summary())
    click.echo(top_flagged(result.scores.path, top))
    if load:
        from curate.fiftyone import ScoresFileError, load_scores

        try:
            load_scores(result.scores.path, name)
        except (ScoresFileError, ConnectionError) as exc:
            raise click.ClickException(
                f"{exc}\nthe scores are written; load them with `curate load {result.scores.path} --name NAME`"
            ) from exc
        click.echo(f"\nloaded into FiftyOne as '{name}': review with `curate app {name}`")


def _check_dataset_name(name: str, scores: Path) -> None:
    """Fail before training when the FiftyOne dataset ``name`` exists and holds another run's
    scores (or is not curate's): `curate run` never merges runs silently."""
    from curate.fiftyone import ScoresFileError, loaded_from

    try:
        previous = loaded_from(name)
    except ScoresFileError as exc:
        raise click.ClickException(str(exc)) from exc
    if previous and str(scores) not in previous:
        raise click.ClickException(
            f"FiftyOne dataset {name!r} holds the scores of {', '.join(previous)}, not of this run's {scores}; "
            f"pass --name to load this run into its own dataset (or --no-load), or add its faces to {name!r} "
            f"afterwards with `curate load {scores} --name {name}`"
        )
