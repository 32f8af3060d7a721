"""Cross-fitting: stratified folds, their record in the run directory, and fold models scoring
exactly the faces they did not train on."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from curate.cli import main
from curate.cross_fit import assign_folds, budget, folds_for, training_table
from curate.data.load import load_table
from curate.data.synthetic import generate
from curate.jobs import score_job
from curate.records import read_metadata
from curate.run_config import RunConfig

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


def test_cross_fitted_run_scores_each_face_with_the_model_that_did_not_train_on_it(tmp_path):
    generate(90, tmp_path / "data", seed=4, noise_rate=0.2)
    args = [tmp_path / "data" / "labels.csv", "--path-column", "path", "--label-column", "label"]
    run = tmp_path / "run"
    res = CliRunner().invoke(main, ["run", *[str(a) for a in args], "--out", str(run), "--cross-fit", "2", *FAST])
    assert res.exit_code == 0, res.output
    assert "cross-fitting: the model on all 90 faces and 2 fold models" in res.output
    assert "fold 2/2: training on the" in res.output
    assert RunConfig.load(run / "config.yaml").cross_fit == 2
    scores = pd.read_parquet(run / "scores.parquet")
    assert read_metadata(run / "scores.parquet")["cross_fit"] == 2
    fold_of = json.loads((run / "folds" / "folds.json").read_text())["fold"]
    table = load_table(str(args[0]), path_column="path", label_column="label")
    for i in range(2):
        rows = np.flatnonzero([fold_of[s] == i for s in table.sample_id])
        own = table.iloc[rows].reset_index(drop=True)
        own.attrs = dict(table.attrs)
        alone = pd.read_parquet(
            score_job(run / "folds" / f"fold{i}", own, tmp_path / f"f{i}.parquet", progress=False).path
        )
        ours = scores.set_index("sample_id").loc[alone.sample_id]
        np.testing.assert_allclose(np.stack(ours.target_probs), np.stack(alone.target_probs), atol=1e-5)
        faces = json.loads((run / "folds" / f"fold{i}" / "faces.json").read_text())["faces"]
        assert faces == len(table) - len(rows)  # the fold model never saw its own rows
    res = CliRunner().invoke(main, ["run", *[str(a) for a in args], "--out", str(run), "--cross-fit", "2", *FAST])
    assert res.exit_code == 0, res.output
    assert res.output.count("already trained") == 3  # resumed: the full model and both folds reused
    res = CliRunner().invoke(main, ["run", *[str(a) for a in args], "--out", str(run), "--cross-fit", "1", *FAST])
    assert res.exit_code != 0 and "at least 2 folds" in res.output
