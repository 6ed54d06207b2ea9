"""The benchmark registry: every topic has a module with ``run``; unknown topics are clear errors."""

from __future__ import annotations

import importlib

import pytest

from mmlab import bench
from mmlab.errors import MMLabError


@pytest.mark.parametrize("name", sorted(bench.TOPICS))
def test_topic_module_has_run(name):
    assert callable(importlib.import_module(f"mmlab.bench.{name}").run)


def test_unknown_topic():
    with pytest.raises(MMLabError, match="unknown benchmark 'nope'; available:"):
        bench.run("nope")


def test_format_result_prints_rows_as_a_table():
    text = bench.format_result("x", {"speedup": 51.234, "methods": [{"name": "a", "f1": 0.5},
                                                                     {"name": "bb", "f1": 0.25}]})
    assert "speedup  51.23" in text
    assert [l.split() for l in text.splitlines()[-3:]] == [["name", "f1"], ["a", "0.5"], ["bb", "0.25"]]
