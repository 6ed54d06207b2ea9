"""Labelled intervals against the recording span: inside, clipped, outside, and a stress label
the signals do not cover (an error), on planted intervals and on the Stress-Predict sample."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmlab.io as mio
from mmlab.errors import SchemaError
from mmlab.io._common import LABEL_SPAN_COLUMNS, check_label_span, label_span_table, recording_span
from mmlab.recording import Recording, Stream


def planted(rows) -> Recording:
    """A 100 s recording (EDA at 4 Hz from 0 s, HR at 1 Hz from 10 s) with the given phases."""
    streams = [Stream("eda", np.zeros(400), "eda", rate=4.0),
               Stream("hr", np.full(90, 70.0), "hr", rate=1.0, start=10.0)]
    ann = [{"onset": on, "duration": off - on, "kind": kind, "label": label, "stress": stress}
           for label, on, off, stress, kind in rows]
    return Recording("P01", streams, annotations=ann)


PLANTED = [("consent", -30.0, -10.0, 0, "phase"),    # before the device was worn
           ("baseline", -5.0, 5.0, 0, "phase"),      # straddles the start
           ("stroop", 10.0, 40.0, 1, "phase"),       # a stress phase well inside
           ("relax", 40.0, 100.0, 0, "phase"),       # ends exactly at the span end
           ("recovery", 95.0, 105.0, 0, "phase"),    # straddles the end
           ("debrief", 120.0, 130.0, 0, "phase"),    # after the recording
           ("tag", 30.0, 30.0, 0, "event")]          # not a labelled interval: not checked


def test_planted_statuses_and_report_columns():
    """Each planted interval gets its status; the span is the earliest start to the latest end."""
    rec = planted(PLANTED)
    assert recording_span(rec) == (0.0, 100.0)
    report = check_label_span(rec)
    assert tuple(report.columns) == LABEL_SPAN_COLUMNS
    assert dict(zip(report["phase"], report["status"])) == {
        "consent": "outside", "baseline": "clipped", "stroop": "inside", "relax": "inside",
        "recovery": "clipped", "debrief": "outside"}
    assert (report["span_start"] == 0.0).all() and (report["span_end"] == 100.0).all()
    assert report.loc[report["phase"] == "stroop", "stress"].item() == 1
    np.testing.assert_array_equal(report["onset"], [-30.0, -5.0, 10.0, 40.0, 95.0, 120.0])
    np.testing.assert_array_equal(report["end"], [-10.0, 5.0, 40.0, 100.0, 105.0, 130.0])
    assert set(report["subject"]) == {"P01"}
    # checking alone leaves the recording untouched
    assert len(rec.phases()) == 6 and "label_span" not in rec.meta


def test_clip_cuts_drops_and_reports():
    """clip=True cuts straddling phases to the span, removes outside ones and names them."""
    rec = planted(PLANTED)
    check_label_span(rec, clip=True)
    ph = rec.phases()
    assert list(ph["label"]) == ["baseline", "stroop", "relax", "recovery"]
    np.testing.assert_array_equal(ph["onset"], [0.0, 10.0, 40.0, 95.0])
    np.testing.assert_array_equal(ph["duration"], [5.0, 30.0, 60.0, 5.0])
    assert list(rec.phases("event")["onset"]) == [30.0]  # events are kept as they were
    statuses = {r["phase"]: r["status"] for r in rec.meta["label_span"]}
    assert statuses["consent"] == "outside" and statuses["baseline"] == "clipped"
    assert rec.meta["labels_outside"] == ["consent (-30 .. -10 s; span 0 .. 100 s)",
                                          "debrief (120 .. 130 s; span 0 .. 100 s)"]


@pytest.mark.parametrize("on, off, how", [(-5.0, 20.0, "partly"), (95.0, 110.0, "partly"),
                                          (150.0, 200.0, "entirely"), (-60.0, -1.0, "entirely")])
def test_stress_phase_outside_the_span_is_an_error(on, off, how):
    """A stress phase not fully inside names subject, phase, interval and span."""
    rec = planted([("relax", 0.0, 10.0, 0, "phase"), ("interview", on, off, 1, "phase")])
    with pytest.raises(SchemaError, match=rf"'P01'.*stress-labelled phase 'interview' at {on:g} \.\. "
                                          rf"{off:g} s is {how} outside the recording span 0 \.\. 100 s"):
        check_label_span(rec, clip=True)
    assert len(rec.phases()) == 2  # nothing was changed before the error


def test_stress_by_label_name_and_explicit_span():
    """Without a stress column, stress_labels decides; span= overrides the streams' span."""
    rec = Recording("P02", [Stream("eda", np.zeros(400), "eda", rate=4.0)],
                    annotations=[{"onset": 50.0, "duration": 30.0, "kind": "phase", "label": "stress"}])
    assert check_label_span(rec)["status"].item() == "inside"
    assert check_label_span(rec, span=(0.0, 70.0))["status"].item() == "clipped"  # not stress: fine
    with pytest.raises(SchemaError, match="'P02' \\(labels.csv\\): stress-labelled phase 'stress'"):
        check_label_span(rec, stress_labels=("stress",), span=(0.0, 70.0), source="labels.csv")
    with pytest.raises(SchemaError, match="span"):
        check_label_span(rec, span=(10.0, 5.0))


