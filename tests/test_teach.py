"""mmlab assign and mmlab grade: generation, marker errors, and adversarial submissions."""

from __future__ import annotations

import copy
import csv
import json
import subprocess
import sys
import time

import nbformat
import pytest

from mmlab.errors import NotebookError
from mmlab.teach.assign import STUB_CODE, assign_all, make_exercise, render
from mmlab.teach.grade import grade_notebook, merge_tests
from mmlab.teach.markers import cell_role, nbgrader_meta

NAME = "00_welcome.ipynb"


def _cell_by_id(nb, gid):
    return next(c for c in nb.cells if nbgrader_meta(c).get("grade_id") == gid)


def _nb(*cells):
    nb = nbformat.v4.new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _answer(src, gid="a"):
    return nbformat.v4.new_code_cell(src, metadata={"nbgrader": {
        "grade_id": gid, "solution": True, "grade": False, "locked": False, "schema_version": 3}})


def _test(src, gid="t", points=1):
    return nbformat.v4.new_code_cell(src, metadata={"nbgrader": {
        "grade_id": gid, "solution": False, "grade": True, "locked": True, "points": points,
        "schema_version": 3}})


@pytest.fixture(scope="module")
def solution(root):
    return nbformat.read(root / "solutions" / NAME, as_version=4)


@pytest.fixture(scope="module")
def sources(root):
    return root / "solutions"


def _grade(tmp_path, nb, sources, timeout=20.0, name=NAME):
    path = tmp_path / name
    nbformat.write(nb, path)
    before = path.read_bytes()
    result = grade_notebook(path, source_dir=sources, cell_timeout=timeout)
    assert path.read_bytes() == before, "the submission must never be modified"
    return {t["grade_id"]: t for t in result["tasks"]}, result


# ------------------------------------------------------------------------- assign
def test_assign_replaces_solutions_and_removes_hidden_tests():
    src = _nb(
        _answer("def f(x):\n    \"\"\"Double x.\"\"\"\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n"),
        _test('"""f doubles."""\nassert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(5) == 10\n### END HIDDEN TESTS'),
        nbformat.v4.new_code_cell("print('kept')", outputs=[nbformat.v4.new_output("stream", text="x")],
                                  execution_count=3),
    )
    ex = make_exercise(src, "01_demo.ipynb")
    answer, test, plain = ex.cells
    assert "return 2 * x" not in answer.source
    assert "    " + STUB_CODE.splitlines()[1] in answer.source.splitlines()
    assert '"""Double x."""' in answer.source
    assert "f(5) == 10" not in test.source and "HIDDEN" not in test.source
    assert "assert f(1) == 2" in test.source
    assert plain.outputs == [] and plain.execution_count is None and plain.source == "print('kept')"
    assert nbgrader_meta(answer)["grade_id"] == "a" and nbgrader_meta(test)["points"] == 1
    assert "raises-exception" in answer.metadata["tags"] and "raises-exception" in test.metadata["tags"]
    assert ex.metadata["mmlab"]["source"] == "01_demo.ipynb"
    assert "return 2 * x" in src.cells[0].source, "the source notebook must be untouched"


def test_assign_markdown_answer_becomes_placeholder():
    cell = nbformat.v4.new_markdown_cell("Why?\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION",
                                         metadata={"nbgrader": {"grade_id": "m", "solution": True}})
    ex = make_exercise(_nb(cell), "01_demo.ipynb")
    assert ex.cells[0].source == "Why?\nYOUR ANSWER HERE"


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\nx = 1\n", "line 1: '### BEGIN SOLUTION' is never closed"),
    ("x = 1\n### END SOLUTION\n", "line 2: '### END SOLUTION' without its '### BEGIN SOLUTION'"),
    ("### BEGIN SOLUTION\n### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS\n### END SOLUTION",
     "line 2: '### BEGIN HIDDEN TESTS' inside the '### BEGIN SOLUTION' opened on line 1"),
])
def test_assign_rejects_bad_markers_naming_notebook_cell_and_line(source, message):
    nb = _nb(nbformat.v4.new_code_cell("x = 0"), _answer(source, gid="broken"))
    with pytest.raises(NotebookError) as err:
        make_exercise(nb, "07_bad.ipynb")
    assert "07_bad.ipynb: cell 1 (broken)" in str(err.value)
    assert message in str(err.value)


