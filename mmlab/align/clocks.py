"""Device clocks: offset, drift, jitter and their correction (chapter 20_alignment).

Every device stamps samples with its own clock. Two clocks disagree by an **offset** (they
were started or set at different moments) that grows or shrinks by a **drift** (their
crystals tick at slightly different rates, typically 10-50 parts per million: 36-180 ms
per hour). mmlab's clock model, the same as ``Recording.meta["clock_truth"]`` of the
synthetic scenarios, maps reference time ``t`` to device time::

    device_time = offset_s + (1 + drift_ppm * 1e-6) * t

so the lag of a device behind the reference at reference time ``t`` is
``offset_s + drift_ppm * 1e-6 * t``: a straight line in ``t``. Estimating a clock means
measuring that lag at one or more moments:

* from a **shared event** seen by both devices (a tap on the chest strap with the wrist
  hand): :func:`jolt_times` finds the jolts, :func:`event_offset` pairs them up,
  :func:`tap_offset` does both;
* by **cross-correlation** of signals that co-vary (EDA on chest and wrist, two
  accelerometers on one body): :func:`xcorr_curve` and :func:`xcorr_lag` on arrays,
  :func:`xcorr_offset` on streams, with a parabolic sub-sample refinement of the peak;
* several lags along the session give the drift: :func:`offset_track` measures them in
  segments, :func:`fit_drift` fits the line, :func:`estimate_clock` does both.

:func:`to_reference` and :func:`align_recording` re-time streams onto the reference clock;
:func:`dejitter` and :func:`regularize` clean noisy timestamps of nominally regular streams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d
from scipy.signal import correlate, correlation_lags, find_peaks

from mmlab.align.resample import median_interval, resample
from mmlab.errors import SchemaError, SignalError
from mmlab.recording import Clock, Recording, Stream
from mmlab.validate import check_positive

__all__ = ["Lag", "jolt_times", "event_offset", "tap_offset", "xcorr_curve", "xcorr_lag",
           "xcorr_offset", "offset_track", "fit_drift", "estimate_clock", "to_reference", "align_recording",
           "dejitter", "regularize"]


@dataclass(frozen=True)
class Lag:
    """A lag estimate: ``lag_s`` (how far ``other`` runs behind ``ref``), the peak
    correlation ``corr``, and the correlation ``curve`` (columns ``lag_s``, ``corr``) to plot."""

    lag_s: float
    corr: float
    curve: pd.DataFrame | None = field(default=None, repr=False, compare=False)


def _parabolic(y_m1: float, y0: float, y_p1: float) -> float:
    """Offset (in samples, within +-0.5) of the vertex of the parabola through three points."""
    den = y_m1 - 2.0 * y0 + y_p1
    if not np.isfinite(den) or den >= 0:
        return 0.0
    return float(np.clip(0.5 * (y_m1 - y_p1) / den, -0.5, 0.5))


def _nominal_rate(stream: Stream) -> float:
    if stream.is_regular:
        return stream.rate
    return 1.0 / median_interval(stream.times, f"stream {stream.name!r}")


def _one_channel(stream: Stream, data: np.ndarray, channel: str | None) -> np.ndarray:
    """The only channel, the named one, or the Euclidean norm of all (e.g. ACC magnitude)."""
    if data.shape[1] == 1:
        return data[:, 0]
    if channel is not None:
        if channel not in stream.channels:
            raise SignalError(f"stream {stream.name!r} has no channel {channel!r}; channels: {stream.channels}")
        return data[:, stream.channels.index(channel)]
    return np.sqrt(np.sum(data * data, axis=1))


# --------------------------------------------------------------------- shared events
def jolt_times(stream: Stream, *, start: float | None = None, end: float | None = None,
               threshold: float = 20.0, min_relative: float = 0.1, min_separation_s: float = 0.25,
               smooth_s: float | None = None) -> np.ndarray:
    """Times (stream clock) of sharp jolts in an accelerometer stream, e.g. sync taps.

    The jerk (first difference of the samples, all channels) is squared, smoothed by a
    Gaussian of ``smooth_s`` seconds (default: the larger of 25 ms and one sample) and
    its peaks refined to a fraction of a sample. Because the smoothing is symmetric a peak
    sits at the centre of the jolt's energy, whatever the sensor's orientation or its
    sampling rate. A peak counts as a jolt when it is at least ``threshold`` x the median
    (the background) and ``min_relative`` x the largest peak; peaks closer than
    ``min_separation_s`` merge. Returns an empty array when nothing stands out: no
    invented events.
    """
    if not stream.is_regular:
        raise SignalError(f"stream {stream.name!r} is irregular: jolt detection needs a regular stream")
    if stream.data.ndim != 2:
        raise SignalError(f"stream {stream.name!r}: jolt detection needs 1-D or multichannel samples")
    part = stream.slice(stream.start if start is None else start,
                        stream.end + 1.0 if end is None else end)
    x = np.asarray(part.data, dtype=float)
    if len(x) < 5:
        raise SignalError(f"stream {stream.name!r}: only {len(x)} samples between "
                          f"{start!r} and {end!r} s, too few to look for jolts")
    if not np.isfinite(x).any():
        raise SignalError(f"stream {stream.name!r} is all NaN between {part.start:g} and {part.end:g} s")
    rate = stream.rate
    jerk = np.diff(x, axis=0) * rate
    energy = np.nan_to_num(np.sum(jerk * jerk, axis=1), nan=0.0)
    sigma_s = max(0.025, 1.0 / rate) if smooth_s is None else check_positive(smooth_s, "smooth_s")
    env = gaussian_filter1d(energy, sigma=sigma_s * rate, mode="constant")
    floor = max(threshold * float(np.median(env)), min_relative * float(env.max()))
    if not env.max() > 0 or env.max() < threshold * float(np.median(env)):
        return np.zeros(0)
    peaks, _ = find_peaks(env, height=floor, distance=max(1, int(round(min_separation_s * rate))))
    t = part.start + (np.arange(len(env)) + 0.5) / rate  # a difference sits between two samples
    out = []
    for p in peaks:
        d = _parabolic(env[p - 1], env[p], env[p + 1]) if 0 < p < len(env) - 1 else 0.0
        out.append(t[p] + d / rate)
    return np.asarray(out)


def event_offset(ref_times, other_times, *, max_offset_s: float, tolerance_s: float = 0.05) -> float:
    """Clock offset (``other - ref``, s) that best pairs up events seen by both devices.

    Every pairing within ``max_offset_s`` proposes an offset; the one that matches the most
    events within ``tolerance_s`` wins (a double tap fixes the pairing that a single tap
    leaves open), and the result is the mean difference of its matched pairs. Raises
    :class:`~mmlab.errors.SignalError` when no pair of events is close enough.
    """
    r = np.asarray(ref_times, dtype=float).reshape(-1)
    o = np.asarray(other_times, dtype=float).reshape(-1)
    max_offset_s, tolerance_s = check_positive(max_offset_s, "max_offset_s"), check_positive(tolerance_s, "tolerance_s")
    if len(r) == 0 or len(o) == 0:
        raise SignalError(f"need events from both devices, got {len(r)} (reference) and {len(o)} (other)")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(o))):
        raise SignalError("event times contain NaN or inf")
    diffs = o[None, :] - r[:, None]
    cands = diffs[np.abs(diffs) <= max_offset_s]
    if len(cands) == 0:
        raise SignalError(f"no pair of events is within +-{max_offset_s:g} s of each other "
                          f"(reference events at {np.round(r, 3).tolist()}, other at {np.round(o, 3).tolist()})")
    best, best_key = None, None
    for d in cands:
        resid = np.abs(diffs - d)
        matched = resid.min(axis=1) <= tolerance_s
        key = (int(matched.sum()), -float(resid.min(axis=1)[matched].mean()))
        if best_key is None or key > best_key:
            best_key = key
            j = resid.argmin(axis=1)
            best = diffs[np.arange(len(r)), j][matched]
    return float(np.mean(best))


def tap_offset(ref: Stream, other: Stream, *, start: float, end: float, max_offset_s: float = 5.0,
               tolerance_s: float = 0.05, **jolt_options) -> float:
    """Offset (``other - ref``, s) from jolts both accelerometers felt (a sync tap).

    Looks for jolts in ``ref`` between ``start`` and ``end`` (reference clock) and in
    ``other`` within ``max_offset_s`` more on each side, then pairs them with
    :func:`event_offset`. ``jolt_options`` go to :func:`jolt_times`.
    """
    max_offset_s = check_positive(max_offset_s, "max_offset_s")
    a = jolt_times(ref, start=start, end=end, **jolt_options)
    b = jolt_times(other, start=start - max_offset_s, end=end + max_offset_s, **jolt_options)
    for s, found, lo, hi in ((ref, a, start, end), (other, b, start - max_offset_s, end + max_offset_s)):
        if len(found) == 0:
            raise SignalError(f"stream {s.name!r}: no jolt stands out between {lo:g} and {hi:g} s")
    return event_offset(a, b, max_offset_s=max_offset_s, tolerance_s=tolerance_s)


# ------------------------------------------------------------------ cross-correlation
def xcorr_curve(x, y, rate: float, max_lag_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Normalised cross-correlation of ``y`` against ``x`` at every lag within ``+-max_lag_s``.

    ``x`` and ``y`` are samples on the same grid (same rate, same length); NaN samples are
    left out of every sum. Returns ``(lags_s, r)``: ``r`` is Pearson-like over the
    overlapping valid pairs at each lag (NaN where fewer than a quarter of the samples
    overlap), and a peak at a positive lag means ``y`` is late.
    """
    rate = check_positive(rate, "rate")
    max_lag_s = check_positive(max_lag_s, "max_lag_s")
    x = np.asarray(x, dtype=float).reshape(-1)
    y = np.asarray(y, dtype=float).reshape(-1)
    if len(x) != len(y):
        raise SignalError(f"x and y must be on the same grid: {len(x)} and {len(y)} samples "
                          "(resample both to one rate and span first)")
    n = len(x)
    max_lag = int(math.ceil(max_lag_s * rate - 1e-9))
    if n < 2 * max_lag + 3:
        raise SignalError(f"signals of {n} samples ({n / rate:g} s) are too short for lags up to "
                          f"+-{max_lag_s:g} s: need more than {2 * max_lag + 2} samples "
                          f"({(2 * max_lag + 3) / rate:g} s)")
    vx, vy = np.isfinite(x), np.isfinite(y)
    for name, v, s in (("x", vx, x), ("y", vy, y)):
        if v.sum() < 3:
            raise SignalError(f"{name} is all NaN (or has fewer than 3 valid samples)")
        if np.nanstd(s) == 0:
            raise SignalError(f"{name} is flat: a constant signal has no lag")
    zx = np.where(vx, (x - np.nanmean(x)) / np.nanstd(x), 0.0)
    zy = np.where(vy, (y - np.nanmean(y)) / np.nanstd(y), 0.0)
    fx, fy = vx.astype(float), vy.astype(float)
    lags = correlation_lags(n, n, mode="full")
    keep = np.abs(lags) <= max_lag
    num = correlate(zy, zx, mode="full", method="fft")[keep]
    pairs = correlate(fy, fx, mode="full", method="fft")[keep]
    ex = correlate(fy, zx * zx, mode="full", method="fft")[keep]
    ey = correlate(zy * zy, fx, mode="full", method="fft")[keep]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / np.sqrt(ex * ey)
    r[(pairs < max(3.0, 0.25 * n)) | ~np.isfinite(r)] = np.nan
    return lags[keep] / rate, r


