"""Shared test fixtures: project paths, the real-data folder, determinism settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MPLBACKEND", "Agg")


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
