"""Machine-wise evaluation of the maintenance monitor (chapter 53; ``mmlab maintenance
evaluate``, ``mmlab bench maintenance``).

:func:`evaluate` splits the machines (each fault class ``1 - test_fraction`` / ``test_fraction``,
so no machine is on both sides), trains the fused monitor and one monitor per single
modality (plus the notes' keyword baseline) on the training machines and scores the test
machines' windows: fault macro-F1, failure-horizon AUROC, and the median lead time of the
first alarm before each failure at the risk threshold that keeps false alarms on healthy
machines at or below one per machine-month. :func:`drift_rates` plants each drift in
batches of test machines; :func:`new_sensor_experiment` adds a sensor with frozen old parts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmlab.errors import SignalError
from mmlab.evaluate import macro_f1
from mmlab.recording import Cohort
from mmlab.systems._maintenance_drift import DRIFTS, plant_drift
from mmlab.systems._maintenance_features import WindowTable, window_table
from mmlab.systems.maintenance import (BASE_MODALITIES, MaintenanceMonitor, alarm_threshold, lead_times,
                                       machine_split)

__all__ = ["Split", "split_windows", "scores", "evaluate", "drift_rates", "new_sensor_experiment"]


@dataclass
class Split:
    """Windows of the training and test machines, and the test machines' recordings."""

    train: WindowTable
    test: WindowTable
    test_cohort: Cohort | None


def split_windows(cohort: Cohort, window_s: float = 5.0, test_fraction: float = 0.3, seed: int = 0,
                  extra: tuple = (), progress: bool = False) -> Split:
    """Window the cohort and split it by machine (see :func:`machine_split`); ``progress``
    shows a bar over the machines."""
    W = window_table(cohort, window_s, extra=extra, progress=progress)
    tr_m, te_m = machine_split(W.meta["machine"], W.meta["machine_fault"], test_fraction, seed)
    if len(tr_m) == 0 or len(te_m) == 0:
        raise SignalError(f"too few machines ({W.meta['machine'].nunique()}) to split by machine")
    isin = W.meta["machine"].isin
    test_cohort = Cohort([r for r in cohort if r.subject in set(te_m)],
                         participants=cohort.participants[cohort.participants["participant_id"].isin(te_m)],
                         meta=cohort.meta)
    return Split(W.subset(np.flatnonzero(isin(tr_m))), W.subset(np.flatnonzero(isin(te_m))), test_cohort)


def scores(pred: pd.DataFrame, horizon_h: float) -> dict:
    """Macro-F1 of the fault class and AUROC of the failure-horizon risk over the windows
    with a prediction (at least one usable modality)."""
    from sklearn.metrics import roc_auc_score

    ok = pred["predicted"] != ""
    p = pred[ok]
    y = (p["hours_to_failure"] <= horizon_h).to_numpy()
    auc = float(roc_auc_score(y, p["risk"])) if 0 < y.sum() < len(y) else float("nan")
    return {"macro_f1": float(macro_f1(p["fault"].astype(str), p["predicted"].astype(str))), "auroc": auc,
            "windows": int(ok.sum())}


