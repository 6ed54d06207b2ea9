"""Recording -> per-window feature table, vectorised (chapter 13_eda).

:func:`window_features` turns a :class:`~mmlab.recording.Recording` into one row per
window: ``subject``, ``start`` and ``end`` (window edges in seconds on the recording's
reference clock), ``label`` (from the phase annotations), feature columns named
``prefix__feature`` and quality columns named ``prefix__q_*``. The prefix is the modality
(``ecg``, ``eda``, ``resp``, ``audio``) unless you map your own prefixes to streams.

Features (units):

=========  ==========================================================================
ecg        ``hr_mean`` (bpm), ``sdnn``, ``rmssd`` (ms), ``pnn50`` (%) from the RR
           intervals whose two R-peaks lie in the window (neurokit2's ``hrv_time``
           conventions)
eda        ``scl_mean``, ``scl_std`` (tonic level, µS), ``scr_count`` (SCR peaks in the
           window), ``scr_amp_mean`` (µS)
resp       ``rate`` (breaths/min, from the intervals between inhalation onsets)
audio      ``rms`` (of the audio samples in the window), ``f0_mean`` (Hz, voiced
           frames), ``voiced_frac`` (of the pitch frames in the window)
bvp        ``hr_mean`` (pulse rate, bpm), ``hr_std`` (sd of the beat-to-beat rate, bpm),
           ``rmssd`` (ms) from the pulse intervals whose two systolic peaks lie in the
           window (neurokit2's ``ppg_clean`` + ``ppg_peaks``), ``log_amp`` (log sd of
           the cleaned BVP); quality ``q_beats`` (fraction of regular intervals)
temp       ``mean`` (°C), ``slope`` (°C/s, least squares on the reference clock)
acc        ``mag_mean``, ``mag_sd`` (g, magnitude of the 3 axes), ``log_motion`` (log
           sd of the sample-to-sample change in magnitude)
hr         ``mean``, ``std`` (bpm), ``slope`` (bpm/s) of a device's heart-rate stream
           (the E4's 1 Hz HR)
=========  ==========================================================================

The wrist modalities (``bvp``, ``temp``, ``acc``, ``hr``; an Empatica E4, WESAD's or
Stress-Predict's wrist, the synthetic ``stress_protocol`` wrist) are used when you name
them, e.g. ``streams={"bvp": "wrist_bvp", "temp": "wrist_temp", "acc": "wrist_acc",
"eda": "wrist_eda"}`` (wrist EDA at 4 Hz goes through the ``eda`` extractor); the default
selection stays ECG, EDA, respiration and audio.

Quality columns per prefix: ``q_missing`` (fraction of the window without a valid
sample: NaN, outside the stream, or no audio), ``q_flat``, ``q_clipped`` (fractions of the
window), ``q_ok`` (the features are trustworthy) and, for ECG, ``q_sqi`` (mean template
correlation of the window's beats, :func:`mmlab.bio.ecg.beat_sqi`). Where the data is bad
(coverage below ``min_coverage``, too few beats or breaths) a feature is NaN and ``q_ok``
False: nothing is invented. EDA windows with more than 1 % clipped samples, or an SCR
reaching a clipped stretch, get NaN SCR features and ``q_ok`` False (a saturated amplifier
cuts the responses); ECG beats and SCRs come from detectors that consult signal quality
(no R-peaks in noise blocks, an SCR threshold above the noise level), so a window of pure
noise has no beats (NaN HRV) and no SCRs.

**How it is fast.** The expensive work runs once per stream: cleaning, R-peak, SCR,
breath and pitch detection over the whole recording (:mod:`mmlab.bio`, i.e. neurokit2,
biosppy and Praat). Windows then only need sums over index ranges: cumulative sums of
the RR intervals, tonic samples or audio power, and ``searchsorted`` of the window edges
in the event times. Every window length and step costs about the same, including the
WESAD protocol (60 s windows every 0.25 s: 14 000 windows an hour).

**The reference.** :func:`reference_features` computes the same columns the slow way:
for every window, neurokit2 (and Praat) run on *that window's samples*, plus some context
on both sides so that filters settle (5 s for ECG, 60 s for EDA and respiration): ECG
``ecg_clean`` → ``ecg_peaks`` → ``hrv_time`` on the peaks inside the window; EDA
``eda_clean`` → ``eda_phasic`` → :func:`mmlab.bio.eda.detect_scr`, SCL from the window's
tonic samples; respiration ``rsp_clean`` → ``rsp_peaks`` → intervals between the troughs
inside the window; audio: RMS of the window's samples, and Praat's pitch of every clip
overlapping the window (analysed whole: a clip is its own context), frames centred in the
window; BVP ``ppg_clean`` → ``ppg_peaks`` on the window plus 10 s each side (exactly the
fast path's pulses without ``correct_artifacts``; neurokit2's artefact correction looks at
the whole series it gets, so with it a few windows differ); temperature, ACC and HR with
numpy on the window's samples. A test checks that the fast table matches it within 1 % (relative) on every
feature where both are defined; ``mmlab bench features`` times both (on a full synthetic
hour the largest deviation is about 1e-6, floating-point rounding of the filters).

A stream with several channels (e.g. MIT-BIH's two ECG leads) contributes its first
channel; map a prefix to another stream to use others.

Clocks: windows are on the reference clock. Streams of other devices are mapped with
``clocks`` (``{device: {"offset_s": ..., "drift_ppm": ...}}``, the format of synthetic
recordings' ``meta["clock_truth"]``, or ``"truth"`` to use that); by default every device
clock is taken to be the reference clock. Estimating the mapping is :mod:`mmlab.align`'s
job (chapter 20): pass its estimate, or align the recording first.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from mmlab.errors import SchemaError, SignalError
from mmlab.recording import REFERENCE_CLOCK, Clock, Cohort, Recording, Stream
from mmlab.validate import check_number, check_positive, check_rate

__all__ = ["FEATURES", "window_grid", "window_labels", "select_streams", "window_features", "features_at",
           "reference_features", "window_stats", "compare_tables", "feature_columns", "quality_columns",
           "WindowFeatures", "EcgWindows", "EdaWindows", "RespWindows", "AudioWindows",
           "BvpWindows", "TempWindows", "AccWindows", "HrWindows"]

#: Feature names per modality (columns are ``prefix__name``).
FEATURES = {
    "ecg": ("hr_mean", "sdnn", "rmssd", "pnn50"),
    "eda": ("scl_mean", "scl_std", "scr_count", "scr_amp_mean"),
    "resp": ("rate",),
    "audio": ("rms", "f0_mean", "voiced_frac"),
    "bvp": ("hr_mean", "hr_std", "rmssd", "log_amp"),
    "temp": ("mean", "slope"),
    "acc": ("mag_mean", "mag_sd", "log_motion"),
    "hr": ("mean", "std", "slope"),
}
#: Quality columns every prefix gets (ECG also gets ``q_sqi``).
QUALITY = ("q_missing", "q_flat", "q_clipped", "q_ok")
_META = ("subject", "start", "end", "label")
#: Seconds of context on each side of a window in the per-window reference.
#: (Audio: Praat analyses every clip that overlaps a window in full.)
REFERENCE_CONTEXT_S = {"ecg": 5.0, "eda": 60.0, "resp": 60.0, "bvp": 10.0}


# ------------------------------------------------------------------------- windows
def window_grid(t_start: float, t_end: float, window_s: float, step_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends of the windows of ``window_s`` seconds every ``step_s`` seconds that
    fit in ``[t_start, t_end]``. Introduced in chapter 13_eda."""
    window_s = check_positive(window_s, "window_s", unit="seconds")
    step_s = check_positive(step_s, "step_s", unit="seconds")
    t_start = check_number(t_start, "t_start", unit="seconds")
    t_end = check_number(t_end, "t_end", unit="seconds")
    span = t_end - t_start
    if span + 1e-9 < window_s:
        raise SignalError(f"the recording spans {span:.3g} s, shorter than one {window_s:g} s window")
    n = int(math.floor((span - window_s) / step_s + 1e-9)) + 1
    starts = t_start + step_s * np.arange(n)
    return starts, starts + window_s


def window_labels(rec: Recording, starts, ends, kind: str = "phase", rule: str = "majority") -> np.ndarray:
    """One label per window from the ``kind`` annotations (chapter 13_eda).

    The rules of :func:`mmlab.align.windows.window_labels` (one implementation for the
    whole package): ``"majority"`` — the label covering more than half of the window
    (``""`` when none does, e.g. a window straddling two phases equally); ``"centre"`` —
    the label at the window's centre; ``"pure"`` — the label only if it covers the whole
    window; ``"any"`` — every label touching the window, joined with ``"+"``.
    """
    from mmlab.align.windows import window_labels as _labels

    rule = "centre" if rule == "center" else rule
    labels, _ = _labels(rec.annotations, np.asarray(starts, dtype=float), np.asarray(ends, dtype=float),
                        label_rule=rule, kind=kind)
    return np.asarray(labels, dtype=object)


