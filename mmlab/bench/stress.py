"""``mmlab bench stress``: the wearable stress system end to end (chapter 50_stress_system).

Leave-one-subject-out at window level (balanced accuracy, macro-F1, AUROC: mean and the
worst subject) and at event level (episodes detected, latency, false alerts per hour), the
consensus rule against the best single-modality rule at matched recall, and streaming:
one held-out recording fed in 1-s chunks with arrival jitter must give the batch path's
probabilities and alerts; per-chunk latency p50/p95.
"""

from __future__ import annotations

import math
import resource
import time

import numpy as np
import pandas as pd


def _peak_mem_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024.0


def _alert_key(a) -> tuple:
    d = a if isinstance(a, dict) else a.to_dict()
    return (round(d["onset"], 6), round(d["raised_at"], 6), None if d["end"] is None else round(d["end"], 6),
            tuple(sorted(d["voters"])))


def stream_check(det, rec, chunk_s: float = 1.0, jitter_s: float = 0.5, seed: int = 0,
                 tolerance: float = 1e-6) -> dict:
    """Stream ``rec`` through a fitted detector; compare with the batch path and time each chunk.

    Equal means: the same windows, NaN in the same places, probabilities within
    ``tolerance`` (the models compute in float32 and batch sizes differ) and identical alerts
    (onset, raise time, end, voters). ``stream_p50_ms``/``p95`` time every chunk handed
    over; ``stream_block_*`` only the chunks that completed a block (features, models and
    alerts for ``block_s`` seconds of windows).
    """
    from mmlab.systems.stress import stream_chunks

    batch = det.predict_proba(rec)
    batch_alerts = det.alerts(rec)
    state = det.streamer(rec.subject)
    times, block_times, events = [], [], []
    for t, pieces in stream_chunks(rec, chunk_s, jitter_s=jitter_s, seed=seed):
        t0 = time.perf_counter()
        got = list(state.push(t, pieces))
        dt = (time.perf_counter() - t0) * 1000
        times.append(dt)
        if any(e["event"] == "window" for e in got):
            block_times.append(dt)
        events += got
    events += list(state.finish())
    windows = pd.DataFrame([e for e in events if e["event"] == "window"])
    ended = [e["alert"] for e in events if e["event"] == "alert_ended"]
    cols = ["fused"] + [f"p_{m}" for m in det.voters_]
    same_rows = len(windows) == len(batch)
    max_diff = float("nan")
    if same_rows:
        a = batch[cols].to_numpy(float)
        b = windows[cols].astype(float).to_numpy()
        same_nan = bool(np.array_equal(np.isnan(a), np.isnan(b)))
        max_diff = float(np.nanmax(np.abs(a - b))) if np.isfinite(a).any() else 0.0
        same_rows = same_nan and max_diff <= tolerance
    same_alerts = [_alert_key(a) for a in ended] == [_alert_key(a) for a in batch_alerts]
    lat = np.array(times)
    blk = np.array(block_times) if block_times else np.array([np.nan])
    return {"stream_equals_batch": bool(same_rows and same_alerts), "stream_max_abs_diff": max_diff,
            "stream_same_alerts": bool(same_alerts), "stream_alerts": len(ended),
            "batch_alerts": len(batch_alerts), "stream_chunks": len(lat),
            "stream_p50_ms": float(np.percentile(lat, 50)), "stream_p95_ms": float(np.percentile(lat, 95)),
            "stream_max_ms": float(lat.max()), "stream_blocks": len(block_times),
            "stream_block_p50_ms": float(np.nanpercentile(blk, 50)),
            "stream_block_p95_ms": float(np.nanpercentile(blk, 95))}


