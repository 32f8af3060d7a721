"""The ImageFolder export: ``out/[<split>/]<class>/<file name>``, one symlink or copy per kept face.

The split level is kept when every split is an ImageFolder split name (train, val, test,
Training, PublicTest, ...) unless the original dataset is a flat ImageFolder; one split with
another name gives a flat tree; several such splits are an error. The file name is the last
component of the sample id (plus the image's suffix when it has none). A class keeps the original
ImageFolder's own folder name where its faces came from one (SFEW's ``Angry`` for scores of a
FER2013 model, which call it ``angry``); other classes are named as the scores name them. Absolute
ids, ids with ``..``, class or split names that are not plain folder names, and two faces landing
on the same path are refused. Symlinks point at the absolute image path.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path, PurePosixPath

import pandas as pd

from curate.data.readers.imagefolder import SPLIT_NAMES
from curate.export.native import WriteContext, Written
from curate.export.policies import CleanedLabels
from curate.export.safety import MARKER, ExportError, safe_component, safe_file_name
from curate.expression_names import match_classes

LINKS = ("symlink", "copy")


def write_imagefolder(cleaned: CleanedLabels, tmp: Path, ctx: WriteContext) -> Written:
    """Fill the (empty) folder ``tmp`` with the class-folder tree of the kept faces (``ctx.links``:
    one of :data:`LINKS`)."""
    faces = cleaned.faces[cleaned.kept]
    split_level = _split_level(faces, ctx)
    folders = _class_folders(cleaned, ctx)
    taken: dict[Path, str] = {}
    for sid, filepath, split, label in zip(faces["sample_id"], faces["filepath"], faces["split"],
                                           faces["clean_label"]):  # fmt: skip
        if label < 0:
            raise ExportError(f"sample {sid!r} has no label; an ImageFolder tree needs one per image")
        rel = Path(safe_component(folders[label], what="class name", sample_id=sid),
                   safe_file_name(sid, filepath))  # fmt: skip
        if split_level:
            rel = safe_component(split, what="split name", sample_id=sid) / rel
        if rel in taken:
            raise ExportError(
                f"samples {taken[rel]!r} and {sid!r} both map to {rel}; give them distinct"
                " file names, or export --format csv"
            )
        taken[rel] = sid
        if not os.path.isfile(filepath):
            raise ExportError(f"sample {sid!r}: image {filepath} not found; restore it or fix the scores")
        dest = tmp / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if ctx.links == "symlink":
            os.symlink(os.path.abspath(filepath), dest)
        else:
            shutil.copy2(filepath, dest)
    (tmp / MARKER).write_text(json.dumps({"tool": "curate export", "layout": "imagefolder"}) + "\n")
    return Written(len(taken))


def _class_folders(cleaned: CleanedLabels, ctx: WriteContext) -> list[str]:
    """The folder name of each class of ``cleaned``: for an ImageFolder dataset, the one folder its
    faces given that class lie in when that folder names the same expression (any spelling), else
    the class name of the scores."""
    names = list(cleaned.classes)
    if ctx.dataset_format != "imagefolder":
        return names
    faces = cleaned.faces
    folders = pd.Series([PurePosixPath(s).parent.name for s in faces["sample_id"]], index=faces.index)
    for label, found in folders.groupby(faces["given_label"]):
        if label >= 0 and found.nunique() == 1 and match_classes([found.iloc[0]], [names[label]]):
            names[label] = found.iloc[0]
    return names


def _split_level(faces: pd.DataFrame, ctx: WriteContext) -> bool:
    flat_source = ctx.dataset_format == "imagefolder" and all(
        len(PurePosixPath(s).parts) == 2 for s in faces["sample_id"]
    )
    splits = sorted(set(faces["split"]))
    if flat_source or (len(splits) == 1 and splits[0].lower() not in SPLIT_NAMES):
        return False
    unknown = [s for s in splits if s.lower() not in SPLIT_NAMES]
    if unknown:
        raise ExportError(
            f"splits {', '.join(unknown)} are not ImageFolder split folder names"
            f" ({', '.join(sorted(SPLIT_NAMES))}); export --format csv to keep them"
        )
    return True
