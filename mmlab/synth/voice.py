"""A small source-filter voice synthesizer (chapter 05_data; voice features in chapter 12).

Speech here is a glottal source filtered by the vocal tract, which is exactly the model
voice features (F0, jitter, shimmer, formants, loudness, speaking rate) are built on, so
every one of them can be planted and recovered:

* **source**: a train of Rosenberg glottal-flow pulses placed at exact (sub-sample) times.
  The period follows an F0 contour (declination, pitch accents, a final fall or rise),
  perturbed pulse by pulse so that local *jitter* (mean absolute difference of consecutive
  periods over the mean period) and local *shimmer* (the same for pulse amplitudes) have
  the requested values; lip radiation is the flow's derivative; aspiration noise gives
  breathiness;
* **filter**: cascaded two-pole resonators at formants F1-F4 (unity gain at 0 Hz), one
  vowel per syllable;
* **prosody**: syllables at a speaking rate, word and phrase pauses from the punctuation,
  unvoiced consonant noise at syllable onsets, an RMS loudness in dBFS, background noise.

The text only sets the syllable count and pauses (vowels are drawn at random): the sound
is speech-like, not intelligible. :func:`synthesize` returns float32 audio in [-1, 1] and
a dict of what was planted (F0 per pulse, voiced intervals, speech onset and duration).

Known-answer signals for chapter 11_voice: :func:`harmonic_tone` (a steady harmonic tone),
:func:`pulse_train` (glottal-like pulses with planted period jitter and amplitude shimmer)
and :func:`synthetic_words` (a clearly synthetic stand-in for FSDD when it is absent).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import signal as sps

__all__ = ["VoiceParams", "draw_speaker", "modulate", "synthesize", "count_syllables", "VOWELS",
           "harmonic_tone", "pulse_train", "synthetic_words", "SYNTHETIC_WORDS"]

#: Formants F1-F3 (Hz) of an adult male speaker (Peterson & Barney-like averages).
VOWELS = {
    "a": (730.0, 1090.0, 2440.0), "e": (530.0, 1840.0, 2480.0), "i": (270.0, 2290.0, 3010.0),
    "o": (570.0, 840.0, 2410.0), "u": (300.0, 870.0, 2240.0), "@": (500.0, 1500.0, 2500.0),
}
_BANDWIDTHS = (80.0, 100.0, 130.0, 200.0)
_F4 = 3500.0
_CONTROL_HZ = 200.0  # F0 contour resolution


@dataclass(frozen=True)
class VoiceParams:
    """One speaker in one state.

    f0: mean fundamental frequency (Hz). intonation_st: size of pitch accents and of the
    declination, in semitones (0 = monotone). jitter, shimmer: local jitter and shimmer as
    fractions (0.005 = 0.5 %). formant_scale: multiplies F1-F4 (about 1.15-1.2 for women,
    a shorter vocal tract). syllable_rate: syllables per second. loudness_db: RMS of the
    voiced speech in dBFS. breathiness: aspiration noise relative to the pulses.
    noise_db: RMS of the background noise in dBFS (``-inf`` for none).
    """

    f0: float = 120.0
    intonation_st: float = 2.0
    jitter: float = 0.005
    shimmer: float = 0.035
    formant_scale: float = 1.0
    syllable_rate: float = 4.5
    loudness_db: float = -20.0
    breathiness: float = 0.05
    noise_db: float = -55.0

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if math.isfinite(v) else None)
                for k, v in dataclasses.asdict(self).items()}


def draw_speaker(rng: np.random.Generator, sex: str, variability: float = 1.0) -> VoiceParams:
    """A random adult speaker of sex ``"F"`` or ``"M"`` (``variability`` 0: the average one)."""
    v = float(variability)
    female = sex == "F"
    f0 = (205.0 if female else 115.0) * 2 ** (v * rng.normal(0.0, 1.5) / 12.0)
    return VoiceParams(
        f0=float(np.clip(f0, 75.0, 300.0)),
        intonation_st=float(np.clip(2.5 + v * rng.normal(0.0, 0.7), 0.5, 5.0)),
        jitter=float(0.005 * math.exp(v * rng.normal(0.0, 0.3))),
        shimmer=float(0.035 * math.exp(v * rng.normal(0.0, 0.25))),
        formant_scale=float((1.17 if female else 1.0) * math.exp(v * rng.normal(0.0, 0.035))),
        syllable_rate=float(np.clip(4.6 + v * rng.normal(0.0, 0.5), 3.0, 6.5)),
        loudness_db=float(-22.0 + v * rng.normal(0.0, 2.5)),
        breathiness=float(np.clip((0.08 if female else 0.05) * math.exp(v * rng.normal(0.0, 0.3)), 0.0, 0.3)),
    )


def modulate(p: VoiceParams, f0_st: float = 0.0, intonation_x: float = 1.0, jitter_x: float = 1.0,
             shimmer_x: float = 1.0, loudness_db: float = 0.0, rate_x: float = 1.0,
             breathiness_x: float = 1.0, noise_db: float | None = None) -> VoiceParams:
    """``p`` shifted by a state: F0 by ``f0_st`` semitones, the rest multiplied/added."""
    return dataclasses.replace(
        p, f0=p.f0 * 2 ** (f0_st / 12.0), intonation_st=p.intonation_st * intonation_x,
        jitter=p.jitter * jitter_x, shimmer=p.shimmer * shimmer_x,
        loudness_db=p.loudness_db + loudness_db, syllable_rate=p.syllable_rate * rate_x,
        breathiness=p.breathiness * breathiness_x,
        noise_db=p.noise_db if noise_db is None else noise_db,
    )


_WORD_RE = re.compile(r"[A-Za-z0-9']+|[,;:.!?]")


def count_syllables(word: str) -> int:
    """Vowel groups in a word (at least one): a rough English syllable count."""
    w = word.lower()
    n = len(re.findall(r"[aeiouy]+", w))
    if w.endswith("e") and n > 1 and not w.endswith(("le", "ee")):
        n -= 1
    return max(1, n) if any(ch.isalnum() for ch in w) else 0


def _plan(text: str | int, rate: float, rng: np.random.Generator):
    """Syllables as (start, consonant_end, end, accent) and the total duration (s)."""
    if isinstance(text, (int, np.integer)):
        tokens = ["a"] * int(text) + ["."]
    else:
        tokens = _WORD_RE.findall(text) or ["."]
    syl, t = [], 0.0
    question = isinstance(text, str) and text.strip().endswith("?")
    for tok in tokens:
        if tok in ",;:":
            t += 0.22 + 0.08 * rng.uniform()
            continue
        if tok in ".!?":
            t += 0.35 + 0.1 * rng.uniform()
            continue
        k = count_syllables(tok)
        stressed = int(rng.integers(0, k)) if len(tok) > 3 else -1
        for j in range(k):
            d = rng.uniform(0.75, 1.25) / rate * (1.25 if j == stressed else 1.0)
            cons = d * rng.uniform(0.2, 0.4) if rng.uniform() < 0.7 else 0.0
            syl.append((t, t + cons, t + d, j == stressed))
            t += d
        t += rng.uniform(0.01, 0.05)
    if tokens[-1] not in ".!?":
        t += 0.2
    return syl, t, question


def _rosenberg(tau: np.ndarray, period: np.ndarray) -> np.ndarray:
    """Rosenberg glottal flow for times ``tau`` (s) since pulse start, per-pulse periods."""
    tp, tn = 0.40 * period, 0.16 * period
    rise = 0.5 - 0.5 * np.cos(np.pi * tau / tp)
    fall = np.cos(0.5 * np.pi * (tau - tp) / tn)
    return np.where(tau < 0, 0.0, np.where(tau <= tp, rise, np.where(tau <= tp + tn, fall, 0.0)))


@functools.lru_cache(maxsize=8)
def _fricative_bands(sr: int) -> tuple[np.ndarray, ...]:
    """Band-pass filters for unvoiced consonant noise (s, sh, f/th, h-like)."""
    top = 0.9 * sr / 2
    edges = [(3500.0, 7000.0), (2000.0, 4000.0), (1500.0, 6000.0), (800.0, 3000.0)]
    return tuple(sps.butter(2, [min(lo, 0.5 * top), min(hi, top)], btype="band", fs=sr, output="sos")
                 for lo, hi in edges)


def _resonator_sos(freqs: np.ndarray, bws: np.ndarray, sr: int) -> np.ndarray:
    """Second-order sections (one per formant) of unity-DC-gain two-pole resonators."""
    r = np.exp(-np.pi * bws / sr)
    c = 2.0 * r * np.cos(2.0 * np.pi * freqs / sr)
    a1, a2 = -c, r * r
    gain = 1.0 + a1 + a2
    zeros = np.zeros_like(gain)
    return np.stack([gain, zeros, zeros, np.ones_like(gain), a1, a2], axis=-1)


def synthesize(text: str | int, params: VoiceParams = VoiceParams(), sr: int = 16000,
               rng: np.random.Generator | None = None, lead_s: float = 0.25,
               trail_s: float = 0.25, telephone: bool = False, noise: float = 1.0,
               ) -> tuple[np.ndarray, dict]:
    """Speak ``text`` (or ``n`` syllables) with ``params``; return ``(audio, info)``.

    ``audio`` is float32 at ``sr`` Hz: ``lead_s`` of background noise, the speech,
    ``trail_s`` of noise. ``telephone`` band-limits to 300-3400 Hz. ``noise`` scales
    the background noise (0: none). ``info`` holds ``speech_onset`` and
    ``speech_duration`` (s from the clip start), ``f0_hz`` (mean of the planted pulse
    rates), ``pulse_times`` (s from clip start), ``voiced`` (intervals) and the params.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    p = params
    syl, dur, question = _plan(text, max(p.syllable_rate, 0.5), rng)
    total = lead_s + dur + trail_s
    n = int(math.ceil(total * sr))

    # --- F0 contour on a 5 ms control grid (semitones around the speaker's mean)
    ctl_fs = _CONTROL_HZ
    tc = np.arange(int(math.ceil(total * ctl_fs)) + 2) / ctl_fs
    s = tc - lead_s
    st = p.intonation_st * 0.5 * (0.5 - np.clip(s / max(dur, 1e-3), 0.0, 1.0))
    for a, _, b, accent in syl:
        if accent:
            st += p.intonation_st * rng.uniform(0.5, 1.0) * np.exp(-0.5 * ((s - 0.5 * (a + b)) / 0.08) ** 2)
    if p.intonation_st > 0:
        phi = math.exp(-1.0 / (ctl_fs * 0.3))
        e = rng.standard_normal(len(tc)) * 0.25 * p.intonation_st * math.sqrt(1 - phi * phi)
        st += sps.lfilter([1.0], [1.0, -phi], e)
        end_ramp = np.clip((s - (dur - 0.5)) / 0.4, 0.0, 1.0)
        st += (1.0 if question else -0.6) * p.intonation_st * end_ramp
    in_voice = np.zeros(len(tc), dtype=bool)
    for _, c, b, _ in syl:
        in_voice[int((lead_s + c) * ctl_fs): int((lead_s + b) * ctl_fs) + 1] = True
    if in_voice.any():  # p.f0 is the (geometric) mean F0 of the voiced speech
        st -= st[in_voice].mean()
    f0_ctl = p.f0 * 2.0 ** (st / 12.0)

    # --- glottal pulses in the voiced (vowel) parts of each syllable
    voiced = [(lead_s + c, lead_s + b) for _, c, b, _ in syl if b - c > 0.03]
    accents = [acc for _, c, b, acc in syl if b - c > 0.03]
    times, periods, amps = [], [], []
    kj, ks = p.jitter / 1.128, p.shimmer / 1.128  # E|e1 - e2| = 1.128 for unit normals
    cyc = np.concatenate([[0.0], np.cumsum(f0_ctl[:-1]) / ctl_fs])  # F0 phase (cycles)
    for (a, b), acc in zip(voiced, accents):
        t0 = a + rng.uniform(0.0, 0.002)
        c0 = np.interp(t0, tc, cyc)
        nominal = np.interp(c0 + np.arange(int(np.interp(b, tc, cyc) - c0) + 2), cyc, tc)
        per = np.diff(nominal) * (1.0 + kj * rng.standard_normal(len(nominal) - 1))
        start = t0 + np.concatenate([[0.0], np.cumsum(per[:-1])])
        ok = start + per <= b
        times.append(start[ok])
        periods.append(per[ok])
        amps.append((1.25 if acc else 1.0) * (1.0 + ks * rng.standard_normal(int(ok.sum()))))
    times, periods, amps = (np.concatenate(x) if x else np.zeros(0) for x in (times, periods, amps))

    flow = np.zeros(n)
    if len(times):
        width = int(math.ceil(0.56 * periods.max() * sr)) + 2
        i0 = np.ceil(times * sr).astype(np.int64)
        idx = i0[:, None] + np.arange(width)[None, :]
        tau = idx / sr - times[:, None]
        vals = amps[:, None] * _rosenberg(tau, periods[:, None])
        ok = idx < n
        flow = np.bincount(idx[ok], weights=vals[ok], minlength=n)[:n]
    # syllable envelope (20 ms ramps) so voicing starts and stops smoothly
    env = np.zeros(n)
    ramp = int(0.02 * sr)
    for a, b in voiced:
        i, j = int(a * sr), min(int(b * sr), n)
        if j - i > 2 * ramp:
            seg = np.ones(j - i)
            seg[:ramp] = np.linspace(0.0, 1.0, ramp)
            seg[-ramp:] = np.linspace(1.0, 0.0, ramp)
            env[i:j] = seg
    source = np.diff(flow, prepend=0.0) * sr / (2 * np.pi * p.f0)  # lip radiation
    source += p.breathiness * np.abs(source).max(initial=0.0) * 0.3 * rng.standard_normal(n) \
        * np.sqrt(np.maximum(flow, 0.0) / max(flow.max(initial=0.0), 1e-9))
    source *= np.maximum(env, 0.0)

    # --- vocal tract: one vowel per voiced segment; each segment (source already faded
    # in and out) is filtered on its own and its ringing overlaps the next one
    names = list(VOWELS)
    out = np.zeros(n)
    tail = int(0.04 * sr)
    for a, b in voiced:
        v = np.array(VOWELS[names[int(rng.integers(0, len(names)))]] + (_F4,)) * p.formant_scale
        keep = v < 0.45 * sr
        sos = _resonator_sos(v[keep], np.array(_BANDWIDTHS)[keep], sr)
        i, j = int(a * sr), min(int(b * sr) + tail, n)
        out[i:j] += sps.sosfilt(sos, source[i:j])

    # --- unvoiced consonants: band-pass noise bursts at syllable onsets
    bands = _fricative_bands(sr)
    for a, c, _, _ in syl:
        if c - a < 0.02:
            continue
        i, j = int((lead_s + a) * sr), min(int((lead_s + c) * sr), n)
        burst = sps.sosfilt(bands[int(rng.integers(0, len(bands)))], rng.standard_normal(j - i))
        out[i:j] += 0.12 * burst * np.hanning(j - i)

    speech = np.concatenate([out[int(a * sr): int(b * sr)] for a, b in voiced]) if voiced else out
    rms = math.sqrt(float(np.mean(speech ** 2))) if len(speech) else 0.0
    if rms > 0:
        out *= 10 ** (p.loudness_db / 20.0) / rms
    if noise > 0 and math.isfinite(p.noise_db):
        bg = sps.lfilter([1.0], [1.0, -0.7], rng.standard_normal(n))
        out += noise * 10 ** (p.noise_db / 20.0) * bg / bg.std()
    if telephone:
        out = sps.sosfilt(sps.butter(4, [300.0, 3400.0], btype="band", fs=sr, output="sos"), out)
    out = np.clip(out, -1.0, 1.0).astype(np.float32)
    info = {
        "speech_onset": lead_s, "speech_duration": dur, "duration": n / sr,
        "f0_hz": float(np.mean(1.0 / periods)) if len(periods) else float("nan"),
        "pulse_times": times, "voiced": voiced, "n_syllables": len(syl),
        "params": p.to_dict(),
    }
    return out, info


