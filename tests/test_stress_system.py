"""The wearable stress system (mmlab.systems.stress): labels, calibration, streaming = batch,
save/load, bad input, leave-one-subject-out evaluation."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from mmlab import synth
from mmlab.errors import SchemaError
from mmlab.recording import Recording, Stream
from mmlab.systems.stress import (StressDetector, default_streams, evaluate_loso, stream_chunks,
                                  stress_episodes, window_labels)

FAST = dict(baseline_s=60, block_s=30, min_duration_s=20, refractory_s=60, epochs=30)


@pytest.fixture(scope="module")
def cohort():
    return synth.stress_protocol(n_subjects=5, fast=True, seed=3)


@pytest.fixture(scope="module")
def tables(cohort):
    det = StressDetector(model="early", **FAST)
    return det.tables(cohort)


@pytest.fixture(scope="module")
def early(tables):
    """Early fusion fitted on S01-S04 (FAST sessions are too short to train the LSTM well)."""
    return StressDetector(model="early", **FAST).fit(tables[tables["subject"] != "S05"])


@pytest.fixture(scope="module")
def temporal(cohort, tables):
    """The default (temporal) model fitted on S01-S04; S05 is held out."""
    return StressDetector(**FAST).fit(tables[tables["subject"] != "S05"])


def _rec_with(annotations, seconds=300.0):
    x = np.sin(np.arange(int(seconds * 4)) / 7.0) + 5.0
    return Recording("01", [Stream("eda", x, "eda", rate=4.0, device="wrist")], annotations=annotations)


# ------------------------------------------------------------------------------ labels
def test_window_labels_pure_windows_only():
    rec = _rec_with([{"onset": 0, "duration": 100, "kind": "phase", "label": "baseline"},
                     {"onset": 100, "duration": 100, "kind": "phase", "label": "stress"},
                     {"onset": 200, "duration": 100, "kind": "phase", "label": "transient"}])
    starts = np.array([0.0, 60.0, 80.0, 100.0, 170.0, 180.0, 200.0])
    got = window_labels(rec, starts, starts + 30.0)
    # 80-110 straddles (20 s rest, 10 s stress); 180-210 has 20 s stress then transient
    assert list(got) == ["rest", "rest", None, "stress", "stress", None, None]


def test_window_labels_from_a_stress_column():
    ann = pd.DataFrame({"onset": [0.0, 150.0], "duration": [150.0, 150.0], "kind": ["phase", "phase"],
                        "label": ["Baseline", "Stroop Test"], "stress": [0.0, 1.0]})
    rec = _rec_with(ann)
    got = window_labels(rec, np.array([0.0, 200.0]), np.array([30.0, 230.0]))
    assert list(got) == ["rest", "stress"]


def test_a_stress_phase_outside_the_recording_is_an_error():
    rec = _rec_with([{"onset": 1000, "duration": 100, "kind": "phase", "label": "stress"}])
    with pytest.raises(SchemaError, match="outside the recording"):
        stress_episodes(rec)
    rec = _rec_with([{"onset": 250, "duration": 100, "kind": "phase", "label": "stress"}])
    assert stress_episodes(rec) == [(250.0, 300.0)]  # clipped to the recording's end


def test_a_recording_with_no_usable_stream_is_named():
    rec = Recording("07", [Stream("light", np.ones(100), "light", rate=1.0)])
    with pytest.raises(SchemaError, match="'07' has no stream the stress detector can use"):
        default_streams(rec)


# ------------------------------------------------------------------------- calibration
def test_per_person_calibration_is_a_z_score_against_the_first_minutes(tables):
    det = StressDetector(model="early", **FAST).fit(tables)
    one = tables[tables["subject"] == "S02"].reset_index(drop=True)
    col = "ecg__hr_mean"
    norm = det._normalise(one)
    valid = one[det.features_].notna().any(axis=1).to_numpy()
    t0 = one["start"][valid].iloc[0]
    base = one["end"] <= t0 + 60
    expect = (one[col] - one.loc[base, col].mean()) / one.loc[base, col].std(ddof=0)
    np.testing.assert_allclose(norm[col], expect, rtol=1e-9)
    assert not norm.loc[base, "calibrated"].any() and norm.loc[~base, "calibrated"].all()
    probs = det.predict_table(one)
    assert probs.loc[base.to_numpy(), "fused"].isna().all()  # nothing is decided before calibration ends
    assert probs.loc[~base.to_numpy(), "fused"].notna().mean() > 0.8


def test_rolling_calibration_is_a_causal_z_score_over_the_last_minutes(tables):
    """baseline="rolling": each window against the windows of the last rolling_s seconds
    (itself included); changing the future leaves the past untouched."""
    det = StressDetector(model="early", baseline="rolling", rolling_s=120, **FAST).fit(tables)
    one = tables[tables["subject"] == "S02"].reset_index(drop=True)
    col = "ecg__hr_mean"
    norm = det._normalise(one)
    n = 12  # 120 s of windows at a 10-s step
    i = len(one) - 5
    past = one.loc[i - n + 1:i, col]
    assert past.notna().all()
    np.testing.assert_allclose(norm.loc[i, col], (one.loc[i, col] - past.mean()) / past.std(ddof=0), rtol=1e-9)
    changed = one.copy()
    changed.loc[i + 1:, col] += 50.0
    np.testing.assert_allclose(det._normalise(changed).loc[:i, col], norm.loc[:i, col], rtol=1e-12)
    valid = one[det.features_].notna().any(axis=1).to_numpy()
    base = (one["end"] <= one["start"][valid].iloc[0] + 60).to_numpy()  # no decision before then
    assert not norm.loc[base, "calibrated"].any() and norm.loc[~base, "calibrated"].all()


def test_streaming_equals_batch_with_the_rolling_baseline_and_a_forest(tables, cohort):
    det = StressDetector(model="forest", baseline="rolling", rolling_s=120, **FAST)
    det.fit(tables[tables["subject"] != "S05"])
    rec = cohort["S05"]
    events = list(det.stream(stream_chunks(rec, 1.0, jitter_s=1.0, seed=2)))
    batch, _ = _compare(det, rec, events)
    assert batch["fused"].notna().sum() > 10


def test_training_needs_both_classes(tables):
    rest_only = tables[tables["label"] != "stress"]
    with pytest.raises(SchemaError, match="need both"):
        StressDetector(model="early", **FAST).fit(rest_only)


def test_unfitted_and_bad_parameters_are_named(cohort):
    with pytest.raises(SchemaError, match="not fitted"):
        StressDetector().predict_proba(cohort["S01"])
    with pytest.raises(SchemaError, match="multiple of step_s"):
        StressDetector(step_s=10, block_s=25)
    with pytest.raises(Exception, match="off must be <= on"):
        StressDetector(on=0.5, off=0.7)


# ------------------------------------------------------------------------ predictions
def test_the_held_out_stress_phase_is_found(early, cohort):
    probs = early.predict_proba(cohort["S05"])
    lab = probs["label"].to_numpy()
    ok = np.isfinite(probs["fused"].to_numpy(float))
    stress = probs["fused"][ok & (lab == "stress")]
    rest = probs["fused"][ok & (lab == "rest")]
    assert len(stress) >= 2 and len(rest) >= 5
    assert stress.min() > rest.max()
    for m in early.voters_:
        p = probs[f"p_{m}"].to_numpy(float)
        assert np.all((p[np.isfinite(p)] >= 0) & (p[np.isfinite(p)] <= 1))
        assert not np.isfinite(p[~probs[f"present_{m}"].to_numpy(bool)]).any()  # absent: no probability


def test_a_missing_device_shrinks_the_modalities_it_never_votes(temporal, cohort):
    rec = cohort["S05"]
    wrist_only = Recording(rec.subject, [s for s in rec.streams.values() if s.device != "chest"],
                           annotations=rec.annotations, meta=rec.meta)
    probs = temporal.predict_proba(wrist_only)
    for m in ("ecg", "eda", "resp"):
        if m in temporal.voters_:
            assert not probs[f"present_{m}"].any() and probs[f"p_{m}"].isna().all()
    assert probs["fused"].notna().sum() > 10  # still scored from the wrist
    for a in temporal.alerts(wrist_only):
        assert not {"ecg", "eda", "resp"} & set(a.voters)


def test_a_flat_chest_ecg_is_absent_not_an_alert_source(temporal, cohort):
    rec = cohort["S05"]
    ecg = rec["chest_ecg"]
    flat = Recording(rec.subject, [ecg.replace(data=np.full_like(ecg.data, 0.1)) if s.name == "chest_ecg" else s
                                   for s in rec.streams.values()], annotations=rec.annotations, meta=rec.meta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probs = temporal.predict_proba(flat)
    assert not probs["present_ecg"].any()
    assert (probs["quality_ecg"].fillna(0) == 0).all()  # NaN: windows before the data starts
    assert all("ecg" not in a.voters for a in temporal.alerts(flat))


# -------------------------------------------------------------------------- streaming
def _compare(det, rec, events):
    batch = det.predict_proba(rec)
    win = pd.DataFrame([e for e in events if e["event"] == "window"])
    assert len(win) == len(batch)
    np.testing.assert_array_equal(win["end"].to_numpy(float), batch["end"].to_numpy(float))
    cols = ["fused"] + [f"p_{m}" for m in det.voters_]
    a, b = batch[cols].to_numpy(float), win[cols].astype(float).to_numpy()
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a[np.isfinite(a)], b[np.isfinite(b)], rtol=0, atol=1e-6)  # float32 models, different batch sizes
    streamed = [e["alert"] for e in events if e["event"] == "alert_ended"]
    raised = [e["alert"] for e in events if e["event"] == "alert_raised"]
    expect = [x.to_dict() for x in det.alerts(rec)]
    key = lambda d: (d["onset"], d["raised_at"], d["end"], sorted(d["voters"]), d["n_present"])  # noqa: E731
    assert [key(d) for d in streamed] == [key(d) for d in expect]
    assert len(raised) == len(expect)
    return batch, win


def test_streaming_equals_batch_with_irregular_arrival(temporal, cohort):
    rec = cohort["S05"]
    events = list(temporal.stream(stream_chunks(rec, 1.0, jitter_s=1.5, seed=4)))
    batch, _ = _compare(temporal, rec, events)
    assert batch["fused"].notna().sum() > 10


def test_a_modality_that_drops_out_and_returns(temporal, cohort):
    """The wrist EDA stops delivering for 60 s: those windows lack it, nothing crashes,
    and the stream still equals the batch path on the recording with that gap."""
    rec = cohort["S05"]
    name = "wrist_eda"
    t0, t1 = 150.0, 210.0
    s = rec[name]
    t = s.timestamps()
    gap = s.replace(data=np.where(((t >= t0) & (t < t1))[:, None], np.nan, s.data))
    gapped = Recording(rec.subject, [gap if x.name == name else x for x in rec.streams.values()],
                       annotations=rec.annotations, meta=rec.meta)
    events = list(temporal.stream(stream_chunks(rec, 1.0, jitter_s=0.5, drop={name: (t0, t1)})))
    batch, win = _compare(temporal, gapped, events)
    inside = (win["start"] >= t0) & (win["end"] <= t1)
    assert inside.any() and not win.loc[inside, "present_wrist_eda"].astype(bool).any()
    after = win["start"] >= t1 + 30
    assert win.loc[after, "present_wrist_eda"].astype(bool).any()  # it votes again once back


def test_stream_refuses_a_non_causal_baseline(tables, cohort):
    det = StressDetector(model="early", baseline="all", **FAST).fit(tables)
    with pytest.raises(SchemaError, match="streaming"):
        list(det.stream(stream_chunks(cohort["S01"])))


# ---------------------------------------------------------------------------- save/load
def test_save_load_round_trip_and_version_check(temporal, cohort, tmp_path):
    folder = temporal.save(tmp_path / "model")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["modalities"] == temporal.modalities_ and manifest["classes"] == ["rest", "stress"]
    back = StressDetector.load(folder)
    pd.testing.assert_frame_equal(back.predict_proba(cohort["S05"]), temporal.predict_proba(cohort["S05"]))
    manifest["mmlab_version"] = "0.0.1"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SchemaError, match="saved by mmlab 0.0.1"):
        StressDetector.load(folder)
    manifest["format"] = "something-else/9"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SchemaError, match="model format"):
        StressDetector.load(folder)
    with pytest.raises(SchemaError, match="no manifest.json"):
        StressDetector.load(tmp_path)


# --------------------------------------------------------------------------- evaluation
def test_loso_evaluation_scores_and_rule_selection(cohort):
    ev = evaluate_loso(StressDetector(model="early", **FAST), cohort)
    assert set(ev.windows["subject"]) == {f"S0{i}" for i in range(1, 6)}
    s = ev.summary()
    assert s["n_subjects"] == 5 and s["n_episodes"] == 5
    assert s["auroc"] > 0.8 and s["balanced_accuracy"] > 0.7
    assert s["balanced_accuracy_min_subject"] <= s["balanced_accuracy"]
    per = ev.per_subject()
    assert len(per) == 5 and (per["n_episodes"] == 1).all()
    ev_any = ev.events("consensus", k=1, on=0.5, off=0.3, min_duration_s=0)
    ev_strict = ev.events("consensus", k=3, on=0.95, off=0.9, min_duration_s=60)
    assert ev_any["n_false_alerts"] >= ev_strict["n_false_alerts"]  # stricter rules never add alerts
    assert ev_any["event_recall"] >= ev_strict["event_recall"]
    sel = ev.select_rule(0.6)
    assert set(sel["settings"]) == {"k", "on", "off", "min_duration_s"} and 0 <= sel["event_recall"] <= 1
    rows = pd.DataFrame(sel["per_subject"])  # each subject under its own nested choice; sums are the pooled counts
    assert len(rows) == 5 and rows["n_detected"].sum() == sel["n_detected"]
    assert rows["n_false_alerts"].sum() == sel["n_false_alerts"] and rows["n_episodes"].sum() == sel["n_episodes"]
    first = rows.iloc[0]
    again = ev.events("consensus", per_subject=True, **{k: first[k] for k in ("k", "on", "off", "min_duration_s")})
    assert again.set_index("subject").loc[first["subject"], "n_false_alerts"] == first["n_false_alerts"]
    curve = ev.operating_curve(on=(0.6, 0.9), min_duration_s=(0, 30))
    assert len(curve) == (3 + 1 + len(ev.modalities)) * 2 * 2
    assert set(curve["rule"]) == {"consensus", "fused", *ev.modalities}
    ax = ev.plot_operating_curve(curve)
    assert sum(len(c.get_offsets()) for c in ax.collections) == len(curve)


# -------------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_stress_predict_sample_end_to_end(data_dir, tmp_path):
    """Stress-Predict (wrist E4 only): every subject opens, its stress phases lie inside the
    recording, windows get wrist features and labels, and a detector trained on the other
    subjects scores a held-out one and streams it like the batch path."""
    from mmlab.systems.stress import open_recordings

    root = data_dir / "stress_predict"
    if not root.is_dir():
        pytest.skip(f"{root} is not there")
    sources = open_recordings(root)
    assert [s.subject for s in sources][:2] == ["S02", "S03"] and len(sources) >= 5
    det = StressDetector(model="early")
    recs = [s.load() for s in sources[:5]]
    table = det.tables(recs)
    assert {"bvp", "wrist_eda", "temp", "acc", "hr"} <= {c.split("__")[0] for c in table.columns if "__" in c}
    assert not any(c.startswith(("ecg__", "resp__")) for c in table.columns)  # no chest device
    assert set(table["label"].dropna()) == {"rest", "stress"}
    for rec in recs:
        eps = stress_episodes(rec)
        assert len(eps) == 3 and all(b - a >= 100 for a, b in eps)  # Stroop, interview, hyperventilation
    det.fit(table[table["subject"] != "S06"])
    held = recs[[r.subject for r in recs].index("S06")]
    probs = det.predict_proba(held)
    assert probs["fused"].notna().mean() > 0.8
    events = list(det.stream(stream_chunks(held, 5.0)))
    _compare(det, held, events)


# --------------------------------------------------------------------------------- CLI
def test_cli_train_evaluate_stream(cohort, tmp_path, capsys):
    from mmlab.cli import main

    data = tmp_path / "cohort"
    cohort.save(data)
    fast = ["--model", "early", "--baseline-s", "60", "--set", "block_s=30", "--set", "min_duration_s=20",
            "--set", "refractory_s=60", "--quiet"]
    assert main(["stress", "train", str(data), "--subjects", "S01", "S02", "S03", "S04",
                 "--out", str(tmp_path / "model"), *fast]) == 0
    assert "saved a stress detector" in capsys.readouterr().out
    assert main(["stress", "evaluate", str(data), "--json", *fast]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_subjects"] == 5 and len(result["per_subject"]) == 5
    assert main(["stress", "stream", str(data), "--subject", "S05", "--model", str(tmp_path / "model"),
                 "--windows"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    det = StressDetector.load(tmp_path / "model")
    assert sum(e["event"] == "window" for e in lines) == len(det.predict_proba(cohort["S05"]))
    # --preset select: both presets (with the fast settings on top), chosen by LOSO, then trained
    assert main(["stress", "train", str(data), "--preset", "select", "--set", "window_s=30",
                 "--out", str(tmp_path / "chosen"), *fast]) == 0
    out = capsys.readouterr().out
    chosen = out.split("preset ")[1].split()[0].strip("'")
    assert chosen in ("default", "adaptive") and "saved a stress detector" in out
    wanted = "rolling" if chosen == "adaptive" else "first"
    assert StressDetector.load(tmp_path / "chosen").baseline == wanted
    with pytest.raises(SystemExit, match="unknown --preset 'best'"):
        main(["stress", "evaluate", str(data), "--preset", "best"])
    assert main(["stress", "evaluate", str(data), "--set", "colour=red"]) == 2
    assert "not a StressDetector parameter" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # argparse refuses it before anything runs
        main(["stress", "evaluate", str(data), "--scheduler", "nonsense"])
    assert e.value.code == 2 and "scheduler must be" in capsys.readouterr().err


def test_evaluation_needs_a_stress_phase_somewhere(cohort):
    recs = []
    for rec in list(cohort)[:3]:
        ann = rec.annotations.copy()
        ann.loc[ann["label"] == "stress", "label"] = "baseline"
        recs.append(Recording(rec.subject, list(rec.streams.values()), annotations=ann, meta=rec.meta))
    with pytest.raises(SchemaError, match="no subject has a stress phase"):
        evaluate_loso(StressDetector(model="early", **FAST), recs)


def test_dask_gives_the_serial_results(cohort, tmp_path):
    """One task per subject for features and one per fold, on a LocalCluster: same numbers.
    A saved cohort is read subject by subject inside the tasks (memory-mapped)."""
    from mmlab.systems.stress import open_recordings

    cohort.save(tmp_path / "c")
    recs = open_recordings(tmp_path / "c", ["S01", "S02", "S03"])
    det = StressDetector(model="early", **FAST)
    serial = evaluate_loso(det, recs)
    local = evaluate_loso(det, recs, scheduler="local")
    pd.testing.assert_frame_equal(serial.windows, local.windows, check_exact=False, rtol=0, atol=1e-12)
    assert serial.info == local.info


def test_bench_stream_check_compares_with_batch(temporal, cohort):
    from mmlab.bench.stress import stream_check

    out = stream_check(temporal, cohort["S05"], chunk_s=1.0, jitter_s=0.5)
    assert out["stream_equals_batch"] is True and out["stream_alerts"] == out["batch_alerts"]
    assert out["stream_chunks"] > 300 and 0 < out["stream_p50_ms"] <= out["stream_p95_ms"] <= out["stream_max_ms"]


def test_no_scr_is_zero_amplitude_not_an_absent_modality(tables):
    """A window without skin-conductance responses has no mean amplitude (NaN in the feature
    table); the detector reads it as 0, so EDA stays present there."""
    det = StressDetector(model="early", **FAST).fit(tables)
    quiet = (tables["eda__scr_count"] == 0) & tables["eda__scr_amp_mean"].isna() & tables["eda__q_ok"].astype(bool)
    assert quiet.sum() >= 5
    X, mask = det._inputs(det._normalise(tables))
    assert mask["eda"][quiet.to_numpy()].all()


# ------------------------------------------------------------ selection and the reference
def test_selection_takes_each_subjects_windows_from_its_choice(cohort):
    """Two real candidates (all devices vs skin temperature alone): every held-out subject's
    windows are exactly those of the candidate chosen for it, and that choice is the best
    mean over the other subjects."""
    from mmlab.systems.stress import select_loso

    cands = {"all": dict(model="early", **FAST),
             "temp": dict(model="early", streams={"temp": ["wrist_temp"]}, context_modalities=(), **FAST)}
    ev = select_loso(cands, cohort)
    alone = {n: evaluate_loso(StressDetector(**p), cohort) for n, p in cands.items()}
    sel = ev.selection
    subjects = [f"S0{i}" for i in range(1, 6)]
    assert sorted(sel["chosen"]) == subjects
    for s in subjects:
        others = {n: np.mean([v for k, v in sel["scores"][n].items() if k != s]) for n in cands}
        assert sel["chosen"][s] == max(others, key=others.get)
        mine = alone[sel["chosen"][s]].windows
        mine = mine[mine["subject"] == s].reset_index(drop=True)
        got = ev.windows[ev.windows["subject"] == s].reset_index(drop=True)
        pd.testing.assert_frame_equal(got[mine.columns], mine, check_dtype=False)
    for n in cands:
        per = alone[n].per_subject().set_index("subject")["balanced_accuracy"]
        assert sel["scores"][n] == pytest.approx(per.to_dict())


def test_selection_leaves_the_held_out_subject_out_of_its_own_choice():
    """Planted scores: B wins overall only because of S1; S1's own choice must ignore it."""
    from mmlab.systems import stress as S

    scores = {"A": pd.Series({"S1": 0.5, "S2": 0.80, "S3": 0.80}),
              "B": pd.Series({"S1": 1.0, "S2": 0.75, "S3": 0.75})}

    class FakeEval:
        def __init__(self, name):
            self.name = name
            self.windows = pd.DataFrame({"subject": ["S1", "S2", "S3"], "start": 0.0, "end": 1.0,
                                         "label": "rest", "fused": 0.5, "who": name})
            self.info = {s: {"subject": s, "episodes": [], "span": (0, 1)} for s in ("S1", "S2", "S3")}
            self.modalities = []
            self.alert_params = {}

        def per_subject(self):
            return scores[self.name].rename("balanced_accuracy").rename_axis("subject").reset_index()

    names = iter(["A", "B"])
    orig = S.evaluate_loso
    S.evaluate_loso = lambda det, recs, **kw: FakeEval(next(names))
    try:
        ev = S.select_loso({"A": {}, "B": {}}, [])
    finally:
        S.evaluate_loso = orig
    assert ev.selection["final"] == "B"  # (1.0 + 0.75 + 0.75) / 3 > 0.7
    assert ev.selection["chosen"] == {"S1": "A", "S2": "B", "S3": "B"}
    assert ev.windows.set_index("subject")["who"].to_dict() == {"S1": "A", "S2": "B", "S3": "B"}


