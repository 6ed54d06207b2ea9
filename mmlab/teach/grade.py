"""``mmlab grade``: autograde learners' notebooks against the instructor's solution.

How a submission is graded (the threat model is in docs/instructor.md):

1. **The instructor pins the source**: ``--assignment 12_ecg_hrv`` (a name in the
   solutions folder) or a path to a solution notebook. The submission's own metadata is
   never used to choose it.
2. **The notebook is rebuilt** from the source (:mod:`mmlab.teach.rebuild`): set-up,
   parameters (``FAST = True`` injected), visible and hidden tests come from the source;
   only the learner's answer regions and added cells come from the submission.
3. **It runs in a sandbox** (:mod:`mmlab.teach.sandbox`, bubblewrap): its own scratch
   folder, no network, no view of solutions or other submissions, a user id of its own,
   memory/process/file-size limits; every process is killed at the end.
4. **Verdicts are a protocol** (:mod:`mmlab.teach._harness`): a test earns its points only
   when the runner reports ``pass`` with the secret token of that request, after
   restoring builtins and library modules and running the test's code to its end.
5. **Written answers** (markdown cells graded by a person, ``markers.is_manual``) are not
   run: the learner's text is taken from the submission and reported as "needs manual
   grading" (``written`` in the result); an unanswered one scores 0. The instructor's
   points are merged in later (:func:`read_manual`, :func:`merge_manual`).
6. **Cost is bounded**: a per-cell and a per-notebook wall-clock limit; a timed-out or
   crashed cell fails its task; at most one restart (replaying the cells that ran) per
   submission; output and error texts are capped.
"""

from __future__ import annotations

import csv
import html
import json
import re
import time
from pathlib import Path

import nbformat

from mmlab.errors import NotebookError
from mmlab.validate import check_positive
from mmlab.teach import sandbox
from mmlab.teach.kernel import Kernel
from mmlab.teach.markers import cell_role, is_manual, nbgrader_meta
from mmlab.teach.rebuild import Mismatch, aliases, preimports, rebuild, written_answers

ERROR_CAP = 500
ANSWER_CAP = 20_000  # characters of a written answer kept in the report
NEEDS_MANUAL = "needs manual grading"
NOT_ANSWERED = "not answered"


def project_solutions() -> Path:
    """The ``solutions/`` folder of the project mmlab was installed from."""
    return Path(__file__).resolve().parents[2] / "solutions"


def resolve_assignment(assignment: str | Path, source_dir: Path | None = None) -> Path:
    """The solution notebook for ``assignment``: a path to a notebook, or a name in ``source_dir``."""
    p = Path(assignment)
    if p.suffix == ".ipynb" and p.is_file():
        return p.resolve()
    if source_dir is None:
        local = Path.cwd() / "solutions"
        source_dir = local if local.is_dir() else project_solutions()
    name = p.name if p.suffix == ".ipynb" else f"{p.name}.ipynb"
    path = Path(source_dir) / name
    if "/" in str(assignment) and not p.is_file() and p.suffix == ".ipynb":
        raise NotebookError(f"assignment {assignment}: no such solution notebook")
    if not path.is_file():
        known = sorted(q.stem for q in Path(source_dir).glob("*.ipynb")) if Path(source_dir).is_dir() else []
        raise NotebookError(f"assignment {assignment!r}: no solution notebook {name} in {source_dir}"
                            + (f" (known: {', '.join(known)})" if known else ""))
    return path.resolve()


def _cap(text: str | None, n: int = ERROR_CAP) -> str | None:
    if text is None:
        return None
    text = str(text)
    return text if len(text) <= n else text[:n] + f" [... {len(text) - n} more characters]"