def evaluate(split: Split, modalities=BASE_MODALITIES, keyword_baseline: bool = True, seed: int = 0,
             progress: bool = False, **params) -> tuple[dict, MaintenanceMonitor]:
    """Figures of the fused monitor and each single modality on the split (see the module
    doc), and the fitted fused monitor (``progress``: a bar over the single-modality monitors)."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    fused = MaintenanceMonitor(modalities=modalities, random_state=seed, **params).fit(split.train)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = fused.predict_proba(split.test)
    infer_ms = 1000 * (time.perf_counter() - t0) / max(len(split.test), 1)
    out_f1, out_auc = {}, {}
    for m in tqdm(list(modalities), desc="single-modality monitors", disable=not progress, leave=False):
        mon = MaintenanceMonitor(modalities=[m], random_state=seed, **params).fit(split.train)
        s = scores(mon.predict_proba(split.test), fused.horizon_h)
        out_f1[m], out_auc[m] = s["macro_f1"], s["auroc"]
    if keyword_baseline and "notes" in modalities:
        kw = {**params, "text_encoder": "keywords"}
        mon = MaintenanceMonitor(modalities=["notes"], random_state=seed, **kw).fit(split.train)
        s = scores(mon.predict_proba(split.test), fused.horizon_h)
        out_f1["notes_keywords"], out_auc["notes_keywords"] = s["macro_f1"], s["auroc"]
    s = scores(pred, fused.horizon_h)
    out_auc["fused"] = s["auroc"]
    thr = alarm_threshold(pred, fused.session_h)
    lt = lead_times(pred, thr)
    best = max((v, k) for k, v in out_f1.items() if k in modalities)
    figures = {
        "unimodal_macro_f1": out_f1, "fused_macro_f1": s["macro_f1"],
        "best_single_modality": best[1], "fused_gain_over_best": s["macro_f1"] - best[0],
        "horizon_auroc": out_auc, "horizon_h": fused.horizon_h, "session_h": fused.session_h,
        "alarm_threshold": thr, "lead_time_h_median": float(lt.median()) if len(lt) else float("nan"),
        "lead_time_h": {k: round(v, 1) for k, v in lt.items()},
        "missed_failures": int((lt == 0).sum()),
        "train_s": train_s, "infer_ms": infer_ms,
        "n_train_machines": int(split.train.meta["machine"].nunique()),
        "n_test_machines": int(split.test.meta["machine"].nunique()),
        "test_machine_faults": split.test.meta.drop_duplicates("machine")["machine_fault"].value_counts().to_dict(),
    }
    return figures, fused


def drift_rates(mon: MaintenanceMonitor, split: Split, n_batches: int = 12, machines_per_batch: int = 3,
                seed: int = 0, progress: bool = False) -> dict:
    """Plant each drift of :data:`DRIFTS` in the test machines and check batches of
    ``machines_per_batch`` of them: the detection rate (target modality flagged) per drift,
    and the false-flag rate per modality on the same batches without drift (``progress``:
    a bar over the batches)."""
    from tqdm.auto import tqdm

    if split.test_cohort is None:
        raise SignalError("drift_rates needs the test machines' recordings")
    rng = np.random.default_rng(seed)
    machines = np.array(sorted(split.test.meta["machine"].unique()))
    batches = [rng.choice(machines, min(machines_per_batch, len(machines)), replace=False) for _ in range(n_batches)]
    tables = {"none": split.test}
    for kind in DRIFTS:
        tables[kind] = mon.windows(plant_drift(split.test_cohort, kind, seed=seed))
    flags = {k: [] for k in tables}
    for b in tqdm(batches, desc="drift batches", disable=not progress, leave=False):
        for k, W in tables.items():
            rows = np.flatnonzero(W.meta["machine"].isin(b))
            flags[k].append(mon.drift_report(W.subset(rows))["drift"])
    clean = pd.DataFrame(flags["none"])
    false_by_mod = {m: float(clean[m].mean()) for m in clean.columns}
    detect = {k: float(np.mean([f[DRIFTS[k]] for f in flags[k]])) for k in DRIFTS}
    wrong = {k: float(np.mean([f.drop(DRIFTS[k]).any() for f in flags[k]])) for k in DRIFTS}
    return {"drift_detection_rate": float(np.mean(list(detect.values()))), "drift_detection_by_kind": detect,
            "drift_false_flag_rate": float(np.mean(list(false_by_mod.values()))),
            "drift_false_flag_by_modality": false_by_mod, "drift_other_modality_flag_rate": wrong,
            "drift_batches": n_batches, "drift_machines_per_batch": int(min(machines_per_batch, len(machines)))}


def new_sensor_experiment(mon: MaintenanceMonitor, split: Split, name: str = "current") -> dict:
    """Add sensor ``name`` with frozen old parts: old outputs unchanged (bool), the macro-F1
    gain with all modalities, and the gain when the thermal camera is absent."""
    if name not in split.train.present:
        raise SignalError(f"the windows have no {name!r} sensor (window them with extra=({name!r},))")
    t0 = time.perf_counter()
    new = mon.add_sensor(split.train, name)
    add_s = time.perf_counter() - t0
    before = scores(mon.predict_proba(split.test), mon.horizon_h)
    after = scores(new.predict_proba(split.test), mon.horizon_h)
    rest = [m for m in mon.modalities_ if m != "thermal"]
    nb = scores(mon.predict_proba(split.test, rest), mon.horizon_h)
    na = scores(new.predict_proba(split.test, rest + [name]), mon.horizon_h)
    return {"new_sensor": name, "new_sensor_old_outputs_unchanged": mon.old_outputs_unchanged(new, split.test),
            "new_sensor_gain": after["macro_f1"] - before["macro_f1"],
            "new_sensor_auroc_gain": after["auroc"] - before["auroc"],
            "new_sensor_gain_without_thermal": na["macro_f1"] - nb["macro_f1"],
            "new_sensor_train_s": add_s}
