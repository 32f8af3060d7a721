"""Generic CSV/TSV image lists (a path column and a label column, named or guessed).

Detected for any file no other format claims; exported as ``source-csv``, the original list
with its label column rewritten.
"""

from __future__ import annotations

from curate.formats.registry import DatasetFormat, Lazy, NativeExport, Probe, register_format


def is_file(probe: Probe) -> bool:
    return probe.path.is_file()


CSV = register_format(
    DatasetFormat(
        name="csv",
        detect=is_file,
        read=Lazy("curate.data.readers.csvlist:read_csvlist"),
        options=(
            "path_column",
            "label_column",
            "split_column",
            "id_column",
            "classes",
            "vote_columns",
            "delimiter",
            "image_root",
        ),  # fmt: skip
        fallback=True,
        export=NativeExport("source-csv", Lazy("curate.export.native:write_source_csv")),
    )
)
