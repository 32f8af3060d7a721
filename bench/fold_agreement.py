"""How closely a cross-fitted run fits its given labels in sample, and how well its fold models
predict them out of fold (docs/small-data.md, "Warm epochs after the start").

Usage: python bench/fold_agreement.py RUN_DIR DATASET [RUN_DIR DATASET ...]

RUN_DIR: a ``curate run`` directory with fold models (``folds/``, the default below 10,000 faces);
DATASET: the file it was trained on (read as ``curate run`` reads it, every split). For each run:
accuracy and Cohen's kappa of the argmax against the given labels, of the full model on every face
(in sample) and of each fold model on the faces it did not train on (out of fold), and the gap
between the two accuracies; with a ``label_disagrees`` column (0/1, the FERPlus truth) also the
AUROC of ``1 - p[given]`` from each, and with a ``ferplus_label`` column (the crowd plurality, in
FER2013's class order) the share of the true errors whose most likely class other than the given
one (the suggestion for a face in a queue) is the crowd's. No TTA: plain target probabilities.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import cohen_kappa_score, roc_auc_score
from torch import nn

from curate.benchmark.report import fer2013_to_run
from curate.cross_fit import saved_folds
from curate.data import read_dataset
from curate.data.torch_dataset import FaceDataset, eval_transform
from curate.runs import load_model
from curate.scoring.infer import iterate_outputs
from curate.scoring.scores import best_other, softmax


def agreement(pred: np.ndarray, given: np.ndarray) -> dict[str, float]:
    """Accuracy and Cohen's kappa (agreement beyond the chance of the two label shares) of (N,)
    predicted against (N,) given class ids."""
    return {"accuracy": float((pred == given).mean()), "kappa": float(cohen_kappa_score(pred, given))}


def best_other_right(probs: np.ndarray, given: np.ndarray, crowd: np.ndarray, errors: np.ndarray) -> float:
    """Share of the ``errors`` (N,) bool faces whose most likely class in ``probs`` (N, C) other than
    ``given`` (N,) is ``crowd`` (N,), the true label."""
    return float((best_other(given, probs) == crowd)[errors].mean())


def probabilities(model: nn.Module, dataset: FaceDataset, rows: np.ndarray) -> np.ndarray:
    """(len(rows), C) softmax of ``model``'s target logits on ``rows`` of ``dataset``, in ``rows`` order
    (``iterate_outputs`` visits them in the order given)."""
    return softmax(np.concatenate([c.logits for c in iterate_outputs(model, dataset, order=rows, progress=False)]))


def measure(run_dir: Path, dataset_path: Path) -> dict[str, float]:
    """The figures of one run (module docstring); ValueError for a run without fold models."""
    table = read_dataset(dataset_path)
    folds = saved_folds(run_dir, table)
    if not folds:
        raise ValueError(f"{run_dir} has no fold models for the faces of {dataset_path} (run it with --cross-fit K)")
    loaded = load_model(run_dir)
    dataset = FaceDataset(
        table, image_size=loaded.image_size, transform=eval_transform(loaded.image_size), preload=True
    )
    given = table["label"].to_numpy()
    every = np.arange(len(table))
    in_sample = probabilities(loaded.model, dataset, every)
    out_of_fold = np.empty_like(in_sample)
    for fold in folds:
        out_of_fold[fold.rows] = probabilities(load_model(fold.run_dir).model, dataset, fold.rows)
    row: dict[str, float] = {"faces": len(table)}
    for name, probs in (("in_sample", in_sample), ("out_of_fold", out_of_fold)):
        for key, value in agreement(probs.argmax(1), given).items():
            row[f"{name}_{key}"] = round(value, 4)
    row["fit_gap"] = round(row["in_sample_accuracy"] - row["out_of_fold_accuracy"], 4)
    if "label_disagrees" in table:
        truth = table["label_disagrees"].to_numpy(dtype=float)
        known = np.isin(truth, (0, 1))
        for name, probs in (("in_sample", in_sample), ("out_of_fold", out_of_fold)):
            row[f"{name}_auroc"] = round(float(roc_auc_score(truth[known], 1 - probs[every, given][known])), 4)
        if "ferplus_label" in table:
            run_classes = json.loads((run_dir / "classes.json").read_text())
            crowd = fer2013_to_run(table["ferplus_label"].to_numpy(), run_classes)
            for name, probs in (("in_sample", in_sample), ("out_of_fold", out_of_fold)):
                row[f"{name}_best_other_right"] = round(best_other_right(probs, given, crowd, truth == 1), 4)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs", nargs="+", metavar="RUN_DIR DATASET")
    args = parser.parse_args()
    if len(args.pairs) % 2:
        parser.error("give a DATASET after every RUN_DIR")
    for run_dir, dataset_path in zip(args.pairs[::2], args.pairs[1::2]):
        print(json.dumps({"run": run_dir, **measure(Path(run_dir), Path(dataset_path))}))


if __name__ == "__main__":
    main()
