"""mmlab.synth: known answers, planted structure, ground truth, determinism, round trips."""

from __future__ import annotations

import numpy as np
import pytest

from mmlab.synth import physio, text, voice


def _acf_f0(x: np.ndarray, sr: int, fmin: float = 60.0, fmax: float = 400.0) -> float:
    """Median F0 of the loud 40 ms frames from the autocorrelation peak (an independent estimator)."""
    frame = int(0.04 * sr)
    loud = np.sqrt(np.mean(x.astype(float) ** 2))
    est = []
    for i in range(0, len(x) - frame, frame // 2):
        f = x[i:i + frame].astype(float)
        f = f - f.mean()
        if np.sqrt(np.mean(f ** 2)) < 0.5 * loud:
            continue
        ac = np.correlate(f, f, "full")[frame - 1:]
        lo, hi = int(sr / fmax), int(sr / fmin)
        k = lo + int(np.argmax(ac[lo:hi]))
        if ac[k] < 0.5 * ac[0]:
            continue
        a, b, c = ac[k - 1], ac[k], ac[k + 1]
        est.append(sr / (k + 0.5 * (a - c) / (a - 2 * b + c)))
    return float(np.median(est))


def test_ecg_at_72_bpm_gives_72_bpm_with_neurokit2():
    nk = pytest.importorskip("neurokit2")
    x, truth = physio.simulate_ecg(duration=60, fs=700, heart_rate=72, seed=1)
    assert 60 / np.mean(np.diff(truth)) == pytest.approx(72, abs=1)
    _, info = nk.ecg_peaks(nk.ecg_clean(x, sampling_rate=700), sampling_rate=700)
    peaks = np.asarray(info["ECG_R_Peaks"]) / 700
    assert 60 / np.mean(np.diff(peaks)) == pytest.approx(72, abs=1)
    assert len(peaks) == len(truth) and np.max(np.abs(peaks - truth)) < 0.01


def test_voice_f0_150_is_recovered_by_autocorrelation():
    p = voice.VoiceParams(f0=150.0, intonation_st=0.0, jitter=0.0, shimmer=0.0)
    audio, info = voice.synthesize("the quick brown fox jumps over the lazy dog", p, 16000,
                                   np.random.default_rng(0))
    assert audio.dtype == np.float32 and np.max(np.abs(audio)) <= 1.0
    assert _acf_f0(audio, 16000) == pytest.approx(150.0, abs=2.0)
    x, _ = voice.synthesize("hello there, how are you today", voice.VoiceParams(f0=220.0, intonation_st=0.0),
                            16000, np.random.default_rng(1))
    assert _acf_f0(x, 16000) == pytest.approx(220.0, abs=3.0)


def test_planted_jitter_is_the_local_jitter_of_the_pulses():
    p = voice.VoiceParams(f0=120.0, intonation_st=0.0, jitter=0.02, shimmer=0.0)
    _, info = voice.synthesize(40, p, 16000, np.random.default_rng(2))
    t = info["pulse_times"]
    seg = np.searchsorted([a for a, _ in info["voiced"]], t, side="right")
    per = np.diff(t)
    same = seg[1:] == seg[:-1]
    both = same[1:] & same[:-1]
    jitter = np.mean(np.abs(np.diff(per))[both]) / np.mean(per[same])
    assert jitter == pytest.approx(0.02, rel=0.15)


def test_text_cues_follow_informativeness():
    words = ("tense", "stressed", "nervous", "anxious", "pressure", "edge", "racing", "sweaty",
             "dry", "pulse", "tight", "fidgeting", "stressful", "hated")
    rng = np.random.default_rng(0)

    def share(cue):
        said = [text.say(rng, "self_report", "stress", text.Style(verbose=0), cue) for _ in range(200)]
        return np.mean([any(w in s.lower() for w in words) for s in said])
    assert share(text.cue_probability(0.0)) == 0.0
    assert share(text.cue_probability(2.0)) > 0.85
