"""The per-face work of scoring, for any subset of the rows: the model's outputs, the fold
models' out-of-fold outputs and the pixel pass of the data-issue checks.

``score_table`` runs it over every row in one process; under sharded scoring each process runs it
over its shard (``curate.scoring.shards``). Rows are visited sorted by given label (stable), so
that without the consensus most batches reach a single auxiliary branch in one call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from curate.data.duplicates import PixelFacts, pixel_facts
from curate.data.table import classes_of
from curate.data.torch_dataset import FaceDataset
from curate.scoring.infer import iterate_outputs
from curate.scoring.scores import ScoreConfig


class StageClock:
    """Wall seconds of each stage of a scoring call, in order: ``forward`` (model passes, the fold
    models' too), ``pixels`` (the hash pass), ``merge`` (sharded: waiting for the other shards and
    merging their parts), ``sigma``, ``neighbours``, ``scores``, ``issues``, ``write``."""

    def __init__(self, on_stage: Callable[[str], None] | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self._on_stage = on_stage
        self._current: str | None = None
        self._since = 0.0

    def begin(self, name: str | None) -> None:
        """End the current stage and begin ``name`` (None: just end it)."""
        now = time.perf_counter()
        if self._current is not None:
            self.seconds[self._current] = self.seconds.get(self._current, 0.0) + now - self._since
        self._current, self._since = name, now
        if name is not None and self._on_stage is not None:
            self._on_stage(name)


@dataclass
class Work:
    """What the per-face work needs besides the model: the scored ``table`` and its ``dataset``,
    the ``held_out`` (fold model, rows) pairs of a cross-fitted run, the ``reference`` table whose
    pixels are hashed for leakage (or None), and the forward settings (``precision``: the resolved
    mining precision, ``"fp32"`` or ``"bf16"``)."""

    table: pd.DataFrame
    dataset: FaceDataset
    held_out: Sequence[tuple[nn.Module, np.ndarray]]
    reference: pd.DataFrame | None
    batch_size: int
    device: str
    precision: str
    score_cfg: ScoreConfig

    @property
    def given(self) -> np.ndarray:
        return self.table["label"].to_numpy(dtype=np.int64)


@dataclass
class FaceOutputs:
    """The per-face work for table rows ``rows`` (n,), int64 ascending; every array is aligned
    with ``rows``. ``emb`` (n, D) float32 (a memmap); ``logits``, ``latent``, ``consensus`` (n, C)
    float32 (zeros where the model has no such output: ``has_aux``, ``has_consensus``); ``oof``:
    the same three from the fold models of a cross-fitted run (None without one); ``facts``: the
    pixel facts of the rows, ``ref_facts`` those of reference rows ``ref_rows`` (None without a
    reference table)."""

    rows: np.ndarray
    emb: np.ndarray
    logits: np.ndarray
    latent: np.ndarray
    consensus: np.ndarray
    has_aux: bool
    has_consensus: bool
    oof: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    facts: list[PixelFacts]
    ref_rows: np.ndarray
    ref_facts: list[PixelFacts] | None


def face_outputs(
    model: nn.Module,
    work: Work,
    rows: np.ndarray,
    emb_file: Path,
    *,
    ref_rows: np.ndarray | None = None,
    progress: bool = True,
    clock: StageClock | None = None,
) -> FaceOutputs:
    """The per-face work for ``rows`` (ascending table rows, at least one), the embeddings in a
    new memmap ``emb_file``; the pixels of reference rows ``ref_rows`` (default: all of them).
    ``clock``: its ``forward`` and ``pixels`` stages are timed."""
    clock = clock or StageClock()
    clock.begin("forward")
    given, C, n = work.given, len(classes_of(work.table)), len(rows)
    logits, latent, consensus = (np.zeros((n, C), dtype=np.float32) for _ in range(3))
    emb: np.ndarray | None = None
    has_aux = has_consensus = False
    for chunk in _outputs(model, work, rows[np.argsort(given[rows], kind="stable")], progress):
        at = np.searchsorted(rows, chunk.idx)
        if emb is None:
            emb = np.lib.format.open_memmap(emb_file, mode="w+", dtype=np.float32, shape=(n, chunk.emb.shape[1]))
        emb[at] = chunk.emb
        logits[at] = chunk.logits
        if chunk.latent is not None:
            has_aux = True
            latent[at] = chunk.latent
        if chunk.consensus is not None:
            has_consensus = True
            consensus[at] = chunk.consensus
    if emb is None:
        raise ValueError("no rows to score")
    oof = _out_of_fold(work, rows, (logits, latent, consensus), progress)
    clock.begin("pixels")
    facts = pixel_facts(work.table["filepath"].iloc[rows].tolist(), progress=progress)
    ref_facts = None
    if work.reference is not None:
        ref_rows = np.arange(len(work.reference), dtype=np.int64) if ref_rows is None else ref_rows
        ref_facts = pixel_facts(work.reference["filepath"].iloc[ref_rows].tolist(), progress=progress)
    return FaceOutputs(
        rows=rows, emb=emb, logits=logits, latent=latent, consensus=consensus, has_aux=has_aux,
        has_consensus=has_consensus, oof=oof, facts=facts,
        ref_rows=np.zeros(0, dtype=np.int64) if ref_rows is None else ref_rows, ref_facts=ref_facts,
    )  # fmt: skip


def _outputs(model: nn.Module, work: Work, order: np.ndarray, progress: bool):
    cfg = work.score_cfg
    return iterate_outputs(
        model, work.dataset, batch_size=work.batch_size, device=work.device, order=order,
        mining_precision=work.precision, tta=cfg.tta, consensus=cfg.w_aux > 0, progress=progress,
    )  # fmt: skip


def _out_of_fold(
    work: Work, rows: np.ndarray, full: tuple[np.ndarray, np.ndarray, np.ndarray], progress: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(logits, latent, consensus) of ``rows``: copies of the ``full`` model's with the rows of every
    fold replaced by its fold model's outputs; None without ``work.held_out``."""
    if not work.held_out:
        return None
    logits, latent, consensus = (a.copy() for a in full)
    given = work.given
    for fold_model, fold_rows in work.held_out:
        mine = fold_rows[np.isin(fold_rows, rows)]  # in the fold's order, as one process visits them
        if not len(mine):
            continue
        for chunk in _outputs(fold_model, work, mine[np.argsort(given[mine], kind="stable")], progress):
            at = np.searchsorted(rows, chunk.idx)
            logits[at] = chunk.logits
            if chunk.latent is not None:
                latent[at] = chunk.latent
            if chunk.consensus is not None:
                consensus[at] = chunk.consensus
    return logits, latent, consensus
