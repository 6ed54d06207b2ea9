"""Wrist extractors of mmlab.features: BVP pulse rate, skin temperature, ACC motion, E4 HR.

Planted structure (a sine pulse at a known rate, a temperature ramp, a known
oscillation), the vectorised tables against the per-window references, dropouts and
bad input, and (with MMLAB_DATA_DIR) one Stress-Predict subject against the E4's own HR.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from mmlab import features as F
from mmlab.errors import SchemaError, SignalError
from mmlab.recording import Recording, Stream

WRIST = {"bvp": "wrist_bvp", "temp": "wrist_temp", "acc": "wrist_acc", "eda": "wrist_eda"}


def _rec(*streams, subject="w01"):
    return Recording(subject, list(streams))


def _bvp(duration=180.0, fs=64.0, rate_hz=1.2, noise=0.02, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration * fs)) / fs
    return np.sin(2 * np.pi * rate_hz * t) + noise * rng.standard_normal(len(t))


def _acc(duration=120.0, fs=32.0, amp=0.2, f=2.0, seed=0):
    """Still (1 g on z with 0.002 g noise) for the first half, then z oscillating by ``amp``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration * fs)) / fs
    z = 1.0 + np.where(t >= duration / 2, amp * np.sin(2 * np.pi * f * t), 0.0)
    z = z + 0.002 * rng.standard_normal(len(t))
    return np.stack([np.zeros_like(t), np.zeros_like(t), z], axis=1), t


# ------------------------------------------------------------------ planted structure
def test_bvp_sine_gives_its_rate():
    rec = _rec(Stream("wrist_bvp", _bvp(rate_hz=1.2), "bvp", rate=64.0))
    tab = F.window_features(rec, 30.0, 30.0, streams={"bvp": "wrist_bvp"})
    assert list(F.feature_columns(tab)) == ["bvp__hr_mean", "bvp__hr_std", "bvp__rmssd", "bvp__log_amp"]
    assert np.allclose(tab["bvp__hr_mean"], 72.0, atol=0.5)
    assert (tab["bvp__hr_std"] < 2.0).all() and (tab["bvp__rmssd"] < 20.0).all()
    # sd of a unit sine is 1/sqrt(2): log amplitude ~ -0.35
    assert np.allclose(tab["bvp__log_amp"], math.log(1 / math.sqrt(2)), atol=0.05)
    assert tab["bvp__q_ok"].all() and (tab["bvp__q_beats"] > 0.95).all()
    # a faster pulse is seen as faster
    fast = F.window_features(_rec(Stream("wrist_bvp", _bvp(rate_hz=2.0), "bvp", rate=64.0)), 30.0, 30.0,
                             streams={"bvp": "wrist_bvp"})
    assert np.allclose(fast["bvp__hr_mean"], 120.0, atol=1.0)


def test_temperature_ramp_gives_its_slope_on_the_reference_clock():
    fs, slope = 4.0, 0.002  # °C per device second
    t = np.arange(int(600 * fs)) / fs
    temp = Stream("wrist_temp", 33.0 + slope * t, "temp", rate=fs, device="wrist")
    tab = F.window_features(_rec(temp), 60.0, 30.0, streams={"temp": "wrist_temp"})
    assert np.allclose(tab["temp__slope"], slope, rtol=1e-9)
    # window mean = value at the mean sample time of the window's samples
    i0 = np.ceil(tab["start"].to_numpy() * fs).astype(int)
    i1 = np.ceil(tab["end"].to_numpy() * fs).astype(int)
    want = 33.0 + slope * (i0 + i1 - 1) / 2 / fs
    assert np.allclose(tab["temp__mean"], want, atol=1e-9)
    assert tab["temp__q_ok"].all()
    # a device clock running 1000 ppm fast: per reference second the slope is 0.1 % larger
    drift = F.window_features(_rec(temp), 60.0, 30.0, streams={"temp": "wrist_temp"},
                              clocks={"wrist": {"offset_s": 2.0, "drift_ppm": 1000.0}})
    assert np.allclose(drift["temp__slope"], slope * 1.001, rtol=1e-9)


