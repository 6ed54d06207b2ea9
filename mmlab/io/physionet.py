"""PhysioNet WFDB records (MIT-BIH, PTB, Challenge 2015, ...) via ``wfdb``; chapter 05_data.

:func:`read_wfdb_record` reads one record (``folder/100`` for ``100.hea`` + ``100.dat``)
into a Recording whose subject is the record name. Signals are grouped into one stream per
modality, named after it, with the header's signal names as channels and its units:

* ``ecg``: ECG leads (``MLII``, ``V5``, ``i`` ... ``v6``, ``vx``/``vy``/``vz``, ``II``, ``V`` ...)
* ``ppg`` (``PLETH``), ``resp`` (``RESP``), ``bp`` (``ABP``, ``ART``, ``PAP``, ``CVP``),
  ``spo2`` (``SpO2``), ``eeg``, ``emg``; anything else goes to ``other``.

Every stream starts at 0 on the recorder's clock; ``t0`` is the header's base date and time
as unix seconds when the header gives both (MIT-BIH and PTB do not). Invalid samples are
NaN, as wfdb returns them (``meta["nan_samples"]`` counts them per channel).

Annotations (``100.atr``; the annotator is chosen with ``annotator=``) become
``kind="event"`` rows: ``onset = sample / fs``, ``label`` = the annotation symbol (``N``,
``A``, ``V``, ``+`` ...), ``text`` = the aux note (e.g. ``"(N"`` for a rhythm change), and
extra columns ``sample`` (int) and ``beat`` (True for beat symbols, per wfdb's QRS table).
Header comments are kept in ``meta["comments"]``; ``key: value`` comments (PTB) are also
parsed into ``meta["header"]``. Challenge 2015 records carry the alarm in their comments
(``#Ventricular_Tachycardia`` / ``#False alarm``): that gives a whole-record
``kind="label"`` row (``true_alarm`` or ``false_alarm``, text = alarm type) and an
``kind="event"`` row ``alarm`` at 300 s, where the challenge places every alarm onset.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Iterable

import numpy as np

from mmlab.errors import DataFormatError, DatasetError
from mmlab.io._common import existing_dir, library_deprecations_hidden, safe_name
from mmlab.recording import Cohort, Recording, Stream

#: Challenge 2015 alarm types (header comment) and the alarm onset in every record.
CHALLENGE_2015_ALARMS = ("Asystole", "Bradycardia", "Tachycardia", "Ventricular_Tachycardia",
                         "Ventricular_Flutter_Fib")
CHALLENGE_2015_ALARM_ONSET_S = 300.0

_ECG = re.compile(r"^(ml)?(i|ii|iii|avr|avl|avf|v|v\d+r?|vx|vy|vz|cm\d*|ecg.*|ekg.*|lead.*)$",
                  re.IGNORECASE)
_MODALITY_NAMES = [
    (re.compile(r"^(pleth|ppg|pulse)", re.I), "ppg"),
    (re.compile(r"^(resp|thorax|abdomen|airflow|flow)", re.I), "resp"),
    (re.compile(r"^(abp|art|pap|cvp|bp|nbp|icp)", re.I), "bp"),
    (re.compile(r"^spo2", re.I), "spo2"),
    (re.compile(r"^(eeg|[fcpot]\d|fp\d)", re.I), "eeg"),
    (re.compile(r"^emg", re.I), "emg"),
]


def signal_modality(name: str) -> str:
    """The mmlab modality of a WFDB signal name (``"MLII"`` -> ``"ecg"``, ``"PLETH"`` -> ``"ppg"``)."""
    clean = name.strip().replace(" ", "")
    if _ECG.match(clean):
        return "ecg"
    for rx, modality in _MODALITY_NAMES:
        if rx.match(clean):
            return modality
    return "other"


def _beat_symbols() -> set[str]:
    with library_deprecations_hidden("wfdb"):
        from wfdb.io import annotation as ann

    table = {lab.label_store: lab.symbol for lab in ann.ann_labels}
    return {table[i] for i, q in enumerate(ann.is_qrs) if q and i in table}


def _record_path(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if p.suffix in (".hea", ".dat", ".atr", ".mat", ".xyz"):
        p = p.with_suffix("")
    if not p.with_suffix(".hea").is_file():
        raise DataFormatError(f"{p}.hea: WFDB header is missing")
    return p


def _parse_comments(comments: list[str]) -> dict:
    out = {}
    for c in comments:
        if ":" in c:
            key, value = c.split(":", 1)
            if key.strip() and value.strip():
                out[key.strip()] = value.strip()
    return out


def _annotator_files(rec: Path) -> list[str]:
    skip = {".hea", ".dat", ".mat", ".xyz", ".edf", ".csv", ".txt", ".md", ".json"}
    return sorted(p.suffix[1:] for p in rec.parent.glob(rec.name + ".*") if p.suffix not in skip)


def read_wfdb_record(path: str | Path, annotator: str | None = "auto") -> Recording:
    """One WFDB record as a Recording (see the module docstring).

    ``path`` is the record path without extension (or any of its files). ``annotator``:
    ``"auto"`` reads ``atr`` when present, a name (``"atr"``, ``"qrs"``) requires that
    file, ``None`` reads none.
    """
    with library_deprecations_hidden("wfdb"):  # pandas deprecations at import
        import wfdb

    rec_path = _record_path(path)
    name = rec_path.name
    try:
        with library_deprecations_hidden("wfdb"):
            record = wfdb.rdrecord(str(rec_path))
    except Exception as exc:  # wfdb raises many types for a broken record
        raise DataFormatError(f"{rec_path}.hea: cannot read WFDB record {name!r} "
                              f"({type(exc).__name__}: {exc}); truncated or missing signal file?") from exc
    if record.p_signal is None or record.p_signal.ndim != 2:
        raise DataFormatError(f"{rec_path}.hea: record {name!r} has no signals")
    fs = float(record.fs)
    if record.sig_len is not None and record.p_signal.shape[0] != record.sig_len:
        raise DataFormatError(f"{rec_path}: header says {record.sig_len} samples, read "
                              f"{record.p_signal.shape[0]} (truncated signal file?)")
    names = [str(s) for s in record.sig_name]
    units = [str(u) for u in (record.units or [""] * len(names))]
    groups: dict[str, list[int]] = {}
    for i, sig in enumerate(names):
        groups.setdefault(signal_modality(sig), []).append(i)
    streams = []
    for modality, idx in groups.items():
        data = np.ascontiguousarray(record.p_signal[:, idx])
        channels = [names[i] for i in idx]
        if len(set(channels)) != len(channels):  # repeated lead names
            channels = [f"{c}_{k}" for k, c in enumerate(channels)]
        nan = np.isnan(data).sum(axis=0)
        meta = {"record": name, "file_format": [str(record.fmt[i]) for i in idx] if record.fmt else []}
        if nan.any():
            meta["nan_samples"] = {c: int(n) for c, n in zip(channels, nan)}
        streams.append(Stream(modality, data, modality, rate=fs, start=0.0, channels=channels,
                              units=[units[i] for i in idx], device=name, meta=meta))
    comments = [str(c).strip() for c in (record.comments or [])]
    meta = {"dataset": "wfdb", "record": name, "file": str(rec_path) + ".hea", "comments": comments}
    parsed = _parse_comments(comments)
    if parsed:
        meta["header"] = parsed
    t0 = None
    if record.base_date is not None and record.base_time is not None:
        t0 = _dt.datetime.combine(record.base_date, record.base_time,
                                  tzinfo=_dt.timezone.utc).timestamp()
        meta["t0_note"] = "base date/time of the header, taken as UTC"
    rows = []
    duration = record.p_signal.shape[0] / fs
    alarm = [c for c in comments if c in CHALLENGE_2015_ALARMS]
    verdict = [c for c in comments if c.lower() in ("true alarm", "false alarm")]
    if alarm and verdict:
        true_alarm = verdict[0].lower() == "true alarm"
        meta["alarm"] = {"type": alarm[0], "true_alarm": true_alarm}
        rows.append({"onset": 0.0, "duration": duration, "kind": "label",
                     "label": "true_alarm" if true_alarm else "false_alarm", "text": alarm[0]})
        if duration >= CHALLENGE_2015_ALARM_ONSET_S:
            rows.append({"onset": CHALLENGE_2015_ALARM_ONSET_S, "duration": 0.0, "kind": "event",
                         "label": "alarm", "text": alarm[0]})
    ext = annotator
    if annotator == "auto":
        ext = "atr" if rec_path.with_suffix(".atr").is_file() else None
    if ext:
        ann_file = Path(f"{rec_path}.{ext}")
        if not ann_file.is_file():
            raise DataFormatError(f"{ann_file}: annotation file is missing "
                                  f"(annotators here: {_annotator_files(rec_path) or 'none'})")
        try:
            with library_deprecations_hidden("wfdb"):
                ann = wfdb.rdann(str(rec_path), ext)
        except Exception as exc:
            raise DataFormatError(f"{ann_file}: cannot read annotations ({type(exc).__name__}: {exc})") from exc
        afs = float(ann.fs) if ann.fs else fs
        beats = _beat_symbols()
        samples = np.asarray(ann.sample, dtype=np.int64)
        aux = ann.aux_note or [""] * len(samples)
        for s, sym, note in zip(samples, ann.symbol, aux):
            rows.append({"onset": s / afs, "duration": 0.0, "kind": "event", "label": str(sym),
                         "text": str(note).replace("\x00", ""), "sample": int(s),
                         "beat": str(sym) in beats})
        meta["annotator"] = ext
        meta["n_annotations"] = int(len(samples))
    return Recording(subject=safe_name(name), streams=streams, annotations=rows, meta=meta, t0=t0)


def wfdb_records(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Record paths (without extension) of every ``.hea`` file under ``folder``."""
    folder = existing_dir(folder, "WFDB")
    pattern = "**/*.hea" if recursive else "*.hea"
    return sorted(p.with_suffix("") for p in folder.glob(pattern))


def read_wfdb(folder: str | Path, records: Iterable[str] | None = None,
              annotator: str | None = "auto") -> Cohort:
    """Every WFDB record under ``folder`` (or the named ``records``) as a Cohort."""
    folder = existing_dir(folder, "WFDB")
    if records is None:
        paths = wfdb_records(folder)
    else:
        paths = []
        for r in records:
            hits = [p for p in wfdb_records(folder) if p.name == r]
            if not hits:
                raise DatasetError(f"WFDB: no record {r!r} under {folder}")
            paths.append(hits[0])
    if not paths:
        raise DatasetError(f"WFDB: no .hea headers under {folder}")
    recs = [read_wfdb_record(p, annotator=annotator) for p in paths]
    return Cohort(recs, meta={"name": folder.name, "dataset": "wfdb", "source": str(folder)})
