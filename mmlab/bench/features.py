"""``mmlab bench features``: our windowed features against a per-window neurokit2 reference."""

from __future__ import annotations

def run(seed: int = 0, window_s: float = 60.0, step_s: float = 0.25,
        reference_windows: int = 120, repeats: int = 3, **_) -> dict:
    """Fast windowed features against the per-window neurokit2 reference (chapter 13_eda).

    One full-length synthetic ``stress_protocol`` subject (about an hour: chest ECG, EDA
    and respiration at 700 Hz, spoken self-reports at 16 kHz) is cut into WESAD windows
    (60 s every 0.25 s). ``ours``: :func:`mmlab.features.window_features` on every window.
    ``reference``: :func:`mmlab.features.reference_features` (neurokit2 and Praat run on
    each window's samples plus context) on ``reference_windows`` windows spread evenly
    over the hour, its time scaled to all windows (it would take tens of minutes). Few of
    those windows hold speech, so some more that do are compared (not timed) as well.

    Timing: one thread (threadpoolctl; set ``OMP_NUM_THREADS=1`` too), after a warm-up
    run that pays the libraries' import and first-call costs; ours is the median of
    ``repeats`` runs. Speedup and real-time
    factor use CPU time of this process (``time.process_time``), which a busy shared
    machine inflates far less than wall-clock time; wall-clock figures are reported too.
    ``max_rel_dev``: the largest relative deviation of any feature in any compared window
    where both are defined. Targets: speedup >= 50, realtime_x >= 1000, max_rel_dev <= 0.01.
    """
    import os
    import time

    import numpy as np
    import pandas as pd
    from threadpoolctl import threadpool_limits  # ships with scikit-learn

    from mmlab import features as F
    from mmlab import synth

    def timed(fn):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        return out, time.perf_counter() - w, time.process_time() - c

    with threadpool_limits(limits=1):
        rec = synth.make_cohort("stress_protocol", n_subjects=1, seed=seed)[0]
        F.window_features(rec, window_s, 10.0, clocks="truth", t_end=300.0)  # warm-up
        F.reference_features(rec, [0.0], [window_s], clocks="truth")
        runs = [timed(lambda: F.window_features(rec, window_s, step_s, clocks="truth"))
                for _ in range(repeats)]
        ours = runs[0][0]
        ours_wall = float(np.median([r[1] for r in runs]))
        ours_cpu = float(np.median([r[2] for r in runs]))
        pick = np.unique(np.linspace(0, len(ours) - 1, min(reference_windows, len(ours))).round().astype(int))
        sub = ours.iloc[pick]
        ref, ref_wall, ref_cpu = timed(
            lambda: F.reference_features(rec, sub["start"].to_numpy(), sub["end"].to_numpy(), clocks="truth"))
        # few evenly spaced windows hold speech: compare (not time) some that do
        talk = np.zeros(len(ours), dtype=bool)
        for s in rec.by_modality("audio"):
            talk |= (ours["end"].to_numpy() > s.start) & (ours["start"].to_numpy() < s.end)
        extra = ours.iloc[np.setdiff1d(np.flatnonzero(talk)[::25], pick)]
        ref_extra = F.reference_features(rec, extra["start"].to_numpy(), extra["end"].to_numpy(),
                                         clocks="truth")
    scale = len(ours) / len(sub)
    dev = F.compare_tables(pd.concat([sub, extra]), pd.concat([ref, ref_extra]))
    duration = float(ours["end"].iloc[-1] - ours["start"].iloc[0])
    ref_cpu_all, ref_wall_all = ref_cpu * scale, ref_wall * scale
    return {
        "scenario": "stress_protocol (full, 1 subject)", "seed": seed,
        "duration_s": round(duration, 1), "window_s": window_s, "step_s": step_s,
        "windows": int(len(ours)), "features": len(F.feature_columns(ours)),
        "ours_s": round(ours_cpu, 3), "reference_s": round(ref_cpu_all, 1),
        "speedup": round(ref_cpu_all / ours_cpu, 1),
        "realtime_x": round(duration / ours_cpu, 1),
        "max_rel_dev": float(dev["max_rel_dev"].max()),
        "reference_subset": f"{len(sub)} of {len(ours)} windows timed ({ref_cpu:.1f} s CPU), "
                            f"scaled x{scale:.1f}; {len(extra)} more with speech compared",
        "timing": "CPU seconds of one thread (process_time); wall-clock below",
        "ours_wall_s": round(ours_wall, 3), "reference_wall_s": round(ref_wall_all, 1),
        "rel_dev_by_feature": {r.feature: float(r.max_rel_dev) for r in dev.itertuples()},
        "windows_compared_by_feature": {r.feature: int(r.n) for r in dev.itertuples()},
        "threads": 1, "load_average_1min": round(os.getloadavg()[0], 2),
    }
