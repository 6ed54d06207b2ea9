"""Unit tests of mmlab.io on small files built in tmp_path (no real data, no network)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import mmlab.io as mio
from mmlab.errors import DataFormatError, DatasetError, MMLabError
from mmlab.io import registry
from mmlab.recording import Cohort

T0 = 1644227574.0  # 2022-02-07 09:52:54 UTC (Irish time = UTC in February)


# =============================================================== Empatica E4 / Stress-Predict
def _e4_csv(path: Path, start: float, rate: float, data: np.ndarray, rate_text: str | None = None) -> None:
    data = np.atleast_2d(np.asarray(data, dtype=float).T).T
    n_ch = data.shape[1]
    rate_cell = rate_text if rate_text is not None else f"{rate:.6f}"
    lines = [", ".join([f"{start:.6f}"] * n_ch), ", ".join([rate_cell] * n_ch)]
    lines += [",".join(f"{v:g}" for v in row) for row in data]
    path.write_text("\n".join(lines) + "\n")


def make_e4(folder: Path, start: float = T0, seconds: int = 40) -> Path:
    """A tiny but complete E4 export: known values so reading can be checked exactly."""
    folder.mkdir(parents=True, exist_ok=True)
    _e4_csv(folder / "EDA.csv", start, 4, np.linspace(0.1, 1.0, 4 * seconds))
    _e4_csv(folder / "BVP.csv", start, 64, np.sin(np.arange(64 * seconds) / 10))
    acc = np.tile([64.0, -32.0, 0.0], (32 * seconds, 1))
    _e4_csv(folder / "ACC.csv", start, 32, acc)
    _e4_csv(folder / "TEMP.csv", start, 4, np.full(4 * seconds, 33.5))
    _e4_csv(folder / "HR.csv", start + 10, 1, np.full(seconds - 10, 70.0))
    (folder / "IBI.csv").write_text(f"{start:.6f}, IBI\n12.5,0.8\n13.3,0.8\n14.25,0.95\n")
    (folder / f"tags_{folder.name}.csv").write_text(f"{start + 20:.0f}\n{start + 30.5}\n")
    return folder


def make_stress_predict(root: Path, subjects=("S02", "S09"), seconds: int = 40) -> Path:
    """Raw_data/SXX E4 folders and both forms of the time log. The readers check the phases
    against the recording span, so reading labels needs ``seconds >= 306`` (the end of the
    stress phases); 40 s is enough for the file-level checks."""
    starts = {"S02": T0, "S09": T0 + 4 * 3600}  # S09 in the afternoon (13:52:54 UTC)
    for s in subjects:
        make_e4(root / "Raw_data" / s, start=starts[s], seconds=seconds)
    rows = [("S02", "2022-02-07", "Consent", "09:50:00", "09:52:00", 0),
            ("S02", "2022-02-07", "Stroop Test", "09:53:00", "09:58:00", 1),
            ("S09", "2022-02-07", "Stroop Test", "01:53:00", "01:58:00", 1),  # 12-hour log: 13:53
            ("S09", "2022-02-07", "Relax", "01:58:00", "02:03:00", 0)]
    (root / "Processed_data").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["subject", "date", "phase", "start_local", "end_local", "stress"]).to_csv(
        root / "Processed_data" / "segments_from_time_logs.csv", index=False)
    return root


def write_time_log_xlsx(path: Path, phase_names=("Consent", "Stroop Test", "Relax")) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    head = ["S. ID.", "Start Time", "End Time", "Session ID"]
    sub = [None] * 4
    for p in phase_names:
        head += [p, None]
        sub += ["Start", "End"]
    head += [None, "Date"]
    sub += [None, None]
    ws.append(head)
    ws.append(sub)
    t = dt.time
    times = {"S02": {"Consent": (t(9, 50), t(9, 52)), "Stroop Test": (t(9, 53), t(9, 58)), "Relax": None},
             "S09": {"Consent": None, "Stroop Test": (t(1, 53), t(1, 58)), "Relax": (t(1, 58), t(2, 3))}}
    for sid, sess in (("S02", 1445449), ("S09", 1450063)):
        row = [sid, t(9, 0), t(10, 0), sess]
        for p in phase_names:
            se = times[sid].get(p)
            row += list(se) if se else [None, None]
        row += ["Day 1", dt.datetime(2022, 2, 7)]
        ws.append(row)
    wb.save(path)


def test_read_e4_streams_rates_units_and_clock(tmp_path):
    """Six E4 files become six streams on a clock starting at the earliest file (HR at +10 s)."""
    rec = mio.read_e4(make_e4(tmp_path / "S02"))
    assert rec.t0 == T0
    assert set(rec.streams) == {"wrist_eda", "wrist_bvp", "wrist_acc", "wrist_temp", "wrist_hr", "wrist_ibi"}
    assert (rec["wrist_eda"].rate, rec["wrist_eda"].n_samples) == (4.0, 160)
    assert (rec["wrist_bvp"].rate, rec["wrist_bvp"].n_samples) == (64.0, 2560)
    assert rec["wrist_acc"].data.shape == (1280, 3) and rec["wrist_acc"].channels == ["x", "y", "z"]
    np.testing.assert_allclose(rec["wrist_acc"].data[0], [1.0, -0.5, 0.0])  # 1/64 g -> g
    assert rec["wrist_acc"].units == ["g"] * 3
    assert rec["wrist_hr"].start == 10.0 and rec["wrist_eda"].start == 0.0
    ibi = rec["wrist_ibi"]
    assert ibi.rate is None
    np.testing.assert_allclose(ibi.times, [12.5, 13.3, 14.25])
    np.testing.assert_allclose(ibi.data[:, 0], [0.8, 0.8, 0.95])
    tags = rec.phases("event")
    np.testing.assert_allclose(tags["onset"], [20.0, 30.5])
    assert set(tags["label"]) == {"tag"}


def test_stress_predict_phases_on_reference_clock(tmp_path):
    """Local time-log times map to onsets on the E4 clock; hours 1-7 are afternoon; a phase
    logged before the E4 started is reported and left out of the labels."""
    cohort = mio.read_stress_predict(make_stress_predict(tmp_path, seconds=400))
    assert cohort.subjects == ["S02", "S09"]
    s02 = cohort["S02"].phases()
    assert list(s02["label"]) == ["stroop"]
    np.testing.assert_allclose(s02["onset"], [6.0])  # 09:53:00 vs 09:52:54
    np.testing.assert_allclose(s02["duration"], [300.0])
    assert list(s02["stress"]) == [1] and list(s02["text"]) == ["Stroop Test"]
    # 09:50:00-09:52:00 is before the recording started at 09:52:54
    assert cohort["S02"].meta["labels_outside"] == ["consent (-174 .. -54 s; span 0 .. 400 s)"]
    s09 = cohort["S09"].phases()
    np.testing.assert_allclose(s09["onset"], [6.0, 306.0])  # 01:53 logged = 13:53 UTC
    assert cohort["S09"].label_at(100.0)[0] == "stroop"


def test_stress_predict_xlsx_matches_csv(tmp_path):
    """The Excel time log (openpyxl) gives the same phases as the CSV segments."""
    root = make_stress_predict(tmp_path, seconds=400)
    write_time_log_xlsx(root / "Processed_data" / "Time_logs.xlsx")
    a = mio.read_stress_predict(root, labels="xlsx")
    b = mio.read_stress_predict(root, labels="csv")
    for ra, rb in zip(a, b):
        cols = ["onset", "duration", "label", "stress"]
        pd.testing.assert_frame_equal(ra.phases()[cols], rb.phases()[cols], check_dtype=False)
    assert a["S02"].meta["e4_session_id"] == 1445449


def test_time_log_unknown_phase_is_an_error(tmp_path):
    """A phase column the reader does not know is reported, not skipped."""
    path = tmp_path / "Time_logs.xlsx"
    write_time_log_xlsx(path, phase_names=("Consent", "Yoga", "Relax"))
    with pytest.raises(DataFormatError, match="unknown protocol phase 'Yoga'"):
        mio.read_time_logs(path)


@pytest.mark.parametrize("rate_text, match", [("32.000000", "rate mismatch: the file says 32 Hz"),
                                               ("fast", "not a number")])
def test_e4_bad_rate_row(tmp_path, rate_text, match):
    """A rate row that disagrees with the E4's rate, or is not a number, names the file."""
    folder = make_e4(tmp_path / "S02")
    _e4_csv(folder / "EDA.csv", T0, 4, np.ones(40), rate_text=rate_text)
    with pytest.raises(DataFormatError, match=match) as err:
        mio.read_e4(folder)
    assert "EDA.csv" in str(err.value)


