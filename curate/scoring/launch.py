"""Scoring as W processes: under ``torchrun``, or W local processes spawned here (``--shards``).

Either way every process joins one gloo group (whatever the device: the group only synchronises
the merge), scores its shard and rank 0 merges (``curate.scoring.shards``). Under torchrun the
environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``) says where a process
sits, and with ``--device auto`` rank r of a node uses ``cuda:<local rank>`` when there is CUDA.
:func:`run_local` starts the processes with torch's elastic launcher (the one torchrun uses:
new interpreters, a free port, and every process stopped when one fails), each with ``threads``
torch threads (default: this process's threads divided among them).
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch

from dmue_core.distributed import DistContext, setup, teardown

#: how long a process waits at the merge for the slowest shard (a resumed run may reuse some parts
#: and compute others for hours)
MERGE_TIMEOUT = timedelta(hours=24)


def launched_world() -> int:
    """W of a ``torchrun`` launch (``WORLD_SIZE``), 1 outside one."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def join(device: str) -> DistContext:
    """This process's place in the launch: joins the gloo group when there are several processes."""
    return setup(device, backend="gloo", timeout=MERGE_TIMEOUT)


def run(shards: int, job: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``job(*args, group=<its place>, **kwargs)``: in ``shards`` > 1 new local processes
    (:func:`run_local`, rank 0's value), else in this process, as its torchrun rank or alone."""
    if shards > 1:
        if launched_world() > 1:
            raise ValueError(
                "--shards starts its own processes: under torchrun leave it out (--nproc_per_node sets the shards)"
            )
        return run_local(shards, job, *args, **kwargs)
    group = join(kwargs.get("device", "cpu"))
    try:
        return job(*args, group=group, **kwargs)
    finally:
        teardown(group)


def run_local(shards: int, job: Callable[..., Any], *args: Any, threads: int | None = None, **kwargs: Any) -> Any:
    """``job(*args, group=<its place>, **kwargs)`` in ``shards`` new local processes; rank 0's return
    value. Each process runs ``python -m curate.scoring.launch SPEC RESULT``: ``job`` and its
    arguments travel pickled in a temporary file (so nothing depends on how this process was
    started), ``kwargs["device"]`` (default ``"cpu"``) is resolved per process. Raises torch's
    ``ChildFailedError`` (each failed process's exit code; its error is on stderr) when one fails."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if shards < 2:
        raise ValueError(f"run_local needs 2 or more shards, not {shards}")
    threads = threads or max(1, torch.get_num_threads() // shards)
    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=shards, run_id=uuid.uuid4().hex, rdzv_backend="c10d",
        rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="curate-shards-") as tmp:
        spec, result = Path(tmp) / "spec.pkl", Path(tmp) / "result.pkl"
        with open(spec, "wb") as f:
            pickle.dump((job, args, kwargs, threads), f, protocol=pickle.HIGHEST_PROTOCOL)
        elastic_launch(config, sys.executable)("-m", __name__, str(spec), str(result))
        with open(result, "rb") as f:
            return pickle.load(f)


def _process(spec: Path, result: Path) -> None:
    """One launched process: run the pickled job in its group; rank 0 pickles the job's value."""
    with open(spec, "rb") as f:
        job, args, kwargs, threads = pickle.load(f)
    torch.set_num_threads(threads)
    group = join(kwargs.get("device", "cpu"))
    try:
        value = job(*args, group=group, **kwargs)
    finally:
        teardown(group)
    if group.is_main:
        with open(result, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)


if __name__ == "__main__":
    _process(Path(sys.argv[1]), Path(sys.argv[2]))
