"""The course's conventions, chapter by chapter (issue 16; docs/instructor.md "Writing a task").

Every chapter writes its measures as equations (its header, prerequisites and time are checked
with the syllabus in tests/test_book.py); every
solution notebook gives each graded task a "why this matters" line and a collapsed hint, and
has at least one written answer graded by a person. These checks read the notebooks' text,
so a chapter that loses its equations or a task that loses its hint fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from mmlab.teach.markers import BEGIN_SOLUTION, cell_role, is_manual, nbgrader_meta

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
DISPLAY_MATH = re.compile(r"\$\$.+?\$\$", re.S)
HINT = re.compile(r"<details>\s*<summary>\s*Hint\s*</summary>\s*\n\s*\n.+?\n\s*\n\s*</details>", re.S)
# The welcome chapter defines no measure; every other chapter does.
NO_EQUATIONS = {"00_welcome.ipynb"}


def _ids(paths):
    return [p.stem for p in paths]


def _read(path: Path):
    return nbformat.read(path, as_version=4)


@pytest.mark.parametrize("path", CHAPTERS, ids=_ids(CHAPTERS))
def test_chapter_writes_its_measures_as_equations(path):
    if path.name in NO_EQUATIONS:
        pytest.skip(f"{path.name} defines no measure")
    text = "\n".join(c.source for c in _read(path).cells if c.cell_type == "markdown")
    found = DISPLAY_MATH.findall(text)
    assert found, f"{path.name}: no display equation ($$ ... $$) in any markdown cell"
    for eq in found:
        assert eq.count("{") == eq.count("}"), f"{path.name}: unbalanced braces in {eq[:80]!r}"


def _task_statements(nb):
    """(statement cell, answer cell) for each answer cell: the markdown cell just before it."""
    pairs = []
    for i, cell in enumerate(nb.cells):
        if cell_role(cell) != "answer":
            continue
        j = i - 1
        while j >= 0 and nb.cells[j].cell_type != "markdown":
            j -= 1
        # consecutive answer cells of one task share the statement above the first
        if j >= 0 and cell_role(nb.cells[j]) == "answer":
            continue
        pairs.append((nb.cells[j] if j >= 0 else None, cell))
    return pairs


@pytest.mark.parametrize("path", SOLUTIONS, ids=_ids(SOLUTIONS))
def test_every_task_says_why_and_offers_a_hint(path):
    nb = _read(path)
    pairs = _task_statements(nb)
    assert pairs, f"{path.name}: no graded task"
    for statement, answer in pairs:
        gid = nbgrader_meta(answer)["grade_id"]
        assert statement is not None, f"{path.name}: answer {gid} has no task statement above it"
        assert "**Why this matters:**" in statement.source, \
            f"{path.name}: the statement of {gid} has no '**Why this matters:**' line"
        assert HINT.search(statement.source), \
            f"{path.name}: the statement of {gid} has no collapsed hint (<details><summary>Hint</summary> ...)"


@pytest.mark.parametrize("path", SOLUTIONS, ids=_ids(SOLUTIONS))
def test_every_solution_has_a_written_task_with_a_rubric(path):
    written = [c for c in _read(path).cells if is_manual(c)]
    assert written, f"{path.name}: no written answer (markdown cell with nbgrader solution and grade)"
    for cell in written:
        gid = nbgrader_meta(cell)["grade_id"]
        assert BEGIN_SOLUTION in cell.source, f"{path.name}: written answer {gid} has no model answer"
        assert re.search(r"\*\*Rubric", cell.source), f"{path.name}: written answer {gid} has no rubric"
