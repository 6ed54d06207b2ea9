"""Per-hospital, per-modality window tables for the federated health system (chapter
52_federated_health).

Each hospital of an ``icu_ward`` cohort becomes one :class:`HospitalData`: one row per
patient and hour (the window ``[t_end_h - window_h, t_end_h)``), and for each **modality
node** its own feature block and presence flag:

* ``vitals`` (the bedside monitor and the chart): mean and slope of heart rate and
  respiratory rate, mean SpO2, the last charted temperature, systolic and diastolic
  pressure in the last ``lookback_h`` hours (9 values); present when the monitor recorded
  heart rate in the window;
* ``notes`` (the nurse's notes): the MiniLM embedding (:func:`mmlab.text.embed`, 384
  values) of the last note in the last ``lookback_h`` hours; absent without one;
* ``audio`` (patient-nurse interaction clips from the bedside tablet): MFCC means and
  standard deviations with deltas (:func:`mmlab.voice.mfcc_summary`, 52 values) of the last
  clip in the last ``lookback_h`` hours; absent without one (the tablet is missing for
  some patients).

The label of a row is 1 when the patient is septic at the window's end or becomes septic
within the next ``horizon_h`` hours (an early warning).
Vitals and audio features are standardised **inside each hospital** with statistics of
that hospital's training patients only (nothing about the data leaves the hospital);
a missing vitals value inside a present block becomes 0 (the hospital's mean). Patients
are split into train and test inside each hospital (stratified by sepsis).

:func:`write_hospitals` stores one folder per hospital (``<root>/H1/data.npz`` ...), the
only thing a hospital's node reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmlab.errors import SchemaError
from mmlab.recording import Cohort
from mmlab.validate import check_fraction, check_number, check_positive

MODALITIES = ("vitals", "notes", "audio")
VITALS = ("hr_mean", "hr_slope", "spo2_mean", "rr_mean", "rr_slope", "temp_last", "sys_last", "dia_last",
          "temp_age_h")


@dataclass
class HospitalData:
    """One hospital's window table, split by modality node (see the module docstring)."""

    hospital: str
    X: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    y: np.ndarray
    patient: np.ndarray
    t_end_h: np.ndarray
    train: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def dims(self) -> dict[str, int]:
        return {m: int(self.X[m].shape[1]) for m in MODALITIES}

    def rows(self, which: str) -> np.ndarray:
        """Row indices of ``"train"``, ``"test"`` or ``"all"``."""
        if which == "all":
            return np.arange(self.n)
        return np.flatnonzero(self.train if which == "train" else ~self.train)

    def subset(self, rows) -> "HospitalData":
        rows = np.asarray(rows)
        return HospitalData(self.hospital, {m: x[rows] for m, x in self.X.items()},
                            {m: p[rows] for m, p in self.present.items()}, self.y[rows], self.patient[rows],
                            self.t_end_h[rows], self.train[rows], dict(self.meta))


