"""What is in a data folder: :func:`describe` and :func:`format_description` (``mmlab data info``).

:func:`describe` detects the format of a folder and returns a JSON-ready dict:

* ``format``: one of :data:`FORMATS`; ``path``; ``title``;
* ``subjects``: list of subject (or speaker) ids;
* ``streams``: list of dicts with ``name``, ``modality``, ``rate`` (Hz, ``None`` if
  irregular or mixed), ``duration_s``, ``channels``, ``subject`` and ``n_samples``. Signal
  datasets have one entry per subject and stream; audio datasets one entry summarising all
  clips (``n_clips``, ``rates``, clip duration ``min/median/max``; ``subject`` is
  ``None``); text datasets one ``text`` entry with ``n_items``;
* ``labels``: ``{field: {"unit": what is counted, "counts": {label: count}}}``.

It reads headers where it can (E4 CSV header rows and line counts, WFDB headers, EDF
headers, WAV headers); saved cohorts and WESAD pickles are loaded in full.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Iterable

import numpy as np

from mmlab.errors import DataFormatError, DatasetError
from mmlab.io._common import counts, library_deprecations_hidden

FORMATS = ("mmlab-cohort", "stress_predict", "e4", "wesad", "wfdb", "eegmmidb", "fsdd", "emodb",
           "ravdess", "meld", "uci_sentiment", "cwru")


def _first(root: Path, patterns: Iterable[str]) -> Path | None:
    for pattern in patterns:
        hit = next(iter(root.glob(pattern)), None)
        if hit is not None:
            return hit
    return None


def _names_match(files: Iterable[Path], check, n: int = 20) -> bool:
    sample = list(itertools.islice(files, n))
    if not sample:
        return False
    for p in sample:
        try:
            check(p.name)
        except DataFormatError:
            return False
    return True


def detect_format(path: str | Path) -> str:
    """The format name of a folder (see :data:`FORMATS`); DataFormatError if unknown."""
    from mmlab.io.audio import parse_emodb_name, parse_fsdd_name, parse_ravdess_name
    from mmlab.recording import FORMAT_NAME

    root = Path(path).expanduser()
    if not root.exists():
        raise DatasetError(f"{root}: does not exist")
    if not root.is_dir():
        raise DataFormatError(f"{root}: not a folder; mmlab data info describes dataset folders "
                              f"({', '.join(FORMATS)})")
    desc = root / "dataset_description.json"
    if desc.is_file():
        try:
            if json.loads(desc.read_text()).get("Format") == FORMAT_NAME:
                return "mmlab-cohort"
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            pass
    if _first(root, ["Raw_data/S*/EDA.csv"]):
        return "stress_predict"
    if (root / "EDA.csv").is_file() and (root / "BVP.csv").is_file():
        return "e4"
    if _first(root, ["S*/S*.pkl"]) or (root / f"{root.name}.pkl").is_file():
        return "wesad"
    if _first(root, ["*.hea", "*/*.hea", "*/*/*.hea"]):
        return "wfdb"
    if _names_match(itertools.chain(root.glob("S[0-9][0-9][0-9]R[0-9][0-9].edf"),
                                    root.glob("*/S[0-9][0-9][0-9]R[0-9][0-9].edf"),
                                    root.glob("files/*/S[0-9][0-9][0-9]R[0-9][0-9].edf")),
                    lambda n: n, n=1):
        return "eegmmidb"
    if _first(root, ["*_sent_emo.csv"]):
        return "meld"
    if _first(root, ["*_labelled.txt", "sentiment labelled sentences/*_labelled.txt"]):
        return "uci_sentiment"
    if _first(root, ["*.mat", "*/*.mat"]):
        return "cwru"
    for sub in ("recordings", "."):
        if _names_match((root / sub).glob("*.wav"), parse_fsdd_name):
            return "fsdd"
    for sub in ("wav", "."):
        if _names_match((root / sub).glob("*.wav"), parse_emodb_name):
            return "emodb"
    if _names_match(itertools.chain(root.glob("*.wav"), root.glob("*/*.wav"), root.glob("*/*/*.wav")),
                    parse_ravdess_name):
        return "ravdess"
    raise DataFormatError(f"{root}: not a dataset folder mmlab knows; known formats: {', '.join(FORMATS)} "
                          "(see datasets/README.md for the layout of each)")


def describe(path: str | Path) -> dict:
    """Format, subjects, streams and label counts of a dataset folder (see module docstring)."""
    root = Path(path).expanduser()
    fmt = detect_format(root)
    info = _DESCRIBERS[fmt](root)
    info = {"format": fmt, "path": str(root.resolve()), **info}
    info.setdefault("subjects", [])
    info.setdefault("streams", [])
    info.setdefault("labels", {})
    info["n_subjects"] = len(info["subjects"])
    return _plain(info)


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _entry(name, modality, rate, duration, channels, subject, n_samples, **extra) -> dict:
    return {"name": name, "modality": modality, "rate": rate,
            "duration_s": None if duration is None else round(float(duration), 6),
            "channels": list(channels), "subject": subject, "n_samples": n_samples, **extra}


def _labels(unit: str, values) -> dict:
    return {"unit": unit, "counts": counts(values)}


# ------------------------------------------------------------------------- cohort
def _describe_cohort(root: Path) -> dict:
    from mmlab.recording import Cohort

    cohort = Cohort.load(root)
    streams, labels = [], {}
    for rec in cohort:
        for s in rec.streams.values():
            streams.append(_entry(s.name, s.modality, s.rate, s.duration, s.channels, rec.subject,
                                  s.n_samples, start=s.start))
    ann = [r.annotations for r in cohort if len(r.annotations)]
    if ann:
        import pandas as pd

        table = pd.concat(ann, ignore_index=True)
        for kind, rows in table.groupby("kind", sort=True):
            rows = rows[rows["label"] != ""]
            if len(rows):
                labels[kind] = _labels("annotations", rows["label"])
    return {"title": cohort.meta.get("name", cohort.meta.get("scenario", "")),
            "subjects": cohort.subjects, "streams": streams, "labels": labels}


# ------------------------------------------------------------------------- E4 / Stress-Predict
def _count_rows(path: Path) -> int:
    """Non-blank lines of a text file."""
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def _e4_streams(folder: Path, subject: str) -> list[dict]:
    from mmlab.io.empatica import E4_SIGNALS, _parse_header_row, _read_lines, read_e4_ibi

    out = []
    for key, (name, modality, expected, channels, _) in E4_SIGNALS.items():
        path = folder / f"{key}.csv"
        if not path.is_file():
            raise DataFormatError(f"{path}: E4 stream file {key}.csv is missing from {folder}")
        head = _read_lines(path, 2) + [None, None]
        _parse_header_row(path, head[0], 1, "start time", len(channels))
        rate = _parse_header_row(path, head[1], 2, "sampling rate", len(channels))
        if abs(rate - expected) > 1e-9:
            raise DataFormatError(f"{path}: rate mismatch: the file says {rate:g} Hz, an E4 writes "
                                  f"this sensor at {expected:g} Hz")
        n = _count_rows(path) - 2
        out.append(_entry(name, modality, rate, n / rate, channels, subject, n))
    ibi = folder / "IBI.csv"
    if not ibi.is_file():
        raise DataFormatError(f"{ibi}: E4 stream file IBI.csv is missing from {folder}")
    _, t, _ = read_e4_ibi(ibi)
    out.append(_entry("wrist_ibi", "ibi", None, float(t[-1] - t[0]) if len(t) > 1 else 0.0,
                      ["wrist_ibi"], subject, int(len(t))))
    return out


def _describe_e4(root: Path) -> dict:
    return {"title": "Empatica E4 export", "subjects": [root.name],
            "streams": _e4_streams(root, root.name), "labels": {}}


def _describe_stress_predict(root: Path) -> dict:
    from mmlab.io.empatica import _find_time_log, read_time_logs, stress_predict_subjects

    subjects = stress_predict_subjects(root)
    streams = []
    for s in subjects:
        streams += _e4_streams(root / "Raw_data" / s, s)
    labels = {}
    log_path = _find_time_log(root, "auto")
    if log_path is not None:
        log = read_time_logs(log_path)
        log = log[log["subject"].isin(subjects)]
        labels["phase"] = _labels("segments", log["label"])
        labels["stress"] = {"unit": "seconds", "counts": {
            "stress": float((log["end_unix"] - log["start_unix"])[log["stress"] == 1].sum()),
            "no_stress": float((log["end_unix"] - log["start_unix"])[log["stress"] == 0].sum())}}
    return {"title": "Stress-Predict (Empatica E4)", "subjects": subjects, "streams": streams,
            "labels": labels,
            "label_source": str(log_path.relative_to(root)) if log_path is not None else None}


# ------------------------------------------------------------------------- WESAD
def _describe_wesad(root: Path) -> dict:
    from mmlab.io.wesad import read_wesad_subject, wesad_subjects

    if (root / f"{root.name}.pkl").is_file():
        folders = [root]
    else:
        folders = [root / s for s in wesad_subjects(root)]
    subjects, streams, seconds = [], [], {}
    for folder in folders:
        rec = read_wesad_subject(folder)
        subjects.append(rec.subject)
        for s in rec.streams.values():
            streams.append(_entry(s.name, s.modality, s.rate, s.duration, s.channels, rec.subject, s.n_samples))
        for r in rec.phases().itertuples():
            seconds[r.label] = seconds.get(r.label, 0.0) + r.duration
    return {"title": "WESAD", "subjects": subjects, "streams": streams,
            "labels": {"phase": {"unit": "seconds", "counts": dict(sorted(seconds.items()))}}}


# ------------------------------------------------------------------------- WFDB
def _describe_wfdb(root: Path) -> dict:
    with library_deprecations_hidden("wfdb"):  # pandas deprecations at import
        import wfdb

    from mmlab.io.physionet import CHALLENGE_2015_ALARMS, signal_modality, wfdb_records

    subjects, streams, beats, alarms = [], [], [], []
    for rec_path in wfdb_records(root):
        try:
            with library_deprecations_hidden("wfdb"):
                h = wfdb.rdheader(str(rec_path))
        except Exception as exc:
            raise DataFormatError(f"{rec_path}.hea: unreadable WFDB header ({exc})") from exc
        subjects.append(rec_path.name)
        groups: dict[str, list[str]] = {}
        for sig in h.sig_name or []:
            groups.setdefault(signal_modality(sig), []).append(sig)
        n = int(h.sig_len or 0)
        for modality, chans in groups.items():
            streams.append(_entry(modality, modality, float(h.fs), n / float(h.fs), chans, rec_path.name, n))
        comments = [str(c).strip() for c in (h.comments or [])]
        kind = [c for c in comments if c in CHALLENGE_2015_ALARMS]
        verdict = [c for c in comments if c.lower() in ("true alarm", "false alarm")]
        if kind and verdict:
            alarms.append(verdict[0].lower().replace(" ", "_"))
        if rec_path.with_suffix(".atr").is_file():
            try:
                with library_deprecations_hidden("wfdb"):
                    ann = wfdb.rdann(str(rec_path), "atr")
            except Exception as exc:
                raise DataFormatError(f"{rec_path}.atr: unreadable annotations ({exc})") from exc
            beats += list(ann.symbol)
    labels = {}
    if beats:
        labels["annotation"] = _labels("annotations (atr)", beats)
    if alarms:
        labels["alarm"] = _labels("records", alarms)
    return {"title": "PhysioNet WFDB records", "subjects": subjects, "streams": streams, "labels": labels}


# ------------------------------------------------------------------------- eegmmidb
def _describe_eegmmidb(root: Path) -> dict:
    import mne

    from mmlab.io.eeg import _read_raw, eegmmidb_files, eegmmidb_labels, eegmmidb_task

    files = eegmmidb_files(root)
    streams, labels, tasks = [], [], []
    for sid, runs in files.items():
        for run, path in sorted(runs.items()):
            raw = _read_raw(path, preload=False)
            mne.datasets.eegbci.standardize(raw)
            mapping = eegmmidb_labels(run)
            for code in raw.annotations.description:
                if code not in mapping:
                    raise DataFormatError(f"{path}: unknown annotation {code!r} in run {run}")
                labels.append(mapping[code])
            tasks.append(eegmmidb_task(run))
            eeg = mne.pick_types(raw.info, eeg=True, exclude=[])
            streams.append(_entry(f"eeg_r{run:02d}", "eeg", float(raw.info["sfreq"]),
                                  raw.n_times / raw.info["sfreq"], [raw.ch_names[i] for i in eeg],
                                  sid, int(raw.n_times), run=run, task=eegmmidb_task(run)))
    return {"title": "EEG Motor Movement/Imagery", "subjects": sorted(files), "streams": streams,
            "labels": {"trial": _labels("annotations", labels), "task": _labels("runs", tasks)}}


# ------------------------------------------------------------------------- audio
def _audio_summary(table) -> dict:
    rates = sorted(set(int(r) for r in table["rate"]))
    d = table["duration_s"].to_numpy(dtype=float)
    return _entry("audio", "audio", float(rates[0]) if len(rates) == 1 else None, float(d.sum()),
                  ["audio"], None, int(table["n_samples"].sum()), n_clips=int(len(table)), rates=rates,
                  clip_duration_s={"min": float(d.min()), "median": float(np.median(d)), "max": float(d.max())})


def _describe_audio(table, title: str, label_field: str) -> dict:
    labels = {label_field: _labels("files", table["label"])}
    split = table["split"][table["split"] != ""]
    if len(split):
        labels["split"] = _labels("files", split)
    return {"title": title, "subjects": sorted(set(table["speaker"])), "streams": [_audio_summary(table)],
            "labels": labels}


def _describe_fsdd(root: Path) -> dict:
    from mmlab.io.audio import fsdd_table

    return _describe_audio(fsdd_table(root, info=True), "Free Spoken Digit Dataset", "digit")


def _describe_emodb(root: Path) -> dict:
    from mmlab.io.audio import emodb_table

    return _describe_audio(emodb_table(root, info=True), "Emo-DB", "emotion")


def _describe_ravdess(root: Path) -> dict:
    from mmlab.io.audio import ravdess_table

    return _describe_audio(ravdess_table(root, info=True), "RAVDESS", "emotion")


# ------------------------------------------------------------------------- text
def _text_entry(n: int) -> dict:
    return _entry("text", "text", None, None, ["text"], None, n, n_items=n)


def _describe_meld(root: Path) -> dict:
    from mmlab.io.text import load_meld

    df = load_meld(root)
    return {"title": "MELD (text)", "subjects": sorted(set(df["speaker"])), "streams": [_text_entry(len(df))],
            "labels": {"emotion": _labels("utterances", df["label"]),
                       "sentiment": _labels("utterances", df["sentiment"]),
                       "split": _labels("utterances", df["split"])}}


def _describe_uci(root: Path) -> dict:
    from mmlab.io.text import load_uci_sentiment

    df = load_uci_sentiment(root)
    return {"title": "UCI Sentiment Labelled Sentences", "subjects": [], "streams": [_text_entry(len(df))],
            "labels": {"sentiment": _labels("sentences", df["sentiment"]),
                       "source": _labels("sentences", df["source"])}}


def _describe_cwru(root: Path) -> dict:
    from mmlab.io.cwru import describe_cwru

    return describe_cwru(root)


_DESCRIBERS = {
    "mmlab-cohort": _describe_cohort, "stress_predict": _describe_stress_predict, "e4": _describe_e4,
    "wesad": _describe_wesad, "wfdb": _describe_wfdb, "eegmmidb": _describe_eegmmidb,
    "fsdd": _describe_fsdd, "emodb": _describe_emodb, "ravdess": _describe_ravdess,
    "meld": _describe_meld, "uci_sentiment": _describe_uci,
    "cwru": _describe_cwru,
}


# ------------------------------------------------------------------------- text form
def _fmt_rate(rate) -> str:
    return "irregular" if rate is None else f"{rate:g} Hz"


def _fmt_duration(d) -> str:
    if d is None:
        return "-"
    d = float(d)
    if d >= 3600:
        return f"{d / 3600:.2f} h"
    if d >= 120:
        return f"{d / 60:.1f} min"
    return f"{d:.1f} s"


def format_description(info: dict) -> str:
    """A human-readable summary of :func:`describe`'s result (for ``mmlab data info``)."""
    lines = [f"{info.get('title') or info['format']}  [{info['format']}]", f"path: {info.get('path', '')}"]
    subjects = info.get("subjects", [])
    shown = ", ".join(map(str, subjects[:12])) + (", ..." if len(subjects) > 12 else "")
    lines.append(f"subjects: {len(subjects)}" + (f" ({shown})" if subjects else ""))
    streams = info.get("streams", [])
    if streams:
        lines.append("streams:")
        width = max(len(s["name"]) for s in streams)
        by_subject = len({s.get("subject") for s in streams}) > 1
        who_width = max(len(f"{s.get('subject')}: ") for s in streams) if by_subject else 0
        for s in streams:
            chans = s.get("channels") or []
            ch = ", ".join(chans[:4]) + (f", ... ({len(chans)})" if len(chans) > 4 else "")
            extra = ""
            if s.get("n_clips") is not None:
                extra = f"  {s['n_clips']} clips"
                if s.get("rate") is None and s.get("rates"):
                    extra += f" at {', '.join(str(r) for r in s['rates'])} Hz"
            if s.get("n_items") is not None:
                extra = f"  {s['n_items']} items"
            who = f"{s.get('subject')}: ".ljust(who_width) if by_subject else ""
            rate = "-" if s["modality"] == "text" else _fmt_rate(s.get("rate"))
            lines.append(f"  {who}{s['name']:<{width}}  {s['modality']:<6} {rate:>10}  "
                         f"{_fmt_duration(s.get('duration_s')):>9}  [{ch}]{extra}")
    labels = info.get("labels", {})
    if labels:
        lines.append("labels:")
        for field, value in labels.items():
            if not isinstance(value, dict):
                lines.append(f"  {field}: {value}")
                continue
            parts = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                              for k, v in value.get("counts", {}).items())
            lines.append(f"  {field} ({value.get('unit', '')}): {parts}")
    return "\n".join(lines)
