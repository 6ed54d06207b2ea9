"""The predictive-maintenance system (mmlab.systems.maintenance): windows and bad input, the
fused monitor against single streams on planted faults, adding a sensor with frozen old
parts, drift per modality, alarms and lead time, save/load, the CLI."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from mmlab import cli
from mmlab import sensors as SN
from mmlab.errors import SchemaError, SignalError
from mmlab.recording import Cohort, Recording, Stream
from mmlab.synth import factory
from mmlab.systems._maintenance_drift import DRIFTS, mmd2, plant_drift
from mmlab.systems._maintenance_eval import new_sensor_experiment, split_windows
from mmlab.systems._maintenance_features import frame_problem, signal_problem, window_table
from mmlab.systems.maintenance import (MaintenanceMonitor, alarm_threshold, lead_times, machine_split,
                                       make_fleet)

FAST = dict(epochs=60)


@pytest.fixture(scope="module")
def fleet():
    return make_fleet(40, seed=2, fast=True, minutes=0.5)


@pytest.fixture(scope="module")
def split(fleet):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return split_windows(fleet, test_fraction=0.35, seed=0, extra=("current",))


@pytest.fixture(scope="module")
def fused(split):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MaintenanceMonitor(**FAST).fit(split.train)


# ------------------------------------------------------------------------------ scenario
def test_factory_new_knobs_plant_what_they_say():
    c = factory(12, seed=1, fast=True, minutes=0.2, overheat_fraction=0.5, current_hz=1000,
                fault_mix={"outer_race": 0.0, "inner_race": 0.0, "ball": 1.0})
    truth = [r.meta["truth"] for r in c]
    hot = [r for r, t in zip(c, truth) if "overheating" in t]
    balls = [r for r, t in zip(c, truth) if t["fault"] == "ball"]
    assert len(balls) == 4 and len(hot) == 4  # 30 % of 12 fail; half of the other 8 overheat
    assert all(r.annotations.query("kind == 'label'")["label"].iloc[0] == "failure" for r in hot)
    assert all("current" in r and r["current"].rate == 1000 for r in c)
    # same seed without overheating: only the overheating machines' frames change, and they get hotter
    base = factory(12, seed=1, fast=True, minutes=0.2, current_hz=1000,
                   fault_mix={"outer_race": 0.0, "inner_race": 0.0, "ball": 1.0})
    for r, b in zip(c, base):
        d = np.asarray(r["thermal"].data, float) - np.asarray(b["thermal"].data, float)
        if "overheating" in r.meta["truth"]:
            assert d.min() > -1e-4 and d.max() > 3.0
            assert np.array_equal(r["vibration"].data, b["vibration"].data)
        else:
            assert np.array_equal(r["thermal"].data, b["thermal"].data)
    # ball defects ring at twice the ball-spin frequency
    assert all(abs(r.meta["truth"]["fault_hz"] - 2 * r.meta["truth"]["bsf"]) < 1e-3 for r in balls)


def test_run_to_failure_onset_labels_windows_healthy_before_it():
    c = factory(6, seed=3, fast=True, minutes=0.5, failure_fraction=0.5, onset_fraction=0.6, dropout_per_hour=0)
    W = window_table(c, 5.0)
    for rec in c:
        rows = W.meta[W.meta["machine"] == rec.subject]
        t = rec.meta["truth"]
        if t["fault"] is None:
            assert "onset_s" not in t and (rows["fault"] == "healthy").all()
            continue
        assert 0.0 <= t["onset_s"] <= 0.6 * 30.0
        mid = (rows["start"] + rows["end"]) / 2
        assert (rows.loc[mid < t["onset_s"], "fault"] == "healthy").all()
        assert (rows.loc[mid >= t["onset_s"], "fault"] == t["fault"]).all()
        assert (rows["machine_fault"] == t["fault"]).all()
        # no impacts before the onset: the vibration there matches the same machine run healthy
        x = np.asarray(rec["vibration"].data, float).reshape(-1)
        pre = x[: int(t["onset_s"] * rec["vibration"].rate)]
        post = x[int(t["onset_s"] * rec["vibration"].rate):]
        if len(pre) > 4000 and len(post) > 4000:
            assert SN.time_features(post)["kurtosis"] > SN.time_features(pre)["kurtosis"]


def test_factory_defaults_have_no_new_faults_or_sensor():
    c = factory(10, seed=0, fast=True, minutes=0.1)
    assert all("current" not in r and "overheating" not in r.meta["truth"] and "onset_s" not in r.meta["truth"]
               for r in c)
    assert {r.meta["truth"]["fault"] for r in c} <= {None, "outer_race", "inner_race"}


# ------------------------------------------------------------------------------ bad input
def test_signal_and_frame_problems_are_named():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.1, 4000)
    assert signal_problem(x, 4000.0) is None
    assert signal_problem(np.zeros(4000), 4000.0) == "flat"
    assert signal_problem(np.clip(x * 50, -2, 2), 4000.0) == "saturated"
    assert signal_problem(np.where(np.arange(4000) < 3000, np.nan, x), 4000.0) == "dropout"
    assert signal_problem(np.zeros(0), 4000.0) == "empty"
    f = 25 + rng.normal(0, 1, (32, 32)).astype(np.float32)
    assert frame_problem(f) is None
    assert frame_problem(np.zeros((32, 32))) == "black"
    assert frame_problem(np.full((32, 32), 400.0) + rng.normal(0, 1, (32, 32))) == "all-hot"
    assert frame_problem(np.where(np.eye(32) > 0, np.nan, f)) == "non-finite"


def _broken_cohort():
    c = factory(3, seed=0, fast=True, minutes=0.25, dropout_per_hour=0)
    recs = list(c)
    r0, r1, r2 = recs
    v = r0["vibration"]
    sat = np.clip(np.asarray(v.data, float) * 40, -1.0, 1.0).astype(np.float32)
    r0 = Recording(r0.subject, [v.replace(data=sat), r0["thermal"].replace(data=np.zeros_like(r0["thermal"].data))],
                   annotations=r0.annotations.assign(text=np.where(r0.annotations["kind"] == "note", "  ", "")),
                   meta=r0.meta)
    r1 = Recording(r1.subject, [r1["thermal"].replace(data=np.full_like(r1["thermal"].data, 500.0))],
                   annotations=r1.annotations, meta=r1.meta)  # no vibration at all, an all-hot camera
    flat = r2["vibration"].replace(data=np.zeros_like(r2["vibration"].data))
    r2 = Recording(r2.subject, [flat, r2["thermal"]], annotations=r2.annotations, meta=r2.meta)
    return Cohort([r0, r1, r2], participants=c.participants, meta=c.meta)


def test_window_table_flags_every_bad_input():
    W = window_table(_broken_cohort(), 5.0)
    per = pd.DataFrame({"machine": W.meta["machine"], **{f"r_{m}": W.reason[m] for m in W.reason}})
    first = per.groupby("machine").first()
    assert first.loc["M01", "r_vibration"] == "saturated" and first.loc["M01", "r_thermal"] == "black"
    assert first.loc["M02", "r_vibration"] == "missing" and first.loc["M02", "r_thermal"] == "all-hot"
    assert first.loc["M03", "r_vibration"] == "flat"
    assert set(per.loc[per["machine"] == "M01", "r_notes"]) <= {"no note yet", "empty note"}
    assert not W.present["vibration"].any() and not W.present["thermal"][per["machine"] != "M03"].any()
    ex = W.exclusions()
    assert set(ex["reason"]) >= {"saturated", "black", "missing", "all-hot", "flat"}


def test_predictions_for_broken_machines_are_flagged_not_guessed(fused):
    pred = fused.predict_proba(_broken_cohort())
    m1 = pred[pred["machine"] == "M01"]  # nothing usable at all: no prediction
    assert (m1["predicted"] == "").all() and m1["risk"].isna().all()
    m3 = pred[pred["machine"] == "M03"]  # flat vibration, thermal fine: thermal (and notes) speak
    assert (~m3["present_vibration"]).all() and (m3["reason_vibration"] == "flat").all()
    assert (m3["predicted"] != "").all()
    p = m3[[c for c in m3 if c.startswith("p_")]].to_numpy()
    assert np.allclose(p.sum(1), 1.0)


def test_window_table_rejects_non_cohorts():
    with pytest.raises(SignalError, match="expected a Cohort"):
        window_table([1, 2, 3])


# ------------------------------------------------------------------------------ the monitor
def test_fusion_catches_what_each_stream_misses(split, fused):
    """Overheating is quiet in vibration; bearing defects look alike to the camera."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vib = MaintenanceMonitor(modalities=["vibration"], **FAST).fit(split.train)
    pf, pv = fused.predict_proba(split.test), vib.predict_proba(split.test)
    hot = pf["fault"] == "overheating"
    assert hot.any()
    assert (pf.loc[hot, "predicted"] == "overheating").mean() > 0.8
    bearing = pf["fault"].isin(["outer_race", "inner_race", "ball"])
    assert (pf.loc[bearing, "predicted"] == pf.loc[bearing, "fault"]).mean() > 0.8
    from mmlab.evaluate import macro_f1

    f_fused = macro_f1(pf["fault"], pf["predicted"])
    f_vib = macro_f1(pv["fault"], pv["predicted"])
    assert f_fused >= f_vib + 0.05


