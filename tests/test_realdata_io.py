"""mmlab.io on the real dataset samples in $MMLAB_DATA_DIR (skipped when it is unset).

Expected numbers are the facts stated in each sample's PROVENANCE.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmlab.io as mio
from mmlab.recording import Cohort

if not os.environ.get("MMLAB_DATA_DIR"):
    pytest.skip("MMLAB_DATA_DIR is not set: no real data samples", allow_module_level=True)

pytestmark = pytest.mark.realdata
DATA = Path(os.environ["MMLAB_DATA_DIR"])


def need(name: str) -> Path:
    path = DATA / name
    if not path.is_dir():
        pytest.skip(f"{path} is not there")
    return path


# ------------------------------------------------------------------ Stress-Predict
@pytest.fixture(scope="module")
def stress_predict() -> Cohort:
    return mio.read_stress_predict(need("stress_predict"))


def test_stress_predict_s02_rates_and_sizes(stress_predict):
    """S02: EDA 14262 @4 Hz, BVP 228173 @64 Hz, ACC 114054x3 @32 Hz, TEMP @4, HR @1 from +10 s."""
    rec = stress_predict["S02"]
    assert (rec["wrist_eda"].n_samples, rec["wrist_eda"].rate) == (14262, 4.0)
    assert (rec["wrist_bvp"].n_samples, rec["wrist_bvp"].rate) == (228173, 64.0)
    assert rec["wrist_acc"].data.shape == (114054, 3) and rec["wrist_acc"].rate == 32.0
    assert rec["wrist_temp"].rate == 4.0 and rec["wrist_hr"].rate == 1.0
    assert rec.t0 == 1644227574.0 and rec["wrist_hr"].start == 10.0 and rec["wrist_eda"].start == 0.0
    assert rec["wrist_eda"].duration == pytest.approx(3565.5)
    # gravity: the wrist is mostly still, so |acc| is close to 1 g after the 1/64 g conversion
    assert np.median(np.linalg.norm(rec["wrist_acc"].data, axis=1)) == pytest.approx(1.0, abs=0.1)
    ibi = rec["wrist_ibi"]
    assert ibi.rate is None and np.all(np.diff(ibi.times) > 0) and ibi.times[0] == 604.0


def test_stress_predict_phases_agree_with_tags(stress_predict):
    """Every subject has the 10 logged phases (those outside the E4 recording, e.g. Consent,
    reported in meta) inside its session (12-hour log fixed) and S02's Stroop start (10:03
    in the log) is 16 s before the first button press."""
    assert stress_predict.subjects == [f"S{i:02d}" for i in range(2, 11)]
    for rec in stress_predict:
        ph = rec.phases()
        assert len(ph) + len(rec.meta["labels_outside"]) == 10, rec.subject
        assert set(ph[ph["stress"] == 1]["label"]) == {"stroop", "interview", "hyperventilation"}
        stroop = ph[ph["label"] == "stroop"]["onset"].iloc[0]
        assert 0 < stroop < 1000, (rec.subject, stroop)  # afternoon sessions (S08-S10) too
        assert ph["onset"].iloc[-1] + ph["duration"].iloc[-1] < rec.duration + 600
    s02 = stress_predict["S02"]
    stroop = s02.phases().query("label == 'stroop'").iloc[0]
    assert stroop.onset == 606.0 and stroop.duration == 300.0
    assert s02.phases("event")["onset"].iloc[0] - stroop.onset == pytest.approx(16.0)


def test_stress_predict_xlsx_and_csv_agree():
    """Time_logs.xlsx and segments_from_time_logs.csv give identical phases."""
    root = need("stress_predict")
    a = mio.read_time_logs(root / "Processed_data" / "Time_logs.xlsx")
    b = mio.read_time_logs(root / "Processed_data" / "segments_from_time_logs.csv")
    cols = ["subject", "label", "start_unix", "end_unix", "stress"]
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True))


def test_stress_predict_save_load_keeps_streams(stress_predict, tmp_path):
    """A real recording survives Cohort.save/load (streams exactly, annotation times to 1e-9 s)."""
    cohort = Cohort([stress_predict["S02"]])
    back = Cohort.load(cohort.save(tmp_path / "sp"))
    a, b = cohort["S02"], back["S02"]
    assert all(a[k].equals(b[k]) for k in a.streams)
    np.testing.assert_allclose(a.annotations["onset"], b.annotations["onset"], atol=1e-9)
    assert list(a.annotations["label"]) == list(b.annotations["label"])


# ----------------------------------------------------------------------------- WFDB
@pytest.fixture(scope="module")
def wfdb_cohort() -> Cohort:
    return mio.read_wfdb(need("mitbih"))


def test_mitbih_100_signals_and_annotations(wfdb_cohort):
    """Record 100: 650000 x 2 at 360 Hz, 2274 annotations of which 2273 beats (2239 N, 33 A, 1 V)."""
    rec = wfdb_cohort["100"]
    ecg = rec["ecg"]
    assert ecg.data.shape == (650000, 2) and ecg.rate == 360 and ecg.channels == ["MLII", "V5"]
    ev = rec.phases("event")
    assert len(ev) == 2274 and int(ev["beat"].sum()) == 2273
    assert ev["label"].value_counts().to_dict() == {"N": 2239, "A": 33, "+": 1, "V": 1}
    assert ev.loc[ev["label"] == "+", "text"].tolist() == ["(N"]


def test_mitbih_100_beats_sit_on_qrs_peaks(wfdb_cohort):
    """At each annotated beat (onset * rate), MLII is near its R peak: well above baseline."""
    rec = wfdb_cohort["100"]
    mlii = rec["ecg"].channel("MLII")
    beats = rec.phases("event").query("beat")
    idx = np.round(beats["onset"].to_numpy() * rec["ecg"].rate).astype(int)
    assert np.array_equal(idx, beats["sample"].to_numpy())
    def peak_above_baseline(centres):
        centres = centres[(centres >= 18) & (centres + 18 < len(mlii))]
        return np.median([mlii[i - 18: i + 18].max() for i in centres]) - np.median(mlii)  # +-50 ms

    assert peak_above_baseline(idx) > 0.8  # mV: R waves of record 100 stand ~1.3 mV above baseline
    assert peak_above_baseline(idx + 140) < 0.3  # 0.39 s later (between beats): no QRS


def test_ptb_and_challenge_records(wfdb_cohort):
    """PTB s0010_re (38400 x 15 @1000 Hz) and the two Challenge-2015 false alarms."""
    ptb = wfdb_cohort["s0010_re"]
    assert ptb["ecg"].data.shape == (38400, 15) and ptb["ecg"].rate == 1000
    assert ptb.meta["header"]["age"] == "81" and ptb.meta["header"]["sex"] == "female"
    v102 = wfdb_cohort["v102s"]
    assert {k: v102[k].n_channels for k in v102.streams} == {"ecg": 2, "ppg": 1, "resp": 1}
    assert v102["ecg"].n_samples == 75000 and v102["ecg"].rate == 250
    assert v102.meta["alarm"] == {"type": "Ventricular_Tachycardia", "true_alarm": False}
    a103 = wfdb_cohort["a103l"]
    assert a103["ecg"].n_samples == 82500 and set(a103.streams) == {"ecg", "ppg"}
    assert a103.phases("label")["label"].tolist() == ["false_alarm"]
    assert a103.phases("label")["text"].tolist() == ["Asystole"]
    assert a103.phases("event").query("label == 'alarm'")["onset"].tolist() == [300.0]


# ------------------------------------------------------------------------ eegmmidb
def test_eegmmidb_runs_counts_and_tasks():
    """Six runs of (64, 20000) @160 Hz; T0/T1/T2 counts [15,8,7] or [15,7,8]; real vs imagined."""
    rec = mio.read_eegmmidb(need("eegmmidb"))["S001"]
    assert list(rec.streams) == ["eeg_r03", "eeg_r04", "eeg_r07", "eeg_r08", "eeg_r11", "eeg_r12"]
    for s in rec.streams.values():
        assert s.data.shape == (20000, 64) and s.rate == 160.0
        assert {"FC5", "Cz", "Fp1", "AFz", "Iz"} <= set(s.channels)
        assert not any(c.endswith(".") for c in s.channels)
        assert 1e-6 < np.std(s.data) < 1e-3  # volts: tens of µV
    lab = rec.phases("label")
    for run in (3, 4, 7, 8, 11, 12):
        got = lab[lab.run == run]["text"].value_counts().reindex(["T0", "T1", "T2"]).tolist()
        assert got == ([15, 7, 8] if run in (11, 12) else [15, 8, 7]), run
        assert set(lab[lab.run == run]["task"]) == {"real" if run in (3, 7, 11) else "imagined"}
    assert lab.groupby("text")["label"].unique().map(list).to_dict() == {
        "T0": ["rest"], "T1": ["left_fist"], "T2": ["right_fist"]}
    assert lab["duration"].between(4.0, 4.3).all()


# ----------------------------------------------------------------------------- audio
def test_fsdd_table_and_official_split():
    """1200 files at 8 kHz, 300 in the official test split, 120 per digit, 6 speakers."""
    table = mio.fsdd_table(need("fsdd"), info=True)  # also checks against labels.csv
    assert len(table) == 1200 and (table["split"] == "test").sum() == 300
    assert set(table["rate"]) == {8000}
    assert table["label"].value_counts().to_dict() == {str(d): 120 for d in range(10)}
    assert table["speaker"].nunique() == 6 and set(table["gender"]) == {"male"}
    assert table["duration_s"].between(0.14, 2.29).all()


def test_fsdd_cohort_per_speaker():
    """The cohort view: 6 speakers x 200 clips, labels matching the file names."""
    cohort = mio.read_fsdd(need("fsdd"))
    assert len(cohort) == 6 and all(len(r.streams) == 200 for r in cohort)
    rec = cohort["jackson"]
    lab = rec.phases("label").set_index("stream")
    assert lab.loc["7_jackson_3", "label"] == "7"
    assert rec["7_jackson_3"].meta["split"] == "test"


def test_emodb_table_counts():
    """313 files at 22050 Hz, 2.0 s each, 10 speakers, W50 L49 N48 F45 T45 A45 E31."""
    root = need("emodb")
    table = mio.emodb_table(root, info=True)  # also checks letters/speaker/sex against labels.csv
    assert len(table) == 313 and set(table["rate"]) == {22050}
    assert np.allclose(table["duration_s"], 2.0)
    assert table["emotion_code"].value_counts().to_dict() == {"W": 50, "L": 49, "N": 48, "F": 45, "T": 45,
                                                               "A": 45, "E": 31}
    assert table["speaker"].nunique() == 10
    ref = pd.read_csv(root / "labels.csv", dtype={"speaker": str}).set_index("file")
    mine = table.set_index("file")
    assert (mine["age"] == ref.loc[mine.index, "age"]).all()
    assert (mine["text"] == ref.loc[mine.index, "text_de"]).all()
    assert (mine["label"] == ref.loc[mine.index, "emotion"]).all()


# ------------------------------------------------------------------------------ text
def test_meld_shapes_labels_and_c1_fix():
    """MELD: 9989 / 1109 / 2610 utterances, 7 emotions, 3 sentiments, no C1 characters left."""
    df = mio.load_meld(need("meld_text"))
    assert df.groupby("split").size().to_dict() == {"train": 9989, "dev": 1109, "test": 2610}
    assert set(df["label"]) == {"neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"}
    assert set(df["sentiment"]) == {"neutral", "positive", "negative"}
    assert not df["text"].str.contains("[\x80-\x9f]").any()
    dev = df[df["split"] == "dev"]
    assert dev["text"].iloc[0] == "Oh my God, he’s lost it. He’s totally lost it."
    assert (df["end_s"] >= df["start_s"]).mean() > 0.99


def test_uci_sentiment_shapes():
    """UCI: 3 x 1000 sentences, 500 positive / 500 negative in each source."""
    df = mio.load_uci_sentiment(need("uci_sentiment"))
    assert df.groupby(["source", "label"]).size().to_dict() == {
        (s, lab): 500 for s in ("amazon", "imdb", "yelp") for lab in (0, 1)}
    assert df["text"].str.len().min() > 0


# -------------------------------------------------------------------------- describe
EXPECTED = {
    "stress_predict": ("stress_predict", 9), "mitbih": ("wfdb", 4), "eegmmidb": ("eegmmidb", 1),
    "fsdd": ("fsdd", 6), "emodb": ("emodb", 10), "meld_text": ("meld", None),
    "uci_sentiment": ("uci_sentiment", 0),
}


def test_describe_reports_facts():
    """describe() reports format, subjects, stream rates/durations and label counts."""
    sp = mio.describe(need("stress_predict"))
    s02 = {s["name"]: s for s in sp["streams"] if s["subject"] == "S02"}
    assert (s02["wrist_bvp"]["rate"], s02["wrist_bvp"]["n_samples"]) == (64.0, 228173)
    assert s02["wrist_acc"]["duration_s"] == pytest.approx(114054 / 32)
    assert sp["labels"]["phase"]["counts"]["stroop"] == 9
    ecg = mio.describe(need("mitbih"))
    assert ecg["labels"]["annotation"]["counts"]["N"] == 2239
    assert ecg["labels"]["alarm"]["counts"] == {"false_alarm": 2}
    eeg = mio.describe(need("eegmmidb"))
    assert len(eeg["streams"]) == 6 and all(s["rate"] == 160.0 and s["duration_s"] == 125.0 for s in eeg["streams"])
    assert eeg["labels"]["trial"]["counts"] == {"rest": 90, "left_fist": 46, "right_fist": 44}
    fsdd = mio.describe(need("fsdd"))
    assert fsdd["streams"][0]["n_clips"] == 1200 and fsdd["labels"]["split"]["counts"] == {"train": 900, "test": 300}
    emo = mio.describe(need("emodb"))
    assert emo["streams"][0]["rate"] == 22050.0 and emo["labels"]["emotion"]["counts"]["anger"] == 50


@pytest.mark.parametrize("folder", sorted(EXPECTED))
def test_cli_data_info_json(folder):
    """`mmlab data info PATH --json` works on every sample folder."""
    path = need(folder)
    out = subprocess.run([sys.executable, "-m", "mmlab.cli", "data", "info", str(path), "--json"],
                         capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg"})
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    fmt, n_subjects = EXPECTED[folder]
    assert info["format"] == fmt
    if n_subjects is not None:
        assert len(info["subjects"]) == n_subjects
    assert info["streams"] and all({"name", "modality", "rate", "duration_s"} <= set(s) for s in info["streams"])
    assert info["labels"]


def test_wesad_if_present():
    """If a real WESAD folder is there, its subjects read with 700 Hz labels."""
    from mmlab.io.wesad import wesad_subjects

    root = need("wesad")
    rec = mio.read_wesad(root, subjects=wesad_subjects(root)[:1])[0]
    assert rec["chest_ecg"].rate == 700 and rec["wrist_bvp"].rate == 64
    assert {"baseline", "stress", "amusement"} <= set(rec.phases()["label"])
