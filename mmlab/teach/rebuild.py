"""Rebuild the notebook to grade from the instructor's source and the learner's answers.

Everything that is not an answer region comes from the solution source: the
parameters cell (with ``FAST = True`` injected after it), set-up and import cells,
visible and hidden tests. From the submission only two things are taken:

* **answer regions** — the cell carrying the source answer cell's ``grade_id``
  (first occurrence, same cell type);
* **cells the learner added** — cells that match no cell of the released exercise;
  they run right after the source cell that precedes them in the submission (before
  the first answer region when nothing precedes them).

Fallback when metadata is stripped (e.g. a notebook saved by another editor): the
submission's cells are aligned with the exercise released by ``mmlab assign`` by their
text (``difflib``); between two aligned cells, the unaligned submission cells stand in
for the answer cells of the exercise in that gap, in order. Cells the learner edited
that are not answers (an edited set-up or test cell) are treated as added cells.

A ``grade_id`` that is duplicated, unknown to the source or sitting on the wrong kind of
cell is ignored with a note. When too little of the submission matches the exercise it
does not belong to this assignment: :class:`Mismatch` is raised with a clear message.
"""

from __future__ import annotations

import copy
import difflib

import nbformat

from mmlab.teach.assign import make_exercise
from mmlab.teach.markers import CHECK_YOURSELF_TAG, cell_role, nbgrader_meta


class Mismatch(Exception):
    """The submission is not a version of this assignment."""


def _key(cell) -> tuple[str, str]:
    return cell.get("cell_type", "?"), "\n".join(
        line.rstrip() for line in str(cell.get("source", "")).strip().splitlines())


def _gid(cell):
    meta = cell.get("metadata", {})
    nb = meta.get("nbgrader") if isinstance(meta, dict) else None
    gid = nb.get("grade_id") if isinstance(nb, dict) else None
    return gid if isinstance(gid, str) else None


def _new_code(source: str, origin: str, **extra) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["mmlab_origin"] = origin
    cell.metadata.update(extra)
    return cell