def _stream_values(rec, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(reference-clock times, first-channel values) of a monitor or chart stream."""
    if name not in rec.streams:
        return np.zeros(0), np.zeros((0, 1))
    st = rec.streams[name]
    ts = st.timestamps() if callable(st.timestamps) else st.timestamps
    return np.asarray(ts, dtype=float), np.asarray(st.data, dtype=float)


def _slope(t: np.ndarray, x: np.ndarray) -> float:
    ok = np.isfinite(x)
    if ok.sum() < 3:
        return np.nan
    return float(np.polyfit(t[ok] / 3600.0, x[ok], 1)[0])


def _vitals_row(S: dict, t0: float, t1: float, lookback: float) -> tuple[np.ndarray, bool]:
    out = np.full(len(VITALS), np.nan)
    th, hr = S["hr"]
    w = (th >= t0) & (th < t1)
    hrw = hr[w, 0] if len(hr) else np.zeros(0)
    present = bool(np.isfinite(hrw).any())
    if present:
        out[0], out[1] = np.nanmean(hrw), _slope(th[w], hrw)
    ts, sp = S["spo2"]
    w2 = (ts >= t0) & (ts < t1)
    if w2.any() and np.isfinite(sp[w2, 0]).any():
        out[2] = np.nanmean(sp[w2, 0])
    tr, rr = S["resp_rate"]
    w3 = (tr >= t0) & (tr < t1)
    if w3.any() and np.isfinite(rr[w3, 0]).any():
        out[3], out[4] = np.nanmean(rr[w3, 0]), _slope(tr[w3], rr[w3, 0])
    tt, temp = S["temp"]
    k = np.flatnonzero((tt < t1) & (tt >= t1 - lookback))
    if len(k):
        out[5], out[8] = temp[k[-1], 0], (t1 - tt[k[-1]]) / 3600.0
    tb, bp = S["bp"]
    k = np.flatnonzero((tb < t1) & (tb >= t1 - lookback))
    if len(k):
        out[6], out[7] = bp[k[-1], 0], bp[k[-1], 1]
    return out, present


def _standardise(x: np.ndarray, present: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, dict]:
    fit = x[present & train]
    mu = np.nanmean(fit, axis=0) if len(fit) else np.zeros(x.shape[1])
    sd = np.nanstd(fit, axis=0) if len(fit) else np.ones(x.shape[1])
    mu, sd = np.nan_to_num(mu), np.where(np.isfinite(sd) & (sd > 1e-6), sd, 1.0)
    z = np.nan_to_num((x - mu) / sd, nan=0.0, posinf=0.0, neginf=0.0)
    z[~present] = 0.0
    return z.astype(np.float32), {"mean": mu.tolist(), "std": sd.tolist()}


def hospital_tables(cohort: Cohort, window_h: float = 1.0, lookback_h: float = 3.0, horizon_h: float = 1.0,
                    test_fraction: float = 0.3, seed: int = 0, text: bool = True) -> dict[str, HospitalData]:
    """The window tables of every hospital of an ``icu_ward`` cohort: ``{hospital: HospitalData}``.

    ``text=False`` replaces the MiniLM note embeddings by zeros with the notes node absent
    (for quick unit tests that do not need the encoder).
    """
    from mmlab import text as TX
    from mmlab import voice as V

    window_h = check_positive(window_h, "window_h")
    lookback_h = check_positive(lookback_h, "lookback_h")
    horizon_h = check_number(horizon_h, "horizon_h", low=0.0)
    test_fraction = check_fraction(test_fraction, "test_fraction")
    recs = list(cohort.recordings) if hasattr(cohort, "recordings") else list(cohort)
    if not recs:
        raise SchemaError("hospital_tables: the cohort has no recordings")
    rows: list[dict] = []
    notes_needed: list[str] = []
    for rec in recs:
        if "hospital" not in rec.meta or "truth" not in rec.meta:
            raise SchemaError(f"hospital_tables: recording {rec.subject!r} is not from the icu_ward scenario "
                              "(meta has no 'hospital'/'truth')")
        S = {s: _stream_values(rec, s) for s in ("hr", "spo2", "resp_rate", "temp", "bp")}
        ann = rec.annotations
        T = float(rec.duration)
        notes = ann[ann["kind"] == "note"].sort_values("onset")
        utt = ann[(ann["kind"] == "utterance") & (ann["stream"].fillna("") != "")].sort_values("onset")
        onset_h = rec.meta["truth"]["onset_h"]
        for t1 in np.arange(window_h, T / 3600.0 + 1e-9, window_h):
            a, b = (t1 - window_h) * 3600.0, t1 * 3600.0
            vit, vp = _vitals_row(S, a, b, lookback_h * 3600.0)
            nk = notes[(notes["onset"] < b) & (notes["onset"] >= b - lookback_h * 3600.0)]
            note = str(nk["text"].iloc[-1]) if len(nk) else None
            if note is not None:
                notes_needed.append(note)
            uk = utt[(utt["onset"] < b) & (utt["onset"] >= b - lookback_h * 3600.0)]
            clip = str(uk["stream"].iloc[-1]) if len(uk) else None
            rows.append({"rec": rec, "hospital": rec.meta["hospital"], "t1": round(float(t1), 6), "vitals": vit,
                         "vp": vp, "note": note, "clip": clip,
                         "y": int(onset_h is not None and t1 > onset_h - horizon_h)})
    emb = {}
    if text and notes_needed:
        uniq = list(dict.fromkeys(notes_needed))
        emb = dict(zip(uniq, TX.embed(uniq)))
    clip_feats: dict[tuple[str, str], np.ndarray] = {}
    for r in rows:
        if r["clip"] is not None and (r["rec"].subject, r["clip"]) not in clip_feats:
            st = r["rec"].streams[r["clip"]]
            clip_feats[(r["rec"].subject, r["clip"])] = V.mfcc_summary(np.asarray(st.data)[:, 0], st.rate)
    d_audio = 52
    d_text = 384
    out: dict[str, HospitalData] = {}
    rng = np.random.default_rng(seed)
    for h in sorted({r["hospital"] for r in rows}, key=lambda s: (len(s), s)):
        hr_rows = [r for r in rows if r["hospital"] == h]
        pats = np.array([r["rec"].subject for r in hr_rows])
        septic_p = {r["rec"].subject: r["rec"].meta["truth"]["septic"] for r in hr_rows}
        test_p: set[str] = set()
        for cls in (True, False):
            ps = sorted(p for p, s in septic_p.items() if s == cls)
            k = int(round(test_fraction * len(ps)))
            if len(ps) >= 2:
                k = min(max(k, 1), len(ps) - 1)
            else:
                k = 0
            test_p |= set(rng.permutation(ps)[:k].tolist())
        train = np.array([p not in test_p for p in pats])
        vit = np.stack([r["vitals"] for r in hr_rows])
        vp = np.array([r["vp"] for r in hr_rows])
        npres = np.array([text and r["note"] is not None for r in hr_rows])
        notes_x = np.stack([emb[r["note"]] if (text and r["note"] is not None) else np.zeros(d_text, np.float32)
                            for r in hr_rows])
        apres = np.array([r["clip"] is not None for r in hr_rows])
        audio = np.stack([clip_feats[(r["rec"].subject, r["clip"])] if r["clip"] is not None
                          else np.full(d_audio, np.nan) for r in hr_rows])
        vz, vstats = _standardise(vit, vp, train)
        az, astats = _standardise(audio, apres, train)
        out[h] = HospitalData(
            hospital=h, X={"vitals": vz, "notes": notes_x.astype(np.float32), "audio": az},
            present={"vitals": vp, "notes": npres, "audio": apres}, y=np.array([r["y"] for r in hr_rows]),
            patient=pats, t_end_h=np.array([r["t1"] for r in hr_rows]), train=train,
            meta={"window_h": window_h, "lookback_h": lookback_h, "horizon_h": horizon_h,
                  "vitals_features": list(VITALS),
                  "scaling": {"vitals": vstats, "audio": astats}})
    return out


def write_hospitals(data: dict[str, HospitalData], root: str | Path) -> Path:
    """One folder per hospital under ``root`` (``H1/data.npz`` + ``H1/meta.json``); returns ``root``."""
    root = Path(root)
    for h, d in data.items():
        f = root / h
        f.mkdir(parents=True, exist_ok=True)
        arrays = {f"X_{m}": d.X[m] for m in MODALITIES} | {f"present_{m}": d.present[m] for m in MODALITIES}
        np.savez(f / "data.npz", y=d.y, patient=d.patient, t_end_h=d.t_end_h, train=d.train, **arrays)
        (f / "meta.json").write_text(json.dumps({"hospital": h, **d.meta}, indent=1))
    return root


def load_hospital(folder: str | Path) -> HospitalData:
    """Read one hospital folder written by :func:`write_hospitals`."""
    folder = Path(folder)
    if not (folder / "data.npz").is_file() or not (folder / "meta.json").is_file():
        raise SchemaError(f"{folder} is not a hospital folder (needs data.npz and meta.json, "
                          "written by mmlab.systems.federated.write_hospitals)")
    meta = json.loads((folder / "meta.json").read_text())
    with np.load(folder / "data.npz", allow_pickle=False) as z:
        return HospitalData(meta.pop("hospital"), {m: z[f"X_{m}"] for m in MODALITIES},
                            {m: z[f"present_{m}"] for m in MODALITIES}, z["y"], z["patient"], z["t_end_h"],
                            z["train"], meta)
