"""mmlab.sensors: known answers on planted vibration signals, scipy as reference, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps
from scipy import stats

from mmlab import sensors as S
from mmlab.errors import SignalError
from mmlab.recording import Stream
from mmlab.synth import make_cohort

FS = 20000.0


def _am_resonance(defect_hz=157.0, carrier_hz=3000.0, seconds=2.0, noise=0.5, seed=0):
    """A 3 kHz resonance amplitude-modulated at the defect frequency, in white noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FS)) / FS
    x = (1 + 0.8 * np.cos(2 * np.pi * defect_hz * t)) * np.sin(2 * np.pi * carrier_hz * t)
    return x + noise * rng.standard_normal(len(t)), t


def test_envelope_spectrum_finds_a_planted_157hz_defect():
    x, _ = _am_resonance()
    f, a = S.envelope_spectrum(x, FS, band=(2500.0, 3500.0), fmax=500.0)
    assert f.max() <= 500.0
    assert abs(f[np.argmax(a)] - 157.0) <= 1.0
    assert a.max() == pytest.approx(0.8, rel=0.1)  # modulation depth 0.8 of a unit carrier
    peak = S.peak_near(f, a, 157.0, tol_hz=1.0)
    assert peak["snr"] > 20
    assert S.peak_near(f, a, 211.0, tol_hz=1.0)["snr"] < 5  # nothing planted at 211 Hz
    # the raw spectrum has no line at 157 Hz: the defect lives in the envelope only
    fr, pr = S.spectrum(x, FS)
    assert pr[np.argmin(abs(fr - 157))] < 1e-3 * pr.max()


def test_best_band_prefers_impacts_to_a_louder_steady_tone():
    rng = np.random.default_rng(2)
    n = int(2 * FS)
    impacts = np.zeros(n)
    impacts[(np.arange(0, 2, 1 / 105.0) * FS).astype(int)] = 1.0
    w = 2 * np.pi * 4200.0 / FS
    r = np.exp(-0.04 * w)
    ring = sps.lfilter([1.0, 0.0, -1.0], [1.0, -2 * r * np.cos(w), r * r], impacts)
    t = np.arange(n) / FS
    tone = 1.0 * np.sin(2 * np.pi * 7000 * t)  # more power than the impacts, but steady
    x = ring + tone + 0.5 * np.sin(2 * np.pi * 25 * t) + 0.3 * rng.standard_normal(n)
    lo, hi = S.best_band(x, FS, width_hz=800.0)
    assert not lo <= 7000.0 <= hi
    assert 3000.0 <= lo and hi <= 6000.0  # around the 4.2 kHz resonance
    f, a = S.envelope_spectrum(x, FS, (lo, hi))
    assert abs(f[np.argmax(a)] - 105.0) <= 1.0
    f7, a7 = S.envelope_spectrum(x, FS, (6600.0, 7400.0))  # the loudest band hides the defect
    assert S.peak_near(f7, a7, 105.0, 1.0)["snr"] < S.peak_near(f, a, 105.0, 1.0)["snr"] / 3


def test_time_features_known_answers_and_scipy_reference():
    t = np.arange(10000) / 10000.0
    sine = 2.0 * np.sin(2 * np.pi * 50 * t)
    feats = S.time_features(sine)
    assert feats["crest_factor"] == pytest.approx(np.sqrt(2), rel=1e-4)
    assert feats["rms"] == pytest.approx(2.0 / np.sqrt(2), rel=1e-4)
    assert feats["kurtosis"] == pytest.approx(1.5, rel=1e-3)
    noise = np.random.default_rng(0).standard_normal(200000)
    g = S.time_features(noise)
    assert g["kurtosis"] == pytest.approx(3.0, abs=0.05)
    assert g["kurtosis"] == pytest.approx(stats.kurtosis(noise, fisher=False), rel=1e-9)
    assert g["skewness"] == pytest.approx(stats.skew(noise), rel=1e-9)
    spiky = noise.copy()
    spiky[::1000] += 12.0  # impacts: kurtosis and crest factor jump, RMS barely moves
    s = S.time_features(spiky)
    assert s["kurtosis"] > 5 and s["crest_factor"] > 2 * g["crest_factor"] / 1.5
    assert s["rms"] < 1.1 * g["rms"]


