"""``export_cleaned``: source -> decisions table -> policy -> format, written atomically with its audit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from curate.data import DataError
from curate.export.audit import ExportSummary, build_audit, sha256, summarize, write_json
from curate.export.data_policies import DataPolicy, apply_data_policy
from curate.export.formats import Format, export_formats, resolve_format
from curate.export.native import WriteContext
from curate.export.policies import DEFAULT_CONFIDENCE, POLICIES, apply_policy
from curate.export.safety import ExportError, Staged, check_output
from curate.export.source import DecisionTable, load_source
from curate.export.tree import LINKS
from curate.formats import detect_format, find_format
from curate.formats.fiftyone_dataset import PREFIX as FIFTYONE_PREFIX
from curate.records import embeddings_path

AUDIT_SUFFIX = ".audit.json"


def export_cleaned(
    source: str | os.PathLike[str],
    *,
    format: str,
    policy: str,
    out: str | os.PathLike[str],
    force: bool = False,
    dataset: str | os.PathLike[str] | None = None,
    links: str = "symlink",
    confidence: float = DEFAULT_CONFIDENCE,
    by: str | None = None,
    label_field: str = "ground_truth",
    label_column: str | None = None,
    path_column: str | None = None,
    id_column: str | None = None,
    data_policy: DataPolicy | None = None,
) -> ExportSummary:
    """Write the cleaned labels of SOURCE to ``out`` and the audit to ``<out>.audit.json``.

    ``source``: a scores.parquet or a FiftyOne dataset (``fiftyone:NAME`` or NAME; its given
    labels in ``label_field``). ``format``: see :func:`curate.export.formats.format_choices`;
    own formats re-emit the original dataset, ``dataset`` or else the scores metadata's
    ``dataset`` (``label_column``/``path_column``/``id_column`` name the columns of a generic
    CSV list when they are not the reader's defaults). ``policy``/``confidence``: see
    :mod:`curate.export.policies`; ``data_policy``: duplicates, leaks and outliers to leave out
    (:mod:`curate.export.data_policies`). ``links``: symlink or copy (imagefolder). ``by``: who exports
    (default: the OS user). Raises :class:`ExportError` before writing anything when the export
    cannot be done safely; on any error the previous output is left as it was.
    """
    if policy not in POLICIES:
        raise ExportError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    if links not in LINKS:
        raise ExportError(f"links must be one of {', '.join(LINKS)}, not {links!r}")
    if not 0.0 <= confidence <= 1.0:
        raise ExportError(f"confidence must lie in [0, 1], not {confidence}")
    data_policy = data_policy or DataPolicy()
    data_policy.check()
    table = load_source(os.fspath(source), label_field=label_field)
    formats = export_formats()
    own_format = format == "native" or (format in formats and formats[format].native)
    ctx = _context(dataset, table, required=own_format, links=links, label_column=label_column,
                   path_column=path_column, id_column=id_column)  # fmt: skip
    name = resolve_format(format, ctx.dataset_format)
    fmt = formats[name]
    if policy == "soft" and not fmt.soft:
        raise ExportError(
            f"policy soft gives every face a distribution, which {name} cannot hold;"
            " export --format csv, jsonl or parquet"
        )
    cleaned = apply_policy(table, policy, confidence=confidence)
    data = apply_data_policy(table, cleaned, data_policy)
    out = Path(out).absolute()
    sidecar = out.with_name(out.name + AUDIT_SUFFIX)
    protected = [Path(p) for p in (table.origin.get("path"), table.origin.get("scores"), ctx.dataset) if p]
    check_output(
        out, sidecar, force=force, folder=fmt.folder, protected_files=protected + _run_files(table),
        protected_trees=[ctx.dataset] if ctx.dataset and ctx.dataset.is_dir() else [],
        images=cleaned.faces["filepath"],
    )  # fmt: skip
    staged = [Staged(out, folder=fmt.folder)]
    try:
        written = fmt.write(cleaned, staged[0].path, ctx)
        summary = summarize(cleaned, written, out=out, audit=sidecar, format=name, policy=policy,
                            confidence=confidence, soft_format=fmt.soft, recognised=table.recognised())  # fmt: skip
        summary.notes.extend(table.notes + data.notes)
        if own_format and _relative_elsewhere(ctx, fmt, out, cleaned.faces["filepath"]):
            summary.notes.append(
                f"image paths are copied as written in {ctx.dataset}, relative to {ctx.dataset.parent}; "
                f"from {out.parent} they do not resolve: keep the cleaned file beside the original"
            )
        staged.append(Staged(sidecar, folder=False))
        audit = build_audit(
            table, summary, dataset=_describe(ctx), links=links if fmt.folder else None,
            output_sha256=None if fmt.folder else sha256(staged[0].path), by=by,
        )  # fmt: skip
        if data_policy.active:
            audit.update(data.audit())
        write_json(audit, staged[1].path)
        for item in staged:
            item.commit()
    except BaseException:
        for item in staged:
            item.abort()
        raise
    return summary


def _run_files(table: DecisionTable) -> list[Path]:
    """The scores' embeddings side file and, when the scores live in a run directory (it has a
    config.yaml), the run's other files, except earlier exports (files with an audit beside them)."""
    scores = table.origin.get("path") if table.origin.get("kind") == "scores" else table.origin.get("scores")
    if not scores:
        return []
    scores = Path(scores)
    files = [embeddings_path(scores)]
    if (scores.parent / "config.yaml").is_file():
        files += [
            f
            for f in scores.parent.iterdir()
            if f.is_file() and not f.name.endswith(AUDIT_SUFFIX) and not f.with_name(f.name + AUDIT_SUFFIX).exists()
        ]
    return files


