"""The schema: validation messages, timing, and a lossless save/load for every stream type."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mmlab.errors import DataFormatError, SchemaError
from mmlab.recording import Cohort, Recording, Stream, make_annotations

RNG = np.random.default_rng(7)


def _streams() -> list[Stream]:
    ecg = RNG.standard_normal((1400, 1)).astype(np.float32)
    ecg[100:120] = np.nan  # a dropout survives the round trip as NaN
    return [
        Stream("chest_ecg", ecg, "ecg", rate=700, start=12.5, units="mV", device="chest"),
        Stream("wrist_acc", RNG.integers(-128, 127, (64, 3)).astype(np.int16), "acc", rate=32,
               channels=["x", "y", "z"], units="1/64 g", device="wrist", meta={"range_g": 2}),
        Stream("eeg", RNG.standard_normal((320, 4)), "eeg", rate=160.0,
               channels=["C3", "C4", "Cz", "Fz"], units="V"),
        Stream("ibi", np.array([0.81, 0.79, 0.84, 0.9]), "ibi", times=[3.1, 3.9, 4.73, 5.6], units="s"),
        Stream("voice", (0.1 * RNG.standard_normal(16000)).astype(np.float32), "audio", rate=16000,
               device="mic"),
        Stream("voice16", RNG.integers(-3000, 3000, (800, 2)).astype(np.int16), "audio", rate=8000,
               channels=["left", "right"]),
        Stream("odd_rate_audio", np.zeros(100, dtype=np.float32), "audio", rate=44.1),
        Stream("thermal", RNG.random((5, 8, 8)).astype(np.float32), "image", rate=0.5, units="degC"),
        Stream("snapshots", RNG.random((3, 4, 4, 3)), "image", times=[0.0, 10.0, 25.0]),
        Stream("flags", np.array([True, False, True]), "event", rate=1.0),
    ]


def _recording(subject="01") -> Recording:
    ann = [
        {"onset": 0.0, "duration": 60.0, "kind": "phase", "label": "baseline"},
        {"onset": 60.0, "duration": 30.0, "kind": "phase", "label": "stress"},
        {"onset": 61.5, "duration": 2.2, "kind": "utterance", "label": "",
         "text": "I can't\tdo this \"now\"\nplease", "speaker": "caller"},
    ]
    return Recording(subject, _streams(), ann, meta={"sex": "F", "age": 31, "clock_truth": {
        "wrist": {"offset_s": 1.25, "drift_ppm": 40.0}}, "array": np.arange(3)}, t0=1_700_000_000.5)


def test_cohort_round_trip_is_lossless_for_every_stream_type(tmp_path):
    cohort = Cohort([_recording("01"), _recording("S02")],
                    participants=pd.DataFrame({"participant_id": ["01", "S02"], "age": [31, 40],
                                               "sex": ["F", "M"]}),
                    meta={"scenario": "unit", "label_names": ["baseline", "stress"]})
    cohort.save(tmp_path / "c")
    back = Cohort.load(tmp_path / "c")
    assert back.equals(cohort)
    for name, s in cohort[0].streams.items():
        assert back[0][name].equals(s), name
        assert back[0][name].data.dtype == s.data.dtype
    assert back.participants["participant_id"].tolist() == ["01", "S02"]  # "01" is not 1
    assert back[0].annotations.loc[2, "text"] == "I can't\tdo this \"now\"\nplease"
    files = {p.suffix for p in (tmp_path / "c" / "sub-01").iterdir()}
    assert {".wav", ".parquet", ".npy", ".json", ".tsv"} <= files


def test_equals_notices_a_changed_sample(tmp_path):
    rec = _recording()
    rec.save(tmp_path)
    back = Recording.load(tmp_path / "sub-01")
    assert back.equals(rec)
    back["chest_ecg"].data[5, 0] += 1e-6
    assert not back.equals(rec)


def test_regular_timing_and_slicing():
    s = Stream("ecg", np.arange(700 * 4, dtype=float), "ecg", rate=700, start=10.0)
    assert s.duration == 4.0 and s.end == 14.0
    part = s.slice(11.0, 12.0)
    assert part.n_samples == 700 and part.start == 11.0 and part.data[0, 0] == 700
    ibi = Stream("ibi", [0.8, 0.9, 1.0], "ibi", times=[1.0, 1.9, 2.9])
    assert ibi.start == 1.0 and ibi.slice(1.5, 3.0).times.tolist() == [1.9, 2.9]


def test_label_at_reads_phases():
    rec = _recording()
    assert rec.label_at([0.0, 59.9, 60.0, 95.0]).tolist() == ["baseline", "baseline", "stress", ""]


@pytest.mark.parametrize("kwargs, message", [
    (dict(data=np.zeros(10), modality="ecg"), "give a sampling rate or explicit timestamps"),
    (dict(data=np.zeros(10), modality="ecg", rate=0), "sampling rate must be a positive number"),
    (dict(data=np.zeros(10), modality="ecg", rate=float("nan")), "sampling rate must be a positive"),
    (dict(data=np.zeros(3), modality="ibi", times=[1, 2]), "2 timestamps for 3 samples"),
    (dict(data=np.zeros(3), modality="ibi", times=[1, 3, 2]), "not strictly increasing (sample 2"),
    (dict(data=np.zeros(3), modality="ibi", times=[1, np.nan, 2]), "timestamps contain NaN"),
    (dict(data=np.zeros((4, 2)), modality="acc", rate=32, channels=["x"]), "1 channel names for 2 channels"),
    (dict(data=np.zeros((4, 2)), modality="acc", rate=32, units=["g"]), "1 units for 2 channels"),
    (dict(data=np.array(["a", "b"]), modality="text", rate=1), "data must be numeric"),
])
def test_stream_validation_names_the_stream(kwargs, message):
    with pytest.raises(SchemaError) as err:
        Stream("bad_stream", **kwargs)
    assert "stream 'bad_stream'" in str(err.value) and message in str(err.value)


def test_annotation_and_recording_validation():
    with pytest.raises(SchemaError, match="onset 'soon' is not a finite number"):
        make_annotations([{"onset": "soon", "duration": 1}])
    with pytest.raises(SchemaError, match="duration -1 must be a number >= 0"):
        make_annotations([{"onset": 0, "duration": -1}])
    s = Stream("a", np.zeros(3), "ecg", rate=1)
    with pytest.raises(SchemaError, match="two streams named 'a'"):
        Recording("01", [s, s])
    with pytest.raises(SchemaError, match="has no stream 'eda'"):
        Recording("01", [s])["eda"]
    with pytest.raises(SchemaError, match="subject name 'a b'"):
        Recording("a b")
    with pytest.raises(SchemaError, match=r"duplicate subjects \['01'\]"):
        Cohort([Recording("01"), Recording("01")])


def test_truncated_and_missing_files_are_clear_errors(tmp_path):
    rec = _recording()
    sub = rec.save(tmp_path)
    wav = sub / "sub-01_voice.wav"
    wav.write_bytes(wav.read_bytes()[: len(wav.read_bytes()) // 2])
    with pytest.raises(DataFormatError, match=r"sub-01_voice.wav: stream 'voice' has shape \[7990, 1\] float32, sidecar says \[16000, 1\]"):
        Recording.load(sub)
    rec.save(tmp_path)
    (sub / "sub-01_ibi.parquet").unlink()
    with pytest.raises(DataFormatError, match="data file 'sub-01_ibi.parquet' is missing"):
        Recording.load(sub)
    rec.save(tmp_path)
    (sub / "sub-01_eeg.json").write_text("{not json")
    with pytest.raises(DataFormatError, match="sub-01_eeg.json: not valid JSON"):
        Recording.load(sub)
    with pytest.raises(DataFormatError, match="not a saved mmlab cohort"):
        Cohort.load(tmp_path / "nothing")


def test_cohort_listing_a_missing_subject_folder(tmp_path):
    Cohort([Recording("01")]).save(tmp_path)
    desc = json.loads((tmp_path / "dataset_description.json").read_text())
    desc["subjects"].append("02")
    (tmp_path / "dataset_description.json").write_text(json.dumps(desc))
    with pytest.raises(DataFormatError, match="subject '02' is listed but sub-02/ is missing"):
        Cohort.load(tmp_path)


def test_annotation_onsets_survive_exactly(tmp_path):
    onsets = np.cumsum(np.full(50, 1 / 360.0)) + 0.1  # many digits, as sample/fs times are
    rec = Recording("01", annotations=[{"onset": o, "kind": "event", "label": "N"} for o in onsets])
    rec.save(tmp_path)
    assert Recording.load(tmp_path / "sub-01").annotations["onset"].tolist() == onsets.tolist()


def test_duration_spans_offset_streams():
    a = Stream("a", np.zeros(100), "ecg", rate=10, start=0.0)
    b = Stream("b", np.zeros(10), "hr", rate=1, start=95.0)
    assert Recording("01", [a, b]).duration == 105.0


def test_memory_mapped_load_is_equal_and_read_only(tmp_path):
    rec = _recording()
    rec.save(tmp_path)
    back = Recording.load(tmp_path / "sub-01", mmap=True)
    assert back.equals(rec)
    assert not back["chest_ecg"].data.flags.writeable
    assert Recording.load(tmp_path / "sub-01")["chest_ecg"].data.flags.writeable



# ------------------------------------------------------------------ clock model
def test_clock_model_round_trips_and_rejects_bad_entries():
    from mmlab.recording import Clock
    c = Clock.from_mapping({"offset_s": np.int64(2), "drift_ppm": 100})
    assert isinstance(c.offset_s, float) and c.offset_s == 2.0 and c.jitter_s == 0.0
    assert c.to_device(10.0) == pytest.approx(2.0 + 10.0 * (1 + 100e-6))
    np.testing.assert_allclose(c.to_reference(c.to_device(np.array([0.0, 5.0]))), [0.0, 5.0])
    assert Clock.from_mapping(c.truth()) == c
    assert Clock.from_mapping((1.5, 20)) == Clock(1.5, 20.0) and Clock.from_mapping(3) == Clock(3.0)
    with pytest.raises(SchemaError, match="clock of device 'wrist': unknown key 'offset'"):
        Clock.from_mapping({"offset": 2.0}, device="wrist")
    with pytest.raises(SchemaError, match="drift_ppm must be a number"):
        Clock.from_mapping({"drift_ppm": "fast"})
    with pytest.raises(SchemaError, match="not plausible"):
        Clock(0.0, 1e9)
    with pytest.raises(SchemaError, match="jitter_s must be >= 0"):
        Clock(jitter_s=-1)
    with pytest.raises(SchemaError, match="offset_s must be finite"):
        Clock(float("nan"))
    with pytest.raises(SchemaError, match="expected a mapping"):
        Clock.from_mapping("2 s")
