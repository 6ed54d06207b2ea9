"""The learner's own copies (mmlab start), "check yourself", and written answers graded by a person."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import nbformat
import pytest

from mmlab.errors import NotebookError
from mmlab.teach import learner
from mmlab.teach.assign import STUB_MARKDOWN, assign_all, make_exercise
from mmlab.teach.grade import (format_table, grade_batch, grade_notebook, merge_manual, read_manual,
                               write_feedback, write_gradebook, write_manual_template)
from mmlab.teach.markers import is_manual, nbgrader_meta

NAME = "00_welcome"
MODEL = "**Model answer.** Sampling at 4 Hz keeps the phasic response.\n\n**Rubric (2 points).** 1 for x; 1 for y."


def _written_source(root):
    """Chapter 00's solution with one planted written task (statement + 2-point answer cell)
    in place of its own, so the expected results below are known whatever the chapter asks."""
    nb = nbformat.read(root / "solutions" / f"{NAME}.ipynb", as_version=4)
    nb.cells = [c for c in nb.cells if not is_manual(c)]
    at = next(i for i, c in enumerate(nb.cells) if nbgrader_meta(c).get("grade_id") == "hr_test") + 1
    statement = nbformat.v4.new_markdown_cell("## Task 4 · (written) Why 4 Hz?\n\nExplain in three sentences.")
    answer = nbformat.v4.new_markdown_cell(
        f"### BEGIN SOLUTION\n{MODEL}\n### END SOLUTION",
        metadata={"nbgrader": {"grade": True, "solution": True, "locked": False, "points": 2,
                               "grade_id": "why_written", "schema_version": 3, "task": False}})
    nb.cells[at:at] = [statement, answer]
    return nb


@pytest.fixture()
def course(tmp_path, root):
    """A tiny course folder: solutions/ with the planted written task, exercises/ from assign."""
    (tmp_path / "solutions").mkdir()
    nbformat.write(_written_source(root), tmp_path / "solutions" / f"{NAME}.ipynb")
    assign_all(tmp_path / "solutions", tmp_path / "exercises")
    return tmp_path


def _filled(course, text):
    """A learner copy with the solution's code answers and ``text`` as the written answer."""
    src = nbformat.read(course / "solutions" / f"{NAME}.ipynb", as_version=4)
    ex = make_exercise(src, f"{NAME}.ipynb")
    for s, e in zip(src.cells, ex.cells):
        gid = nbgrader_meta(s).get("grade_id", "")
        if gid.endswith("_answer"):
            e.source = s.source
        if gid == "why_written" and text is not None:
            e.source = text
    return ex


# ------------------------------------------------------------------- mmlab start
def test_start_copies_never_overwrites_and_fresh_numbers(tmp_path, root):
    work = tmp_path / "work"
    path, created = learner.start("00", work)
    assert created and path == work / f"{NAME}.ipynb"
    assert path.read_bytes() == (root / "exercises" / f"{NAME}.ipynb").read_bytes()
    path.write_text(path.read_text().replace("YOUR CODE HERE", "my work"))
    mine = path.read_bytes()
    again, created = learner.start(NAME, work)
    assert (again, created) == (path, False) and path.read_bytes() == mine
    fresh, created = learner.start(f"{NAME}.ipynb", work, fresh=True)
    assert created and fresh.name == f"{NAME}-2.ipynb" and path.read_bytes() == mine
    assert learner.start("00", work, fresh=True)[0].name == f"{NAME}-3.ipynb"


def test_start_rejects_unknown_chapter_and_the_course_folders(tmp_path, root):
    with pytest.raises(NotebookError, match="no exercise '99'.*12_ecg_hrv"):
        learner.start("99", tmp_path)
    with pytest.raises(NotebookError, match="folder of your own"):
        learner.start("00", root / "exercises")


