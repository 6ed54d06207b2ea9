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

from mmlab.bio.quality import as_signal, clipped_mask, flat_mask, mask_runs
from mmlab.errors import SignalError
from mmlab.validate import check_positive

__all__ = ["MIN_RATE_HZ", "MIN_DURATION_S", "SCR_AMPLITUDE_MIN", "PHASIC_METHODS", "EDA_RANGE_US",
           "NOISE_FACTOR", "check_units", "clean", "decompose", "detect_scr", "process", "EdaResult"]

#: The lowest sampling rate accepted: SCRs rise over 1-3 s, so 1 sample per second is the floor.
MIN_RATE_HZ = 1.0
#: The shortest EDA signal accepted (the 0.05 Hz tonic filter needs some context).
MIN_DURATION_S = 10.0
#: Default minimum SCR amplitude in µS (0.01-0.05 µS are the usual choices).
SCR_AMPLITUDE_MIN = 0.01
#: Decomposition methods passed to neurokit2's ``eda_phasic``.
PHASIC_METHODS = ("highpass", "smoothmedian", "cvxeda", "sparseda")
#: Plausible skin conductance in µS: skin never conducts negatively, and a median above
#: 100 µS is not skin (raw converter counts, or nanosiemens).
EDA_RANGE_US = (0.0, 100.0)
#: An SCR must rise by at least this many times the signal's noise level (the robust SD of
#: the smoothed phasic signal above 0.5 Hz, where responses have little energy): peaks of
#: smoothed white noise reach about 8-14 times it, planted SCRs in the tests 20-1000 times.
NOISE_FACTOR = 15.0
#: Valid stretches shorter than this are left NaN by :func:`clean` and :func:`decompose`.
SEGMENT_MIN_S = 4.0


def check_units(x, what: str = "EDA") -> None:
    """Raise :class:`SignalError` unless ``x`` looks like skin conductance in µS.

    Introduced in chapter 13_eda. Integer samples are raw converter (ADC) counts, not µS;
    negative conductance does not exist (an offset, or a phasic signal passed as EDA); a
    median above 100 µS is not skin. NaN samples are ignored.
    """
    arr = np.asarray(x)
    if np.issubdtype(arr.dtype, np.integer):
        raise SignalError(f"{what}: integer samples ({arr.dtype}) look like raw ADC counts, not µS; "
                          "convert them with the device's transfer function first")
    v = np.asarray(arr, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return
    lo, hi = EDA_RANGE_US
    if v.min() < lo - 0.01:
        raise SignalError(f"{what}: negative skin conductance ({v.min():.3g} µS at the lowest); EDA must be "
                          "in µS from 0 (an offset? a phasic component passed as EDA?)")
    med = float(np.median(v))
    if med > hi:
        raise SignalError(f"{what}: median {med:.4g} is above the plausible {lo:g}-{hi:g} µS; raw ADC "
                          "counts or nS? convert to µS first")


def _eda(x, fs, what="EDA"):
    check_units(x, what)
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


_SCR_COLUMNS = ["onset", "peak", "onset_s", "peak_s", "amplitude", "rise_time_s", "clipped"]


def _noise_level(segments: list[np.ndarray], fs: float) -> float:
    """Robust SD (1.4826 MAD) of the smoothed phasic signal above 0.5 Hz (0 below 2 Hz)."""
    from scipy.signal import butter, sosfiltfilt

    if fs < 2.0:
        return 0.0
    sos = butter(2, min(0.5, 0.4 * fs / 2), btype="highpass", output="sos", fs=fs)
    res = [sosfiltfilt(sos, seg) for seg in segments if len(seg) > 15]
    if not res:
        return 0.0
    r = np.concatenate(res)
    return float(1.4826 * np.median(np.abs(r - np.median(r))))


def detect_scr(phasic, fs, amplitude_min: float = SCR_AMPLITUDE_MIN, max_rise_s: float = 4.0,
               smooth_hz: float | None = 1.0, clipped=None,
               noise_factor: float | None = NOISE_FACTOR) -> pd.DataFrame:
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
    has its top cut off: its ``clipped`` flag is True and its ``amplitude`` NaN. Clipped
    samples are those of ``clipped`` and the plateaus at the input's own extremes (a
    clipped EDA passed directly, not through :func:`decompose`).

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
    from scipy.signal import find_peaks, sosfiltfilt

    if np.issubdtype(np.asarray(phasic).dtype, np.integer):
        raise SignalError(f"phasic EDA: integer samples ({np.asarray(phasic).dtype}) look like raw ADC "
                          "counts, not µS; convert them first")
    x, fs = as_signal(phasic, fs, "phasic EDA", min_rate=MIN_RATE_HZ, min_duration_s=MIN_DURATION_S,
                      why_rate="skin-conductance responses last a few seconds")
    if np.isfinite(x).any() and np.nanmedian(np.abs(x)) > EDA_RANGE_US[1]:
        raise SignalError(f"phasic EDA: median magnitude {np.nanmedian(np.abs(x)):.4g} is above "
                          f"{EDA_RANGE_US[1]:g} µS; raw ADC counts or nS? convert to µS first")
    amplitude_min = check_positive(amplitude_min, "amplitude_min", unit="µS")
    # a plateau at the input's own extremes (a clipped signal passed directly) counts too
    own = clipped_mask(x, fs) & ~flat_mask(x, fs, 10.0) if np.isfinite(x).any() else np.zeros(len(x), bool)
    if clipped is None:
        clipped = own
    else:
        clipped = np.asarray(clipped, dtype=bool).ravel()
        if len(clipped) == len(x):
            clipped = clipped | own
    onsets, peaks = [], []
    back = max(int(round(2 * max_rise_s * fs)), 1)
    sos = None
    if smooth_hz is not None and fs > 2.5 * smooth_hz:
        from scipy.signal import butter

        sos = butter(2, smooth_hz, btype="lowpass", output="sos", fs=fs)
    runs = mask_runs(np.isfinite(x), 3)
    for a, b in runs:
        if sos is not None and b - a > 15:
            x[a:b] = sosfiltfilt(sos, x[a:b])
    noise = _noise_level([x[a:b] for a, b in runs], fs)
    threshold = amplitude_min
    if noise_factor is not None:
        threshold = max(amplitude_min, check_positive(noise_factor, "noise_factor") * noise)
    for a, b in runs:
        seg = x[a:b]
        pk, _ = find_peaks(seg, prominence=threshold)
        if len(pk) == 0:
            continue
        lo = np.maximum(np.concatenate([[0], pk[:-1]]), pk - back)
        on = np.empty(len(pk), dtype=np.int64)
        for k in range(len(pk)):  # a loop over SCRs (a few per minute), not over samples
            w = seg[lo[k]:pk[k] + 1]
            on[k] = lo[k] + len(w) - 1 - int(np.argmin(w[::-1]))  # the last lowest sample
        amp = seg[pk] - seg[on]
        keep = (amp >= threshold) & (on < pk) & (pk - on <= max_rise_s * fs)
        onsets.append(on[keep] + a)
        peaks.append(pk[keep] + a)
    dtypes = {"onset": np.int64, "peak": np.int64, "clipped": bool}
    if not peaks or not sum(len(p) for p in peaks):
        out = pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, float)) for c in _SCR_COLUMNS})
    else:
        on = np.concatenate(onsets)
        pk = np.concatenate(peaks)
        cut = np.zeros(len(pk), dtype=bool)
        if clipped is not None:
            mask = np.asarray(clipped, dtype=bool).ravel()
            if len(mask) != len(x):
                raise SignalError(f"detect_scr: clipped mask has {len(mask)} samples, the signal {len(x)}")
            cum = np.concatenate([[0], np.cumsum(mask)])
            stop = np.minimum(pk + int(round(fs)) + 1, len(x))
            cut = (cum[stop] - cum[on]) > 0
        amp = np.where(cut, np.nan, x[pk] - x[on])
        out = pd.DataFrame({"onset": on, "peak": pk, "onset_s": on / fs, "peak_s": pk / fs,
                            "amplitude": amp, "rise_time_s": (pk - on) / fs, "clipped": cut})
    out.attrs.update(noise_us=noise, threshold_us=threshold)
    return out


