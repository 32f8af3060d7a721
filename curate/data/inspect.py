"""Inspect a LabelTable: class histogram per split, and every problem found.

Errors: items skipped while reading, duplicate paths or ids, labels outside the class list,
bad vote values and (with ``check_images``) missing/empty/corrupt images. Warnings: reader
warnings, classes with no or only one image, vote columns missing for some classes, rows
with no votes at all, and (with ``check_duplicates``) pixel-identical images with conflicting
labels or in more than one split (``curate.data.duplicates``).

Beside the problems: the class balance (``curate.data.balance``) and the exact-duplicate summary.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from curate.data.balance import DEFAULT_BATCH_SIZE, ClassBalance, class_balance
from curate.data.duplicates import DuplicateReport, table_duplicates
from curate.data.errors import Skipped, SkipReport, display_path
from curate.data.images import check_images
from curate.data.table import VOTE_PREFIX, classes_of

UNLABELED = "(unlabeled)"


@dataclass(frozen=True)
class Problem:
    """One finding: ``kind`` groups similar findings, ``message`` says where, what and what to do."""

    level: Literal["error", "warning"]
    kind: str
    message: str


@dataclass
class InspectResult:
    """Summary of a LabelTable: ``counts`` is classes (+ ``(unlabeled)``) x splits, with totals."""

    source: str
    format: str
    classes: list[str]
    n_images: int
    splits: dict[str, int]
    counts: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)
    balance: ClassBalance | None = None
    duplicates: DuplicateReport | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "warning"]


def inspect_table(
    df: pd.DataFrame,
    report: SkipReport | None = None,
    *,
    check_images: bool = False,
    check_duplicates: bool | None = None,
    workers: int = 4,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> InspectResult:
    """Histogram and problems of ``df``; ``report`` adds what the reader skipped or warned about.

    ``check_images`` decodes every image (``workers`` threads, tqdm bar on a terminal);
    ``check_duplicates`` (default: as ``check_images``) decodes them to find exact duplicates.
    ``batch_size`` sets the class-size threshold of :func:`curate.data.balance.class_balance`.
    """
    classes = classes_of(df)
    splits = {str(k): int(v) for k, v in df["split"].value_counts(sort=False).items()}
    problems: list[Problem] = []
    if report is not None:
        problems += [_from_report("error", "skipped while reading", s) for s in report.items]
        problems += [_from_report("warning", "reader warning", s) for s in report.warnings]
        problems += [_from_report("warning", "left out by design", s) for s in report.excluded]
    if len(df) == 0 and not (report is not None and report.items):  # none listed (not: all skipped)
        problems.append(Problem("error", "no images", "the dataset lists no images. Check the path and --format."))
    problems += _label_problems(df, classes)
    problems += _duplicate_problems(df)
    problems += _vote_problems(df, classes)
    if check_images:
        problems += _image_problems(df["filepath"].tolist(), workers=workers)
    duplicates = None
    if check_images if check_duplicates is None else check_duplicates:
        duplicates = table_duplicates(df, workers=workers)
        problems += _pixel_duplicate_problems(duplicates)
    return InspectResult(
        source=str(df.attrs.get("source", "")),
        format=str(df.attrs.get("format", "")),
        classes=classes,
        n_images=len(df),
        splits=splits,
        counts=_histogram(df, classes, list(splits)),
        problems=problems,
        balance=class_balance(df["label"].to_numpy(), classes, batch_size=batch_size),
        duplicates=duplicates,
    )


def format_report(result: InspectResult, *, limit: int = 20) -> str:
    """Plain-text report: header, histogram table, then problems grouped by kind (``limit`` each)."""
    lines = [
        f"Dataset: {result.source} (format: {result.format})",
        f"{result.n_images:,} images, {len(result.classes)} classes, {len(result.splits)} split(s)"
        + "".join(f"{', ' if i else ': '}{name} {n:,}" for i, (name, n) in enumerate(result.splits.items())),
        "",
        "Images per class and split:",
        _table(result.counts),
        "",
    ]
    if result.balance is not None:
        lines += [*result.balance.summary_lines(), ""]
    if result.duplicates is not None:
        lines += [*result.duplicates.summary_lines(), ""]
    if not result.problems:
        lines.append("No problems found.")
        return "\n".join(lines)
    lines.append(f"Problems: {len(result.errors)} error(s), {len(result.warnings)} warning(s)")
    groups: dict[tuple[str, str], list[Problem]] = {}
    for p in result.problems:
        groups.setdefault((p.level, p.kind), []).append(p)
    for (level, kind), items in sorted(groups.items(), key=lambda kv: kv[0][0] != "error"):
        lines.append(f"{level.upper()}: {kind} ({len(items)})")
        lines += [f"  {p.message}" for p in items[:limit]]
        if len(items) > limit:
            lines.append(f"  ... and {len(items) - limit} more")
    return "\n".join(lines)


def _from_report(level: Literal["error", "warning"], kind: str, item: Skipped) -> Problem:
    where = item.path if item.row is None else f"{item.path}, row {item.row}"
    return Problem(level, kind, f"{where}: {item.reason}." + (f" {item.hint}" if item.hint else ""))


def _histogram(df: pd.DataFrame, classes: list[str], splits: list[str]) -> pd.DataFrame:
    names = df["label_name"].astype(object).where(df["label"] >= 0, UNLABELED)
    rows = classes + ([UNLABELED] if (df["label"] < 0).any() else [])
    counts = pd.crosstab(names, df["split"].astype(object)).reindex(index=rows, columns=splits, fill_value=0)
    counts["total"] = counts.sum(axis=1)
    counts.loc["total"] = counts.sum(axis=0)
    counts.index.name = "class"
    return counts.astype("int64")


def _table(counts: pd.DataFrame) -> str:
    cells = [["class", *map(str, counts.columns)]]
    cells += [[str(name), *(f"{v:,}" for v in row)] for name, row in zip(counts.index, counts.to_numpy())]
    widths = [max(len(r[j]) for r in cells) for j in range(len(cells[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))) for r in cells
    )


def _label_problems(df: pd.DataFrame, classes: list[str]) -> Iterable[Problem]:
    out_of_range = df[(df["label"] < -1) | (df["label"] >= len(classes))]
    for sid, label in zip(out_of_range["sample_id"], out_of_range["label"]):
        yield Problem(
            "error",
            "label outside the class list",
            f"{sid}: label {label} is not in 0..{len(classes) - 1}. Fix the label or the class list.",
        )
    for sid in df.loc[df["label"] == -1, "sample_id"]:
        yield Problem(
            "warning",
            "no label",
            f"{sid}: no label. `curate train`, `run` and `score` need one: label it or remove its row.",
        )
    counts = df.loc[df["label"] >= 0, "label"].value_counts()
    for i, name in enumerate(classes):
        n = int(counts.get(i, 0))
        if n == 0:
            yield Problem(
                "warning",
                "empty class",
                f"class '{name}' has no images. Add images for it, or leave it out of --classes.",
            )
        elif n == 1:
            (sid,) = df.loc[df["label"] == i, "sample_id"]
            yield Problem(
                "warning",
                "class with one image",
                f"class '{name}' has only one image ({sid}). Add more images, or merge or drop the class.",
            )


def _duplicate_problems(df: pd.DataFrame) -> Iterable[Problem]:
    for column, what in (("filepath", "image path"), ("sample_id", "sample id")):
        values = df[column].astype(object)
        repeated = df[values.duplicated(keep=False)]
        for key, group in repeated.groupby(column, sort=False):
            labels = ", ".join(sorted(set(group["label_name"].astype(str))))
            yield Problem(
                "error",
                f"duplicate {what}",
                f"{display_path(key)} appears {len(group)} times (labels: {labels}). Keep one row per image.",
            )


def _pixel_duplicate_problems(report: DuplicateReport) -> Iterable[Problem]:
    for row in report.groups.itertuples():
        ids = ", ".join(map(display_path, row.sample_ids[:4])) + (", ..." if row.size > 4 else "")
        if row.conflicting:
            yield Problem(
                "warning",
                "identical images with conflicting labels",
                f"{row.size} pixel-identical images ({ids}) are labelled {', '.join(row.labels)}: at least one "
                "label is wrong. Keep one image with the right label.",
            )
        if row.cross_split:
            yield Problem(
                "warning",
                "identical images in more than one split",
                f"{row.size} pixel-identical images ({ids}) lie in splits {', '.join(row.splits)}: the same face "
                "is trained and evaluated on. Keep it in one split.",
            )


def _vote_problems(df: pd.DataFrame, classes: list[str]) -> Iterable[Problem]:
    present = [VOTE_PREFIX + c for c in classes if VOTE_PREFIX + c in df.columns]
    if not present:
        return
    missing = [VOTE_PREFIX + c for c in classes if VOTE_PREFIX + c not in df.columns]
    if missing:
        yield Problem(
            "warning",
            "incomplete vote columns",
            f"vote columns {', '.join(missing)} are missing. Add them (0 votes) so every class has one.",
        )
    votes = df[present].apply(pd.to_numeric, errors="coerce")
    bad = (votes.isna() | (votes < 0) | (votes % 1 != 0)).any(axis=1)
    for sid in df.loc[bad, "sample_id"]:
        yield Problem("error", "bad vote counts", f"{sid}: vote counts must be whole numbers >= 0. Fix the votes.")
    no_votes = df.loc[~bad & (votes.sum(axis=1) == 0), "sample_id"].tolist()
    if no_votes:
        examples = ", ".join(no_votes[:5]) + (", ..." if len(no_votes) > 5 else "")
        yield Problem(
            "warning",
            "rows without votes",
            f"{len(no_votes)} image(s) have no votes for any class ({examples}); vote-based scores ignore them.",
        )


def _image_problems(filepaths: list[str], *, workers: int) -> Iterable[Problem]:
    for filepath, problem in zip(filepaths, check_images(filepaths, workers=workers)):
        if problem:
            yield Problem(
                "error",
                "bad image file",
                f"{display_path(filepath)}: {problem}. Restore or re-export the image, or remove its row.",
            )
