"""Speech datasets: FSDD, Emo-DB and RAVDESS (chapter 05_data; used from chapter 1x voice).

Each dataset has two views.

**A table** (``fsdd_table``, ``emodb_table``, ``ravdess_table``): one row per WAV file with
at least ``file``, ``path``, ``label``, ``speaker``, ``split`` and ``text`` (what is said),
plus the dataset's own columns; ``info=True`` adds ``rate``, ``n_samples``, ``duration_s``
from the WAV headers. Pair it with :func:`load_audio` / :func:`load_clips`. This is what an
MFCC baseline needs, e.g. on FSDD's official split::

    table = fsdd_table(root)                      # split: index 0-4 -> "test", else "train"
    clips = load_clips(table)                     # list of float32 arrays at 8 kHz
    X = np.stack([mfcc_summary(x) for x in clips])
    train, test = table.split == "train", table.split == "test"
    model.fit(X[train], table.label[train]); model.score(X[test], table.label[test])

``split`` is ``""`` where the dataset has no official split (Emo-DB, RAVDESS): split by
``speaker`` then (speaker-independent cross-validation).

**A Cohort** (``read_fsdd``, ``read_emodb``, ``read_ravdess``): one Recording per speaker,
one ``audio`` stream per clip named after the file stem (``7_jackson_3``). Clips do not
share a clock, so they are laid end to end in table order on the speaker's timeline (each
stream's ``start`` is its position); every clip gets a ``kind="label"`` annotation (the
class) and a ``kind="utterance"`` annotation (its words), both spanning the clip and with
an extra ``stream`` column naming it.

Labels come from the file names (the official convention of each dataset) and are checked
against ``labels.csv`` where the folder has one; an unknown code raises DataFormatError.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from mmlab.errors import DataFormatError, DatasetError
from mmlab.io._common import check_choice, existing_dir
from mmlab.recording import Cohort, Recording, Stream

# ------------------------------------------------------------------------- loading
def load_audio(path: str | Path, rate: float | None = None, mono: bool = True) -> tuple[np.ndarray, int]:
    """Read a WAV file as float32 in [-1, 1]; return ``(samples, rate)``.

    ``mono=True`` averages channels to a 1-D array; ``rate`` resamples (polyphase,
    scipy) when it differs from the file's rate.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: audio file is missing")
    try:
        x, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError
        raise DataFormatError(f"{path}: not a readable audio file ({exc})") from exc
    if x.shape[0] == 0:
        raise DataFormatError(f"{path}: audio file has no samples (truncated?)")
    x = x.mean(axis=1) if mono else x
    if rate is not None and int(rate) != sr:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(int(rate), int(sr))
        x = resample_poly(x, int(rate) // g, int(sr) // g, axis=0).astype(np.float32)
        sr = int(rate)
    return x, int(sr)


def load_clips(table: pd.DataFrame | Sequence[str | Path], rate: float | None = None) -> list[np.ndarray]:
    """Mono float32 samples of every file in a table's ``path`` column (or a list of paths)."""
    paths = table["path"] if isinstance(table, pd.DataFrame) else table
    return [load_audio(p, rate=rate)[0] for p in paths]


def _add_info(table: pd.DataFrame) -> pd.DataFrame:
    import soundfile as sf

    rates, lengths = [], []
    for p in table["path"]:
        try:
            info = sf.info(p)
        except Exception as exc:
            raise DataFormatError(f"{p}: not a readable audio file ({exc})") from exc
        if info.frames == 0:
            raise DataFormatError(f"{p}: audio file has no samples (truncated?)")
        rates.append(int(info.samplerate))
        lengths.append(int(info.frames))
    table = table.copy()
    table["rate"] = rates
    table["n_samples"] = lengths
    table["duration_s"] = table["n_samples"] / table["rate"]
    return table


def _wav_folder(root: Path, sub: str) -> Path:
    return root / sub if (root / sub).is_dir() else root


def _finish(rows: list[dict], what: str, root: Path, info: bool) -> pd.DataFrame:
    if not rows:
        raise DatasetError(f"{what}: no WAV files under {root}")
    table = pd.DataFrame(rows)
    lead = ["file", "path", "label", "speaker", "split", "text"]
    table = table[lead + [c for c in table.columns if c not in lead]]
    table = table.sort_values("file", kind="stable").reset_index(drop=True)
    return _add_info(table) if info else table


# ---------------------------------------------------------------------------- FSDD
FSDD_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FSDD_RATE = 8000
_FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


def parse_fsdd_name(name: str) -> dict:
    """``{"digit": 7, "speaker": "jackson", "index": 3}`` from ``7_jackson_3.wav``."""
    m = _FSDD_NAME.match(Path(name).name)
    if not m:
        raise DataFormatError(f"{name}: not an FSDD file name (expected {{digit}}_{{speaker}}_{{index}}.wav)")
    return {"digit": int(m.group(1)), "speaker": m.group(2), "index": int(m.group(3))}


def fsdd_table(root: str | Path, info: bool = False) -> pd.DataFrame:
    """FSDD files under ``root`` (or ``root/recordings``): one row per WAV.

    Columns: file, path, label (digit as a string), speaker, split (index 0-4 =
    ``"test"``, the official split; others ``"train"``), text (the digit word), digit,
    index; plus speaker metadata from ``speakers.json`` when present.
    """
    root = existing_dir(root, "FSDD")
    folder = _wav_folder(root, "recordings")
    rows = []
    for p in sorted(folder.glob("*.wav")):
        f = parse_fsdd_name(p.name)
        rows.append({"file": p.name, "path": str(p), "label": str(f["digit"]), "speaker": f["speaker"],
                     "split": "test" if f["index"] <= 4 else "train", "text": FSDD_WORDS[f["digit"]], **f})
    table = _finish(rows, "FSDD", folder, info=False)
    table = table.sort_values(["digit", "speaker", "index"], kind="stable").reset_index(drop=True)
    labels = root / "labels.csv"
    if labels.is_file():
        _check_against_csv(table, labels, {"digit": "digit", "speaker": "speaker", "index": "index",
                                           "official_split": "split"})
    speakers = root / "speakers.json"
    if speakers.is_file():
        try:
            meta = json.loads(speakers.read_text())
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{speakers}: not valid JSON ({exc})") from exc
        for key in ("gender", "accent"):
            table[key] = [meta.get(s, {}).get(key, "") for s in table["speaker"]]
    return _add_info(table) if info else table


def _check_against_csv(table: pd.DataFrame, csv: Path, columns: dict[str, str]) -> None:
    """Check that a dataset's labels.csv agrees with the labels taken from file names."""
    try:
        ref = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise DataFormatError(f"{csv}: not a readable CSV table ({exc})") from exc
    if "file" not in ref:
        raise DataFormatError(f"{csv}: needs a 'file' column, has {list(ref.columns)}")
    on_disk = set(table["file"])
    missing = [f for f in ref["file"] if f not in on_disk]
    if missing:
        raise DataFormatError(f"{csv}: lists {len(missing)} file(s) that are missing on disk, "
                              f"e.g. {missing[:3]}")
    ours = table.set_index("file")
    for col, our_col in columns.items():
        if col not in ref:
            continue
        for f, value in zip(ref["file"], ref[col]):
            mine = str(ours.at[f, our_col])
            if value.lstrip("0") != mine.lstrip("0") and value != mine:
                raise DataFormatError(f"{csv}: {f} has {col}={value!r} but its file name says {mine!r}")


# -------------------------------------------------------------------------- Emo-DB
EMODB_EMOTIONS = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness",
                  "T": "sadness", "N": "neutral"}
