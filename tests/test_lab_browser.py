"""The workbook in a real browser: JupyterLab as `make lab` starts it, driven by headless Chromium.

JupyterLab runs with the Makefile's own flags (`make -s lab-args`), headless, on a free port
of 127.0.0.1 with a token; Debian's chromium (/usr/bin/chromium) is driven through Playwright
(never `playwright install`). The test opens the landing page, follows its link to the welcome
chapter and runs it all (outputs rendered, no error), then makes a learner copy of the welcome
exercise with `mmlab start` into a scratch learner folder, fills one answer wrongly and then
rightly, and runs the visible check after it: the wrong answer shows "expected ..., got ...",
the right one passes; saved, the copy's last cell (Check yourself) grades it and shows that
task's point. Autosave is off (a settings folder of the test's own), so no notebook of
the project is ever written; the test checks that too. Screenshots of a failure go to
test-output/lab-browser/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from mmlab.teach.markers import BEGIN_SOLUTION, END_SOLUTION, nbgrader_meta

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "test-output" / "lab-browser"
TOKEN = "mmlab-browser-test"
CHAPTER = "00_welcome"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab at the project root with `make lab`'s flags; yields its base URL."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install it with `make browser` (Debian's chromium) to run the browser tests")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")
    jupyter = Path(sys.executable).parent / "jupyter"
    if shutil.which("make") is None or not jupyter.exists():
        pytest.skip("make or jupyter is missing")
    port = _free_port()
    args = subprocess.run(["make", "-s", "lab-args", "NO_BROWSER=1", f"PORT={port}"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.split()
    home = tmp_path_factory.mktemp("lab")
    settings = home / "settings" / "@jupyterlab" / "docmanager-extension"
    settings.mkdir(parents=True)
    (settings / "plugin.jupyterlab-settings").write_text(json.dumps({"autosave": False}))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), PYTHONPATH=str(ROOT),
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("MPLBACKEND", None)  # the kernel draws inline, as for a learner
    log = (home / "lab.log").open("w")
    proc = subprocess.Popen([str(jupyter), "lab", *args, f"--IdentityProvider.token={TOKEN}",
                             f"--LabApp.user_settings_dir={home / 'settings'}",
                             f"--LabApp.workspaces_dir={home / 'workspaces'}"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n" + (home / "lab.log").read_text()[-3000:])
                time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture
def page(lab, request):
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"])
    pg = browser.new_page(viewport={"width": 1400, "height": 900})
    pg.set_default_timeout(45000)
    failed_before = request.session.testsfailed
    try:
        yield pg
    finally:
        if request.session.testsfailed > failed_before:
            SHOTS.mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=str(SHOTS / f"{request.node.name}.png"), full_page=True)
        browser.close()
        pw.stop()


def _panel(pg, name: str):
    """The document panel of the current tab, once it shows file ``name``."""
    tab = pg.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current", has_text=name).first
    tab.wait_for()
    panel_id = tab.get_attribute("data-id")
    return pg.locator(f"#{panel_id}")


def _wait_idle(panel, timeout_s: float = 60.0) -> None:
    """Wait until every code cell of ``panel`` has run: a number in its prompt, none busy."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        prompts = panel.locator(".jp-CodeCell .jp-InputArea-prompt").all_text_contents()
        if prompts and all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts):
            return
        time.sleep(0.5)
    raise AssertionError(f"cells did not finish in {timeout_s:g} s: prompts {prompts}")


def _kernel_ready(pg) -> None:
    """Wait for the current notebook's kernel to be idle (status bar: "Python 3 (mmlab) | Idle");
    cells run before the kernel is up are dropped, not queued."""
    pg.locator("#jp-main-statusbar").get_by_text(re.compile(r"\|\s*Idle")).first.wait_for()


def _errors(panel) -> list[str]:
    """Texts of error outputs (tracebacks) in ``panel``."""
    texts = panel.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_text_contents()
    return [t for t in texts if re.search(r"Traceback|\w+Error\b", t)]


def _set_cell(pg, cell, text: str) -> None:
    editor = cell.locator(".cm-content")
    editor.click()
    pg.keyboard.press("Control+A")
    pg.keyboard.press("Delete")
    pg.keyboard.insert_text(text)  # as a paste: no auto-indent of typed newlines


def _saved_answer(path: Path, gid: str) -> str:
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # being written
        return "NotImplementedError"
    return next(c.source for c in nb.cells if nbgrader_meta(c).get("grade_id") == gid)


