"""EDA: tonic/phasic decomposition, skin-conductance responses (SCRs), SCL (chapter 13_eda).

Electrodermal activity is skin conductance in µS. It has two parts: the slow **tonic**
level (SCL, skin-conductance level) and the fast **phasic** part, whose bumps are the
skin-conductance responses to arousing events. The functions work the same on a chest
device at 700 Hz and on a wristband at 4 Hz (Empatica E4).

* :func:`clean` — neurokit2's ``eda_clean`` (3 Hz low-pass; skipped at rates <= 6 Hz, as
  neurokit2 does), per stretch of valid samples;
* :func:`decompose` — tonic and phasic components with neurokit2's ``eda_phasic``; the
  default ``method="highpass"`` is neurokit2's own default (and Biopac AcqKnowledge's): a
  zero-phase 2nd-order Butterworth at 0.05 Hz, phasic = high-pass, tonic = low-pass;
  ``"smoothmedian"`` (tonic = 4 s running median) is also available;
* :func:`detect_scr` — SCR onsets, peaks, amplitudes and rise times on the phasic part,
  with an **absolute** minimum amplitude (default 0.01 µS);
* :func:`process` — all of it, returning an :class:`EdaResult` with a ``summary()``.

Why an absolute amplitude threshold: neurokit2's ``eda_peaks`` (0.3.0, the version
installed here) keeps peaks higher than 10 % of the *largest* one, a relative threshold, so
on a signal without responses it keeps the noise: two minutes of 1e-6 µS noise give more
than a thousand "SCRs", and an exactly constant signal makes it raise a ``ValueError``.
Ours reports none in both cases (a test checks it; tests/test_docstrings.py checks these
claims about neurokit2 against the installed version), and its detections agree with
neurokit2's on clean signals (another test).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmlab.bio.quality import as_signal, mask_runs
from mmlab.errors import SignalError

__all__ = ["MIN_RATE_HZ", "MIN_DURATION_S", "SCR_AMPLITUDE_MIN", "PHASIC_METHODS", "clean",
           "decompose", "detect_scr", "process", "EdaResult"]

#: The lowest sampling rate accepted: SCRs rise over 1-3 s, so 1 sample per second is the floor.
MIN_RATE_HZ = 1.0
#: The shortest EDA signal accepted (the 0.05 Hz tonic filter needs some context).
MIN_DURATION_S = 10.0
#: Default minimum SCR amplitude in µS (0.01-0.05 µS are the usual choices).
SCR_AMPLITUDE_MIN = 0.01
#: Decomposition methods passed to neurokit2's ``eda_phasic``.
PHASIC_METHODS = ("highpass", "smoothmedian", "cvxeda", "sparseda")
#: Valid stretches shorter than this are left NaN by :func:`clean` and :func:`decompose`.
SEGMENT_MIN_S = 4.0


def _eda(x, fs, what="EDA"):
    return as_signal(x, fs, what, min_rate=MIN_RATE_HZ, min_duration_s=MIN_DURATION_S,
                     why_rate="skin-conductance responses last a few seconds")


def _runs(x: np.ndarray, fs: float) -> np.ndarray:
    runs = mask_runs(np.isfinite(x), max(int(SEGMENT_MIN_S * fs), 3))
    if len(runs) == 0:
        raise SignalError(f"EDA: no stretch of at least {SEGMENT_MIN_S:g} s without NaN")
    return runs


def _lib(call, what: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return call()
        except Exception as exc:
            raise SignalError(f"EDA: {what} failed ({type(exc).__name__}: {exc})") from exc


def clean(eda, fs) -> np.ndarray:
    """EDA low-passed at 3 Hz by neurokit2's ``eda_clean`` (unchanged at <= 6 Hz); NaN kept.

    Introduced in chapter 13_eda.
    """
    import neurokit2 as nk

    x, fs = _eda(eda, fs)
    out = np.full(len(x), np.nan)
    for a, b in _runs(x, fs):
        out[a:b] = _lib(lambda: nk.eda_clean(x[a:b], sampling_rate=fs, method="neurokit"),
                        f"neurokit2 eda_clean on samples {a}-{b}")
    return out


def decompose(eda, fs, method: str = "highpass", cleaned: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Split EDA into ``(tonic, phasic)`` arrays (µS) with neurokit2's ``eda_phasic``.

    Introduced in chapter 13_eda. The signal is first cleaned with :func:`clean` (unless
    ``cleaned``); each stretch between NaN gaps is decomposed on its own, and the gaps
    stay NaN. ``method``: ``"highpass"`` (default; 0.05 Hz zero-phase Butterworth, the
    neurokit2 and AcqKnowledge default), ``"smoothmedian"`` (4 s running median),
    ``"cvxeda"`` (needs the optional ``cvxopt`` package) or ``"sparseda"``.
    """
    import neurokit2 as nk

    if method not in PHASIC_METHODS:
        raise SignalError(f"unknown EDA decomposition {method!r}; choose one of {', '.join(PHASIC_METHODS)}")
    x, fs = _eda(eda, fs)
    if not cleaned:
        x = clean(x, fs)
    tonic = np.full(len(x), np.nan)
    phasic = np.full(len(x), np.nan)
    for a, b in _runs(x, fs):
        df = _lib(lambda: nk.eda_phasic(x[a:b], sampling_rate=fs, method=method),
                  f"neurokit2 eda_phasic(method={method!r}) on samples {a}-{b}")
        tonic[a:b] = df["EDA_Tonic"].to_numpy()
        phasic[a:b] = df["EDA_Phasic"].to_numpy()
    return tonic, phasic


