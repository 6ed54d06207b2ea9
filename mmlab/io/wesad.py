"""WESAD: wearable stress and affect detection (Schmidt et al. 2018), chapter 05_data.

Each subject folder ``SX/`` holds ``SX.pkl``: a dict pickled under Python 2 (so it is
read with ``encoding="latin1"``) with

* ``signal["chest"]`` (RespiBAN, 700 Hz): ``ACC`` (n, 3) g, ``ECG`` mV, ``EMG`` mV,
  ``EDA`` µS, ``Temp`` °C, ``Resp`` %;
* ``signal["wrist"]`` (Empatica E4): ``ACC`` (n, 3) 32 Hz in 1/64 g, ``BVP`` 64 Hz,
  ``EDA`` 4 Hz µS, ``TEMP`` 4 Hz °C;
* ``label``: one code per chest sample (700 Hz); ``subject``: e.g. ``"S2"``.

The dataset authors synchronised the two devices before pickling, so every stream starts
at 0 on one shared clock (``t0`` is unknown: ``None``); ``Stream.device`` is ``"chest"`` or
``"wrist"`` (as in :mod:`mmlab.synth`), the hardware is in ``meta["hardware"]``. Stream names: ``chest_acc,
chest_ecg, chest_emg, chest_eda, chest_temp, chest_resp, wrist_acc, wrist_bvp, wrist_eda,
wrist_temp`` (wrist ACC is converted to g, like :func:`mmlab.io.read_e4`).

Labels become ``kind="phase"`` annotations, one per run of equal codes, with an extra
``code`` column: 1 ``baseline``, 2 ``stress``, 3 ``amusement``, 4 ``meditation``;
0 ``transient`` and 5/6/7 ``ignore`` (the authors say these should not be used). No run is
dropped; filter on ``label`` to keep the four conditions. The label runs are checked against
the span of the streams read (:func:`mmlab.io._common.check_label_span`): a ``stress`` run the
signals do not cover is a SchemaError, another run reaching past the span (a wrist-only read
whose streams end a little before the 700 Hz labels) is clipped, and the report is kept in
``rec.meta["label_span"]``.

Loading a pickle runs code from the file: only read WESAD files from the official source.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Iterable

import numpy as np

from mmlab.errors import DataFormatError, DatasetError
from mmlab.io._common import check_label_span, existing_dir, runs_of
from mmlab.recording import Cohort, Recording, Stream

CHEST_RATE = 700.0
#: pickle key -> (stream name, modality, rate, channels, units, scale)
CHEST = {
    "ACC": ("chest_acc", "acc", CHEST_RATE, ["x", "y", "z"], "g", 1.0),
    "ECG": ("chest_ecg", "ecg", CHEST_RATE, ["chest_ecg"], "mV", 1.0),
    "EMG": ("chest_emg", "emg", CHEST_RATE, ["chest_emg"], "mV", 1.0),
    "EDA": ("chest_eda", "eda", CHEST_RATE, ["chest_eda"], "uS", 1.0),
    "Temp": ("chest_temp", "temp", CHEST_RATE, ["chest_temp"], "degC", 1.0),
    "Resp": ("chest_resp", "resp", CHEST_RATE, ["chest_resp"], "%", 1.0),
}
WRIST = {
    "ACC": ("wrist_acc", "acc", 32.0, ["x", "y", "z"], "g", 1.0 / 64.0),
    "BVP": ("wrist_bvp", "bvp", 64.0, ["wrist_bvp"], "a.u.", 1.0),
    "EDA": ("wrist_eda", "eda", 4.0, ["wrist_eda"], "uS", 1.0),
    "TEMP": ("wrist_temp", "temp", 4.0, ["wrist_temp"], "degC", 1.0),
}
#: label code -> phase label
WESAD_LABELS = {0: "transient", 1: "baseline", 2: "stress", 3: "amusement", 4: "meditation",
                5: "ignore", 6: "ignore", 7: "ignore"}
CONDITIONS = ("baseline", "stress", "amusement", "meditation")
_TOLERANCE_S = 1.0  # allowed difference between wrist and chest durations (plus 0.5 %)


def _find_pkl(path: Path) -> Path:
    if path.is_file():
        return path
    if path.is_dir():
        cand = path / f"{path.name}.pkl"
        if cand.is_file():
            return cand
        found = sorted(path.glob("*.pkl"))
        if len(found) == 1:
            return found[0]
        raise DataFormatError(f"{path}: WESAD subject folder without {path.name}.pkl")
    raise DataFormatError(f"{path}: WESAD pickle is missing")


def load_wesad_pickle(path: str | Path) -> dict:
    """The raw dict of one WESAD ``SX.pkl`` (latin1 encoding), checked for its keys."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh, encoding="latin1")
    except FileNotFoundError:
        raise DataFormatError(f"{path}: WESAD pickle is missing") from None
    except Exception as exc:  # EOFError, UnpicklingError, ... for a truncated or foreign file
        raise DataFormatError(f"{path}: not a readable WESAD pickle ({type(exc).__name__}: {exc}); "
                              "truncated download?") from exc
    if not isinstance(data, dict):
        raise DataFormatError(f"{path}: expected a dict with 'signal', 'label', 'subject', got {type(data).__name__}")
    for key in ("signal", "label"):
        if key not in data:
            raise DataFormatError(f"{path}: WESAD pickle has no {key!r} entry (keys: {sorted(data)})")
    if not isinstance(data["signal"], dict):
        raise DataFormatError(f"{path}: 'signal' should be a dict with 'chest' and 'wrist'")
    return data


