"""curate.benchmark.matching: scored faces find their labels-table row however either path is written."""

from __future__ import annotations

import os

from curate.benchmark.matching import rows_by_path


def test_rows_by_path_resolves_both_sides_and_marks_faces_not_in_the_table(tmp_path, monkeypatch):
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    for name in ("a.png", "b.png"):
        (tmp_path / "data" / "images" / name).write_bytes(b"")
    os.symlink(tmp_path / "data", tmp_path / "link")
    monkeypatch.chdir(tmp_path / "elsewhere")
    table_paths = ["images/a.png", str(tmp_path / "data" / "images" / "b.png")]
    scored = [
        str(tmp_path / "data" / "images" / "b.png"),  # absolute, against an absolute table path
        "../data/images/a.png",  # relative to the working directory
        str(tmp_path / "link" / "images" / "a.png"),  # through a link
        str(tmp_path / "data" / "images" / "c.png"),  # not in the table
    ]
    assert rows_by_path(scored, table_paths, tmp_path / "data").tolist() == [1, 0, 0, -1]
