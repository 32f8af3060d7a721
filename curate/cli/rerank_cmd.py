"""``curate rerank``: re-rank the review queue with the curator's decisions (curate.rerank)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("rerank")
@click.argument("source")
@click.option(
    "--decisions",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="scores.parquet source: CSV of sample_id,label (class index or name, 'correct', empty = excluded).",
)
@click.option(
    "--out", type=click.Path(path_type=Path), help="scores.parquet source: where to write the reranked table."
)
@click.option("--weight", type=click.FloatRange(0), default=1.0, show_default=True, help="Label propagation weight.")
@click.option(
    "--class-strength",
    type=click.FloatRange(0),
    default=0.5,
    show_default=True,
    help="Exponent of the per-class odds update from the decided faces (0 = off).",
)
@click.option("--transition-strength", type=click.FloatRange(0), default=1.0, show_default=True)
@click.option(
    "--head-strength",
    type=click.FloatRange(0),
    default=2.0,
    show_default=True,
    help="Weight of the head refit on the run's embeddings (0 = off; needs the embeddings side file).",
)
def rerank(
    source: str,
    decisions: Path | None,
    out: Path | None,
    weight: float,
    class_strength: float,
    transition_strength: float,
    head_strength: float,
) -> None:
    """Re-rank the undecided faces with the curator's decisions.

    SOURCE is a curated FiftyOne dataset (fiftyone:NAME): its decisions are read, the new scores
    are written to the undecided faces as mislabel_score_rerank, suggested_rerank and
    relabel_rerank, and the saved view review-next lists the undecided faces by the new score.
    Decided faces and the curator's fields are never written. SOURCE may also be a scores.parquet
    with --decisions CSV and --out (a parquet with the *_rerank columns). See docs/review-loop.md.

    \b
    Examples:
      curate rerank fiftyone:mini
      curate rerank runs/mini/scores.parquet --decisions decided.csv --out runs/mini/scores.rerank.parquet
    """
    from curate.rerank import RerankConfig

    cfg = RerankConfig(
        weight=weight,
        class_strength=class_strength,
        transition_strength=transition_strength,
        head_strength=head_strength,
        head_mix=1.0 if head_strength else 0.0,
    )
    if Path(source).is_file():
        if decisions is None or out is None:
            raise click.UsageError("a scores.parquet SOURCE needs --decisions and --out")
        from curate.records import embeddings_path, load_embeddings, read_scores
        from curate.rerank import read_decisions, rerank_scores

        scores = read_scores(source)
        classes = scores.attrs.get("classes")
        embeddings = None
        if head_strength and embeddings_path(source).exists():
            embeddings = load_embeddings(source)
        elif head_strength:
            click.echo(f"no embeddings side file {embeddings_path(source)}: the head refit is left out")
        table = rerank_scores(scores, read_decisions(decisions, classes), cfg, embeddings)
        table.to_parquet(out)
        click.echo(f"{int(table['decided'].sum())} decided, {int((~table['decided']).sum())} rescored -> {out}")
        return
    import fiftyone as fo

    from curate.fiftyone.rerank import VIEW, rerank_dataset

    name = source.removeprefix("fiftyone:")
    if not fo.dataset_exists(name):
        known = ", ".join(fo.list_datasets()) or "none"
        raise click.ClickException(f"no FiftyOne dataset named {name!r} (datasets: {known})")
    try:
        summary = rerank_dataset(fo.load_dataset(name), cfg)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{summary['decided']} decided, {summary['rescored']} rescored in {summary['seconds']:.1f} s;"
        f" saved view {VIEW!r} = the new queue"
    )
