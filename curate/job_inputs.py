"""What a train or run job starts from: the LabelTable and the RunConfig, by the resume and
replay rules (see :func:`table_and_config`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from curate.data.errors import DataError
from curate.data.load import READER_KEYS, load_table
from curate.data.table import classes_of, describe
from curate.jobs import ids_as_model_classes
from curate.run_config import RunConfig, resolve_config
from curate.runs import RunPaths, recorded_classes
from dmue_core.config import MIN_CLASSES


def absolute_if_path(source: str) -> str:
    """``source`` as an absolute path when it names an existing file or folder (so a run's record
    stays valid from any working directory), else unchanged (e.g. ``fiftyone:NAME``)."""
    return str(Path(source).resolve()) if Path(source).exists() else source


def table_and_config(
    dataset: str,
    out: Path,
    reader: Mapping[str, Any],
    *,
    config_file: Path | None = None,
    log: Callable[[str], object] = print,
    **settings: Any,
) -> tuple[pd.DataFrame, RunConfig]:
    """(LabelTable, RunConfig) of a train/run job into the run directory ``out``.

    The base config is ``config_file``, else the existing run's own ``config.yaml`` (re-running on
    ``out`` resumes its settings; said through ``log``), else the defaults; ``settings`` (the
    arguments of :func:`~curate.run_config.resolve_config`) override it. The table is read with the
    resolved reader options: those in ``reader`` (:data:`~curate.data.load.READER_KEYS`), else those
    recorded in the base config's ``data`` section (so a config replays the same columns and class
    order), else the defaults. The dataset itself and ``skip_report`` (an output) are never
    replayed. Bare class ids are named by the ``init_from`` model's classes (said through ``log``).
    Raises ConfigError, DataError (also for fewer than 3 classes, before any work) or OptionError.
    """
    own = RunPaths(Path(out)).config
    if config_file is None and own.exists():
        log(f"resuming {out}: settings from {own}, flags override them")
        config_file = own
    cfg = resolve_config({"dataset": absolute_if_path(dataset), **reader}, config_file=config_file, **settings)
    replayed = {k: v for k, v in cfg.data.items() if k in READER_KEYS and k != "skip_report"}
    table = load_table(dataset, **{**replayed, "skip_report": reader.get("skip_report")}, decodable=True)
    log(describe(table))
    if cfg.init_from:
        table = ids_as_model_classes(table, recorded_classes(cfg.init_from), Path(cfg.init_from), log)
    classes = classes_of(table)
    if len(classes) < MIN_CLASSES:  # DMUEConfig's own check, said with the data's name before any work
        raise DataError(
            table.attrs.get("source", dataset),
            None,
            f"{len(classes)} classes ({', '.join(classes)}); DMUE needs at least {MIN_CLASSES}, since each "
            "auxiliary branch learns the classes other than one",
            "Give a two-class set's labels a third class (e.g. neutral, for the faces that are neither)",
        )
    return table, cfg


def other_splits(dataset: str, reader: Mapping[str, Any], table: pd.DataFrame) -> pd.DataFrame | None:
    """The dataset's rows in the splits a ``--split`` run leaves out (checked for leakage), or None
    when the run kept every split; unreadable rows of the other splits are skipped."""
    if not [s for s in reader.get("splits") or () if s]:
        return None
    options = {k: v for k, v in reader.items() if k in READER_KEYS and k not in ("splits", "skip_report", "on_bad")}
    full = load_table(dataset, **options, on_bad="skip")
    rest = full[~full["split"].isin(set(table["split"]))].reset_index(drop=True)
    return rest if len(rest) else None
