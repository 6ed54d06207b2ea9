"""Gaps, dropouts and presence masks (chapter 20_alignment).

Wearables lose data: a loose electrode gives a run of NaN, a Bluetooth hiccup a hole in
the timestamps, a missed beat a long inter-beat gap. A fusion model needs to know, per
window and per stream, whether there was enough data to trust, instead of silently
averaging over nothing. Here:

* :func:`find_gaps` — the NaN runs of a regular stream and the timestamp gaps of an
  irregular one (longer than ``max_gap_factor`` x the median interval), as a table;
* :func:`valid_intervals` — the complement: where a stream has data;
* :func:`coverage` — the fraction of each window covered by valid data, per stream (or per
  device / modality: covered if any of its streams is);
* :func:`presence_mask` — ``coverage >= min_coverage``: the boolean mask fusion models take.

A regular sample at ``t`` covers ``[t, t + 1/rate)``; an irregular stream covers the span
between consecutive valid samples that are at most ``max_gap_factor`` median intervals
apart. Times are the streams' own: align device clocks before comparing them with windows
on the reference clock.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmlab.align._intervals import covered_length, merge, runs
from mmlab.align.resample import median_interval
from mmlab.errors import SignalError
from mmlab.recording import Recording, Stream

__all__ = ["find_gaps", "valid_intervals", "coverage", "presence_mask"]


def _valid_samples(stream: Stream) -> np.ndarray:
    d = stream.data
    if d.dtype.kind not in "fc":
        return np.ones(len(d), dtype=bool)
    return np.isfinite(d.reshape(len(d), -1)).all(axis=1)


def _check_factor(max_gap_factor) -> float:
    f = float(max_gap_factor)
    if not f >= 1.0:
        raise SignalError(f"max_gap_factor must be >= 1 (a multiple of the median interval), got {max_gap_factor!r}")
    return f


def valid_intervals(stream: Stream, max_gap_factor: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Sorted disjoint ``(starts, ends)`` (stream time) where ``stream`` has valid data.

    A sample is valid when all its channels are finite.
    """
    ok = _valid_samples(stream)
    if stream.n_samples == 0:
        return np.zeros(0), np.zeros(0)
    t = stream.timestamps()
    if stream.is_regular:
        i0, i1 = runs(ok)
        return t[i0], t[i1 - 1] + 1.0 / stream.rate
    factor = _check_factor(max_gap_factor)
    if stream.n_samples < 2:
        return np.zeros(0), np.zeros(0)
    limit = factor * median_interval(t, f"stream {stream.name!r}")
    link = ok[:-1] & ok[1:] & (np.diff(t) <= limit)
    return merge(t[:-1][link], t[1:][link])


def find_gaps(stream: Stream, max_gap_factor: float = 3.0, min_duration_s: float = 0.0) -> pd.DataFrame:
    """Where ``stream`` has no data, as a table (chapter 20_alignment).

    Columns: ``stream``, ``start``, ``end``, ``duration`` (s, stream time) and ``kind``:
    ``"nan"`` for a run of samples with a NaN channel, ``"timestamp"`` for a hole between
    consecutive timestamps longer than ``max_gap_factor`` x the median interval (irregular
    streams). For a NaN run, ``start`` is the first NaN sample's time and ``end`` the next
    valid sample's (one interval after the last NaN for regular streams). Gaps shorter than
    ``min_duration_s`` are left out.
    """
    cols = ["stream", "start", "end", "duration", "kind"]
    t = stream.timestamps()
    ok = _valid_samples(stream)
    out = []
    i0, i1 = runs(~ok)
    if stream.is_regular:
        ends = t[i1 - 1] + 1.0 / stream.rate if len(i1) else np.zeros(0)
    else:
        # the next valid sample, or the last NaN sample's time at the end of the stream
        ends = np.array([t[i] if i < len(t) else t[-1] for i in i1])
    for a, b in zip(t[i0], ends):
        out.append((stream.name, float(a), float(b), float(b - a), "nan"))
    if not stream.is_regular and stream.n_samples >= 2:
        limit = _check_factor(max_gap_factor) * median_interval(t, f"stream {stream.name!r}")
        d = np.diff(t)
        for i in np.flatnonzero(d > limit):
            out.append((stream.name, float(t[i]), float(t[i + 1]), float(d[i]), "timestamp"))
    df = pd.DataFrame(out, columns=cols)
    df = df[df["duration"] >= float(min_duration_s)]
    return df.sort_values("start", kind="stable").reset_index(drop=True)


def _windows(windows) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    if isinstance(windows, pd.DataFrame):
        if not {"start", "end"} <= set(windows.columns):
            raise SignalError(f"windows need 'start' and 'end' columns, got {list(windows.columns)}")
        a, b, idx = windows["start"].to_numpy(float), windows["end"].to_numpy(float), windows.index
    else:
        w = np.asarray(windows, dtype=float)
        if w.ndim != 2 or w.shape[1] != 2:
            raise SignalError(f"windows must be a DataFrame with start/end or an (n, 2) array, got shape {w.shape}")
        a, b, idx = w[:, 0], w[:, 1], pd.RangeIndex(len(w))
    if np.any(~np.isfinite(a) | ~np.isfinite(b)) or np.any(b <= a):
        raise SignalError("every window needs finite start < end")
    return a, b, idx


def coverage(recording: Recording, windows, *, streams=None, by: str = "stream",
             max_gap_factor: float = 3.0) -> pd.DataFrame:
    """Fraction of each window covered by valid data, one column per stream (or group).

    ``windows``: a table with ``start``/``end`` columns (e.g. from
    :func:`~mmlab.align.window_table`) or an ``(n, 2)`` array, in the streams' time (the
    reference clock after :func:`~mmlab.align.align_recording`). ``by="device"`` or
    ``"modality"`` pools streams: a window is covered where any of the group's streams has
    data (e.g. the ``audio`` modality is present while any voice clip plays).
    """
    if by not in ("stream", "device", "modality"):
        raise SignalError(f"by must be 'stream', 'device' or 'modality', got {by!r}")
    a, b, idx = _windows(windows)
    names = list(recording.streams) if streams is None else list(streams)
    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for name in names:
        s = recording[name]
        key = s.name if by == "stream" else (s.device or s.name if by == "device" else s.modality)
        groups.setdefault(key, []).append(valid_intervals(s, max_gap_factor))
    out = {}
    for key, parts in groups.items():
        s, e = merge(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        out[key] = np.clip(covered_length(s, e, a, b) / (b - a), 0.0, 1.0)
    return pd.DataFrame(out, index=idx)


def presence_mask(recording: Recording, windows, min_coverage: float = 0.5, *, streams=None,
                  by: str = "stream", max_gap_factor: float = 3.0) -> pd.DataFrame:
    """Whether each stream (or group) has enough data in each window (chapter 20_alignment).

    ``True`` where :func:`coverage` is at least ``min_coverage`` (0 < min_coverage <= 1).
    This is the presence mask the fusion models take next to the per-window features.
    """
    m = float(min_coverage)
    if not 0.0 < m <= 1.0:
        raise SignalError(f"min_coverage must be in (0, 1], got {min_coverage!r}")
    cov = coverage(recording, windows, streams=streams, by=by, max_gap_factor=max_gap_factor)
    return cov >= m - 1e-9
