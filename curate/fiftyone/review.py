"""Curator decisions on a dataset loaded by :func:`curate.fiftyone.load_scores`.

Fields written here (and never by a scores load, except their initial values on new samples):

=============  ======================  ===========================================================
field          type                    contract
=============  ======================  ===========================================================
decisions      list<dict>              oldest first; each ``{"action", "from", "to", "when", "by"}``:
                                       the label in force before/after (the given label before
                                       the first decision), UTC ISO 8601 time, curator; plus
                                       ``note`` where an action says why (keep one per group)
clean_label    Classification          the curated label: ``to`` of the last decision; None while
                                       the sample has no decision (the given label stands)
reviewed       bool (+ tag)            True once the sample has any decision
excluded       bool (+ tag)            set by the last ``exclude``/``include``; samples are never
                                       deleted
=============  ======================  ===========================================================

Actions: ``relabel``, ``accept_suggestion``, ``keep``, ``exclude``, ``include``
(:func:`keep_one_per_group` records ``exclude`` decisions with a note). The state is a
pure function of the given label and the decision list, so :func:`undo` pops the last decision and
derives the state again. Every function takes a sample collection (the dataset, a view, or
``dataset.select(ids)``), writes with bulk ``set_values``/``tag_samples`` and returns how many
samples it changed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import fiftyone as fo
import pandas as pd
from fiftyone.core.collections import SampleCollection

DECISIONS = "decisions"
CLEAN_LABEL = "clean_label"
REVIEWED = "reviewed"
EXCLUDED = "excluded"
GIVEN = "ground_truth"
SUGGESTED = "suggested_label"
DUPLICATE_GROUP = "duplicate_group"
MISLABEL = "mislabel_score"
ID_BATCH = 100_000  # ids per selecting view (MongoDB commands are limited to 16 MB)


@dataclass(frozen=True)
class State:
    """What a decision history means for one sample: the label in force (given label when
    undecided), whether it was reviewed, whether it is excluded."""

    label: str | None
    reviewed: bool
    excluded: bool


def derive(given: str | None, decisions: list[dict[str, Any]]) -> State:
    """The state of a sample with given label ``given`` after ``decisions`` (oldest first)."""
    excluded = False
    for d in decisions:
        if d["action"] in ("exclude", "include"):
            excluded = d["action"] == "exclude"
    return State(decisions[-1]["to"] if decisions else given, bool(decisions), excluded)


def curator(user: Any = None) -> str:
    """Who decides: the App user's email or name when known, else ``$USER``, else ``"curator"``."""
    for attr in ("email", "name"):
        value = getattr(user, attr, None)
        if value:
            return str(value)
    return os.environ.get("USER") or "curator"


def require_scored(dataset: fo.Dataset) -> None:
    """Raise ValueError, changing nothing, unless ``dataset`` holds curate's scores (``curate load``)."""
    missing = [f for f in (GIVEN, SUGGESTED) if f not in dataset.get_field_schema()]
    if missing:
        raise ValueError(
            f"dataset {dataset.name!r} has no {', '.join(missing)} field: it was not made by "
            "`curate load`; load a scores file into it first (curate load SCORES --name NAME)"
        )


