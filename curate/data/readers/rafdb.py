"""Reader for RAF-DB (basic) ``EmoLabel/list_patition_label.txt``.

Each line is ``<name> <label>``, e.g. ``train_00001.jpg 5``, with 1-based labels
1 surprise, 2 fear, 3 disgust, 4 happiness, 5 sadness, 6 anger, 7 neutral. Images sit in
``<root>/Image/aligned/<stem>_aligned.jpg`` or ``<root>/Image/original/<name>``; ``root`` is
the folder above ``EmoLabel/``. ``split`` is the name's prefix (``train``/``test``),
``sample_id`` the name as listed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import pandas as pd

from curate.data.errors import OnBad, SkipReport, check_on_bad
from curate.data.readers.common import RowErrors, load_csv
from curate.data.readers.csvlist import table_from_frame
from curate.formats.rafdb import label_file

RAFDB_CLASSES = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")


def _widest_line(path: Path) -> int:
    """The most whitespace-separated fields on one line of ``path`` (0 if unreadable: load_csv reports it)."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            return max((len(line.split()) for line in fh), default=0)
    except OSError:
        return 0


def read_rafdb(
    path: str | os.PathLike[str],
    *,
    images: Literal["aligned", "original"] = "aligned",
    root: str | os.PathLike[str] | None = None,
    on_bad: OnBad = "error",
    report: SkipReport | None = None,
) -> pd.DataFrame:
    """Read RAF-DB's label list into a LabelTable (format ``"rafdb"``, :data:`RAFDB_CLASSES`).

    ``path`` is the label file or the dataset folder holding ``EmoLabel/list_patition_label.txt``.
    """
    check_on_bad(on_bad)
    if images not in ("aligned", "original"):
        raise ValueError(f"images must be 'aligned' or 'original', not {images!r}")
    path = Path(path)
    if path.is_dir():
        path = label_file(path)
    if root is None:
        root = path.parent.parent if path.parent.name == "EmoLabel" else path.parent
    root = os.path.abspath(root)
    widest = _widest_line(path)  # more fields than names would make pandas index by the first
    extra = tuple(f"extra{k}" for k in range(max(0, widest - 2)))
    frame = load_csv(
        path, delimiter=r"\s+", names=("name", "raf_label", *extra), text_columns=("name", "raf_label", *extra)
    )
    errors = RowErrors(path, first_line=1)
    if extra:
        fields = 2 + frame[list(extra)].notna().sum(axis=1)
        for i in frame.index[fields > 2]:
            errors.add(i, f"the line has {fields[i]} fields, not 2", "Each line must read `<image name> <label 1..7>`.")
        frame = frame.drop(columns=list(extra))
    names = frame["name"].fillna("").astype(str)
    numbers = pd.to_numeric(frame["raf_label"], errors="coerce")
    bad = ~numbers.isin(range(1, len(RAFDB_CLASSES) + 1))
    listing = ", ".join(f"{i} {c}" for i, c in enumerate(RAFDB_CLASSES, 1))
    for i in frame.index[bad]:
        value = frame.at[i, "raf_label"]
        problem = "the line has no label" if pd.isna(value) else f"label {value!r} is not 1..7"
        errors.add(i, f"{problem} ({listing})", "Each line must read `<image name> <label 1..7>`.")
    frame = errors.apply(frame, on_bad=on_bad, report=report)
    names = names.loc[frame.index]
    files = names.str.replace(r"(\.[^.]+)$", r"_aligned\1", regex=True) if images == "aligned" else names
    table_frame = pd.DataFrame(
        {
            "name": names,
            "filepath": [f"Image/{images}/{f}" for f in files],
            "label_name": [RAFDB_CLASSES[int(n) - 1] for n in numbers.loc[frame.index]],
            "split": names.str.split("_", n=1).str[0],
        },
        index=frame.index,
    )
    return table_from_frame(
        table_frame,
        source=path,
        path_column="filepath",
        label_column="label_name",
        split_column="split",
        id_column="name",
        classes=RAFDB_CLASSES,
        vote_columns=None,
        image_root=root,
        first_line=1,
        on_bad=on_bad,
        report=report,
        fmt="rafdb",
    )