@pytest.mark.parametrize("row, match", [("22,0", r"row 1283 has a missing"), ("1,2,3,4", r"row 1283 has 4 values")])
def test_e4_malformed_row(tmp_path, row, match):
    """An ACC row cut short or too long is reported with its file and its row in the file."""
    folder = make_e4(tmp_path / "S02")
    with open(folder / "ACC.csv", "a") as fh:
        fh.write(row + "\n")  # 2 header rows + 1280 samples: this is row 1283
    with pytest.raises(DataFormatError, match=r"ACC\.csv.*" + match):
        mio.read_e4(folder)


def test_e4_header_only_file(tmp_path):
    """A file with the two header rows and no samples is a truncated file."""
    folder = make_e4(tmp_path / "S02")
    (folder / "TEMP.csv").write_text(f"{T0:.6f}\n4.000000\n")
    with pytest.raises(DataFormatError, match=r"TEMP\.csv: no samples"):
        mio.read_e4(folder)


def test_e4_non_numeric_sample(tmp_path):
    """A sample that is not a number is an error naming the file."""
    folder = make_e4(tmp_path / "S02")
    (folder / "BVP.csv").write_text(f"{T0:.6f}\n64.000000\n1.0\nabc\n")
    with pytest.raises(DataFormatError, match=r"BVP\.csv"):
        mio.read_e4(folder)


def test_e4_missing_stream_file(tmp_path):
    """A missing sensor file is named in the error."""
    folder = make_e4(tmp_path / "S02")
    (folder / "BVP.csv").unlink()
    with pytest.raises(DataFormatError, match=r"BVP\.csv is missing"):
        mio.read_e4(folder)


def test_ibi_non_monotonic_times(tmp_path):
    """Beat times that go backwards are reported with the file and the rows."""
    folder = make_e4(tmp_path / "S02")
    (folder / "IBI.csv").write_text(f"{T0:.6f}, IBI\n12.5,0.8\n13.3,0.8\n13.0,0.95\n")
    with pytest.raises(DataFormatError, match=r"IBI\.csv: beat times are not increasing: row 4"):
        mio.read_e4(folder)


def test_e4_without_beats_or_tags(tmp_path):
    """An IBI.csv with no beats and an empty tags file are valid: empty stream, no events."""
    folder = make_e4(tmp_path / "S02")
    (folder / "IBI.csv").write_text(f"{T0:.6f}, IBI\n")
    (folder / "tags_S02.csv").write_text("")
    rec = mio.read_e4(folder)
    assert rec["wrist_ibi"].n_samples == 0 and len(rec.phases("event")) == 0
    assert mio.describe(folder)["format"] == "e4"


