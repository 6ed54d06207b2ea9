"""``mmlab book``: the course as a static website (Sphinx + MyST-NB + the book theme).

The site is built from a staged copy of the project under ``OUT/src`` and written to
``OUT/html`` (``OUT`` defaults to ``_build/book``):

* the first page is the README (read at build time, its links to files outside the book
  turned into plain text), followed by the course map (``docs/syllabus.md``), the other
  ``docs/`` pages, one section per part of the course and the exercises;
* each chapter (``notebooks/NN_*.ipynb``) shows the outputs of a papermill run taken from
  the execution cache (:mod:`mmlab.teach.execute`: full runs, or FAST runs with ``fast=True``),
  merged under the current markdown, with an admonition after its header saying how to open
  it in JupyterLab and linking its exercise, and alt text on every figure;
* the exercises (``exercises/``) are shown unexecuted;
* math is rendered by the MathJax copy of ``jupyter_server_mathjax``, served from the site
  itself (no network);
* Sphinx runs with ``-W --keep-going``: any warning (broken link, missing figure, page in no
  table of contents) fails the build, and all of them are reported.

The syllabus (``docs/syllabus.md``) is generated from the chapters' headers by
:func:`render_syllabus` (``mmlab book --syllabus`` rewrites it).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from mmlab.errors import MMLabError
from mmlab.teach import execute as ex

PARTS = {
    "0": "Part 0 · Welcome and data",
    "1": "Part 1 · Single modalities",
    "2": "Part 2 · Alignment and representation",
    "3": "Part 3 · Fusion",
    "4": "Part 4 · Robustness and interpretability",
    "5": "Part 5 · Systems",
    "6": "Part 6 · Deployment",
}
ADMONITION_TAG = "mmlab-book-open"
STAGED = ("notebooks", "exercises", "docs")  # the repo folders the book contains
_LINK = re.compile(r"(?<!!)\[([^\]\n]*)\]\(([^)\s]+)\)")
_TIME = re.compile(r"\*\*Time:\*\*\s*(\d+)\s*minutes")
_PREREQ = re.compile(r"\*\*Prerequisites:\*\*\s*(.*?)(?=\*\*Time:\*\*|\n\s*\n|$)", re.S)


# ----------------------------------------------------------------------------- chapters
@dataclass
class Chapter:
    """What a chapter's header (its first markdown cell) says about it."""

    path: Path
    number: str
    title: str
    goals: list[str]
    prerequisites: str | None
    minutes: int | None

    @property
    def stem(self) -> str:
        return self.path.stem