def run(data: str | None = None, subjects: int = 10, seed: int = 0, scheduler: str | None = None,
        target_recall: float = 0.9, params: dict | None = None, preset: str | None = None, **_) -> dict:
    """The stress system on ``stress_protocol`` (full-length sessions, ``subjects``, ``seed``)
    or on a dataset folder (``data``: a saved cohort, Stress-Predict or WESAD).

    Settings: a ``preset`` of :data:`~mmlab.systems.stress.PRESETS` with ``params`` (``--set``
    on the CLI) on top, or ``preset="select"``: every preset, chosen between by
    leave-one-subject-out (:func:`~mmlab.systems.stress.select_loso`, nested: the figures
    score the choice). By default a dataset folder is run with ``"select"`` (a new dataset
    has no settings of its own yet) and the synthetic protocol with ``"default"`` (the
    issue's targets are for the default detector).
    The plain reference (:func:`~mmlab.systems.stress.reference_loso`: a random forest on
    whole-session z-scored raw window statistics) is scored on the same windows, and the
    per-subject difference is reported with a bootstrap interval
    (:func:`mmlab.evaluate.paired_difference`).

    The alert rule is chosen nested (:meth:`StressEvaluation.select_rule`): for each
    subject, the k / threshold / duration with the fewest false alerts per hour reaching
    ``target_recall`` on the other subjects' held-out predictions; the best single-modality
    rule is chosen the same way, so both are compared at the same target recall.
    """
    from mmlab import synth
    from mmlab.errors import SchemaError
    from mmlab.evaluate import paired_difference
    from mmlab.systems.stress import (PRESETS, StressDetector, _recording, evaluate_loso, open_recordings,
                                      reference_loso, select_loso)

    wall = time.perf_counter()
    if data is None:
        recs = list(synth.stress_protocol(n_subjects=subjects, seed=seed))
        source = f"stress_protocol (synthetic, {subjects} subjects, seed {seed}, full sessions)"
    else:
        recs = open_recordings(data)
        source = f"{data} ({len(recs)} subjects)"
    preset = preset or ("select" if data is not None else "default")
    if preset not in (*PRESETS, "select"):
        raise SchemaError(f"unknown preset {preset!r}; choose one of {[*PRESETS, 'select']}")
    if preset == "select":
        ev = select_loso({n: {"random_state": seed, **p, **(params or {})} for n, p in PRESETS.items()}, recs,
                         scheduler=scheduler)
        preset = ev.selection["final"]
        params = {"random_state": seed, **PRESETS[preset], **(params or {})}
    else:
        params = {"random_state": seed, **PRESETS[preset], **(params or {})}
        ev = evaluate_loso(StressDetector.from_params(params), recs, scheduler=scheduler)
    det = StressDetector.from_params(params)
    summ = ev.summary()
    consensus = ev.select_rule(target_recall, rule="consensus")
    fused = ev.select_rule(target_recall, rule="fused")
    singles = {m: ev.select_rule(target_recall, rule=m) for m in ev.modalities}
    # matched: every rule was chosen (nested) to reach the same target recall; the best single
    # modality is the one with the fewest false alerts among those that reached it held out
    reaching = {m: r for m, r in singles.items() if r["event_recall"] >= target_recall - 1e-9}
    best_m = (min(reaching, key=lambda m: reaching[m]["false_alerts_per_hour"]) if reaching
              else max(singles, key=lambda m: singles[m]["event_recall"]))
    best = singles[best_m]
    per = ev.per_subject()
    ref = reference_loso(recs, ev.windows, scheduler=scheduler, random_state=seed)
    both = per[["subject", "balanced_accuracy"]].merge(ref[["subject", "balanced_accuracy"]], on="subject",
                                                        suffixes=("", "_reference")).dropna()
    paired = paired_difference(both["balanced_accuracy"], both["balanced_accuracy_reference"], both["subject"],
                               random_state=seed)
    # streaming: a detector fitted without the first subject streams that subject
    rec = _recording(recs[0])
    fitted = StressDetector.from_params(params).fit(recs[1:])
    fitted.alert_params.update({k: consensus["settings"][k] for k in ("k", "on", "off", "min_duration_s")})
    st = stream_check(fitted, rec)
    out = {
        "source": source, "preset": preset, "model": det.model, "baseline": det.baseline, "params": params,
        "selection": ev.selection and {k: ev.selection[k] for k in ("chosen", "final", "metric")},
        "voters": ev.modalities, "target_recall": target_recall,
        "balanced_accuracy": summ["balanced_accuracy"], "macro_f1": summ["macro_f1"], "auroc": summ["auroc"],
        "balanced_accuracy_min_subject": summ["balanced_accuracy_min_subject"],
        "balanced_accuracy_sd": summ["balanced_accuracy_sd"],
        "event_recall": consensus["event_recall"], "latency_median_s": consensus["latency_median_s"],
        "false_alerts_per_hour": consensus["false_alerts_per_hour"],
        "consensus_settings": consensus["settings"],
        "best_single_modality": best_m, "event_recall_best_single": best["event_recall"],
        "false_alerts_per_hour_best_single": best["false_alerts_per_hour"],
        "latency_median_s_best_single": best["latency_median_s"],
        "fused_threshold": {k: fused[k] for k in ("event_recall", "false_alerts_per_hour", "latency_median_s")},
        # event counts per subject under the consensus setting chosen (nested) for that subject
        "per_subject": per[["subject", "balanced_accuracy", "macro_f1", "auroc"]].round(4).merge(
            pd.DataFrame(consensus["per_subject"]), on="subject").to_dict("records"),
        "reference_balanced_accuracy": float(ref["balanced_accuracy"].mean()),
        "reference_balanced_accuracy_min_subject": float(ref["balanced_accuracy"].min()),
        "reference_auroc": float(ref["auroc"].mean()),
        "vs_reference": {k: paired[k] for k in ("mean_difference", "ci", "better", "n", "wilcoxon_p")},
        "reference_per_subject": ref.round(4).to_dict("records"),
        "single_modalities": [{"modality": m, **{k: r[k] for k in ("event_recall", "false_alerts_per_hour",
                                                                   "latency_median_s")}}
                              for m, r in singles.items()],
        **st,
        "wall_s": time.perf_counter() - wall, "peak_mem_mb": _peak_mem_mb(),
    }
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}
