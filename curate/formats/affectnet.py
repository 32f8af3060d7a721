"""AffectNet's manually annotated CSVs, detected by the ``subDirectory_filePath`` column;
exported as the CSV with ``expression`` rewritten."""

from __future__ import annotations

from curate.formats.registry import DatasetFormat, Lazy, NativeExport, Probe, register_format

AFFECTNET_COLUMNS = (
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
)


def has_image_column(probe: Probe) -> bool:
    return AFFECTNET_COLUMNS[0] in probe.header


AFFECTNET = register_format(
    DatasetFormat(
        name="affectnet",
        detect=has_image_column,
        read=Lazy("curate.data.readers.affectnet:read_affectnet"),
        options=("num_classes", "image_root", "split"),
        export=NativeExport("affectnet", Lazy("curate.export.native:write_affectnet")),
    )
)
