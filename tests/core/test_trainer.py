"""Trainer: outputs, training dynamics, exact resume (epoch end, mid-epoch, Ctrl-C), sampler."""

from __future__ import annotations

import json
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from dmue_core import precision
from dmue_core.config import DMUEConfig, TrainConfig
from dmue_core.model import DMUE
from dmue_core.trainer import EpochBatchSampler, TrainResult, batch_bounds, load_dynamics, train

NUM_CLASSES = 4
CLASS_SIZES = (20, 12, 10, 6)  # imbalanced: the balanced sampler has work to do
NUM_SAMPLES = sum(CLASS_SIZES)  # 48
BATCH = 16  # 3 steps per epoch
EPOCHS = 3
STEPS_PER_EPOCH = 3


class ToyFaces(Dataset):
    """Learnable 3x16x16 'faces': class c brightens channel c % 3 and one quadrant; a random
    contrast and pixel noise from the global torch RNG stand in for augmentations."""

    def __init__(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = [c for c, size in enumerate(CLASS_SIZES) for _ in range(size)]
        x = 0.5 * torch.randn(NUM_SAMPLES, 3, 16, 16, generator=g)
        for i, c in enumerate(self.labels):
            x[i, c % 3] += 1.0
            x[i, :, (c // 2) * 8 : (c // 2) * 8 + 8, (c % 2) * 8 : (c % 2) * 8 + 8] += 1.0
        self.x = x

    def __len__(self) -> int:
        return NUM_SAMPLES

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        x = self.x[i] * (0.9 + 0.2 * torch.rand(()))
        return x + 0.05 * torch.randn_like(x), self.labels[i], i


class InterruptAt(ToyFaces):
    """Raises SIGINT (as Ctrl-C would) while the item with call number ``at`` is fetched."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.calls, self.at = 0, at

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        self.calls += 1
        if self.calls == self.at:
            signal.raise_signal(signal.SIGINT)
        return super().__getitem__(i)


def make_model(seed: int = 0) -> DMUE:
    torch.manual_seed(seed)
    return DMUE(DMUEConfig(num_classes=NUM_CLASSES, backbone="fer_cnn", small_input=True, ramp_a=2))


def make_cfg(**overrides) -> TrainConfig:
    base = {
        "epochs": EPOCHS,
        "batch_size": BATCH,
        "lr_backbone": 1e-3,
        "lr_classifier": 1e-2,
        "weight_decay": 1e-4,
        "balanced_sampler": True,
        "seed": 7,
        "deterministic": True,
        "amp": False,
        "device": "cpu",
        "num_workers": 0,
        "ckpt_every": 2,
    }
    base.update(overrides)
    return TrainConfig(**base)


def max_weight_diff(a: DMUE, b: DMUE) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return max((sa[k].double() - sb[k].double()).abs().max().item() for k in sa if sa[k].numel())


def read_log(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "train_log.jsonl").read_text().splitlines()]


def assert_same_run(out_a: Path, out_b: Path) -> None:
    """Same per-epoch losses and the same dynamics arrays (NaN in the same places)."""
    log_a, log_b = read_log(out_a), read_log(out_b)
    assert [r["epoch"] for r in log_b] == list(range(EPOCHS))
    for ra, rb in zip(log_a, log_b, strict=True):
        assert rb["loss"] == pytest.approx(ra["loss"], abs=1e-6)
        assert rb["parts"] == pytest.approx(ra["parts"], abs=1e-6)
        assert rb["notes"] == ra["notes"] and rb["lr"] == ra["lr"]
    dyn_a, dyn_b = load_dynamics(out_a), load_dynamics(out_b)
    for name in dyn_a:
        np.testing.assert_allclose(
            dyn_b[name].astype(np.float64), dyn_a[name].astype(np.float64), atol=1e-6, err_msg=name
        )


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """2 shared cores: one intra-op thread avoids oversubscription stalls (~10x slower steps)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> tuple[DMUE, Path, TrainResult]:
    """EPOCHS epochs without interruption: the reference for every resume test."""
    out = tmp_path_factory.mktemp("straight")
    model = make_model()
    result = train(model, ToyFaces(), make_cfg(), out, resume=False, progress=False, log=lambda _: None)
    return model, out, result


def test_keep_snapshots_keeps_the_last_epochs_weights(straight, tmp_path: Path) -> None:
    model, _out, _result = straight
    train(
        make_model(), ToyFaces(), make_cfg(keep_snapshots=2), tmp_path, resume=False, progress=False, log=lambda _: None
    )
    snapshots = sorted((tmp_path / "checkpoints").glob("step_*.pt"), key=lambda p: int(p.stem[5:]))
    assert [p.name for p in snapshots] == [f"step_{STEPS_PER_EPOCH * e}.pt" for e in (EPOCHS - 1, EPOCHS)]
    last = torch.load(snapshots[-1], weights_only=True)
    assert last["epochs_done"] == EPOCHS
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in last["model"].items())  # the final weights


def test_short_run_writes_checkpoints_log_and_dynamics(straight) -> None:
    _model, out, result = straight
    assert result.completed and result.epochs_done == EPOCHS
    assert result.global_step == EPOCHS * STEPS_PER_EPOCH and result.images_per_s > 0
    assert (out / "checkpoints" / "last.pt").is_file()
    assert not list((out / "checkpoints").glob("step_*.pt"))  # no per-epoch snapshots unless asked

    log = read_log(out)
    assert [r["epoch"] for r in log] == list(range(EPOCHS))
    for record in log:
        assert np.isfinite(record["loss"])
        assert {"wce", "soft", "sp", "aux"} <= record["parts"].keys()
        assert {"ramp_up", "ramp_down"} <= record["ramps"].keys()
        assert record["images"] == NUM_SAMPLES and record["steps"] == STEPS_PER_EPOCH
        assert set(record["lr"]) == {"backbone", "classifier"}
    # the total rises with the ramp-up of the target terms (ramp_a=2); the unweighted CE parts
    # must fall on learnable data
    assert log[-1]["parts"]["aux"] < log[0]["parts"]["aux"]
    assert log[-1]["parts"]["wce"] < log[0]["parts"]["wce"]
    assert log[-1]["ramps"]["ramp_up"] > log[0]["ramps"]["ramp_up"]

    dyn = load_dynamics(out)
    assert dyn["target_prob_given"].shape == (EPOCHS, NUM_SAMPLES)
    assert dyn["target_prob_given"].dtype == np.float32
    assert dyn["latent"].shape == (EPOCHS, NUM_SAMPLES, NUM_CLASSES)
    assert dyn["latent"].dtype == np.float16
    assert dyn["uncertainty"].shape == dyn["seen"].shape == (EPOCHS, NUM_SAMPLES)
    seen = dyn["seen"]
    assert (seen.sum(axis=1) == NUM_SAMPLES).all()  # epoch length = dataset size
    assert (seen == 0).any() and (seen > 1).any()  # with replacement: some unseen, some repeated
    for name in ("target_prob_given", "uncertainty"):
        assert np.array_equal(np.isnan(dyn[name]), seen == 0), name
    assert np.array_equal(np.isnan(dyn["latent"]).all(axis=2), seen == 0)
    seen_mask = seen > 0
    probs, sigma = dyn["target_prob_given"][seen_mask], dyn["uncertainty"][seen_mask]
    assert ((probs > 0) & (probs < 1)).all() and ((sigma > 0) & (sigma < 1)).all()
    latent = dyn["latent"].astype(np.float32)
    labels = np.asarray(ToyFaces().labels)
    at_label = np.take_along_axis(latent, labels[None, :, None].repeat(EPOCHS, 0), axis=2)[..., 0]
    np.testing.assert_allclose(at_label[seen_mask], 0.0, atol=1e-3)
    np.testing.assert_allclose(latent.sum(axis=2)[seen_mask], 1.0, atol=1e-2)


def test_resume_at_epoch_end_matches_straight_run(straight, tmp_path: Path) -> None:
    model_a, out_a, _ = straight
    first = train(
        make_model(),
        ToyFaces(),
        make_cfg(),
        tmp_path,
        resume=False,
        progress=False,
        log=lambda _: None,
        max_steps=STEPS_PER_EPOCH,
    )
    assert not first.completed and first.epochs_done == 1
    assert len(read_log(tmp_path)) == 1
    model_b = make_model(seed=123)  # different init: everything must come from the checkpoint
    second = train(model_b, ToyFaces(), make_cfg(), tmp_path, progress=False, log=lambda _: None)
    assert second.completed and second.global_step == EPOCHS * STEPS_PER_EPOCH
    assert max_weight_diff(model_a, model_b) < 1e-5
    assert_same_run(out_a, tmp_path)


# mid-epoch 1; mid-epoch 2 after a ckpt_every save, with 2 loader workers (augmentations must not
# depend on the worker count: the reference ran with num_workers=0)
@pytest.mark.parametrize(("stop_after", "workers"), [(1, 0), (4, 2)])
def test_resume_mid_epoch_matches_straight_run(straight, tmp_path: Path, stop_after: int, workers: int) -> None:
    model_a, out_a, _ = straight
    cfg = make_cfg(num_workers=workers)
    first = train(
        make_model(), ToyFaces(), cfg, tmp_path, resume=False, progress=False, log=lambda _: None, max_steps=stop_after
    )
    assert not first.completed and first.global_step == stop_after
    model_b = make_model(seed=99)
    train(model_b, ToyFaces(), cfg, tmp_path, progress=False, log=lambda _: None)
    assert max_weight_diff(model_a, model_b) < 1e-5
    assert_same_run(out_a, tmp_path)


def test_ctrl_c_saves_and_resume_matches_straight_run(straight, tmp_path: Path) -> None:
    model_a, out_a, _ = straight
    messages: list[str] = []
    interrupted = InterruptAt(at=BATCH * 4 + 3)  # during the 5th batch (epoch 2, step 2)
    handler_before = signal.getsignal(signal.SIGINT)
    first = train(make_model(), interrupted, make_cfg(), tmp_path, resume=False, progress=False, log=messages.append)
    assert not first.completed and first.global_step == 5
    assert any("stop requested" in m for m in messages)
    assert signal.getsignal(signal.SIGINT) is handler_before  # handler restored
    model_b = make_model(seed=5)
    train(model_b, ToyFaces(), make_cfg(), tmp_path, progress=False, log=lambda _: None)
    assert max_weight_diff(model_a, model_b) < 1e-5
    assert_same_run(out_a, tmp_path)


def test_more_epochs_on_resume_extend_log_and_dynamics(tmp_path: Path) -> None:
    train(make_model(), ToyFaces(), make_cfg(epochs=1), tmp_path, resume=False, progress=False, log=lambda _: None)
    assert load_dynamics(tmp_path)["latent"].shape == (1, NUM_SAMPLES, NUM_CLASSES)
    messages: list[str] = []
    result = train(make_model(), ToyFaces(), make_cfg(epochs=2), tmp_path, progress=False, log=messages.append)
    assert result.completed and result.global_step == 2 * STEPS_PER_EPOCH
    assert any("changed train config" in m and "epochs" in m for m in messages)
    assert [r["epoch"] for r in read_log(tmp_path)] == [0, 1]
    dyn = load_dynamics(tmp_path)
    assert dyn["seen"].shape == (2, NUM_SAMPLES) and (dyn["seen"].sum(axis=1) == NUM_SAMPLES).all()


def test_resume_refuses_another_model_config(tmp_path: Path) -> None:
    train(make_model(), ToyFaces(), make_cfg(), tmp_path, resume=False, progress=False, log=lambda _: None, max_steps=1)
    other = DMUE(DMUEConfig(num_classes=NUM_CLASSES, backbone="fer_cnn", small_input=True, ramp_a=5))
    with pytest.raises(ValueError, match="model config"):
        train(other, ToyFaces(), make_cfg(), tmp_path, progress=False, log=lambda _: None)


def test_rejects_unlabeled_rows(tmp_path: Path) -> None:
    data = ToyFaces()
    data.labels = [-1] + data.labels[1:]
    with pytest.raises(ValueError, match="unlabeled"):
        train(make_model(), data, make_cfg(), tmp_path, resume=False, progress=False)


# ------------------------------------------------------------------------------- sampler
def test_balanced_sampler_draws_classes_equally_with_replacement() -> None:
    labels = [0] * 900 + [1] * 90 + [2] * 10
    sampler = EpochBatchSampler(labels, 100, balanced=True, seed=1)
    order = sampler.global_order(0)
    assert len(order) == len(labels)
    per_class = Counter(labels[i] for i in order)
    assert all(abs(per_class[c] / len(order) - 1 / 3) < 0.05 for c in range(3))
    assert len(set(order.tolist())) < len(order)  # with replacement
    assert not np.array_equal(order, sampler.global_order(1))  # a new draw per epoch
    assert np.array_equal(order, EpochBatchSampler(labels, 100, balanced=True, seed=1).global_order(0))


def test_shuffled_sampler_is_a_permutation_and_resumes_at_a_step() -> None:
    sampler = EpochBatchSampler(list(range(10)) * 5, 8, balanced=False, seed=3)
    sampler.set_epoch(2)
    batches = list(sampler)
    assert sorted(idx for b in batches for _, _, idx in b) == list(range(50))
    assert [len(b) for b in batches] == [8] * 6 + [2]  # a last batch of 2 stays (see below)
    sampler.set_epoch(2, start_step=4)
    assert list(sampler) == batches[4:] and len(sampler) == 3


def test_last_batch_of_one_is_merged_into_the_previous_one() -> None:
    assert batch_bounds(17, 8) == [(0, 8), (8, 17)]
    assert batch_bounds(18, 8) == [(0, 8), (8, 16), (16, 18)]
    assert batch_bounds(16, 8) == [(0, 8), (8, 16)]


@pytest.mark.parametrize("balanced", [True, False])
def test_rank_shards_are_disjoint_and_union_to_the_single_process_batches(balanced: bool) -> None:
    labels = [i % 4 for i in range(40)]
    single = list(EpochBatchSampler(labels, 8, balanced=balanced, seed=0))
    shards = [list(EpochBatchSampler(labels, 8, balanced=balanced, seed=0, rank=r, world_size=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == len(single) == 5
    for step, batch in enumerate(single):
        positions = [{p for _, p, _ in shards[r][step]} for r in range(2)]
        assert not positions[0] & positions[1]
        assert sorted(shards[0][step] + shards[1][step]) == sorted(batch)


@pytest.mark.parametrize(
    ("amp", "native", "expected"),
    [
        ("auto", True, torch.bfloat16),
        ("auto", False, None),
        (True, False, torch.bfloat16),
        (False, True, None),
    ],
)
def test_cpu_mixed_precision_is_bf16_where_native_or_asked(monkeypatch, amp, native, expected) -> None:
    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    assert precision.training_autocast(torch.device("cpu"), amp) == (expected, False)


def test_cpu_bf16_training_keeps_float32_weights_and_tracks_the_float32_run(straight, tmp_path: Path) -> None:
    """amp=True on CPU: the same run in bfloat16 autocast. Its losses differ from the float32
    run's (autocast took effect) but stay close, and the weights stay float32."""
    model = make_model()
    train(model, ToyFaces(), make_cfg(amp=True), tmp_path, resume=False, progress=False, log=lambda _: None)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    fp32, bf16 = [r["loss"] for r in read_log(straight[1])], [r["loss"] for r in read_log(tmp_path)]
    assert all(np.isfinite(bf16))
    assert fp32 != pytest.approx(bf16, abs=1e-6)
    assert bf16 == pytest.approx(fp32, abs=0.1 * max(fp32))
