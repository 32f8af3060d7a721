"""The self-supervised (SimCLR) warm start: its loss, its views, its weights file and its resume."""

import math
from types import SimpleNamespace

import pytest
import torch

from dmue_core import DMUE, DMUEConfig, selfsup
from dmue_core.selfsup import SelfSupConfig, augment, nt_xent, pretrain

FAST = {"batch_size": 16, "amp": False, "device": "cpu", "ckpt_every": 0}


def _faces(n: int = 32, size: int = 32) -> torch.Tensor:
    """uint8 [n, 1, size, size]: a bright ellipse per face, of random place, size and shade, on noise."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    out = torch.rand(n, 1, size, size, generator=g) * 60
    for i in range(n):
        cx, cy, rx, ry = (
            torch.rand(4, generator=g) * torch.tensor([1.0, 1.0, 0.5, 0.5]) + torch.tensor([-0.5, -0.5, 0.2, 0.2])
        ).tolist()
        inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
        out[i, 0][inside] += 100 + 90 * float(torch.rand(1, generator=g))
    return out.clamp(0, 255).to(torch.uint8)


def test_nt_xent_matches_its_formula_and_prefers_matching_views():
    t = 0.5
    z = torch.eye(2, 8)  # two faces whose two views agree and are orthogonal to the other face's
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2))  # partner 1/t; the other face's views 0
    assert nt_xent(z, z.clone(), t).item() == pytest.approx(expected, rel=1e-5)
    assert nt_xent(z, z.flip(0), t) > nt_xent(z, z, t)  # partners swapped: the loss rises


def test_views_are_seeded_random_and_normalised():
    faces = _faces(4)
    cfg = SelfSupConfig(epochs=1)
    view = lambda seed: augment(faces, cfg, torch.Generator().manual_seed(seed))  # noqa: E731
    a, b = view(1), view(2)
    assert a.shape == (4, 3, 21, 21) and a.min() >= -1 and a.max() <= 1  # two thirds of the 32-pixel faces
    torch.testing.assert_close(a, view(1))
    assert not torch.allclose(a, b)


def test_smaller_views_resample_the_same_crop():
    faces = _faces(4)
    view = lambda side, seed: augment(  # noqa: E731
        faces, SelfSupConfig(epochs=1, view_size=side), torch.Generator().manual_seed(seed)
    )
    small, full, other = view(16, 1), view(32, 1), view(32, 2)
    assert small.shape == (4, 3, 16, 16) and small.min() >= -1 and small.max() <= 1
    up = torch.nn.functional.interpolate(small, size=32, mode="bilinear", align_corners=False)
    # the 16-pixel view is the same crop, flip and jitter as the 32-pixel one at half the resolution
    assert (up - full).abs().mean() < 0.5 * (other - full).abs().mean()
    with pytest.raises(ValueError, match="view_size"):
        SelfSupConfig(epochs=1, view_size=4)


def test_step_time_leaves_out_the_warm_up_steps(monkeypatch):
    # fake steps: the first four slow (a cold process), then 0.1 s; only the later ones may count
    durations = iter([9.0, 9.0, 9.0, 9.0, 0.1, 0.1, 0.2, 0.1, 0.1])
    clock = {"now": 0.0}
    monkeypatch.setattr(
        selfsup._Stepper, "step", lambda self, *a: clock.__setitem__("now", clock["now"] + next(durations))
    )
    monkeypatch.setattr(selfsup, "time", SimpleNamespace(perf_counter=lambda: clock["now"]))  # selfsup's clock only
    cfg = SelfSupConfig(epochs=1, **FAST)
    assert selfsup.seconds_per_step(_faces(16), cfg) == pytest.approx(0.1)
    with pytest.raises(StopIteration):  # every step taken: 4 untimed, 5 timed
        next(durations)


def test_loss_falls_and_the_weights_load_through_weights(tmp_path):
    cfg = SelfSupConfig(epochs=12, **FAST)
    result = pretrain(_faces(), cfg, tmp_path, progress=False, log=lambda _: None)
    assert result.completed and result.epochs_done == 12 and len(result.losses) == 12
    first, last = result.losses[0], sum(result.losses[-3:]) / 3
    assert last < 0.9 * first, result.losses
    saved = torch.load(result.weights, weights_only=True)
    assert saved["selfsup"] == cfg.to_dict() and saved["backbone"]["name"] == "fer_cnn"
    assert not any(k.startswith("classifier") for k in saved["model"])  # the classifier is not part of the start
    model = DMUE(DMUEConfig(num_classes=3, backbone="fer_cnn", small_input=True, weights=str(result.weights)))
    trunk = model.trunk.state_dict()
    assert trunk and all(torch.equal(v, saved["model"][f"features.{k}"]) for k, v in trunk.items())
    last_stage = model.target_stage.state_dict()
    assert all(torch.equal(v, saved["model"][f"features.3.{k}"]) for k, v in last_stage.items())


def test_a_stopped_pretraining_resumes_as_if_uninterrupted(tmp_path):
    faces, cfg = _faces(), SelfSupConfig(epochs=2, **FAST)  # 2 steps per epoch
    whole = pretrain(faces, cfg, tmp_path / "whole", progress=False, log=lambda _: None)
    stopped = pretrain(faces, cfg, tmp_path / "split", progress=False, log=lambda _: None, max_steps=3)
    assert not stopped.completed and not stopped.weights.exists()
    messages = []
    resumed = pretrain(faces, cfg, tmp_path / "split", progress=False, log=messages.append)
    assert resumed.completed and any("resumed the pretraining" in m for m in messages)
    a, b = (torch.load(r.weights, weights_only=True)["model"] for r in (whole, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.losses == whole.losses
    with pytest.raises(ValueError, match="another number of faces"):
        pretrain(faces[:20], cfg, tmp_path / "split", progress=False, log=lambda _: None)


@pytest.mark.parametrize(("ckpt_every", "saves"), [(5, [5, 10, 12]), (0, list(range(1, 13)))])
def test_checkpoints_follow_the_step_cadence_not_every_epoch(tmp_path, monkeypatch, ckpt_every, saves):
    # 16 faces in batches of 16: one step an epoch, so an epoch-end checkpoint would be one a step
    written = []
    save = selfsup._Run._save
    monkeypatch.setattr(selfsup._Run, "_save", lambda run: (written.append(run.epoch), save(run)))
    cfg = SelfSupConfig(epochs=12, **{**FAST, "ckpt_every": ckpt_every})
    assert pretrain(_faces(16), cfg, tmp_path, progress=False, log=lambda _: None).completed
    assert written == saves
