"""Decisions survive a database restart and a re-load of scores on top.

A private mongod (its own port and dbpath; the test session's server is left alone) serves two
subprocesses: the first loads scores and makes decisions through the plugin's operators; the
mongod is then stopped by pid and restarted on the same dbpath; the second re-loads new scores
and reads everything back.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fo_helpers import PLUGIN, free_port, mongod_binary, scores_frame, write

pytestmark = [pytest.mark.mongo, pytest.mark.slow]

DECIDE = f"""
import json, sys, fiftyone as fo, fiftyone.operators as foo
from curate.fiftyone import load_scores
ds = load_scores(sys.argv[1], "persist", progress=False)
ids = dict(zip(ds.values("sample_key"), ds.values("id")))
run = lambda op, **ctx: foo.execute_operator("{PLUGIN}/" + op, ctx={{"dataset": ds, **ctx}})
run("relabel", params={{"label": "sad"}}, selected=[ids["f0"], ids["f1"]])
run("exclude", selected=[ids["f2"]])
run("mark_reviewed", selected=[ids["f3"]])
run("relabel", params={{"label": "happy"}}, selected=[ids["f3"]])
run("undo", selected=[ids["f3"]])
print(json.dumps(dict(zip(ds.values("sample_key"), ds.values("decisions")))))
"""

RELOAD = """
import json, sys, fiftyone as fo
from curate.fiftyone import load_scores
ds = load_scores(sys.argv[1], "persist", progress=False)
fields = ["sample_key", "decisions", "clean_label.label", "excluded", "tags", "mislabel_score"]
print(json.dumps({"n": len(ds), "rows": [list(r) for r in zip(*ds.values(fields))]}))
"""


def start_mongod(dbpath: Path, port: int) -> subprocess.Popen:
    log = open(dbpath.parent / "mongod.log", "ab")
    command = [str(mongod_binary()), "--dbpath", str(dbpath), "--bind_ip", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        assert proc.poll() is None, f"mongod exited with {proc.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.2)
    raise AssertionError("mongod did not open its port within 60 s")


def stop_mongod(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)


def python(code: str, *args: str, uri: str) -> dict:
    env = {**os.environ, "FIFTYONE_DATABASE_URI": uri}
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_decisions_survive_restart_and_reload(tmp_path):
    dbpath = tmp_path / "db"
    dbpath.mkdir()
    port = free_port()
    uri = f"mongodb://127.0.0.1:{port}"
    first = write(tmp_path / "s1.parquet", scores_frame(9, image_dir=tmp_path / "img"))
    frame = scores_frame(10, seed=3, image_dir=tmp_path / "img")
    frame["mislabel_score"] = 0.99
    second = write(tmp_path / "s2.parquet", frame, seed=3)

    mongod = start_mongod(dbpath, port)
    try:
        made = python(DECIDE, str(first), uri=uri)
        stop_mongod(mongod)
        mongod = start_mongod(dbpath, port)
        back = python(RELOAD, str(second), uri=uri)
    finally:
        if mongod.poll() is None:
            stop_mongod(mongod)

    assert [d["action"] for d in made["f3"]] == ["keep"]
    rows = {r[0]: r[1:] for r in back["rows"]}
    assert back["n"] == 10 and all(r[4] == pytest.approx(0.99) for r in rows.values())
    assert {k: rows[k][0] for k in made} == made  # every decision, as made
    assert [d["to"] for d in rows["f0"][0]] == ["sad"] and rows["f0"][1] == "sad"
    assert rows["f2"][2] is True and "excluded" in rows["f2"][3]
    assert rows["f3"][1] == "angry" and rows["f9"][0] == [] and rows["f9"][1] is None
