"""bench/score_quality.py: the per-class table counts flags among each class's correctly labelled faces."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

spec = importlib.util.spec_from_file_location(
    "score_quality", Path(__file__).resolve().parents[2] / "bench" / "score_quality.py"
)
score_quality = importlib.util.module_from_spec(spec)
spec.loader.exec_module(score_quality)

IDS = [f"f{i}.png" for i in range(6)]
SIGNALS = {  # the run_signals keys class_table reads: faces 0-2 given class a, 3-5 given b
    "given_label": np.array([0, 0, 0, 1, 1, 1]),
    "flag": np.array([True, False, True, False, False, False]),  # f4 is only ambiguous: not a flag
    "one_minus_p_given": np.array([0.5, 0.5, 0.5, 0.1, 0.1, 0.1]),
}


def test_class_table_counts_flags_among_correct_faces_per_class():
    truth = pd.DataFrame({"path": IDS, "label_disagrees": [0, 0, 1, 0, 0, -1]})  # f5: no crowd plurality

    lines = score_quality.class_table(SIGNALS, truth, ["a", "b"])

    assert "0.400 of the faces (2.00x the true rate), precision 0.500, recall 1.000" in lines[0]
    rows = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith(("| a", "| b"))}
    assert rows["a"] == "| a | 3 | 0.33 | 0.500 | 0.50 |"  # 1 of 2 correct faces flagged, 1 of 3 wrong
    assert rows["b"] == "| b | 3 | 0.00 | 0.900 | 0.00 |"


def test_class_table_on_clean_labels_names_no_rate_ratio_or_recall():
    truth = pd.DataFrame({"path": IDS, "label_disagrees": [0] * 6})

    lines = score_quality.class_table(SIGNALS, truth, ["a", "b"])

    assert "0.333 of the faces, precision 0.000, recall —" in lines[0]
    assert "| a | 3 | 0.00 | 0.500 | 0.67 |" in lines


def test_suggestion_line_counts_the_queued_errors_apart() -> None:
    signals = {
        "suggested_label": np.array([1, 0, 2, 1, 0]),
        "in_queue": np.array([True, True, False, False, True]),
    }
    crowd = np.array([1, 2, 1, 1, 0])
    errors = np.array([True, True, True, True, False])  # face 4 is labelled right
    line = score_quality.suggestion_line(signals, crowd, errors)
    # right on faces 0 and 3 of the 4 errors; faces 0 and 1 are queued, the suggestion right on face 0 of them
    assert "the crowd's on 0.500 of the 4 true errors" in line
    assert "0.500 of them are in the queue" in line
    assert "the suggestion right on 0.500 of those" in line
    signals["in_queue"][:] = False
    assert "0.000 of them are in the queue" in score_quality.suggestion_line(signals, crowd, errors)