def test_risk_is_higher_near_failure(split, fused):
    pred = fused.predict_proba(split.test)
    near = pred["hours_to_failure"] <= fused.horizon_h
    far = ~near
    assert pred.loc[near, "risk"].mean() > 2 * pred.loc[far, "risk"].mean()
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(near, pred["risk"]) > 0.75


def test_predict_proba_table(split, fused):
    pred = fused.predict_proba(split.test)
    assert len(pred) == len(split.test)
    for m in ("vibration", "thermal", "notes"):
        assert f"present_{m}" in pred and f"reason_{m}" in pred
    p = pred[[f"p_{c}" for c in fused.classes_]].to_numpy()
    assert np.allclose(p.sum(1), 1.0) and ((0 <= pred["risk"]) & (pred["risk"] <= 1)).all()
    with pytest.raises(SchemaError, match="unknown modalities"):
        fused.predict_proba(split.test, ["smell"])


def test_bad_parameters_and_unfitted_use(split):
    with pytest.raises(SchemaError, match="text_encoder"):
        MaintenanceMonitor(text_encoder="bert")
    with pytest.raises(SchemaError, match="modalities"):
        MaintenanceMonitor(modalities=["smell"])
    with pytest.raises(SchemaError, match="not fitted"):
        MaintenanceMonitor().predict_proba(split.test)
    healthy = split.train.subset(np.flatnonzero(split.train.meta["fault"] == "healthy"))
    with pytest.raises(SignalError, match="one fault class"):
        MaintenanceMonitor(**FAST).fit(healthy)


