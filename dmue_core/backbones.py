"""Backbone registry: plain classification networks split into a shared trunk and a last stage.

A registered builder returns the plain network (torchvision or ``FerCNN``) together with views of
its modules: ``trunk`` (stem + all stages but the last), ``last_stage`` and ``pool`` (GAP +
flatten), such that ``classifier(pool(last_stage(trunk(x))))`` is the plain forward pass.
``build_backbone`` wraps this into ``BackboneParts``, loads local weights, and records how the
parts' parameter names map back onto the plain network (used by ``dmue_core.export``).

small_input (faces of ~48x48): ResNets get a 3x3 stride-2 first conv and no max-pool (stem stride 2
instead of 4; stride 1 would cost ~4x the MACs: 1.2 vs 0.32 GMAC for resnet18 at 48x48),
MobileNetV2 a stride-1 first conv. ``fer_cnn`` is built for small inputs and ignores the flag.

Pretrained weights: a local file, or ``"imagenet"`` for the torchvision backbones, fetched through
torchvision's own weight API into torch.hub's cache (``$TORCH_HOME/hub/checkpoints``) the first
time and read from there after. A pretrained stem meets a small-input stem by shrinking its 7x7
kernel to 3x3 by area (each kernel keeps its sum: the same response to flat input), and a
one-channel (grayscale) first conv meets the three-channel input by spreading its weights over
the channels (faces are read as three equal channels).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

import torch
import torchvision
from torch import Tensor, nn

SMALL_INPUT_STEM_STRIDE = 2
#: ``weights`` value that asks for torchvision's ImageNet weights (``imagenet_weights_file``)
IMAGENET = "imagenet"
#: backbones with ImageNet weights in torchvision, by registry name
IMAGENET_BACKBONES = ("mobilenet_v2", "resnet18", "resnet34", "resnet50")


class WeightsUnavailable(ValueError):
    """Pretrained weights are neither cached nor downloadable; the message says where to put them
    (a ValueError, so every command reports it as its one-line error)."""


class BackboneSplit(NamedTuple):
    """A plain network and views of its modules (what a registered builder returns)."""

    net: nn.Module
    trunk: nn.Module
    last_stage: nn.Module
    pool: nn.Module
    feat_dim: int


Builder = Callable[[int, bool, bool], BackboneSplit]  # (num_classes, small_input, official_stem)
_REGISTRY: dict[str, Builder] = {}


def register_backbone(name: str) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder(num_classes, small_input, official_stem) -> split``."""

    def add(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is already registered")
        _REGISTRY[name] = builder
        return builder

    return add


def list_backbones() -> list[str]:
    return sorted(_REGISTRY)


def _builder(name: str) -> Builder:
    if name not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; registered: {list_backbones()}")
    return _REGISTRY[name]


def plain_backbone(name: str, num_classes: int, *, small_input: bool = False, official_stem: bool = False) -> nn.Module:
    """The plain (single-branch) network with ``num_classes`` outputs, randomly initialised."""
    return _builder(name)(num_classes, small_input, official_stem).net


@dataclass
class BackboneParts:
    """A backbone split for DMUE. ``trunk`` and ``pool`` are shared; ``make_last_stage()`` gives
    a fresh copy of the last stage (same initial weights each call) for every branch.

    trunk: [B,3,H,W] -> [B,Ch,h,w]; last stage: -> [B,feat_dim,h',w']; pool: -> [B,feat_dim].
    """

    name: str
    trunk: nn.Module
    pool: nn.Module
    feat_dim: int
    plain: Callable[[int], nn.Module]
    head_keys: tuple[str, str]  # (weight, bias) names of the plain network's final linear layer
    _last_stage: nn.Module
    _plain_names: dict[str, str]  # "trunk.<key>" / "last_stage.<key>" -> plain state-dict key

    def make_last_stage(self) -> nn.Module:
        return copy.deepcopy(self._last_stage)

    def plain_state_dict(
        self,
        trunk: dict[str, Tensor],
        last_stage: dict[str, Tensor],
        head_weight: Tensor,
        head_bias: Tensor,
    ) -> dict[str, Tensor]:
        """State dict of ``plain(C)`` from a trunk, a last stage and a C-way linear head."""
        state = {self._plain_names[f"trunk.{k}"]: v for k, v in trunk.items()}
        state.update({self._plain_names[f"last_stage.{k}"]: v for k, v in last_stage.items()})
        state[self.head_keys[0]], state[self.head_keys[1]] = head_weight, head_bias
        return state

    def split_plain_state(self, state: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor], Tensor]:
        """(trunk state, last-stage state, final layer weight [C,D]) of a ``plain`` state dict: the
        inverse of ``plain_state_dict`` without the bias. KeyError names a key the state lacks."""
        parts: dict[str, dict[str, Tensor]] = {"trunk": {}, "last_stage": {}}
        for name, plain_key in self._plain_names.items():
            part, key = name.split(".", 1)
            parts[part][key] = state[plain_key]
        return parts["trunk"], parts["last_stage"], state[self.head_keys[0]]


