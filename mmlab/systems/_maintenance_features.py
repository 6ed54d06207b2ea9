"""Per-window inputs of the maintenance monitor (chapter 53_predictive_maintenance).

Each machine's session is cut into windows of ``window_s`` seconds on the reference (DAQ)
clock. For every window and modality this module gives the *encoder input* or a flagged
exclusion (``present`` False with a ``reason``), never a silent guess:

* ``vibration``: the window's acceleration -> envelope-spectrum evidence at the bearing
  defect frequencies (:func:`mmlab.sensors.defect_indicators`, shaft speed from the
  machine's rpm), the time-domain moments (:func:`mmlab.sensors.time_features`) and the
  shares of energy in four frequency bands. Excluded: no samples, fewer than half finite
  samples (dropout), a flat signal (no vibration at all), a saturated accelerometer
  (clipped runs at the rails).
* ``thermal``: the latest frame at or before the window end (no older than
  ``max_frame_age_s``), as the frame itself (for the CNN encoder) and a few statistics
  (median and spread in °C, hottest excess). Excluded: a black frame (all at one value or
  below ``cold_c``), an all-hot frame (everything above ``hot_c``), non-finite pixels.
* ``notes``: the latest operator note at or before the window end, as text (for MiniLM
  and the keyword baseline). Excluded: no note yet, an empty or blank note.
* any extra sensor (e.g. ``current``, motor current): the same numeric features as
  vibration's time moments and band shares, computed on that stream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmlab import sensors as SN
from mmlab.errors import SignalError
from mmlab.recording import Cohort, Recording

__all__ = ["FAULT_CLASSES", "KEYWORDS", "WindowTable", "window_table", "keyword_features", "vibration_features",
           "thermal_stats", "frame_problem", "signal_problem", "fault_of"]

#: Fault classes the monitor knows, in column order of its fault probabilities.
FAULT_CLASSES = ["healthy", "outer_race", "inner_race", "ball", "overheating"]

#: The keyword baseline's vocabulary: word stems an operator uses for trouble.
KEYWORDS = ["nois", "grind", "rumbl", "rattl", "squeal", "knock", "vibrat", "hot", "heat", "warm", "smell",
            "burn", "smok", "leak", "check", "bearing", "normal", "fine", "no issue", "ok"]

VIB_NAMES = ["snr_bpfo", "snr_bpfi", "snr_bsf", "snr_ftf", "log_rms", "log_kurtosis", "crest",
             "band_1", "band_2", "band_3", "band_4"]
#: The envelope order spectrum the vibration 1-D CNN reads: orders of the shaft speed.
ORDER_EDGES = np.linspace(0.5, 12.5, 129)
SIG_NAMES = ["log_rms", "log_kurtosis", "crest", "band_1", "band_2", "band_3", "band_4"]
THERMAL_STATS = ["median_c", "spread_c", "excess_c", "hot_share", "peak_over_housing"]


def fault_of(rec: Recording) -> str:
    """The planted fault class of a synthetic machine (``healthy`` if none)."""
    truth = rec.meta.get("truth", {}) or {}
    fault = truth.get("fault")
    if fault:
        return str(fault)
    if truth.get("overheating"):
        return "overheating"
    return "healthy"


def signal_problem(x: np.ndarray, fs: float, min_rms: float = 1e-4) -> str | None:
    """Why a window of a 1-channel signal cannot be used, or None: ``empty``,
    ``dropout`` (under half finite), ``flat`` (no vibration at all), ``saturated``."""
    if len(x) == 0:
        return "empty"
    ok = np.isfinite(x)
    if ok.mean() < 0.5:
        return "dropout"
    v = x[ok]
    if len(v) < 64:
        return "empty"
    if float(np.std(v)) < min_rms:
        return "flat"
    if SN._rail_mask(v, min_run=5).mean() > 0.001:
        return "saturated"
    return None


def _band_shares(v: np.ndarray, fs: float) -> np.ndarray:
    f, p = SN.spectrum(v, fs, nperseg=min(len(v), 1024))
    edges = np.array([0.0, 0.05, 0.15, 0.3, 0.5]) * fs
    e = np.array([p[(f >= lo) & (f < hi)].sum() for lo, hi in zip(edges[:-1], edges[1:])])
    return e / max(e.sum(), 1e-30)


def _moment_features(v: np.ndarray) -> list[float]:
    m = SN.time_features(v)
    return [float(np.log(m["rms"] + 1e-9)), float(np.log(max(m["kurtosis"], 1e-3))), float(m["crest_factor"])]


def vibration_features(x: np.ndarray, fs: float, shaft_hz: float, band: tuple | None = None) -> np.ndarray:
    """The vibration encoder's input (:data:`VIB_NAMES`) for one usable window; ``band``
    is the demodulation band (default: :func:`mmlab.sensors.best_band` of the window)."""
    v = x[np.isfinite(x)]
    lo, hi = SN.finite_segment(x)
    seg = x[lo:hi] if hi - lo >= 256 else v
    ind = SN.defect_indicators(seg, fs, shaft_hz, band=band, harmonics=2)
    snr = [float(np.log(max(ind.loc[k, "snr"], 1e-3))) if np.isfinite(ind.loc[k, "snr"]) else 0.0
           for k in ("bpfo", "bpfi", "bsf", "ftf")]
    return np.array(snr + _moment_features(v) + list(_band_shares(seg, fs)), dtype=np.float32)


def order_spectrum(x: np.ndarray, fs: float, shaft_hz: float, band: tuple) -> np.ndarray:
    """The envelope spectrum of a usable window on a grid of shaft orders
    (:data:`ORDER_EDGES`: the largest line in each bin), divided by its median and log-scaled:
    the same defect sits in the same bins whatever the machine's speed."""
    lo, hi = SN.finite_segment(x)
    seg = x[lo:hi] if hi - lo >= 256 else x[np.isfinite(x)]
    f, a = SN.envelope_spectrum(seg, fs, band, fmax=ORDER_EDGES[-1] * shaft_hz)
    idx = np.searchsorted(ORDER_EDGES * shaft_hz, f, side="right") - 1
    ok = (idx >= 0) & (idx < len(ORDER_EDGES) - 1)
    out = np.zeros(len(ORDER_EDGES) - 1)
    np.maximum.at(out, idx[ok], a[ok])
    med = np.median(out[out > 0]) if (out > 0).any() else 1.0
    return np.log1p(out / max(med, 1e-12)).astype(np.float32)