def test_assign_rejects_test_without_points_and_duplicate_ids():
    with pytest.raises(NotebookError, match="positive 'points'"):
        make_exercise(_nb(_test("assert True", points=0)), "x.ipynb")
    with pytest.raises(NotebookError, match="grade_id 't' is also used by cell 0"):
        make_exercise(_nb(_test("assert True"), _test("assert True")), "x.ipynb")


def test_assign_check_detects_stale_missing_and_orphaned(tmp_path, sources):
    release = tmp_path / "exercises"
    assert assign_all(sources, release, check=True).stale  # nothing generated yet
    assign_all(sources, release)
    assert not assign_all(sources, release, check=True).stale
    (release / NAME).write_text((release / NAME).read_text().replace("YOUR CODE HERE", "edited"))
    report = assign_all(sources, release, check=True)
    assert report.stale == [str(release / NAME)]
    assign_all(sources, release)
    (release / "99_orphan.ipynb").write_text("{}")
    assert assign_all(sources, release, check=True).stale == [str(release / "99_orphan.ipynb")]


def test_committed_exercises_are_up_to_date(root):
    """`mmlab assign --check` passes on the repository (exercises generated, never hand-edited)."""
    proc = subprocess.run([sys.executable, "-m", "mmlab.cli", "assign", "--check"], cwd=root,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_solution_has_the_same_exercise_text(root):
    for src in sorted((root / "solutions").glob("*.ipynb")):
        nb = nbformat.read(src, as_version=4)
        assert render(make_exercise(nb, src)) == (root / "exercises" / src.name).read_text()


# -------------------------------------------------------------------------- grade
def test_solution_gets_full_marks_and_exercise_zero(tmp_path, solution, sources, root):
    tasks, result = _grade(tmp_path, solution, sources)
    assert result["score"] == result["max_score"] == 5
    assert all(t["error"] is None for t in tasks.values())
    exercise = nbformat.read(root / "exercises" / NAME, as_version=4)
    tasks, result = _grade(tmp_path, exercise, sources)
    assert result["score"] == 0 and result["max_score"] == 5
    assert all("NotImplementedError" in t["error"] for t in tasks.values())


def test_edited_test_is_restored(tmp_path, solution, sources):
    nb = copy.deepcopy(solution)
    _cell_by_id(nb, "samples_answer").source = "def n_samples(duration_s, rate_hz):\n    return 0"
    _cell_by_id(nb, "samples_test").source = "pass"
    _cell_by_id(nb, "samples_test").metadata["nbgrader"]["points"] = 100  # no effect either
    tasks, result = _grade(tmp_path, nb, sources)
    assert tasks["samples_test"]["points"] == 0 and "AssertionError" in tasks["samples_test"]["error"]
    assert tasks["samples_test"]["max_points"] == 1
    assert result["score"] == 4


def test_hidden_tests_run(tmp_path, solution, sources):
    nb = copy.deepcopy(solution)
    # Passes the visible tests (60 s at 700 Hz, an int) but not the hidden ones.
    _cell_by_id(nb, "samples_answer").source = (
        "def n_samples(duration_s, rate_hz):\n    return 42000 if duration_s == 60 else int(rate_hz)")
    tasks, _ = _grade(tmp_path, nb, sources)
    assert tasks["samples_test"]["points"] == 0


def test_deleted_test_is_put_back(tmp_path, solution, sources):
    nb = copy.deepcopy(solution)
    _cell_by_id(nb, "hr_answer").source = "def mean_heart_rate(rr_s):\n    return 0.0"
    nb.cells = [c for c in nb.cells if nbgrader_meta(c).get("grade_id") != "hr_test"]
    merged = merge_tests(nb, solution)
    ids = [nbgrader_meta(c).get("grade_id") for c in merged.cells]
    assert ids.index("hr_test") == ids.index("hr_answer") + 1
    tasks, result = _grade(tmp_path, nb, sources)
    assert set(tasks) == {"samples_test", "windows_test", "hr_test"}
    assert tasks["hr_test"]["points"] == 0 and result["score"] == 3


def test_infinite_loop_costs_only_its_task(tmp_path, solution, sources):
    nb = copy.deepcopy(solution)
    _cell_by_id(nb, "windows_answer").source = "while True:\n    pass"
    start = time.monotonic()
    tasks, result = _grade(tmp_path, nb, sources, timeout=3)
    assert time.monotonic() - start < 40
    assert tasks["windows_test"]["points"] == 0
    assert "timed out after 3 s" in tasks["windows_test"]["error"]
    assert tasks["samples_test"]["points"] == 1 and tasks["hr_test"]["points"] == 2


def test_killed_kernel_costs_only_its_task(tmp_path, solution, sources):
    nb = copy.deepcopy(solution)
    _cell_by_id(nb, "windows_answer").source = "import os\nos._exit(1)"
    start = time.monotonic()
    tasks, result = _grade(tmp_path, nb, sources)
    assert time.monotonic() - start < 60
    assert "kernel died" in tasks["windows_test"]["error"]
    # samples ran before the crash and hr after it: the restart replayed the earlier cells.
    assert tasks["samples_test"]["points"] == 1 and tasks["hr_test"]["points"] == 2
    assert result["score"] == 3


def test_output_is_capped(tmp_path, solution, sources):
    nb = copy.deepcopy(solution)
    flood = nbformat.v4.new_code_cell("print('x' * 1_000_000)")
    nb.cells.insert(2, flood)
    path = tmp_path / NAME
    nbformat.write(nb, path)
    from mmlab.teach import grade as g

    sub = nbformat.read(path, as_version=4)
    merged = g.merge_tests(sub, solution)
    g.execute_for_grading(merged, cell_timeout=20, output_cap=1000)
    text = "".join(o.text for o in merged.cells[2].outputs if o.output_type == "stream")
    assert len(text) < 1200 and "capped" in text


def test_renamed_submission_found_by_metadata(tmp_path, root, sources):
    exercise = nbformat.read(root / "exercises" / NAME, as_version=4)
    _, result = _grade(tmp_path, exercise, sources, name="alice_welcome.ipynb")
    assert result["source"].endswith(NAME)


def test_cli_json_and_csv_gradebook(tmp_path, root):
    out = tmp_path / "book.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "mmlab.cli", "grade", f"solutions/{NAME}", f"exercises/{NAME}",
         "--json", "--csv", str(out)], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert [r["score"] for r in results] == [5, 0]
    assert {"grade_id", "points", "max_points", "error"} <= set(results[0]["tasks"][0])
    rows = list(csv.DictReader(out.open()))
    assert [float(r["score"]) for r in rows] == [5, 0] and float(rows[0]["hr_test"]) == 2


def test_grade_unknown_source_is_a_clear_error(tmp_path, sources):
    nb = _nb(_test("assert True"))
    path = tmp_path / "42_nothing.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(NotebookError, match="no solution source '42_nothing.ipynb'"):
        grade_notebook(path, source_dir=sources)


def test_roles():
    assert cell_role(_answer("x")) == "answer"
    assert cell_role(_test("x")) == "test"
    assert cell_role(nbformat.v4.new_code_cell("x")) == "plain"


def test_errors_in_plain_cells_are_reported_with_the_failing_task(tmp_path, solution, sources):
    nb = copy.deepcopy(solution)
    _cell_by_id(nb, "hr_answer").source = "def mean_heart_rate(rr_s):\n    return 0.0"
    pos = nb.cells.index(_cell_by_id(nb, "hr_test"))
    nb.cells.insert(pos, nbformat.v4.new_code_cell("raise ValueError('broken setup')"))
    tasks, _ = _grade(tmp_path, nb, sources)
    error = tasks["hr_test"]["error"]
    assert "raised ValueError: broken setup" in error and "then AssertionError" in error
    assert tasks["samples_test"]["error"] is None
