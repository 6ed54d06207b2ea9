"""Physiological signal generators: ECG, PPG/BVP, EDA, respiration, skin temperature.

Introduced in chapter 05_data. The generators are vectorised renderers driven by event
times you control, so the events are exact ground truth for detectors:

* heart beats come from an integral-pulse-frequency-modulation model of a heart-rate
  curve (:func:`beat_times`); ECG (:func:`ecg_from_beats`) and PPG/BVP
  (:func:`ppg_from_beats`) draw one sum-of-Gaussians template per beat at its exact
  (sub-sample) time, whose wave timings follow the preceding RR interval;
* skin-conductance responses are a Poisson process (:func:`poisson_events`) rendered with a
  bi-exponential impulse response on top of a tonic level (:func:`scr_response`);
* breathing is a phase integral of a respiratory-rate curve (:func:`breathing`), with an
  asymmetric inhale/exhale cycle; inhale onsets are returned.

All times are seconds on the reference clock; a renderer takes a uniform grid
``t0 + arange(n) / fs``, so a drifting device is the same call with a slightly different
``fs``. The convenience functions :func:`simulate_ecg`, :func:`simulate_eda` and
:func:`simulate_resp` make one signal with constant settings. We do not call neurokit2's
``ecg_simulate``: its ECGSYN method is slow for hour-long 700 Hz sessions and its
'simple' method does not take an RR series, while tests use neurokit2's detectors as an
independent reference on these signals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal as sps

__all__ = [
    "lag", "ou_noise", "poisson_events", "beat_times", "EcgShape", "ecg_from_beats",
    "ppg_from_beats", "scr_response", "breathing", "resp_wave", "render_bumps",
    "simulate_ecg", "simulate_eda", "simulate_resp",
]


# ------------------------------------------------------------------ slow dynamics
def lag(x: np.ndarray, fs: float, tau: float) -> np.ndarray:
    """First-order low-pass (time constant ``tau`` s), starting settled at ``x[0]``."""
    x = np.asarray(x, dtype=float)
    if tau <= 0 or len(x) == 0:
        return x.copy()
    a = math.exp(-1.0 / (fs * tau))
    y, _ = sps.lfilter([1.0 - a], [1.0, -a], x, zi=[a * x[0]])
    return y


def ou_noise(rng: np.random.Generator, n: int, fs: float, tau: float, sd: float) -> np.ndarray:
    """Ornstein-Uhlenbeck (AR(1)) noise: stationary standard deviation ``sd``, time constant ``tau``."""
    if sd == 0 or n == 0:
        return np.zeros(n)
    phi = math.exp(-1.0 / (fs * tau))
    e = rng.standard_normal(n) * sd * math.sqrt(1.0 - phi * phi)
    y, _ = sps.lfilter([1.0], [1.0, -phi], e, zi=[phi * rng.standard_normal() * sd])
    return y


def _cumulative(t: np.ndarray, rate: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]) * np.diff(t))])


def poisson_events(rng: np.random.Generator, t: np.ndarray, rate_hz: np.ndarray) -> np.ndarray:
    """Event times of an inhomogeneous Poisson process with intensity ``rate_hz`` on grid ``t``."""
    lam = _cumulative(t, np.maximum(np.asarray(rate_hz, dtype=float), 1e-9))
    k = int(rng.poisson(lam[-1]))
    return np.interp(np.sort(rng.uniform(0.0, lam[-1], k)), lam, t)


# ------------------------------------------------------------------ heart
def beat_times(rng: np.random.Generator, t: np.ndarray, hr_bpm: np.ndarray,
               jitter_s: float = 0.0, min_rr: float = 0.27) -> np.ndarray:
    """Heart-beat (R-peak) times from a heart-rate curve ``hr_bpm`` on grid ``t``.

    Integral pulse frequency modulation: a beat whenever the integral of HR/60 crosses an
    integer (random initial phase). ``jitter_s`` adds independent beat-to-beat timing noise
    (short-term HRV on top of what the HR curve already carries).
    """
    phase = _cumulative(t, np.asarray(hr_bpm, dtype=float) / 60.0) + rng.uniform()
    k = np.arange(math.ceil(phase[0]), math.floor(phase[-1]) + 1, dtype=float)
    beats = np.interp(k, phase, t)
    if jitter_s > 0 and len(beats):
        beats = np.sort(beats + rng.normal(0.0, jitter_s, len(beats)))
    if len(beats) > 1:  # physiological refractory period
        keep = np.concatenate([[True], np.diff(beats) >= min_rr])
        beats = beats[keep]
    return np.round(beats, 6)


def _rr_before(beats: np.ndarray) -> np.ndarray:
    rr = np.diff(beats, prepend=np.nan)
    if len(rr) > 1:
        rr[0] = rr[1]
    elif len(rr):
        rr[0] = 0.8
    return rr


def render_bumps(n: int, t0: float, fs: float, centers: np.ndarray, amps, sigma,
                 width: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Sample indices and values of Gaussian bumps (for one ``np.bincount``)."""
    centers = np.asarray(centers, dtype=float)
    sig = np.broadcast_to(np.asarray(sigma, dtype=float), centers.shape)
    amps = np.broadcast_to(np.asarray(amps, dtype=float), centers.shape)
    if n == 0 or len(centers) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    half = int(math.ceil(width * float(sig.max()) * fs)) + 1
    pos = (centers - t0) * fs
    inside = (pos > -half) & (pos < n + half)
    pos, sig, amps = pos[inside], sig[inside], amps[inside]
    idx = np.rint(pos).astype(np.int64)[:, None] + np.arange(-half, half + 1)[None, :]
    z = (idx - pos[:, None]) / (sig[:, None] * fs)
    vals = amps[:, None] * np.exp(-0.5 * z * z)
    ok = (idx >= 0) & (idx < n)
    return idx[ok], vals[ok]


