"""The decisions table: every face's scores plus what curators decided, from either SOURCE.

SOURCE is a ``scores.parquet`` (see :mod:`curate.records`; no curator decisions) or a FiftyOne
dataset that curators worked on, one sample per face:

==================  ======================  =================================================
field               type                    meaning
==================  ======================  =================================================
sample_key          str                     the scores file's ``sample_id``
filepath            str                     absolute image path
<label_field>       Classification          the given label (default ``ground_truth``)
split               str (optional)          else the first split-name tag, else ``"train"``
label_distribution  list[float] (C)         the tool's distribution, in class order
suggested_label     str                     class name
mislabel_score      float                   [0, 1]
ambiguity_score     float                   [0, 1]
verdict             str                     ok | ambiguous | likely_mislabeled
decisions           list[dict] (optional)   curator log, oldest first: {action, from, to, when, by}
clean_label         Classification (opt.)   the label the curators settled on
tags                list[str]               ``excluded``: a curator excluded the face
==================  ======================  =================================================

``dataset.info["scores"]`` (optional) names the scores file the dataset was loaded from; its
metadata gives classes, model and the original dataset path. Without it the classes come from
``dataset.classes[label_field]`` or ``dataset.default_classes``.

The state in force is read from ``clean_label`` and the ``excluded`` tag (a note counts the faces
where the plugin's ``excluded`` field says otherwise); the ``decisions`` log says who decided when
(the last entry) and is recorded in full in the audit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from curate.data.readers.imagefolder import SPLIT_NAMES
from curate.export.safety import ExportError
from curate.formats.fiftyone_dataset import PREFIX as FIFTYONE_PREFIX
from curate.records import VERDICTS, read_metadata, read_scores, vectors

EXCLUDED_TAG = "excluded"
SCORE_COLUMNS = ["sample_id", "filepath", "split", "given_label", "label_distribution", "mislabel_score",
                 "ambiguity_score", "suggested_label", "verdict"]  # fmt: skip
FIFTYONE_FIELDS = ("sample_key", "label_distribution", "suggested_label", "mislabel_score",
                   "ambiguity_score", "verdict")  # fmt: skip


#: decisions that set a face's clean label (the others exclude or include it)
LABEL_ACTIONS = ("relabel", "accept_suggestion", "keep")


@dataclass(frozen=True)
class Curation:
    """What curators decided for one face, as stored on its FiftyOne sample."""

    decisions: tuple[dict[str, Any], ...] = ()
    clean_label: str | None = None
    excluded: bool = False

    def resolve(self, given: int, classes: Sequence[str], sample_id: str) -> tuple[str, int]:
        """(action, clean label id) in force: ``exclude``/-1, ``keep``, ``accept_suggestion``
        (the last decision that set the label accepted the suggestion of its time),
        ``relabel``; ``("", -1)`` when none is."""
        if self.excluded:
            return "exclude", -1
        if self.clean_label is None:
            return "", -1
        if self.clean_label not in classes:
            raise ExportError(
                f"sample {sample_id!r}: clean_label {self.clean_label!r} is not a class"
                f" ({', '.join(classes)}); fix it in the FiftyOne App"
            )
        label = list(classes).index(self.clean_label)
        if label == given:
            return "keep", label
        setting = next((d for d in reversed(self.decisions) if d.get("action") in LABEL_ACTIONS), {})
        accepted = setting.get("action") == "accept_suggestion" and setting.get("to") == self.clean_label
        return ("accept_suggestion" if accepted else "relabel"), label


@dataclass
class DecisionTable:
    """Faces with scores and curator decisions, in the source's order.

    ``faces`` columns: sample_id, filepath, split (str); given_label, suggested_label (int class
    ids, -1 = none); mislabel_score, ambiguity_score (float); verdict (str); curator_action
    (``""`` or keep | relabel | accept_suggestion | exclude), curator_label (int, -1 = none),
    curator_by, curator_when (str, of the last decision). ``distribution`` is the (N, C)
    label_distribution; ``decisions`` the full curator log, one dict per entry with its
    sample_id; ``origin`` describes the source; ``metadata`` is the scores metadata ({} if none);
    ``notes`` what the export should tell the user about the source.
    """

    faces: pd.DataFrame
    distribution: np.ndarray
    classes: list[str]
    origin: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def recognised(self) -> np.ndarray:
        """(C,) int: per class, the faces given it whose most likely class in ``distribution`` is
        it (how much of the class the scores' model recognises)."""
        given = self.faces["given_label"].to_numpy()
        has = given >= 0
        agree = self.distribution[has].argmax(axis=1) == given[has]
        return np.bincount(given[has][agree], minlength=len(self.classes))


def load_source(source: str, *, label_field: str = "ground_truth") -> DecisionTable:
    """A scores file (an existing path) or a FiftyOne dataset (``fiftyone:NAME`` or NAME)."""
    if not source.startswith(FIFTYONE_PREFIX) and os.path.isfile(source):
        return load_scores(source)
    if os.path.isdir(source):
        raise ExportError(f"{source} is a folder; pass the scores file in it (e.g. {source}/scores.parquet)")
    if source.endswith(".parquet"):
        raise ExportError(f"{source}: scores file not found; check the path")
    return load_fiftyone(source, label_field=label_field)


def load_scores(path: str | os.PathLike[str]) -> DecisionTable:
    """The decisions table of a scores file: no curator decisions."""
    try:
        df = read_scores(path, columns=SCORE_COLUMNS)
    except (ValueError, OSError) as exc:
        raise ExportError(f"{path}: cannot read the scores file ({exc})") from None
    if df.empty:
        raise ExportError(f"{path}: the scores file holds no faces; nothing to export")
    classes = [str(c) for c in df.attrs.get("classes", [])]
    faces = df.drop(columns="label_distribution").astype({"given_label": "int64", "suggested_label": "int64"})
    table = DecisionTable(
        faces=_with_no_curation(faces),
        distribution=vectors(df, "label_distribution"),
        classes=classes,
        origin={"kind": "scores", "path": str(Path(path).resolve())},
        metadata=dict(df.attrs),
    )
    _validate(table, str(path))
    return table


def with_curations(table: DecisionTable, curations: Mapping[str, Curation]) -> DecisionTable:
    """``table`` with the curator columns and log filled from ``curations`` (by sample_id)."""
    faces = table.faces.copy()
    index = {sid: i for i, sid in enumerate(faces["sample_id"])}
    unknown = [sid for sid in curations if sid not in index]
    if unknown:
        raise ExportError(f"decisions for unknown sample(s) {unknown[:3]}; they are not in the scores")
    log: list[dict[str, Any]] = []
    columns = {c: faces[c].to_numpy(copy=True) for c in ("curator_action", "curator_label", "curator_by",
                                                          "curator_when")}  # fmt: skip
    given = faces["given_label"].to_numpy()
    for sid, cur in curations.items():  # filled as arrays: a row-wise .loc write per face took minutes
        i = index[sid]
        action, label = cur.resolve(int(given[i]), table.classes, sid)
        last = cur.decisions[-1] if cur.decisions else {}
        for column, value in zip(columns, (action, label, str(last.get("by") or ""), _text(last.get("when")))):
            columns[column][i] = value
        log += [{"sample_id": sid, **d} for d in cur.decisions]
    faces = faces.assign(**columns).astype({"curator_label": "int64"})
    return replace(table, faces=faces, decisions=log)


def load_fiftyone(name: str, *, label_field: str = "ground_truth") -> DecisionTable:
    """The decisions table of a curated FiftyOne dataset (contract in the module docstring)."""
    import fiftyone as fo

    name = name.removeprefix(FIFTYONE_PREFIX)
    where = FIFTYONE_PREFIX + name
    if not fo.dataset_exists(name):
        raise ExportError(
            f"{where}: no FiftyOne dataset (and no file) of that name"
            f" (datasets: {', '.join(fo.list_datasets()) or 'none'}); check SOURCE"
        )
    ds = fo.load_dataset(name)
    schema = ds.get_field_schema()
    missing = [f for f in (*FIFTYONE_FIELDS, label_field) if f not in schema]
    if missing:
        raise ExportError(
            f"{where}: field(s) {', '.join(missing)} missing; it was not loaded by curate"
            " (or pass the given-label field with --label-field)"
        )
    scores = ds.info.get("scores")
    metadata = read_metadata(scores) if scores and os.path.isfile(scores) else {}
    classes = [str(c) for c in metadata.get("classes") or ds.classes.get(label_field) or ds.default_classes]
    if not classes:
        raise ExportError(
            f"{where}: no class list (info['scores'], classes[{label_field!r}] or"
            " default_classes); set dataset.default_classes"
        )
    values = dict(zip(
        ("sample_id", "filepath", "given", "mislabel_score", "ambiguity_score", "verdict", "suggested", "tags"),
        ds.values(["sample_key", "filepath", f"{label_field}.label", "mislabel_score", "ambiguity_score",
                   "verdict", "suggested_label", "tags"]),
    ))  # fmt: skip
    n = len(values["sample_id"])
    split = (
        [s or "train" for s in ds.values("split")]
        if "split" in schema
        else [next((t for t in tags if t.lower() in SPLIT_NAMES), "train") for tags in values["tags"]]
    )
    index = {c: i for i, c in enumerate(classes)}

    def ids(column: str) -> list[int]:
        bad = next((i for i, c in enumerate(values[column]) if c is not None and c not in index), None)
        if bad is not None:
            raise ExportError(
                f"{where}, sample {values['sample_id'][bad]!r}: {column} label"
                f" {values[column][bad]!r} is not a class ({', '.join(classes)})"
            )
        return [index.get(c, -1) for c in values[column]]

    faces = pd.DataFrame({
        "sample_id": values["sample_id"], "filepath": values["filepath"], "split": split,
        "given_label": ids("given"), "suggested_label": ids("suggested"),
        "mislabel_score": values["mislabel_score"], "ambiguity_score": values["ambiguity_score"],
        "verdict": values["verdict"],
    })  # fmt: skip
    dist = ds.values("label_distribution")
    bad = next((i for i, d in enumerate(dist) if d is None or len(d) != len(classes)), None)
    if bad is not None:
        raise ExportError(
            f"{where}, sample {values['sample_id'][bad]!r}: label_distribution is not"
            f" {len(classes)} numbers; reload the dataset from its scores"
        )
    table = DecisionTable(
        faces=_with_no_curation(faces),
        distribution=np.array(dist, dtype=np.float32).reshape(n, len(classes)),
        classes=classes,
        origin={"kind": "fiftyone", "name": name, "scores": str(scores) if scores else None},
        metadata=metadata,
    )
    _validate(table, where)
    decisions = ds.values("decisions") if "decisions" in schema else [None] * n
    clean = ds.values("clean_label.label") if "clean_label" in schema else [None] * n
    curations = {
        sid: Curation(tuple(log or ()), label, EXCLUDED_TAG in tags)
        for sid, log, label, tags in zip(values["sample_id"], decisions, clean, values["tags"])
        if log or label is not None or EXCLUDED_TAG in tags
    }
    if EXCLUDED_TAG in schema:  # the plugin's field: the tag wins, but say where they differ
        field_says = ds.values(EXCLUDED_TAG)
        differ = sum(bool(f) != (EXCLUDED_TAG in tags) for f, tags in zip(field_says, values["tags"]))
        if differ:
            table.notes.append(
                f"{differ} face(s) have the {EXCLUDED_TAG!r} tag without an exclude decision, or an exclude "
                f"decision without the tag (tagged or untagged by hand); the tag was followed. Use the "
                f"plugin's exclude/include to record the decision"
            )
    return with_curations(table, curations)


def _with_no_curation(faces: pd.DataFrame) -> pd.DataFrame:
    return faces.assign(curator_action="", curator_label=np.int64(-1), curator_by="", curator_when="")


def _validate(table: DecisionTable, where: str) -> None:
    faces, c = table.faces, len(table.classes)
    if not c:
        raise ExportError(f"{where}: no class names in the metadata; re-run `curate score`")
    if table.distribution.shape != (len(faces), c):
        raise ExportError(
            f"{where}: label_distribution has shape {table.distribution.shape}, expected ({len(faces)}, {c})"
        )
    for column in ("sample_id", "filepath", "verdict"):
        if faces[column].isna().any():
            row = int(np.flatnonzero(faces[column].isna())[0])
            raise ExportError(f"{where}, face {row + 1}: no {column}; re-run `curate score`")
    bad = ~faces["verdict"].isin(VERDICTS)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ExportError(
            f"{where}, sample {faces['sample_id'][row]!r}: verdict {faces['verdict'][row]!r}"
            f" is not one of {', '.join(VERDICTS)}"
        )
    repeated = faces["sample_id"][faces["sample_id"].duplicated()]
    if len(repeated):
        raise ExportError(f"{where}: sample id {repeated.iloc[0]!r} occurs more than once")


def _text(value: object) -> str:
    """A decision's ``when`` as text (FiftyOne returns datetimes)."""
    if value is None:
        return ""
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
