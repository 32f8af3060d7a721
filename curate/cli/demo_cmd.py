"""``curate demo``: the main job end to end on the built-in synthetic dataset."""

from __future__ import annotations

from pathlib import Path

import click

#: ``--confidence`` of the demo's auto export. On the generator's faces a suggestion whose probability
#: is 0.5 or more is right 93-100 % of the time (the demo's own run: 455 accepted, 93 % right; the
#: written file 9 % wrong against 15 % at the CLI's 0.8, which accepts 5), while on real faces the
#: probability is about the share right and the CLI keeps 0.8 (docs/formats.md, "How right an accepted suggestion is").
DEMO_CONFIDENCE = 0.5


@click.command("demo")
@click.option(
    "--out",
    default="runs/demo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the demo data and run go (a second demo reuses them).",
)
@click.option("--faces", default=2000, show_default=True, type=click.IntRange(min=100))
@click.option("--noise-rate", default=0.3, show_default=True, type=click.FloatRange(0, 0.9))
@click.option("--epochs", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--backbone", default="fer_cnn", show_default=True)
@click.option("--name", default="curate-demo", show_default=True, help="FiftyOne dataset name.")
@click.option(
    "--load/--no-load",
    default=True,
    show_default=True,
    help="Load the scores into FiftyOne (--no-load: train and score only; `curate load` them later).",
)
def demo(out: Path, faces: int, noise_rate: float, epochs: int, backbone: str, name: str, load: bool) -> None:
    """Generate synthetic expression faces with known label noise, train DMUE, score every face,
    report how well the scores find the injected noise, load everything into FiftyOne and write
    a cleaned label file. A second run reuses the data and the trained model.

    \b
    Example:
      curate demo                       # about 2-4 minutes on 2 CPU cores
      curate demo --faces 5000 --epochs 12 --out runs/demo-big
    """
    import numpy as np

    from curate import metrics
    from curate.data.synthetic import generate
    from curate.jobs import run_job
    from curate.records import read_scores
    from curate.report import top_flagged
    from curate.run_config import RunConfig

    click.echo(f"[1/5] synthetic dataset: {faces} faces, {noise_rate:.0%} label noise -> {out / 'data'}")
    table = generate(faces, out / "data", seed=0, noise_rate=noise_rate)
    cfg = RunConfig.from_dict({
        "data": {"dataset": "synthetic", "faces": faces, "noise_rate": noise_rate},
        "model": {"backbone": backbone, "small_input": True, "ramp_a": max(1.0, epochs / 3)},
        "train": {"epochs": epochs, "batch_size": 64, "num_workers": 0, "ckpt_every": 0},
        "size_aware": [],  # the demo's budget is --epochs, not the size table's (no folds: minutes)
    })  # fmt: skip
    click.echo(f"[2/5] train DMUE ({backbone}, {epochs} epochs) and score -> {out / 'run'}")
    result = run_job(table, cfg, out / "run", log=click.echo)
    scores = read_scores(result.scores.path)
    truth = table.set_index("sample_id").loc[scores["sample_id"]]
    noisy = truth["is_noisy"].to_numpy(dtype=bool)
    click.echo("[3/5] what the scores found (against the generator's ground truth):")
    rep = metrics.detection_report(noisy, scores["mislabel_score"].to_numpy(), (scores["verdict"] == "likely_mislabeled").to_numpy(),
                                   ks=(100,))  # fmt: skip
    click.echo(
        f"  mislabel_score: AUROC {rep['auroc']:.3f}, AP {rep['ap']:.3f}, precision@100 {rep['p@100']:.2f}; "
        f"flag precision {rep['flag_precision']:.2f} at recall {rep['flag_recall']:.2f}"
    )
    rho = metrics.spearman(scores["ambiguity_score"].to_numpy(), truth["ambiguity"].to_numpy())
    click.echo(f"  ambiguity_score vs true ambiguity: Spearman {rho:.3f}")
    flagged = (scores["verdict"] == "likely_mislabeled").to_numpy() & noisy
    if flagged.any():
        acc = np.mean(scores["suggested_label"].to_numpy()[flagged] == truth["true_label"].to_numpy()[flagged])
        click.echo(f"  suggested label correct on {acc:.0%} of the truly noisy faces it flagged")
    click.echo(top_flagged(result.scores.path, 5))
    from curate.export import export_cleaned

    if not load:
        click.echo(f"[4/5] not loaded into FiftyOne (--no-load): curate load {result.scores.path} --name {name}")
        source = result.scores.path
    else:
        click.echo(f"\n[4/5] load into FiftyOne (embedded MongoDB) as dataset '{name}'")
        from curate.fiftyone import load_scores

        ds = load_scores(result.scores.path, name)
        click.echo(f"  {len(ds)} samples; saved views: {', '.join(ds.list_saved_views())}")
        source = f"fiftyone:{name}"
    click.echo(f"[5/5] cleaned labels (policy auto, confidence {DEMO_CONFIDENCE}) -> {out / 'cleaned.csv'}")
    cleaned = export_cleaned(source, format="csv", policy="auto", out=out / "cleaned.csv", force=True,
                             confidence=DEMO_CONFIDENCE)  # fmt: skip
    click.echo(str(cleaned))
    click.echo(f"\nscores: {result.scores.path}")
    if load:
        click.echo(
            f"review in the App:  curate app {name}   "
            "(then open the printed URL; relabel with the @dmue-curate/review plugin: curate plugin install)"
        )
