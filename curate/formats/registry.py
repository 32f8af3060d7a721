"""The dataset-format registry: every list of formats (CLI choices, auto-detection, reading, export)
is read from it.

A :class:`DatasetFormat` is registered once, by the module that defines it
(:func:`register_format`, as ``dmue_core.backbones.register_backbone`` registers a backbone), and
owns its name, its detection, its reader with the options that reader takes, and its native
export. Readers and writers may be given as :class:`Lazy` references, imported on the first call,
so that importing the registry stays light (``curate --help`` reads it, without pandas).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

#: ``read(path, *, on_bad, report, **options) -> LabelTable`` (see :mod:`curate.data.table`).
Reader = Callable[..., Any]
#: ``write(cleaned, tmp, ctx) -> Written`` (see :mod:`curate.export.native`).
Writer = Callable[..., Any]


class Lazy:
    """A ``"module:function"`` reference, imported on the first call and called with its arguments."""

    def __init__(self, target: str) -> None:
        self.target = target

    def resolve(self) -> Callable[..., Any]:
        """The function itself (importing its module)."""
        module, name = self.target.split(":")
        return getattr(importlib.import_module(module), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Lazy({self.target!r})"


@dataclass(frozen=True)
class Probe:
    """What detection looks at: the dataset as given (a path, or e.g. ``fiftyone:NAME``) and the
    names of the reader options given with it."""

    source: str
    options: frozenset[str] = frozenset()

    @property
    def path(self) -> Path:
        return Path(self.source)

    @cached_property
    def header(self) -> list[str]:
        """A file's first-line column names (its delimiter sniffed); [] for a folder or a missing path."""
        if not self.path.is_file():
            return []
        from curate.data.readers.common import sniff_delimiter

        with open(self.path, encoding="utf-8-sig", errors="replace") as fh:
            return [c.strip() for c in fh.readline().rstrip("\r\n").split(sniff_delimiter(self.path))]


def beside(label_file: Path) -> Path:
    """The folder of ``label_file``: where the image paths of most label files are relative to."""
    return label_file.parent


@dataclass(frozen=True)
class NativeExport:
    """How ``curate export`` writes a dataset of this format back in its own layout.

    ``name``: the ``--format`` name; ``write`` fills a temporary file (a folder when ``folder``);
    ``own_only``: only a dataset of this format can be written so (the original file is rewritten),
    else any dataset can; ``label_file``: for a dataset given as a folder, the file that is rewritten;
    ``image_root``: the folder the rewritten file's image paths are relative to (None: it holds none).
    """

    name: str
    write: Writer
    folder: bool = False
    own_only: bool = True
    label_file: Callable[[Path], Path] | None = None
    image_root: Callable[[Path], Path] | None = beside


@dataclass(frozen=True)
class DatasetFormat:
    """One dataset format: ``detect(probe)`` says whether a dataset is of it (``fallback`` formats
    are tried after all others); ``read`` reads it, accepting ``options`` (generic option names
    that it spells differently are mapped by ``aliases``); ``export`` writes it back, if it can be."""

    name: str
    detect: Callable[[Probe], bool]
    read: Reader
    options: tuple[str, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)
    fallback: bool = False
    export: NativeExport | None = None


_REGISTRY: dict[str, DatasetFormat] = {}


def register_format(fmt: DatasetFormat) -> DatasetFormat:
    """Add ``fmt`` to the registry (its name must be new) and return it."""
    if fmt.name in _REGISTRY or fmt.name == "auto":
        raise ValueError(f"dataset format {fmt.name!r} is already registered")
    _REGISTRY[fmt.name] = fmt
    return fmt


def registered_formats() -> list[DatasetFormat]:
    """Every registered format, in registration order."""
    return list(_REGISTRY.values())


def format_names() -> tuple[str, ...]:
    """The names of the registered formats, in registration order."""
    return tuple(_REGISTRY)


def find_format(name: str | None) -> DatasetFormat | None:
    """The format called ``name``, or None."""
    return _REGISTRY.get(name or "")


def get_format(name: str) -> DatasetFormat:
    """The format called ``name``; ValueError naming the choices when there is none."""
    fmt = find_format(name)
    if fmt is None:
        raise ValueError(f"unknown format {name!r}; choose one of: auto, {', '.join(_REGISTRY)}")
    return fmt


def detect_format(path: str | os.PathLike[str], options: frozenset[str] | set[str] = frozenset()) -> str:
    """The format of ``path``: the first registered format whose ``detect`` accepts it, fallback
    formats last; ``options`` are the reader option names given. DataError for a missing path
    that no format claims."""
    probe = Probe(os.fspath(path), frozenset(options))
    for fmt in (f for f in _REGISTRY.values() if not f.fallback):
        if fmt.detect(probe):
            return fmt.name
    from curate.data.errors import DataError

    if not probe.path.exists():
        raise DataError(path, None, "not found", "Check the path, or use fiftyone:NAME for a FiftyOne dataset.")
    for fmt in (f for f in _REGISTRY.values() if f.fallback):
        if fmt.detect(probe):
            return fmt.name
    raise DataError(path, None, "not a dataset of any known format", "Choose one with --format.")
