"""What a classifier trained on each kind of cleaned label file learns: accuracy on held-out faces.

Usage: python bench/train_on_export.py RUN_DIR TRAIN_CSV EVAL_CSV [--targets given,auto-hard,auto,soft,soft2]
       [--seeds 0,1] [--epochs 12] [--weights FILE|start] [--json OUT.json]

RUN_DIR is a run whose ``scores.parquet`` scored the faces of TRAIN_CSV (a table with ``path`` and
``label``, FER2013 class names: a flip suite's ``OUT/SETTING/train.csv``, or any labels file in that
layout). Each target is what an export of that run gives every face to learn from:

- ``given``: the labels the data came with (no cleaning);
- ``auto-hard``: ``curate export --policy auto`` written one label a face (``native``, ``imagefolder``):
  dropped faces left out, accepted suggestions relabelled, ambiguous faces with their given label;
- ``auto``: the same export with its soft labels (``csv``, ``jsonl``, ``parquet``): ambiguous faces
  learn their ``label_distribution``;
- ``soft``: ``--policy soft``: every face learns its ``label_distribution``;
- ``soft2``: the same distributions sharpened (squared and renormalised, temperature 0.5).

For each target and seed, a plain cross-entropy ``fer_cnn`` (``dmue_core.baseline.PlainClassifier``)
trains with the benchmark's budget (``--epochs``, batch 64, Adam 2e-3, cosine, the
training augmentation, bfloat16 where the CPU has it) against the per-face target distribution, from
scratch or, with ``--weights``, from a backbone weights file (``start``: the run's own self-supervised
start, ``RUN_DIR/pretrain/weights.pt``, so that CE and the run's DMUE model begin alike), then is
scored on EVAL_CSV's faces with a crowd plurality (``ferplus_label``; e.g. a flip suite's
``OUT/SETTING/eval.csv``: PublicTest), mean of the face and its mirror image. Prints accuracy per
target and seed, and the run's own exported model (``model.pt``) on the same faces for reference.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from curate.benchmark.matching import rows_by_path
from curate.benchmark.models import model_config
from curate.data.table import FER2013_CLASSES
from curate.data.torch_dataset import FaceDataset, train_transform
from curate.export.policies import apply_policy
from curate.export.source import DecisionTable, load_scores
from curate.jobs import PRETRAIN_DIR
from dmue_core.baseline import PlainClassifier
from dmue_core.export import load_target_model
from dmue_core.selfsup import WEIGHTS

TARGETS = ("given", "auto-hard", "auto", "soft", "soft2")
IMAGE_SIZE, BATCH, LR = 48, 64, 2e-3


def to_fer_order(table: DecisionTable) -> np.ndarray:
    """(C,) int: the FER2013 class index of each of the run's classes (``table.classes`` order)."""
    return np.array([FER2013_CLASSES.index(name) for name in table.classes])


def targets(table: DecisionTable, train: pd.DataFrame, train_csv: Path, kind: str) -> np.ndarray:
    """(N, C) float32 training target of every row of ``train`` (read from ``train_csv``, whose folder
    relative paths start from) in FER2013's class order (zeros: left out)."""
    c = len(FER2013_CLASSES)
    to_fer = to_fer_order(table)
    scored_row = rows_by_path(table.faces["filepath"], train["path"], train_csv.parent)  # scores -> train
    rows = np.full(len(train), -1)
    rows[scored_row[scored_row >= 0]] = np.flatnonzero(scored_row >= 0)
    if (rows < 0).any():
        raise SystemExit(f"{(rows < 0).sum()} faces of {train_csv} are not in the run's scores")

    def fer_order(m: np.ndarray) -> np.ndarray:
        out = np.zeros_like(m)
        out[:, to_fer] = m
        return out[rows]

    if kind == "given":
        return np.eye(c, dtype=np.float32)[[FER2013_CLASSES.index(name) for name in train["label"]]]
    if kind in ("auto", "auto-hard"):
        cleaned = apply_policy(table, "auto")
        if kind == "auto":
            return fer_order(cleaned.target).astype(np.float32)
        label = cleaned.faces["clean_label"].to_numpy()[rows]
        out = np.zeros((len(train), c), np.float32)
        out[label >= 0] = np.eye(c, dtype=np.float32)[to_fer[label[label >= 0]]]
        return out
    dist = fer_order(table.distribution) ** (2 if kind == "soft2" else 1)
    return (dist / dist.sum(1, keepdims=True)).astype(np.float32)