def build_backbone(
    name: str,
    num_classes: int,
    *,
    small_input: bool = False,
    weights: str | Path | None = None,
    official_stem: bool = False,
) -> BackboneParts:
    """Build backbone ``name`` split into parts; ``weights`` = local file or ``"imagenet"``
    (classifier ignored)."""
    builder = _builder(name)
    split = builder(num_classes, small_input, official_stem)
    plain_names, head_keys = _plain_name_map(split)
    if weights is not None:
        path = imagenet_weights_file(name) if str(weights) == IMAGENET else weights
        load_backbone_weights(split.net, path, ignore=head_keys)
    return BackboneParts(
        name=name,
        trunk=split.trunk,
        pool=split.pool,
        feat_dim=split.feat_dim,
        plain=lambda c: builder(c, small_input, official_stem).net,
        head_keys=head_keys,
        _last_stage=split.last_stage,
        _plain_names=plain_names,
    )


def _plain_name_map(split: BackboneSplit) -> tuple[dict[str, str], tuple[str, str]]:
    """Map trunk/last-stage state keys to the plain net's keys by tensor identity; the remaining
    plain keys are the final linear layer's (weight, bias)."""
    plain_key = {id(t): k for k, t in split.net.state_dict(keep_vars=True).items()}
    names = {
        f"{part}.{k}": plain_key[id(t)]
        for part, module in (("trunk", split.trunk), ("last_stage", split.last_stage))
        for k, t in module.state_dict(keep_vars=True).items()
    }
    head = sorted(set(plain_key.values()) - set(names.values()))
    weight = [k for k in head if k.endswith("weight")]
    bias = [k for k in head if k.endswith("bias")]
    if len(head) != 2 or len(weight) != 1 or len(bias) != 1:
        raise RuntimeError(f"backbone head must be one linear layer with bias, found keys {head}")
    return names, (weight[0], bias[0])


def imagenet_weights_file(name: str) -> Path:
    """The cached file of torchvision's default ImageNet weights for backbone ``name``, fetched
    with the weights' own ``get_state_dict`` (torch.hub's download-and-cache) when it is not cached
    yet. Raises ``WeightsUnavailable`` naming the file and the folder when it cannot be had."""
    if name not in IMAGENET_BACKBONES:
        raise ValueError(
            f"no ImageNet weights for backbone {name!r}; torchvision has them for "
            f"{list(IMAGENET_BACKBONES)} (or pass a local file)"
        )
    weights = torchvision.models.get_model_weights(name).DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
    if not cached.is_file():
        try:
            weights.get_state_dict(progress=True, check_hash=True)
        except Exception as err:  # no network: URLError, socket errors, HTTP errors...
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise WeightsUnavailable(
                f"ImageNet weights for {name} are not cached and could not be downloaded ({reason}): "
                f"put {cached.name} (from {weights.url}) into {cached.parent}, or pass a local file"
            ) from err
    return cached


def _adapt_conv(weight: Tensor, shape: torch.Size) -> Tensor | None:
    """A pretrained conv ``weight`` [O,I,k,k] reshaped for a model conv of ``shape`` [O,I',k',k']:
    the kernel shrunk to k' x k' by area (k' < k; each kernel keeps its sum) and a one-channel
    input spread over I' channels (or I channels summed into one). None when it cannot fit."""
    if weight.ndim != 4 or len(shape) != 4 or weight.shape[0] != shape[0]:
        return None
    out = weight
    if out.shape[1] != shape[1]:
        if out.shape[1] == 1:
            out = out.expand(-1, shape[1], -1, -1) / shape[1]
        elif shape[1] == 1:
            out = out.sum(1, keepdim=True)
        else:
            return None
    if out.shape[2:] != shape[2:]:
        k, k2 = out.shape[2], shape[2]
        if out.shape[2] != out.shape[3] or shape[2] != shape[3] or k2 > k:
            return None
        area = _area_matrix(k, k2).to(out.dtype)
        out = area @ out @ area.T
    return out.contiguous()


def _area_matrix(k: int, k2: int) -> Tensor:
    """[k2, k]: entry (i, j) = the part of input cell j that falls into output cell i when k cells
    are shrunk into k2 (each column sums to 1, so a kernel's sum is kept)."""
    edges = torch.arange(k2 + 1, dtype=torch.float64) * k / k2
    cells = torch.arange(k, dtype=torch.float64)
    lo = torch.maximum(edges[:-1, None], cells[None, :])
    hi = torch.minimum(edges[1:, None], cells[None, :] + 1)
    return (hi - lo).clamp_min(0)


