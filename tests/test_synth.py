"""mmlab.synth: known answers, planted structure, ground truth, determinism, round trips."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps

from mmlab import cli
from mmlab.errors import SchemaError
from mmlab.recording import Cohort
from mmlab.synth import SCENARIOS, make_cohort, physio, stress_protocol, text, voice

FAST = dict(fast=True)


@pytest.fixture(scope="module")
def stress() -> Cohort:
    return make_cohort("stress_protocol", n_subjects=4, seed=0, fast=True)


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


def _phase_means(rec, fn) -> dict[str, float]:
    """Mean of fn(onset, end) over each phase label of a recording."""
    out: dict[str, list[float]] = {}
    for _, p in rec.phases().iterrows():
        out.setdefault(p.label, []).append(fn(p.onset, p.onset + p.duration))
    return {k: float(np.mean(v)) for k, v in out.items()}


# ----------------------------------------------------------------- API and errors
def test_scenarios_and_functions():
    assert SCENARIOS == ("stress_protocol", "call_center", "icu_ward", "factory")
    c = stress_protocol(n_subjects=1, seed=3, fast=True)
    assert c.meta["scenario"] == "stress_protocol" and c.meta["seed"] == 3
    assert c.meta["knobs"]["phase_minutes"] == pytest.approx(  # resolved, fast-mode values
        {"baseline": 1.0, "stress": 50 / 60, "amusement": 40 / 60, "meditation": 40 / 60})
    assert "phase_minutes" in stress_protocol.__doc__


def test_unknown_scenario_lists_valid_ones():
    with pytest.raises(SchemaError, match="stress_protocol.*call_center.*icu_ward.*factory"):
        make_cohort("wesad", n_subjects=1)


@pytest.mark.parametrize("knobs, pattern", [
    ({"drift": 5}, r"no knob 'drift'.*clock_drift_ppm"),
    ({"informativeness": {"ecgg": 1.0}}, r"no key 'ecgg'.*cardiac"),
    ({"noise": "loud"}, r"'noise' must be a number"),
    ({"missing": {"wrist": 1.5}}, r"'missing'\['wrist'\] must be <= 1"),
    ({"clock_offset_s": -1}, r"'clock_offset_s' must be >= 0"),
])
def test_bad_knobs_raise_schema_errors(knobs, pattern):
    with pytest.raises(SchemaError, match=pattern):
        make_cohort("stress_protocol", n_subjects=1, fast=True, **knobs)


def test_bad_arguments_raise_schema_errors():
    with pytest.raises(SchemaError, match="n_subjects"):
        make_cohort("factory", n_subjects=0)
    with pytest.raises(SchemaError, match="seed"):
        make_cohort("factory", n_subjects=1, seed=-1)


# ----------------------------------------------------------------- determinism
def test_same_seed_same_data_and_different_seed_different_data():
    a = make_cohort("stress_protocol", n_subjects=2, seed=7, fast=True)
    b = make_cohort("stress_protocol", n_subjects=2, seed=7, fast=True)
    c = make_cohort("stress_protocol", n_subjects=2, seed=8, fast=True)
    assert a.equals(b)
    assert not np.array_equal(a[0]["chest_ecg"].data, c[0]["chest_ecg"].data)
    assert a[0].meta["truth"]["r_peaks"] != c[0].meta["truth"]["r_peaks"]


def test_subject_does_not_depend_on_cohort_size():
    small = make_cohort("call_center", n_subjects=1, seed=1, fast=True, label_balance={"neutral": 1.0, "satisfied": 0, "dissatisfied": 0})
    big = make_cohort("call_center", n_subjects=3, seed=1, fast=True, label_balance={"neutral": 1.0, "satisfied": 0, "dissatisfied": 0})
    assert small[0].equals(big[0])


def test_dropout_and_missing_knobs_leave_physiology_alone():
    plain = make_cohort("stress_protocol", n_subjects=1, seed=2, fast=True, dropout_per_hour=0)
    gappy = make_cohort("stress_protocol", n_subjects=1, seed=2, fast=True, dropout_per_hour=200,
                        missing={"mic": 1.0})
    assert plain[0].meta["truth"]["r_peaks"] == gappy[0].meta["truth"]["r_peaks"]
    x, y = plain[0]["chest_ecg"].data, gappy[0]["chest_ecg"].data
    ok = ~np.isnan(y)
    assert ok.mean() < 1 and np.array_equal(x[ok], y[ok])


# ----------------------------------------------------------------- cohort contract
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_cohort_meta_participants_and_roundtrip(scenario, tmp_path):
    knobs = {"dropout_per_hour": 30.0, "dropout_mean_s": 2.0} if scenario != "icu_ward" else {}
    c = make_cohort(scenario, n_subjects=3, seed=1, fast=True, **knobs)
    assert {"scenario", "seed", "knobs", "label_names"} <= set(c.meta)
    assert c.meta["knobs"]["noise"] == 1.0
    assert all(c.meta["knobs"][k] == v for k, v in knobs.items())
    assert list(c.participants.columns[:3]) == ["participant_id", "sex", "age"]
    assert len(c.participants) == 3 and c.participants["participant_id"].tolist() == c.subjects
    for r in c:
        assert {"clock_truth", "dropouts", "missing", "truth"} <= set(r.meta)
        assert r.meta["clock_truth"][r.meta["reference_device"]] == {"offset_s": 0.0, "drift_ppm": 0.0,
                                                                     "jitter_s": 0.0}
        for s in r.streams.values():
            assert s.device in r.meta["clock_truth"], (s.name, s.device)
    loaded = Cohort.load(c.save(tmp_path / scenario))
    assert loaded.equals(c)


# ----------------------------------------------------------------- physiology
def test_ecg_at_72_bpm_gives_72_bpm_with_neurokit2():
    nk = pytest.importorskip("neurokit2")
    x, truth = physio.simulate_ecg(duration=60, fs=700, heart_rate=72, seed=1)
    assert 60 / np.mean(np.diff(truth)) == pytest.approx(72, abs=1)
    _, info = nk.ecg_peaks(nk.ecg_clean(x, sampling_rate=700), sampling_rate=700)
    peaks = np.asarray(info["ECG_R_Peaks"]) / 700
    assert 60 / np.mean(np.diff(peaks)) == pytest.approx(72, abs=1)
    assert len(peaks) == len(truth) and np.max(np.abs(peaks - truth)) < 0.01


def test_stress_raises_heart_rate_measured_from_the_ecg(stress):
    nk = pytest.importorskip("neurokit2")
    rises = []
    for r in stress:
        ecg = r["chest_ecg"]
        x = np.nan_to_num(ecg.data[:, 0].astype(float))
        _, info = nk.ecg_peaks(nk.ecg_clean(x, sampling_rate=700), sampling_rate=700)
        t = np.asarray(info["ECG_R_Peaks"]) / 700 + ecg.start
        hr = _phase_means(r, lambda a, b: 60 / np.median(np.diff(t[(t >= a) & (t < b)])))
        assert all(50 <= v <= 120 for v in hr.values()), hr
        rises.append(hr["stress"] - hr["baseline"])
        assert hr["stress"] > hr["meditation"]
    assert np.mean(rises) >= 4.0 and min(rises) > 0, rises


def test_stress_lowers_hrv_and_raises_eda_and_breathing(stress):
    rmssd, tonic, scr, resp = [], [], [], []
    for r in stress:
        truth = r.meta["truth"]
        beats, onsets, breaths = (np.array(truth[k]) for k in ("r_peaks", "scr_onsets", "breaths"))

        def rm(a, b):  # RMSSD relative to the mean RR, so a higher HR alone does not lower it
            rr = np.diff(beats[(beats >= a) & (beats < b)])
            return np.sqrt(np.mean(np.diff(rr) ** 2)) / np.mean(rr)
        rmssd.append(_phase_means(r, rm))
        eda = r["chest_eda"]
        tonic.append(_phase_means(r, lambda a, b: np.nanmedian(eda.slice(a, b).data)))
        scr.append(_phase_means(r, lambda a, b: np.sum((onsets >= a) & (onsets < b)) / (b - a) * 60))
        resp.append(_phase_means(r, lambda a, b: np.sum((breaths >= a) & (breaths < b)) / (b - a) * 60))
        assert tonic[-1]["stress"] > tonic[-1]["baseline"]
        assert all(8 <= v <= 30 for v in resp[-1].values()), resp[-1]
        assert rmssd[-1]["stress"] < rmssd[-1]["baseline"]

    def mean(rows, k):
        return np.mean([row[k] for row in rows])
    assert np.mean([row["stress"] / row["baseline"] for row in rmssd]) < 0.8
    assert mean(scr, "stress") > mean(scr, "baseline") + 2.0
    assert mean(resp, "stress") > mean(resp, "baseline") > mean(resp, "meditation")


def test_breathing_truth_matches_the_resp_signal(stress):
    r = stress[0]
    s = r["chest_resp"]
    x = np.nan_to_num(s.data[:, 0].astype(float))[::14]  # 50 Hz
    x = sps.sosfiltfilt(sps.butter(2, [0.05, 0.7], btype="band", fs=50, output="sos"), x)
    troughs, _ = sps.find_peaks(-x, distance=50 * 1.5, prominence=0.3 * np.std(x))
    truth = np.array(r.meta["truth"]["breaths"])
    truth = truth[(truth > 5) & (truth < s.duration - 5)]
    assert len(troughs) == pytest.approx(len(truth), rel=0.1)


def _stress_windows(c: Cohort, win: float = 10.0):
    """Per-window HR, RMSSD (from the true beats) and median chest EDA in baseline/stress."""
    X, y, groups = [], [], []
    for k, r in enumerate(c):
        beats = np.array(r.meta["truth"]["r_peaks"])
        for _, p in r.phases().iterrows():
            if p.label not in ("baseline", "stress"):
                continue
            for a in np.arange(p.onset, p.onset + p.duration - win + 1e-9, win):
                b = beats[(beats >= a) & (beats < a + win)]
                X.append([60 / np.mean(np.diff(b)), np.sqrt(np.mean(np.diff(np.diff(b)) ** 2)),
                          np.nanmedian(r["chest_eda"].slice(a, a + win).data)])
                y.append(p.label == "stress")
                groups.append(k)
    return np.array(X), np.array(y), np.array(groups)


def test_leave_one_subject_out_is_harder_than_a_random_split():
    from sklearn.model_selection import KFold, LeaveOneGroupOut, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    gaps = {}
    for sv in (1.0, 0.0):
        c = make_cohort("stress_protocol", n_subjects=8, seed=0, fast=True, subject_variability=sv,
                        missing={"wrist": 1.0, "mic": 1.0})
        X, y, g = _stress_windows(c)
        clf = make_pipeline(StandardScaler(), KNeighborsClassifier(3))
        rnd = cross_val_score(clf, X, y, cv=KFold(5, shuffle=True, random_state=0)).mean()
        loso = cross_val_score(clf, X, y, groups=g, cv=LeaveOneGroupOut()).mean()
        gaps[sv] = rnd - loso
    assert gaps[1.0] > 0.1 and abs(gaps[0.0]) < 0.05, gaps


def test_subject_variability_zero_makes_everyone_the_average_person():
    c = make_cohort("stress_protocol", n_subjects=6, seed=5, fast=True, subject_variability=0,
                    missing={"wrist": 1.0, "mic": 1.0, "chest": 1.0})
    for sex in ("F", "M"):
        rest = {r.meta["truth"]["hr_rest_bpm"] for r in c if r.meta["sex"] == sex}
        assert len(rest) <= 1
    assert all(r.meta["truth"]["reactivity"] == 1.0 for r in c)


def test_informativeness_zero_removes_the_cardiac_effect():
    c = make_cohort("stress_protocol", n_subjects=2, seed=0, fast=True, informativeness={"cardiac": 0.0},
                    missing={"wrist": 1.0, "mic": 1.0, "chest": 1.0})
    for r in c:
        beats = np.array(r.meta["truth"]["r_peaks"])
        hr = _phase_means(r, lambda a, b: 60 / np.mean(np.diff(beats[(beats >= a) & (beats < b)])))
        assert abs(hr["stress"] - hr["baseline"]) < 4.0, hr


# ----------------------------------------------------------------- voice and text
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


def test_stress_voice_has_higher_f0(stress):
    diffs = []
    for r in stress:
        f0 = {}
        for s in r.by_modality("audio"):
            f0.setdefault(s.meta["phase"], []).append(_acf_f0(s.data[:, 0], int(s.rate)))
        diffs.append(12 * np.log2(np.mean(f0["stress"]) / np.mean(f0["baseline"])))
    assert np.mean(diffs) > 1.0, diffs


def test_utterances_point_at_their_clips(stress):
    for r in stress:
        utt = r.phases("utterance")
        assert len(utt) == 5 and (utt["text"].str.len() > 3).all()
        for _, u in utt.iterrows():
            clip = r[u.stream]
            assert clip.meta["phase"] == r.label_at(u.onset)[0]
            mic = r.meta["clock_truth"]["mic"]
            ref_start = (clip.start - mic["offset_s"]) / (1 + mic["drift_ppm"] * 1e-6)
            assert ref_start + clip.meta["speech_onset_s"] == pytest.approx(u.onset, abs=0.05)
            assert u.duration < clip.duration


def test_text_cues_follow_informativeness():
    words = ("tense", "stressed", "nervous", "anxious", "pressure", "edge", "racing", "sweaty",
             "dry", "pulse", "tight", "fidgeting", "stressful", "hated")
    rng = np.random.default_rng(0)

    def share(cue):
        said = [text.say(rng, "self_report", "stress", text.Style(verbose=0), cue) for _ in range(200)]
        return np.mean([any(w in s.lower() for w in words) for s in said])
    assert share(text.cue_probability(0.0)) == 0.0
    assert share(text.cue_probability(2.0)) > 0.85


# ----------------------------------------------------------------- clocks, gaps, missing data
def test_zero_knobs_give_aligned_gap_free_data():
    c = make_cohort("stress_protocol", n_subjects=1, seed=4, fast=True, clock_offset_s=0, clock_drift_ppm=0,
                    timestamp_jitter_s=0, dropout_per_hour=0, start_stagger_s=0)
    r = c[0]
    assert all(v["offset_s"] == 0 and v["drift_ppm"] == 0 for v in r.meta["clock_truth"].values())
    assert r.meta["dropouts"] == []
    for s in r.streams.values():
        assert not np.isnan(s.data).any(), s.name
        if s.device in ("chest", "wrist") and s.is_regular:
            assert s.start == 0.0 and s.duration == pytest.approx(r["chest_ecg"].duration, abs=1 / s.rate)


def test_clock_drift_and_offset_are_planted_and_recorded():
    c = make_cohort("stress_protocol", n_subjects=2, seed=3, fast=True, clock_drift_ppm=100, clock_offset_s=3,
                    start_stagger_s=0, dropout_per_hour=0)
    for r in c:
        truth = r.meta["clock_truth"]
        assert truth["chest"] == {"offset_s": 0.0, "drift_ppm": 0.0, "jitter_s": 0.0}
        w = truth["wrist"]
        assert 50 <= abs(w["drift_ppm"]) <= 100 and abs(w["offset_s"]) <= 3
        chest, bvp = r["chest_ecg"], r["wrist_bvp"]
        scale = 1 + w["drift_ppm"] * 1e-6
        assert bvp.start == pytest.approx(w["offset_s"], abs=1e-9)
        # same reference span, so device durations differ by the drift (a 64 Hz sample = 52 ppm here)
        assert bvp.n_samples == int(np.floor(chest.duration * scale * bvp.rate + 1e-9))
        assert bvp.n_samples != int(round(chest.duration * bvp.rate))
        assert bvp.duration / chest.duration == pytest.approx(scale, abs=1 / (bvp.rate * chest.duration))


def test_sync_tap_is_seen_by_both_accelerometers_at_the_same_reference_time(stress):
    for r in stress:
        tap = r.phases("event")
        taps = np.array(r.meta["truth"]["sync_taps"])
        assert tap.label[0] == "sync_tap" and tap.onset[0] == taps[0]
        for name, tol in (("chest_acc", 0.01), ("wrist_acc", 0.05)):
            s = r[name]
            clock = r.meta["clock_truth"][s.device]
            t_ref = (s.timestamps() - clock["offset_s"]) / (1 + clock["drift_ppm"] * 1e-6)
            jolt = np.abs(np.diff(np.nan_to_num(s.data.astype(float)), axis=0)).sum(axis=1)
            for t_tap in taps:  # the strongest jolt near each tap, in reference time
                near = np.abs(t_ref[1:] - t_tap) < 0.25
                assert jolt[near].max() > 5 * np.median(jolt), name
                assert t_ref[1:][near][np.argmax(jolt[near])] == pytest.approx(t_tap, abs=tol), name


def test_dropout_ground_truth_matches_the_nan_runs():
    c = make_cohort("stress_protocol", n_subjects=2, seed=6, fast=True, dropout_per_hour=40, dropout_mean_s=3)
    n_gaps = 0
    for r in c:
        by_stream: dict[str, list] = {}
        for d in r.meta["dropouts"]:
            by_stream.setdefault(d["stream"], []).append(d)
            assert d["clock"] == "device" and d["end"] > d["start"]
        for s in r.streams.values():
            t = s.timestamps()
            planted = np.zeros(len(t), dtype=bool)
            for d in by_stream.get(s.name, []):
                planted |= (t >= d["start"]) & (t < d["end"])
            if s.is_regular:
                nan = np.isnan(s.data.reshape(len(s.data), -1)).any(axis=1)
                assert np.array_equal(nan, planted), s.name
                n_gaps += int(planted.any())
            else:
                assert not planted.any()  # irregular streams lose the samples instead
    assert n_gaps >= 4


def test_missing_modality_removes_streams():
    c = make_cohort("stress_protocol", n_subjects=2, seed=0, fast=True, missing={"wrist": 1.0, "mic": 1.0})
    for r in c:
        assert sorted(r.meta["missing"]) == ["mic", "wrist"]
        assert {s.device for s in r.streams.values()} == {"chest"}
        assert (r.phases("utterance")["stream"] == "").all()
    icu = make_cohort("icu_ward", n_subjects=2, seed=0, fast=True, missing={"mic": 0.0, "bp": 1.0})
    assert all("bp" not in r and r.by_modality("audio") for r in icu)


# ----------------------------------------------------------------- other scenarios
def test_icu_hospitals_differ_in_case_mix():
    c = make_cohort("icu_ward", n_subjects=30, seed=0, fast=True, missing={"mic": 1.0})
    p = c.participants
    prev = p.groupby("hospital")["septic"].mean()
    assert prev.to_dict() == pytest.approx({"H1": 0.1, "H2": 0.2, "H3": 0.5}, abs=0.11)
    assert prev["H1"] < prev["H2"] < prev["H3"]
    age = p.groupby("hospital")["age"].mean()
    assert age["H3"] - age["H1"] > 8
    for r in c:
        label = r.phases("label")
        assert len(label) == 1
        if r.meta["truth"]["septic"]:
            assert label.label[0] == "sepsis"
            assert label.onset[0] == pytest.approx(r.meta["truth"]["onset_h"] * 3600, abs=0.1)
            hr = r["hr"]
            t = hr.timestamps()
            early = np.nanmean(hr.data[t < 3600, 0])
            late = np.nanmean(hr.data[t > label.onset[0], 0])
            assert late > early + 8
        else:
            assert label.label[0] == "no_sepsis" and label.onset[0] == 0
        assert len(r.phases("note")) >= 2


def test_factory_failure_shows_at_the_defect_frequency():
    c = make_cohort("factory", n_subjects=6, seed=0, fast=True, failure_fraction=0.5, dropout_per_hour=0)
    ratios = {True: [], False: []}
    for r in c:
        truth = r.meta["truth"]
        s = r["vibration"]
        x = s.data[:, 0].astype(float)
        band = sps.butter(4, [0.7 * truth["resonance_hz"], min(1.3 * truth["resonance_hz"], 0.45 * s.rate)],
                          btype="band", fs=s.rate, output="sos")
        env = np.abs(sps.hilbert(sps.sosfilt(band, x)))
        f, p = sps.welch(env - env.mean(), fs=s.rate, nperseg=16384)
        fd = truth["fault_hz"] or truth["bpfo"]
        k = int(np.argmin(np.abs(f - fd)))
        ratios[truth["fault"] is not None].append(p[k - 1:k + 2].max() / np.median(p[(f > 20) & (f < 400)]))
        label = r.phases("label").label[0]
        assert label == ("failure" if truth["fault"] else "healthy")
    assert min(ratios[True]) > 20 and max(ratios[False]) < 10, ratios


def test_call_center_labels_audio_and_wearables():
    c = make_cohort("call_center", n_subjects=8, seed=2, fast=True, wearable_fraction=0.25,
                    label_balance={"satisfied": 1, "neutral": 1, "dissatisfied": 2})
    assert c.participants["satisfaction"].value_counts().to_dict() == {"dissatisfied": 4, "satisfied": 2, "neutral": 2}
    assert c.participants["has_wearable"].sum() == 2
    for r in c:
        audio = r["caller_audio"]
        x = audio.data[:, 0]
        inside = np.zeros(len(x), dtype=bool)
        for _, u in r.phases("utterance").iterrows():
            if u.label == "caller":
                i, j = int(u.onset * audio.rate), int((u.onset + u.duration) * audio.rate)
                assert j <= len(x)
                inside[i:j] = True
        assert np.sqrt(np.mean(x[inside] ** 2)) > 10 * np.sqrt(np.mean(x[~inside] ** 2))
        assert ("wrist_hr" in r) == bool(c.participants.set_index("participant_id").has_wearable[r.subject])
        assert r.phases("label").label[0] == r.meta["truth"]["label"]


# ----------------------------------------------------------------- knob limits
def _numeric_knobs():
    from mmlab.synth.scenarios import _module

    for scenario in SCENARIOS:
        for name, knob in _module(scenario).KNOBS.items():
            if knob.kind in ("float", "int", "floats", "dict", "durations"):
                yield scenario, name, knob


def test_every_numeric_knob_has_an_upper_limit():
    """No knob accepts any finite number: 1e9 ppm of drift or 1e6 minutes are typos."""
    unbounded = [(s, n) for s, n, k in _numeric_knobs() if k.hi is None]
    assert unbounded == []


@pytest.mark.parametrize("scenario, name, knob", list(_numeric_knobs()),
                         ids=[f"{s}-{n}" for s, n, _ in _numeric_knobs()])
def test_a_value_above_a_knob_limit_is_a_clear_error(scenario, name, knob):
    too_big = knob.hi * 10 + 1
    if knob.kind in ("dict", "durations"):
        keys = knob.keys or tuple(knob.default)
        value = {keys[0]: too_big}
        where = rf"knob '{name}'\['{keys[0]}'\]"
    else:
        value, where = too_big, f"knob '{name}'"
        if knob.kind == "floats":
            where = rf"knob '{name}'\[0\]"
    with pytest.raises(SchemaError, match=rf"{where} must be <= {knob.hi:g}, got"):
        make_cohort(scenario, n_subjects=1, fast=True, **{name: value})


def test_clock_drift_limit_is_10000_ppm():
    with pytest.raises(SchemaError, match=r"knob 'clock_drift_ppm' must be <= 10000, got 1000000000.0"):
        make_cohort("factory", n_subjects=1, fast=True, clock_drift_ppm=1e9)
    assert make_cohort("factory", n_subjects=1, fast=True, minutes=0.1, image_every_s=3.0,
                       clock_drift_ppm=10_000).meta["knobs"]["clock_drift_ppm"] == 10_000


# ----------------------------------------------------------------- command line
def test_cli_makes_a_cohort_and_rejects_unknown_knobs(tmp_path, capsys):
    out = tmp_path / "fac"
    assert cli.main(["data", "make", "factory", "--subjects", "2", "--seed", "1", "--fast", "--out", str(out),
                     "--set", "failure_fraction=0.5", "--set", 'informativeness={"thermal": 2}']) == 0
    loaded = Cohort.load(out)
    assert loaded.meta["knobs"]["informativeness"]["thermal"] == 2.0
    assert loaded.participants["failure"].sum() == 1
    assert cli.main(["data", "make", "factory", "--subjects", "1", "--fast", "--out", str(out),
                     "--set", "wobble=3"]) == 2
    assert "wobble" in capsys.readouterr().err


def test_bench_data_is_registered():
    from mmlab import bench

    assert "data" in bench.TOPICS


# ----------------------------------------------------------------------- EEG (chapter 14)
def test_simulated_motor_imagery_is_seeded_annotated_and_desynchronises_the_opposite_side():
    pytest.importorskip("mne")
    from mmlab.synth.eeg import SIM_CHANNELS, simulate_motor_imagery

    raw = simulate_motor_imagery(n_trials=10, seed=4)
    again = simulate_motor_imagery(n_trials=10, seed=4)
    assert raw.ch_names == list(SIM_CHANNELS) and raw.info["sfreq"] == 160.0
    assert np.array_equal(raw.get_data(), again.get_data())
    desc = list(raw.annotations.description)
    assert desc.count("left_fist") == desc.count("right_fist") == 5 and desc.count("rest") == 10
    # mu power (9-13 Hz) under C4 drops while the left fist is imagined, relative to C3
    sos = sps.butter(4, [9.0, 13.0], btype="bandpass", fs=160.0, output="sos")
    x = sps.sosfiltfilt(sos, raw.get_data(picks=["C3", "C4"]), axis=1)
    ratio = {}
    for lab in ("left_fist", "right_fist"):
        idx = np.concatenate([np.arange(int((o + 1.0) * 160), int((o + 3.5) * 160))
                              for o, d in zip(raw.annotations.onset, desc) if d == lab])
        p3, p4 = (x[:, idx] ** 2).mean(axis=1)
        ratio[lab] = p4 / p3
    assert ratio["left_fist"] < 0.6 < 1.6 < ratio["right_fist"]


def test_simulated_motor_imagery_bad_arguments():
    pytest.importorskip("mne")
    from mmlab.errors import SignalError
    from mmlab.synth.eeg import simulate_motor_imagery

    with pytest.raises(SignalError, match="erd must be in"):
        simulate_motor_imagery(n_trials=2, erd=1.0)
    with pytest.raises(SignalError, match="Nyquist"):
        simulate_motor_imagery(n_trials=2, rate=20.0)
    with pytest.raises(SignalError, match="positive"):
        simulate_motor_imagery(n_trials=2, rate=0)
