"""The project's FERPlus ``labels.csv``, detected by its header (unless column options ask for
the generic CSV reader); exported as the CSV with ``fer2013_label`` rewritten."""

from __future__ import annotations

from curate.formats.registry import DatasetFormat, Lazy, NativeExport, Probe, register_format

#: FERPlus vote column -> FER2013 class name (contempt, unknown and NF have no FER2013 class).
FERPLUS_TO_FER2013 = {
    "neutral": "neutral",
    "happiness": "happy",
    "surprise": "surprise",
    "sadness": "sad",
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
}
FERPLUS_VOTE_COLUMNS = (*FERPLUS_TO_FER2013, "contempt", "unknown", "NF")
#: Columns whose presence identifies the layout.
FERPLUS_LABELS_COLUMNS = ("path", "row", "split", "fer2013_label", *FERPLUS_VOTE_COLUMNS)
#: Options that make a FERPlus labels.csv be read by the generic CSV reader instead.
CSV_COLUMN_OPTIONS = frozenset({"path_column", "label_column", "split_column", "id_column", "vote_columns", "classes"})


def has_ferplus_header(probe: Probe) -> bool:
    return set(FERPLUS_LABELS_COLUMNS) <= set(probe.header) and not probe.options & CSV_COLUMN_OPTIONS


FERPLUS = register_format(
    DatasetFormat(
        name="ferplus",
        detect=has_ferplus_header,
        read=Lazy("curate.data.readers.ferplus_labels:read_ferplus_labels"),
        export=NativeExport("ferplus", Lazy("curate.export.native:write_ferplus")),
    )
)
