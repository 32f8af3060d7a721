"""Size-aware defaults: chosen from the number of faces only where the user left them unset, once."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from curate.cli import main
from curate.data.synthetic import generate
from curate.run_config import RunConfig, resolve_config
from curate.sizing import (
    INIT_FROM_EPOCHS,
    MAX_PRETRAIN_EPOCHS,
    MIN_JUDGED_FACES,
    SIZE_AWARE,
    TABLE,
    apply,
    fold_models,
    row_for,
    start_sizes,
)

RESOLVE_ARGS = ("config_file", "backbone", "weights", "init_from", "epochs", "batch_size", "image_size",
                "small_input", "ramp_a", "aux_fraction", "balanced_sampler", "device", "amp", "num_workers",
                "seed", "deterministic")  # fmt: skip


def resolved(**flags) -> RunConfig:
    return resolve_config({"dataset": "x"}, **{**dict.fromkeys(RESOLVE_ARGS), "faithful": False, **flags})


def test_rows_cover_every_size_and_shrink_the_budget_as_faces_grow():
    assert row_for(1) is TABLE[0] and row_for(10**7) is TABLE[-1]
    bounds = [r.below for r in TABLE[:-1]]
    for below in bounds:
        assert row_for(below - 1) is not row_for(below)
    epochs = [r.epochs for r in TABLE]
    assert epochs == sorted(epochs, reverse=True)
    assert all(r.cross_fit == 0 or r.cross_fit >= 2 for r in TABLE)
    # the fold models' training, in trainings of the full model, never grows with the faces
    sizes = [60, 299, 300, 1000, 1499, 1500, 2000, 2999, 3000, 5000, 9999, 10_000, 10**6]
    cost = []
    for n in sizes:
        k = row_for(n).cross_fit
        cost.append((fold_models(n, k) or k) * (k - 1) / k)
    assert cost == sorted(cost, reverse=True) and cost[-1] < cost[0]


@pytest.mark.parametrize("n", [60, 999, 1499, 1500, 1501, 2000, 2999, 3000, 4999, 9999, 10_000, 28_558])
def test_the_fewest_fold_models_whose_folds_hold_enough_faces_train(n):
    k = row_for(n).cross_fit
    m = fold_models(n, k)
    assert 0 <= m < k
    if m:  # enough held-out faces for the count, and one model fewer would not give them
        assert m * n / k >= MIN_JUDGED_FACES > (m - 1) * n / k
    else:  # every fold model is needed (or even all of them judge fewer faces)
        assert (k - 1) * n / k < MIN_JUDGED_FACES


def test_apply_fills_only_the_unset_settings_once():
    cfg = resolved()
    assert cfg.size_aware == list(SIZE_AWARE)
    lines: list[str] = []
    chosen = apply(cfg, 200, lines.append)
    row = row_for(200)
    assert chosen == {"train.epochs": row.epochs, "model.ramp_a": round(row.epochs / 3, 2), "cross_fit": row.cross_fit}
    assert (cfg.train.epochs, cfg.cross_fit, cfg.size_aware) == (row.epochs, row.cross_fit, [])
    assert "size-aware defaults for 200 faces" in lines[0]
    assert apply(cfg, 50_000, lines.append) == {} and cfg.train.epochs == row.epochs  # chosen once
    explicit = resolved(epochs=7)
    assert explicit.size_aware == ["pretrain.epochs", "model.ramp_a", "cross_fit"]
    apply(explicit, 200, lines.append)
    assert (explicit.train.epochs, explicit.model.ramp_a) == (7, round(7 / 3, 2))
    both = resolved(epochs=7, ramp_a=1.5)
    apply(both, 200, lines.append)
    assert (both.train.epochs, both.model.ramp_a) == (7, 1.5)


def test_larger_sets_train_fewer_fold_models_and_the_config_checks_the_fold_models():
    cfg = resolved()
    chosen = apply(cfg, 20_000, lambda _: None)
    assert (cfg.cross_fit, cfg.cross_fit_models) == (row_for(20_000).cross_fit, 1) == (2, 1)
    assert chosen["cross_fit_models"] == 1
    small = resolved()
    assert "cross_fit_models" not in apply(small, 1000, lambda _: None) and small.cross_fit_models == 0
    for n, models in ((2000, 2), (5000, 1)):  # 3 folds of which 2 / 1 train: 1,333 / 1,667 faces judged
        mid = resolved()
        assert apply(mid, n, lambda _: None)["cross_fit_models"] == mid.cross_fit_models == models
        assert mid.cross_fit == 3
    again = RunConfig.from_dict(cfg.to_dict())
    assert (again.cross_fit, again.cross_fit_models) == (2, 1)
    for k, m, message in ((0, 1, "without cross-fitting"), (2, 3, "only 2 folds"), (3, -1, "negative")):
        with pytest.raises(ValueError, match=message):
            RunConfig.from_dict({**cfg.to_dict(), "cross_fit": k, "cross_fit_models": m})


def test_the_self_supervised_start_is_chosen_where_its_row_has_one_and_no_other_start_is_given():
    row = row_for(2000)
    assert row.pretrain_passes and row.warm_epochs and not row_for(299).pretrain_passes
    cfg = resolved()
    chosen = apply(cfg, 2000, lambda _: None)
    epochs = min(MAX_PRETRAIN_EPOCHS, -(-row.pretrain_passes // 2000))
    assert chosen["pretrain.epochs"] == cfg.pretrain.epochs == epochs
    assert chosen["train.epochs"] == cfg.train.epochs == row.warm_epochs
    assert cfg.model.ramp_a == round(row.warm_epochs / 3, 2)
    big = resolved()
    apply(big, row_for(2000).below - 1, lambda _: None)  # more faces: fewer epochs for the same faces passed
    assert big.pretrain.epochs == -(-row.pretrain_passes // (row_for(2000).below - 1)) < epochs
    wide = resolved()  # the budget is in faces: the same epochs at another batch size
    wide.pretrain = replace(wide.pretrain, batch_size=256)
    apply(wide, row_for(2000).below - 1, lambda _: None)
    assert wide.pretrain.epochs == big.pretrain.epochs
    for flags in ({"weights": "start.pt"}, {"pretrain_epochs": 0}):  # another start, or the start turned off
        other = resolved(**flags)
        assert "pretrain.epochs" not in apply(other, 2000, lambda _: None)
        assert (other.pretrain.epochs, other.train.epochs) == (0, row.epochs)
    mine = resolved(pretrain_epochs=120)  # the user's own start still gets the row's epochs after a start
    apply(mine, 2000, lambda _: None)
    assert (mine.pretrain.epochs, mine.train.epochs) == (120, row.warm_epochs)
    small = resolved()
    assert "pretrain.epochs" not in apply(small, 200, lambda _: None) and small.pretrain.epochs == 0


@pytest.mark.parametrize(("n", "start"), [(2999, True), (3000, True), (5999, True), (6000, False), (28_558, False)])
def test_the_start_reaches_up_to_6000_faces_with_the_rows_epochs_after_it(n, start):
    cfg = resolved()
    chosen = apply(cfg, n, lambda _: None)
    row = row_for(n)
    assert ("pretrain.epochs" in chosen) is start
    assert cfg.pretrain.epochs == (-(-row.pretrain_passes // n) if start else 0)  # the same faces passed at any size
    assert cfg.train.epochs == (row.warm_epochs or row.epochs)
    if start and n >= 3000:  # from 3,000 faces the epochs after a start are those from scratch
        unset = resolved(pretrain_epochs=0)
        apply(unset, n, lambda _: None)
        assert unset.train.epochs == cfg.train.epochs == 20


def test_config_files_keep_their_values(tmp_path):
    cfg = resolved()
    cfg.save(tmp_path / "fresh.yaml")
    assert RunConfig.load(tmp_path / "fresh.yaml").size_aware == list(SIZE_AWARE)  # not chosen yet: still open
    d = cfg.to_dict()
    del d["size_aware"]
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(d))
    assert RunConfig.load(tmp_path / "old.yaml").size_aware == []  # a file without the key is explicit
    with pytest.raises(ValueError, match="unknown settings"):
        RunConfig(size_aware=["train.lr"])


def test_a_small_run_records_its_chosen_values_and_a_resume_replays_them(tmp_path):
    generate(60, tmp_path / "data", seed=3, noise_rate=0.2)
    args = ["run", str(tmp_path / "data" / "labels.csv"), "--path-column", "path", "--label-column", "label",
            "--out", str(tmp_path / "run"), "--workers", "0", "--image-size", "32", "--no-load"]  # fmt: skip
    res = CliRunner().invoke(main, [*args, "--ramp-a", "1"])
    assert res.exit_code == 0, res.output
    row = row_for(60)
    assert f"size-aware defaults for 60 faces: train.epochs {row.epochs}, cross_fit {row.cross_fit} (" in res.output
    cfg = RunConfig.load(tmp_path / "run" / "config.yaml")
    assert (cfg.train.epochs, cfg.model.ramp_a, cfg.cross_fit, cfg.size_aware) == (row.epochs, 1.0, row.cross_fit, [])
    assert len(list((tmp_path / "run" / "folds").glob("fold*/model.pt"))) == row.cross_fit
    res = CliRunner().invoke(main, args)  # resumed: the run's own recorded values, nothing chosen again
    assert res.exit_code == 0, res.output
    assert "size-aware defaults" not in res.output
    assert res.output.count("already trained") == 1 + row.cross_fit


def test_train_alone_chooses_no_cross_fitting_it_would_not_do(tmp_path):
    generate(60, tmp_path / "data", seed=3, noise_rate=0.2)
    res = CliRunner().invoke(main, ["train", str(tmp_path / "data" / "labels.csv"), "--path-column", "path",
                                    "--label-column", "label", "--out", str(tmp_path / "run"), "--workers", "0",
                                    "--image-size", "32", "--epochs", "1"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "size-aware defaults for 60 faces: model.ramp_a 0.33 (" in res.output
    cfg = RunConfig.load(tmp_path / "run" / "config.yaml")
    assert (cfg.cross_fit, cfg.size_aware) == (0, [])
    assert not (tmp_path / "run" / "folds").exists()


def test_the_start_sizes_stated_in_help_are_those_the_table_chooses_a_start_for():
    lo, hi = start_sizes()
    for n, start in ((lo - 1, False), (lo, True), (hi, True), (hi + 1, False)):
        assert ("pretrain.epochs" in apply(resolved(), n, lambda _: None)) is start


@pytest.mark.parametrize("n", [200, 2000, 5000, 8000, 28_558])
def test_a_start_from_an_earlier_labelled_model_trains_the_same_few_epochs_at_every_size(n):
    cfg = resolved(init_from=Path("runs/big"))
    chosen = apply(cfg, n, lambda _: None)
    assert "pretrain.epochs" not in chosen and cfg.pretrain.epochs == 0
    assert chosen["train.epochs"] == cfg.train.epochs == INIT_FROM_EPOCHS < row_for(min(n, 9999)).epochs
    assert cfg.model.ramp_a == round(INIT_FROM_EPOCHS / 3, 2)
    mine = resolved(init_from=Path("runs/big"), epochs=20)  # a flag still wins
    apply(mine, n, lambda _: None)
    assert mine.train.epochs == 20
