"""Respiration: cleaning, breaths and breathing rate (chapter 13_eda, windowed features).

A respiration belt (or a chest-impedance channel) rises on every inhalation. neurokit2's
``rsp_clean`` (Khodadadi et al. 2018: 0.05-3 Hz band-pass) and ``rsp_peaks`` (extrema
between zero crossings, small ones dropped) find the end of each inhalation (peak) and
its start (trough). These wrappers add input checks, NaN-gap handling and plain arrays.
"""

from __future__ import annotations

import warnings

import numpy as np

from mmlab.bio.quality import SignalWarning, as_signal, flat_mask, mask_runs, segment_failure
from mmlab.errors import SignalError
from mmlab.validate import check_rate

__all__ = ["MIN_RATE_HZ", "BLOCK_S", "PERIODICITY_MIN", "clean", "detect_breaths", "breathing_rate"]

#: Lowest rate accepted: the 3 Hz low-pass of the cleaning needs at least ~10 Hz.
MIN_RATE_HZ = 10.0
#: Shortest signal accepted (a few breaths).
MIN_DURATION_S = 10.0
#: Valid stretches shorter than this are skipped (no breaths reported there).
SEGMENT_MIN_S = 10.0
#: A stretch without change for this long is flat (sensor off).
FLAT_S = 2.0
#: Breaths are judged in blocks of this many seconds (a shorter last block joins the one before).
BLOCK_S = 30.0
#: The lowest autocorrelation peak (at a lag of 1-15 s: 4-60 breaths/min) of a block's
#: cleaned signal for its breaths to be kept. Regular breathing scores about 0.8-0.9,
#: breathing broken by speech 0.45-0.9; white noise and a lead-off trace band-passed by
#: ``rsp_clean`` score 0.1-0.36.
PERIODICITY_MIN = 0.45


def _resp(x, fs):
    return as_signal(x, fs, "respiration", min_rate=MIN_RATE_HZ, min_duration_s=MIN_DURATION_S,
                     why_rate="the 3 Hz low-pass of neurokit2's rsp_clean")


def _segments(x: np.ndarray, fs: float, ok: np.ndarray | None = None) -> np.ndarray:
    if ok is None:
        ok = np.isfinite(x) & ~flat_mask(x, fs, FLAT_S)
    runs = mask_runs(ok, int(SEGMENT_MIN_S * fs))
    if len(runs) == 0:
        if not ok.any():
            raise SignalError("respiration signal is flat wherever it is not NaN: no breaths to detect")
        raise SignalError(f"respiration: no stretch of at least {SEGMENT_MIN_S:g} s without NaN "
                          "or flat samples")
    return runs


