"""bench/score_quality.py: the per-class table counts flags among each class's correctly labelled faces."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "export"))
from export_helpers import save_scores, scores_frame  # noqa: E402

spec = importlib.util.spec_from_file_location("score_quality", ROOT / "bench" / "score_quality.py")
score_quality = importlib.util.module_from_spec(spec)
spec.loader.exec_module(score_quality)


def test_class_table_counts_flags_among_correct_faces_per_class(tmp_path):
    given = [0, 0, 0, 1, 1, 1]
    dist = np.full((6, 2), 0.5)
    dist[3:, 1] = 0.9
    dist[3:, 0] = 0.1
    verdict = ["likely_mislabeled", "ok", "likely_mislabeled", "ok", "ambiguous", "ok"]
    ids = [f"f{i}.png" for i in range(6)]
    save_scores(tmp_path / "scores.parquet", scores_frame(ids, ids, given, dist, verdict), ["a", "b"])
    truth = pd.DataFrame({"path": ids, "label_disagrees": [0, 0, 1, 0, 0, -1]})  # f5: no crowd plurality

    lines = score_quality.class_table(tmp_path, truth, ["a", "b"])

    assert "0.400 of the faces (2.00x the true rate), precision 0.500, recall 1.000" in lines[0]
    rows = {
        line.split(" | ")[0].strip("| "): line for line in lines if line.startswith("| a") or line.startswith("| b")
    }
    assert rows["a"] == "| a | 3 | 0.33 | 0.500 | 0.50 |"  # 1 of 2 correct faces flagged, 1 of 3 wrong
    assert rows["b"] == "| b | 3 | 0.00 | 0.900 | 0.00 |"  # the ambiguous face is not a flag