def test_reference_is_scored_on_the_systems_windows(cohort):
    from mmlab.systems.stress import reference_loso

    ev = evaluate_loso(StressDetector(model="early", **FAST), cohort)
    ref = reference_loso(cohort, ev.windows)
    assert list(ref["subject"]) == sorted(ev.windows["subject"].unique())
    scored = ev.windows["label"].isin(["rest", "stress"]) & ev.windows["fused"].notna()
    assert ref.set_index("subject")["n_windows"].to_dict() == scored.groupby(ev.windows["subject"]).sum().to_dict()
    # the synthetic stress phase moves every raw level: even the plain baseline finds it
    assert ref["auroc"].mean() > 0.8


def test_bench_prints_the_issues_keys_on_a_dataset_folder(cohort, tmp_path):
    """`mmlab bench stress --data DIR --json` on a small saved cohort: every key the issue
    names, the nested selection by default, the paired reference, streaming equal to batch."""
    from mmlab.bench import run

    data = tmp_path / "cohort"
    cohort.save(data)
    fast = {k: v for k, v in FAST.items() if k != "epochs"}
    out = run("stress", data=str(data), params={"model": "early", "window_s": 30.0, **fast})
    for key in ("balanced_accuracy", "macro_f1", "auroc", "balanced_accuracy_min_subject", "event_recall",
                "latency_median_s", "false_alerts_per_hour", "false_alerts_per_hour_best_single",
                "stream_equals_batch", "stream_p50_ms", "stream_p95_ms", "wall_s", "peak_mem_mb"):
        assert key in out, key
    assert out["stream_equals_batch"] is True
    assert set(out["selection"]["chosen"]) == set(cohort.subjects) and out["preset"] in ("default", "adaptive")
    assert out["vs_reference"]["n"] == 5
    assert out["balanced_accuracy_min_subject"] <= out["balanced_accuracy"] <= 1
    assert json.dumps(out)  # one JSON object


def test_no_window_starts_before_the_data_or_ends_after_it(early, cohort):
    """The first block's early windows would start before the first sample (at -20 s for
    30-s windows ending every 10 s): neither path emits them, and a window longer than a
    block still streams like the batch path."""
    rec = cohort["S05"]
    lo, hi = min(s.start for s in rec.streams.values()), max(s.end for s in rec.streams.values())
    probs = early.predict_proba(rec)
    assert probs["start"].min() >= lo - 1e-9 and probs["end"].max() <= hi + 1e-9
    assert probs["start"].min() < lo + early.step_s  # the first window that fits is there
    long = StressDetector(model="early", **{**FAST, "window_s": 40.0}).fit(
        [cohort[s] for s in cohort.subjects if s != "S05"])
    events = list(long.stream(stream_chunks(rec, 1.0)))
    _compare(long, rec, events)
    assert min(e["start"] for e in events if e["event"] == "window") >= lo - 1e-9
