from urllib.error import URLError

import pytest
import torch
import torchvision
from torch import nn

from dmue_core.backbones import (
    FerCNN,
    WeightsUnavailable,
    build_backbone,
    imagenet_weights_file,
    list_backbones,
    plain_backbone,
    register_backbone,
)


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_required_backbones_are_registered():
    assert {"resnet18", "resnet34", "resnet50", "mobilenet_v2", "fer_cnn"} <= set(list_backbones())


def test_unknown_and_duplicate_names_are_errors():
    with pytest.raises(ValueError, match="unknown backbone 'vgg99'.*resnet18"):
        build_backbone("vgg99", 3)
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("resnet18")(lambda c, s, o: None)


@pytest.mark.parametrize("name", list_backbones())
def test_parts_reproduce_the_plain_network(name):
    torch.manual_seed(0)
    parts = build_backbone(name, 3, small_input=True)
    last_stage = parts.make_last_stage()
    assert last_stage is not parts.make_last_stage()
    head_w, head_b = torch.randn(3, parts.feat_dim) * 0.01, torch.randn(3)
    plain = parts.plain(3)
    plain.load_state_dict(parts.plain_state_dict(parts.trunk.state_dict(), last_stage.state_dict(), head_w, head_b))
    for module in (plain, parts.trunk, last_stage):
        module.eval()
    x = torch.randn(2, 3, 32, 32)
    features = parts.pool(last_stage(parts.trunk(x)))
    assert features.shape == (2, parts.feat_dim)
    torch.testing.assert_close(plain(x), features @ head_w.T + head_b, atol=1e-5, rtol=1e-4)


def test_last_stage_copies_start_from_the_same_weights():
    parts = build_backbone("fer_cnn", 3)
    a, b = parts.make_last_stage(), parts.make_last_stage()
    for (key, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb) and pa.data_ptr() != pb.data_ptr(), key


def test_plain_parameter_counts_match_torchvision():
    assert _n_params(plain_backbone("resnet18", 7)) == _n_params(torchvision.models.resnet18(num_classes=7))
    assert _n_params(plain_backbone("mobilenet_v2", 7)) == _n_params(torchvision.models.mobilenet_v2(num_classes=7))


def test_fer_cnn_is_compact_and_its_plain_model_is_fer_cnn():
    plain = plain_backbone("fer_cnn", 7)
    assert isinstance(plain, FerCNN)
    assert 0.3e6 < _n_params(plain) < 0.5e6
    assert plain(torch.randn(2, 3, 48, 48)).shape == (2, 7)


def test_small_input_stems():
    x = torch.randn(1, 3, 48, 48)
    resnet = build_backbone("resnet18", 3, small_input=True)
    assert resnet.trunk(x).shape[-1] == 6  # stem stride 2, no max-pool: 48 -> 24 -> ... -> 6
    assert build_backbone("resnet18", 3).trunk(x).shape[-1] == 3
    mobilenet = build_backbone("mobilenet_v2", 3, small_input=True)
    assert mobilenet.trunk(x).shape[-1] == 6


def test_official_stem_has_no_relu_and_a_2x2_max_pool():
    trunk = build_backbone("resnet18", 3, official_stem=True).trunk
    assert isinstance(trunk[2], nn.Identity)
    assert trunk[3].kernel_size == 2 and trunk[3].stride == 2
    with pytest.raises(ValueError, match="only for ResNets"):
        build_backbone("mobilenet_v2", 3, official_stem=True)


def test_weights_from_checkpoint_dict_with_module_prefix(tmp_path):
    source = FerCNN(num_classes=10)
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": state, "epoch": 3}, path)
    parts = build_backbone("fer_cnn", 3, weights=path)
    torch.testing.assert_close(parts.trunk[0][0].weight, source.features[0][0].weight)
    torch.testing.assert_close(parts.make_last_stage()[0].weight, source.features[3][0].weight)


