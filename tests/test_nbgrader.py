"""nbgrader can use solutions/ as its source folder: generate_assignment and autograde work.

A temporary nbgrader course (its own nbgrader_config.py and sqlite gradebook, no network)
gets two current solution notebooks as ``source/<assignment>/``. ``nbgrader
generate_assignment`` makes the release; a submission is the released notebook with the
solutions' answers written back in (and a planted written answer); ``nbgrader autograde``
must give every autograded point and leave the written answer to manual grading. The
instructor's commands are the ones docs/instructor.md gives.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mmlab.teach.markers import BEGIN_SOLUTION, END_SOLUTION, is_manual, nbgrader_meta

pytest.importorskip("nbgrader", reason="nbgrader is not installed (the nbgrader extra)")

ROOT = Path(__file__).resolve().parents[1]
#: Small, quick chapters: 00 runs in seconds in full mode, 12 in about 15 s.
CHAPTERS = ("00_welcome", "12_ecg_hrv")
WRITTEN = "### BEGIN SOLUTION\n**Model answer.** A planted written task.\n\n**Rubric (2 points).** 2 for it.\n### END SOLUTION"


def _with_written(nb):
    """Make sure the notebook has a written (manually graded) task: plant one if it has none."""
    if not any(is_manual(c) for c in nb.cells):
        nb.cells.insert(len(nb.cells) - 2, nbformat.v4.new_markdown_cell(WRITTEN, metadata={"nbgrader": {
            "grade": True, "solution": True, "locked": False, "points": 2, "grade_id": "planted_written",
            "schema_version": 3, "task": False}}))
    return nb


def _strip_markers(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if line.strip() not in (BEGIN_SOLUTION, END_SOLUTION))


def _run(args, course: Path, env) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_nbgrader_generates_and_autogrades_our_solutions(tmp_path):
    from nbgrader.api import Gradebook

    course = tmp_path / "course"
    (course / "source").mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        "c.CourseDirectory.course_id = 'mmlab'\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        f"c.CourseDirectory.db_url = 'sqlite:///{course / 'gradebook.db'}'\n"
        "c.ExecutePreprocessor.timeout = 300\n"
        "c.Execute.timeout = 300\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg", JUPYTER_CONFIG_DIR=str(tmp_path / "jcfg"),
               JUPYTER_DATA_DIR=str(tmp_path / "jdata"), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    env.pop("JPY_SESSION_NAME", None)
    # nbgrader runs `alembic` (its database migrations) from PATH: the environment's bin must be on it,
    # as in an activated environment.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    expected = {}
    for name in CHAPTERS:
        src = _with_written(nbformat.read(ROOT / "solutions" / f"{name}.ipynb", as_version=4))
        for cell in src.cells:  # nbgrader runs the notebook as written: the quick mode, as mmlab grade does
            if "parameters" in cell.metadata.get("tags", []):
                cell.source = cell.source.replace("FAST = False", "FAST = True")
        (course / "source" / name).mkdir()
        nbformat.write(src, course / "source" / name / f"{name}.ipynb")
        auto = sum(nbgrader_meta(c)["points"] for c in src.cells
                   if nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution"))
        manual = {nbgrader_meta(c)["grade_id"]: nbgrader_meta(c)["points"] for c in src.cells if is_manual(c)}
        expected[name] = (src, auto, manual)

        _run(["generate_assignment", name, "--force"], course, env)
        released = course / "release" / name / f"{name}.ipynb"
        rel = nbformat.read(released, as_version=4)
        text = released.read_text()
        assert "BEGIN HIDDEN TESTS" not in text and "YOUR CODE HERE" in text

        # The submission: the release with each answer written back in from the solution.
        answers = {nbgrader_meta(c)["grade_id"]: c.source for c in src.cells if nbgrader_meta(c).get("solution")}
        for cell in rel.cells:
            gid = nbgrader_meta(cell).get("grade_id")
            if gid in answers:
                cell.source = (_strip_markers(answers[gid]) if cell.cell_type == "code"
                               else "My written answer for the instructor.")
        sub = course / "submitted" / "ada" / name
        sub.mkdir(parents=True)
        nbformat.write(rel, sub / f"{name}.ipynb")
        _run(["autograde", name, "--create", "--force"], course, env)

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for name, (src, auto, manual) in expected.items():
            nb = gb.find_submission_notebook(name, name, "ada")
            grades = {g.name: g for g in nb.grades}
            autograded = {k: g for k, g in grades.items() if k not in manual}
            assert sum(g.auto_score for g in autograded.values()) == auto, {
                k: (g.auto_score, g.max_score) for k, g in autograded.items()}
            assert sum(g.max_score for g in autograded.values()) == auto
            assert manual and nb.needs_manual_grade, f"{name}: the written answer is not left to a person"
            for gid, pts in manual.items():
                assert grades[gid].needs_manual_grade and grades[gid].auto_score is None
                assert grades[gid].max_score == pts
            assert nb.max_score == auto + sum(manual.values())
