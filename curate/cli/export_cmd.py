"""``curate export``: write the cleaned label file (and its audit) from scores or a curated FiftyOne dataset."""

from __future__ import annotations

from pathlib import Path

import click

from curate.cli.options import RegistryChoice

#: ``curate.export.POLICIES`` (spelled out to keep pandas out of ``curate --help``).
POLICY_CHOICES = ("decisions", "auto", "soft")
#: ``curate.export.DEDUPE`` and ``LEAKS``
DEDUPE_CHOICES = ("keep-all", "keep-one")
LEAK_CHOICES = ("keep", "drop")


def export_format_choices() -> tuple[str, ...]:
    """``curate.export.format_choices()``, imported only when the choices are needed (it loads pandas)."""
    from curate.export import format_choices

    return format_choices()


@click.command("export")
@click.argument("source")
@click.option(
    "--format",
    "format",
    required=True,
    type=RegistryChoice(export_format_choices),
    help="native = the original dataset's own label file (or ImageFolder tree); csv/jsonl/parquet ="
    " generic table with scores and soft labels; or name the own format explicitly.",
)
@click.option(
    "--policy",
    required=True,
    type=click.Choice(POLICY_CHOICES),
    help="decisions: only curators' decisions (unresolved flagged faces marked review); auto: also"
    " accept confident suggestions, drop other likely-mislabeled faces, keep ambiguous ones soft;"
    " soft: every face with its label distribution. Curator decisions always win.",
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output file (folder for imagefolder).")
@click.option("--force", is_flag=True, help="Replace an existing output (and its audit).")
@click.option(
    "--dataset",
    type=click.Path(exists=True, path_type=Path),
    help="Original dataset for own-format exports [default: the one recorded in the scores].",
)
@click.option(
    "--links",
    type=click.Choice(["symlink", "copy"]),
    default="symlink",
    show_default=True,
    help="imagefolder: link to the images or copy them.",
)
@click.option(
    "--confidence",
    type=click.FloatRange(0.0, 1.0),
    default=0.8,
    show_default=True,
    help="auto: accept a suggestion when label_distribution[suggested] >= this.",
)
@click.option(
    "--label-field",
    default="ground_truth",
    show_default=True,
    help="FiftyOne source: the Classification field holding the given labels.",
)
@click.option("--label-column", metavar="NAME", help="source-csv: the label column (default: the reader's guess).")
@click.option("--path-column", metavar="NAME", help="source-csv: the path column (default: the reader's guess).")
@click.option("--id-column", metavar="NAME", help="source-csv: the sample id column, when scored with one.")
@click.option(
    "--dedupe",
    type=click.Choice(DEDUPE_CHOICES),
    default="keep-all",
    show_default=True,
    help="keep-one: write one face of each exact-duplicate group (duplicate_group): one a curator"
    " decided on, else the lowest mislabel_score; faces a curator excluded never count, so"
    " excluding all copies but one chooses the one kept.",
)
@click.option(
    "--leaks",
    type=click.Choice(LEAK_CHOICES),
    default="keep",
    show_default=True,
    help="drop: leave out faces with the leak issue (an exact copy or a near duplicate in another"
    " split), in the --leak-split splits or every split. Runs before --dedupe.",
)
@click.option(
    "--leak-split",
    "leak_splits",
    multiple=True,
    metavar="SPLIT",
    help="With --leaks drop: drop the leaked faces of this split only (repeatable), e.g. --leak-split"
    " Training keeps the test copies [default: every split].",
)
@click.option(
    "--drop-outliers",
    type=click.FloatRange(0.0, 1.0),
    metavar="THRESHOLD",
    help="Leave out faces with outlier_score >= THRESHOLD (0.5 is where the outlier issue starts);"
    " faces a curator relabelled or kept stay.",
)
@click.option("--by", metavar="NAME", help="Who exports, for the audit [default: the OS user].")
def export(source: str, **options: object) -> None:
    """Write the cleaned labels of SOURCE to --out, and <out>.audit.json recording the scores
    file (sha256), model, policy, thresholds and every decision.

    SOURCE is a scores.parquet (no curator decisions: automatic policies only) or a FiftyOne
    dataset curated in the App (fiftyone:NAME or NAME). --dedupe, --leaks and --drop-outliers
    leave out duplicate copies, leaked faces and outliers after the policy; the audit lists the
    faces they left out. Outputs are written to a temporary file
    beside --out and moved into place; the source labels are never overwritten.

    \b
    Examples:
      curate export runs/mini/scores.parquet --format csv --policy auto --out mini.clean.csv
      curate export fiftyone:mini --format native --policy decisions --out labels.clean.csv
      curate export runs/raf/scores.parquet --format rafdb --policy auto --confidence 0.9 \\
          --out raf/EmoLabel/list_patition_label.clean.txt
      curate export runs/mini/scores.parquet --format imagefolder --links copy --policy auto --out clean_tree/
      curate export runs/fer/scores.parquet --format native --policy decisions --dedupe keep-one \\
          --leaks drop --leak-split Training --drop-outliers 0.5 --out labels.dedup.csv
    """
    from curate.export import DataPolicy, ExportError, export_cleaned

    data = DataPolicy(
        dedupe=str(options.pop("dedupe")),
        leaks=str(options.pop("leaks")),
        leak_splits=tuple(options.pop("leak_splits")),  # type: ignore[arg-type]
        drop_outliers=options.pop("drop_outliers"),  # type: ignore[arg-type]
    )
    try:
        summary = export_cleaned(source, data_policy=data, **options)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(summary))
