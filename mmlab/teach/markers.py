"""Cell markers and nbgrader metadata shared by ``assign`` and ``grade``.

A solution notebook marks what the learner must write::

    def heart_rate(rr_s):
        \"\"\"Mean heart rate in bpm from RR intervals in seconds.\"\"\"
        ### BEGIN SOLUTION
        return 60.0 / np.mean(rr_s)
        ### END SOLUTION

and what the learner must not see::

    \"\"\"heart_rate gives 60 bpm for 1 s intervals.\"\"\"
    assert heart_rate([1, 1, 1]) == 60
    ### BEGIN HIDDEN TESTS
    assert abs(heart_rate([0.5, 0.5]) - 120) < 1e-9
    ### END HIDDEN TESTS

Each graded cell carries nbgrader metadata (``metadata.nbgrader``): answer cells
``solution: true``, test cells ``grade: true`` with ``points`` and ``locked: true``, and
every one a unique ``grade_id``.

A **written answer** (graded by a person, as nbgrader's "manually graded answer") is a
markdown cell with ``solution: true``, ``grade: true`` and positive ``points``; its
``### BEGIN SOLUTION`` region holds the model answer and the rubric, which ``mmlab assign``
replaces by ``YOUR ANSWER HERE``. ``mmlab grade`` takes the learner's text and reports the
task as needing manual grading.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmlab.errors import NotebookError

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"

#: Tag of the "Check yourself" cells at the end of each notebook (they call
#: ``mmlab.teach.learner.check_yourself``); ``mmlab grade`` does not run them.
CHECK_YOURSELF_TAG = "mmlab-check-yourself"

_PAIRS = {BEGIN_SOLUTION: END_SOLUTION, BEGIN_HIDDEN: END_HIDDEN}
_ENDS = {v: k for k, v in _PAIRS.items()}


@dataclass(frozen=True)
class Block:
    """A marked region: the marker lines ``begin`` and ``end`` (0-based) and its kind."""

    kind: str  # BEGIN_SOLUTION or BEGIN_HIDDEN
    begin: int
    end: int
    indent: str


def _marker(line: str) -> str | None:
    text = line.strip()
    for m in (BEGIN_HIDDEN, END_HIDDEN, BEGIN_SOLUTION, END_SOLUTION):
        if text.startswith(m):
            return m
    return None


def find_blocks(source: str, where: str) -> list[Block]:
    """The marked blocks of one cell's source, or a :class:`NotebookError`.

    ``where`` names the notebook and cell for the message; line numbers in messages are
    1-based, as an editor shows them.
    """
    blocks: list[Block] = []
    open_: tuple[str, int, str] | None = None
    for i, line in enumerate(source.splitlines()):
        m = _marker(line)
        if m is None:
            continue
        if m in _PAIRS:
            if open_ is not None:
                raise NotebookError(
                    f"{where}, line {i + 1}: {m!r} inside the {open_[0]!r} opened on line "
                    f"{open_[1] + 1} (markers cannot be nested)"
                )
            open_ = (m, i, line[: len(line) - len(line.lstrip())])
        else:
            if open_ is None or _PAIRS[open_[0]] != m:
                expected = f"{_PAIRS[open_[0]]!r} for line {open_[1] + 1}" if open_ else "no end marker"
                raise NotebookError(f"{where}, line {i + 1}: {m!r} without its {_ENDS[m]!r} (expected {expected})")
            blocks.append(Block(open_[0], open_[1], i, open_[2]))
            open_ = None
    if open_ is not None:
        raise NotebookError(f"{where}, line {open_[1] + 1}: {open_[0]!r} is never closed with {_PAIRS[open_[0]]!r}")
    return blocks


def nbgrader_meta(cell) -> dict:
    """The cell's ``metadata.nbgrader`` dict (empty if it has none)."""
    return dict(cell.get("metadata", {}).get("nbgrader", {}) or {})


def is_manual(cell) -> bool:
    """True for a written answer graded by a person (markdown, ``solution`` and ``grade``)."""
    meta = nbgrader_meta(cell)
    return bool(meta.get("solution") and meta.get("grade")) and cell.get("cell_type") == "markdown"


def cell_role(cell) -> str:
    """``"test"`` (autograded), ``"answer"`` (learner writes it) or ``"plain"``.

    A written answer (:func:`is_manual`) is an ``"answer"``: the learner writes it.
    """
    meta = nbgrader_meta(cell)
    if meta.get("grade") and not meta.get("solution"):
        return "test"
    if meta.get("solution"):
        return "answer"
    return "plain"


def where(path: Path | str, index: int, cell) -> str:
    gid = nbgrader_meta(cell).get("grade_id")
    return f"{Path(path).name}: cell {index}" + (f" ({gid})" if gid else "")


def validate_source(nb, path: Path | str) -> None:
    """Check a solution notebook's markers and metadata; raise :class:`NotebookError`."""
    seen: dict[str, int] = {}
    for i, cell in enumerate(nb.cells):
        w = where(path, i, cell)
        blocks = find_blocks(cell.source, w)
        meta = nbgrader_meta(cell)
        role = cell_role(cell)
        if meta:
            gid = meta.get("grade_id")
            if not gid:
                raise NotebookError(f"{w}: nbgrader metadata without a grade_id")
            if gid in seen:
                raise NotebookError(f"{w}: grade_id {gid!r} is also used by cell {seen[gid]}")
            seen[gid] = i
        if meta.get("grade") and meta.get("solution"):
            if cell.cell_type != "markdown":
                raise NotebookError(f"{w}: a manually graded answer (grade and solution both true) must be a "
                                    "markdown cell (a written answer); code answers are graded by test cells")
            pts = meta.get("points")
            if not isinstance(pts, (int, float)) or pts <= 0:
                raise NotebookError(f"{w}: written answer needs positive 'points', has {pts!r}")
        if role == "test":
            pts = meta.get("points")
            if not isinstance(pts, (int, float)) or pts <= 0:
                raise NotebookError(f"{w}: test cell needs positive 'points', has {pts!r}")
            if cell.cell_type != "code":
                raise NotebookError(f"{w}: test cells must be code cells")
        if any(b.kind == BEGIN_SOLUTION for b in blocks) and role != "answer":
            raise NotebookError(f"{w}: has {BEGIN_SOLUTION!r} but is not marked as a solution cell "
                                "(metadata.nbgrader.solution = true)")
        if role == "answer" and not any(b.kind == BEGIN_SOLUTION for b in blocks):
            raise NotebookError(f"{w}: solution cell without a {BEGIN_SOLUTION!r} block")
        if any(b.kind == BEGIN_HIDDEN for b in blocks) and role != "test":
            raise NotebookError(f"{w}: hidden tests outside a test cell")
