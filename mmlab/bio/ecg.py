"""ECG: cleaning, R-peaks, RR intervals, heart-rate variability, signal quality (chapter 12_ecg_hrv).

Thin, tested wrappers over neurokit2 and biosppy that add what a pipeline needs around
them: input checks with one clear :class:`~mmlab.errors.SignalError`, dropouts (NaN) and
flat stretches skipped instead of fed to a detector, and a scoring helper.

* :func:`clean` — neurokit2's ECG cleaning (0.5 Hz high-pass, mains filter), run on each
  stretch of valid samples so NaN gaps stay NaN;
* :func:`detect_r_peaks` — R-peak sample indices with any detector of :data:`DETECTORS`:
  neurokit2's (``"neurokit"``, ``"pantompkins1985"``, ``"hamilton2002"`` ...) or biosppy's
  (``"biosppy-hamilton"``, ``"biosppy-engzee"``);
* :func:`rr_intervals` — RR intervals in seconds, NaN where an interval spans bad samples;
* :func:`hrv_time` — mean HR, MeanNN, SDNN, RMSSD, pNN50 (neurokit2's conventions);
* :func:`rr_psd` / :func:`hrv_frequency` — the RR spectrum and LF, HF, LF/HF, by Welch
  (interpolated at 4 Hz) or Lomb-Scargle (unevenly sampled, no interpolation);
* :func:`beat_sqi` / :func:`quality` — a template-correlation quality index per beat, or
  neurokit2's ``ecg_quality`` methods;
* :func:`match_peaks` — precision/recall/F1 of detected against reference beats.

On MIT-BIH record 100 (lead MLII, 360 Hz, 2273 annotated beats) the ``"neurokit"``
detector scores F1 = 0.999 at ±150 ms (a test checks F1 >= 0.995).
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np

from mmlab.bio.quality import (SignalWarning, as_signal, clipped_mask, flat_mask, segment_failure,
                               mask_runs)
from mmlab.errors import SignalError
from mmlab.validate import check_number, check_rate

__all__ = ["DETECTORS", "MIN_RATE_HZ", "clean", "detect_r_peaks", "rr_intervals", "hrv_time",
           "rr_psd", "hrv_frequency", "beat_sqi", "quality", "match_peaks", "match_times", "valid_mask",
           "HRV_BANDS", "SQI_MIN", "SQI_BLOCK_S", "RR_PLAUSIBLE_S"]

#: The lowest sampling rate we accept for an ECG: the QRS complex lasts ~100 ms, and
#: R-peak timing to a few ms needs at least 100 samples per second.
MIN_RATE_HZ = 100.0
#: The shortest ECG the functions accept (a few beats).
MIN_DURATION_S = 3.0
#: Valid stretches shorter than this are skipped by the detectors (no beats reported there).
SEGMENT_MIN_S = 2.0
#: A stretch that does not change for this long is a flat lead (lead off, saturated input).
FLAT_S = 0.5

_NK_DETECTORS = ("neurokit", "pantompkins1985", "hamilton2002", "elgendi2010", "engzeemod2012",
                 "kalidas2017", "rodrigues2021", "manikandan2012", "nabian2018")
_BIOSPPY_DETECTORS = {"biosppy-hamilton": "hamilton_segmenter", "biosppy-engzee": "engzee_segmenter"}
#: Detector names accepted by :func:`detect_r_peaks`.
DETECTORS = _NK_DETECTORS + tuple(_BIOSPPY_DETECTORS)

#: Detected beats are judged in blocks of this many seconds (the last, shorter block joins
#: the one before): a block whose beats do not look like the signal's median beat holds
#: no ECG (noise, a lead off) and gives no R-peaks.
SQI_BLOCK_S = 10.0
#: The lowest mean template correlation (:func:`beat_sqi`) of a block's beats for its
#: R-peaks to be kept. Clean and noisy-but-real ECGs score above 0.9; detections on white
#: noise, a lead-off trace or ADC quantisation noise score about 0.3.
SQI_MIN = 0.5
#: The lowest excess kurtosis of a block's filtered signal for its R-peaks to be kept
#: (kSQI, the kurtosis index of Li et al. 2008 and neurokit2: Gaussian noise has 0, the
#: peaky QRS complexes of an ECG give several units).
KURTOSIS_MIN = 1.0
#: Plausible RR intervals in seconds (300 to 20 bpm).
RR_PLAUSIBLE_S = (0.2, 3.0)

#: Frequency bands of HRV in Hz (Task Force 1996).
HRV_BANDS = {"vlf": (0.0033, 0.04), "lf": (0.04, 0.15), "hf": (0.15, 0.4)}


@contextmanager
def _quiet():
    """Silence the libraries' warnings (their messages are not about the caller's code)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            yield