def _read_submission(path: Path):
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise NotebookError(f"not a readable notebook ({type(exc).__name__}: {_cap(str(exc), 200)})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise NotebookError("not a notebook (no list of cells)")
    cells = []
    for c in raw["cells"]:
        if not isinstance(c, dict):
            continue
        src = c.get("source", "")
        src = "".join(s for s in src if isinstance(s, str)) if isinstance(src, list) else str(src)
        meta = c.get("metadata") if isinstance(c.get("metadata"), dict) else {}
        if not isinstance(meta.get("nbgrader", {}), dict):
            meta = {k: v for k, v in meta.items() if k != "nbgrader"}
        if not isinstance(meta.get("tags", []), list):
            meta = {k: v for k, v in meta.items() if k != "tags"}
        cells.append(nbformat.from_dict({"cell_type": str(c.get("cell_type", "code")),
                                         "source": src, "metadata": meta}))
    return nbformat.from_dict({"cells": cells, "metadata": {}})


def student_id(path: Path, roster: dict[str, str] | None = None) -> str:
    """The student id: the roster's entry for the file name, else the name before ``_``/``.``."""
    stem = Path(path).stem
    if roster:
        for key in (Path(path).name, stem):
            if key in roster:
                return roster[key]
    return re.split(r"[_.\s]", stem, maxsplit=1)[0] or stem


def grade_notebook(path: Path, assignment: str | Path | None = None, *, source_notebook: Path | None = None,
                   source_dir: Path | None = None, cell_timeout: float = 60.0,
                   notebook_timeout: float = 600.0, output_cap: int = 10_000, unsafe: bool = False,
                   memory_mb: int = 4096, bwrap: str | None = "auto") -> dict:
    """Grade one submission against the pinned source; never raises for a bad submission.

    Returns ``{"notebook", "assignment", "source", "score", "max_score", "tasks", "written",
    "manual_score", "manual_max_score", "needs_manual_grading", "error", "notes", "cells"}``.
    ``score``/``max_score`` count the autograded tasks only; each task is ``{"grade_id",
    "points", "max_points", "error"}`` (``error`` None when it passed). Each written answer
    is ``{"grade_id", "points", "max_points", "answer", "status"}``: ``points`` None and
    ``status`` "needs manual grading" until :func:`merge_manual` fills it in; an unanswered
    one has 0 points. ``manual_score`` is None while any is pending. ``error`` at the top
    level says why nothing could be graded (unreadable file, wrong assignment, no sandbox...).
    """
    cell_timeout = check_positive(cell_timeout, "cell_timeout", unit="seconds", error=NotebookError)
    notebook_timeout = check_positive(notebook_timeout, "notebook_timeout", unit="seconds", error=NotebookError)
    if source_notebook is None:
        if assignment is None:
            raise NotebookError("the assignment must be chosen by the instructor (assignment= or source_notebook=)")
        source_notebook = resolve_assignment(assignment, source_dir)
    source_notebook = Path(source_notebook)
    src = nbformat.read(source_notebook, as_version=4)
    tests = [c for c in src.cells if cell_role(c) == "test"]
    result = {
        "notebook": str(path), "assignment": source_notebook.stem, "source": str(source_notebook),
        "score": 0.0, "max_score": float(sum(nbgrader_meta(c)["points"] for c in tests)),
        "tasks": [{"grade_id": nbgrader_meta(c)["grade_id"], "points": 0.0,
                   "max_points": float(nbgrader_meta(c)["points"]), "error": "not run"} for c in tests],
        "written": [{"grade_id": nbgrader_meta(c)["grade_id"], "points": 0.0,
                     "max_points": float(nbgrader_meta(c)["points"]), "answer": None, "status": NOT_ANSWERED}
                    for c in src.cells if is_manual(c)],
        "error": None, "notes": [], "cells": [],
    }
    _manual_totals(result)
    if bwrap == "auto":
        bwrap = sandbox.require(unsafe)
    try:
        sub = _read_submission(Path(path))
        cells, notes = rebuild(sub, src, source_notebook.name)
        texts = written_answers(sub, src, source_notebook.name)
    except (NotebookError, Mismatch) as exc:
        result["error"] = _cap(str(exc))
        for t in result["tasks"]:
            t["error"] = "not graded: " + result["error"]
        return result
    result["notes"] = notes
    for w in result["written"]:
        text = texts.get(w["grade_id"])
        if text is not None:
            w.update(answer=_cap(text, ANSWER_CAP), points=None, status=NEEDS_MANUAL)
    _manual_totals(result)
    _execute(cells, result, (preimports(src), aliases(src)), bwrap, cell_timeout, notebook_timeout, output_cap, memory_mb)
    result["score"] = float(sum(t["points"] for t in result["tasks"]))
    return result


def _manual_totals(result: dict) -> None:
    pending = [w["grade_id"] for w in result["written"] if w["points"] is None]
    result["needs_manual_grading"] = pending
    result["manual_max_score"] = float(sum(w["max_points"] for w in result["written"]))
    result["manual_score"] = None if pending else float(sum(w["points"] for w in result["written"]))


def read_manual(path: Path) -> dict[tuple[str, str], float]:
    """The instructor's points for written answers: CSV rows ``student,grade_id,points``.

    A header row naming ``student``, ``grade_id`` and ``points`` may put them in any order
    and add columns (e.g. ``comment``); without one the first three columns are used. A
    blank ``points`` is skipped (still to grade). Raises :class:`NotebookError` naming the
    row for anything else that is not a number.
    """
    with Path(path).open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        return {}
    head = [h.strip().lower() for h in rows[0]]
    if {"student", "grade_id", "points"} <= set(head):
        cols, body, first = [head.index(k) for k in ("student", "grade_id", "points")], rows[1:], 2
    else:
        cols, body, first = [0, 1, 2], rows, 1
    out: dict[tuple[str, str], float] = {}
    for n, row in enumerate(body, start=first):
        if not any(x.strip() for x in row):
            continue
        if len(row) <= max(cols):
            raise NotebookError(f"{path}, row {n}: expected student,grade_id,points, got {row!r}")
        student, gid, pts = (row[c].strip() for c in cols)
        if not pts:
            continue
        try:
            value = float(pts)
        except ValueError:
            raise NotebookError(f"{path}, row {n}: points {pts!r} for {student}/{gid} is not a number") from None
        if not (value >= 0 and value != float("inf")):
            raise NotebookError(f"{path}, row {n}: points {pts!r} for {student}/{gid} must be 0 or more")
        out[(student, gid)] = value
    return out


def check_manual(manual: dict[tuple[str, str], float], source_notebook: Path) -> None:
    """Refuse manual points for a ``grade_id`` that is not a written answer of the source, or
    above its maximum (checked before grading a class, so a typo costs no run)."""
    src = nbformat.read(Path(source_notebook), as_version=4)
    maxima = {nbgrader_meta(c)["grade_id"]: float(nbgrader_meta(c)["points"]) for c in src.cells if is_manual(c)}
    for (student, gid), pts in manual.items():
        if gid not in maxima:
            raise NotebookError(f"manual points for {student}/{gid}: {gid!r} is not a written answer of "
                                f"{Path(source_notebook).stem} (written answers: {', '.join(maxima) or 'none'})")
        if pts > maxima[gid]:
            raise NotebookError(f"manual points for {student}/{gid}: {pts:g} is more than its {maxima[gid]:g} points")


def merge_manual(results: list[dict], manual: dict[tuple[str, str], float]) -> None:
    """Fill the instructor's points into each result's written answers (by student id)."""
    for r in results:
        for w in r.get("written", []):
            pts = manual.get((str(r.get("student", "")), w["grade_id"]))
            if pts is not None:
                w["points"], w["status"] = float(pts), "graded by hand"
        if "written" in r:
            _manual_totals(r)


def _describe(cell, index: int) -> str:
    origin = cell.metadata.get("mmlab_origin")
    gid = cell.metadata.get("nbgrader", {}).get("grade_id")
    if origin == "answer":
        return f"answer {gid} (cell {index})"
    if origin == "added":
        return f"your added cell {index}"
    return f"cell {index}"


def _execute(cells, result, pre, bwrap, cell_timeout, notebook_timeout, output_cap, memory_mb) -> None:
    tasks = {t["grade_id"]: t for t in result["tasks"]}
    start = time.monotonic()
    end = start + notebook_timeout
    kernel = Kernel(bwrap, pre[0], memory_mb=memory_mb, output_cap=output_cap, aliases=pre[1])
    restarts = 0
    problems: list[str] = []
    done_ok: list[int] = []  # non-test cells that ran, replayed after a restart
    lost: str | None = None
    try:
        why = kernel.start(end)
        if why:
            lost = why
        i = 0
        while i < len(cells) and lost is None:
            cell = cells[i]
            is_test = cell_role(cell) == "test"
            now = time.monotonic()
            if now >= end:
                lost = f"the notebook time limit ({notebook_timeout:g} s) was reached"
                break
            reply = kernel.run(cell.source, is_test, min(end, now + cell_timeout))
            record = {"index": i, "origin": cell.metadata.get("mmlab_origin"),
                      "grade_id": cell.metadata.get("nbgrader", {}).get("grade_id"),
                      "status": reply.status, "error": _cap(reply.text), "output": reply.output,
                      "seconds": round(reply.seconds, 3)}
            result["cells"].append(record)
            fatal = reply.status in ("timeout", "died") or reply.status not in ("ok", "error", "pass", "fail")
            if fatal:
                what = (f"timed out after {min(cell_timeout, notebook_timeout):g} s" if reply.status == "timeout"
                        else "ended the kernel (os._exit, a crash, out of memory, or a thread or "
                             "process left running)")
                if is_test:
                    tasks[record["grade_id"]]["error"] = _cap(
                        "; ".join(problems + [f"test {what}"]))
                    problems = []
                else:
                    problems.append(f"{_describe(cell, i)} {what}")
                kernel.stop()
                if restarts >= 1:
                    lost = "the kernel was lost twice (at most one restart per submission)"
                    break
                restarts += 1
                why = kernel.start(end)
                if why:
                    lost = why
                    break
                for j in done_ok:  # replay: same learner code, fresh tokens, same deadline
                    r = kernel.run(cells[j].source, False, min(end, time.monotonic() + cell_timeout))
                    if r.status not in ("ok", "error"):
                        lost = f"replaying cell {j} after the restart failed ({r.status})"
                        break
                i += 1
                continue
            if is_test:
                t = tasks[record["grade_id"]]
                if reply.status == "pass":
                    t["points"], t["error"] = t["max_points"], None
                else:
                    t["error"] = _cap("; ".join(problems + [reply.text or "the test failed"]))
                problems = []
            else:
                done_ok.append(i)
                if reply.status == "error":
                    problems.append(f"{_describe(cell, i)} raised {reply.text}")
                    if cell.metadata.get("mmlab_origin") in ("source", "injected"):
                        result["notes"].append(_cap(f"set-up cell {i} of the solution raised {reply.text} "
                                                    "(check the grading environment)"))
            i += 1
    finally:
        kernel.stop()
    if lost:
        for t in result["tasks"]:
            if t["error"] == "not run":
                t["error"] = _cap("not run: " + lost + ("; " + "; ".join(problems) if problems else ""))
        result["notes"].append(lost)


# ------------------------------------------------------------------------- reports
def _fmt(x) -> str:
    return "" if x is None else f"{x:g}"


def format_table(result: dict) -> str:
    """A per-task table for the terminal (written answers after the autograded tasks)."""
    rows = [(t["grade_id"], f"{t['points']:g}/{t['max_points']:g}", t["error"] or "ok")
            for t in result["tasks"]]
    rows += [(w["grade_id"], f"{_fmt(w['points']) or '?'}/{w['max_points']:g}", f"written answer: {w['status']}")
             for w in result.get("written", [])]
    w = max([len(r[0]) for r in rows] + [5])
    lines = [f"{result['notebook']}  (assignment {result['assignment']})"]
    if result.get("error"):
        lines.append(f"  NOT GRADED: {result['error']}")
    lines.append(f"  {'task':<{w}}  points  result")
    lines += [f"  {g:<{w}}  {p:>6}  {e}" for g, p, e in rows]
    lines.append(f"  {'total':<{w}}  {result['score']:g}/{result['max_score']:g} autograded")
    if result.get("written"):
        pending = result.get("needs_manual_grading") or []
        lines.append(f"  {'':<{w}}  " + (f"{len(pending)} written answer(s), {sum(x['max_points'] for x in result['written'] if x['points'] is None):g} points, "
                                         f"{NEEDS_MANUAL}" if pending else
                                         f"{_fmt(result['manual_score'])}/{result['manual_max_score']:g} written"))
    lines += [f"  note: {n}" for n in result.get("notes", [])]
    return "\n".join(lines)


def write_gradebook(results: list[dict], out: Path) -> None:
    """One CSV row per submission.

    Columns: ``student``, ``assignment``, ``notebook``, the points of every task (autograded
    then written; blank for a written answer still to grade), ``score`` and ``max_score``
    (autograded), ``manual_score`` (blank while any is pending) and ``manual_max_score``,
    ``total`` (blank while any is pending), ``needs_manual_grading`` (the pending
    grade_ids) and ``error`` (why tasks failed).
    """
    ids: list[str] = []
    written: list[str] = []
    for r in results:
        ids += [t["grade_id"] for t in r["tasks"] if t["grade_id"] not in ids]
        written += [w["grade_id"] for w in r.get("written", []) if w["grade_id"] not in written]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "assignment", "notebook", *ids, *written, "score", "max_score",
                    "manual_score", "manual_max_score", "total", "needs_manual_grading", "error"])
        for r in results:
            pts = {t["grade_id"]: t["points"] for t in r["tasks"]}
            pts.update({x["grade_id"]: x["points"] for x in r.get("written", [])})
            err = r.get("error") or "; ".join(f"{t['grade_id']}: {t['error']}" for t in r["tasks"] if t["error"])
            manual = r.get("manual_score", 0.0)
            total = None if manual is None else r["score"] + manual
            w.writerow([r.get("student", ""), r["assignment"], r["notebook"],
                        *(_fmt(pts.get(i)) for i in ids + written), _fmt(r["score"]), _fmt(r["max_score"]),
                        _fmt(manual), _fmt(r.get("manual_max_score", 0.0)), _fmt(total),
                        " ".join(r.get("needs_manual_grading", [])), _cap(err, 2000) or ""])


