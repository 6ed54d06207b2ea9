"""``mmlab bench fusion``: every fusion method and the unimodal baselines under LOSO."""

from __future__ import annotations

from mmlab.errors import MMLabError

def _wrist_window_features(rec, starts, ends) -> dict:
    """Wrist features per window (bench ``fusion``): skin temperature mean and slope (°C,
    °C/s), log wrist motion (log sd of the change in ACC magnitude) and log BVP amplitude
    (log sd). :mod:`mmlab.features` has no extractor for these streams yet; swap this for
    it when it has. Device time is taken as reference time (the synthetic wrist clock is
    off by at most a few seconds, small against a 30 s window); a window with any NaN
    sample (a dropout) or without the wrist device gives NaN, i.e. an absent modality."""
    import numpy as np

    names = ("wrist__temp_mean", "wrist__temp_slope", "wrist__log_motion", "wrist__log_bvp_amp")
    out = {k: np.full(len(starts), np.nan) for k in names}
    if not all(s in rec for s in ("wrist_temp", "wrist_acc", "wrist_bvp")):
        return out

    def samples(name):
        s = rec[name]
        x = s.data.astype(float)
        t = s.start + np.arange(len(x)) / s.rate
        return x, t

    temp, t_temp = samples("wrist_temp")
    acc, t_acc = samples("wrist_acc")
    bvp, t_bvp = samples("wrist_bvp")
    mag = np.linalg.norm(acc, axis=1)
    for w, (a, b) in enumerate(zip(starts, ends)):
        i = slice(*np.searchsorted(t_temp, [a, b]))
        j = slice(*np.searchsorted(t_acc, [a, b]))
        k = slice(*np.searchsorted(t_bvp, [a, b]))
        x, m, p = temp[i, 0], mag[j], bvp[k, 0]
        span_ok = len(x) >= 0.9 * (b - a) * rec["wrist_temp"].rate
        if not span_ok or np.isnan(x).any() or np.isnan(m).any() or np.isnan(p).any():
            continue
        out["wrist__temp_mean"][w] = x.mean()
        out["wrist__temp_slope"][w] = np.polyfit(t_temp[i] - a, x, 1)[0]
        out["wrist__log_motion"][w] = np.log(np.std(np.diff(m)) + 1e-6)
        out["wrist__log_bvp_amp"][w] = np.log(np.std(p) + 1e-6)
    return out


def _fusion_table(cohort, window_s: float):
    """Per-window features of a stress_protocol cohort for bench ``fusion``: chest ECG, EDA
    and respiration from :func:`mmlab.features.window_features`, wrist from
    :func:`_wrist_window_features`; then z-scored within each subject."""
    import warnings

    import pandas as pd

    from mmlab import features as FT

    tables = []
    for rec in cohort:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SignalWarnings on dropout stretches: NaN features
            t = FT.window_features(rec, window_s, window_s, t_start=0.0,
                                   streams={"ecg": "chest_ecg", "eda": "chest_eda", "resp": "chest_resp"})
        t = t[["subject", "start", "end", "label", *FT.feature_columns(t)]].copy()
        for k, v in _wrist_window_features(rec, t["start"].to_numpy(), t["end"].to_numpy()).items():
            t[k] = v
        tables.append(t)
    table = pd.concat(tables, ignore_index=True)
    cols = [c for c in table.columns if "__" in c]
    grouped = table.groupby("subject")[cols]
    sd = grouped.transform("std")
    table[cols] = (table[cols] - grouped.transform("mean")) / sd.where(sd > 0, 1.0)
    return table


