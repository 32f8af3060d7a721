"""``curate score``: score a dataset with a trained model, headless (no FiftyOne)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from curate.cli.options import as_click_errors, mining_precision_option, reader_options, tta_option


@click.command("score")
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.argument("dataset")
@reader_options
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output scores.parquet.")
@click.option(
    "--csv",
    "csv_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the records as CSV (vectors as JSON lists).",
)
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(min=1))
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, ...")
@mining_precision_option
@tta_option
@click.option(
    "--shards",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Score in this many local processes, each on its share of the faces (docs/scale.md); "
    "under torchrun, --nproc_per_node sets it instead.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
def score(
    model: Path,
    dataset: str,
    out: Path,
    csv_out: Path | None,
    batch_size: int,
    device: str,
    mining_precision: str | None,
    tta: str | None,
    shards: int,
    force: bool,
    **reader,
) -> None:
    """Score every face of DATASET with MODEL (a run directory from `curate train`/`curate run`, or
    its exported model.pt) and write the per-face records to --out.

    \b
    Examples:
      curate score runs/mini ../shared/data/ferplus-mini/labels.csv --out mini.parquet
      curate score runs/mini/model.pt new_batch/ --format imagefolder --out new.parquet --csv new.csv
      curate score runs/mini big.csv --out big.parquet --shards 4
      torchrun --nproc_per_node 4 -m curate score runs/mini big.csv --out big.parquet
    """
    from curate.data.errors import DataError
    from curate.data.load import load_table
    from curate.data.table import describe
    from curate.jobs import score_job
    from curate.records import read_scores, write_csv
    from curate.scoring import launch

    for path in (out, csv_out):
        if path is not None and path.exists() and not force:
            raise click.ClickException(f"{path} exists; pass --force to overwrite it")
    for path in (out, csv_out):
        if path is not None and not path.parent.is_dir():
            raise click.ClickException(f"output folder {path.parent} does not exist")
    probe = out.parent / f".{out.name}.{os.getpid()}.probe"  # one per process under torchrun
    try:
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise click.ClickException(f"cannot write into {out.parent}: {exc.strerror}") from exc
    with as_click_errors():
        table = load_table(dataset, **reader, decodable=True)
    click.echo(describe(table))
    try:
        result = launch.run(
            shards,
            score_job,
            model,
            table,
            out,
            reader=reader,
            batch_size=batch_size,
            device=device,
            mining_precision=mining_precision,
            tta=tta,
            log=click.echo,
        )
    except (ValueError, DataError) as exc:
        raise click.ClickException(str(exc)) from exc
    if result is None:  # a torchrun rank other than 0: its shard is scored, rank 0 writes --out
        return
    if csv_out:
        write_csv(read_scores(out), csv_out)
    click.echo(f"scored {result.rows} faces -> {out}")
    click.echo(result.summary())
