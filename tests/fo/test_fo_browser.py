"""A real browser against ``curate app``: our fields and review queues render, and stopping the command
leaves no App process behind.

Uses Debian's ``/usr/bin/chromium`` (headless ``--dump-dom`` with a virtual time budget); skipped
when it is missing, failed when ``CI`` is set. The screenshot goes to ``$CURATE_TEST_ARTIFACTS``
(else tmp_path).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from fo_helpers import Chromium, free_port

from curate.fiftyone import load_scores

pytestmark = [pytest.mark.browser, pytest.mark.mongo, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
FIELDS = ("ground_truth", "dmue", "clean_label", "decisions", "mislabel_score", "ambiguity_score",
          "suggested_label", "verdict", "label_distribution")  # fmt: skip
QUEUES = ("likely-mislabeled", "unreviewed-flagged")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,900",
                  "--virtual-time-budget=15000")  # fmt: skip


@pytest.fixture
def chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: CI must install Debian's chromium (apt-get install -y chromium)")
    pytest.skip(f"{CHROMIUM} is not installed")


def wait_for_url(log: Path, app: subprocess.Popen, timeout: float = 180) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith("App: "):
                return line.split()[1]
        assert app.poll() is None, f"curate app exited with {app.returncode}: {log.read_text()}"
        time.sleep(0.3)
    raise AssertionError(f"curate app printed no URL within {timeout} s")


def render(chromium: Path, url: str, screenshot: Path | None = None) -> str:
    with tempfile.TemporaryDirectory() as profile:
        shot = [f"--screenshot={screenshot}"] if screenshot else []
        out = subprocess.run([str(chromium), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *shot, "--dump-dom", url],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_app_renders_fields_and_queues_and_stops_cleanly(chromium, make_scores, dataset_name, tmp_path):
    load_scores(make_scores(6), dataset_name, progress=False)
    artifacts = Path(os.environ.get("CURATE_TEST_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    log = tmp_path / "app.log"
    command = [sys.executable, "-c", "from curate.cli import main; main()", "app", dataset_name,
               "--port", str(free_port()), "--remote"]  # fmt: skip
    with open(log, "w") as out:
        app = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    served: list[psutil.Process] = []
    try:
        url = wait_for_url(log, app)
        served = psutil.Process(app.pid).children(recursive=True)
        assert any("main.py" in " ".join(p.cmdline()) for p in served), "no App server process found"
        for queue in QUEUES:
            shot = artifacts / "fiftyone-app.png" if queue == QUEUES[0] else None
            dom = render(chromium, f"{url}datasets/{dataset_name}?view={queue}", shot)
            missing = [f for f in FIELDS if f not in dom]
            assert not missing, f"fields {missing} not rendered for view {queue}"
            assert f">{queue}<" in dom, f"saved view {queue} not shown"
        assert (artifacts / "fiftyone-app.png").stat().st_size > 10_000
    finally:
        os.kill(app.pid, signal.SIGINT)
        app.wait(timeout=60)
    _, alive = psutil.wait_procs(served, timeout=15)
    assert not alive, f"App processes left running: {[p.pid for p in alive]}"
    assert app.returncode == 0 and "stopping the App" in log.read_text()


# --- The App screenshots in docs/img (`make docs-images`) ---------------------------------------------------------

DOC_SHOTS = "docs-screenshots"  # subfolder of $CURATE_TEST_ARTIFACTS the screenshots go to
REVIEW_WORKSPACE = "curate-review"
SHOT_FLAGS = tuple(f for f in CHROMIUM_FLAGS if not f.startswith("--virtual-time-budget"))
ENTERPRISE_TOOLTIP = "fiftyone-enterprise-tooltip-seen"  # the App's "Explore Enterprise" popover stays closed
PANEL_TEXT = ("unreviewed-flagged: ",)  # a queue button of the review panel (it has no tab title here)


TILE_CHECKBOX = 'input[data-cy^="looker-checkbox-input"]'  # a grid tile's selection box
RELABEL = "Relabel selected faces"  # the plugin operator's label, typed into the App's operator browser


def photograph_relabel_form(browser: Chromium, path: Path, faces: int = 3) -> None:
    """Select the first ``faces`` tiles of the grid shown, open the plugin's relabel form through the App's operator
    browser (the ` key), photograph it with its selection count; then cancel it and clear the selection."""

    def toggle() -> None:
        for i in range(faces):  # one click at a time: the App drops a selection made while it updates another
            browser.evaluate(f"document.querySelectorAll('{TILE_CHECKBOX}')[{i}].click()")
            time.sleep(1)

    toggle()
    browser.key("`", "Backquote", 192, text="`")
    browser.wait_for(("Search operations",))
    browser.page("Input.insertText", text=RELABEL)
    browser.wait_for((RELABEL,))
    browser.key("Enter", "Enter", 13, text="\r")
    try:
        browser.wait_for(("New label", f"{faces} faces selected"), settle=2)
    finally:
        browser.screenshot(path)
    browser.key("Escape", "Escape", 27)
    toggle()


def synthetic_only(scores: Path) -> None:
    """Refuse a scores file with a face that is not from the synthetic generator (its folder's parent holds the
    generator's manifest.json): the docs may show only synthetic faces, never FER2013 photographs."""
    from curate.data.synthetic import MANIFEST
    from curate.records import read_scores

    for filepath in read_scores(scores)["filepath"]:
        data_dir = Path(filepath).resolve().parent.parent
        assert (data_dir / MANIFEST).exists(), f"{filepath} is not a synthetic face: no screenshots of real photos"


def synthetic_scores(tmp_path: Path, n: int = 42) -> Path:
    """Synthetic faces (the demo's generator) with the fixture's random score records: enough to render every view."""
    from fo_helpers import scores_frame, write

    from curate.data.synthetic import generate

    table = generate(n, tmp_path / "data", seed=0, noise_rate=0.3)
    classes = list(table.attrs["classes"])
    frame = scores_frame(n, classes=classes, image_dir=tmp_path / "unused")
    frame["sample_id"], frame["filepath"] = list(table["sample_id"]), [str(p) for p in table["filepath"]]
    frame["given_label"] = table["label"].to_numpy(dtype="int32")
    return write(tmp_path / "scores.parquet", frame, classes=classes)


def test_app_screenshots_for_the_docs(chromium, dataset_name, tmp_path):
    """Every saved view's grid, a face's expanded view and the review panel render with our fields, and the
    plugin's relabel form opens with the selection's size; their screenshots go to $CURATE_TEST_ARTIFACTS/docs-screenshots. ``make docs-images`` points CURATE_DOCS_SCORES at
    the demo's scores (synthetic faces, a trained model) and copies them into docs/img. Driven over the DevTools
    protocol: each page is photographed once our fields (and the panel's text) are in it."""
    import fiftyone as fo

    scores = (
        Path(os.environ["CURATE_DOCS_SCORES"]) if os.environ.get("CURATE_DOCS_SCORES") else synthetic_scores(tmp_path)
    )
    synthetic_only(scores)
    dataset = load_scores(scores, dataset_name, progress=False)
    dataset.save_workspace(
        REVIEW_WORKSPACE,
        fo.Space(
            children=[fo.Panel(type="Samples", pinned=True), fo.Panel(type="review_queues")], orientation="horizontal"
        ),
    )
    views = dataset.list_saved_views()
    top = dataset.load_saved_view("likely-mislabeled").first().id
    shots = Path(os.environ.get("CURATE_TEST_ARTIFACTS") or tmp_path) / DOC_SHOTS
    shots.mkdir(parents=True, exist_ok=True)
    log = tmp_path / "app.log"
    command = [sys.executable, "-c", "from curate.cli import main; main()", "app", dataset_name,
               "--port", str(free_port()), "--remote"]  # fmt: skip
    with open(log, "w") as out:
        app = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"{wait_for_url(log, app)}datasets/{dataset_name}"
        # in this order: the App's session keeps the last client's workspace and open sample for the next
        pages = {f"view-{v}": f"{url}?view={v}" for v in views}
        pages["review-panel"] = f"{url}?view=likely-mislabeled&workspace={REVIEW_WORKSPACE}"
        pages["sample"] = f"{url}?view=likely-mislabeled&id={top}"
        browser = Chromium(chromium, SHOT_FLAGS, tmp_path / "profile")
        try:
            browser.open(pages["view-likely-mislabeled"], until=FIELDS)  # the App's origin, for its localStorage
            browser.evaluate(f"localStorage.setItem('{ENTERPRISE_TOOLTIP}', 'true')")
            browser.open(pages["view-likely-mislabeled"], until=FIELDS)
            photograph_relabel_form(browser, shots / "relabel-form.png")
            for name, page in pages.items():
                panel = name == "review-panel"
                try:
                    browser.open(page, until=FIELDS + PANEL_TEXT if panel else FIELDS, settle=10 if panel else 3)
                finally:
                    browser.screenshot(shots / f"{name}.png")  # also what was shown when it timed out
        finally:
            browser.close()
    finally:
        os.kill(app.pid, signal.SIGINT)
        app.wait(timeout=60)
    for name in [*pages, "relabel-form"]:
        assert (shots / f"{name}.png").stat().st_size > 10_000, f"{name}.png looks empty"
    print(f"screenshots: {shots}")