#: Emo-DB speakers: sex and age at recording (from the database documentation).
EMODB_SPEAKERS = {"03": ("male", 31), "08": ("female", 34), "09": ("female", 21), "10": ("male", 32),
                  "11": ("male", 26), "12": ("male", 30), "13": ("female", 32), "14": ("female", 35),
                  "15": ("male", 25), "16": ("female", 31)}
#: The ten Emo-DB sentences (German), by text code.
EMODB_TEXTS = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}
_EMODB_NAME = re.compile(r"^(\d\d)([ab]\d\d)(.)([a-z])\.wav$")


def parse_emodb_name(name: str) -> dict:
    """``03a01Fa.wav`` -> speaker ``03``, text_id ``a01``, emotion_code ``F``
    (``happiness``), version ``a``. Unknown letters raise DataFormatError."""
    base = Path(name).name
    m = _EMODB_NAME.match(base)
    if not m:
        raise DataFormatError(f"{name}: not an Emo-DB file name (expected e.g. 03a01Fa.wav: "
                              "speaker, text code, emotion letter, version)")
    speaker, text_id, code, version = m.groups()
    check_choice(code, EMODB_EMOTIONS, "Emo-DB emotion letter", base)
    check_choice(speaker, EMODB_SPEAKERS, "Emo-DB speaker", base)
    check_choice(text_id, EMODB_TEXTS, "Emo-DB text code", base)
    return {"speaker": speaker, "text_id": text_id, "emotion_code": code,
            "emotion": EMODB_EMOTIONS[code], "version": version}


