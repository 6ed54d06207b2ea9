"""mmlab.bio.ecg: R-peaks against known beats and MIT-BIH annotations, HRV known answers, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mmlab.bio import ecg
from mmlab.bio.quality import SignalWarning, assess, clipped_mask, flat_mask
from mmlab.errors import SignalError
from mmlab.synth.physio import simulate_ecg

FS = 500.0


@pytest.fixture(scope="module")
def ecg72():
    """60 s of ECG at 72 bpm (500 Hz) and its true R-peak times."""
    x, beats = simulate_ecg(duration=60.0, fs=FS, heart_rate=72.0, seed=1)
    return x, beats


def _beats_to_samples(beats, fs=FS):
    return np.round(np.asarray(beats) * fs).astype(int)


# ------------------------------------------------------------------ match_peaks
def test_match_peaks_counts_hits_misses_and_extras():
    ref = np.array([100, 400, 700, 1000])
    assert ecg.match_peaks(ref, ref, 100)["f1"] == 1.0
    m = ecg.match_peaks([102, 398, 1000, 1300], ref, 100, tol_s=0.15)  # 700 missed, 1300 extra
    assert (m["tp"], m["fp"], m["fn"]) == (3, 1, 1)
    assert m["precision"] == pytest.approx(0.75) and m["recall"] == pytest.approx(0.75)
    assert m["f1"] == pytest.approx(0.75)
    assert m["mean_abs_error_s"] == pytest.approx((0.02 + 0.02 + 0) / 3)


def test_match_peaks_tolerance_and_one_to_one():
    ref = np.array([1000])
    assert ecg.match_peaks([1016], ref, 100, tol_s=0.15)["tp"] == 0   # 160 ms off
    assert ecg.match_peaks([1015], ref, 100, tol_s=0.15)["tp"] == 1   # 150 ms: inside
    # two detections near one beat: only the closer one is a hit, the other a false positive
    m = ecg.match_peaks([995, 1003], ref, 100)
    assert (m["tp"], m["fp"], m["fn"]) == (1, 1, 0)
    assert m["mean_abs_error_s"] == pytest.approx(0.03)
    # one detection between two beats matches only one of them
    m = ecg.match_peaks([1050], [1000, 1100], 1000, tol_s=0.1)
    assert (m["tp"], m["fp"], m["fn"]) == (1, 0, 1)


def test_match_peaks_empty_inputs_give_nan_ratios_not_errors():
    m = ecg.match_peaks([], [10, 20], 100)
    assert (m["tp"], m["fp"], m["fn"]) == (0, 0, 2)
    assert np.isnan(m["precision"]) and m["recall"] == 0.0 and m["f1"] == 0.0
    m = ecg.match_peaks([], [], 100)
    assert np.isnan(m["f1"])


# ------------------------------------------------------------------ detection
@pytest.mark.parametrize("method", ["neurokit", "pantompkins1985", "biosppy-hamilton"])
def test_detectors_find_the_true_beats_at_72_bpm(ecg72, method):
    x, beats = ecg72
    peaks = ecg.detect_r_peaks(x, FS, method=method)
    inner = lambda p: p[(p >= FS) & (p < len(x) - FS)]  # noqa: E731 (detectors settle in ~1 s)
    m = ecg.match_peaks(inner(peaks), inner(_beats_to_samples(beats)), FS, tol_s=0.05)
    assert m["f1"] >= 0.99, m
    hrv = ecg.hrv_time(ecg.rr_intervals(peaks, FS))
    assert hrv["hr_mean"] == pytest.approx(72.0, abs=1.0)


def test_every_listed_detector_runs(ecg72):
    x, beats = ecg72
    short = x[: int(20 * FS)]
    for method in ecg.DETECTORS:
        peaks = ecg.detect_r_peaks(short, FS, method=method)
        assert peaks.dtype == np.int64 and np.all(np.diff(peaks) > 0), method
        assert 20 <= len(peaks) <= 28, (method, len(peaks))   # 24 beats in 20 s


def test_mitbih_record_100_rpeak_f1(data_dir):
    """R-peaks on MIT-BIH record 100, lead MLII (360 Hz), against the .atr beat annotations."""
    from mmlab.io import read_wfdb_record

    rec = read_wfdb_record(data_dir / "mitbih" / "100")
    stream = rec["ecg"]
    x, fs = stream.channel("MLII"), stream.rate
    ann = rec.annotations
    ref = ann.loc[(ann["kind"] == "event") & ann["beat"].astype(bool), "sample"].to_numpy()
    assert len(ref) == 2273 and not {"+", "~", "|"} & set(ann.loc[ann["beat"].astype(bool), "label"])
    for method in ("neurokit", "biosppy-hamilton"):
        m = ecg.match_peaks(ecg.detect_r_peaks(x, fs, method=method), ref, fs, tol_s=0.15)
        assert m["f1"] >= 0.995, (method, m)


# ------------------------------------------------------------------ RR and HRV
def test_rr_intervals_in_seconds_and_invalid_spans():
    peaks = np.array([0, 100, 220, 300])
    assert ecg.rr_intervals(peaks, 100) == pytest.approx([1.0, 1.2, 0.8])
    valid = np.ones(400, dtype=bool)
    valid[150] = False                      # a dropout between the 2nd and 3rd beat
    rr = ecg.rr_intervals(peaks, 100, valid=valid)
    assert rr[0] == 1.0 and np.isnan(rr[1]) and rr[2] == pytest.approx(0.8)
    with pytest.raises(SignalError, match="increasing"):
        ecg.rr_intervals([10, 5], 100)


def test_hrv_time_matches_neurokit2():
    import neurokit2 as nk

    rng = np.random.default_rng(3)
    peaks = np.cumsum(rng.normal(0.85, 0.06, 300) * 1000).astype(int)
    ours = ecg.hrv_time(ecg.rr_intervals(peaks, 1000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = nk.hrv_time(peaks, sampling_rate=1000).iloc[0]
    assert ours["mean_nn"] == pytest.approx(ref["HRV_MeanNN"], rel=1e-9)
    assert ours["sdnn"] == pytest.approx(ref["HRV_SDNN"], rel=1e-9)
    assert ours["rmssd"] == pytest.approx(ref["HRV_RMSSD"], rel=1e-9)
    assert ours["pnn50"] == pytest.approx(ref["HRV_pNN50"], rel=1e-9)
    assert ours["hr_mean"] == pytest.approx(60000 / ref["HRV_MeanNN"], rel=1e-9)


def test_hrv_time_known_answer_and_gaps():
    rr = np.array([0.8, 0.9, 0.8, 0.9, 0.8])        # successive differences all 100 ms
    h = ecg.hrv_time(rr)
    assert h["rmssd"] == pytest.approx(100.0)
    assert h["pnn50"] == pytest.approx(100 * 4 / 5)
    assert h["hr_mean"] == pytest.approx(60 / 0.84)
    gap = ecg.hrv_time([0.8, 0.9, np.nan, 0.8, 0.9])   # differences across the gap skipped
    assert gap["n_intervals"] == 4 and gap["rmssd"] == pytest.approx(100.0)
    assert np.isnan(ecg.hrv_time([0.8, 0.9])["sdnn"])   # too few intervals: NaN, no error


def _modulated_beats(duration=600.0, lf=0.02, hf=0.03):
    t = [0.0]
    while t[-1] < duration:
        s = t[-1]
        t.append(s + 0.8 + hf * np.sin(2 * np.pi * 0.25 * s) + lf * np.sin(2 * np.pi * 0.1 * s))
    return np.array(t)


@pytest.mark.parametrize("method", ["welch", "lomb"])
def test_hrv_frequency_recovers_planted_lf_and_hf_power(method):
    t = _modulated_beats()          # 20 ms at 0.1 Hz (LF), 30 ms at 0.25 Hz (HF)
    f = ecg.hrv_frequency(np.diff(t), t[1:], method=method)
    assert f["lf"] == pytest.approx(0.5 * 20 ** 2, rel=0.1)   # a sine's power is A²/2
    assert f["hf"] == pytest.approx(0.5 * 30 ** 2, rel=0.1)
    assert f["lf_peak_hz"] == pytest.approx(0.1, abs=0.01)
    assert f["hf_peak_hz"] == pytest.approx(0.25, abs=0.01)
    assert f["lf_nu"] + f["hf_nu"] == pytest.approx(100.0)


def test_hrv_frequency_ratio_agrees_with_neurokit2():
    import neurokit2 as nk

    t = _modulated_beats()
    ours = ecg.hrv_frequency(np.diff(t), t[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = nk.hrv_frequency(np.round(t * 1000).astype(int), sampling_rate=1000).iloc[0]
    assert ours["lf_hf"] == pytest.approx(ref["HRV_LFHF"], rel=0.05)


def test_hrv_frequency_refuses_short_or_ambiguous_input():
    with pytest.raises(SignalError, match="at least 60 s"):
        ecg.hrv_frequency(np.full(40, 0.8))
    with pytest.raises(SignalError, match="times_s"):
        ecg.hrv_frequency(np.r_[np.full(100, 0.8), np.nan])
    with pytest.raises(SignalError, match="method"):
        ecg.hrv_frequency(np.full(200, 0.8), method="fft")


# ------------------------------------------------------------------ quality
def test_beat_sqi_is_high_on_clean_beats_and_low_on_noise(ecg72):
    x, beats = ecg72
    peaks = ecg.detect_r_peaks(x, FS)
    assert np.nanmean(ecg.beat_sqi(x, FS, peaks)) > 0.95
    noisy = x + np.random.default_rng(0).normal(0, 1.0, len(x))   # noise as large as the R-wave
    assert np.nanmean(ecg.beat_sqi(noisy, FS, peaks)) < 0.7
    assert ecg.quality(x, FS, peaks) > 0.95
    assert ecg.quality(x, FS, peaks, method="zhao2018") in ("Excellent", "Barely acceptable", "Unacceptable")


# ------------------------------------------------------------------ bad input
def test_flat_ecg_is_a_clear_error_not_a_zero_division():
    # neurokit2 (0.3.0) returns no beats and a NaN rate on a flat ECG, with warnings; ours names the problem
    with pytest.raises(SignalError, match="flat"):
        ecg.detect_r_peaks(np.zeros(int(10 * FS)), FS)
    with pytest.raises(SignalError, match="flat"):
        ecg.clean(np.full(int(10 * FS), 0.3), FS)


def test_all_nan_ecg_is_an_error():
    with pytest.raises(SignalError, match="all NaN"):
        ecg.detect_r_peaks(np.full(int(10 * FS), np.nan), FS)


def test_partly_nan_ecg_skips_the_gap_without_inventing_beats(ecg72):
    x, beats = ecg72
    y = x.copy()
    gap = slice(int(20 * FS), int(30 * FS))
    y[gap] = np.nan
    peaks = ecg.detect_r_peaks(y, FS)
    assert not np.any((peaks >= gap.start) & (peaks < gap.stop))
    truth = _beats_to_samples(beats)
    outside = truth[(truth < gap.start - FS) | (truth >= gap.stop + FS)]
    assert ecg.match_peaks(peaks, outside, FS, 0.05)["recall"] == 1.0
    cleaned = ecg.clean(y, FS)
    assert np.isnan(cleaned[gap]).all() and np.isfinite(cleaned[: gap.start]).all()
    rr = ecg.rr_intervals(peaks, FS, valid=ecg.valid_mask(y, FS))
    assert np.isnan(rr).sum() == 1                   # the interval across the gap
    assert np.nanmax(rr) < 1.0                       # never a 10 s "interval"


def test_clipped_ecg_is_flagged_and_its_beats_are_not_trusted(ecg72):
    x, _ = ecg72
    top = np.percentile(x, 99.0)
    y = np.minimum(x, top)                           # the amplifier saturates on every R-wave
    report = assess(y, FS, "ECG")
    assert report.clipped_frac > 0.005 and "clipped" in str(report)
    assert clipped_mask(x).sum() <= 2                # the original is not clipped
    peaks = ecg.detect_r_peaks(y, FS)                 # detection still works ...
    rr = ecg.rr_intervals(peaks, FS, valid=ecg.valid_mask(y, FS))
    assert np.isnan(rr).mean() > 0.9                  # ... but RR intervals are not trusted
    assert np.isnan(ecg.hrv_time(rr)["rmssd"])


def test_too_short_and_wrong_rate_and_bad_shape_are_errors(ecg72):
    x, _ = ecg72
    with pytest.raises(SignalError, match="too short"):
        ecg.detect_r_peaks(x[: int(1.0 * FS)], FS)
    for bad_rate in (0, -500, float("nan"), "fast"):
        with pytest.raises(SignalError, match="sampling rate"):
            ecg.detect_r_peaks(x, bad_rate)
    with pytest.raises(SignalError, match="4 Hz"):
        ecg.detect_r_peaks(x[::125], 4.0)              # an "ECG" at the wrist's EDA rate
    with pytest.raises(SignalError, match="1-D"):
        ecg.detect_r_peaks(np.stack([x, x], axis=1), FS)
    with pytest.raises(SignalError, match="detector"):
        ecg.detect_r_peaks(x, FS, method="magic")


def test_flat_and_clipped_masks():
    x = np.r_[np.sin(np.linspace(0, 20, 1000)), np.zeros(600), np.sin(np.linspace(0, 20, 1000))]
    flat = flat_mask(x, 100.0, min_s=0.5)
    assert flat[1000:1600].all() and not flat[:990].any()
    assert not flat_mask(x[:1000], 100.0).any()


# ------------------------------------------------------------ issue 17: no invented beats
@pytest.mark.parametrize("name, make", [
    ("white noise", lambda r, n: r.standard_normal(n)),
    ("lead-off 1e-6 noise", lambda r, n: 1e-6 * r.standard_normal(n)),
    ("int16 +-1 LSB noise", lambda r, n: r.integers(-1, 2, n).astype(np.int16)),
])
def test_detect_r_peaks_finds_no_beats_in_noise(name, make):
    x = make(np.random.default_rng(0), 60 * 500)
    with pytest.warns(SignalWarning, match="100% of the detected R-peaks"):
        peaks = ecg.detect_r_peaks(x, 500)
    assert len(peaks) == 0, name


def test_detect_r_peaks_drops_only_the_noisy_blocks():
    import neurokit2 as nk

    fs = 500
    x = nk.ecg_simulate(duration=60, sampling_rate=fs, heart_rate=70, noise=0.05, random_state=1)
    clean_peaks = ecg.detect_r_peaks(x, fs)
    y = x.copy()
    y[30 * fs:] = np.random.default_rng(1).standard_normal(30 * fs) * np.std(x)
    with pytest.warns(SignalWarning, match="dropped"):
        p = ecg.detect_r_peaks(y, fs)
    assert np.all(p < 30 * fs)
    assert ecg.match_peaks(p, clean_peaks[clean_peaks < 29 * fs], fs)["recall"] == 1.0


def test_hrv_time_refuses_milliseconds_and_implausible_intervals():
    with pytest.raises(SignalError, match="milliseconds.*divide by 1000"):
        ecg.hrv_time([800.0, 810.0, 790.0, 805.0])
    with pytest.raises(SignalError, match="plausible 0.2-3 s"):
        ecg.hrv_time([8.0, 8.1, 7.9, 8.0])


def test_hrv_frequency_of_constant_rr_is_nan_with_a_flag():
    f = ecg.hrv_frequency(np.full(200, 0.8))
    assert f["quality"] == "constant"
    assert all(np.isnan(f[k]) for k in ("vlf", "lf", "hf", "lf_hf", "lf_nu", "hf_nu"))
    t = np.cumsum(0.8 + 0.05 * np.sin(2 * np.pi * 0.25 * np.arange(200) * 0.8))
    assert ecg.hrv_frequency(np.diff(t), t[1:])["quality"] == "ok"


@pytest.mark.parametrize("det, ref, tol, match", [
    ([10, 20], [10, 20], -0.1, "tol_s must be >= 0"),
    ([10, 20], [10, 20], float("nan"), "tol_s must be a finite number"),
    ([10.5, 20], [10, 20], 0.1, "whole numbers.*match_times"),
    ([-3, 20], [10, 20], 0.1, "non-negative"),
    (["a"], [10], 0.1, "sample indices"),
])
def test_match_peaks_validates_tolerance_and_indices(det, ref, tol, match):
    with pytest.raises(SignalError, match=match):
        ecg.match_peaks(det, ref, 100, tol_s=tol)


def test_match_times_scores_seconds():
    m = ecg.match_times([1.02, 3.98, 10.0], [1.0, 4.0, 7.0], tol_s=0.1)
    assert (m["tp"], m["fp"], m["fn"]) == (2, 1, 1)
    assert m["mean_abs_error_s"] == pytest.approx(0.02)
    with pytest.raises(SignalError, match="tol_s must be >= 0"):
        ecg.match_times([1.0], [1.0], tol_s=-1)
