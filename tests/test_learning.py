"""DMUE learns through label noise at least as well as plain cross-entropy (same backbone, budget)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from curate.data.synthetic import generate
from curate.data.torch_dataset import FaceDataset, eval_transform, train_transform
from curate.run_config import MODEL_DEFAULTS, TRAIN_DEFAULTS
from dmue_core.baseline import PlainClassifier
from dmue_core.config import DMUEConfig, TrainConfig
from dmue_core.model import DMUE
from dmue_core.trainer import train


@pytest.mark.slow
def test_dmue_clean_accuracy_at_least_ce_under_30pct_noise(tmp_path):
    # 1,200 training faces and 800 clean test faces (one face = 0.125 % accuracy)
    table = generate(
        2000, tmp_path / "data", seed=0, noise_rate=0.3, noise="confusable", splits={"train": 0.6, "test": 0.4}
    )
    tr, te = (table[table["split"] == s].reset_index(drop=True) for s in ("train", "test"))
    tr.attrs = te.attrs = table.attrs
    train_set = FaceDataset(tr, 48, transform=train_transform(48), preload=True)
    test_set = FaceDataset(te, 48, transform=eval_transform(48), preload=True)
    x_test = torch.stack([test_set[i][0] for i in range(len(test_set))])
    truth = te["true_label"].to_numpy()
    epochs = 8
    tcfg = TrainConfig(**{**TRAIN_DEFAULTS, "epochs": epochs, "num_workers": 0, "ckpt_every": 0, "seed": 0})
    acc = {}
    for name, cls in (("ce", PlainClassifier), ("dmue", DMUE)):
        torch.manual_seed(0)
        model = cls(DMUEConfig(**{**MODEL_DEFAULTS, "ramp_a": epochs / 3}))
        train(model, train_set, tcfg, tmp_path / name, resume=False, progress=False, log=lambda _: None)
        with torch.no_grad():
            acc[name] = float(np.mean(model.eval()(x_test).argmax(1).numpy() == truth))
    print(f"clean test accuracy under 30% confusable noise: {acc}")
    assert acc["ce"] > 0.6, acc  # the budget is enough to learn the task at all
    assert acc["dmue"] >= acc["ce"], acc
