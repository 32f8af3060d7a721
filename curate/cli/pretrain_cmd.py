"""``curate pretrain``: a self-supervised warm start from a dataset's own faces, labels unused."""

from __future__ import annotations

from pathlib import Path

import click

from curate.cli.options import as_click_errors, reader_options


@click.command("pretrain")
@click.argument("dataset")
@reader_options
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (created; an existing one is resumed).",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Passes over the faces, each face as two random views.",
)
@click.option("--backbone", default="fer_cnn", show_default=True, help="Backbone name (see `curate backbones`).")
@click.option(
    "--small-input/--no-small-input",
    default=True,
    show_default=True,
    help="Lighter stem for small (e.g. 48x48) faces; use the setting the training will use.",
)
@click.option("--image-size", type=click.IntRange(min=16), default=48, show_default=True)
@click.option(
    "--batch-size",
    type=click.IntRange(min=2),
    default=128,
    show_default=True,
    help="Faces per step (twice as many views); the run's default, cheaper per face on a CPU than 256.",
)
@click.option(
    "--temperature",
    type=click.FloatRange(0, min_open=True),
    default=0.5,
    show_default=True,
    help="NT-Xent temperature.",
)
@click.option(
    "--view-size",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Side of each random view in pixels; 0: two thirds of --image-size, 4/9 of the cost per step "
    "of full-size views (docs/small-data.md).",
)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=1e-3, show_default=True, help="Adam's rate.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")
@click.option(
    "--amp",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
    help="Mixed precision: auto = on for CUDA and for CPUs with native bfloat16.",
)
def pretrain(dataset: str, out: Path, epochs: int, backbone: str, small_input: bool, image_size: int,
             batch_size: int, temperature: float, view_size: int, lr: float, seed: int, device: str, amp: str, **reader) -> None:  # fmt: skip
    """Train a backbone self-supervised (SimCLR: two random views of each face, NT-Xent loss) on
    the faces of DATASET, read like `curate run` reads them; the labels are not used. Prints the
    cost before it starts; writes OUT/weights.pt (for `--weights`), OUT/config.yaml and
    OUT/pretrain.json (the cost, estimated and taken). Re-running resumes.

    \b
    Examples:
      curate pretrain ../shared/data/ferplus-mini/labels.csv --out runs/ssl
      curate run ../shared/data/ferplus-mini/labels.csv --weights runs/ssl/weights.pt --out runs/mini
      curate pretrain faces/ --format imagefolder --backbone resnet18 --epochs 100 --out runs/ssl-r18
      curate run faces/ --format imagefolder --pretrain-epochs 50 --out runs/faces   # both in one
    """
    from curate.data.errors import DataError
    from curate.data.load import load_table
    from curate.job_inputs import absolute_if_path
    from curate.pretrain import PretrainInterrupted, pretrain_job
    from dmue_core.selfsup import Backbone, SelfSupConfig

    with as_click_errors():
        table = load_table(dataset, **reader, decodable=True)
    try:
        cfg = SelfSupConfig(epochs=epochs, batch_size=batch_size, temperature=temperature, lr=lr, seed=seed,
                            view_size=view_size, device=device, amp={"on": True, "off": False}.get(amp, amp))  # fmt: skip
        data = {"dataset": absolute_if_path(dataset), **{k: v for k, v in reader.items() if v not in (None, (), "")}}
        weights = pretrain_job(table, cfg, Backbone(backbone, small_input), out, image_size=image_size, data=data,
                               log=click.echo)  # fmt: skip
    except (ValueError, DataError, PretrainInterrupted) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"weights: {weights}\nstart a run from them: curate run {dataset} --weights {weights} --out RUN_DIR")