def test_start_cli_prints_the_path_and_keeps_an_existing_copy(tmp_path, root):
    cmd = [sys.executable, "-m", "mmlab.cli", "start", "12", "--dir", str(tmp_path)]
    first = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0 and f"your copy: {tmp_path / '12_ecg_hrv.ipynb'}" in first.stdout
    (tmp_path / "12_ecg_hrv.ipynb").write_text("{}")
    second = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0 and "already have a copy" in second.stdout and "--fresh" in second.stdout
    assert (tmp_path / "12_ecg_hrv.ipynb").read_text() == "{}"


def test_assign_never_touches_the_learner_folder(course):
    work = course / "work"
    path, _ = learner.start("00", work, exercises=course / "exercises")
    path.write_text("my answers")
    src = course / "solutions" / f"{NAME}.ipynb"
    src.write_text(src.read_text().replace("Three small tasks", "Three tasks"))  # a new release
    report = assign_all(course / "solutions", course / "exercises")
    assert any("wrote" in line for line in report.lines)
    assert path.read_text() == "my answers" and sorted(p.name for p in work.iterdir()) == [f"{NAME}.ipynb"]


def test_learner_copy_runs_from_its_own_folder(tmp_path, root):
    """The exercise uses no path relative to exercises/: a copy in another folder runs to its stubs."""
    import papermill as pm

    path, _ = learner.start("00", tmp_path / "deep" / "work")
    src = nbformat.read(root / "solutions" / f"{NAME}.ipynb", as_version=4)
    nb = nbformat.read(path, as_version=4)
    for s, e in zip(src.cells, nb.cells):
        if nbgrader_meta(s).get("grade_id", "").endswith("_answer"):
            e.source = s.source
    nbformat.write(nb, path)
    pm.execute_notebook(str(path), str(tmp_path / "out.ipynb"), parameters={"FAST": True},
                        cwd=str(path.parent), kernel_name="python3", progress_bar=False, log_output=False)
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert not [o for c in out.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]


# ------------------------------------------------------------ written answers
def test_written_answer_needs_manual_grading_and_code_gets_full_marks(course):
    path = course / "ada_00.ipynb"
    nbformat.write(_filled(course, "Because the phasic peaks last a second or more."), path)
    r = grade_notebook(path, NAME, source_dir=course / "solutions", unsafe=True, bwrap=None)
    assert (r["score"], r["max_score"]) == (5, 5)
    assert r["written"] == [{"grade_id": "why_written", "points": None, "max_points": 2.0,
                             "answer": "Because the phasic peaks last a second or more.",
                             "status": "needs manual grading"}]
    assert r["needs_manual_grading"] == ["why_written"] and r["manual_score"] is None
    assert r["manual_max_score"] == 2
    table = format_table(r)
    assert "why_written" in table and "needs manual grading" in table and "5/5 autograded" in table


def test_unanswered_written_task_scores_zero_and_stripped_metadata_still_finds_the_text(course):
    blank = course / "bob_00.ipynb"
    nbformat.write(_filled(course, None), blank)  # still YOUR ANSWER HERE
    r = grade_notebook(blank, NAME, source_dir=course / "solutions", unsafe=True, bwrap=None)
    assert [(w["points"], w["status"]) for w in r["written"]] == [(0.0, "not answered")]
    assert r["manual_score"] == 0 and r["needs_manual_grading"] == []
    stripped = _filled(course, "My own words.")
    for c in stripped.cells:
        c.metadata.pop("nbgrader", None)
    path = course / "cy_00.ipynb"
    nbformat.write(stripped, path)
    r = grade_notebook(path, NAME, source_dir=course / "solutions", unsafe=True, bwrap=None)
    assert [(w["answer"], w["status"]) for w in r["written"]] == [("My own words.", "needs manual grading")]