_SCR_COLUMNS = ["onset", "peak", "onset_s", "peak_s", "amplitude", "rise_time_s"]


def detect_scr(phasic, fs, amplitude_min: float = SCR_AMPLITUDE_MIN, max_rise_s: float = 4.0,
               smooth_hz: float | None = 1.0) -> pd.DataFrame:
    """Skin-conductance responses in a phasic EDA signal; one row per SCR.

    Introduced in chapter 13_eda. The phasic signal is first smoothed by a zero-phase
    low-pass at ``smooth_hz`` (1 Hz; SCRs rise over 1-3 s, so this removes sensor noise,
    not responses; ``None`` skips it). Peaks are its local maxima whose prominence reaches
    the threshold (µS, absolute). Each SCR's onset is the lowest point between the
    previous peak (at most ``2 * max_rise_s`` back) and its peak; its amplitude is the
    rise from onset to peak. SCRs below the threshold or rising for longer than
    ``max_rise_s`` (4 s: slower bumps are the high-pass filter's recovery after a large
    response, not responses) are dropped. NaN gaps split the signal: no SCR is reported
    across one.

    **Noise gate.** The threshold is ``max(amplitude_min, noise_factor x noise level)``,
    where the noise level is the robust SD of the smoothed signal above 0.5 Hz (where SCRs
    have little energy): smoothed white noise peaks at up to ~14 times it, so two minutes
    of sensor noise give no SCR. A constant signal has no SCRs, and neither has noise
    below the threshold.

    **Clipping.** An SCR with a clipped sample between its onset and 1 s after its peak
    has its top cut off: its ``clipped`` flag is True and its ``amplitude`` NaN.

    Parameters
    ----------
    phasic : array_like
        The phasic EDA component in µS, shape ``(n,)`` (e.g. from :func:`decompose`);
        NaN marks missing samples.
    fs : float
        Sampling rate in Hz.
    amplitude_min : float, default :data:`SCR_AMPLITUDE_MIN`
        Smallest SCR amplitude (µS) reported, whatever the noise.
    max_rise_s : float, default 4.0
        Longest onset-to-peak rise (s) of an SCR.
    smooth_hz : float or None, default 1.0
        Cut-off of the zero-phase low-pass applied first; ``None`` skips it.
    clipped : array_like of bool, optional
        The EDA samples stuck at the amplifier's rail
        (:func:`mmlab.bio.quality.clipped_mask`; :func:`process` passes it).
    noise_factor : float or None, default :data:`NOISE_FACTOR`
        Multiple of the noise level an SCR must reach; ``None`` switches the gate off.

    Returns
    -------
    pandas.DataFrame
        One row per SCR: ``onset``, ``peak`` (sample indices), ``onset_s``, ``peak_s``
        (seconds from the first sample), ``amplitude`` (µS), ``rise_time_s`` and
        ``clipped``. ``table.attrs["threshold_us"]`` is the threshold used,
        ``table.attrs["noise_us"]`` the noise level.

    Raises
    ------
    SignalError
        A signal shorter than 10 s, integer samples (ADC counts), a median magnitude
        above 100 µS (not µS), or a non-positive ``amplitude_min``.

    Examples
    --------
    Two responses of 0.3 and 0.5 µS starting at 10 s and 35 s:

    >>> import numpy as np
    >>> from mmlab.synth.physio import scr_response
    >>> phasic = scr_response(np.array([10.0, 35.0]), np.array([0.3, 0.5]), 0.0, 20.0, 1200)
    >>> scr = detect_scr(phasic, 20.0)
    >>> scr[["onset_s", "amplitude"]].round(1).to_numpy().tolist()
    [[9.6, 0.3], [34.6, 0.5]]
    >>> len(detect_scr(np.zeros(1200), 20.0))
    0
    """
    from scipy.signal import find_peaks

    x, fs = as_signal(phasic, fs, "phasic EDA", min_rate=MIN_RATE_HZ,
                      why_rate="skin-conductance responses last a few seconds")
    if not (np.isfinite(amplitude_min) and amplitude_min > 0):
        raise SignalError(f"amplitude_min must be a positive number of µS, got {amplitude_min!r}")
    onsets, peaks = [], []
    back = max(int(round(2 * max_rise_s * fs)), 1)
    sos = None
    if smooth_hz is not None and fs > 2.5 * smooth_hz:
        from scipy.signal import butter

        sos = butter(2, smooth_hz, btype="lowpass", output="sos", fs=fs)
    for a, b in mask_runs(np.isfinite(x), 3):
        seg = x[a:b]
        if sos is not None and len(seg) > 15:
            from scipy.signal import sosfiltfilt

            seg = sosfiltfilt(sos, seg)
            x[a:b] = seg
        pk, _ = find_peaks(seg, prominence=amplitude_min)
        if len(pk) == 0:
            continue
        lo = np.maximum(np.concatenate([[0], pk[:-1]]), pk - back)
        on = np.empty(len(pk), dtype=np.int64)
        for k in range(len(pk)):  # a loop over SCRs (a few per minute), not over samples
            w = seg[lo[k]:pk[k] + 1]
            on[k] = lo[k] + len(w) - 1 - int(np.argmin(w[::-1]))  # the last lowest sample
        amp = seg[pk] - seg[on]
        keep = (amp >= amplitude_min) & (on < pk) & (pk - on <= max_rise_s * fs)
        onsets.append(on[keep] + a)
        peaks.append(pk[keep] + a)
    if not peaks:
        return pd.DataFrame({c: pd.Series(dtype=float if c not in ("onset", "peak") else np.int64)
                             for c in _SCR_COLUMNS})
    on = np.concatenate(onsets)
    pk = np.concatenate(peaks)
    return pd.DataFrame({"onset": on, "peak": pk, "onset_s": on / fs, "peak_s": pk / fs,
                         "amplitude": x[pk] - x[on], "rise_time_s": (pk - on) / fs})