def test_e4_stream_selection(tmp_path):
    """Only the requested files are read; an unknown name is refused."""
    rec = mio.read_e4(make_e4(tmp_path / "S02"), streams=["EDA", "IBI"])
    assert set(rec.streams) == {"wrist_eda", "wrist_ibi"}
    with pytest.raises(DatasetError, match="unknown stream"):
        mio.read_e4(tmp_path / "S02", streams=["ECG"])


# ======================================================================== WESAD
def make_wesad_pkl(path: Path, seconds: int = 10, codes=None, bvp_rate: int = 64, drop=None) -> Path:
    """A synthetic SX.pkl with the real structure (chest 700 Hz, wrist 32/64/4/4 Hz)."""
    n = 700 * seconds
    rng = np.random.default_rng(0)
    if codes is None:
        codes = np.zeros(n, dtype=int)
        codes[700:3500] = 1
        codes[3500:4200] = 0
        codes[4200:6300] = 2
        codes[6300:] = 6
    chest = {"ACC": rng.normal(size=(n, 3)), "ECG": rng.normal(size=(n, 1)), "EMG": rng.normal(size=(n, 1)),
             "EDA": rng.normal(size=(n, 1)), "Temp": np.full((n, 1), 33.0), "Resp": rng.normal(size=(n, 1))}
    wrist = {"ACC": np.tile([64.0, 0.0, -64.0], (32 * seconds, 1)), "BVP": rng.normal(size=(bvp_rate * seconds, 1)),
             "EDA": rng.normal(size=(4 * seconds, 1)), "TEMP": np.full((4 * seconds, 1), 32.0)}
    if drop:
        place, key = drop
        del (chest if place == "chest" else wrist)[key]
    data = {"signal": {"chest": chest, "wrist": wrist}, "label": np.asarray(codes), "subject": path.stem}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(data, fh, protocol=2)
    return path


def test_wesad_synthetic_pickle(tmp_path):
    """Streams, rates, wrist ACC in g and label runs as phases (with codes) are read."""
    make_wesad_pkl(tmp_path / "S2" / "S2.pkl")
    (tmp_path / "S2" / "S2_readme.txt").write_text("### Personal information ###\nAge: 27\nGender: male\n")
    cohort = mio.read_wesad(tmp_path)
    rec = cohort["S2"]
    assert {s: rec[s].rate for s in rec.streams} == {
        "chest_acc": 700, "chest_ecg": 700, "chest_emg": 700, "chest_eda": 700, "chest_temp": 700,
        "chest_resp": 700, "wrist_acc": 32, "wrist_bvp": 64, "wrist_eda": 4, "wrist_temp": 4}
    assert rec["chest_ecg"].n_samples == 7000 and rec["wrist_bvp"].n_samples == 640
    np.testing.assert_allclose(rec["wrist_acc"].data[0], [1.0, 0.0, -1.0])
    ph = rec.phases()
    assert list(ph["label"]) == ["transient", "baseline", "transient", "stress", "ignore"]
    assert list(ph["code"]) == [0, 1, 0, 2, 6]
    np.testing.assert_allclose(ph["onset"], [0.0, 1.0, 5.0, 6.0, 9.0])
    np.testing.assert_allclose(ph["duration"], [1.0, 4.0, 1.0, 3.0, 1.0])
    assert rec.label_at(7.5)[0] == "stress"
    assert rec.meta["readme"]["Age"] == "27"


def test_wesad_rate_mismatch(tmp_path):
    """A wrist BVP with half the expected samples is a rate mismatch naming the stream."""
    pkl = make_wesad_pkl(tmp_path / "S3" / "S3.pkl", bvp_rate=32)
    with pytest.raises(DataFormatError, match="wrist_bvp lasts 5.0 s.*rate mismatch"):
        mio.read_wesad_subject(pkl)


