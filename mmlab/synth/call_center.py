"""Scenario ``call_center``: customer calls with a satisfaction label (chapter 05_data).

Each Recording is one call of one caller (ids ``C01``...). The call alternates agent and
caller turns; only the caller's side is recorded as audio:

* ``caller_audio`` (device ``"phone"``, the **reference clock**): 8 kHz float32 telephone
  audio (300-3400 Hz) of the whole call, line noise between the caller's turns;
* ``wrist_hr`` (device ``"wrist"``, for a ``wearable_fraction`` of callers): heart rate in
  bpm at 1 Hz from the caller's smartwatch, on its own clock, from before the call until
  after it.

Annotations: ``kind="utterance"`` for every turn (label: ``"caller"`` or ``"agent"``;
text: transcript; ``stream``: ``"caller_audio"`` for the caller's turns, which lie inside
the audio at their onset/duration, empty for the agent's), and one ``kind="label"`` per call
(label: ``satisfied``, ``neutral`` or ``dissatisfied``; onset 0, duration: the call).

The label shows in the caller's voice (dissatisfied: higher F0 +2.5 semitones, louder
+5 dB, faster, more jitter and shimmer; satisfied: livelier intonation), in the words
(cue probability from ``informativeness['text']``), more so towards the end of the call,
and in the heart rate (dissatisfied callers' HR climbs during the call). Participants:
``participant_id``, ``sex``, ``age``, ``intent`` (why they called), ``satisfaction``,
``has_wearable``. Ground truth in ``Recording.meta``: ``clock_truth``, ``dropouts``,
``missing``, ``truth`` (label, voice parameters, resting HR). ``timestamp_jitter_s`` has no
effect here: both streams are regular.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import signal as sps

from mmlab.recording import Recording, Stream
from mmlab.synth import _base as B
from mmlab.synth import physio as P
from mmlab.synth.text import cue_probability, draw_style, expand, say
from mmlab.synth.voice import count_syllables, draw_speaker, modulate, synthesize

NAME = "call_center"
PREFIX = "C"
LABEL_NAMES = ["satisfied", "neutral", "dissatisfied"]
INTENTS = ("billing", "technical", "cancellation", "delivery", "account")
AUDIO_HZ = 8000
HR_HZ = 1.0

#: voice effect of each label at full intensity (informativeness 1)
VOICE = {
    "satisfied": dict(f0=1.0, inton=1.4, loud=2.0, rate=1.05, jitter=1.0, shimmer=1.0),
    "neutral": dict(f0=0.0, inton=1.0, loud=0.0, rate=1.0, jitter=1.0, shimmer=1.0),
    "dissatisfied": dict(f0=2.5, inton=1.3, loud=5.0, rate=1.12, jitter=1.3, shimmer=1.3),
}
HR_EFFECT = {"satisfied": 2.0, "neutral": 0.0, "dissatisfied": 9.0}

KNOBS: dict[str, B.Knob] = {
    "label_balance": B.Knob({"satisfied": 0.45, "neutral": 0.30, "dissatisfied": 0.25},
                            "share of calls per satisfaction label (normalised; counts are "
                            "exact up to rounding)", kind="dict", hi=1000.0),
    "wearable_fraction": B.Knob(0.3, "share of callers whose smartwatch heart rate is "
                                     "available", kind="prob"),
    "caller_turns": B.Knob(None, "caller turns per call (None: 5-9 full, 3 fast)",
                           kind="int", optional=True, lo=1, hi=40),
    **B.common_knobs(missing={"audio": 0.0}, informativeness={"voice": 1.0, "text": 1.0, "hr": 1.0},
                     dropout_per_hour=2.0, dropout_mean_s=5.0),
}


def plan(n: int, seed: int, knobs: dict, fast: bool) -> list[dict]:
    """Exact label counts and wearable counts, shuffled."""
    rng = B.rng_for(seed, NAME, 0, "plan")
    counts = B.exact_counts([knobs["label_balance"][k] for k in LABEL_NAMES], n)
    labels = rng.permutation(np.repeat(LABEL_NAMES, counts))
    wear = rng.permutation(np.arange(n) < int(round(knobs["wearable_fraction"] * n)))
    return [{"label": str(lab), "wearable": bool(w)} for lab, w in zip(labels, wear)]


def make_subject(i: int, sid: str, seed: int, knobs: dict, fast: bool,
                 plan_i: dict) -> tuple[Recording, dict]:
    R = {p: B.rng_for(seed, NAME, i + 1, p) for p in
         ("traits", "phys", "noise", "clock", "dropout", "missing", "voice", "text")}
    tr, rng = R["traits"], R["phys"]
    sv, noise, inf = knobs["subject_variability"], knobs["noise"], knobs["informativeness"]
    label = plan_i["label"]

    sex = "F" if tr.uniform() < 0.5 else "M"
    age = int(np.clip(round(45 + 15 * tr.standard_normal()), 18, 85))
    intent = INTENTS[int(tr.integers(0, len(INTENTS)))]
    react = math.exp(sv * tr.normal(0.0, 0.4))
    hr0 = float(np.clip(74 + sv * 9 * tr.standard_normal() - 0.1 * (age - 45), 52, 100))
    speaker = draw_speaker(R["voice"], sex, sv)
    style = draw_style(R["text"], sv)
    n_turns = knobs["caller_turns"] or (3 if fast else int(tr.integers(5, 10)))
    topic = f"{{topic_{intent}}}"

    # ------------------------------------------------------------- dialogue
    vr, xr = R["voice"], R["text"]
    cue = cue_probability(inf["text"])
    rows: list[dict] = []
    clips: list[tuple[float, np.ndarray]] = []
    t = round(float(vr.uniform(0.5, 1.5)), 6)

    def agent(kind: str) -> None:
        nonlocal t
        text = expand(xr, "{agent_" + kind + "}")
        ask = any(w in text for w in ("how can", "anything", "could you"))
        text = text[0].upper() + text[1:] + ("?" if ask else ".")
        dur = round(sum(count_syllables(w) for w in text.split()) / 4.8 + 0.3, 6)
        rows.append({"onset": t, "duration": dur, "kind": "utterance", "label": "agent",
                     "text": text, "stream": ""})
        t = round(t + dur + float(vr.uniform(0.3, 0.9)), 6)

    agent("open")
    for k in range(n_turns):
        progress = (k + 1) / n_turns  # the label shows more towards the end of the call
        if k == 0:
            text = expand(xr, "{greet} I'm calling about " + topic + ".")
            more = say(xr, "caller", None, style, 0.0, topic=expand(xr, topic))
            if xr.uniform() < 0.5 and "calling about" not in more:
                text += " " + more
        else:
            text = say(xr, "caller", label, style, cue * (0.4 + 0.6 * progress),
                       topic=expand(xr, topic))
        g = inf["voice"] * react * (0.4 + 0.6 * progress)
        e = VOICE[label]
        p = modulate(speaker, f0_st=g * e["f0"], intonation_x=1 + g * (e["inton"] - 1),
                     loudness_db=g * e["loud"], rate_x=1 + g * (e["rate"] - 1),
                     jitter_x=1 + g * (e["jitter"] - 1), shimmer_x=1 + g * (e["shimmer"] - 1))
        audio, info = synthesize(text, p, AUDIO_HZ, vr, lead_s=0.0, trail_s=0.05,
                                 telephone=True, noise=0.0)
        start = math.ceil(t * AUDIO_HZ) / AUDIO_HZ  # on a sample of the call audio
        clips.append((start, audio))
        rows.append({"onset": start, "duration": round(info["speech_duration"], 6),
                     "kind": "utterance", "label": "caller", "text": text,
                     "stream": "caller_audio"})
        t = round(start + info["duration"] + float(vr.uniform(0.3, 1.0)), 6)
        agent("close" if k == n_turns - 1 else "mid")
    T = round(t + 0.5, 6)
    rows.append({"onset": 0.0, "duration": T, "kind": "label", "label": label})

    # ------------------------------------------------------------- devices
    ck = R["clock"]
    clocks = {"phone": B.REFERENCE, "wrist": B.draw_clock(ck, knobs)}
    wrist_span = (-float(ck.uniform(30, 120)), T + float(ck.uniform(10, 60)))
    missing = ["audio"] if R["missing"].uniform() < knobs["missing"]["audio"] else []
    streams: list[Stream] = []
    if "audio" not in missing:
        n = int(math.ceil(T * AUDIO_HZ))
        x = np.zeros(n)
        for start, audio in clips:
            j = int(round(start * AUDIO_HZ))
            seg = audio[: max(0, n - j)]
            x[j: j + len(seg)] += seg
        if noise > 0:
            nr = R["noise"]
            line = sps.lfilter([1.0], [1.0, -0.6], nr.standard_normal(n))
            line = sps.sosfilt(sps.butter(4, [300.0, 3400.0], btype="band", fs=AUDIO_HZ,
                                          output="sos"), line)
            x += noise * 10 ** (-50 / 20) * line / line.std()
        streams.append(Stream("caller_audio", np.clip(x, -1, 1).astype(np.float32)[:, None],
                              "audio", rate=AUDIO_HZ, start=0.0, device="phone", units="a.u.",
                              meta={"telephone_band_hz": [300, 3400]}))
    else:
        for r in rows:
            if r.get("stream"):
                r["stream"] = ""
    dropouts: list[dict] = []
    if plan_i["wearable"]:
        g = B.grid(clocks["wrist"], *wrist_span, HR_HZ)
        ts = np.arange(wrist_span[0] - 5, wrist_span[1] + 5, 0.5)
        talking = np.zeros(len(ts))
        for r in rows:
            if r["kind"] == "utterance" and r["label"] == "caller":
                talking[(ts >= r["onset"]) & (ts < r["onset"] + r["duration"])] = 1.0
        in_call = np.clip(ts / max(T, 1.0), 0.0, 1.0) * (ts >= 0) * (ts <= T)
        hr = (hr0 + inf["hr"] * react * HR_EFFECT[label] * P.lag(in_call, 2.0, 20.0)
              + 3.0 * P.lag(talking, 2.0, 4.0) + P.ou_noise(rng, len(ts), 2.0, 30.0, 2.0))
        hr_dev = np.interp(g.ref_times(), ts, hr)
        if noise > 0:
            hr_dev = np.round(hr_dev + noise * R["noise"].normal(0.0, 1.0, g.n))
        s = B.regular_stream("wrist_hr", hr_dev, "hr", g, "wrist", units="bpm")
        intervals = B.plan_dropouts(R["dropout"], *wrist_span, knobs["dropout_per_hour"],
                                    knobs["dropout_mean_s"])
        (s,), dropouts = B.apply_dropouts([s], intervals, clocks["wrist"])
        streams.append(s)
    else:
        clocks.pop("wrist")
    meta: dict[str, Any] = {
        "sex": sex, "age": age, "intent": intent, "reference_device": "phone",
        "clock_truth": {d: c.truth() for d, c in clocks.items()},
        "dropouts": dropouts, "missing": missing,
        "truth": {"label": label, "reactivity": round(react, 6), "hr_rest_bpm": round(hr0, 4),
                  "voice": speaker.to_dict()},
    }
    rec = Recording(sid, streams=streams, annotations=B.annotations(rows), meta=meta,
                    t0=B.EPOCH + 3600.0 * i)
    return rec, {"participant_id": sid, "sex": sex, "age": age, "intent": intent,
                 "satisfaction": label, "has_wearable": bool(plan_i["wearable"])}

