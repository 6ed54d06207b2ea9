"""Resampling to a common rate (chapter 20_alignment).

Two devices rarely share a sampling rate: a RespiBAN chest strap samples at 700 Hz, an
Empatica E4 wristband at 64, 32 and 4 Hz, and beat-to-beat intervals arrive whenever a beat
is detected. To compare or fuse them we put them on one time grid:

* :func:`resample` — a regular stream to a new rate with an anti-aliasing filter
  (:func:`scipy.signal.resample_poly` with a rational approximation of the rate ratio), then,
  when the requested grid does not line up with the polyphase output, a cubic spline onto
  the exact grid (exact enough for features; near the Nyquist frequency a spline shifts
  timing a little towards the original samples, which is why the clock estimators keep
  each stream on its own grid). NaN runs (dropouts) stay NaN; nothing is extrapolated.
* :func:`interpolate_irregular` — an irregular stream (IBI at beat times) onto a regular
  grid, with NaN wherever the neighbouring samples are too far apart (a missed beat or a
  dropout) and outside the data.
* :func:`common_grid` — several streams of a recording as one table on one grid.

All times are the streams' own: align the clocks first (:mod:`mmlab.align.clocks`) if the
streams come from different devices.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Iterable

import numpy as np
import pandas as pd
from scipy.interpolate import CubicSpline
from scipy.signal import firwin, resample_poly

from mmlab.errors import SignalError
from mmlab.validate import check_rate
from mmlab.recording import Recording, Stream

__all__ = ["resample", "interpolate_irregular", "common_grid", "grid_times",
           "rational_ratio", "median_interval", "MAX_OUTPUT_VALUES"]

#: The most values (samples x channels) a resampled stream may hold: 1e8 float64 values
#: are 800 MB. A request beyond it is almost always a rate in the wrong unit (1e6 Hz for a
#: 4 Hz wristband), so :func:`resample` refuses it instead of allocating gigabytes.
MAX_OUTPUT_VALUES = 100_000_000


def _guard_size(stream: Stream, rate: float, s: float, e: float) -> None:
    n_out = math.ceil((e - s) * rate - 1e-9)
    n_ch = int(np.prod(stream.data.shape[1:])) if stream.data.ndim > 1 else 1
    if n_out * max(n_ch, 1) > MAX_OUTPUT_VALUES:
        raise SignalError(
            f"stream {stream.name!r}: resampling {e - s:.4g} s to {rate:g} Hz would make {n_out:.3g} "
            f"samples x {n_ch} channel(s), more than {MAX_OUTPUT_VALUES:.0e} values "
            f"({8 * n_out * n_ch / 1e9:.3g} GB); is the rate in Hz? (resample a shorter span with "
            "start=/end=, or raise mmlab.align.resample.MAX_OUTPUT_VALUES)")


def _float_data(stream: Stream) -> np.ndarray:
    if stream.data.ndim != 2:
        raise SignalError(f"stream {stream.name!r}: {stream.data.ndim}-D data (images?) cannot "
                          "be resampled; resample 1-D or multichannel signals")
    return np.asarray(stream.data, dtype=np.float64)


def median_interval(times: np.ndarray, name: str = "times") -> float:
    """The median spacing of strictly increasing timestamps (the nominal sample interval)."""
    t = np.asarray(times, dtype=float).reshape(-1)
    if len(t) < 2:
        raise SignalError(f"{name}: need at least 2 timestamps, got {len(t)}")
    d = np.diff(t)
    if not np.all(np.isfinite(t)):
        raise SignalError(f"{name}: timestamps contain NaN or inf")
    if np.any(d <= 0):
        i = int(np.argmax(d <= 0))
        raise SignalError(f"{name}: timestamps are not strictly increasing "
                          f"(sample {i + 1} at {t[i + 1]!r} s after {t[i]!r} s)")
    return float(np.median(d))


def rational_ratio(new_rate: float, old_rate: float, max_denominator: int = 1000) -> tuple[int, int]:
    """``(up, down)`` with ``old_rate * up / down`` as close to ``new_rate`` as small integers allow.

    700 Hz -> 32 Hz is exactly ``(8, 175)``. A drift-corrected 32.00038 Hz -> 32 Hz becomes
    ``(1, 1)`` (the best ratio with small numbers); :func:`resample` interpolates the
    remaining 12 ppm onto the exact grid.
    """
    new_rate, old_rate = check_rate(new_rate, "new rate"), check_rate(old_rate, "old rate")
    f = Fraction(new_rate / old_rate).limit_denominator(max_denominator)
    if f.numerator == 0:  # a huge downsampling factor: at least one output sample
        f = Fraction(1, max_denominator)
    return f.numerator, f.denominator


def _polyphase_filter(up: int, down: int) -> np.ndarray:
    """scipy's default anti-aliasing FIR (Kaiser, beta 5) with every polyphase branch
    summing to ``1 / up`` exactly, so a constant stays constant (scipy's own filter lets
    it ripple by ~0.05 % when upsampling)."""
    m = max(up, down)
    h = firwin(2 * 10 * m + 1, 1.0 / m, window=("kaiser", 5.0))
    for p in range(up):
        h[p::up] *= (1.0 / up) / h[p::up].sum()
    return h


def grid_times(rate: float, start: float, end: float) -> np.ndarray:
    """The grid ``start + k / rate`` for every ``k`` with ``start + k / rate < end``."""
    rate = check_rate(rate, "rate")
    if not (math.isfinite(start) and math.isfinite(end)):
        raise SignalError(f"grid span must be finite, got start={start!r}, end={end!r}")
    n = max(int(math.ceil((end - start) * rate - 1e-9)), 0)
    return start + np.arange(n) / rate


def _span(stream: Stream, rate: float, start, end) -> tuple[float, float]:
    s = stream.start if start is None else float(start)
    if end is None:
        e = stream.end if stream.is_regular else float(stream.times[-1]) + 1e-9
    else:
        e = float(end)
    if e <= s:
        raise SignalError(f"stream {stream.name!r}: empty output span [{s!r}, {e!r})")
    return s, e


def resample(stream: Stream, rate: float, *, start: float | None = None, end: float | None = None,
             max_denominator: int = 1000) -> Stream:
    """``stream`` at ``rate`` Hz on the grid ``start + k / rate`` (chapter 20_alignment).

    Regular streams are low-pass filtered before the rate changes (the polyphase filter of
    :func:`scipy.signal.resample_poly` cuts at the lower of the two Nyquist frequencies),
    so a tone above the new Nyquist frequency is removed instead of folding back as a false
    low tone (aliasing). Irregular streams go to :func:`interpolate_irregular` instead.

    ``start`` (default: the stream's start) puts the output on a chosen grid, e.g. ``0.0``
    so that several streams share one grid; ``end`` (default: the stream's end) is
    exclusive. Output samples before the first or after the last input sample, and those
    touching a NaN input sample, are NaN: dropouts stay dropouts and nothing is
    extrapolated. Integer data come back as float64.
    """
    rate = check_rate(rate, "rate")
    if not stream.is_regular:
        return interpolate_irregular(stream, rate, start=start, end=end)
    s, e = _span(stream, rate, start, end)
    _guard_size(stream, rate, s, e)
    x = _float_data(stream)
    n, n_ch = x.shape
    t_in = stream.timestamps()
    t_out = grid_times(rate, s, e)
    out = np.full((len(t_out), n_ch), np.nan)
    bad = ~np.isfinite(x)
    if n == 0 or len(t_out) == 0:
        return stream.replace(data=out, rate=rate, start=s)
    if n < 2:
        hint = (f" ({n_ch} channels of one sample: (channels, samples)? a Stream holds "
                "(samples, channels); pass data.T)") if n_ch > 1 else ""
        raise SignalError(f"stream {stream.name!r}: one sample cannot be resampled{hint}")
    # NaN runs are bridged by straight lines for the filter, then blanked again below
    filled = x.copy()
    idx = np.arange(n)
    for c in range(n_ch):
        ok = ~bad[:, c]
        if ok.sum() >= 2:
            filled[:, c] = np.interp(idx, idx[ok], x[ok, c])
        else:
            filled[:, c] = 0.0
    up, down = rational_ratio(rate, stream.rate, max_denominator)
    if (up, down) != (1, 1):
        y = resample_poly(filled, up, down, axis=0, window=_polyphase_filter(up, down), padtype="line")
    else:
        y = filled
    mid_rate = stream.rate * up / down
    t_mid = stream.start + np.arange(len(y)) / mid_rate
    # on the polyphase grid already? (same rate, start a whole number of samples away)
    k = (s - stream.start) * rate
    if abs(mid_rate - rate) <= 1e-12 * rate and abs(k - round(k)) < 1e-6:
        i = np.round((t_out - stream.start) * rate).astype(int)
        inside = (i >= 0) & (i < len(y))
        out[inside] = y[i[inside]]
    elif len(y) >= 2:
        inside = (t_out >= t_mid[0]) & (t_out <= t_mid[-1])
        out[inside] = CubicSpline(t_mid, y, axis=0, extrapolate=False)(t_out[inside])
    # blank what the input does not support: outside the samples, or next to a NaN
    # (the last sample holds until one interval after it, as in Stream.end)
    t_ext = np.r_[t_in, t_in[-1] + 1.0 / stream.rate]
    for c in range(n_ch):
        b = bad[:, c].astype(float)
        m = np.interp(t_out, t_ext, np.r_[b, b[-1]], left=1.0, right=1.0)
        out[m > 1e-9, c] = np.nan
    return stream.replace(data=out, rate=rate, start=s,
                          meta={**stream.meta, "resampled_from_hz": stream.rate})


def interpolate_irregular(stream: Stream, rate: float, *, start: float | None = None,
                          end: float | None = None, max_gap_s: float | None = None,
                          method: str = "linear") -> Stream:
    """An irregular stream (e.g. inter-beat intervals) on a regular grid (chapter 20_alignment).

    ``method="linear"`` joins neighbouring samples by straight lines, ``"previous"`` holds
    each value until the next sample (for step-like data such as a setting or a state).
    Grid points between two samples more than ``max_gap_s`` apart (default: 3 x the median
    interval: a missed beat or a dropout), before the first sample, after the last one, or
    next to a NaN value are NaN. There is no anti-aliasing here: irregular samples have no
    Nyquist frequency; choose a grid at least as fine as the typical interval.
    """
    rate = check_rate(rate, "rate")
    if stream.is_regular:
        raise SignalError(f"stream {stream.name!r} is regular ({stream.rate:g} Hz): use resample()")
    if method not in ("linear", "previous"):
        raise SignalError(f"method must be 'linear' or 'previous', got {method!r}")
    t = stream.times
    x = _float_data(stream)
    if len(t) < 2:
        raise SignalError(f"stream {stream.name!r}: need at least 2 samples to interpolate, got {len(t)}")
    gap = 3.0 * median_interval(t, f"stream {stream.name!r}") if max_gap_s is None else float(max_gap_s)
    if not gap > 0:
        raise SignalError(f"max_gap_s must be > 0, got {max_gap_s!r}")
    s, e = _span(stream, rate, start, end)
    _guard_size(stream, rate, s, e)
    t_out = grid_times(rate, s, e)
    out = np.full((len(t_out), x.shape[1]), np.nan)
    # the sample at or before each grid point, and the one after
    j = np.searchsorted(t, t_out, side="right") - 1
    inside = (j >= 0) & (t_out <= t[-1])
    j0 = np.clip(j, 0, len(t) - 2)
    exact = inside & (t[np.clip(j, 0, len(t) - 1)] == t_out)
    bridged = inside & (t[j0 + 1] - t[j0] <= gap)
    ok = exact | bridged
    for c in range(x.shape[1]):
        if method == "linear":
            v = np.interp(t_out, t, x[:, c])
            # np.interp ignores NaN neighbours poorly: blank if either neighbour is NaN
            nb = ~np.isfinite(x[j0, c]) | ~np.isfinite(x[j0 + 1, c])
            nb &= ~(exact & np.isfinite(x[np.clip(j, 0, len(t) - 1), c]))
        else:
            v = x[np.clip(j, 0, len(t) - 1), c]
            nb = ~np.isfinite(v)
        col = np.where(ok & ~nb, v, np.nan)
        out[:, c] = col
    return Stream(name=stream.name, data=out, modality=stream.modality, rate=rate, start=s,
                  channels=list(stream.channels), units=list(stream.units), device=stream.device,
                  meta={**stream.meta, "interpolated_from": "irregular", "max_gap_s": gap})


def common_grid(recording: Recording, rate: float, *, streams: Iterable[str] | None = None,
                start: float | None = None, end: float | None = None) -> pd.DataFrame:
    """Several streams on one grid ``start + k / rate``, as a table (chapter 20_alignment).

    Columns are the stream name for single-channel streams and ``<stream>_<channel>``
    otherwise; the index is the grid time. ``start``/``end`` default to the earliest start
    and the latest end of the chosen streams. Streams are taken at face value: align the
    device clocks first (:func:`mmlab.align.align_recording`).
    """
    names = list(recording.streams) if streams is None else list(streams)
    chosen = [recording[n] for n in names]
    chosen = [s for s in chosen if s.data.ndim == 2]
    if not chosen:
        raise SignalError(f"recording {recording.subject!r}: no signal streams to put on a grid")
    s = min(x.start for x in chosen) if start is None else float(start)
    e = max(x.end if x.is_regular else float(x.times[-1]) for x in chosen) if end is None else float(end)
    t = grid_times(rate, s, e)
    cols = {}
    for x in chosen:
        y = resample(x, rate, start=s, end=e)
        for c, ch in enumerate(x.channels):
            key = x.name if x.n_channels == 1 else f"{x.name}_{ch}"
            cols[key] = y.data[: len(t), c]
    return pd.DataFrame(cols, index=pd.Index(t, name="time"))
