"""Voice as a modality: waveforms, spectrograms, mel, MFCC, pitch, jitter/shimmer, eGeMAPS,
voice activity, and two spoken-digit baselines (chapter 11_voice).

Libraries do the signal processing: librosa (STFT, mel, MFCC, pYIN pitch, non-silent
intervals), Praat through parselmouth (pitch, glottal pulses, local jitter and shimmer:
the field's reference), openSMILE (the 88 eGeMAPSv02 functionals of Eyben et al. 2016).
This module adds what they leave to the caller:

* **input checks** (:func:`check_audio`): an array that is empty, not 1-D, holds NaN/inf
  samples, is shorter than an analysis frame, comes with an implausible rate, holds
  integer PCM codes (convert them explicitly with :func:`pcm_to_float`) or floats beyond
  full scale [-1, 1] raises :class:`~mmlab.errors.SignalError` naming what is wrong,
  before any library sees it;
* **data problems become flagged NaN features**: silence (the loudest 32 ms frame below
  ``SILENCE_DB`` = -60 dBFS) or no voiced frames give NaN pitch, jitter, shimmer and
  eGeMAPS values with a ``quality`` flag (``"ok"``, ``"silent"``, ``"unvoiced"``,
  ``"too_short"``), never invented values;
* **voice activity** (:func:`vad`): librosa's ``effects.split`` (frames within ``top_db``
  of the loudest frame are speech) plus an absolute floor, so a silent clip has no
  speech, and merging of short gaps / dropping of short blips;
* **baselines** with one input contract (a list of 1-D clips at one rate):
  :func:`mfcc_linear_model` (mean/std of MFCCs and deltas + logistic regression, a
  scikit-learn pipeline) and :class:`CNNClassifier` (a small CNN on log-mel, PyTorch,
  CPU, seeded; scikit-learn style ``fit``/``predict``).

Times are in seconds, rates in Hz, levels in dB; frames are centred (librosa's default),
so a clip of ``n`` samples has ``1 + n // hop_length`` frames.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin

from mmlab._torch import minibatches, seeded, torch_threads, train_loop
from mmlab.errors import SignalError
from mmlab.validate import check_rate as _check_rate

with warnings.catch_warnings():
    # librosa's helpers import tqdm.auto, which warns in notebooks when ipywidgets is
    # missing; importing it once here, quietly, keeps chapter outputs clean.
    warnings.simplefilter("ignore")
    import tqdm.auto  # noqa: F401

__all__ = [
    "SILENCE_DB", "check_audio", "check_rate", "pcm_to_float", "peak_level_db", "is_silent", "load", "pad_or_trim",
    "frame_times", "stft", "spectrogram", "melspectrogram", "log_mel", "mfcc", "mfcc_summary",
    "pitch_pyin", "pitch_praat", "pitch_summary", "jitter_shimmer", "egemaps", "egemaps_table",
    "vad", "speech_overlap", "MFCCSummary", "mfcc_linear_model",
    "LogMelCNN", "CNNClassifier",
]

#: A clip whose loudest frame (32 ms RMS) is below this level (dBFS) counts as silent.
SILENCE_DB = -60.0
_MIN_RATE, _MAX_RATE = 1000.0, 400_000.0


# ---------------------------------------------------------------------- checks
def check_rate(sr: float, what: str = "audio") -> int:
    """``sr`` as an int rate in Hz; SignalError when it is not a plausible audio rate."""
    if isinstance(sr, (int, float, np.integer, np.floating)) and 0 < sr < _MIN_RATE:
        raise SignalError(f"{what}: sampling rate {float(sr):g} Hz is below {_MIN_RATE:g} Hz "
                          "(given in kHz? rates are in Hz)")
    value = _check_rate(sr, what, max_rate=_MAX_RATE)
    if abs(value - round(value)) > 1e-6:
        raise SignalError(f"{what}: sampling rate {value} Hz is not a whole number of Hz")
    return int(round(value))


def pcm_to_float(x) -> np.ndarray:
    """Integer PCM samples as float32 in [-1, 1): ``int16 / 32768``, ``int32 / 2**31``,
    ``uint8`` centred on 128 (WAV's 8-bit layout) and divided by 128.

    The explicit conversion :func:`check_audio` asks for: mmlab's audio functions take a
    waveform in [-1, 1] (full scale) and refuse integer codes, whose levels would be off by
    90 dB. Float input is returned as float32 unchanged.

    >>> pcm_to_float(np.array([-32768, 0, 16384], dtype=np.int16))
    array([-1. ,  0. ,  0.5], dtype=float32)
    """
    arr = np.asarray(x)
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float32)
    if arr.dtype == np.uint8:
        return ((arr.astype(np.float64) - 128.0) / 128.0).astype(np.float32)
    if not np.issubdtype(arr.dtype, np.signedinteger):
        raise SignalError(f"pcm_to_float: expected signed integer PCM (int16, int32) or uint8, got {arr.dtype}")
    bits = 8 * arr.dtype.itemsize
    return (arr.astype(np.float64) / float(2 ** (bits - 1))).astype(np.float32)


#: Float samples may exceed full scale by this much (rounding in a resampler) before
#: :func:`check_audio` refuses them.
_FULL_SCALE_TOL = 1e-3


def check_audio(x, sr: float, min_samples: int = 1, what: str = "audio") -> np.ndarray:
    """``x`` as a contiguous float32 1-D array after checking it and its rate ``sr``.

    A ``(n, channels)`` array (soundfile's layout) is averaged to mono. Raises
    :class:`~mmlab.errors.SignalError` for an empty or >2-D array, NaN/inf samples (with
    the time of the first one), fewer than ``min_samples`` samples, an implausible ``sr``
    (see :func:`check_rate`), integer samples (PCM codes: convert them explicitly with
    :func:`pcm_to_float`) and float samples outside [-1, 1] (full scale).
    """
    check_rate(sr, what)
    try:
        raw = np.asarray(x)
    except (TypeError, ValueError):
        raise SignalError(f"{what}: cannot be read as numbers ({type(x).__name__})") from None
    if raw.dtype.kind in "US":
        raise SignalError(f"{what}: cannot be read as numbers (dtype {raw.dtype})")
    if np.issubdtype(raw.dtype, np.integer) or raw.dtype == np.bool_:
        raise SignalError(f"{what}: integer samples ({raw.dtype}) are PCM codes, not a waveform in "
                          "[-1, 1]; convert them explicitly with mmlab.voice.pcm_to_float(x)")
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise SignalError(f"{what}: cannot be read as numbers ({type(x).__name__})") from None
    if arr.ndim == 2 and arr.shape[1] <= 8 and arr.shape[0] > arr.shape[1]:
        arr = arr.mean(axis=1)
    if arr.ndim != 1:
        raise SignalError(f"{what}: expected a 1-D waveform (or samples x channels), got shape {arr.shape}")
    if arr.size == 0:
        raise SignalError(f"{what}: the waveform is empty")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.argmax(bad))
        raise SignalError(f"{what}: {int(bad.sum())} NaN/inf sample(s), the first at {first / float(sr):.3f} s; "
                          "drop or interpolate them first")
    peak = float(np.max(np.abs(arr)))
    if peak > 1.0 + _FULL_SCALE_TOL:
        raise SignalError(f"{what}: samples reach {peak:.4g}, outside [-1, 1] (full scale); integer "
                          "PCM stored as floats? use mmlab.voice.pcm_to_float on the integers "
                          "(or divide by 32768 for 16-bit)")
    if arr.size < int(min_samples):
        raise SignalError(f"{what}: {arr.size} samples ({arr.size / float(sr) * 1000:.1f} ms) is too short; "
                          f"need at least {int(min_samples)} ({int(min_samples) / float(sr) * 1000:.1f} ms at {float(sr):g} Hz)")
    return np.ascontiguousarray(arr, dtype=np.float32)


def peak_level_db(x, sr: float, frame_s: float = 0.032) -> float:
    """Level of the loudest frame (RMS over ``frame_s``) in dBFS; ``-inf`` for digital silence."""
    y = check_audio(x, sr).astype(np.float64)
    n = max(1, min(len(y), int(round(frame_s * sr))))
    power = np.convolve(y * y, np.ones(n) / n, mode="valid")
    peak = float(np.sqrt(max(power.max(), 0.0)))
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def is_silent(x, sr: float, floor_db: float = SILENCE_DB) -> bool:
    """True when the loudest frame of ``x`` is below ``floor_db`` dBFS (see :data:`SILENCE_DB`)."""
    return peak_level_db(x, sr) < floor_db


def load(path, sr: float | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file as mono float32 (``mmlab.io.load_audio``), resampled to ``sr`` if
    given, and checked by :func:`check_audio`; returns ``(samples, rate)``."""
    from mmlab.io import load_audio

    x, rate = load_audio(path, rate=sr)
    return check_audio(x, rate, what=str(path)), rate


def pad_or_trim(x, n: int) -> np.ndarray:
    """The first ``n`` samples of ``x``, zero-padded at the end when ``x`` is shorter."""
    x = np.asarray(x, dtype=np.float32).ravel()
    if len(x) >= n:
        return x[:n].copy()
    return np.concatenate([x, np.zeros(n - len(x), dtype=np.float32)])


def frame_times(n_frames: int, sr: float, hop_length: int) -> np.ndarray:
    """Centre times (s) of ``n_frames`` centred frames every ``hop_length`` samples."""
    return np.arange(int(n_frames)) * hop_length / float(sr)


# ------------------------------------------------------------ spectral features
def _hop(n_fft: int, hop_length: int | None) -> int:
    return int(hop_length) if hop_length else int(n_fft) // 4


def stft(x, sr: float, n_fft: int = 512, hop_length: int | None = None, window: str = "hann") -> np.ndarray:
    """Complex STFT ``(1 + n_fft // 2, 1 + len(x) // hop)`` (librosa, centred frames).

    The clip must hold at least ``n_fft // 2 + 1`` samples (shorter ones cannot be
    centred by reflection and would only give padding artefacts).
    """
    import librosa

    y = check_audio(x, sr, min_samples=n_fft // 2 + 1)
    return librosa.stft(y, n_fft=int(n_fft), hop_length=_hop(n_fft, hop_length), window=window)


def spectrogram(x, sr: float, n_fft: int = 512, hop_length: int | None = None, db: bool = True,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Power spectrogram ``(S, freqs_hz, times_s)``; ``S`` in dB re the maximum when ``db``."""
    import librosa

    hop = _hop(n_fft, hop_length)
    S = np.abs(stft(x, sr, n_fft, hop)) ** 2
    if db:
        S = librosa.power_to_db(S, ref=np.max, top_db=80.0)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    return S, freqs, frame_times(S.shape[1], sr, hop)


def _check_band(sr: float, fmin: float, fmax: float | None, what: str) -> float:
    nyq = sr / 2.0
    fmax = nyq if fmax is None else float(fmax)
    if not 0 <= fmin < fmax:
        raise SignalError(f"{what}: need 0 <= fmin < fmax, got fmin={fmin}, fmax={fmax}")
    if fmax > nyq + 1e-9:
        raise SignalError(f"{what}: fmax {fmax:g} Hz is above the Nyquist frequency {nyq:g} Hz "
                          f"of a {sr:g} Hz signal (wrong rate, or resample first)")
    return fmax


def melspectrogram(x, sr: float, n_mels: int = 40, n_fft: int = 512, hop_length: int | None = None,
                   fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Mel power spectrogram ``(n_mels, n_frames)`` (librosa, Slaney mel scale)."""
    import librosa

    sr_i = check_rate(sr)
    fmax = _check_band(sr_i, fmin, fmax, "melspectrogram")
    S = np.abs(stft(x, sr_i, n_fft, hop_length)) ** 2
    return librosa.feature.melspectrogram(S=S, sr=sr_i, n_fft=int(n_fft), n_mels=int(n_mels),
                                          fmin=fmin, fmax=fmax)


def log_mel(x, sr: float, n_mels: int = 40, n_fft: int = 512, hop_length: int | None = None,
            fmin: float = 0.0, fmax: float | None = None, top_db: float = 80.0) -> np.ndarray:
    """Log-mel spectrogram in dB (re 1.0, i.e. absolute, floored at -100 dB) ``(n_mels, n_frames)``.

    Absolute rather than re the clip's maximum, so loudness differences between clips
    survive; ``top_db`` limits the dynamic range below each clip's peak.
    """
    import librosa

    M = melspectrogram(x, sr, n_mels, n_fft, hop_length, fmin, fmax)
    return librosa.power_to_db(M, ref=1.0, amin=1e-10, top_db=top_db).astype(np.float32)


def mfcc(x, sr: float, n_mfcc: int = 13, n_mels: int = 40, n_fft: int = 512, hop_length: int | None = None,
         fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """MFCCs ``(n_mfcc, 1 + len(x) // hop)``: DCT-II of the log-mel spectrogram (librosa)."""
    import librosa

    if not 1 <= int(n_mfcc) <= int(n_mels):
        raise SignalError(f"mfcc: n_mfcc must be between 1 and n_mels={n_mels}, got {n_mfcc}")
    M = melspectrogram(x, sr, n_mels, n_fft, hop_length, fmin, fmax)
    return librosa.feature.mfcc(S=librosa.power_to_db(M, amin=1e-10), n_mfcc=int(n_mfcc)).astype(np.float32)


def mfcc_summary(x, sr: float, n_mfcc: int = 13, deltas: bool = True, **kwargs) -> np.ndarray:
    """One fixed-length vector per clip: mean and std over time of each MFCC (and of its
    delta when ``deltas``): ``2 * n_mfcc`` or ``4 * n_mfcc`` values (chapter 11_voice).

    Deltas use librosa's Savitzky-Golay estimate over up to 9 frames (fewer on very short
    clips; zero when there are fewer than 3 frames). ``kwargs`` go to :func:`mfcc`.
    """
    import librosa

    C = mfcc(x, sr, n_mfcc=n_mfcc, **kwargs)
    parts = [C.mean(axis=1), C.std(axis=1)]
    if deltas:
        n = C.shape[1]
        width = min(9, n if n % 2 else n - 1)
        D = librosa.feature.delta(C, width=width) if width >= 3 else np.zeros_like(C)
        parts += [D.mean(axis=1), D.std(axis=1)]
    return np.concatenate(parts).astype(np.float32)


# ------------------------------------------------------------------------ pitch
def _pitch_band(sr: int, fmin: float, fmax: float, what: str) -> None:
    if not 0 < fmin < fmax:
        raise SignalError(f"{what}: need 0 < fmin < fmax, got fmin={fmin}, fmax={fmax}")
    if fmax >= sr / 2:
        raise SignalError(f"{what}: fmax {fmax:g} Hz needs a sampling rate above {2 * fmax:g} Hz, got {sr} Hz")


def pitch_pyin(x, sr: float, fmin: float = 65.0, fmax: float = 400.0, frame_length: int | None = None,
               hop_length: int | None = None) -> pd.DataFrame:
    """F0 track by probabilistic YIN (librosa.pyin): columns time, f0 (Hz, NaN when
    unvoiced), voiced (bool), voiced_prob.

    ``frame_length`` defaults to about 64 ms (at least two periods of ``fmin``), the hop
    to 10 ms. A silent clip is all unvoiced. The first call per process is slow (numba
    compiles pYIN); later calls are fast.
    """
    import librosa

    sr_i = check_rate(sr)
    _pitch_band(sr_i, fmin, fmax, "pitch_pyin")
    frame = int(frame_length) if frame_length else int(2 ** math.ceil(math.log2(0.064 * sr_i)))
    if frame < 2 * sr_i / fmin:
        raise SignalError(f"pitch_pyin: frame_length {frame} holds less than two periods of fmin={fmin:g} Hz")
    hop = int(hop_length) if hop_length else max(1, int(round(0.010 * sr_i)))
    y = check_audio(x, sr_i, min_samples=frame // 2 + 1, what="pitch_pyin")
    n_frames = 1 + len(y) // hop
    if is_silent(y, sr_i):
        return pd.DataFrame({"time": frame_times(n_frames, sr_i, hop), "f0": np.nan,
                             "voiced": False, "voiced_prob": 0.0})
    f0, voiced, prob = librosa.pyin(y, fmin=float(fmin), fmax=float(fmax), sr=sr_i, frame_length=frame,
                                    hop_length=hop)
    return pd.DataFrame({"time": frame_times(len(f0), sr_i, hop), "f0": f0.astype(float),
                         "voiced": voiced.astype(bool), "voiced_prob": prob.astype(float)})


def _sound(y: np.ndarray, sr: int):
    import parselmouth

    return parselmouth.Sound(y.astype(np.float64), sampling_frequency=float(sr))


def pitch_praat(x, sr: float, fmin: float = 75.0, fmax: float = 500.0, time_step: float = 0.01) -> pd.DataFrame:
    """F0 track by Praat's autocorrelation method (parselmouth ``to_pitch``): columns
    time, f0 (Hz, NaN when unvoiced), voiced (bool).

    Praat needs three periods of ``fmin`` in its analysis window, so the clip must be at
    least ``3 / fmin`` seconds long.
    """
    sr_i = check_rate(sr)
    _pitch_band(sr_i, fmin, fmax, "pitch_praat")
    y = check_audio(x, sr_i, min_samples=int(math.ceil(3.0 / fmin * sr_i)) + 1, what="pitch_praat")
    pitch = _sound(y, sr_i).to_pitch(time_step=time_step, pitch_floor=fmin, pitch_ceiling=fmax)
    f0 = pitch.selected_array["frequency"].astype(float)
    voiced = f0 > 0
    f0[~voiced] = np.nan
    return pd.DataFrame({"time": np.asarray(pitch.xs(), dtype=float), "f0": f0, "voiced": voiced})


def pitch_summary(track: pd.DataFrame) -> dict:
    """Mean and median F0 (Hz), F0 spread (semitones), voiced fraction and a quality flag
    (``"ok"`` or ``"unvoiced"`` with NaN statistics) of a pitch track."""
    f0 = track["f0"].to_numpy(dtype=float)
    f0 = f0[np.isfinite(f0) & (f0 > 0)]
    frac = float(len(f0) / len(track)) if len(track) else 0.0
    if len(f0) == 0:
        return {"f0_mean": np.nan, "f0_median": np.nan, "f0_sd_st": np.nan, "voiced_fraction": frac,
                "quality": "unvoiced"}
    st = 12.0 * np.log2(f0 / np.median(f0))
    return {"f0_mean": float(f0.mean()), "f0_median": float(np.median(f0)), "f0_sd_st": float(st.std()),
            "voiced_fraction": frac, "quality": "ok"}


# --------------------------------------------------------------- jitter/shimmer
def jitter_shimmer(x, sr: float, fmin: float = 75.0, fmax: float = 500.0) -> dict:
    """Local jitter and shimmer by Praat (parselmouth), the field's reference (chapter 11_voice).

    Glottal pulses come from ``To PointProcess (periodic, cc)``; *local jitter* is the
    mean absolute difference of consecutive periods over the mean period, *local shimmer*
    the same for peak amplitudes (both as fractions: 0.01 = 1 %), with Praat's standard
    voice-report limits (periods 0.1-20 ms, period factor 1.3, amplitude factor 1.6).
    Returns ``jitter_local``, ``shimmer_local``, ``shimmer_local_db``, ``n_pulses``,
    ``mean_period_s`` and ``quality``: ``"ok"``, ``"silent"`` or ``"unvoiced"`` (fewer
    than 3 pulses; the measures are then NaN).
    """
    from parselmouth.praat import call

    sr_i = check_rate(sr)
    _pitch_band(sr_i, fmin, fmax, "jitter_shimmer")
    y = check_audio(x, sr_i, min_samples=int(math.ceil(3.0 / fmin * sr_i)) + 1, what="jitter_shimmer")
    nan = {"jitter_local": np.nan, "shimmer_local": np.nan, "shimmer_local_db": np.nan, "n_pulses": 0,
           "mean_period_s": np.nan}
    if is_silent(y, sr_i):
        return {**nan, "quality": "silent"}
    snd = _sound(y, sr_i)
    pulses = call(snd, "To PointProcess (periodic, cc)", float(fmin), float(fmax))
    n = int(call(pulses, "Get number of points"))
    if n < 3:
        return {**nan, "n_pulses": n, "quality": "unvoiced"}
    pmin, pmax, factor, amp_factor = 0.0001, 0.02, 1.3, 1.6
    jit = call(pulses, "Get jitter (local)", 0.0, 0.0, pmin, pmax, factor)
    shim = call([snd, pulses], "Get shimmer (local)", 0.0, 0.0, pmin, pmax, factor, amp_factor)
    shim_db = call([snd, pulses], "Get shimmer (local_dB)", 0.0, 0.0, pmin, pmax, factor, amp_factor)
    period = call(pulses, "Get mean period", 0.0, 0.0, pmin, pmax, factor)

    def num(v) -> float:
        v = float(v) if v is not None else np.nan
        return v if math.isfinite(v) else np.nan

    out = {"jitter_local": num(jit), "shimmer_local": num(shim), "shimmer_local_db": num(shim_db),
           "n_pulses": n, "mean_period_s": num(period)}
    out["quality"] = "ok" if np.isfinite(out["jitter_local"]) else "unvoiced"
    return out


# ---------------------------------------------------------------------- eGeMAPS
@lru_cache(maxsize=1)
def _smile():
    import opensmile

    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                           feature_level=opensmile.FeatureLevel.Functionals)


#: eGeMAPS needs this much audio for its functionals (shorter clips give NaN, "too_short").
EGEMAPS_MIN_S = 0.1


def egemaps(x, sr: float) -> pd.Series:
    """The 88 eGeMAPSv02 functionals of one clip (openSMILE), as a float Series.

    ``series.attrs["quality"]`` is ``"ok"``, ``"silent"`` (below :data:`SILENCE_DB`;
    openSMILE would report zeros for pitch and loudness, so all values are NaN instead) or
    ``"too_short"`` (under :data:`EGEMAPS_MIN_S`; all NaN).
    """
    sr_i = check_rate(sr)
    y = check_audio(x, sr_i, what="egemaps")
    smile = _smile()
    quality = "ok"
    if len(y) < EGEMAPS_MIN_S * sr_i:
        quality = "too_short"
    elif is_silent(y, sr_i):
        quality = "silent"
    if quality != "ok":
        out = pd.Series(np.nan, index=list(smile.feature_names), dtype=float, name="egemaps")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            df = smile.process_signal(y, sr_i)
        out = pd.Series(df.iloc[0].to_numpy(dtype=float), index=list(df.columns), name="egemaps")
        if out.isna().all():
            quality = "too_short"
    out.attrs["quality"] = quality
    return out


def egemaps_table(clips: Sequence, sr: float) -> pd.DataFrame:
    """eGeMAPS of many clips at one rate: 88 feature columns plus ``quality``."""
    rows, flags = [], []
    for i, clip in enumerate(clips):
        s = egemaps(check_audio(clip, sr, what=f"clips[{i}]"), sr)
        rows.append(s.to_numpy())
        flags.append(s.attrs["quality"])
    table = pd.DataFrame(rows, columns=list(_smile().feature_names))
    table["quality"] = flags
    return table


# ---------------------------------------------------------------- voice activity
def vad(x, sr: float, top_db: float = 35.0, margin_db: float = 10.0, floor_db: float = SILENCE_DB,
        frame_length: int | None = None, hop_length: int | None = None, min_speech_s: float = 0.05,
        min_gap_s: float = 0.1) -> pd.DataFrame:
    """Speech segments by frame energy (chapter 11_voice): columns start, end, duration (s).

    A frame (default 25 ms, 10 ms hop, RMS level in dBFS) is speech when it is above the
    highest of three thresholds: ``top_db`` below the loudest frame, ``margin_db`` above
    the noise floor (the 10th percentile of the frame levels), and ``floor_db`` dBFS
    (so a silent clip has no speech: librosa alone would call all of it speech). The
    decision itself is ``librosa.effects.split`` with that threshold. Gaps shorter than
    ``min_gap_s`` are bridged, then segments shorter than ``min_speech_s`` dropped.

    Limits: energy cannot tell speech from other loud sounds, and a clip with no pause
    at all (trimmed words) has no noise floor to measure, so its quietest tenth counts as
    "noise" and ``margin_db`` may trim soft edges; set ``margin_db=-inf`` then.
    """
    import librosa

    sr_i = check_rate(sr)
    frame = int(frame_length) if frame_length else int(round(0.025 * sr_i))
    hop = int(hop_length) if hop_length else int(round(0.010 * sr_i))
    y = check_audio(x, sr_i, what="vad")
    empty = pd.DataFrame({"start": pd.Series(dtype=float), "end": pd.Series(dtype=float),
                          "duration": pd.Series(dtype=float)})
    if len(y) < frame or is_silent(y, sr_i, floor_db):
        return empty
    rms = librosa.feature.rms(y=y, frame_length=frame, hop_length=hop, center=True)[0]
    level = 20.0 * np.log10(np.maximum(rms, 1e-10))
    threshold_db = max(float(level.max()) - top_db, float(np.percentile(level, 10)) + margin_db, floor_db)
    if threshold_db >= level.max():
        return empty
    ref = 10 ** ((threshold_db + top_db) / 20.0)  # split() keeps frames above ref - top_db
    intervals = librosa.effects.split(y, top_db=top_db, ref=ref, frame_length=frame, hop_length=hop)
    segs: list[list[float]] = []
    for a, b in intervals:
        start, end = a / sr_i, b / sr_i
        if segs and start - segs[-1][1] < min_gap_s:
            segs[-1][1] = end
        else:
            segs.append([start, end])
    segs = [s for s in segs if s[1] - s[0] >= min_speech_s]
    if not segs:
        return empty
    arr = np.array(segs, dtype=float)
    return pd.DataFrame({"start": arr[:, 0], "end": arr[:, 1], "duration": arr[:, 1] - arr[:, 0]})


def speech_overlap(found: pd.DataFrame, truth: pd.DataFrame, resolution_s: float = 0.01) -> dict:
    """Agreement of two segment tables (columns start, end in s) on a ``resolution_s`` grid:
    ``recall`` (share of true speech time found), ``precision`` (share of found time that
    is true speech) and their harmonic mean ``f1``; NaN where a denominator is zero."""
    ends = [float(t["end"].max()) for t in (found, truth) if len(t)]
    n = int(math.ceil(max(ends, default=0.0) / resolution_s)) + 1
    grid = (np.arange(n) + 0.5) * resolution_s

    def mask(t: pd.DataFrame) -> np.ndarray:
        m = np.zeros(n, dtype=bool)
        for a, b in zip(t["start"], t["end"]):
            m |= (grid >= a) & (grid < b)
        return m

    f, g = mask(found), mask(truth)
    both = float((f & g).sum())
    recall = both / g.sum() if g.sum() else np.nan
    precision = both / f.sum() if f.sum() else np.nan
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else np.nan
    return {"recall": recall, "precision": precision, "f1": f1}


# ------------------------------------------------------------------- baselines
def _clip_list(X, sr: int) -> list[np.ndarray]:
    if isinstance(X, np.ndarray) and X.ndim == 1 and X.dtype != object:
        raise SignalError("expected a list of clips (1-D arrays), got a single 1-D array; wrap it in a list")
    return [check_audio(c, sr, what=f"clips[{i}]") for i, c in enumerate(X)]


class MFCCSummary(TransformerMixin, BaseEstimator):
    """Clips -> :func:`mfcc_summary` vectors ``(n_clips, 4 * n_mfcc)`` (scikit-learn transformer)."""

    def __init__(self, sr: int = 8000, n_mfcc: int = 13, n_mels: int = 40, n_fft: int = 256,
                 hop_length: int | None = None, deltas: bool = True):
        self.sr = sr
        self.n_mfcc = n_mfcc
        self.n_mels = n_mels
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.deltas = deltas

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        sr = check_rate(self.sr)
        hop = self.hop_length or int(round(0.010 * sr))
        return np.stack([mfcc_summary(c, sr, n_mfcc=self.n_mfcc, deltas=self.deltas, n_mels=self.n_mels,
                                      n_fft=self.n_fft, hop_length=hop) for c in _clip_list(X, sr)])


def mfcc_linear_model(sr: int = 8000, random_state: int = 0, C: float = 1.0, **mfcc_kwargs):
    """MFCC summary + standardisation + logistic regression (chapter 11_voice baseline).

    A scikit-learn pipeline whose ``fit``/``predict`` take a list of clips at ``sr``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(MFCCSummary(sr=sr, **mfcc_kwargs), StandardScaler(),
                         LogisticRegression(C=C, max_iter=5000, random_state=random_state))


def _torch_module():
    import torch
    from torch import nn

    class _LogMelCNN(nn.Module):
        """Three conv blocks (3x3 conv, batch norm, ReLU, 2x2 max pool), the maximum over
        time, then dropout and a linear layer on (channels x mel bands):
        ``(batch, 1, n_mels, n_frames) -> (batch, n_classes)``."""

        def __init__(self, n_classes: int, n_mels: int = 40, width: int = 8, dropout: float = 0.2):
            super().__init__()
            if n_mels < 8:
                raise SignalError(f"LogMelCNN: n_mels must be at least 8, got {n_mels}")
            chans = [1, width, 2 * width, 4 * width]
            blocks = []
            for a, b in zip(chans[:-1], chans[1:]):
                blocks += [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(),
                           nn.MaxPool2d(2)]
            self.features = nn.Sequential(*blocks)
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(chans[-1] * (n_mels // 8), n_classes))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.features(x).amax(dim=3)  # keep where in frequency, forget when in time
            return self.head(h.flatten(1))

    return _LogMelCNN


def LogMelCNN(n_classes: int, n_mels: int = 40, width: int = 8, dropout: float = 0.2):
    """A small CNN on log-mel ``(batch, 1, n_mels, n_frames)`` (PyTorch ``nn.Module``).

    Three conv blocks of ``width``, ``2*width`` and ``4*width`` channels (each halves both
    axes), the maximum over time (so a word may sit anywhere in the clip), dropout and a
    linear layer over channels x frequency; about 7.5 k parameters at the defaults.
    """
    return _torch_module()(n_classes, n_mels, width, dropout)


class CNNClassifier(ClassifierMixin, BaseEstimator):
    """Log-mel + :func:`LogMelCNN`, trained with Adam on the CPU (chapter 11_voice).

    ``fit(clips, y)`` / ``predict(clips)`` take the same list of clips at ``sr`` as
    :func:`mfcc_linear_model`. Clips are cut or zero-padded to ``duration`` seconds,
    turned into log-mel (``n_mels`` bands, 32 ms window, 10 ms hop) and standardised per
    band with the training statistics. Training shifts each batch in time by up to
    ``shift_s`` seconds (augmentation) and anneals the learning rate on a cosine. Torch
    runs on ``n_threads`` CPU threads (restored afterwards); with a fixed thread count the
    result is deterministic given ``random_state``. ``history_`` keeps loss and training
    accuracy per epoch. ``progress=True`` shows a tqdm bar over the epochs.
    """

    def __init__(self, sr: int = 8000, n_mels: int = 40, duration: float = 1.0, epochs: int = 12,
                 batch_size: int = 16, lr: float = 5e-3, width: int = 8, weight_decay: float = 1e-4,
                 shift_s: float = 0.1, random_state: int = 0, n_threads: int | None = 1,
                 progress: bool = False):
        self.sr = sr
        self.n_mels = n_mels
        self.duration = duration
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.width = width
        self.weight_decay = weight_decay
        self.shift_s = shift_s
        self.random_state = random_state
        self.n_threads = n_threads
        self.progress = progress

    def _features(self, X) -> np.ndarray:
        sr = check_rate(self.sr)
        n = int(round(self.duration * sr))
        n_fft = int(2 ** math.ceil(math.log2(0.032 * sr)))
        hop = int(round(0.010 * sr))
        return np.stack([log_mel(pad_or_trim(c, n), sr, n_mels=self.n_mels, n_fft=n_fft, hop_length=hop)
                         for c in _clip_list(X, sr)])

    def fit(self, X, y):
        import torch
        from torch import nn

        y = np.asarray(y)
        if len(y) != len(X):
            raise SignalError(f"CNNClassifier.fit: {len(X)} clips but {len(y)} labels")
        if int(self.epochs) < 1:
            raise SignalError(f"CNNClassifier: epochs must be >= 1, got {self.epochs}")
        self.classes_, codes = np.unique(y, return_inverse=True)
        feats = self._features(X)
        self.mean_ = feats.mean(axis=(0, 2))[:, None]
        self.std_ = feats.std(axis=(0, 2))[:, None] + 1e-6
        data = torch.from_numpy((feats - self.mean_) / self.std_).float().unsqueeze(1)
        target = torch.from_numpy(codes.astype(np.int64))
        bs = int(self.batch_size)
        steps = int(self.epochs) * math.ceil(len(target) / bs)
        max_shift = int(round(self.shift_s * 100))  # frames at a 10 ms hop
        with seeded(self.random_state), torch_threads(self.n_threads):
            gen = torch.Generator().manual_seed(int(self.random_state))
            model = LogMelCNN(len(self.classes_), n_mels=self.n_mels, width=self.width)
            opt = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
            loss_fn = nn.CrossEntropyLoss()
            correct = [0]

            def batch_loss(idx):
                idx = torch.from_numpy(idx)
                xb = data[idx]
                if max_shift > 0:
                    shift = int(torch.randint(-max_shift, max_shift + 1, (1,), generator=gen))
                    xb = torch.roll(xb, shifts=shift, dims=3)
                logits = model(xb)
                correct[0] += int((logits.argmax(1) == target[idx]).sum())
                return loss_fn(logits, target[idx])

            def accuracy(record):
                acc, correct[0] = correct[0] / len(target), 0
                return {"train_accuracy": acc}

            result = train_loop(model, opt, lambda epoch: minibatches(np.arange(len(target)), bs, gen),
                                batch_loss, epochs=int(self.epochs), scheduler=sched, log=accuracy,
                                progress=bool(self.progress), desc="CNN epochs")
        self.history_ = [{"loss": r["train_loss"], "train_accuracy": r["train_accuracy"]}
                         for r in result.history]
        self.module_ = model.eval()
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities ``(n_clips, n_classes)`` in the order of ``classes_``."""
        import torch

        feats = (self._features(X) - self.mean_) / self.std_
        with torch_threads(self.n_threads), torch.inference_mode():
            logits = self.module_(torch.from_numpy(feats).float().unsqueeze(1))
        return torch.softmax(logits, dim=1).numpy()

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
