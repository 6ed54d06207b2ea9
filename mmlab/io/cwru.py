"""Case Western Reserve University (CWRU) bearing data: MATLAB ``.mat`` files (chapter
53_predictive_maintenance).

Each file of the CWRU Bearing Data Center is one test run of a 2-hp motor: variables
``X<id>_DE_time`` (drive-end accelerometer, g), usually ``X<id>_FE_time`` (fan end) and
sometimes ``X<id>_BA_time`` (base plate), each ``(n, 1)``, and ``X<id>RPM`` (shaft speed).
Drive-end fault data are sampled at 12 kHz or 48 kHz, the normal baseline at 48 kHz; the
file itself does not say which, so the rate comes from ``rate=`` or from a ``12k`` /
``48k`` in the file's or a parent folder's name (the normal-baseline numbers 97-100 are
48 kHz), and is otherwise an error (never a guess).
A few files hold a second run's variables (another ``X<id>``): the id matching the file
name's number wins, else the one with a drive-end channel.

The fault comes from the file name: ``IR007_0`` / ``B014_2`` / ``OR021@6_3`` / ``Normal_1``
(the names the data centre's pages use) or the data centre's number for the 12-kHz drive-end
files and the normal baseline (:data:`CWRU_12K_DE`). Faults map to the classes of the
factory scenario: ``inner_race``, ``outer_race``, ``ball``, ``healthy``.

:func:`read_cwru_file` returns a :class:`~mmlab.recording.Recording` (streams
``vibration`` = drive end, ``vibration_fe``, ``vibration_ba``; a ``kind="label"``
annotation ``failure``/``healthy``; ``meta["truth"]`` with ``fault``, ``fault_diameter_in``,
``load_hp``, ``rpm``, ``shaft_hz``), :func:`read_cwru` a :class:`~mmlab.recording.Cohort` of a
folder of files. The registry entry ``cwru_12k_de`` fetches four 0-hp files.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from mmlab.errors import DataFormatError, DatasetError
from mmlab.io._common import existing_dir, existing_file, safe_name
from mmlab.recording import Cohort, Recording, Stream

__all__ = ["read_cwru", "read_cwru_file", "parse_cwru_name", "CWRU_12K_DE", "describe_cwru"]

_FAULTS = {"IR": "inner_race", "OR": "outer_race", "B": "ball"}
_LOAD_RPM = {0: 1797, 1: 1772, 2: 1750, 3: 1730}


def _table() -> dict[int, tuple[str, float, int]]:
    t: dict[int, tuple[str, float, int]] = {97 + k: ("healthy", 0.0, k) for k in range(4)}
    for start, fault, d in [(105, "inner_race", 0.007), (118, "ball", 0.007), (130, "outer_race", 0.007),
                            (169, "inner_race", 0.014), (185, "ball", 0.014), (197, "outer_race", 0.014),
                            (209, "inner_race", 0.021), (222, "ball", 0.021), (234, "outer_race", 0.021)]:
        for k in range(4):
            t[start + k] = (fault, d, k)
    return t


#: Data-centre file number -> (fault, diameter in inches, load in hp) for the 12-kHz drive-end
#: fault files (outer race centred at 6:00) and the normal baseline (97-100, 48 kHz).
CWRU_12K_DE = _table()

_NAME = re.compile(r"^(?:(?P<normal>normal)|(?P<f>IR|OR|B)(?P<d>\d{3})(?:@(?P<pos>\d+))?)_(?P<load>[0-3])$",
                   re.IGNORECASE)
_VAR = re.compile(r"^X(?P<id>\d+)_(?P<ch>DE|FE|BA)_time$")


def parse_cwru_name(name: str) -> dict | None:
    """``{"fault", "fault_diameter_in", "load_hp"}`` from a file name (``IR007_0.mat``,
    ``OR014@6_1``, ``Normal_2``, or a data-centre number such as ``105.mat``); None if
    the name says nothing."""
    stem = Path(name).stem
    m = _NAME.match(stem)
    if m:
        fault = "healthy" if m["normal"] else _FAULTS[m["f"].upper()]
        return {"fault": fault, "fault_diameter_in": 0.0 if m["normal"] else int(m["d"]) / 1000,
                "load_hp": int(m["load"])}
    if stem.isdigit() and int(stem) in CWRU_12K_DE:
        f, d, load = CWRU_12K_DE[int(stem)]
        return {"fault": f, "fault_diameter_in": d, "load_hp": load}
    return None


def _rate_from_path(path: Path) -> float | None:
    for part in [path.name, *[p.name for p in path.parents]]:
        m = re.search(r"(?<!\d)(12|48)\s*k", part, re.IGNORECASE)
        if m:
            return 12000.0 if m.group(1) == "12" else 48000.0
    return None


def read_cwru_file(path: str | Path, rate: float | None = None, subject: str | None = None) -> Recording:
    """One CWRU ``.mat`` file as a Recording (see the module doc)."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    p = existing_file(path, "CWRU .mat")
    baseline = p.stem.isdigit() and 97 <= int(p.stem) <= 100  # the normal baseline: 48 kHz
    fs = float(rate) if rate is not None else (48000.0 if baseline else _rate_from_path(p))
    if fs is None or not np.isfinite(fs) or fs <= 0:
        raise DataFormatError(f"{p}: the sampling rate is not in the file; pass rate=12000 or rate=48000, or keep "
                              "the file in a folder named like '12k_drive_end' / '48k'")
    try:
        mat = loadmat(str(p))
    except (MatReadError, ValueError, TypeError, OSError, NotImplementedError) as e:
        raise DataFormatError(f"{p}: not a MATLAB v5 .mat file scipy can read ({e})") from None
    chans: dict[str, dict[str, np.ndarray]] = {}
    rpms: dict[str, float] = {}
    for key, value in mat.items():
        if key.startswith("__"):
            continue
        v = _VAR.match(key)
        if v:
            chans.setdefault(v["id"], {})[v["ch"]] = np.asarray(value, dtype=np.float64).reshape(-1)
        r = re.match(r"^X(\d+)RPM$", key)
        if r:
            val = np.asarray(value, dtype=float).reshape(-1)
            if len(val):
                rpms[r.group(1)] = float(val[0])
    if not chans:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DataFormatError(f"{p}: no CWRU accelerometer variable (X<id>_DE_time, _FE_time, _BA_time); "
                              f"variables found: {found}")
    stem = p.stem
    ids = sorted(chans, key=lambda i: (not (stem.isdigit() and int(i) == int(stem)), "DE" not in chans[i], i))
    vid = ids[0]
    ch = chans[vid]
    if "DE" not in ch:
        raise DataFormatError(f"{p}: variable X{vid}: no drive-end channel (X{vid}_DE_time)")
    label = parse_cwru_name(p.name) or (parse_cwru_name(f"{int(vid)}.mat") if vid.isdigit() else None)
    if label is None:
        raise DataFormatError(f"{p}: cannot tell the fault from the file name {p.name!r} (expected e.g. IR007_0.mat, "
                              "OR014@6_1.mat, Normal_2.mat or a data-centre number like 105.mat)")
    rpm = rpms.get(vid, rpms.get(ids[-1]) if rpms else None)
    if rpm is None or not np.isfinite(rpm) or rpm <= 0:
        rpm = float(_LOAD_RPM[label["load_hp"]])
    streams = []
    for c, name in (("DE", "vibration"), ("FE", "vibration_fe"), ("BA", "vibration_ba")):
        if c in ch:
            x = ch[c]
            if len(x) == 0:
                raise DataFormatError(f"{p}: X{vid}_{c}_time is empty")
            streams.append(Stream(name, x.astype(np.float32), "vibration", rate=fs, units="g", device="daq",
                                  channels=[c], meta={"sensor": {"DE": "drive end", "FE": "fan end",
                                                                 "BA": "base plate"}[c]}))
    dur = len(ch["DE"]) / fs
    fault = label["fault"]
    ann = [{"onset": 0.0, "duration": dur, "kind": "label", "label": "healthy" if fault == "healthy" else "failure"}]
    truth = {"fault": None if fault == "healthy" else fault, "cwru_fault": fault, "shaft_hz": rpm / 60.0,
             "rpm": rpm, "fault_diameter_in": label["fault_diameter_in"], "load_hp": label["load_hp"]}
    return Recording(subject or safe_name(f"cwru{stem}"), streams=streams, annotations=ann,
                     meta={"source": str(p), "variable_id": vid, "rate_hz": fs, "truth": truth})


