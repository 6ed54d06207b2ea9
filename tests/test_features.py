"""mmlab.features: known answers per window, agreement with the per-window neurokit2 reference,
labels, clocks, and bad input (NaN features with quality flags, or clear errors)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmlab import features as F
from mmlab.bio.quality import SignalWarning
from mmlab.errors import SchemaError, SignalError
from mmlab.recording import Cohort, Recording, Stream
from mmlab.synth.physio import scr_response, simulate_ecg, simulate_resp

DURATION = 240.0
ECG_HZ, EDA_HZ, RESP_HZ, AUDIO_HZ = 250.0, 16.0, 25.0, 16000.0
SCR_ONSETS = np.array([20.0, 50.0, 75.0, 130.0, 160.0, 200.0, 222.0])


def make_recording(subject="P1", ecg=None, eda=None, resp=None, audio=True, eda_offset=0.0):
    """A 4-minute recording with known answers: 72 bpm, 15 breaths/min, planted SCRs on a
    5 µS tonic level, and a 2 s 150 Hz tone as the only audio; phases rest then task."""
    if ecg is None:
        ecg, _ = simulate_ecg(DURATION, ECG_HZ, heart_rate=72.0, seed=2)
    n = int(DURATION * EDA_HZ)
    if eda is None:
        eda = 5.0 + scr_response(SCR_ONSETS, np.full(len(SCR_ONSETS), 0.3), 0.0, EDA_HZ, n)
        eda += np.random.default_rng(4).normal(0, 0.001, n)   # a real sensor is never exactly constant
    if resp is None:
        resp, _ = simulate_resp(DURATION, RESP_HZ, rate_bpm=15.0, seed=3)
    streams = [Stream("chest_ecg", ecg, "ecg", rate=ECG_HZ, device="chest"),
               Stream("wrist_eda", eda, "eda", rate=EDA_HZ, device="wrist", start=eda_offset),
               Stream("chest_resp", resp, "resp", rate=RESP_HZ, device="chest")]
    if audio:
        t = np.arange(int(2 * AUDIO_HZ)) / AUDIO_HZ
        tone = (0.5 * np.sin(2 * np.pi * 150.0 * t)).astype(np.float32)
        streams.append(Stream("voice_01", tone, "audio", rate=AUDIO_HZ, start=100.0, device="mic"))
    ann = [{"onset": 0.0, "duration": 120.0, "kind": "phase", "label": "rest"},
           {"onset": 120.0, "duration": 120.0, "kind": "phase", "label": "task"}]
    return Recording(subject, streams=streams, annotations=ann, meta={"reference_device": "chest"})


@pytest.fixture(scope="module")
def rec():
    return make_recording()


@pytest.fixture(scope="module")
def table(rec):
    return F.window_features(rec, 30.0, 10.0)


# ------------------------------------------------------------------ windows and labels
def test_window_grid_any_length_and_step():
    s, e = F.window_grid(0.0, 3750.0, 60.0, 0.25)          # WESAD protocol on an hour
    assert len(s) == 14761 and s[-1] + 60 <= 3750 and e[0] == 60.0
    s, e = F.window_grid(5.0, 35.0, 10.0, 10.0)             # non-overlapping
    assert list(s) == [5.0, 15.0, 25.0] and list(e) == [15.0, 25.0, 35.0]
    with pytest.raises(SignalError, match="shorter than one"):
        F.window_grid(0.0, 30.0, 60.0, 1.0)
    with pytest.raises(SignalError, match="step_s"):
        F.window_grid(0.0, 300.0, 60.0, 0.0)


def test_labels_by_majority_and_centre(rec):
    starts = np.array([0.0, 70.0, 100.0, 110.0, 200.0])
    ends = starts + 40.0
    assert list(F.window_labels(rec, starts, ends, rule="majority")) == ["rest", "rest", "", "task", "task"]
    assert list(F.window_labels(rec, starts, ends, rule="centre")) == ["rest", "rest", "task", "task", "task"]
    assert list(F.window_labels(rec, starts, ends, rule="pure")) == ["rest", "rest", "", "", "task"]
    with pytest.raises(SignalError, match="label_rule"):
        F.window_labels(rec, starts, ends, rule="mode")


def test_table_layout(table, rec):
    assert list(table.columns[:4]) == ["subject", "start", "end", "label"]
    assert F.feature_columns(table) == [f"{m}__{f}" for m in ("ecg", "eda", "resp", "audio")
                                        for f in F.FEATURES[m]]
    assert all(c.split("__")[1].startswith("q_") for c in F.quality_columns(table))
    assert {"ecg__q_ok", "ecg__q_sqi", "eda__q_missing", "audio__q_ok"} <= set(table.columns)
    assert len(table) == 22 and table["start"].iloc[1] == 10.0
    assert set(table["label"]) == {"rest", "task"} and (table["subject"] == "P1").all()


# ------------------------------------------------------------------ known answers
def test_known_answers_per_window(table):
    assert table["ecg__hr_mean"].to_numpy() == pytest.approx(72.0, abs=1.0)
    assert table["resp__rate"].to_numpy() == pytest.approx(15.0, abs=0.6)
    assert table["ecg__q_ok"].all() and table["resp__q_ok"].all()
    assert (table["ecg__q_sqi"] > 0.95).all()
    # SCRs: count the planted onsets whose response peaks (~2.5 s later) fall in the window
    peak_t = SCR_ONSETS + 2.3
    expected = [np.sum((peak_t >= a) & (peak_t < b)) for a, b in zip(table.start, table.end)]
    near_edge = [np.any(np.abs(peak_t - a) < 1.0) or np.any(np.abs(peak_t - b) < 1.0)
                 for a, b in zip(table.start, table.end)]
    got = table["eda__scr_count"].to_numpy()
    assert all(g == e for g, e, edge in zip(got, expected, near_edge) if not edge)
    assert table["eda__scl_mean"].to_numpy() == pytest.approx(5.0, abs=0.15)


def test_audio_features_of_a_tone(table):
    has = table["audio__q_ok"].to_numpy()
    inside = (table["start"] <= 100.0) & (table["end"] >= 102.0)
    assert (has == (table["audio__q_missing"] < 1.0)).all()
    assert inside.sum() == 3 and has[inside.to_numpy()].all()
    row = table[inside].iloc[0]
    assert row["audio__f0_mean"] == pytest.approx(150.0, abs=1.0)
    assert row["audio__rms"] == pytest.approx(0.5 / np.sqrt(2), rel=1e-3)
    assert row["audio__q_missing"] == pytest.approx(1 - 2 / 30, abs=1e-3)
    assert np.isnan(table.loc[~table["audio__q_ok"], "audio__f0_mean"]).all()


# ------------------------------------------------------------------ the neurokit2 reference
def test_matches_the_per_window_neurokit2_reference():
    """Fast windowed features equal neurokit2/Praat run on each window's samples (1 %)."""
    from mmlab.synth import make_cohort

    rec = make_cohort("stress_protocol", 1, seed=3, fast=True)[0]
    ours = F.window_features(rec, 60.0, 0.25, clocks="truth")
    pick = np.linspace(0, len(ours) - 1, 36).round().astype(int)
    # add windows that hold part of a spoken clip, so audio is compared too
    clip = rec["voice_02"]
    cuts = np.flatnonzero((ours["start"] > clip.start - 60) & (ours["start"] < clip.end))[::40]
    sub = ours.iloc[np.unique(np.r_[pick, cuts])]
    ref = F.reference_features(rec, sub["start"], sub["end"], clocks="truth")
    dev = F.compare_tables(sub, ref).set_index("feature")
    assert set(dev.index) == set(F.feature_columns(ours))
    assert (dev["n"] >= 3).all(), dev
    assert (dev["max_rel_dev"] <= 0.01).all(), dev
    assert (dev["only_ref"] == 0).all(), dev
    # and ours is defined wherever the reference is (dropouts may NaN the reference only)
    assert (dev.loc[["ecg__hr_mean", "eda__scl_mean", "resp__rate"], "n"] >= 30).all()


