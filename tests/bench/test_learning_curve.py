"""bench/learning_curve.py: rows from several suite runs keep their run's name, the whole-Training
point comes from a main-suite record or from ``curate run`` folders judged against the crowd, and
where two runs measured a size the plot shows the latest one's points (a curve it lacks from the
latest run that has it)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import score_records
import yaml

from curate import records

spec = importlib.util.spec_from_file_location(
    "learning_curve", Path(__file__).resolve().parents[2] / "bench" / "learning_curve.py"
)
learning_curve = importlib.util.module_from_spec(spec)
spec.loader.exec_module(learning_curve)


def _curve(path: Path, date: str, sizes: dict[int, dict[str, float]]) -> Path:
    record = {"date": date, "config": {"epochs": 12},
              "sizes": {str(n): {"faces": n, "true_rate": 0.3, "auroc": a, "ap": {c: v - 0.1 for c, v in a.items()}}
                        for n, a in sizes.items()}}  # fmt: skip
    path.write_text(json.dumps(record))
    return path


def test_rows_name_their_run_and_the_plot_takes_the_latest_run_of_a_size(tmp_path):
    first = _curve(tmp_path / "a.json", "2026-12-04", {1000: {"dmue": 0.70, "cleanlab": 0.66}, 5000: {"dmue": 0.84}})
    second = _curve(tmp_path / "b.json", "2026-12-05", {1000: {"dmue": 0.74, "dmue_warm": 0.72}})
    main = {"date": "2026-11-29", "config": {"epochs": 14}, "faces": 28558,
            "detection": [{"method": m, "auroc": 0.9, "ap": 0.8} for m in learning_curve.WHOLE.values()]}  # fmt: skip
    (tmp_path / "results.json").write_text(json.dumps(main))
    rows = [*learning_curve.rows_of_curve(first), *learning_curve.rows_of_curve(second)]
    rows.append(learning_curve.row_of_whole(tmp_path / "results.json"))
    text = learning_curve.markdown(sorted(rows, key=lambda r: (r["size"], r["run"])))
    assert "| 1,000 | curve suite 2026-12-05, 12 epochs | 0.740 / 0.640 | 0.720 / 0.620 | — | — |" in text
    assert "| 28,558 | main suite 2026-11-29, 14 epochs | 0.900 / 0.800 | — | 0.900 / 0.800 | 0.900 / 0.800 |" in text
    points = learning_curve.plotted_points(rows[::-1])["sizes"]
    assert list(points) == ["1000", "5000", "28558"]
    # 2026-12-05's run where it has the curve; the curve it lacks from the earlier run
    assert points["1000"]["auroc"] == pytest.approx({"dmue": 0.74, "dmue_warm": 0.72, "cleanlab": 0.66})
    assert points["1000"]["ap"] == pytest.approx({"dmue": 0.64, "dmue_warm": 0.62, "cleanlab": 0.56})
    assert points["5000"]["auroc"] == pytest.approx({"dmue": 0.84})


def _run(run: Path, ids: list[str], score: np.ndarray, created: str, epochs: int) -> Path:
    """A ``curate run`` folder as ``row_of_runs`` reads it: scores.parquet (the columns every scores
    file has; only ``mislabel_score`` matters here) and config.yaml."""
    frame = score_records.scores_frame(ids, np.zeros(len(ids), int), np.full((len(ids), 2), 0.5), mislabel_score=score)
    run.mkdir(parents=True)
    records.write_scores(run / "scores.parquet", frame, 2, {"classes": ["a", "b"], "created": created})
    (run / "config.yaml").write_text(yaml.safe_dump({"train": {"epochs": epochs}}))
    return run


def test_curate_run_folders_make_one_row_judged_against_the_crowd(tmp_path):
    ids = [f"images/f{i}.png" for i in range(6)]
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"path": ids, "label_disagrees": [1, 0, 1, 0, 0, -1]}).to_csv(labels, index=False)  # f5: no plurality
    perfect = _run(tmp_path / "a", ids, np.array([0.9, 0.1, 0.8, 0.2, 0.3, 0.99]), "2026-12-05T10:00:00+00:00", 12)
    swapped = _run(tmp_path / "b", ids, np.array([0.1, 0.9, 0.2, 0.8, 0.7, 0.0]), "2026-12-06T09:00:00+00:00", 12)

    row = learning_curve.row_of_runs({"dmue": perfect, "dmue_warm": swapped}, labels)

    assert row["size"] == 6 and row["true_rate"] == pytest.approx(0.4)  # 2 of the 5 faces with a plurality
    assert row["auroc"] == pytest.approx({"dmue": 1.0, "dmue_warm": 0.0})
    assert row["ap"]["dmue"] == pytest.approx(1.0)
    assert row["run"] == "curate run 2026-12-06, 12 epochs" and row["date"] == "2026-12-06"


def test_curate_run_folders_of_other_faces_or_curves_are_refused(tmp_path):
    ids = [f"f{i}.png" for i in range(4)]
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"path": ids, "label_disagrees": [1, 0, 1, 0]}).to_csv(labels, index=False)
    one = _run(tmp_path / "a", ids, np.arange(4.0), "2026-12-05T10:00:00+00:00", 12)
    other = _run(tmp_path / "b", ids[::-1], np.arange(4.0), "2026-12-05T10:00:00+00:00", 12)

    with pytest.raises(SystemExit, match="scored other faces"):
        learning_curve.row_of_runs({"dmue": one, "dmue_warm": other}, labels)
    with pytest.raises(SystemExit, match="unknown curve"):
        learning_curve.row_of_runs({"dmue_pretrained": one}, labels)
    with pytest.raises(SystemExit, match="not rows of"):
        learning_curve.row_of_runs({"dmue": one}, _labels_without(tmp_path, ids[1:]))


def _labels_without(tmp_path: Path, ids: list[str]) -> Path:
    path = tmp_path / "fewer.csv"
    pd.DataFrame({"path": ids, "label_disagrees": 0}).to_csv(path, index=False)
    return path


def test_a_main_record_without_a_baseline_is_refused(tmp_path):
    main = {"date": "2026-11-29", "config": {"epochs": 14}, "faces": 100,
            "detection": [{"method": learning_curve.WHOLE["dmue"], "auroc": 0.9, "ap": 0.8}]}  # fmt: skip
    (tmp_path / "results.json").write_text(json.dumps(main))
    with pytest.raises(SystemExit, match="no detection row"):
        learning_curve.row_of_whole(tmp_path / "results.json")
