"""The CWRU bearing reader (mmlab.io.cwru) on small generated .mat files with the data
centre's structure, its registry entry and its offline error."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.io import savemat

import mmlab.io as mio
from mmlab import sensors as SN
from mmlab.errors import DataFormatError, DatasetError
from mmlab.io import registry
from mmlab.synth.vibration import vibration

RPM = 1797.0


def _signal(fault, fs=12000.0, seconds=2.0, seed=0):
    rng = np.random.default_rng(seed)
    x, truth = vibration(rng, fs, int(fs * seconds), RPM / 60.0, fault, 1.0, resonance_hz=3000.0)
    return x, truth


def _write(path, vid, fault, fs=12000.0, channels=("DE", "FE"), rpm=True, extra=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    x, truth = _signal(fault, fs)
    d = {f"X{vid}_{c}_time": (x if c == "DE" else 0.5 * x)[:, None] for c in channels}
    if rpm:
        d[f"X{vid}RPM"] = np.array([[RPM]])
    d.update(extra or {})
    savemat(str(path), d)
    return truth


def test_reads_a_drive_end_file_with_its_fault_rate_and_speed(tmp_path):
    truth = _write(tmp_path / "12k_drive_end" / "105.mat", "105", "inner_race")
    rec = mio.read_cwru_file(tmp_path / "12k_drive_end" / "105.mat")
    assert set(rec.streams) == {"vibration", "vibration_fe"}
    v = rec["vibration"]
    assert v.rate == 12000.0 and v.n_samples == 24000 and v.units in ("g", ["g"])
    t = rec.meta["truth"]
    assert t["fault"] == "inner_race" and t["fault_diameter_in"] == 0.007 and t["load_hp"] == 0
    assert t["rpm"] == RPM and t["shaft_hz"] == pytest.approx(29.95)
    assert rec.annotations.query("kind == 'label'")["label"].iloc[0] == "failure"
    # the planted defect shows at BPFI in the envelope spectrum of what was read
    ind = SN.defect_indicators(v.data[:, 0] if v.data.ndim == 2 else v.data, v.rate, t["shaft_hz"])
    assert ind.index[0] == "bpfi" and ind.loc["bpfi", "expected_hz"] == pytest.approx(truth["bpfi"], rel=1e-6)


def test_names_rates_and_second_run_variables(tmp_path):
    _write(tmp_path / "OR014@6_1.mat", "198", "outer_race", fs=48000.0)
    rec = mio.read_cwru_file(tmp_path / "OR014@6_1.mat", rate=48000)
    assert rec.meta["truth"]["cwru_fault"] == "outer_race" and rec.meta["truth"]["load_hp"] == 1
    assert rec.subject == "cwruOR014_6_1"
    # 99.mat holds a stray X098 run too: the file's own id wins; the baseline is 48 kHz
    x, _ = _signal(None, 48000.0)
    _write(tmp_path / "base" / "99.mat", "099", None, fs=48000.0, extra={"X098_DE_time": x[:100, None]})
    rec = mio.read_cwru_file(tmp_path / "base" / "99.mat")
    assert rec.meta["variable_id"] == "099" and rec["vibration"].n_samples == 96000
    assert rec["vibration"].rate == 48000.0 and rec.meta["truth"]["fault"] is None
    assert mio.parse_cwru_name("B021_3.mat") == {"fault": "ball", "fault_diameter_in": 0.021, "load_hp": 3}
    assert mio.parse_cwru_name("notes.mat") is None


def test_bad_files_raise_clear_errors(tmp_path):
    _write(tmp_path / "105.mat", "105", "inner_race")
    with pytest.raises(DataFormatError, match="sampling rate is not in the file"):
        mio.read_cwru_file(tmp_path / "105.mat")
    (tmp_path / "12k").mkdir()
    savemat(str(tmp_path / "12k" / "106.mat"), {"foo": np.ones((3, 1))})
    with pytest.raises(DataFormatError, match=r"no CWRU accelerometer variable.*'foo'"):
        mio.read_cwru_file(tmp_path / "12k" / "106.mat")
    (tmp_path / "12k" / "107.mat").write_text("not a mat file")
    with pytest.raises(DataFormatError, match="not a MATLAB v5"):
        mio.read_cwru_file(tmp_path / "12k" / "107.mat")
    _write(tmp_path / "12k" / "mystery.mat", "999", "ball")
    with pytest.raises(DataFormatError, match="cannot tell the fault"):
        mio.read_cwru_file(tmp_path / "12k" / "mystery.mat")
    with pytest.raises(DataFormatError, match="missing"):
        mio.read_cwru_file(tmp_path / "12k" / "none.mat")
    with pytest.raises(DatasetError, match="does not exist"):
        mio.read_cwru(tmp_path / "12k" / "none")  # a folder that is not there
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no .mat files"):
        mio.read_cwru(tmp_path / "empty")


def test_folder_reads_as_a_cohort_the_maintenance_windows_understand(tmp_path):
    root = tmp_path / "cwru_12k"
    for vid, fault in (("105", "inner_race"), ("118", "ball"), ("130", "outer_race")):
        _write(root / f"{vid}.mat", vid, fault)
    cohort = mio.read_cwru(root)
    assert cohort.subjects == ["cwru105", "cwru118", "cwru130"]
    assert list(cohort.participants["fault"]) == ["inner_race", "ball", "outer_race"]
    info = mio.describe(root)
    assert info["format"] == "cwru" and info["n_subjects"] == 3
    from mmlab.systems._maintenance_features import window_table

    W = window_table(cohort, 0.5)
    assert W.present["vibration"].all() and not W.present["thermal"].any()
    assert set(W.reason["thermal"]) == {"missing"} and set(W.meta["fault"]) == {"inner_race", "ball", "outer_race"}


def test_registry_entry_and_offline_error(tmp_path, monkeypatch):
    e = registry.dataset_info("cwru_12k_de")
    assert e["reader"] == "mmlab.io.read_cwru" and e["format"] == "cwru"
    assert [f["name"] for f in e["files"]] == ["97.mat", "105.mat", "118.mat", "130.mat"]
    import pooch
    import requests

    def offline(*args, **kwargs):
        raise requests.exceptions.ConnectionError("Failed to resolve 'engineering.case.edu' (no network)")

    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", offline)
    with pytest.raises(DatasetError) as err:
        registry.fetch("cwru_12k_de", dest=tmp_path / "cwru")
    msg = str(err.value)
    assert "https://engineering.case.edu/sites/default/files/97.mat" in msg and "network" in msg
    assert "mmlab.io.read_cwru" in msg
