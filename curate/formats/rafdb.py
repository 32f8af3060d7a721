"""RAF-DB (basic): ``EmoLabel/list_patition_label.txt``, detected by that file name or a folder
holding it; exported as the label file with its labels rewritten."""

from __future__ import annotations

from pathlib import Path

from curate.formats.registry import DatasetFormat, Lazy, NativeExport, Probe, register_format

LABEL_FILE = "list_patition_label.txt"


def label_file(root: Path) -> Path:
    """The label file of a RAF-DB folder."""
    return root / "EmoLabel" / LABEL_FILE


def is_rafdb(probe: Probe) -> bool:
    path = probe.path
    return label_file(path).is_file() if path.is_dir() else path.is_file() and path.name == LABEL_FILE


def image_root(labels: Path) -> Path:
    """Images sit under the folder above ``EmoLabel/``."""
    return labels.parent.parent


RAFDB = register_format(
    DatasetFormat(
        name="rafdb",
        detect=is_rafdb,
        read=Lazy("curate.data.readers.rafdb:read_rafdb"),
        options=("images", "root"),
        export=NativeExport(
            "rafdb", Lazy("curate.export.native:write_rafdb"), label_file=label_file, image_root=image_root
        ),
    )
)
