"""Every notebook is a test: execute each .ipynb with papermill under FAST=True.

The working directory is the notebook's folder; the executed copy is written to
``test-output/<folder>/<name>`` and kept only when the run fails. Chapters and solutions
must run cleanly; exercises may stop only on their stubs (see ``notebook_policy``).
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from notebook_policy import errors, unexpected_exercise_errors

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("notebooks", "solutions", "exercises")
NOTEBOOKS = [p for f in FOLDERS for p in sorted((ROOT / f).glob("*.ipynb"))]
CELL_TIMEOUT = 600        # seconds for one cell
NOTEBOOK_TIMEOUT = 900    # seconds for a whole notebook (pytest-timeout)


def _execute(path: Path, out: Path) -> tuple[object, Exception | None]:
    import papermill as pm

    params = {"FAST": True, "SEED": 0, "DATA_DIR": os.environ.get("MMLAB_DATA_DIR")}
    try:
        pm.execute_notebook(str(path), str(out), parameters=params, cwd=str(path.parent),
                            kernel_name="python3", execution_timeout=CELL_TIMEOUT,
                            progress_bar=False, log_output=False)
        failure = None
    except pm.PapermillExecutionError as exc:
        failure = exc
    return nbformat.read(out, as_version=4), failure


@pytest.mark.notebook
@pytest.mark.timeout(NOTEBOOK_TIMEOUT)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[f"{p.parent.name}/{p.name}" for p in NOTEBOOKS])
def test_notebook_runs(path: Path):
    out = ROOT / "test-output" / path.parent.name / path.name
    out.parent.mkdir(parents=True, exist_ok=True)
    executed, failure = _execute(path, out)
    if path.parent.name == "exercises":
        bad = unexpected_exercise_errors(executed)
        assert not bad, f"{path.name}: errors beyond the stubs (executed copy: {out}):\n" + "\n".join(bad)
        assert errors(executed), f"{path.name}: no stub raised; is it generated from solutions/?"
    elif failure is not None:
        pytest.fail(f"{path.parent.name}/{path.name} failed in cell {failure.cell_index} "
                    f"({failure.ename}: {failure.evalue}); executed copy kept at {out}", pytrace=False)
    out.unlink()