def test_wesad_truncated_pickle(tmp_path):
    """A cut-off pickle is a DataFormatError naming the file."""
    pkl = make_wesad_pkl(tmp_path / "S4" / "S4.pkl")
    pkl.write_bytes(pkl.read_bytes()[: pkl.stat().st_size // 2])
    with pytest.raises(DataFormatError, match=r"S4\.pkl: not a readable WESAD pickle"):
        mio.read_wesad_subject(tmp_path / "S4")


def test_wesad_unknown_label_code(tmp_path):
    """A label code outside 0..7 is reported, not mapped or dropped."""
    codes = np.ones(7000, dtype=int)
    codes[10] = 9
    pkl = make_wesad_pkl(tmp_path / "S5" / "S5.pkl", codes=codes)
    with pytest.raises(DataFormatError, match=r"unknown label code\(s\) \[9\]"):
        mio.read_wesad_subject(pkl)


def test_wesad_missing_stream(tmp_path):
    """A signal missing from the pickle is named."""
    pkl = make_wesad_pkl(tmp_path / "S6" / "S6.pkl", drop=("chest", "ECG"))
    with pytest.raises(DataFormatError, match=r"signal\['chest'\]\['ECG'\] is missing"):
        mio.read_wesad_subject(pkl)


# ========================================================================= WFDB
def make_wfdb(*args, **kwargs) -> Path:
    from mmlab.io._common import library_deprecations_hidden

    with library_deprecations_hidden("wfdb"):  # wfdb's own pandas calls warn (inplace=True)
        return _make_wfdb(*args, **kwargs)


def _make_wfdb(folder: Path, name: str = "rec1", fs: int = 100, seconds: int = 20, comments=None,
               with_ann: bool = True) -> Path:
    import wfdb

    folder.mkdir(parents=True, exist_ok=True)
    n = fs * seconds
    t = np.arange(n) / fs
    sig = np.column_stack([np.sin(2 * np.pi * t), np.cos(2 * np.pi * t), 0.5 * np.sin(np.pi * t)])
    wfdb.wrsamp(name, fs=fs, units=["mV", "mV", "NU"], sig_name=["MLII", "V5", "PLETH"], p_signal=sig,
                fmt=["16", "16", "16"], comments=comments or [], write_dir=str(folder))
    if with_ann:
        wfdb.wrann(name, "atr", np.array([5, 100, 200, 310]), symbol=["+", "N", "A", "N"],
                   aux_note=["(N", "", "", ""], fs=fs, write_dir=str(folder))
    return folder / name


def test_wfdb_record_streams_and_beat_annotations(tmp_path):
    """Signals group by modality; annotations become events at sample/fs with a beat flag."""
    rec = mio.read_wfdb_record(make_wfdb(tmp_path))
    assert set(rec.streams) == {"ecg", "ppg"}
    assert rec["ecg"].channels == ["MLII", "V5"] and rec["ecg"].rate == 100
    assert rec["ecg"].data.shape == (2000, 2) and rec["ppg"].units == ["NU"]
    np.testing.assert_allclose(rec["ecg"].data[25, 0], 1.0, atol=1e-3)  # sin at t = 0.25 s
    ev = rec.phases("event")
    assert list(ev["label"]) == ["+", "N", "A", "N"]
    np.testing.assert_allclose(ev["onset"], [0.05, 1.0, 2.0, 3.1])
    assert list(ev["beat"]) == [False, True, True, True]
    assert ev["text"].iloc[0] == "(N" and list(ev["sample"]) == [5, 100, 200, 310]


def test_wfdb_challenge_alarm_from_comments(tmp_path):
    """Challenge-2015 header comments give a record label and the alarm event at 300 s."""
    path = make_wfdb(tmp_path, "v999s", fs=10, seconds=300, comments=["Asystole", "True alarm"],
                     with_ann=False)
    rec = mio.read_wfdb_record(path)
    lab = rec.phases("label")
    assert list(lab["label"]) == ["true_alarm"] and lab["text"].iloc[0] == "Asystole"
    assert lab["duration"].iloc[0] == 300.0
    ev = rec.phases("event")
    assert list(ev["label"]) == ["alarm"] and ev["onset"].iloc[0] == 300.0
    assert rec.meta["alarm"] == {"type": "Asystole", "true_alarm": True}


def test_reading_wfdb_shows_no_deprecation_warnings_of_wfdb(tmp_path):
    """wfdb calls pandas with inplace=True (deprecated); a reader cannot act on that, so
    mmlab hides those warnings, and only those."""
    import warnings

    path = make_wfdb(tmp_path / "w")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec = mio.read_wfdb_record(path)
        mio.describe(tmp_path / "w")
    assert len(rec.annotations) > 0
    from mmlab.io._common import library_deprecations_hidden

    with pytest.warns(DeprecationWarning, match="mine"), library_deprecations_hidden("wfdb"):
        warnings.warn("mine", DeprecationWarning)  # mmlab's (or anyone else's) still show


def test_wfdb_truncated_signal_file(tmp_path):
    """A .dat file shorter than its header says is a DataFormatError naming the record."""
    path = make_wfdb(tmp_path)
    dat = path.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:1000])
    with pytest.raises(DataFormatError, match="rec1"):
        mio.read_wfdb_record(path)


def test_wfdb_requested_annotator_missing(tmp_path):
    """Asking for an annotation file that is not there names it."""
    path = make_wfdb(tmp_path, with_ann=False)
    with pytest.raises(DataFormatError, match=r"rec1\.atr: annotation file is missing"):
        mio.read_wfdb_record(path, annotator="atr")
    assert len(mio.read_wfdb_record(path).annotations) == 0  # "auto": none there, none read


def test_wfdb_folder_cohort(tmp_path):
    """Every record of a folder becomes one Recording."""
    make_wfdb(tmp_path, "a1")
    make_wfdb(tmp_path, "b2", with_ann=False)
    cohort = mio.read_wfdb(tmp_path)
    assert cohort.subjects == ["a1", "b2"]
    with pytest.raises(DatasetError, match="no record 'zz'"):
        mio.read_wfdb(tmp_path, records=["zz"])


# ===================================================================== eegmmidb (EDF+)
def write_edf(path: Path, data_uv: np.ndarray, ch_names, rate: int, annotations, n_ann: int = 60) -> Path:
    """A minimal EDF+C writer (1-s records, int16 = µV, one annotation channel)."""
    n_ch, n = data_uv.shape
    n_rec, ns = n // rate, n_ch + 1

    def f(s, w):
        return str(s).ljust(w)[:w].encode("ascii")

    labels = list(ch_names) + ["EDF Annotations"]
    head = (f("0", 8) + f("X X X X", 80) + f("Startdate 12-AUG-2009 X X X", 80) + f("12.08.09", 8)
            + f("16.15.00", 8) + f(256 * (ns + 1), 8) + f("EDF+C", 44) + f(n_rec, 8) + f(1, 8) + f(ns, 4))
    head += b"".join(f(x, 16) for x in labels) + b"".join(f("", 80) for _ in labels)
    head += b"".join(f("uV", 8) for _ in ch_names) + f("", 8)
    for eeg, ann in ((-8092, -1), (8092, 1), (-8092, -32768), (8092, 32767)):
        head += b"".join(f(eeg, 8) for _ in ch_names) + f(ann, 8)
    head += b"".join(f("", 80) for _ in labels)
    head += b"".join(f(rate, 8) for _ in ch_names) + f(n_ann, 8) + b"".join(f("", 32) for _ in labels)
    body = b""
    for r in range(n_rec):
        for c in range(n_ch):
            body += np.round(data_uv[c, r * rate:(r + 1) * rate]).astype("<i2").tobytes()
        tal = f"+{r}\x14\x14\x00".encode()
        for onset, dur, desc in annotations:
            if r <= onset < r + 1:
                tal += f"+{onset:g}\x15{dur:g}\x14{desc}\x14\x00".encode()
        body += tal.ljust(2 * n_ann, b"\x00")
    path.write_bytes(head + body)
    return path


