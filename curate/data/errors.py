"""Data errors and the skip policy shared by every reader.

Every reader takes ``on_bad`` and ``report``:

- ``on_bad="error"`` (default): the first bad item raises a :class:`DataError`.
- ``on_bad="skip"``: bad items are left out of the table and recorded in ``report``
  (a :class:`SkipReport`) when one is given.

Non-fatal findings (an ignored non-image file, say) go to ``report.warnings`` under both
policies; they never remove a sample.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

OnBad = Literal["error", "skip"]
ON_BAD_CHOICES: tuple[str, ...] = ("error", "skip")


def display_path(path: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> str:
    """``path`` as printable text; undecodable bytes of a non-UTF-8 name show as ``\\xNN``."""
    text = os.fsdecode(path)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class DataError(Exception):
    """A problem in the input data: which file, which line, what is wrong and what to do.

    ``row`` is the 1-based line number in ``path`` (``None`` for file-level problems).
    ``str(err)`` reads ``labels.csv, row 17: <problem>. <hint>``.
    """

    def __init__(self, path: str | os.PathLike[str], row: int | None, problem: str, hint: str = "") -> None:
        super().__init__(path, row, problem, hint)  # keeps the error picklable
        self.path = display_path(path)
        self.row = row
        self.problem = problem
        self.hint = hint

    @property
    def where(self) -> str:
        return self.path if self.row is None else f"{self.path}, row {self.row}"

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}." + (f" {self.hint}" if self.hint else "")


class OptionError(ValueError):
    """A reader option that cannot be honoured (a split the dataset lacks, a skip report that would
    overwrite an input); the message names the option and what to do (a ValueError, so every
    command reports it as its one-line error)."""


@dataclass(frozen=True)
class Skipped:
    """One item left out of (or noted about) a table: the error's problem text and hint."""

    path: str
    row: int | None
    reason: str
    hint: str = ""

    @classmethod
    def of(cls, error: DataError) -> Skipped:
        return cls(error.path, error.row, error.problem, error.hint)


@dataclass
class SkipReport:
    """Collects skipped items (``items``), non-fatal findings (``warnings``) and rows a reader
    leaves out by design (``excluded``: e.g. AffectNet's non-emotion categories) of a read."""

    items: list[Skipped] = field(default_factory=list)
    warnings: list[Skipped] = field(default_factory=list)
    excluded: list[Skipped] = field(default_factory=list)

    def add(self, error: DataError) -> None:
        """Record an item that was left out of the table."""
        self.items.append(Skipped.of(error))

    def warn(self, error: DataError) -> None:
        """Record a non-fatal finding (nothing was removed because of it)."""
        self.warnings.append(Skipped.of(error))

    def exclude(self, error: DataError) -> None:
        """Record a row the format defines as not a face of a class (left out, not a problem)."""
        self.excluded.append(Skipped.of(error))

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Skipped]:
        return iter(self.items)

    def summary(self, *, examples: int = 5) -> str:
        """A few lines: how many items were skipped, grouped by problem, with examples."""
        if not self.items and not self.warnings and not self.excluded:
            return "Nothing skipped."
        lines = [
            f"Skipped {len(self.items)} item(s)"
            + (f", {len(self.warnings)} warning(s)" if self.warnings else "")
            + (f", left out {len(self.excluded)} row(s) by design" if self.excluded else "")
            + "."
        ]
        kinds = Counter(_kind(s.reason) for s in self.items)
        lines += [f"  {n:>6} x {kind}" for kind, n in kinds.most_common()]
        for s in self.items[:examples]:
            where = s.path if s.row is None else f"{s.path}, row {s.row}"
            lines.append(f"  e.g. {where}: {s.reason}")
        if len(self.items) > examples:
            lines.append(f"  ... and {len(self.items) - examples} more (write them all with --skip-report FILE)")
        return "\n".join(lines)

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write ``level,path,row,reason,hint`` rows (skipped items, warnings, exclusions) atomically."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(["level", "path", "row", "reason", "hint"])
                for level, entries in (
                    ("skipped", self.items),
                    ("warning", self.warnings),
                    ("excluded", self.excluded),
                ):
                    writer.writerows([level, s.path, "" if s.row is None else s.row, s.reason, s.hint] for s in entries)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def check_on_bad(on_bad: str) -> None:
    """Raise ``ValueError`` unless ``on_bad`` is one of :data:`ON_BAD_CHOICES`."""
    if on_bad not in ON_BAD_CHOICES:
        raise ValueError(f"on_bad must be 'error' or 'skip', not {on_bad!r}")


def reject(error: DataError, *, on_bad: OnBad, report: SkipReport | None) -> None:
    """Apply the policy to one bad item: raise it, or record it as skipped."""
    if on_bad == "error":
        raise error
    if report is not None:
        report.add(error)


def _kind(reason: str) -> str:
    """The reason with quoted names and numbers blanked out, to group similar problems."""
    return re.sub(r"'[^']*'|\d+", "...", reason)
