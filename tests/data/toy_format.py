"""A toy dataset format in one file, as a plug-in would add one: ``*.toy`` label lists.

A ``.toy`` file starts with ``classes: a,b,c``, then one ``<image path> <class>`` line per face
(paths relative to the file). Importing this module registers the format: detection, reader,
options and native writer all live here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from curate.data.errors import DataError, OnBad, SkipReport, reject
from curate.data.table import make_table
from curate.formats import DatasetFormat, NativeExport, Probe, register_format

SUFFIX = ".toy"


def is_toy(probe: Probe) -> bool:
    return probe.path.is_file() and probe.path.suffix == SUFFIX


def read_toy(
    path: str | os.PathLike[str], *, split: str = "train", on_bad: OnBad = "error", report: SkipReport | None = None
) -> pd.DataFrame:
    """Read a ``.toy`` list, all of it in ``split``; an image that is not there is a bad row."""
    path = Path(path)
    first, *lines = path.read_text(encoding="utf-8").splitlines()
    classes = first.removeprefix("classes:").strip().split(",")
    ids, files, labels = [], [], []
    for row, line in enumerate(lines, 2):
        name, label = line.split()
        image = (path.parent / name).resolve()
        if not image.is_file():
            reject(DataError(path, row, f"image {name!r} not found"), on_bad=on_bad, report=report)
            continue
        ids.append(name)
        files.append(str(image))
        labels.append(classes.index(label))
    return make_table(ids, files, labels, classes, split, source=str(path), fmt="toy")


def write_toy(cleaned, tmp: Path, ctx) -> object:
    """The ``.toy`` list again, with the clean labels of the kept faces."""
    from curate.export.native import Written

    faces = cleaned.faces[cleaned.kept]
    lines = [f"classes: {','.join(cleaned.classes)}"]
    lines += [f"{sid} {cleaned.classes[label]}" for sid, label in zip(faces["sample_id"], faces["clean_label"])]
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Written(len(faces))


TOY = register_format(
    DatasetFormat(name="toy", detect=is_toy, read=read_toy, options=("split",), export=NativeExport("toy", write_toy))
)
