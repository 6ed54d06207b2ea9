"""Vibration analysis for machine condition monitoring (chapter 15_images_sensors).

An accelerometer on a bearing housing sees the shaft rotation and its harmonics, the
machine's blade/vane passing, broadband noise, and, when a rolling bearing is damaged,
short impacts at the defect's characteristic frequency that ring a structural resonance
(kHz). The classic diagnosis has three steps, each one function here (scipy underneath):

* :func:`spectrum` — the Welch power spectrum (where is the energy?);
* :func:`time_features` / :func:`windowed_features` — RMS, peak, crest factor, kurtosis
  (impacts make the signal spiky: crest factor and kurtosis rise before RMS does);
* :func:`envelope` / :func:`envelope_spectrum` — band-pass around the resonance, take the
  Hilbert envelope, and look at the envelope's spectrum: a defect shows up as a line at its
  characteristic frequency (:func:`bearing_frequencies`: BPFO, BPFI, BSF, FTF) and its
  harmonics; :func:`best_band` picks the band where the signal is most impulsive
  (a one-level kurtogram), :func:`peak_near` and :func:`defect_indicators` read the lines.

Input checks: a sampling rate that is not a positive number, a band at or above Nyquist,
a signal shorter than the method needs, or NaN samples in a signal that must be contiguous
(spectra, envelopes) raise :class:`~mmlab.errors.SignalError` naming the problem;
:func:`finite_segment` finds the longest gap-free stretch of a stream with dropouts.
Per-window features of a window with missing samples or no variation are NaN with a
``quality`` flag, never a number made up from a hole.
"""

from __future__ import annotations

import math
import numpy as np
import pandas as pd
from scipy import signal as sps

from mmlab.errors import SignalError
from mmlab.validate import check_positive, check_rate
from mmlab.synth.vibration import Bearing, defect_frequencies

__all__ = [
    "Bearing", "bearing_frequencies", "check_vibration", "finite_segment", "spectrum",
    "time_features", "windowed_features", "envelope", "envelope_spectrum", "best_band",
    "peak_near", "defect_indicators", "FEATURES",
]

#: The time-domain features of :func:`time_features`, in order.
FEATURES = ("rms", "peak", "peak_to_peak", "crest_factor", "kurtosis", "skewness")


def bearing_frequencies(shaft_hz: float, bearing: Bearing = Bearing()) -> dict[str, float]:
    """Characteristic defect frequencies (Hz) of a rolling bearing at a shaft speed.

    Introduced in chapter 15_images_sensors. ``bpfo`` (ball pass, outer race), ``bpfi``
    (inner race), ``bsf`` (ball spin), ``ftf`` (cage) from the geometry in ``bearing``
    (default: a 6205 deep-groove ball bearing). The same formulas generate the synthetic
    factory's faults (:func:`mmlab.synth.vibration.defect_frequencies`).
    """
    shaft_hz = check_positive(shaft_hz, "bearing_frequencies: shaft speed", unit="Hz")
    return defect_frequencies(shaft_hz, bearing)


# --------------------------------------------------------------------------- checks
def check_vibration(x, rate, what: str = "vibration", min_samples: int = 16,
                    allow_nan: bool = False) -> tuple[np.ndarray, float]:
    """One channel of vibration as a float64 array, and its rate, after the input checks.

    Introduced in chapter 15_images_sensors. ``x`` may be 1-D, ``(n, 1)`` or a
    :class:`~mmlab.recording.Stream` (its rate is used when ``rate`` is None). Raises
    :class:`~mmlab.errors.SignalError` for a rate that is not a positive number, more than
    one channel, fewer than ``min_samples`` samples, and (unless ``allow_nan``) NaN or
    infinite samples.
    """
    from mmlab.recording import Stream

    if isinstance(x, Stream):
        what = f"stream {x.name!r}"
        if rate is None:
            if not x.is_regular:
                raise SignalError(f"{what}: vibration needs a regular sampling rate")
            rate = x.rate
        x = x.data
    fs = check_rate(rate, what)
    if np.asarray(x).dtype.kind in "US":
        raise SignalError(f"{what}: samples are not numbers (dtype {np.asarray(x).dtype})")
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SignalError(f"{what}: samples are not numbers ({exc})") from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise SignalError(f"{what}: expected one channel (1-D), got shape {arr.shape}")
    if len(arr) < min_samples:
        raise SignalError(f"{what}: too short: {len(arr)} samples at {fs:g} Hz; needs at least "
                          f"{min_samples} ({min_samples / fs:.3g} s)")
    bad = ~np.isfinite(arr)
    if bad.any():
        if not allow_nan:
            raise SignalError(f"{what}: {int(bad.sum())} NaN or infinite samples (dropouts?); a spectrum "
                              "needs a contiguous signal: use finite_segment() or windowed_features()")
        arr = np.where(bad, np.nan, arr)
    return arr, fs


