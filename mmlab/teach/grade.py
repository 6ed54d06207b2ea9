"""``mmlab grade``: autograde a learner's notebook against its solution source.

How a submission is graded:

1. The solution source is found from ``metadata.mmlab.source`` (written by ``mmlab
   assign``) or else the file name, in ``--source`` (default: ``./solutions`` if it
   exists, else the project's ``solutions/``).
2. A copy of the submission is made in memory (the learner's file is never modified);
   every test cell is restored from the source by ``grade_id`` — edited tests are
   overwritten, deleted tests are put back after the cell that precedes them in the
   source, and hidden tests are included. Points always come from the source.
3. ``FAST = True`` is injected after the ``parameters`` cell, as in CI.
4. Cells run one by one in a fresh ``python3`` kernel in a temporary working folder, with
   a per-cell timeout. A cell that times out or kills the kernel is recorded; the kernel
   is restarted, the cells that ran before are replayed, and grading carries on, so one
   runaway answer costs only the tasks that depend on it. Outputs are capped per cell.
5. A task (test cell) earns its points when it runs without error. Its ``error`` is the
   test's exception, prefixed by what went wrong in the answer cells before it.
"""

from __future__ import annotations

import copy
import csv
import tempfile
from pathlib import Path

import nbformat

from mmlab.errors import NotebookError
from mmlab.teach.markers import cell_role, nbgrader_meta

KERNEL = "python3"


def project_solutions() -> Path:
    """The ``solutions/`` folder of the project mmlab was installed from."""
    return Path(__file__).resolve().parents[2] / "solutions"


def find_source(submission: Path, nb, source_dir: Path | None) -> Path:
    """The solution notebook a submission is graded against."""
    if source_dir is None:
        local = Path.cwd() / "solutions"
        source_dir = local if local.is_dir() else project_solutions()
    name = (nb.metadata.get("mmlab") or {}).get("source") or submission.name
    path = Path(source_dir) / name
    if not path.is_file():
        raise NotebookError(f"{submission}: no solution source {name!r} in {source_dir}")
    return path


def merge_tests(sub, src):
    """The submission with every test cell restored from the source (a new notebook)."""
    nb = copy.deepcopy(sub)
    src_tests = {nbgrader_meta(c)["grade_id"]: c for c in src.cells if cell_role(c) == "test"}
    # Drop anything in the submission posing as a test that the source does not know,
    # and cells whose grade_id the learner moved onto a different kind of cell.
    cells = []
    for c in nb.cells:
        gid = nbgrader_meta(c).get("grade_id")
        if cell_role(c) == "test" and gid not in src_tests:
            continue
        if gid in src_tests:
            restored = copy.deepcopy(src_tests[gid])
            restored.outputs, restored.execution_count = [], None
            cells.append(restored)
        else:
            cells.append(c)
    present = {nbgrader_meta(c).get("grade_id") for c in cells}
    # Re-insert deleted tests after the nearest preceding source cell that survived.
    src_ids = [nbgrader_meta(c).get("grade_id") for c in src.cells]
    for k, c in enumerate(src.cells):
        gid = src_ids[k]
        if cell_role(c) != "test" or gid in present:
            continue
        anchor = next((src_ids[j] for j in range(k - 1, -1, -1) if src_ids[j] in present), None)
        pos = 0 if anchor is None else 1 + next(
            i for i, x in enumerate(cells) if nbgrader_meta(x).get("grade_id") == anchor)
        restored = copy.deepcopy(c)
        restored.outputs, restored.execution_count = [], None
        cells.insert(pos, restored)
        present.add(gid)
    nb.cells = cells
    return nb


def inject_fast(nb) -> None:
    """Insert ``FAST = True`` after the cell tagged ``parameters`` (or first)."""
    idx = next((i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])), -1)
    cell = nbformat.v4.new_code_cell("# Injected by mmlab grade\nFAST = True")
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(idx + 1, cell)


def _cap_outputs(cell, cap: int) -> None:
    used = 0
    kept = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            text = out.text if isinstance(out.text, str) else "".join(out.text)
            room = max(cap - used, 0)
            if len(text) > room:
                out.text = text[:room] + f"\n[... output capped at {cap} characters by mmlab grade]\n"
            used += len(text)
            kept.append(out)
            if used > cap:
                break
        else:
            kept.append(out)
    cell.outputs = kept


def _error_text(cell) -> str | None:
    for out in cell.get("outputs", []):
        if out.output_type == "error":
            return f"{out.ename}: {out.evalue}".strip().rstrip(":")
    return None