def write_manual_template(results: list[dict], out: Path) -> Path:
    """A CSV for the instructor to fill: ``student,grade_id,points,max_points,answer`` for
    every written answer (points pre-filled where known); read back with ``--manual``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", "grade_id", "points", "max_points", "answer"])
        for r in results:
            for x in r.get("written", []):
                w.writerow([r.get("student", ""), x["grade_id"], _fmt(x["points"]), _fmt(x["max_points"]),
                            x["answer"] or ""])
    return out


def write_feedback(result: dict, folder: Path) -> Path:
    """A self-contained HTML page for one student: tasks, points, messages, written answers,
    cell outputs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{result.get('student') or Path(result['notebook']).stem}"
                  f"_{result['assignment']}") + ".html"
    e = html.escape
    rows = "".join(
        f"<tr class={'ok' if not t['error'] else 'bad'}><td>{e(t['grade_id'])}</td>"
        f"<td>{t['points']:g} / {t['max_points']:g}</td><td><pre>{e(t['error'] or 'passed')}</pre></td></tr>"
        for t in result["tasks"])
    rows += "".join(
        f"<tr class=manual><td>{e(x['grade_id'])}</td><td>{e(_fmt(x['points']) or '?')} / {x['max_points']:g}</td>"
        f"<td>written answer: {e(x['status'])}</td></tr>" for x in result.get("written", []))
    written = "".join(
        f"<h3>{e(x['grade_id'])} · {e(x['status'])}</h3><pre class=answer>{e(x['answer'] or '(no answer)')}</pre>"
        for x in result.get("written", []))
    cells = "".join(
        f"<h3>{e(str(c.get('grade_id') or c.get('origin')))} · cell {c['index']} · {e(c['status'])}</h3>"
        + (f"<pre>{e(c['output'])}</pre>" if c.get("output") and c.get("origin") != "source" else "")
        for c in result.get("cells", []) if c.get("origin") in ("answer", "added") or c["status"] not in ("ok", "pass"))
    notes = "".join(f"<li>{e(n)}</li>" for n in result.get("notes", []))
    manual_h1 = ""
    if result.get("written"):
        ms = result.get("manual_score")
        manual_h1 = (f" autograded, written answers {NEEDS_MANUAL}" if ms is None
                     else f" autograded + {ms:g} / {result['manual_max_score']:g} written")
    page = f"""<!doctype html><meta charset="utf-8"><title>{e(name)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:auto}}td,th{{padding:4px 8px;vertical-align:top}}
tr.ok{{background:#e8f5e9}}tr.bad{{background:#ffebee}}tr.manual{{background:#fff8e1}}
pre{{white-space:pre-wrap;margin:0}}pre.answer{{border-left:3px solid #999;padding-left:8px}}</style>
<h1>{e(result['assignment'])}: {result['score']:g} / {result['max_score']:g}{manual_h1}</h1>
<p>Student {e(str(result.get('student', '')))} · file {e(Path(result['notebook']).name)}</p>
{f"<p><b>Not graded:</b> {e(result['error'])}</p>" if result.get('error') else ''}
<table><tr><th>task</th><th>points</th><th>result</th></tr>{rows}</table>
{f"<h2>Your written answers</h2>{written}" if written else ''}
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ''}
<h2>Your cells</h2>{cells}
"""
    path = folder / name
    path.write_text(page, encoding="utf-8")
    return path


