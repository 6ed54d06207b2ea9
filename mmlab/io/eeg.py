"""EEG Motor Movement/Imagery (PhysioNet eegmmidb, Schalk et al. 2004) via MNE; chapter 05_data.

Files are EDF+ runs ``SxxxRyy.edf`` (flat, or in ``Sxxx/`` folders as on PhysioNet): 64
EEG channels at 160 Hz (a few subjects at 128 Hz), 1- or 2-minute runs, annotations
``T0``/``T1``/``T2``. The meaning of ``T1``/``T2`` depends on the run:

=============  ==========  ========  ==============  ==============
runs           task        T0        T1              T2
=============  ==========  ========  ==============  ==============
1, 2           baseline    rest      —               —
3, 7, 11       real        rest      left_fist       right_fist
4, 8, 12       imagined    rest      left_fist       right_fist
5, 9, 13       real        rest      both_fists      both_feet
6, 10, 14      imagined    rest      both_fists      both_feet
=============  ==========  ========  ==============  ==============

:func:`read_eegmmidb_run` gives one run as a Recording with one stream ``eeg`` (volts,
channel names cleaned like :func:`mne.datasets.eegbci.standardize`: ``Fc5.`` -> ``FC5``).
Each T0/T1/T2 annotation becomes a ``kind="label"`` row (label as in the table, ``text``
the original code, extra columns ``run`` and ``task``); the whole run is one
``kind="phase"`` row labelled with its task (``real``, ``imagined`` or ``baseline``).

:func:`read_eegmmidb` gives one Recording per subject with one stream per run,
``eeg_r03``, ``eeg_r04`` ... The EDF start times are placeholders (every run says
2009-08-12 16:15:00), so the real gaps between runs are unknown: the runs are laid end to
end in run order on the recording's clock (``t0`` is ``None``), each stream's ``start``
being where its run begins, and its annotations shifted with it. ``meta["run_offsets"]``
lists those offsets.

:func:`read_motor_imagery` reads the imagined left vs right fist runs
(:data:`MOTOR_IMAGERY_RUNS`) of one subject, the data of chapter 14_eeg.
:func:`standard_montage_name` names MNE's template 10-05 montage (electrode positions).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable


from mmlab.errors import DataFormatError, DatasetError
from mmlab.io._common import existing_dir
from mmlab.recording import Cohort, Recording, Stream

_RUN_NAME = re.compile(r"^S(\d{3})R(\d{2})\.edf$", re.IGNORECASE)
_TASKS = {1: "baseline", 2: "baseline"}
_TASKS.update({r: "real" for r in (3, 5, 7, 9, 11, 13)})
_TASKS.update({r: "imagined" for r in (4, 6, 8, 10, 12, 14)})
_RUN_TEXT = {1: "baseline, eyes open", 2: "baseline, eyes closed"}
_RUN_TEXT.update({r: "open and close left or right fist" for r in (3, 7, 11)})
_RUN_TEXT.update({r: "imagine opening and closing left or right fist" for r in (4, 8, 12)})
_RUN_TEXT.update({r: "open and close both fists or both feet" for r in (5, 9, 13)})
_RUN_TEXT.update({r: "imagine opening and closing both fists or both feet" for r in (6, 10, 14)})


def eegmmidb_labels(run: int) -> dict[str, str]:
    """The T0/T1/T2 -> label mapping of a run (1..14), as in the module table."""
    if run not in _TASKS:
        raise DatasetError(f"eegmmidb: run {run} does not exist (runs are 1..14)")
    if run in (1, 2):
        return {"T0": "rest"}
    if run in (3, 4, 7, 8, 11, 12):
        return {"T0": "rest", "T1": "left_fist", "T2": "right_fist"}
    return {"T0": "rest", "T1": "both_fists", "T2": "both_feet"}


def eegmmidb_task(run: int) -> str:
    """``"real"``, ``"imagined"`` or ``"baseline"`` for a run number."""
    eegmmidb_labels(run)
    return _TASKS[run]


def parse_run_name(path: str | Path) -> tuple[str, int]:
    """``("S001", 4)`` from ``.../S001R04.edf``; DataFormatError for other names."""
    m = _RUN_NAME.match(Path(path).name)
    if not m:
        raise DataFormatError(f"{path}: not an eegmmidb run file name (expected SxxxRyy.edf)")
    run = int(m.group(2))
    if run not in _TASKS:
        raise DataFormatError(f"{path}: run {run} does not exist in eegmmidb (runs are 1..14)")
    return f"S{m.group(1)}", run


def edf_expected_size(path: str | Path) -> int:
    """The byte size an EDF/EDF+ file must have according to its own header."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(256)
        try:
            header_bytes = int(head[184:192].decode("ascii").strip())
            n_records = int(head[236:244].decode("ascii").strip())
            ns = int(head[252:256].decode("ascii").strip())
        except (ValueError, UnicodeDecodeError):
            raise DataFormatError(f"{path}: not an EDF file (unreadable fixed header)") from None
        if len(head) < 256 or ns <= 0 or header_bytes != 256 * (ns + 1):
            raise DataFormatError(f"{path}: not an EDF file (header size {header_bytes} for {ns} signals)")
        fh.seek(256 + ns * 216)
        field = fh.read(8 * ns)
    try:
        per_record = sum(int(field[8 * i: 8 * i + 8].decode("ascii").strip()) for i in range(ns))
    except (ValueError, UnicodeDecodeError):
        raise DataFormatError(f"{path}: EDF header has unreadable samples-per-record fields "
                              "(truncated header?)") from None
    if n_records < 0:
        raise DataFormatError(f"{path}: EDF header gives no record count (-1): unfinished recording")
    return header_bytes + n_records * per_record * 2


