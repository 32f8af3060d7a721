"""Score a LabelTable with a trained model and write ``scores.parquet`` (see ``curate.records``).

Memory: the embeddings go to a disk-backed memmap and records are written in chunks, so only
(N, C)-sized arrays and the (N, k) neighbour lists are held in memory.

Batch-free uncertainty: DMUE's pairwise uncertainty compares a face's embedding with the mean
embedding of each class *inside a training batch*. At scoring time the class means are taken over
the whole scored dataset (the mean of L2-normalised embeddings per given class), so a face's scores
do not depend on which faces share its batch or on the batch size.

Stages: the per-face work (``curate.scoring.forward``: model passes, pixel hash), then over all
faces sigma, neighbours, scores, data issues and the write. With a ``group`` of W processes the
per-face work is sharded and rank 0 does the rest (``curate.scoring.shards``; docs/scale.md).
"""

from __future__ import annotations

import datetime as _dt
import os
import shlex
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from curate import neighbors, records
from curate.data.table import classes_of, unlabeled_rows
from curate.data.torch_dataset import FaceDataset, eval_transform
from curate.flags import FlagRule, decide
from curate.noise import confident_rate
from curate.scoring import shards
from curate.scoring.forward import StageClock, Work, face_outputs
from curate.scoring.infer import resolve_mining_precision
from curate.scoring.issues import NEAR_DUPLICATE_COSINE, DataIssues, class_distance, find_issues
from curate.scoring.scores import (
    ScoreConfig,
    compute_scores,
    label_distribution,
    neighbour_labels,
    softmax,
    suggest,
)
from dmue_core.distributed import DistContext

WRITE_CHUNK = 50_000


@dataclass
class ScoreResult:
    """What ``score_table`` wrote and decided."""

    path: Path
    rows: int
    verdict_counts: dict[str, int]
    rule: FlagRule
    faces_without_embedding: int = 0
    issues: DataIssues | None = None
    reused_parts: int = 0  # sharded scoring: shard parts of an interrupted run that were reused
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage (StageClock), in order
    neighbour_recall: float | None = None  # approximate neighbours: recall@k on a held-out sample

    def summary(self) -> str:
        """The verdict counts, the data issues, and the faces left without neighbours if any (for the CLI)."""
        lines = ["verdicts: " + ", ".join(f"{k} {v}" for k, v in self.verdict_counts.items())]
        if self.reused_parts:
            lines.append(f"reused {self.reused_parts} shard part(s) of an interrupted run")
        if self.neighbour_recall is not None:
            lines.append(
                f"neighbours: approximate search (faiss IVF), recall@k {self.neighbour_recall:.3f} "
                f"against exact search on {neighbors.SAMPLE_QUERIES:,} sample faces"
            )
        if self.issues is not None:
            lines += self.issues.summary_lines()
        if self.faces_without_embedding:
            lines.append(
                f"{self.faces_without_embedding} faces have an all-zero or non-finite embedding: "
                "they have no neighbours (knn_disagreement 0)"
            )
        return "\n".join(lines)


def model_num_classes(model: nn.Module) -> int:
    """C of a DMUE model or of a plain classifier (its last linear layer's outputs)."""
    if hasattr(model, "cfg") and hasattr(model.cfg, "num_classes"):
        return int(model.cfg.num_classes)
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not last:
        raise ValueError("cannot tell the model's class count: it has no linear classifier")
    return int(last[-1].out_features)


def check_compatible(model: nn.Module, table: pd.DataFrame, model_classes: list[str] | None) -> None:
    """Raise ValueError before any work when the model cannot score this table."""
    classes = classes_of(table)
    if len(table) == 0:
        raise ValueError("the dataset is empty: nothing to score")
    if model_classes is not None and list(model_classes) != list(classes):
        raise ValueError(
            f"the model was trained on classes {list(model_classes)} but the dataset has {list(classes)}; "
            "score with a model trained on these classes, or leave out the faces of the others "
            "(`curate score` takes the model's order itself when the names are the model's). If the labels are "
            f"this model's class ids or names, pass --classes {shlex.quote(','.join(model_classes))}"
        )
    c_model = model_num_classes(model)
    if c_model != len(classes):
        raise ValueError(f"the model predicts {c_model} classes but the dataset has {len(classes)}: {classes}")
    if (table["label"] < 0).any():
        raise ValueError(f"{unlabeled_rows(table)}; scoring judges the given labels: label them or remove their rows")