def make_run(folder: Path, run: int, codes=("T0", "T1", "T2")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(run).normal(0, 50, (2, 480))
    ann = [(0, 1.0, codes[0]), (1.0, 1.1, codes[1]), (2.1, 0.9, codes[2])]
    return write_edf(folder / f"S001R{run:02d}.edf", x, ["C3..", "Fc5."], 160, ann)


def test_eegmmidb_run_labels_and_channel_names(tmp_path):
    """T0/T1/T2 map to rest/left_fist/right_fist in run 4 (imagined); names are cleaned."""
    rec = mio.read_eegmmidb_run(make_run(tmp_path, 4))
    eeg = rec["eeg"]
    assert eeg.channels == ["C3", "FC5"] and eeg.rate == 160 and eeg.data.shape == (480, 2)
    assert eeg.units == ["V", "V"] and abs(eeg.data).max() < 1e-3  # volts, not µV
    lab = rec.phases("label")
    assert list(lab["label"]) == ["rest", "left_fist", "right_fist"]
    assert list(lab["text"]) == ["T0", "T1", "T2"]
    np.testing.assert_allclose(lab["duration"], [1.0, 1.1, 0.9])
    assert rec.phases("phase")["label"].tolist() == ["imagined"] and set(lab["task"]) == {"imagined"}


def test_eegmmidb_subject_runs_end_to_end(tmp_path):
    """A subject's runs are streams eeg_rXX laid end to end; labels depend on the run."""
    make_run(tmp_path / "S001", 3)
    make_run(tmp_path / "S001", 5)
    cohort = mio.read_eegmmidb(tmp_path)
    rec = cohort["S001"]
    assert list(rec.streams) == ["eeg_r03", "eeg_r05"]
    assert rec["eeg_r05"].start == 3.0 and rec.meta["run_offsets"] == {"eeg_r03": 0.0, "eeg_r05": 3.0}
    lab = rec.phases("label")
    assert lab[lab.run == 3]["label"].tolist() == ["rest", "left_fist", "right_fist"]
    assert lab[lab.run == 5]["label"].tolist() == ["rest", "both_fists", "both_feet"]
    np.testing.assert_allclose(lab[lab.run == 5]["onset"], [3.0, 4.0, 5.1])
    assert rec.phases()["label"].tolist() == ["real", "real"]
    with pytest.raises(DatasetError, match=r"no run\(s\) \[4\]"):
        mio.read_eegmmidb(tmp_path, runs=[4])


def test_read_motor_imagery_reads_the_imagined_fist_runs_from_the_data_folder(tmp_path):
    """read_motor_imagery finds eegmmidb/ inside the data folder and reads runs 4, 8, 12."""
    for run in (3, 4, 8, 12):
        make_run(tmp_path / "eegmmidb" / "S001", run)
    rec = mio.read_motor_imagery(tmp_path)
    assert mio.MOTOR_IMAGERY_RUNS == (4, 8, 12)
    assert list(rec.streams) == ["eeg_r04", "eeg_r08", "eeg_r12"] and rec.subject == "S001"
    assert rec.phases()["label"].tolist() == ["imagined"] * 3
    assert rec.phases("label")["label"].tolist() == ["rest", "left_fist", "right_fist"] * 3
    assert list(mio.read_motor_imagery(tmp_path / "eegmmidb", runs=[3]).streams) == ["eeg_r03"]
    with pytest.raises(DatasetError, match="no runs of subject 'S002'"):
        mio.read_motor_imagery(tmp_path, subject="S002")


def test_eegmmidb_truncated_edf(tmp_path):
    """An EDF shorter than its header implies is reported with both sizes."""
    path = make_run(tmp_path, 4)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataFormatError, match=r"S001R04\.edf: file has \d+ bytes, its EDF header implies"):
        mio.read_eegmmidb_run(path)


def test_eegmmidb_unknown_annotation(tmp_path):
    """An annotation other than T0/T1/T2 is an error naming the run."""
    path = make_run(tmp_path, 4, codes=("T0", "T5", "T2"))
    with pytest.raises(DataFormatError, match="unknown annotation 'T5' in run 4"):
        mio.read_eegmmidb_run(path)


def test_eegmmidb_bad_file_name(tmp_path):
    """Run and subject come from the file name, so a foreign name is refused."""
    path = make_run(tmp_path, 4).rename(tmp_path / "subject1.edf")
    with pytest.raises(DataFormatError, match="not an eegmmidb run file name"):
        mio.read_eegmmidb_run(path)


# ========================================================================= audio
def _wav(path: Path, seconds: float, rate: int, freq: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, 0.5 * np.sin(2 * np.pi * freq * t), rate, subtype="PCM_16")
    return path


def make_fsdd(root: Path, speakers=("jackson", "theo"), indices=(0, 4, 5, 7), digits=(3, 7)) -> Path:
    for s in speakers:
        for d in digits:
            for i in indices:
                _wav(root / "recordings" / f"{d}_{s}_{i}.wav", 0.25 + 0.01 * i, 8000)
    return root


