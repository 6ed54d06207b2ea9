"""mmlab.voice: spectra, MFCC, pitch, jitter/shimmer, eGeMAPS, VAD, digit baselines (chapter 11_voice)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmlab import voice as V
from mmlab.errors import SignalError
from mmlab.synth import voice as SV

SR = 16000


@pytest.fixture(scope="module")
def tone():
    return SV.harmonic_tone(150.0, duration=1.0, sr=SR)


# --------------------------------------------------------------------- input checks
@pytest.mark.parametrize("bad, match", [
    (np.array([]), "empty"),
    (np.array([0.0, np.nan, 0.1] * 400), "NaN/inf"),
    (np.zeros((3, 4, 5)), "1-D"),
    (["a", "b"], "numbers"),
])
def test_check_audio_rejects_bad_waveforms(bad, match):
    with pytest.raises(SignalError, match=match):
        V.check_audio(bad, SR)


@pytest.mark.parametrize("sr, match", [(0, "positive"), (16, "kHz"), (float("nan"), "positive"),
                                       ("fast", "must be a number"), (8000.5, "whole number")])
def test_check_rate_names_the_problem(sr, match):
    with pytest.raises(SignalError, match=match):
        V.check_rate(sr)


def test_check_audio_makes_mono_float32():
    stereo = np.stack([np.ones(100), np.zeros(100)], axis=1)
    y = V.check_audio(stereo, SR)
    assert y.dtype == np.float32 and y.shape == (100,) and np.allclose(y, 0.5)


def test_every_feature_checks_its_input_before_the_library(tone):
    nan_clip = tone.copy()
    nan_clip[100] = np.nan
    calls = [lambda x, sr: V.mfcc(x, sr), lambda x, sr: V.pitch_pyin(x, sr), lambda x, sr: V.pitch_praat(x, sr),
             lambda x, sr: V.jitter_shimmer(x, sr), lambda x, sr: V.egemaps(x, sr), lambda x, sr: V.vad(x, sr),
             lambda x, sr: V.spectrogram(x, sr)]
    for f in calls:
        with pytest.raises(SignalError, match="NaN"):
            f(nan_clip, SR)
        with pytest.raises(SignalError):
            f(tone, 0)
    for f in calls[:4]:  # too short for an analysis frame / three pitch periods
        with pytest.raises(SignalError, match="too short"):
            f(tone[:40], SR)


def test_wrong_rate_for_the_band_is_an_error(tone):
    with pytest.raises(SignalError, match="sampling rate above 1000 Hz, got 1000"):
        V.pitch_praat(tone, 1000, fmax=500)
    with pytest.raises(SignalError, match="fmin < fmax"):
        V.pitch_pyin(tone, SR, fmin=300, fmax=200)
    with pytest.raises(SignalError, match="Nyquist"):
        V.melspectrogram(tone, 8000, fmax=6000)


# ----------------------------------------------------------------- spectral shapes
def test_mfcc_and_mel_shapes_for_known_duration_and_hop():
    x = SV.harmonic_tone(200.0, duration=1.0, sr=8000)
    assert V.mfcc(x, 8000, n_mfcc=13, hop_length=80).shape == (13, 101)      # 1 + 8000 // 80
    assert V.melspectrogram(x, 8000, n_mels=40, n_fft=256, hop_length=80).shape == (40, 101)
    assert V.mfcc_summary(x, 8000, n_mfcc=13, hop_length=80).shape == (52,)
    assert V.mfcc_summary(x, 8000, n_mfcc=13, deltas=False, hop_length=80).shape == (26,)
    S, f, t = V.spectrogram(x, 8000, n_fft=256, hop_length=80)
    assert S.shape == (129, 101) and f[-1] == 4000 and t[1] == pytest.approx(0.01)
    assert f[S.mean(axis=1).argmax()] == pytest.approx(200.0, abs=8000 / 256)


def test_log_mel_keeps_loudness_differences():
    x = SV.harmonic_tone(200.0, duration=0.5, sr=8000)
    loud, soft = V.log_mel(x, 8000, n_fft=256), V.log_mel(x * 0.1, 8000, n_fft=256)
    assert np.median(loud - soft) == pytest.approx(20.0, abs=0.5)


# --------------------------------------------------------------------------- pitch
def test_pitch_of_a_150_hz_tone_by_pyin_and_praat(tone):
    for track in (V.pitch_pyin(tone, SR), V.pitch_praat(tone, SR)):
        s = V.pitch_summary(track)
        assert s["quality"] == "ok"
        assert s["f0_median"] == pytest.approx(150.0, abs=1.0)
        assert s["voiced_fraction"] > 0.8


def test_silence_is_unvoiced_not_an_invented_pitch():
    silence = np.zeros(SR, dtype=np.float32)
    for track in (V.pitch_pyin(silence, SR), V.pitch_praat(silence, SR)):
        s = V.pitch_summary(track)
        assert s["quality"] == "unvoiced" and np.isnan(s["f0_mean"]) and s["voiced_fraction"] == 0


# ---------------------------------------------------------------- jitter / shimmer
def test_perfect_pulse_train_has_no_jitter_or_shimmer():
    y, truth = SV.pulse_train(150.0, 1.0, SR)
    r = V.jitter_shimmer(y, SR)
    assert r["quality"] == "ok" and r["n_pulses"] >= 140
    assert r["jitter_local"] < 1e-4 and r["shimmer_local"] < 1e-3
    assert r["mean_period_s"] == pytest.approx(1 / 150, rel=1e-3)


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_two_percent_jitter_and_shimmer_are_recovered(seed):
    y, truth = SV.pulse_train(150.0, 1.0, SR, jitter=0.02, shimmer=0.03, seed=seed)
    r = V.jitter_shimmer(y, SR)
    # Praat vs the realised values of this pulse train (measured: within 2 %)
    assert r["jitter_local"] == pytest.approx(truth["jitter_local"], rel=0.1)
    assert r["shimmer_local"] == pytest.approx(truth["shimmer_local"], rel=0.15)
    assert 0.015 <= r["jitter_local"] <= 0.025


def test_jitter_grows_with_planted_jitter():
    values = [V.jitter_shimmer(SV.pulse_train(150.0, 1.0, SR, jitter=j, seed=3)[0], SR)["jitter_local"]
              for j in (0.0, 0.01, 0.02, 0.03)]
    assert np.all(np.diff(values) > 0.004)


def test_jitter_of_silence_and_noise_is_flagged_nan():
    r = V.jitter_shimmer(np.zeros(SR), SR)
    assert r["quality"] == "silent" and np.isnan(r["jitter_local"]) and np.isnan(r["shimmer_local"])
    noise = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    r = V.jitter_shimmer(noise, SR)
    assert r["quality"] in ("ok", "unvoiced")  # Praat may find a few 'pulses' in noise
    if r["quality"] == "unvoiced":
        assert np.isnan(r["jitter_local"])


# -------------------------------------------------------------------------- eGeMAPS
def test_egemaps_returns_88_functionals(tone):
    e = V.egemaps(tone, SR)
    assert len(e) == 88 and e.attrs["quality"] == "ok" and np.isfinite(e.to_numpy()).all()
    # F0 mean in semitones re 27.5 Hz: 12*log2(150/27.5) = 29.37
    assert e["F0semitoneFrom27.5Hz_sma3nz_amean"] == pytest.approx(29.37, abs=0.3)


def test_egemaps_of_silence_and_too_short_clips_are_flagged_nan(tone):
    silent = V.egemaps(np.zeros(SR), SR)
    short = V.egemaps(tone[:800], SR)
    assert silent.attrs["quality"] == "silent" and silent.isna().all() and len(silent) == 88
    assert short.attrs["quality"] == "too_short" and short.isna().all()
    table = V.egemaps_table([tone, np.zeros(SR)], SR)
    assert table.shape == (2, 89) and table.quality.tolist() == ["ok", "silent"]


# ----------------------------------------------------------------------------- VAD
def test_vad_finds_planted_speech_in_silence():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(3 * SR) * 1e-4).astype(np.float32)
    planted = [(0.3, 0.7), (1.2, 1.5), (2.0, 2.6)]
    for a, b in planted:
        seg, _ = SV.pulse_train(140.0, b - a, SR, jitter=0.01, seed=1)
        x[int(a * SR): int(a * SR) + len(seg)] += seg
    found = V.vad(x, SR)
    assert len(found) == 3
    assert np.allclose(found.start, [a for a, _ in planted], atol=0.03)
    assert np.allclose(found.end, [b for _, b in planted], atol=0.03)


def test_vad_measures_the_noise_floor():
    # speech 25 dB above steady noise: within 35 dB of the peak, but 10 dB above the floor
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(2 * SR) * 10 ** (-45 / 20)).astype(np.float32)
    seg, _ = SV.pulse_train(140.0, 0.5, SR, jitter=0.01, seed=1)
    x[SR // 2: SR // 2 + len(seg)] += seg
    found = V.vad(x, SR)
    assert len(found) == 1 and abs(found.start[0] - 0.5) < 0.03 and abs(found.end[0] - 1.0) < 0.03
    assert len(V.vad(x, SR, margin_db=-np.inf)) == 1 and V.vad(x, SR, margin_db=-np.inf).duration[0] > 1.9
    truth = pd.DataFrame({"start": [0.5], "end": [1.0]})
    score = V.speech_overlap(found, truth)
    assert score["recall"] > 0.95 and score["precision"] > 0.9
    half = V.speech_overlap(pd.DataFrame({"start": [0.5], "end": [0.75]}), truth)
    assert half["recall"] == pytest.approx(0.5, abs=0.02) and half["precision"] == 1.0
    assert np.isnan(V.speech_overlap(truth.iloc[:0], truth)["precision"])


def test_vad_bridges_short_gaps_and_finds_nothing_in_silence():
    x = np.zeros(SR, dtype=np.float32)
    assert V.vad(x, SR).empty
    assert V.vad(np.full(SR, 1e-5, dtype=np.float32), SR).empty  # quiet hum, below the floor
    seg, _ = SV.pulse_train(140.0, 0.3, SR)
    x[1600:1600 + len(seg)] = seg
    x[1600 + len(seg) + 800: 1600 + 2 * len(seg) + 800] = seg  # 50 ms gap
    assert len(V.vad(x, SR, min_gap_s=0.1)) == 1
    assert len(V.vad(x, SR, min_gap_s=0.02)) == 2


# ----------------------------------------------------------------------- baselines
def test_synthetic_words_are_deterministic_and_split_like_fsdd():
    a = SV.synthetic_words(n_per_class=8, seed=3)
    b = SV.synthetic_words(n_per_class=8, seed=3)
    assert list(a.label.unique()) == list(SV.SYNTHETIC_WORDS)
    assert all(np.array_equal(x, y) for x, y in zip(a.audio, b.audio))
    assert (a.split == "test").sum() == 4 * 2 and set(a[a.split == "test"].index % 8) == {0, 1}
    assert all(np.isfinite(x).all() and np.abs(x).max() <= 1 for x in a.audio)


def test_both_baselines_learn_vowels_and_the_cnn_is_seeded(capsys):
    words = SV.synthetic_words(n_per_class=16, sr=8000, seed=0, words={"ai": ("a", "i"), "ou": ("o", "u")})
    train, test = words[words.split == "train"], words[words.split == "test"]
    lin = V.mfcc_linear_model(sr=8000).fit(list(train.audio), train.label)
    assert lin.score(list(test.audio), test.label) == 1.0
    cnn = V.CNNClassifier(sr=8000, epochs=8, random_state=0).fit(list(train.audio), train.label)
    assert len(cnn.history_) == 8 and cnn.history_[-1]["loss"] < cnn.history_[0]["loss"]
    assert cnn.predict(list(test.audio)).shape == (8,)
    capsys.readouterr()
    # the progress bar (chapter 11 shows it) neither changes the result nor stays silent
    again = V.CNNClassifier(sr=8000, epochs=8, random_state=0, progress=True).fit(list(train.audio), train.label)
    assert "CNN epochs" in capsys.readouterr().err
    assert np.allclose(cnn.predict_proba(list(test.audio)), again.predict_proba(list(test.audio)), atol=1e-6)


def test_baselines_reject_a_single_array_and_nan_clips(tone):
    with pytest.raises(SignalError, match="list of clips"):
        V.MFCCSummary(sr=SR).transform(tone)
    bad = tone.copy()
    bad[0] = np.nan
    with pytest.raises(SignalError, match=r"clips\[1\]"):
        V.MFCCSummary(sr=SR).transform([tone, bad])


@pytest.mark.realdata
def test_fsdd_mfcc_linear_baseline_on_the_official_test_split(data_dir):
    from mmlab.io import fsdd_table, load_clips

    root = data_dir / "fsdd"
    if not root.is_dir():
        pytest.skip("fsdd not in MMLAB_DATA_DIR")
    table = fsdd_table(root)
    clips = load_clips(table)
    train = (table.split == "train").to_numpy()
    assert train.sum() == 900 and (~train).sum() == 300
    model = V.mfcc_linear_model(sr=8000, random_state=0)
    model.fit([c for c, m in zip(clips, train) if m], table.label[train])
    acc = model.score([c for c, m in zip(clips, ~train) if m], table.label[~train])
    assert acc >= 0.9  # measured 0.947


# ------------------------------------------------------ issue 17: PCM and full scale
def test_integer_pcm_is_refused_with_the_conversion_named():
    tone = 0.25 * np.sin(2 * np.pi * 220 * np.arange(SR) / SR)
    pcm = np.round(tone * 32767).astype(np.int16)
    with pytest.raises(SignalError, match="integer samples .*pcm_to_float"):
        V.peak_level_db(pcm, SR)
    level = V.peak_level_db(V.pcm_to_float(pcm), SR)
    assert level == pytest.approx(20 * np.log10(0.25 / np.sqrt(2)), abs=0.05)   # -15.05 dBFS


def test_floats_beyond_full_scale_are_refused():
    with pytest.raises(SignalError, match="outside \\[-1, 1\\]"):
        V.peak_level_db(np.full(SR, 300.0), SR)


def test_a_quiet_clip_is_silent_once_converted():
    quiet = np.random.default_rng(0).integers(-2, 3, SR).astype(np.int16)   # +-2 LSB
    assert V.is_silent(V.pcm_to_float(quiet), SR)
    assert V.peak_level_db(V.pcm_to_float(quiet), SR) < -80


def test_pcm_to_float_scales_each_integer_type():
    assert V.pcm_to_float(np.array([-2 ** 31], dtype=np.int32))[0] == -1.0
    assert V.pcm_to_float(np.array([128, 255], dtype=np.uint8)).tolist() == [0.0, 127 / 128]
