"""The versioned model folder every system saves: ``manifest.json`` plus the model.

One reader and one writer, so every system refuses an incompatible folder the same way:
no manifest, a manifest that is not JSON, another format, or another mmlab version is a
:class:`~mmlab.errors.SchemaError` that says what to do.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any, Callable

import mmlab
from mmlab.errors import SchemaError


def write_manifest(folder: str | Path, fmt: str, manifest: dict) -> Path:
    """Create ``folder`` and write ``manifest.json`` with ``format`` and ``mmlab_version`` first."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    full = {"format": fmt, "mmlab_version": mmlab.__version__, **manifest}
    (folder / "manifest.json").write_text(json.dumps(full, indent=2, default=_plain))
    return folder


def _plain(value: Any) -> Any:
    """JSON for what ``json`` does not know: numpy numbers and arrays as numbers, else text."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def read_manifest(folder: str | Path, fmt: str, what: str, retrain: str) -> dict:
    """The manifest of a folder written with format ``fmt`` by this mmlab version.

    ``what`` names the model in errors ("a stress model"); ``retrain`` is the command that
    makes a new one.

    Examples
    --------
    >>> import tempfile
    >>> d = write_manifest(tempfile.mkdtemp(), "demo/1", {"classes": [0, 1]})
    >>> read_manifest(d, "demo/1", "a demo model", "demo train")["classes"]
    [0, 1]
    >>> read_manifest(d, "demo/2", "a demo model", "demo train")
    Traceback (most recent call last):
    ...
    mmlab.errors.SchemaError: ...: model format 'demo/1', this mmlab reads 'demo/2'
    """
    folder = Path(folder)
    mf = folder / "manifest.json"
    if not mf.is_file():
        raise SchemaError(f"{folder} is not {what} folder (no manifest.json)")
    try:
        manifest = json.loads(mf.read_text())
    except ValueError as e:
        raise SchemaError(f"{mf} is not valid JSON: {e}") from None
    if manifest.get("format") != fmt:
        raise SchemaError(f"{folder}: model format {manifest.get('format')!r}, this mmlab reads {fmt!r}")
    if manifest.get("mmlab_version") != mmlab.__version__:
        raise SchemaError(f"{folder} was saved by mmlab {manifest.get('mmlab_version')}, this is "
                          f"mmlab {mmlab.__version__}: retrain it ({retrain})")
    return manifest


def save_pickled(obj: Any, folder: str | Path, fmt: str, manifest: dict) -> Path:
    """``manifest.json`` and ``model.pkl`` (the fitted object) in ``folder``."""
    folder = write_manifest(folder, fmt, manifest)
    with open(folder / "model.pkl", "wb") as f:
        pickle.dump(obj, f)
    return folder


def load_pickled(cls: type, folder: str | Path, fmt: str, what: str, retrain: str,
                 matches: Callable[[Any, dict], bool]) -> Any:
    """The object :func:`save_pickled` wrote, checked against its manifest with ``matches``."""
    folder = Path(folder)
    manifest = read_manifest(folder, fmt, what, retrain)
    with open(folder / "model.pkl", "rb") as f:
        obj = pickle.load(f)
    if not isinstance(obj, cls) or not matches(obj, manifest):
        raise SchemaError(f"{folder}: model.pkl does not match its manifest")
    return obj