def load_backbone_weights(net: nn.Module, path: str | Path, *, ignore: tuple[str, ...]) -> None:
    """Load a local state dict (raw, or under "state_dict"/"model"; "module." prefixes stripped)
    into ``net``, skipping the ``ignore`` keys (the classifier, whose class count differs); a first
    conv of another kernel size or channel count is adapted (``_adapt_conv``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"cannot read backbone weights {path}: {err}") from err
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{path} holds no state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    state = {k: v for k, v in state.items() if k not in ignore}
    own = {k: v for k, v in net.state_dict().items() if k not in ignore}
    for k in set(own) & set(state):
        if state[k].shape != own[k].shape and (adapted := _adapt_conv(state[k], own[k].shape)) is not None:
            state[k] = adapted
    optional = {k for k in own if k.endswith("num_batches_tracked")}
    missing = sorted(set(own) - set(state) - optional)
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    )
    problems = [
        f"{label} ({len(keys)}): {', '.join(keys[:5])}{', ...' if len(keys) > 5 else ''}"
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatch (file vs model)", mismatched),
        )
        if keys
    ]
    if problems:
        raise ValueError(f"weights {path} do not fit the backbone: " + "; ".join(problems))
    net.load_state_dict(state, strict=False)


def _gap() -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))


def _split_resnet(net: torchvision.models.ResNet, small_input: bool, official_stem: bool) -> BackboneSplit:
    if small_input and official_stem:
        raise ValueError("small_input and official_stem are exclusive stems")
    if small_input:
        net.conv1 = nn.Conv2d(3, 64, 3, SMALL_INPUT_STEM_STRIDE, 1, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        net.maxpool = nn.Identity()
    if official_stem:  # torchvision's ResNet uses self.relu only in the stem
        net.relu = nn.Identity()
        net.maxpool = nn.MaxPool2d(2, 2)
    trunk = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3)
    return BackboneSplit(net, trunk, net.layer4, _gap(), net.fc.in_features)


@register_backbone("resnet18")
def _resnet18(num_classes: int, small_input: bool, official_stem: bool) -> BackboneSplit:
    net = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    return _split_resnet(net, small_input, official_stem)


@register_backbone("resnet34")
def _resnet34(num_classes: int, small_input: bool, official_stem: bool) -> BackboneSplit:
    net = torchvision.models.resnet34(weights=None, num_classes=num_classes)
    return _split_resnet(net, small_input, official_stem)


@register_backbone("resnet50")
def _resnet50(num_classes: int, small_input: bool, official_stem: bool) -> BackboneSplit:
    net = torchvision.models.resnet50(weights=None, num_classes=num_classes)
    return _split_resnet(net, small_input, official_stem)


def _no_official_stem(name: str, official_stem: bool) -> None:
    if official_stem:
        raise ValueError(f"official_stem exists only for ResNets, not {name}")


@register_backbone("mobilenet_v2")
def _mobilenet_v2(num_classes: int, small_input: bool, official_stem: bool) -> BackboneSplit:
    """Last stage = features[14:]: the 160- and 320-channel inverted residuals + the 1x1 conv."""
    _no_official_stem("mobilenet_v2", official_stem)
    net = torchvision.models.mobilenet_v2(weights=None, num_classes=num_classes)
    if small_input:
        net.features[0][0].stride = (1, 1)
    return BackboneSplit(net, net.features[:14], net.features[14:], _gap(), net.last_channel)


def _conv_block(c_in: int, c_out: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class FerCNN(nn.Module):
    """Compact CPU-friendly CNN for ~48x48 faces (0.39 M parameters with 7 classes).

    4 blocks conv3x3-BN-ReLU (32, 64, 128, 256 channels), max-pool 2x2 after the first three;
    the 4th block is the last stage. [B,3,48,48] -> features [B,256,6,6] -> GAP -> linear [B,C].
    """

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (32, 64, 128, 256)) -> None:
        super().__init__()
        c_in = (3, *widths[:-1])
        last = len(widths) - 1
        self.features = nn.Sequential(*[_conv_block(i, o, pool=k < last) for k, (i, o) in enumerate(zip(c_in, widths))])
        self.pool = _gap()
        self.classifier = nn.Linear(widths[-1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)))


@register_backbone("fer_cnn")
def _fer_cnn(num_classes: int, small_input: bool, official_stem: bool) -> BackboneSplit:
    _no_official_stem("fer_cnn", official_stem)
    net = FerCNN(num_classes)
    return BackboneSplit(net, net.features[:-1], net.features[-1], net.pool, net.classifier.in_features)