@dataclass(frozen=True)
class EcgShape:
    """ECG beat template (lead II-like): R amplitude in mV and relative wave amplitudes."""

    r_mv: float = 1.2
    p: float = 0.12
    q: float = -0.08
    s: float = -0.22
    t: float = 0.28
    qrs_s: float = 0.009  # R-wave Gaussian width (s)


def ecg_from_beats(beats: np.ndarray, t0: float, fs: float, n: int,
                   shape: EcgShape = EcgShape(), t_scale: np.ndarray | float = 1.0) -> np.ndarray:
    """ECG (mV) on the grid ``t0 + arange(n)/fs`` with an R peak at each beat time.

    PR interval and QT interval follow the preceding RR interval (Bazett-like:
    QT = 0.40 s * sqrt(RR)); ``t_scale`` multiplies the T-wave amplitude per beat.
    """
    beats = np.asarray(beats, dtype=float)
    rr = np.clip(_rr_before(beats), 0.3, 2.0)
    a = shape.r_mv
    waves = [
        (beats - (0.12 + 0.05 * rr), a * shape.p, 0.022),
        (beats - 0.028, a * shape.q, 0.008),
        (beats, a, shape.qrs_s),
        (beats + 0.03, a * shape.s, 0.010),
        (beats + 0.40 * np.sqrt(rr) - 0.10, a * shape.t * np.asarray(t_scale), 0.05 * np.sqrt(rr)),
    ]
    parts = [render_bumps(n, t0, fs, c, amp, sig) for c, amp, sig in waves]
    idx = np.concatenate([p[0] for p in parts])
    val = np.concatenate([p[1] for p in parts])
    return np.bincount(idx, weights=val, minlength=n)[:n]


def ppg_from_beats(beats: np.ndarray, t0: float, fs: float, n: int,
                   transit_s: np.ndarray | float = 0.25, amplitude: np.ndarray | float = 1.0,
                   dicrotic: float = 0.35) -> np.ndarray:
    """PPG/BVP pulse wave: a systolic and a diastolic (dicrotic) wave per beat.

    The pulse foot arrives ``transit_s`` after the R peak (pulse arrival time); the
    result is AC-coupled (slow mean removed), like the Empatica E4's BVP channel.
    """
    beats = np.asarray(beats, dtype=float)
    rr = np.clip(_rr_before(beats), 0.3, 2.0)
    foot = beats + transit_s
    amp = np.broadcast_to(np.asarray(amplitude, dtype=float), beats.shape)
    waves = [
        (foot + 0.11, amp, 0.045),
        (foot + 0.20, 0.55 * amp, 0.065),
        (foot + 0.30 + 0.12 * rr, dicrotic * amp, 0.07),
    ]
    parts = [render_bumps(n, t0, fs, c, a, s) for c, a, s in waves]
    x = np.bincount(np.concatenate([p[0] for p in parts]),
                    weights=np.concatenate([p[1] for p in parts]), minlength=n)[:n]
    if n:
        x = x - lag(lag(x, fs, 0.8)[::-1], fs, 0.8)[::-1]  # zero-phase removal of the mean
    return x


