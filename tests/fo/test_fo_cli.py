"""``curate plugin install``, and the checks ``curate app`` and ``curate run`` make before they start anything."""

from __future__ import annotations

import os
import socket

import pytest
from click.testing import CliRunner
from fo_helpers import PLUGIN, PLUGINS

from curate.cli import main

pytestmark = pytest.mark.mongo


def test_plugin_install_symlink_copy_and_discovery(tmp_path, monkeypatch):
    import fiftyone as fo
    import fiftyone.operators as foo

    target = tmp_path / "plugins"
    runner = CliRunner()
    result = runner.invoke(main, ["plugin", "install", "--dir", str(target)])
    assert result.exit_code == 0, result.output
    assert (target / "curate_review").resolve() == PLUGINS / "curate_review"
    assert "already installed" in runner.invoke(main, ["plugin", "install", "--dir", str(target)]).output

    monkeypatch.setattr(fo.config, "plugins_dir", str(target))
    assert f"{PLUGIN}/relabel" in {op.uri for op in foo.list_operators()}

    refused = runner.invoke(main, ["plugin", "install", "--dir", str(target), "--copy"])
    assert refused.exit_code == 1 and "pass --force" in refused.output
    copied = runner.invoke(main, ["plugin", "install", "--dir", str(target), "--copy", "--force"])
    assert copied.exit_code == 0 and not (target / "curate_review").is_symlink()
    assert (target / "curate_review" / "fiftyone.yml").read_text() == (
        PLUGINS / "curate_review" / "fiftyone.yml"
    ).read_text()


def test_app_refuses_unknown_dataset_and_busy_port(make_scores, dataset_name):
    from curate.fiftyone import load_scores

    runner = CliRunner()
    unknown = runner.invoke(main, ["app", "no-such-dataset-xyz"])
    assert unknown.exit_code == 1 and "no FiftyOne dataset named 'no-such-dataset-xyz'" in unknown.output
    load_scores(make_scores(3), dataset_name, similarity=False, progress=False)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(main, ["app", dataset_name, "--port", str(port)])
    assert result.exit_code == 1 and f"cannot serve on 127.0.0.1:{port}" in result.output


def test_run_refuses_a_dataset_of_another_run_before_training(tmp_path, make_scores, dataset_name):
    import fiftyone as fo

    from curate.data.synthetic import generate
    from curate.fiftyone import load_scores

    generate(20, tmp_path / "data", seed=1)
    load_scores(make_scores(3), dataset_name, similarity=False, progress=False)
    args = ["run", str(tmp_path / "data" / "labels.csv"), "--out", str(tmp_path / dataset_name), "--epochs", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and f"FiftyOne dataset '{dataset_name}' holds the scores of" in result.output
    assert "--name" in result.output and not (tmp_path / dataset_name).exists()  # nothing trained

    foreign = fo.Dataset(f"{dataset_name}-plain")
    try:
        result = CliRunner().invoke(main, [*args, "--name", foreign.name])
        assert result.exit_code == 1 and "was not made by `curate load`" in result.output
    finally:
        foreign.delete()
    assert not (tmp_path / dataset_name).exists()


@pytest.mark.parametrize("command", [["app"], ["plugin", "install"], ["load"]])
def test_help_has_examples(command):
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0 and "Examples:" in result.output


def test_stop_process_tree_ends_children_that_left_the_process_group():
    """FiftyOne's App service detaches from the launcher's group; stopping must still end it."""
    import subprocess
    import sys
    import time

    import psutil

    from curate.cli.app_cmd import stop_process_tree

    detached = "import os, time; os.setsid(); time.sleep(120)"
    code = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {detached!r}]); time.sleep(120)"
    launcher = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    deadline = time.time() + 30
    while time.time() < deadline:  # until the child has left the launcher's process group
        children = psutil.Process(launcher.pid).children()
        if children and os.getpgid(children[0].pid) != launcher.pid:
            break
        time.sleep(0.05)
    (child,) = children
    stopped = stop_process_tree(launcher)
    assert sorted(stopped) == sorted([launcher.pid, child.pid]) and launcher.poll() is not None
    try:
        assert child.status() == psutil.STATUS_ZOMBIE  # dead, not yet reaped by init
    except psutil.NoSuchProcess:
        pass


def test_an_unreachable_database_is_one_clear_error(make_scores):
    import subprocess
    import sys

    uri = "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300"
    code = "from curate.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "load", str(make_scores(3)), "--name", "x"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FIFTYONE_DATABASE_URI": uri},
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"cannot reach the MongoDB at FIFTYONE_DATABASE_URI={uri}" in done.stderr


def test_the_oldest_mongodb_notice_is_not_printed_and_validation_stays_on():
    """FiftyOne prints its MongoDB 6 deprecation notice on every connection with validation on;
    curate commands drop that one record and leave FiftyOne's validation as it is."""
    import subprocess
    import sys

    from curate.cli import OLDEST_MONGODB_NOTICE

    env = {**os.environ, "FIFTYONE_DATABASE_VALIDATION": "true"}

    def output(code: str, *args: str) -> str:
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, env=env)
        return done.stdout + done.stderr

    plain = output("import fiftyone as fo; fo.list_datasets(); print('validation', fo.config.database_validation)")
    assert OLDEST_MONGODB_NOTICE in plain and "validation True" in plain  # FiftyOne still says it
    curate = output("from curate.cli import main; main()", "app", "no-such-dataset-xyz")
    assert "no FiftyOne dataset named 'no-such-dataset-xyz'" in curate and OLDEST_MONGODB_NOTICE not in curate