def test_fsdd_table_labels_and_official_split(tmp_path):
    """Labels come from file names; index 0-4 is the official test split."""
    table = mio.fsdd_table(make_fsdd(tmp_path), info=True)
    assert len(table) == 16
    assert {"file", "path", "label", "speaker", "split", "text", "digit", "index"} <= set(table.columns)
    assert (table["split"] == "test").sum() == 8 and set(table[table["index"] <= 4]["split"]) == {"test"}
    row = table[table["file"] == "7_theo_5.wav"].iloc[0]
    assert (row.label, row.speaker, row.split, row.text, row.rate) == ("7", "theo", "train", "seven", 8000)
    assert row.duration_s == pytest.approx(0.30)
    clips = mio.load_clips(table.head(2))
    assert clips[0].dtype == np.float32 and len(clips[0]) == table["n_samples"].iloc[0]


def test_fsdd_labels_csv_must_agree(tmp_path):
    """labels.csv that contradicts the file names is an error, not silently preferred."""
    root = make_fsdd(tmp_path, speakers=("theo",), indices=(0, 5), digits=(3,))
    pd.DataFrame({"file": ["3_theo_0.wav", "3_theo_5.wav"], "digit": [3, 3], "speaker": ["theo", "theo"],
                  "index": [0, 5], "official_split": ["test", "test"]}).to_csv(root / "labels.csv", index=False)
    with pytest.raises(DataFormatError, match="3_theo_5.wav has official_split='test'"):
        mio.fsdd_table(root)


def test_fsdd_bad_file_name(tmp_path):
    """A WAV that does not follow {digit}_{speaker}_{index}.wav is named."""
    root = make_fsdd(tmp_path, speakers=("theo",), indices=(0,), digits=(3,))
    _wav(root / "recordings" / "three_theo.wav", 0.2, 8000)
    with pytest.raises(DataFormatError, match="three_theo.wav: not an FSDD file name"):
        mio.fsdd_table(root)


def test_read_fsdd_cohort_per_speaker(tmp_path):
    """One Recording per speaker, one audio stream per clip, label and utterance annotations."""
    cohort = mio.read_fsdd(make_fsdd(tmp_path))
    assert cohort.subjects == ["jackson", "theo"]
    rec = cohort["theo"]
    assert len(rec.streams) == 8
    s = rec["7_theo_5"]
    assert s.modality == "audio" and s.rate == 8000 and s.meta["split"] == "train"
    lab = rec.phases("label")
    row = lab[lab["stream"] == "7_theo_5"].iloc[0]
    assert row.label == "7" and row.onset == s.start and row.duration == pytest.approx(s.duration)
    assert rec.label_at(s.start + 0.1, kind="label")[0] == "7"
    utt = rec.phases("utterance")
    assert utt[utt["stream"] == "7_theo_5"]["text"].iloc[0] == "seven"


def test_emodb_table_and_unknown_letter(tmp_path):
    """Emo-DB names decode to speaker/text/emotion; an unknown emotion letter is refused."""
    _wav(tmp_path / "wav" / "03a01Fa.wav", 0.2, 16000)
    _wav(tmp_path / "wav" / "16b10Wb.wav", 0.2, 16000)
    table = mio.emodb_table(tmp_path)
    assert table["label"].tolist() == ["happiness", "anger"]
    assert table["speaker"].tolist() == ["03", "16"] and table["sex"].tolist() == ["male", "female"]
    assert table["text"].iloc[0] == "Der Lappen liegt auf dem Eisschrank." and set(table["split"]) == {""}
    _wav(tmp_path / "wav" / "03a01Xa.wav", 0.2, 16000)
    with pytest.raises(DataFormatError, match=r"03a01Xa\.wav: unknown Emo-DB emotion letter 'X'"):
        mio.emodb_table(tmp_path)


def test_ravdess_table_and_unknown_code(tmp_path):
    """RAVDESS names decode to the seven fields; an unknown emotion code is refused."""
    _wav(tmp_path / "Actor_01" / "03-01-05-02-01-01-01.wav", 0.2, 48000)
    _wav(tmp_path / "Actor_12" / "03-01-01-01-02-02-12.wav", 0.2, 48000)
    table = mio.ravdess_table(tmp_path, info=True)
    r0, r1 = table.iloc[0], table.iloc[1]
    assert (r0.label, r0.intensity, r0.speaker, r0.sex, r0.vocal_channel) == ("angry", "strong", "Actor_01", "male", "speech")
    assert (r1.label, r1.repetition, r1.sex, r1.text) == ("neutral", 2, "female", "Dogs are sitting by the door")
    assert set(table["rate"]) == {48000}
    cohort = mio.read_ravdess(tmp_path)
    assert cohort.subjects == ["Actor_01", "Actor_12"]
    _wav(tmp_path / "Actor_01" / "03-01-09-01-01-01-01.wav", 0.2, 48000)
    with pytest.raises(DataFormatError, match="unknown RAVDESS emotion code '09'"):
        mio.ravdess_table(tmp_path)


def test_load_audio_resample_and_truncated_wav(tmp_path):
    """load_audio resamples on request; a truncated WAV is a DataFormatError."""
    path = _wav(tmp_path / "a.wav", 1.0, 8000, freq=200)
    x, sr = mio.load_audio(path, rate=16000)
    assert sr == 16000 and len(x) == 16000
    bad = tmp_path / "b.wav"
    bad.write_bytes(path.read_bytes()[:30])
    with pytest.raises(DataFormatError, match=r"b\.wav"):
        mio.load_audio(bad)


# ========================================================================== text
MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"


def test_meld_c1_fix_and_times(tmp_path):
    """C1 control characters are repaired and clip times become seconds."""
    text = MELD_HEADER + '1,"Oh my God, he\x92s lost it\x85",Phoebe,sadness,negative,0,0,4,7,"00:20:57,256","00:21:00,049"\n'
    (tmp_path / "dev_sent_emo.csv").write_text(text, encoding="utf-8")
    df = mio.load_meld(tmp_path)
    assert df["text"].iloc[0] == "Oh my God, he’s lost it…"
    assert (df["label"].iloc[0], df["sentiment"].iloc[0], df["split"].iloc[0]) == ("sadness", "negative", "dev")
    assert df["start_s"].iloc[0] == pytest.approx(1257.256) and df["end_s"].iloc[0] == pytest.approx(1260.049)
    assert mio.fix_c1_controls("a\x97b") == "a—b"


