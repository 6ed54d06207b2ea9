"""Which errors an executed notebook may contain (shared by the notebook tests).

Solutions and chapters must run without any error. An exercise is expected to stop only
on its stubs: an answer cell may raise ``NotImplementedError`` (its stub), a test cell may
fail with ``NotImplementedError`` (it called a stub) or ``NameError`` (it used a name the
stub did not define yet); any other error, or an error in any other cell, is a defect.
"""

from __future__ import annotations

from mmlab.teach.markers import cell_role, nbgrader_meta

ALLOWED = {"answer": {"NotImplementedError"}, "test": {"NotImplementedError", "NameError"}}


def errors(nb) -> list[tuple[int, str, str, str]]:
    """(cell index, role, exception name, message) for every error output."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append((i, cell_role(cell), out.ename, out.evalue))
    return found


def unexpected_exercise_errors(nb) -> list[str]:
    bad = []
    for i, role, ename, evalue in errors(nb):
        if ename not in ALLOWED.get(role, set()):
            gid = nbgrader_meta(nb.cells[i]).get("grade_id", "")
            bad.append(f"cell {i} {gid} ({role}): {ename}: {evalue}")
    return bad
