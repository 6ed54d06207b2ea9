"""Notebook hygiene: stored clean, python3 kernel, a parameters cell, names, sizes."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("notebooks", "solutions", "exercises")
NOTEBOOKS = [p for f in FOLDERS for p in sorted((ROOT / f).glob("*.ipynb"))]
NAME_RE = re.compile(r"^\d\d_[a-z0-9]+(_[a-z0-9]+)*\.ipynb$")
MAX_BYTES = 150_000
ids = [f"{p.parent.name}/{p.name}" for p in NOTEBOOKS]


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_there_are_notebooks():
    assert {p.parent.name for p in NOTEBOOKS} == set(FOLDERS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_stored_without_outputs(path):
    for i, cell in enumerate(_load(path)["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name}: cell {i} has outputs"
            assert cell.get("execution_count") is None, f"{path.name}: cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_kernel_and_name_and_size(path):
    nb = _load(path)
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3", path.name
    assert NAME_RE.match(path.name), f"{path.name}: name must be NN_topic.ipynb"
    assert path.stat().st_size <= MAX_BYTES, f"{path.name}: {path.stat().st_size} bytes > {MAX_BYTES}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_parameters_cell(path):
    cells = [c for c in _load(path)["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    tree = ast.parse("".join(cells[0]["source"]))
    names = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
             if isinstance(t, ast.Name)}
    assert {"FAST", "SEED", "DATA_DIR"} <= names, f"{path.name}: parameters cell defines {names}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_one_title(path):
    md = ["".join(c["source"]) for c in _load(path)["cells"] if c["cell_type"] == "markdown"]
    titles = [l for s in md for l in s.splitlines() if l.startswith("# ")]
    assert len(titles) == 1 and md and md[0].startswith("# "), f"{path.name}: one H1, in the first cell"


def test_solutions_and_exercises_have_the_same_names():
    sol = {p.name for p in (ROOT / "solutions").glob("*.ipynb")}
    ex = {p.name for p in (ROOT / "exercises").glob("*.ipynb")}
    assert sol == ex


def test_every_chapter_has_exercises():
    chapters = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert chapters <= {p.name for p in (ROOT / "solutions").glob("*.ipynb")}