def clean(resp, fs) -> np.ndarray:
    """Respiration cleaned by neurokit2's ``rsp_clean`` (khodadad2018), NaN gaps kept."""
    import neurokit2 as nk

    x, fs = _resp(resp, fs)
    out = np.full(len(x), np.nan)
    for a, b in _segments(x, fs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out[a:b] = nk.rsp_clean(x[a:b], sampling_rate=fs, method="khodadad2018")
            except Exception as exc:
                raise SignalError(f"respiration: neurokit2 rsp_clean failed on samples {a}-{b} "
                                  f"({type(exc).__name__}: {exc})") from exc
    return out


def detect_breaths(resp, fs, cleaned: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(troughs, peaks)``: sample indices of inhalation onsets and inhalation ends.

    neurokit2's ``rsp_clean`` (unless ``cleaned``) and ``rsp_peaks`` (khodadad2018) on each
    valid stretch; no breath is reported in NaN gaps or flat stretches. The detector
    consults signal quality: a :data:`BLOCK_S` (30 s) block of the cleaned signal that is
    not periodic like breathing (autocorrelation peak below :data:`PERIODICITY_MIN` at
    4-60 breaths/min: noise, a loose belt) gives no breaths, with a
    :class:`~mmlab.bio.quality.SignalWarning` naming the fraction dropped.
    """
    x, fs = _resp(resp, fs)
    return _detect(x, fs, cleaned)


def _detect(x: np.ndarray, fs: float, cleaned: bool = False,
            ok: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    import neurokit2 as nk

    troughs, peaks = [], []
    n_found = n_dropped = 0
    for a, b in _segments(x, fs, ok):
        failure, info = None, None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                seg = x[a:b] if cleaned else nk.rsp_clean(x[a:b], sampling_rate=fs, method="khodadad2018")
                if np.count_nonzero(np.diff(np.signbit(seg))) >= 4:  # at least two breaths
                    _, info = nk.rsp_peaks(seg, sampling_rate=fs, method="khodadad2018")
            except Exception as exc:
                failure = exc
        if failure is not None:
            segment_failure("respiration: neurokit2 rsp_clean/rsp_peaks", failure, a, b, fs)
        if info is None:  # less than two breaths, or skipped: nothing reported here
            continue
        tr = np.asarray(info["RSP_Troughs"], dtype=np.int64)
        pk = np.asarray(info["RSP_Peaks"], dtype=np.int64)
        tr, pk, dropped = _periodic_only(seg, fs, tr, pk)
        n_dropped += dropped
        n_found += dropped + len(tr)
        troughs.append(tr + a)
        peaks.append(pk + a)
    if n_dropped:
        warnings.warn(f"respiration: {n_dropped / n_found:.0%} of the detected breaths ({n_dropped} of "
                      f"{n_found}) dropped: their {BLOCK_S:g} s blocks are not periodic like breathing "
                      f"(autocorrelation below {PERIODICITY_MIN:g}; noise or a loose belt?)",
                      SignalWarning, stacklevel=3)
    if not troughs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(troughs), np.concatenate(peaks)


def _periodicity(y: np.ndarray, fs: float) -> float:
    """The highest normalised autocorrelation of ``y`` at lags of 1-15 s (edges trimmed)."""
    k = int(2 * fs)
    if len(y) > 4 * k + int(2 * fs):
        y = y[k:-k]
    y = y - y.mean()
    n = len(y)
    lo, hi = int(round(1.0 * fs)), min(int(round(15.0 * fs)), n - 1)
    if hi <= lo or not np.any(y):
        return 0.0
    spec = np.fft.rfft(y, 2 * n)
    ac = np.fft.irfft(np.abs(spec) ** 2)[:n]
    return float(ac[lo:hi].max() / ac[0])


def _periodic_only(seg: np.ndarray, fs: float, troughs: np.ndarray,
                   peaks: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Keep the breaths of the :data:`BLOCK_S` blocks of the cleaned ``seg`` that are periodic."""
    size = int(BLOCK_S * fs)
    n_blocks = max(len(seg) // size, 1)
    edges = [b * size for b in range(n_blocks)] + [len(seg)]
    keep_t = np.ones(len(troughs), dtype=bool)
    keep_p = np.ones(len(peaks), dtype=bool)
    for lo, hi in zip(edges[:-1], edges[1:]):
        if _periodicity(seg[lo:hi], fs) < PERIODICITY_MIN:
            keep_t &= ~((troughs >= lo) & (troughs < hi))
            keep_p &= ~((peaks >= lo) & (peaks < hi))
    return troughs[keep_t], peaks[keep_p], int((~keep_t).sum())


def breathing_rate(troughs, fs) -> float:
    """Breaths per minute: 60 / the **median** interval between inhalation onsets (NaN if
    fewer than 2 onsets).

    The median, not the mean: an interval that spans a dropout (a NaN gap, a dropped noisy
    block) would otherwise drag the rate down (a 40 s gap in a minute of breathing at
    15/min gave 9/min).
    """
    fs = check_rate(fs, "breathing_rate")
    t = np.sort(np.asarray(troughs, dtype=float).ravel()) / fs
    if len(t) < 2:
        return np.nan
    return float(60.0 / np.median(np.diff(t)))
