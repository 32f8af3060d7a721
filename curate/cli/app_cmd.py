"""``curate app``: serve the FiftyOne App on a dataset until Ctrl-C, leaving no server behind.

The App server outlives the process that launches it (FiftyOne's service wrapper and the server
are reparented), so the launcher runs in its own session/process group; on exit (Ctrl-C,
SIGTERM, or a failed start) that group and every process it spawned are terminated, then killed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from types import FrameType

import click

_LAUNCH = "from fiftyone.core.cli import main; main()"
PLUGIN = "@dmue-curate/review"
_STOP_GRACE_S = 10.0


def _check_port_free(address: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as s:
        try:
            s.bind((address, port))
        except OSError as e:
            raise click.ClickException(
                f"cannot serve on {address}:{port} ({e.strerror}); pass another --port"
            ) from None


def _app_env() -> dict[str, str]:
    """The environment of the App server: ours plus the faiss similarity backend name."""
    env = dict(os.environ)
    backends = env.get("FIFTYONE_BRAIN_SIMILARITY_BACKENDS", "*")
    if "faiss" not in backends.split(","):
        env["FIFTYONE_BRAIN_SIMILARITY_BACKENDS"] = f"{backends},faiss"
    env.setdefault("FIFTYONE_BRAIN_SIMILARITY_FAISS_CONFIG_CLS", "curate.fiftyone.faiss_backend.FaissSimilarityConfig")
    return env


def _wait_until_served(url: str, launcher: subprocess.Popen, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if launcher.poll() is not None:
            raise click.ClickException(f"the App exited with code {launcher.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise click.ClickException(f"the App did not answer at {url} within {timeout:.0f} s")


def stop_process_tree(launcher: subprocess.Popen) -> list[int]:
    """Terminate the launcher's process group and all its descendants, wherever they moved (kill
    them after a grace period); returns the pids that were stopped."""
    import psutil

    try:
        procs = [psutil.Process(launcher.pid), *psutil.Process(launcher.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        procs = []
    try:
        os.killpg(launcher.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    for signal_them in ("terminate", "kill"):
        for p in _running(procs):
            try:
                getattr(p, signal_them)()
            except psutil.NoSuchProcess:
                pass
        deadline = time.time() + _STOP_GRACE_S
        while _running(procs) and time.time() < deadline:
            time.sleep(0.1)
    launcher.wait()
    return [p.pid for p in procs]


def _running(procs: list) -> list:
    """The processes of ``procs`` that still run (exited and zombie ones excluded)."""
    import psutil

    running = []
    for p in procs:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                running.append(p)
        except psutil.NoSuchProcess:
            pass
    return running


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@click.command("app")
@click.argument("name")
@click.option("--port", default=5151, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="Interface to bind; the default serves this machine only (use 0.0.0.0 for the network).",
)
@click.option("--remote", is_flag=True, help="Do not open a browser here (connect from elsewhere, e.g. over ssh -L).")
@click.option(
    "--timeout", default=180, show_default=True, type=click.IntRange(1), help="Seconds to wait for the App to start."
)
def app(name: str, port: int, address: str, remote: bool, timeout: int) -> None:
    """Serve the FiftyOne App on dataset NAME, print its URL and run until Ctrl-C.

    The review plugin must be installed (curate plugin install) or FIFTYONE_PLUGINS_DIR must
    point at the checkout's plugins folder. Stopping the command stops every App process.

    \b
    Examples:
      curate app mini
      curate app mini --port 5252 --remote       # then: ssh -L 5252:127.0.0.1:5252 host
      curate app mini --address 0.0.0.0          # reachable from the network
    """
    import fiftyone as fo
    import fiftyone.plugins as fop

    if not fo.dataset_exists(name):
        known = ", ".join(fo.list_datasets()) or "none"
        raise click.ClickException(
            f"no FiftyOne dataset named {name!r} (datasets: {known}); create it with curate load"
        )
    _check_port_free(address, port)
    if PLUGIN not in {p.name for p in fop.list_plugins()}:
        click.echo(f"note: the review plugin {PLUGIN} is not in {fo.config.plugins_dir}; run `curate plugin install`"
                   " or set FIFTYONE_PLUGINS_DIR=<repo>/plugins", err=True)  # fmt: skip
    command = [sys.executable, "-c", _LAUNCH, "app", "launch", name, "--port", str(port), "--address", address,
               "--wait", "-1", *(["--remote"] if remote else [])]  # fmt: skip
    everywhere = address in ("0.0.0.0", "::")
    url = f"http://{socket.gethostname() if everywhere else address}:{port}/"
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    # Ctrl-C stops the App also where it was started with SIGINT ignored (a shell's background job)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    launcher = subprocess.Popen(command, env=_app_env(), start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        click.echo(f"starting the FiftyOne App on {name!r} ...")
        _wait_until_served(f"http://{'127.0.0.1' if everywhere else address}:{port}/", launcher, timeout)
        click.echo(f"App: {url}  (Ctrl-C to stop)")
        launcher.wait()
        raise click.ClickException(f"the App exited with code {launcher.returncode}")
    except KeyboardInterrupt:
        click.echo("stopping the App ...")
    finally:
        stop_process_tree(launcher)
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
