"""``curate load``: put a scores file into a persistent FiftyOne dataset for review."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("load")
@click.argument("scores", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="FiftyOne dataset to create, or to update when it exists.")
@click.option("--overwrite", is_flag=True, help="Delete the dataset first, curator decisions included.")
@click.option(
    "--similarity/--no-similarity",
    default=True,
    show_default=True,
    help="Index the embeddings side file (<stem>.embeddings.npy) for 'sort by similarity'.",
)
def load(scores: Path, name: str, overwrite: bool, similarity: bool) -> None:
    """Load SCORES (a scores.parquet written by `curate score` or `curate run`) into the FiftyOne
    dataset NAME: labels, scores, verdict tags, review queues (saved views) and a faiss
    similarity index.

    Loading into an existing dataset updates it in place: samples are matched by sample id
    (then file path), their scores and verdict tags replaced, new faces added; curator
    decisions made in the App are kept.

    \b
    Examples:
      curate load runs/mini/scores.parquet --name mini
      curate load runs/batch2/scores.parquet --name mini          # update, decisions kept
      curate load runs/mini/scores.parquet --name mini --overwrite
      curate load runs/mini/scores.parquet --name quick --no-similarity
    """
    from curate.fiftyone import ISSUE_VIEWS, QUEUES, ScoresFileError, load_scores, loaded_from

    try:
        previous = [] if overwrite else loaded_from(name)
        dataset = load_scores(scores, name, overwrite=overwrite, similarity=similarity)
    except ScoresFileError as e:
        raise click.ClickException(str(e)) from None
    others = [p for p in previous if p != str(scores.resolve())]
    if others:
        click.echo(
            f"note: {name!r} also holds faces scored in {', '.join(others)}; faces matched by id were "
            "updated from this file, the others kept their scores"
        )
    tags = dataset.count_sample_tags()
    flagged = f"{tags.get('likely_mislabeled', 0)} likely mislabeled, {tags.get('ambiguous', 0)} ambiguous"
    click.echo(f"dataset {dataset.name!r}: {len(dataset)} faces, {flagged}")
    click.echo(f"review queues (saved views): {', '.join(QUEUES)}, given-<class>")
    click.echo(f"data issues (saved views): {', '.join(ISSUE_VIEWS)}")
    click.echo(f"open it: curate app {dataset.name}")
