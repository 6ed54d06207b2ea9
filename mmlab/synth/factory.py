"""Scenario ``factory``: machines with bearing faults (chapter 05_data).

Each Recording is one machine (ids ``M01``...) observed for a session (10 min full, 1 min
fast). A ``failure_fraction`` of machines have a developing rolling-bearing defect (outer
or inner race, ``fault_mix``) whose severity grows during the session.

Streams:

* ``vibration`` (device ``"daq"``, the **reference clock**): acceleration in g at
  ``vibration_hz`` (default 4 kHz) from an accelerometer on the bearing housing; a defect
  adds impacts at its characteristic frequency (BPFO or BPFI of a 6205 bearing at the
  machine's shaft speed) ringing the structural resonance, plus a line at the defect
  frequency (see :mod:`mmlab.synth.vibration`);
* ``thermal`` (device ``"camera"``, its own clock): irregular frames, ``(n, 32, 32)``
  float32 °C, about every ``image_every_s`` s with timestamp jitter; a failing bearing is a
  hot spot at the drive or non-drive end.

* ``current`` (device ``"daq"``, only with the ``current_hz`` knob): motor current in A, the
  50 Hz line with sidebands at ± the defect and shaft frequencies (chapter 53).

Optional faults (off by default, so default cohorts are unchanged): ``fault_mix`` may add
``"ball"`` (rolling-element defects at twice the ball-spin frequency) and
``overheat_fraction`` makes some defect-free machines' motors overheat (a hot motor section
in the thermal frames, more current, heat in the notes, nothing in the vibration; label
``"failure"``, ``truth["overheating"]``).

Annotations: ``kind="note"`` (label ``"operator"``: operator notes, a couple per session;
failing machines' notes mention noise or heat with the text cue probability) and one
``kind="label"`` per machine (``"failure"`` or ``"healthy"``, covering the session).
Some healthy machines are out of balance (a strong 1x shaft line) to make the problem
less trivial. Participants: ``participant_id``, ``sex`` (not applicable: NaN), ``age``
(machine age in years), ``machine_type``, ``rpm``, ``failure``. Ground truth in
``Recording.meta["truth"]``: fault type, defect frequencies, severity at start and end,
faulty bearing, resonance.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mmlab.recording import Recording, Stream
from mmlab.synth import _base as B
from mmlab.synth.images import column_pattern, draw_scene, thermal_frame
from mmlab.synth.text import cue_probability, draw_style, say
from mmlab.synth.vibration import vibration

NAME = "factory"
PREFIX = "M"
LABEL_NAMES = ["healthy", "failure"]
MACHINES = {"pump": (1450, 2950), "fan": (960, 1480), "compressor": (1470, 2980), "motor": (1460, 2960)}
VANES = {"pump": 6, "fan": 8, "compressor": 4, "motor": 2}

KNOBS: dict[str, B.Knob] = {
    "failure_fraction": B.Knob(0.3, "share of machines with a bearing defect (exact up to "
                                    "rounding)", kind="prob"),
    "fault_mix": B.Knob({"outer_race": 0.6, "inner_race": 0.4}, "relative frequency of "
                        "outer- and inner-race defects among failing machines (a \"ball\" "
                        "key adds rolling-element defects)", kind="dict",
                        hi=1000.0, keys=("outer_race", "inner_race", "ball")),
    "overheat_fraction": B.Knob(0.0, "share of the machines without a bearing defect whose motor "
                                     "overheats (a thermal and current fault, quiet in vibration)",
                                kind="prob"),
    "onset_fraction": B.Knob(None, "run to failure: each failing machine's fault starts at a uniform "
                                   "random point in the first onset_fraction of the session (healthy "
                                   "before); None: present from the start", optional=True, lo=0.0, hi=1.0),
    "current_hz": B.Knob(None, "sampling rate (Hz) of a motor-current sensor (stream \"current\"); "
                               "None: no such sensor", optional=True, lo=200.0, hi=20000.0),
    "imbalance_fraction": B.Knob(0.2, "share of healthy machines with rotor imbalance (a "
                                      "distractor)", kind="prob"),
    "minutes": B.Knob(None, "session length in minutes (None: 10 full, 1 fast)", optional=True, lo=0.05,
                       hi=1440.0),
    "vibration_hz": B.Knob(4000, "vibration sampling rate (Hz)", kind="int", lo=1000, hi=51200),
    "image_every_s": B.Knob(None, "mean seconds between thermal frames (None: 20 full, 5 fast)",
                            optional=True, lo=0.1, hi=3600.0),
    "image_size": B.Knob(32, "thermal frame height and width (pixels)", kind="int", lo=8, hi=256),
    **B.common_knobs(missing={"thermal": 0.0, "vibration": 0.0},
                     informativeness={"vibration": 1.0, "thermal": 1.0, "text": 1.0},
                     dropout_per_hour=1.0, dropout_mean_s=3.0),
}


def finalize_knobs(knobs: dict, fast: bool) -> dict:
    """Fill the mode-dependent defaults: session length and frame interval."""
    return {**knobs, "minutes": knobs["minutes"] or (1.0 if fast else 10.0),
            "image_every_s": knobs["image_every_s"] or (5.0 if fast else 20.0)}


def plan(n: int, seed: int, knobs: dict, fast: bool) -> list[dict]:
    """Exact number of failing machines; fault types by ``fault_mix``."""
    rng = B.rng_for(seed, NAME, 0, "plan")
    k = int(round(knobs["failure_fraction"] * n))
    failing = rng.permutation(np.arange(n) < k)
    mix = knobs["fault_mix"]
    kinds = ["outer_race", "inner_race"] + (["ball"] if mix.get("ball", 0.0) > 0 else [])
    counts = B.exact_counts([mix[f] for f in kinds], k) if k else np.zeros(len(kinds), int)
    faults = list(rng.permutation(np.repeat(kinds, counts)))
    healthy = np.flatnonzero(~failing)
    imb = set(rng.permutation(healthy)[: int(round(knobs["imbalance_fraction"] * len(healthy)))].tolist())
    hot: set = set()
    if knobs["overheat_fraction"] > 0:  # its own generator: the default plan is unchanged
        orng = B.rng_for(seed, NAME, 0, "overheat")
        hot = set(orng.permutation(healthy)[: int(round(knobs["overheat_fraction"] * len(healthy)))].tolist())
    out = []
    for i in range(n):
        out.append({"fault": str(faults.pop()) if failing[i] else None, "imbalance": i in imb,
                    "overheat": i in hot})
    return out


def make_subject(i: int, sid: str, seed: int, knobs: dict, fast: bool,
                 plan_i: dict) -> tuple[Recording, dict]:
    R = {p: B.rng_for(seed, NAME, i + 1, p) for p in
         ("traits", "phys", "noise", "clock", "dropout", "missing", "image", "text")}
    tr, rng = R["traits"], R["phys"]
    sv, noise, inf = knobs["subject_variability"], knobs["noise"], knobs["informativeness"]
    fault = plan_i["fault"]
    T = knobs["minutes"] * 60.0
    fs = float(knobs["vibration_hz"])

    mtype = list(MACHINES)[int(tr.integers(0, len(MACHINES)))]
    rpm = float(MACHINES[mtype][int(tr.integers(0, 2))] * (1 + 0.01 * tr.standard_normal()))
    age = int(np.clip(round((7.0 if fault else 5.0) + 3.0 * sv * tr.standard_normal()), 0, 30))
    resonance = float(np.clip(1400.0 * math.exp(0.12 * sv * tr.standard_normal()), 900.0, 0.42 * fs))
    sev0 = float(tr.uniform(0.3, 0.8)) if fault else 0.0
    sev1 = sev0 * float(tr.uniform(1.2, 1.8))
    bearing = int(tr.integers(0, 2))  # 0 drive end, 1 non-drive end
    imbalance = float(tr.uniform(3.0, 6.0)) if plan_i["imbalance"] else float(tr.uniform(0.7, 1.3))
    load = float(tr.uniform(0.7, 1.0))
    overheat = bool(plan_i.get("overheat"))
    heat0 = float(tr.uniform(6.0, 12.0)) if overheat else 0.0  # motor excess (°C), grows like a defect
    heat1 = heat0 * float(tr.uniform(1.2, 1.8)) if overheat else 0.0

    ck = R["clock"]
    clocks = {"daq": B.REFERENCE, "camera": B.draw_clock(ck, knobs)}
    mr = R["missing"]
    missing = [m for m in ("vibration", "thermal") if mr.uniform() < knobs["missing"][m]]
    streams: list[Stream] = []
    dropouts: list[dict] = []

    g = B.grid(clocks["daq"], 0.0, T, fs)
    onset = 0.0  # run to failure: the fault starts at `onset` s (own generator: defaults unchanged)
    if knobs["onset_fraction"] is not None and (fault or overheat):
        onset = float(B.rng_for(seed, NAME, i + 1, "onset").uniform(0.0, knobs["onset_fraction"])) * T

    def grow(t, a, b):  # a fault's size over time: 0 before onset, a -> b after
        if onset <= 0.0:
            return np.interp(t, [0.0, T], [a, b])
        return np.where(t < onset, 0.0, np.interp(t, [onset, T], [0.3 * a, b]))

    sev_t = (np.linspace(sev0, sev1, g.n) if onset <= 0.0 else grow(g.ref_start + np.arange(g.n) * g.ref_step, sev0, sev1)) \
        * inf["vibration"] if fault else 0.0
    x, vib = vibration(rng, 1.0 / g.ref_step, g.n, rpm / 60.0, fault, sev_t, resonance,
                       imbalance, VANES[mtype], noise=noise, t0=g.ref_start)
    if "vibration" not in missing:
        s = B.regular_stream("vibration", x, "vibration", g, "daq", units="g",
                             meta={"sensor": "accelerometer on the bearing housing"})
        intervals = B.plan_dropouts(R["dropout"], 0.0, T, knobs["dropout_per_hour"], knobs["dropout_mean_s"])
        (s,), dropouts = B.apply_dropouts([s], intervals, clocks["daq"])
        streams.append(s)

    if "thermal" not in missing:
        ir = R["image"]
        every = knobs["image_every_s"]
        t_ref = np.arange(ir.uniform(0, every), T, every)
        t_ref = np.sort(t_ref + ir.uniform(-0.2, 0.2, len(t_ref)) * every)
        scene = draw_scene(ir, knobs["image_size"])
        cols = column_pattern(ir, scene)
        sev_f = grow(t_ref, sev0, sev1) if fault else np.zeros(len(t_ref))
        heat_f = (grow(t_ref, heat0, heat1) * inf["thermal"] if overheat
                  else np.zeros(len(t_ref)))
        frames = np.stack([thermal_frame(ir, scene, hotspot_c=12.0 * inf["thermal"] * sv_k, bearing=bearing,
                                         load=load, noise=noise, column_pattern=cols, motor_extra_c=h_k)
                           for sv_k, h_k in zip(sev_f, heat_f)]) if len(t_ref) else np.zeros((0, scene.size, scene.size), np.float32)
        t_dev = B.jitter_times(ir, clocks["camera"].to_device(t_ref), clocks["camera"].jitter_s)
        if len(t_dev):
            streams.append(Stream("thermal", frames, "image", times=t_dev, units="degC", device="camera",
                                  channels=["temperature"], meta={"shape": "frames x height x width",
                                                                  "scene": {"bearings_px": scene.bearings}}))

    if knobs["current_hz"]:  # motor current: its own generator, so other streams are unchanged
        tc = np.linspace(0.0, T, 64)
        streams.append(_motor_current(B.rng_for(seed, NAME, i + 1, "current"), knobs, T, rpm, load, vib,
                                      grow(tc, sev0, sev1) if fault else None,
                                      grow(tc, heat0, heat1) if overheat else None, imbalance, noise))

    xr = R["text"]
    style = draw_style(xr, sv, terse=0.5)
    cue = cue_probability(inf["text"])
    rows: list[dict] = []
    n_notes = 1 if fast else 3
    for tn in np.sort(xr.uniform(0.1, 0.95, n_notes)) * T:
        rows.append({"onset": round(float(tn), 3), "duration": 0.0, "kind": "note", "label": "operator",
                     "text": say(xr, "operator_note",
                                 "healthy" if tn < onset else
                                 "failing" if fault else ("overheating" if overheat else "healthy"), style,
                                 cue if (fault or overheat) and tn >= onset else 0.5 * cue)})
    rows.append({"onset": 0.0, "duration": T, "kind": "label",
                 "label": "failure" if (fault or overheat) else "healthy"})
    if "thermal" in missing:
        clocks.pop("camera")
    meta: dict[str, Any] = {
        "machine_type": mtype, "age": age, "reference_device": "daq",
        "clock_truth": {d: c.truth() for d, c in clocks.items()},
        "dropouts": dropouts, "missing": missing,
        "truth": {**vib, "severity_start": round(sev0, 6), "severity_end": round(sev1, 6),
                  "faulty_bearing": ("drive_end" if bearing == 0 else "non_drive_end") if fault else None,
                  "imbalance": round(imbalance, 6), "load": round(load, 6)},
    }
    if knobs["onset_fraction"] is not None and (fault or overheat):
        meta["truth"]["onset_s"] = round(onset, 6)
    if overheat:
        meta["truth"]["overheating"] = {"motor_excess_start_c": round(heat0, 6), "motor_excess_end_c": round(heat1, 6)}
    rec = Recording(sid, streams=streams, annotations=B.annotations(rows), meta=meta,
                    t0=B.EPOCH + 600.0 * i)
    return rec, {"participant_id": sid, "sex": np.nan, "age": age, "machine_type": mtype,
                 "rpm": int(round(rpm)), "failure": fault is not None or overheat}


def _motor_current(rng: np.random.Generator, knobs: dict, T: float, rpm: float, load: float, vib: dict,
                   severity: np.ndarray | None, heat: np.ndarray | None, imbalance: float, noise: float) -> Stream:
    """Motor current (A) on the DAQ clock: the 50 Hz supply line, its amplitude set by the
    load (an overheating motor draws more), with sidebands at 50 ± the defect frequency
    (a bearing defect's torque ripple) and ± the shaft frequency (imbalance), plus noise."""
    fs = float(knobs["current_hz"])
    n = int(round(T * fs))
    t = np.arange(n) / fs
    amp = 10.0 * load * (1.0 + (0.025 * np.interp(t, np.linspace(0.0, T, len(heat)), heat)
                                if heat is not None else 0.0))
    x = amp * np.sin(2 * np.pi * 50.0 * t + rng.uniform(0, 2 * np.pi))
    fr = rpm / 60.0
    x = x + 0.01 * imbalance * amp * np.cos(2 * np.pi * fr * t) * np.sin(2 * np.pi * 50.0 * t)
    if severity is not None and vib.get("fault_hz"):
        sev = np.interp(t, np.linspace(0.0, T, len(severity)), severity)
        x = x + 0.03 * sev * amp * np.cos(2 * np.pi * vib["fault_hz"] * t) * np.sin(2 * np.pi * 50.0 * t)
    x = x + noise * 0.05 * rng.standard_normal(n)
    g = B.grid(B.REFERENCE, 0.0, T, fs)
    return B.regular_stream("current", x[: g.n] if len(x) >= g.n else np.pad(x, (0, g.n - len(x))), "current", g,
                            "daq", units="A", meta={"sensor": "current clamp on one motor phase"})
