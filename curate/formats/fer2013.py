"""Kaggle ``fer2013.csv`` (48x48 faces as pixel strings), detected by its ``pixels`` column;
exported as the CSV with ``emotion`` rewritten (it holds no image paths)."""

from __future__ import annotations

from curate.formats.registry import DatasetFormat, Lazy, NativeExport, Probe, register_format


def has_pixels(probe: Probe) -> bool:
    return "pixels" in probe.header


FER2013 = register_format(
    DatasetFormat(
        name="fer2013",
        detect=has_pixels,
        read=Lazy("curate.data.readers.fer2013:read_fer2013"),
        options=("cache_dir", "ferplus_csv"),
        export=NativeExport("fer2013", Lazy("curate.export.native:write_fer2013"), image_root=None),
    )
)
