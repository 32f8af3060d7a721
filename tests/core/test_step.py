import json

import pytest
import torch

from dmue_core import DMUE, DMUEConfig, TrainConfig

PRESETS = {
    "improved": lambda **kw: DMUEConfig(num_classes=4, **kw),
    "faithful": lambda **kw: DMUEConfig.faithful(4, **kw),
}


def _step(cfg: DMUEConfig, y: torch.Tensor, epoch: float = 4):
    torch.manual_seed(0)
    model = DMUE(cfg).train()
    out = model.training_step(torch.randn(len(y), 3, 32, 32), y, epoch)
    out.loss.backward()
    return model, out


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_step_with_a_single_sample_class_and_an_absent_class(preset):
    y = torch.tensor([0, 0, 1, 1, 1, 2])  # class 2 has one sample, class 3 none
    model, out = _step(PRESETS[preset](backbone="fer_cnn"), y)
    assert torch.isfinite(out.loss) and out.loss.requires_grad
    assert set(out.parts) == {"wce", "soft", "sp", "aux", "ramp_up", "ramp_down"}
    assert all(torch.isfinite(v) and not v.requires_grad for v in out.parts.values())
    assert out.notes["classes_absent"] == 1 and out.notes["classes_with_1_sample"] == 1
    assert out.notes["aux_rows"] == 4 + 3 + 5 + 6
    assert out.notes["mining_running_stats"] == (1 if preset == "faithful" else 0)
    assert out.target_probs.shape == out.latent.shape == (6, 4) and out.uncertainty.shape == (6,)
    torch.testing.assert_close(out.latent.sum(1), torch.ones(6))
    assert torch.all(out.latent[torch.arange(6), y] == 0)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_faithful_resnet18_step_runs():
    _, out = _step(DMUEConfig.faithful(3, backbone="resnet18"), torch.tensor([0, 0, 1, 2, 2]))
    assert torch.isfinite(out.loss) and out.notes["classes_with_1_sample"] == 1


def test_auxiliary_branch_with_one_row_uses_running_statistics():
    _, out = _step(PRESETS["improved"](backbone="fer_cnn"), torch.tensor([0, 0, 0, 1]))
    assert out.notes["aux_running_stats"] == 1  # branch 0 trains on the one class-1 sample
    assert torch.isfinite(out.loss)


def test_loss_is_the_ramped_sum_of_its_parts():
    cfg = PRESETS["improved"](backbone="fer_cnn")
    _, out = _step(cfg, torch.tensor([0, 1, 2, 3, 0, 1]), epoch=2)
    p = out.parts
    expected = p["ramp_up"] * (p["wce"] + cfg.w_soft * p["soft"] + cfg.gamma_sp * p["sp"])
    expected = expected + p["ramp_down"] * p["aux"]
    torch.testing.assert_close(out.loss.detach(), expected)
    assert p["ramp_up"] == pytest.approx(0.108, abs=1e-3)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_param_groups_cover_each_trainable_parameter_once(preset):
    model = DMUE(PRESETS[preset](backbone="fer_cnn"))
    groups = model.param_groups(1e-4, 1e-3)
    assert [(g["name"], g["lr"]) for g in groups] == [("backbone", 1e-4), ("classifier", 1e-3)]
    in_groups = [id(p) for g in groups for p in g["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert sorted(in_groups) == sorted(trainable) and len(set(in_groups)) == len(in_groups)
    mlp = {id(p) for p in model.uncertainty_mlp.parameters()}
    assert bool(mlp & set(in_groups)) == (preset == "improved")  # official: MLP never trained
    assert not any(id(n.bias) in in_groups for n in model.necks)  # neck bias frozen at 0
    assert len(model.necks) == (1 if preset == "faithful" else 5)


def test_mine_matches_the_auxiliary_distribution_of_the_label():
    torch.manual_seed(0)
    model = DMUE(DMUEConfig(num_classes=4, backbone="fer_cnn", temperature=1.0))
    x, y = torch.randn(6, 3, 32, 32), torch.tensor([0, 1, 2, 3, 3, 1])
    probs = model.aux_probs(x)
    assert probs.shape == (6, 4, 4) and model.training  # the mode is restored
    assert torch.all(probs[:, torch.arange(4), torch.arange(4)] == 0)
    torch.testing.assert_close(model.mine(x, y), probs[torch.arange(6), y])
    assert model.training


def test_configs_round_trip_through_json_and_reject_unknown_keys():
    cfg = DMUEConfig.faithful(7, ramp_a=10)
    assert DMUEConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.official_stem and not cfg.aux_detach_trunk and cfg.ramp_a == 10
    assert not DMUEConfig.faithful(7, backbone="mobilenet_v2").official_stem
    train = TrainConfig(epochs=3, amp=False)
    assert TrainConfig.from_dict(json.loads(json.dumps(train.to_dict()))) == train
    with pytest.raises(ValueError, match="unknown DMUEConfig keys: \\['gama_sp'\\]"):
        DMUEConfig.from_dict({"num_classes": 7, "gama_sp": 1.0})
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="linear")
    with pytest.raises(ValueError, match="num_classes >= 3"):
        DMUEConfig(num_classes=2)


def test_bf16_auxiliary_passes_run_and_keep_float_outputs():
    y = torch.tensor([0, 0, 1, 1, 2, 3])
    model, out = _step(PRESETS["improved"](backbone="fer_cnn", aux_bf16=True), y)
    assert torch.isfinite(out.loss) and out.loss.dtype == torch.float32
    assert out.latent.dtype == torch.float32
    assert all(p.grad.dtype == torch.float32 for p in model.aux_stages[0].parameters())


@pytest.mark.parametrize("aux_bf16", [False, True])
def test_step_under_the_trainers_cpu_bf16_autocast(aux_bf16):
    """CPU mixed precision (``TrainConfig.amp``) wraps the whole step in bfloat16 autocast: every
    branch runs in it (``aux_bf16=False`` must not switch it off around the auxiliary passes), and
    the loss, latent distribution and gradients stay float32."""
    y = torch.tensor([0, 0, 1, 1, 2, 3])
    torch.manual_seed(0)
    model = DMUE(PRESETS["improved"](backbone="fer_cnn", aux_bf16=aux_bf16)).train()
    with torch.autocast("cpu", torch.bfloat16):
        out = model.training_step(torch.randn(len(y), 3, 32, 32), y, 4)
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.loss.dtype == torch.float32
    assert out.latent.dtype == torch.float32 and out.target_probs.dtype == torch.float32
    for module in (model.trunk, model.aux_stages[0], model.target_stage):
        grads = [p.grad for p in module.parameters()]
        assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)


def test_sp_on_features_differs_from_sp_on_logits():
    y = torch.tensor([0, 0, 1, 1, 2, 3])
    _, logits = _step(PRESETS["improved"](backbone="fer_cnn"), y)
    _, features = _step(PRESETS["improved"](backbone="fer_cnn", official_sp_logits=False), y)
    assert torch.isfinite(features.loss)
    assert abs(float(features.parts["sp"] - logits.parts["sp"])) > 1e-4
