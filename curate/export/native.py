"""Own-format writers: the original label file re-emitted with the clean labels.

Every record of the original file is copied byte for byte (header, delimiter, quoting, line
endings, BOM), except: records of faces whose clean label differs from the given one are written
with the new label in the label column; records of dropped/excluded faces are left out. Records
the scores do not cover (another split, rows the reader skipped) are copied and counted. A record
is matched to its face by the reader's ``sample_id`` rule, and its label cell must decode to the
scores' given label (else the wrong file or column was given, and the export stops).

===========  ======================  ===================  =====================================
format       file                    label column         sample_id of a row
===========  ======================  ===================  =====================================
source-csv   any CSV/TSV image list  --label-column/guess --id-column, else the path as written
ferplus      FERPlus labels.csv      fer2013_label (0..6) path
fer2013      Kaggle fer2013.csv      emotion (0..6)       row{N:05d}, N = 0-based data row
affectnet    AffectNet CSV           expression (0..7)    subDirectory_filePath
rafdb        list_patition_label     1-based label        image name
===========  ======================  ===================  =====================================

fer2013 ids are positional: leaving rows out renumbers the rows after them (the audit lists the
left-out faces by their original ids). Scores whose classes are the format's spelt another way (a
FER2013 model's ``happy`` for RAF-DB's ``happiness``) are written under the format's own ids, and a
generic CSV keeps its own spelling of each class.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curate.data.readers.affectnet import AFFECTNET_CLASSES
from curate.data.readers.common import sniff_delimiter
from curate.data.readers.csvlist import LABEL_GUESSES, PATH_GUESSES
from curate.data.readers.rafdb import RAFDB_CLASSES
from curate.data.table import FER2013_CLASSES
from curate.export.policies import CleanedLabels
from curate.export.safety import ExportError
from curate.expression_names import ids_in, match_classes
from curate.formats.affectnet import AFFECTNET_COLUMNS

BOM = "\ufeff"
INT = re.compile(r"[+-]?\d+")
#: the columns of ``CleanedLabels.faces`` that hold class ids
LABEL_COLUMNS = ("given_label", "suggested_label", "clean_label")


@dataclass(frozen=True)
class WriteContext:
    """What a writer needs beyond the labels: the original dataset (own formats), its reader
    format, the link mode (imagefolder) and the CSV column names (source-csv; None = guess)."""

    dataset: Path | None = None
    dataset_format: str | None = None
    links: str = "symlink"
    label_column: str | None = None
    path_column: str | None = None
    id_column: str | None = None


@dataclass(frozen=True)
class Written:
    """Faces written, and original rows re-emitted unchanged because the scores do not cover them."""

    faces: int
    unscored_rows: int = 0


@dataclass(frozen=True)
class CsvLayout:
    """How to read one CSV format: label column, key (sample_id) of a row, label cell codec."""

    label_column: str
    key: Callable[[int, dict[str, str]], str]
    decode: Callable[[str], int]
    encode: Callable[[int, str], str]
    names: Sequence[str] | None = None  # header-less file: these column names
    #: (row as column -> cell, clean label id) -> the other cells that follow from the label
    derived: Callable[[dict[str, str], int], dict[str, str]] | None = None


def write_source_csv(cleaned: CleanedLabels, tmp: Path, ctx: WriteContext) -> Written:
    """A generic CSV image list (``curate.data.readers.csvlist``) with the label column replaced."""
    src = _dataset(ctx)
    delimiter = sniff_delimiter(src)
    header = _header(src, delimiter)
    label = ctx.label_column or _guess(header, LABEL_GUESSES, "--label-column", src)
    key_column = ctx.id_column or ctx.path_column or _guess(header, PATH_GUESSES, "--path-column", src)
    classes = cleaned.classes
    names = sorted(c for c in _cells(src, delimiter, label) if c and not INT.fullmatch(c))
    as_class = {cell: classes.index(c) for cell, c in match_classes(names, classes).items()}  # the file's spellings
    spelt = {i: cell for cell, i in as_class.items()}

    def decode(cell: str) -> int:
        cell = cell.strip()
        if cell in ("", "-1"):
            return -1
        if cell in as_class:
            return as_class[cell]
        return int(cell) if INT.fullmatch(cell) else -2

    def encode(label_id: int, old: str) -> str:
        return str(label_id) if INT.fullmatch(old.strip()) else spelt.get(label_id, classes[label_id])

    layout = CsvLayout(label, lambda n, row: row[key_column].strip(), decode, encode)
    return _rewrite_csv(cleaned, src, tmp, layout, delimiter=delimiter)


#: FERPlus vote column of each FER2013 class
FERPLUS_VOTES = dict(zip(FER2013_CLASSES, ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")))


def write_ferplus(cleaned: CleanedLabels, tmp: Path, ctx: WriteContext) -> Written:
    """FERPlus ``labels.csv`` with ``fer2013_label`` replaced (FER2013 class ids), and the columns
    derived from it, where present, kept consistent: ``fer2013_label_name``,
    ``votes_for_fer2013_label`` and ``label_disagrees`` (against ``ferplus_label``)."""
    cleaned = _in_classes(cleaned, FER2013_CLASSES, "ferplus")
    layout = CsvLayout("fer2013_label", lambda n, row: row["path"].strip(), _int, _int_text, derived=_ferplus_derived)
    return _rewrite_csv(cleaned, _dataset(ctx), tmp, layout, delimiter=",")


def _ferplus_derived(row: dict[str, str], clean: int) -> dict[str, str]:
    name = FER2013_CLASSES[clean]
    out = {"fer2013_label_name": name}
    if INT.fullmatch(row.get(FERPLUS_VOTES[name], "").strip()):
        out["votes_for_fer2013_label"] = row[FERPLUS_VOTES[name]].strip()
    crowd = row.get("ferplus_label", "").strip()
    if INT.fullmatch(crowd) and int(crowd) >= 0:
        out["label_disagrees"] = str(int(int(crowd) != clean))
    return out


def write_fer2013(cleaned: CleanedLabels, tmp: Path, ctx: WriteContext) -> Written:
    """Kaggle ``fer2013.csv`` with ``emotion`` replaced (FER2013 class ids)."""
    cleaned = _in_classes(cleaned, FER2013_CLASSES, "fer2013")
    layout = CsvLayout("emotion", lambda n, row: f"row{n:05d}", _int, _int_text)
    return _rewrite_csv(cleaned, _dataset(ctx), tmp, layout, delimiter=",")


def write_affectnet(cleaned: CleanedLabels, tmp: Path, ctx: WriteContext) -> Written:
    """An AffectNet CSV with ``expression`` replaced (AffectNet class ids; header kept or absent)."""
    cleaned = _in_classes(cleaned, AFFECTNET_CLASSES[: len(cleaned.classes)], "affectnet")
    src = _dataset(ctx)
    names = None if AFFECTNET_COLUMNS[0] in _header(src, ",") else AFFECTNET_COLUMNS
    layout = CsvLayout("expression", lambda n, row: row[AFFECTNET_COLUMNS[0]].strip(), _int, _int_text, names)
    return _rewrite_csv(cleaned, src, tmp, layout, delimiter=",")


def write_rafdb(cleaned: CleanedLabels, tmp: Path, ctx: WriteContext) -> Written:
    """RAF-DB ``list_patition_label.txt``: ``<name> <label 1..7>`` per line."""
    cleaned = _in_classes(cleaned, RAFDB_CLASSES, "rafdb")
    src = _dataset(ctx)
    lookup, seen, written, unscored = _lookup(cleaned), set(), 0, 0
    with open(src, encoding="utf-8-sig", newline="") as fin, open(tmp, "w", encoding="utf-8", newline="") as fout:
        for line_no, line in enumerate(fin, 1):
            body = line.rstrip("\r\n")
            parts = body.split()
            face = lookup.get(parts[0]) if parts else None
            if face is None:
                unscored += bool(parts)
                fout.write(line)
                continue
            seen.add(parts[0])
            given, clean = face
            if len(parts) != 2 or _int(parts[1]) - 1 != given:
                raise ExportError(
                    f"{src}, row {line_no}: {body!r} does not give label {given + 1}"
                    f" ({RAFDB_CLASSES[given]}) as the scores do; pass the scored --dataset"
                )
            if clean < 0:
                continue
            fout.write(line if clean == given else f"{parts[0]} {clean + 1}{line[len(body) :]}")
            written += 1
    _all_found(lookup, seen, src)
    return Written(written, unscored)


def _rewrite_csv(cleaned: CleanedLabels, src: Path, tmp: Path, layout: CsvLayout, *, delimiter: str) -> Written:
    """Copy ``src`` to ``tmp`` record by record: untouched records byte for byte, changed ones re-quoted."""
    with open(src, encoding="utf-8", newline="") as fh:
        encoding = "utf-8-sig" if fh.read(1) == BOM else "utf-8"
    lookup, seen, written, unscored = _lookup(cleaned), set(), 0, 0
    with open(src, encoding="utf-8-sig", newline="") as fin, open(tmp, "w", encoding=encoding, newline="") as fout:
        consumed: list[str] = []
        reader = csv.reader(_recording(fin, consumed), delimiter=delimiter)

        def raw() -> str:
            text = "".join(consumed)
            consumed.clear()
            return text

        header = None if layout.names else next(reader, [])
        columns = list(layout.names) if header is None else [c.strip() for c in header]
        fout.write(raw())
        if layout.label_column not in columns:
            raise ExportError(
                f"{src}: no column {layout.label_column!r} (columns: {', '.join(columns)});"
                " pass the right --dataset (or --label-column)"
            )
        label_at = columns.index(layout.label_column)
        for n, row in enumerate(reader):
            text = raw()
            key = layout.key(n, dict(zip(columns, row))) if len(row) == len(columns) else None
            face = lookup.get(key) if key is not None and key not in seen else None
            if face is None:  # not scored, or a repeat of a face's row (the reader kept the first)
                unscored += bool(row)
                fout.write(text)
                continue
            seen.add(key)
            given, clean = face
            if layout.decode(row[label_at]) != given:
                raise ExportError(
                    f"{src}, row {reader.line_num}: column {layout.label_column!r} holds {row[label_at]!r} but"
                    f" the scores give {cleaned.classes[given] if given >= 0 else 'no label'} for {key!r};"
                    " pass the dataset the scores came from (--dataset) and its --label-column"
                )
            if clean < 0:
                continue
            if clean != given:
                if layout.derived:
                    for column, cell in layout.derived(dict(zip(columns, row)), clean).items():
                        if column in columns:
                            row[columns.index(column)] = cell
                row[label_at] = layout.encode(clean, row[label_at])
                ending = text[len(text.rstrip("\r\n")) :]
                csv.writer(fout, delimiter=delimiter, lineterminator=ending).writerow(row)
            else:
                fout.write(text)
            written += 1
    _all_found(lookup, seen, src)
    return Written(written, unscored)


def _cells(src: Path, delimiter: str, column: str) -> set[str]:
    """The distinct cells (stripped) of ``column`` in the CSV ``src`` with a header; empty without it."""
    with open(src, encoding="utf-8-sig", newline="") as fin:
        rows = csv.reader(fin, delimiter=delimiter)
        columns = [c.strip() for c in next(rows, [])]
        if column not in columns:
            return set()
        at = columns.index(column)
        return {row[at].strip() for row in rows if len(row) > at}


def _recording(lines: Iterable[str], consumed: list[str]) -> Iterator[str]:
    """Yield ``lines``, appending each to ``consumed`` (the raw text of the record being parsed)."""
    for line in lines:
        consumed.append(line)
        yield line


def _lookup(cleaned: CleanedLabels) -> dict[str, tuple[int, int]]:
    """sample_id -> (given label, clean label or -1 when the face is left out)."""
    f = cleaned.faces
    clean = np.where(cleaned.kept, f["clean_label"], -1)
    return dict(zip(f["sample_id"], zip(f["given_label"].tolist(), clean.tolist())))


def _all_found(lookup: dict[str, tuple[int, int]], seen: set[str], src: Path) -> None:
    missing = [sid for sid in lookup if sid not in seen]
    if missing:
        raise ExportError(
            f"{src}: {len(missing)} scored face(s) are not rows of this file (e.g."
            f" {missing[0]!r}); pass the dataset the scores were computed from with --dataset"
        )


def _dataset(ctx: WriteContext) -> Path:
    if ctx.dataset is None or not ctx.dataset.is_file():
        raise ExportError(f"original label file {ctx.dataset} not found; pass it with --dataset")
    return ctx.dataset


def _header(src: Path, delimiter: str) -> list[str]:
    with open(src, encoding="utf-8-sig", newline="") as fh:
        return [c.strip() for c in next(csv.reader(fh, delimiter=delimiter), [])]


def _guess(header: list[str], candidates: Sequence[str], option: str, src: Path) -> str:
    found = next((c for c in candidates if c in header), None)
    if found is None:
        raise ExportError(f"{src}: cannot tell which column to use (columns: {', '.join(header)}); pass {option}")
    return found


def _in_classes(cleaned: CleanedLabels, expected: Sequence[str], fmt: str) -> CleanedLabels:
    """``cleaned`` with its class ids those of ``expected`` (the classes ``fmt`` writes by number),
    each of its classes matched by name or as the same expression spelt another way (scores of a
    FER2013 model on a RAF-DB list: ``happy`` is RAF-DB's ``happiness``); ExportError otherwise."""
    if list(cleaned.classes) == list(expected):
        return cleaned
    to = ids_in(cleaned.classes, expected)  # -1 (none) stays
    if to is None or len(cleaned.classes) != len(expected):
        raise ExportError(
            f"--format {fmt} writes the classes {', '.join(expected)} by number, but the scores"
            f" have {', '.join(cleaned.classes)}; use --format csv, jsonl or parquet"
        )
    faces = cleaned.faces.assign(**{c: to[cleaned.faces[c].to_numpy()] for c in LABEL_COLUMNS})
    target = np.empty_like(cleaned.target)
    target[:, to[:-1]] = cleaned.target
    return CleanedLabels(faces, target, list(expected))


def _int(cell: str) -> int:
    cell = cell.strip()
    return int(cell) if INT.fullmatch(cell) else -2


def _int_text(label_id: int, old: str) -> str:
    return str(label_id)