def finite_segment(x) -> tuple[int, int]:
    """``(start, stop)`` of the longest run of finite samples (``x[start:stop]``).

    Introduced in chapter 15_images_sensors: the longest gap-free stretch of a stream with
    dropouts, for the methods that need contiguous data. ``(0, 0)`` when nothing is finite.
    """
    ok = np.isfinite(np.asarray(x, dtype=np.float64).reshape(len(x), -1)).all(axis=1)
    if not ok.any():
        return 0, 0
    edges = np.diff(np.concatenate([[0], ok.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    k = int(np.argmax(stops - starts))
    return int(starts[k]), int(stops[k])


def _check_band(band, fs: float, what: str) -> tuple[float, float]:
    try:
        lo, hi = (float(band[0]), float(band[1]))
    except (TypeError, ValueError, IndexError):
        raise SignalError(f"{what}: band must be (low_hz, high_hz), got {band!r}") from None
    if not (0 < lo < hi):
        raise SignalError(f"{what}: band {lo:g}-{hi:g} Hz is empty or starts at 0")
    if hi >= fs / 2:
        raise SignalError(f"{what} sampled at {fs:g} Hz cannot carry the band {lo:g}-{hi:g} Hz: the "
                          f"Nyquist frequency is {fs / 2:g} Hz; wrong sampling rate?")
    return lo, hi


# --------------------------------------------------------------------------- spectra
def spectrum(x, rate=None, nperseg: int | None = None, scaling: str = "density") -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectrum ``(freqs, psd)`` of one channel (:func:`scipy.signal.welch`).

    Introduced in chapter 15_images_sensors. Hann window, half overlap, ``nperseg``
    defaulting to about 1 s of samples (1 Hz resolution), at most the signal length.
    ``scaling="spectrum"`` gives power per line (g²) instead of density (g²/Hz).
    """
    x, fs = check_vibration(x, rate, "vibration spectrum")
    seg = min(len(x), int(nperseg) if nperseg else int(2 ** round(math.log2(fs))))
    return sps.welch(x, fs, window="hann", nperseg=seg, noverlap=seg // 2, scaling=scaling)


def _moments(w: np.ndarray, axis: int = -1) -> dict[str, np.ndarray]:
    """The features of FEATURES along ``axis``; NaN where undefined (flat or with NaN)."""
    mean = w.mean(axis=axis, keepdims=True)
    d = w - mean
    m2 = (d ** 2).mean(axis=axis)
    rms = np.sqrt((w ** 2).mean(axis=axis))
    peak = np.abs(w).max(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        flat = m2 <= (1e-12 * np.maximum(np.abs(mean.squeeze(axis)), 1e-300)) ** 2
        kurt = np.where(flat, np.nan, (d ** 4).mean(axis=axis) / np.where(flat, 1.0, m2) ** 2)
        skew = np.where(flat, np.nan, (d ** 3).mean(axis=axis) / np.where(flat, 1.0, m2) ** 1.5)
        crest = np.where(rms > 0, peak / np.where(rms > 0, rms, 1.0), np.nan)
    return {"rms": rms, "peak": peak, "peak_to_peak": w.max(axis=axis) - w.min(axis=axis),
            "crest_factor": crest, "kurtosis": kurt, "skewness": skew}


def time_features(x) -> dict[str, float]:
    """RMS, peak, peak-to-peak, crest factor (peak / RMS), kurtosis and skewness of a signal.

    Introduced in chapter 15_images_sensors. Kurtosis is Pearson's (Gaussian noise: 3; a
    sine: 1.5; a train of impacts: much more), as ``scipy.stats.kurtosis(fisher=False)``.
    The crest factor of a sine is √2. A flat signal gives NaN kurtosis and skewness (and a
    NaN crest factor when it is all zeros); NaN samples raise SignalError.
    """
    arr, _ = check_vibration(x, 1.0, "vibration features", min_samples=2)
    return {k: float(v) for k, v in _moments(arr).items()}


def windowed_features(x, rate=None, window_s: float = 1.0, step_s: float | None = None) -> pd.DataFrame:
    """:data:`FEATURES` per window (vectorised), with a ``quality`` flag per window.

    Introduced in chapter 15_images_sensors. Windows of ``window_s`` seconds every
    ``step_s`` (default: no overlap); columns ``t_start`` (seconds from the first sample),
    the features and ``quality``: ``"ok"``, ``"dropout"`` (the window holds NaN samples: its
    features are NaN), ``"flat"`` (no variation: kurtosis and skewness NaN) or
    ``"clipped"`` (the window reaches a plateau at the signal's maximum or minimum, at least
    3 samples long: the sensor saturated, peaks are cut; its features are NaN).
    """
    arr, fs = check_vibration(x, rate, "vibration features", min_samples=2, allow_nan=True)
    n_win = int(round(window_s * fs))
    step = int(round((step_s if step_s is not None else window_s) * fs))
    if n_win < 2 or step < 1:
        raise SignalError(f"vibration features: window {window_s!r} s / step {step_s!r} s is under "
                          f"two samples at {fs:g} Hz")
    if len(arr) < n_win:
        raise SignalError(f"vibration features: too short: {len(arr)} samples ({len(arr) / fs:.3g} s) "
                          f"for one {window_s:g}-s window")
    w = np.lib.stride_tricks.sliding_window_view(arr, n_win)[::step]
    holes = ~np.isfinite(w).all(axis=1)
    feats = _moments(np.where(holes[:, None], 0.0, w), axis=1)
    flat = np.isnan(feats["kurtosis"])
    rail = _rail_mask(arr)
    cut = np.lib.stride_tricks.sliding_window_view(rail, n_win)[::step].any(axis=1) & ~holes & ~flat
    df = pd.DataFrame({"t_start": np.arange(len(w)) * step / fs})
    for k in FEATURES:
        df[k] = np.where(holes | cut, np.nan, feats[k])
    quality = np.where(holes, "dropout", np.where(flat, "flat", np.where(cut, "clipped", "ok")))
    df["quality"] = quality
    return df


def _rail_mask(x: np.ndarray, min_run: int = 3) -> np.ndarray:
    """True for samples in runs of at least ``min_run`` at the signal's maximum or minimum:
    a saturated accelerometer or converter (peaks cut, so crest factor and kurtosis lie)."""
    ok = np.isfinite(x)
    if not ok.any():
        return np.zeros(len(x), dtype=bool)
    hi, lo = np.max(x[ok]), np.min(x[ok])
    if hi == lo:
        return np.zeros(len(x), dtype=bool)
    at = ok & ((x == hi) | (x == lo))
    d = np.diff(np.concatenate([[0], at.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    out = np.zeros(len(x) + 1, dtype=np.int32)
    long = (stops - starts) >= min_run
    np.add.at(out, starts[long], 1)
    np.add.at(out, stops[long], -1)
    return np.cumsum(out[:-1]) > 0


# --------------------------------------------------------------------------- envelope
def envelope(x, rate=None, band: tuple[float, float] = (1000.0, 2000.0), order: int = 4) -> np.ndarray:
    """Hilbert envelope of ``x`` band-passed to ``band`` Hz (Butterworth, zero phase).

    Introduced in chapter 15_images_sensors. The band should contain the resonance the
    impacts excite (see :func:`best_band`); the envelope then pulses at the defect rate.
    """
    x, fs = check_vibration(x, rate, "vibration envelope")
    lo, hi = _check_band(band, fs, "vibration envelope")
    sos = sps.butter(order, [lo, hi], btype="bandpass", fs=fs, output="sos")
    padlen = 3 * (2 * len(sos) + 1)
    if len(x) <= padlen:
        raise SignalError(f"vibration envelope: too short to filter: {len(x)} samples (needs > {padlen})")
    return np.abs(sps.hilbert(sps.sosfiltfilt(sos, x)))


def envelope_spectrum(x, rate=None, band: tuple[float, float] = (1000.0, 2000.0),
                      fmax: float | None = 500.0, order: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude spectrum ``(freqs, amplitude)`` of the band-passed Hilbert envelope.

    Introduced in chapter 15_images_sensors. The envelope's mean is removed and a Hann
    window applied; amplitudes are scaled so that an envelope ``m * cos(2π f t)`` shows a
    line of height ``m`` at ``f`` (resolution ``rate / len(x)`` Hz). Frequencies above
    ``fmax`` (defect lines live below a few hundred Hz) are dropped.
    """
    x, fs = check_vibration(x, rate, "vibration envelope")
    env = envelope(x, fs, band, order)
    env = env - env.mean()
    win = np.hanning(len(env))
    amp = 2.0 * np.abs(np.fft.rfft(env * win)) / win.sum()
    freqs = np.fft.rfftfreq(len(env), 1.0 / fs)
    if fmax is not None:
        keep = freqs <= fmax
        freqs, amp = freqs[keep], amp[keep]
    return freqs, amp


def best_band(x, rate=None, width_hz: float = 400.0, step_hz: float | None = None,
              fmin: float = 200.0, fmax: float | None = None, order: int = 4) -> tuple[float, float]:
    """The ``width_hz`` band where the band-passed signal is most impulsive (highest kurtosis).

    Introduced in chapter 15_images_sensors: a one-level kurtogram (Antoni, 2006). Bearing
    impacts ring a resonance whose frequency one rarely knows; the band where the filtered
    signal has the highest kurtosis is where the impacts stand out from shaft lines and
    noise. Candidate bands start every ``step_hz`` (default ``width_hz / 2``) from ``fmin``
    up to ``fmax`` (default 0.45 x rate). The first and last 5 % of the filtered signal
    (the filters' start-up transients) do not count.
    """
    x, fs = check_vibration(x, rate, "vibration best_band")
    top = min(fmax if fmax is not None else 0.45 * fs, 0.49 * fs)
    step = step_hz or width_hz / 2
    starts = np.arange(fmin, top - width_hz + 1e-9, step)
    if len(starts) == 0:
        raise SignalError(f"vibration best_band: no {width_hz:g}-Hz band fits between {fmin:g} and "
                          f"{top:g} Hz at {fs:g} Hz")
    kurt = []
    edge = max(len(x) // 20, 1)  # the filters' start-up transients are impulsive too: skip them
    if len(x) < 4 * edge + 64:
        raise SignalError(f"vibration best_band: too short: {len(x)} samples")
    for lo in starts:
        sos = sps.butter(order, [lo, lo + width_hz], btype="bandpass", fs=fs, output="sos")
        y = sps.sosfiltfilt(sos, x)[edge:-edge]
        kurt.append(_moments(y)["kurtosis"])
    k = int(np.nanargmax(kurt))
    return float(starts[k]), float(starts[k] + width_hz)


def peak_near(freqs, amplitude, target_hz: float, tol_hz: float = 2.0) -> dict[str, float]:
    """The largest line within ``target_hz ± tol_hz``: its ``freq``, ``amplitude`` and ``snr``.

    Introduced in chapter 15_images_sensors. ``snr`` is the line's amplitude over the
    median amplitude of the spectrum within ±10 x ``tol_hz`` (a local noise floor), so 1
    means "nothing there".
    """
    f = np.asarray(freqs, dtype=float)
    a = np.asarray(amplitude, dtype=float)
    near = np.abs(f - target_hz) <= tol_hz
    if not near.any():
        raise SignalError(f"peak_near: no spectral line within {target_hz:g} ± {tol_hz:g} Hz "
                          f"(spectrum covers {f.min():g}-{f.max():g} Hz in steps of {f[1] - f[0]:.3g} Hz)")
    i = np.flatnonzero(near)[np.argmax(a[near])]
    local = np.abs(f - target_hz) <= 10 * tol_hz
    floor = float(np.median(a[local & ~near])) if (local & ~near).any() else float("nan")
    return {"freq": float(f[i]), "amplitude": float(a[i]),
            "snr": float(a[i] / floor) if floor > 0 else float("nan")}


def defect_indicators(x, rate, shaft_hz: float, band: tuple[float, float] | None = None,
                      bearing: Bearing = Bearing(), harmonics: int = 3,
                      tol: float = 0.02) -> pd.DataFrame:
    """Envelope-spectrum evidence for each bearing defect frequency (chapter 15_images_sensors).

    For ``bpfo``, ``bpfi``, ``bsf`` and ``ftf`` at ``shaft_hz``: the mean :func:`peak_near`
    SNR over the first ``harmonics`` multiples (searched within ± ``tol`` x frequency,
    since real bearings slip by 1-2 %), with the fundamental's peak frequency and
    amplitude. ``band`` defaults to :func:`best_band`. Rows are the defects, sorted by SNR.
    """
    x, fs = check_vibration(x, rate, "vibration defect_indicators")
    freqs_d = bearing_frequencies(shaft_hz, bearing)
    band = band or best_band(x, fs)
    top = max(freqs_d.values()) * (harmonics + 1)
    f, a = envelope_spectrum(x, fs, band, fmax=min(top, 0.45 * fs))
    rows = []
    for name, fd in freqs_d.items():
        peaks = [peak_near(f, a, h * fd, max(tol * h * fd, 2 * (f[1] - f[0]))) for h in range(1, harmonics + 1)]
        rows.append({"defect": name, "expected_hz": fd, "peak_hz": peaks[0]["freq"],
                     "amplitude": peaks[0]["amplitude"], "snr": float(np.nanmean([p["snr"] for p in peaks]))})
    return pd.DataFrame(rows).sort_values("snr", ascending=False).set_index("defect")