def _read_raw(path: Path, preload: bool):
    import mne

    expected = edf_expected_size(path)
    size = path.stat().st_size
    if size != expected:
        problem = "truncated download?" if size < expected else "extra bytes, e.g. a text-mode line-ending conversion"
        raise DataFormatError(f"{path}: file has {size} bytes, its EDF header implies {expected} ({problem})")
    try:
        return mne.io.read_raw_edf(path, preload=preload, verbose="ERROR")
    except Exception as exc:  # MNE raises ValueError/RuntimeError/... for broken EDF
        raise DataFormatError(f"{path}: not a readable EDF file ({type(exc).__name__}: {exc})") from exc


def read_eegmmidb_run(path: str | Path) -> Recording:
    """One eegmmidb EDF run as a Recording with stream ``eeg`` (see the module docstring)."""
    import mne

    path = Path(path).expanduser()
    if not path.is_file():
        raise DataFormatError(f"{path}: EDF file is missing")
    subject, run = parse_run_name(path)
    raw = _read_raw(path, preload=True)
    mne.datasets.eegbci.standardize(raw)
    picks = mne.pick_types(raw.info, eeg=True, exclude=[])
    if len(picks) == 0:
        raise DataFormatError(f"{path}: no EEG channels")
    data = raw.get_data(picks=picks).T
    channels = [raw.ch_names[i] for i in picks]
    rate = float(raw.info["sfreq"])
    mapping = eegmmidb_labels(run)
    task = _TASKS[run]
    rows = [{"onset": 0.0, "duration": data.shape[0] / rate, "kind": "phase", "label": task,
             "text": f"run {run}: {_RUN_TEXT[run]}", "run": run, "task": task}]
    for onset, dur, desc in zip(raw.annotations.onset, raw.annotations.duration,
                                raw.annotations.description):
        code = str(desc).strip()
        if code not in mapping:
            raise DataFormatError(f"{path}: unknown annotation {code!r} in run {run} "
                                  f"(known: {', '.join(f'{k}={v}' for k, v in mapping.items())})")
        rows.append({"onset": float(onset), "duration": float(dur), "kind": "label",
                     "label": mapping[code], "text": code, "run": run, "task": task})
    meas = raw.info.get("meas_date")
    stream = Stream("eeg", data, "eeg", rate=rate, start=0.0, channels=channels, units="V",
                    device="BCI2000", meta={"file": path.name, "run": run, "task": task,
                                            "edf_start": str(meas) if meas else None})
    return Recording(subject=subject, streams=[stream], annotations=rows, t0=None,
                     meta={"dataset": "eegmmidb", "runs": [run], "file": str(path)})


def eegmmidb_files(root: str | Path) -> dict[str, dict[int, Path]]:
    """``{subject: {run: path}}`` for every ``SxxxRyy.edf`` under ``root`` (flat or nested)."""
    root = existing_dir(root, "eegmmidb")
    out: dict[str, dict[int, Path]] = {}
    for p in sorted(root.rglob("*.edf")):
        if _RUN_NAME.match(p.name):
            subject, run = parse_run_name(p)
            out.setdefault(subject, {})[run] = p
    return out


