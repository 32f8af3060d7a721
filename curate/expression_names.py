"""The basic expressions under the spellings datasets give them, to match classes across datasets.

FER2013 says ``angry``, ``happy``, ``sad``; RAF-DB ``anger``, ``happiness``, ``sadness``; AffectNet
``anger``; SFEW's folders ``Angry``, ``Happy``, ``Sad``. A model of one dataset meeting another
(``--init-from``, ``curate score``, a native export) takes each class as the same expression, not
only as the same string.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

#: expression -> the spellings of it that datasets use (compared lower-case, letters only).
SPELLINGS: dict[str, tuple[str, ...]] = {
    "angry": ("angry", "anger"),
    "contempt": ("contempt", "contemptuous"),
    "disgust": ("disgust", "disgusted"),
    "fear": ("fear", "fearful", "afraid", "scared"),
    "happy": ("happy", "happiness", "joy"),
    "neutral": ("neutral",),
    "sad": ("sad", "sadness"),
    "surprise": ("surprise", "surprised"),
}
_EXPRESSION_OF = {spelling: expression for expression, spellings in SPELLINGS.items() for spelling in spellings}


def expression_of(name: str) -> str | None:
    """The expression of ``SPELLINGS`` that ``name`` spells (any case; spaces, digits and
    punctuation ignored), or None."""
    return _EXPRESSION_OF.get(re.sub(r"[^a-z]", "", name.lower()))


def match_classes(classes: Sequence[str], known: Sequence[str]) -> dict[str, str]:
    """{class of ``classes``: the class of ``known`` that is the same}: the same name, else the one
    name of ``known`` that spells the same expression (``anger`` -> ``angry``) when no other class of
    ``classes`` spells it too. Classes with no such match are left out."""
    same = {c: c for c in classes if c in known}
    free_known = [k for k in known if k not in same.values()]
    rest = [c for c in classes if c not in same]

    def spelling(name: str, among: Sequence[str]) -> list[str]:
        expression = expression_of(name)
        return [n for n in among if expression is not None and expression_of(n) == expression]

    for c in rest:
        found = spelling(c, free_known)
        if len(found) == 1 and spelling(found[0], rest) == [c]:
            same[c] = found[0]
    return {c: same[c] for c in classes if c in same}


def ids_in(classes: Sequence[str], known: Sequence[str]) -> np.ndarray | None:
    """(len(classes) + 1,) int: the index in ``known`` of each class of ``classes`` as
    :func:`match_classes` matches it, then -1 (so that ``ids_in(...)[labels]`` keeps a -1 label);
    None when some class has no match."""
    matched = match_classes(classes, known)
    if len(matched) < len(classes):
        return None
    return np.array([list(known).index(matched[c]) for c in classes] + [-1])