@dataclass
class EdaResult:
    """What :func:`process` returns: components at the input rate and the SCR table."""

    fs: float
    tonic: np.ndarray
    phasic: np.ndarray
    scr: pd.DataFrame
    method: str

    @property
    def duration_s(self) -> float:
        return len(self.tonic) / self.fs

    def summary(self) -> dict:
        """SCL mean (µS), SCL slope (µS/min), SCR count, SCRs per minute, mean SCR amplitude (µS)."""
        t = np.arange(len(self.tonic)) / self.fs
        ok = np.isfinite(self.tonic)
        slope = float(np.polyfit(t[ok], self.tonic[ok], 1)[0] * 60) if ok.sum() > 2 else np.nan
        valid_min = ok.sum() / self.fs / 60
        n = len(self.scr)
        return {"scl_mean": float(np.nanmean(self.tonic)) if ok.any() else np.nan,
                "scl_slope": slope, "scr_count": n,
                "scr_per_min": n / valid_min if valid_min > 0 else np.nan,
                "scr_amp_mean": float(self.scr["amplitude"].mean()) if n else np.nan}


def process(eda, fs, method: str = "highpass", amplitude_min: float = SCR_AMPLITUDE_MIN) -> EdaResult:
    """Clean, decompose and detect SCRs in one call (chapter 13_eda)."""
    x, fs = _eda(eda, fs)
    tonic, phasic = decompose(x, fs, method=method)
    scr = detect_scr(phasic, fs, amplitude_min=amplitude_min)
    return EdaResult(fs=fs, tonic=tonic, phasic=phasic, scr=scr, method=method)