class _Runner:
    """A kernel that can be restarted and brought back to the state before cell ``i``."""

    def __init__(self, nb, cwd: str, timeout: float):
        from nbclient import NotebookClient

        self.client = NotebookClient(
            nb, timeout=timeout, kernel_name=KERNEL, allow_errors=True,
            interrupt_on_timeout=False, shutdown_kernel="immediate", startup_timeout=60,
            resources={"metadata": {"path": cwd}},
        )
        self.cwd = cwd

    def start(self) -> None:
        c = self.client
        c.km = c.create_kernel_manager()
        c.start_new_kernel(cwd=self.cwd)
        c.start_new_kernel_client()

    def stop(self) -> None:
        """Shut the kernel down through jupyter_client's public manager and client API."""
        from nbclient.util import ensure_async, run_sync

        c = self.client
        km, kc = c.km, c.kc
        c.km, c.kc = None, None
        if km is None:
            return

        async def shutdown() -> None:
            try:
                if await ensure_async(km.is_alive()):
                    await ensure_async(km.shutdown_kernel(now=True))
            finally:
                await ensure_async(km.cleanup_resources())
                if kc is not None:
                    kc.stop_channels()

        try:
            run_sync(shutdown)()
        except Exception:  # the kernel may already be gone; never mask the grade
            pass

    def run(self, cell, index: int) -> str | None:
        """Execute one cell; return ``None``, or why it could not finish."""
        from nbclient.exceptions import CellTimeoutError, DeadKernelError

        try:
            self.client.execute_cell(cell, index)
            return None
        except CellTimeoutError:
            return f"timed out after {self.client.timeout:g} s"
        except DeadKernelError:
            return "the kernel died (e.g. os._exit, a crash or out of memory)"
        except Exception as exc:  # kernel-side surprises surface as client errors
            return f"could not be run ({type(exc).__name__}: {exc})"


def execute_for_grading(nb, cell_timeout: float, output_cap: int) -> dict[int, str]:
    """Run ``nb`` in place cell by cell; return {cell index: reason} for fatal cells."""
    fatal: dict[int, str] = {}
    with tempfile.TemporaryDirectory(prefix="mmlab-grade-") as cwd:
        runner = _Runner(nb, cwd, cell_timeout)
        runner.start()
        try:
            for i, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                reason = runner.run(cell, i)
                _cap_outputs(cell, output_cap)
                if reason is None:
                    continue
                fatal[i] = reason
                runner.stop()
                runner.start()
                # Replay what ran before, without the cells that could not finish.
                for j in range(i):
                    if nb.cells[j].cell_type == "code" and j not in fatal:
                        replay = copy.deepcopy(nb.cells[j])
                        if runner.run(replay, j) is not None:
                            fatal[j] = "could not be replayed after a restart"
                            runner.stop()
                            runner.start()
        finally:
            runner.stop()
    return fatal


def grade_notebook(path: Path, source_dir: Path | None = None, cell_timeout: float = 60.0,
                   output_cap: int = 10_000) -> dict:
    """Grade one submission; return ``{"notebook", "score", "max_score", "tasks": [...]}``.

    Each task is ``{"grade_id", "points", "max_points", "error"}`` with ``error`` None when
    the test passed.
    """
    path = Path(path)
    try:
        sub = nbformat.read(path, as_version=4)
    except Exception as exc:
        raise NotebookError(f"{path}: not a readable notebook ({exc})") from exc
    src_path = find_source(path, sub, source_dir)
    src = nbformat.read(src_path, as_version=4)
    nb = merge_tests(sub, src)
    inject_fast(nb)
    fatal = execute_for_grading(nb, cell_timeout, output_cap)

    tasks = []
    answer_problems: list[str] = []
    for i, cell in enumerate(nb.cells):
        role = cell_role(cell)
        gid = nbgrader_meta(cell).get("grade_id")
        if role != "test":
            if i in fatal:
                answer_problems.append(f"cell {gid or i} {fatal[i]}")
            elif _error_text(cell):
                answer_problems.append(f"{'answer ' + gid if gid else f'cell {i}'} raised {_error_text(cell)}")
            continue
        max_points = float(next(nbgrader_meta(c)["points"] for c in src.cells
                                if nbgrader_meta(c).get("grade_id") == gid))
        error = f"test {fatal[i]}" if i in fatal else _error_text(cell)
        if error and answer_problems:
            error = "; ".join(answer_problems) + "; then " + error
        answer_problems = []
        tasks.append({"grade_id": gid, "points": 0.0 if error else max_points,
                      "max_points": max_points, "error": error})
    return {
        "notebook": str(path),
        "source": str(src_path),
        "score": sum(t["points"] for t in tasks),
        "max_score": sum(t["max_points"] for t in tasks),
        "tasks": tasks,
    }


def format_table(result: dict) -> str:
    """A per-task table for the terminal."""
    rows = [(t["grade_id"], f"{t['points']:g}/{t['max_points']:g}", t["error"] or "ok")
            for t in result["tasks"]]
    w = max([len(r[0]) for r in rows] + [4])
    lines = [f"{result['notebook']}  (graded against {result['source']})",
             f"  {'task':<{w}}  points  result"]
    lines += [f"  {g:<{w}}  {p:>6}  {e}" for g, p, e in rows]
    lines.append(f"  {'total':<{w}}  {result['score']:g}/{result['max_score']:g}")
    return "\n".join(lines)


def write_gradebook(results: list[dict], out: Path) -> None:
    """One CSV row per submission: notebook, score, max_score, then points per task."""
    ids: list[str] = []
    for r in results:
        ids += [t["grade_id"] for t in r["tasks"] if t["grade_id"] not in ids]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["notebook", "score", "max_score", *ids])
        for r in results:
            pts = {t["grade_id"]: t["points"] for t in r["tasks"]}
            w.writerow([r["notebook"], r["score"], r["max_score"], *(pts.get(i, "") for i in ids)])
