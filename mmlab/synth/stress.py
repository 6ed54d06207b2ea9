"""Scenario ``stress_protocol``: WESAD-like lab sessions (chapter 05_data).

Each subject follows one of WESAD's two protocol orders, with transitions between the
conditions (walking to another room, then a questionnaire; annotated ``"transient"`` like
WESAD's label 0, as :func:`mmlab.io.read_wesad` does)::

    A: baseline, amusement, meditation, stress, meditation
    B: baseline, stress, meditation, amusement, meditation

Full sessions last about an hour (20 min baseline, 10 min stress, 6.5 min amusement,
7 min per meditation, 2.5 min transitions); ``fast=True`` makes them about 5 minutes and
speeds up the physiological time constants to match.

Devices and streams (``device``: streams, rate):

* ``chest`` (RespiBAN-like, the **reference clock**): ``chest_ecg`` (mV), ``chest_eda``
  (µS), ``chest_resp`` (% stretch), ``chest_acc`` (3 channels x/y/z, g), all 700 Hz;
* ``wrist`` (Empatica E4 rates): ``wrist_bvp`` 64 Hz (a.u.), ``wrist_eda`` 4 Hz (µS),
  ``wrist_acc`` 32 Hz (3 channels, g, 1/64 g steps), ``wrist_temp`` 4 Hz (°C, 0.02 °C
  steps), and ``wrist_ibi`` (irregular: inter-beat intervals in s at detected beats, like
  E4's IBI.csv; beats during movement are missed);
* ``mic``: one short spoken self-report per condition (``voice_per_phase`` knob), each its
  own 16 kHz float32 audio stream ``voice_01``, ``voice_02``... whose ``start`` is the clip
  start on the mic's clock; ``meta`` has the condition and the planted F0/jitter/shimmer.

Annotations (reference clock): ``kind="phase"`` (label: condition or ``"transient"``;
``Cohort.meta["label_names"]`` lists the four conditions), ``kind="event"``
(label ``"sync_tap"``: the participant double-taps the chest sensor with the wrist hand
a few seconds after the start, visible in both ``chest_acc`` and ``wrist_acc``), and
``kind="utterance"`` (label: speaker ``"participant"``, text: transcript, ``stream``: the
audio stream, onset/duration: the speech inside that clip).

What the state changes (per unit of ``informativeness``, times the subject's
reactivity): heart rate up in stress (+13 bpm), HRV down (RSA and beat-to-beat variability
x0.55), more SCRs (+4/min) on a higher tonic EDA (x1.4), faster shallower breathing
(+4/min), cooler wrist (-0.5 °C, slowly), shorter pulse transit time and smaller BVP
pulses, higher voice F0 (+2 semitones), more jitter (x1.5) and shimmer (x1.35), louder
and faster speech. Amusement brings laughter (bursts in respiration and chest ACC),
meditation slow deep breathing (-5/min), lower HR and higher HRV. Subjects differ in
baselines more than conditions shift them, and in how strongly they react (log-normal
reactivity, per modality), so leave-one-subject-out is harder than a random split.

Ground truth in ``Recording.meta``: ``clock_truth`` (per device), ``dropouts``,
``missing`` (devices left out), ``reference_device`` and ``truth``: ``r_peaks``
(R-peak times, reference s), ``scr_onsets``, ``breaths`` (inhale onsets), ``laughs``,
``sync_taps`` and the subject's traits (``hr_rest_bpm``, ``reactivity``...).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from mmlab.recording import Recording, Stream
from mmlab.synth import _base as B
from mmlab.synth import physio as P
from mmlab.synth.text import cue_probability, draw_style, say
from mmlab.synth.voice import draw_speaker, modulate, synthesize

NAME = "stress_protocol"
PREFIX = "S"
PHASES = ("baseline", "stress", "amusement", "meditation")
LABEL_NAMES = list(PHASES)
ORDERS = {
    "A": ("baseline", "amusement", "meditation", "stress", "meditation"),
    "B": ("baseline", "stress", "meditation", "amusement", "meditation"),
}
FULL_MINUTES = {"baseline": 20.0, "stress": 10.0, "amusement": 6.5, "meditation": 7.0}
FAST_MINUTES = {"baseline": 1.0, "stress": 50 / 60, "amusement": 40 / 60, "meditation": 40 / 60}

CHEST_HZ, BVP_HZ, WRIST_EDA_HZ, WRIST_ACC_HZ, TEMP_HZ, AUDIO_HZ = 700, 64, 4, 32, 4, 16000
SLOW_HZ = 50.0

#: State effects at reactivity 1 and informativeness 1 ("transient": between conditions).
EFFECTS: dict[str, dict[str, float]] = {
    #             bpm   factor  /min   log    /min  frac    degC   s      frac   st    x     x      dB   x     x     level
    "baseline":   dict(hr=0, hrv=1.0, scr=0.0, tonic=0.0, resp=0, depth=0.0, temp=0.0, ptt=0.0,
                       bvp=0.0, f0=0.0, jitter=1.0, shimmer=1.0, loud=0, rate=1.0, inton=1.0, move=0.15),
    "stress":     dict(hr=13, hrv=0.55, scr=4.0, tonic=0.35, resp=4, depth=-0.15, temp=-0.5,
                       ptt=-0.025, bvp=-0.3, f0=2.0, jitter=1.5, shimmer=1.35, loud=4, rate=1.15,
                       inton=0.8, move=0.5),
    "amusement":  dict(hr=5, hrv=0.9, scr=1.5, tonic=0.1, resp=2, depth=0.1, temp=-0.1, ptt=-0.01,
                       bvp=-0.1, f0=1.5, jitter=1.1, shimmer=1.1, loud=3, rate=1.1, inton=1.6, move=0.7),
    "meditation": dict(hr=-4, hrv=1.35, scr=-1.0, tonic=-0.12, resp=-5, depth=0.35, temp=0.25,
                       ptt=0.01, bvp=0.1, f0=-1.0, jitter=0.95, shimmer=0.95, loud=-4, rate=0.85,
                       inton=0.7, move=0.03),
}
EFFECTS["transient"] = dict(EFFECTS["baseline"], move=0.4)
_ROWS = ("baseline", "stress", "amusement", "meditation", "transient")
#: which informativeness key scales which effect
_GROUP = {"hr": "cardiac", "hrv": "cardiac", "ptt": "cardiac", "bvp": "cardiac", "scr": "eda",
          "tonic": "eda", "resp": "resp", "depth": "resp", "temp": "temp", "move": "acc",
          "f0": "voice", "jitter": "voice", "shimmer": "voice", "loud": "voice", "rate": "voice",
          "inton": "voice"}
_MULTIPLICATIVE = {"hrv", "jitter", "shimmer", "rate", "inton"}
#: time constants (s) of the physiological responses in full mode (fast mode: x0.25)
TAUS = {"hr": 15.0, "hrv": 20.0, "resp": 20.0, "tonic": 60.0, "temp": 150.0, "ptt": 20.0, "move": 3.0}

KNOBS: dict[str, B.Knob] = {
    "phase_minutes": B.Knob(None, "minutes per condition, e.g. {'stress': 15} (merged into "
                            "the defaults 20/10/6.5/7 full, 1/0.83/0.67/0.67 fast); this is "
                            "the label balance", kind="durations", optional=True, keys=PHASES, hi=240.0),
    "transition_minutes": B.Knob(None, "minutes of each transition (None: 2.5 full, 0.25 "
                                 "fast)", optional=True, hi=60.0),
    "voice_per_phase": B.Knob(1, "spoken self-reports per condition", kind="int", hi=10),
    "start_stagger_s": B.Knob(20.0, "the wrist device starts up to this many seconds "
                              "before the chest device and stops up to this many after", hi=600.0),
    **B.common_knobs(missing={"chest": 0.0, "wrist": 0.0, "mic": 0.0},
                     informativeness={k: 1.0 for k in ("cardiac", "eda", "resp", "temp",
                                                        "acc", "voice", "text")}),
}


def finalize_knobs(knobs: dict, fast: bool) -> dict:
    """Fill the mode-dependent defaults: phase and transition lengths."""
    base = FAST_MINUTES if fast else FULL_MINUTES
    given = knobs["phase_minutes"] or {}
    return {**knobs, "phase_minutes": {p: float(given.get(p, base[p])) for p in PHASES},
            "transition_minutes": knobs["transition_minutes"]
            if knobs["transition_minutes"] is not None else (0.25 if fast else 2.5)}


def _timeline(order: tuple[str, ...], minutes: dict[str, float], trans_s: float, pre_s: float):
    segs, t = [("transient", 0.0, pre_s)], pre_s
    for k, phase in enumerate(order):
        d = minutes[phase] * 60.0
        segs.append((phase, t, t + d))
        t += d
        segs.append(("transient", t, t + (trans_s if k < len(order) - 1 else pre_s)))
        t = segs[-1][2]
    return segs, t


def _seg_index(ts: np.ndarray, segs) -> np.ndarray:
    """Row of :data:`_ROWS` for each slow-grid time."""
    out = np.full(len(ts), _ROWS.index("transient"))
    for name, a, b in segs:
        out[(ts >= a) & (ts < b)] = _ROWS.index(name)
    return out


def _jolt(t: np.ndarray, taps, width: float, amp: float) -> np.ndarray:
    """Derivative-of-Gaussian jolts (peak ``amp``) at the tap times."""
    out = np.zeros(len(t))
    for t0 in taps:
        z = (t - t0) / width
        out += amp * -z * np.exp(0.5 - 0.5 * z * z)
    return out


def _near(t_dev: np.ndarray, lo: float, hi: float) -> slice:
    i, j = np.searchsorted(t_dev, [lo, hi])
    return slice(int(i), int(j))


def make_subject(i: int, sid: str, seed: int, knobs: dict, fast: bool,
                 plan_i: dict) -> tuple[Recording, dict]:
    """One subject's session (see the module docstring)."""
    R = {p: B.rng_for(seed, NAME, i, p) for p in
         ("traits", "phys", "noise", "clock", "dropout", "missing", "voice", "text")}
    rng, nrng = R["phys"], R["noise"]
    sv, noise, inf = knobs["subject_variability"], knobs["noise"], knobs["informativeness"]
    tau_x = 0.25 if fast else 1.0

    # ---------------------------------------------------------------- traits
    tr = R["traits"]
    sex = "F" if tr.uniform() < 0.4 else "M"
    age = int(np.clip(round(27 + 3 * tr.standard_normal()), 21, 40))
    protocol = "A" if tr.uniform() < 0.5 else "B"
    react = math.exp(sv * tr.normal(0.0, 0.45))
    r_mod = {g: react * math.exp(sv * tr.normal(0.0, 0.3)) for g in
             ("cardiac", "eda", "resp", "temp", "acc", "voice")}
    hr0 = float(np.clip(70 + (3 if sex == "F" else 0) + sv * 8 * tr.standard_normal(), 52, 92))
    rsa0 = 4.0 * math.exp(sv * tr.normal(0, 0.35))
    beat_sd = 0.012 * math.exp(sv * tr.normal(0, 0.3))
    resp0 = float(np.clip(15 + sv * 2 * tr.standard_normal(), 10, 20))
    depth0 = 3.0 * math.exp(sv * tr.normal(0, 0.3))
    eda0 = 4.0 * math.exp(sv * tr.normal(0, 0.6))
    wrist_gain = 0.25 * math.exp(sv * tr.normal(0, 0.5))
    scr0 = 2.0 * math.exp(sv * tr.normal(0, 0.4))
    scr_amp = 0.06 * eda0 * math.exp(sv * tr.normal(0, 0.4))
    scr_decay = float(tr.uniform(2.5, 4.0))
    temp0 = 33.0 + sv * 0.8 * tr.standard_normal()
    ptt0 = 0.24 + sv * 0.02 * tr.standard_normal()
    bvp0 = 60.0 * math.exp(sv * tr.normal(0, 0.4))
    shape = P.EcgShape(r_mv=1.2 * math.exp(sv * tr.normal(0, 0.25)),
                       t=0.28 * math.exp(sv * tr.normal(0, 0.2)))
    g_chest = np.array([-0.95, 0.1, 0.25]) + sv * 0.1 * tr.standard_normal(3)
    g_chest /= np.linalg.norm(g_chest)
    step_hz = float(tr.uniform(1.7, 2.1))
    speaker = draw_speaker(R["voice"], sex, sv)
    style = draw_style(R["text"], sv)

    # ---------------------------------------------------------------- timeline
    minutes = knobs["phase_minutes"]
    trans_s = knobs["transition_minutes"] * 60.0
    pre_s = 15.0 if fast else 60.0
    segs, T = _timeline(ORDERS[protocol], minutes, trans_s, pre_s)
    stagger = knobs["start_stagger_s"]
    taps = (5.0, 5.5)

    pad = stagger + 5.0
    ts = np.arange(-pad, T + pad, 1.0 / SLOW_HZ)
    ns = len(ts)
    row = _seg_index(ts, segs)

    def effect(key: str, tau_key: str | None = None) -> np.ndarray:
        table = np.array([EFFECTS[r][key] for r in _ROWS])
        neutral = 1.0 if key in _MULTIPLICATIVE else 0.0
        g = _GROUP[key]
        scale = inf[g] * (r_mod[g] if g in r_mod else 1.0)
        x = neutral + scale * (table[row] - neutral)
        return P.lag(x, SLOW_HZ, TAUS[tau_key] * tau_x) if tau_key else x

    # walking in the first 40 % of each transition
    walking = np.zeros(ns)
    for name, a, b in segs:
        if name == "transient" and a > 0 and b < T:
            walking[(ts >= a) & (ts < a + 0.4 * (b - a))] = 1.0
    walking = P.lag(walking, SLOW_HZ, 1.0)
    move_base = EFFECTS["baseline"]["move"]
    move = move_base + inf["acc"] * r_mod["acc"] * (
        np.array([EFFECTS[r]["move"] for r in _ROWS])[row] - move_base)
    move = np.clip(P.lag(move, SLOW_HZ, TAUS["move"]), 0.0, None) + walking

    # respiration
    rate = resp0 + effect("resp", "resp") + P.ou_noise(rng, ns, SLOW_HZ, 20.0, 1.0) + 4 * walking
    rate = np.clip(rate, 5.0, 35.0)
    rphase, breaths = P.breathing(ts, rate, rng.uniform())
    depth = depth0 * np.exp(effect("depth", "resp") + P.ou_noise(rng, ns, SLOW_HZ, 10.0, 0.15))
    resp = depth * (P.resp_wave(rphase) - 0.5)
    laugh_rate = np.where(row == _ROWS.index("amusement"), 3.0 * react, 0.15) / 60.0
    laughs = np.round(P.poisson_events(rng, ts, laugh_rate), 6)
    laugh_env = np.zeros(ns)
    for t0 in laughs:
        k = _near(ts, t0, t0 + 1.5)
        laugh_env[k] = np.sin(np.pi * (ts[k] - t0) / 1.5)
    laugh_osc = laugh_env * np.sin(2 * np.pi * 4.5 * ts)
    resp += 0.25 * depth0 * min(inf["resp"], 2.0) * laugh_osc

    # heart
    hrv = np.clip(effect("hrv", "hrv"), 0.2, None)
    lf = 1.5 * np.sin(2 * np.pi * (0.1 * ts + 0.02 * np.cumsum(rng.standard_normal(ns)) / SLOW_HZ))
    hr = (hr0 + effect("hr", "hr") + P.ou_noise(rng, ns, SLOW_HZ, 30.0, 2.0) + 12 * walking
          + hrv * (rsa0 * np.sin(2 * np.pi * rphase) + lf))
    hr = np.clip(hr, 40.0, 180.0)
    beats = P.beat_times(rng, ts, hr)
    beats = beats + beat_sd * np.interp(beats, ts, hrv) * rng.standard_normal(len(beats))
    beats = np.sort(beats)
    beats = np.round(beats[np.concatenate([[True], np.diff(beats) >= 0.27])], 6)
    ptt = ptt0 + effect("ptt", "ptt")
    bvp_amp = bvp0 * np.exp(effect("bvp", "hr"))

    # electrodermal activity
    tonic = eda0 * np.exp(effect("tonic", "tonic") + P.ou_noise(rng, ns, SLOW_HZ, 300.0, 0.08))
    scr_rate = np.clip(scr0 + effect("scr", "hr"), 0.2, None) / 60.0
    scr_on = np.round(P.poisson_events(rng, ts, scr_rate), 6)
    scr_amps = scr_amp * (1 + 0.3 * np.clip(np.interp(scr_on, ts, effect("tonic")), 0, None)) \
        * rng.lognormal(0.0, 0.5, len(scr_on))
    eda = tonic + P.scr_response(scr_on, scr_amps, ts[0], SLOW_HZ, ns, 0.75, scr_decay)

    # skin temperature (wrist)
    temp = temp0 + effect("temp", "temp") + P.ou_noise(rng, ns, SLOW_HZ, 600.0, 0.15)

    # movement (slow components in g)
    fidget_c = P.ou_noise(rng, ns, SLOW_HZ, 0.3, 0.04)[:, None] * np.array([0.5, 1.0, 0.7])
    step = np.sin(2 * np.pi * step_hz * ts) + 0.3 * np.sin(4 * np.pi * step_hz * ts + 1.0)
    acc_c = (g_chest[None, :] + move[:, None] * fidget_c
             + (0.15 * walking * step)[:, None] * np.array([1.0, 0.2, 0.3])
             + (0.01 * depth0 / 3.0 * resp)[:, None] * np.array([0.0, 0.3, 1.0])
             + (0.05 * min(inf["acc"], 2.0) * laugh_osc)[:, None] * np.array([0.3, 0.3, 1.0]))
    pose = np.stack([P.ou_noise(rng, ns, SLOW_HZ, 20.0, 0.5) for _ in range(2)], axis=1)
    pose *= np.sqrt(0.2 + move)[:, None]
    g_w = np.stack([np.cos(pose[:, 0]) * np.cos(pose[:, 1]), np.sin(pose[:, 0]) * np.cos(pose[:, 1]),
                    np.sin(pose[:, 1])], axis=1)
    gest = np.stack([P.ou_noise(rng, ns, SLOW_HZ, 0.2, 0.12) for _ in range(3)], axis=1)
    swing = (0.3 * walking * np.sin(np.pi * step_hz * ts))[:, None] * np.array([1.0, 0.5, 0.2])
    acc_w = g_w + move[:, None] * gest + swing
    motion_w = np.linalg.norm(move[:, None] * gest + swing, axis=1)

    # ---------------------------------------------------------------- devices
    ck = R["clock"]
    clocks = {"chest": B.REFERENCE, "wrist": B.draw_clock(ck, knobs), "mic": B.draw_clock(ck, knobs)}
    wrist_span = (-float(ck.uniform(0, stagger)), T + float(ck.uniform(0, stagger)))
    mr = R["missing"]
    missing = [d for d in ("chest", "wrist", "mic") if mr.uniform() < knobs["missing"][d]]
    streams: dict[str, list[Stream]] = {"chest": [], "wrist": [], "mic": []}

    if "chest" not in missing:
        g = B.grid(clocks["chest"], 0.0, T, CHEST_HZ)
        t = g.ref_times()
        fs_ref = 1.0 / g.ref_step
        ecg = P.ecg_from_beats(beats, g.ref_start, fs_ref, g.n, shape)
        if noise > 0:
            wander = 0.05 * resp / max(depth0, 1e-9) + P.ou_noise(nrng, ns, SLOW_HZ, 8.0, 0.08)
            emg = np.interp(t, ts, 0.01 + 0.03 * move)
            turns = 50.0 * t + nrng.uniform()
            mains = np.sin(np.float32(2 * np.pi) * (turns - np.floor(turns)).astype(np.float32))
            ecg += noise * (np.interp(t, ts, wander) + 0.008 * mains
                            + emg * nrng.standard_normal(g.n, dtype=np.float32))
        eda_c = np.interp(t, ts, eda)
        resp_c = np.interp(t, ts, resp)
        acc = np.stack([np.interp(t, ts, acc_c[:, k]) for k in range(3)], axis=1)
        win = _near(t, taps[0] - 0.3, taps[-1] + 0.3)
        acc[win, 2] += _jolt(t[win], taps, 0.02, 1.5)
        acc[win, 0] += _jolt(t[win], taps, 0.02, 0.4)
        if noise > 0:
            eda_c += noise * 0.003 * nrng.standard_normal(g.n, dtype=np.float32)
            resp_c += noise * 0.02 * nrng.standard_normal(g.n, dtype=np.float32)
            acc += noise * 0.004 * nrng.standard_normal((g.n, 3), dtype=np.float32)
        streams["chest"] = [
            B.regular_stream("chest_ecg", ecg, "ecg", g, "chest", units="mV"),
            B.regular_stream("chest_eda", eda_c, "eda", g, "chest", units="uS"),
            B.regular_stream("chest_resp", resp_c, "resp", g, "chest", units="%"),
            B.regular_stream("chest_acc", acc, "acc", g, "chest", channels=["x", "y", "z"], units="g"),
        ]

    if "wrist" not in missing:
        ck_w = clocks["wrist"]
        a, b = wrist_span
        motion_beats = np.interp(beats, ts, motion_w)
        # BVP
        g = B.grid(ck_w, a, b, BVP_HZ)
        t = g.ref_times()
        bvp = P.ppg_from_beats(beats, g.ref_start, 1.0 / g.ref_step, g.n,
                               transit_s=np.interp(beats, ts, ptt),
                               amplitude=np.interp(beats, ts, bvp_amp))
        if noise > 0:
            art = np.interp(t, ts, motion_w * P.ou_noise(nrng, ns, SLOW_HZ, 0.15, 1.0))
            bvp += noise * (80.0 * art + 1.0 * nrng.standard_normal(g.n))
        s_bvp = B.regular_stream("wrist_bvp", bvp, "bvp", g, "wrist", units="a.u.")
        # EDA
        g = B.grid(ck_w, a, b, WRIST_EDA_HZ)
        t = g.ref_times()
        eda_w = wrist_gain * np.interp(t, ts, eda)
        if noise > 0:
            eda_w += noise * (0.002 * nrng.standard_normal(g.n)
                              + 0.02 * wrist_gain * np.interp(t, ts, motion_w * P.ou_noise(nrng, ns, SLOW_HZ, 1.0, 1.0)))
            eda_w = np.maximum(eda_w, 0.0)
        s_eda = B.regular_stream("wrist_eda", eda_w, "eda", g, "wrist", units="uS")
        # ACC
        g = B.grid(ck_w, a, b, WRIST_ACC_HZ)
        t = g.ref_times()
        accw = np.stack([np.interp(t, ts, acc_w[:, k]) for k in range(3)], axis=1)
        win = _near(t, taps[0] - 0.3, taps[-1] + 0.3)
        accw[win] += _jolt(t[win], taps, 0.03, 2.5)[:, None] * np.array([0.3, 0.6, -1.0])
        if noise > 0:
            accw = np.round((accw + noise * 0.01 * nrng.standard_normal((g.n, 3))) * 64) / 64
        s_acc = B.regular_stream("wrist_acc", accw, "acc", g, "wrist", channels=["x", "y", "z"], units="g")
        # TEMP
        g = B.grid(ck_w, a, b, TEMP_HZ)
        t = g.ref_times()
        tmp = np.interp(t, ts, temp)
        if noise > 0:
            tmp = np.round((tmp + noise * 0.01 * nrng.standard_normal(g.n)) / 0.02) * 0.02
        s_temp = B.regular_stream("wrist_temp", tmp, "temp", g, "wrist", units="degC")
        # IBI: pulse arrivals, missed during movement, only between consecutive detections
        arrive = beats + np.interp(beats, ts, ptt) + 0.11
        p_miss = np.clip((0.03 + 2.0 * motion_beats) * (noise > 0), 0.0, 0.95)
        hit = (nrng.uniform(size=len(beats)) >= p_miss) & (arrive >= a) & (arrive < b)
        pair = hit[1:] & hit[:-1]
        t_dev = ck_w.to_device(arrive[1:][pair])
        ibi = np.diff(arrive)[pair]
        t_dev = B.jitter_times(nrng, t_dev, ck_w.jitter_s)
        s_ibi = Stream("wrist_ibi", ibi.astype(np.float32), "ibi", times=t_dev, units="s", device="wrist")
        streams["wrist"] = [s_bvp, s_eda, s_acc, s_temp, s_ibi]

    # voice: spoken self-reports
    rows: list[dict] = [{"onset": a, "duration": b - a, "kind": "phase",
                         "label": name} for name, a, b in segs]
    rows.append({"onset": taps[0], "duration": round(taps[-1] - taps[0], 6), "kind": "event",
                 "label": "sync_tap"})
    vr, xr = R["voice"], R["text"]
    cue = cue_probability(inf["text"])
    k = 0
    for name, a, b in segs:
        if name == "transient":
            continue
        for _ in range(knobs["voice_per_phase"]):
            k += 1
            gv = inf["voice"] * r_mod["voice"]
            eff = EFFECTS[name]
            p = modulate(speaker, f0_st=gv * eff["f0"], intonation_x=1 + gv * (eff["inton"] - 1),
                         jitter_x=max(0.2, 1 + gv * (eff["jitter"] - 1)),
                         shimmer_x=max(0.2, 1 + gv * (eff["shimmer"] - 1)),
                         loudness_db=gv * eff["loud"], rate_x=max(0.3, 1 + gv * (eff["rate"] - 1)))
            text = say(xr, "self_report", name, style, cue)
            audio, info = synthesize(text, p, AUDIO_HZ, vr, noise=noise)
            room = max(b - a - info["duration"], 0.0)
            clip_start = round(a + float(vr.uniform(0.2, 0.8)) * room, 6)
            sname = f"voice_{k:02d}"
            rows.append({"onset": clip_start + info["speech_onset"],
                         "duration": round(info["speech_duration"], 6), "kind": "utterance",
                         "label": "participant", "text": text,
                         "stream": "" if "mic" in missing else sname})
            if "mic" not in missing:
                start = float(B.jitter_times(vr, np.array([clocks["mic"].to_device(clip_start)]),
                                             clocks["mic"].jitter_s)[0])
                streams["mic"].append(Stream(
                    sname, audio, "audio", rate=AUDIO_HZ, start=start, device="mic", units="a.u.",
                    meta={"phase": name, "speech_onset_s": info["speech_onset"],
                          "f0_hz": round(info["f0_hz"], 4), **{q: round(v, 6) for q, v in (
                              ("jitter", p.jitter), ("shimmer", p.shimmer),
                              ("loudness_db", p.loudness_db), ("syllable_rate", p.syllable_rate))}}))

    # ---------------------------------------------------------------- dropouts
    dr = R["dropout"]
    dropouts: list[dict] = []
    spans = {"chest": (0.0, T), "wrist": wrist_span}
    for dev in ("chest", "wrist"):
        intervals = B.plan_dropouts(dr, *spans[dev], knobs["dropout_per_hour"], knobs["dropout_mean_s"])
        streams[dev], recs = B.apply_dropouts(streams[dev], intervals, clocks[dev])
        dropouts += recs

    lo, hi = min(0.0, wrist_span[0]), max(T, wrist_span[1])
    inside = lambda x: [float(v) for v in x if lo <= v < hi]  # noqa: E731
    meta: dict[str, Any] = {
        "sex": sex, "age": age, "protocol": protocol, "reference_device": "chest",
        "clock_truth": {d: c.truth() for d, c in clocks.items() if d not in missing or d == "chest"},
        "dropouts": dropouts, "missing": missing,
        "truth": {
            "hr_rest_bpm": round(hr0, 4), "resp_rest_bpm": round(resp0, 4),
            "reactivity": round(react, 6), "reactivity_by_modality": {g: round(v, 6) for g, v in r_mod.items()},
            "eda_tonic_us": round(eda0, 6), "scr_per_min": round(scr0, 6), "temp_c": round(temp0, 4),
            "voice": speaker.to_dict(), "sync_taps": list(taps),
            "r_peaks": inside(beats), "scr_onsets": inside(scr_on), "breaths": inside(breaths),
            "laughs": inside(laughs),
        },
    }
    rec = Recording(sid, streams=[s for d in ("chest", "wrist", "mic") for s in streams[d]],
                    annotations=B.annotations(rows), meta=meta,
                    t0=B.EPOCH + 86400.0 * i)
    row_out = {"participant_id": sid, "sex": sex, "age": age, "protocol": protocol}
    return rec, row_out


def plan(n: int, seed: int, knobs: dict, fast: bool) -> list[dict]:
    """Cohort-level choices: none here (each subject is independent)."""
    return [{} for _ in range(n)]
