"""mmlab.systems.alerts (consensus alerting) and mmlab.evaluate's event metrics, with planted answers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mmlab import evaluate as E
from mmlab.errors import SchemaError, SignalError
from mmlab.systems.alerts import Alert, ConsensusAlerter, consensus_alerts

FAST = dict(min_duration_s=0.0, refractory_s=0.0)


def _table(t, **cols):
    return pd.DataFrame({m: np.asarray(v, dtype=float) for m, v in cols.items()}, index=np.arange(len(t)))


def _spans(alerts):
    return [(a.onset, a.raised_at, a.end) for a in alerts]


# ------------------------------------------------------------------------------ hysteresis
def test_hysteresis_a_probability_between_off_and_on_does_not_toggle():
    t = np.arange(12.0)
    # ecg crosses on at t=2, then oscillates between off (0.5) and on (0.7): keeps voting;
    # drops below off at t=10.
    ecg = [0.1, 0.1, 0.8, 0.55, 0.69, 0.51, 0.6, 0.52, 0.68, 0.5, 0.49, 0.6]
    eda = [0.9] * 12
    alerts = consensus_alerts(t, _table(t, ecg=ecg, eda=eda), k=2, **FAST)
    assert _spans(alerts) == [(2.0, 2.0, 10.0)]
    # 0.6 at t=11 is above off but below on: a vote that stopped does not restart
    al = ConsensusAlerter(k=1, on=0.7, off=0.5, **FAST)
    events = [len(al.update(ti, {"ecg": p})) for ti, p in zip(t, ecg)]
    assert events == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0]
    # without hysteresis (off == on) the same signal toggles four times
    flip = consensus_alerts(t, _table(t, ecg=ecg), k=1, on=0.6, off=0.6, **FAST)
    assert _spans(flip) == [(2.0, 2.0, 3.0), (4.0, 4.0, 5.0), (6.0, 6.0, 7.0), (8.0, 8.0, 9.0),
                            (11.0, 11.0, 11.0)]


# ------------------------------------------------------------------------------ k of n
def test_k_of_n_an_absent_modality_does_not_vote_and_shrinks_n():
    t = np.arange(10.0)
    hot = (t >= 3) & (t < 8)
    P = _table(t, ecg=np.where(hot, 0.9, 0.1), eda=np.where(hot, 0.9, 0.1), resp=np.full(10, 0.95))
    # resp is absent throughout: its high probability must not count
    present = pd.DataFrame({"resp": np.zeros(10, bool)})
    alerts = consensus_alerts(t, P, present, k=2, **FAST)
    assert _spans(alerts) == [(3.0, 3.0, 8.0)]
    assert alerts[0].n_present == 2 and set(alerts[0].voters) == {"ecg", "eda"}
    # with resp present it votes from t=0: consensus with ecg and eda from t=3 only (k=2 needs two)
    both = consensus_alerts(t, P, k=2, **FAST)
    assert _spans(both) == [(3.0, 3.0, 8.0)] and both[0].n_present == 3
    assert set(both[0].voters) == {"ecg", "eda", "resp"}
    # k=3 with resp absent: fewer than k present, no alert can be raised
    assert consensus_alerts(t, P, present, k=3, **FAST) == []
    # a single present modality cannot raise a k=2 alert, however sure it is
    assert consensus_alerts(t, _table(t, ecg=np.ones(10)), k=2, **FAST) == []


def test_nan_probability_is_absent():
    t = np.arange(10.0)
    P = _table(t, ecg=np.full(10, 0.9), eda=np.full(10, 0.9), resp=np.full(10, np.nan))
    assert consensus_alerts(t, P, k=3, **FAST) == []
    a = consensus_alerts(t, P, k=2, **FAST)
    assert _spans(a) == [(0.0, 0.0, 9.0)] and a[0].n_present == 2 and a[0].end_reason == "finished"
    # NaN in a voter mid-way ends the consensus (the modality is absent, not "no")
    P2 = P.copy()
    P2.loc[5, "eda"] = np.nan
    assert _spans(consensus_alerts(t, P2, k=2, **FAST)) == [(0.0, 0.0, 5.0), (6.0, 6.0, 9.0)]


def test_min_quality_makes_a_bad_modality_absent():
    t = np.arange(6.0)
    P = _table(t, ecg=np.full(6, 0.9), eda=np.full(6, 0.9))
    Q = _table(t, ecg=np.full(6, 0.9), eda=[0.9, 0.9, 0.1, 0.1, 0.9, 0.9])
    a = consensus_alerts(t, P, quality=Q, k=2, min_quality=0.5, **FAST)
    assert _spans(a) == [(0.0, 0.0, 2.0), (4.0, 4.0, 5.0)]
    # a NaN quality counts as bad when min_quality is set
    Qn = Q.copy()
    Qn.loc[3, "ecg"] = np.nan
    assert _spans(consensus_alerts(t, P, quality=Qn, k=2, min_quality=0.5, **FAST)) == [(0.0, 0.0, 2.0), (4.0, 4.0, 5.0)]
    Qn.loc[1, "ecg"] = np.nan
    assert _spans(consensus_alerts(t, P, quality=Qn, k=2, min_quality=0.5, **FAST)) == [(0.0, 0.0, 1.0), (4.0, 4.0, 5.0)]
    with pytest.raises(SignalError, match="min_quality must be >= 0"):
        ConsensusAlerter(min_quality=-1)
    # without min_quality the quality is only recorded
    b = consensus_alerts(t, P, quality=Q, k=2, **FAST)
    assert _spans(b) == [(0.0, 0.0, 5.0)]
    assert b[0].quality["ecg"] == pytest.approx(0.9)
    assert b[0].quality["eda"] == pytest.approx((0.9 * 4 + 0.2) / 6)


# ------------------------------------------------------------------------------ duration, refractory
def test_min_duration_short_bursts_raise_nothing_and_the_raise_time_is_onset_plus_T():
    t = np.arange(0.0, 200.0, 5.0)
    hot = ((t >= 20) & (t < 45)) | ((t >= 100) & (t < 160))  # 25 s burst, then 60 s episode
    P = _table(t, ecg=np.where(hot, 0.9, 0.1), eda=np.where(hot, 0.9, 0.1))
    a = consensus_alerts(t, P, k=2, min_duration_s=30, refractory_s=0)
    assert _spans(a) == [(100.0, 130.0, 160.0)]
    assert a[0].duration == 60.0
    # a burst of exactly T (consensus at 20..50 inclusive of 50) is raised at onset + T
    hot2 = (t >= 20) & (t <= 50)
    P2 = _table(t, ecg=np.where(hot2, 0.9, 0.1), eda=np.where(hot2, 0.9, 0.1))
    assert _spans(consensus_alerts(t, P2, k=2, min_duration_s=30, refractory_s=0)) == [(20.0, 50.0, 55.0)]
    # irregular updates: raised at the first update at or after onset + T
    al = ConsensusAlerter(k=2, min_duration_s=30, refractory_s=0)
    for ti in (0.0, 7.0, 29.0, 41.0):
        al.update(ti, {"ecg": 0.9, "eda": 0.9})
    assert _spans(al.alerts) == [(0.0, 41.0, None)]


def test_refractory_period_suppresses_and_delays():
    t = np.arange(0.0, 400.0, 10.0)
    hot = ((t >= 0) & (t < 50)) | ((t >= 100) & (t < 150)) | ((t >= 200) & (t < 300))
    P = _table(t, ecg=np.where(hot, 0.9, 0.1), eda=np.where(hot, 0.9, 0.1))
    # first alert ends at 50; second consensus (100-150) falls in the refractory (until 250):
    # suppressed; the third (onset 200) is raised when the refractory ends, at 250
    a = consensus_alerts(t, P, k=2, min_duration_s=20, refractory_s=200)
    assert _spans(a) == [(0.0, 20.0, 50.0), (200.0, 250.0, 300.0)]
    # without refractory all three are raised
    b = consensus_alerts(t, P, k=2, min_duration_s=20, refractory_s=0)
    assert _spans(b) == [(0.0, 20.0, 50.0), (100.0, 120.0, 150.0), (200.0, 220.0, 300.0)]


# ------------------------------------------------------------------------------ provenance
def test_provenance_contents_and_json():
    t = np.arange(0.0, 10.0)
    ecg = [0.1, 0.8, 0.9, 0.7, 0.6, 0.2, 0.1, 0.1, 0.1, 0.1]
    eda = [0.1, 0.75, 0.85, 0.95, 0.9, 0.3, 0.1, 0.1, 0.1, 0.1]
    resp = [0.1, 0.2, 0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    Q = _table(t, ecg=np.full(10, 0.8), eda=np.full(10, 0.6), resp=np.full(10, 1.0))
    fused = [0.1, 0.6, 0.8, 0.7, 0.6, 0.2, 0.1, 0.1, 0.1, 0.1]
    a, = consensus_alerts(t, _table(t, ecg=ecg, eda=eda, resp=resp), quality=Q, fused=fused,
                          k=2, on=0.7, off=0.5, min_duration_s=2, refractory_s=0)
    assert (a.onset, a.raised_at, a.end, a.duration) == (1.0, 3.0, 5.0, 4.0)
    assert a.n_present == 3 and a.k == 2 and a.end_reason == "consensus_dropped"
    assert set(a.voters) == {"ecg", "eda"}                       # resp never voted
    assert a.voters["ecg"] == {"max": 0.9, "mean": pytest.approx(0.75), "n": 4}
    assert a.voters["eda"]["max"] == 0.95 and a.voters["eda"]["mean"] == pytest.approx(0.8625)
    assert a.quality == {"ecg": pytest.approx(0.8), "eda": pytest.approx(0.6)}
    assert a.fused == pytest.approx(0.675) and a.fused_max == 0.8
    d = json.loads(json.dumps(a.to_dict()))
    assert d["onset"] == 1.0 and d["duration"] == 4.0 and d["voters"]["ecg"]["n"] == 4
    assert d["end_reason"] == "consensus_dropped" and d["fused_max"] == 0.8
    back = Alert.from_dict(d)
    assert back == a and back.to_dict() == a.to_dict()
    with pytest.raises(SchemaError, match="unknown fields \\['colour'\\]"):
        Alert.from_dict({**d, "colour": "red"})
    with pytest.raises(SchemaError, match="'onset' and 'raised_at'"):
        Alert.from_dict({"end": 3.0})
    open_alert = Alert(onset=0.0, raised_at=3.0)
    assert open_alert.is_open and open_alert.duration is None and open_alert.to_dict()["end"] is None


def test_an_open_alert_is_updated_in_place_and_closed_by_finish():
    al = ConsensusAlerter(k=2, min_duration_s=0, refractory_s=0)
    raised = al.update(0.0, {"a": 0.8, "b": 0.8})
    assert len(raised) == 1 and raised[0].end is None
    assert al.update(1.0, {"a": 1.0, "b": 0.8}) == []
    assert raised[0].voters["a"]["max"] == 1.0                    # provenance grows while open
    closed = al.finish(4.0)
    assert closed == raised and closed[0].end == 4.0 and closed[0].end_reason == "finished"
    assert al.finish(5.0) == []


def test_a_gap_between_updates_breaks_consensus_when_max_gap_is_set():
    t = np.array([0.0, 5.0, 10.0, 100.0, 105.0, 110.0, 115.0])
    P = _table(t, ecg=np.full(7, 0.9), eda=np.full(7, 0.9))
    # without max_gap_s the 90-s hole counts as consensus: raised at 100 from onset 0
    assert _spans(consensus_alerts(t, P, min_duration_s=20, refractory_s=0)) == [(0.0, 100.0, 115.0)]
    # with it, consensus restarts after the hole: onset 100, raised at 120 -> never (data ends at 115)
    assert consensus_alerts(t, P, min_duration_s=20, refractory_s=0, max_gap_s=30) == []
    # an open alert ends at the last update before the hole
    al = ConsensusAlerter(min_duration_s=5, refractory_s=0, max_gap_s=30)
    for ti in t[:3]:
        al.update(ti, {"ecg": 0.9, "eda": 0.9})
    ended = al.update(100.0, {"ecg": 0.9, "eda": 0.9})
    assert [(a.raised_at, a.end, a.end_reason) for a in ended] == [(5.0, 10.0, "gap")]
    with pytest.raises(SignalError, match="max_gap_s must be >= 0"):
        ConsensusAlerter(max_gap_s=-5)


# ------------------------------------------------------------------------------ batch == stream
def _random_table(seed: int, n: int = 600):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.uniform(0.5, 2.0, n))
    state = (np.sin(t / 40.0) > 0.3).astype(float)
    cols = {m: np.clip(0.25 + 0.5 * state + rng.normal(0, 0.2, n), 0, 1) for m in ("ecg", "eda", "resp", "acc")}
    P = pd.DataFrame(cols)
    P.loc[rng.random(n) < 0.05, "resp"] = np.nan
    present = pd.DataFrame({"acc": rng.random(n) > 0.1})
    Q = pd.DataFrame({m: rng.uniform(0, 1, n) for m in cols})
    fused = P.mean(axis=1, skipna=True).to_numpy()
    return t, P, present, Q, fused


@pytest.mark.parametrize("seed", [0, 1])
def test_streaming_equals_batch_row_by_row_and_in_irregular_chunks(seed):
    t, P, present, Q, fused = _random_table(seed)
    params = dict(k=2, on=0.7, off=0.5, min_duration_s=10.0, refractory_s=60.0, min_quality=0.05,
                  max_gap_s=1.9)
    batch = consensus_alerts(t, P, present, quality=Q, fused=fused, **params)
    assert len(batch) >= 3                                       # the planted states are found
    want = [a.to_dict() for a in batch]

    al = ConsensusAlerter(**params)
    events = []
    for i in range(len(t)):
        events += al.update(t[i], dict(P.iloc[i]), dict(present.iloc[i]), quality=dict(Q.iloc[i]),
                            fused=fused[i])
    events += al.finish(t[-1])
    assert [a.to_dict() for a in al.alerts] == want
    assert len(events) == 2 * len(batch)                         # each alert raised once, ended once

    # irregular chunks: one consensus_alerts call per chunk cannot keep state, the alerter can
    rng = np.random.default_rng(seed + 10)
    cuts = np.sort(rng.choice(np.arange(1, len(t)), size=40, replace=False))
    al2 = ConsensusAlerter(**params)
    for chunk in np.split(np.arange(len(t)), cuts):
        for i in chunk:
            al2.update(t[i], P.iloc[i].to_dict(), present.iloc[i].to_dict(), quality=Q.iloc[i].to_dict(),
                       fused=fused[i])
    al2.finish()
    assert [a.to_dict() for a in al2.alerts] == want


def test_a_modality_dropping_out_and_coming_back_gives_no_burst():
    # ecg and eda agree throughout a 100-s episode; resp, a third voter, drops out for 30 s
    # while at a high probability and comes back at a middling one (between off and on):
    # it must not vote on return (its vote was reset), and nothing else changes.
    t = np.arange(0.0, 300.0, 1.0)
    hot = (t >= 100) & (t < 200)
    ecg = np.where(hot, 0.9, 0.1)
    eda = np.where(t < 150, ecg, 0.1)          # eda stops agreeing at 150
    resp = np.where(t < 120, np.where(hot, 0.9, 0.1), 0.6)
    present = pd.DataFrame({"resp": (t < 120) | (t >= 150)})
    P = _table(t, ecg=ecg, eda=eda, resp=resp)
    a = consensus_alerts(t, P, present, k=2, min_duration_s=10, refractory_s=60)
    # consensus 100..150 (ecg+eda, resp too until 120); at 150 eda stops, resp is back at 0.6
    # but does not vote: the alert ends, and no second alert follows
    assert _spans(a) == [(100.0, 110.0, 150.0)]
    assert a[0].n_present == 3 and a[0].voters["resp"]["n"] == 20
    # if its vote were kept across the gap (0.6 >= off), it would have held consensus to 200
    P_keep = P.copy()
    P_keep["resp"] = np.where(hot, 0.9, 0.1)
    assert _spans(consensus_alerts(t, P_keep, k=2, min_duration_s=10, refractory_s=60)) == [(100.0, 110.0, 200.0)]
    # all modalities gone for a while mid-stream: no crash, no alert
    al = ConsensusAlerter(k=2, min_duration_s=0, refractory_s=0)
    assert al.update(0.0, {}) == [] and al.update(1.0, {"ecg": np.nan}) == []


# ------------------------------------------------------------------------------ bad input
def test_decreasing_times_are_an_error():
    al = ConsensusAlerter()
    al.update(10.0, {"ecg": 0.5})
    al.update(10.0, {"ecg": 0.5})                                # equal times are fine
    with pytest.raises(SignalError, match="back in time.*9 s after 10 s"):
        al.update(9.0, {"ecg": 0.5})
    with pytest.raises(SignalError, match="finish time"):
        al.finish(5.0)
    with pytest.raises(SignalError, match="update time t must be a finite number"):
        al.update(float("nan"), {"ecg": 0.5})
    with pytest.raises(SignalError, match="non-decreasing"):
        consensus_alerts([0.0, 2.0, 1.0], _table([0, 1, 2], ecg=[0.1, 0.2, 0.3]))


@pytest.mark.parametrize("kwargs, match", [
    (dict(k=0), "k .* must be >= 1"),
    (dict(k=1.5), "k .* whole number"),
    (dict(k=True), "k .* whole number"),
    (dict(on=1.2), "on .* must be <= 1"),
    (dict(off=-0.1), "off .* must be >= 0"),
    (dict(on=0.4, off=0.6), "off must be <= on"),
    (dict(min_duration_s=-1), "min_duration_s must be >= 0"),
    (dict(refractory_s=float("nan")), "refractory_s must be a finite number"),
])
def test_bad_parameters_are_named(kwargs, match):
    with pytest.raises(SignalError, match=match):
        ConsensusAlerter(**kwargs)


def test_bad_inputs_are_named():
    al = ConsensusAlerter()
    with pytest.raises(SignalError, match="probability of modality 'ecg' must be in \\[0, 1\\]"):
        al.update(0.0, {"ecg": 1.5})
    with pytest.raises(SignalError, match="probability of modality 'ecg' must be finite"):
        al.update(0.0, {"ecg": np.inf})
    # a rejected update changes nothing: the state is as before it
    al2 = ConsensusAlerter()
    al2.update(1.0, {"ecg": 0.9, "eda": 0.9})
    with pytest.raises(SignalError, match="'eda'"):
        al2.update(2.0, {"ecg": 0.1, "eda": -0.5})
    assert al2.voting == {"ecg": True, "eda": True}
    al2.update(1.5, {"ecg": 0.9, "eda": 0.9})                   # the rejected time was not kept
    with pytest.raises(SchemaError, match="proba must be a mapping"):
        al.update(0.0, [0.5])
    with pytest.raises(SignalError, match="fused probability"):
        al.update(0.0, {"ecg": 0.5}, fused=2.0)
    t = [0.0, 1.0]
    with pytest.raises(SchemaError, match="proba has 3 rows but times has 2"):
        consensus_alerts(t, _table([0, 1, 2], ecg=[0.1, 0.2, 0.3]))
    with pytest.raises(SchemaError, match="present names modalities that proba lacks"):
        consensus_alerts(t, _table(t, ecg=[0.1, 0.2]), pd.DataFrame({"eeg": [True, True]}))
    with pytest.raises(SchemaError, match=r"quality names modalities that proba lacks: \['eda'\]"):
        consensus_alerts(t, _table(t, ecg=[0.1, 0.2]), quality=pd.DataFrame({"eda": [1.0, 1.0]}))
    dup = pd.DataFrame([[0.1, 0.2], [0.3, 0.4]], columns=["ecg", "ecg"])
    with pytest.raises(SchemaError, match="duplicate modality columns"):
        consensus_alerts(t, dup)
    with pytest.raises(SchemaError, match="fused has 3 values"):
        consensus_alerts(t, _table(t, ecg=[0.1, 0.2]), fused=[0.1, 0.2, 0.3])
    with pytest.raises(SchemaError, match="DataFrame"):
        consensus_alerts(t, {"ecg": [0.1, 0.2]})
    with pytest.raises(TypeError):
        consensus_alerts(t, _table(t, ecg=[0.1, 0.2]), kk=2)


# ------------------------------------------------------------------------------ event metrics
def test_episodes_from_labels():
    t = np.arange(0.0, 100.0, 10.0)
    lab = ["rest", "stress", "stress", "rest", None, "stress", "rest", "rest", "stress", "stress"]
    assert E.episodes_from_labels(t, lab) == [(10.0, 30.0), (50.0, 60.0), (80.0, 100.0)]
    assert E.episodes_from_labels(t, lab, step_s=5) == [(10.0, 30.0), (50.0, 60.0), (80.0, 95.0)]
    assert E.episodes_from_labels(t, np.array(lab) == "rest", positive=True)[0] == (0.0, 10.0)
    assert E.episodes_from_labels([], []) == []
    with pytest.raises(SchemaError, match="10 times but 3 labels"):
        E.episodes_from_labels(t, lab[:3])
    with pytest.raises(SignalError, match="non-decreasing"):
        E.episodes_from_labels([0, 2, 1], ["a", "b", "c"])


def test_event_metrics_hand_computed():
    episodes = [(100.0, 400.0), (1000.0, 1300.0), (2000.0, 2100.0)]
    alerts = [
        Alert(onset=90.0, raised_at=130.0, end=200.0),     # detects ep 1, latency 30
        Alert(onset=300.0, raised_at=350.0, end=380.0),    # second alert in ep 1: not false
        Alert(onset=1050.0, raised_at=1090.0, end=1400.0), # detects ep 2, latency 90
        (2120.0, 2200.0),                                  # 20 s after ep 3 ends: only with grace
        (5000.0, 5100.0),                                  # false
        Alert(onset=6000.0, raised_at=6030.0),             # open, false
    ]
    m = E.event_metrics(alerts, episodes, total_time_s=10_000.0)
    assert m["n_alerts"] == 6 and m["n_episodes"] == 3 and m["n_detected"] == 2
    assert m["event_recall"] == pytest.approx(2 / 3)
    assert m["latencies_s"] == [30.0, 90.0] and m["latency_median_s"] == 60.0
    # 3 false alerts (2120, 5000, 6030) in 10000 - 700 = 9300 s of non-stress time
    assert m["n_false_alerts"] == 3 and m["non_stress_time_s"] == 9300.0
    assert m["false_alerts_per_hour"] == pytest.approx(3 / (9300 / 3600))
    g = E.event_metrics(alerts, episodes, non_stress_time_s=7200.0, grace_s=30.0)
    assert g["event_recall"] == 1.0 and g["latencies_s"] == [30.0, 90.0, 120.0]
    assert g["latency_median_s"] == 90.0 and g["n_false_alerts"] == 2
    assert g["false_alerts_per_hour"] == pytest.approx(1.0)
    # an alert raised before an episode and still active at its start: neither detection nor false
    pre = E.event_metrics([(50.0, 150.0)], [(100.0, 400.0)], total_time_s=3600.0)
    assert pre["n_detected"] == 0 and pre["n_false_alerts"] == 0
    none = E.event_metrics([], [])
    assert np.isnan(none["event_recall"]) and np.isnan(none["latency_median_s"])
    assert np.isnan(none["false_alerts_per_hour"]) and none["n_alerts"] == 0


def test_event_metrics_from_the_alerter_end_to_end():
    t = np.arange(0.0, 3600.0, 5.0)
    lab = np.where(((t >= 600) & (t < 900)) | ((t >= 2000) & (t < 2300)), "stress", "rest")
    hot = lab == "stress"
    rng = np.random.default_rng(3)
    P = _table(t, ecg=np.where(hot, 0.9, 0.2), eda=np.where(hot, 0.85, 0.2),
               resp=np.where(hot | (rng.random(len(t)) < 0.05), 0.9, 0.2))   # resp: spurious spikes
    eps = E.episodes_from_labels(t, lab)
    assert eps == [(600.0, 900.0), (2000.0, 2300.0)]
    alerts = consensus_alerts(t, P, k=2, min_duration_s=30, refractory_s=300)
    m = E.event_metrics(alerts, eps, total_time_s=3600.0)
    assert m["event_recall"] == 1.0 and m["latency_median_s"] == 30.0 and m["n_false_alerts"] == 0
    # the single noisy modality alone (k=1, no minimum duration) cries wolf
    single = consensus_alerts(t, P[["resp"]], k=1, min_duration_s=0, refractory_s=0)
    assert E.event_metrics(single, eps, total_time_s=3600.0)["false_alerts_per_hour"] > 5


def test_event_metrics_bad_input():
    with pytest.raises(SchemaError, match="raised_at/onset/end"):
        E.event_metrics([3.0], [(0.0, 1.0)])
    with pytest.raises(SignalError, match="end >= raised_at"):
        E.event_metrics([(5.0, 1.0)], [])
    with pytest.raises(SignalError, match="end >= start"):
        E.event_metrics([], [(5.0, 1.0)])
    with pytest.raises(SignalError, match="grace_s must be >= 0"):
        E.event_metrics([], [], grace_s=-1)