def _fusion_inputs(table, classes, seq_len: int):
    """``X``, ``mask``, ``y``, ``groups`` of the labelled windows, and the temporal inputs
    (each labelled window with the ``seq_len - 1`` windows before it, labelled or not)."""
    import numpy as np

    from mmlab.fusion import make_mask

    cols = [c for c in table.columns if "__" in c]
    mods = list(dict.fromkeys(c.split("__")[0] for c in cols))
    full = {m: table[[c for c in cols if c.startswith(m + "__")]].to_numpy(float) for m in mods}
    keep = table["label"].isin(classes).to_numpy()
    X = {m: a[keep] for m, a in full.items()}
    y = table["label"].to_numpy()[keep].astype(str)
    groups = table["subject"].to_numpy()[keep].astype(str)
    # sequences: rows of the same subject, in time order, padded as absent at the start
    subj = table["subject"].to_numpy()
    pos = table.groupby("subject").cumcount().to_numpy()
    rows = np.flatnonzero(keep)
    Xs = {m: np.full((len(rows), seq_len, a.shape[1]), np.nan) for m, a in full.items()}
    for lag in range(seq_len):
        src = rows - lag
        ok = (pos[rows] >= lag) & (subj[np.maximum(src, 0)] == subj[rows])
        for m, a in full.items():
            Xs[m][ok, seq_len - 1 - lag] = a[src[ok]]
    return X, make_mask(X), y, groups, Xs, make_mask(Xs), mods


def _bench_fusion_methods(mods, random_state: int):
    from mmlab import fusion as FU

    deep = dict(batch_size=128, random_state=random_state)
    unimodal = [(m, "unimodal", FU.EarlyFusion(modalities=[m]), False) for m in mods]
    fused = [
        ("early", FU.EarlyFusion()),
        ("early+mdrop", FU.EarlyFusion(modality_dropout=0.3, random_state=random_state)),
        ("late", FU.LateFusion()),
        ("stacking", FU.StackingFusion(random_state=random_state)),
        ("hybrid", FU.HybridFusion()),
        ("tensor", FU.TensorFusion(tensor_dim=4, **deep)),
        ("lmf", FU.LowRankFusion(**deep)),
        ("attention", FU.AttentionFusion(**deep)),
        ("attention+mdrop", FU.AttentionFusion(modality_dropout=0.3, **deep)),
        ("transformer", FU.TransformerFusion(**deep)),
        ("gated", FU.GatedFusion(**deep)),
    ]
    return unimodal + [(n, "fused", m, False) for n, m in fused] + \
        [("temporal", "fused", FU.TemporalFusion(**deep), True)]


