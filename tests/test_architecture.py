"""The package follows the data flow: lower layers never import higher ones.

recording -> io/synth -> align, single-modality processing -> features -> represent ->
fusion -> evaluate/explain -> systems -> deploy; bench and cli sit on top. A module may
import its own layer or lower ones, never a higher one (function-level imports count too).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "mmlab"

LAYERS = {
    "errors": 0, "validate": 0, "_torch": 0, "parallel": 0, "__init__": 0,
    "recording": 1, "teach": 1,  # teach: assign, grade, checks, and the book (teach.book, teach.execute)
    "io": 2, "synth": 2, "viz": 2,
    "align": 3, "bio": 3, "text": 3, "voice": 3, "images": 3, "sensors": 3,
    "features": 4,
    "represent": 5,
    "fusion": 6,
    "evaluate": 7, "explain": 7, "diagnose": 7,
    "systems": 8,
    "deploy": 9,
    "bench": 10, "cli": 10,
}


def _top(module: str) -> str:
    """'mmlab.bio.ecg' -> 'bio'; 'mmlab' -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("mmlab")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mmlab") \
                and node.level == 0:
            found.append((node.lineno, node.module))
    return found


MODULES = sorted(p for p in PKG.rglob("*.py"))


def test_every_package_module_has_a_layer():
    unknown = {_top("mmlab." + ".".join(p.relative_to(PKG).with_suffix("").parts)) for p in MODULES}
    assert unknown <= set(LAYERS), f"add a layer for: {sorted(unknown - set(LAYERS))}"


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PKG)) for p in MODULES])
def test_no_upward_imports(path):
    own = _top("mmlab." + ".".join(path.relative_to(PKG).with_suffix("").parts))
    bad = [f"line {line}: imports {mod} (layer {LAYERS.get(_top(mod))}) from {own} (layer {LAYERS[own]})"
           for line, mod in _imports(path) if LAYERS.get(_top(mod), 99) > LAYERS[own]]
    assert not bad, "\n".join(bad)