def emodb_table(root: str | Path, info: bool = False) -> pd.DataFrame:
    """Emo-DB files under ``root`` (or ``root/wav``): one row per WAV.

    Columns: file, path, label (emotion name), speaker, split (``""``: no official split),
    text (German sentence), text_id, emotion_code, emotion, version, sex, age; plus the
    perception-test columns of ``labels.csv`` (recognition_pct, naturalness_pct) when the
    folder has one (its emotion letters must agree with the file names).
    """
    root = existing_dir(root, "Emo-DB")
    folder = _wav_folder(root, "wav")
    rows = []
    for p in sorted(folder.glob("*.wav")):
        f = parse_emodb_name(p.name)
        sex, age = EMODB_SPEAKERS[f["speaker"]]
        rows.append({"file": p.name, "path": str(p), "label": f["emotion"], "speaker": f["speaker"],
                     "split": "", "text": EMODB_TEXTS[f["text_id"]], **f, "sex": sex, "age": age})
    table = _finish(rows, "Emo-DB", folder, info=False)
    labels = root / "labels.csv"
    if labels.is_file():
        _check_against_csv(table, labels, {"emotion_code": "emotion_code", "speaker": "speaker",
                                           "text_id": "text_id", "sex": "sex"})
        ref = pd.read_csv(labels, dtype={"speaker": str})
        extra = [c for c in ("recognition_pct", "naturalness_pct") if c in ref]
        if extra:
            table = table.merge(ref[["file"] + extra], on="file", how="left")
    return _add_info(table) if info else table


# ------------------------------------------------------------------------- RAVDESS
RAVDESS_MODALITY = {"01": "audio_video", "02": "video_only", "03": "audio_only"}
RAVDESS_CHANNEL = {"01": "speech", "02": "song"}
RAVDESS_EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
                    "06": "fearful", "07": "disgust", "08": "surprised"}
RAVDESS_INTENSITY = {"01": "normal", "02": "strong"}
RAVDESS_STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
RAVDESS_REPETITION = {"01": 1, "02": 2}
_RAVDESS_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.(wav|mp4)$", re.IGNORECASE)


def parse_ravdess_name(name: str) -> dict:
    """Decode ``modality-channel-emotion-intensity-statement-repetition-actor.wav``.

    Actors are 01-24 (odd numbers male, even female). Unknown codes raise
    DataFormatError naming the file and the field.
    """
    base = Path(name).name
    m = _RAVDESS_NAME.match(base)
    if not m:
        raise DataFormatError(f"{name}: not a RAVDESS file name (expected 7 two-digit codes, e.g. "
                              "03-01-06-01-02-01-12.wav)")
    mod, chan, emo, inten, stmt, rep, actor = m.groups()[:7]
    check_choice(mod, RAVDESS_MODALITY, "RAVDESS modality code", base)
    check_choice(chan, RAVDESS_CHANNEL, "RAVDESS vocal channel code", base)
    check_choice(emo, RAVDESS_EMOTIONS, "RAVDESS emotion code", base)
    check_choice(inten, RAVDESS_INTENSITY, "RAVDESS intensity code", base)
    check_choice(stmt, RAVDESS_STATEMENTS, "RAVDESS statement code", base)
    check_choice(rep, RAVDESS_REPETITION, "RAVDESS repetition code", base)
    if not 1 <= int(actor) <= 24:
        raise DataFormatError(f"{base}: unknown RAVDESS actor {actor!r} (known: 01..24)")
    return {"modality": RAVDESS_MODALITY[mod], "vocal_channel": RAVDESS_CHANNEL[chan],
            "emotion_code": emo, "emotion": RAVDESS_EMOTIONS[emo], "intensity": RAVDESS_INTENSITY[inten],
            "statement": stmt, "repetition": RAVDESS_REPETITION[rep], "actor": actor,
            "sex": "male" if int(actor) % 2 else "female"}