def _ecg(x, fs, what="ECG"):
    return as_signal(x, fs, what, min_rate=MIN_RATE_HZ, min_duration_s=MIN_DURATION_S,
                     why_rate="R-peaks need about 100 samples per second")


def valid_mask(ecg, fs) -> np.ndarray:
    """Samples an R-peak or RR interval can be trusted on: finite, not flat, not clipped."""
    x, fs = as_signal(ecg, fs, "ECG", allow_all_nan=True)
    return np.isfinite(x) & ~flat_mask(x, fs, FLAT_S) & ~clipped_mask(x, fs)


def _segments(x: np.ndarray, fs: float, what: str, ok: np.ndarray | None = None) -> np.ndarray:
    """Stretches a detector may run on: finite and not flat, at least SEGMENT_MIN_S long."""
    if ok is None:
        ok = np.isfinite(x) & ~flat_mask(x, fs, FLAT_S)
    runs = mask_runs(ok, int(SEGMENT_MIN_S * fs))
    if len(runs) == 0:
        if not ok.any():
            value = x[np.isfinite(x)][0]
            raise SignalError(f"{what} is flat (constant {value:g} wherever it is not NaN): "
                              "no beats to detect; is the lead off?")
        raise SignalError(f"{what}: no stretch of at least {SEGMENT_MIN_S:g} s without NaN or "
                          "flat samples; nothing to detect beats in")
    return runs


def clean(ecg, fs, method: str = "neurokit") -> np.ndarray:
    """The ECG cleaned with neurokit2's ``ecg_clean`` (``method``), NaN gaps kept as NaN.

    Introduced in chapter 12_ecg_hrv. Each stretch of valid samples is cleaned on its own,
    so filters never run across a gap; stretches shorter than 2 s are left NaN.
    """
    import neurokit2 as nk

    x, fs = _ecg(ecg, fs)
    out = np.full(len(x), np.nan)
    for a, b in _segments(x, fs, "ECG"):
        with _quiet():
            try:
                out[a:b] = nk.ecg_clean(x[a:b], sampling_rate=fs, method=method)
            except Exception as exc:
                raise SignalError(f"ECG: neurokit2 ecg_clean(method={method!r}) failed on samples "
                                  f"{a}-{b} ({type(exc).__name__}: {exc})") from exc
    return out


def _detect_segment(seg: np.ndarray, fs: float, method: str) -> tuple[np.ndarray, np.ndarray]:
    """R-peaks of one valid stretch and the filtered signal the detector saw."""
    if method in _BIOSPPY_DETECTORS:
        from biosppy.signals import ecg as becg
        from biosppy.signals import tools as st

        filtered, _, _ = st.filter_signal(seg, ftype="FIR", band="bandpass", order=int(0.3 * fs),
                                          frequency=[3, 45], sampling_rate=fs)
        rpeaks = getattr(becg, _BIOSPPY_DETECTORS[method])(signal=filtered, sampling_rate=fs)[0]
        if len(rpeaks) == 0:
            return np.zeros(0, dtype=np.int64), filtered
        rpeaks = becg.correct_rpeaks(signal=filtered, rpeaks=rpeaks, sampling_rate=fs, tol=0.05)[0]
        return np.asarray(rpeaks, dtype=np.int64), filtered
    import neurokit2 as nk

    cleaned = nk.ecg_clean(seg, sampling_rate=fs, method="neurokit")
    _, info = nk.ecg_peaks(cleaned, sampling_rate=fs, method=method, correct_artifacts=False)
    peaks = np.asarray(info["ECG_R_Peaks"], dtype=np.int64)
    if method != "neurokit":  # detectors that mark the QRS energy, not the R-wave maximum
        peaks = _to_r_wave(cleaned, peaks, fs)
    return peaks, cleaned


