"""ImageFolder: ``<root>/<class>/`` or ``<root>/<split>/<class>/`` image trees.

Detected for any folder no other format claims; exported as a class-folder tree of links or
copies (from a dataset of any format).
"""

from __future__ import annotations

from curate.formats.registry import DatasetFormat, Lazy, NativeExport, Probe, register_format


def is_folder(probe: Probe) -> bool:
    return probe.path.is_dir()


IMAGEFOLDER = register_format(
    DatasetFormat(
        name="imagefolder",
        detect=is_folder,
        read=Lazy("curate.data.readers.imagefolder:read_imagefolder"),
        options=("classes",),
        fallback=True,
        export=NativeExport(
            "imagefolder", Lazy("curate.export.tree:write_imagefolder"), folder=True, own_only=False, image_root=None
        ),
    )
)