def test_windowed_features_match_whole_signal_features_and_flag_bad_windows():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(4000)
    x[1000:2000] = np.nan        # a dropout
    x[3000:4000] = 0.25          # a stuck sensor
    df = S.windowed_features(x, rate=1000.0, window_s=1.0)
    assert list(df["quality"]) == ["ok", "dropout", "ok", "flat"]
    assert df.loc[0, "t_start"] == 0.0 and df.loc[2, "t_start"] == 2.0
    ref = S.time_features(x[:1000])
    for k in S.FEATURES:
        assert df.loc[0, k] == pytest.approx(ref[k], rel=1e-9)
    assert df.loc[1, list(S.FEATURES)].isna().all()
    assert np.isnan(df.loc[3, "kurtosis"]) and df.loc[3, "rms"] == pytest.approx(0.25)
    overlap = S.windowed_features(x[:2000] * 0 + 1 + np.arange(2000), rate=1000.0, window_s=1.0, step_s=0.5)
    assert len(overlap) == 3


def test_bearing_frequencies_6205():
    f = S.bearing_frequencies(25.0)
    # 6205: 9 balls, d/D = 7.94/39.04 -> BPFO = 3.585 x, BPFI = 5.415 x shaft speed
    assert f["bpfo"] == pytest.approx(3.585 * 25, rel=1e-3)
    assert f["bpfi"] == pytest.approx(5.415 * 25, rel=1e-3)
    assert f["bpfo"] + f["bpfi"] == pytest.approx(9 * 25)


def test_defect_indicators_name_the_planted_fault_of_synthetic_machines():
    cohort = make_cohort("factory", 6, seed=0, fast=True, minutes=0.25, failure_fraction=0.5)
    for rec in cohort:
        truth = rec.meta["truth"]
        x = rec["vibration"]
        ind = S.defect_indicators(x.data[:, 0], x.rate, truth["shaft_hz"])
        if truth["fault"] is None:
            assert ind["snr"].max() < 8, (rec.subject, ind)
        else:
            expected = "bpfo" if truth["fault"] == "outer_race" else "bpfi"
            assert ind.index[0] == expected and ind["snr"].iloc[0] > 10, (rec.subject, truth, ind)
            assert abs(ind.loc[expected, "peak_hz"] - truth["fault_hz"]) < 0.03 * truth["fault_hz"]


def test_finite_segment():
    x = np.ones(100)
    x[10:12] = np.nan
    x[60] = np.nan
    assert S.finite_segment(x) == (12, 60)
    assert S.finite_segment(np.full(5, np.nan)) == (0, 0)


def test_bad_input_raises_signal_error():
    x, _ = _am_resonance(seconds=0.5)
    with pytest.raises(SignalError, match="positive"):
        S.spectrum(x, 0)
    with pytest.raises(SignalError, match="positive"):
        S.envelope_spectrum(x, -FS)
    with pytest.raises(SignalError, match="Nyquist"):
        S.envelope_spectrum(x, 4000.0, band=(2500.0, 3500.0))  # wrong rate for a 3 kHz band
    with pytest.raises(SignalError, match="empty"):
        S.envelope(x, FS, band=(3500.0, 2500.0))
    bad = x.copy()
    bad[100:110] = np.nan
    with pytest.raises(SignalError, match="NaN.*finite_segment"):
        S.envelope_spectrum(bad, FS, band=(2500.0, 3500.0))
    with pytest.raises(SignalError, match="too short"):
        S.spectrum(x[:5], FS)
    with pytest.raises(SignalError, match="too short"):
        S.windowed_features(x[:100], FS, window_s=1.0)
    with pytest.raises(SignalError, match="one channel"):
        S.time_features(np.zeros((100, 3)))
    with pytest.raises(SignalError, match="shaft speed"):
        S.bearing_frequencies(-1.0)
    with pytest.raises(SignalError, match="regular"):
        S.spectrum(Stream("v", x[:50], "vibration", times=np.arange(50) / 10.0))
    flat = S.time_features(np.zeros(100))
    assert flat["rms"] == 0 and np.isnan(flat["crest_factor"]) and np.isnan(flat["kurtosis"])


def test_windowed_features_flag_a_saturated_sensor():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(4000)
    x[2000:3000] *= 4.0
    x = np.clip(x, -3.0, 3.0)                   # the sensor saturates in the loud second
    df = S.windowed_features(x, rate=1000.0, window_s=1.0)
    assert list(df["quality"]) == ["ok", "ok", "clipped", "ok"]
    assert df.loc[2, list(S.FEATURES)].isna().all()
