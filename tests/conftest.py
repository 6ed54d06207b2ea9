"""Shared test fixtures: project paths, the real-data folder, determinism settings."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MPLBACKEND", "Agg")
# numba (librosa, mne) caches compiled functions beside their sources. Two pytest workers
# compiling the same function at once on a fresh install wrote a cache file that then
# segfaulted every later load (chapter 11's pyin, on a clean clone). Each worker, and the
# kernels it starts, gets a cache folder of its own (removed when the worker exits).
if "NUMBA_CACHE_DIR" not in os.environ:
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="mmlab-numba-")
    atexit.register(shutil.rmtree, os.environ["NUMBA_CACHE_DIR"], True)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real-data samples ($MMLAB_DATA_DIR); skips the test when unset."""
    value = os.environ.get("MMLAB_DATA_DIR")
    if not value:
        pytest.skip("MMLAB_DATA_DIR is not set (real-data samples unavailable)")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"MMLAB_DATA_DIR={value} is not a folder")
    return path


def pytest_collection_modifyitems(config, items):
    """Tests of the built book run last: by then the notebook tests have executed the chapters
    on both workers (tests/test_book.py's build reuses their runs), instead of one worker
    executing every chapter for the book while the other waits."""
    items.sort(key=lambda item: "built" in getattr(item, "fixturenames", ()))