# ------------------------------------------------------------------------- helpers
def _sample_index(stream: Stream, t_dev) -> np.ndarray:
    """Index of the first sample at or after device time ``t_dev`` (clipped to [0, n])."""
    i = np.ceil((np.asarray(t_dev, dtype=float) - stream.start) * stream.rate - 1e-7)
    return np.clip(i, 0, stream.n_samples).astype(np.int64)


def _csum(x: np.ndarray) -> np.ndarray:
    """Cumulative sum with a leading 0, so ``c[j] - c[i]`` sums ``x[i:j]``."""
    out = np.empty(len(x) + 1, dtype=np.float64)
    out[0] = 0.0
    np.cumsum(x, out=out[1:])
    return out


def _range_sum(c: np.ndarray, i0, i1) -> np.ndarray:
    return c[i1] - c[np.minimum(i0, i1)]


# ------------------------------------------------------------------------- extractors
class _Extractor:
    """Per-stream preparation once, then vectorised window features and a slow reference."""

    modality = ""
    features: tuple[str, ...] = ()
    extra_quality: tuple[str, ...] = ()

    def __init__(self, prefix: str, streams: list[Stream], clock: Clock, min_coverage: float):
        self.prefix = prefix
        self.streams = streams
        self.clock = clock
        self.min_coverage = min_coverage
        self.dead = ""  # why the whole stream yields NaN (all NaN, flat)

    # names
    def columns(self) -> list[str]:
        return [f"{self.prefix}__{f}" for f in self.features]

    def quality_names(self) -> list[str]:
        return [f"{self.prefix}__{q}" for q in QUALITY[:-1] + self.extra_quality + QUALITY[-1:]]

    def prepare(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self, starts: np.ndarray, ends: np.ndarray) -> dict[str, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def reference(self, starts: np.ndarray, ends: np.ndarray) -> dict[str, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def _nan_table(self, n: int, missing: float = 1.0, flat: float = 0.0) -> dict[str, np.ndarray]:
        out = {c: np.full(n, np.nan) for c in self.columns()}
        out[f"{self.prefix}__q_missing"] = np.full(n, missing)
        out[f"{self.prefix}__q_flat"] = np.full(n, flat)
        out[f"{self.prefix}__q_clipped"] = np.zeros(n)
        for q in self.extra_quality:
            out[f"{self.prefix}__{q}"] = np.full(n, np.nan)
        out[f"{self.prefix}__q_ok"] = np.zeros(n, dtype=bool)
        return out


class _SampledExtractor(_Extractor):
    """One regular single-channel stream with NaN/flat/clipped masks."""

    min_rate = 0.0
    why_rate = ""
    flat_s = 1.0
    segment_min_s = 2.0    # a stream without a valid stretch this long yields NaN features
    min_duration_s = 0.0
    clip_s: float | None = None  # a plateau at the extreme this long is clipping (None: 3 samples)

    def _dead_table(self, starts, ends) -> dict[str, np.ndarray]:
        out, _ = self._quality(starts, ends)
        for c in self.columns():
            out[c] = np.full(len(starts), np.nan)
        for q in self.extra_quality:
            out[f"{self.prefix}__{q}"] = np.full(len(starts), np.nan)
        out[f"{self.prefix}__q_ok"] = np.zeros(len(starts), dtype=bool)
        return out

    def _load(self) -> np.ndarray:
        from mmlab.bio.quality import as_signal, clipped_mask, flat_mask, mask_runs

        if len(self.streams) != 1:
            raise SchemaError(f"{self.prefix}: one {self.modality} stream expected, got "
                              f"{[s.name for s in self.streams]}")
        s = self.streams[0]
        if not s.is_regular:
            raise SchemaError(f"{self.modality} stream {s.name!r} is irregular; a sampled signal is needed")
        what = f"{self.modality.upper()} stream {s.name!r}"
        if s.data.ndim == 2 and 0 < s.data.shape[0] < s.data.shape[1]:
            raise SchemaError(f"{what} has {s.data.shape[1]} channels of {s.data.shape[0]} sample(s): "
                              "(channels, samples)? a Stream holds (samples, channels); pass data.T")
        x, fs = as_signal(self._signal(s, what), s.rate, what,
                          min_rate=self.min_rate, why_rate=self.why_rate, allow_all_nan=True)
        self.stream, self.x, self.fs = s, x, fs
        self.finite = np.isfinite(x)
        any_finite = bool(self.finite.any())
        if any_finite:
            self._check_values(x[self.finite], what)
        run = 3 if self.clip_s is None else max(3, int(math.ceil(self.clip_s * fs)))
        self.flat = flat_mask(x, fs, self.flat_s) if any_finite else np.zeros(len(x), bool)
        self.clipped = (clipped_mask(x, fs, run) & ~self.flat) if any_finite else np.zeros(len(x), bool)
        self.ok = self.finite & ~self.flat
        # cumulative counts only where needed (an all-good stream has none to count)
        self.c_good = None if self.ok.all() else _csum(self.ok)
        self.c_flat = _csum(self.flat) if self.flat.any() else None
        self.c_clip = _csum(self.clipped) if self.clipped.any() else None
        if not any_finite:
            self.dead = "all NaN"
        elif not self.ok.any():
            self.dead = "flat"
        elif len(x) / fs < self.min_duration_s or not len(mask_runs(self.ok, int(self.segment_min_s * fs))):
            self.dead = "no usable stretch long enough"
        return x

    def _signal(self, s: Stream, what: str) -> np.ndarray:
        """The one channel this extractor analyses (default: the stream's first)."""
        return s.data[:, 0] if s.data.ndim == 2 else s.data

    def _check_values(self, x: np.ndarray, what: str) -> None:
        """Raise on values in implausible units (``x``: the finite samples)."""

    def _ranges(self, starts, ends):
        s = self.stream
        return (_sample_index(s, self.clock.to_device(starts)), _sample_index(s, self.clock.to_device(ends)))

    def _count(self, c: np.ndarray | None, i0, i1, default) -> np.ndarray:
        if c is None:
            return default
        return _range_sum(c, i0, i1)

    def _quality(self, starts, ends) -> tuple[dict, np.ndarray]:
        i0, i1 = self._ranges(starts, ends)
        expected = np.maximum(np.round((ends - starts) * self.clock.scale * self.fs), 1.0)
        good = self._count(self.c_good, i0, i1, (i1 - i0).astype(float))
        zero = np.zeros(len(starts))
        out = {f"{self.prefix}__q_missing": np.clip(1.0 - good / expected, 0.0, 1.0),
               f"{self.prefix}__q_flat": np.clip(self._count(self.c_flat, i0, i1, zero) / expected, 0.0, 1.0),
               f"{self.prefix}__q_clipped": np.clip(self._count(self.c_clip, i0, i1, zero) / expected, 0.0, 1.0)}
        return out, good / expected

    def _events_ref(self, idx: np.ndarray) -> np.ndarray:
        """Sample indices of events -> reference-clock seconds."""
        return self.clock.to_reference(self.stream.start + idx / self.fs)

    def _interval_ok(self, ev: np.ndarray) -> np.ndarray:
        """True for intervals between consecutive events with only valid samples in between."""
        bad = ~self.ok | self.clipped
        if len(ev) < 2 or not bad.any():
            return np.ones(max(len(ev) - 1, 0), dtype=bool)
        cum = np.concatenate([[0], np.cumsum(bad)])
        return (cum[ev[1:] + 1] - cum[ev[:-1]]) == 0

    def _context_slice(self, a: float, b: float, context_s: float) -> tuple[np.ndarray, int]:
        i0, i1 = self._ranges(np.array([a - context_s, a]), np.array([b + context_s, b]))
        lo, hi = int(i0[0]), int(i1[0])
        return self.x[lo:hi], lo


class _IntervalStats:
    """Window statistics of an event series: intervals (ms) whose two events lie in a window."""

    def __init__(self, t_ref: np.ndarray, interval_ms: np.ndarray, ok: np.ndarray):
        self.t = t_ref
        rr = np.where(ok, interval_ms, 0.0)
        self.center = float(np.mean(interval_ms[ok])) if ok.any() else 0.0
        d = np.where(ok, interval_ms - self.center, 0.0)
        self.c_n = _csum(ok.astype(np.float64))
        self.c_d = _csum(d)
        self.c_d2 = _csum(d * d)
        self.c_ms = _csum(rr)
        okd = ok[1:] & ok[:-1]
        sd = np.where(okd, np.diff(interval_ms), 0.0) if len(interval_ms) > 1 else np.zeros(0)
        self.c_m = _csum(okd.astype(np.float64))
        self.c_sd2 = _csum(sd * sd)
        self.c_50 = _csum((np.abs(sd) > 50) & okd)

    def window(self, starts, ends) -> dict[str, np.ndarray]:
        n_int = max(len(self.t) - 1, 0)
        if n_int < 1:
            nan = np.full(len(starts), np.nan)
            return {"n": np.zeros(len(starts)), "mean": nan, "sd": nan, "rmssd": nan,
                    "pnn50": nan, "covered_s": np.zeros(len(starts))}
        k0 = np.searchsorted(self.t, starts, side="left")
        k1 = np.searchsorted(self.t, ends, side="left")
        # intervals k0 .. k1-2 (both events in the window)
        i0 = np.minimum(k0, n_int)
        i1 = np.clip(k1 - 1, i0, n_int)
        n = _range_sum(self.c_n, i0, i1)
        sd_ = _range_sum(self.c_d, i0, i1)
        sd2 = _range_sum(self.c_d2, i0, i1)
        # successive differences k0 .. k1-3 (three events in the window)
        d0 = np.minimum(k0, n_int - 1)
        d1 = np.clip(k1 - 2, d0, n_int - 1)
        m = _range_sum(self.c_m, d0, d1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.center + sd_ / n
            var = (sd2 - sd_ * sd_ / n) / (n - 1)
            rmssd = np.sqrt(_range_sum(self.c_sd2, d0, d1) / m)
            pnn50 = 100.0 * _range_sum(self.c_50, d0, d1) / (m + 1)
        return {"n": n, "mean": mean, "sd": np.sqrt(np.maximum(var, 0.0)), "rmssd": rmssd,
                "pnn50": pnn50, "covered_s": _range_sum(self.c_ms, i0, i1) / 1000.0}


class EcgWindows(_SampledExtractor):
    """ECG: R-peaks once (neurokit2 by default), HRV per window from interval cumsums."""

    modality = "ecg"
    features = FEATURES["ecg"]
    extra_quality = ("q_sqi",)
    min_rate = 100.0
    why_rate = "R-peaks need about 100 samples per second"
    flat_s = 0.5
    segment_min_s = 2.0     # mmlab.bio.ecg.SEGMENT_MIN_S
    min_duration_s = 3.0    # mmlab.bio.ecg.MIN_DURATION_S
    min_intervals = 3
    sqi_min = 0.5

    def __init__(self, *args, method: str = "neurokit", **kwargs):
        super().__init__(*args, **kwargs)
        self.method = method

    def prepare(self) -> None:
        from mmlab.bio import ecg

        x = self._load()
        self.peaks = np.zeros(0, dtype=np.int64)
        if self.dead:
            return
        self.peaks, cleaned = ecg._detect(x, self.fs, self.method, self.ok)
        self.t_beats = self._events_ref(self.peaks)
        rr_ms = np.diff(self.peaks) / self.fs * 1000.0
        self.stats = _IntervalStats(self.t_beats, rr_ms, self._interval_ok(self.peaks))
        sqi = ecg.beat_sqi(cleaned, self.fs, self.peaks, cleaned=True) if len(self.peaks) else np.zeros(0)
        self.c_sqi_n = _csum(np.isfinite(sqi).astype(float))
        self.c_sqi = _csum(np.nan_to_num(sqi))

    def compute(self, starts, ends):
        if self.dead:
            return self._dead_table(starts, ends)
        out, coverage = self._quality(starts, ends)
        st = self.stats.window(starts, ends)
        good = ((st["n"] >= self.min_intervals) & (coverage >= self.min_coverage)
                & (st["covered_s"] >= self.min_coverage * (ends - starts)))
        p = self.prefix
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"{p}__hr_mean"] = np.where(good, 60000.0 / st["mean"], np.nan)
        out[f"{p}__sdnn"] = np.where(good, st["sd"], np.nan)
        out[f"{p}__rmssd"] = np.where(good & (st["rmssd"] == st["rmssd"]), st["rmssd"], np.nan)
        out[f"{p}__pnn50"] = np.where(good & (st["pnn50"] == st["pnn50"]), st["pnn50"], np.nan)
        k0 = np.searchsorted(self.t_beats, starts, side="left")
        k1 = np.searchsorted(self.t_beats, ends, side="left")
        with np.errstate(invalid="ignore", divide="ignore"):
            sqi = _range_sum(self.c_sqi, k0, k1) / _range_sum(self.c_sqi_n, k0, k1)
        out[f"{p}__q_sqi"] = sqi
        out[f"{p}__q_ok"] = np.isfinite(out[f"{p}__hr_mean"]) & (sqi >= self.sqi_min)
        return out

    def reference(self, starts, ends):
        import neurokit2 as nk

        from mmlab.bio import ecg

        res = {c: np.full(len(starts), np.nan) for c in self.columns()}
        if self.dead:
            return res
        ctx = REFERENCE_CONTEXT_S["ecg"]
        for w, (a, b) in enumerate(zip(starts, ends)):
            seg, lo = self._context_slice(a, b, ctx)
            if len(seg) < 3 * self.fs or np.isnan(seg).any():
                continue
            with _quiet_nk():
                pk, _ = ecg._detect_segment(seg, self.fs, self.method)
            pk = pk + lo
            t = self._events_ref(pk)
            pk = pk[(t >= a) & (t < b)]
            if len(pk) < self.min_intervals + 1:
                continue
            with _quiet_nk():
                h = nk.hrv_time(pk, sampling_rate=self.fs)
            res[f"{self.prefix}__hr_mean"][w] = 60000.0 / h["HRV_MeanNN"].iloc[0]
            res[f"{self.prefix}__sdnn"][w] = h["HRV_SDNN"].iloc[0]
            res[f"{self.prefix}__rmssd"][w] = h["HRV_RMSSD"].iloc[0]
            res[f"{self.prefix}__pnn50"][w] = h["HRV_pNN50"].iloc[0]
        return res


class EdaWindows(_SampledExtractor):
    """EDA: decomposition and SCRs once; SCL means and SCR counts from cumsums/searchsorted."""

    modality = "eda"
    features = FEATURES["eda"]
    min_rate = 1.0
    why_rate = "skin-conductance responses last a few seconds"
    flat_s = 10.0
    segment_min_s = 4.0     # mmlab.bio.eda.SEGMENT_MIN_S
    min_duration_s = 10.0   # mmlab.bio.eda.MIN_DURATION_S

    def __init__(self, *args, method: str = "highpass", amplitude_min: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.method = method
        self.amplitude_min = amplitude_min

    #: A window with more than this fraction of clipped samples, or with an SCR reaching a
    #: clipped stretch, gets NaN SCR features and ``q_ok`` False (cut responses).
    clip_max = 0.01

    def _scr_kwargs(self):
        return {} if self.amplitude_min is None else {"amplitude_min": self.amplitude_min}

    def _load(self) -> np.ndarray:
        from mmlab.bio import eda

        s = self.streams[0] if len(self.streams) == 1 else None
        if s is not None:
            eda.check_units(s.data, f"EDA stream {s.name!r}")
        return super()._load()

    def prepare(self) -> None:
        from mmlab.bio import eda

        x = self._load()
        if self.dead:
            return
        self.tonic, phasic = eda.decompose(x, self.fs, method=self.method)
        scr = eda.detect_scr(phasic, self.fs, clipped=self.clipped, **self._scr_kwargs())
        self.t_scr = self._events_ref(scr["peak"].to_numpy())
        self.c_amp = _csum(np.nan_to_num(scr["amplitude"].to_numpy(dtype=float)))
        self.c_cut = _csum(scr["clipped"].to_numpy(dtype=float))
        self.threshold = float(scr.attrs["threshold_us"])  # the noise-gated SCR threshold
        ok = np.isfinite(self.tonic)
        self.center = float(np.mean(self.tonic[ok])) if ok.any() else 0.0
        d = np.where(ok, self.tonic - self.center, 0.0)
        self.c_t = _csum(d)
        self.c_t2 = _csum(d * d)
        self.c_tn = _csum(ok.astype(float))

    def compute(self, starts, ends):
        if self.dead:
            return self._dead_table(starts, ends)
        out, coverage = self._quality(starts, ends)
        i0, i1 = self._ranges(starts, ends)
        cnt = _range_sum(self.c_tn, i0, i1)
        s1 = _range_sum(self.c_t, i0, i1)
        s2 = _range_sum(self.c_t2, i0, i1)
        good = coverage >= self.min_coverage
        k0 = np.searchsorted(self.t_scr, starts, side="left")
        k1 = np.searchsorted(self.t_scr, ends, side="left")
        nscr = (k1 - k0).astype(float)
        p = self.prefix
        cut = (_range_sum(self.c_cut, k0, k1) > 0) | (out[f"{p}__q_clipped"] > self.clip_max)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"{p}__scl_mean"] = np.where(good, self.center + s1 / cnt, np.nan)
            out[f"{p}__scl_std"] = np.where(good, np.sqrt(np.maximum(s2 / cnt - (s1 / cnt) ** 2, 0.0)), np.nan)
            out[f"{p}__scr_count"] = np.where(good & ~cut, nscr, np.nan)
            out[f"{p}__scr_amp_mean"] = np.where(good & ~cut & (nscr > 0),
                                                 _range_sum(self.c_amp, k0, k1) / nscr, np.nan)
        out[f"{p}__q_ok"] = good & ~cut & (out[f"{p}__q_flat"] < 0.5)
        return out

    def reference(self, starts, ends):
        import neurokit2 as nk

        from mmlab.bio import eda

        res = {c: np.full(len(starts), np.nan) for c in self.columns()}
        if self.dead:
            return res
        if not hasattr(self, "threshold"):  # the whole stream's noise gate, as the fast path uses
            self.prepare()
        scr_kwargs = {"amplitude_min": self.threshold, "noise_factor": None}
        ctx = REFERENCE_CONTEXT_S["eda"]
        for w, (a, b) in enumerate(zip(starts, ends)):
            seg, lo = self._context_slice(a, b, ctx)
            if np.isnan(seg).any() or len(seg) < 10 * self.fs:
                continue
            with _quiet_nk():
                cleaned = nk.eda_clean(seg, sampling_rate=self.fs, method="neurokit")
                comp = nk.eda_phasic(cleaned, sampling_rate=self.fs, method=self.method)
            scr = eda.detect_scr(comp["EDA_Phasic"].to_numpy(), self.fs, **scr_kwargs)
            j0, j1 = (int(v[0]) - lo for v in self._ranges(np.array([a]), np.array([b])))
            pk = scr["peak"].to_numpy()
            inside = (pk >= j0) & (pk < j1)
            flags = np.zeros(j1 - j0)
            flags[pk[inside] - j0] = 1
            amps = np.zeros(j1 - j0)
            amps[pk[inside] - j0] = scr["amplitude"].to_numpy()[inside]
            frame = pd.DataFrame({"EDA_Tonic": comp["EDA_Tonic"].to_numpy()[j0:j1],
                                  "SCR_Peaks": flags, "SCR_Amplitude": amps})
            with _quiet_nk():
                r = nk.eda_intervalrelated(frame, sampling_rate=self.fs)
            res[f"{self.prefix}__scl_mean"][w] = float(np.nanmean(frame["EDA_Tonic"]))
            res[f"{self.prefix}__scl_std"][w] = float(r["EDA_Tonic_SD"].iloc[0])
            res[f"{self.prefix}__scr_count"][w] = float(r["SCR_Peaks_N"].iloc[0])
            res[f"{self.prefix}__scr_amp_mean"][w] = float(r["SCR_Peaks_Amplitude_Mean"].iloc[0])
        return res


class RespWindows(_SampledExtractor):
    """Respiration: breaths once (neurokit2), breathing rate per window from interval cumsums."""

    modality = "resp"
    features = FEATURES["resp"]
    min_rate = 10.0
    why_rate = "the 3 Hz low-pass of neurokit2's rsp_clean"
    flat_s = 2.0
    segment_min_s = 10.0    # mmlab.bio.resp.SEGMENT_MIN_S
    min_duration_s = 10.0
    min_intervals = 3

    def prepare(self) -> None:
        from mmlab.bio import resp

        x = self._load()
        if self.dead:
            return
        troughs, _ = resp._detect(x, self.fs, ok=self.ok)
        self.t_breaths = self._events_ref(troughs)
        iv = np.diff(troughs) / self.fs * 1000.0
        self.stats = _IntervalStats(self.t_breaths, iv, self._interval_ok(troughs))

    def compute(self, starts, ends):
        if self.dead:
            return self._dead_table(starts, ends)
        out, coverage = self._quality(starts, ends)
        st = self.stats.window(starts, ends)
        good = (st["n"] >= self.min_intervals) & (coverage >= self.min_coverage)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"{self.prefix}__rate"] = np.where(good, 60000.0 / st["mean"], np.nan)
        out[f"{self.prefix}__q_ok"] = np.isfinite(out[f"{self.prefix}__rate"])
        return out

    def reference(self, starts, ends):
        import neurokit2 as nk

        res = {c: np.full(len(starts), np.nan) for c in self.columns()}
        if self.dead:
            return res
        ctx = REFERENCE_CONTEXT_S["resp"]
        for w, (a, b) in enumerate(zip(starts, ends)):
            seg, lo = self._context_slice(a, b, ctx)
            if np.isnan(seg).any() or len(seg) < 10 * self.fs:
                continue
            with _quiet_nk():
                cleaned = nk.rsp_clean(seg, sampling_rate=self.fs, method="khodadad2018")
                _, info = nk.rsp_peaks(cleaned, sampling_rate=self.fs, method="khodadad2018")
            tr = np.asarray(info["RSP_Troughs"], dtype=np.int64) + lo
            t = self._events_ref(tr)
            tr = tr[(t >= a) & (t < b)]
            if len(tr) < self.min_intervals + 1:
                continue
            with _quiet_nk():
                period = nk.signal_period(tr, sampling_rate=self.fs)
            res[f"{self.prefix}__rate"][w] = 60.0 / float(np.mean(period))
        return res


class AudioWindows(_Extractor):
    """Audio clips: power cumsums per clip, Praat pitch frames once per clip."""

    modality = "audio"
    features = FEATURES["audio"]
    pitch_floor, pitch_ceiling, time_step = 75.0, 600.0, 0.01

    def _pitch(self, x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
        import parselmouth

        if len(x) < int(3 / self.pitch_floor * fs) + 2:
            return np.zeros(0), np.zeros(0)
        snd = parselmouth.Sound(np.ascontiguousarray(x, dtype=np.float64), sampling_frequency=fs)
        p = snd.to_pitch_ac(time_step=self.time_step, pitch_floor=self.pitch_floor,
                            pitch_ceiling=self.pitch_ceiling)
        return np.asarray(p.xs()), np.asarray(p.selected_array["frequency"])

    def prepare(self) -> None:
        self.clips = []
        for s in self.streams:
            if not s.is_regular:
                raise SchemaError(f"audio stream {s.name!r} is irregular; audio needs a sampling rate")
            fs = check_rate(s.rate, f"audio stream {s.name!r}", min_rate=1000.0, why="speech needs kHz sampling")
            raw = s.data[:, 0] if s.data.ndim == 2 else s.data
            x = np.asarray(raw, dtype=np.float64)
            finite = np.isfinite(x)
            if np.issubdtype(np.asarray(raw).dtype, np.integer):
                raise SignalError(f"audio stream {s.name!r}: integer samples ({raw.dtype}) are PCM codes; "
                                  "convert them with mmlab.voice.pcm_to_float first")
            if finite.any() and np.max(np.abs(x[finite])) > 1.001:
                raise SignalError(f"audio stream {s.name!r}: samples reach {np.max(np.abs(x[finite])):.4g}, "
                                  "outside [-1, 1] (full scale); integer PCM stored as floats?")
            x0 = np.where(finite, x, 0.0)
            t_fr, f0 = self._pitch(x0, fs) if finite.all() else (np.zeros(0), np.zeros(0))
            t_fr_ref = self.clock.to_reference(s.start + t_fr)
            voiced = f0 > 0
            self.clips.append({
                "stream": s, "fs": fs, "x": x, "c_p": _csum(x0 * x0), "c_n": _csum(finite.astype(float)),
                "t_fr": t_fr_ref, "c_fr": _csum(np.ones(len(f0))), "c_v": _csum(voiced.astype(float)),
                "c_f0": _csum(np.where(voiced, f0, 0.0)),
            })
        if not self.clips:
            self.dead = "no audio"

    def compute(self, starts, ends):
        n = len(starts)
        if self.dead:
            return self._nan_table(n)
        power = np.zeros(n)
        count = np.zeros(n)
        frames = np.zeros(n)
        voiced = np.zeros(n)
        f0sum = np.zeros(n)
        for c in self.clips:
            i0 = _sample_index(c["stream"], self.clock.to_device(starts))
            i1 = _sample_index(c["stream"], self.clock.to_device(ends))
            power += _range_sum(c["c_p"], i0, i1)
            count += _range_sum(c["c_n"], i0, i1)
            k0 = np.searchsorted(c["t_fr"], starts, side="left")
            k1 = np.searchsorted(c["t_fr"], ends, side="left")
            frames += _range_sum(c["c_fr"], k0, k1)
            voiced += _range_sum(c["c_v"], k0, k1)
            f0sum += _range_sum(c["c_f0"], k0, k1)
        fs = self.clips[0]["fs"]
        expected = np.maximum((ends - starts) * self.clock.scale * fs, 1.0)
        p = self.prefix
        with np.errstate(invalid="ignore", divide="ignore"):
            out = {f"{p}__rms": np.where(count > 0, np.sqrt(power / count), np.nan),
                   f"{p}__f0_mean": np.where(voiced > 0, f0sum / voiced, np.nan),
                   f"{p}__voiced_frac": np.where(frames > 0, voiced / frames, np.nan)}
        out[f"{p}__q_missing"] = np.clip(1.0 - count / expected, 0.0, 1.0)
        out[f"{p}__q_flat"] = np.zeros(n)
        out[f"{p}__q_clipped"] = np.zeros(n)
        out[f"{p}__q_ok"] = np.isfinite(out[f"{p}__f0_mean"])
        return out

    def reference(self, starts, ends):
        p = self.prefix
        res = {c: np.full(len(starts), np.nan) for c in self.columns()}
        for w, (a, b) in enumerate(zip(starts, ends)):
            power = count = 0.0
            f0s = []
            frames = 0
            for c in self.clips:
                s = c["stream"]
                j0, j1 = (int(v[0]) for v in (_sample_index(s, self.clock.to_device([a])),
                                              _sample_index(s, self.clock.to_device([b]))))
                if j1 <= j0:
                    continue
                seg = c["x"][j0:j1]
                power += float(np.sum(seg * seg))
                count += len(seg)
                # Praat on the whole clip (its context), frames centred in the window
                t_fr, f0 = self._pitch(c["x"], c["fs"])
                t_fr = self.clock.to_reference(s.start + t_fr)
                f0 = f0[(t_fr >= a) & (t_fr < b)]
                frames += len(f0)
                f0s.append(f0[f0 > 0])
            if count:
                res[f"{p}__rms"][w] = math.sqrt(power / count)
            v = np.concatenate(f0s) if f0s else np.zeros(0)
            if len(v):
                res[f"{p}__f0_mean"][w] = float(np.mean(v))
            if frames:
                res[f"{p}__voiced_frac"][w] = len(v) / frames
        return res


class _LevelStats:
    """Window mean, sd and least-squares slope of a sampled series from cumulative sums.

    Sums run over the valid samples (``ok``) of centred values and centred sample indices
    (so that range differences of the running sums keep their precision over an hour).
    """

    def __init__(self, x: np.ndarray, ok: np.ndarray):
        ok = np.asarray(ok, dtype=bool)
        self.center = float(np.mean(x[ok])) if ok.any() else 0.0
        u = np.arange(len(x), dtype=np.float64) - len(x) / 2.0
        xc = np.where(ok, x - self.center, 0.0)
        u = np.where(ok, u, 0.0)
        self.c_n = _csum(ok.astype(np.float64))
        self.c_x, self.c_xx = _csum(xc), _csum(xc * xc)
        self.c_u, self.c_uu, self.c_ux = _csum(u), _csum(u * u), _csum(u * xc)

    def window(self, i0, i1) -> dict[str, np.ndarray]:
        """``n``, ``mean``, ``sd`` (ddof 0) and ``slope`` (per sample) of samples ``[i0, i1)``."""
        n = _range_sum(self.c_n, i0, i1)
        sx, sxx = _range_sum(self.c_x, i0, i1), _range_sum(self.c_xx, i0, i1)
        su, suu, sux = (_range_sum(c, i0, i1) for c in (self.c_u, self.c_uu, self.c_ux))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = sx / n
            var = np.maximum(sxx / n - mean * mean, 0.0)
            suu_c = suu - su * su / n
            slope = np.where((n >= 2) & (suu_c > 0), (sux - su * sx / n) / suu_c, np.nan)
        return {"n": n, "mean": np.where(n > 0, self.center + mean, np.nan),
                "sd": np.where(n > 0, np.sqrt(var), np.nan), "slope": slope}


def _slope(t: np.ndarray, x: np.ndarray) -> float:
    """Least-squares slope of ``x`` against ``t`` (the reference's one-window version)."""
    if len(x) < 2:
        return math.nan
    tc = t - t.mean()
    den = float(np.sum(tc * tc))
    return float(np.sum(tc * (x - x.mean())) / den) if den > 0 else math.nan


class _LevelWindows(_SampledExtractor):
    """A slowly varying level (skin temperature, the E4's heart rate): mean, sd and slope."""

    #: feature name -> statistic of :class:`_LevelStats` ("mean", "sd", "slope")
    stats_of: dict[str, str] = {}
    plausible: tuple[float, float] = (-math.inf, math.inf)
    units = ""

    def _check_values(self, x, what):
        med = float(np.median(x))
        lo, hi = self.plausible
        if not lo <= med <= hi:
            raise SignalError(f"{what}: median {med:.4g} is outside {lo:g}-{hi:g} {self.units}; "
                              f"{self.modality} in {self.units} is expected (other units?)")

    def prepare(self) -> None:
        x = self._load()
        if self.dead:
            return
        self.stats = _LevelStats(x, self.ok)

    def compute(self, starts, ends):
        if self.dead:
            return self._dead_table(starts, ends)
        out, coverage = self._quality(starts, ends)
        i0, i1 = self._ranges(starts, ends)
        st = self.stats.window(i0, i1)
        good = (coverage >= self.min_coverage) & (st["n"] >= 2)
        # per sample -> per device second -> per reference second
        st["slope"] = st["slope"] * self.fs * self.clock.scale
        for f, key in self.stats_of.items():
            out[f"{self.prefix}__{f}"] = np.where(good, st[key], np.nan)
        out[f"{self.prefix}__q_ok"] = good & np.isfinite(out[f"{self.prefix}__{self.features[0]}"])
        return out

    def reference(self, starts, ends):
        res = {c: np.full(len(starts), np.nan) for c in self.columns()}
        if self.dead:
            return res
        for w, (a, b) in enumerate(zip(starts, ends)):
            seg, lo = self._context_slice(a, b, 0.0)
            if len(seg) < 2 or np.isnan(seg).any():
                continue
            t = self.clock.to_reference(self.stream.start + (lo + np.arange(len(seg))) / self.fs)
            vals = {"mean": float(np.mean(seg)), "sd": float(np.std(seg)), "slope": _slope(t, seg)}
            for f, key in self.stats_of.items():
                res[f"{self.prefix}__{f}"][w] = vals[key]
        return res


class TempWindows(_LevelWindows):
    """Skin temperature (°C): window mean and least-squares slope (°C/s) from cumsums.

    A stable skin temperature on a 0.02 °C grid can sit on one value for tens of seconds,
    so only 5 minutes without change count as flat (a frozen sensor).
    """

    modality = "temp"
    features = FEATURES["temp"]
    stats_of = {"mean": "mean", "slope": "slope"}
    min_rate = 0.2
    why_rate = "a slope needs several samples per window"
    flat_s = 300.0
    clip_s = 300.0
    segment_min_s = 10.0
    plausible = (10.0, 45.0)
    units = "°C"


class HrWindows(_LevelWindows):
    """A device's heart-rate stream (bpm, e.g. the E4's HR.csv at 1 Hz): mean, sd, slope (bpm/s)."""

    modality = "hr"
    features = FEATURES["hr"]
    stats_of = {"mean": "mean", "std": "sd", "slope": "slope"}
    min_rate = 0.2
    why_rate = "several values per window"
    flat_s = 60.0
    clip_s = 60.0
    segment_min_s = 10.0
    plausible = (25.0, 250.0)
    units = "bpm"


class AccWindows(_SampledExtractor):
    """Accelerometer (3 axes, g): magnitude mean and sd, log motion (log sd of the change in
    magnitude from one sample to the next), all from cumsums.

    A sample with any axis NaN is missing. ``log_motion`` is ``log(sd + motion_floor)``
    (``motion_floor`` 1e-6 g), so a perfectly still (or quantised-constant) window is finite.
    """

    modality = "acc"
    features = FEATURES["acc"]
    min_rate = 4.0
    why_rate = "movement needs several samples per second"
    flat_s = 60.0
    clip_s = 1.0
    segment_min_s = 2.0
    motion_floor = 1e-6
    max_median_g = 8.0

    def _signal(self, s, what):
        if s.data.ndim != 2 or s.data.shape[1] != 3:
            raise SchemaError(f"{what}: 3 axes (samples, 3) expected, got shape {s.data.shape}")
        try:
            xyz = np.asarray(s.data, dtype=np.float64)
        except (TypeError, ValueError):
            raise SignalError(f"{what}: samples must be real numbers, got dtype {s.data.dtype}") from None
        return np.sqrt(np.sum(xyz * xyz, axis=1))  # NaN in any axis -> NaN

    def _check_values(self, x, what):
        med = float(np.median(x))
        if med > self.max_median_g:
            raise SignalError(f"{what}: median magnitude {med:.4g} is not plausible in g (about 1 at "
                              "rest); raw counts (the E4's 1/64 g) or m/s²? convert to g first")

    def prepare(self) -> None:
        x = self._load()
        if self.dead:
            return
        self.stats = _LevelStats(x, self.ok)
        d = np.diff(x)
        self.dstats = _LevelStats(np.where(np.isfinite(d), d, 0.0), self.ok[1:] & self.ok[:-1])

    def compute(self, starts, ends):
        if self.dead:
            return self._dead_table(starts, ends)
        out, coverage = self._quality(starts, ends)
        i0, i1 = self._ranges(starts, ends)
        st = self.stats.window(i0, i1)
        # differences x[i+1] - x[i] with both samples in the window: indices i0 .. i1-2
        last = len(self.x) - 1
        d0 = np.minimum(i0, last)
        ds = self.dstats.window(d0, np.clip(i1 - 1, d0, last))
        good = (coverage >= self.min_coverage) & (st["n"] >= 2) & (ds["n"] >= 1)
        p = self.prefix
        out[f"{p}__mag_mean"] = np.where(good, st["mean"], np.nan)
        out[f"{p}__mag_sd"] = np.where(good, st["sd"], np.nan)
        out[f"{p}__log_motion"] = np.where(good, np.log(np.where(good, ds["sd"], 1.0) + self.motion_floor), np.nan)
        out[f"{p}__q_ok"] = good & (out[f"{p}__q_clipped"] <= 0.01)
        return out

    def reference(self, starts, ends):
        res = {c: np.full(len(starts), np.nan) for c in self.columns()}
        if self.dead:
            return res
        p = self.prefix
        for w, (a, b) in enumerate(zip(starts, ends)):
            m, _ = self._context_slice(a, b, 0.0)
            if len(m) < 2 or np.isnan(m).any():
                continue
            res[f"{p}__mag_mean"][w] = float(np.mean(m))
            res[f"{p}__mag_sd"][w] = float(np.std(m))
            res[f"{p}__log_motion"][w] = math.log(float(np.std(np.diff(m))) + self.motion_floor)
        return res


def _ppg_segment(x: np.ndarray, fs: float, correct: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """neurokit2's Elgendi pipeline on one stretch of valid BVP: ``(peaks, cleaned)``.

    ``ppg_clean`` (0.5-8 Hz band-pass) then ``ppg_peaks`` (Elgendi's detector; with
    ``correct``, neurokit2's artefact correction of missed and extra beats).
    """
    import neurokit2 as nk

    with _quiet_nk():
        cleaned = np.asarray(nk.ppg_clean(x, sampling_rate=fs, method="elgendi"), dtype=np.float64)
        _, info = nk.ppg_peaks(cleaned, sampling_rate=fs, method="elgendi", correct_artifacts=correct)
    peaks = np.unique(np.asarray(info["PPG_Peaks"], dtype=np.int64))
    return peaks[(peaks >= 0) & (peaks < len(x))], cleaned


def _regular(iv: np.ndarray, ok: np.ndarray, half: int = 4, tol: float = 0.3) -> np.ndarray:
    """True for intervals within ``tol`` (relative) of the median of the ``2 * half + 1``
    valid intervals around them: a missed or an extra pulse breaks the rhythm."""
    from scipy.ndimage import median_filter

    if not ok.any():
        return np.zeros(len(iv), dtype=bool)
    idx = np.flatnonzero(ok)
    med = median_filter(iv[idx], size=2 * half + 1, mode="nearest")
    out = np.zeros(len(iv), dtype=bool)
    out[idx] = np.abs(iv[idx] - med) <= tol * med
    return out


class BvpWindows(_SampledExtractor):
    """Blood volume pulse (PPG, e.g. the E4's 64 Hz BVP): pulse rate and pulse-interval
    variability from the systolic peaks, and the log pulse amplitude.

    Peaks are found once per valid stretch (neurokit2's ``ppg_clean`` and ``ppg_findpeaks``,
    Elgendi's method); per window, like ECG's RR intervals: ``hr_mean`` = 60000 / mean
    interval (bpm), ``hr_std`` (sd of the beat-to-beat rate, bpm), ``rmssd`` (ms) over the
    intervals whose two peaks lie in the window, and ``log_amp`` = log of the sd of the
    cleaned (0.5-8 Hz) BVP in the window. Intervals outside 300-2000 ms or spanning invalid
    samples are left out. ``q_beats`` is the fraction of the window's intervals that are
    plausible and regular (within 30 % of the median of the 9 around them; a wrist in
    motion gives pulse-like artefacts); ``q_ok`` needs at least ``beats_min`` of them.

    Options (``options={"bvp": {...}}``, keyed by modality): ``invert`` (detect the peaks
    of ``-x``, for a sensor whose pulses point down) and ``correct_artifacts`` (neurokit2's
    correction of missed and extra beats, default True).
    """

    modality = "bvp"
    features = FEATURES["bvp"]
    extra_quality = ("q_beats",)
    min_rate = 20.0
    why_rate = "systolic peaks need about 20 samples per second"
    flat_s = 1.0
    segment_min_s = 5.0
    min_duration_s = 5.0
    min_intervals = 3
    interval_ms = (300.0, 2000.0)
    beats_min = 0.8
    amp_floor = 1e-6

    def __init__(self, *args, invert: bool = False, correct_artifacts: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.invert = bool(invert)
        self.correct = bool(correct_artifacts)

    def _signal(self, s, what):
        x = super()._signal(s, what)
        return -np.asarray(x, dtype=np.float64) if self.invert else x

    def _plausible(self, iv_ms: np.ndarray) -> np.ndarray:
        return (iv_ms >= self.interval_ms[0]) & (iv_ms <= self.interval_ms[1])

    def prepare(self) -> None:
        from mmlab.bio.quality import mask_runs, segment_failure

        x = self._load()
        self.peaks = np.zeros(0, dtype=np.int64)
        if self.dead:
            return
        cleaned = np.full(len(x), np.nan)
        found = []
        for a, b in mask_runs(self.ok, int(self.segment_min_s * self.fs)):
            try:
                pk, cl = _ppg_segment(x[a:b], self.fs, self.correct)
            except Exception as exc:  # a detector failing on one stretch: that stretch has no beats
                segment_failure(f"BVP stream {self.stream.name!r}: pulse detection", exc, a, b, self.fs)
                continue
            cleaned[a:b] = cl
            found.append(pk + a)
        self.peaks = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
        self.t_beats = self._events_ref(self.peaks)
        iv = np.diff(self.peaks) / self.fs * 1000.0
        valid = self._interval_ok(self.peaks)
        ok = valid & self._plausible(iv)
        self.stats = _IntervalStats(self.t_beats, iv, ok)
        with np.errstate(divide="ignore"):
            self.rate_stats = _IntervalStats(self.t_beats, np.where(ok, 60000.0 / np.maximum(iv, 1e-9), 0.0), ok)
        self.c_valid = _csum(valid.astype(np.float64))
        self.c_regular = _csum((ok & _regular(iv, ok)).astype(np.float64))
        self.amp = _LevelStats(np.nan_to_num(cleaned), np.isfinite(cleaned))

    def compute(self, starts, ends):
        if self.dead:
            return self._dead_table(starts, ends)
        out, coverage = self._quality(starts, ends)
        p = self.prefix
        st = self.stats.window(starts, ends)
        sd_rate = self.rate_stats.window(starts, ends)["sd"]
        n_int = max(len(self.t_beats) - 1, 0)
        k0 = np.searchsorted(self.t_beats, starts, side="left")
        k1 = np.searchsorted(self.t_beats, ends, side="left")
        i0 = np.minimum(k0, n_int)
        i1 = np.clip(k1 - 1, i0, n_int)
        n_valid = _range_sum(self.c_valid, i0, i1) if n_int else np.zeros(len(starts))
        n_reg = _range_sum(self.c_regular, i0, i1) if n_int else np.zeros(len(starts))
        with np.errstate(invalid="ignore", divide="ignore"):
            q_beats = np.where(n_valid > 0, n_reg / n_valid, np.nan)
        good = ((st["n"] >= self.min_intervals) & (coverage >= self.min_coverage)
                & (st["covered_s"] >= self.min_coverage * (ends - starts)))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"{p}__hr_mean"] = np.where(good, 60000.0 / st["mean"], np.nan)
        out[f"{p}__hr_std"] = np.where(good, sd_rate, np.nan)
        out[f"{p}__rmssd"] = np.where(good & (st["rmssd"] == st["rmssd"]), st["rmssd"], np.nan)
        j0, j1 = self._ranges(starts, ends)
        amp = self.amp.window(j0, j1)
        amp_ok = (coverage >= self.min_coverage) & (amp["n"] >= 2)
        out[f"{p}__log_amp"] = np.where(amp_ok, np.log(np.where(amp_ok, amp["sd"], 1.0) + self.amp_floor), np.nan)
        out[f"{p}__q_beats"] = q_beats
        out[f"{p}__q_ok"] = good & (q_beats >= self.beats_min)
        return out

    def reference(self, starts, ends):
        res = {c: np.full(len(starts), np.nan) for c in self.columns()}
        if self.dead:
            return res
        p = self.prefix
        ctx = REFERENCE_CONTEXT_S["bvp"]
        for w, (a, b) in enumerate(zip(starts, ends)):
            seg, lo = self._context_slice(a, b, ctx)
            if len(seg) < self.segment_min_s * self.fs or np.isnan(seg).any():
                continue
            pk, cleaned = _ppg_segment(seg, self.fs, self.correct)
            j0, j1 = (int(v[0]) - lo for v in self._ranges(np.array([a]), np.array([b])))
            inside = cleaned[j0:j1]
            if len(inside) >= 2:
                res[f"{p}__log_amp"][w] = math.log(float(np.std(inside)) + self.amp_floor)
            t = self._events_ref(pk + lo)
            pk = pk[(t >= a) & (t < b)]
            iv = np.diff(pk) / self.fs * 1000.0
            keep = self._plausible(iv)
            if keep.sum() < self.min_intervals or iv[keep].sum() < 1000.0 * self.min_coverage * (b - a):
                continue
            res[f"{p}__hr_mean"][w] = 60000.0 / float(np.mean(iv[keep]))
            res[f"{p}__hr_std"][w] = float(np.std(60000.0 / iv[keep], ddof=1))
            both = keep[1:] & keep[:-1]
            if both.any():
                res[f"{p}__rmssd"][w] = float(np.sqrt(np.mean(np.diff(iv)[both] ** 2)))
        return res


EXTRACTORS: dict[str, type[_Extractor]] = {
    "ecg": EcgWindows, "eda": EdaWindows, "resp": RespWindows, "audio": AudioWindows,
    "bvp": BvpWindows, "temp": TempWindows, "acc": AccWindows, "hr": HrWindows}


class _quiet_nk:
    def __enter__(self):
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")
        self._e = np.errstate(all="ignore")
        self._e.__enter__()

    def __exit__(self, *exc):
        self._e.__exit__(*exc)
        self._w.__exit__(*exc)
        return False


# ------------------------------------------------------------------------- streams
def select_streams(rec: Recording, streams: Mapping[str, str | Iterable[str]] | None = None,
                   modalities: Iterable[str] = ("ecg", "eda", "resp", "audio")) -> dict[str, list[Stream]]:
    """Which streams feed which column prefix (chapter 13_eda).

    ``streams`` maps a prefix to a stream name or a list of names (several audio clips),
    e.g. ``{"ecg": "chest_ecg", "wrist_eda": "wrist_eda"}``; the extractor follows the
    streams' modality. By default each of ``modalities`` takes its stream on the
    reference device (``meta["reference_device"]``) if there is one, else the first in
    name order; ``audio`` takes every audio stream (spoken clips).
    """
    out: dict[str, list[Stream]] = {}
    if streams is not None:
        for prefix, names in streams.items():
            names = [names] if isinstance(names, str) else list(names)
            chosen = [rec[n] for n in names]
            mods = {s.modality for s in chosen}
            if len(mods) != 1 or next(iter(mods)) not in EXTRACTORS:
                raise SchemaError(f"prefix {prefix!r}: streams {names} must share one modality of "
                                  f"{sorted(EXTRACTORS)}, got {sorted(mods)}")
            out[str(prefix)] = chosen
        return out
    ref_dev = rec.meta.get("reference_device")
    for mod in modalities:
        if mod not in EXTRACTORS:
            raise SchemaError(f"no window features for modality {mod!r}; known: {sorted(EXTRACTORS)}")
        cands = sorted(rec.by_modality(mod), key=lambda s: s.name)
        if not cands:
            continue
        if mod == "audio":
            out[mod] = cands
            continue
        on_ref = [s for s in cands if ref_dev and s.device == ref_dev]
        out[mod] = [(on_ref or cands)[0]]
    return out


def _clock_for(rec: Recording, streams: list[Stream], clocks) -> Clock:
    """The clock of the streams' device from ``clocks`` (None, "truth" or a mapping).

    Entries are parsed by :meth:`Clock.from_mapping`, as :func:`mmlab.align.align_recording`
    does, so a misspelt key such as ``{"offset": 2.0}`` raises instead of meaning 0.
    """
    if clocks is None:
        return REFERENCE_CLOCK
    if isinstance(clocks, str):
        if clocks != "truth":
            raise SchemaError(f"clocks must be None, 'truth' or a mapping of device to clock, got {clocks!r}")
        table = rec.meta.get("clock_truth", {})
    elif isinstance(clocks, Mapping):
        table = clocks
    else:
        raise SchemaError(f"clocks must be None, 'truth' or a mapping of device to clock, "
                          f"got {type(clocks).__name__}")
    dev = streams[0].device
    info = table.get(dev) if isinstance(table, Mapping) else None
    if info is None:
        return REFERENCE_CLOCK
    return Clock.from_mapping(info, device=dev)


@dataclass
class _Plan:
    rec: Recording
    extractors: list[_Extractor] = field(default_factory=list)


def _plan(rec: Recording, streams, clocks, min_coverage: float, options: Mapping | None) -> _Plan:
    if not isinstance(rec, Recording):
        raise SchemaError(f"window features need a Recording, got {type(rec).__name__}")
    options = dict(options or {})
    plan = _Plan(rec)
    for prefix, chosen in select_streams(rec, streams).items():
        mod = chosen[0].modality
        cls = EXTRACTORS[mod]
        plan.extractors.append(cls(prefix, chosen, _clock_for(rec, chosen, clocks), min_coverage,
                                   **options.get(mod, {})))
    if not plan.extractors:
        raise SchemaError(f"recording {rec.subject!r} has no stream of modalities {sorted(EXTRACTORS)}")
    return plan


def _span(plan: _Plan) -> tuple[float, float]:
    lo, hi = [], []
    for ex in plan.extractors:
        if ex.modality == "audio":
            continue
        for s in ex.streams:
            lo.append(float(ex.clock.to_reference(s.start)))
            hi.append(float(ex.clock.to_reference(s.end)))
    if not lo:  # audio only
        for ex in plan.extractors:
            for s in ex.streams:
                lo.append(float(ex.clock.to_reference(s.start)))
                hi.append(float(ex.clock.to_reference(s.end)))
    return min(lo), max(hi)


def window_features(rec: Recording, window_s: float = 60.0, step_s: float = 0.25, *,
                    streams: Mapping[str, str | Iterable[str]] | None = None,
                    label_kind: str = "phase", label_rule: str = "majority",
                    t_start: float | None = None, t_end: float | None = None,
                    clocks: Mapping | str | None = None, min_coverage: float = 0.5,
                    options: Mapping[str, Mapping] | None = None) -> pd.DataFrame:
    """The per-window feature table of one recording (see the module docstring).

    Introduced in chapter 13_eda.

    Parameters
    ----------
    rec : Recording
        The recording; its ECG, EDA, respiration and audio streams are used, and the
        wrist streams (BVP, temperature, ACC, HR) named in ``streams``.
    window_s, step_s : float
        Window length and step in seconds (default: WESAD's 60 s every 0.25 s); any
        values work at about the same cost.
    streams : mapping, optional
        Prefix -> stream name (or names, e.g. audio clips), e.g. ``{"ecg": "chest_ecg"}``.
        Default: one stream per modality found (:func:`select_streams`).
    label_kind, label_rule : str
        Which annotations label the windows (``"phase"``) and how (``"majority"``,
        ``"centre"``, ``"any"``, ``"pure"``; see :func:`mmlab.align.window_table`).
    t_start, t_end : float, optional
        Bounds of the windows on the reference clock (default: the span of the selected
        non-audio streams).
    clocks : mapping or "truth", optional
        Device clocks ``{device: {"offset_s": ..., "drift_ppm": ...}}``, or ``"truth"``
        for ``rec.meta["clock_truth"]``. Default: every device is on the reference clock.
    min_coverage : float, default 0.5
        Fraction of a window that must hold valid samples (and, for ECG, valid RR
        intervals) for its features not to be NaN.
    options : mapping, optional
        Settings per modality, e.g. ``{"ecg": {"method": "biosppy-hamilton"},
        "eda": {"amplitude_min": 0.02}, "bvp": {"invert": True}}``.

    Returns
    -------
    pandas.DataFrame
        One row per window: ``subject``, ``start``, ``end``, ``label``, the feature
        columns ``prefix__feature`` (:data:`FEATURES`) and the quality columns
        ``prefix__q_*``. Where the data is bad a feature is NaN and ``prefix__q_ok`` False.

    Raises
    ------
    SignalError
        A wrong sampling rate (e.g. an ECG at 4 Hz) or a recording shorter than one
        window. A dead stream (all NaN, flat) gives NaN features with its quality flags
        set instead.

    Examples
    --------
    Two minutes of synthetic ECG (75 bpm) and EDA (5 µS) in 30-s windows:

    >>> from mmlab.recording import Recording, Stream
    >>> from mmlab.synth.physio import simulate_ecg, simulate_eda
    >>> ecg, _ = simulate_ecg(duration=120.0, fs=250.0, heart_rate=75.0, seed=0)
    >>> eda, _ = simulate_eda(duration=120.0, fs=16.0, seed=0)
    >>> rec = Recording("01", [Stream("ecg", ecg, "ecg", rate=250.0),
    ...                        Stream("eda", eda, "eda", rate=16.0)],
    ...                 annotations=[{"onset": 0.0, "duration": 60.0, "kind": "phase", "label": "rest"},
    ...                              {"onset": 60.0, "duration": 60.0, "kind": "phase", "label": "task"}])
    >>> table = window_features(rec, window_s=30.0, step_s=30.0)
    >>> table[["start", "label", "ecg__q_ok"]].to_numpy().tolist()
    [[0.0, 'rest', True], [30.0, 'rest', True], [60.0, 'task', True], [90.0, 'task', True]]
    >>> bool(table["ecg__hr_mean"].between(74, 76).all()), bool(table["eda__scl_mean"].between(4.9, 5.2).all())
    (True, True)
    """
    plan = _plan(rec, streams, clocks, min_coverage, options)
    for ex in plan.extractors:
        ex.prepare()
    lo, hi = _span(plan)
    starts, ends = window_grid(lo if t_start is None else t_start, hi if t_end is None else t_end,
                               window_s, step_s)
    cols: dict[str, np.ndarray] = {
        "subject": np.full(len(starts), rec.subject, dtype=object), "start": starts, "end": ends,
        "label": window_labels(rec, starts, ends, label_kind, label_rule)}
    return pd.DataFrame({**cols, **_compute(plan, starts, ends)})


def _compute(plan: _Plan, starts: np.ndarray, ends: np.ndarray) -> dict[str, np.ndarray]:
    """Feature columns, then quality columns, of prepared extractors."""
    cols: dict[str, np.ndarray] = {}
    quality: dict[str, np.ndarray] = {}
    for ex in plan.extractors:
        res = ex.compute(starts, ends)
        for c in ex.columns():
            cols[c] = res[c]
        for q in ex.quality_names():
            quality[q] = res[q]
    return {**cols, **quality}


def features_at(rec: Recording, starts, ends, *,
                streams: Mapping[str, str | Iterable[str]] | None = None,
                clocks: Mapping | str | None = None, min_coverage: float = 0.5,
                options: Mapping[str, Mapping] | None = None) -> pd.DataFrame:
    """The feature and quality columns of :func:`window_features` for given windows.

    ``[starts[i], ends[i])`` on the reference clock, any lengths and overlaps (e.g. the
    windows of another table, to add columns to it). Returns ``start``, ``end``, the
    feature columns and the quality columns (no subject, no labels). The other arguments
    are those of :func:`window_features`.
    """
    starts = np.asarray(starts, dtype=float)
    ends = np.asarray(ends, dtype=float)
    if starts.shape != ends.shape or starts.ndim != 1:
        raise SchemaError(f"starts and ends must be 1-D of one length, got shapes {starts.shape} and {ends.shape}")
    if len(starts) and not (np.isfinite(starts).all() and np.isfinite(ends).all() and (ends > starts).all()):
        raise SchemaError("windows need finite starts and ends with end > start")
    plan = _plan(rec, streams, clocks, min_coverage, options)
    for ex in plan.extractors:
        ex.prepare()
    return pd.DataFrame({"start": starts, "end": ends, **_compute(plan, starts, ends)})


def reference_features(rec: Recording, starts, ends, *,
                       streams: Mapping[str, str | Iterable[str]] | None = None,
                       clocks: Mapping | str | None = None,
                       options: Mapping[str, Mapping] | None = None) -> pd.DataFrame:
    """The slow per-window reference of :func:`window_features` (see the module docstring).

    Introduced in chapter 13_eda. For each window ``[starts[i], ends[i])`` neurokit2 (and
    Praat for audio) run on that window's samples plus context (:data:`REFERENCE_CONTEXT_S`);
    windows whose samples contain NaN are left NaN. Returns ``start``, ``end`` and the
    feature columns (no labels, no quality flags).
    """
    starts = np.asarray(starts, dtype=float)
    ends = np.asarray(ends, dtype=float)
    plan = _plan(rec, streams, clocks, 0.0, options)
    cols: dict[str, np.ndarray] = {"start": starts, "end": ends}
    for ex in plan.extractors:
        if ex.modality == "audio":
            ex.prepare()
        else:
            ex._load()
        cols.update(ex.reference(starts, ends))
    return pd.DataFrame(cols)


def window_stats(rec: Recording, starts, ends, streams: Iterable[str] | None = None,
                 min_coverage: float = 0.5) -> pd.DataFrame:
    """Plain per-window statistics of raw samples: the feature-engineering-free baseline.

    For each window ``[starts[i], ends[i])`` (device time taken as reference time) and each
    named stream (default: every regularly sampled stream except audio), the ``mean``,
    ``sd``, ``min`` and ``max`` of every channel, and of the Euclidean magnitude of a
    multi-channel stream (e.g. a 3-axis accelerometer), as columns
    ``"<stream>__c<k>_<stat>"`` and ``"<stream>__mag_<stat>"``. NaN samples are left out;
    a window with fewer than ``min_coverage`` of its expected samples finite is NaN
    (flagged as missing, not guessed). Returns ``start``, ``end`` and those columns.
    """
    starts = np.asarray(starts, dtype=float)
    ends = np.asarray(ends, dtype=float)
    if starts.shape != ends.shape or starts.ndim != 1:
        raise SchemaError(f"starts and ends must be 1-D of one length, got shapes {starts.shape} and {ends.shape}")
    min_coverage = check_number(min_coverage, "min_coverage", low=0.0, high=1.0)
    names = (sorted(n for n, s in rec.streams.items() if s.rate is not None and s.modality != "audio")
             if streams is None else list(streams))
    cols: dict[str, np.ndarray] = {"start": starts, "end": ends}
    for name in names:
        if name not in rec.streams:
            raise SchemaError(f"recording {rec.subject!r} has no stream {name!r} (has {sorted(rec.streams)})")
        st = rec.streams[name]
        if st.rate is None:
            raise SchemaError(f"stream {name!r} is irregular (events); window_stats needs a sampled stream")
        x = np.asarray(st.data, dtype=float).reshape(st.n_samples, -1)
        chans = {f"c{k}": x[:, k] for k in range(x.shape[1])}
        if x.shape[1] > 1:
            chans["mag"] = np.sqrt((x ** 2).sum(axis=1))
        i0, i1 = _sample_index(st, starts), _sample_index(st, ends)
        need = min_coverage * (ends - starts) * st.rate
        for c, v in chans.items():
            out = np.full((len(starts), 4), np.nan)
            for w, (a, b) in enumerate(zip(i0, i1)):
                seg = v[a:b]
                seg = seg[np.isfinite(seg)]
                if len(seg) >= max(need[w], 2):
                    out[w] = seg.mean(), seg.std(), seg.min(), seg.max()
            for k, stat in enumerate(("mean", "sd", "min", "max")):
                cols[f"{name}__{c}_{stat}"] = out[:, k]
    return pd.DataFrame(cols)


def feature_columns(table: pd.DataFrame) -> list[str]:
    """The feature columns of a window table (``prefix__name``, not quality flags)."""
    return [c for c in table.columns if "__" in c and not c.split("__", 1)[1].startswith("q_")]


def quality_columns(table: pd.DataFrame) -> list[str]:
    """The quality columns of a window table (``prefix__q_*``)."""
    return [c for c in table.columns if "__" in c and c.split("__", 1)[1].startswith("q_")]


def compare_tables(ours: pd.DataFrame, reference: pd.DataFrame, floor: float = 1e-9) -> pd.DataFrame:
    """Relative deviation of ``ours`` from ``reference``, per feature column.

    Rows are matched by ``start``. For each feature: ``n`` (windows where both are
    finite), ``only_ours`` / ``only_ref`` (windows where just one is), and the maximum and
    median of ``|ours - ref| / max(|ref|, floor)``. A count feature (``scr_count``) that
    differs by one in a window with few events is a large relative deviation, on purpose.
    """
    merged = ours.merge(reference, on="start", suffixes=("", "__ref"))
    rows = []
    for c in feature_columns(reference):
        if c not in ours:
            continue
        a = merged[c].to_numpy(dtype=float)
        b = merged[c + "__ref"].to_numpy(dtype=float)
        both = np.isfinite(a) & np.isfinite(b)
        rel = np.abs(a[both] - b[both]) / np.maximum(np.abs(b[both]), floor)
        rows.append({"feature": c, "n": int(both.sum()),
                     "only_ours": int((np.isfinite(a) & ~np.isfinite(b)).sum()),
                     "only_ref": int((~np.isfinite(a) & np.isfinite(b)).sum()),
                     "max_rel_dev": float(rel.max()) if len(rel) else np.nan,
                     "median_rel_dev": float(np.median(rel)) if len(rel) else np.nan})
    return pd.DataFrame(rows)


class WindowFeatures:
    """scikit-learn-style transformer: recordings -> one window table (chapter 13_eda).

    ``WindowFeatures(window_s=60, step_s=0.25).fit_transform(cohort)`` concatenates
    :func:`window_features` of every recording; keyword arguments are passed through.
    ``fit`` learns nothing (the features are per window), so it is safe inside
    cross-validation.
    """

    def __init__(self, window_s: float = 60.0, step_s: float = 0.25, **kwargs):
        self.window_s = window_s
        self.step_s = step_s
        self.kwargs = kwargs

    def get_params(self, deep: bool = True) -> dict:
        return {"window_s": self.window_s, "step_s": self.step_s, **self.kwargs}

    def set_params(self, **params) -> "WindowFeatures":
        for k, v in params.items():
            if k in ("window_s", "step_s"):
                setattr(self, k, v)
            else:
                self.kwargs[k] = v
        return self

    def fit(self, X=None, y=None) -> "WindowFeatures":
        return self

    def transform(self, X: Recording | Cohort | Iterable[Recording]) -> pd.DataFrame:
        recs = [X] if isinstance(X, Recording) else list(X)
        tables = [window_features(r, self.window_s, self.step_s, **self.kwargs) for r in recs]
        return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()

    def fit_transform(self, X, y=None) -> pd.DataFrame:
        return self.fit(X, y).transform(X)
