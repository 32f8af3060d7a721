"""``curate inspect``: class histogram, splits and every problem of a dataset."""

from __future__ import annotations

import click

from curate.cli.options import as_click_errors, reader_options


@click.command("inspect")
@click.argument("dataset")
@reader_options
@click.option(
    "--check-images/--no-check-images",
    default=True,
    show_default=True,
    help="Open and decode every image to find missing, empty or corrupt files.",
)
@click.option(
    "--duplicates/--no-duplicates",
    default=True,
    show_default=True,
    help="Decode every image and hash its pixels to find exact duplicates, their conflicting labels and "
    "the splits they span (leakage per split pair).",
)
def inspect(dataset: str, check_images: bool, duplicates: bool, **reader: object) -> None:
    """Print the class histogram per split, the class balance, exact duplicates and leakage across
    splits, and every problem found in DATASET.

    DATASET is a class-folder tree, a CSV/TSV image list, a FERPlus labels.csv, a Kaggle
    fer2013.csv, RAF-DB's list_patition_label.txt, an AffectNet CSV, or fiftyone:NAME.
    Bad rows are skipped and listed (--on-bad error stops at the first one instead).
    Exit code: 0 when there are no errors (warnings allowed), 1 when errors were found.

    \b
    Examples:
      curate inspect ../shared/data/ferplus-mini/labels.csv
      curate inspect ../shared/data/ferplus/labels.csv --no-check-images --no-duplicates --split Training
      curate inspect ../shared/data/ferplus/labels.csv
      curate inspect photos/ --classes angry,happy,sad --skip-report skipped.csv
      curate inspect fiftyone:my-faces --label-column ground_truth
    """
    from curate.data import SkipReport
    from curate.data.inspect import format_report, inspect_table
    from curate.data.load import load_table

    report = SkipReport()
    reader["on_bad"] = reader["on_bad"] or "skip"
    with as_click_errors():
        table = load_table(dataset, report=report, **reader)
    result = inspect_table(table, report, check_images=check_images, check_duplicates=duplicates)
    click.echo(format_report(result))
    if result.errors:
        raise SystemExit(1)