def test_meld_unknown_emotion_and_missing_column(tmp_path):
    """An emotion outside MELD's seven, or a missing column, is reported with the file."""
    (tmp_path / "test_sent_emo.csv").write_text(
        MELD_HEADER + '1,Hi,Joey,boredom,neutral,0,0,1,1,"00:00:01,000","00:00:02,000"\n')
    with pytest.raises(DataFormatError, match=r"test_sent_emo\.csv, row 2: unknown emotion 'boredom'"):
        mio.load_meld(tmp_path)
    (tmp_path / "test_sent_emo.csv").write_text("Utterance,Speaker\nHi,Joey\n")
    with pytest.raises(DataFormatError, match=r"missing column\(s\) \['Emotion'"):
        mio.load_meld(tmp_path)


def test_uci_sentiment_quotes_and_labels(tmp_path):
    """Sentences with quotes are kept whole (quoting off); labels are ints with names."""
    (tmp_path / "yelp_labelled.txt").write_bytes(
        b'The "best" pho in town.  \t1\r\nNot "good.\t0\r\nMeh\xc2\x85 really.\t0\r\n')
    df = mio.load_uci_sentiment(tmp_path)
    assert df["text"].tolist() == ['The "best" pho in town.', 'Not "good.', "Meh… really."]
    assert df["label"].tolist() == [1, 0, 0] and df["sentiment"].tolist() == ["positive", "negative", "negative"]
    assert set(df["source"]) == {"yelp"} and df["line"].tolist() == [1, 2, 3]


@pytest.mark.parametrize("content, match", [(b"Great.\t1\nNo label here\n", "line 2: label '' is not 0 or 1"),
                                            (b"Great.\t1\nBad.\t7\n", "line 2: label '7'"),
                                            (b"Great.\t1\nA\tB\t0\n", "more than one tab")])
def test_uci_sentiment_bad_lines(tmp_path, content, match):
    """A missing tab, a label other than 0/1 or an extra tab is reported with the file."""
    (tmp_path / "imdb_labelled.txt").write_bytes(content)
    with pytest.raises(DataFormatError, match=match) as err:
        mio.load_uci_sentiment(tmp_path)
    assert "imdb_labelled.txt" in str(err.value)


# ===================================================================== registry
def test_registry_entries_are_complete():
    """Every dataset names its source, license, citation, a real reader and checksums or null."""
    names = mio.list_datasets()
    assert {"stress_predict", "wesad", "mitdb_100", "eegmmidb_s001", "fsdd", "emodb", "ravdess", "meld",
            "uci_sentiment"} <= set(names)
    for name in names:
        e = mio.dataset_info(name)
        assert e["homepage"].startswith("http") and e["license"] and e["citation"]
        module, _, func = e["reader"].rpartition(".")
        assert module == "mmlab.io" and callable(getattr(mio, func)), e["reader"]
        assert e["format"] in mio.FORMATS
        for f in e["files"]:
            assert f["url"].startswith(("http://", "https://"))
            assert f["sha256"] is None or (len(f["sha256"]) == 64 and int(f["sha256"], 16) >= 0)


def test_fetch_unknown_name_lists_known():
    """An unknown dataset name lists the known ones."""
    with pytest.raises(DatasetError, match="unknown dataset 'nope'; known datasets: .*mitdb_100"):
        registry.fetch("nope")


def _fake_registry(tmp_path, monkeypatch, files, root="") -> None:
    doc = {"datasets": {"toy": {"title": "toy", "homepage": "https://example.org/toy", "license": "CC0-1.0",
                                "citation": "nobody", "reader": "mmlab.io.load_uci_sentiment",
                                "format": "uci_sentiment", "files": files, "root": root}}}
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(doc))
    monkeypatch.setenv("MMLAB_REGISTRY", str(path))


def _no_network(monkeypatch):
    """Make any pooch download fail the way it does offline."""
    import pooch
    import requests

    def offline(*args, **kwargs):
        raise requests.exceptions.ConnectionError("Failed to resolve 'physionet.org' (no network)")

    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", offline)


def test_fetch_offline_raises_dataset_error_with_instructions(tmp_path, monkeypatch):
    """Offline, fetch says what it tried and where to place the files by hand."""
    _no_network(monkeypatch)
    with pytest.raises(DatasetError) as err:
        registry.fetch("mitdb_100", dest=tmp_path / "mitdb")
    msg = str(err.value)
    assert "https://physionet.org/files/mitdb/1.0.0/100.hea" in msg and "network" in msg
    assert str(tmp_path / "mitdb" / "100.hea") in msg and "mmlab.io.read_wfdb" in msg


def test_fetch_checksum_mismatch(tmp_path, monkeypatch):
    """A file whose checksum differs from the registry is refused."""
    data = b"hello\t1\n"
    _fake_registry(tmp_path, monkeypatch, [{"name": "a.txt", "url": "https://example.org/a.txt",
                                            "sha256": hashlib.sha256(b"other").hexdigest()}])
    _no_network(monkeypatch)
    import pooch

    def serve(self, url, output_file, pooch_obj, check_only=False):
        Path(output_file).write_bytes(data)

    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", serve)
    with pytest.raises(DatasetError, match="checksum mismatch"):
        registry.fetch("toy", dest=tmp_path / "toy")