def rebuild(sub, src, src_name: str = "source"):
    """Return ``(cells, notes)``: the code cells to run, in order, and notes for the learner.

    Each cell's ``metadata.mmlab_origin`` is ``source``, ``answer``, ``added`` or
    ``injected``; test cells keep the source's nbgrader metadata.
    """
    notes: list[str] = []
    ex = make_exercise(src, src_name)
    sub_cells = [c for c in (sub.get("cells") or []) if isinstance(c, dict)]
    src_role = {nbgrader_meta(c)["grade_id"]: (cell_role(c), c.cell_type)
                for c in src.cells if nbgrader_meta(c).get("grade_id")}

    # 1. grade_id matches (first occurrence, same role and cell type).
    matched: dict[int, int] = {}  # submission index -> exercise index
    ex_index = {nbgrader_meta(c).get("grade_id"): i for i, c in enumerate(ex.cells)
                if nbgrader_meta(c).get("grade_id")}
    seen: set[str] = set()
    for j, c in enumerate(sub_cells):
        gid = _gid(c)
        if gid is None:
            continue
        if gid not in src_role:
            notes.append(f"cell {j}: grade_id {gid!r} is not part of this assignment (ignored)")
            continue
        if gid in seen:
            notes.append(f"cell {j}: grade_id {gid!r} appears again (ignored; the first one counts)")
            continue
        if c.get("cell_type") != src_role[gid][1]:
            notes.append(f"cell {j}: grade_id {gid!r} is on a {c.get('cell_type')} cell (ignored)")
            continue
        seen.add(gid)
        matched[j] = ex_index[gid]

    # 2. Text alignment of everything else with the released exercise.
    ex_keys = [_key(c) for c in ex.cells]
    sub_keys = [_key(c) for c in sub_cells]
    sm = difflib.SequenceMatcher(a=sub_keys, b=ex_keys, autojunk=False)
    for a, b, n in sm.get_matching_blocks():
        for k in range(n):
            if a + k not in matched and b + k not in matched.values():
                matched[a + k] = b + k
    used_ex = set(matched.values())
    # Unmatched exercise answer cells take the unmatched submission cells of their gap.
    answers_found = {ex_i for ex_i in used_ex if cell_role(ex.cells[ex_i]) == "answer"}
    anchors = sorted(matched.items())  # (sub j, ex i), increasing in j
    gap_answer: dict[int, int] = {}  # submission index -> exercise answer index (fallback)
    prev_j, prev_i = -1, -1
    for j, i in anchors + [(len(sub_cells), len(ex.cells))]:
        if i < prev_i:
            prev_j = j
            continue
        missing = [x for x in range(prev_i + 1, i) if cell_role(ex.cells[x]) == "answer"
                   and x not in answers_found and ex.cells[x].cell_type == "code"]
        loose = [y for y in range(prev_j + 1, j) if sub_cells[y].get("cell_type") == "code"]
        if missing and loose:
            for y in loose:
                gap_answer[y] = missing[min(len(missing) - 1, loose.index(y))]
            answers_found.update(missing)
        prev_j, prev_i = j, i

    # Does the submission belong to this assignment at all?
    fixed = [i for i, c in enumerate(ex.cells) if c.cell_type == "code" and cell_role(c) != "answer"]
    hit = sum(1 for i in fixed if i in used_ex)
    if fixed and hit < max(1, len(fixed) // 2) and not any(cell_role(ex.cells[i]) == "answer" for i in used_ex):
        raise Mismatch(f"the submission does not match assignment {src_name}: only {hit} of its "
                       f"{len(fixed)} set-up and test cells were found (wrong notebook handed in?)")

    # 3. Build: source cells in source order; learner code attached to its anchor.
    answer_of: dict[int, list] = {}   # exercise answer index -> learner cells
    after: dict[int, list] = {}        # exercise index -> added cells after it
    first_answer = next((i for i, c in enumerate(ex.cells) if cell_role(c) == "answer"), 0)
    last_anchor = None
    for j, c in enumerate(sub_cells):
        if c.get("cell_type") != "code":
            if j in matched:
                last_anchor = matched[j]
            continue
        if "parameters" in (c.get("metadata", {}).get("tags") or []) if isinstance(c.get("metadata"), dict) else False:
            continue  # the parameters always come from the source
        text = str(c.get("source", ""))
        if j in matched:
            i = matched[j]
            last_anchor = i
            if cell_role(ex.cells[i]) == "answer":
                answer_of.setdefault(i, []).append(text)
            continue
        if j in gap_answer:
            i = gap_answer[j]
            answer_of.setdefault(i, []).append(text)
            last_anchor = i
            continue
        anchor = last_anchor if last_anchor is not None else first_answer - 1
        after.setdefault(anchor, []).append(text)

    cells = []

    def emit_added(i):
        for text in after.get(i, []):
            cells.append(_new_code(_strip_magics(text), "added"))

    emit_added(-1)
    for i, (s_cell, e_cell) in enumerate(zip(src.cells, ex.cells)):
        if s_cell.cell_type == "code":
            role = cell_role(s_cell)
            if role == "answer":
                texts = answer_of.get(i)
                if texts is None:
                    notes.append(f"answer {nbgrader_meta(s_cell)['grade_id']} is missing from the submission")
                    texts = [e_cell.source]  # the stub: raises NotImplementedError
                for t in texts:
                    cells.append(_new_code(_strip_magics(t), "answer",
                                           nbgrader={"grade_id": nbgrader_meta(s_cell)["grade_id"]}))
            elif CHECK_YOURSELF_TAG in s_cell.metadata.get("tags", []):
                pass  # the learner's self-check: grading the notebook from inside itself
            else:
                cell = _new_code(s_cell.source, "source")
                cell.metadata["nbgrader"] = copy.deepcopy(dict(s_cell.metadata.get("nbgrader", {})))
                cells.append(cell)
                if "parameters" in s_cell.metadata.get("tags", []):
                    cells.append(_new_code("# Injected by mmlab grade\nFAST = True", "injected"))
        emit_added(i)
    if not any(c.metadata["mmlab_origin"] == "injected" for c in cells):
        cells.insert(0, _new_code("# Injected by mmlab grade\nFAST = True", "injected"))
    return cells, notes


def _strip_magics(text: str) -> str:
    """Comment out IPython magics and shell escapes (the grader runs plain Python)."""
    out = []
    for line in text.splitlines():
        s = line.lstrip()
        out.append(line.replace(s, "# (not run by mmlab grade) " + s, 1) if s[:1] in ("%", "!") else line)
    return "\n".join(out)


def _setup_imports(src):
    """Every absolute ``import`` / ``from ... import`` node of the source's set-up cells
    (all code cells but answers; a cell that does not parse is skipped)."""
    import ast

    for c in src.cells:
        if c.cell_type != "code" or cell_role(c) == "answer":
            continue
        try:
            tree = ast.parse(_strip_magics(c.source))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom)
                                                and node.module and node.level == 0):
                yield node


