"""Reader for the project's FERPlus ``labels.csv`` (see ``shared/data/README.md``).

Layout: ``path`` (relative to the CSV's folder), ``row``, ``split`` (Training/PublicTest/
PrivateTest), ``fer2013_label`` (0..6, FER2013 coding), the ten FERPlus vote columns and
derived columns. The table's label is the noisy FER2013 label; the seven FER2013 emotions'
FERPlus votes become ``votes_<class>``; ``contempt``, ``unknown``, ``NF`` and all other
columns (``row``, ``ferplus_label``, ``label_disagrees``, ``vote_entropy``, ``dup_group``, ...)
are kept as extra columns. ``sample_id`` is the relative path.
"""

from __future__ import annotations

import os

import pandas as pd

from curate.data.errors import OnBad, SkipReport, check_on_bad
from curate.data.readers.common import load_csv, require_columns
from curate.data.readers.csvlist import table_from_frame
from curate.data.table import FER2013_CLASSES
from curate.formats.ferplus import FERPLUS_LABELS_COLUMNS, FERPLUS_TO_FER2013


def read_ferplus_labels(
    path: str | os.PathLike[str],
    *,
    on_bad: OnBad = "error",
    report: SkipReport | None = None,
) -> pd.DataFrame:
    """Read a FERPlus ``labels.csv`` into a LabelTable (format ``"ferplus"``, FER2013 classes)."""
    check_on_bad(on_bad)
    frame = load_csv(path, delimiter=",", text_columns=("path", "split"))
    require_columns(
        frame,
        FERPLUS_LABELS_COLUMNS,
        source=path,
        hint="This is not a FERPlus labels.csv: use --format csv with --path-column/--label-column.",
    )
    table = table_from_frame(
        frame,
        source=path,
        path_column="path",
        label_column="fer2013_label",
        split_column="split",
        id_column=None,
        classes=FER2013_CLASSES,
        vote_columns=FERPLUS_TO_FER2013,
        image_root=os.path.dirname(os.path.abspath(path)),
        first_line=2,
        on_bad=on_bad,
        report=report,
        fmt="ferplus",
    )
    table.attrs["label_column"] = "fer2013_label"  # a column added beside it is not read (curate.formats.ferplus)
    return table