@dataclass
class EdaResult:
    """What :func:`process` returns: components at the input rate and the SCR table."""

    fs: float
    tonic: np.ndarray
    phasic: np.ndarray
    scr: pd.DataFrame
    method: str
    clipped_frac: float = 0.0

    @property
    def duration_s(self) -> float:
        return len(self.tonic) / self.fs

    def summary(self) -> dict:
        """SCL mean (µS), SCL slope (µS/min), SCR count, SCRs per minute, mean SCR amplitude
        (µS) and ``clipped_frac`` (the fraction of samples stuck at the amplifier's rail).
        When an SCR reached a clipped stretch the SCR figures are NaN (cut responses can
        merge or vanish, so neither their count nor their size can be trusted)."""
        t = np.arange(len(self.tonic)) / self.fs
        ok = np.isfinite(self.tonic)
        slope = float(np.polyfit(t[ok], self.tonic[ok], 1)[0] * 60) if ok.sum() > 2 else np.nan
        valid_min = ok.sum() / self.fs / 60
        n = len(self.scr)
        cut = bool(self.scr["clipped"].any()) if "clipped" in self.scr else False
        out = {"scl_mean": float(np.nanmean(self.tonic)) if ok.any() else np.nan,
               "scl_slope": slope, "scr_count": n,
               "scr_per_min": n / valid_min if valid_min > 0 else np.nan,
               "scr_amp_mean": float(self.scr["amplitude"].mean()) if n else np.nan,
               "clipped_frac": float(self.clipped_frac)}
        if cut:
            out.update(scr_count=np.nan, scr_per_min=np.nan, scr_amp_mean=np.nan)
        return out


def process(eda, fs, method: str = "highpass", amplitude_min: float = SCR_AMPLITUDE_MIN) -> EdaResult:
    """Clean, decompose and detect SCRs in one call (chapter 13_eda).

    The units are checked (:func:`check_units`); samples stuck at the signal's extremes
    (a saturated amplifier, :func:`mmlab.bio.quality.clipped_mask`) flag the SCRs that
    reach them (see :func:`detect_scr`) and give ``clipped_frac``.
    """
    x, fs = _eda(eda, fs)
    clip = clipped_mask(x, fs) & ~flat_mask(x, fs, 10.0) if np.isfinite(x).any() else np.zeros(len(x), bool)
    tonic, phasic = decompose(x, fs, method=method)
    scr = detect_scr(phasic, fs, amplitude_min=amplitude_min, clipped=clip)
    return EdaResult(fs=fs, tonic=tonic, phasic=phasic, scr=scr, method=method,
                     clipped_frac=float(clip.mean()))
