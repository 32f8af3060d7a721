"""Export cleaned labels: the file a curator hands to the training team, plus its audit sidecar.

``export_cleaned(source, format=..., policy=..., out=...)`` reads SOURCE (a ``scores.parquet``
or a curated FiftyOne dataset) into a decisions table (:mod:`~curate.export.source`), applies a
policy (:mod:`~curate.export.policies`) and the data policies (duplicates, leaks, outliers:
:mod:`~curate.export.data_policies`), writes a format (:mod:`~curate.export.formats`,
:mod:`~curate.export.native`, :mod:`~curate.export.tree`) atomically (:mod:`~curate.export.safety`)
and records ``<out>.audit.json`` (:mod:`~curate.export.audit`).
"""

from curate.export.audit import ExportSummary
from curate.export.data_policies import DEDUPE, LEAKS, DataPolicy, apply_data_policy
from curate.export.formats import export_formats, format_choices
from curate.export.job import export_cleaned
from curate.export.policies import ACTIONS, DEFAULT_CONFIDENCE, POLICIES, CleanedLabels, apply_policy
from curate.export.safety import ExportError
from curate.export.source import Curation, DecisionTable, load_source, with_curations

__all__ = [
    "ACTIONS", "DEDUPE", "DEFAULT_CONFIDENCE", "LEAKS", "POLICIES", "CleanedLabels", "Curation", "DataPolicy",
    "DecisionTable", "ExportError", "ExportSummary", "apply_data_policy", "apply_policy", "export_cleaned",
    "export_formats", "format_choices", "load_source",
    "with_curations",
]  # fmt: skip