def test_compare_tables_reports_deviations():
    a = pd.DataFrame({"start": [0.0, 1.0, 2.0], "ecg__hr_mean": [60.0, 70.0, np.nan]})
    b = pd.DataFrame({"start": [0.0, 1.0, 2.0], "ecg__hr_mean": [60.0, 77.0, 80.0]})
    row = F.compare_tables(a, b).iloc[0]
    assert row["n"] == 2 and row["only_ref"] == 1 and row["max_rel_dev"] == pytest.approx(0.1 / 1.1)


# ------------------------------------------------------------------ clocks, streams, cohorts
def test_clock_mapping_moves_device_events_onto_the_reference_clock():
    # the wrist clock runs 7 s ahead: its samples carry device times 7 s later
    rec = make_recording(eda_offset=7.0, audio=False)
    windows = dict(window_s=20.0, step_s=20.0, streams={"eda": "wrist_eda"}, t_start=0.0, t_end=240.0)
    naive = F.window_features(rec, **windows)
    mapped = F.window_features(rec, clocks={"wrist": {"offset_s": 7.0, "drift_ppm": 0.0}}, **windows)
    # planted SCR peaks near 22 s, 52 s, 77 s ... on the reference clock (29, 59, 84 s on the
    # wrist's): the window [60, 80) holds one, but not on the device's own clock
    assert mapped.loc[mapped["start"] == 60.0, "eda__scr_count"].item() == 1
    assert naive.loc[naive["start"] == 60.0, "eda__scr_count"].item() == 0
    # without the mapping the first 7 s of the window have no samples yet
    assert naive["eda__q_missing"].iloc[0] == pytest.approx(7 / 20, abs=0.01)
    assert mapped["eda__q_missing"].iloc[0] == pytest.approx(0.0, abs=0.01)
    # a misspelt clock key raises (as align_recording does) instead of meaning offset 0
    with pytest.raises(SchemaError, match="unknown key 'offset'"):
        F.window_features(rec, clocks={"wrist": {"offset": 7.0}}, **windows)
    with pytest.raises(SchemaError, match="clocks must be None, 'truth' or a mapping"):
        F.window_features(rec, clocks="estimated", **windows)


