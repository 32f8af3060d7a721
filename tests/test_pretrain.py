"""``curate pretrain`` and ``--pretrain-epochs``: the cost said first and recorded, the config
recorded, the weights a start for training, and the run option's stage reused on resume."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from click.testing import CliRunner

from curate.cli import main
from curate.data.synthetic import generate
from curate.run_config import RunConfig

READ = ("--path-column", "path", "--label-column", "label")
TRAIN = ("--epochs", "1", "--ramp-a", "1", "--workers", "0", "--image-size", "32", "--amp", "off")


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    generate(40, root / "data", seed=3, noise_rate=0.2)
    return root / "data" / "labels.csv"


def test_pretrain_prints_its_cost_first_and_records_it_with_the_config(data, tmp_path):
    out = tmp_path / "ssl"
    res = invoke("pretrain", data, *READ, "--epochs", "2", "--batch-size", "16", "--image-size", "32",
                 "--temperature", "0.3", "--amp", "off", "--out", out)  # fmt: skip
    assert res.exit_code == 0, res.output
    cost_line = "self-supervised pretraining: 40 faces x 2 epochs x 2 views = 160 views of 21 px in 6 steps of 16"
    assert cost_line in res.output
    assert res.output.index(cost_line) < res.output.index("pretrain epoch 1/2")
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["data"]["dataset"] == str(data.resolve()) and config["data"]["label_column"] == "label"
    assert config["image_size"] == 32 and config["backbone"]["name"] == "fer_cnn"
    assert config["pretrain"]["epochs"] == 2 and config["pretrain"]["temperature"] == 0.3
    record = json.loads((out / "pretrain.json").read_text())
    assert record["views"] == 160 and record["steps"] == 6 and record["completed"]
    assert record["view_side"] == 21 and config["pretrain"]["view_size"] == 0  # two thirds of 32 px, by default
    assert record["estimated_seconds"] > 0 and record["seconds"] > 0 and record["selfsup"] == config["pretrain"]
    again = invoke("pretrain", data, *READ, "--epochs", "2", "--batch-size", "16", "--image-size", "32",
                   "--temperature", "0.3", "--amp", "off", "--out", out)  # fmt: skip
    assert "already done" in again.output
    run = invoke("train", data, *READ, *TRAIN, "--weights", out / "weights.pt", "--out", tmp_path / "run")
    assert run.exit_code == 0, run.output
    assert RunConfig.load(tmp_path / "run" / "config.yaml").model.weights == str(out / "weights.pt")


def test_run_option_pretrains_first_records_it_and_reuses_it_on_resume(data, tmp_path):
    out = tmp_path / "run"
    args = ("train", data, *READ, *TRAIN, "--keep-snapshots", "1", "--pretrain-epochs", "2", "--out", out)
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    assert res.output.index("self-supervised pretraining: 40 faces x 2 epochs") < res.output.index("epoch 1/1")
    cfg = RunConfig.load(out / "config.yaml")
    weights = out / "pretrain" / "weights.pt"
    assert cfg.pretrain.epochs == 2 and cfg.model.weights == str(weights.resolve())
    assert json.loads((out / "pretrain" / "pretrain.json").read_text())["completed"]
    start = torch.load(weights, weights_only=True)["model"]["features.0.0.weight"]
    (snapshot,) = (out / "checkpoints").glob("step_*.pt")  # after DMUE's one epoch (one step of Adam)
    trained = torch.load(snapshot, weights_only=True)["model"]["trunk.0.0.weight"]
    assert 0 < (trained - start).abs().max() < 0.01  # trained on from the stage's weights
    more = invoke(*args[:-4], "--epochs", "2", "--out", out)  # resumes: the stage is not run again
    assert more.exit_code == 0, more.output
    assert "pretraining already done" in more.output and "x 2 views" not in more.output


def test_two_starts_are_refused(data, tmp_path):
    res = invoke("train", data, *READ, *TRAIN, "--pretrain-epochs", "1", "--weights", data, "--out", tmp_path / "a")
    assert res.exit_code != 0 and "drop --weights" in res.output
    res = invoke("train", data, *READ, *TRAIN, "--pretrain-epochs", "1", "--init-from", data, "--out", tmp_path / "b")
    assert res.exit_code != 0 and "two starts" in res.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