# ------------------------------------------------------------ known-answer signals (chapter 11_voice)
def harmonic_tone(f0: float = 150.0, duration: float = 1.0, sr: int = 16000, n_harmonics: int = 5,
                  amplitude: float = 0.3) -> np.ndarray:
    """A steady harmonic tone: harmonics k = 1..n at f0*k with amplitude 1/k (float32)."""
    t = np.arange(int(round(duration * sr))) / sr
    k = np.arange(1, int(n_harmonics) + 1)
    k = k[k * f0 < sr / 2]
    y = (np.sin(2 * np.pi * f0 * k[:, None] * t[None, :]) / k[:, None]).sum(axis=0)
    return (amplitude * y / np.abs(y).max()).astype(np.float32)


def pulse_train(f0: float = 150.0, duration: float = 1.0, sr: int = 16000, jitter: float = 0.0,
                shimmer: float = 0.0, seed: int = 0, amplitude: float = 0.3) -> tuple[np.ndarray, dict]:
    """Glottal-like pulses with planted period jitter and amplitude shimmer.

    Periods are ``(1 + e * jitter / 1.128) / f0`` with ``e`` standard normal, so the
    expected local jitter (mean |difference of consecutive periods| / mean period; for
    normal e, E|e1 - e2| = 1.128) is ``jitter``; amplitudes likewise for ``shimmer``. Each
    pulse is the derivative of a 0.4 ms Gaussian at its exact (sub-sample) time. Returns
    ``(audio, truth)`` where ``truth`` holds the pulse ``times`` and the realised
    ``jitter_local`` and ``shimmer_local``.
    """
    rng = np.random.default_rng(seed)
    n = int(round(duration * sr))
    n_max = int(duration * f0 * 1.5) + 4
    periods = (1.0 + rng.standard_normal(n_max) * jitter / 1.128) / f0
    amps = 1.0 + rng.standard_normal(n_max) * shimmer / 1.128
    times = 0.01 + np.concatenate([[0.0], np.cumsum(periods[:-1])])
    keep = times < duration - 0.01
    times, amps = times[keep], amps[keep]
    width = int(round(0.002 * sr))
    idx = np.round(times * sr).astype(int)[:, None] + np.arange(-width, width + 1)[None, :]
    tau = idx / sr - times[:, None]
    sigma = 0.0004
    shape = -tau / sigma * np.exp(-0.5 * (tau / sigma) ** 2)
    ok = (idx >= 0) & (idx < n)
    y = np.bincount(idx[ok], weights=(amps[:, None] * shape)[ok], minlength=n)[:n]
    y = (amplitude * y / np.abs(y).max()).astype(np.float32)
    per = np.diff(times)
    truth = {"times": times,
             "jitter_local": float(np.mean(np.abs(np.diff(per))) / np.mean(per)) if len(per) > 1 else np.nan,
             "shimmer_local": float(np.mean(np.abs(np.diff(amps))) / np.mean(amps)) if len(amps) > 1 else np.nan}
    return y, truth