def test_gradebook_feedback_and_manual_points_merge(course, tmp_path):
    subs = course / "class"
    subs.mkdir()
    nbformat.write(_filled(course, "Ada's <b>answer</b>."), subs / "ada_00.ipynb")
    nbformat.write(_filled(course, None), subs / "bob_00.ipynb")
    results = grade_batch([subs], NAME, source_dir=course / "solutions", unsafe=True, bwrap=None)
    write_gradebook(results, tmp_path / "book.csv")
    rows = {r["student"]: r for r in csv.DictReader((tmp_path / "book.csv").open())}
    assert rows["ada"]["why_written"] == "" and rows["ada"]["needs_manual_grading"] == "why_written"
    assert (rows["ada"]["score"], rows["ada"]["max_score"], rows["ada"]["total"]) == ("5", "5", "")
    assert rows["ada"]["samples_test"] == "1" and rows["ada"]["assignment"] == NAME
    assert rows["bob"]["why_written"] == "0" and rows["bob"]["total"] == "5"
    page = write_feedback(results[0], tmp_path / "fb").read_text()
    assert "Ada&#x27;s &lt;b&gt;answer&lt;/b&gt;." in page and "needs manual grading" in page

    template = write_manual_template(results, tmp_path / "manual.csv")
    lines = list(csv.reader(template.open()))
    assert lines[0] == ["student", "grade_id", "points", "max_points", "answer"]
    assert lines[1][:4] == ["ada", "why_written", "", "2"] and lines[1][4] == "Ada's <b>answer</b>."
    lines[1][2] = "1.5"
    with template.open("w", newline="") as f:
        csv.writer(f).writerows(lines)
    manual = read_manual(template)
    assert manual == {("ada", "why_written"): 1.5, ("bob", "why_written"): 0.0}
    merge_manual(results, manual)
    write_gradebook(results, tmp_path / "book2.csv")
    ada = next(r for r in csv.DictReader((tmp_path / "book2.csv").open()) if r["student"] == "ada")
    assert (ada["why_written"], ada["manual_score"], ada["total"], ada["needs_manual_grading"]) == ("1.5", "1.5", "6.5", "")
    assert "1.5 / 2 written" in write_feedback(results[0], tmp_path / "fb").read_text()


def test_manual_points_are_checked_before_grading(course, tmp_path):
    bad = tmp_path / "m.csv"
    bad.write_text("ada,why_written,3\n")
    with pytest.raises(NotebookError, match="3 is more than its 2 points"):
        grade_batch([tmp_path / "none.ipynb"], NAME, source_dir=course / "solutions", unsafe=True,
                    bwrap=None, manual=read_manual(bad))
    bad.write_text("student,grade_id,points\nada,samples_test,1\n")
    with pytest.raises(NotebookError, match="'samples_test' is not a written answer"):
        grade_batch([tmp_path / "none.ipynb"], NAME, source_dir=course / "solutions", unsafe=True,
                    bwrap=None, manual=read_manual(bad))
    bad.write_text("student,grade_id,points\nada,why_written,two\n")
    with pytest.raises(NotebookError, match="row 2: points 'two'"):
        read_manual(bad)


def test_grade_cli_json_reports_written_tasks_and_merges_manual_csv(course, tmp_path):
    path = course / "ada_00.ipynb"
    nbformat.write(_filled(course, "An answer."), path)
    manual = tmp_path / "manual.csv"
    manual.write_text("student,grade_id,points,comment\nada,why_written,2,clear\n")
    cmd = [sys.executable, "-m", "mmlab.cli", "grade", str(path), "--assignment", NAME, "--source",
           str(course / "solutions"), "--unsafe", "--json"]
    first = json.loads(subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout)
    assert first["needs_manual_grading"] == ["why_written"] and first["written"][0]["answer"] == "An answer."
    second = json.loads(subprocess.run(cmd + ["--manual", str(manual)], capture_output=True, text=True,
                                       timeout=120, check=True).stdout)
    assert (second["score"], second["manual_score"], second["needs_manual_grading"]) == (5, 2, [])


