"""Predictive maintenance from vibration, thermal frames and operator notes (chapter
53_predictive_maintenance).

:class:`MaintenanceMonitor` watches a fleet of machines, window by window
(:mod:`mmlab.systems._maintenance_features` cuts the windows and flags unusable inputs):

1. **Encoders**, one per modality, frozen once fitted: vibration -> envelope-spectrum
   evidence at the bearing defect frequencies, time moments and band shares
   (:mod:`mmlab.sensors`), standardised, plus a small 1-D CNN on the envelope order spectrum; thermal -> the small CNN of :mod:`mmlab.images`
   trained on the training frames (relative to each frame's median) plus the frame's
   statistics in °C; notes -> MiniLM sentence embeddings (:func:`mmlab.text.embed`) or, with
   ``text_encoder="keywords"``, the keyword baseline; an extra 1-channel sensor (e.g.
   motor current) -> its time moments and band shares.
2. **Adapters + attention fusion**: a :class:`~mmlab.fusion.deep.AttentionFusionNet` whose
   per-modality encoders are the adapters in front of one attention head, trained with
   modality dropout (:func:`mmlab.fusion._contract.drop_modalities`). Its outputs are the
   fault-class logits (:data:`FAULT_CLASSES` seen in training) and one logit for the
   **risk of failure within** ``horizon_h`` hours of machine time; both are temperature
   scaled on held-out training machines (:class:`mmlab.evaluate.TemperatureScaler`).
3. **Machine time**: a synthetic session is a time-lapse of the last ``session_h`` hours of
   a machine's run (failing machines fail at its end), so window ``[a, b)`` is
   ``(session - b) / session * session_h`` hours before failure. With the scenario's
   ``onset_fraction`` the fault starts during the session (windows before it are healthy),
   so the lead time of the first alarm is a real measurement.
4. **Adding a sensor** (:meth:`MaintenanceMonitor.add_sensor`): the new modality gets its
   own encoder and adapter; every existing encoder, adapter, the attention scorer and the
   head stay frozen, so whenever the new sensor is absent the outputs are bit-identical to
   before (checked by :meth:`old_outputs_unchanged`).
5. **Drift** (:class:`DriftMonitor`): per modality, the MMD between recent encoder outputs
   and the training reference, with a threshold calibrated on held-out healthy-period
   batches; :meth:`MaintenanceMonitor.drift_report` names the drifting modality.
   :func:`plant_drift` makes the three planted drifts (``thermal_recalibration``,
   ``note_vocabulary``, ``loose_mount``).

Per-window output (:meth:`MaintenanceMonitor.predict_proba`): ``machine``, ``start``,
``end``, ``fault`` (true class), ``p_<class>`` per fault class, ``predicted``, ``risk``
(probability of failure within the horizon), ``hours_to_failure``, and per modality
``present_<m>`` / ``reason_<m>`` (why an input was excluded).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from mmlab.errors import SchemaError, SignalError
from mmlab.recording import Cohort
from mmlab.systems import _maintenance_features as MF
from mmlab.systems._maintenance_drift import DriftMonitor, plant_drift
from mmlab.systems._maintenance_features import FAULT_CLASSES, WindowTable, window_table
from mmlab.systems._folder import load_pickled, save_pickled
from mmlab.validate import check_fraction, check_int, check_option, check_positive

__all__ = ["MaintenanceMonitor", "DriftMonitor", "plant_drift", "FAULT_CLASSES", "FORMAT", "window_table",
           "machine_split", "lead_times", "alarm_threshold", "load_cohort", "make_fleet", "FLEET_KNOBS"]

FORMAT = "mmlab-maintenance-monitor/1"
BASE_MODALITIES = ("vibration", "thermal", "notes")


#: The ``factory`` knobs the maintenance chapter and bench add to the defaults: the faults a
#: single stream misses (ball defects, motor overheating), run to failure (each fault starts
#: somewhere in the first 60 % of the session; healthy before) and a motor-current sensor.
FLEET_KNOBS = {"overheat_fraction": 0.2, "fault_mix": {"outer_race": 0.4, "inner_race": 0.3, "ball": 0.3},
               "onset_fraction": 0.6, "current_hz": 1000.0}


def make_fleet(n_machines: int = 60, seed: int = 0, fast: bool = True, **knobs) -> Cohort:
    """A synthetic fleet: ``factory`` with :data:`FLEET_KNOBS` (``knobs`` override them;
    ``fleet=False``-style plain defaults: pass ``overheat_fraction=0.0, current_hz=None,
    fault_mix={"outer_race": 0.6, "inner_race": 0.4, "ball": 0.0}``)."""
    from mmlab.synth import factory

    return factory(n_machines, seed=seed, fast=fast, **{**FLEET_KNOBS, **knobs})


def load_cohort(path: str | Path) -> Cohort:
    """A saved mmlab cohort folder (``mmlab data make factory ...``), with a clear error."""
    p = Path(path).expanduser()
    if not p.exists():
        raise SchemaError(f"{p}: no such folder (make one with `mmlab data make factory --out {p}`)")
    try:
        return Cohort.load(p)
    except (OSError, ValueError, KeyError) as e:
        raise SchemaError(f"{p} is not a saved mmlab cohort ({e})") from None


def machine_split(machines: Sequence[str], faults: Sequence[str], test_fraction: float = 0.3,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Machine ids ``(train, test)``: each fault class split ``1 - test_fraction`` /
    ``test_fraction`` (at least one machine on each side when it has two or more)."""
    check_fraction(test_fraction, "test_fraction")
    df = pd.DataFrame({"m": list(machines), "f": list(faults)}).drop_duplicates("m")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for _, g in df.groupby("f", sort=True):
        ids = rng.permutation(g["m"].to_numpy())
        k = int(round(test_fraction * len(ids)))
        if len(ids) >= 2:
            k = min(max(k, 1), len(ids) - 1)
        test += list(ids[:k]); train += list(ids[k:])
    return np.array(sorted(train)), np.array(sorted(test))