def test_acc_motion_features_follow_the_planted_oscillation():
    amp, f, fs = 0.2, 2.0, 32.0
    xyz, _ = _acc(amp=amp, f=f, fs=fs)
    tab = F.window_features(_rec(Stream("wrist_acc", xyz, "acc", rate=fs)), 30.0, 30.0,
                            streams={"acc": "wrist_acc"})
    still, moving = tab.iloc[:2], tab.iloc[2:]
    assert np.allclose(tab["acc__mag_mean"], 1.0, atol=0.01)
    assert (still["acc__mag_sd"] < 0.005).all()
    assert np.allclose(moving["acc__mag_sd"], amp / math.sqrt(2), rtol=0.03)
    # first differences of amp*sin(2 pi f t) at fs: sd = sqrt(2) * amp * sin(pi f / fs)
    want = math.log(math.sqrt(2) * amp * math.sin(math.pi * f / fs))
    assert np.allclose(moving["acc__log_motion"], want, atol=0.03)
    assert np.allclose(still["acc__log_motion"], math.log(math.sqrt(2) * 0.002), atol=0.1)
    assert tab["acc__q_ok"].all()


def test_hr_stream_mean_std_slope():
    t = np.arange(300.0)
    hr = Stream("wrist_hr", 70.0 + 0.1 * t, "hr", rate=1.0, start=10.0)
    tab = F.window_features(_rec(hr), 60.0, 60.0, streams={"hr": "wrist_hr"})
    assert tab["start"].iloc[0] == 10.0
    assert np.allclose(tab["hr__slope"], 0.1, rtol=1e-9)
    assert np.allclose(tab["hr__std"], 0.1 * np.std(np.arange(60.0)), rtol=1e-9)
    assert np.allclose(tab["hr__mean"], 70.0 + 0.1 * (tab["start"] - 10.0 + 29.5), rtol=1e-12)


def test_wrist_eda_at_4_hz_and_all_wrist_streams_together():
    from mmlab.synth.physio import simulate_eda

    eda, _ = simulate_eda(duration=180.0, fs=4.0, seed=0)
    xyz, _ = _acc(duration=180.0)
    rec = _rec(Stream("wrist_bvp", _bvp(duration=180.0), "bvp", rate=64.0),
               Stream("wrist_temp", 33.0 + 0.001 * np.arange(720) / 4.0, "temp", rate=4.0),
               Stream("wrist_acc", xyz, "acc", rate=32.0), Stream("wrist_eda", eda, "eda", rate=4.0))
    tab = F.window_features(rec, 30.0, 30.0, streams=WRIST)
    assert len(tab) == 6
    mods = {c.split("__")[0] for c in F.feature_columns(tab)}
    assert mods == {"bvp", "temp", "acc", "eda"}
    assert np.isfinite(tab[F.feature_columns(tab)].drop(columns="eda__scr_amp_mean")).all().all()
    assert tab["eda__scl_mean"].between(4.0, 6.5).all()
    # the default selection is unchanged: wrist streams only when asked for
    assert F.select_streams(rec) == {"eda": [rec["wrist_eda"]]}


# ------------------------------------------------------------------ fast == reference
@pytest.fixture(scope="module")
def stress_rec():
    from mmlab import synth

    return synth.make_cohort("stress_protocol", n_subjects=1, seed=3, fast=True)[0]