def run(scenario: str = "stress_protocol", subjects: int = 12, seed: int = 0, **_) -> dict:
    """Every fusion method and the unimodal baselines, leave-one-subject-out (chapters 30-33).

    Data: a full-length synthetic ``stress_protocol`` cohort (``subjects`` subjects,
    ``seed``) with the scenario's **default knobs** (every modality at informativeness 1,
    realistic noise, sensor dropouts; nothing tuned for this table), cut into
    non-overlapping 30 s windows. Four modalities: ``ecg`` (hr_mean, sdnn, rmssd, pnn50),
    ``eda`` (scl_mean, scl_std, scr_count, scr_amp_mean) and ``resp`` (rate) from
    :func:`mmlab.features.window_features` on the chest streams, and ``wrist`` (skin
    temperature mean and slope, motion, BVP amplitude; :func:`_wrist_window_features`).
    Features are z-scored within each subject over all of that subject's windows
    (label-free, but it uses the test subject's unlabelled windows, as WESAD studies do).
    Windows labelled baseline/stress/amusement/meditation (majority rule) are classified;
    transient windows serve only as context of the temporal model (the 4 windows before
    each labelled one). NaN features (dropouts) make that modality absent in that window.

    Protocol: leave one subject out; in each fold 2 training subjects are held out as a
    validation set (early stopping of the deep models; temperature scaling of every model)
    and the model trains on the others. Scores pool the out-of-fold predictions:
    ``macro_f1``; ``macro_f1_missing[m]`` (fused models): with modality ``m`` marked
    absent in the test subject; ``ece`` (15 equal-width bins) after temperature scaling
    (``ece_raw`` before); ``train_s`` the fitting seconds summed over folds. One thread
    (threadpoolctl and torch), on a CPU shared with other work: timings are noisy.

    Targets: the best fused model beats the best unimodal one by >= 0.05 macro-F1; for
    each model trained with modality dropout, removing any one modality leaves macro-F1
    at or above the best unimodal model of the remaining modalities; ECE <= 0.05 (the
    best fused model).
    """
    import os
    import time

    import numpy as np
    from threadpoolctl import threadpool_limits

    from mmlab import evaluate as E
    from mmlab import synth

    if scenario != "stress_protocol":
        raise MMLabError(f"bench fusion has window features for 'stress_protocol' only, got {scenario!r}")
    classes = ["baseline", "stress", "amusement", "meditation"]
    window_s, seq_len, n_val = 30.0, 5, 2
    t_all = time.perf_counter()
    with threadpool_limits(limits=1):
        t = time.perf_counter()
        cohort = synth.make_cohort(scenario, n_subjects=subjects, seed=seed)
        generate_s = time.perf_counter() - t
        t = time.perf_counter()
        table = _fusion_table(cohort, window_s)
        features_s = time.perf_counter() - t
        X, mask, y, groups, Xs, masks, mods = _fusion_inputs(table, classes, seq_len)
        rows, results, at_bound = [], {}, {}
        for name, kind, model, temporal in _bench_fusion_methods(mods, seed):
            pert = None if kind == "unimodal" else {
                m: (lambda Xt, mt, g, m=m: E.remove_modality(Xt, mt, m)) for m in mods}
            res = E.cross_validate(model, Xs if temporal else X, y, groups, masks if temporal else mask,
                                   calibrate=True, n_val_groups=n_val, perturbations=pert, seed=seed)
            s, raw = res.scores(), res.scores(res.proba)
            row = {"name": name, "kind": kind, "modalities": list(res.modalities),
                   "macro_f1": round(s["macro_f1"], 4),
                   "balanced_accuracy": round(s["balanced_accuracy"], 4)}
            if kind == "fused":
                row["macro_f1_missing"] = {m: round(res.scores(p)["macro_f1"], 4)
                                           for m, p in res.perturbed.items()}
            row.update({"ece": round(s["ece"], 4), "ece_raw": round(raw["ece"], 4),
                        "temperature": round(float(np.median(res.temperatures)), 3),
                        "train_s": round(res.fit_seconds, 2)})
            rows.append(row)
            results[name] = row
            if any(res.at_bound):
                at_bound[name] = f"{sum(res.at_bound)} of {len(res.at_bound)} folds"
    uni = {r["modalities"][0]: r["macro_f1"] for r in rows if r["kind"] == "unimodal"}
    fused = [r for r in rows if r["kind"] == "fused"]
    best_f = max(fused, key=lambda r: r["macro_f1"])
    best_u = max(uni, key=uni.get)
    graceful = {}
    for name in ("early+mdrop", "attention+mdrop"):
        r = results[name]
        margins = {m: round(r["macro_f1_missing"][m] - max(v for u, v in uni.items() if u != m), 4)
                   for m in mods}
        graceful[name] = {"ok": all(v >= 0 for v in margins.values()), "margin_by_removed": margins}
    counts = {c: int((y == c).sum()) for c in classes}
    return {
        "scenario": scenario, "subjects": subjects, "seed": seed,
        "settings": (f"default knobs (informativeness 1 for every modality); {window_s:g} s windows, "
                     f"z-scored per subject; LOSO with {n_val} validation subjects per fold "
                     f"(early stopping + temperature); temporal: {seq_len} windows"),
        "windows": int(len(y)), "class_counts": counts,
        "absent_windows": {m: int((~v).sum()) for m, v in mask.items()},
        "methods": rows,
        "best_fused": best_f["name"], "best_fused_macro_f1": best_f["macro_f1"],
        "best_unimodal": best_u, "best_unimodal_macro_f1": uni[best_u],
        "gain": round(best_f["macro_f1"] - uni[best_u], 4),
        "gain_target_met": bool(best_f["macro_f1"] - uni[best_u] >= 0.05),
        "graceful_degradation": graceful,
        "ece_best_fused": best_f["ece"], "ece_target_met": bool(best_f["ece"] <= 0.05),
        "fused_with_ece_le_0.05": f"{sum(r['ece'] <= 0.05 for r in fused)} of {len(fused)}",
        "temperature_at_bound": at_bound or "none",
        "generate_s": round(generate_s, 1), "features_s": round(features_s, 1),
        "wall_s": round(time.perf_counter() - t_all, 1), "threads": 1,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