def signal_features(x: np.ndarray, fs: float) -> np.ndarray:
    """Features of an extra 1-channel sensor (:data:`SIG_NAMES`)."""
    v = x[np.isfinite(x)]
    lo, hi = SN.finite_segment(x)
    seg = x[lo:hi] if hi - lo >= 256 else v
    return np.array(_moment_features(v) + list(_band_shares(seg, fs)), dtype=np.float32)


def frame_problem(frame: np.ndarray, cold_c: float = 0.0, hot_c: float = 150.0) -> str | None:
    """Why a thermal frame cannot be used, or None: ``non-finite``, ``black`` (one value
    everywhere, or everything below ``cold_c``), ``all-hot`` (everything above ``hot_c``)."""
    if not np.isfinite(frame).all():
        return "non-finite"
    if float(frame.min()) > hot_c:
        return "all-hot"
    if float(frame.max() - frame.min()) < 1e-3 or float(frame.max()) < cold_c:
        return "black"
    return None


def thermal_stats(frame: np.ndarray) -> np.ndarray:
    """Median (°C), spread (IQR), hottest excess over the median, the share of pixels
    more than 5 °C above the median, and the hottest pixel's excess over the warm housing
    (90th percentile) relative to the housing's excess over the median — a load-free measure
    of a local hot spot (:data:`THERMAL_STATS`)."""
    med = float(np.median(frame))
    q1, q3, q90 = np.percentile(frame, [25, 75, 90])
    top = float(frame.max())
    return np.array([med, float(q3 - q1), top - med, float((frame > med + 5).mean()),
                     (top - q90) / max(q90 - med, 0.5)], np.float32)


