"""Machine vibration with rolling-bearing faults (chapter 05_data; sensors in chapter 15).

A healthy rotating machine vibrates at its shaft frequency and harmonics (imbalance,
misalignment), at the vane/blade-pass frequency, plus broadband noise. A local defect on a
bearing race makes the rolling elements strike it at a characteristic rate set by the
bearing geometry (:func:`defect_frequencies`): BPFO for the outer race, BPFI for the inner
race. Each strike rings the machine's structural resonance (kHz), so the raw spectrum
gains energy around the resonance, and the *envelope* of the resonance band pulses at the
defect frequency, amplitude-modulated by the shaft rotation when the defect turns with
the inner race. Slip makes the strikes slightly irregular (1-2 %), as in real bearings;
a weaker direct line at the defect frequency and its harmonic is added too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal as sps

from mmlab.synth.physio import ou_noise

__all__ = ["Bearing", "defect_frequencies", "vibration"]


@dataclass(frozen=True)
class Bearing:
    """Rolling-bearing geometry (defaults: a 6205 deep-groove ball bearing)."""

    n_balls: int = 9
    ball_mm: float = 7.94
    pitch_mm: float = 39.04
    contact_deg: float = 0.0


def defect_frequencies(shaft_hz: float, bearing: Bearing = Bearing()) -> dict[str, float]:
    """Characteristic frequencies (Hz) of a bearing at a shaft speed: ``bpfo`` (outer race),
    ``bpfi`` (inner race), ``bsf`` (ball spin), ``ftf`` (cage)."""
    r = bearing.ball_mm / bearing.pitch_mm * math.cos(math.radians(bearing.contact_deg))
    n = bearing.n_balls
    return {
        "bpfo": n / 2 * shaft_hz * (1 - r),
        "bpfi": n / 2 * shaft_hz * (1 + r),
        "bsf": bearing.pitch_mm / (2 * bearing.ball_mm) * shaft_hz * (1 - r * r),
        "ftf": shaft_hz / 2 * (1 - r),
    }


def _sin_turns(turns: np.ndarray, k: int = 1, offset: float = 0.0) -> np.ndarray:
    """sin(2 pi (k * turns + offset)), wrapped to one turn first and evaluated in float32
    (a few times faster than float64 on long arrays; error ~1e-6)."""
    frac = (turns - np.floor(turns)).astype(np.float32)
    return np.sin(np.float32(2 * np.pi) * (k * frac + np.float32(offset)))


def vibration(rng: np.random.Generator, fs: float, n: int, shaft_hz: float,
              fault: str | None = None, severity: np.ndarray | float = 0.0,
              resonance_hz: float = 1400.0, imbalance: float = 1.0, vanes: int = 6,
              bearing: Bearing = Bearing(), noise: float = 1.0, t0: float = 0.0,
              ) -> tuple[np.ndarray, dict]:
    """Acceleration (g) of ``n`` samples at ``fs`` Hz starting at time ``t0``.

    ``fault`` is None, ``"outer_race"``, ``"inner_race"`` or ``"ball"`` (a rolling-element
    defect strikes both races once per spin: twice the ball-spin frequency, modulated by
    the cage's turn through the load zone); ``severity`` (scalar or one
    value per sample) scales the impacts (about 1 = clearly failing). ``imbalance``
    scales the 1x shaft component. Returns the signal and the planted frequencies.
    """
    t = t0 + np.arange(n) / fs
    # shaft speed wanders slightly (0.2 %)
    fr = shaft_hz * (1.0 + 0.002 * ou_noise(rng, n, fs, 2.0, 1.0)) if n else np.zeros(0)
    turns = np.cumsum(fr) / fs + rng.uniform()  # shaft angle in turns (unwrapped)
    x = (0.05 * imbalance * _sin_turns(turns) + 0.02 * _sin_turns(turns, 2, rng.uniform())
         + 0.008 * _sin_turns(turns, 3, rng.uniform())
         + 0.02 * _sin_turns(turns, vanes, rng.uniform())).astype(float)
    freqs = defect_frequencies(shaft_hz, bearing)
    truth = {"shaft_hz": shaft_hz, **{k: round(v, 6) for k, v in freqs.items()},
             "resonance_hz": resonance_hz, "fault": fault, "fault_hz": None}
    sev = np.broadcast_to(np.asarray(severity, dtype=float), (n,))
    if fault is not None and n:
        fd = 2 * freqs["bsf"] if fault == "ball" else freqs["bpfo" if fault == "outer_race" else "bpfi"]
        truth["fault_hz"] = round(fd, 6)
        k = int(math.ceil((t[-1] - t0) * fd)) + 2
        gaps = (1.0 / fd) * (1.0 + 0.015 * rng.standard_normal(k))
        hits = t0 + rng.uniform(0, 1.0 / fd) + np.cumsum(gaps)
        hits = hits[hits < t[-1]]
        pos = (hits - t0) * fs
        i = pos.astype(np.int64)
        amp = np.interp(hits, t, sev) * (0.8 + 0.4 * rng.uniform(size=len(hits)))
        if fault == "inner_race":  # the defect passes through the load zone once per turn
            amp = amp * (0.55 + 0.45 * np.cos(2 * np.pi * np.interp(hits, t, turns)))
        elif fault == "ball":  # the cage carries the ball through the load zone
            amp = amp * (0.55 + 0.45 * np.cos(2 * np.pi * freqs["ftf"] * (hits - t0)))
        imp = np.zeros(n)
        np.add.at(imp, i, amp * (1 - (pos - i)))
        np.add.at(imp, np.minimum(i + 1, n - 1), amp * (pos - i))
        zeta = 0.04
        w = 2 * np.pi * resonance_hz / fs
        r = math.exp(-zeta * w)
        ring = sps.lfilter([1.0, 0.0, -1.0], [1.0, -2 * r * math.cos(w), r * r], imp)
        line = fd * (t - t0)
        x = x + 0.8 * ring + sev * (0.03 * _sin_turns(line) + 0.01 * _sin_turns(line, 2))
    if noise > 0 and n:
        floor = sps.lfilter([1.0], [1.0, -0.5], rng.standard_normal(n))
        x = x + noise * 0.03 * floor
    return x, truth