def test_machine_split_keeps_machines_apart():
    machines = [f"M{i:02d}" for i in range(20) for _ in range(3)]
    faults = (["healthy"] * 14 + ["ball"] * 4 + ["overheating"] * 2)
    faults = [faults[i] for i in range(20) for _ in range(3)]
    tr, te = machine_split(machines, faults, 0.25, seed=0)
    assert not set(tr) & set(te) and len(tr) + len(te) == 20
    lookup = dict(zip(machines, faults))
    assert {lookup[m] for m in te} == {"healthy", "ball", "overheating"}


# ------------------------------------------------------------------------------ a new sensor
def test_adding_a_sensor_leaves_old_outputs_bit_identical(split, fused):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = new_sensor_experiment(fused, split, "current")
        new = fused.add_sensor(split.train, "current", epochs=20)
    assert res["new_sensor_old_outputs_unchanged"] is True
    assert new.modalities_ == fused.modalities_ + ["current"]
    a = fused.predict_proba(split.test)
    b = new.predict_proba(split.test, fused.modalities_)
    cols = [f"p_{c}" for c in fused.classes_] + ["risk"]
    assert np.array_equal(a[cols].to_numpy(), b[cols].to_numpy())
    assert not np.array_equal(a[cols].to_numpy(), new.predict_proba(split.test)[cols].to_numpy())
    with pytest.raises(SchemaError, match="already has"):
        new.add_sensor(split.train, "current")


# ------------------------------------------------------------------------------ drift
def test_mmd_known_answers():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (200, 2))
    assert mmd2(a, a, 1.0) == pytest.approx(0.0, abs=1e-12)
    assert mmd2(a, rng.normal(0, 1, (200, 2)), 1.0) < 0.03 < mmd2(a, rng.normal(2, 1, (200, 2)), 1.0)


@pytest.mark.parametrize("kind", sorted(DRIFTS))
def test_planted_drift_is_flagged_in_its_modality(split, fused, kind):
    clean = fused.drift_report(split.test)
    assert not clean["drift"].any(), clean
    drifted = fused.drift_report(plant_drift(split.test_cohort, kind))
    assert drifted.loc[DRIFTS[kind], "drift"], drifted
    others = drifted.drop(DRIFTS[kind])
    assert not others["drift"].any(), drifted  # the flag names the drifting modality only


def test_plant_drift_rejects_unknown_kinds(fleet):
    with pytest.raises(SchemaError, match="drift kind"):
        plant_drift(fleet, "solar_flare")


