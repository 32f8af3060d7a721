"""bench/learning_curve.py: rows from several suite runs keep their run's name, the whole-Training
point comes from a main-suite record, and where two runs measured a size the plot shows the latest one's points."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

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
    assert points["1000"]["auroc"] == pytest.approx({"dmue": 0.74, "dmue_warm": 0.72})  # 2026-12-05's run
    assert points["5000"]["auroc"] == pytest.approx({"dmue": 0.84})


def test_a_main_record_without_a_baseline_is_refused(tmp_path):
    main = {"date": "2026-11-29", "config": {"epochs": 14}, "faces": 100,
            "detection": [{"method": learning_curve.WHOLE["dmue"], "auroc": 0.9, "ap": 0.8}]}  # fmt: skip
    (tmp_path / "results.json").write_text(json.dumps(main))
    with pytest.raises(SystemExit, match="no detection row"):
        learning_curve.row_of_whole(tmp_path / "results.json")