def test_stream_selection_and_prefixes(rec):
    t = F.window_features(rec, 60.0, 60.0, streams={"chest": "chest_ecg", "arm": "wrist_eda"})
    assert F.feature_columns(t) == ["chest__hr_mean", "chest__sdnn", "chest__rmssd", "chest__pnn50",
                                    "arm__scl_mean", "arm__scl_std", "arm__scr_count", "arm__scr_amp_mean"]
    with pytest.raises(SchemaError, match="no stream"):
        F.window_features(rec, streams={"ecg": "nope"})
    with pytest.raises(SchemaError, match="one modality"):
        F.window_features(rec, streams={"mix": ["chest_ecg", "wrist_eda"]})


def test_transformer_over_a_cohort():
    cohort = Cohort([make_recording("A", audio=False), make_recording("B", audio=False)])
    wf = F.WindowFeatures(window_s=60.0, step_s=60.0)
    out = wf.fit_transform(cohort)
    assert list(out["subject"].unique()) == ["A", "B"] and len(out) == 8
    assert wf.get_params()["window_s"] == 60.0


# ------------------------------------------------------------------ bad input
def test_ecg_at_a_wrong_rate_is_a_clear_error():
    rec = make_recording(audio=False)
    bad = Recording("X", streams=[Stream("ecg", rec["chest_ecg"].data[::62], "ecg", rate=4.0)])
    with pytest.raises(SignalError, match=r"ECG stream 'ecg' sampled at 4 Hz"):
        F.window_features(bad, 60.0, 30.0)


def test_too_short_recording_is_a_clear_error():
    ecg, _ = simulate_ecg(30.0, ECG_HZ, seed=1)
    short = Recording("S", streams=[Stream("ecg", ecg, "ecg", rate=ECG_HZ)])
    with pytest.raises(SignalError, match="shorter than one 60 s window"):
        F.window_features(short, 60.0, 1.0)


@pytest.mark.parametrize("kind", ["all_nan", "flat"])
def test_dead_ecg_gives_nan_features_with_flags(kind):
    x = np.full(int(DURATION * ECG_HZ), np.nan if kind == "all_nan" else 0.2)
    t = F.window_features(make_recording(ecg=x, audio=False), 30.0, 30.0)
    assert t[["ecg__hr_mean", "ecg__rmssd"]].isna().all().all()
    assert not t["ecg__q_ok"].any()
    flag = "ecg__q_missing" if kind == "all_nan" else "ecg__q_flat"
    assert (t[flag] == 1.0).all()
    assert t["resp__q_ok"].all()                     # the other streams are unaffected


