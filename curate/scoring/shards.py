"""Sharded scoring: the per-face work of ``score_table`` split over W processes, merged by one.

Per face (sharded): the model's forward passes (target logits, embedding, latent distribution,
auxiliary consensus, the fold models' out-of-fold outputs) and the pixel pass of the data-issue
checks. Over all faces (rank 0, after the merge): the class means of the embeddings, sigma, the
neighbours, the scores, the data issues and the write. A face's outputs do not depend on which
faces share its batch (eval mode), so the merged result equals one process's up to float32
summation order (tests/test_sharded_score.py: every column within 1e-5).

Shards. The rows sorted by given label (stable, as one process visits them) are cut into W
contiguous runs of N/W rows: shard r is the r-th run, so each process sees few classes and its
batches mostly reach one auxiliary branch.

Parts. Shard r of W is written to ``.<out name>.parts/part-<r>-of-<W>.npz`` beside ``out`` (its
embeddings in ``...emb.npy``, written first; the ``.npz`` is written atomically last and marks the
part done). A part holds the :func:`fingerprint` of what it was computed from; a re-run reuses
every part whose fingerprint matches (a crash loses only the shards in progress) and recomputes
the others. Rank 0 deletes the folder after the scores file is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from curate.data.duplicates import PixelFacts
from curate.files import temp_beside
from curate.scoring.forward import FaceOutputs, StageClock, Work, face_outputs
from dmue_core.distributed import DistContext, gather_objects

#: bumped when a part's content changes meaning; part files of another version are recomputed
PART_VERSION = 1
_FACT_FLOATS = ("std", "mode_share", "smoothness")


def shard_rows(given: np.ndarray, rank: int, world: int) -> np.ndarray:
    """(n,) int64 ascending: the rows of shard ``rank`` of ``world`` (module docstring)."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is outside a world of {world} processes")
    by_label = np.argsort(given, kind="stable")
    n = len(given)
    return np.sort(by_label[rank * n // world : (rank + 1) * n // world])


def reference_rows(count: int, rank: int, world: int) -> np.ndarray:
    """(m,) int64: the reference-table rows whose pixels shard ``rank`` of ``world`` hashes."""
    return np.arange(rank * count // world, (rank + 1) * count // world, dtype=np.int64)


def fingerprint(
    models: Sequence[nn.Module], table: pd.DataFrame, reference: pd.DataFrame | None, settings: dict[str, Any]
) -> str:
    """Hex digest of what a part is computed from: every parameter and buffer of ``models`` (the
    scoring model, then the fold models), the rows of ``table`` and ``reference`` (id, path,
    label) and ``settings`` (JSON-able: image size, precision, TTA, ...)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps({"version": PART_VERSION, **settings}, sort_keys=True).encode())
    for model in models:
        for name, tensor in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for frame in (table, reference):
        if frame is not None:
            cols = frame[["sample_id", "filepath", "label"]].astype({"sample_id": str, "filepath": str})
            h.update(pd.util.hash_pandas_object(cols, index=False).to_numpy().tobytes())
    return h.hexdigest()


def parts_dir(out: Path) -> Path:
    """The folder of the parts of scores file ``out``."""
    return out.parent / f".{out.name}.parts"


def part_path(out: Path, rank: int, world: int) -> Path:
    return parts_dir(out) / f"part-{rank:05d}-of-{world:05d}.npz"


def emb_path(part: Path) -> Path:
    """The embeddings file of ``part`` (written before it)."""
    return part.with_suffix(".emb.npy")


def _facts_arrays(facts: list[PixelFacts], prefix: str) -> dict[str, np.ndarray]:
    arrays = {
        f"{prefix}digest": np.array([f.digest or "" for f in facts], dtype=str),
        f"{prefix}problem": np.array([f.problem or "" for f in facts], dtype=str),
    }
    for name in _FACT_FLOATS:
        arrays[prefix + name] = np.array([getattr(f, name) for f in facts], dtype=np.float64)
    return arrays


def _facts_of(arrays: Any, prefix: str) -> list[PixelFacts]:
    digests, problems = arrays[f"{prefix}digest"].tolist(), arrays[f"{prefix}problem"].tolist()
    floats = [arrays[prefix + name].tolist() for name in _FACT_FLOATS]
    return [PixelFacts(d or None, p or None, *values) for d, p, *values in zip(digests, problems, *floats, strict=True)]


def write_part(path: Path, faces: FaceOutputs, stamp: str) -> None:
    """Write ``faces`` (its ``emb`` already in :func:`emb_path`) as part ``path``, atomically."""
    arrays = {
        "stamp": np.array(stamp),
        "rows": faces.rows,
        "logits": faces.logits,
        "latent": faces.latent,
        "consensus": faces.consensus,
        "flags": np.array([faces.has_aux, faces.has_consensus, faces.oof is not None, faces.ref_facts is not None]),
        "ref_rows": faces.ref_rows,
        **_facts_arrays(faces.facts, ""),
        **_facts_arrays(faces.ref_facts or [], "ref_"),
    }
    if faces.oof is not None:
        arrays.update(oof_logits=faces.oof[0], oof_latent=faces.oof[1], oof_consensus=faces.oof[2])
    tmp = temp_beside(path)
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_part(path: Path, stamp: str) -> FaceOutputs | None:
    """The part at ``path`` when it exists, reads and was computed with ``stamp``; else None."""
    try:
        return _read_part(path, stamp)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def _read_part(path: Path, stamp: str) -> FaceOutputs | None:
    with np.load(path, allow_pickle=False) as z:
        if str(z["stamp"]) != stamp:
            return None
        has_aux, has_consensus, has_oof, has_ref = (bool(v) for v in z["flags"])
        rows = z["rows"]
        emb = np.load(emb_path(path), mmap_mode="r")
        if emb.shape[0] != len(rows):
            return None
        oof = (z["oof_logits"], z["oof_latent"], z["oof_consensus"]) if has_oof else None
        return FaceOutputs(
            rows=rows, emb=emb, logits=z["logits"], latent=z["latent"], consensus=z["consensus"],
            has_aux=has_aux, has_consensus=has_consensus, oof=oof, facts=_facts_of(z, ""),
            ref_rows=z["ref_rows"], ref_facts=_facts_of(z, "ref_") if has_ref else None,
        )  # fmt: skip


def merge(parts: Sequence[FaceOutputs], n: int, emb_file: Path, *, chunk: int = 65_536) -> FaceOutputs:
    """The parts of ``n`` rows as one :class:`FaceOutputs` over rows 0..n-1; the embeddings are
    copied into a new memmap ``emb_file``. Raises ValueError unless the parts cover every row once."""
    rows = np.concatenate([p.rows for p in parts])
    if len(rows) != n or not np.array_equal(np.sort(rows), np.arange(n)):
        raise ValueError(f"the parts hold {len(rows)} rows, not each of the {n} rows once")
    first = parts[0]
    emb = np.lib.format.open_memmap(emb_file, mode="w+", dtype=np.float32, shape=(n, first.emb.shape[1]))

    def full(get: Any) -> np.ndarray:
        out = np.zeros((n, *get(first).shape[1:]), dtype=np.float32)
        for p in parts:
            out[p.rows] = get(p)
        return out

    for p in parts:
        for s in range(0, len(p.rows), chunk):
            emb[p.rows[s : s + chunk]] = p.emb[s : s + chunk]
    oof = None
    if first.oof is not None:
        oof = (full(lambda p: p.oof[0]), full(lambda p: p.oof[1]), full(lambda p: p.oof[2]))
    facts: list[PixelFacts | None] = [None] * n
    for p in parts:
        for row, fact in zip(p.rows.tolist(), p.facts, strict=True):
            facts[row] = fact
    ref_facts = None
    if first.ref_facts is not None:
        ref_order = np.concatenate([p.ref_rows for p in parts])
        ref_facts = [None] * len(ref_order)
        for row, fact in zip(ref_order.tolist(), (f for p in parts for f in p.ref_facts), strict=True):
            ref_facts[row] = fact
    return FaceOutputs(
        rows=np.arange(n, dtype=np.int64), emb=emb, logits=full(lambda p: p.logits), latent=full(lambda p: p.latent),
        consensus=full(lambda p: p.consensus), has_aux=first.has_aux, has_consensus=first.has_consensus, oof=oof,
        facts=facts, ref_rows=np.arange(len(ref_facts or []), dtype=np.int64), ref_facts=ref_facts,
    )  # fmt: skip


def part_stamp(model: nn.Module, work: Work, image_size: int) -> str:
    """The :func:`fingerprint` of the parts of scoring ``work.table`` with ``model``."""
    settings = {
        "image_size": image_size, "precision": work.precision, "tta": work.score_cfg.tta,
        "consensus": work.score_cfg.w_aux > 0,
        "folds": [hashlib.blake2b(np.asarray(r, dtype=np.int64).tobytes(), digest_size=8).hexdigest()
                  for _, r in work.held_out],
    }  # fmt: skip
    return fingerprint([model, *(m for m, _ in work.held_out)], work.table, work.reference, settings)


def ensure_part(
    model: nn.Module, work: Work, out: Path, rank: int, world: int, stamp: str,
    *, progress: bool = True, clock: StageClock | None = None,
) -> bool:  # fmt: skip
    """Write part ``rank`` of ``world`` of scores file ``out`` unless one made with ``stamp`` is
    there; True when it was (reused)."""
    n = len(work.table)
    if n < world:
        raise ValueError(f"{n} faces cannot be split over {world} processes: use fewer shards")
    part = part_path(out, rank, world)
    part.parent.mkdir(exist_ok=True)
    if read_part(part, stamp) is not None:
        return True
    count = 0 if work.reference is None else len(work.reference)
    faces = face_outputs(
        model, work, shard_rows(work.given, rank, world), emb_path(part),
        ref_rows=reference_rows(count, rank, world), progress=progress, clock=clock,
    )  # fmt: skip
    faces.emb.flush()
    write_part(part, faces, stamp)
    return False


def sharded_outputs(
    model: nn.Module, work: Work, out: Path, emb_file: Path, group: DistContext, image_size: int,
    clock: StageClock, *, progress: bool = True,
) -> tuple[FaceOutputs, int] | None:  # fmt: skip
    """This rank's part of the per-face work (:func:`ensure_part`); then, on rank 0, every part
    merged (embeddings into ``emb_file``) and how many were reused; None on the other ranks."""
    stamp = part_stamp(model, work, image_size)
    reused = ensure_part(model, work, out, group.rank, group.world_size, stamp, progress=progress, clock=clock)
    clock.begin("merge")
    done = gather_objects(reused, group)  # every rank waits here for the slowest shard
    if not group.is_main:
        return None
    parts = [read_part(part_path(out, r, group.world_size), stamp) for r in range(group.world_size)]
    missing = [r for r, p in enumerate(parts) if p is None]
    if missing:
        raise RuntimeError(f"shard parts {missing} are missing or stale in {parts_dir(out)}")
    return merge(parts, len(work.table), emb_file), sum(done)


def remove_parts(out: Path) -> None:
    """Delete the parts folder of ``out`` (after the scores file is written)."""
    shutil.rmtree(parts_dir(out), ignore_errors=True)
