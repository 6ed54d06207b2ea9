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


def stream_check(det, rec, chunk_s: float = 1.0, jitter_s: float = 0.5, seed: int = 0) -> dict:
    """Stream ``rec`` through a fitted detector; compare with the batch path and time each chunk."""
    from mmlab.systems.stress import stream_chunks

    batch = det.predict_proba(rec)
    batch_alerts = det.alerts(rec)
    times, events = [], []
    gen = det.stream(_timed(stream_chunks(rec, chunk_s, jitter_s=jitter_s, seed=seed), times))
    events = list(gen)
    windows = pd.DataFrame([e for e in events if e["event"] == "window"])
    ended = [e["alert"] for e in events if e["event"] == "alert_ended"]
    cols = ["fused"] + [f"p_{m}" for m in det.modalities_]
    same_rows = len(windows) == len(batch)
    max_diff = float("nan")
    if same_rows:
        a = batch[cols].to_numpy(float)
        b = windows[cols].astype(float).to_numpy()
        same_nan = bool(np.array_equal(np.isnan(a), np.isnan(b)))
        max_diff = float(np.nanmax(np.abs(a - b))) if np.isfinite(a).any() else 0.0
        same_rows = same_nan and max_diff <= 1e-9
    same_alerts = [_alert_key(a) for a in ended] == [_alert_key(a) for a in batch_alerts]
    lat = np.array(times) * 1000
    return {"stream_equals_batch": bool(same_rows and same_alerts), "stream_max_abs_diff": max_diff,
            "stream_alerts": len(ended), "batch_alerts": len(batch_alerts), "stream_chunks": len(lat),
            "stream_p50_ms": float(np.percentile(lat, 50)), "stream_p95_ms": float(np.percentile(lat, 95)),
            "stream_max_ms": float(lat.max())}


def _timed(chunks, times: list):
    """Pass chunks through, recording how long the consumer took for each (the time from
    handing a chunk over to being asked for the next one)."""
    t = None
    for c in chunks:
        if t is not None:
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        yield c
    if t is not None:
        times.append(time.perf_counter() - t)


def run(data: str | None = None, subjects: int = 10, seed: int = 0, scheduler: str | None = None,
        target_recall: float = 0.9, **_) -> dict:
    """The stress system on ``stress_protocol`` (full-length sessions, ``subjects``, ``seed``,
    default knobs) or on a dataset folder (``data``: a saved cohort, Stress-Predict or WESAD).

    The alert rule is chosen nested (:meth:`StressEvaluation.select_rule`): for each
    subject, the k / threshold / duration with the fewest false alerts per hour reaching
    ``target_recall`` on the other subjects' held-out predictions; the best single-modality
    rule is chosen the same way, so both are compared at the same target recall.
    """
    from mmlab import synth
    from mmlab.systems.stress import StressDetector, _recording, evaluate_loso, open_recordings

    wall = time.perf_counter()
    if data is None:
        recs = list(synth.stress_protocol(n_subjects=subjects, seed=seed))
        source = f"stress_protocol (synthetic, {subjects} subjects, seed {seed}, full sessions)"
    else:
        recs = open_recordings(data)
        source = f"{data} ({len(recs)} subjects)"
    det = StressDetector(random_state=seed)
    ev = evaluate_loso(det, recs, scheduler=scheduler)
    summ = ev.summary()
    consensus = ev.select_rule(target_recall, rule="consensus")
    fused = ev.select_rule(target_recall, rule="fused")
    singles = {m: ev.select_rule(target_recall, rule=m) for m in ev.modalities}
    reaching = {m: r for m, r in singles.items() if r["event_recall"] >= consensus["event_recall"] - 1e-9}
    best_m = (min(reaching, key=lambda m: reaching[m]["false_alerts_per_hour"]) if reaching
              else max(singles, key=lambda m: singles[m]["event_recall"]))
    best = singles[best_m]
    per = ev.per_subject()
    # streaming: a detector fitted without the first subject streams that subject
    rec = _recording(recs[0])
    fitted = StressDetector(random_state=seed).fit(recs[1:])
    fitted.alert_params.update({k: consensus["settings"][k] for k in ("k", "on", "off", "min_duration_s")})
    st = stream_check(fitted, rec)
    out = {
        "source": source, "model": det.model, "modalities": ev.modalities,
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
        "per_subject": per[["subject", "balanced_accuracy", "macro_f1", "auroc", "n_episodes", "n_detected",
                            "n_false_alerts"]].round(4).to_dict("records"),
        "single_modalities": [{"modality": m, **{k: r[k] for k in ("event_recall", "false_alerts_per_hour",
                                                                   "latency_median_s")}}
                              for m, r in singles.items()],
        **st,
        "wall_s": time.perf_counter() - wall, "peak_mem_mb": _peak_mem_mb(),
    }
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}