# ------------------------------------------------------------------ electrodermal
def scr_response(onsets: np.ndarray, amplitudes: np.ndarray, t0: float, fs: float, n: int,
                 rise_s: float = 0.75, decay_s: float = 3.0) -> np.ndarray:
    """Skin-conductance responses: bi-exponential responses (peak = amplitude, in µS).

    Rendered with two one-pole filters on an impulse train whose impulses are split
    between the two neighbouring samples, so onsets keep sub-sample precision.
    """
    x = np.zeros(n)
    pos = (np.asarray(onsets, dtype=float) - t0) * fs
    ok = (pos >= 0) & (pos < n - 1)
    pos, amp = pos[ok], np.asarray(amplitudes, dtype=float)[ok]
    i = np.floor(pos).astype(np.int64)
    frac = pos - i
    np.add.at(x, i, amp * (1.0 - frac))
    np.add.at(x, i + 1, amp * frac)
    ad, ar = math.exp(-1.0 / (fs * decay_s)), math.exp(-1.0 / (fs * rise_s))
    y = sps.lfilter([1.0], [1.0, -ad], x) - sps.lfilter([1.0], [1.0, -ar], x)
    # peak of exp(-t/decay) - exp(-t/rise) normalises the response to 1
    tp = math.log(decay_s / rise_s) * decay_s * rise_s / (decay_s - rise_s)
    return y / (math.exp(-tp / decay_s) - math.exp(-tp / rise_s))


# ------------------------------------------------------------------ respiration
def breathing(t: np.ndarray, rate_bpm: np.ndarray, phase0: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Breathing phase (cycles) on grid ``t`` and the inhale-onset times (integer phase)."""
    phase = _cumulative(t, np.asarray(rate_bpm, dtype=float) / 60.0) + phase0
    k = np.arange(math.ceil(phase[0]), math.floor(phase[-1]) + 1, dtype=float)
    return phase, np.round(np.interp(k, phase, t), 6)


def resp_wave(phase: np.ndarray, inhale_fraction: float = 0.42) -> np.ndarray:
    """Chest expansion in [0, 1] for a breathing phase: a rise over the inhale fraction
    of each cycle, a slower fall over the rest."""
    u = np.mod(phase, 1.0)
    q = inhale_fraction
    return np.where(u < q, 0.5 - 0.5 * np.cos(np.pi * u / q),
                    0.5 + 0.5 * np.cos(np.pi * (u - q) / (1.0 - q)))


# ------------------------------------------------------------------ one-call simulators
def simulate_ecg(duration: float = 60.0, fs: float = 700.0, heart_rate: float = 70.0,
                 rsa_bpm: float = 3.0, beat_jitter_s: float = 0.01, noise_mv: float = 0.01,
                 shape: EcgShape = EcgShape(), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """ECG (mV) at a constant mean heart rate with breathing-driven HRV; returns
    ``(signal, r_peak_times_s)``. Introduced in chapter 05_data."""
    rng = np.random.default_rng(seed)
    n = int(round(duration * fs))
    slow_fs = 50.0
    ts = np.arange(-2.0, duration + 2.0, 1.0 / slow_fs)
    phase, _ = breathing(ts, np.full(len(ts), 15.0), rng.uniform())
    hr = heart_rate + rsa_bpm * np.sin(2 * np.pi * phase)
    beats = beat_times(rng, ts, hr, beat_jitter_s)
    x = ecg_from_beats(beats, 0.0, fs, n, shape)
    x += noise_mv * rng.standard_normal(n)
    return x, beats[(beats >= 0) & (beats < n / fs)]


def simulate_eda(duration: float = 60.0, fs: float = 50.0, tonic_us: float = 5.0,
                 scr_per_min: float = 3.0, scr_us: float = 0.3, noise_us: float = 0.005,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """EDA (µS) with a constant tonic level and Poisson SCRs; returns ``(signal, onsets_s)``."""
    rng = np.random.default_rng(seed)
    n = int(round(duration * fs))
    t = np.arange(n) / fs
    onsets = poisson_events(rng, t, np.full(n, scr_per_min / 60.0))
    amps = scr_us * rng.lognormal(0.0, 0.5, len(onsets))
    x = tonic_us + scr_response(onsets, amps, 0.0, fs, n) + noise_us * rng.standard_normal(n)
    return x, onsets


def simulate_resp(duration: float = 60.0, fs: float = 50.0, rate_bpm: float = 15.0,
                  noise: float = 0.01, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Respiration belt signal (a.u.) at a constant rate; returns ``(signal, inhale_onsets_s)``."""
    rng = np.random.default_rng(seed)
    n = int(round(duration * fs))
    t = np.arange(n) / fs
    phase, onsets = breathing(t, np.full(n, rate_bpm), rng.uniform())
    return resp_wave(phase) + noise * rng.standard_normal(n), onsets