@pytest.mark.parametrize("correct", [False, True])
def test_vectorised_matches_reference_on_synthetic_wrist(stress_rec, correct):
    """Without artefact correction the pulses are the same whether found over the whole
    stream or per window, so every feature agrees to rounding. neurokit2's correction
    looks at the whole series it is given, so per window a few intervals differ."""
    streams = {"bvp": "wrist_bvp", "temp": "wrist_temp", "acc": "wrist_acc"}
    opts = {"bvp": {"correct_artifacts": correct}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tab = F.window_features(stress_rec, 30.0, 10.0, streams=streams, clocks="truth", options=opts)
        ref = F.reference_features(stress_rec, tab["start"], tab["end"], streams=streams, clocks="truth",
                                   options=opts)
    cmp = F.compare_tables(tab, ref).set_index("feature")
    exact = ["temp__mean", "temp__slope", "acc__mag_mean", "acc__mag_sd", "acc__log_motion", "bvp__log_amp"]
    pulse = ["bvp__hr_mean", "bvp__hr_std", "bvp__rmssd"]
    for c in exact + pulse:
        assert cmp.loc[c, "n"] >= 0.8 * len(tab), c
        assert cmp.loc[c, "only_ours"] == 0, c
    for c in exact + ([] if correct else pulse):
        assert cmp.loc[c, "max_rel_dev"] < 1e-9, (c, cmp.loc[c].to_dict())
    if correct:
        for c in pulse:
            assert cmp.loc[c, "median_rel_dev"] < 1e-6, (c, cmp.loc[c].to_dict())
        a, b = tab["bvp__hr_mean"].to_numpy(), ref["bvp__hr_mean"].to_numpy()
        both = np.isfinite(a) & np.isfinite(b)
        assert np.quantile(np.abs(a[both] - b[both]) / b[both], 0.9) < 0.01
    # the pulse rate follows the planted beats (R-peak times on the reference clock)
    beats = np.asarray(stress_rec.meta["truth"]["r_peaks"])
    k0, k1 = np.searchsorted(beats, tab["start"]), np.searchsorted(beats, tab["end"])
    true_hr = np.array([60.0 / np.mean(np.diff(beats[a:b])) for a, b in zip(k0, k1)])
    ok = tab["bvp__q_ok"].to_numpy()
    assert ok.mean() > 0.7
    assert np.median(np.abs(tab["bvp__hr_mean"].to_numpy()[ok] - true_hr[ok])) < 1.0


def test_reference_per_window_on_planted_signals():
    """The slow path equals the fast path where both are defined (without neurokit2's
    artefact correction, which looks at the whole series it is given)."""
    xyz, _ = _acc()
    rec = _rec(Stream("wrist_acc", xyz, "acc", rate=32.0),
               Stream("wrist_temp", 33.0 + 0.003 * np.arange(480) / 4.0, "temp", rate=4.0),
               Stream("wrist_bvp", _bvp(duration=120.0), "bvp", rate=64.0))
    streams = {"acc": "wrist_acc", "temp": "wrist_temp", "bvp": "wrist_bvp"}
    opts = {"bvp": {"correct_artifacts": False}}
    tab = F.window_features(rec, 20.0, 7.5, streams=streams, options=opts)
    ref = F.reference_features(rec, tab["start"], tab["end"], streams=streams, options=opts)
    assert len(tab) == 14
    for c in F.feature_columns(ref):
        a, b = tab[c].to_numpy(), ref[c].to_numpy()
        assert np.array_equal(np.isfinite(a), np.isfinite(b)) and np.isfinite(a).all(), c
        assert np.allclose(a, b, rtol=1e-9, atol=1e-12), c


# ------------------------------------------------------------------ dropouts, bad input
def test_dropout_gives_nan_and_quality_flags():
    bvp = _bvp(duration=150.0)
    bvp[int(35 * 64):int(58 * 64)] = np.nan          # window 30-60: 77 % missing
    temp = 33.0 + 0.001 * np.arange(600) / 4.0
    temp[int(95 * 4):int(100 * 4)] = np.nan          # window 90-120: 17 % missing
    temp[int(120 * 4):int(150 * 4)] = np.nan         # window 120-150: all missing
    xyz, _ = _acc(duration=150.0)
    xyz[int(65 * 32):int(85 * 32), 1] = np.nan       # window 60-90: one axis NaN for 20 of 30 s
    rec = _rec(Stream("wrist_bvp", bvp, "bvp", rate=64.0), Stream("wrist_temp", temp, "temp", rate=4.0),
               Stream("wrist_acc", xyz, "acc", rate=32.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tab = F.window_features(rec, 30.0, 30.0, streams={"bvp": "wrist_bvp", "temp": "wrist_temp",
                                                          "acc": "wrist_acc"})
    assert np.isnan(tab.loc[1, "bvp__hr_mean"]) and not tab.loc[1, "bvp__q_ok"]
    assert tab.loc[1, "bvp__q_missing"] == pytest.approx(23 / 30, abs=0.01)
    assert tab.loc[[0, 2, 3, 4], "bvp__q_ok"].all()
    assert np.isnan(tab.loc[4, "temp__mean"]) and tab.loc[4, "temp__q_missing"] == 1.0
    assert not tab.loc[4, "temp__q_ok"]
    # a short gap: the remaining 83 % of the samples still give the slope, flagged
    assert tab.loc[3, "temp__slope"] == pytest.approx(0.001, rel=1e-9)
    assert tab.loc[3, "temp__q_missing"] == pytest.approx(5 / 30, abs=0.01)
    assert tab.loc[2, "acc__q_missing"] == pytest.approx(20 / 30, abs=0.01)
    assert np.isnan(tab.loc[2, "acc__mag_mean"]) and not tab.loc[2, "acc__q_ok"]


def test_min_coverage_decides():
    temp = 33.0 + 0.001 * np.arange(480) / 4.0
    temp[:int(20 * 4)] = np.nan  # first 30 s window: 1/3 valid
    rec = _rec(Stream("wrist_temp", temp, "temp", rate=4.0))
    lax = F.window_features(rec, 30.0, 30.0, streams={"temp": "wrist_temp"}, min_coverage=0.3)
    strict = F.window_features(rec, 30.0, 30.0, streams={"temp": "wrist_temp"}, min_coverage=0.5)
    assert np.isfinite(lax.loc[0, "temp__mean"]) and np.isnan(strict.loc[0, "temp__mean"])


def test_flat_and_all_nan_streams_are_flagged_nan():
    rec = _rec(Stream("wrist_temp", np.full(2400, 33.0), "temp", rate=4.0),
               Stream("wrist_bvp", np.full(600 * 64, np.nan), "bvp", rate=64.0),
               Stream("wrist_hr", np.full(600, 72.0), "hr", rate=1.0))
    tab = F.window_features(rec, 60.0, 60.0, streams={"temp": "wrist_temp", "bvp": "wrist_bvp",
                                                      "hr": "wrist_hr"})
    for p in ("temp", "bvp", "hr"):
        assert tab[[c for c in F.feature_columns(tab) if c.startswith(p)]].isna().all().all(), p
        assert not tab[f"{p}__q_ok"].any()
    assert (tab["temp__q_flat"] == 1.0).all() and (tab["hr__q_flat"] == 1.0).all()
    assert (tab["bvp__q_missing"] == 1.0).all()


def test_flat_bvp_stretch_has_no_beats():
    bvp = _bvp(duration=120.0)
    bvp[int(60 * 64):] = 0.5  # sensor frozen for the second minute
    tab = F.window_features(_rec(Stream("wrist_bvp", bvp, "bvp", rate=64.0)), 30.0, 30.0,
                            streams={"bvp": "wrist_bvp"})
    assert tab.loc[[0, 1], "bvp__q_ok"].all()
    assert tab.loc[[2, 3], "bvp__hr_mean"].isna().all() and (tab.loc[[2, 3], "bvp__q_flat"] == 1.0).all()


def test_noise_bvp_is_flagged_not_trusted():
    """White noise has 'peaks' but no rhythm: the features exist, q_ok is False."""
    x = np.random.default_rng(0).standard_normal(64 * 120)
    tab = F.window_features(_rec(Stream("wrist_bvp", x, "bvp", rate=64.0)), 30.0, 30.0,
                            streams={"bvp": "wrist_bvp"})
    assert not tab["bvp__q_ok"].any()
    assert (tab["bvp__q_beats"] < 0.8).all()
    clean = F.window_features(_rec(Stream("wrist_bvp", _bvp(duration=120.0), "bvp", rate=64.0)), 30.0, 30.0,
                              streams={"bvp": "wrist_bvp"})
    assert (clean["bvp__q_beats"] > 0.95).all()


@pytest.mark.parametrize("stream, err, match", [
    (Stream("a", np.zeros((3, 3200)) + 1.0, "acc", rate=32.0, channels=[f"c{i}" for i in range(3200)]),
     SchemaError, "pass data.T"),
    (Stream("a", np.ones((3200, 2)), "acc", rate=32.0), SchemaError, "3 axes"),
    (Stream("a", np.ones(3200), "acc", rate=32.0), SchemaError, "3 axes"),
    (Stream("a", np.tile([0.0, 0.0, 64.0], (3200, 1)), "acc", rate=32.0), SignalError, "1/64 g"),
    (Stream("a", np.full(2400, 306.0) + np.arange(2400) * 1e-3, "temp", rate=4.0), SignalError, "°C"),
    (Stream("a", np.full(600, 1.2) + np.arange(600) * 1e-3, "hr", rate=1.0), SignalError, "bpm"),
    (Stream("a", _bvp(fs=8.0), "bvp", rate=8.0), SignalError, "20"),
    (Stream("a", np.ones(100), "temp", times=np.arange(100.0) * 1.5), SchemaError, "irregular"),
])
def test_bad_input_raises_a_clear_error(stream, err, match):
    with pytest.raises(err, match=match):
        F.window_features(_rec(stream), 30.0, 30.0, streams={"x": "a"})


def test_ibi_stream_is_not_a_sampled_modality():
    s = Stream("wrist_ibi", np.full(100, 0.8), "ibi", times=np.cumsum(np.full(100, 0.8)))
    with pytest.raises(SchemaError, match="modality"):
        F.window_features(_rec(s), 30.0, 30.0, streams={"ibi": "wrist_ibi"})


# ------------------------------------------------------------------ real data
DATA = os.environ.get("MMLAB_DATA_DIR")


@pytest.mark.skipif(not DATA or not (Path(DATA or ".") / "stress_predict").is_dir(),
                    reason="MMLAB_DATA_DIR with stress_predict not set")
def test_stress_predict_subject_pulse_rate_matches_the_e4():
    """S02, about an hour of E4 data, 30-s windows. Measured: every column finite in all
    118 windows; |BVP pulse rate - E4 HR| median 4.0 bpm over the q_ok windows (22 %
    of them; 6.7 bpm over all windows); with ``invert`` 4.4 / 5.8 bpm."""
    from mmlab.io.empatica import read_stress_predict_subject

    rec = read_stress_predict_subject(Path(DATA) / "stress_predict", "S02")
    tab = F.window_features(rec, 30.0, 30.0, streams={**WRIST, "hr": "wrist_hr"})
    assert len(tab) > 100
    finite = np.isfinite(tab[F.feature_columns(tab)].drop(columns="eda__scr_amp_mean")).mean()
    assert (finite > 0.9).all(), finite[finite <= 0.9]
    diff = np.abs(tab["bvp__hr_mean"] - tab["hr__mean"])
    ok = tab["bvp__q_ok"]
    assert ok.sum() >= 10
    assert np.nanmedian(diff[ok]) < 6.0
    assert np.nanmedian(diff) < 8.0
    assert tab["temp__mean"].between(30, 38).all() and tab["acc__mag_mean"].between(0.9, 1.1).all()


# ------------------------------------------------------------------ given windows, fusion table
def test_features_at_matches_window_features_and_checks_windows():
    xyz, _ = _acc()
    rec = _rec(Stream("wrist_acc", xyz, "acc", rate=32.0),
               Stream("wrist_temp", 33.0 + 0.003 * np.arange(480) / 4.0, "temp", rate=4.0))
    streams = {"acc": "wrist_acc", "temp": "wrist_temp"}
    tab = F.window_features(rec, 20.0, 10.0, streams=streams)
    at = F.features_at(rec, tab["start"], tab["end"], streams=streams)
    cols = F.feature_columns(tab) + F.quality_columns(tab)
    assert list(at.columns) == ["start", "end", *cols]
    assert np.allclose(at[F.feature_columns(tab)].to_numpy(float), tab[F.feature_columns(tab)].to_numpy(float))
    # overlapping windows of different lengths are fine
    odd = F.features_at(rec, [0.0, 5.0], [100.0, 12.0], streams={"temp": "wrist_temp"})
    assert odd["temp__slope"].to_numpy() == pytest.approx([0.003, 0.003], rel=1e-9)
    with pytest.raises(SchemaError, match="end > start"):
        F.features_at(rec, [10.0], [5.0], streams=streams)
    with pytest.raises(SchemaError, match="one length"):
        F.features_at(rec, [0.0, 10.0], [5.0], streams=streams)


def test_stress_window_table_wrist_columns_come_from_the_extractors(stress_rec):
    from mmlab.fusion.tables import wrist_window_features

    starts = np.arange(0.0, 300.0, 15.0)
    ends = starts + 15.0
    w = wrist_window_features(stress_rec, starts, ends)
    assert set(w) == {"wrist__temp_mean", "wrist__temp_slope", "wrist__log_motion", "wrist__log_bvp_amp"}
    at = F.features_at(stress_rec, starts, ends, streams={"temp": "wrist_temp", "acc": "wrist_acc"})
    ok = np.isfinite(w["wrist__temp_mean"])
    assert ok.mean() > 0.8
    assert np.allclose(w["wrist__temp_mean"][ok], at["temp__mean"][ok])
    assert np.allclose(w["wrist__log_motion"][ok], at["acc__log_motion"][ok])
    # a dropout in one wrist stream makes the whole wrist modality absent in that window
    bvp = stress_rec["wrist_bvp"]
    data = bvp.data.astype(float).copy()
    t = bvp.timestamps()
    data[(t >= 100.0) & (t < 110.0)] = np.nan
    rec2 = Recording(stress_rec.subject, [bvp.replace(data=data) if n == "wrist_bvp" else stress_rec[n]
                                          for n in stress_rec.streams])
    w2 = wrist_window_features(rec2, starts, ends)
    hit = (starts < 110.0) & (ends > 100.0)
    for k in w2:
        assert np.isnan(w2[k][hit]).all(), k
        assert np.array_equal(np.isfinite(w2[k][~hit]), np.isfinite(w[k][~hit])), k


def test_window_stats_known_answers():
    from mmlab import features as FT
    from mmlab.recording import Recording, Stream

    x = np.arange(40, dtype=float)  # 4 Hz ramp over 10 s
    acc = np.c_[np.full(40, 3.0), np.full(40, 4.0), np.zeros(40)]
    acc[20:24] = np.nan  # one second missing
    rec = Recording("s", [Stream("ramp", x, "temp", rate=4.0), Stream("acc", acc, "acc", rate=4.0)])
    t = FT.window_stats(rec, [0.0, 5.0, 4.0], [5.0, 10.0, 6.0], min_coverage=0.9)
    assert t["ramp__c0_mean"].tolist() == [9.5, 29.5, 19.5]
    assert t["ramp__c0_min"].tolist() == [0.0, 20.0, 16.0] and t["ramp__c0_max"].tolist() == [19.0, 39.0, 23.0]
    assert t["ramp__c0_sd"][0] == pytest.approx(np.std(np.arange(20.0)))
    assert t["acc__mag_mean"][0] == pytest.approx(5.0) and t["acc__c2_max"][0] == 0.0
    # 4 of the 20 samples of [5, 10) are NaN: under 90 % coverage, flagged NaN, not guessed
    assert np.isnan(t["acc__mag_mean"][1]) and np.isnan(t["acc__c0_sd"][1])
    assert np.isfinite(FT.window_stats(rec, [5.0], [10.0], min_coverage=0.5)["acc__mag_mean"][0])
    with pytest.raises(SchemaError, match="no stream 'bvp'"):
        FT.window_stats(rec, [0.0], [5.0], streams=["bvp"])
