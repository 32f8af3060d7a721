"""The export summary and the audit sidecar ``<out>.audit.json``.

The sidecar (JSON object) traces a cleaned file back to its inputs so it can be reproduced:

============  ==================================================================================
key           value
============  ==================================================================================
tool          {name, version}
created       UTC time of the export (ISO 8601)
exported_by   ``by``, else the OS user
source        {kind: scores, path, sha256} or {kind: fiftyone, name, scores: {path, sha256}|null}
model         the model that produced the scores (scores metadata), or null
dataset       {path, format, sha256 (files only)} of the original dataset, or null
classes       class names, in id order
policy        decisions | auto | soft
thresholds    {confidence, flag_rule, score_config} (the last two from the scores metadata)
format        the written format, and ``links`` for imagefolder
output        {path, sha256 (files only)}
summary       :meth:`ExportSummary.to_dict`
decisions     every curator decision: {sample_id, action, from, to, when, by}, oldest first per face
changes       every face whose action is not ``keep``: {sample_id, action, decided_by, from, to}
data_policy   only with a data policy (:mod:`curate.export.data_policies`): dedupe, leaks,
              leak_splits, drop_outliers, dropped {action: [sample_id]}, kept_per_group {group: id}
============  ==================================================================================
"""

from __future__ import annotations

import datetime as _dt
import getpass
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from curate.export.data_policies import DROPPED_AS
from curate.export.native import Written
from curate.export.policies import ACTIONS, CleanedLabels
from curate.export.source import DecisionTable

PACKAGE = "dmue-curate"
#: Label transitions listed in the printed summary (the audit has them all).
SHOWN_CHANGES = 15
#: A class of which the cleaned file keeps fewer than this share of the faces given it is named in a note.
THIN_SHARE = 0.1


@dataclass
class ExportSummary:
    """What an export wrote. ``transitions`` counts faces per ``"given -> clean"`` (clean is
    ``(dropped)``/``(excluded)`` for faces left out, given ``(unlabeled)`` when none);
    ``per_class``: class -> [faces given it, faces written with it]; ``unscored_rows`` are
    original rows re-emitted unchanged; ``cleaned`` the per-face result."""

    out: Path
    audit: Path
    format: str
    policy: str
    confidence: float
    faces: int
    written: int
    unscored_rows: int
    actions: dict[str, int]
    decided_by: dict[str, int]
    transitions: dict[str, int]
    per_class: dict[str, list[int]]
    cleaned: CleanedLabels = field(repr=False)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out), "audit": str(self.audit), "format": self.format, "policy": self.policy,
            "confidence": self.confidence, "faces": self.faces, "written": self.written,
            "unscored_rows": self.unscored_rows, "actions": self.actions, "decided_by": self.decided_by,
            "transitions": self.transitions, "per_class": self.per_class, "notes": self.notes,
        }  # fmt: skip

    def __str__(self) -> str:
        lines = [
            f"exported {self.written} of {self.faces} faces -> {self.out}"
            f" (format {self.format}, policy {self.policy}"
            + (f", confidence {self.confidence:g})" if self.policy == "auto" else ")"),
            "actions:    " + ", ".join(f"{a} {n}" for a, n in self.actions.items()),
            "decided by: " + ", ".join(f"{s} {n}" for s, n in self.decided_by.items()),
        ]
        changes = {k: n for k, n in self.transitions.items() if _changed(k)}
        if changes:
            ranked = sorted(changes.items(), key=lambda kv: (-kv[1], kv[0]))
            lines.append("changes (given -> clean):")
            lines += [f"  {n:>6}  {k}" for k, n in ranked[:SHOWN_CHANGES]]
            if len(ranked) > SHOWN_CHANGES:
                rest = sum(n for _, n in ranked[SHOWN_CHANGES:])
                lines.append(f"  {rest:>6}  in {len(ranked) - SHOWN_CHANGES} more transitions (all in the audit)")
        lines.append(f"unchanged labels: {sum(self.transitions.values()) - sum(changes.values())}")
        lines.append(
            "per class, given -> written: " + ", ".join(f"{c} {g} -> {w}" for c, (g, w) in self.per_class.items())
        )
        if self.unscored_rows:
            lines.append(f"rows not in the scores, copied unchanged: {self.unscored_rows}")
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"audit: {self.audit}")
        return "\n".join(lines)