def collect(paths: list[str | Path]) -> list[Path]:
    """Expand folders into their ``*.ipynb`` files (sorted); keep files as given."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix == ".ipynb" and not q.name.startswith("."))
        else:
            out.append(p)
    return out


def read_roster(path: Path) -> dict[str, str]:
    """``file,student`` rows (header optional) -> {file name: student id}."""
    roster: dict[str, str] = {}
    with Path(path).open(newline="") as f:
        for row in csv.reader(f):
            if len(row) >= 2 and row[0].strip() and row[0].strip().lower() not in ("file", "notebook"):
                roster[row[0].strip()] = row[1].strip()
    return roster


def grade_batch(paths: list[str | Path], assignment: str | Path, *, roster: dict[str, str] | None = None,
                progress=None, manual: dict[tuple[str, str], float] | None = None, **kwargs) -> list[dict]:
    """Grade every submission; one result per file, whatever goes wrong with a file.

    ``manual`` ({(student, grade_id): points}, :func:`read_manual`) fills in written answers
    graded by hand; it is checked against the source before anything runs.
    """
    source = resolve_assignment(assignment, kwargs.pop("source_dir", None))
    if manual:
        check_manual(manual, source)
    if kwargs.get("bwrap", "auto") == "auto":
        kwargs["bwrap"] = sandbox.require(kwargs.get("unsafe", False))
    results = []
    for p in collect(paths):
        started = time.monotonic()
        try:
            r = grade_notebook(p, source_notebook=source, **kwargs)
        except Exception as exc:  # one bad file never aborts the batch
            r = {"notebook": str(p), "assignment": source.stem, "source": str(source), "score": 0.0,
                 "max_score": 0.0, "tasks": [], "written": [], "error": _cap(f"{type(exc).__name__}: {exc}"),
                 "notes": [], "cells": []}
            _manual_totals(r)
        r["student"] = student_id(p, roster)
        r["seconds"] = round(time.monotonic() - started, 2)
        if manual:
            merge_manual([r], manual)
        results.append(r)
        if progress:
            progress(r)
    return results
