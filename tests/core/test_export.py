import pytest
import torch
import torchvision
from torch import nn

from dmue_core import DMUE, DMUEConfig, FerCNN, load_target_model, save_target_model, to_target_model


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _randomise_norm_stats(model: nn.Module) -> None:
    """Non-trivial BN statistics and affine parameters, as after training."""
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            if m.bias.requires_grad:
                m.bias.data.uniform_(-0.2, 0.2)


PLAIN = {
    "resnet18": lambda c: torchvision.models.resnet18(num_classes=c),
    "mobilenet_v2": lambda c: torchvision.models.mobilenet_v2(num_classes=c),
    "fer_cnn": FerCNN,
}


@pytest.mark.parametrize("backbone", sorted(PLAIN))
@pytest.mark.parametrize("faithful", [False, True], ids=["improved", "faithful"])
def test_export_equals_target_path_and_has_plain_size(backbone, faithful):
    torch.manual_seed(0)
    cfg = (DMUEConfig.faithful if faithful else DMUEConfig)(num_classes=3, backbone=backbone)
    model = DMUE(cfg)
    _randomise_norm_stats(model)
    model.eval()
    exported = to_target_model(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (exported(x) - model(x)).abs().max() < 1e-5
    assert _n_params(exported) == _n_params(PLAIN[backbone](3))
    assert isinstance(exported, type(PLAIN[backbone](3)))


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = DMUE(DMUEConfig(num_classes=4, backbone="fer_cnn", small_input=True))
    _randomise_norm_stats(model)
    model.eval()
    path = save_target_model(model, tmp_path / "out" / "target.pt")
    assert [p.name for p in path.parent.iterdir()] == ["target.pt"]  # no temp file left behind
    loaded = load_target_model(path)
    x = torch.randn(3, 3, 48, 48)
    with torch.no_grad():
        assert (loaded(x) - model(x)).abs().max() < 1e-5
    assert not loaded.training


def test_loading_another_file_is_a_clear_error(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save(FerCNN(3).state_dict(), path)
    with pytest.raises(ValueError, match="not a target model"):
        load_target_model(path)
