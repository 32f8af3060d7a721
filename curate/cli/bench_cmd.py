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
@click.option(
    "--suite",
    type=click.Choice(["main", "flips", "curve", "curator"]),
    default="main",
    show_default=True,
    help="main: the FER2013 labels against the crowd, accuracy, speed. flips: crowd labels with known "
    "synthetic flips of two kinds and several rates, plus clean labels (OUT/flips.md). curve: detection "
    "against the number of faces, from scratch, with --init-from, optionally a self-supervised start, and K-fold "
    "cleanlab (OUT/curve.md). "
    "curator: a simulated curator works through the queue in batches, static against re-ranked (OUT/curator.md).",
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
@click.option("--flip-faces", type=int, help="flips suite: faces every setting relabels [default: 5000].")
@click.option("--flip-rates", help="flips suite: comma-separated flip rates [default: 0.1,0.2,0.3,0.4].")
@click.option("--flip-kinds", help="flips suite: comma-separated kinds, uniform and/or classdep [default: both].")
@click.option("--curve-sizes", help="curve suite: comma-separated subset sizes [default: 1000,2000,5000,10000].")
@click.option(
    "--flip-source-faces",
    type=click.IntRange(min=0),
    help="flips suite: also run DMUE with --init-from a model trained on this many other Training faces "
    "(their FER2013 labels) [default: 0, off].",
)
@click.option(
    "--flip-cross-fit",
    type=int,
    help="flips suite: also judge every DMUE model with the flag count from this many cross-fitted fold "
    "models (its full model reused) [default: 0, off].",
)
@click.option(
    "--curve-source-faces",
    type=int,
    help="curve suite: faces of the --init-from source run [default: every Training face outside the subsets].",
)
@click.option(
    "--curve-pretrain-epochs",
    type=click.IntRange(min=0),
    help="curve suite: also run DMUE from a self-supervised start of this many epochs on each subset's "
    "own images (`curate run --pretrain-epochs`) [default: 0, off].",
)
@click.option(
    "--curator-run",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="curator suite: the run whose queue is reviewed [default: DMUE trained on the Training split as OUT/dmue].",
)
@click.option("--curator-checkpoints", help="curator suite: comma-separated faces reviewed [default: 1000,2000,5000].")
@click.option("--seed", type=int, default=0, show_default=True)
def bench(
    labels_csv: Path,
    out: Path,
    suite: str,
    quick: bool,
    plots_dir: Path | None,
    flip_faces: int | None,
    flip_rates: str | None,
    flip_kinds: str | None,
    flip_source_faces: int | None,
    flip_cross_fit: int | None,
    curve_sizes: str | None,
    curve_source_faces: int | None,
    curve_pretrain_epochs: int | None,
    curator_run: Path | None,
    curator_checkpoints: str | None,
    **overrides,
) -> None:
    """Train DMUE, K-fold CE (for cleanlab and FiftyOne mistakenness) and plain CE on the same
    faces of a FERPlus labels.csv, and measure label-error detection against the crowd, ambiguity,
    accuracy under noise and speed. PrivateTest is never read.

    \b
    Examples:
      curate bench ../shared/data/ferplus-mini/labels.csv --quick --out runs/bench-quick
      curate bench ../shared/data/ferplus/labels.csv --out runs/bench --plots docs/bench
      curate bench ../shared/data/ferplus/labels.csv --max-train 8000 --epochs 4 --out runs/bench-8k
      curate bench ../shared/data/ferplus/labels.csv --suite flips --out runs/flips
      curate bench ../shared/data/ferplus/labels.csv --suite flips --flip-rates 0.2 --flip-kinds uniform --out runs/u20
      curate bench ../shared/data/ferplus/labels.csv --suite flips --flip-rates 0.2 --flip-source-faces 8000 --out runs/warm
      curate bench ../shared/data/ferplus/labels.csv --suite flips --flip-rates 0.2 --flip-cross-fit 3 --out runs/u20
      curate bench ../shared/data/ferplus/labels.csv --suite curve --out runs/curve --plots docs/bench
      curate bench ../shared/data/ferplus/labels.csv --suite curve --curve-sizes 1000,2000 --curve-pretrain-epochs 120 --out runs/warm
      curate bench ../shared/data/ferplus/labels.csv --suite curator --out runs/curator
      curate bench ../shared/data/ferplus/labels.csv --suite curator --curator-run runs/bench/dmue/run --out runs/curator
    """
    from curate.benchmark import BenchConfig, run_benchmark

    if suite == "flips":
        _flip_suite(labels_csv, out, flip_faces, flip_rates, flip_kinds, flip_source_faces, flip_cross_fit, overrides)
        return
    if suite == "curve":
        _curve_suite(labels_csv, out, curve_sizes, curve_source_faces, curve_pretrain_epochs, plots_dir, overrides)
        return
    if suite == "curator":
        _curator_suite(labels_csv, out, curator_run, curator_checkpoints, plots_dir, overrides)
        return

    cfg = BenchConfig.preset(
        "quick" if quick else "full", labels_csv, out, **{k: v for k, v in overrides.items() if v is not None}
    )
    try:
        run_benchmark(cfg, click.echo, plots_dir=plots_dir)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo((out / "results.md").read_text())


def _suite_settings(overrides: dict) -> dict:
    """The shared options a suite takes from the command line (those given)."""
    return {k: overrides[k] for k in ("epochs", "backbone", "folds", "seed") if overrides.get(k) is not None}


def _flip_suite(
    labels_csv: Path,
    out: Path,
    faces: int | None,
    rates: str | None,
    kinds: str | None,
    source_faces: int | None,
    cross_fit: int | None,
    overrides: dict,
) -> None:
    from curate.benchmark.flip_suite import FlipSuiteConfig, run_flip_suite

    settings = _suite_settings(overrides)
    if faces is not None:
        settings["faces"] = faces
    if source_faces is not None:
        settings["source_faces"] = source_faces
    if cross_fit is not None:
        settings["cross_fit"] = cross_fit
    try:
        if rates:
            settings["rates"] = tuple(float(r) for r in rates.split(","))
        if kinds:
            settings["kinds"] = tuple(k.strip() for k in kinds.split(","))
        run_flip_suite(FlipSuiteConfig(labels_csv=labels_csv, out=out, **settings), click.echo)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo((out / "flips.md").read_text())


def _publish(out: Path, plots_dir: Path | None, stem: str) -> None:
    """Copy a suite's ``<stem>.png|md|json`` from ``out`` to ``plots_dir`` (if given) and print its table."""
    import shutil

    if plots_dir:
        plots_dir.mkdir(parents=True, exist_ok=True)
        for name in (f"{stem}.png", f"{stem}.md", f"{stem}.json"):
            shutil.copyfile(out / name, plots_dir / name)
    click.echo((out / f"{stem}.md").read_text())


def _curve_suite(
    labels_csv: Path,
    out: Path,
    sizes: str | None,
    source_faces: int | None,
    pretrain_epochs: int | None,
    plots_dir: Path | None,
    overrides: dict,
) -> None:
    from curate.benchmark.curve_suite import CurveSuiteConfig, run_curve_suite

    settings = _suite_settings(overrides)
    try:
        if sizes:
            settings["sizes"] = tuple(int(n) for n in sizes.split(","))
        if source_faces:
            settings["source_faces"] = source_faces
        if pretrain_epochs:
            settings["pretrain_epochs"] = pretrain_epochs
        run_curve_suite(CurveSuiteConfig(labels_csv=labels_csv, out=out, **settings), click.echo)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    _publish(out, plots_dir, "curve")


def _curator_suite(
    labels_csv: Path, out: Path, run: Path | None, checkpoints: str | None, plots_dir: Path | None, overrides: dict
) -> None:
    from curate.benchmark.curator_suite import CuratorSuiteConfig, run_curator_suite

    settings = {k: v for k, v in _suite_settings(overrides).items() if k != "folds"}
    try:
        if checkpoints:
            settings["checkpoints"] = tuple(int(c) for c in checkpoints.split(","))
        run_curator_suite(CuratorSuiteConfig(labels_csv=labels_csv, out=out, run_dir=run, **settings), click.echo)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    _publish(out, plots_dir, "curator")