def chapters(notebooks: Path) -> list[Chapter]:
    """The chapters ``NN_*.ipynb`` of ``notebooks`` in order, read from their headers."""
    import nbformat

    found = []
    for path in sorted(Path(notebooks).glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        head = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
        title = next((line[2:].strip() for line in head.splitlines() if line.startswith("# ")), path.stem)
        goals, in_goals = [], False
        for line in head.splitlines():
            if "learning goals" in line.lower():
                in_goals = True
                continue
            if in_goals:
                m = re.match(r"\s*\d+\.\s+(.*)", line)
                if m:
                    goals.append(m.group(1).strip())
                elif line.startswith("   ") and goals:
                    goals[-1] += " " + line.strip()
                elif line.strip():
                    break
        prereq = _PREREQ.search(head)
        minutes = _TIME.search(head)
        found.append(Chapter(path, path.name[:2], title, goals,
                             " ".join(prereq.group(1).split()) if prereq else None,
                             int(minutes.group(1)) if minutes else None))
    return found


# The three paths through the course (chapter numbers). Beginner: the workbook, the data and
# every single modality, one fusion chapter and one complete system. Intermediate: parts 0-4
# (alignment, representation, fusion, robustness) and two systems. Mastery: everything.
PATHS = {
    "Beginner": ("00", "05", "10", "11", "12", "13", "14", "15", "30", "50"),
    "Intermediate": ("00", "05", "10", "11", "12", "13", "14", "15", "20", "21", "22", "30", "31",
                     "40", "41", "50", "51"),
    "Mastery": None,  # every chapter
}
PATH_TEXT = {
    "Beginner": "one modality at a time, then one fusion chapter and one complete system: "
                "for learners new to signals or to machine learning.",
    "Intermediate": "adds alignment, shared representations (CCA, contrastive), deep fusion, "
                    "robustness and calibration, and a second system.",
    "Mastery": "the whole course, including federated learning with differential privacy (52), "
               "predictive maintenance (53) and deployment (60).",
}


def _hours(minutes: int) -> str:
    return f"{minutes} minutes ({minutes / 60:.1f} h)"


def render_syllabus(notebooks: Path) -> str:
    """docs/syllabus.md, generated from the chapters' headers (time, prerequisites, goals)."""
    chs = chapters(notebooks)
    missing = [c.stem for c in chs if c.minutes is None]
    total = sum(c.minutes or 0 for c in chs)
    out = io.StringIO()
    w = out.write
    w("# Syllabus: the course map\n\n")
    w("<!-- Generated from the chapters' headers by `mmlab book --syllabus`; do not edit by hand "
      "(tests/test_book.py checks it is current). -->\n\n")
    w("Each chapter states its learning goals, its prerequisites and the time a learner needs to "
      "read it and do its exercise (the `**Time:**` line of its header). ")
    w(f"**Total course time: {_hours(total)}** over {len(chs)} chapters")
    w(f" (without {', '.join(missing)}, whose header gives no time yet).\n\n" if missing else ".\n\n")
    w("## Paths through the course\n\n| path | chapters | time |\n|---|---|---|\n")
    for name, numbers in PATHS.items():
        picked = [c for c in chs if numbers is None or c.number in numbers]
        minutes = sum(c.minutes or 0 for c in picked)
        w(f"| **{name}** | {', '.join(c.number for c in picked)} | {_hours(minutes)} |\n")
    w("\n")
    for name in PATHS:
        w(f"* **{name}**: {PATH_TEXT[name]}\n")
    w("\n## Chapters\n\n| chapter | part | time | prerequisites |\n|---|---|---|---|\n")
    for c in chs:
        t = f"{c.minutes} min" if c.minutes is not None else "not stated"
        w(f"| [{c.title}](../notebooks/{c.path.name}) | {c.number[0]} | {t} | "
          f"{(c.prerequisites or 'none stated').replace('|', '/')} |\n")
    w("\n## Learning objectives\n")
    for c in chs:
        w(f"\n### {c.title}\n\n")
        t = f"{c.minutes} minutes" if c.minutes is not None else "not stated"
        w(f"*Time:* {t}. *Prerequisites:* {c.prerequisites or 'none stated'}\n\n")
        for g in c.goals or ["(the header lists no numbered learning goals)"]:
            w(f"1. {g}\n")
    return out.getvalue()


def syllabus_times(text: str) -> dict[str, int | None]:
    """Chapter number -> minutes as written in a rendered syllabus's chapter table."""
    found = {}
    for m in re.finditer(r"^\| \[(\d\d)[^\]]*\]\([^)]*\) \| \d \| (\d+ min|not stated) \|", text, re.M):
        found[m.group(1)] = int(m.group(2).split()[0]) if m.group(2) != "not stated" else None
    return found


# ----------------------------------------------------------------------------- staging
def _rewrite_links(text: str, source: Path, root: Path) -> str:
    """Links to repo files outside the book become plain text (the book has no page for them);
    links to missing files are left for Sphinx to report."""
    def fix(m):
        label, target = m.group(1), m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            return m.group(0)
        resolved = (source.parent / target.split("#")[0]).resolve()
        try:
            rel = resolved.relative_to(root)
        except ValueError:
            return m.group(0)
        if not resolved.exists():
            return m.group(0)
        inside = rel.parts and rel.parts[0] in STAGED and resolved.is_file() and \
            resolved.suffix in (".md", ".ipynb", ".png", ".jpg", ".svg", ".gif")
        return m.group(0) if inside else label
    return _LINK.sub(fix, text)


def _admonition(ch: Chapter, root: Path, fast: bool) -> str:
    exercise = root / "exercises" / ch.path.name
    lines = ["```{admonition} Open this chapter in JupyterLab", ":class: tip", "",
             f"Run `make lab` at the project root (see the first page) and open "
             f"`notebooks/{ch.path.name}`; run its cells from the top (*Run ▸ Run All Cells*). "
             "Set `FAST = True` in its parameters cell for a quick run."]
    if exercise.is_file():
        lines += ["", f"**Exercise:** [the graded exercise of chapter {ch.number}](../exercises/{ch.path.name}) "
                      f"(`exercises/{ch.path.name}`). Work in your own copy: `mmlab start {ch.number}` puts one "
                      f"in `work/`, and its *Check yourself* cell grades it; never work in `exercises/`, "
                      "which `mmlab assign` regenerates."]
    if fast:
        lines += ["", "The outputs on this page come from a FAST run (small data, few iterations)."]
    lines.append("```")
    return "\n".join(lines)


WIDGET = "application/vnd.jupyter.widget-view+json"


def _drop_widgets(nb) -> None:
    """Progress-bar widgets (tqdm.auto) keep their text form: a static page has no widget
    manager, and MyST-NB would load one from a CDN (the book must work offline)."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            data = out.get("data")
            if data is not None and WIDGET in data:
                del data[WIDGET]
                if not data:
                    continue
            kept.append(out)
        cell.outputs = kept


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _mathjax_dir() -> Path:
    import jupyter_server_mathjax

    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (static / "MathJax.js").is_file():
        raise MMLabError(f"jupyter_server_mathjax has no MathJax.js under {static}")
    return static


CONF = '''\
# Generated by mmlab.teach.book; edit that module, not this file.
project = "mmlab"
author = "mmlab developers"
copyright = "mmlab developers; code MIT, notebook prose CC BY 4.0"
extensions = ["myst_nb"]
html_theme = "sphinx_book_theme"
html_title = "mmlab: multimodal data analysis"
html_static_path = ["_static"]
html_theme_options = {"show_toc_level": 2, "home_page_in_toc": True}
root_doc = "index"
exclude_patterns = ["_static/**", "**/.ipynb_checkpoints"]
myst_enable_extensions = ["dollarmath", "colon_fence", "html_image"]
myst_heading_anchors = 3
nb_execution_mode = "off"
nb_merge_streams = True
# MathJax 2 from the site itself (copied from jupyter_server_mathjax): no network needed.
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
mathjax3_config = None
mathjax2_config = {"tex2jax": {"inlineMath": [["\\\\(", "\\\\)"]], "displayMath": [["\\\\[", "\\\\]"]],
                               "processEscapes": True,
                               # MyST-NB marks notebook pages tex2jax_ignore; typeset its math nodes
                               "processClass": "math|output_area|tex2jax_process"},
                    # the package ships the STIX web fonts only (not MathJax's default TeX fonts)
                    "HTML-CSS": {"availableFonts": [], "webFont": "STIX-Web", "imageFont": None},
                    "SVG": {"font": "STIX-Web"}}
suppress_warnings = SUPPRESS
'''
# Header levels that skip one (an H1 then an H3) are style, not breakage; everything else is
# an error.
SUPPRESS = ["myst.header"]


@dataclass
class BookResult:
    """What a build did: where the site is, the chapters' runs, warnings, timings."""

    html: Path
    runs: list
    warnings: list[str]
    seconds: float
    figures: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.warnings and all(r.error is None for r in self.runs)


def stage(root: Path, src: Path, runs: dict[str, Path], fast: bool) -> dict[str, int]:
    """Write the Sphinx source tree under ``src``; returns figures per chapter."""
    import nbformat

    root = Path(root).resolve()
    if src.exists():
        shutil.rmtree(src)
    for sub in ("_static", "notebooks", "exercises", "docs"):
        (src / sub).mkdir(parents=True)
    shutil.copytree(_mathjax_dir(), src / "_static" / "mathjax")
    chs = chapters(root / "notebooks")
    figures = {}
    for ch in chs:
        current = nbformat.read(ch.path, as_version=4)
        nb = ex.merge_outputs(current, nbformat.read(runs[ch.stem], as_version=4))
        ex.add_alt_text(nb)
        _drop_widgets(nb)
        figures[ch.stem] = len(ex.figures(nb))
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = _rewrite_links(cell.source, ch.path, root)
        nb.cells.insert(1, nbformat.v4.new_markdown_cell(_admonition(ch, root, fast),
                                                         metadata={"tags": [ADMONITION_TAG]}))
        nbformat.write(nb, src / "notebooks" / ch.path.name)
    if (root / "notebooks" / "figures").is_dir():
        shutil.copytree(root / "notebooks" / "figures", src / "notebooks" / "figures", dirs_exist_ok=True)
    exercises = sorted((root / "exercises").glob("[0-9][0-9]_*.ipynb"))
    for path in exercises:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = _rewrite_links(cell.source, path, root)
        nbformat.write(nb, src / "exercises" / path.name)
    docs = sorted((root / "docs").glob("*.md"))
    for path in docs:
        _write(src / "docs" / path.name, _rewrite_links(path.read_text(), path, root))
    if not (root / "docs" / "syllabus.md").is_file():
        _write(src / "docs" / "syllabus.md", render_syllabus(root / "notebooks"))
    readme = root / "README.md"
    index = [_rewrite_links(readme.read_text(), readme, root), ""]

    def toctree(caption, entries):
        index.extend(["```{toctree}", f":caption: {caption}", ":hidden:", ""] + entries + ["```", ""])

    order = ["syllabus", "instructor"]
    names = sorted({p.stem for p in docs} | {"syllabus"}, key=lambda s: (s not in order, order.index(s) if s in order else 0, s))
    toctree("Course", [f"docs/{n}" for n in names])
    for part, caption in PARTS.items():
        entries = [f"notebooks/{c.stem}" for c in chs if c.number[0] == part]
        if entries:
            toctree(caption, entries)
    toctree("Exercises", [f"exercises/{p.stem}" for p in exercises])
    _write(src / "index.md", "\n".join(index))
    _write(src / "conf.py", CONF.replace("SUPPRESS", repr(SUPPRESS)))
    return figures


def build(root=".", out=None, *, fast: bool = False, jobs: int = 1, data_dir=None, cache_dir=None,
          log=print) -> BookResult:
    """Execute (or reuse) every chapter, stage the book and run Sphinx; see the module docs."""
    from sphinx.cmd.build import build_main

    start = time.perf_counter()
    root = Path(root).resolve()
    out = Path(out).resolve() if out else root / "_build" / "book"
    cache_dir = Path(cache_dir) if cache_dir else root / "_build" / "cache"
    paths = [c.path for c in chapters(root / "notebooks")]
    if not paths:
        raise MMLabError(f"no chapters (NN_*.ipynb) under {root / 'notebooks'}")
    runs = ex.execute_many(paths, jobs=jobs, fast=fast, cache_dir=cache_dir, data_dir=data_dir, log=log)
    failed = [r for r in runs if r.error]
    if failed:
        raise MMLabError("chapters failed to execute: " + "; ".join(
            f"{r.source.name} ({r.error}; executed copy: {r.failed_copy})" for r in failed))
    figures = stage(root, out / "src", {r.source.stem: r.executed for r in runs}, fast)
    html = out / "html"
    warnfile = out / "warnings.txt"
    log(f"building the site with Sphinx -> {html}")
    argv = ["-b", "html", "-E", "-q", "-W", "--keep-going", "-w", str(warnfile),
            "-j", str(jobs), str(out / "src"), str(html)]
    code = build_main(argv)
    warnings = [w for w in warnfile.read_text().splitlines() if w.strip()] if warnfile.exists() else []
    if code and not warnings:
        warnings = [f"sphinx-build exited with {code}"]
    seconds = time.perf_counter() - start
    (out / "build.json").write_text(json.dumps({
        "fast": fast, "seconds": round(seconds, 1), "warnings": warnings, "figures": figures,
        "runs": [{"chapter": r.source.name, "cached": r.cached, "seconds": round(r.seconds, 1)} for r in runs],
    }, indent=1))
    return BookResult(html, runs, warnings, seconds, figures)