def _array(value, path: Path, where: str, n_ch: int) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataFormatError(f"{path}: {where} is not a numeric array") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != n_ch:
        raise DataFormatError(f"{path}: {where} has shape {arr.shape}, expected (n, {n_ch})")
    return arr


def read_wesad_subject(path: str | Path, chest: bool = True, wrist: bool = True) -> Recording:
    """One WESAD subject from its folder ``SX/`` or its ``SX.pkl`` (see the module doc)."""
    pkl = _find_pkl(Path(path).expanduser())
    data = load_wesad_pickle(pkl)
    subject = str(data.get("subject") or pkl.stem)
    if isinstance(subject, bytes):
        subject = subject.decode("latin1")
    label = np.asarray(data["label"]).reshape(-1)
    if label.size == 0:
        raise DataFormatError(f"{pkl}: 'label' is empty")
    try:
        codes = label.astype(np.int64)
    except (TypeError, ValueError):
        raise DataFormatError(f"{pkl}: 'label' is not an integer array") from None
    if not np.array_equal(codes, label):
        raise DataFormatError(f"{pkl}: 'label' has non-integer codes")
    unknown = sorted(set(np.unique(codes).tolist()) - set(WESAD_LABELS))
    if unknown:
        raise DataFormatError(f"{pkl}: unknown label code(s) {unknown} "
                              f"(known: {', '.join(f'{k}={v}' for k, v in WESAD_LABELS.items())})")
    duration = codes.size / CHEST_RATE
    streams = []
    groups = [("chest", CHEST, "RespiBAN")] * chest + [("wrist", WRIST, "Empatica E4")] * wrist
    for place, table, hardware in groups:
        signals = data["signal"].get(place)
        if not isinstance(signals, dict):
            raise DataFormatError(f"{pkl}: signal[{place!r}] is missing")
        for key, (name, modality, rate, channels, units, scale) in table.items():
            if key not in signals:
                raise DataFormatError(f"{pkl}: stream signal[{place!r}][{key!r}] is missing "
                                      f"(has {sorted(signals)})")
            arr = _array(signals[key], pkl, f"signal[{place!r}][{key!r}]", len(channels))
            if place == "chest" and len(arr) != codes.size:
                raise DataFormatError(
                    f"{pkl}: stream {name} has {len(arr)} samples but 'label' has {codes.size}; "
                    f"both should be at {CHEST_RATE:g} Hz")
            got = len(arr) / rate
            if abs(got - duration) > _TOLERANCE_S + 0.005 * duration:
                raise DataFormatError(
                    f"{pkl}: stream {name} lasts {got:.1f} s at the expected {rate:g} Hz but the "
                    f"labels last {duration:.1f} s at {CHEST_RATE:g} Hz: rate mismatch or truncated signal")
            meta = {"key": f"signal/{place}/{key}", "hardware": hardware}
            if scale != 1.0:
                arr = arr * scale
                meta["raw_unit"] = "1/64 g"
            streams.append(Stream(name, arr, modality, rate=rate, start=0.0, channels=channels,
                                  units=units, device=place, meta=meta))
    rows = [{"onset": a / CHEST_RATE, "duration": (b - a) / CHEST_RATE, "kind": "phase",
             "label": WESAD_LABELS[c], "text": "", "code": c} for a, b, c in runs_of(codes)]
    meta = {"dataset": "wesad", "file": str(pkl), "label_rate": CHEST_RATE,
            "clock": "chest and wrist were synchronised by the dataset authors"}
    readme = pkl.parent / f"{pkl.stem}_readme.txt"
    if readme.is_file():
        meta["readme"] = _parse_readme(readme)
    rec = Recording(subject=re.sub(r"[^A-Za-z0-9_.-]", "_", subject), streams=streams,
                    annotations=rows, meta=meta, t0=None)
    check_label_span(rec, kinds=("phase",), stress_labels=("stress",), clip=True, source=str(pkl))
    return rec


def _parse_readme(path: Path) -> dict:
    """``key: value`` lines of an ``SX_readme.txt`` (age, height, gender, ...)."""
    out = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if ":" in line and not line.lstrip().startswith("#"):
            key, value = line.split(":", 1)
            if key.strip():
                out[key.strip()] = value.strip()
    return out


def wesad_subjects(root: str | Path) -> list[str]:
    """Subject folders ``SX`` holding ``SX.pkl`` under ``root``, in numeric order."""
    root = existing_dir(root, "WESAD")
    found = [p.name for p in root.iterdir() if p.is_dir() and re.fullmatch(r"S\d+", p.name)
             and (p / f"{p.name}.pkl").is_file()]
    return sorted(found, key=lambda s: int(s[1:]))


def read_wesad(root: str | Path, subjects: Iterable[str] | None = None,
               chest: bool = True, wrist: bool = True) -> Cohort:
    """WESAD subjects under ``root`` (the unzipped ``WESAD/`` folder) as a Cohort.

    A full subject holds about 300 MB of float64 samples; pass ``subjects=["S2"]`` or
    ``chest=False`` to read less.
    """
    root = existing_dir(root, "WESAD")
    ids = list(subjects) if subjects is not None else wesad_subjects(root)
    if not ids:
        raise DatasetError(f"WESAD: no SX/SX.pkl subject folders under {root}")
    recs = [read_wesad_subject(root / s, chest=chest, wrist=wrist) for s in ids]
    return Cohort(recs, meta={"name": "WESAD", "dataset": "wesad", "source": str(root),
                              "label_names": list(CONDITIONS)})