def test_torchvision_state_dict_loads_without_its_classifier(tmp_path):
    source = torchvision.models.resnet18(num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    parts = build_backbone("resnet18", 7, weights=path)
    torch.testing.assert_close(parts.trunk[0].weight, source.conv1.weight)


def test_bad_weight_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        build_backbone("fer_cnn", 3, weights=tmp_path / "absent.pt")
    state = FerCNN(num_classes=3).state_dict()
    state["features.9.weight"] = state.pop("features.0.0.weight")
    path = tmp_path / "renamed.pt"
    torch.save({"model": state}, path)
    with pytest.raises(
        ValueError, match=r"missing keys \(1\): features\.0\.0\.weight; unexpected keys \(1\): features\.9\.weight"
    ):
        build_backbone("fer_cnn", 3, weights=path)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"):
        build_backbone("fer_cnn", 3, weights=garbage)


def test_a_pretrained_stem_is_adapted_to_the_small_input_stem(tmp_path):
    """The 7x7 ImageNet stem pooled to the small-input 3x3 stem keeps each kernel's sum; a
    one-channel stem is spread over the three input channels; a stem that cannot fit still fails."""
    source = torchvision.models.resnet18()
    path = tmp_path / "r18.pt"
    torch.save(source.state_dict(), path)
    conv = build_backbone("resnet18", 3, small_input=True, weights=path).trunk[0]
    assert conv.weight.shape == (64, 3, 3, 3)
    torch.testing.assert_close(conv.weight.sum((2, 3)), source.conv1.weight.sum((2, 3)), rtol=1e-4, atol=1e-5)
    # area shrinking: the centre third [7/3, 14/3) holds input cell 3 whole and 2/3 of cells 2 and 4
    w = source.conv1.weight[0, 0]
    rows = 2 / 3 * w[2] + w[3] + 2 / 3 * w[4]
    torch.testing.assert_close(conv.weight[0, 0, 1, 1], 2 / 3 * rows[2] + rows[3] + 2 / 3 * rows[4])
    gray = source.state_dict()
    gray["conv1.weight"] = gray["conv1.weight"].sum(1, keepdim=True)
    torch.save(gray, path)
    conv = build_backbone("resnet18", 3, weights=path).trunk[0]
    torch.testing.assert_close(conv.weight, gray["conv1.weight"].expand(-1, 3, -1, -1) / 3)
    gray["conv1.weight"] = torch.zeros(64, 2, 7, 7)
    torch.save(gray, path)
    with pytest.raises(ValueError, match=r"shape mismatch.*conv1\.weight \(64, 2, 7, 7\) vs \(64, 3, 7, 7\)"):
        build_backbone("resnet18", 3, weights=path)


def test_imagenet_weights_come_from_torchvisions_cache(tmp_path, monkeypatch):
    """A state dict generated here, put where torchvision's weight API caches resnet18's ImageNet
    file, is what ``weights="imagenet"`` loads; nothing is downloaded."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    source = torchvision.models.resnet18()
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    cached = tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[1]
    cached.parent.mkdir(parents=True)
    torch.save(source.state_dict(), cached)

    def no_download(*args, **kwargs):
        raise AssertionError("the cached file should have been used")

    monkeypatch.setattr(torchvision.models.ResNet18_Weights, "get_state_dict", no_download)
    assert imagenet_weights_file("resnet18") == cached
    parts = build_backbone("resnet18", 7, weights="imagenet")
    torch.testing.assert_close(parts.trunk[4][0].conv1.weight, source.layer1[0].conv1.weight)
    torch.testing.assert_close(parts.make_last_stage()[1].conv2.weight, source.layer4[1].conv2.weight)


def test_imagenet_weights_offline_give_one_actionable_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.models.MobileNet_V2_Weights, "get_state_dict", offline)
    with pytest.raises(WeightsUnavailable) as err:
        build_backbone("mobilenet_v2", 7, weights="imagenet")
    message = str(err.value)
    folder = tmp_path / "hub" / "checkpoints"
    assert "\n" not in message and "mobilenet_v2-7ebf99e0.pth" in message and str(folder) in message
    assert "name resolution" in message
    with pytest.raises(ValueError, match="no ImageNet weights for backbone 'fer_cnn'"):
        build_backbone("fer_cnn", 7, weights="imagenet")
