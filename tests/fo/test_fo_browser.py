"""A real browser against ``curate app``: our fields and review queues render, stopping the command leaves
no App process behind, and a review session (the panel's queue buttons; relabel, accept, undo and re-rank from
the operator browser, with real mouse clicks and key presses) leaves in the database what each step decides.

Uses Debian's ``/usr/bin/chromium`` (headless, driven over the DevTools protocol: a page is read once our
fields are in it, not after a fixed time, so a loaded CI runner only makes it wait longer); skipped
when it is missing, failed when ``CI`` is set. The screenshot goes to ``$CURATE_TEST_ARTIFACTS``
(else tmp_path).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
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
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,900")  # fmt: skip


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


def test_app_renders_fields_and_queues_and_stops_cleanly(chromium, make_scores, dataset_name, tmp_path):
    load_scores(make_scores(6), dataset_name, progress=False)
    artifacts = Path(os.environ.get("CURATE_TEST_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    log = tmp_path / "app.log"
    command = [sys.executable, "-c", "from curate.cli import main; main()", "app", dataset_name,
               "--port", str(free_port()), "--remote"]  # fmt: skip
    with open(log, "w") as out:  # started as a shell's background job is: with SIGINT ignored
        app = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # fmt: skip
    served: list[psutil.Process] = []
    try:
        url = wait_for_url(log, app)
        served = psutil.Process(app.pid).children(recursive=True)
        assert any("main.py" in " ".join(p.cmdline()) for p in served), "no App server process found"
        browser = Chromium(chromium, CHROMIUM_FLAGS, tmp_path / "profile")
        try:
            for queue in QUEUES:  # TimeoutError naming what is missing: the fields or the saved view's name
                try:
                    browser.open(f"{url}datasets/{dataset_name}?view={queue}", until=(*FIELDS, f">{queue}<"))
                finally:
                    if queue == QUEUES[0]:
                        browser.screenshot(artifacts / "fiftyone-app.png")  # also what was shown on a timeout
        finally:
            browser.close()
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
    with served(dataset_name, tmp_path) as url:
        # in this order: the App's session keeps the last client's workspace and open sample for the next
        pages = {f"view-{v}": f"{url}?view={v}" for v in views}
        pages["review-panel"] = f"{url}?view=likely-mislabeled&workspace={REVIEW_WORKSPACE}"
        pages["sample"] = f"{url}?view=likely-mislabeled&id={top}"
        browser = Chromium(chromium, CHROMIUM_FLAGS, tmp_path / "profile")
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
    for name in [*pages, "relabel-form"]:
        assert (shots / f"{name}.png").stat().st_size > 10_000, f"{name}.png looks empty"
    print(f"screenshots: {shots}")


# --- A review session in the App: the panel's queue buttons and the plugin's operators -------------------------------

BACKQUOTE = ("`", "Backquote", 192)  # opens the App's operator browser
ENTER = ("Enter", "Enter", 13)
TILE_BOX = '[data-cy="looker-checkbox-"]'  # a tile's checkbox (the label; its input has no size)
TILE_TICKED = "document.querySelectorAll('[data-cy=\"looker-checkbox-input-\"]')[{}].checked"


@contextlib.contextmanager
def served(dataset_name: str, tmp_path: Path) -> Iterator[str]:
    """``curate app DATASET`` on a free port for the block: the dataset's App URL; stopped by pid afterwards."""
    log = tmp_path / "app.log"
    command = [sys.executable, "-c", "from curate.cli import main; main()", "app", dataset_name,
               "--port", str(free_port()), "--remote"]  # fmt: skip
    with open(log, "w") as out:
        app = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield f"{wait_for_url(log, app)}datasets/{dataset_name}"
    finally:
        os.kill(app.pid, signal.SIGINT)
        app.wait(timeout=60)


def until(check, what: str, timeout: float = 90) -> None:
    """Poll ``check()`` (a database read) until it is true: an operator runs in the App server, after the click."""
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline, f"{what}: not in the database within {timeout} s"
        time.sleep(0.5)


def click_until(browser: Chromium, css: str, done: str, *, index: int = 0, text: str | None = None) -> None:
    """Click until the JavaScript ``done`` holds: on this loaded machine a click can land while the page re-renders."""
    for _ in range(4):
        browser.click(css, index, text=text)
        try:
            browser.wait(done, timeout=20)
            return
        except TimeoutError:
            continue
    raise AssertionError(f"clicking {css} {text or ''} #{index} never gave {done}")


def select_tiles(browser: Chromium, count: int) -> None:
    """Tick the checkboxes of the first ``count`` tiles of the grid (a tile shows its box under the mouse)."""
    for i in range(count):
        for _ in range(4):
            browser.hover('[data-cy="looker"]', i)
            try:
                browser.click(TILE_BOX, i, timeout=10)
                browser.wait(TILE_TICKED.format(i), timeout=10)
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError(f"tile {i} could not be selected")