def keyword_features(texts) -> np.ndarray:
    """Counts of each :data:`KEYWORDS` stem in each text (the notes' keyword baseline)."""
    rows = []
    for t in texts:
        low = (t or "").lower()
        rows.append([len(re.findall(re.escape(k), low)) for k in KEYWORDS])
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), len(KEYWORDS))


@dataclass
class WindowTable:
    """Windows of a cohort: ``meta`` (one row per window: machine, start, end, fault (the
    window's class: ``healthy`` before a run-to-failure onset), machine_fault, session_s,
    time_to_failure_s), and per modality the encoder inputs ``inputs[m]`` (rows
    aligned with ``meta``; zeros where absent), ``present[m]`` and ``reason[m]`` (why a
    window was excluded, "" if present). ``texts`` holds the notes."""

    meta: pd.DataFrame
    inputs: dict
    present: dict
    reason: dict
    texts: list

    def __len__(self) -> int:
        return len(self.meta)

    def subset(self, rows) -> "WindowTable":
        rows = np.asarray(rows)
        return WindowTable(self.meta.iloc[rows].reset_index(drop=True),
                           {m: v[rows] for m, v in self.inputs.items()},
                           {m: v[rows] for m, v in self.present.items()},
                           {m: v[rows] for m, v in self.reason.items()},
                           [self.texts[i] for i in rows])

    def exclusions(self) -> pd.DataFrame:
        """Counts of excluded windows per modality and reason."""
        rows = []
        for m, r in self.reason.items():
            for why, n in pd.Series(r[r != ""]).value_counts().items():
                rows.append({"modality": m, "reason": why, "windows": int(n)})
        return pd.DataFrame(rows, columns=["modality", "reason", "windows"])


def _shaft_hz(rec: Recording, rpm: float | None) -> float:
    if rpm is not None and np.isfinite(rpm) and rpm > 0:
        return float(rpm) / 60.0
    truth = rec.meta.get("truth", {}) or {}
    if truth.get("shaft_hz"):
        return float(truth["shaft_hz"])
    raise SignalError(f"machine {rec.subject!r}: no shaft speed (rpm in the participants table or "
                      "meta['truth']['shaft_hz']) for the bearing defect frequencies")