# ------------------------------------------------------------------------------ alarms
def test_alarm_threshold_and_lead_times_known_answers():
    rows = []
    for m, fault, risks in [("A", "healthy", [0.1, 0.5, 0.1, 0.1]), ("B", "healthy", [0.2, 0.2, 0.3, 0.2]),
                            ("C", "ball", [0.2, 0.4, 0.7, 0.9])]:
        for i, r in enumerate(risks):
            rows.append({"machine": m, "start": 5.0 * i, "fault": fault, "risk": r,
                         "hours_to_failure": np.inf if fault == "healthy" else 180.0 - 60.0 * i})
    pred = pd.DataFrame(rows)
    # two healthy machines x 240 h = 2/3 machine-month: no false alarm allowed -> above 0.5
    thr = alarm_threshold(pred, session_h=240.0)
    assert 0.5 < thr <= 0.7
    assert lead_times(pred, thr)["C"] == 60.0
    assert lead_times(pred, 0.3)["C"] == 120.0
    assert lead_times(pred, 0.95)["C"] == 0.0  # never alarms: no lead time


# ------------------------------------------------------------------------------ save / load
def test_save_load_roundtrip_and_incompatible_folders(tmp_path, split, fused):
    out = fused.save(tmp_path / "m")
    back = MaintenanceMonitor.load(out)
    a, b = fused.predict_proba(split.test), back.predict_proba(split.test)
    pd.testing.assert_frame_equal(a, b)
    mf = json.loads((out / "manifest.json").read_text())
    mf["format"] = "mmlab-maintenance-monitor/0"
    (out / "manifest.json").write_text(json.dumps(mf))
    with pytest.raises(SchemaError, match="format"):
        MaintenanceMonitor.load(out)
    mf["format"], mf["mmlab_version"] = "mmlab-maintenance-monitor/1", "0.0.0"
    (out / "manifest.json").write_text(json.dumps(mf))
    with pytest.raises(SchemaError, match="retrain"):
        MaintenanceMonitor.load(out)
    with pytest.raises(SchemaError, match="no manifest"):
        MaintenanceMonitor.load(tmp_path)


# ------------------------------------------------------------------------------ CLI
def test_cli_train_drift_evaluate(tmp_path, capsys):
    data = tmp_path / "fleet"
    assert cli.main(["data", "make", "factory", "--subjects", "16", "--seed", "1", "--fast", "--quiet",
                     "--out", str(data), "--set", "minutes=0.25", "--set", "overheat_fraction=0.3"]) == 0
    assert cli.main(["maintenance", "train", str(data), "--out", str(tmp_path / "model"),
                     "--set", "epochs=20"]) == 0
    assert "saved a maintenance monitor" in capsys.readouterr().out
    assert cli.main(["maintenance", "drift", str(data), "--model", str(tmp_path / "model"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert set(rep) == {"vibration", "thermal", "notes"} and all("drift" in v for v in rep.values())
    assert cli.main(["maintenance", "evaluate", str(data), "--set", "epochs=20", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert {"unimodal_macro_f1", "fused_macro_f1", "horizon_auroc", "lead_time_h_median"} <= set(res)
    assert cli.main(["maintenance", "train", str(data), "--out", str(tmp_path / "m2"), "--set", "colour=1"]) == 2
    assert cli.main(["maintenance", "drift", str(tmp_path / "nothing"), "--model", str(tmp_path / "model")]) == 2


def test_order_spectrum_puts_a_defect_at_its_order_and_the_cnn_option_runs(split):
    from mmlab.synth.vibration import vibration as vib_signal
    from mmlab.systems._maintenance_features import ORDER_EDGES, order_spectrum

    centres = (ORDER_EDGES[:-1] + ORDER_EDGES[1:]) / 2
    for shaft in (16.0, 40.0):  # the same order whatever the speed
        x, truth = vib_signal(np.random.default_rng(0), 4000.0, 20000, shaft, "outer_race", 1.0)
        o = order_spectrum(x, 4000.0, shaft, SN.best_band(x, 4000.0))
        assert abs(centres[np.argmax(o)] - truth["bpfo"] / shaft) < 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mon = MaintenanceMonitor(modalities=["vibration"], vibration_cnn=True, epochs=10).fit(split.train)
    assert mon.embeddings(split.test)["vibration"].shape[1] == 11 + 16
    p = mon.predict_proba(split.test)
    assert np.allclose(p[[f"p_{c}" for c in mon.classes_]].sum(1), 1.0)
