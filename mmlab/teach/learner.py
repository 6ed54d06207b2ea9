"""The learner's side: your own copy of an exercise, and "check yourself".

``mmlab start 12`` copies ``exercises/12_ecg_hrv.ipynb`` into the learner folder (``work/``
at the project root, or ``--dir``) and prints its path. The copy is yours: no mmlab command
writes to it (``mmlab assign`` writes only ``exercises/``), and ``start`` never overwrites
one — run again it says where your copy is; ``--fresh`` writes a new numbered copy
(``12_ecg_hrv-2.ipynb``) beside it.

The last cell of every exercise calls :func:`check_yourself`: it grades the *saved* copy the
cell runs in the way the instructor's ``mmlab grade`` would (same rebuild from the solution,
same hidden tests, FAST mode) and prints the per-task table. Grading your own notebook needs
no sandbox, so it runs without bubblewrap; the sandbox is for an instructor grading other
people's code.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from mmlab.errors import NotebookError

LEARNER_DIR = "work"


def project_root() -> Path:
    """The project mmlab runs from: the folder holding ``exercises/`` and ``solutions/``.

    The current folder or one of its parents when it has ``exercises/``; else the folder
    mmlab was installed from (an editable install of the project).
    """
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "exercises").is_dir() and (d / "solutions").is_dir():
            return d
    return Path(__file__).resolve().parents[2]


def find_exercise(chapter: str, exercises: Path | None = None) -> Path:
    """The exercise notebook for ``chapter``: ``12``, ``12_ecg_hrv`` or ``12_ecg_hrv.ipynb``."""
    folder = Path(exercises) if exercises is not None else project_root() / "exercises"
    name = Path(str(chapter).strip()).name
    stem = name[:-6] if name.endswith(".ipynb") else name
    if not stem:
        raise NotebookError("name a chapter, e.g. `mmlab start 12` or `mmlab start 12_ecg_hrv`")
    known = sorted(p.stem for p in folder.glob("*.ipynb")) if folder.is_dir() else []
    if stem in known:
        return folder / f"{stem}.ipynb"
    hits = [k for k in known if k.split("_", 1)[0] == stem]
    if len(hits) == 1:
        return folder / f"{hits[0]}.ipynb"
    raise NotebookError(f"no exercise {chapter!r} in {folder}"
                        + (f" (chapters: {', '.join(known)})" if known else " (the folder has no exercises)"))


def learner_dir(folder: str | Path | None = None) -> Path:
    """The learner folder: ``folder`` if given, else ``work/`` at the project root."""
    return Path(folder).expanduser() if folder is not None else project_root() / LEARNER_DIR


def start(chapter: str, folder: str | Path | None = None, fresh: bool = False,
          exercises: Path | None = None) -> tuple[Path, bool]:
    """Copy the chapter's exercise into the learner folder; ``(path, created)``.

    An existing copy is never overwritten: without ``fresh`` its path comes back with
    ``created`` False; with ``fresh`` a new numbered copy is written (``NAME-2.ipynb``, ...).
    """
    src = find_exercise(chapter, exercises)
    dest_dir = learner_dir(folder)
    resolved = dest_dir.resolve()
    for protected in ("exercises", "solutions", "notebooks"):
        if resolved == (project_root() / protected).resolve() or resolved == src.parent.resolve():
            raise NotebookError(f"{dest_dir} is a folder mmlab writes to or reads from ({protected}/); "
                                "keep your work in a folder of your own (default: work/)")
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / src.name
    if dest.exists():
        if not fresh:
            return dest, False
        n = 2
        while (dest_dir / f"{src.stem}-{n}.ipynb").exists():
            n += 1
        dest = dest_dir / f"{src.stem}-{n}.ipynb"
    # Exclusive create: a copy that appeared meanwhile is still never overwritten.
    with open(dest, "xb") as f:
        f.write(src.read_bytes())
    return dest, True


def _running_notebook() -> Path | None:
    """The notebook file this kernel runs for, when JupyterLab started it (else None)."""
    name = os.environ.get("JPY_SESSION_NAME", "")
    if not name.endswith(".ipynb"):
        return None
    path = Path(name)
    if not path.is_absolute():
        path = Path.cwd() / path.name
    return path if path.is_file() else None


def _copies(assignment: str, folder: Path) -> list[Path]:
    pattern = re.compile(rf"^{re.escape(assignment)}(-\d+)?\.ipynb$")
    found = [p for p in folder.glob("*.ipynb") if pattern.match(p.name)] if folder.is_dir() else []
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


class CheckResult(dict):
    """The grader's result (a dict, as ``mmlab grade --json`` gives it) that shows as one line,
    so the notebook cell that returns it does not print the whole record."""

    def __repr__(self) -> str:
        line = f"{self['score']:g}/{self['max_score']:g} points from the autograded tasks"
        pending = self.get("needs_manual_grading") or []
        if pending:
            line += f"; {len(pending)} written answer(s) need manual grading"
        return line


def check_yourself(assignment: str, path: str | Path | None = None, *, cell_timeout: float = 300.0,
                   notebook_timeout: float = 1200.0, echo=print) -> CheckResult | None:
    """Grade your saved copy of ``assignment`` and print the per-task table.

    ``path`` defaults to the notebook this cell runs in (JupyterLab tells the kernel); run
    outside JupyterLab (papermill, the grader itself) it prints how to grade from a terminal
    and returns None. The copy is read, never changed. Runs without the sandbox: it is your
    own code. Returns the grader's result (shown as a one-line summary).
    """
    from mmlab.teach.grade import format_table, grade_notebook

    if path is None:
        path = _running_notebook()
        if path is None:
            echo(f"Check yourself: save your copy, then run this cell in JupyterLab, or from the project "
                 f"root: mmlab grade work/{assignment}.ipynb --assignment {assignment} --unsafe\n"
                 f"(no copy yet? mmlab start {assignment})")
            return None
    path = Path(path)
    if not path.is_file():
        raise NotebookError(f"{path}: no such notebook (start one with `mmlab start {assignment}`)")
    root = project_root()
    if path.resolve().parent == (root / "exercises").resolve():
        echo(f"NOTE: you are working in exercises/, which `mmlab assign` rewrites. Keep your work in "
             f"your own copy: `mmlab start {assignment}` (then open work/{assignment}.ipynb).")
    if not (root / "solutions" / f"{assignment}.ipynb").is_file():
        echo(f"Check yourself needs the instructor's solutions/{assignment}.ipynb (it holds the hidden "
             f"tests), which is not in {root}: run the visible test cells instead; your instructor "
             "grades with the hidden tests.")
        return None
    age = time.time() - path.stat().st_mtime
    echo(f"Grading {path} as saved {age:.0f} s ago (save first: Ctrl+S); it runs again in FAST mode, "
         "which can take a minute...")
    result = grade_notebook(path, assignment, source_dir=root / "solutions", cell_timeout=cell_timeout,
                            notebook_timeout=notebook_timeout, unsafe=True, bwrap=None)
    echo(format_table(result))
    if result["tasks"] and all(t["error"] is None for t in result["tasks"]):
        echo("Every autograded task passes.")
    return CheckResult(result)


__all__ = ["LEARNER_DIR", "CheckResult", "check_yourself", "find_exercise", "learner_dir", "project_root", "start"]
