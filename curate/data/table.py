"""The LabelTable: one pandas DataFrame row per image, the contract every reader returns.

Columns (in this order, always present):

============  ======  ==============================================================
column        dtype   meaning
============  ======  ==============================================================
sample_id     str     unique, stable id (relative path or source row id)
filepath      str     absolute path of the image file
label         int64   class index into ``classes`` (0..C-1); -1 = unlabeled
label_name    str     ``classes[label]`` ("" when unlabeled)
split         str     e.g. "train", "val", "test", or the source's own split names
============  ======  ==============================================================

Optional columns: ``votes_<class_name>`` (int, annotator votes per class, one column per
class in ``classes`` order) and any extra source columns, kept unchanged.

``df.attrs["classes"]`` holds the ordered class-name list (length C); ``df.attrs["source"]``
the path the table was read from; ``df.attrs["format"]`` the reader's name; for a CSV list or a
FERPlus ``labels.csv``, whose labels come from one of several columns a file may have,
``df.attrs["label_column"]`` the one read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

BASE_COLUMNS = ("sample_id", "filepath", "label", "label_name", "split")
VOTE_PREFIX = "votes_"

#: FER2013 coding: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral.
FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def make_table(
    sample_id: Sequence[str],
    filepath: Sequence[str],
    label: Sequence[int],
    classes: Sequence[str],
    split: Sequence[str] | str = "train",
    *,
    source: str = "",
    fmt: str = "",
    extra: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Build a LabelTable from parallel sequences; ``extra`` columns are appended as they are."""
    classes = [str(c) for c in classes]
    labels = pd.Series(list(label), dtype="int64")
    n = len(labels)
    names = [classes[i] if i >= 0 else "" for i in labels]
    df = pd.DataFrame(
        {
            "sample_id": pd.Series(list(sample_id), dtype="object").astype(str),
            "filepath": pd.Series(list(filepath), dtype="object").astype(str),
            "label": labels,
            "label_name": names,
            "split": [split] * n if isinstance(split, str) else list(split),
        }
    )
    if extra is not None:
        extra = extra.reset_index(drop=True)
        for col in extra.columns:
            if col not in df.columns:
                df[col] = extra[col].to_numpy()
    df.attrs.update(classes=classes, source=str(source), format=fmt)
    return df


def describe(df: pd.DataFrame) -> str:
    """One line on what a LabelTable holds and, where it records one, which column its labels came
    from, e.g. ``read labels.csv as ferplus: 3,372 faces of 7 classes, the labels of its column
    fer2013_label (...)``: a CSV with several label-like columns is read by its detected format."""
    source = os.path.basename(str(df.attrs.get("source", ""))) or "the dataset"
    line = f"read {source} as {df.attrs.get('format', 'a dataset')}: {len(df):,} faces of {len(classes_of(df))} classes"
    column = df.attrs.get("label_column")
    if column:
        other = "--label-column NAME" if df.attrs.get("format") == "csv" else "--format csv --label-column NAME"
        line += f", the labels of its column {column} ({other} reads another)"
    return line


def classes_of(df: pd.DataFrame) -> list[str]:
    """The ordered class-name list of a LabelTable."""
    try:
        return list(df.attrs["classes"])
    except KeyError:
        raise ValueError("not a LabelTable: df.attrs['classes'] is missing") from None


def vote_columns(df: pd.DataFrame) -> list[str]:
    """Names of the ``votes_<class>`` columns in class order, or [] when the table has no votes."""
    cols = [VOTE_PREFIX + c for c in classes_of(df)]
    return cols if all(c in df.columns for c in cols) else []


def validate_table(df: pd.DataFrame) -> None:
    """Raise ``ValueError`` when ``df`` breaks the LabelTable contract described above."""
    classes = classes_of(df)
    if tuple(df.columns[: len(BASE_COLUMNS)]) != BASE_COLUMNS:
        raise ValueError(f"a LabelTable starts with columns {BASE_COLUMNS}, not {tuple(df.columns[:5])}")
    if df["label"].dtype != "int64":
        raise ValueError(f"column 'label' must be int64, not {df['label'].dtype}")
    if ((df["label"] < -1) | (df["label"] >= len(classes))).any():
        raise ValueError(f"labels must lie in -1..{len(classes) - 1}")
    expected = pd.Series([*classes, ""], dtype=object).iloc[df["label"].to_numpy()].to_numpy()
    if (df["label_name"].astype(object).to_numpy() != expected).any():
        raise ValueError("column 'label_name' does not match classes[label]")
    if df["sample_id"].duplicated().any():
        raise ValueError("column 'sample_id' has repeated ids")
    if not df["filepath"].map(os.path.isabs).all():
        raise ValueError("column 'filepath' must hold absolute paths")


def unlabeled_rows(df: pd.DataFrame, shown: int = 3) -> str:
    """``"N row(s) have no label (first: id, id, ...)"`` for a LabelTable's label == -1 rows."""
    ids = df.loc[df["label"] < 0, "sample_id"].tolist()
    return f"{len(ids)} row(s) of {df.attrs.get('source') or 'the dataset'} have no label (first: {', '.join(ids[:shown])})"


def bare_ids(classes: Sequence[str]) -> bool:
    """Whether ``classes`` are the bare ids ``"0".."C-1"``: the data gave integer labels and no names."""
    return list(classes) == [str(i) for i in range(len(classes))]


def name_class_ids(df: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame | None:
    """``df`` with its bare class ids (:func:`bare_ids`) named by ``names`` in order (id i is
    ``names[i]``; ``names`` may list more classes than the data uses; vote columns are renamed, a
    class with none gets 0 votes); None when ``df`` has names, ``names`` are these very ids, or
    an id has no name in ``names``."""
    classes, names = classes_of(df), [str(n) for n in names]
    if not bare_ids(classes) or len(classes) > len(names) or bare_ids(names):
        return None
    labels = df["label"].to_numpy()
    out = df.assign(label_name=pd.Series([*names, ""], dtype=object).iloc[labels].to_numpy())
    votes = vote_columns(df)
    if votes:
        out = out.rename(columns={VOTE_PREFIX + c: VOTE_PREFIX + names[i] for i, c in enumerate(classes)})
        for name in names[len(classes) :]:
            out[VOTE_PREFIX + name] = 0
    out.attrs = {**df.attrs, "classes": names}
    return out