def window_table(cohort: Cohort, window_s: float = 5.0, extra: tuple = (), max_frame_age_s: float = 60.0,
                 frame_size: int = 32, progress: bool = False) -> WindowTable:
    """Cut every machine into windows and compute the encoder inputs (see module doc).

    ``extra`` names additional 1-channel streams to use as sensors (e.g. ``("current",)``);
    ``progress`` shows a tqdm bar over the machines.
    """
    from tqdm.auto import tqdm

    from mmlab.images import resize

    if not isinstance(cohort, Cohort):
        raise SignalError(f"window_table: expected a Cohort, got {type(cohort).__name__}")
    if len(cohort.subjects) == 0:
        raise SignalError("window_table: the cohort has no machines")
    parts = cohort.participants.set_index("participant_id") if "participant_id" in cohort.participants else None
    metas, vib, vord, thf, ths, texts = [], [], [], [], [], []
    ex: dict[str, list] = {m: [] for m in extra}
    pres: dict[str, list] = {m: [] for m in ("vibration", "thermal", "notes", *extra)}
    why: dict[str, list] = {m: [] for m in pres}
    for rec in tqdm(cohort, total=len(cohort.subjects), desc="machines", disable=not progress, leave=False):
        rpm = float(parts.loc[rec.subject, "rpm"]) if parts is not None and "rpm" in parts and rec.subject in parts.index else None
        shaft = _shaft_hz(rec, rpm)
        lab = rec.annotations[rec.annotations["kind"] == "label"]
        session = float(lab["duration"].max()) if len(lab) else rec.duration
        if not np.isfinite(session) or session <= 0:
            session = rec.duration
        n_win = int(np.floor(session / window_s + 1e-9))
        fault = fault_of(rec)
        failing = fault != "healthy"
        onset = float((rec.meta.get("truth", {}) or {}).get("onset_s") or 0.0)
        notes = rec.annotations[rec.annotations["kind"] == "note"].sort_values("onset")
        frames = rec["thermal"] if "thermal" in rec else None
        ftimes = np.asarray(frames.timestamps(), float) if frames is not None else np.zeros(0)
        vs = rec["vibration"] if "vibration" in rec else None
        band = None  # the demodulation band: found once per machine, on its first usable window
        for w in range(n_win):
            a, b = w * window_s, (w + 1) * window_s
            # run to failure: before the fault's onset the machine is healthy (window midpoint decides)
            fault_now = "healthy" if failing and (a + b) / 2 < onset else fault
            metas.append({"machine": rec.subject, "start": a, "end": b, "fault": fault_now, "machine_fault": fault,
                          "session_s": session, "time_to_failure_s": (session - b) if failing else np.inf})
            # vibration
            if vs is None:
                vib.append(np.zeros(len(VIB_NAMES), np.float32)); pres["vibration"].append(False)
                vord.append(np.zeros(len(ORDER_EDGES) - 1, np.float32))
                why["vibration"].append("missing")
            else:
                x = np.asarray(vs.slice(a, b).data, dtype=float).reshape(-1)
                p = signal_problem(x, vs.rate)
                if p is None:
                    try:
                        if band is None:
                            lo_, hi_ = SN.finite_segment(x)
                            band = SN.best_band(x[lo_:hi_] if hi_ - lo_ >= 256 else x[np.isfinite(x)], vs.rate)
                        vib.append(vibration_features(x, vs.rate, shaft, band))
                        vord.append(order_spectrum(x, vs.rate, shaft, band))
                    except SignalError:
                        p = "unusable"
                if p is not None:
                    if len(vib) > len(vord):  # features done, the order spectrum failed
                        vib.pop()
                    vib.append(np.zeros(len(VIB_NAMES), np.float32))
                    vord.append(np.zeros(len(ORDER_EDGES) - 1, np.float32))
                pres["vibration"].append(p is None); why["vibration"].append(p or "")
            # thermal
            k = np.searchsorted(ftimes, b, side="right") - 1
            if frames is None or k < 0 or b - ftimes[k] > max_frame_age_s:
                p = "missing" if frames is None else "no recent frame"
                fr = None
            else:
                fr = np.asarray(frames.data[k], dtype=np.float32)
                p = frame_problem(fr)
            if p is None:
                if fr.shape != (frame_size, frame_size):
                    fr = resize(fr[None], frame_size)[0]
                thf.append(fr.astype(np.float32)); ths.append(thermal_stats(fr))
            else:
                thf.append(np.zeros((frame_size, frame_size), np.float32)); ths.append(np.zeros(len(THERMAL_STATS), np.float32))
            pres["thermal"].append(p is None); why["thermal"].append(p or "")
            # notes
            seen = notes[notes["onset"] <= b]
            txt = str(seen["text"].iloc[-1]) if len(seen) else ""
            p = "no note yet" if not len(seen) else ("empty note" if not txt.strip() else None)
            texts.append(txt if p is None else "")
            pres["notes"].append(p is None); why["notes"].append(p or "")
            # extra sensors
            for m in extra:
                if m not in rec:
                    ex[m].append(np.zeros(len(SIG_NAMES), np.float32)); pres[m].append(False); why[m].append("missing")
                    continue
                s = rec[m]
                x = np.asarray(s.slice(a, b).data, dtype=float).reshape(-1)
                p = signal_problem(x, s.rate)
                ex[m].append(signal_features(x, s.rate) if p is None else np.zeros(len(SIG_NAMES), np.float32))
                pres[m].append(p is None); why[m].append(p or "")
    if not metas:
        raise SignalError(f"window_table: no complete {window_s:g}-s window in any machine's session")
    inputs = {"vibration": np.stack(vib), "vibration_orders": np.stack(vord), "thermal": np.stack(thf), "thermal_stats": np.stack(ths),
              **{m: np.stack(v) for m, v in ex.items()}}
    return WindowTable(pd.DataFrame(metas), inputs, {m: np.array(v, bool) for m, v in pres.items()},
                       {m: np.array(v, dtype=object) for m, v in why.items()}, texts)
