"""bench/consensus_mean.py: the plain mean over the auxiliary branches, recovered from the per-class
consensus the scores store."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dmue_core.losses import aux_consensus

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))  # consensus_mean imports its sibling flag_count_rules, as `python bench/...` does
spec = importlib.util.spec_from_file_location("consensus_mean", BENCH / "consensus_mean.py")
consensus_mean = importlib.util.module_from_spec(spec)
spec.loader.exec_module(consensus_mean)


def test_the_plain_mean_is_recovered_exactly_from_the_per_class_consensus() -> None:
    B, C = 12, 4
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(B, C, C, generator=g) * (1 - torch.eye(C))  # branch c never predicts class c
    probs = probs / probs.sum(dim=2, keepdim=True)
    y = torch.arange(B) % C
    kept = torch.ones(B, C, dtype=torch.bool)
    kept[torch.arange(B), y] = False  # branch y_i never saw the face's given class: left out
    plain = (probs * kept[:, :, None]).sum(dim=1) / (C - 1)
    recovered = consensus_mean.plain_mean(aux_consensus(probs, y).double().numpy(), y.numpy())
    assert np.allclose(recovered, plain.double().numpy(), atol=1e-6)
    assert not np.allclose(aux_consensus(probs, y).numpy(), plain.numpy(), atol=1e-3)  # the two differ


def test_a_run_with_fold_models_is_refused(tmp_path: Path) -> None:
    (tmp_path / "run" / "folds").mkdir(parents=True)
    with pytest.raises(SystemExit, match="has fold models"):
        consensus_mean.run_row(tmp_path / "run", tmp_path / "labels.csv")