def read_cwru(root: str | Path, rate: float | None = None) -> Cohort:
    """Every ``.mat`` file under ``root`` (recursively) as a Cohort; participants have
    ``participant_id``, ``fault``, ``fault_diameter_in``, ``load_hp``, ``rpm``, ``rate_hz``."""
    base = existing_dir(root, "CWRU data folder")
    files = sorted(base.rglob("*.mat"))
    if not files:
        raise DatasetError(f"{base}: no .mat files; fetch them with `mmlab data fetch cwru_12k_de` or place the "
                           "data centre's files there")
    recs, rows = [], []
    for f in files:
        rec = read_cwru_file(f, rate=rate, subject=safe_name(f"cwru{f.stem}"))
        recs.append(rec)
        t = rec.meta["truth"]
        rows.append({"participant_id": rec.subject, "fault": t["cwru_fault"], "fault_diameter_in": t["fault_diameter_in"],
                     "load_hp": t["load_hp"], "rpm": t["rpm"], "rate_hz": rec.meta["rate_hz"]})
    return Cohort(recs, participants=pd.DataFrame(rows), meta={"name": "cwru", "source": str(base)})


def describe_cwru(root: Path) -> dict:
    """What :func:`mmlab.io.describe` reports for a CWRU folder (needs the rate in a name)."""
    cohort = read_cwru(root)
    streams = [{"name": s.name, "modality": s.modality, "rate": s.rate, "duration_s": round(s.duration, 6),
                "channels": list(s.channels or []), "subject": r.subject, "n_samples": s.n_samples}
               for r in cohort for s in r.streams.values()]
    return {"subjects": cohort.subjects, "streams": streams,
            "labels": {"unit": "file", "counts": cohort.participants["fault"].value_counts().to_dict()}}