def xcorr_lag(x, y, rate: float, max_lag_s: float) -> Lag:
    """How far ``y`` lags ``x`` (s, positive: ``y`` is late), by normalised cross-correlation.

    The peak of :func:`xcorr_curve` within ``+-max_lag_s``, refined to a fraction of a
    sample by a parabola through the peak and its two neighbours. The parabola pulls a
    *sharp* peak (one or two samples wide) towards the nearest sample, by up to a tenth of
    a sample; :func:`xcorr_offset` avoids that by correlating upsampled signals. A peak on
    the edge of the range means the true lag may lie beyond it, which raises
    :class:`~mmlab.errors.SignalError`. The returned :class:`Lag` carries the curve.
    """
    lags, r = xcorr_curve(x, y, rate, max_lag_s)
    if not np.isfinite(r).any():
        raise SignalError("x and y have too few valid samples in common at every lag")
    i = int(np.nanargmax(r))
    if i == 0 or i == len(r) - 1:
        raise SignalError(f"the correlation peaks at the edge of the lag range (+-{max_lag_s:g} s): "
                          "the lag may be larger; widen max_lag_s or centre the search (around_s)")
    d = _parabolic(r[i - 1], r[i], r[i + 1]) if np.isfinite(r[i - 1]) and np.isfinite(r[i + 1]) else 0.0
    step = lags[1] - lags[0]
    return Lag(float(lags[i] + d * step), float(r[i]), pd.DataFrame({"lag_s": lags, "corr": r}))


