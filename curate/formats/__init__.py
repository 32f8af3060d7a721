"""Dataset formats: one module per format, each registering itself in :mod:`curate.formats.registry`.

Importing this package registers the built-in formats. A new format is one module that calls :func:`register_format`
when imported. Nothing here imports pandas.
"""

# isort: off
# Registration order = detection order among non-fallback formats, and the order of the CLI choices.
from curate.formats import imagefolder, csvlist, fiftyone_dataset, rafdb, fer2013, affectnet, ferplus  # noqa: F401

# isort: on
from curate.formats.registry import (
    DatasetFormat,
    Lazy,
    NativeExport,
    Probe,
    detect_format,
    find_format,
    format_names,
    get_format,
    register_format,
    registered_formats,
)

__all__ = [
    "DatasetFormat", "Lazy", "NativeExport", "Probe", "detect_format", "find_format", "format_names", "get_format",
    "register_format", "registered_formats",
]  # fmt: skip
