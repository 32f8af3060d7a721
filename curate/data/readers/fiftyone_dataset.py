"""Reader for an existing FiftyOne dataset with a ``Classification`` label field.

``sample_id`` is the FiftyOne sample id; ``split`` comes from the ``split_field`` string
field when the dataset has one, else from the first sample tag that is a split name
(:data:`~curate.data.readers.imagefolder.SPLIT_NAMES`), else ``"train"``. A sample without a
label is unlabeled (-1). Row numbers in errors are 1-based sample positions.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from curate.data.errors import DataError, OnBad, SkipReport, check_on_bad
from curate.data.readers.csvlist import table_from_frame
from curate.data.readers.imagefolder import SPLIT_NAMES
from curate.formats.fiftyone_dataset import PREFIX


def read_fiftyone(
    name: str,
    *,
    label_field: str = "ground_truth",
    split_field: str = "split",
    classes: Sequence[str] | None = None,
    on_bad: OnBad = "error",
    report: SkipReport | None = None,
) -> pd.DataFrame:
    """Read FiftyOne dataset ``name`` (``"fiftyone:"`` prefix allowed) into a LabelTable.

    ``classes`` defaults to ``dataset.classes[label_field]``, then ``dataset.default_classes``,
    then the sorted label names.
    """
    import fiftyone as fo

    check_on_bad(on_bad)
    name = name.removeprefix(PREFIX)
    source = PREFIX + name
    if not fo.dataset_exists(name):
        known = ", ".join(fo.list_datasets()) or "none"
        raise DataError(source, None, f"no FiftyOne dataset named {name!r} (datasets: {known})", "Check the name.")
    dataset = fo.load_dataset(name)
    schema = dataset.get_field_schema()
    field = schema.get(label_field)
    if getattr(field, "document_type", None) is not fo.Classification:
        fields = [k for k, f in schema.items() if getattr(f, "document_type", None) is fo.Classification]
        raise DataError(
            source,
            None,
            f"field {label_field!r} is not a Classification field"
            f" (Classification fields: {', '.join(fields) or 'none'})",
            "Pass the label field with --label-column.",
        )
    ids, filepaths, labels, tags = dataset.values(["id", "filepath", f"{label_field}.label", "tags"])
    if split_field in schema:
        splits = [s or "" for s in dataset.values(split_field)]
    else:
        splits = [next((t for t in sample_tags if t.lower() in SPLIT_NAMES), "train") for sample_tags in tags]
    if classes is None:
        classes = dataset.classes.get(label_field) or dataset.default_classes or sorted({x for x in labels if x})
    frame = pd.DataFrame({"sample_id": ids, "filepath": filepaths, "label": labels, "split": splits})
    return table_from_frame(
        frame,
        source=source,
        path_column="filepath",
        label_column="label",
        split_column="split",
        id_column="sample_id",
        classes=classes,
        vote_columns=None,
        image_root="/",
        first_line=1,
        on_bad=on_bad,
        report=report,
        fmt="fiftyone",
    )
