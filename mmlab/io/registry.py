"""The registry of real datasets and :func:`fetch` (chapter 05_data).

``datasets/registry.json`` (next to the ``mmlab`` package in the project tree) lists, per
dataset name: ``title``, ``homepage``, ``license``, ``citation``, ``reader`` (the mmlab
function that reads the fetched folder), ``format`` (what :func:`mmlab.io.describe`
reports), ``size``, ``files`` (each with ``name``, ``url``, ``sha256`` — ``null`` when no
checksum is known — optionally ``md5`` and ``unpack``), ``root`` (the folder inside the
download that the reader takes) and ``notes``.

Nothing here touches the network unless :func:`fetch` is called. ``fetch`` downloads with
pooch into ``dest`` (default ``$MMLAB_CACHE/<name>`` or ``~/.cache/mmlab/<name>``),
verifies checksums where known, unpacks archives, and returns the folder to give the
reader. Files already in place (e.g. copied by hand) with a matching checksum are not
downloaded again. Without a network it raises :class:`~mmlab.errors.DatasetError` saying
what it tried and how to place the files by hand.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from mmlab.errors import DatasetError

#: Where the registry lives; ``$MMLAB_REGISTRY`` may point at another JSON file.
REGISTRY_PATH = Path(__file__).resolve().parents[2] / "datasets" / "registry.json"
_REQUIRED = ("title", "homepage", "license", "citation", "reader", "format", "files", "root")

_cache: dict[str, dict] = {}


def registry_path() -> Path:
    """The registry file in use (``$MMLAB_REGISTRY`` or ``datasets/registry.json``)."""
    env = os.environ.get("MMLAB_REGISTRY", "").strip()
    return Path(env).expanduser() if env else REGISTRY_PATH


def load_registry(path: str | Path | None = None) -> dict[str, dict]:
    """All registry entries, ``{name: entry}``, checked for their required fields."""
    path = Path(path) if path is not None else registry_path()
    key = str(path)
    if key in _cache:
        return _cache[key]
    if not path.is_file():
        raise DatasetError(f"{path}: the dataset registry is missing (is mmlab installed from its "
                           "project folder?)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        entries = doc["datasets"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DatasetError(f"{path}: not a valid dataset registry ({exc})") from exc
    for name, entry in entries.items():
        missing = [k for k in _REQUIRED if k not in entry]
        if missing:
            raise DatasetError(f"{path}: dataset {name!r} lacks field(s) {missing}")
        for f in entry["files"]:
            if not {"name", "url", "sha256"} <= set(f):
                raise DatasetError(f"{path}: a file of {name!r} needs name, url and sha256 (null if unknown)")
    _cache[key] = entries
    return entries


def list_datasets() -> list[str]:
    """The names of the registered datasets."""
    return sorted(load_registry())


def dataset_info(name: str) -> dict:
    """The registry entry of one dataset (a copy); DatasetError listing the names if unknown."""
    entries = load_registry()
    if name not in entries:
        raise DatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(entries))}")
    return json.loads(json.dumps(entries[name]))


def cache_dir() -> Path:
    """Default download folder: ``$MMLAB_CACHE`` or ``~/.cache/mmlab``."""
    env = os.environ.get("MMLAB_CACHE", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mmlab"


def _known_hash(f: dict) -> str | None:
    if f.get("sha256"):
        return f"sha256:{f['sha256']}"
    if f.get("md5"):
        return f"md5:{f['md5']}"
    return None


def _by_hand(name: str, entry: dict, folder: Path) -> str:
    lines = [f"To install {name} by hand, download (see {entry['homepage']}):"]
    for f in entry["files"]:
        lines.append(f"  {f['url']}\n    -> {folder / f['name']}" + ("  (and unzip it there)" if f.get("unpack") else ""))
    root = folder / entry["root"] if entry["root"] else folder
    lines.append(f"then read it with {entry['reader']}({str(root)!r}); fetch({name!r}) will find "
                 "the files in place and not download them again.")
    return "\n".join(lines)


def fetch(name: str, dest: str | Path | None = None, progressbar: bool = False) -> Path:
    """Download dataset ``name`` from its official source; return the folder for its reader.

    Checksums are verified where the registry knows them; a file without one is
    downloaded with a warning that gives its SHA-256. Raises DatasetError for an unknown
    name, on a checksum mismatch, and on any network error (with instructions to place
    the files by hand).
    """
    entry = dataset_info(name)
    folder = Path(dest).expanduser() if dest is not None else cache_dir() / name
    try:
        import pooch
    except ImportError as exc:  # pragma: no cover - pooch is a dependency
        raise DatasetError(f"fetch({name!r}) needs the 'pooch' package ({exc})") from exc
    for f in entry["files"]:
        target = folder / f["name"]
        known = _known_hash(f)
        processor = pooch.Unzip(extract_dir=".") if f.get("unpack") else None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            pooch.retrieve(f["url"], known_hash=known, fname=target.name, path=target.parent,
                           processor=processor, progressbar=progressbar)
        except ValueError as exc:
            if "hash" in str(exc).lower():
                raise DatasetError(
                    f"fetch({name!r}): checksum mismatch for {f['url']} ({exc}). The download is "
                    f"corrupt or the source changed; delete {target} and try again, or report it."
                ) from exc
            raise DatasetError(f"fetch({name!r}): could not download {f['url']}: {exc}\n"
                               + _by_hand(name, entry, folder)) from exc
        except Exception as exc:  # requests.ConnectionError, Timeout, HTTPError, OSError ...
            raise DatasetError(
                f"fetch({name!r}): could not download {f['url']} "
                f"({type(exc).__name__}: {exc}). Is there a network connection?\n"
                + _by_hand(name, entry, folder)) from exc
        if known is None:
            digest = pooch.file_hash(str(target), alg="sha256")
            warnings.warn(f"fetch({name!r}): no checksum is known for {f['name']}, so it was not "
                          f"verified; its SHA-256 is {digest}", stacklevel=2)
    return folder / entry["root"] if entry["root"] else folder
