"""mmlab.align: resampling, windows, clock offsets and drift, gaps and presence masks.

Known answers on planted signals (tones, lags, drifts, phase boundaries, dropouts) and on
synthetic stress_protocol subjects scored against the ground truth they keep in
``Recording.meta`` (``clock_truth``, ``dropouts``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter1d

from mmlab import align
from mmlab.errors import MMLabError, SchemaError, SignalError
from mmlab.recording import Recording, Stream


# ------------------------------------------------------------------ helpers / fixtures
def _tone_amplitude(x: np.ndarray, rate: float, freq: float) -> float:
    """Amplitude of a sinusoid at ``freq`` in ``x`` (least squares on sin/cos)."""
    t = np.arange(len(x)) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, x - x.mean(), rcond=None)
    return float(np.hypot(*coef))


def _peak_frequency(x: np.ndarray, rate: float) -> float:
    spec = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(len(x)), n=16 * len(x)))
    return float(np.fft.rfftfreq(16 * len(x), 1 / rate)[np.argmax(spec)])


def _smooth_noise(rng, n: int, sigma: float) -> np.ndarray:
    x = gaussian_filter1d(rng.standard_normal(n), sigma)
    return x / x.std()


def _sampled(fine_t, fine_x, rate, duration, offset_s=0.0, drift_ppm=0.0, noise=0.0, rng=None,
             name="s", device="dev") -> Stream:
    """A device at ``rate`` Hz (its clock) sampling a reference-time signal."""
    scale = 1 + drift_ppm * 1e-6
    t_dev = offset_s + np.arange(int(duration * rate)) / rate
    x = np.interp((t_dev - offset_s) / scale, fine_t, fine_x)
    if noise:
        x = x + noise * rng.standard_normal(len(x))
    return Stream(name, x, "eda", rate=rate, start=offset_s, device=device)


@pytest.fixture(scope="module")
def stress():
    """Three short synthetic stress_protocol subjects with many dropouts."""
    from mmlab import synth

    return synth.make_cohort("stress_protocol", 3, seed=0, fast=True, dropout_per_hour=40,
                             voice_per_phase=0)


@pytest.fixture(scope="module")
def stress_hour():
    """One full-length (~1 h) subject: long enough to see a drift of 10 ppm (36 ms/h)."""
    from mmlab import synth

    return synth.make_cohort("stress_protocol", 1, seed=1, fast=False, voice_per_phase=0,
                             dropout_per_hour=0)[0]


# ------------------------------------------------------------------------ resampling
def test_resample_is_anti_aliased():
    rate, new = 700.0, 32.0
    t = np.arange(int(20 * rate)) / rate
    low, high = np.sin(2 * np.pi * 5.0 * t), np.sin(2 * np.pi * 25.0 * t)  # 25 Hz > 16 Hz Nyquist
    s = Stream("acc", low + high, "acc", rate=rate)
    y = align.resample(s, new).data[:, 0]
    core = y[64:-64]  # away from the edges
    assert _tone_amplitude(core, new, 5.0) == pytest.approx(1.0, abs=0.01)
    assert abs(_peak_frequency(core, new) - 5.0) < 0.05
    alias = new - 25.0  # where 25 Hz would fold to (7 Hz)
    assert _tone_amplitude(core, new, alias) < 0.01
    # the check can fail: taking every 22nd sample (no filter) folds 25 Hz onto ~6.8 Hz
    naive = (low + high)[::22]
    assert _tone_amplitude(naive[64:-64], rate / 22, rate / 22 - 25.0) > 0.5


def test_resample_on_a_shifted_grid_and_upsampling_keep_a_tone():
    rate = 64.0
    t = np.arange(int(30 * rate)) / rate
    s = Stream("bvp", np.sin(2 * np.pi * 1.3 * t), "bvp", rate=rate, start=0.0)
    y = align.resample(s, 20.0, start=0.0123)  # the grid starts between input samples
    tt = y.timestamps()
    ok = np.isfinite(y.data[:, 0])
    assert ok[10:-10].all()
    np.testing.assert_allclose(y.data[ok, 0][10:-10], np.sin(2 * np.pi * 1.3 * tt[ok])[10:-10], atol=0.01)
    slow = Stream("eda", np.sin(2 * np.pi * 0.2 * np.arange(400) / 4.0), "eda", rate=4.0)
    up = align.resample(slow, 32.0)
    tt = up.timestamps()
    good = np.isfinite(up.data[:, 0])
    np.testing.assert_allclose(up.data[good, 0][40:-40], np.sin(2 * np.pi * 0.2 * tt[good])[40:-40], atol=0.01)


def test_resample_keeps_dropouts_and_does_not_extrapolate():
    x = np.sin(np.arange(7000) / 50.0)
    x[2100:2800] = np.nan  # 3.0 .. 4.0 s at 700 Hz
    s = Stream("ecg", x, "ecg", rate=700.0, start=10.0)
    y = align.resample(s, 50.0, start=9.0, end=21.0)
    t = y.timestamps()
    v = y.data[:, 0]
    assert np.isnan(v[(t >= 13.0) & (t < 14.0)]).all()
    assert np.isnan(v[(t < 10.0) | (t >= 20.0)]).all()
    assert np.isfinite(v[(t >= 10.1) & (t < 12.9)]).all() and np.isfinite(v[(t > 14.1) & (t < 19.9)]).all()
    assert y.rate == 50.0 and y.start == 9.0


def test_rational_ratio():
    assert align.rational_ratio(32, 700) == (8, 175)
    assert align.rational_ratio(4, 700) == (1, 175)
    assert align.rational_ratio(32.0, 32.000384) == (1, 1)  # the last 12 ppm are interpolated
    s = Stream("acc", np.sin(2 * np.pi * 2.0 * np.arange(3200) / 32.000384), "acc", rate=32.000384)
    y = align.resample(s, 32.0)
    assert y.rate == 32.0
    t = y.timestamps()
    ok = np.isfinite(y.data[:, 0])
    np.testing.assert_allclose(y.data[ok, 0][5:-5], np.sin(2 * np.pi * 2.0 * t[ok])[5:-5], atol=0.005)


def test_interpolate_irregular_fills_grid_and_leaves_gaps_empty():
    beats = np.r_[np.arange(0, 20, 0.8), np.arange(30, 40, 0.8)]  # 10 s without beats
    ibi = Stream("ibi", 0.8 + 0.01 * np.sin(beats), "ibi", times=beats)
    y = align.interpolate_irregular(ibi, 4.0, start=-2.0, end=42.0)
    t = y.timestamps()
    v = y.data[:, 0]
    inside = ((t >= 0) & (t <= beats[24])) | ((t >= 30) & (t <= beats[-1]))
    assert np.isfinite(v[inside]).all()
    assert np.isnan(v[~inside]).all()  # before, in the gap, after
    mid = (t > 5) & (t < 15)
    np.testing.assert_allclose(v[mid], np.interp(t[mid], beats, ibi.data[:, 0]), atol=1e-12)
    assert align.resample(ibi, 4.0, start=-2.0, end=42.0).equals(y)  # resample dispatches


def test_common_grid_columns():
    rec = Recording("r", [Stream("eda", np.ones(40), "eda", rate=4.0),
                          Stream("acc", np.ones((320, 3)), "acc", rate=32.0, channels=["x", "y", "z"])])
    g = align.common_grid(rec, 8.0, start=0.0, end=10.0)
    assert list(g.columns) == ["eda", "acc_x", "acc_y", "acc_z"]
    assert len(g) == 80 and g.index[1] == pytest.approx(0.125)
    assert np.nanmax(np.abs(g.to_numpy() - 1.0)) < 1e-9


def test_resample_bad_input():
    s = Stream("x", np.zeros(100), "eda", rate=4.0)
    for rate in (0, -4, float("nan"), "fast"):
        with pytest.raises(SignalError, match="rate"):
            align.resample(s, rate)
    with pytest.raises(SignalError, match="cannot be resampled"):
        align.resample(Stream("img", np.zeros((5, 4, 4)), "image", rate=1.0), 2.0)
    with pytest.raises(SignalError, match="at least 2"):
        align.interpolate_irregular(Stream("ibi", [0.8], "ibi", times=[1.0]), 4.0)
    with pytest.raises(SignalError, match="empty output span"):
        align.resample(s, 8.0, start=5.0, end=5.0)
    assert np.isnan(align.resample(Stream("x", np.full(100, np.nan), "eda", rate=4.0), 2.0).data).all()


# ------------------------------------------------------------------------- windows
def _phased() -> Recording:
    ann = [dict(onset=0, duration=100, kind="phase", label="A"),
           dict(onset=100, duration=60, kind="phase", label="B"),
           dict(onset=170, duration=30, kind="phase", label="C"),  # 160-170: unlabelled
           dict(onset=42, duration=0, kind="event", label="tap")]
    return Recording("p", [Stream("s", np.zeros(2000), "eda", rate=10.0)], ann)


@pytest.mark.parametrize("rule, expected", [
    #            [90,110)  [95,115)  [140,160)  [150,170)  [155,175)
    ("majority", ["",       "B",      "B",       "",        ""]),
    ("centre",   ["B",      "B",      "B",       "",        ""]),
    ("any",      ["A+B",    "A+B",    "B",       "B",       "B+C"]),
    ("pure",     ["",       "",       "B",       "",        ""]),
])
def test_window_label_rules_at_planted_boundaries(rule, expected):
    w = align.window_table(_phased(), 20, 5, label_rule=rule).set_index("start")
    assert w.loc[[90.0, 95.0, 140.0, 150.0, 155.0], "label"].tolist() == expected


def test_window_table_span_fractions_and_instants():
    w = align.window_table(_phased(), 20, 5)
    assert w["start"].iloc[0] == 0 and w["end"].iloc[-1] == 200 and len(w) == 37
    assert np.allclose(w["end"] - w["start"], 20) and np.allclose(w["centre"], w["start"] + 10)
    row = w.set_index("start").loc[95.0]
    assert row["label_fraction"] == pytest.approx(0.75)
    ev = align.window_table(_phased(), 20, 10, label_rule="any", kind="event", start=0, end=80)
    assert ev["label"].tolist() == ["", "", "", "tap", "tap", "", ""]
    w2 = align.window_table(_phased(), 30, start=-30, end=60)  # no overlap by default
    assert w2["start"].tolist() == [-30, 0, 30] and w2["label"].tolist() == ["", "A", "A"]


def test_window_table_matches_label_at_on_synthetic_subject(stress):
    rec = stress[0]
    w = align.window_table(rec, 10, 2.5, label_rule="centre")
    assert (w["label"].to_numpy() == rec.label_at(w["centre"].to_numpy())).all()
    pure = align.window_table(rec, 10, 2.5, label_rule="pure")
    labelled = pure["label"] != ""
    assert labelled.sum() > 0.6 * len(pure)
    assert (pure.loc[labelled, "label"] == w.loc[labelled, "label"]).all()


def test_window_table_bad_input():
    rec = _phased()
    with pytest.raises(SignalError, match="label_rule"):
        align.window_table(rec, 10, label_rule="mode")
    with pytest.raises(SignalError, match="no 'utterance' annotations"):
        align.window_table(rec, 10, kind="utterance")
    with pytest.raises(SignalError, match="shorter than one"):
        align.window_table(rec, 500)
    with pytest.raises(SignalError, match="window_s"):
        align.window_table(rec, 0)


# ----------------------------------------------------------------- cross-correlation
def test_xcorr_lag_recovers_a_fractional_lag_with_its_sign():
    rng = np.random.default_rng(3)
    fine = 1000.0
    tf = np.arange(0, 120, 1 / fine)
    sig = _smooth_noise(rng, len(tf), 0.15 * fine)
    rate, lag = 10.0, 0.337
    t = np.arange(0, 100, 1 / rate)
    x = np.interp(t, tf, sig)
    y = np.interp(t - lag, tf, sig)  # y shows x's content `lag` seconds later
    est = align.xcorr_lag(x, y, rate, max_lag_s=2.0)
    assert est.lag_s == pytest.approx(lag, abs=0.01) and est.corr > 0.95
    assert align.xcorr_lag(y, x, rate, max_lag_s=2.0).lag_s == pytest.approx(-lag, abs=0.01)
    lags, r = align.xcorr_curve(x, y, rate, max_lag_s=2.0)
    assert len(lags) == 41 and lags[np.nanargmax(r)] == pytest.approx(0.3)
    assert est.curve["corr"].max() == pytest.approx(np.nanmax(r))
    y[100:300] = np.nan  # NaN samples are left out
    assert align.xcorr_lag(x, y, rate, max_lag_s=2.0).lag_s == pytest.approx(lag, abs=0.01)


def test_xcorr_lag_bad_input():
    x = np.sin(np.arange(100) / 5.0)
    with pytest.raises(SignalError, match="too short for lags"):
        align.xcorr_lag(x, x, 10.0, max_lag_s=6.0)
    with pytest.raises(SignalError, match="same grid"):
        align.xcorr_lag(x, x[:90], 10.0, max_lag_s=1.0)
    with pytest.raises(SignalError, match="all NaN"):
        align.xcorr_lag(x, np.full(100, np.nan), 10.0, max_lag_s=1.0)
    with pytest.raises(SignalError, match="flat"):
        align.xcorr_lag(x, np.ones(100), 10.0, max_lag_s=1.0)
    with pytest.raises(SignalError, match="edge of the lag range"):
        align.xcorr_lag(x, np.roll(x, 15), 10.0, max_lag_s=0.5)


def test_xcorr_offset_between_devices_with_different_rates():
    rng = np.random.default_rng(5)
    tf = np.arange(-20, 700, 0.01)
    sig = _smooth_noise(rng, len(tf), 40)
    ref = _sampled(tf, sig, 64.0, 600, noise=0.05, rng=rng, name="chest")
    other = _sampled(tf, sig, 4.0, 600, offset_s=-1.234, noise=0.05, rng=rng, name="wrist")
    est = align.xcorr_offset(ref, other, max_lag_s=3.0)
    assert est.lag_s == pytest.approx(-1.234, abs=1 / 32)
    with pytest.raises(SignalError, match="too short for lags"):
        align.xcorr_offset(ref, other, max_lag_s=3.0, start=10, end=15)
    gap = other.replace(data=np.full(other.n_samples, np.nan))
    with pytest.raises(SignalError, match="all NaN"):
        align.xcorr_offset(ref, gap, max_lag_s=3.0)


def test_offset_from_eda_matches_truth(stress):
    for rec in stress:
        truth = rec.meta["clock_truth"]["wrist"]["offset_s"]
        est = align.xcorr_offset(rec["chest_eda"], rec["wrist_eda"], max_lag_s=3.0)
        # within one sample at the lower rate (4 Hz) by far: a few ms
        assert est.lag_s == pytest.approx(truth, abs=0.05), rec.subject


# ---------------------------------------------------------------------- shared taps
def test_tap_offset_matches_truth_within_one_wrist_sample(stress):
    for rec in stress:
        truth = rec.meta["clock_truth"]["wrist"]
        taps = rec.meta["truth"]["sync_taps"]
        found = align.jolt_times(rec["chest_acc"], start=0, end=15)
        assert np.allclose(found, taps, atol=0.005), (rec.subject, found)
        off = align.tap_offset(rec["chest_acc"], rec["wrist_acc"], start=0, end=15, max_offset_s=3)
        expected = truth["offset_s"] + truth["drift_ppm"] * 1e-6 * np.mean(taps)
        assert off == pytest.approx(expected, abs=1 / 32), rec.subject


def test_jolt_times_invents_nothing():
    rng = np.random.default_rng(0)
    quiet = Stream("acc", 0.01 * rng.standard_normal((3200, 3)) + [0, 0, 1], "acc", rate=32.0)
    assert len(align.jolt_times(quiet)) == 0
    with pytest.raises(SignalError, match="all NaN"):
        align.jolt_times(quiet.replace(data=np.full((3200, 3), np.nan)))
    with pytest.raises(SignalError, match="no jolt stands out"):
        align.tap_offset(quiet, quiet, start=0, end=50)


def test_event_offset_pairs_a_double_tap_and_ignores_strays():
    ref = [5.0, 5.5, 40.0]
    other = [1.2, 6.701, 7.199, 90.0]  # offset 1.7; 1.2 and 90 are strays
    assert align.event_offset(ref, other, max_offset_s=3.0) == pytest.approx(1.7, abs=0.002)
    with pytest.raises(SignalError, match="no pair of events"):
        align.event_offset([5.0], [50.0], max_offset_s=3.0)
    with pytest.raises(SignalError, match="need events"):
        align.event_offset([], [1.0], max_offset_s=3.0)


# --------------------------------------------------------------------------- drift
def test_fit_drift_known_line_and_outlier():
    t = np.linspace(0, 3600, 13)
    lag = 1.5 + 25e-6 * t
    fit = align.fit_drift(t, lag)
    assert fit["offset_s"] == pytest.approx(1.5) and fit["drift_ppm"] == pytest.approx(25.0)
    lag[4] += 0.5  # one bad segment
    robust = align.fit_drift(t, lag)
    assert robust["drift_ppm"] == pytest.approx(25.0, abs=0.01) and robust["n_used"] == 12
    assert abs(align.fit_drift(t, lag, robust=False)["drift_ppm"] - 25.0) > 10
    two = align.fit_drift([0, 1000], [0.1, 0.13])
    assert two["drift_ppm"] == pytest.approx(30.0)
    with pytest.raises(SignalError, match="2 or more"):
        align.fit_drift([0.0, 1.0], [0.1, np.nan])
    with pytest.raises(SignalError, match="same time"):
        align.fit_drift([5.0, 5.0], [0.1, 0.2])


def test_estimate_clock_recovers_planted_drift():
    rng = np.random.default_rng(11)
    tf = np.arange(-30, 3700, 0.02)
    sig = _smooth_noise(rng, len(tf), 20)
    ref = _sampled(tf, sig, 16.0, 3600, noise=0.05, rng=rng, name="chest")
    for offset, ppm in ((1.234, 40.0), (-0.8, -15.0)):
        other = _sampled(tf, sig, 4.0, 3600, offset_s=offset, drift_ppm=ppm, noise=0.05, rng=rng,
                         name="wrist")
        est = align.estimate_clock(ref, other, around_s=offset + 0.05, segment_s=300, max_lag_s=0.5)
        assert est["drift_ppm"] == pytest.approx(ppm, abs=10.0)
        assert est["offset_s"] == pytest.approx(offset, abs=1 / 4)
        assert est["track"]["used"].all()


def test_estimate_clock_on_a_synthetic_hour_matches_truth(stress_hour):
    rec = stress_hour
    truth = rec.meta["clock_truth"]["wrist"]
    tap = align.tap_offset(rec["chest_acc"], rec["wrist_acc"], start=0, end=15)
    est = align.estimate_clock(rec["chest_eda"], rec["wrist_eda"], around_s=tap, segment_s=300,
                               max_lag_s=0.5)
    assert est["offset_s"] == pytest.approx(truth["offset_s"], abs=1 / 32)
    assert est["drift_ppm"] == pytest.approx(truth["drift_ppm"], abs=10.0)
    # the estimate goes to align_recording as it is (its fit diagnostics are ignored)
    aligned = align.align_recording(rec, {"wrist": est})
    assert aligned.meta["clock_alignment"]["wrist"] == {"offset_s": est["offset_s"],
                                                         "drift_ppm": est["drift_ppm"]}
    assert aligned["wrist_eda"].start == pytest.approx(
        (rec["wrist_eda"].start - truth["offset_s"]) / (1 + truth["drift_ppm"] * 1e-6), abs=0.05)


def test_offset_track_marks_unmeasurable_segments():
    rng = np.random.default_rng(2)
    tf = np.arange(-10, 1300, 0.02)
    sig = _smooth_noise(rng, len(tf), 20)
    ref = _sampled(tf, sig, 16.0, 1200, noise=0.05, rng=rng)
    other = _sampled(tf, sig, 4.0, 1200, offset_s=0.3, noise=0.05, rng=rng)
    x = other.data.copy()
    x[1200:2400] = np.nan  # 300-600 s: a long dropout
    track = align.offset_track(ref, other.replace(data=x), segment_s=200, max_lag_s=1.0)
    bad = track["offset_s"].isna()
    assert bad.sum() >= 1 and track.loc[bad, "error"].str.contains("NaN").all()
    assert np.allclose(track.loc[~bad, "offset_s"], 0.3, atol=0.02)


# ---------------------------------------------------------------------- correction
def test_to_reference_inverts_the_clock_model():
    s = Stream("acc", np.zeros(3200), "acc", rate=32.0, start=2.0, device="wrist")
    ref = align.to_reference(s, offset_s=1.5, drift_ppm=50.0)
    scale = 1 + 50e-6
    assert ref.start == pytest.approx((2.0 - 1.5) / scale)
    assert ref.rate == pytest.approx(32.0 * scale)
    np.testing.assert_allclose(ref.timestamps(), (s.timestamps() - 1.5) / scale)
    ibi = Stream("ibi", [0.8, 0.8], "ibi", times=[10.0, 10.8], device="wrist")
    np.testing.assert_allclose(align.to_reference(ibi, 1.5, 50.0).times, (ibi.times - 1.5) / scale)
    with pytest.raises(SignalError, match="already on the reference clock"):
        align.to_reference(ref, 1.5, 50.0)


def test_align_recording_with_truth_puts_taps_together(stress):
    rec = stress[1]
    aligned = align.align_recording(rec, rec.meta["clock_truth"])
    chest = align.jolt_times(aligned["chest_acc"], start=0, end=15)
    wrist = align.jolt_times(aligned["wrist_acc"], start=0, end=15)
    assert np.allclose(wrist, chest, atol=1 / 32)
    # the reference device (offset 0, drift 0) keeps its timing
    np.testing.assert_array_equal(aligned["chest_ecg"].timestamps(), rec["chest_ecg"].timestamps())
    assert set(aligned.meta["clock_alignment"]) == {"chest", "wrist"}
    with pytest.raises(SchemaError, match="unknown key 'drift'.*offset_s"):
        align.align_recording(rec, {"wrist": {"drift": 3}})
    with pytest.raises(SchemaError, match="offset_s must be a number"):
        align.align_recording(rec, {"wrist": {"offset_s": "soon"}})


def test_dejitter_and_regularize_a_jittery_stream():
    rng = np.random.default_rng(4)
    rate, ppm = 32.0, 40.0
    slots = np.r_[np.arange(0, 500), np.arange(510, 20000)]  # 10 samples lost
    true = 3.0 + slots / (rate * (1 + ppm * 1e-6))
    stamps = true + rng.normal(0, 0.003, len(true))  # 3 ms jitter (a tenth of an interval)
    clean = align.dejitter(stamps)
    assert np.max(np.abs(clean - true)) < 0.001
    assert np.median(np.abs(stamps - true)) > 0.0015
    s = Stream("acc", np.arange(len(slots), dtype=float), "acc", times=np.sort(stamps))
    reg = align.regularize(s, rate=32.0)
    assert reg.n_samples == 20000 and np.isnan(reg.data[500:510]).all()
    assert reg.rate == pytest.approx(rate * (1 + ppm * 1e-6), rel=2e-6)
    gaps = align.find_gaps(reg)
    assert len(gaps) == 1 and gaps["start"].iloc[0] == pytest.approx(true[500] - 10 / rate, abs=0.002)
    back = stamps.copy()
    back[700:] -= 2.0  # a clock reset
    with pytest.raises(SignalError, match="go back"):
        align.dejitter(back)


# ------------------------------------------------------------------ gaps and masks
def test_find_gaps_match_injected_dropouts(stress):
    for rec in stress:
        truth = pd.DataFrame(rec.meta["dropouts"])
        assert len(truth), "the fixture should plant dropouts"
        for name in ("wrist_eda", "wrist_acc", "chest_ecg"):
            want = truth[truth["stream"] == name]
            got = align.find_gaps(rec[name])
            assert len(got) == len(want), (rec.subject, name)
            step = 1 / rec[name].rate
            assert np.allclose(got["start"], want["start"], atol=step)
            assert np.allclose(got["end"], want["end"], atol=step)


def test_presence_mask_equals_injected_dropouts(stress):
    n_inside = 0
    for rec in stress:
        aligned = align.align_recording(rec, rec.meta["clock_truth"])
        windows = align.window_table(aligned, 5, 2.5, start=0, end=290)
        mask = align.presence_mask(aligned, windows, min_coverage=0.5)
        drops = pd.DataFrame(rec.meta["dropouts"])
        a, b = windows["start"].to_numpy(), windows["end"].to_numpy()
        for name in ("chest_ecg", "wrist_eda", "wrist_bvp", "wrist_temp"):
            d = drops[drops["stream"] == name]
            inside = np.zeros(len(windows), dtype=bool)
            touched = np.zeros(len(windows), dtype=bool)
            for s, e in zip(d["ref_start"], d["ref_end"]):
                inside |= (a >= s) & (b <= e)
                touched |= (a < e) & (b > s)
            n_inside += inside.sum()
            assert not mask.loc[inside, name].any(), (rec.subject, name)
            assert mask.loc[~touched, name].all(), (rec.subject, name)
        ibi_gap = np.zeros(len(windows), dtype=bool)
        for s, e in zip(drops.loc[drops["stream"] == "wrist_ibi", "ref_start"],
                        drops.loc[drops["stream"] == "wrist_ibi", "ref_end"]):
            ibi_gap |= (a >= s) & (b <= e)
        assert not mask.loc[ibi_gap, "wrist_ibi"].any()
    assert n_inside >= 10  # the check above had windows to look at


def test_coverage_groups_and_irregular_streams():
    rec = Recording("g", [
        Stream("clip1", np.zeros(20), "audio", rate=10.0, start=0.0, device="mic"),
        Stream("clip2", np.zeros(20), "audio", rate=10.0, start=5.0, device="mic"),
        Stream("ibi", np.full(8, 0.8), "ibi", times=[0, 0.8, 1.6, 2.4, 7.0, 7.8, 8.6, 9.4], device="wrist"),
    ])
    w = np.array([[0.0, 2.0], [2.0, 4.0], [5.0, 7.0], [8.0, 10.0]])
    cov = align.coverage(rec, w)
    np.testing.assert_allclose(cov["clip1"], [1, 0, 0, 0])
    np.testing.assert_allclose(cov["ibi"], [1, 0.2, 0, 0.7])  # 2.4 -> 7.0 is a gap
    by_mod = align.coverage(rec, w, by="modality")
    np.testing.assert_allclose(by_mod["audio"], [1, 0, 1, 0])
    assert list(align.presence_mask(rec, w, by="device").columns) == ["mic", "wrist"]
    with pytest.raises(SignalError, match="min_coverage"):
        align.presence_mask(rec, w, min_coverage=0)
    with pytest.raises(SignalError, match="start < end"):
        align.coverage(rec, np.array([[1.0, 1.0]]))
    with pytest.raises(SignalError, match="by must be"):
        align.coverage(rec, w, by="colour")


def test_errors_are_mmlab_errors():
    with pytest.raises(MMLabError):
        align.xcorr_lag([1, 2, 3], [1, 2, 3], 1.0, max_lag_s=5.0)


# ---------------------------------------------- issue 17: no gigabytes by accident
def test_resample_refuses_absurd_output_sizes():
    import time

    from mmlab.align.resample import MAX_OUTPUT_VALUES

    s = Stream("wrist_eda", np.ones((4 * 3600, 1)), rate=4.0, modality="eda")
    t0 = time.perf_counter()
    with pytest.raises(SignalError, match=r"more than 1e\+08 values.*is the rate in Hz"):
        align.resample(s, 1e6)
    assert time.perf_counter() - t0 < 1.0          # refused before allocating anything
    ibi = Stream("ibi", np.ones((100, 1)), times=np.arange(100.0), modality="ibi")
    with pytest.raises(SignalError, match="more than 1e\\+08 values"):
        align.interpolate_irregular(ibi, 1e7)
    assert MAX_OUTPUT_VALUES == 100_000_000
    assert align.resample(s, 8.0).n_samples == 8 * 3600   # a sane request still works