def test_no_streams_no_span():
    """A recording without streams has no span to check against: an error, not 'all outside'."""
    rec = Recording("P03", annotations=[{"onset": 0.0, "duration": 1.0, "kind": "phase", "label": "a"}])
    with pytest.raises(SchemaError, match="'P03' has no streams"):
        check_label_span(rec)


# --------------------------------------------------------------- the readers call it
T0 = 1644227574.0  # 2022-02-07 09:52:54 UTC = Irish local time in February


def make_e4(folder: Path, seconds: int, start: float = T0) -> None:
    """The E4 files read_e4 needs, constant values (only the span matters here)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rate, n_ch in (("EDA", 4, 1), ("BVP", 64, 1), ("ACC", 32, 3), ("TEMP", 4, 1), ("HR", 1, 1)):
        head = [", ".join([f"{start:.6f}"] * n_ch), ", ".join([f"{rate:.6f}"] * n_ch)]
        (folder / f"{name}.csv").write_text("\n".join(head + [",".join(["1"] * n_ch)] * (rate * seconds)) + "\n")
    (folder / "IBI.csv").write_text(f"{start:.6f}, IBI\n5.0,0.8\n")


def make_root(root: Path, rows, seconds: int = 120) -> Path:
    make_e4(root / "Raw_data" / "S02", seconds)
    (root / "Processed_data").mkdir(parents=True)
    pd.DataFrame([("S02", "2022-02-07", p, a, b) for p, a, b in rows],
                 columns=["subject", "date", "phase", "start_local", "end_local"]).to_csv(
        root / "Processed_data" / "segments_from_time_logs.csv", index=False)
    return root


def test_stress_predict_reader_clips_and_reports(tmp_path):
    """Consent before the E4 started is removed and reported; a straddling baseline is clipped."""
    root = make_root(tmp_path, [("Consent", "09:48:00", "09:50:00"),
                                ("Baseline/Questionniare", "09:52:00", "09:53:00"),
                                ("Stroop Test", "09:53:00", "09:54:00")])
    rec = mio.read_stress_predict_subject(root, "S02")
    ph = rec.phases()
    assert list(ph["label"]) == ["baseline_questionnaire", "stroop"]
    np.testing.assert_array_equal(ph["onset"], [0.0, 6.0])  # 09:52:00 is 54 s before the start
    np.testing.assert_array_equal(ph["duration"], [6.0, 60.0])
    assert [r["status"] for r in rec.meta["label_span"]] == ["outside", "clipped", "inside"]
    assert rec.meta["labels_outside"] == ["consent (-294 .. -174 s; span 0 .. 120 s)"]
    table = label_span_table([rec, mio.read_stress_predict_subject(root, "S02", labels=None)])
    assert list(table["phase"]) == ["consent", "baseline_questionnaire", "stroop"]
    assert label_span_table([]).columns.tolist() == list(LABEL_SPAN_COLUMNS)


def test_stress_predict_reader_fails_on_a_stress_phase_past_the_end(tmp_path):
    """A time log whose interview runs past the recording fails at read time, naming the log."""
    root = make_root(tmp_path, [("Stroop Test", "09:53:00", "09:54:00"),
                                ("Interview", "09:54:00", "09:58:00")])
    with pytest.raises(SchemaError, match=r"'S02' \(.*segments_from_time_logs\.csv, subject S02\): "
                                          r"stress-labelled phase 'interview' at 66 \.\. 306 s is partly "
                                          r"outside the recording span 0 \.\. 120 s"):
        mio.read_stress_predict(root)


def make_wesad(path: Path, codes: np.ndarray, wrist_seconds: float) -> Path:
    """A WESAD-shaped pickle: chest at 700 Hz as long as the labels, wrist as long as asked."""
    n = codes.size
    chest = {k: np.zeros((n, 3 if k == "ACC" else 1)) for k in ("ACC", "ECG", "EMG", "EDA", "Temp", "Resp")}
    wrist = {k: np.zeros((int(rate * wrist_seconds), 3 if k == "ACC" else 1))
             for k, rate in (("ACC", 32), ("BVP", 64), ("EDA", 4), ("TEMP", 4))}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump({"signal": {"chest": chest, "wrist": wrist}, "label": codes, "subject": path.stem}, fh,
                    protocol=2)
    return path


def test_wesad_reader_checks_the_span(tmp_path):
    """Label runs of a full read are inside; a wrist-only read whose streams end before a final
    stress run is an error, and one ending before a final transient run is clipped."""
    codes = np.repeat([0, 1, 2], 700 * 4)  # transient, baseline, stress: 4 s each
    pkl = make_wesad(tmp_path / "S2" / "S2.pkl", codes, wrist_seconds=11.5)
    rec = mio.read_wesad_subject(pkl)
    assert [r["status"] for r in rec.meta["label_span"]] == ["inside"] * 3
    assert [r["stress"] for r in rec.meta["label_span"]] == [0, 0, 1]
    with pytest.raises(SchemaError, match=r"'S2' \(.*S2\.pkl\): stress-labelled phase 'stress' at 8 \.\. 12 s"):
        mio.read_wesad_subject(pkl, chest=False)
    pkl = make_wesad(tmp_path / "S3" / "S3.pkl", np.repeat([1, 2, 0], 700 * 4), wrist_seconds=11.5)
    rec = mio.read_wesad_subject(pkl, chest=False)
    assert [r["status"] for r in rec.meta["label_span"]] == ["inside", "inside", "clipped"]
    assert rec.phases()["duration"].tolist() == [4.0, 4.0, 3.5]


# ------------------------------------------------------------------------- real data
#: Stress-Predict sample: the phases that are not fully inside each subject's E4 recording.
EXPECTED_NOT_INSIDE = {
    "S02": {"consent": "outside", "baseline_questionnaire": "clipped"},
    "S03": {"consent": "outside", "baseline_questionnaire": "clipped"},
    "S04": {"consent": "clipped"},
    "S05": {"consent": "outside", "baseline_questionnaire": "clipped"},
    "S06": {"consent": "outside", "baseline_questionnaire": "clipped"},
    "S07": {"consent": "outside"},
    "S08": {"consent": "outside", "baseline_questionnaire": "clipped", "relax_baseline": "clipped"},
    "S09": {"consent": "outside", "baseline_questionnaire": "clipped"},
    "S10": {"consent": "outside", "baseline_questionnaire": "clipped", "relax_baseline": "clipped"},
}


@pytest.mark.realdata
def test_stress_predict_sample_label_spans(data_dir):
    """S02-S10: every stress phase is inside; Consent is outside except for S04; S02's Consent
    (-294 s) is removed and its Baseline/Questionniare (-54 s) is clipped to start at 0."""
    root = data_dir / "stress_predict"
    if not root.is_dir():
        pytest.skip(f"{root} is not there")
    cohort = mio.read_stress_predict(root)
    report = label_span_table(cohort)
    assert len(report) == 90 and set(report["subject"]) == set(EXPECTED_NOT_INSIDE)
    stress = report[report["stress"] == 1]
    assert len(stress) == 27 and (stress["status"] == "inside").all()
    for subject, expected in EXPECTED_NOT_INSIDE.items():
        mine = report[(report["subject"] == subject) & (report["status"] != "inside")]
        assert dict(zip(mine["phase"], mine["status"])) == expected, subject
        assert len(cohort[subject].phases()) == 10 - list(expected.values()).count("outside")
    s02 = report[report["subject"] == "S02"].set_index("phase")
    assert (s02.loc["consent", "onset"], s02.loc["consent", "end"]) == (-294.0, -174.0)
    assert s02.loc["baseline_questionnaire", "onset"] == -54.0
    first = cohort["S02"].phases().iloc[0]
    assert (first["label"], first["onset"], first["duration"]) == ("baseline_questionnaire", 0.0, 546.0)