def operator(browser: Chromium, label: str, fill=None, *, form: bool = True) -> None:
    """Run the operator ``label`` from the operator browser: search it, choose it, and with a ``form``:
    ``fill(browser)`` and Execute (an operator without inputs runs when chosen)."""
    browser.key(*BACKQUOTE)
    browser.wait("!!document.querySelector('[data-cy=\"operators-browser-search\"]')", what="the operator browser")
    browser.type(label)
    time.sleep(1)
    browser.key(*ENTER)
    if not form:
        return
    if fill is not None:
        fill(browser)
    browser.click("button", text="Execute")
    browser.wait("![...document.querySelectorAll('button')].some(b => b.innerText.trim() === 'Execute')",
                 what=f"{label}: the form closed")  # fmt: skip


def test_review_session_in_the_app(chromium, make_scores, dataset_name, tmp_path):
    """Queue buttons of the review panel open their view; relabel (selection), accept (current view), undo and
    re-rank run from the operator browser, and after each step the database holds what the step decides."""
    import fiftyone as fo

    ds = load_scores(make_scores(12), dataset_name, progress=False)
    ds.save_workspace(
        REVIEW_WORKSPACE,
        fo.Space(
            children=[fo.Panel(type="Samples", pinned=True), fo.Panel(type="review_queues")], orientation="horizontal"
        ),
    )
    shots = Path(os.environ.get("CURATE_TEST_ARTIFACTS") or tmp_path) / "app-review-session"
    shots.mkdir(parents=True, exist_ok=True)

    def keyed(field: str) -> dict:
        ds.reload()
        keys = ds.values("sample_key")
        if field not in ds.get_field_schema():  # the App's re-rank may not have added it yet
            return dict.fromkeys(keys)
        return dict(zip(keys, ds.values(field)))

    with served(dataset_name, tmp_path) as url:
        browser = Chromium(chromium, CHROMIUM_FLAGS, tmp_path / "profile")
        step = "open"
        try:
            browser.open(f"{url}?view=likely-mislabeled&workspace={REVIEW_WORKSPACE}", until=FIELDS + PANEL_TEXT)
            step = "queue button"
            click_until(browser, "button", "location.search.includes('view=ambiguous')", text="ambiguous: ")
            browser.wait("document.querySelectorAll('[data-cy=\"looker\"]').length === 4", what="4 tiles")
            ambiguous = ds.load_saved_view("ambiguous").values("sample_key")

            step = "relabel"
            select_tiles(browser, 2)

            def sad(b: Chromium) -> None:
                b.click("input[placeholder='Type or select a value']")
                b.type("sad")
                b.click("li[role='option']", text="sad")

            operator(browser, "Relabel selected faces", sad)
            until(lambda: sum(bool(d) for d in keyed("decisions").values()) == 2, "2 relabelled faces")
            decisions = keyed("decisions")
            assert {k for k, d in decisions.items() if d} == set(ambiguous[:2])
            assert all(
                decisions[k][-1]["action"] == "relabel" and decisions[k][-1]["to"] == "sad" for k in ambiguous[:2]
            )
            until(lambda: sum(v is not None for v in keyed("mislabel_score_rerank").values()) == 10, "re-ranked")
            after_relabel = keyed("mislabel_score_rerank")

            step = "accept on the current view"
            operator(browser, "Clear selected samples", form=False)
            click_until(
                browser, "button", "location.search.includes('view=likely-mislabeled')", text="likely-mislabeled: "
            )
            flagged = ds.load_saved_view("likely-mislabeled").values("sample_key")
            operator(browser, "Accept suggested labels")
            until(lambda: all(keyed("decisions")[k] for k in flagged), "accepted suggestions")
            decisions = keyed("decisions")
            assert all(decisions[k][-1]["action"] == "accept_suggestion" for k in flagged)
            assert keyed("mislabel_score_rerank") != after_relabel

            step = "undo on the same view"
            operator(browser, "Undo the last decision")
            until(lambda: not any(keyed("decisions")[k] for k in flagged), "the accepts undone")
            assert {k for k, d in keyed("decisions").items() if d} == set(ambiguous[:2])
            until(lambda: keyed("mislabel_score_rerank") == after_relabel, "the ranking before the accepts")

            step = "re-rank"
            select_tiles(browser, 1)
            operator(browser, "Re-rank with my decisions", form=False)
            until(lambda: ds.reload() or "curate_rerank_1" in ds.list_runs(), "the re-rank run")
            browser.wait("location.search.includes('view=review-next')", what="the review-next queue")
            assert keyed("mislabel_score_rerank") == after_relabel
            assert {k for k, d in keyed("decisions").items() if d} == set(ambiguous[:2])
        finally:
            browser.screenshot(shots / f"{step.replace(' ', '-')}.png")  # the last step's page, also on failure
            browser.close()
