"""Execute chapters once, with a cache: the runner behind ``mmlab book`` and the notebook tests.

A chapter is run with papermill (parameters ``FAST``, ``SEED``, ``DATA_DIR``) in its own
folder, with matplotlib's inline backend so its figures are stored. The executed copy is
cached under ``CACHE/{fast,full}/NAME-KEY.ipynb``, where KEY hashes the notebook's code
cells, the parameters, the mode and the mmlab package's sources: a rebuild re-runs only
chapters whose code (or the library under them) changed, and a markdown-only edit reuses
the cached outputs (:func:`merge_outputs` puts them under the current markdown). A file
lock per chapter (``fcntl.flock``) makes two processes that want the same chapter run it
once: the second waits and then reads the first one's result.

Every figure a chapter displays carries, in its output metadata, what it shows
(``metadata["mmlab"]``: the titles and axis labels of each axes; see :data:`SETUP_SOURCE`),
which the book turns into alt text (:func:`figure_alt`) and the tests check
(:func:`unlabelled_axes`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mmlab.errors import MMLabError

PACKAGE = Path(__file__).resolve().parents[1]
SETUP_TAG = "mmlab-figure-setup"
CELL_TIMEOUT = 600

# Injected as the first cell of every run and removed from the stored copy. It switches the
# kernel to the inline backend (tests and `make` export MPLBACKEND=Agg, which would store no
# figure) and wraps the backend's per-figure metadata hook so each displayed figure says what
# it shows: suptitle, and per axes its title, x/y labels, and whether it draws data or an image.
SETUP_SOURCE = '''\
# mmlab book set-up (injected by mmlab.teach.execute; not part of the chapter)
get_ipython().run_line_magic("matplotlib", "inline")
import matplotlib_inline.backend_inline as _mmlab_bi


def _mmlab_describe(fig, _original=_mmlab_bi._fetch_figure_metadata):
    meta = dict(_original(fig) or {})
    axes = []
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison and not ax.images:
            continue
        if getattr(ax, "_colorbar", None) is not None or ax.get_label() == "<colorbar>":
            continue
        drawn = bool(ax.lines or ax.collections or ax.patches or ax.images or ax.tables)
        # an axes sharing x (stacked plots, twinx) or y (a row) with a labelled one is labelled
        xs = [a.get_xlabel() for a in ax.get_shared_x_axes().get_siblings(ax) if a is not ax]
        ys = [a.get_ylabel() for a in ax.get_shared_y_axes().get_siblings(ax) if a is not ax]
        axes.append({"title": " ".join(t for t in (ax.get_title("left"), ax.get_title(),
                                                   ax.get_title("right")) if t),
                     "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
                     "shared_xlabel": next((x for x in xs if x), ""),
                     "shared_ylabel": next((y for y in ys if y), ""),
                     "data": drawn, "image": bool(ax.images)})
    sup = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
    meta["mmlab"] = {"suptitle": sup, "axes": axes}
    return meta


_mmlab_bi._fetch_figure_metadata = _mmlab_describe
del _mmlab_describe
'''


def _params(fast: bool, seed: int, data_dir) -> dict:
    return {"FAST": bool(fast), "SEED": int(seed), "DATA_DIR": None if data_dir is None else str(data_dir)}


def library_digest() -> str:
    """Hash of the mmlab package's Python sources (a library change invalidates the cache); the
    book builder and this module are left out (their changes do not change a chapter's outputs;
    the injected set-up cell is hashed on its own)."""
    h = hashlib.sha256()
    skip = {PACKAGE / "teach" / "book.py", PACKAGE / "teach" / "execute.py"}
    for path in sorted(p for p in PACKAGE.rglob("*.py") if p not in skip):
        h.update(str(path.relative_to(PACKAGE)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def cache_key(nb, params: dict, mode: str, library: str | None = None) -> str:
    """Hash of the code cells' sources, the parameters, the mode, the set-up cell and the library."""
    h = hashlib.sha256()
    for cell in nb.cells:
        if cell.cell_type == "code":
            h.update(cell.source.encode())
            h.update(b"\x00")
    h.update(json.dumps(params, sort_keys=True).encode())
    h.update(mode.encode())
    h.update(SETUP_SOURCE.encode())
    h.update((library if library is not None else library_digest()).encode())
    return h.hexdigest()[:16]