def _to_r_wave(x: np.ndarray, peaks: np.ndarray, fs: float, tol_s: float = 0.05) -> np.ndarray:
    """Move each detection to the largest sample within ``tol_s`` (biosppy's correct_rpeaks)."""
    peaks = peaks[(peaks >= 0) & (peaks < len(x))]
    if len(peaks) == 0:
        return peaks
    w = int(round(tol_s * fs))
    idx = np.clip(peaks[:, None] + np.arange(-w, w + 1)[None, :], 0, len(x) - 1)
    return np.unique(idx[np.arange(len(peaks)), np.argmax(x[idx], axis=1)])


def _peakiness(seg: np.ndarray) -> float:
    """Excess kurtosis of the finite samples (0 for Gaussian noise; an ECG's sharp QRS
    complexes make it several units)."""
    v = seg[np.isfinite(seg)]
    if len(v) < 4:
        return np.nan
    v = v - v.mean()
    m2 = float(np.mean(v * v))
    return float(np.mean(v ** 4) / (m2 * m2) - 3.0) if m2 > 0 else np.nan


def _gate(peaks: np.ndarray, filtered: np.ndarray, fs: float) -> np.ndarray:
    """The peaks of the :data:`SQI_BLOCK_S` blocks whose beats look like ECG beats.

    Each beat is correlated with the median beat of the whole signal (:func:`beat_sqi` on
    the detector's filtered signal); a block keeps its peaks when the mean correlation of
    its beats reaches :data:`SQI_MIN`, the block holds at least one beat per 3 s, and its
    filtered signal is peaky (excess kurtosis >= :data:`KURTOSIS_MIN`). A block none of whose beats can be judged (too
    close to a gap or an end) follows the whole signal's verdict. Dropped peaks are
    reported with a :class:`~mmlab.bio.quality.SignalWarning` naming the fraction.
    """
    if len(peaks) == 0:
        return peaks
    sqi = beat_sqi(filtered, fs, peaks, cleaned=True, checked=True)
    # the kurtosis ignores 1 s at each end of every valid stretch (filter transients)
    interior = np.full(len(filtered), np.nan)
    w = int(round(fs))
    for a, b in mask_runs(np.isfinite(filtered), 2 * w + 1):
        interior[a + w:b - w] = filtered[a + w:b - w]
    overall = float(np.nanmean(sqi)) if np.isfinite(sqi).any() else np.nan
    block_len = SQI_BLOCK_S * fs
    n_blocks = max(int(len(filtered) // block_len), 1)
    block = np.minimum((peaks // block_len).astype(np.int64), n_blocks - 1)
    keep = np.zeros(len(peaks), dtype=bool)
    for b in np.unique(block):
        inside = block == b
        s = sqi[inside]
        score = float(np.nanmean(s)) if np.isfinite(s).any() else overall
        # fewer beats than the slowest plausible heart rate gives is not an ECG either
        span_s = (len(filtered) - b * block_len if b == n_blocks - 1 else block_len) / fs
        enough = inside.sum() >= max(2, int(span_s / RR_PLAUSIBLE_S[1]))
        seg = interior[int(b * block_len): int(b * block_len + span_s * fs)]
        kurt = _peakiness(seg)
        keep[inside] = bool(enough and np.isfinite(score) and score >= SQI_MIN
                            and not kurt < KURTOSIS_MIN)  # a block of edges only: SQI decides
    if not keep.all():
        frac = 1.0 - keep.mean()
        warnings.warn(f"ECG: {frac:.0%} of the detected R-peaks ({int((~keep).sum())} of {len(peaks)}) "
                      f"dropped: their {SQI_BLOCK_S:g} s blocks do not look like an ECG (mean beat "
                      f"template correlation below {SQI_MIN:g}; noise or a lead off?)",
                      SignalWarning, stacklevel=3)
    return peaks[keep]


def _detect(x: np.ndarray, fs: float, method: str,
            ok: np.ndarray | None = None, gate: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(peaks, filtered)`` over the valid stretches of a checked signal (``ok``: finite
    and not flat, if already known); with ``gate``, only peaks in blocks that look like an
    ECG (:func:`_gate`)."""
    if method not in DETECTORS:
        raise SignalError(f"unknown R-peak detector {method!r}; choose one of {', '.join(DETECTORS)}")
    found = []
    filtered = np.full(len(x), np.nan)
    for a, b in _segments(x, fs, "ECG", ok):
        failure = None
        with _quiet():
            try:
                p, f = _detect_segment(x[a:b], fs, method)
            except Exception as exc:
                failure = exc
        if failure is not None:
            segment_failure(f"ECG: R-peak detector {method!r}", failure, a, b, fs)
            continue
        filtered[a:b] = f
        p = p[(p >= 0) & (p < b - a)]
        found.append(p + a)
    peaks = np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
    peaks = peaks.astype(np.int64)
    if gate:
        peaks = _gate(peaks, filtered, fs)
    return peaks, filtered


def detect_r_peaks(ecg, fs, method: str = "neurokit") -> np.ndarray:
    """R-peak sample indices (sorted int array) found by the detector ``method``.

    Introduced in chapter 12_ecg_hrv. neurokit2's detectors run on neurokit2-cleaned
    stretches; biosppy's on a 3-45 Hz FIR band-pass. Detectors that mark the QRS complex
    by its energy (all but ``"neurokit"``) have each detection moved to the largest sample
    within ±50 ms, the R-wave maximum, as biosppy's ``correct_rpeaks`` does in
    ``biosppy.signals.ecg.ecg``. NaN gaps and flat stretches are skipped: no beat is ever
    reported inside them.

    The detector consults signal quality: in every :data:`SQI_BLOCK_S` (10 s) block the
    beats are correlated with the signal's median beat; a block scoring below
    :data:`SQI_MIN`, with fewer beats than 20 bpm gives, or whose filtered signal is not
    peaky (excess kurtosis below :data:`KURTOSIS_MIN`) holds no physiological content
    (white noise, a lead-off trace, converter noise, an ECG clipped over its QRS tops) and
    gives no R-peaks, with a :class:`~mmlab.bio.quality.SignalWarning` naming the fraction
    dropped.

    Parameters
    ----------
    ecg : array_like
        One ECG lead, shape ``(n,)`` (mV or any linear unit); NaN marks missing samples.
    fs : float
        Sampling rate in Hz (at least 100).
    method : str, default "neurokit"
        One of :data:`DETECTORS`.

    Returns
    -------
    numpy.ndarray
        Sorted int64 sample indices of the R peaks (empty if there are none, e.g. for a
        signal without physiological content).

    Raises
    ------
    SignalError
        A rate below 100 Hz, a signal shorter than 3 s, an all-NaN or entirely flat ECG,
        an unknown ``method``, or a library failing on a stretch longer than 30 s (a
        shorter stretch it fails on is skipped with a
        :class:`~mmlab.bio.quality.SignalWarning`).

    Examples
    --------
    >>> import numpy as np
    >>> from mmlab.synth.physio import simulate_ecg
    >>> ecg, true_beats = simulate_ecg(duration=30.0, fs=500.0, heart_rate=60.0, seed=1)
    >>> peaks = detect_r_peaks(ecg, 500.0)
    >>> len(peaks) >= 29, round(60.0 / float(np.mean(np.diff(peaks) / 500.0)))
    (True, 60)
    >>> detect_r_peaks(ecg, 50.0)
    Traceback (most recent call last):
    ...
    mmlab.errors.SignalError: ECG sampled at 50 Hz: this needs at least 100 Hz ...
    """
    if method not in DETECTORS:
        raise SignalError(f"unknown R-peak detector {method!r}; choose one of {', '.join(DETECTORS)}")
    x, fs = _ecg(ecg, fs)
    return _detect(x, fs, method)[0]


def rr_intervals(peaks, fs, valid: np.ndarray | None = None) -> np.ndarray:
    """RR intervals in seconds between consecutive peaks (``len(peaks) - 1`` values).

    Introduced in chapter 12_ecg_hrv. With ``valid`` (a boolean mask of the ECG's samples,
    e.g. :func:`valid_mask`), an interval that spans an invalid sample (a dropout, a flat
    or clipped stretch) is NaN: it may hide missed beats, so it must not enter HRV.
    """
    fs = check_rate(fs, "RR intervals")
    p = np.asarray(peaks)
    if p.ndim != 1:
        raise SignalError(f"peaks must be a 1-D array of sample indices, got shape {p.shape}")
    if len(p) and not np.issubdtype(p.dtype, np.number):
        raise SignalError(f"peaks must be sample indices (numbers), got dtype {p.dtype}")
    p = p.astype(np.int64)
    if len(p) > 1 and np.any(np.diff(p) <= 0):
        raise SignalError("peaks must be strictly increasing sample indices")
    rr = np.diff(p) / fs
    if valid is not None and len(p) > 1:
        bad = ~np.asarray(valid, dtype=bool)
        if p[-1] >= len(bad) or p[0] < 0:
            raise SignalError(f"peaks run to sample {p[-1]} but the validity mask has {len(bad)} samples")
        cum = np.concatenate([[0], np.cumsum(bad)])
        n_bad = cum[p[1:] + 1] - cum[p[:-1]]  # invalid samples in [p_k, p_k+1] inclusive
        rr = np.where(n_bad > 0, np.nan, rr)
    return rr


def _rr_ms(rr_s, what: str) -> np.ndarray:
    """RR intervals in seconds -> milliseconds, after checking they are seconds.

    Raises :class:`SignalError` for non-positive intervals and for a median outside
    :data:`RR_PLAUSIBLE_S` (0.2-3 s), with a hint when the values look like milliseconds.
    """
    if np.asarray(rr_s).dtype.kind in "USb":
        raise SignalError(f"{what}: RR intervals must be numbers (seconds), got dtype {np.asarray(rr_s).dtype}")
    try:
        rr = np.asarray(rr_s, dtype=float).ravel()
    except (TypeError, ValueError):
        raise SignalError(f"{what}: RR intervals must be numbers (seconds), got {type(rr_s).__name__}") from None
    rr = np.where(np.isfinite(rr), rr, np.nan)
    ok = np.isfinite(rr)
    if ok.any():
        if np.any(rr[ok] <= 0):
            raise SignalError(f"{what}: RR intervals must be positive")
        med = float(np.median(rr[ok]))
        lo, hi = RR_PLAUSIBLE_S
        if med > 200.0:
            raise SignalError(f"{what}: RR intervals must be in seconds; the median {med:g} looks like "
                              "milliseconds (divide by 1000)")
        if not lo <= med <= hi:
            raise SignalError(f"{what}: median RR interval {med:g} s is outside the plausible "
                              f"{lo:g}-{hi:g} s ({60 / hi:g}-{60 / lo:g} bpm); are these RR intervals in seconds?")
    return rr * 1000.0


def hrv_time(rr_s) -> dict:
    """Time-domain HRV from RR intervals in seconds (NaN = invalid interval).

    Introduced in chapter 12_ecg_hrv. Returns ``n_intervals`` (valid ones), ``hr_mean``
    (bpm, 60 / mean RR), ``mean_nn``, ``sdnn`` (sample SD, ddof=1), ``rmssd`` (ms) and
    ``pnn50`` (%), following neurokit2's ``hrv_time``: successive differences are taken only
    between two valid neighbouring intervals, and pNN50 divides the count of differences
    above 50 ms by the number of differences plus one. Fewer than 3 valid intervals give NaN.
    Intervals must be in seconds: non-positive ones, or a median outside
    :data:`RR_PLAUSIBLE_S` (e.g. milliseconds), raise :class:`SignalError`.
    """
    rr = _rr_ms(rr_s, "hrv_time")
    ok = np.isfinite(rr)
    n = int(ok.sum())
    out = {"n_intervals": n, "hr_mean": np.nan, "mean_nn": np.nan, "sdnn": np.nan,
           "rmssd": np.nan, "pnn50": np.nan}
    if n < 3:
        return out
    v = rr[ok]
    d = np.diff(rr)
    d = d[np.isfinite(d)]
    out.update(mean_nn=float(v.mean()), sdnn=float(v.std(ddof=1)),
               hr_mean=float(60000.0 / v.mean()))
    if len(d):
        out.update(rmssd=float(np.sqrt(np.mean(d ** 2))),
                   pnn50=float(100.0 * np.sum(np.abs(d) > 50) / (len(d) + 1)))
    return out


def rr_psd(rr_s, times_s=None, method: str = "welch", interp_hz: float = 4.0,
           segment_s: float = 120.0, min_duration_s: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    """Power spectral density (ms²/Hz) of an RR series: ``(frequencies_hz, psd)``.

    Introduced in chapter 12_ecg_hrv. ``times_s`` are the times of the intervals (e.g. the
    second beat of each, ``peaks[1:] / fs``); they are needed when ``rr_s`` has NaN, and
    default to the cumulative sum of the intervals otherwise.

    * ``method="welch"``: the valid intervals are interpolated with a cubic spline at
      ``interp_hz`` (4 Hz), then Welch's method (Hann windows of ``segment_s`` s, 50 %
      overlap, linear detrend) estimates the density;
    * ``method="lomb"``: the Lomb-Scargle periodogram of the unevenly spaced intervals
      (scipy), scaled to a one-sided density; gaps need no interpolation.

    Either way the density integrates to the variance of the series. Raises
    :class:`SignalError` for less than ``min_duration_s`` (60 s) of intervals: the LF
    band's slowest wave lasts 25 s.
    """
    from scipy import interpolate
    from scipy import signal as sps

    if method not in ("welch", "lomb"):
        raise SignalError(f"hrv_frequency: method must be 'welch' or 'lomb', got {method!r}")
    rr = _rr_ms(rr_s, "hrv_frequency")
    if times_s is None:
        if np.isnan(rr).any():
            raise SignalError("hrv_frequency: RR intervals contain NaN; pass times_s (e.g. peaks[1:] / fs)")
        t = np.cumsum(rr) / 1000.0
    else:
        t = np.asarray(times_s, dtype=float).ravel()
        if t.shape != rr.shape:
            raise SignalError(f"hrv_frequency: {len(t)} times for {len(rr)} intervals")
    ok = np.isfinite(rr) & np.isfinite(t)
    rr, t = rr[ok], t[ok]
    span = float(t[-1] - t[0]) if len(t) > 1 else 0.0
    if len(t) < 10 or span < min_duration_s:
        raise SignalError(f"hrv_frequency: {span:.0f} s of valid RR intervals ({len(t)} intervals); "
                          f"at least {min_duration_s:g} s is needed for the LF band")
    if np.any(np.diff(t) <= 0):
        raise SignalError("hrv_frequency: interval times must be strictly increasing")
    if method == "welch":
        grid = np.arange(t[0], t[-1], 1.0 / interp_hz)
        y = interpolate.CubicSpline(t, rr)(grid)
        nper = min(len(y), int(round(segment_s * interp_hz)))
        return sps.welch(y, fs=interp_hz, window="hann", nperseg=nper, noverlap=nper // 2,
                         detrend="linear", scaling="density")
    y = rr - rr.mean()
    df = 1.0 / (4.0 * span)
    f = np.arange(df, 0.5 + df / 2, df)
    p = sps.lombscargle(t, y, 2.0 * np.pi * f)
    return f, 2.0 * p / (len(t) / span)  # one-sided density: integrates to the variance


def hrv_frequency(rr_s, times_s=None, method: str = "welch", **kwargs) -> dict:
    """Frequency-domain HRV: power (ms²) in the VLF, LF and HF bands of :data:`HRV_BANDS`.

    Introduced in chapter 12_ecg_hrv. The spectrum comes from :func:`rr_psd` (``method``
    ``"welch"`` or ``"lomb"``; keyword arguments go there). Returns ``vlf``, ``lf``, ``hf``
    (ms²), ``lf_hf``, ``lf_nu`` and ``hf_nu`` (% of LF+HF), and the peak frequencies
    ``lf_peak_hz`` and ``hf_peak_hz`` (the latter usually the breathing rate), and
    ``quality``: ``"ok"``, or ``"constant"`` when the valid intervals do not vary (a
    metronome, a pacemaker, a simulated fixed rate) — then every band power and ratio is
    NaN, not the ~1e-27 ms² of rounding error a spectrum would report.
    """
    f, psd = rr_psd(rr_s, times_s, method=method, **kwargs)
    rr = _rr_ms(rr_s, "hrv_frequency")
    if np.nanstd(rr) < 1e-6:  # ms: no variability at all
        return {"vlf": np.nan, "lf": np.nan, "hf": np.nan, "lf_hf": np.nan, "lf_nu": np.nan,
                "hf_nu": np.nan, "lf_peak_hz": np.nan, "hf_peak_hz": np.nan, "quality": "constant"}
    df = float(np.mean(np.diff(f)))
    out = {}
    peaks = {}
    for band, (lo, hi) in HRV_BANDS.items():
        inside = (f >= lo) & (f < hi)
        out[band] = float(np.sum(psd[inside]) * df)
        peaks[band] = float(f[inside][np.argmax(psd[inside])]) if inside.any() else np.nan
    lf, hf = out["lf"], out["hf"]
    out["lf_hf"] = lf / hf if hf > 0 else np.nan
    out["lf_nu"] = 100.0 * lf / (lf + hf) if lf + hf > 0 else np.nan
    out["hf_nu"] = 100.0 * hf / (lf + hf) if lf + hf > 0 else np.nan
    out["lf_peak_hz"], out["hf_peak_hz"] = peaks["lf"], peaks["hf"]
    out["quality"] = "ok"
    return out


def _beat_matrix(x: np.ndarray, peaks: np.ndarray, fs: float, before_s: float, after_s: float):
    offs = np.arange(-int(round(before_s * fs)), int(round(after_s * fs)) + 1)
    idx = peaks[:, None] + offs[None, :]
    inside = (idx[:, 0] >= 0) & (idx[:, -1] < len(x))
    seg = np.full(idx.shape, np.nan)
    seg[inside] = x[idx[inside]]
    return seg


def beat_sqi(ecg, fs, peaks, before_s: float = 0.2, after_s: float = 0.4,
             cleaned: bool = False, checked: bool = False) -> np.ndarray:
    """Template-correlation quality of each beat, in [-1, 1] (NaN where it cannot be judged).

    Introduced in chapter 12_ecg_hrv. Each beat (``before_s`` before to ``after_s`` after its
    R-peak, on the cleaned ECG) is correlated with the median beat of the whole signal, the
    idea of Orphanidou et al. (2015) and of neurokit2's ``templatematch`` quality: clean
    beats score above 0.9, noise and artefacts low. Beats too close to the ends or to a NaN
    gap get NaN. (``checked``: ``ecg`` is already a float array from the input checks.)
    """
    x, fs = (ecg, fs) if checked else _ecg(ecg, fs)
    if not cleaned:
        x = clean(x, fs)
    p = _indices(peaks, "peaks")
    if len(p) == 0:
        return np.zeros(0)
    seg = _beat_matrix(x, p, fs, before_s, after_s)
    good = np.isfinite(seg).all(axis=1)
    out = np.full(len(p), np.nan)
    if good.sum() < 3:
        return out
    s = seg[good]
    template = np.median(s, axis=0)
    a = s - s.mean(axis=1, keepdims=True)
    b = template - template.mean()
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        out[good] = np.where(den > 0, (a @ b) / den, np.nan)
    return out


def quality(ecg, fs, peaks=None, method: str = "template"):
    """One quality figure for an ECG.

    Introduced in chapter 12_ecg_hrv. ``method="template"``: the mean of :func:`beat_sqi`
    (0-1 for real ECGs; > 0.9 is clean). Otherwise a neurokit2 ``ecg_quality`` method on
    the cleaned signal: ``"averageQRS"`` and ``"templatematch"`` give the mean of their
    per-sample index, ``"zhao2018"`` its verdict (``"Excellent"``, ``"Barely acceptable"``,
    ``"Unacceptable"``). The neurokit2 methods need a signal without NaN.
    """
    x, fs = _ecg(ecg, fs)
    if peaks is None:
        peaks = detect_r_peaks(x, fs)
    peaks = _indices(peaks, "ECG quality: peaks")
    if method == "template":
        sqi = beat_sqi(x, fs, peaks)
        return float(np.nanmean(sqi)) if np.isfinite(sqi).any() else np.nan
    if method not in ("averageQRS", "templatematch", "zhao2018"):
        raise SignalError(f"unknown ECG quality method {method!r}; use 'template', 'averageQRS', "
                          "'templatematch' or 'zhao2018'")
    if np.isnan(x).any():
        raise SignalError(f"ECG quality method {method!r} needs a signal without NaN; use method='template'")
    import neurokit2 as nk

    cleaned = clean(x, fs)
    with _quiet():
        try:
            q = nk.ecg_quality(cleaned, rpeaks=peaks, sampling_rate=fs, method=method)
        except Exception as exc:
            raise SignalError(f"ECG: neurokit2 ecg_quality(method={method!r}) failed "
                              f"({type(exc).__name__}: {exc})") from exc
    return q if isinstance(q, str) else float(np.nanmean(q))


def _indices(values, what: str) -> np.ndarray:
    """Sample indices as int64: whole, non-negative numbers; SignalError otherwise."""
    try:
        a = np.asarray(values)
    except Exception:
        raise SignalError(f"{what} must be sample indices (non-negative whole numbers)") from None
    a = a.ravel()
    if len(a) == 0:
        return np.zeros(0, dtype=np.int64)
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise SignalError(f"{what} must be sample indices (non-negative whole numbers), got dtype {a.dtype}")
    f = a.astype(float)
    if not np.all(np.isfinite(f)):
        raise SignalError(f"{what} must be sample indices; got NaN or inf")
    if np.any(f != np.round(f)):
        i = int(np.flatnonzero(f != np.round(f))[0])
        raise SignalError(f"{what} must be sample indices (whole numbers), got {a[i]!r}; for times in "
                          "seconds use match_times")
    if np.any(f < 0):
        raise SignalError(f"{what} must be non-negative sample indices, got {a[int(np.argmax(f < 0))]!r}")
    return f.astype(np.int64)


def _match(det: np.ndarray, ref: np.ndarray, tol: float) -> tuple[int, list]:
    """One-to-one matching of sorted ``det`` to sorted ``ref`` within ``tol``, closest first."""
    pairs = []
    if len(det) and len(ref):
        j = np.searchsorted(det, ref)
        for cand in (j - 1, j):
            okc = (cand >= 0) & (cand < len(det))
            r_idx = np.flatnonzero(okc)
            d_idx = cand[okc]
            dist = np.abs(det[d_idx] - ref[r_idx])
            near = dist <= tol
            pairs.append(np.stack([dist[near], r_idx[near], d_idx[near]], axis=1))
    tp, err = 0, []
    if pairs:
        allp = np.concatenate(pairs)
        allp = allp[np.argsort(allp[:, 0], kind="stable")]
        used_r = np.zeros(len(ref), dtype=bool)
        used_d = np.zeros(len(det), dtype=bool)
        for dist, r, d in allp:
            r, d = int(r), int(d)
            if not used_r[r] and not used_d[d]:
                used_r[r] = used_d[d] = True
                tp += 1
                err.append(dist)
    return tp, err


def _scores(n_det: int, n_ref: int, tp: int, err_s: list) -> dict:
    fp, fn = n_det - tp, n_ref - tp

    def ratio(a, b):
        return a / b if b else np.nan

    return {"tp": tp, "fp": fp, "fn": fn, "precision": ratio(tp, tp + fp),
            "recall": ratio(tp, tp + fn), "f1": ratio(2 * tp, 2 * tp + fp + fn),
            "mean_abs_error_s": float(np.mean(err_s)) if err_s else np.nan}


def match_peaks(detected, reference, fs, tol_s: float = 0.15) -> dict:
    """Score detected beats against reference beats (both sample indices at rate ``fs``).

    Introduced in chapter 12_ecg_hrv. Each detection matches at most one reference beat
    within ``tol_s`` (±150 ms, the ANSI/AAMI EC57 convention; wfdb's own MIT-BIH benchmark,
    ``wfdb.processing.benchmark_mitdb``, is stricter: 0.1 * fs samples, 100 ms) and vice
    versa, closest pairs first. Returns ``tp``, ``fp``, ``fn``,
    ``precision``, ``recall``, ``f1`` and ``mean_abs_error_s`` (of the matched pairs);
    a ratio with a zero denominator is NaN. Indices must be non-negative whole numbers
    and ``tol_s`` a finite number >= 0 (:class:`SignalError` otherwise); to score event
    times in seconds use :func:`match_times`.
    """
    fs = check_rate(fs, "match_peaks")
    tol_s = check_number(tol_s, "match_peaks: tol_s", low=0.0, unit="seconds")
    det = np.sort(_indices(detected, "match_peaks: detected").astype(float))
    ref = np.sort(_indices(reference, "match_peaks: reference").astype(float))
    tp, err = _match(det, ref, tol_s * fs)
    return _scores(len(det), len(ref), tp, [e / fs for e in err])


def match_times(detected_s, reference_s, tol_s: float = 0.15) -> dict:
    """Score detected event times against reference times, both in seconds.

    Introduced in chapter 13_eda (SCR onsets, breaths). The same one-to-one matching and
    scores as :func:`match_peaks`; times must be finite numbers and ``tol_s`` a finite
    number >= 0.
    """
    tol_s = check_number(tol_s, "match_times: tol_s", low=0.0, unit="seconds")
    out = []
    for name, v in (("detected_s", detected_s), ("reference_s", reference_s)):
        try:
            a = np.asarray(v, dtype=float).ravel()
        except (TypeError, ValueError):
            raise SignalError(f"match_times: {name} must be times in seconds (numbers)") from None
        if not np.all(np.isfinite(a)):
            raise SignalError(f"match_times: {name} holds NaN or inf; drop them first")
        out.append(np.sort(a))
    det, ref = out
    tp, err = _match(det, ref, tol_s)
    return _scores(len(det), len(ref), tp, err)
