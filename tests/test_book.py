"""The course as a website (``mmlab book``) and its syllabus.

The FAST book is built once per session from the chapter runs in ``_build/cache/fast`` that
``tests/test_notebooks.py`` makes (under ``pytest -n 2`` whichever worker reaches a chapter
first executes it; the other waits on its lock and reuses the run), so the build adds the
Sphinx step, not a second execution of the course. Sphinx runs with ``-W``: any warning
(broken link, missing figure, page in no table of contents) fails ``test_book_has_no_warnings``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from mmlab.teach import book
from mmlab.teach.execute import figure_alt, merge_outputs, unlabelled_axes

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = book.chapters(ROOT / "notebooks")
IDS = [c.stem for c in CHAPTERS]


# ----------------------------------------------------------------------------- syllabus
@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_chapter_header_states_time_and_prerequisites(chapter):
    assert chapter.minutes is not None, (
        f"notebooks/{chapter.path.name}: its header (first markdown cell) has no "
        f"'**Time:** N minutes' line; the syllabus needs it")
    assert chapter.prerequisites, f"notebooks/{chapter.path.name}: its header has no '**Prerequisites:**' line"


def test_syllabus_is_current_with_the_chapter_headers():
    text = (ROOT / "docs" / "syllabus.md").read_text()
    times = book.syllabus_times(text)
    expected = {c.number: c.minutes for c in CHAPTERS}
    assert times == expected, (f"docs/syllabus.md times {times} differ from the chapter headers "
                               f"{expected}; regenerate it with `mmlab book --syllabus`")
    total = sum(m or 0 for m in expected.values())
    assert f"**Total course time: {total} minutes" in text, f"the syllabus's total is not {total} minutes"
    assert text == book.render_syllabus(ROOT / "notebooks"), \
        "docs/syllabus.md is stale; regenerate it with `mmlab book --syllabus`"


def test_syllabus_paths_add_up():
    text = book.render_syllabus(ROOT / "notebooks")
    rows = dict(re.findall(r"^\| \*\*(\w+)\*\* \| [\d, ]+ \| (\d+) minutes", text, re.M))
    minutes = {c.number: c.minutes or 0 for c in CHAPTERS}
    assert int(rows["Mastery"]) == sum(minutes.values())
    assert int(rows["Beginner"]) == sum(minutes[n] for n in book.PATHS["Beginner"])
    assert int(rows["Beginner"]) < int(rows["Intermediate"]) < int(rows["Mastery"])


def test_header_parsing_known_answer(tmp_path):
    import nbformat

    head = ("# 99 · A test chapter\n\nText.\n\n**Learning goals**\n1. Do one thing.\n2. Do a\n   second thing.\n\n"
            "**Prerequisites:** 05_data; NumPy. **Time:** 35 minutes (FAST: a minute).")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(head)]), tmp_path / "99_t.ipynb")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 98 · No time\n")]),
                   tmp_path / "98_t.ipynb")
    no_time, ch = book.chapters(tmp_path)
    assert (ch.number, ch.title, ch.minutes, ch.prerequisites) == ("99", "99 · A test chapter", 35, "05_data; NumPy.")
    assert ch.goals == ["Do one thing.", "Do a second thing."]
    assert no_time.minutes is None and no_time.prerequisites is None
    text = book.render_syllabus(tmp_path)
    assert book.syllabus_times(text) == {"98": None, "99": 35}
    assert "without 98_t" in text


# ----------------------------------------------------------------------------- executor helpers
def test_alt_text_and_label_check_known_answer():
    import nbformat

    good = {"suptitle": "", "axes": [{"title": "tachogram", "xlabel": "time (s)", "ylabel": "RR (ms)",
                                      "data": True, "image": False}]}
    bad = {"suptitle": "", "axes": [{"title": "", "xlabel": "", "ylabel": "mV", "data": True, "image": False}]}
    assert figure_alt(good) == "tachogram: RR (ms) against time (s)"

    def nb_with(desc):
        out = nbformat.v4.new_output("display_data", data={"image/png": "iVBOR"}, metadata={"mmlab": desc})
        return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("plot()", outputs=[out])])

    assert unlabelled_axes(nb_with(good)) == []
    problems = unlabelled_axes(nb_with(bad))
    assert len(problems) == 2 and "no title" in problems[0] and "x label ''" in problems[1]


def test_merge_outputs_keeps_current_markdown_and_refuses_other_code():
    import nbformat
    from mmlab.errors import MMLabError

    ran = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("old text"),
        nbformat.v4.new_code_cell("x = 1\nx", outputs=[nbformat.v4.new_output("execute_result", data={"text/plain": "1"})]),
        nbformat.v4.new_code_cell("# Parameters\nFAST = True", metadata={"tags": ["injected-parameters"]})])
    now = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("new text"), nbformat.v4.new_code_cell("x = 1\nx")])
    merged = merge_outputs(now, ran)
    assert merged.cells[0].source == "new text" and merged.cells[1].outputs[0]["data"]["text/plain"] == "1"
    assert len(merged.cells) == 2
    now.cells[1].source = "x = 2\nx"
    with pytest.raises(MMLabError, match="code cells"):
        merge_outputs(now, ran)


# ----------------------------------------------------------------------------- the FAST book
@pytest.fixture(scope="module")
def built(tmp_path_factory, request):
    """The FAST book, built once per test run: under pytest-xdist the workers share the run's
    temporary folder, and the first to take the lock builds while the other waits and reuses it."""
    import fcntl
    import json

    base = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):  # an xdist worker: the run's folder is shared
        base = base.parent
    out = base / "book"
    out.mkdir(parents=True, exist_ok=True)
    with open(base / "book.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / "build.json").is_file():
            done = json.loads((out / "build.json").read_text())
            return book.BookResult(out / "html", [], done["warnings"], done["seconds"], done["figures"])
        return book.build(ROOT, out, fast=True, jobs=1, data_dir=os.environ.get("MMLAB_DATA_DIR"),
                          cache_dir=ROOT / "_build" / "cache", log=lambda line: None)


def _page(built, rel: str) -> str:
    path = built.html / rel
    assert path.is_file(), f"the book has no page {rel}"
    return path.read_text()


@pytest.mark.notebook
@pytest.mark.timeout(3600)
def test_book_has_no_warnings(built):
    assert not built.warnings, "Sphinx warnings (errors with -W):\n" + "\n".join(built.warnings)


@pytest.mark.notebook
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_chapter_page_has_figures_with_alt_text_and_exercise_link(built, chapter):
    html = _page(built, f"notebooks/{chapter.stem}.html")
    assert f'href="../exercises/{chapter.stem}.html' in html, f"{chapter.stem}: no link to its exercise"
    assert "Open this chapter in JupyterLab" in html
    imgs = re.findall(r"<img [^>]*>", html)
    assert imgs, f"{chapter.stem}: its page shows no figure"
    no_alt = [i for i in imgs if not re.search(r'alt="[^"]+"', i)]
    assert not no_alt, f"{chapter.stem}: images without alt text: {no_alt[:3]}"


@pytest.mark.notebook
@pytest.mark.timeout(3600)
def test_book_renders_math_with_its_own_mathjax(built):
    assert (built.html / "_static" / "mathjax" / "MathJax.js").is_file()
    pages = [p.read_text() for p in (built.html / "notebooks").glob("*.html")]
    assert any('class="math' in p for p in pages), "no math markup in any chapter page"
    scripts = set(re.findall(r'<script[^>]*src="([^"]*MathJax[^"]*)"', "".join(pages)))
    assert scripts and all(s.startswith("../_static/mathjax/MathJax.js") for s in scripts), scripts
    for config in {m for s in scripts for m in re.findall(r"config=([\w-]+)", s)}:
        assert (built.html / "_static" / "mathjax" / "config" / f"{config}.js").is_file(), config


@pytest.mark.notebook
@pytest.mark.timeout(3600)
def test_math_typesets_offline_in_a_browser(built):
    """MathJax, served by the site itself, typesets a chapter's equations in headless Chromium,
    and the page requests nothing from the network."""
    import functools
    import http.server
    import shutil
    import threading

    if not shutil.which("chromium"):
        pytest.skip("chromium is not installed (`make browser` installs it)")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    page_rel = next((f"notebooks/{c.stem}.html" for c in CHAPTERS
                     if 'class="math' in (built.html / "notebooks" / f"{c.stem}.html").read_text()), None)
    assert page_rel, "no chapter page has math"
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(built.html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page()
            outside = []
            page.on("request", lambda r: outside.append(r.url) if r.url.startswith(("http:", "https:"))
                    and not r.url.startswith(base) else None)
            page.goto(base + page_rel)
            page.wait_for_function("() => document.querySelectorAll('.MathJax, .MathJax_Display').length > 0",
                                   timeout=30000)
            browser.close()
    finally:
        server.shutdown()
    assert not outside, f"the page fetched from the network: {outside[:5]}"


@pytest.mark.notebook
@pytest.mark.timeout(3600)
def test_book_has_search_readme_first_and_every_page(built):
    assert (built.html / "searchindex.js").is_file() and (built.html / "search.html").is_file()
    first_line = (ROOT / "README.md").read_text().splitlines()[0].lstrip("# ").strip()
    index = _page(built, "index.html")
    text = " ".join(re.sub(r"<[^>]+>", " ", index).split())
    assert first_line in text and "make lab" in text and "make test" in text, "the first page is not the README"
    chapter = _page(built, f"notebooks/{CHAPTERS[0].stem}.html")
    nav = re.findall(r'<a class="reference internal" href="([^"#]+)"', chapter)
    assert nav[:2] == ["../index.html", "../docs/syllabus.html"], f"the README page is not first: {nav[:3]}"
    for path in sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb")):
        _page(built, f"exercises/{path.stem}.html")
    for path in sorted((ROOT / "docs").glob("*.md")):
        _page(built, f"docs/{path.stem}.html")


@pytest.mark.notebook
@pytest.mark.timeout(600)
def test_executor_captures_figures_caches_and_locks(tmp_path, monkeypatch):
    """A two-cell notebook: run once (figure captured under MPLBACKEND=Agg, with its labels),
    then from the cache; a markdown edit keeps the cache, a code edit does not; a chapter whose
    lock another process holds is skipped with wait=False."""
    import fcntl

    import nbformat
    from mmlab.teach import execute as ex

    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 99 · probe"),
        nbformat.v4.new_code_cell("FAST = False\nSEED = 1\nDATA_DIR = None", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n"
                                  "ax.plot([0, 1], [1, 0])\nax.set(title='probe', xlabel='time (s)')\nprint(FAST, SEED)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "99_probe.ipynb"
    nbformat.write(nb, path)
    cache = tmp_path / "cache"
    first = ex.execute(path, fast=True, cache_dir=cache, library="x")
    assert first.error is None and not first.cached
    done = nbformat.read(first.executed, as_version=4)
    assert not any(ex.SETUP_TAG in c.metadata.get("tags", []) for c in done.cells)
    assert "True 0" in "".join(o.get("text", "") for c in done.cells for o in c.get("outputs", []))
    (i, desc), = ex.figures(done)
    assert desc["axes"][0]["title"] == "probe" and desc["axes"][0]["xlabel"] == "time (s)"
    assert ex.unlabelled_axes(done) == [f"cell {i} axes 0 ('probe'): x label 'time (s)', y label ''"]
    nb.cells[0].source = "# 99 · probe, reworded"
    nbformat.write(nb, path)
    assert ex.execute(path, fast=True, cache_dir=cache, library="x").cached
    with open(cache / "fast" / "99_probe.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert ex.execute(path, fast=True, cache_dir=cache, library="x", wait=False) is None
    nb.cells[2].source += "\nax.set_ylabel('amplitude')"
    nbformat.write(nb, path)
    second = ex.execute(path, fast=True, cache_dir=cache, library="x")
    assert not second.cached and ex.unlabelled_axes(nbformat.read(second.executed, as_version=4)) == []
    assert not first.executed.exists(), "the stale run was not removed"
