"""Reader for AffectNet's manually annotated CSVs (``training.csv``, ``validation.csv``).

Columns: ``subDirectory_filePath, face_x, face_y, face_width, face_height,
facial_landmarks, expression, valence, arousal`` (a header-less file is read with these
names). ``expression`` 0..7 = neutral, happy, sad, surprise, fear, disgust, anger, contempt;
8 None, 9 Uncertain and 10 Non-Face are not emotions and are left out (recorded in
``report`` under both ``on_bad`` policies), as is contempt when ``num_classes=7``.
Images are ``<image_root>/<subDirectory_filePath>``; the other columns are kept.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import pandas as pd

from curate.data.errors import DataError, OnBad, SkipReport, check_on_bad
from curate.data.readers.common import load_csv
from curate.data.readers.csvlist import table_from_frame
from curate.formats.affectnet import AFFECTNET_COLUMNS

AFFECTNET_CLASSES = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
NOT_EMOTIONS = {7: "contempt", 8: "None", 9: "Uncertain", 10: "Non-Face"}
IMAGE_FOLDER = "Manually_Annotated_Images"


def read_affectnet(
    path: str | os.PathLike[str],
    *,
    num_classes: Literal[7, 8] = 8,
    image_root: str | os.PathLike[str] | None = None,
    split: str | None = None,
    on_bad: OnBad = "error",
    report: SkipReport | None = None,
) -> pd.DataFrame:
    """Read an AffectNet CSV into a LabelTable (format ``"affectnet"``).

    ``image_root`` defaults to ``<csv folder>/Manually_Annotated_Images`` when that exists,
    else the CSV's folder. ``split`` defaults to ``train`` / ``val`` from the file name
    (``training*`` / ``validation*``), else the file's stem.
    """
    check_on_bad(on_bad)
    if num_classes not in (7, 8):
        raise ValueError(f"num_classes must be 7 or 8, not {num_classes!r}")
    path = Path(path)
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        has_header = AFFECTNET_COLUMNS[0] in fh.readline()
    frame = load_csv(
        path,
        delimiter=",",
        names=None if has_header else AFFECTNET_COLUMNS,
        text_columns=(AFFECTNET_COLUMNS[0], "expression"),
    )
    first_line = 2 if has_header else 1
    expression = pd.to_numeric(frame["expression"], errors="coerce")
    dropped = expression.between(num_classes, max(NOT_EMOTIONS))
    if report is not None:
        for i in frame.index[dropped]:
            kind = NOT_EMOTIONS[int(expression[i])]
            report.exclude(
                DataError(
                    path,
                    i + first_line,
                    f"expression {int(expression[i])} ({kind}) is not one of the {num_classes} classes",
                    "Nothing to do: the row is left out.",
                )
            )
    if image_root is None:
        image_root = path.parent / IMAGE_FOLDER if (path.parent / IMAGE_FOLDER).is_dir() else path.parent
    return table_from_frame(
        frame[~dropped],
        source=path,
        path_column=AFFECTNET_COLUMNS[0],
        label_column="expression",
        split_column=None,
        id_column=None,
        classes=AFFECTNET_CLASSES[:num_classes],
        vote_columns=None,
        image_root=image_root,
        first_line=first_line,
        on_bad=on_bad,
        report=report,
        fmt="affectnet",
        default_split=split or _split_from_name(path.name),
    )


def _split_from_name(name: str) -> str:
    lower = name.lower()
    return "train" if lower.startswith("train") else "val" if lower.startswith("valid") else Path(name).stem
