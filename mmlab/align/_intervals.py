"""Time intervals as sorted, disjoint ``(start, end)`` arrays (shared by windows and gaps).

An interval set is a pair of float arrays ``starts, ends`` with ``starts[i] < ends[i] <=
starts[i + 1]``. The one trick used everywhere: the covered length up to time ``t`` is a
piecewise-linear function of ``t``, so the overlap of *every* window with a set of
intervals is two ``np.interp`` calls, whatever the number of windows.
"""

from __future__ import annotations

import numpy as np


def merge(starts, ends) -> tuple[np.ndarray, np.ndarray]:
    """Union of intervals (any order, may overlap or touch) as sorted disjoint arrays.

    Empty intervals (``end <= start``) are dropped.
    """
    a = np.asarray(starts, dtype=float).reshape(-1)
    b = np.asarray(ends, dtype=float).reshape(-1)
    keep = b > a
    a, b = a[keep], b[keep]
    if len(a) == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(a, kind="stable")
    a, b = a[order], np.maximum.accumulate(b[order])
    # a new run starts where an interval begins after everything before it has ended
    new = np.ones(len(a), dtype=bool)
    new[1:] = a[1:] > b[:-1]
    first = np.flatnonzero(new)
    last = np.r_[first[1:] - 1, len(a) - 1]
    return a[first], b[last]


def covered_length(starts: np.ndarray, ends: np.ndarray, t0, t1) -> np.ndarray:
    """Length of ``[t0, t1)`` (arrays, one per window) covered by the disjoint intervals."""
    t0 = np.asarray(t0, dtype=float)
    t1 = np.asarray(t1, dtype=float)
    if len(starts) == 0:
        return np.zeros(np.broadcast(t0, t1).shape)
    x = np.empty(2 * len(starts))
    x[0::2], x[1::2] = starts, ends
    lengths = ends - starts
    cum = np.empty(2 * len(starts))
    cum[0::2] = np.r_[0.0, np.cumsum(lengths)[:-1]]
    cum[1::2] = np.cumsum(lengths)
    # np.interp needs non-decreasing x: touching intervals were merged, so it is increasing
    f = lambda t: np.interp(t, x, cum, left=0.0, right=cum[-1])  # noqa: E731
    return np.maximum(f(t1) - f(t0), 0.0)


def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index ranges ``[i0, i1)`` of the runs of True in a boolean vector."""
    m = np.asarray(mask, dtype=bool).reshape(-1)
    if not m.any():
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    d = np.diff(np.r_[0, m.astype(np.int8), 0])
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)