def class_means(emb: np.ndarray, labels: np.ndarray, num_classes: int, *, chunk: int = 65_536) -> np.ndarray:
    """(C, D) float32 mean of the L2-normalised embeddings of each class; NaN rows for a class
    absent from ``labels`` (as ``dmue_core.losses.normalized_class_means``: the uncertainty then
    leaves it out, instead of counting it as a class at similarity 0)."""
    sums = np.zeros((num_classes, emb.shape[1]), dtype=np.float64)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    for s in range(0, len(emb), chunk):
        e = np.asarray(emb[s : s + chunk], dtype=np.float64)
        e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        np.add.at(sums, labels[s : s + chunk], e)
    means = sums / np.maximum(counts, 1)[:, None]
    means[counts == 0] = np.nan
    return means.astype(np.float32)


def _latent_fallback(probs: np.ndarray, given: np.ndarray) -> np.ndarray:
    """For plain models without auxiliary branches: the target distribution with the given class
    zeroed and renormalised (a documented stand-in for DMUE's mined distribution)."""
    lat = probs.copy()
    lat[np.arange(len(given)), given] = 0.0
    return lat / np.maximum(lat.sum(axis=1, keepdims=True), 1e-12)


def score_table(
    model: nn.Module,
    table: pd.DataFrame,
    out: str | Path,
    *,
    image_size: int = 48,
    score_cfg: ScoreConfig | None = None,
    rule: FlagRule | None = None,
    model_classes: list[str] | None = None,
    batch_size: int = 256,
    device: str = "cpu",
    progress: bool = True,
    metadata: dict[str, Any] | None = None,
    embeddings_dtype: str = "float16",
    train_batch_size: int = 64,
    near_duplicate_cosine: float = NEAR_DUPLICATE_COSINE,
    reference: pd.DataFrame | None = None,
    held_out: Sequence[tuple[nn.Module, np.ndarray]] = (),
    group: DistContext | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> ScoreResult | None:
    """Score every row of ``table`` and write ``out`` (parquet) plus its embeddings side file.

    Data issues (``curate.scoring.issues``): every image is decoded once more to hash its pixels;
    ``reference`` rows (other splits of the dataset, not scored) are hashed too, for leakage;
    ``train_batch_size`` sets the class-balance threshold. ``held_out``: (fold model, rows) pairs
    of a cross-fitted run (``curate.cross_fit``): the share of faces to flag is estimated from the
    fold models' outputs on the rows they did not train on as well as from ``model``'s, and the
    larger estimate is used (metadata ``flag_count``: both and which), while every score, the order
    of the queue and every embedding stay ``model``'s (docs/small-data.md: that pairing gave the
    best queue on 2,000 faces).

    ``group``: this process's place among W scoring processes (``curate.scoring.launch``): it
    computes its shard's part, and rank 0 merges the parts, computes the rest and writes ``out``
    (``curate.scoring.shards``); None is returned on the other ranks. ``on_stage(name)`` is called as
    each stage of :class:`StageClock` begins (e.g. to sample memory; not sent to spawned processes)."""
    score_cfg = score_cfg or ScoreConfig()
    clock = StageClock(on_stage)
    check_compatible(model, table, model_classes)
    out = Path(out)
    if not out.parent.is_dir():
        raise ValueError(f"output folder {out.parent} does not exist")
    classes = classes_of(table)
    C, N = len(classes), len(table)
    given = table["label"].to_numpy(dtype=np.int64, copy=True)
    dataset = FaceDataset(table, image_size=image_size, transform=eval_transform(image_size))
    precision = resolve_mining_precision(score_cfg.mining_precision, device)

    for fold_model, _ in held_out:
        check_compatible(fold_model, table, model_classes)
    work = Work(table, dataset, held_out, reference, batch_size, device, precision, score_cfg)
    with tempfile.TemporaryDirectory(prefix=".curate-score-", dir=out.parent) as tmp:
        reused_parts = 0
        if group is None or not group.enabled:
            faces = face_outputs(model, work, np.arange(N), Path(tmp) / "emb.npy", progress=progress, clock=clock)
        else:
            merged = shards.sharded_outputs(
                model, work, out, Path(tmp) / "emb.npy", group, image_size, clock, progress=progress and group.is_main
            )
            if merged is None:
                return None
            faces, reused_parts = merged
        emb, logits, latent, consensus, oof = faces.emb, faces.logits, faces.latent, faces.consensus, faces.oof
        has_aux, has_consensus = faces.has_aux, faces.has_consensus
        clock.begin("sigma")
        probs = softmax(logits)
        if not has_aux:
            latent = _latent_fallback(probs, given)
        means = class_means(emb, given, C)  # one pass over the embeddings, for sigma and the outlier score
        sigma = _uncertainty(model, emb, given, means)
        clock.begin("neighbours")
        knn_indices, knn_sims, no_embedding, knn_recall = _neighbours(emb, score_cfg.k)
        clock.begin("scores")
        scores = compute_scores(
            given, probs, latent, sigma, knn_indices, score_cfg, consensus if has_consensus else None
        )
        noise_probs, noise_rows = scores["mixed_distribution"], None
        flag_count = {"from": "model", "model": confident_rate(given, noise_probs)}
        if oof is not None:  # the flag count from outputs of models that did not train on the faces
            oof_probs = softmax(oof[0])
            oof_mixed = label_distribution(
                oof_probs, oof[1] if has_aux else _latent_fallback(oof_probs, given), sigma,
                neighbour_labels(given, knn_indices), score_cfg, oof[2] if has_consensus else None,
            ).astype(np.float32)  # fmt: skip
            judged = np.unique(np.concatenate([rows for _, rows in held_out]))
            partial = len(judged) < N  # fewer fold models than folds: the count from their faces alone
            # each count falls short in its own regime (a model that fit its faces; fold models on
            # data they learn well: docs/robustness.md §9), so the larger one sets the quota
            flag_count["folds"] = confident_rate(given[judged], oof_mixed[judged])
            if partial:
                flag_count["folds_faces"] = len(judged)
            if flag_count["folds"] >= flag_count["model"]:
                noise_probs, flag_count["from"] = oof_mixed, "folds"
                noise_rows = judged if partial else None
        if not has_consensus:
            consensus = probs  # the record's column: the target's view stands in (not mixed in twice)
        verdict, reasons, rule = decide(
            given, scores["label_distribution"], scores["mislabel_score"], scores["ambiguity_score"],
            scores["knn_disagreement"], classes, rule, noise_probs=noise_probs, noise_rows=noise_rows,
        )  # fmt: skip
        clock.begin("issues")
        issues = find_issues(
            table, faces.facts, knn_indices, knn_sims, verdict, reasons, classes, near_threshold=near_duplicate_cosine,
            batch_size=train_batch_size, reference=reference, reference_facts=faces.ref_facts,
            distance=class_distance(emb, means),
        )  # fmt: skip
        verdict, reasons = issues.verdict, issues.reasons
        suggested = suggest(given, scores["label_distribution"], verdict != "ok")
        meta = {
            "classes": classes,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "score_config": score_cfg.to_dict(),
            "flag_rule": rule.to_dict(),
            "latent_source": "dmue_aux_branch" if has_aux else "target_fallback",
            "consensus_source": "dmue_aux_branches" if has_consensus else "target_fallback",
            "mining_precision": precision if has_aux else None,
            "tta": score_cfg.tta,
            "faces_without_embedding": int(no_embedding.sum()),
            "neighbour_recall": knn_recall,
            "cross_fit": len(held_out),
            "flag_count": flag_count,
            "data_issues": issues.to_dict(),
            **(metadata or {}),
        }
        ids = table["sample_id"].astype(str).to_numpy()
        clock.begin("write")
        staged = records.stage_embeddings(out, emb, dtype=embeddings_dtype)  # replaced right after the scores
        try:
            with records.ScoresWriter(out, C, meta) as writer:
                for s in range(0, N, WRITE_CHUNK):
                    sl = slice(s, min(s + WRITE_CHUNK, N))
                    writer.write(pd.DataFrame({
                        "sample_id": ids[sl],
                        "filepath": table["filepath"].astype(str).to_numpy()[sl],
                        "split": table["split"].astype(str).to_numpy()[sl],
                        "given_label": given[sl],
                        "target_probs": list(probs[sl]),
                        "latent_distribution": list(latent[sl]),
                        "aux_consensus": list(consensus[sl]),
                        "label_distribution": list(scores["label_distribution"][sl]),
                        "uncertainty": sigma[sl],
                        "mislabel_score": scores["mislabel_score"][sl],
                        "ambiguity_score": scores["ambiguity_score"][sl],
                        "suggested_label": suggested[sl],
                        "knn_disagreement": scores["knn_disagreement"][sl],
                        "neighbors": [list(ids[row[row >= 0]]) for row in knn_indices[sl]],
                        "verdict": verdict[sl],
                        "reasons": reasons[sl],
                        "duplicate_group": issues.duplicate_group[sl],
                        "near_duplicates": issues.near_duplicates[sl],
                        "outlier_score": issues.outlier_score[sl],
                        "issues": issues.issues[sl],
                    }))  # fmt: skip
            os.replace(staged, records.embeddings_path(out))
        finally:
            staged.unlink(missing_ok=True)
    if group is not None and group.enabled:
        shards.remove_parts(out)
    clock.begin(None)
    counts = {v: int((verdict == v).sum()) for v in records.VERDICTS}
    return ScoreResult(
        path=out, rows=N, verdict_counts=counts, rule=rule, faces_without_embedding=int(no_embedding.sum()),
        neighbour_recall=knn_recall, issues=issues, reused_parts=reused_parts, stages=clock.seconds,
    )  # fmt: skip


def _neighbours(
    emb: np.ndarray, k: int, *, chunk: int = 65_536
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float | None]:
    """((N, k) neighbour indices, -1 = none; (N, k) their cosine similarities, -inf = none;
    (N,) bool: the face has no usable embedding; the approximate search's sample recall@k, None
    where the search was exact).

    A face whose embedding is all zeros (a backbone whose last ReLU went dead on it) or not finite
    has no cosine direction: it gets no neighbours and is nobody's neighbour, instead of stopping
    the job; the count is recorded in the file's metadata."""
    N = len(emb)
    unusable = np.zeros(N, dtype=bool)
    for s in range(0, N, chunk):
        e = np.asarray(emb[s : s + chunk], dtype=np.float32)
        unusable[s : s + chunk] = ~np.isfinite(e).all(axis=1) | ~(np.abs(e) > 0).any(axis=1)
    usable = np.flatnonzero(~unusable)
    k = min(k, len(usable) - 1)
    indices = np.full((N, max(k, 1)), -1, dtype=np.int64)
    sims = np.full((N, max(k, 1)), -np.inf, dtype=np.float32)
    recall = None
    if k >= 1:
        sub = emb if len(usable) == N else np.asarray(emb[usable])
        result = neighbors.knn(sub, k=k)
        found = result.indices
        indices[usable] = np.where(found >= 0, usable[np.maximum(found, 0)], -1)
        sims[usable] = np.where(found >= 0, result.similarities, -np.inf)
        recall = result.recall
    return indices, sims, unusable, recall


@torch.no_grad()
def _uncertainty(
    model: nn.Module, emb: np.ndarray, given: np.ndarray, means: np.ndarray, *, chunk: int = 65_536
) -> np.ndarray:
    """(N,) batch-free sigma from the whole-dataset class ``means`` (C, D) (:func:`class_means`);
    NaN-free. Plain models: 1 - nothing known = 0.5."""
    if not hasattr(model, "uncertainty_from_stats"):
        return np.full(len(given), 0.5, dtype=np.float32)
    means = torch.from_numpy(means)
    device = next(model.parameters()).device
    out = np.empty(len(given), dtype=np.float32)
    for s in range(0, len(given), chunk):
        e = torch.from_numpy(np.asarray(emb[s : s + chunk], dtype=np.float32)).to(device)
        y = torch.from_numpy(given[s : s + chunk]).to(device)
        out[s : s + chunk] = model.uncertainty_from_stats(e, y, means.to(device)).float().cpu().numpy()
    return out