def ravdess_table(root: str | Path, info: bool = False) -> pd.DataFrame:
    """RAVDESS WAVs anywhere under ``root`` (e.g. ``Actor_01/...``): one row per file.

    Columns: file, path, label (emotion), speaker (``Actor_XX``), split (``""``), text
    (the statement), and the decoded name fields (modality, vocal_channel, emotion_code,
    emotion, intensity, statement, repetition, actor, sex).
    """
    root = existing_dir(root, "RAVDESS")
    rows = []
    for p in sorted(root.rglob("*.wav")):
        f = parse_ravdess_name(p.name)
        rows.append({"file": p.name, "path": str(p), "label": f["emotion"], "speaker": f"Actor_{f['actor']}",
                     "split": "", "text": RAVDESS_STATEMENTS[f["statement"]], **f})
    table = _finish(rows, "RAVDESS", root, info)
    return table.sort_values(["actor", "file"], kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------- audio cohorts
def clips_cohort(table: pd.DataFrame, name: str, dataset: str, label_names: Iterable[str] | None = None,
                 speakers: Iterable[str] | None = None) -> Cohort:
    """A table of clips as a Cohort: one Recording per speaker, one stream per clip.

    See the module docstring for the layout (clips laid end to end, label and utterance
    annotations with a ``stream`` column).
    """
    import soundfile as sf

    if speakers is not None:
        wanted = list(speakers)
        unknown = sorted(set(wanted) - set(table["speaker"]))
        if unknown:
            raise DatasetError(f"{name}: no speaker(s) {unknown}; speakers: {sorted(set(table['speaker']))}")
        table = table[table["speaker"].isin(wanted)]
    recs = []
    for speaker, rows in table.groupby("speaker", sort=True):
        streams, ann, offset = [], [], 0.0
        for r in rows.itertuples(index=False):
            try:
                x, sr = sf.read(r.path, dtype="float32", always_2d=True)
            except Exception as exc:
                raise DataFormatError(f"{r.path}: not a readable audio file ({exc})") from exc
            if x.shape[0] == 0:
                raise DataFormatError(f"{r.path}: audio file has no samples (truncated?)")
            stem = Path(r.file).stem
            meta = {k: (v.item() if isinstance(v, np.generic) else v)
                    for k, v in r._asdict().items() if k not in ("path",)}
            s = Stream(stem, x, "audio", rate=sr, start=offset,
                       channels=None,
                       units="", device="mic", meta=meta)
            streams.append(s)
            ann.append({"onset": offset, "duration": s.duration, "kind": "label", "label": r.label,
                        "text": "", "stream": stem})
            ann.append({"onset": offset, "duration": s.duration, "kind": "utterance", "label": "",
                        "text": r.text, "stream": stem})
            offset += s.duration
        recs.append(Recording(subject=str(speaker), streams=streams, annotations=ann,
                              meta={"dataset": dataset, "n_clips": len(streams),
                                    "clock": "clips laid end to end in file-name order"}))
    part = table.drop_duplicates("speaker")[["speaker"] + [c for c in ("sex", "age", "gender", "accent")
                                                           if c in table]]
    part = part.rename(columns={"speaker": "participant_id"}).sort_values("participant_id")
    return Cohort(recs, participants=part, meta={
        "name": name, "dataset": dataset,
        "label_names": list(label_names) if label_names is not None else sorted(set(table["label"]))})


def read_fsdd(root: str | Path, speakers: Iterable[str] | None = None) -> Cohort:
    """FSDD as a Cohort (one Recording per speaker); stream meta keeps ``split``."""
    return clips_cohort(fsdd_table(root), "Free Spoken Digit Dataset", "fsdd",
                        [str(d) for d in range(10)], speakers)


def read_emodb(root: str | Path, speakers: Iterable[str] | None = None) -> Cohort:
    """Emo-DB as a Cohort (one Recording per speaker, ids ``03`` ... ``16``)."""
    return clips_cohort(emodb_table(root), "Emo-DB", "emodb", list(EMODB_EMOTIONS.values()), speakers)


def read_ravdess(root: str | Path, speakers: Iterable[str] | None = None) -> Cohort:
    """RAVDESS audio as a Cohort (one Recording per actor, ids ``Actor_01`` ...)."""
    return clips_cohort(ravdess_table(root), "RAVDESS", "ravdess", list(RAVDESS_EMOTIONS.values()), speakers)
