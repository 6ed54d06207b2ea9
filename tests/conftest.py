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
    """Order the run for two workers: notebook executions first (the longest tests; chapter
    runs fill the cache that the book reuses), the tests of the built book last. With the
    chapters executed at the end, one worker ran the last chapter while the other waited for
    it to build the book (measured: about 3 minutes added to a fresh-clone run)."""
    def rank(item) -> int:
        if "built" in getattr(item, "fixturenames", ()):
            return 2
        return 0 if item.get_closest_marker("notebook") else 1
    items.sort(key=rank)
