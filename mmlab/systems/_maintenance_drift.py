"""Per-modality drift monitoring and planted drifts (chapter 53_predictive_maintenance).

:class:`DriftMonitor` keeps, per modality, a reference sample of encoder outputs from the
training machines. A check standardises the recent outputs with the reference's mean and
spread (every dimension) and computes the squared maximum mean discrepancy (MMD, Gaussian
kernel, median-distance bandwidth) against the reference on a fixed number of recent rows (resampled, averaged over a few draws so the statistic does not
depend on how many windows arrived). The threshold is the ``quantile`` of the same
statistic over batches of **held-out healthy-period machines** (not used for the
reference), so about ``1 - quantile`` of healthy batches raise a flag by construction.

:func:`plant_drift` returns a copy of a cohort with one of three drifts a plant meets:
``thermal_recalibration`` (the camera's offset and gain change after a recalibration),
``note_vocabulary`` (a new shift writes notes in its own jargon) and ``loose_mount`` (the
accelerometer's mount loosens: the mount's own resonance drops to a few hundred Hz, the
structural resonance above it is damped, and the loose sensor rattles once per shaft turn).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scipy import signal as sps

from mmlab.errors import SchemaError, SignalError
from mmlab.recording import Cohort, Recording
from mmlab.validate import check_fraction, check_int, check_option

__all__ = ["DriftMonitor", "plant_drift", "DRIFTS", "mmd2"]

#: The planted drifts and the modality each one touches.
DRIFTS = {"thermal_recalibration": "thermal", "note_vocabulary": "notes", "loose_mount": "vibration"}


def mmd2(a: np.ndarray, b: np.ndarray, bandwidth: float) -> float:
    """Biased squared MMD between samples ``a`` and ``b`` (rows) with a Gaussian kernel."""
    def k(x, y):
        d = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
        return np.exp(-d / (2 * bandwidth ** 2))
    return float(k(a, a).mean() + k(b, b).mean() - 2 * k(a, b).mean())


class DriftMonitor:
    """MMD drift check per modality with thresholds calibrated on held-out healthy data.

    Parameters
    ----------
    n_recent : int, default 60
        Rows drawn (with replacement) from the recent data for each statistic.
    quantile : float, default 0.95
        Quantile of the held-out statistics used as the threshold.
    n_calibration : int, default 60
        Held-out batches drawn per modality for the threshold.
    machines_per_batch : int, default 3
    random_state : int
    """

    def __init__(self, n_recent: int = 60, quantile: float = 0.95, n_calibration: int = 60,
                 machines_per_batch: int = 3, n_draws: int = 4, random_state: int = 0):
        self.n_recent = check_int(n_recent, "n_recent", low=4)
        self.quantile = check_fraction(quantile, "quantile")
        self.n_calibration = check_int(n_calibration, "n_calibration", low=5)
        self.machines_per_batch = check_int(machines_per_batch, "machines_per_batch", low=1)
        self.n_draws = check_int(n_draws, "n_draws", low=1)
        self.random_state = int(random_state)

    def fit(self, reference: dict, heldout: dict) -> "DriftMonitor":
        """``reference[m]``: training encoder outputs ``(n, d)``; ``heldout[m]``:
        ``(outputs, machine ids)`` of held-out healthy-period machines."""
        self.space_, self.reference_, self.bandwidth_, self.thresholds_, self.calibration_ = {}, {}, {}, {}, {}
        for m in reference:
            self.add(m, reference[m], heldout[m])
        return self

    def add(self, m: str, reference: np.ndarray, heldout: tuple) -> None:
        ref = np.asarray(reference, float)
        if len(ref) < 8:
            raise SignalError(f"drift monitor: only {len(ref)} reference windows for {m!r} (needs >= 8)")
        mu, sd = ref.mean(0), ref.std(0)
        sd = np.where(sd > 1e-6, sd, 1.0)
        self.space_[m] = (mu, sd)
        rng = np.random.default_rng(self.random_state)
        r = self._project(m, ref)
        self.reference_[m] = r[rng.choice(len(r), min(len(r), 300), replace=False)]
        sub = self.reference_[m][:200]
        d = np.sqrt(((sub[:, None] - sub[None]) ** 2).sum(-1))
        self.bandwidth_[m] = float(np.median(d[d > 0])) if (d > 0).any() else 1.0
        x, ids = heldout
        x, ids = np.asarray(x, float), np.asarray(ids)
        if len(x) < 4:
            raise SignalError(f"drift monitor: too few held-out windows for {m!r} to calibrate a threshold")
        machines = np.unique(ids)
        stats = []
        for _ in range(self.n_calibration):
            pick = rng.choice(machines, min(self.machines_per_batch, len(machines)), replace=False)
            stats.append(self._stat(m, x[np.isin(ids, pick)], rng))
        self.calibration_[m] = np.array(stats)
        self.thresholds_[m] = float(np.quantile(stats, self.quantile))

    def _project(self, m: str, x: np.ndarray) -> np.ndarray:
        mu, sd = self.space_[m]
        return (np.asarray(x, float) - mu) / sd

    def _stat(self, m: str, x: np.ndarray, rng) -> float:
        p = self._project(m, x)
        ref = self.reference_[m]
        vals = []
        for _ in range(self.n_draws):
            a = p[rng.choice(len(p), self.n_recent, replace=True)]
            b = ref[rng.choice(len(ref), min(len(ref), 200), replace=False)]
            vals.append(mmd2(a, b, self.bandwidth_[m]))
        return float(np.mean(vals))

    def report(self, recent: dict) -> pd.DataFrame:
        """One row per modality: ``statistic``, ``threshold``, ``drift`` (bool), ``windows``;
        a modality with fewer than 4 recent windows is not judged (``drift`` False, NaN)."""
        if not hasattr(self, "thresholds_"):
            raise SchemaError("DriftMonitor is not fitted")
        rng = np.random.default_rng(self.random_state + 7)
        rows = []
        for m, thr in self.thresholds_.items():
            x = np.asarray(recent.get(m, np.zeros((0, 1))), float)
            stat = self._stat(m, x, rng) if len(x) >= 4 else float("nan")
            rows.append({"modality": m, "statistic": stat, "threshold": thr,
                         "drift": bool(np.isfinite(stat) and stat > thr), "windows": int(len(x))})
        return pd.DataFrame(rows).set_index("modality")


# ------------------------------------------------------------------------------ planted drifts
_JARGON = [(r"\bbearing housing\b", "BRG HSG"), (r"\bdrive-end bearing\b", "DE BRG"),
           (r"\bnon-drive-end bearing\b", "NDE BRG"), (r"\bbearing\b", "BRG"),
           (r"running hot|feels hot|warm to the touch|hotter than usual", "T>LIM"),
           (r"grinding noise|rumbling|knocking|high-pitched whine|rattling", "NVH anomaly"),
           (r"\bvibration\b", "VIB"), (r"check soon", "WO raised"), (r"\bno issues\b", "nil defects"),
           (r"\bmotor\b", "MTR"), (r"\bpump\b", "PMP"), (r"\bfan\b", "FN"), (r"\bcompressor\b", "CMP")]


def _jargon(text: str) -> str:
    out = text
    for pat, rep in _JARGON:
        out = re.sub(pat, rep, out, flags=re.IGNORECASE)
    return "[shift C] " + out.upper().rstrip(".") + " // logged"


def plant_drift(cohort: Cohort, kind: str, strength: float = 1.0, seed: int = 0) -> Cohort:
    """A copy of ``cohort`` with drift ``kind`` (see :data:`DRIFTS`) planted in every machine
    from the start of its session. ``strength`` scales it (1 = a realistic change)."""
    kind = check_option(kind, "drift kind", tuple(DRIFTS), error=SchemaError)
    if not isinstance(cohort, Cohort):
        raise SchemaError(f"plant_drift: expected a Cohort, got {type(cohort).__name__}")
    rng = np.random.default_rng(seed)
    recs = []
    for rec in cohort:
        streams = dict(rec.streams)
        ann = rec.annotations.copy()
        if kind == "thermal_recalibration" and "thermal" in streams:
            s = streams["thermal"]
            streams["thermal"] = s.replace(data=(np.asarray(s.data) * (1 + 0.08 * strength)
                                                 + 5.0 * strength).astype(np.float32))
        elif kind == "note_vocabulary":
            notes = ann["kind"] == "note"
            ann.loc[notes, "text"] = [_jargon(str(t)) for t in ann.loc[notes, "text"]]
        elif kind == "loose_mount" and "vibration" in streams:
            s = streams["vibration"]
            x = np.asarray(s.data, float).reshape(len(s.data), -1)[:, 0]
            fs = float(s.rate)
            good = np.isfinite(x)
            shaft = float(rec.meta.get("truth", {}).get("shaft_hz") or 25.0)
            f0 = 450.0  # the loose mount's own resonance
            w = 2 * np.pi * f0 / fs
            r = np.exp(-0.05 * w)
            b_res, a_res = [1.0, 0.0, -1.0], [1.0, -2 * r * np.cos(w), r * r]
            b_lo, a_lo = sps.butter(2, min(600.0 / (fs / 2), 0.9), "low")
            y = x.copy()
            if good.sum() > 20:
                xx = x[good]
                ring = sps.lfilter(b_res, a_res, xx) * (1 - r)  # the mount amplifies near f0
                y[good] = (1 - 0.6 * strength) * xx + 0.6 * strength * sps.lfilter(b_lo, a_lo, xx) + 2.0 * strength * ring
            n = len(x)
            imp = np.zeros(n)
            hits = (np.arange(0.0, n / fs, 1.0 / shaft) + rng.uniform(0, 1.0 / shaft)) * fs
            imp[np.clip(hits.astype(int), 0, n - 1)] = 0.4 * strength
            y = y + sps.lfilter(b_res, a_res, imp) + 0.02 * strength * rng.standard_normal(n)
            y = np.where(good, y, np.nan)
            streams["vibration"] = s.replace(data=y.astype(np.asarray(s.data).dtype).reshape(np.shape(s.data)))
        recs.append(Recording(rec.subject, streams=list(streams.values()), annotations=ann,
                              meta={**rec.meta, "drift": kind}, t0=rec.t0))
    return Cohort(recs, participants=cohort.participants.copy(), meta={**cohort.meta, "drift": kind})