@dataclass
class Run:
    """One chapter's execution: where its executed copy is, and how it got there."""

    source: Path
    executed: Path | None
    cached: bool
    seconds: float
    error: str | None = None
    failed_copy: Path | None = None
    notes: list[str] = field(default_factory=list)


@contextmanager
def _locked(path: Path, wait: bool = True):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _strip_setup(nb) -> None:
    nb.cells = [c for c in nb.cells if SETUP_TAG not in c.metadata.get("tags", [])]


def execute(path, *, fast: bool = True, cache_dir="_build/cache", seed: int = 0, data_dir=None,
            cell_timeout: int = CELL_TIMEOUT, library: str | None = None, wait: bool = True,
            log=None) -> Run | None:
    """Executed copy of ``path`` from the cache, running it (under its lock) when missing.

    Returns the :class:`Run`; ``error`` is set when the chapter raised (the failing executed copy
    is kept at ``failed_copy`` and nothing is cached). With ``wait=False`` returns None at once
    when another process holds the chapter's lock.
    """
    import nbformat

    path = Path(path).resolve()
    if not path.is_file():
        raise MMLabError(f"no notebook at {path}")
    mode = "fast" if fast else "full"
    params = _params(fast, seed, data_dir)
    nb = nbformat.read(path, as_version=4)
    key = cache_key(nb, params, mode, library)
    folder = Path(cache_dir).resolve() / mode
    target = folder / f"{path.stem}-{key}.ipynb"
    with _locked(folder / f"{path.stem}.lock", wait=wait) as got:
        if not got:
            return None
        if target.is_file():
            return Run(path, target, True, 0.0)
        import papermill as pm

        start = time.perf_counter()
        if log:
            log(f"executing {path.name} ({mode}) ...")
        run = nbformat.from_dict(json.loads(json.dumps(nb)))
        setup = nbformat.v4.new_code_cell(SETUP_SOURCE, metadata={"tags": [SETUP_TAG]})
        run.cells.insert(0, setup)
        tmp = folder / f"{path.stem}-{key}.{os.getpid()}.running.ipynb"
        error = None
        try:
            pm.execute_notebook(run, str(tmp), parameters=params, cwd=str(path.parent),
                                kernel_name="python3", execution_timeout=cell_timeout,
                                progress_bar=False, log_output=False)
        except pm.PapermillExecutionError as exc:
            error = f"cell {exc.cell_index}: {exc.ename}: {exc.evalue}"
        seconds = time.perf_counter() - start
        executed = nbformat.read(tmp, as_version=4)
        _strip_setup(executed)
        executed.metadata["mmlab"] = {"key": key, "mode": mode, "params": params, "seconds": round(seconds, 1)}
        if error is not None:
            failed = folder / f"{path.stem}-{key}.failed.ipynb"
            nbformat.write(executed, failed)
            tmp.unlink()
            if log:
                log(f"FAILED {path.name} ({mode}) after {seconds:.0f} s: {error}; executed copy: {failed}")
            return Run(path, None, False, seconds, error=error, failed_copy=failed)
        nbformat.write(executed, tmp)
        os.replace(tmp, target)
        for old in folder.glob(f"{path.stem}-*.ipynb"):
            if old != target and not old.name.endswith(".running.ipynb"):
                old.unlink(missing_ok=True)
        if log:
            log(f"executed {path.name} ({mode}) in {seconds:.0f} s")
        return Run(path, target, False, seconds)


