"""Cross-fitting: stratified folds, their record in the run directory, and fold models scoring
exactly the faces they did not train on."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from curate.cli import main
from curate.cross_fit import assign_folds, budget, folds_for, training_table
from curate.data.load import load_table
from curate.data.synthetic import generate
from curate.jobs import score_job
from curate.records import read_metadata
from curate.run_config import RunConfig
from curate.scoring.pipeline import score_table
from curate.scoring.scores import ScoreConfig
from dmue_core.config import DMUEConfig
from dmue_core.model import DMUE

FAST = ["--epochs", "1", "--ramp-a", "1", "--workers", "0", "--image-size", "32", "--no-load"]


def test_folds_are_stratified_seeded_and_cover_every_face():
    labels = np.repeat(np.arange(5), [3, 10, 41, 7, 2])
    fold = assign_folds(labels, 4, seed=1)
    assert set(fold) == {0, 1, 2, 3}
    for c in range(5):
        per_fold = np.bincount(fold[labels == c], minlength=4)
        assert per_fold.max() - per_fold.min() <= 1, (c, per_fold)
    sizes = np.bincount(fold, minlength=4)
    assert sizes.max() - sizes.min() <= 1  # class remainders spread over the folds
    assert np.array_equal(fold, assign_folds(labels, 4, seed=1))
    assert not np.array_equal(fold, assign_folds(labels, 4, seed=2))
    with pytest.raises(ValueError, match="at least 2 folds"):
        assign_folds(labels, 1, seed=0)


def test_folds_file_is_reread_and_refuses_other_faces(tmp_path):
    table = pd.DataFrame({"sample_id": [f"s{i}" for i in range(20)], "label": np.arange(20) % 3})
    first = folds_for(tmp_path, table, 2, seed=0)
    shuffled = table.sample(frac=1, random_state=0).reset_index(drop=True)
    again = folds_for(tmp_path, shuffled, 2, seed=5)  # read back: same faces, any row order or seed
    assert [set(table.sample_id[f.rows]) for f in first] == [set(shuffled.sample_id[f.rows]) for f in again]
    assert len(training_table(table, first[0])) == 20 - len(first[0].rows)
    with pytest.raises(ValueError, match="folds.json was written for 20 faces in 2 folds"):
        folds_for(tmp_path, table, 3, seed=0)
    with pytest.raises(ValueError, match="delete"):
        folds_for(tmp_path, table.iloc[:10], 2, seed=0)
    assert "48,000 training images, 4.0x one training" in budget(1000, 4, 12)
    assert "1 of 2 fold models (the count from the 500 faces they judge)" in budget(1000, 2, 12, 1)
    assert "18,000 training images, 1.5x one training" in budget(1000, 2, 12, 1)


def test_cross_fitted_run_trains_folds_on_the_other_faces_and_keeps_the_full_models_scores(tmp_path):
    generate(90, tmp_path / "data", seed=4, noise_rate=0.2)
    args = [tmp_path / "data" / "labels.csv", "--path-column", "path", "--label-column", "label"]
    run = tmp_path / "run"
    res = CliRunner().invoke(main, ["run", *[str(a) for a in args], "--out", str(run), "--cross-fit", "2", *FAST])
    assert res.exit_code == 0, res.output
    assert "cross-fitting: the model on all 90 faces and 2 fold models" in res.output
    assert "fold 2/2: training on the" in res.output
    assert RunConfig.load(run / "config.yaml").cross_fit == 2
    assert read_metadata(run / "scores.parquet")["cross_fit"] == 2
    fold_of = json.loads((run / "folds" / "folds.json").read_text())["fold"]
    table = load_table(str(args[0]), path_column="path", label_column="label")
    for i in range(2):
        trained_on = json.loads((run / "folds" / f"fold{i}" / "faces.json").read_text())["faces"]
        assert trained_on == sum(f != i for f in fold_of.values())  # the fold model never saw its own rows
    plain = score_job(run, table, tmp_path / "plain.parquet", held_out=[], progress=False).path
    ours, full = pd.read_parquet(run / "scores.parquet"), pd.read_parquet(plain)
    for column in ("mislabel_score", "ambiguity_score"):  # the order of the queue is the full model's
        np.testing.assert_allclose(ours[column], full[column], atol=1e-6)
    res = CliRunner().invoke(main, ["run", *[str(a) for a in args], "--out", str(run), "--cross-fit", "2", *FAST])
    assert res.exit_code == 0, res.output
    assert res.output.count("already trained") == 3  # resumed: the full model and both folds reused
    res = CliRunner().invoke(main, ["run", *[str(a) for a in args], "--out", str(run), "--cross-fit", "1", *FAST])
    assert res.exit_code != 0 and "at least 2 folds" in res.output
    again = tmp_path / "again.parquet"
    res = CliRunner().invoke(main, ["score", str(run), *[str(a) for a in args], "--out", str(again)])
    assert res.exit_code == 0, res.output
    assert "its 2 fold models" in res.output  # the run's own faces: said, and the folds set the count again
    np.testing.assert_array_equal(pd.read_parquet(again)["verdict"], ours["verdict"])
    subset = tmp_path / "data" / "subset.csv"
    pd.read_csv(args[0]).iloc[:60].to_csv(subset, index=False)
    res = CliRunner().invoke(
        main, ["score", str(run), str(subset), *[str(a) for a in args[1:]], "--out", str(tmp_path / "s.parquet")]
    )
    assert res.exit_code == 0, res.output
    assert "fold models" not in res.output  # other faces: the full model alone


def test_one_fold_model_of_two_sets_the_count_from_its_own_faces_and_a_rerun_adds_the_other(tmp_path):
    generate(90, tmp_path / "data", seed=4, noise_rate=0.2)
    args = [str(tmp_path / "data" / "labels.csv"), "--path-column", "path", "--label-column", "label"]
    run = tmp_path / "run"
    res = CliRunner().invoke(main, ["run", *args, "--out", str(run), "--fold-models", "1", *FAST])
    assert res.exit_code != 0 and "needs --cross-fit K" in res.output
    res = CliRunner().invoke(main, ["run", *args, "--out", str(run), "--cross-fit", "2", "--fold-models", "3", *FAST])
    assert res.exit_code != 0 and "only 2 folds" in res.output
    res = CliRunner().invoke(main, ["run", *args, "--out", str(run), "--cross-fit", "2", "--fold-models", "1", *FAST])
    assert res.exit_code == 0, res.output
    assert "1 of 2 fold models" in res.output and "fold 2/2" not in res.output
    assert (run / "folds" / "fold0" / "model.pt").exists() and not (run / "folds" / "fold1").exists()
    saved = json.loads((run / "folds" / "folds.json").read_text())
    judged = sum(f == 0 for f in saved["fold"].values())
    meta = read_metadata(run / "scores.parquet")
    assert (saved["models"], meta["cross_fit"], meta["flag_count"]["folds_faces"]) == (1, 1, judged)
    assert RunConfig.load(run / "config.yaml").cross_fit_models == 1
    res = CliRunner().invoke(main, ["score", str(run), *args, "--out", str(tmp_path / "again.parquet")])
    assert res.exit_code == 0, res.output
    assert f"its fold model ({run / 'folds'}) estimates how many to flag (on the {judged} faces it did" in res.output
    assert read_metadata(tmp_path / "again.parquet")["flag_count"] == meta["flag_count"]
    res = CliRunner().invoke(main, ["run", *args, "--out", str(run), "--cross-fit", "2", *FAST])
    assert res.exit_code == 0, res.output
    assert res.output.count("already trained") == 2 and "fold 2/2" in res.output  # only the second fold trains
    meta = read_metadata(run / "scores.parquet")
    assert meta["cross_fit"] == 2 and "folds_faces" not in meta["flag_count"]
    assert json.loads((run / "folds" / "folds.json").read_text())["fold"] == saved["fold"]  # the same folds


def test_held_out_outputs_set_only_the_flag_count(tmp_path):
    """score_table with held-out models: the scores stay the full model's; the noise estimate (and so
    the share flagged) is the larger of the held-out outputs' and the full model's own, both
    recorded, and equals the full model's own when the held-out model is the full model itself."""
    generate(80, tmp_path / "data", seed=5, noise_rate=0.3)
    table = load_table(str(tmp_path / "data" / "labels.csv"), path_column="path", label_column="label")
    classes = list(table.attrs["classes"])
    torch.manual_seed(0)
    model = DMUE(DMUEConfig(num_classes=len(classes), backbone="fer_cnn", small_input=True))
    other = DMUE(DMUEConfig(num_classes=len(classes), backbone="fer_cnn", small_input=True))
    rows = np.arange(len(table))
    # untrained models: without the latent term (0 at the given label) not every face is another class
    cfg = ScoreConfig(tta="none", w_latent=0.0)
    opts = {"image_size": 32, "model_classes": classes, "progress": False, "score_cfg": cfg}
    alone = score_table(model, table, tmp_path / "a.parquet", **opts)
    itself = score_table(model, table, tmp_path / "b.parquet", held_out=[(model, rows)], **opts)
    stranger = score_table(model, table, tmp_path / "c.parquet", held_out=[(other, rows)], **opts)
    a, b, c = (pd.read_parquet(tmp_path / f"{x}.parquet") for x in "abc")
    assert (a.verdict == b.verdict).all() and alone.rule.noise_rate == itself.rule.noise_rate
    np.testing.assert_allclose(a.mislabel_score, c.mislabel_score, atol=1e-6)
    counts = [read_metadata(tmp_path / f"{x}.parquet")["flag_count"] for x in "abc"]
    assert counts[0] == {"from": "model", "model": alone.rule.noise_rate["overall"]}
    assert counts[1]["folds"] == counts[1]["model"] and counts[1]["from"] == "folds"
    assert counts[2]["folds"] != counts[2]["model"]  # an untrained stranger sees other classes
    larger = max(counts[2]["folds"], counts[2]["model"])
    assert stranger.rule.noise_rate["overall"] == pytest.approx(larger)
    assert counts[2]["from"] == ("folds" if counts[2]["folds"] >= counts[2]["model"] else "model")
    assert (c.verdict == "likely_mislabeled").mean() == pytest.approx(larger, abs=1 / len(c))
