"""Policies: turn a decisions table into one clean label and action per face.

=============  ===============================================================================
policy         faces nobody curated
=============  ===============================================================================
decisions      flagged faces (verdict ambiguous or likely_mislabeled) -> ``review`` (they keep
               their given label until a curator decides); the rest -> ``keep``
auto           flagged faces whose suggestion differs from the given label and has
               ``label_distribution[suggested] >= confidence`` -> ``accept_suggestion``;
               other likely_mislabeled faces -> ``drop``; other ambiguous faces -> ``soft``
               (given label plus the soft distribution); ok faces -> ``keep``
soft           every face -> ``soft``
=============  ===============================================================================

Curator decisions always win (``decided_by = "curator"``): keep, relabel, accept_suggestion, or
exclude (the face is left out). Everything else is ``decided_by = "auto"``. ``drop`` and
``exclude`` faces have clean_label -1 and are not written.

Training target per face (``CleanedLabels.target``): the label distribution for ``soft`` faces,
one-hot of the clean label otherwise (zeros when there is none).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from curate.export.data_policies import DATA_ACTIONS
from curate.export.source import DecisionTable

POLICIES = ("decisions", "auto", "soft")
ACTIONS = ("keep", "relabel", "accept_suggestion", "soft", "review", "drop", "exclude", *DATA_ACTIONS)
#: Actions whose faces are left out of the cleaned file (DATA_ACTIONS: :mod:`curate.export.data_policies`).
REMOVED = frozenset({"drop", "exclude", *DATA_ACTIONS})
DEFAULT_CONFIDENCE = 0.8


@dataclass
class CleanedLabels:
    """The policy's result. ``faces``: the decisions table's sample_id, filepath, split,
    given_label, suggested_label, mislabel_score, ambiguity_score, verdict, plus clean_label
    (int, -1 = none), action (:data:`ACTIONS`) and decided_by (curator | auto). ``target``: (N, C)."""

    faces: pd.DataFrame
    target: np.ndarray
    classes: list[str]

    @property
    def kept(self) -> np.ndarray:
        """(N,) bool: the faces written to the cleaned file."""
        return ~self.faces["action"].isin(REMOVED).to_numpy()


def apply_policy(table: DecisionTable, policy: str, *, confidence: float = DEFAULT_CONFIDENCE) -> CleanedLabels:
    """Apply ``policy`` to every face of ``table``; curator decisions override it."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    if not 0.0 <= confidence <= 1.0:
        raise ValueError(f"confidence must lie in [0, 1], not {confidence}")
    f = table.faces
    given = f["given_label"].to_numpy()
    suggested = f["suggested_label"].to_numpy()
    verdict = f["verdict"].to_numpy()
    flagged = verdict != "ok"
    action = np.full(len(f), "keep", dtype=object)
    label = given.copy()
    if policy == "decisions":
        action[flagged] = "review"
    elif policy == "auto":
        p_suggested = np.where(suggested >= 0, table.distribution[np.arange(len(f)), suggested.clip(0)], 0.0)
        confident = flagged & (suggested >= 0) & (suggested != given) & (p_suggested >= confidence)
        action[confident] = "accept_suggestion"
        label[confident] = suggested[confident]
        action[~confident & (verdict == "likely_mislabeled")] = "drop"
        action[~confident & (verdict == "ambiguous")] = "soft"
    else:
        action[:] = "soft"
    curated = (f["curator_action"] != "").to_numpy()
    action[curated] = f["curator_action"].to_numpy()[curated]
    label[curated] = f["curator_label"].to_numpy()[curated]
    label[np.isin(action, list(REMOVED))] = -1
    faces = f[
        [
            "sample_id",
            "filepath",
            "split",
            "given_label",
            "suggested_label",
            "mislabel_score",
            "ambiguity_score",
            "verdict",
        ]
    ].assign(clean_label=label.astype("int64"), action=action, decided_by=np.where(curated, "curator", "auto"))
    return CleanedLabels(faces=faces, target=_target(table.distribution, label, action), classes=table.classes)


def _target(distribution: np.ndarray, label: np.ndarray, action: np.ndarray) -> np.ndarray:
    target = np.zeros_like(distribution, dtype=np.float32)
    hard = label >= 0
    target[np.flatnonzero(hard), label[hard]] = 1.0
    soft = action == "soft"
    target[soft] = distribution[soft]
    return target