def _answers() -> tuple[str, str, str]:
    """The first answer of the welcome exercise: its grade_id, a wrong and the right text."""
    src = nbformat.read(ROOT / "solutions" / f"{CHAPTER}.ipynb", as_version=4)
    cell = next(c for c in src.cells if nbgrader_meta(c).get("solution") and c.cell_type == "code")
    lines = cell.source.splitlines()
    b = next(i for i, s in enumerate(lines) if s.strip() == BEGIN_SOLUTION)
    e = next(i for i, s in enumerate(lines) if s.strip() == END_SOLUTION)
    indent = lines[b][: len(lines[b]) - len(lines[b].lstrip())]
    right = "\n".join(lines[:b] + lines[b + 1:e] + lines[e + 1:])
    wrong = "\n".join(lines[:b] + [indent + "return -1"] + lines[e + 1:])
    return nbgrader_meta(cell)["grade_id"], wrong, right


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_landing_page_welcome_chapter_and_an_exercise_copy(lab, page):
    pg = page
    project = {p: p.read_bytes() for p in (ROOT / "notebooks").glob("*.ipynb")}
    project.update({p: p.read_bytes() for p in (ROOT / "exercises").glob("*.ipynb")})
    project[ROOT / "START_HERE.md"] = (ROOT / "START_HERE.md").read_bytes()
    work = ROOT / "test-output" / "lab-browser" / f"work-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        # 1. `/` opens the landing page, which links the chapters.
        pg.goto(f"{lab}/?token={TOKEN}")
        landing = _panel(pg, "START_HERE.md")
        landing.locator(".jp-RenderedMarkdown h1", has_text="Start here").wait_for()  # rendered, not source
        assert "/lab/tree/START_HERE.md" in pg.url

        # 2. Its link opens the welcome chapter; Run All renders outputs and no error.
        landing.get_by_role("link", name=re.compile(r"^00 · Welcome")).first.click()
        chapter = _panel(pg, f"{CHAPTER}.ipynb")
        chapter.locator(".jp-Notebook-cell").first.wait_for()
        _kernel_ready(pg)
        pg.get_by_role("menuitem", name="Run", exact=True).click()
        pg.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
        _wait_idle(chapter)
        outputs = chapter.locator(".jp-OutputArea-output").all_text_contents()
        assert len(outputs) >= 3 and any("mmlab" in t for t in outputs), outputs[:5]
        assert not _errors(chapter), _errors(chapter)

        # 3. A learner copy: made by `mmlab start`, opened, one answer filled and checked.
        made = subprocess.run([sys.executable, "-m", "mmlab.cli", "start", CHAPTER[:2], "--dir", str(work)],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert made.returncode == 0 and f"your copy: {work / (CHAPTER + '.ipynb')}" in made.stdout, made
        rel = (work / f"{CHAPTER}.ipynb").relative_to(ROOT)
        pg.goto(f"{lab}/lab/tree/{rel}?token={TOKEN}")
        # (the restored workspace also has the chapter open under the same file name)
        copy = pg.locator(".jp-NotebookPanel", has=pg.locator(".jp-CodeCell", has_text="YOUR CODE HERE"))
        gid, wrong, right = _answers()
        copy.locator(".jp-CodeCell", has_text="YOUR CODE HERE").first.wait_for()
        _kernel_ready(pg)
        code = copy.locator(".jp-CodeCell")
        k = next(i for i, t in enumerate(code.all_text_contents()) if "YOUR CODE HERE" in t)
        answer, check = code.nth(k), code.nth(k + 1)  # the first answer and its visible check
        assert "mmlab.teach.checks" in check.text_content()
        for text, passes in ((wrong, False), (right, True)):
            before = check.locator(".jp-InputArea-prompt").text_content().strip()
            _set_cell(pg, answer, text)
            pg.keyboard.press("Shift+Enter")      # run the answer; the check cell is next
            pg.keyboard.press("Shift+Enter")      # run the check
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                now = check.locator(".jp-InputArea-prompt").text_content().strip()
                if now != before and re.fullmatch(r"\[\d+\]:", now):
                    break
                time.sleep(0.3)
            else:
                raise AssertionError(f"the check cell did not run (prompt {now!r})")
            time.sleep(0.5)
            feedback = " ".join(check.locator(".jp-OutputArea-output").all_text_contents())
            if passes:
                assert not re.search(r"Error|expected", feedback), f"{gid}: the right answer failed: {feedback}"
            else:
                assert re.search(r"expected .+ got -1", feedback), f"{gid}: no expected-vs-got feedback: {feedback!r}"

        # 4. Check yourself: save, run the copy's last cell; it grades the saved copy (no sandbox).
        pg.keyboard.press("Escape")
        pg.keyboard.press("Control+s")
        deadline = time.monotonic() + 20
        while "NotImplementedError" in _saved_answer(work / f"{CHAPTER}.ipynb", gid):
            if time.monotonic() > deadline:
                raise AssertionError("Ctrl+S did not save the copy")
            time.sleep(0.3)
        last = code.nth(code.count() - 1)
        last.locator(".cm-content").click()
        pg.keyboard.press("Control+Enter")  # run in place
        last.locator(".jp-OutputArea-output", has_text="points from the autograded tasks").wait_for(timeout=150_000)
        text = " ".join(last.locator(".jp-OutputArea-output").all_text_contents())
        assert str(work / f"{CHAPTER}.ipynb") in text and "'grade_id'" not in text  # a table, not a record
        assert re.search(rf"{gid.replace('_answer', '_test')}\s+1/1\s+ok", text), text
    finally:
        shutil.rmtree(work, ignore_errors=True)
    changed = [str(p.relative_to(ROOT)) for p, before in project.items() if p.read_bytes() != before]
    assert not changed, f"the browser session wrote project notebooks: {changed}"