def test_partly_nan_ecg_uses_valid_intervals_only():
    x, _ = simulate_ecg(DURATION, ECG_HZ, heart_rate=72.0, seed=2)
    x[int(100 * ECG_HZ):int(125 * ECG_HZ)] = np.nan     # a 25 s dropout
    t = F.window_features(make_recording(ecg=x, audio=False), 30.0, 5.0)
    inside = (t["start"] >= 100) & (t["end"] <= 125)
    assert inside.sum() == 0 or t.loc[inside, "ecg__hr_mean"].isna().all()
    mostly_gap = t["ecg__q_missing"] > 0.5
    assert mostly_gap.any() and t.loc[mostly_gap, "ecg__hr_mean"].isna().all()
    partly = (t["ecg__q_missing"] > 0.1) & (t["ecg__q_missing"] < 0.4)
    assert partly.any()
    assert t.loc[partly, "ecg__hr_mean"].to_numpy() == pytest.approx(72.0, abs=1.5)  # no 25 s "beat"
    assert t.loc[partly, "ecg__q_ok"].all()


def test_clipped_ecg_windows_are_flagged_and_not_trusted():
    x, _ = simulate_ecg(DURATION, ECG_HZ, heart_rate=72.0, seed=2)
    x = np.minimum(x, np.percentile(x, 97.0))           # every R-wave is cut flat
    with pytest.warns(SignalWarning, match="R-peaks .* dropped"):   # the quality gate says so
        t = F.window_features(make_recording(ecg=x, audio=False), 30.0, 30.0)
    assert (t["ecg__q_clipped"] > 0.005).all()
    assert t["ecg__hr_mean"].isna().all() and not t["ecg__q_ok"].any()


def test_partly_nan_and_flat_eda():
    n = int(DURATION * EDA_HZ)
    eda = 5.0 + scr_response(SCR_ONSETS, np.full(len(SCR_ONSETS), 0.3), 0.0, EDA_HZ, n)
    eda[int(40 * EDA_HZ):int(90 * EDA_HZ)] = np.nan        # hides the SCRs at 50 s and 75 s
    t = F.window_features(make_recording(eda=eda, audio=False), 30.0, 10.0)
    gap = t["eda__q_missing"] > 0.5
    assert gap.any() and t.loc[gap, "eda__scr_count"].isna().all()
    assert t["eda__scr_count"].sum() > 0
    flat = F.window_features(make_recording(eda=np.full(n, 3.0), audio=False), 30.0, 30.0)
    assert (flat["eda__q_flat"] == 1.0).all() and not flat["eda__q_ok"].any()
    assert flat["eda__scr_count"].isna().all()           # never invented, never a fake zero


def test_frequent_dropouts_leave_short_islands_that_are_skipped_not_fatal():
    """Seconds of data between two dropouts may hold less than the libraries need."""
    from mmlab.synth import make_cohort

    glitchy = make_cohort("stress_protocol", n_subjects=1, seed=1, fast=True,
                          dropout_per_hour=60, dropout_mean_s=20)[0]
    t = F.window_features(glitchy, 60.0, 5.0, clocks="truth")
    assert (t["ecg__q_missing"] > 0).any() and t["resp__q_ok"].any()
    late = t["start"] > t["start"].max() - 30             # near the end: after the last breath
    assert np.isfinite(t.loc[~late, "resp__rate"]).any()
    bad = t["ecg__q_missing"] > 0.5
    assert t.loc[bad, "ecg__hr_mean"].isna().all()


def test_the_features_benchmark_is_registered():
    """`mmlab bench features` exists (it prints figures; no timing is asserted here)."""
    from mmlab import bench

    assert "features" in bench.TOPICS
    with pytest.raises(Exception, match="unknown benchmark"):
        bench.run("no-such-benchmark")


def test_options_choose_the_detector_and_the_scr_threshold(rec):
    base = F.window_features(rec, 60.0, 60.0)
    t = F.window_features(rec, 60.0, 60.0, options={"ecg": {"method": "biosppy-hamilton"},
                                                     "eda": {"amplitude_min": 1.0}})
    assert t["ecg__hr_mean"].to_numpy() == pytest.approx(72.0, abs=1.0)
    assert (t["eda__scr_count"] == 0).all() and (base["eda__scr_count"] > 0).any()
