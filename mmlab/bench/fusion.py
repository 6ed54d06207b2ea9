"""``mmlab bench fusion``: every fusion method and the unimodal baselines under LOSO."""

from __future__ import annotations

from mmlab.errors import MMLabError

def _fusion_table(cohort, window_s: float):
    """The per-window table of bench ``fusion`` (:func:`mmlab.fusion.tables.stress_window_table`)."""
    from mmlab.fusion.tables import stress_window_table

    return stress_window_table(cohort, window_s, zscore="subject")


def _fusion_inputs(table, classes, seq_len: int):
    """``X``, ``mask``, ``y``, ``groups`` of the labelled windows, and the temporal inputs
    (each labelled window with the ``seq_len - 1`` windows before it, labelled or not)."""
    from mmlab.fusion.tables import feature_modalities, inputs_from_table, sequences_from_table

    X, mask, y, groups = inputs_from_table(table, classes)
    Xs, masks = sequences_from_table(table, classes, seq_len)
    return X, mask, y, groups, Xs, masks, feature_modalities(table)


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
    """Every fusion method and the unimodal baselines, leave-one-subject-out (chapters 30_fusion_taxonomy, 31_attention_transformers, 40, 41).

    Data: a full-length synthetic ``stress_protocol`` cohort (``subjects`` subjects,
    ``seed``) with the scenario's **default knobs** (every modality at informativeness 1,
    realistic noise, sensor dropouts; nothing tuned for this table), cut into
    non-overlapping 30 s windows. Four modalities: ``ecg`` (hr_mean, sdnn, rmssd, pnn50),
    ``eda`` (scl_mean, scl_std, scr_count, scr_amp_mean) and ``resp`` (rate) from
    :func:`mmlab.features.window_features` on the chest streams, and ``wrist`` (skin
    temperature mean and slope, motion, BVP amplitude; :func:`mmlab.fusion.tables.wrist_window_features`).
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
                                   calibrate=True, n_val_groups=n_val, perturbations=pert, random_state=seed)
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