def test_fetch_finds_files_placed_by_hand(tmp_path, monkeypatch):
    """A file already in place with the right checksum is used without any download."""
    data = b"Great.\t1\n"
    _fake_registry(tmp_path, monkeypatch, [{"name": "yelp_labelled.txt", "url": "https://example.org/y.txt",
                                            "sha256": hashlib.sha256(data).hexdigest()}])
    _no_network(monkeypatch)
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "yelp_labelled.txt").write_bytes(data)
    out = registry.fetch("toy", dest=tmp_path / "toy")
    assert out == tmp_path / "toy" and len(mio.load_uci_sentiment(out)) == 1


def test_fetch_unpacks_an_archive_placed_by_hand(tmp_path, monkeypatch):
    """A zip placed by hand is verified and unpacked; fetch returns the reader's root."""
    import zipfile

    archive = tmp_path / "toy" / "toy.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("inner/yelp_labelled.txt", "Great.\t1\nAwful.\t0\n")
    _fake_registry(tmp_path, monkeypatch, [{"name": "toy.zip", "url": "https://example.org/toy.zip",
                                            "sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
                                            "unpack": True}], root="inner")
    _no_network(monkeypatch)
    out = registry.fetch("toy", dest=tmp_path / "toy")
    assert out == tmp_path / "toy" / "inner"
    assert mio.load_uci_sentiment(out)["label"].tolist() == [1, 0]


def test_fetch_without_checksum_warns(tmp_path, monkeypatch):
    """A registry file with sha256 null is fetched with a warning giving its SHA-256."""
    data = b"Great.\t1\n"
    _fake_registry(tmp_path, monkeypatch, [{"name": "yelp_labelled.txt", "url": "https://example.org/y.txt",
                                            "sha256": None}])
    _no_network(monkeypatch)
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "yelp_labelled.txt").write_bytes(data)
    with pytest.warns(UserWarning, match=f"no checksum is known.*{hashlib.sha256(data).hexdigest()}"):
        registry.fetch("toy", dest=tmp_path / "toy")


def test_import_does_not_touch_pooch_or_network():
    """Importing mmlab.io loads no downloader (nothing can download at import)."""
    code = "import sys, mmlab.io; print('pooch' in sys.modules, 'requests' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ===================================================================== describe / CLI
def test_describe_stress_predict_layout(tmp_path):
    """describe finds the format, subjects, per-subject streams and phase counts."""
    info = mio.describe(make_stress_predict(tmp_path))
    assert info["format"] == "stress_predict" and info["subjects"] == ["S02", "S09"]
    eda = [s for s in info["streams"] if s["name"] == "wrist_eda" and s["subject"] == "S02"][0]
    assert (eda["modality"], eda["rate"], eda["duration_s"], eda["channels"]) == ("eda", 4.0, 40.0, ["wrist_eda"])
    hr = [s for s in info["streams"] if s["name"] == "wrist_hr"][0]
    assert hr["duration_s"] == 30.0
    assert info["labels"]["phase"]["counts"] == {"stroop": 2, "consent": 1, "relax": 1}
    text = mio.format_description(info)
    assert "stress_predict" in text and "wrist_bvp" in text


def test_describe_saved_cohort_and_audio(tmp_path):
    """A saved mmlab cohort is recognised; an audio folder is one summarised stream."""
    rec = mio.read_e4(make_e4(tmp_path / "S02"))
    Cohort([rec]).save(tmp_path / "saved")
    info = mio.describe(tmp_path / "saved")
    assert info["format"] == "mmlab-cohort" and info["subjects"] == ["S02"]
    assert {s["name"] for s in info["streams"]} == set(rec.streams)
    assert info["labels"]["event"]["counts"] == {"tag": 2}
    audio = mio.describe(make_fsdd(tmp_path / "fsdd"))
    assert audio["format"] == "fsdd" and len(audio["streams"]) == 1
    s = audio["streams"][0]
    assert (s["name"], s["rate"], s["n_clips"]) == ("audio", 8000.0, 16)
    assert audio["labels"]["split"]["counts"] == {"test": 8, "train": 8}


def test_describe_unknown_folder(tmp_path):
    """A folder in no known layout is a DataFormatError naming it and the formats."""
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataFormatError, match=r"not a dataset folder mmlab knows; known formats: mmlab-cohort"):
        mio.describe(tmp_path)
    with pytest.raises(MMLabError):
        mio.describe(tmp_path / "missing")


def test_cli_data_info_json(tmp_path):
    """`mmlab data info PATH --json` prints describe()'s result; errors exit with code 2."""
    root = make_stress_predict(tmp_path / "sp")
    out = subprocess.run([sys.executable, "-m", "mmlab.cli", "data", "info", str(root), "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["subjects"] == ["S02", "S09"]
    assert all({"name", "modality", "rate", "duration_s"} <= set(s) for s in info["streams"])
    bad = subprocess.run([sys.executable, "-m", "mmlab.cli", "data", "info", str(tmp_path / "sp" / "Processed_data")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "not a dataset folder" in bad.stderr


def test_cli_data_fetch_unknown_name():
    """`mmlab data fetch` with an unknown name exits with code 2 and lists the known names."""
    out = subprocess.run([sys.executable, "-m", "mmlab.cli", "data", "fetch", "nope"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "known datasets:" in out.stderr and "fsdd" in out.stderr


def test_data_dir_env(monkeypatch, tmp_path):
    """data_dir() is $MMLAB_DATA_DIR as a Path, or None when unset."""
    monkeypatch.delenv("MMLAB_DATA_DIR", raising=False)
    assert mio.data_dir() is None
    monkeypatch.setenv("MMLAB_DATA_DIR", str(tmp_path))
    assert mio.data_dir() == tmp_path
