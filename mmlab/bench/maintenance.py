"""``mmlab bench maintenance``: the predictive-maintenance system (chapter 53_predictive_maintenance).

On a synthetic fleet (``factory`` with :data:`mmlab.systems.maintenance.FLEET_KNOBS`: ball
defects, motor overheating, a motor-current sensor), split by machine: fault macro-F1 and
failure-horizon AUROC per modality and fused, the median lead time before failure at <= 1
false alarm per healthy machine-month, drift detection and false-flag rates per modality,
the new-sensor experiment (frozen old parts: old outputs unchanged, gain), training and
inference time. ``strict_defaults`` repeats the fused-vs-vibration comparison on plain
``factory`` defaults (outer/inner race only), where vibration alone already separates the
classes.
"""

from __future__ import annotations

import math
import time


def _clean(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if hasattr(v, "item") and not isinstance(v, (list, dict, str)):
        return _clean(v.item())
    return v


def run(machines: int = 60, seed: int = 0, fast: bool = True, test_fraction: float = 0.3,
        strict_defaults: bool = True, drift_batches: int = 12, subjects: int | None = None, **_) -> dict:
    """Figures of the maintenance monitor on a fleet of ``machines`` (``subjects`` is an alias)."""
    from mmlab.synth import factory
    from mmlab.systems._maintenance_eval import drift_rates, evaluate, new_sensor_experiment, split_windows
    from mmlab.systems.maintenance import FLEET_KNOBS, make_fleet

    wall = time.perf_counter()
    n = int(subjects or machines)
    cohort = make_fleet(n, seed=seed, fast=fast)
    split = split_windows(cohort, test_fraction=test_fraction, seed=seed, extra=("current",))
    figs, mon = evaluate(split, seed=seed)
    out = {"source": f"factory (synthetic, {n} machines, seed {seed}, {'fast' if fast else 'full'} sessions, "
                     f"knobs {FLEET_KNOBS})", "split": f"machine-wise, test fraction {test_fraction}", **figs}
    out.update(drift_rates(mon, split, n_batches=drift_batches, seed=seed))
    out.update(new_sensor_experiment(mon, split, "current"))
    if strict_defaults:
        plain = factory(n, seed=seed, fast=fast)
        sp = split_windows(plain, test_fraction=test_fraction, seed=seed)
        f2, _ = evaluate(sp, seed=seed, keyword_baseline=False)
        out["strict_defaults"] = {"unimodal_macro_f1": f2["unimodal_macro_f1"],
                                  "fused_macro_f1": f2["fused_macro_f1"],
                                  "fused_gain_over_best": f2["fused_gain_over_best"],
                                  "horizon_auroc_fused": f2["horizon_auroc"]["fused"]}
    out["wall_s"] = time.perf_counter() - wall
    return {k: _clean(v) for k, v in out.items()}