def ensure_decision_fields(dataset: fo.Dataset) -> None:
    """Declare the decision fields on ``dataset`` (no-op when present); it must hold curate's scores."""
    require_scored(dataset)
    schema = dataset.get_field_schema()
    if DECISIONS not in schema:
        dataset.add_sample_field(DECISIONS, fo.ListField, subfield=fo.DictField)
    if CLEAN_LABEL not in schema:
        dataset.add_sample_field(CLEAN_LABEL, fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
    for name in (REVIEWED, EXCLUDED):
        if name not in schema:
            dataset.add_sample_field(name, fo.BooleanField)


def relabel(samples: SampleCollection, label: str, *, by: str | None = None) -> int:
    """Set the curated label of ``samples`` to ``label`` (a class of the dataset)."""
    classes = samples._root_dataset.default_classes
    if classes and label not in classes:
        raise ValueError(f"unknown class {label!r}; the dataset's classes are {classes}")
    return _decide(samples, "relabel", lambda row: label, by)


def accept_suggestions(samples: SampleCollection, *, by: str | None = None) -> int:
    """Set the curated label of ``samples`` to their ``suggested_label`` (samples without one are skipped)."""
    return _decide(samples, "accept_suggestion", lambda row: row[SUGGESTED], by, require=SUGGESTED)


def mark_reviewed(samples: SampleCollection, *, by: str | None = None) -> int:
    """Keep the current curated label of ``samples`` and mark them reviewed."""
    return _decide(samples, "keep", None, by)


def exclude(samples: SampleCollection, *, by: str | None = None) -> int:
    """Exclude ``samples`` from the cleaned dataset (reversible: :func:`include` or :func:`undo`)."""
    return _decide(samples, "exclude", None, by)


def include(samples: SampleCollection, *, by: str | None = None) -> int:
    """Include previously excluded ``samples`` again."""
    return _decide(samples, "include", None, by)


def keep_one_per_group(samples: SampleCollection, *, by: str | None = None) -> int:
    """Exclude, in each exact-duplicate group (``duplicate_group`` >= 0) among ``samples``, every
    face but one; returns how many faces it excluded.

    Only the faces of ``samples`` count (run it on the ``duplicates`` view for whole groups, on a
    selection to choose among some copies). Faces already excluded stay excluded and get no new
    decision, so a curator's choice stands: when all but one face of a group are excluded nothing
    changes. The face kept is, among the faces not excluded, one a curator decided on (reviewed),
    then the lowest ``mislabel_score``, then the first sample key. Each exclusion is an ordinary
    ``exclude`` decision (``note``: the group and the face kept), undone by :func:`undo` or
    :func:`include` on the excluded faces.
    """
    if DUPLICATE_GROUP not in samples._root_dataset.get_field_schema():
        raise ValueError("the dataset has no duplicate_group field: load a scores file written with data issues")
    rows = _rows(samples, (DUPLICATE_GROUP, MISLABEL, "sample_key"))
    groups: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        if r[DUPLICATE_GROUP] is not None and r[DUPLICATE_GROUP] >= 0:
            r["state"] = derive(r[GIVEN], r[DECISIONS])
            if not r["state"].excluded:
                groups.setdefault(int(r[DUPLICATE_GROUP]), []).append(r)
    notes = {}
    for group, members in groups.items():
        keeper = min(members, key=_keep_rank)
        for r in members:
            if r is not keeper:
                notes[r["id"]] = f"duplicate_group {group}: kept {keeper['sample_key']}"
    if not notes:
        return 0
    return _decide(samples._root_dataset.select(list(notes)), "exclude", None, by, note=notes)


def _keep_rank(row: dict[str, Any]) -> tuple[bool, float, str]:
    score = row[MISLABEL]
    return (not row["state"].reviewed, float("inf") if score is None else float(score), str(row["sample_key"]))


def undo(samples: SampleCollection) -> int:
    """Remove the last decision of each of ``samples`` that has one and restore the state before it."""
    rows = _rows(samples, ())
    histories = {r["id"]: r[DECISIONS][:-1] for r in rows if r[DECISIONS]}
    _write(samples._root_dataset, histories, {r["id"]: r[GIVEN] for r in rows})
    return len(histories)


def _decide(
    samples: SampleCollection,
    action: str,
    target: Callable[[dict[str, Any]], str | None] | None,
    by: str | None,
    *,
    require: str | None = None,
    note: dict[str, str] | None = None,
) -> int:
    """Append one ``action`` decision to each sample; ``target(row)`` = the new label (None: keep);
    ``note``: sample id -> why, stored in the decision."""
    rows = _rows(samples, (SUGGESTED,) if require else ())
    if require:
        rows = [r for r in rows if r[require]]
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    who = by or curator()
    histories = {}
    for r in rows:
        before = derive(r[GIVEN], r[DECISIONS]).label
        after = before if target is None else target(r)
        decision = {"action": action, "from": before, "to": after, "when": when, "by": who}
        if note and r["id"] in note:
            decision["note"] = note[r["id"]]
        histories[r["id"]] = [*r[DECISIONS], decision]
    _write(samples._root_dataset, histories, {r["id"]: r[GIVEN] for r in rows})
    return len(histories)


def _rows(samples: SampleCollection, extra: Iterable[str]) -> list[dict[str, Any]]:
    """id, given label, decision list (and ``extra`` fields) of each sample, read from the dataset."""
    dataset = samples._root_dataset
    ensure_decision_fields(dataset)
    fields = ["id", f"{GIVEN}.label", DECISIONS, *extra]
    names = ["id", GIVEN, DECISIONS, *extra]
    rows = [
        dict(zip(names, row))
        for ids in _id_batches(samples.values("id"))
        for row in zip(*dataset.select(ids).values(fields))
    ]
    for r in rows:
        r[DECISIONS] = list(r[DECISIONS] or [])
    return rows


def _write(dataset: fo.Dataset, histories: dict[str, list[dict[str, Any]]], given: dict[str, str | None]) -> None:
    """Store decision lists and the state they imply (fields and tags), in bulk."""
    if not histories:
        return
    states = {sid: derive(given[sid], h) for sid, h in histories.items()}
    dataset.set_values(DECISIONS, histories, key_field="id")
    clean = {sid: fo.Classification(label=s.label) if s.reviewed else None for sid, s in states.items()}
    dataset.set_values(CLEAN_LABEL, clean, key_field="id")
    dataset.set_values(REVIEWED, {sid: s.reviewed for sid, s in states.items()}, key_field="id")
    dataset.set_values(EXCLUDED, {sid: s.excluded for sid, s in states.items()}, key_field="id")
    for tag in (REVIEWED, EXCLUDED):  # the tags carry the same names as the fields
        on = [sid for sid, s in states.items() if getattr(s, tag)]
        off = [sid for sid, s in states.items() if not getattr(s, tag)]
        for ids in _id_batches(on):
            dataset.select(ids).tag_samples(tag)
        for ids in _id_batches(off):
            dataset.select(ids).untag_samples(tag)


def _id_batches(ids: list[str]) -> Iterator[list[str]]:
    """``ids`` in lists of at most :data:`ID_BATCH`: a view selecting ids sends them all in one
    command, which MongoDB refuses above 16 MB (about 500,000 ids)."""
    size = ID_BATCH
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def similar_view(
    samples: SampleCollection, sample_ids: list[str], *, brain_key: str, k: int | None = None
) -> fo.DatasetView:
    """``samples`` (the dataset or the view being browsed) sorted by similarity to ``sample_ids``
    (their mean) with the dataset's similarity run ``brain_key``."""
    if not sample_ids:
        raise ValueError("select at least one face to find similar faces")
    if brain_key not in samples._root_dataset.list_brain_runs():
        raise ValueError(f"the dataset has no similarity run {brain_key!r}; load the scores with similarity")
    return samples.sort_by_similarity(sample_ids, k=k, brain_key=brain_key)


def queue_counts(dataset: fo.Dataset) -> dict[str, int]:
    """Number of samples in each saved view (the review queues)."""
    return {name: dataset.load_saved_view(name).count() for name in dataset.list_saved_views()}


def confusion(dataset: fo.Dataset) -> pd.DataFrame:
    """Counts of given label (rows) x suggested label (columns), over the dataset's classes."""
    require_scored(dataset)
    given, suggested = dataset.values([f"{GIVEN}.label", SUGGESTED])
    classes = dataset.default_classes or sorted({c for c in (*given, *suggested) if c})
    table = pd.crosstab(pd.Categorical(given, classes), pd.Categorical(suggested, classes), dropna=False)
    table.index.name, table.columns.name = "given", "suggested"
    return table