def _relative_elsewhere(ctx: WriteContext, fmt: Format, out: Path, filepaths: Any) -> bool:
    """Whether an own-format file written to ``out`` leaves the folder its image paths (resolved
    by the reader against ``fmt.image_root`` of the original file) are relative to."""
    if fmt.image_root is None or ctx.dataset is None or not ctx.dataset.is_file():
        return False
    if out.parent.resolve() == ctx.dataset.parent.resolve():
        return False
    root = fmt.image_root(ctx.dataset)
    return any(Path(p).resolve().is_relative_to(root.resolve()) for p in list(filepaths)[:100])


def _context(
    dataset: str | os.PathLike[str] | None, table: DecisionTable, *, required: bool, **options: Any
) -> WriteContext:
    """The original dataset: ``dataset`` when given, else the scores metadata's; it must exist
    when given or ``required`` (own formats), else a missing one is ignored. A dataset folder
    becomes its format's label file, when the format has one. Without ``dataset``, the format and the column options the scores
    were read with (their metadata) are used, unless given here."""
    given = dataset is not None
    recorded = {} if given else dict(table.metadata.get("reader") or {})
    options = {k: v if v is not None else recorded.get(k) for k, v in options.items()}
    text = os.fspath(dataset) if given else str(table.metadata.get("dataset") or "")
    if not text:
        return WriteContext(**options)
    if text.startswith(FIFTYONE_PREFIX):
        return WriteContext(dataset_format="fiftyone", **options)
    path = Path(text).absolute()
    if not path.exists():
        if given:
            raise ExportError(f"--dataset {text}: not found; check the path")
        if required:
            raise ExportError(f"the scores' original dataset {text} is not found (moved?); pass it with --dataset")
        return WriteContext(**options)
    try:
        fmt = (None if given else table.metadata.get("dataset_format")) or detect_format(path)
    except DataError as exc:
        raise ExportError(str(exc)) from None
    spec = find_format(fmt)
    if path.is_dir() and spec is not None and spec.export is not None and spec.export.label_file is not None:
        path = spec.export.label_file(path)
    return WriteContext(dataset=path, dataset_format=fmt, **options)


def _describe(ctx: WriteContext) -> dict[str, Any] | None:
    if ctx.dataset is None:
        return None
    return {"path": str(ctx.dataset), "format": ctx.dataset_format,
            "sha256": sha256(ctx.dataset) if ctx.dataset.is_file() else None}  # fmt: skip
