"""Chapter 60_deployment: the solution earns every point, the untouched exercise none."""

import shutil

import pytest

from mmlab.teach.grade import grade_notebook


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_chapter60_solution_full_exercise_zero(tmp_path, root):
    name = "60_deployment"
    scores = []
    for folder in ("solutions", "exercises"):
        path = tmp_path / f"ada_{folder}.ipynb"
        path.write_bytes((root / folder / f"{name}.ipynb").read_bytes())
        r = grade_notebook(path, name, source_dir=root / "solutions", cell_timeout=120.0)
        scores.append((r["score"], r["max_score"]))
    assert scores[0][0] == scores[0][1] == 10 and scores[1][0] == 0, scores