def _snap(stream: Stream, t: float, rate: float) -> float:
    """The first time >= ``t`` on the grid that resampling ``stream`` to ``rate`` produces.

    Shifting a signal by a fraction of a sample needs interpolation, and interpolation
    near the Nyquist frequency pulls timing towards the original samples (which would
    lock a measured lag to whole samples). Sampling each stream on its own grid and
    adding the known grid difference to the lag avoids that.
    """
    if not stream.is_regular:
        return t
    k = math.ceil((t - stream.start) * rate - 1e-6)
    return stream.start + k / rate


def _prepare(stream: Stream, rate: float, start: float, end: float, channel: str | None,
             transform: str, upsample: int) -> np.ndarray:
    y = resample(stream, rate, start=start, end=end)
    v = _one_channel(stream, y.data, channel)
    if transform == "diff":
        v = _smooth_derivative(v)
    if upsample > 1:
        fine = Stream("x", v, "other", rate=rate, start=start)
        v = resample(fine, rate * upsample, start=start, end=start + len(v) / rate).data[:, 0]
    return v


def _smooth_derivative(v: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Derivative of Gaussian (``sigma`` samples); NaN stays NaN (and its neighbours).

    Unlike a plain difference, it fades out towards the Nyquist frequency, where sampling
    grids leave their fingerprints (aliases, interpolation images) that would otherwise
    correlate between two devices at the lag of their grids instead of their clocks.
    """
    bad = ~np.isfinite(v)
    if bad.all():
        return v
    idx = np.arange(len(v))
    filled = np.interp(idx, idx[~bad], v[~bad]) if bad.any() else v
    d = gaussian_filter1d(filled, sigma=sigma, order=1, mode="nearest")
    if bad.any():
        reach = int(math.ceil(3 * sigma))
        spread = np.convolve(bad.astype(float), np.ones(2 * reach + 1), mode="same") > 0
        d = np.where(spread, np.nan, d)
    return d


_TRANSFORMS = ("none", "diff")


def xcorr_offset(ref: Stream, other: Stream, *, max_lag_s: float, around_s: float = 0.0,
                 rate: float | None = None, start: float | None = None, end: float | None = None,
                 channel: str | None = None, transform: str = "diff", upsample: int = 4) -> Lag:
    """Clock offset of ``other`` behind ``ref`` (s) by cross-correlating co-varying signals.

    Both streams are resampled (anti-aliased) to ``rate`` Hz (default: the lower of their
    rates) on one grid over the time they share, ``ref``'s between ``start`` and ``end``
    (reference clock) and ``other``'s shifted by the prior guess ``around_s`` (e.g. from a
    tap); the lag is searched within ``around_s +- max_lag_s``. Multichannel streams are
    reduced to their magnitude unless ``channel`` names one. ``transform="diff"`` (default)
    correlates the changes (a smoothed derivative), which keeps slow trends (tonic EDA,
    posture) from dominating; ``"none"`` correlates the signals as they are. After the anti-aliased
    step to ``rate``, both are interpolated ``upsample`` times finer (band-limited, so no
    information is invented) so that the parabolic refinement sees a well-sampled peak.
    Returns a :class:`Lag`
    whose ``lag_s`` is the offset in the sense of the clock model
    (``device_time = reference_time + lag``).
    """
    if transform not in _TRANSFORMS:
        raise SignalError(f"transform must be one of {list(_TRANSFORMS)}, got {transform!r}")
    max_lag_s = check_positive(max_lag_s, "max_lag_s")
    around_s = float(around_s)
    rate = min(_nominal_rate(ref), _nominal_rate(other)) if rate is None else check_positive(rate, "rate")
    ref_end = ref.end if ref.is_regular else float(ref.times[-1])
    oth_end = other.end if other.is_regular else float(other.times[-1])
    a = max(ref.start, other.start - around_s, -np.inf if start is None else float(start))
    b = min(ref_end, oth_end - around_s, np.inf if end is None else float(end))
    if not b - a > 2.0 * max_lag_s:
        raise SignalError(
            f"streams {ref.name!r} and {other.name!r} share {max(b - a, 0.0):g} s "
            f"(reference clock {a:g} to {b:g} s), too short for lags up to +-{max_lag_s:g} s: "
            f"need more than {2 * max_lag_s:g} s")
    if isinstance(upsample, bool) or not isinstance(upsample, (int, np.integer)) or upsample < 1:
        raise SignalError(f"upsample must be a whole number >= 1, got {upsample!r}")
    ax, ay = _snap(ref, a, rate), _snap(other, a + around_s, rate)
    x = _prepare(ref, rate, ax, b, channel, transform, int(upsample))
    y = _prepare(other, rate, ay, b + around_s, channel, transform, int(upsample))
    m = min(len(x), len(y))
    for s, v in ((ref, x[:m]), (other, y[:m])):
        if np.isfinite(v).sum() < 3:
            raise SignalError(f"stream {s.name!r} has no valid data between {a:g} and {b:g} s "
                              "(all NaN: a dropout?)")
    lag = xcorr_lag(x[:m], y[:m], rate * upsample, max_lag_s)
    curve = lag.curve.assign(lag_s=lag.curve["lag_s"] + (ay - ax))
    return Lag((ay - ax) + lag.lag_s, lag.corr, curve)


def offset_track(ref: Stream, other: Stream, *, segment_s: float, max_lag_s: float,
                 step_s: float | None = None, around_s: float = 0.0, start: float | None = None,
                 end: float | None = None, **xcorr_options) -> pd.DataFrame:
    """The offset of ``other`` behind ``ref`` measured segment by segment (for the drift).

    Segments of ``segment_s`` seconds every ``step_s`` (default: no overlap) on the
    reference clock; each gets :func:`xcorr_offset` (options pass through). Returns a
    table with ``t_ref`` (segment centre), ``offset_s``, ``corr`` and ``error``: segments
    that cannot be measured (a dropout, a flat stretch, a peak on the edge) keep NaN and
    the reason, instead of a made-up number.
    """
    segment_s = check_positive(segment_s, "segment_s")
    step_s = segment_s if step_s is None else check_positive(step_s, "step_s")
    ref_end = ref.end if ref.is_regular else float(ref.times[-1])
    oth_end = other.end if other.is_regular else float(other.times[-1])
    lo = max(ref.start, other.start - around_s) if start is None else float(start)
    hi = min(ref_end, oth_end - around_s) if end is None else float(end)
    if hi - lo < segment_s:
        raise SignalError(f"streams {ref.name!r} and {other.name!r} share {max(hi - lo, 0):g} s, "
                          f"less than one {segment_s:g} s segment")
    n = int(math.floor((hi - lo - segment_s) / step_s + 1e-9)) + 1
    # resample once (anti-aliased, each on its own grid); segments then only cut
    rate = xcorr_options.pop("rate", None)
    rate = min(_nominal_rate(ref), _nominal_rate(other)) if rate is None else check_positive(rate, "rate")
    pad = max_lag_s + 2.0 / rate
    ref = resample(ref, rate, start=_snap(ref, lo - pad, rate), end=hi + pad)
    other = resample(other, rate, start=_snap(other, lo + around_s - pad, rate), end=hi + around_s + pad)
    rows = []
    for k in range(n):
        a = lo + k * step_s
        try:
            lag = xcorr_offset(ref, other, max_lag_s=max_lag_s, around_s=around_s, start=a,
                               end=a + segment_s, rate=rate, **xcorr_options)
            rows.append((a + 0.5 * segment_s, lag.lag_s, lag.corr, ""))
        except SignalError as exc:
            rows.append((a + 0.5 * segment_s, np.nan, np.nan, str(exc)))
    return pd.DataFrame(rows, columns=["t_ref", "offset_s", "corr", "error"])


def fit_drift(t_ref, offsets, *, weights=None, robust: bool = True) -> dict:
    """Offset and drift from lags measured at several reference times (a straight line).

    With the clock model ``lag(t) = offset_s + drift_ppm * 1e-6 * t``, the intercept is the
    offset at reference time 0 and the slope the drift. ``robust=True`` drops lags more
    than 4 robust standard deviations (1.4826 x MAD) off the line and refits (with 4 or
    more points). NaN lags are ignored. Returns ``{"offset_s", "drift_ppm", "rmse_s",
    "n_used", "n"}``.
    """
    t = np.asarray(t_ref, dtype=float).reshape(-1)
    y = np.asarray(offsets, dtype=float).reshape(-1)
    if len(t) != len(y):
        raise SignalError(f"t_ref and offsets differ in length ({len(t)} and {len(y)})")
    w = np.ones(len(t)) if weights is None else np.asarray(weights, dtype=float).reshape(-1)
    if len(w) != len(t):
        raise SignalError(f"weights has {len(w)} values for {len(t)} lags")
    ok = np.isfinite(t) & np.isfinite(y) & np.isfinite(w) & (w > 0)
    if ok.sum() < 2:
        raise SignalError(f"need lags at 2 or more times to fit a drift, got {int(ok.sum())} valid")
    if np.ptp(t[ok]) <= 0:
        raise SignalError("all lags were measured at the same time: the drift is undefined")
    use = ok.copy()
    for _ in range(3):
        slope, icpt = np.polyfit(t[use], y[use], 1, w=np.sqrt(w[use]))
        if not robust or use.sum() < 4:
            break
        res = y - (icpt + slope * t)
        mad = 1.4826 * np.median(np.abs(res[use] - np.median(res[use])))
        new = ok & (np.abs(res) <= max(4.0 * mad, 1e-9))
        if new.sum() < 2 or np.array_equal(new, use):
            break
        use = new
    res = y[use] - (icpt + slope * t[use])
    return {"offset_s": float(icpt), "drift_ppm": float(slope * 1e6),
            "rmse_s": float(np.sqrt(np.mean(res ** 2))), "n_used": int(use.sum()), "n": int(len(t))}


def estimate_clock(ref: Stream, other: Stream, *, segment_s: float, max_lag_s: float,
                   around_s: float = 0.0, min_corr: float = 0.3, **options) -> dict:
    """Offset and drift of ``other``'s clock against ``ref``'s from segment-wise lags.

    :func:`offset_track` (``options`` pass through, e.g. ``rate``, ``transform``,
    ``step_s``) then :func:`fit_drift` on the segments whose correlation reaches
    ``min_corr``. Returns the :func:`fit_drift` dict (``offset_s``, ``drift_ppm`` as in
    ``Recording.meta["clock_truth"]``) plus the ``track`` table.
    """
    track = offset_track(ref, other, segment_s=segment_s, max_lag_s=max_lag_s, around_s=around_s,
                         **options)
    good = track["corr"] >= min_corr
    if good.sum() < 2:
        raise SignalError(f"streams {ref.name!r}/{other.name!r}: only {int(good.sum())} of "
                          f"{len(track)} segments correlate at >= {min_corr:g}; cannot fit a drift "
                          "(lower min_corr, use longer segments or other signals)")
    fit = fit_drift(track["t_ref"][good], track["offset_s"][good])
    track["used"] = False
    track.loc[good[good].index, "used"] = True
    return {**fit, "track": track}


# ---------------------------------------------------------------------- correction
def to_reference(stream: Stream, offset_s: float = 0.0, drift_ppm: float = 0.0) -> Stream:
    """``stream`` re-timed from its device clock onto the reference clock.

    Inverts ``device_time = offset_s + (1 + drift_ppm * 1e-6) * t``: a regular stream gets
    a new ``start`` and a new ``rate`` (a clock that runs fast packs more samples into a
    reference second), an irregular one new ``times``; the samples are untouched.
    ``meta["clock"]`` records the correction, and correcting a stream twice raises.
    """
    clock = Clock.from_mapping((offset_s, drift_ppm), stream.device or stream.name)
    off, ppm = clock.offset_s, clock.drift_ppm
    if "clock" in stream.meta:
        raise SignalError(f"stream {stream.name!r} is already on the reference clock "
                          f"(corrected with {stream.meta['clock']})")
    scale = clock.scale
    meta = {**stream.meta, "clock": {"offset_s": off, "drift_ppm": ppm}}
    if stream.is_regular:
        return stream.replace(start=(stream.start - off) / scale, rate=stream.rate * scale, meta=meta)
    return stream.replace(times=(stream.times - off) / scale, meta=meta)


def align_recording(recording: Recording, clocks: Mapping[str, object]) -> Recording:
    """A copy of ``recording`` with every stream on the reference clock (chapter 20_alignment).

    A device clock reads ``device_time = offset_s + (1 + drift_ppm * 1e-6) * reference_time``;
    each stream of a device in ``clocks`` gets its start (or timestamps) mapped back to
    the reference clock and its rate scaled by the drift. The samples are not changed.

    Parameters
    ----------
    recording : Recording
        Streams on their devices' clocks (``Stream.device`` names the device).
    clocks : mapping
        Device name -> ``{"offset_s": ..., "drift_ppm": ...}`` (as in
        ``recording.meta["clock_truth"]`` or from :func:`estimate_clock`), an
        ``(offset_s, drift_ppm)`` pair, or just an offset in seconds, each parsed by
        :meth:`mmlab.recording.Clock.from_mapping`. Streams of devices not in ``clocks``
        are taken to be on the reference clock already.

    Returns
    -------
    Recording
        A new recording (the input is unchanged); ``meta["clock_alignment"]`` records the
        clocks that were applied.

    Raises
    ------
    SchemaError
        ``clocks`` is not a mapping, or a clock has unknown keys or values that are not
        numbers.

    Examples
    --------
    The wrist clock runs 2 s ahead and 100 ppm fast:

    >>> import numpy as np
    >>> from mmlab.recording import Recording, Stream
    >>> wrist = Stream("wrist_eda", np.zeros(400), "eda", rate=4.0, start=12.0, device="wrist")
    >>> chest = Stream("chest_ecg", np.zeros(700), "ecg", rate=700.0, device="chest")
    >>> aligned = align_recording(Recording("01", [chest, wrist]),
    ...                           {"wrist": {"offset_s": 2.0, "drift_ppm": 100.0}})
    >>> s = aligned["wrist_eda"]
    >>> round(s.start, 6), round(s.rate, 6), aligned["chest_ecg"].start
    (9.999, 4.0004, 0.0)
    >>> aligned.meta["clock_alignment"]
    {'wrist': {'offset_s': 2.0, 'drift_ppm': 100.0}}
    """
    if not isinstance(clocks, Mapping):
        raise SchemaError(f"clocks must map device names to clocks, got {type(clocks).__name__}")
    parsed = {str(d): Clock.from_mapping(v, str(d)) for d, v in clocks.items()}
    streams = [to_reference(s, parsed[s.device].offset_s, parsed[s.device].drift_ppm)
               if s.device in parsed else s for s in recording.streams.values()]
    applied = {d: {"offset_s": c.offset_s, "drift_ppm": c.drift_ppm} for d, c in parsed.items()
               if any(s.device == d for s in recording.streams.values())}
    return Recording(recording.subject, streams, recording.annotations.copy(),
                     meta={**recording.meta, "clock_alignment": applied}, t0=recording.t0)


# ---------------------------------------------------------------------- jitter
def _slot_index(t: np.ndarray, dt: float, name: str) -> np.ndarray:
    d = np.diff(t)
    steps = np.rint(d / dt)
    if np.any(steps < 0):
        i = int(np.argmax(steps < 0))
        raise SignalError(f"{name}: timestamps go back by {-d[i]:.6g} s at sample {i + 1} "
                          f"(more than half an interval of {dt:.6g} s: a clock reset?); "
                          "split the stream there")
    return np.r_[0, np.cumsum(np.maximum(steps, 1))].astype(np.int64)


def _robust_line(idx: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    use = np.ones(len(t), dtype=bool)
    for _ in range(3):
        b, a = np.polyfit(idx[use], t[use], 1)
        res = t - (a + b * idx)
        mad = 1.4826 * np.median(np.abs(res[use] - np.median(res[use])))
        new = np.abs(res) <= max(5.0 * mad, 1e-12)
        if new.sum() < 2 or np.array_equal(new, use):
            break
        use = new
    return float(a), float(b)


def _fit_slots(times, rate, name: str) -> tuple[np.ndarray, float, float]:
    t = np.asarray(times, dtype=float).reshape(-1)
    if len(t) < 3:
        raise SignalError(f"{name}: need at least 3 timestamps, got {len(t)}")
    if not np.all(np.isfinite(t)):
        raise SignalError(f"{name}: timestamps contain NaN or inf")
    dt = 1.0 / check_positive(rate, "rate") if rate is not None else float(np.median(np.diff(t)))
    if not dt > 0:
        raise SignalError(f"{name}: the median interval is {dt!r} s; timestamps must mostly increase")
    idx = _slot_index(t, dt, name)  # checks for big steps back; slots good for a short stretch
    m = min(len(t), 64)
    a, b = _robust_line(idx[:m], t[:m])
    # grow the fitted stretch, numbering new samples from the current line, so that neither
    # an error in the nominal interval nor an occasional mis-rounded interval accumulates
    while True:
        m = min(len(t), 2 * m)
        idx = _increasing(np.rint((t[:m] - a) / b).astype(np.int64))
        a, b = _robust_line(idx, t[:m])
        if m == len(t):
            break
    idx = idx - idx[0]
    a, b = _robust_line(idx, t)
    return idx, a, b


def _increasing(idx: np.ndarray) -> np.ndarray:
    """Slot numbers made strictly increasing with the smallest shifts."""
    k = np.arange(len(idx))
    return np.maximum.accumulate(idx - k) + k


def dejitter(times, rate: float | None = None, name: str = "timestamps") -> np.ndarray:
    """Jitter-free timestamps for a nominally regular stream (chapter 20_alignment).

    Each sample gets a slot number (from the intervals, in units of the nominal interval
    ``1/rate`` or the median interval; a gap skips slots), and a robust straight line
    ``time = a + b * slot`` replaces the stamps: jitter averages out, dropped samples keep
    their place, and ``1/b`` is the device's true rate on this clock. Timestamps may wobble
    out of order by less than half an interval; a bigger step back raises.
    """
    idx, a, b = _fit_slots(times, rate, name)
    return a + b * idx


def regularize(stream: Stream, rate: float | None = None) -> Stream:
    """A nominally regular stream stored with jittery timestamps, as a regular Stream.

    Uses :func:`dejitter`'s line: the new stream starts at the fitted first time, runs at
    the fitted rate, and has NaN in the slots of missing samples (so gaps become NaN runs
    that :func:`~mmlab.align.find_gaps` reports).
    """
    if stream.is_regular:
        raise SignalError(f"stream {stream.name!r} is already regular ({stream.rate:g} Hz)")
    idx, a, b = _fit_slots(stream.times, rate, f"stream {stream.name!r}")
    data = np.full((int(idx[-1]) + 1,) + stream.data.shape[1:], np.nan)
    data[idx] = stream.data
    return Stream(name=stream.name, data=data, modality=stream.modality, rate=1.0 / b, start=a,
                  channels=list(stream.channels), units=list(stream.units), device=stream.device,
                  meta={**stream.meta, "regularized": True})