# ----------------------------------------------------------- check yourself
def test_check_yourself_grades_the_saved_copy_without_the_sandbox(course, monkeypatch):
    monkeypatch.chdir(course)  # project_root() finds this course's solutions/ and exercises/
    path, _ = learner.start("00", course / "work")
    nbformat.write(_filled(course, "Mine."), path)
    monkeypatch.setattr("mmlab.teach.sandbox.bwrap_path", lambda: None)  # no bubblewrap needed
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))  # as JupyterLab tells the kernel
    said: list[str] = []
    r = learner.check_yourself(NAME, echo=said.append)
    assert r["score"] == 5 and r["needs_manual_grading"] == ["why_written"]
    assert str(path) in said[0] and "needs manual grading" in said[1]
    assert repr(r) == "5/5 points from the autograded tasks; 1 written answer(s) need manual grading"


def test_check_yourself_without_the_solutions_says_so(course, monkeypatch):
    monkeypatch.chdir(course)
    path, _ = learner.start("00", course / "work")
    (course / "solutions" / f"{NAME}.ipynb").unlink()  # a class given exercises only
    said: list[str] = []
    assert learner.check_yourself(NAME, path, echo=said.append) is None
    assert "hidden tests" in said[0] and "visible test cells" in said[0]


def test_check_yourself_outside_jupyterlab_only_explains(monkeypatch):
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    said: list[str] = []
    assert learner.check_yourself("12_ecg_hrv", echo=said.append) is None
    assert "mmlab grade work/12_ecg_hrv.ipynb --assignment 12_ecg_hrv" in said[0]


# ------------------------------------------------------------------- landing page
def test_landing_page_links_every_chapter_and_exercise_and_make_lab_opens_it(root):
    import re

    text = (root / "START_HERE.md").read_text()
    links = re.findall(r"\]\(([^)#]+)\)", text)
    assert links and all((root / link).exists() for link in links), [x for x in links if not (root / x).exists()]
    for folder in ("notebooks", "exercises"):
        for nb in (root / folder).glob("*.ipynb"):
            assert f"{folder}/{nb.name}" in links, f"START_HERE.md does not link {folder}/{nb.name}"
    args = subprocess.run(["make", "-s", "lab-args", "PORT=1"], cwd=root, capture_output=True, text=True,
                          check=True).stdout.split()
    assert "--ServerApp.root_dir=." in args and "--LabApp.default_url=/lab/tree/START_HERE.md" in args
    settings = json.loads((root / "lab-settings" / "overrides.json").read_text())
    assert settings["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["markdown"] == "Markdown Preview"
    assert "mmlab start" in text and "work/" in text and "_build/book/html/index.html" in text


def test_every_solution_ends_with_its_check_yourself_cell_and_grade_skips_it(root):
    from mmlab.teach.markers import CHECK_YOURSELF_TAG
    from mmlab.teach.rebuild import rebuild

    for path in sorted((root / "solutions").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        last = nb.cells[-1]
        assert last.cell_type == "code" and CHECK_YOURSELF_TAG in last.metadata.get("tags", []), path.name
        assert f'check_yourself("{path.stem}")' in last.source, path.name
        assert "## Check yourself" in nb.cells[-2].source and f"mmlab start {path.stem[:2]}" in nb.cells[-2].source
    src = nbformat.read(root / "solutions" / f"{NAME}.ipynb", as_version=4)
    cells, _ = rebuild(make_exercise(src, f"{NAME}.ipynb"), src, f"{NAME}.ipynb")
    assert not [c for c in cells if "check_yourself" in c.source]


def test_exercises_use_no_path_relative_to_their_folder(root):
    """A learner copy runs from work/ (or any --dir): no code cell of a solution reads a path
    relative to exercises/ or the notebook's folder (data comes through DATA_DIR / MMLAB_DATA_DIR)."""
    import re

    bad = re.compile(r"""["'](\.\./|\./|exercises/|solutions/|notebooks/)|Path\.cwd\(\)|os\.getcwd\(\)|__file__""")
    found = []
    for path in sorted((root / "solutions").glob("*.ipynb")):
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type != "code":
                continue
            code = "\n".join(line.split("#", 1)[0] for line in cell.source.splitlines())  # comments aside
            found += [f"{path.name} cell {i}: {m.group(0)}" for m in bad.finditer(code)]
    assert not found, found