# ------------------------------------------------------------------------------ encoders
class _Standardizer:
    def fit(self, x: np.ndarray, present: np.ndarray) -> "_Standardizer":
        ref = x[present] if present.any() else x
        self.mean_ = ref.mean(axis=0)
        self.std_ = np.where(ref.std(axis=0) > 1e-6, ref.std(axis=0), 1.0)
        return self

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean_) / self.std_).astype(np.float32)


class VibrationEncoder:
    """Vibration -> the standardised envelope-spectrum evidence and time features, plus the
    pooled features of a small 1-D CNN trained (on the training windows' fault classes) to
    read the envelope **order** spectrum (:func:`~mmlab.systems._maintenance_features.order_spectrum`),
    where a defect sits at the same order whatever the shaft speed. ``cnn=False`` keeps the
    hand-made evidence only (the default of the monitor: trained on the same windows as the
    fusion head, the CNN's features overfit and the head leans on them, see chapter 53)."""

    def __init__(self, width: int = 8, epochs: int = 20, cnn: bool = True, random_state: int = 0):
        self.width, self.epochs, self.cnn, self.random_state = width, epochs, cnn, random_state

    def _net(self, n_classes: int):
        from torch import nn

        w = self.width
        features = nn.Sequential(nn.Conv1d(1, w, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
                                 nn.Conv1d(w, 2 * w, 5, padding=2), nn.ReLU(), nn.AdaptiveMaxPool1d(1), nn.Flatten())
        return features, nn.Linear(2 * w, n_classes)

    def fit(self, feats: np.ndarray, orders: np.ndarray, y: np.ndarray, present: np.ndarray) -> "VibrationEncoder":
        import torch
        from torch import nn

        from mmlab._torch import minibatches, seeded, torch_threads, train_loop

        self.feats_ = _Standardizer().fit(feats, present)
        if not self.cnn:
            return self
        x = torch.from_numpy(np.ascontiguousarray(orders[present], dtype=np.float32)[:, None])
        yt = torch.from_numpy(np.asarray(y[present], dtype=np.int64))
        rng = np.random.default_rng(self.random_state)
        with seeded(self.random_state), torch_threads(1):
            self.cnn_, head = self._net(int(y.max()) + 1)
            if len(x) >= 4:
                opt = torch.optim.Adam(list(self.cnn_.parameters()) + list(head.parameters()), lr=3e-3)
                train_loop([self.cnn_, head], opt, lambda e: minibatches(np.arange(len(x)), 32, rng, min_size=2),
                           lambda idx: nn.functional.cross_entropy(head(self.cnn_(x[idx])), yt[idx]),
                           epochs=self.epochs)
        self.cnn_.eval()
        for p in self.cnn_.parameters():
            p.requires_grad_(False)
        return self

    def __call__(self, feats: np.ndarray, orders: np.ndarray) -> np.ndarray:
        import torch

        from mmlab._torch import torch_threads

        if not self.cnn:
            return self.feats_(feats)
        with torch.no_grad(), torch_threads(1):
            z = self.cnn_(torch.from_numpy(np.ascontiguousarray(orders, dtype=np.float32)[:, None])).numpy()
        return np.hstack([self.feats_(feats), z]).astype(np.float32)


class ThermalEncoder:
    """The small CNN of :mod:`mmlab.images` -> its pooled features, plus the frame statistics
    standardised. The CNN learns what a camera can see: healthy, a hot bearing (any bearing
    defect) or a hot motor (overheating), on frames relative to their median and divided by
    the housing's excess (which divides the load out)."""

    def __init__(self, width: int = 8, epochs: int = 15, random_state: int = 0):
        self.width, self.epochs, self.random_state = width, epochs, random_state

    def fit(self, frames: np.ndarray, stats: np.ndarray, faults: np.ndarray, present: np.ndarray) -> "ThermalEncoder":
        from mmlab._torch import seeded
        from mmlab.images import SmallCNN, train_cnn

        self.stats_ = _Standardizer().fit(stats, present)
        x = self._rel(frames[present])
        faults = np.asarray(faults, dtype=str)
        y = np.where(faults == "healthy", 0, np.where(faults == "overheating", 2, 1))
        with seeded(self.random_state):
            self.cnn_ = SmallCNN(1, 3, self.width)
        if present.sum() >= 4:
            train_cnn(self.cnn_, x, y[present], epochs=self.epochs, batch_size=32, random_state=self.random_state)
        self.cnn_.eval()
        for p in self.cnn_.parameters():
            p.requires_grad_(False)
        return self

    @staticmethod
    def _rel(frames: np.ndarray) -> np.ndarray:
        flat = frames.reshape(len(frames), -1)
        med, q90 = np.median(flat, axis=1), np.percentile(flat, 90, axis=1)
        scale = np.maximum(q90 - med, 0.5)  # the housing's excess: divides the load out
        return ((frames - med[:, None, None]) / scale[:, None, None])[:, None].astype(np.float32)

    def __call__(self, frames: np.ndarray, stats: np.ndarray) -> np.ndarray:
        import torch

        from mmlab._torch import torch_threads

        out = np.zeros((len(frames), 2 * self.width), np.float32)
        with torch.no_grad(), torch_threads(1):
            for s in range(0, len(frames), 256):
                out[s:s + 256] = self.cnn_.features(torch.from_numpy(self._rel(frames[s:s + 256]))).numpy()
        return np.hstack([out, self.stats_(stats)])


class NotesEncoder:
    """Operator notes -> MiniLM embeddings (``"minilm"``) or keyword counts (``"keywords"``)."""

    def __init__(self, kind: str = "minilm"):
        self.kind = check_option(kind, "text_encoder", ("minilm", "keywords"), error=SchemaError)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if self.kind == "keywords":
            return MF.keyword_features(texts)
        from mmlab.text import embed

        out = np.zeros((len(texts), 384), np.float32)
        idx = [i for i, t in enumerate(texts) if t and t.strip()]
        if idx:
            out[idx] = embed([texts[i] for i in idx])
        return out


# ------------------------------------------------------------------------------ the monitor
class MaintenanceMonitor:
    """Fault class and failure-horizon risk per machine and window (see the module doc).

    Parameters
    ----------
    window_s : float, default 5
        Window length in seconds of recording.
    horizon_h, session_h : float, default 48, 240
        The failure horizon and the machine hours one session stands for.
    text_encoder : "minilm" or "keywords"
    hidden, epochs, modality_dropout, lr : the fusion net's width, epochs, modality dropout, rate
    modalities : the base modalities used (default vibration, thermal, notes)
    validation_fraction : share of training machines held out for early stopping,
        temperature scaling and the drift thresholds
    vibration_cnn : also feed the 1-D CNN's features of the envelope order spectrum (off by
        default: it overfits the training windows, see :class:`VibrationEncoder`)
    random_state : int
    """

    def __init__(self, window_s: float = 5.0, horizon_h: float = 48.0, session_h: float = 240.0,
                 text_encoder: str = "minilm", hidden: int = 32, epochs: int = 120, modality_dropout: float = 0.3,
                 lr: float = 3e-3, modalities: Sequence[str] = BASE_MODALITIES, validation_fraction: float = 0.25,
                 vibration_cnn: bool = False, random_state: int = 0):
        self.window_s = check_positive(window_s, "window_s")
        self.horizon_h = check_positive(horizon_h, "horizon_h")
        self.session_h = check_positive(session_h, "session_h")
        self.text_encoder = check_option(text_encoder, "text_encoder", ("minilm", "keywords"), error=SchemaError)
        self.hidden = check_int(hidden, "hidden", low=2)
        self.epochs = check_int(epochs, "epochs", low=1)
        self.modality_dropout = check_fraction(modality_dropout, "modality_dropout", open_low=False, error=SchemaError)
        self.lr = check_positive(lr, "lr")
        mods = list(modalities)
        bad = [m for m in mods if m not in BASE_MODALITIES]
        if bad or not mods:
            raise SchemaError(f"modalities must be a non-empty subset of {list(BASE_MODALITIES)}, got {mods}")
        self.modalities = mods
        self.validation_fraction = check_fraction(validation_fraction, "validation_fraction")
        self.vibration_cnn = bool(vibration_cnn)
        self.random_state = int(random_state)

    # ---------------------------------------------------------------- data
    def windows(self, data: Cohort | WindowTable) -> WindowTable:
        """The window table of a cohort (a WindowTable passes through)."""
        if isinstance(data, WindowTable):
            return data
        extra = tuple(m for m in getattr(self, "modalities_", []) if m not in BASE_MODALITIES)
        return window_table(data, self.window_s, extra=extra)

    def _hours_to_failure(self, W: WindowTable) -> np.ndarray:
        m = W.meta
        return np.where(np.isfinite(m["time_to_failure_s"]), m["time_to_failure_s"] / m["session_s"] * self.session_h,
                        np.inf)

    def _encode(self, W: WindowTable, m: str) -> np.ndarray:
        if m == "vibration":
            return self.encoders_[m](W.inputs["vibration"], W.inputs["vibration_orders"])
        if m == "thermal":
            return self.encoders_[m](W.inputs["thermal"], W.inputs["thermal_stats"])
        if m == "notes":
            return self.encoders_[m](W.texts)
        return self.encoders_[m](W.inputs[m])

    def embeddings(self, data, modalities: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Encoder outputs per modality (zeros where a window's input is absent)."""
        if not hasattr(self, "encoders_"):
            self._check_fitted()
        W = self.windows(data)
        return {m: np.where(W.present[m][:, None], self._encode(W, m), 0.0).astype(np.float32)
                for m in (modalities or self.modalities_)}

    # ---------------------------------------------------------------- fit
    def fit(self, data: Cohort | WindowTable) -> "MaintenanceMonitor":
        """Train encoders, adapters and head on a labelled cohort; hold out
        ``validation_fraction`` of its machines for early stopping, calibration and drift."""
        t0 = time.perf_counter()
        W = self.windows(data)
        faults = W.meta["fault"].astype(str).to_numpy()
        self.classes_ = [c for c in FAULT_CLASSES if c in set(faults)]
        if len(self.classes_) < 2:
            raise SignalError(f"fit: the training machines show one fault class only ({self.classes_}); "
                              "a monitor needs healthy and failing machines")
        y = np.array([self.classes_.index(f) for f in faults])
        machines = W.meta["machine"].astype(str).to_numpy()
        tr_m, va_m = machine_split(machines, W.meta["machine_fault"], self.validation_fraction, self.random_state)
        tr, va = np.isin(machines, tr_m), np.isin(machines, va_m)
        if not va.any():
            raise SignalError("fit: too few machines to hold some out for calibration (need >= 2 per class)")
        self.modalities_ = list(self.modalities)
        self.encoders_: dict[str, Any] = {}
        for m in self.modalities_:
            if m == "vibration":
                self.encoders_[m] = VibrationEncoder(cnn=self.vibration_cnn, random_state=self.random_state).fit(
                    W.inputs["vibration"][tr], W.inputs["vibration_orders"][tr], y[tr], W.present[m][tr])
            elif m == "thermal":
                self.encoders_[m] = ThermalEncoder(random_state=self.random_state).fit(
                    W.inputs["thermal"][tr], W.inputs["thermal_stats"][tr], faults[tr], W.present[m][tr])
            else:
                self.encoders_[m] = NotesEncoder(self.text_encoder)
        E = self.embeddings(W)
        if self.vibration_cnn and "vibration" in self.modalities_:
            # cross-fitting: the head trains on CNN features of windows the CNN did not see
            groups = np.array_split(np.random.default_rng(self.random_state).permutation(tr_m), 3)
            for g in groups:
                rows = np.isin(machines, g)
                enc = VibrationEncoder(cnn=True, random_state=self.random_state).fit(
                    W.inputs["vibration"][tr & ~rows], W.inputs["vibration_orders"][tr & ~rows], y[tr & ~rows],
                    W.present["vibration"][tr & ~rows])
                oof = enc(W.inputs["vibration"][rows], W.inputs["vibration_orders"][rows])
                E["vibration"][rows] = np.where(W.present["vibration"][rows][:, None], oof, 0.0)
        h = self._hours_to_failure(W)
        yh = (h <= self.horizon_h).astype(np.float32)
        import torch

        from mmlab._torch import seeded
        from mmlab.fusion.deep import AttentionFusionNet

        with seeded(self.random_state):
            self.net_ = AttentionFusionNet([E[m].shape[1] for m in self.modalities_], len(self.classes_) + 1,
                                           hidden=self.hidden, dropout=0.1)
        self.history_ = self._train(self.net_.parameters(), E, W.present, y, yh, tr, va)
        self._calibrate(E, W.present, y, yh, va)
        self.drift_ = DriftMonitor(random_state=self.random_state).fit(
            {m: E[m][tr & W.present[m]] for m in self.modalities_},
            {m: (E[m][va & W.present[m]], machines[va & W.present[m]]) for m in self.modalities_})
        self.train_s_ = time.perf_counter() - t0
        return self

    def _train(self, params, E, present, y, yh, tr, va) -> list:
        import torch
        from torch import nn

        from mmlab._torch import minibatches, seeded, torch_threads, train_loop
        from mmlab.fusion._contract import drop_modalities

        mods = self.modalities_
        xs = [torch.from_numpy(E[m]) for m in mods]
        P = {m: np.asarray(present[m], bool) for m in mods}
        yt, yht = torch.from_numpy(y.astype(np.int64)), torch.from_numpy(yh)
        C = len(self.classes_)
        counts = np.bincount(y[tr], minlength=C).astype(float)
        cw = torch.tensor(counts.sum() / (C * np.maximum(counts, 1.0)), dtype=torch.float32)
        rng = np.random.default_rng(self.random_state)
        any_p = np.stack([P[m] for m in mods], 1).any(1)
        tr_rows, va_rows = np.flatnonzero(tr & any_p), np.flatnonzero(va & any_p)
        net = self.net_

        def loss_on(idx, pres):
            pt = torch.from_numpy(np.stack([pres[m][idx] for m in mods], 1))
            out = net([x[idx] for x in xs], pt)
            return (nn.functional.cross_entropy(out[:, :C], yt[idx], weight=cw)
                    + nn.functional.binary_cross_entropy_with_logits(out[:, C], yht[idx]))

        def batch_loss(idx):
            pres = drop_modalities({m: P[m][idx] for m in mods}, self.modality_dropout, rng)
            full = {m: np.zeros(len(y), bool) for m in mods}
            for m in mods:
                full[m][idx] = pres[m]
            return loss_on(idx, full)

        with seeded(self.random_state), torch_threads(1):
            opt = torch.optim.AdamW([p for p in params if p.requires_grad], lr=self.lr, weight_decay=1e-4)
            res = train_loop(net, opt, lambda e: minibatches(tr_rows, 64, rng, min_size=2), batch_loss,
                             epochs=self.epochs, validate=lambda: float(loss_on(va_rows, P)), patience=15)
        net.eval()
        return res.history

    def _logits(self, E, present, mods=None) -> np.ndarray:
        import torch

        from mmlab._torch import torch_threads

        mods = mods or self.modalities_
        xs = [torch.from_numpy(E[m]) for m in self.modalities_]
        pt = torch.from_numpy(np.stack([np.asarray(present[m], bool) if m in mods else np.zeros(len(E[m]), bool)
                                        for m in self.modalities_], 1))
        with torch.no_grad(), torch_threads(1):
            return self.net_(xs, pt).double().numpy()

    def _calibrate(self, E, present, y, yh, va) -> None:
        from mmlab.evaluate import TemperatureScaler

        z = self._logits(E, present)
        C = len(self.classes_)
        ok = va & np.stack([present[m] for m in self.modalities_], 1).any(1)
        self.fault_temperature_ = TemperatureScaler().fit(z[ok, :C], y[ok])
        zr = np.stack([np.zeros(ok.sum()), z[ok, C]], 1)
        self.risk_temperature_ = TemperatureScaler().fit(zr, yh[ok].astype(int)) if len(set(yh[ok])) > 1 else None

    # ---------------------------------------------------------------- predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise SchemaError("MaintenanceMonitor is not fitted; call fit(cohort) first (or load a saved one)")

    def predict_proba(self, data, modalities: Sequence[str] | None = None) -> pd.DataFrame:
        """Per-window table (see the module doc). ``modalities`` restricts the inputs
        (the others count as absent) — e.g. one modality alone."""
        self._check_fitted()
        t0 = time.perf_counter()
        W = self.windows(data)
        E = self.embeddings(W)
        mods = list(modalities or self.modalities_)
        unknown = [m for m in mods if m not in self.modalities_]
        if unknown:
            raise SchemaError(f"unknown modalities {unknown}; this monitor has {self.modalities_}")
        z = self._logits(E, W.present, mods)
        C = len(self.classes_)
        p = self.fault_temperature_.transform(z[:, :C])
        zr = np.stack([np.zeros(len(z)), z[:, C]], 1)
        risk = (self.risk_temperature_.transform(zr) if self.risk_temperature_ else
                np.stack([1 - 1 / (1 + np.exp(-z[:, C])), 1 / (1 + np.exp(-z[:, C]))], 1))[:, 1]
        none = ~np.stack([W.present[m] for m in mods], 1).any(1)
        out = W.meta[["machine", "start", "end", "fault"]].copy()
        for i, c in enumerate(self.classes_):
            out[f"p_{c}"] = np.where(none, np.nan, p[:, i])
        out["predicted"] = np.where(none, "", np.array(self.classes_, dtype=object)[p.argmax(1)])
        out["risk"] = np.where(none, np.nan, risk)
        out["hours_to_failure"] = self._hours_to_failure(W)
        for m in self.modalities_:
            out[f"present_{m}"] = W.present[m]
            out[f"reason_{m}"] = W.reason[m]
        self.infer_ms_ = 1000 * (time.perf_counter() - t0) / max(len(W), 1)
        return out

    # ---------------------------------------------------------------- a new sensor
    def add_sensor(self, data, name: str = "current", epochs: int | None = None) -> "MaintenanceMonitor":
        """A copy of this monitor with one more 1-channel sensor (stream ``name``): its own
        encoder and adapter are trained; all existing parts stay frozen."""
        self._check_fitted()
        if name in self.modalities_:
            raise SchemaError(f"the monitor already has a {name!r} modality")
        import torch

        from mmlab._torch import seeded
        from mmlab.fusion.deep import _encoder

        new = copy.deepcopy(self)
        W = window_table(data, self.window_s, extra=(name,)) if not isinstance(data, WindowTable) else data
        if name not in W.present or not W.present[name].any():
            raise SignalError(f"add_sensor: no machine of the data has a usable {name!r} stream")
        faults = W.meta["fault"].astype(str).to_numpy()
        unknown = sorted(set(faults) - set(self.classes_))
        if unknown:
            raise SignalError(f"add_sensor: fault classes {unknown} were not in the original training data")
        y = np.array([self.classes_.index(f) for f in faults])
        machines = W.meta["machine"].astype(str).to_numpy()
        tr_m, va_m = machine_split(machines, W.meta["machine_fault"], self.validation_fraction, self.random_state)
        tr, va = np.isin(machines, tr_m), np.isin(machines, va_m)
        new.encoders_[name] = _Standardizer().fit(W.inputs[name][tr], W.present[name][tr])
        new.modalities_ = self.modalities_ + [name]
        for p in new.net_.parameters():
            p.requires_grad_(False)
        with seeded(self.random_state + 1):
            new.net_.enc.append(_encoder(W.inputs[name].shape[1], self.hidden, 0.1))
        E = new.embeddings(W)
        yh = (new._hours_to_failure(W) <= self.horizon_h).astype(np.float32)
        if epochs is not None:
            new.epochs = check_int(epochs, "epochs", low=1)
        new.history_ = new._train(list(new.net_.enc[-1].parameters()), E, W.present, y, yh, tr, va)
        for p in new.net_.parameters():
            p.requires_grad_(False)
        new.drift_ = copy.deepcopy(self.drift_)
        new.drift_.add(name, E[name][tr & W.present[name]], (E[name][va & W.present[name]],
                                                             machines[va & W.present[name]]))
        return new

    def old_outputs_unchanged(self, other: "MaintenanceMonitor", data) -> bool:
        """True when ``other`` (from :meth:`add_sensor`) gives bit-identical encoder outputs
        for this monitor's modalities and bit-identical logits with only them present."""
        W = other.windows(data)
        Ea, Eb = self.embeddings(W, self.modalities_), other.embeddings(W, self.modalities_)
        if not all(np.array_equal(Ea[m], Eb[m]) for m in self.modalities_):
            return False
        za = self._logits(Ea, W.present)
        Eb_all = other.embeddings(W)
        zb = other._logits(Eb_all, W.present, self.modalities_)
        return bool(np.array_equal(za, zb))

    # ---------------------------------------------------------------- drift
    def drift_report(self, data) -> pd.DataFrame:
        """Per modality: the MMD of the data's encoder outputs against the training reference,
        the calibrated threshold, ``drift`` (flag) and the number of windows used."""
        self._check_fitted()
        W = self.windows(data)
        E = self.embeddings(W)
        return self.drift_.report({m: E[m][W.present[m]] for m in self.modalities_})

    # ---------------------------------------------------------------- save / load
    def save(self, folder: str | Path) -> Path:
        """A versioned folder: ``manifest.json`` and ``model.pkl``."""
        self._check_fitted()
        manifest = {"classes": self.classes_,
                    "modalities": self.modalities_, "horizon_h": self.horizon_h, "session_h": self.session_h,
                    "window_s": self.window_s, "text_encoder": self.text_encoder,
                    "fault_temperature": float(self.fault_temperature_.temperature_),
                    "drift_thresholds": {m: float(t) for m, t in self.drift_.thresholds_.items()}}
        return save_pickled(self, folder, FORMAT, manifest)

    @classmethod
    def load(cls, folder: str | Path) -> "MaintenanceMonitor":
        """Load a folder written by :meth:`save`; another format or mmlab version is an error."""
        return load_pickled(cls, folder, FORMAT, "a maintenance model", "mmlab maintenance train",
                            lambda mon, mf: mon.modalities_ == mf.get("modalities"))


# ------------------------------------------------------------------------------ alarms and lead time
def _episodes(alarm: np.ndarray) -> int:
    a = np.asarray(alarm, bool)
    return int(a[0]) + int(((~a[:-1]) & a[1:]).sum()) if len(a) else 0


def alarm_threshold(pred: pd.DataFrame, session_h: float, max_per_month: float = 1.0,
                    month_h: float = 720.0) -> float:
    """The lowest risk threshold whose alarm episodes on healthy machines (those without a
    failure, i.e. infinite ``hours_to_failure``; rising edges of
    ``risk >= threshold``) stay at or below ``max_per_month`` per machine-month."""
    healthy = pred[~np.isfinite(pred["hours_to_failure"].astype(float))]  # machines that never fail
    if healthy.empty:
        return 0.5
    months = healthy["machine"].nunique() * session_h / month_h
    grid = np.unique(np.concatenate([np.linspace(0, 1, 101), healthy["risk"].dropna().to_numpy()]))
    for thr in grid:
        n = sum(_episodes(g.sort_values("start")["risk"].fillna(0).to_numpy() >= thr)
                for _, g in healthy.groupby("machine"))
        if n <= max_per_month * months:
            return float(thr)
    return 1.0


def lead_times(pred: pd.DataFrame, threshold: float) -> pd.Series:
    """Hours before failure of the first alarm (``risk >= threshold``) of each failing
    machine; 0 when it never alarms."""
    out = {}
    for m, g in pred[np.isfinite(pred["hours_to_failure"])].groupby("machine"):
        g = g.sort_values("start")
        hit = g["risk"].fillna(0).to_numpy() >= threshold
        out[m] = float(g["hours_to_failure"].to_numpy()[hit][0] + 0.0) if hit.any() else 0.0
    return pd.Series(out, name="lead_time_h", dtype=float)
