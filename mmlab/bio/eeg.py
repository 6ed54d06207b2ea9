"""EEG with MNE: filtering, re-referencing, epochs, band power and motor-imagery decoding
(chapter 14_eeg).

The functions are thin, checked wrappers over `MNE-Python <https://mne.tools>`_ and
scikit-learn. They take and return MNE objects (``mne.io.Raw``, ``mne.Epochs``) so that
everything MNE offers (plots, montages, topographies) stays one call away:

* :func:`to_raw` — an ``mne.io.Raw`` from a :class:`~mmlab.recording.Stream`, an array
  ``(n_samples, n_channels)`` (samples along axis 0, as everywhere in mmlab) or a Raw,
  after the input checks below; :func:`recording_to_raw` does a whole Recording (several
  runs concatenated, annotations carried over);
* :func:`bandpass`, :func:`notch`, :func:`average_reference` — filtered / re-referenced
  copies (the input is never modified);
* :func:`epochs_from_annotations` and :func:`epochs_to_xy` — trials around annotations;
* :func:`band_power` (arrays, vectorised) and :func:`band_power_table` (a DataFrame per
  channel) — absolute or relative power in the classic :data:`BANDS` by Welch or multitaper;
* :class:`BandPower`, :func:`csp_lda`, :func:`bandpower_logistic` — decoders with the
  scikit-learn API (score them with :func:`mmlab.evaluate.repeated_cv`: seeded, repeated,
  stratified cross-validation);

The data come from :func:`mmlab.io.read_motor_imagery` (EEG Motor Movement/Imagery) or
:func:`mmlab.synth.eeg.simulate_motor_imagery` (a planted, lateralised mu-rhythm
desynchronisation: the known answer for the decoders when no real data is at hand).

Bad input raises :class:`~mmlab.errors.SignalError` naming what is wrong: a sampling rate
that is not a positive number or too low for the asked frequencies (Nyquist), a signal too
short for the filter or the lowest band, NaN or infinite samples, flat (constant) channels.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from mmlab.errors import SignalError
from mmlab.io.eeg import standard_montage_name
from mmlab.validate import check_rate

__all__ = [
    "BANDS", "check_eeg", "to_raw", "recording_to_raw", "bandpass", "notch",
    "average_reference", "epochs_from_annotations", "epochs_to_xy", "band_power",
    "band_power_table", "BandPower", "csp_lda", "bandpower_logistic",
]

#: The classic EEG frequency bands in Hz, ``[low, high)``.
BANDS: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 45.0),
}

#: The lowest EEG sampling rate :func:`check_eeg` accepts: the classic rhythms reach the
#: beta band (13-30 Hz); below 32 Hz not even the alpha band (8-13 Hz) survives filtering.
MIN_RATE_HZ = 32.0

#: The largest median absolute deviation (V) of an EEG channel accepted by :func:`check_eeg`:
#: scalp EEG varies by tens of µV; 1 mV typical variation means the data are not in volts.
MAX_SPREAD_V = 1e-3


# --------------------------------------------------------------------------- checks
def _check_below_nyquist(freq: float, rate: float, what: str, purpose: str) -> None:
    if freq >= rate / 2:
        raise SignalError(f"{what} sampled at {rate:g} Hz cannot carry {freq:g} Hz ({purpose}): "
                          f"the Nyquist frequency is {rate / 2:g} Hz; wrong sampling rate?")


def check_eeg(data, rate, channels: Sequence[str] | None = None, what: str = "EEG",
              min_samples: int = 2) -> tuple[np.ndarray, float]:
    """Validate EEG samples ``(n_samples, n_channels)`` and their rate; return ``(float64, rate)``.

    Introduced in chapter 14_eeg. 1-D input is one channel. Raises
    :class:`~mmlab.errors.SignalError` when the rate is not a positive number or is below
    :data:`MIN_RATE_HZ` (32 Hz); when there are fewer than ``min_samples`` samples; when
    the samples are not numbers, are integers (ADC counts) or vary by more than
    :data:`MAX_SPREAD_V` (not volts); when the array has more channels than samples (it is
    then almost surely ``(channels, samples)``: pass ``data.T``); when any sample is NaN
    or infinite (naming the channels); or when a channel is flat (constant: a disconnected
    electrode, or a re-referenced copy of the reference itself).
    """
    rate = check_rate(rate, what, min_rate=MIN_RATE_HZ,
                      why="EEG rhythms up to the beta band need at least 32 samples per second")
    dtype = np.asarray(data).dtype
    if dtype.kind in "US":
        raise SignalError(f"{what}: samples are not numbers (dtype {dtype})")
    if dtype.kind in "iub":
        raise SignalError(f"{what}: integer samples ({dtype}) look like ADC counts; "
                          "EEG must be in volts (float): scale the counts by the amplifier's resolution")
    try:
        x = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SignalError(f"{what}: samples are not numbers ({exc})") from None
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise SignalError(f"{what}: expected samples x channels (2-D), got shape {x.shape}")
    names = list(channels) if channels is not None else [f"ch{i}" for i in range(x.shape[1])]
    transposed = (f"{what}: shape {x.shape} looks like (channels, samples): read as mmlab's "
                  f"(samples, channels) it would be {x.shape[1]} channels of {x.shape[0]} samples; "
                  "pass data.T")
    if len(names) != x.shape[1]:
        if len(names) == x.shape[0]:
            raise SignalError(transposed)
        raise SignalError(f"{what}: {len(names)} channel names for {x.shape[1]} channels")
    if x.shape[0] < max(int(min_samples), 2):
        raise SignalError(f"{what}: too short: {x.shape[0]} samples at {rate:g} Hz "
                          f"({x.shape[0] / rate:.3g} s); this needs at least {max(int(min_samples), 2)} "
                          f"samples ({max(int(min_samples), 2) / rate:.3g} s)")
    if x.shape[1] > x.shape[0]:
        raise SignalError(transposed)
    bad = ~np.isfinite(x)
    if bad.any():
        cols = [names[i] for i in np.flatnonzero(bad.any(axis=0))]
        raise SignalError(f"{what}: {int(bad.sum())} NaN or infinite samples in channel(s) "
                          f"{', '.join(cols[:8])}{' ...' if len(cols) > 8 else ''}; "
                          "interpolate or drop them (or the channel) first")
    spread = np.median(np.abs(x - np.median(x, axis=0)), axis=0)
    if np.any(spread > MAX_SPREAD_V):
        cols = [names[i] for i in np.flatnonzero(spread > MAX_SPREAD_V)]
        raise SignalError(f"{what}: channel(s) {', '.join(cols[:8])} vary by {spread.max():.3g} (median "
                          f"absolute deviation), more than {MAX_SPREAD_V:g} V: EEG must be in volts; "
                          "microvolts? multiply by 1e-6")
    flat = np.ptp(x, axis=0) == 0
    if flat.any():
        cols = [names[i] for i in np.flatnonzero(flat)]
        raise SignalError(f"{what}: flat (constant) channel(s) {', '.join(cols[:8])}"
                          f"{' ...' if len(cols) > 8 else ''}: no EEG recorded there; drop them "
                          "(raw.drop_channels) before processing")
    return x, rate


def _check_raw(raw, what: str = "EEG"):
    import mne

    if not isinstance(raw, mne.io.BaseRaw):
        raise SignalError(f"{what}: expected an mne.io.Raw (use mmlab.bio.eeg.to_raw), "
                          f"got {type(raw).__name__}")
    if not raw.preload:
        raw.load_data(verbose="ERROR")
    return raw


# --------------------------------------------------------------------------- raw objects
def to_raw(source, rate: float | None = None, channels: Sequence[str] | None = None,
           montage: str | None = "auto", what: str | None = None):
    """An ``mne.io.RawArray`` (volts) from a Stream, an array or a Raw, after :func:`check_eeg`.

    Introduced in chapter 14_eeg. ``source`` may be

    * a :class:`~mmlab.recording.Stream` of EEG in volts (its rate and channel names are used);
    * an array ``(n_samples, n_channels)`` in volts, with ``rate`` and optional ``channels``;
    * an ``mne.io.Raw`` (copied and checked).

    When channel names match ``montage`` (``"auto"``: MNE's template 10-05 system), electrode
    positions are set so that topographic plots work; unknown names are left without one.
    """
    import mne

    from mmlab.recording import Stream

    if isinstance(source, mne.io.BaseRaw):
        what = what or "EEG raw"
        raw = source.copy().load_data(verbose="ERROR")
        picks = mne.pick_types(raw.info, eeg=True, exclude=[])
        if len(picks) == 0:
            raise SignalError(f"{what}: no EEG channels")
        check_eeg(raw.get_data(picks=picks).T, raw.info["sfreq"],
                  [raw.ch_names[i] for i in picks], what)
        return raw
    if isinstance(source, Stream):
        what = what or f"stream {source.name!r}"
        if not source.is_regular:
            raise SignalError(f"{what}: EEG needs a regular sampling rate, the stream has timestamps")
        if source.data.ndim != 2:
            raise SignalError(f"{what}: expected samples x channels, got shape {source.data.shape}")
        data, rate, channels = source.data, source.rate, channels or source.channels
        units = set(source.units)
        if units - {"V", ""}:
            raise SignalError(f"{what}: EEG in volts expected, the stream says {sorted(units)}")
    else:
        what = what or "EEG"
        data = source
        if rate is None:
            raise SignalError(f"{what}: give the sampling rate (rate=...) with an array")
    x, fs = check_eeg(data, rate, channels, what)
    names = list(channels) if channels is not None else [f"EEG{i:03d}" for i in range(x.shape[1])]
    info = mne.create_info([str(c) for c in names], fs, ch_types="eeg")
    raw = mne.io.RawArray(x.T, info, verbose="ERROR")
    if montage:
        montage = standard_montage_name() if montage == "auto" else montage
        raw.set_montage(montage, on_missing="ignore", match_case=False, verbose="ERROR")
    return raw


def recording_to_raw(recording, streams: Sequence[str] | None = None, kinds: Iterable[str] = ("label",),
                     montage: str | None = "auto"):
    """One ``mne.io.Raw`` from the EEG streams of a Recording, with its annotations.

    Introduced in chapter 14_eeg. ``streams`` defaults to every stream of modality ``eeg``
    in name order (eegmmidb runs ``eeg_r04``, ``eeg_r08`` ...). Annotations of the given
    ``kinds`` that start inside a stream become MNE annotations described by their label
    (e.g. ``left_fist``), onsets relative to that stream. Several streams are concatenated
    with :func:`mne.concatenate_raws`, which marks each junction with ``BAD boundary`` /
    ``EDGE boundary`` so that filters and epochs do not straddle two runs.
    """
    import mne

    names = list(streams) if streams is not None else sorted(s.name for s in recording.by_modality("eeg"))
    if not names:
        raise SignalError(f"recording {recording.subject!r}: no EEG stream")
    ann = recording.annotations
    ann = ann[ann["kind"].isin(list(kinds))]
    raws = []
    for name in names:
        s = recording[name]
        raw = to_raw(s, montage=montage, what=f"recording {recording.subject!r}, stream {name!r}")
        inside = ann[(ann["onset"] >= s.start) & (ann["onset"] < s.start + s.duration)]
        if len(inside):
            onset = inside["onset"].to_numpy(float) - s.start
            duration = np.minimum(inside["duration"].to_numpy(float), s.duration - onset)  # clip to the run
            raw.set_annotations(mne.Annotations(onset, duration, inside["label"].astype(str).to_list()))
        raws.append(raw)
    return raws[0] if len(raws) == 1 else mne.concatenate_raws(raws, verbose="ERROR")


# --------------------------------------------------------------------------- filters
def bandpass(raw, l_freq: float | None, h_freq: float | None):
    """A band-passed copy of ``raw`` (MNE's zero-phase FIR, ``firwin`` design).

    Introduced in chapter 14_eeg. ``l_freq=None`` gives a low-pass, ``h_freq=None`` a
    high-pass. SignalError when ``h_freq`` is at or above Nyquist, when the band is empty,
    or when the recording is shorter than the filter (MNE would silently shorten it).
    """
    import mne

    raw = _check_raw(raw)
    fs = float(raw.info["sfreq"])
    what = "EEG band-pass"
    if l_freq is None and h_freq is None:
        raise SignalError(f"{what}: give l_freq, h_freq or both")
    if h_freq is not None:
        _check_below_nyquist(float(h_freq), fs, "EEG", "the band-pass upper edge")
    if l_freq is not None and l_freq <= 0:
        raise SignalError(f"{what}: l_freq must be > 0 Hz, got {l_freq!r}")
    if l_freq is not None and h_freq is not None and l_freq >= h_freq:
        raise SignalError(f"{what}: empty band {l_freq:g}-{h_freq:g} Hz (l_freq must be < h_freq)")
    taps = mne.filter.create_filter(None, fs, l_freq, h_freq, verbose="ERROR")
    if len(taps) > raw.n_times:
        raise SignalError(f"EEG too short to filter at {l_freq}-{h_freq} Hz: {raw.n_times} samples "
                          f"({raw.n_times / fs:.3g} s) but the filter has {len(taps)} taps "
                          f"({len(taps) / fs:.3g} s)")
    return raw.copy().filter(l_freq, h_freq, fir_design="firwin", verbose="ERROR")


def notch(raw, freq: float = 50.0, harmonics: bool = True):
    """A copy of ``raw`` with the power line ``freq`` (and its harmonics below Nyquist) removed.

    Introduced in chapter 14_eeg. Use 50 Hz in Europe, 60 Hz in the Americas (eegmmidb was
    recorded in the USA). SignalError when ``freq`` is at or above Nyquist.
    """
    import mne

    raw = _check_raw(raw)
    fs = float(raw.info["sfreq"])
    _check_below_nyquist(float(freq) + 1.0, fs, "EEG", f"a notch at {freq:g} Hz with its 1 Hz transition")
    freqs = np.arange(float(freq), fs / 2 - 1.0, float(freq)) if harmonics else np.array([float(freq)])

    # the length of MNE's band-stop FIR depends only on its 1 Hz transition (0.5 Hz a side)
    taps = mne.filter.create_filter(None, fs, float(freq) + 1.0, float(freq) - 1.0,
                                    l_trans_bandwidth=0.5, h_trans_bandwidth=0.5, verbose="ERROR")
    if len(taps) > raw.n_times:
        raise SignalError(f"EEG too short for a notch filter at {freq:g} Hz: {raw.n_times} samples "
                          f"({raw.n_times / fs:.3g} s) but the filter has {len(taps)} taps "
                          f"({len(taps) / fs:.3g} s)")
    return raw.copy().notch_filter(freqs, fir_design="firwin", verbose="ERROR")


def average_reference(raw):
    """A copy of ``raw`` re-referenced to the average of its EEG channels.

    Introduced in chapter 14_eeg. After it, the mean over channels is zero at every sample;
    the reference is applied to the data (not kept as a projector).
    """
    raw = _check_raw(raw)
    out = raw.copy()
    out.set_eeg_reference("average", projection=False, verbose="ERROR")
    return out


# --------------------------------------------------------------------------- epochs
def epochs_from_annotations(raw, labels: Sequence[str] | Mapping[str, str] | None = None,
                            tmin: float = 0.0, tmax: float = 4.0, baseline=None):
    """Epochs ``[tmin, tmax]`` s around every annotation whose description is in ``labels``.

    Introduced in chapter 14_eeg. ``labels`` is a list of annotation descriptions (e.g.
    ``["left_fist", "right_fist"]``) or a mapping ``{description: label}`` that renames
    them (e.g. ``{"T1": "left_fist", "T2": "right_fist"}`` for a raw EDF file); ``None``
    takes every description except MNE's ``BAD``/``EDGE`` markers. The event ids are the
    labels in order (1, 2, ...). Epochs are not dropped for amplitude; MNE drops an epoch
    that reaches outside the data or overlaps a ``BAD`` annotation (e.g. the junction of two
    concatenated runs). SignalError when no annotation matches.
    """
    import mne

    raw = _check_raw(raw)
    present = [str(d) for d in raw.annotations.description]
    if labels is None:
        labels = sorted({d for d in present if not d.upper().startswith(("BAD", "EDGE"))})
    mapping = dict(labels) if isinstance(labels, Mapping) else {str(k): str(k) for k in labels}
    found = [k for k in mapping if k in present]
    if not found:
        raise SignalError(f"EEG: no annotation {sorted(mapping)} to epoch; the recording has "
                          f"{sorted(set(present)) or 'no annotations'}")
    out_labels = list(dict.fromkeys(mapping[k] for k in mapping))
    codes = {lab: i + 1 for i, lab in enumerate(out_labels)}
    events, _ = mne.events_from_annotations(raw, event_id={k: codes[mapping[k]] for k in found},
                                            verbose="ERROR")
    event_id = {lab: c for lab, c in codes.items() if c in set(events[:, 2])}
    return mne.Epochs(raw, events, event_id, tmin=tmin, tmax=tmax, baseline=baseline, picks="eeg",
                      preload=True, reject_by_annotation=True, verbose="ERROR")


def epochs_to_xy(epochs) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)``: data ``(n_epochs, n_channels, n_times)`` in volts and the string labels.

    Introduced in chapter 14_eeg; ``X`` and ``y`` go straight into the decoders.
    """
    inv = {code: lab for lab, code in epochs.event_id.items()}
    return epochs.get_data(copy=True), np.array([inv[c] for c in epochs.events[:, 2]])


# --------------------------------------------------------------------------- band power
def _bands(bands) -> dict[str, tuple[float, float]]:
    if bands is None:
        return dict(BANDS)
    if isinstance(bands, Mapping):
        out = {str(k): (float(v[0]), float(v[1])) for k, v in bands.items()}
    else:
        unknown = [b for b in bands if b not in BANDS]
        if unknown:
            raise SignalError(f"unknown band(s) {unknown}; known: {list(BANDS)} (or pass a dict)")
        out = {b: BANDS[b] for b in bands}
    for name, (lo, hi) in out.items():
        if not (0 <= lo < hi):
            raise SignalError(f"band {name!r}: {lo:g}-{hi:g} Hz is empty or negative")
    return out


def band_power(x, rate: float, bands=None, method: str = "welch", relative: bool = False,
               what: str = "EEG") -> tuple[np.ndarray, list[str]]:
    """Power per band of ``x`` whose **last axis is time** (MNE's convention), vectorised.

    Introduced in chapter 14_eeg. Returns ``(power, band_names)`` with ``power`` of shape
    ``x.shape[:-1] + (n_bands,)``: the PSD integrated over each band ``[low, high)`` (V² for
    volts), or, with ``relative=True``, that power divided by the power between the lowest
    and highest band edge (so relative powers of adjacent bands sum to 1). ``method`` is
    ``"welch"`` (2-s Hamming segments, half overlap: 0.5 Hz resolution) or ``"multitaper"``
    (:func:`mne.time_frequency.psd_array_multitaper`). ``bands`` is a list of names from
    :data:`BANDS` or a dict ``{name: (low, high)}``.

    SignalError when the rate is not positive, a band reaches Nyquist, the signal is shorter
    than one cycle of the lowest band edge, or it holds NaN; a flat signal has zero power
    and a relative power of NaN.
    """
    from mne.time_frequency import psd_array_multitaper, psd_array_welch

    fs = check_rate(rate, what)
    b = _bands(bands)
    if np.asarray(x).dtype.kind in "US":
        raise SignalError(f"{what}: samples are not numbers (dtype {np.asarray(x).dtype})")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0 or x.shape[-1] < 2:
        raise SignalError(f"{what}: too short for band power: shape {x.shape} (time is the last axis)")
    if not np.all(np.isfinite(x)):
        raise SignalError(f"{what}: {int((~np.isfinite(x)).sum())} NaN or infinite samples; "
                          "band power needs complete data")
    lo_all = min(lo for lo, _ in b.values())
    hi_all = max(hi for _, hi in b.values())
    for name, (lo, hi) in b.items():
        _check_below_nyquist(hi, fs, what, f"the {name} band up to {hi:g} Hz")
    n = x.shape[-1]
    need = int(math.ceil(fs / max(lo_all, 0.5)))
    if n < need:
        raise SignalError(f"{what}: too short for band power from {lo_all:g} Hz: {n} samples "
                          f"({n / fs:.3g} s) at {fs:g} Hz; needs at least one cycle, {need} samples")
    if method == "welch":
        seg = min(n, int(round(2 * fs)))
        psd, freqs = psd_array_welch(x, fs, fmin=0.0, fmax=fs / 2, n_fft=seg, n_per_seg=seg,
                                     n_overlap=seg // 2, verbose="ERROR")
    elif method == "multitaper":
        psd, freqs = psd_array_multitaper(x, fs, fmin=0.0, fmax=fs / 2, normalization="full",
                                          verbose="ERROR")
    else:
        raise SignalError(f"{what}: unknown band-power method {method!r} (use 'welch' or 'multitaper')")
    df = float(freqs[1] - freqs[0])
    out = np.stack([psd[..., (freqs >= lo) & (freqs < hi)].sum(axis=-1) * df
                    for lo, hi in b.values()], axis=-1)
    flat = (np.ptp(x, axis=-1) == 0)[..., None]   # a constant: rounding error, not power
    out = np.where(flat, 0.0, out)
    if relative:
        total = psd[..., (freqs >= lo_all) & (freqs < hi_all)].sum(axis=-1, keepdims=True) * df
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where((total > 0) & ~flat, out / np.where(total > 0, total, 1.0), np.nan)
    return out, list(b)


def band_power_table(inst, bands=None, method: str = "welch", relative: bool = False) -> pd.DataFrame:
    """Band power per channel of a Raw or Epochs as a DataFrame (rows channels, columns bands).

    Introduced in chapter 14_eeg. For Epochs the power is computed per epoch and averaged
    over epochs; units are V² (absolute) or a fraction (``relative=True``).
    """
    import mne

    if isinstance(inst, mne.BaseEpochs):
        picks = mne.pick_types(inst.info, eeg=True, exclude=[])
        power, names = band_power(inst.get_data(picks=picks), inst.info["sfreq"], bands, method, relative)
        power = power.mean(axis=0)
    else:
        raw = _check_raw(inst)
        picks = mne.pick_types(raw.info, eeg=True, exclude=[])
        power, names = band_power(raw.get_data(picks=picks), raw.info["sfreq"], bands, method, relative)
    return pd.DataFrame(power, index=pd.Index([inst.ch_names[i] for i in picks], name="channel"),
                        columns=names)


class BandPower(BaseEstimator, TransformerMixin):
    """scikit-learn transformer: epochs ``(n, n_channels, n_times)`` -> band powers (chapter 14_eeg).

    Output ``(n, n_channels * n_bands)``, channel-major; ``log=True`` (default) takes
    log10 of absolute power, which makes it roughly Gaussian for a linear model.
    """

    def __init__(self, rate: float = 160.0, bands=("alpha", "beta"), method: str = "welch",
                 relative: bool = False, log: bool = True):
        self.rate = rate
        self.bands = bands
        self.method = method
        self.relative = relative
        self.log = log

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        X = np.asarray(X)
        if X.ndim != 3:
            raise SignalError(f"BandPower: expected epochs (n, channels, times), got shape {X.shape}")
        p, _ = band_power(X, self.rate, self.bands, self.method, self.relative)
        if self.log:
            p = np.log10(np.maximum(p, np.finfo(float).tiny))
        return p.reshape(len(X), -1)


# --------------------------------------------------------------------------- decoders
_QUIET_CSP = None


def _quiet_csp_class():
    """``mne.decoding.CSP`` whose ``fit`` does not log its rank estimation at INFO level."""
    global _QUIET_CSP
    if _QUIET_CSP is None:
        import mne
        from mne.decoding import CSP

        class QuietCSP(CSP):
            __doc__ = CSP.__doc__

            def fit(self, X, y):
                with mne.utils.use_log_level("ERROR"):
                    return super().fit(X, y)

        _QUIET_CSP = QuietCSP
    return _QUIET_CSP


def csp_lda(n_components: int = 4, reg=None):
    """Common spatial patterns (log-variance of ``n_components`` filters) + LDA (chapter 14_eeg).

    The classic motor-imagery decoder: CSP finds spatial filters whose output variance
    differs most between two classes (mu/beta desynchronisation over the motor cortex
    opposite the imagined hand), LDA separates their log-variances.
    """
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.pipeline import Pipeline

    return Pipeline([("csp", _quiet_csp_class()(n_components=n_components, reg=reg, log=True)),
                     ("lda", LinearDiscriminantAnalysis())])


def bandpower_logistic(rate: float = 160.0, bands=("alpha", "beta"), C: float = 1.0):
    """Baseline decoder: log band power per channel -> standardise -> logistic regression
    (chapter 14_eeg)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("bandpower", BandPower(rate=rate, bands=bands)),
                     ("scale", StandardScaler()),
                     ("logreg", LogisticRegression(C=C, max_iter=2000))])


