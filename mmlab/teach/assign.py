"""``mmlab assign``: generate ``exercises/`` from ``solutions/``.

For every ``solutions/NN_topic.ipynb``:

* code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes
  ``# YOUR CODE HERE`` + ``raise NotImplementedError()`` at the marker's indentation;
  in markdown cells the region becomes ``YOUR ANSWER HERE``;
* ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` blocks are removed;
* outputs and execution counts are cleared; everything else is kept;
* answer and test cells get the ``raises-exception`` tag, so "Run All" in JupyterLab (and
  papermill in CI) carries on past a stub that is not written yet: the notebook runs to
  the end and stops only on its ``NotImplementedError`` stubs and the tests that need them;
* the notebook's metadata records its source (``metadata.mmlab.source``) so ``mmlab
  grade`` finds the solution even when a learner renames the file.

Generation is deterministic, so ``mmlab assign --check`` can compare text.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from mmlab.errors import NotebookError
from mmlab.teach.markers import (
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    cell_role,
    find_blocks,
    validate_source,
    where,
)

STUB_CODE = "# YOUR CODE HERE\nraise NotImplementedError()"
STUB_MARKDOWN = "YOUR ANSWER HERE"
ALLOW_ERRORS_TAG = "raises-exception"


def _strip_cell(source: str, blocks, markdown: bool) -> str:
    lines = source.splitlines()
    out: list[str] = []
    pos = 0
    for b in blocks:
        out.extend(lines[pos:b.begin])
        if b.kind == BEGIN_SOLUTION:
            stub = STUB_MARKDOWN if markdown else STUB_CODE
            out.extend(b.indent + s for s in stub.splitlines())
        pos = b.end + 1
    out.extend(lines[pos:])
    return "\n".join(out)


def make_exercise(nb, path: Path | str):
    """The exercise version of solution notebook ``nb`` (a new notebook; ``nb`` is untouched)."""
    validate_source(nb, path)
    ex = copy.deepcopy(nb)
    for i, cell in enumerate(ex.cells):
        blocks = find_blocks(cell.source, where(path, i, cell))
        if blocks:
            cell.source = _strip_cell(cell.source, blocks, markdown=cell.cell_type == "markdown")
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
        if cell_role(cell) in ("answer", "test") and cell.cell_type == "code":
            tags = list(cell.metadata.get("tags", []))
            if ALLOW_ERRORS_TAG not in tags:
                tags.append(ALLOW_ERRORS_TAG)
            cell.metadata["tags"] = tags
    ex.metadata["mmlab"] = {
        "source": Path(path).name,
        "generated": "by `mmlab assign` from solutions/; do not edit by hand",
    }
    return ex


def render(nb) -> str:
    """Notebook text as written to disk (stable, so files can be compared)."""
    return nbformat.writes(nb, version=4) + "\n"


@dataclass
class AssignReport:
    lines: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)


def assign_all(source_dir: Path, release_dir: Path, check: bool = False) -> AssignReport:
    """Generate (or, with ``check``, verify) every exercise from ``source_dir``.

    Also reports exercises with no solution source (stale leftovers). Raises
    :class:`NotebookError` for a malformed solution notebook.
    """
    source_dir, release_dir = Path(source_dir), Path(release_dir)
    if not source_dir.is_dir():
        raise NotebookError(f"{source_dir}: no such folder of solution notebooks")
    report = AssignReport()
    sources = sorted(source_dir.glob("*.ipynb"))
    for src in sources:
        try:
            nb = nbformat.read(src, as_version=4)
        except Exception as exc:
            raise NotebookError(f"{src}: not a readable notebook ({exc})") from exc
        text = render(make_exercise(nb, src))
        dest = release_dir / src.name
        current = dest.read_text() if dest.exists() else None
        if current == text:
            report.lines.append(f"up to date: {dest}")
            continue
        if check:
            report.stale.append(str(dest))
            why = "missing" if current is None else "out of date"
            report.lines.append(f"{why}: {dest} (run `mmlab assign`)")
        else:
            release_dir.mkdir(parents=True, exist_ok=True)
            dest.write_text(text)
            report.lines.append(f"wrote: {dest}")
    names = {s.name for s in sources}
    for extra in sorted(release_dir.glob("*.ipynb")) if release_dir.is_dir() else []:
        if extra.name not in names:
            report.stale.append(str(extra))
            report.lines.append(f"no solution source for {extra} (delete it or add solutions/{extra.name})")
    return report
