"""The quick benchmark's whole pipeline on a tiny real subset: every stage, the report, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from curate import records
from curate.benchmark import BenchConfig, run_benchmark
from curate.benchmark.protocol import Benchmark
from curate.benchmark.signals import run_signals


@pytest.mark.realdata
@pytest.mark.slow
def test_quick_pipeline_on_a_tiny_ferplus_subset(shared_data, tmp_path):
    cfg = BenchConfig.preset("quick", shared_data / "ferplus-mini" / "labels.csv", tmp_path / "bench",
                             max_train=240, epochs=1, folds=2, flip_train=150, flip_rates=(0.3,),
                             progress=False)  # fmt: skip
    lines: list[str] = []
    record = run_benchmark(cfg, lines.append)
    methods = {r["method"] for r in record["detection"]}
    for name in (
        "DMUE mislabel_score (ours)",
        "cleanlab self_confidence + find_label_issues",
        "FiftyOne Brain mistakenness",
        "kNN label disagreement (CE embeddings)",
        "plain CE loss (in-sample)",
        "DMUE faithful (official settings)",
    ):
        assert name in methods
    for row in record["detection"]:
        assert 0 <= row["auroc"] <= 1 and 0 <= row["ap"] <= 1, row
    assert record["faces"] == 240
    assert {"dmue", "kfold", "cleanlab", "mistakenness", "ce_full", "speed", "flip-0.3", "dmue_faithful"} <= set(
        record["stages"]
    )
    # the faithful run went beside ce_full in a child process with its own log; the report marks both times
    assert record["stages"]["dmue_faithful"]["shared_cpu"] and record["stages"]["ce_full"]["shared_cpu"]
    assert not record["stages"]["dmue"]["shared_cpu"]
    faithful_run = cfg.out / "dmue_faithful" / "run"
    assert f"scores: {faithful_run / 'scores.parquet'}" in (cfg.out / "dmue_faithful" / "run.log").read_text()
    shared = {r["method"] for r in record["detection"] if r["shared_cpu"]}
    assert shared == {
        "DMUE faithful (official settings)",
        "kNN label disagreement (CE embeddings)",
        "plain CE loss (in-sample)",
    }
    assert record["stages"]["flip-0.3"]["actual_noise"] == pytest.approx(0.3, abs=0.01)
    assert record["stages"]["dmue"]["peak_rss_mib"] > 100
    speed = record["stages"]["speed"]
    assert 0.9 <= speed["ivf_recall"] <= 1
    # bf16 mining moves only the latent: mislabel_score keeps its value, ambiguity barely moves
    assert speed["bf16_max_abs_diff_mislabel_score"] < 1e-4 and speed["bf16_max_abs_diff_ambiguity_score"] < 0.05
    # the run's signals read back in another face order follow that order (training dynamics too)
    run_dir = cfg.out / "dmue" / "run"
    ids = records.read_scores(run_dir / "scores.parquet")["sample_id"].tolist()
    fwd, back = run_signals(run_dir, ids), run_signals(run_dir, ids[::-1])
    for key in ("mislabel_score", "dynamics", "one_minus_p_given", "flag"):
        np.testing.assert_array_equal(back[key], fwd[key][::-1])
    with pytest.raises(ValueError, match="not in"):
        run_signals(run_dir, ["no-such-face.png"])
    text = (cfg.out / "results.md").read_text()
    assert "| DMUE mislabel_score (ours) |" in text and "Accuracy under noise" in text
    assert text.count("†") == 4  # three marked times and the footnote
    for png in record["plots"]:
        assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a second call resumes from the cached stages and reproduces the figures
    again: list[str] = []
    record2 = run_benchmark(cfg, again.append)
    assert sum("cached" in line for line in again) == len(record["stages"])
    assert json.dumps(record2["detection"]) == json.dumps(record["detection"])
    # with every stage it could go beside already done, a missing faithful stage runs in the foreground
    (cfg.out / "dmue_faithful" / "result.json").unlink()
    again.clear()
    record3 = run_benchmark(cfg, again.append)
    assert not any("running beside" in line for line in again)
    assert not record3["stages"]["dmue_faithful"]["shared_cpu"] and record3["stages"]["ce_full"]["shared_cpu"]


@pytest.mark.realdata
@pytest.mark.slow
def test_a_failed_run_beside_names_its_log(shared_data, tmp_path):
    cfg = BenchConfig.preset("quick", shared_data / "ferplus-mini" / "labels.csv", tmp_path / "bench", max_train=100)
    bench = Benchmark(cfg, lambda _: None)
    child = bench.start_run("broken", "--no-such-option", threads=1)
    with pytest.raises(
        RuntimeError, match=r"stage broken: curate run failed with exit code \d+; its output is in .*run.log"
    ):
        bench.finish_run(child)
    assert "no-such-option" in (cfg.out / "broken" / "run.log").read_text()
