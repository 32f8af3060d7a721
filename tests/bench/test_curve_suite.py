"""The learning-curve suite: nested subsets, a disjoint --init-from source, every curve per size."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from curate.benchmark.curve_suite import CurveSuiteConfig, markdown, plot, run_curve_suite, write_subsets


def test_bad_sizes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 100 faces"):
        CurveSuiteConfig(labels_csv=tmp_path / "x.csv", out=tmp_path, sizes=(50, 1000))
    with pytest.raises(ValueError, match="pretrain epochs must be >= 0"):
        CurveSuiteConfig(labels_csv=tmp_path / "x.csv", out=tmp_path, pretrain_epochs=-1)
    assert CurveSuiteConfig(labels_csv=tmp_path / "x.csv", out=tmp_path, sizes=(2000, 1000)).sizes == (1000, 2000)


@pytest.mark.realdata
def test_subsets_are_nested_and_the_source_is_disjoint(shared_data, tmp_path):
    cfg = CurveSuiteConfig(labels_csv=shared_data / "ferplus" / "labels.csv", out=tmp_path, sizes=(200, 500, 1200),
                           source_faces=900)  # fmt: skip
    subsets, source = write_subsets(cfg)
    assert [n for n, _ in subsets] == [200, 500, 1200]
    paths = {n: set(pd.read_csv(folder / "train.csv")["path"]) for n, folder in subsets}
    assert [len(p) for p in paths.values()] == [200, 500, 1200]
    assert paths[200] < paths[500] < paths[1200]
    src = pd.read_csv(source)
    assert len(src) == 900 and not set(src["path"]) & paths[1200]
    every = set(src["path"]).union(*paths.values())
    assert not any("FER2013Test" in p or "FER2013Valid" in p for p in every)  # Training faces only
    for _, folder in subsets:
        assert pd.read_csv(folder / "eval.csv")["path"].str.contains("FER2013Valid").all()
    again, _ = write_subsets(cfg)  # written once: read back unchanged
    assert {n: set(pd.read_csv(f / "train.csv")["path"]) for n, f in again} == paths
    shutil.rmtree(dict(subsets)[500])  # a resume after a crash between two subsets draws the same faces
    resumed, _ = write_subsets(cfg)
    assert {n: set(pd.read_csv(f / "train.csv")["path"]) for n, f in resumed} == paths


def test_markdown_and_plot_show_every_curve(tmp_path):
    sizes = {
        str(n): {"faces": n, "true_rate": 0.3,
                 "auroc": {"dmue": a, "cleanlab": a - 0.05, "mistakenness": a - 0.06, "dmue_init": a + 0.04},
                 "ap": {"dmue": a - 0.1, "cleanlab": a - 0.15, "mistakenness": a - 0.16, "dmue_init": a - 0.05},
                 "accuracy": {"dmue": 0.6, "ce": 0.58, "dmue_init": 0.65}}
        for n, a in ((1000, 0.75), (2000, 0.8))
    }  # fmt: skip
    record = {"date": "2026-12-04", "source_faces": 18558, "sizes": sizes,
              "config": {"backbone": "fer_cnn", "epochs": 12, "folds": 3}}  # fmt: skip
    text = markdown(record)
    assert "| 1,000 | 0.300 | 0.750 / 0.650 | 0.790 / 0.700 | 0.700 / 0.600 | 0.690 / 0.590 | 0.600 / 0.580 |" in text
    plot(record, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 10_000


@pytest.mark.realdata
@pytest.mark.slow
def test_tiny_curve_suite_runs_every_curve_and_resumes(shared_data, tmp_path):
    cfg = CurveSuiteConfig(labels_csv=shared_data / "ferplus" / "labels.csv", out=tmp_path / "curve",
                           sizes=(150, 300), epochs=1, folds=2, source_faces=300, pretrain_epochs=1,
                           progress=False)  # fmt: skip
    record = run_curve_suite(cfg, print)
    assert list(record["sizes"]) == ["150", "300"]
    small, large = record["sizes"]["150"], record["sizes"]["300"]
    assert {"dmue", "cleanlab", "mistakenness", "dmue_init", "dmue_warm"} == set(small["auroc"]) == set(large["auroc"])
    warm = json.loads((cfg.out / "n150" / "dmue_warm" / "run" / "pretrain" / "pretrain.json").read_text())
    assert warm["epochs"] == 1  # the warm curve's run did start from its own self-supervised stage
    assert all(0 <= v <= 1 for s in (small, large) for v in s["auroc"].values())
    assert json.loads((cfg.out / "curve.json").read_text())["sizes"].keys() == record["sizes"].keys()
    assert (cfg.out / "curve.png").exists() and "| 300 |" in (cfg.out / "curve.md").read_text()
    lines: list[str] = []
    assert run_curve_suite(cfg, lines.append)["sizes"] == record["sizes"]
    assert sum("cached" in line for line in lines) == 2 * 7  # every stage of both sizes read back