def summarize(
    cleaned: CleanedLabels,
    written: Written,
    *,
    out: Path,
    audit: Path,
    format: str,
    policy: str,
    confidence: float,
    soft_format: bool,
    recognised: np.ndarray,
) -> ExportSummary:
    """Count actions, deciders, label transitions and faces per class of ``cleaned``; ``recognised``
    (C,): the faces given each class that the scores' model puts in it
    (:meth:`DecisionTable.recognised`), quoted for the classes the file keeps little of."""
    f = cleaned.faces
    actions = Counter(f["action"])
    C = len(cleaned.classes)
    given, clean = f["given_label"].to_numpy(), f["clean_label"].to_numpy()
    n_given = np.bincount(given[given >= 0], minlength=C)
    n_written = np.bincount(clean[cleaned.kept & (clean >= 0)], minlength=C)
    per_class = {c: [int(n_given[k]), int(n_written[k])] for k, c in enumerate(cleaned.classes)}
    name = [*cleaned.classes, "(unlabeled)"]
    removed = {"drop": "(dropped)", "exclude": "(excluded)", **DROPPED_AS}
    transitions = Counter(
        f"{name[g]} -> {removed.get(a) or name[c]}" for g, c, a in zip(f["given_label"], f["clean_label"], f["action"])
    )
    notes = []
    thin = [k for k in range(C) if n_given[k] and n_written[k] < THIN_SHARE * n_given[k]]
    if thin:
        listed = ", ".join(
            f"{cleaned.classes[k]} {n_written[k]} of {n_given[k]} (the model put {recognised[k]} of them in it)"
            for k in thin
        )
        notes.append(
            f"classes left almost empty: {listed}. A classifier trained on this file will rarely or never predict"
            " them; a model that puts few of a class's faces in it may not have learnt the class rather than"
            " found its labels wrong: review those faces (--policy decisions), or score with more faces or a"
            " pretrained start (docs/robustness.md §12)"
        )
    if actions["review"]:
        notes.append(f"{actions['review']} flagged face(s) await review; they keep their given label")
    if actions["soft"] and not soft_format:
        notes.append(
            f"{actions['soft']} soft face(s) written with their given label ({format} holds one label"
            " per face; csv, jsonl and parquet carry the distribution)"
        )
    return ExportSummary(
        out=out, audit=audit, format=format, policy=policy, confidence=confidence, faces=len(f),
        written=written.faces, unscored_rows=written.unscored_rows,
        actions={a: actions[a] for a in ACTIONS if actions[a]},
        decided_by=dict(sorted(Counter(f["decided_by"]).items())),
        transitions=dict(sorted(transitions.items())), per_class=per_class, notes=notes, cleaned=cleaned,
    )  # fmt: skip


def build_audit(
    table: DecisionTable,
    summary: ExportSummary,
    *,
    dataset: dict[str, Any] | None,
    links: str | None,
    output_sha256: str | None,
    by: str | None,
) -> dict[str, Any]:
    """The sidecar's content (see the module docstring)."""
    cleaned = summary.cleaned
    origin = dict(table.origin)
    if origin["kind"] == "scores":
        origin["sha256"] = sha256(origin["path"])
    elif origin.get("scores"):
        path = Path(origin["scores"])
        origin["scores"] = {"path": str(path), "sha256": sha256(path) if path.is_file() else None}
    name = [*cleaned.classes, None]
    f = cleaned.faces
    changes = [
        {"sample_id": sid, "action": a, "decided_by": d, "from": name[g], "to": name[c]}
        for sid, a, d, g, c in zip(f["sample_id"], f["action"], f["decided_by"], f["given_label"], f["clean_label"])
        if a != "keep"
    ]
    return {
        "tool": {"name": PACKAGE, "version": tool_version()},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "exported_by": by or getpass.getuser(),
        "source": origin,
        "model": table.metadata.get("model"),
        "dataset": dataset,
        "classes": cleaned.classes,
        "policy": summary.policy,
        "thresholds": {"confidence": summary.confidence, "flag_rule": table.metadata.get("flag_rule"),
                       "score_config": table.metadata.get("score_config")},
        "format": summary.format,
        **({"links": links} if links else {}),
        "output": {"path": str(summary.out), "sha256": output_sha256},
        "summary": summary.to_dict(),
        "decisions": table.decisions,
        "changes": changes,
    }  # fmt: skip


def write_json(data: dict[str, Any], path: Path) -> None:
    """Write ``data`` as indented JSON (datetimes as ISO text)."""
    path.write_text(json.dumps(data, indent=1, default=_json_default) + "\n", encoding="utf-8")


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tool_version() -> str:
    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        return "unknown"


def _changed(transition: str) -> bool:
    given, clean = transition.split(" -> ")
    return given != clean


def _json_default(value: object) -> str:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
