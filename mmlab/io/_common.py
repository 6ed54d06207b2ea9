"""Small helpers shared by the readers (paths, errors, label tables)."""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np

from mmlab.errors import DataFormatError, DatasetError

#: Environment variable naming the folder that holds the real datasets.
DATA_DIR_ENV = "MMLAB_DATA_DIR"


@contextlib.contextmanager
def library_deprecations_hidden(package: str):
    """Hide the deprecation warnings ``package`` triggers inside its own code (e.g. wfdb
    calling pandas with ``inplace=True``): the reader cannot act on them, and they bury
    the warnings that matter. Warnings raised from mmlab's own code are untouched."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category, module=rf"{package}(\.|$)")
        yield


def data_dir() -> Path | None:
    """The folder named by ``$MMLAB_DATA_DIR``, or ``None`` when it is unset or empty.

    Readers never look at this on their own: they take explicit paths. Notebooks and
    tests use it to find the real-data samples (chapter 05_data), e.g.
    ``read_stress_predict(data_dir() / "stress_predict")``.
    """
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def existing_dir(path: str | Path, what: str) -> Path:
    """``path`` as a Path, or a DatasetError saying the folder is missing."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(f"{what}: {p} does not exist")
    if not p.is_dir():
        raise DatasetError(f"{what}: {p} is not a folder")
    return p


def existing_file(path: str | Path, what: str) -> Path:
    """``path`` as a Path, or a DataFormatError saying the file is missing."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataFormatError(f"{p}: {what} file is missing")
    return p


def safe_name(text: str) -> str:
    """A stream/subject-safe name: letters, digits, '_', '-', '.' (others become '_')."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_")
    if not name or not name[0].isalnum():
        name = "x" + name
    return name


def slug(text: str) -> str:
    """A lower-case machine label: 'Stroop Test' -> 'stroop_test'."""
    return re.sub(r"[^a-z0-9]+", "_", str(text).lower()).strip("_")


def check_choice(value, known: dict | Iterable, what: str, where: str):
    """Return ``value`` if it is one of ``known``; otherwise a DataFormatError listing them."""
    if value in known:
        return value
    if isinstance(known, dict):
        listing = ", ".join(f"{k}={v}" for k, v in known.items())
    else:
        listing = ", ".join(str(k) for k in known)
    raise DataFormatError(f"{where}: unknown {what} {value!r} (known: {listing})")


def runs_of(codes: np.ndarray) -> list[tuple[int, int, int]]:
    """Run-length encoding of a 1-D integer array: (start index, stop index, value)."""
    codes = np.asarray(codes).reshape(-1)
    if codes.size == 0:
        return []
    change = np.flatnonzero(np.diff(codes) != 0) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [codes.size]])
    return [(int(a), int(b), int(codes[a])) for a, b in zip(starts, stops)]


def counts(values: Iterable) -> dict:
    """Label counts as a plain dict, most common first (ties by name)."""
    out: dict = {}
    for v in values:
        key = v.item() if isinstance(v, np.generic) else v
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], str(kv[0]))))
