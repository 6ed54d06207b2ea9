"""Respiration: cleaning, breaths and breathing rate (chapter 13_eda, windowed features).

A respiration belt (or a chest-impedance channel) rises on every inhalation. neurokit2's
``rsp_clean`` (Khodadadi et al. 2018: 0.05-3 Hz band-pass) and ``rsp_peaks`` (extrema
between zero crossings, small ones dropped) find the end of each inhalation (peak) and
its start (trough). These wrappers add input checks, NaN-gap handling and plain arrays.
"""

from __future__ import annotations

import warnings

import numpy as np

from mmlab.bio.quality import as_signal, flat_mask, mask_runs, segment_failure
from mmlab.errors import SignalError

__all__ = ["MIN_RATE_HZ", "clean", "detect_breaths", "breathing_rate"]

#: Lowest rate accepted: the 3 Hz low-pass of the cleaning needs at least ~10 Hz.
MIN_RATE_HZ = 10.0
#: Shortest signal accepted (a few breaths).
MIN_DURATION_S = 10.0
#: Valid stretches shorter than this are skipped (no breaths reported there).
SEGMENT_MIN_S = 10.0
#: A stretch without change for this long is flat (sensor off).
FLAT_S = 2.0


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
    valid stretch; no breath is reported in NaN gaps or flat stretches.
    """
    x, fs = _resp(resp, fs)
    return _detect(x, fs, cleaned)


def _detect(x: np.ndarray, fs: float, cleaned: bool = False,
            ok: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    import neurokit2 as nk

    troughs, peaks = [], []
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
        troughs.append(np.asarray(info["RSP_Troughs"], dtype=np.int64) + a)
        peaks.append(np.asarray(info["RSP_Peaks"], dtype=np.int64) + a)
    if not troughs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(troughs), np.concatenate(peaks)


def breathing_rate(troughs, fs) -> float:
    """Breaths per minute: 60 / mean interval between inhalation onsets (NaN if < 2)."""
    t = np.asarray(troughs, dtype=float) / float(fs)
    if len(t) < 2:
        return np.nan
    return float(60.0 / np.mean(np.diff(t)))