def read_eegmmidb(root: str | Path, subjects: Iterable[str] | None = None,
                  runs: Iterable[int] | None = None) -> Cohort:
    """eegmmidb runs under ``root`` as a Cohort, one Recording per subject.

    ``runs`` selects run numbers (e.g. ``[4, 8, 12]`` for left/right fist imagery);
    a requested run that is not on disk raises DatasetError.
    """
    files = eegmmidb_files(root)
    ids = list(subjects) if subjects is not None else sorted(files)
    if not ids:
        raise DatasetError(f"eegmmidb: no SxxxRyy.edf files under {root}")
    recs = []
    for sid in ids:
        have = files.get(sid)
        if not have:
            raise DatasetError(f"eegmmidb: no runs of subject {sid!r} under {root} (found: {sorted(files)})")
        wanted = sorted(have) if runs is None else sorted(int(r) for r in runs)
        missing = [r for r in wanted if r not in have]
        if missing:
            raise DatasetError(f"eegmmidb: subject {sid} has no run(s) {missing} under {root} "
                               f"(found runs {sorted(have)})")
        offset, streams, rows, offsets = 0.0, [], [], {}
        for r in wanted:
            one = read_eegmmidb_run(have[r])
            s = one["eeg"]
            streams.append(s.replace(name=f"eeg_r{r:02d}", start=offset))
            ann = one.annotations.copy()
            ann["onset"] = ann["onset"] + offset
            rows.append(ann)
            offsets[f"eeg_r{r:02d}"] = offset
            offset += s.duration
        import pandas as pd

        recs.append(Recording(subject=sid, streams=streams, annotations=pd.concat(rows, ignore_index=True),
                              t0=None, meta={"dataset": "eegmmidb", "runs": wanted, "run_offsets": offsets,
                                             "clock": "runs laid end to end in run order; the real gaps "
                                                      "between runs are unknown"}))
    return Cohort(recs, meta={"name": "EEG Motor Movement/Imagery", "dataset": "eegmmidb",
                              "source": str(root),
                              "label_names": ["rest", "left_fist", "right_fist", "both_fists", "both_feet"]})


#: eegmmidb runs with imagined opening/closing of the left (T1) or right (T2) fist.
MOTOR_IMAGERY_RUNS = (4, 8, 12)


def read_motor_imagery(data_dir: str | Path, subject: str = "S001",
                       runs: Iterable[int] = MOTOR_IMAGERY_RUNS) -> Recording:
    """Imagined left vs right fist runs of one eegmmidb subject as one Recording (chapter 14_eeg).

    Parameters
    ----------
    data_dir : str or Path
        The folder holding the eegmmidb runs, or its parent (the shared data folder with
        an ``eegmmidb/`` inside).
    subject : str
        Subject id as in the file names, ``"S001"`` .. ``"S109"``.
    runs : iterable of int
        Run numbers; the default :data:`MOTOR_IMAGERY_RUNS` (4, 8, 12) are the imagined
        left/right fist runs (T1 -> ``left_fist``, T2 -> ``right_fist``).

    Returns
    -------
    Recording
        One stream per run laid end to end, as :func:`read_eegmmidb` gives. For the classic
        CSP recipe, convert with :func:`mmlab.bio.eeg.recording_to_raw`, band-pass 8-30 Hz
        and cut epochs 0.5-2.5 s after each cue (subject 1: 45 epochs).

    Raises
    ------
    DatasetError
        When the folder, the subject or one of the runs is missing.

    Examples
    --------
    >>> read_motor_imagery("/no/such/folder")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mmlab.errors.DatasetError: ...
    """
    root = Path(data_dir).expanduser()
    if (root / "eegmmidb").is_dir():
        root = root / "eegmmidb"
    return read_eegmmidb(root, subjects=[subject], runs=list(runs))[subject]


def standard_montage_name() -> str:
    """The name of MNE's template 10-05 montage (``colin27_1005`` from MNE 1.13 on, else
    ``standard_1005``)."""
    import mne

    names = mne.channels.get_builtin_montages()
    return "colin27_1005" if "colin27_1005" in names else "standard_1005"
