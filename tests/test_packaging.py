"""The install path: pyproject and environment.yml agree; every package mmlab imports is
declared, authoring and test tools are extras; the README starts with the two commands."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _dist(spec: str) -> str:
    """The normalised distribution name of a requirement such as ``"scikit-learn>=1.4"``."""
    return re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower().replace("_", "-")


def _extra(name: str) -> set[str]:
    """The distributions an extra pulls, following self-references such as ``mmlab[teach]``."""
    out = set()
    for spec in PROJECT["optional-dependencies"][name]:
        inner = re.fullmatch(r"mmlab\[([\w,]+)\]", spec)
        out |= set().union(*map(_extra, inner.group(1).split(","))) if inner else {_dist(spec)}
    return out


def _third_party_imports(files) -> dict[str, set[str]]:
    """Top-level module name -> files importing it, for modules outside the standard library."""
    found: dict[str, set[str]] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "mmlab":
                    found.setdefault(top, set()).add(path.name)
    return found


#: Import names whose distribution the installed metadata does not reveal (a bare extension
#: module with no top_level.txt).
_NO_METADATA = {"parselmouth": ["praat-parselmouth"]}


def _undeclared(files, declared: set[str]) -> dict[str, str]:
    modules = {**_NO_METADATA, **importlib.metadata.packages_distributions()}
    bad = {}
    for module, where in _third_party_imports(files).items():
        dists = {d.lower().replace("_", "-") for d in modules.get(module, [module])}
        if not dists & declared:
            bad[module] = f"{sorted(dists)} imported in {sorted(where)}"
    return bad


def _norm(spec: str) -> str:
    return re.sub(r"\s+", "", spec).lower().replace("_", "-")


def _env_pip_specs() -> list[str]:
    specs, in_pip = [], False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        stripped = line.strip()
        if stripped == "- pip:":
            in_pip = True
        elif in_pip and stripped.startswith("- "):
            specs.append(stripped[2:])
        elif in_pip and stripped and not stripped.startswith("#"):
            in_pip = False
    return specs


def test_environment_yml_mirrors_pyproject():
    """environment.yml is the course environment: the dependencies plus every extra."""
    specs = list(PROJECT["dependencies"])
    for extra in PROJECT["optional-dependencies"].values():
        specs += [s for s in extra if not s.startswith("mmlab[") and s not in specs]
    assert sorted(map(_norm, specs)) == sorted(map(_norm, _env_pip_specs()))


def test_every_import_of_the_package_is_a_dependency():
    """`pip install mmlab` must bring what mmlab/ imports (mmlab.teach: the teach extra;
    mmlab.teach.book/execute: the book extra; mmlab.deploy and the benchmarks of the dashboard
    and the server: the deploy extra)."""
    core = {_dist(s) for s in PROJECT["dependencies"]}
    deploy = [*(ROOT / "mmlab" / "deploy").rglob("*.py"),
              *(ROOT / "mmlab" / "bench" / f for f in ("dashboard.py", "serve.py"))]
    package = [p for p in (ROOT / "mmlab").rglob("*.py") if "teach" not in p.parts and p not in deploy]
    assert _undeclared(package, core) == {}
    book = [ROOT / "mmlab" / "teach" / f for f in ("book.py", "execute.py")]  # `mmlab book`: the book extra
    teach = [p for p in (ROOT / "mmlab" / "teach").rglob("*.py") if p not in book]
    assert _undeclared(teach, core | _extra("teach")) == {}
    assert _undeclared(book, core | _extra("teach") | _extra("book")) == {}
    assert _undeclared([p for p in deploy if p.exists()], core | _extra("deploy")) == {}


def test_the_check_catches_an_undeclared_import(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text("import numpy\nimport transformers\nfrom yaml import safe_load\nimport json\n")
    assert set(_undeclared([bad], {"numpy"})) == {"transformers", "yaml"}


def test_test_and_authoring_tools_are_extras_not_dependencies():
    core = {_dist(s) for s in PROJECT["dependencies"]}
    tools = {"pytest", "pytest-timeout", "pytest-xdist", "papermill", "jupyterlab", "nbclient",
             "nbformat", "ipykernel", "ipywidgets"}
    assert core & tools == set()
    assert {"pytest", "pytest-timeout", "pytest-xdist", "papermill", "nbclient", "ipykernel"} <= _extra("test")
    assert {"jupyterlab", "ipykernel", "nbformat"} <= _extra("lab")


def test_make_installs_the_lab_and_test_extras():
    assert '-e ".[lab,test]"' in (ROOT / "Makefile").read_text()


def test_peakutils_says_why_it_is_listed():
    lines = (ROOT / "pyproject.toml").read_text().splitlines()
    i = next(i for i, l in enumerate(lines) if l.strip().startswith('"peakutils'))
    comment = []
    while lines[i - 1 - len(comment)].strip().startswith("#"):
        comment.append(lines[i - 1 - len(comment)])
    assert "biosppy" in " ".join(comment)


def test_doctests_run_with_the_suite():
    opts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--doctest-modules" in opts["addopts"] and "mmlab" in opts["testpaths"]


def test_environment_yml_pins_python_311():
    assert "- python=3.11" in (ROOT / "environment.yml").read_text()


def test_torch_is_the_pinned_cpu_build():
    deps = PROJECT["dependencies"]
    torch = [d for d in deps if re.match(r"torch\b", d)]
    assert torch == ["torch==2.13.0"]


def test_readme_shows_the_two_commands_first():
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```[a-z]*\n(.*?)```", text, re.S).group(1)
    commands = [l.split("#")[0].strip() for l in first_block.splitlines() if l.split("#")[0].strip()]
    assert commands[:2] == ["make lab", "make test"]


def test_ci_runs_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