#: The vowel-pair "words" of :func:`synthetic_words` (vowels as in :data:`VOWELS`).
SYNTHETIC_WORDS = {"ai": ("a", "i"), "ia": ("i", "a"), "ou": ("o", "u"), "uo": ("u", "o")}


def _vowel_filter(y: np.ndarray, formants: Sequence[float], sr: int) -> np.ndarray:
    for f, bw in zip(formants, (80.0, 100.0, 130.0)):
        if f >= 0.45 * sr:
            continue
        r = math.exp(-math.pi * bw / sr)
        a = [1.0, -2.0 * r * math.cos(2 * math.pi * f / sr), r * r]
        y = sps.lfilter([sum(a)], a, y)
    return y


def synthetic_words(n_per_class: int = 20, sr: int = 8000, seed: int = 0, n_speakers: int = 6,
                    words: dict[str, tuple[str, ...]] | None = None) -> pd.DataFrame:
    """A *synthetic* stand-in for FSDD (chapter 11_voice without real data).

    Each "word" is a sequence of vowels (default :data:`SYNTHETIC_WORDS`: ``ai``, ``ia``,
    ``ou``, ``uo``; ``ai`` and ``ia`` differ only in order): jittered glottal pulses
    (:func:`pulse_train`) through three formant resonators per vowel, 120-250 ms per
    vowel with 30 ms cross-fades, by ``n_speakers`` speakers who differ in F0 (90-220 Hz)
    and vocal-tract length (formants x 0.9-1.2), plus -50 dBFS noise. Not speech: a
    known-answer data set whose classes live in the spectral envelope and its order.

    Columns: ``audio`` (float32 at ``sr``), ``label``, ``speaker``, ``index`` (0 ..
    n_per_class-1 within a class) and ``split`` (the first quarter of each class
    ``"test"``, every speaker in it, like FSDD's official split). Deterministic in ``seed``.
    """
    words = dict(SYNTHETIC_WORDS if words is None else words)
    rng = np.random.default_rng(seed)
    speakers = [(float(rng.uniform(90.0, 220.0)), float(rng.uniform(0.9, 1.2))) for _ in range(int(n_speakers))]
    fade = int(0.03 * sr)
    n_test = max(1, int(n_per_class) // 4)
    rows = []
    for label, vowels in words.items():
        for i in range(int(n_per_class)):
            s = i % len(speakers)
            f0, scale = speakers[s]
            f0 *= float(rng.uniform(0.95, 1.05))
            parts = []
            for v in vowels:
                dur = float(rng.uniform(0.12, 0.25))
                src, _ = pulse_train(f0, dur + 0.03, sr, jitter=0.01, shimmer=0.04, seed=int(rng.integers(2**31)))
                seg = _vowel_filter(src.astype(np.float64), [f * scale for f in VOWELS[v]], sr)
                seg *= np.concatenate([np.linspace(0, 1, fade), np.ones(len(seg) - 2 * fade), np.linspace(1, 0, fade)])
                parts.append(seg)
            lead = int(rng.uniform(0.05, 0.2) * sr)
            total = lead + sum(len(p) for p in parts) - fade * (len(parts) - 1) + int(0.1 * sr)
            y = np.zeros(total)
            pos = lead
            for p in parts:
                y[pos: pos + len(p)] += p / (np.abs(p).max() + 1e-12)
                pos += len(p) - fade
            y = 0.3 * y / np.abs(y).max() + 10 ** (-50 / 20) * rng.standard_normal(total)
            rows.append({"audio": y.astype(np.float32), "label": label, "speaker": f"spk{s}", "index": i,
                         "split": "test" if i < n_test else "train"})
    return pd.DataFrame(rows)
