"""``curate bench``: DMUE against cleanlab, FiftyOne Brain and kNN on FERPlus, in one run."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("bench")
@click.argument("labels_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the stages, results.md, results.json and plots; re-running resumes.",
)
@click.option("--quick", is_flag=True, help="The quick preset (meant for ferplus-mini: minutes on 2 cores).")
@click.option("--epochs", type=int, help="Epochs per model (every method gets the same budget).")
@click.option("--backbone", help="Backbone of every model (see `curate backbones`) [default: fer_cnn].")
@click.option("--folds", type=int, help="Folds of the cross-validated CE model behind cleanlab and FiftyOne.")
@click.option("--max-train", type=int, help="Subsample the Training faces to this many (stratified).")
@click.option("--flip-train", type=int, help="Faces in the synthetic-flip accuracy protocol.")
@click.option(
    "--faithful/--no-faithful",
    default=True,
    show_default=True,
    help="Also run DMUE with the official code's settings (one more training).",
)
@click.option(
    "--overlap/--no-overlap",
    default=True,
    show_default=True,
    help="Run the faithful DMUE on half the cores beside the CE training and the flip protocol (~1.3x "
    "the throughput on 2 cores; their times are marked in the report).",
)
@click.option(
    "--plots",
    "plots_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the PNG plots here instead of --out (e.g. docs/bench).",
)
@click.option("--seed", type=int, default=0, show_default=True)
def bench(labels_csv: Path, out: Path, quick: bool, plots_dir: Path | None, **overrides) -> None:
    """Train DMUE, K-fold CE (for cleanlab and FiftyOne mistakenness) and plain CE on the same
    faces of a FERPlus labels.csv, and measure label-error detection against the crowd, ambiguity,
    accuracy under noise and speed. PrivateTest is never read.

    \b
    Examples:
      curate bench ../shared/data/ferplus-mini/labels.csv --quick --out runs/bench-quick
      curate bench ../shared/data/ferplus/labels.csv --out runs/bench --plots docs/bench
      curate bench ../shared/data/ferplus/labels.csv --max-train 8000 --epochs 4 --out runs/bench-8k
    """
    from curate.benchmark import BenchConfig, run_benchmark

    cfg = BenchConfig.preset(
        "quick" if quick else "full", labels_csv, out, **{k: v for k, v in overrides.items() if v is not None}
    )
    try:
        run_benchmark(cfg, click.echo, plots_dir=plots_dir)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo((out / "results.md").read_text())
