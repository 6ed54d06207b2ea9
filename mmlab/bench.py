"""Benchmarks behind ``mmlab bench TOPIC``: they print figures, tests never time anything.

Each topic is a function returning a JSON-able dict; :func:`run` dispatches by name and
:func:`format_result` prints the dict as aligned ``key: value`` lines.
"""

from __future__ import annotations

from typing import Callable

from mmlab.errors import MMLabError

_TOPICS: dict[str, Callable[..., dict]] = {}


def topic(name: str):
    """Register a benchmark function under ``name``."""
    def deco(fn: Callable[..., dict]) -> Callable[..., dict]:
        _TOPICS[name] = fn
        return fn
    return deco


def run(name: str, **kwargs) -> dict:
    """Run the benchmark ``name`` with keyword options (e.g. ``subjects``, ``seed``)."""
    if name not in _TOPICS:
        raise MMLabError(f"unknown benchmark {name!r}; available: {sorted(_TOPICS)}")
    return _TOPICS[name](**kwargs)


def format_result(name: str, result: dict) -> str:
    width = max((len(k) for k in result), default=0)
    lines = [f"mmlab bench {name}"]
    for k, v in result.items():
        v = f"{v:.4g}" if isinstance(v, float) else v
        lines.append(f"  {k:<{width}}  {v}")
    return "\n".join(lines)