def execute_many(paths, *, jobs: int = 1, log=None, **kwargs) -> list[Run]:
    """:func:`execute` every notebook, ``jobs`` at a time; a chapter another process is running
    is left for later (its lock is taken without waiting first), so two builders share the work."""
    from mmlab.validate import check_int

    jobs = check_int(jobs, "jobs", low=1)
    library = kwargs.pop("library", None) or library_digest()
    paths = [Path(p) for p in paths]
    results: dict[Path, Run] = {}

    def attempt(p, wait):
        return p, execute(p, library=library, wait=wait, log=log, **kwargs)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        busy = []
        for p, run in pool.map(lambda p: attempt(p, False), paths):
            if run is None:
                busy.append(p)
            else:
                results[p] = run
        for p, run in pool.map(lambda p: attempt(p, True), busy):
            results[p] = run
    return [results[p] for p in paths]


def merge_outputs(current, executed):
    """``current`` (the notebook as it is now) with the outputs of ``executed`` (a cached run of
    the same code cells): markdown edits since the run show, the outputs are the cached ones."""
    import nbformat

    merged = nbformat.from_dict(json.loads(json.dumps(current)))
    ran = [c for c in executed.cells
           if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]
    mine = [c for c in merged.cells if c.cell_type == "code"]
    if [c.source for c in ran] != [c.source for c in mine]:
        raise MMLabError("the cached run does not have the notebook's code cells; re-execute it")
    for cell, done in zip(mine, ran):
        cell.outputs = done.get("outputs", [])
        cell.execution_count = done.get("execution_count")
        if "mystnb" in done.metadata:
            cell.metadata["mystnb"] = done.metadata["mystnb"]
    merged.metadata["mmlab"] = executed.metadata.get("mmlab", {})
    return merged


# ----------------------------------------------------------------------------- figures
def figures(nb) -> list[tuple[int, dict]]:
    """(cell index, ``mmlab`` figure description or {}) for every image output of ``nb``."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") in ("display_data", "execute_result") and \
                    any(k.startswith("image/") for k in out.get("data", {})):
                found.append((i, dict(out.get("metadata", {}).get("mmlab", {}))))
    return found


def figure_alt(description: dict) -> str:
    """Alt text of one figure from its description: its title(s), then each axes' labels."""
    parts = []
    if description.get("suptitle"):
        parts.append(description["suptitle"].strip())
    for ax in description.get("axes", []):
        bits = [ax["title"].strip()] if ax.get("title") else []
        if ax.get("xlabel") or ax.get("ylabel"):
            bits.append(f"{ax.get('ylabel') or '?'} against {ax.get('xlabel') or '?'}")
        if bits:
            parts.append(": ".join(bits))
    text = "; ".join(p for p in parts if p)
    return " ".join(text.replace("$", "").split())


def unlabelled_axes(nb) -> list[str]:
    """One line per axes that draws data (not an image) but lacks an x or a y label, and per
    figure with no title at all."""
    bad = []
    for i, desc in figures(nb):
        if not desc:  # not a matplotlib figure (a screenshot, a saved PNG): no axes to check
            continue
        titled = bool(desc.get("suptitle")) or any(a.get("title") for a in desc.get("axes", []))
        if not titled:
            bad.append(f"cell {i}: a figure with no title")
        for n, ax in enumerate(desc.get("axes", [])):
            x = ax.get("xlabel") or ax.get("shared_xlabel")
            y = ax.get("ylabel") or ax.get("shared_ylabel")
            if ax.get("data") and not ax.get("image") and not (x and y):
                bad.append(f"cell {i} axes {n} ({ax.get('title') or 'untitled'!r}): "
                           f"x label {ax.get('xlabel')!r}, y label {ax.get('ylabel')!r}")
    return bad


def add_alt_text(nb) -> None:
    """Set each code cell's image alt text (MyST-NB's ``mystnb.image.alt``) from its figures."""
    per_cell: dict[int, list[str]] = {}
    for i, desc in figures(nb):
        per_cell.setdefault(i, []).append(figure_alt(desc) or "figure")
    for i, alts in per_cell.items():
        text = alts[0] if len(alts) == 1 else " | ".join(f"figure {k + 1}: {a}" for k, a in enumerate(alts))
        nb.cells[i].metadata.setdefault("mystnb", {}).setdefault("image", {})["alt"] = text
