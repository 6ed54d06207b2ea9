"""Empatica E4 exports and the Stress-Predict dataset (chapter 05_data).

An E4 session export is a folder of CSV files, one per sensor::

    EDA.csv  BVP.csv  ACC.csv  TEMP.csv  HR.csv    row 1: start (unix UTC), row 2: rate (Hz), then samples
    IBI.csv                                         row 1: "start, IBI", then "offset_s,interval_s" rows
    tags_*.csv                                      one unix time per button press
    info.txt                                        free text (not read)

:func:`read_e4` turns one export into a :class:`~mmlab.recording.Recording`:

============  ========  =======  =====================================================
stream        modality  rate Hz  notes
============  ========  =======  =====================================================
wrist_eda     eda       4        µS
wrist_bvp     bvp       64       PPG, arbitrary units
wrist_acc     acc       32       x, y, z converted from the file's 1/64 g to g
wrist_temp    temp      4        °C
wrist_hr      hr        1        bpm, E4-derived; starts 10 s after the others
wrist_ibi     ibi       —        irregular: time of each beat, interval (s) to the one before
============  ========  =======  =====================================================

Clocks: the E4 stamps every file in unix UTC, so the recording's reference clock is the
E4 clock shifted to start at the earliest file start: ``Recording.t0`` is that unix time
and each ``Stream.start`` is ``file start - t0`` (0 for EDA/BVP/ACC/TEMP, 10 for HR).
Button presses become ``kind="event"`` annotations labelled ``"tag"``. Every stream has
``device="wrist"`` (the body site, as in :mod:`mmlab.synth`) and ``meta["hardware"]``.

:func:`read_stress_predict` adds the protocol phases of the Stress-Predict study
(Iqbal et al. 2022) from ``Processed_data/Time_logs.xlsx`` (or the derived
``segments_from_time_logs.csv``) as ``kind="phase"`` annotations with labels
``consent, baseline_questionnaire, stroop, relax, interview, hyperventilation,
questionnaire, relax_baseline`` (the original name is kept in ``text``, and a ``stress``
column is 1 for Stroop, interview and hyperventilation). Three quirks of the time log are
handled here, not hidden:

* times are Irish local wall-clock times with **minute** resolution (the tags are exact);
  they are converted to UTC with the Europe/Dublin time zone (UTC in February–March);
* the log uses a 12-hour clock without am/pm: sessions ran between 09:00 and 17:00, so an
  hour from 1 to 7 means the afternoon (``01:05`` is 13:05);
* some logged phases lie outside what the wristband recorded (``Consent`` is logged before
  the E4 was started, ``Baseline/Questionniare`` often straddles the start, the last
  ``Relax/Baseline`` may run past the end). Every phase is checked against the recording
  span by :func:`mmlab.io._common.check_label_span`: a stress phase not fully inside is a
  SchemaError at read time; another phase partly outside is clipped to the span; one
  entirely outside is removed from the annotations. The per-phase report (subject, phase,
  interval as logged, span, ``inside``/``clipped``/``outside``) is kept in
  ``rec.meta["label_span"]`` and the removed phases are named in ``rec.meta["labels_outside"]``.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from mmlab.errors import DataFormatError, DatasetError
from mmlab.io._common import check_label_span, existing_dir, existing_file
from mmlab.recording import Cohort, Recording, Stream
from mmlab.validate import check_rate

#: file -> (stream name, modality, expected rate, channels, units)
E4_SIGNALS = {
    "EDA": ("wrist_eda", "eda", 4.0, ["wrist_eda"], "uS"),
    "BVP": ("wrist_bvp", "bvp", 64.0, ["wrist_bvp"], "a.u."),
    "ACC": ("wrist_acc", "acc", 32.0, ["x", "y", "z"], "g"),
    "TEMP": ("wrist_temp", "temp", 4.0, ["wrist_temp"], "degC"),
    "HR": ("wrist_hr", "hr", 1.0, ["wrist_hr"], "bpm"),
}
E4_DEVICE = "wrist"  # device name = body site, as in mmlab.synth; the hardware is in meta
ACC_SCALE = 1.0 / 64.0  # the E4 writes acceleration in 1/64 g

#: Stress-Predict time-log phase names -> labels (and whether the phase is a stressor).
STRESS_PREDICT_PHASES = {
    "Consent": ("consent", 0),
    "Baseline/Questionniare": ("baseline_questionnaire", 0),
    "Stroop Test": ("stroop", 1),
    "Relax": ("relax", 0),
    "Interview": ("interview", 1),
    "Hyperventilation": ("hyperventilation", 1),
    "Questionniare": ("questionnaire", 0),
    "Relax/Baseline": ("relax_baseline", 0),
}
_PHASE_ALIASES = {k.lower().replace("questionnaire", "questionniare"): k for k in STRESS_PREDICT_PHASES}
STUDY_TIMEZONE = "Europe/Dublin"


# ------------------------------------------------------------------- E4 CSV files
def _read_lines(path: Path, n: int) -> list[str]:
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        lines = []
        for _ in range(n):
            line = fh.readline()
            if not line:
                break
            lines.append(line.strip())
    return lines


def _parse_header_row(path: Path, line: str | None, row: int, what: str, n_cols: int) -> float:
    """A header row of an E4 CSV: the same number repeated once per column."""
    if line is None or line == "":
        raise DataFormatError(f"{path}: row {row} ({what}) is missing: truncated or empty file")
    cells = [c.strip() for c in line.split(",")]
    if len(cells) != n_cols:
        raise DataFormatError(
            f"{path}: row {row} ({what}) has {len(cells)} values, expected {n_cols} (one per column)")
    try:
        values = [float(c) for c in cells]
    except ValueError:
        raise DataFormatError(f"{path}: row {row} ({what}) is not a number: {line!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise DataFormatError(f"{path}: row {row} ({what}) is not a finite number: {line!r}")
    if len(set(values)) != 1:
        raise DataFormatError(f"{path}: row {row} ({what}) differs between columns: {line!r}")
    return values[0]


def read_e4_csv(path: str | Path, expected_rate: float | None = None,
                n_channels: int = 1) -> tuple[float, float, np.ndarray]:
    """Read one regular E4 CSV; return ``(start_unix, rate_hz, samples (n, n_channels))``.

    Raises DataFormatError naming the file when the header rows are missing or not
    numbers, when the rate disagrees with ``expected_rate``, or when a sample row is
    malformed (wrong column count, not a number, truncated).
    """
    path = existing_file(path, "E4 signal")
    head = _read_lines(path, 2) + [None, None]
    start = _parse_header_row(path, head[0], 1, "start time", n_channels)
    rate = _parse_header_row(path, head[1], 2, "sampling rate", n_channels)
    rate = check_rate(rate, str(path), error=DataFormatError)
    if expected_rate is not None and abs(rate - expected_rate) > 1e-9:
        raise DataFormatError(
            f"{path}: rate mismatch: the file says {rate:g} Hz, an E4 writes this sensor at "
            f"{expected_rate:g} Hz")
    try:
        table = pd.read_csv(path, header=None, skiprows=2, dtype=float, skip_blank_lines=True,
                            names=list(range(n_channels)), on_bad_lines="error")
    except pd.errors.EmptyDataError:
        raise DataFormatError(f"{path}: no samples after the two header rows (truncated file?)") from None
    except (ValueError, pd.errors.ParserError) as exc:
        m = re.search(r"line (\d+), saw (\d+)", str(exc))
        where = f"row {m.group(1)} has {m.group(2)} values" if m else str(exc)
        raise DataFormatError(f"{path}: malformed sample rows, expected {n_channels} number(s) per "
                              f"row: {where}") from None
    data = table.to_numpy(dtype=np.float64)
    if len(data) == 0:
        raise DataFormatError(f"{path}: no samples after the two header rows (truncated file?)")
    bad = ~np.isfinite(data)
    if bad.any():
        row = int(np.argmax(bad.any(axis=1)))
        raise DataFormatError(
            f"{path}: sample row {row + 3} has a missing or non-finite value "
            f"(expected {n_channels} number(s) per row; truncated file?)")
    return start, rate, data


def read_e4_ibi(path: str | Path) -> tuple[float, np.ndarray, np.ndarray]:
    """Read IBI.csv; return ``(start_unix, beat offsets (s), intervals (s))``.

    Offsets must be strictly increasing and intervals positive; otherwise a
    DataFormatError names the file and the row.
    """
    path = existing_file(path, "E4 IBI")
    head = _read_lines(path, 1)
    if not head or not head[0]:
        raise DataFormatError(f"{path}: empty file, expected 'start, IBI' on row 1")
    cells = [c.strip() for c in head[0].split(",")]
    if len(cells) != 2 or cells[1].upper() != "IBI":
        raise DataFormatError(f"{path}: row 1 should be '<start unix time>, IBI', got {head[0]!r}")
    try:
        start = float(cells[0])
    except ValueError:
        raise DataFormatError(f"{path}: start time {cells[0]!r} on row 1 is not a number") from None
    try:
        table = pd.read_csv(path, header=None, skiprows=1, dtype=float, names=["t", "ibi"],
                            on_bad_lines="error")
    except pd.errors.EmptyDataError:
        table = pd.DataFrame({"t": [], "ibi": []}, dtype=float)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataFormatError(f"{path}: malformed offset,interval rows ({exc})") from None
    t = table["t"].to_numpy(dtype=np.float64)
    ibi = table["ibi"].to_numpy(dtype=np.float64)
    bad = ~(np.isfinite(t) & np.isfinite(ibi))
    if bad.any():
        raise DataFormatError(f"{path}: row {int(np.argmax(bad)) + 2} has a missing or non-numeric value")
    if len(t) > 1 and np.any(np.diff(t) <= 0):
        i = int(np.argmax(np.diff(t) <= 0))
        raise DataFormatError(
            f"{path}: beat times are not increasing: row {i + 3} at {t[i + 1]:g} s "
            f"comes after row {i + 2} at {t[i]:g} s")
    if np.any(ibi <= 0):
        raise DataFormatError(f"{path}: row {int(np.argmax(ibi <= 0)) + 2} has a non-positive interval")
    return start, t, ibi


def read_e4_tags(path: str | Path) -> np.ndarray:
    """Unix times of the button presses in a tags CSV (an empty file means no presses)."""
    path = existing_file(path, "E4 tags")
    text = path.read_text(encoding="utf-8", errors="replace")
    times = []
    for i, line in enumerate(text.replace("\r", "\n").split("\n"), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            times.append(float(line.split(",")[0]))
        except ValueError:
            raise DataFormatError(f"{path}: row {i} is not a unix time: {line!r}") from None
    return np.asarray(times, dtype=np.float64)


def read_e4(folder: str | Path, subject: str | None = None,
            streams: Iterable[str] | None = None, t0: float | None = None) -> Recording:
    """Read one Empatica E4 export folder into a Recording (see the module docstring).

    ``streams`` limits which files are read (names like ``"EDA"``, ``"IBI"``; default: all
    six, each of which must exist). ``t0`` fixes the reference clock's origin (unix
    seconds); by default it is the earliest file start.
    """
    folder = existing_dir(folder, "E4 export")
    subject = subject or folder.name
    wanted = [s.upper() for s in (streams or [*E4_SIGNALS, "IBI"])]
    unknown = [s for s in wanted if s not in E4_SIGNALS and s != "IBI"]
    if unknown:
        raise DatasetError(f"E4: unknown stream file(s) {unknown}; known: {[*E4_SIGNALS, 'IBI']}")
    raw = {}
    for key in wanted:
        path = folder / f"{key}.csv"
        if not path.is_file():
            raise DataFormatError(f"{path}: E4 stream file {key}.csv is missing from {folder}")
        if key == "IBI":
            raw[key] = read_e4_ibi(path)
        else:
            _, _, expected, channels, _ = E4_SIGNALS[key]
            raw[key] = read_e4_csv(path, expected, len(channels))
    starts = [v[0] for v in raw.values()]
    if t0 is None:
        t0 = min(starts) if starts else None
    out = []
    for key, value in raw.items():
        if key == "IBI":
            start, t, ibi = value
            out.append(Stream("wrist_ibi", ibi, "ibi", times=(start - t0) + t, channels=["wrist_ibi"],
                              units="s", device=E4_DEVICE,
                              meta={"file": f"{key}.csv", "start_unix": start, "hardware": "Empatica E4",
                                    "note": "time of each detected beat; value = interval to the previous beat"}))
            continue
        name, modality, _, channels, units = E4_SIGNALS[key]
        start, rate, data = value
        meta = {"file": f"{key}.csv", "start_unix": start, "hardware": "Empatica E4"}
        if key == "ACC":
            data = data * ACC_SCALE
            meta["raw_unit"] = "1/64 g"
        out.append(Stream(name, data, modality, rate=rate, start=start - t0, channels=channels,
                          units=units, device=E4_DEVICE, meta=meta))
    rec = Recording(subject=subject, streams=out, t0=t0,
                    meta={"source": "empatica_e4", "folder": str(folder)})
    tag_files = sorted(folder.glob("tags*.csv"))
    if tag_files:
        tags = read_e4_tags(tag_files[0])
        if len(tags):
            rec.add_annotations([{"onset": t - t0, "duration": 0.0, "kind": "event", "label": "tag",
                                  "text": "E4 button press"} for t in tags])
    return rec


# -------------------------------------------------------------- Stress-Predict labels
def _stress_predict_folder(root: Path, subject: str) -> Path:
    for cand in (root / "Raw_data" / subject, root / subject):
        if cand.is_dir():
            return cand
    raise DatasetError(f"Stress-Predict: no folder for subject {subject!r} under {root} "
                       f"(expected {root / 'Raw_data' / subject})")


def stress_predict_subjects(root: str | Path) -> list[str]:
    """The subject ids (``S02`` ...) with a raw E4 folder under ``root``."""
    root = existing_dir(root, "Stress-Predict")
    base = root / "Raw_data" if (root / "Raw_data").is_dir() else root
    return sorted(p.name for p in base.iterdir() if p.is_dir() and re.fullmatch(r"S\d+", p.name))


def _clock_time(value, where: str) -> _dt.time:
    """A time-log cell as a 24-hour time (12-hour log: hours 1..7 are afternoon)."""
    if isinstance(value, _dt.datetime):
        value = value.time()
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*", value)
        if not m:
            raise DataFormatError(f"{where}: {value!r} is not a time of day")
        value = _dt.time(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))
    elif not isinstance(value, _dt.time):
        raise DataFormatError(f"{where}: {value!r} is not a time of day")
    if 1 <= value.hour <= 7:
        value = value.replace(hour=value.hour + 12)
    return value


def _to_unix(date: _dt.date, clock: _dt.time) -> float:
    try:
        from zoneinfo import ZoneInfo

        tz = ZoneInfo(STUDY_TIMEZONE)
    except Exception as exc:  # no tz database at all
        raise DatasetError(f"Stress-Predict: time zone {STUDY_TIMEZONE} is unavailable ({exc}); "
                           "install the 'tzdata' package") from exc
    return _dt.datetime.combine(date, clock, tzinfo=tz).timestamp()


def read_time_logs(path: str | Path) -> pd.DataFrame:
    """The Stress-Predict protocol time log as one row per subject × phase.

    Reads ``Time_logs.xlsx`` (openpyxl) or ``segments_from_time_logs.csv``. Columns:
    ``subject, phase (original name), label, stress, start_unix, end_unix, session_id``.
    Times are converted as described in the module docstring.
    """
    path = existing_file(path, "Stress-Predict time log")
    rows = _time_log_xlsx(path) if path.suffix.lower() in (".xlsx", ".xlsm") else _time_log_csv(path)
    table = pd.DataFrame(rows, columns=["subject", "phase", "label", "stress", "start_unix",
                                        "end_unix", "session_id"])
    bad = table[table["end_unix"] < table["start_unix"]]
    if len(bad):
        r = bad.iloc[0]
        raise DataFormatError(f"{path}: subject {r.subject} phase {r.phase!r} ends before it starts")
    table.attrs["path"] = str(path)
    return table


def _phase_key(name: str, where: str) -> str:
    key = _PHASE_ALIASES.get(str(name).strip().lower().replace("questionnaire", "questionniare"))
    if key is None:
        raise DataFormatError(f"{where}: unknown protocol phase {name!r} "
                              f"(known: {', '.join(STRESS_PREDICT_PHASES)})")
    return key


def _time_log_xlsx(path: Path) -> list[tuple]:
    try:
        import openpyxl

        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        ws = wb.worksheets[0]
        grid = [list(r) for r in ws.iter_rows(values_only=True)]
        wb.close()
    except Exception as exc:
        raise DataFormatError(f"{path}: not a readable Excel workbook ({exc})") from exc
    if len(grid) < 3:
        raise DataFormatError(f"{path}: expected two header rows and one row per subject")
    head, sub = grid[0], grid[1]
    names = [str(h).strip() if h is not None else "" for h in head]
    try:
        i_id = names.index("S. ID.")
        i_date = names.index("Date")
    except ValueError:
        raise DataFormatError(f"{path}: header row needs 'S. ID.' and 'Date' columns, has {names}") from None
    i_session = names.index("Session ID") if "Session ID" in names else None
    phases = []  # (phase key, start col, end col)
    for j, name in enumerate(names):
        if name in ("", "S. ID.", "Start Time", "End Time", "Session ID", "Date"):
            continue
        where = f"{path}, header column {j + 1}"
        key = _phase_key(name, where)
        if j + 1 >= len(sub) or str(sub[j]).strip() != "Start" or str(sub[j + 1]).strip() != "End":
            raise DataFormatError(f"{where}: phase {name!r} should have 'Start' and 'End' columns below it")
        phases.append((key, j, j + 1))
    if not phases:
        raise DataFormatError(f"{path}: no protocol phase columns found in the header row")
    rows = []
    for r, values in enumerate(grid[2:], start=3):
        sid = values[i_id] if i_id < len(values) else None
        if sid is None or str(sid).strip() == "":
            continue
        sid = str(sid).strip()
        date = values[i_date] if i_date < len(values) else None
        if isinstance(date, _dt.datetime):
            date = date.date()
        if not isinstance(date, _dt.date):
            raise DataFormatError(f"{path}, row {r} ({sid}): date {date!r} is not a date")
        session = values[i_session] if i_session is not None else None
        for key, js, je in phases:
            s, e = values[js], values[je]
            if s is None or e is None:
                continue  # phase not logged for this subject
            where = f"{path}, row {r} ({sid}), {key}"
            label, stress = STRESS_PREDICT_PHASES[key]
            rows.append((sid, key, label, stress, _to_unix(date, _clock_time(s, where)),
                         _to_unix(date, _clock_time(e, where)), session))
    return rows


def _time_log_csv(path: Path) -> list[tuple]:
    try:
        table = pd.read_csv(path, dtype=str)
    except Exception as exc:
        raise DataFormatError(f"{path}: not a readable CSV table ({exc})") from exc
    need = {"subject", "date", "phase", "start_local", "end_local"}
    if not need <= set(table.columns):
        raise DataFormatError(f"{path}: needs columns {sorted(need)}, has {list(table.columns)}")
    rows = []
    for i, r in table.iterrows():
        where = f"{path}, row {i + 2} ({r.subject})"
        key = _phase_key(r.phase, where)
        try:
            date = _dt.date.fromisoformat(str(r.date).strip())
        except ValueError:
            raise DataFormatError(f"{where}: date {r.date!r} is not YYYY-MM-DD") from None
        label, stress = STRESS_PREDICT_PHASES[key]
        rows.append((str(r.subject).strip(), key, label, stress,
                     _to_unix(date, _clock_time(r.start_local, where)),
                     _to_unix(date, _clock_time(r.end_local, where)), None))
    return rows


def _find_time_log(root: Path, labels: str) -> Path | None:
    xlsx = root / "Processed_data" / "Time_logs.xlsx"
    csv = root / "Processed_data" / "segments_from_time_logs.csv"
    if labels == "xlsx":
        return existing_file(xlsx, "Stress-Predict time log (Time_logs.xlsx)")
    if labels == "csv":
        return existing_file(csv, "Stress-Predict segments (segments_from_time_logs.csv)")
    if labels == "auto":
        return xlsx if xlsx.is_file() else (csv if csv.is_file() else None)
    if labels in (None, "none"):
        return None
    raise DatasetError(f"Stress-Predict: labels must be 'auto', 'xlsx', 'csv' or None, got {labels!r}")


def read_stress_predict_subject(root: str | Path, subject: str, labels: str | None = "auto",
                                streams: Iterable[str] | None = None,
                                _log: pd.DataFrame | None = None) -> Recording:
    """One Stress-Predict subject (e.g. ``"S02"``) with protocol phases (see module doc)."""
    root = existing_dir(root, "Stress-Predict")
    rec = read_e4(_stress_predict_folder(root, subject), subject=subject, streams=streams)
    rec.meta.update(dataset="stress_predict")
    log = _log
    if log is None:
        path = _find_time_log(root, labels)
        log = read_time_logs(path) if path is not None else None
    if log is None:
        if labels == "auto":
            warnings.warn(f"Stress-Predict {subject}: no Processed_data/Time_logs.xlsx or "
                          f"segments_from_time_logs.csv under {root}; no phase labels", stacklevel=2)
        return rec
    mine = log[log["subject"] == subject]
    if mine.empty:
        warnings.warn(f"Stress-Predict {subject}: not in the time log; no phase labels", stacklevel=2)
        return rec
    rec.add_annotations([{
        "onset": r.start_unix - rec.t0, "duration": r.end_unix - r.start_unix, "kind": "phase",
        "label": r.label, "text": r.phase, "stress": int(r.stress)} for r in mine.itertuples()])
    source = log.attrs.get("path") or "Stress-Predict time log"
    check_label_span(rec, kinds=("phase",), clip=True, source=f"{source}, subject {subject}")
    sessions = mine["session_id"].dropna()
    if len(sessions):
        rec.meta["e4_session_id"] = int(sessions.iloc[0]) if str(sessions.iloc[0]).isdigit() else sessions.iloc[0]
    rec.meta["labels_from"] = "time log (minute resolution, Irish local time -> UTC)"
    return rec


def read_stress_predict(root: str | Path, subjects: Iterable[str] | None = None,
                        labels: str | None = "auto", streams: Iterable[str] | None = None) -> Cohort:
    """The Stress-Predict dataset (or the subset under ``root``) as a Cohort.

    ``root`` holds ``Raw_data/SXX/`` and ``Processed_data/`` as in the original repository.
    ``labels``: ``"auto"`` (the xlsx time log, else the CSV segments, else none), ``"xlsx"``,
    ``"csv"`` or ``None``.
    """
    root = existing_dir(root, "Stress-Predict")
    ids = list(subjects) if subjects is not None else stress_predict_subjects(root)
    if not ids:
        raise DatasetError(f"Stress-Predict: no subject folders (Raw_data/SXX) under {root}")
    path = _find_time_log(root, labels)
    log = read_time_logs(path) if path is not None else None
    if log is None and labels == "auto":
        warnings.warn(f"Stress-Predict: no time log under {root / 'Processed_data'}; no phase labels",
                      stacklevel=2)
    recs = [read_stress_predict_subject(root, s, labels=None if log is None else labels,
                                        streams=streams, _log=log) for s in ids]
    return Cohort(recs, meta={
        "name": "Stress-Predict", "dataset": "stress_predict", "source": str(root),
        "label_names": [v[0] for v in STRESS_PREDICT_PHASES.values()],
        "stress_labels": [v[0] for v in STRESS_PREDICT_PHASES.values() if v[1]],
    })
