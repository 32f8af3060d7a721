"""Reader for class-folder datasets: ``root/<class>/<image>`` or ``root/<split>/<class>/<image>``.

The split layout is used when every top-level folder is a split name (:data:`SPLIT_NAMES`,
case-insensitive); the folder name is kept as the split. Without split folders every image
is ``"train"``. Classes are the sorted class-folder names unless ``classes`` is given (an empty
class folder still adds its class). Hidden entries (``.name``) are ignored; other non-image
files and sub-folders are ignored with a warning in ``report``. ``sample_id`` is the image's
path relative to ``root``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from curate.data.errors import DataError, OnBad, SkipReport, check_on_bad, reject
from curate.data.images import FILE_HINT, RENAME_HINT, file_problem, is_image_name, name_problem
from curate.data.table import make_table

SPLIT_NAMES = frozenset(
    {
        "train",
        "training",
        "val",
        "valid",
        "validation",
        "test",
        "testing",
        "dev",
        "eval",
        "publictest",
        "privatetest",
    }
)
LAYOUT_HINT = "Put images in <root>/<class>/ or <root>/<split>/<class>/."


def read_imagefolder(
    path: str | os.PathLike[str],
    *,
    classes: Sequence[str] | None = None,
    on_bad: OnBad = "error",
    report: SkipReport | None = None,
) -> pd.DataFrame:
    """Read a class-folder tree into a LabelTable (format ``"imagefolder"``)."""
    check_on_bad(on_bad)
    root = Path(path).absolute()
    if not root.is_dir():
        raise DataError(path, None, "is not a folder", LAYOUT_HINT)
    top = _subfolders(root, on_bad=on_bad, report=report)
    if not top:
        raise DataError(path, None, "holds no class folders", LAYOUT_HINT)
    if all(d.name.lower() in SPLIT_NAMES for d in top):
        groups = [(d.name, c) for d in top for c in _subfolders(d, on_bad=on_bad, report=report)]
    else:
        groups = [("train", c) for c in top]
    classes = [str(c) for c in classes] if classes is not None else sorted({c.name for _, c in groups})
    index = {name: i for i, name in enumerate(classes)}
    ids, files, labels, splits = [], [], [], []
    for split, folder in groups:
        if folder.name not in index:
            problem = f"class folder '{folder.name}' is not in the class list ({', '.join(classes)})"
            reject(
                DataError(folder, None, problem, "Add it to --classes or remove the folder."),
                on_bad=on_bad,
                report=report,
            )
            continue
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if not is_image_name(entry.name):
                if report is not None:
                    kind = "sub-folder" if entry.is_dir() else "non-image file"
                    report.warn(
                        DataError(entry.path, None, f"{kind} ignored", "Images must sit directly in a class folder.")
                    )
                continue
            problem = file_problem(entry.path)
            if problem:
                hint = RENAME_HINT if problem.startswith("file name") else FILE_HINT
                reject(DataError(entry.path, None, problem, hint), on_bad=on_bad, report=report)
                continue
            ids.append(Path(entry.path).relative_to(root).as_posix())
            files.append(entry.path)
            labels.append(index[folder.name])
            splits.append(split)
    return make_table(ids, files, labels, classes, splits, source=str(root), fmt="imagefolder")


def _subfolders(folder: Path, *, on_bad: OnBad, report: SkipReport | None) -> list[Path]:
    """Visible sub-folders, sorted; a non-UTF-8 folder name is a bad item, a loose file a warning."""
    found = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            if report is not None:
                report.warn(DataError(entry.path, None, "file outside a class folder ignored", LAYOUT_HINT))
        elif name_problem(entry.name):
            reject(
                DataError(entry.path, None, "folder name is not valid UTF-8", RENAME_HINT),
                on_bad=on_bad,
                report=report,
            )
        else:
            found.append(Path(entry.path))
    return found
