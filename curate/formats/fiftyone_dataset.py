"""A FiftyOne dataset, given as ``fiftyone:NAME`` (detected by that prefix); it has no export of
its own (``curate export`` reads curated FiftyOne datasets as a source instead)."""

from __future__ import annotations

from curate.formats.registry import DatasetFormat, Lazy, Probe, register_format

PREFIX = "fiftyone:"


def is_fiftyone(probe: Probe) -> bool:
    return probe.source.startswith(PREFIX)


FIFTYONE = register_format(
    DatasetFormat(
        name="fiftyone",
        detect=is_fiftyone,
        read=Lazy("curate.data.readers.fiftyone_dataset:read_fiftyone"),
        options=("label_field", "split_field", "classes"),
        aliases={"label_column": "label_field", "split_column": "split_field"},
    )
)