def evaluate(model: torch.nn.Module, faces: FaceDataset, truth: np.ndarray, to_fer: np.ndarray) -> float:
    """Accuracy of ``model`` (its classes mapped to FER2013's by ``to_fer``) on ``faces`` against ``truth``."""
    pred = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for start in range(0, len(faces), 256):
            x = torch.stack([faces[i][0] for i in range(start, min(start + 256, len(faces)))])
            p = model(x).float().softmax(1) + model(x.flip(3)).float().softmax(1)
            pred.append(to_fer[p.argmax(1).numpy()])
    return float((np.concatenate(pred) == truth).mean())


def train_on(
    train: pd.DataFrame, target: np.ndarray, epochs: int, seed: int, weights: Path | None = None
) -> torch.nn.Module:
    """A plain CE classifier trained against ``target`` (rows with a zero target left out), from scratch
    or from the backbone ``weights``."""
    torch.manual_seed(seed)
    keep = target.sum(1) > 0
    table = pd.DataFrame({"filepath": train["path"][keep].to_numpy(), "label": target[keep].argmax(1)})
    data = FaceDataset(table, IMAGE_SIZE, transform=train_transform(IMAGE_SIZE), preload=True)
    goal = torch.tensor(target[keep])
    cfg = replace(model_config(epochs, len(FER2013_CLASSES)), weights=weights)
    model = PlainClassifier(cfg).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.param_groups(LR, LR))
    steps = epochs * math.ceil(len(table) / BATCH)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    order_rng = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(table), generator=order_rng)
        for start in range(0, len(order), BATCH):
            idx = order[start : start + BATCH]
            x = torch.stack([data[i][0] for i in idx.tolist()]).to(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(x)
            loss = -(goal[idx] * F.log_softmax(logits.float(), 1)).sum(1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("train_csv", type=Path)
    ap.add_argument("eval_csv", type=Path)
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--weights", help="backbone weights the CE models start from; 'start': RUN_DIR/pretrain/weights.pt")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    weights = args.run_dir / PRETRAIN_DIR / WEIGHTS if args.weights == "start" else args.weights and Path(args.weights)
    if weights is not None and not weights.is_file():
        raise SystemExit(f"no backbone weights at {weights}: pass a weights file, or 'start' for a run that had one")
    kinds = args.targets.split(",")
    if unknown := sorted(set(kinds) - set(TARGETS)):
        raise SystemExit(f"unknown targets {unknown}; choose from {', '.join(TARGETS)}")
    table = load_scores(args.run_dir / "scores.parquet")
    train = pd.read_csv(args.train_csv)
    held = pd.read_csv(args.eval_csv)
    held = held[held["ferplus_label"] >= 0].reset_index(drop=True)
    faces = FaceDataset(
        pd.DataFrame({"filepath": held["path"], "label": held["ferplus_label"]}), IMAGE_SIZE, preload=True
    )
    truth = held["ferplus_label"].to_numpy()
    identity = np.arange(len(FER2013_CLASSES))
    record = {
        "run_model": evaluate(load_target_model(args.run_dir / "model.pt").eval(), faces, truth, to_fer_order(table))
    }
    print(f"{args.run_dir}/model.pt on {len(held)} held-out faces: {record['run_model']:.3f}")
    for kind in kinds:
        target = targets(table, train, args.train_csv, kind)
        accs = [
            evaluate(train_on(train, target, args.epochs, int(s), weights), faces, truth, identity)
            for s in args.seeds.split(",")
        ]
        record[kind] = {"faces": int((target.sum(1) > 0).sum()), "accuracy": accs, "weights": str(weights or "")}
        print(
            f"{kind}: {record[kind]['faces']} faces, accuracy "
            + " / ".join(f"{a:.3f}" for a in accs)
            + f" (mean {np.mean(accs):.3f})"
        )
    if args.json:
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