def preimports(src) -> list[str]:
    """Top-level modules the source's set-up cells import (imported before learner code)."""
    import ast

    names: list[str] = []
    for node in _setup_imports(src):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        else:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return list(dict.fromkeys(names))


def aliases(src) -> list[str]:
    """``name=module`` / ``name=module:attr`` for every name the source's set-up imports.

    Before each test the runner binds these names back to the real objects, so a learner's
    ``np = FakeNumpy()`` cannot reach a test.
    """
    import ast

    out: list[str] = []
    for node in _setup_imports(src):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    out.append(f"{a.asname}={a.name}")
                else:
                    top = a.name.split(".")[0]
                    out.append(f"{top}={top}")
        else:
            out += [f"{a.asname or a.name}={node.module}:{a.name}" for a in node.names if a.name != "*"]
    return list(dict.fromkeys(out))


def written_answers(sub, src, src_name: str = "source") -> dict[str, str | None]:
    """The learner's text of every written answer (``markers.is_manual`` cells) of ``src``.

    ``{grade_id: text}``; ``None`` when the submission has no answer for it (the cell is
    missing or still holds ``YOUR ANSWER HERE``). The cell is found by its ``grade_id`` (a
    markdown cell); when metadata was stripped, it is the markdown cell right after the
    task's statement, unless that cell is one of the exercise's own cells.
    """
    from mmlab.teach.assign import STUB_MARKDOWN
    from mmlab.teach.markers import is_manual

    manual = [i for i, c in enumerate(src.cells) if is_manual(c)]
    if not manual:
        return {}
    ex = make_exercise(src, src_name)
    sub_cells = [c for c in (sub.get("cells") or []) if isinstance(c, dict)]
    ex_keys = {_key(c) for c in ex.cells}
    out: dict[str, str | None] = {}
    for i in manual:
        gid = nbgrader_meta(src.cells[i])["grade_id"]
        text = next((str(c.get("source", "")) for c in sub_cells
                     if _gid(c) == gid and c.get("cell_type") == "markdown"), None)
        if text is None and i > 0:
            before = _key(ex.cells[i - 1])
            for j, c in enumerate(sub_cells[:-1]):
                nxt = sub_cells[j + 1]
                if (_key(c) == before and nxt.get("cell_type") == "markdown"
                        and (_key(nxt) not in ex_keys or _key(nxt) == _key(ex.cells[i]))):
                    text = str(nxt.get("source", ""))
                    break
        if text is not None:
            text = text.strip()
            if not text or text == STUB_MARKDOWN:
                text = None
        out[gid] = text
    return out
