"""Scenario ``icu_ward``: patients in several hospitals, some developing sepsis (chapter 05_data).

Patients (ids ``P01``...) are spread over ``n_hospitals`` hospitals (participants column
``hospital``: ``H1``, ``H2``...) that differ in case mix and practice, so the data is not
IID across sites (the federated-learning chapters rely on this): sepsis prevalence
(``prevalence`` knob, exact per hospital up to rounding), patient age, the temperature
measurement site (core/oral/tympanic: a device bias), the pulse oximeter's bias, and how
often temperature and blood pressure are charted (``Cohort.meta["hospitals"]`` has each
hospital's profile). ``hospital_shift`` scales all of these differences except
prevalence.

Streams (device ``"monitor"``, the **reference clock**, unless said otherwise):

* ``hr`` (bpm), ``spo2`` (%), ``resp_rate`` (breaths/min): per-minute vitals (1/60 Hz);
* ``temp`` (°C) and ``bp`` (two channels ``sys``/``dia``, mmHg; device ``"chart"``, the
  electronic record: reference clock, but charted times differ from measurement times by
  ``charting_jitter_s``): irregular, every 1-4 h and every 15-60 min depending on the
  hospital;
* ``voice_01``, ``voice_02``... (device ``"mic"``, a bedside tablet with its own clock):
  16 kHz clips of the patient answering the nurse, every 8 h (2 h in fast mode).

Annotations: ``kind="note"`` (label ``"nurse"``, text: the nurse's note, every ~4 h),
``kind="utterance"`` (label ``"patient"``, the clip's transcript, ``stream``), and one
``kind="label"``: label ``"sepsis"`` with onset at sepsis onset and duration to the end of
the stay, or ``"no_sepsis"`` covering the whole stay.

Septic patients deteriorate over the hours before onset (sigmoid, centred 2 h before in
full mode): HR +25, RR +8, SpO2 -4, temperature +1.6 °C (one in five: -1 °C), systolic BP
-30 mmHg; notes mention lethargy, rigors, escalation; their speech gets quieter, slower and
rougher. Some non-septic patients have a fever or tachycardia episode of another cause, so
single vitals are not enough. Ground truth in ``Recording.meta["truth"]``: ``septic``,
``onset_h``, ``severity``, ``episodes``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mmlab.errors import SchemaError
from mmlab.recording import Recording, Stream
from mmlab.synth import _base as B
from mmlab.synth import physio as P
from mmlab.synth.text import cue_probability, draw_style, say
from mmlab.synth.voice import draw_speaker, modulate, synthesize

NAME = "icu_ward"
PREFIX = "P"
LABEL_NAMES = ["no_sepsis", "sepsis"]
VITALS_HZ = 1.0 / 60.0
AUDIO_HZ = 16000
TEMP_SITES = (("core", 0.2), ("oral", 0.0), ("tympanic", -0.3))
TEMP_EVERY_H = (1.0, 2.0, 4.0)
BP_EVERY_MIN = (15.0, 30.0, 60.0)
SPO2_BIAS = (0.0, 1.0, -0.5)

KNOBS: dict[str, B.Knob] = {
    "n_hospitals": B.Knob(3, "number of hospitals", kind="int", lo=1, hi=50),
    "prevalence": B.Knob([0.10, 0.25, 0.45], "sepsis prevalence per hospital (one value for "
                         "all, or one per hospital)", kind="floats", hi=1.0),
    "hospital_shift": B.Knob(1.0, "how different hospitals are in age, measurement bias and "
                             "charting frequency (0: identical apart from prevalence)", hi=10.0),
    "hours": B.Knob(None, "length of stay in hours (None: 48 full, 8 fast)", optional=True, lo=1.0,
                     hi=24.0 * 14),
    "charting_jitter_s": B.Knob(300.0, "standard deviation (s) between when temperature and "
                                "blood pressure were measured and the charted time", hi=3600.0),
    **B.common_knobs(missing={"mic": 0.2, "bp": 0.0, "spo2": 0.0},
                     informativeness={"vitals": 1.0, "text": 1.0, "voice": 1.0},
                     dropout_per_hour=0.1, dropout_mean_s=900.0),
}


def finalize_knobs(knobs: dict, fast: bool) -> dict:
    """Fill the mode-dependent default length of stay."""
    return {**knobs, "hours": knobs["hours"] or (8.0 if fast else 48.0)}


def _hospitals(knobs: dict) -> list[dict]:
    H = knobs["n_hospitals"]
    prev = knobs["prevalence"]
    if len(prev) == 1:
        prev = prev * H
    if len(prev) != H:
        raise SchemaError(f"knob 'prevalence' has {len(prev)} values for n_hospitals={H}; "
                          "give one value or one per hospital")
    s = knobs["hospital_shift"]
    out = []
    for h in range(H):
        u = h / (H - 1) if H > 1 else 0.5
        site, bias = TEMP_SITES[h % 3]
        out.append({
            "hospital": f"H{h + 1}", "prevalence": prev[h],
            "age_mean": round(62.0 + s * (16.0 * u - 8.0), 3),
            "temp_site": site if s > 0 else "oral", "temp_bias_c": round(s * bias, 4),
            "spo2_bias": round(s * SPO2_BIAS[h % 3], 4),
            "temp_every_h": TEMP_EVERY_H[h % 3] if s > 0 else 2.0,
            "bp_every_min": BP_EVERY_MIN[h % 3] if s > 0 else 30.0,
        })
    return out


def cohort_meta(knobs: dict, fast: bool) -> dict:
    return {"hospitals": _hospitals(knobs)}


def plan(n: int, seed: int, knobs: dict, fast: bool) -> list[dict]:
    """Hospitals get (nearly) equal numbers of patients; septic counts per hospital are
    exact up to rounding."""
    hosp = _hospitals(knobs)
    rng = B.rng_for(seed, NAME, 0, "plan")
    counts = B.exact_counts([1.0] * len(hosp), n)
    where = rng.permutation(np.repeat(np.arange(len(hosp)), counts))
    septic = np.zeros(n, dtype=bool)
    for h, info in enumerate(hosp):
        members = np.flatnonzero(where == h)
        k = int(round(info["prevalence"] * len(members)))
        septic[rng.permutation(members)[:k]] = True
    return [{"hospital": hosp[int(h)], "septic": bool(s)} for h, s in zip(where, septic)]


def _charted(rng: np.random.Generator, T: float, every_s: float) -> np.ndarray:
    """Charting times every ``every_s`` seconds, give or take 10 %."""
    t = np.arange(rng.uniform(0, every_s), T, every_s)
    return t + rng.uniform(-0.1, 0.1, len(t)) * every_s


def make_subject(i: int, sid: str, seed: int, knobs: dict, fast: bool,
                 plan_i: dict) -> tuple[Recording, dict]:
    R = {p: B.rng_for(seed, NAME, i + 1, p) for p in
         ("traits", "phys", "noise", "clock", "dropout", "missing", "voice", "text")}
    tr, rng, nr = R["traits"], R["phys"], R["noise"]
    sv, noise, inf = knobs["subject_variability"], knobs["noise"], knobs["informativeness"]
    hosp, septic = plan_i["hospital"], plan_i["septic"]
    hours = knobs["hours"]
    T = hours * 3600.0

    sex = "F" if tr.uniform() < 0.45 else "M"
    age = int(np.clip(round(hosp["age_mean"] + 12 * sv * tr.standard_normal()), 18, 95))
    base = {
        "hr": 78 + 0.1 * (age - 60) + sv * 9 * tr.standard_normal(),
        "rr": 16 + sv * 2 * tr.standard_normal(),
        "spo2": 97 - 0.03 * (age - 60) + sv * 1.0 * tr.standard_normal(),
        "temp": 36.9 + sv * 0.25 * tr.standard_normal(),
        "sys": 120 + 0.4 * (age - 60) + sv * 14 * tr.standard_normal(),
        "dia": 72 + sv * 8 * tr.standard_normal(),
    }
    severity = float(np.clip(math.exp(sv * tr.normal(0, 0.35)), 0.4, 2.5)) * inf["vitals"]
    hypothermic = bool(tr.uniform() < 0.2)
    onset = round(float(tr.uniform(0.35, 0.8)) * T, 3) if septic else None
    lead = (2.0 if not fast else 1.0) * 3600.0

    # ------------------------------------------------------------- physiology (60 s grid)
    ts = np.arange(0.0, T + 120.0, 30.0)
    s = 1.0 / (1.0 + np.exp(-(ts - (onset - lead)) / (0.35 * lead))) if septic else np.zeros(len(ts))
    s *= severity
    episodes = []
    if not septic and tr.uniform() < 0.35:  # fever or tachycardia of another cause
        a = float(tr.uniform(0.1, 0.8)) * T
        d = float(tr.uniform(1.0, 4.0)) * 3600.0 * (0.4 if fast else 1.0)
        kind = "fever" if tr.uniform() < 0.5 else "tachycardia"
        episodes.append({"kind": kind, "start": round(a, 3), "end": round(min(a + d, T), 3)})
    ep_fever = np.zeros(len(ts))
    ep_tachy = np.zeros(len(ts))
    for e in episodes:
        bump = np.clip(np.minimum(ts - e["start"], e["end"] - ts) / 1800.0, 0.0, 1.0)
        (ep_fever if e["kind"] == "fever" else ep_tachy)[:] += bump
    circ = np.sin(2 * np.pi * (ts / 86400.0 + tr.uniform()))
    temp_dir = -1.0 / 1.6 if hypothermic else 1.0
    v = {
        "hr": base["hr"] + 4 * circ + 25 * s + 8 * ep_fever + 22 * ep_tachy
        + P.ou_noise(rng, len(ts), 1 / 30, 1200, 4.0),
        "rr": base["rr"] + 8 * s + 2 * ep_fever + 3 * ep_tachy + P.ou_noise(rng, len(ts), 1 / 30, 1800, 1.5),
        "spo2": base["spo2"] - 4 * s + P.ou_noise(rng, len(ts), 1 / 30, 1800, 0.8),
        "temp": base["temp"] + 0.3 * circ + 1.6 * temp_dir * s + 1.3 * ep_fever
        + P.ou_noise(rng, len(ts), 1 / 30, 3600, 0.15),
        "sys": base["sys"] - 30 * s + 5 * circ + P.ou_noise(rng, len(ts), 1 / 30, 1800, 6.0),
        "dia": base["dia"] - 18 * s + 3 * circ + P.ou_noise(rng, len(ts), 1 / 30, 1800, 4.0),
    }
    v["spo2"] = np.minimum(v["spo2"], 100.0)

    # ------------------------------------------------------------- monitor streams
    ck = R["clock"]
    clocks = {"monitor": B.REFERENCE, "chart": B.Clock(jitter_s=knobs["charting_jitter_s"]),
              "mic": B.draw_clock(ck, knobs)}
    mr = R["missing"]
    missing = [m for m in ("mic", "bp", "spo2") if mr.uniform() < knobs["missing"][m]]
    g = B.grid(clocks["monitor"], 0.0, T, VITALS_HZ)
    tg = g.ref_times()
    streams: list[Stream] = []
    dropouts: list[dict] = []
    for name, key, sd, unit, modality in (("hr", "hr", 2.0, "bpm", "hr"), ("spo2", "spo2", 0.7, "%", "spo2"),
                                          ("resp_rate", "rr", 1.2, "1/min", "resp")):
        if name in missing:
            continue
        x = np.interp(tg, ts, v[key]) + (hosp["spo2_bias"] if key == "spo2" else 0.0)
        if noise > 0:
            x = np.round(x + noise * sd * nr.standard_normal(g.n))
        if key == "spo2":
            x = np.minimum(x, 100.0)
        st = B.regular_stream(name, x, modality, g, "monitor", units=unit)
        intervals = B.plan_dropouts(R["dropout"], 0.0, T, knobs["dropout_per_hour"], knobs["dropout_mean_s"])
        (st,), recs = B.apply_dropouts([st], intervals, clocks["monitor"])
        dropouts += recs
        streams.append(st)
    jit = clocks["chart"].jitter_s
    t_temp = np.sort(_charted(rng, T, hosp["temp_every_h"] * 3600.0))
    x = np.interp(t_temp, ts, v["temp"]) + hosp["temp_bias_c"]
    if noise > 0:
        x = np.round(x + noise * 0.1 * nr.standard_normal(len(x)), 1)
    streams.append(Stream("temp", x.astype(np.float32), "temp", times=B.jitter_times(nr, t_temp, jit),
                          units="degC", device="chart", meta={"site": hosp["temp_site"]}))
    if "bp" not in missing:
        t_bp = np.sort(_charted(rng, T, hosp["bp_every_min"] * 60.0))
        x = np.stack([np.interp(t_bp, ts, v["sys"]), np.interp(t_bp, ts, v["dia"])], axis=1)
        if noise > 0:
            x = np.round(x + noise * np.array([5.0, 4.0]) * nr.standard_normal(x.shape))
        streams.append(Stream("bp", x.astype(np.float32), "bp", times=B.jitter_times(nr, t_bp, jit),
                              channels=["sys", "dia"], units="mmHg", device="chart"))

    # ------------------------------------------------------------- notes and voice
    xr, vr = R["text"], R["voice"]
    cue = cue_probability(inf["text"])
    nurse = draw_style(xr, sv, terse=0.6)
    rows: list[dict] = []
    note_every = (2.0 if fast else 4.0) * 3600.0
    for tn in np.arange(xr.uniform(0.2, 1.0) * note_every, T, note_every):
        tn = round(float(tn + xr.uniform(-0.15, 0.15) * note_every), 3)
        worse = septic and tn > onset - 0.5 * lead
        k = int(np.searchsorted(ts, tn))
        k = min(k, len(ts) - 1)
        ctx = {"hr": int(round(v["hr"][k])), "temp": f"{v['temp'][k]:.1f}", "rr": int(round(v["rr"][k])),
               "sbp": int(round(v["sys"][k])), "dbp": int(round(v["dia"][k])),
               "spo2": int(round(min(v["spo2"][k], 100)))}
        rows.append({"onset": tn, "duration": 0.0, "kind": "note", "label": "nurse",
                     "text": say(xr, "nurse_note", "sepsis" if worse else "stable", nurse, cue,
                                 sentences=1, **ctx), "stream": ""})
    speaker = draw_speaker(vr, sex, sv)
    speaker = modulate(speaker, f0_st=-1.0 if age > 70 else 0.0, jitter_x=1.0 + 0.01 * max(age - 50, 0),
                       rate_x=0.9)
    style = draw_style(xr, sv)
    talk_every = (2.0 if fast else 8.0) * 3600.0
    k = 0
    for tv in np.arange(vr.uniform(0.3, 0.9) * talk_every, T - 60.0, talk_every):
        k += 1
        tv = round(float(tv), 3)
        unwell = septic and tv > onset - 0.5 * lead
        gv = inf["voice"] * (1.0 if unwell else 0.0)
        p = modulate(speaker, loudness_db=-6 * gv, rate_x=1 - 0.2 * gv, jitter_x=1 + 0.6 * gv,
                     shimmer_x=1 + 0.5 * gv, breathiness_x=1 + 0.8 * gv, intonation_x=1 - 0.4 * gv)
        text = say(xr, "patient", "sepsis" if unwell else "stable", style, cue)
        audio, info = synthesize(text, p, AUDIO_HZ, vr, noise=noise)
        sname = f"voice_{k:02d}"
        rows.append({"onset": tv + info["speech_onset"], "duration": round(info["speech_duration"], 6),
                     "kind": "utterance", "label": "patient", "text": text,
                     "stream": "" if "mic" in missing else sname})
        if "mic" not in missing:
            start = float(B.jitter_times(vr, np.array([clocks["mic"].to_device(tv)]),
                                         clocks["mic"].jitter_s)[0])
            streams.append(Stream(sname, audio, "audio", rate=AUDIO_HZ, start=start, device="mic",
                                  units="a.u.", meta={"speech_onset_s": info["speech_onset"],
                                                      "unwell": bool(unwell), **{q: round(getattr(p, q), 6) for q in
                                                                                ("f0", "jitter", "shimmer", "loudness_db")}}))
    if septic:
        rows.append({"onset": onset, "duration": round(T - onset, 3), "kind": "label", "label": "sepsis"})
    else:
        rows.append({"onset": 0.0, "duration": T, "kind": "label", "label": "no_sepsis"})
    if "mic" in missing:
        clocks.pop("mic")
    meta: dict[str, Any] = {
        "sex": sex, "age": age, "hospital": hosp["hospital"], "reference_device": "monitor",
        "clock_truth": {d: c.truth() for d, c in clocks.items()},
        "dropouts": dropouts, "missing": missing,
        "truth": {"septic": septic, "onset_h": None if onset is None else round(onset / 3600.0, 6),
                  "severity": round(severity, 6), "hypothermic": hypothermic if septic else False,
                  "episodes": episodes, "baseline": {k2: round(float(b), 4) for k2, b in base.items()}},
    }
    rec = Recording(sid, streams=streams, annotations=B.annotations(rows), meta=meta,
                    t0=B.EPOCH + 7200.0 * i)
    return rec, {"participant_id": sid, "sex": sex, "age": age, "hospital": hosp["hospital"],
                 "septic": septic}

