from __future__ import annotations

import csv
import pickle

import pytest

from curate.data.errors import DataError, SkipReport, reject


def test_data_error_reads_file_row_problem_and_hint():
    err = DataError(
        "labels.csv",
        17,
        "label 'happpy' is not a known class (known: angry, happy)",
        "Fix the label or pass --classes.",
    )
    assert (
        str(err)
        == "labels.csv, row 17: label 'happpy' is not a known class (known: angry, happy). Fix the label or pass --classes."
    )
    assert (err.path, err.row) == ("labels.csv", 17)


def test_data_error_without_row_and_pickles():
    err = DataError("data/", None, "holds no class folders", "Add folders.")
    assert str(err) == "data/: holds no class folders. Add folders."
    assert str(pickle.loads(pickle.dumps(err))) == str(err)


def test_data_error_shows_undecodable_name_printably():
    err = DataError(b"/x/caf\xe9.png", None, "file name is not valid UTF-8", "Rename it.")
    assert "caf\\xe9.png" in str(err)
    str(err).encode("utf-8")  # printable: no surrogates left


def test_reject_raises_or_records():
    err = DataError("a.csv", 3, "bad", "Fix it.")
    with pytest.raises(DataError, match="a.csv, row 3: bad"):
        reject(err, on_bad="error", report=None)
    report = SkipReport()
    reject(err, on_bad="skip", report=report)
    assert [(s.path, s.row, s.reason) for s in report] == [("a.csv", 3, "bad")]


def test_skip_report_summary_and_csv(tmp_path):
    report = SkipReport()
    for row in (2, 3, 4):
        report.add(DataError("l.csv", row, f"label 'x{row}' is not a known class", "Fix."))
    report.warn(DataError("d/readme.txt", None, "non-image file ignored", "Move it."))
    summary = report.summary(examples=2)
    assert summary.startswith("Skipped 3 item(s), 1 warning(s).")
    assert "3 x label ... is not a known class" in summary
    assert "l.csv, row 2: label 'x2' is not a known class" in summary
    assert "... and 1 more" in summary
    out = tmp_path / "skipped.csv"
    report.to_csv(out)
    rows = list(csv.DictReader(out.open()))
    assert [(r["level"], r["row"]) for r in rows] == [
        ("skipped", "2"),
        ("skipped", "3"),
        ("skipped", "4"),
        ("warning", ""),
    ]
    assert rows[0]["hint"] == "Fix."
    assert list(tmp_path.iterdir()) == [out]  # no temp file left behind
    assert SkipReport().summary() == "Nothing skipped."
