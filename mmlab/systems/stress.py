"""The wearable stress detector: raw devices in, consensus alerts out (chapter 50_stress_system).

:class:`StressDetector` composes the layers below it, one step each:

1. **Windows and features** (:mod:`mmlab.features`): every device present — chest ECG, EDA
   and respiration, wrist BVP, EDA, temperature and motion, spoken self-reports — gives a
   modality (:func:`default_streams`). Features are computed in **blocks**: every
   ``block_s`` seconds of data, the windows ending in that block are computed from the
   data of the block plus ``context_s`` seconds before it (filters and beat detectors need
   a run-up). A streaming device delivers exactly the same data for each block, so the
   streaming path (:meth:`StressDetector.stream`) gives the *same* features, probabilities
   and alerts as the batch path — by construction, and checked by a test.
2. **Labels**: phases map to ``"stress"`` or ``"rest"`` (:func:`window_labels`); a window
   that straddles two phases (less than ``purity`` of it in one) is not used for training
   or window-level scoring.
3. **Per-person calibration**, as wearables do: each subject's features are expressed
   against the subject's own baseline — by default the first ``baseline_s`` seconds of
   wear (``baseline="first"``); no prediction is made before that calibration period ends.
   ``"rolling"`` is causal too and adapts: each window is z-scored against the subject's
   windows of the last ``rolling_s`` seconds (itself included), so a tonic drift over a
   session (skin conductance creeping up, the wrist warming) does not read as stress; it
   also waits ``baseline_s`` before its first decision. ``"rest"`` (the subject's labelled
   rest windows), ``"all"`` (every window of the subject, non-causal) and ``"none"`` are
   there to compare.
4. **Per-modality detectors** (logistic regression on that modality's features, temperature
   scaled on held-out training subjects): each modality's calibrated probability of stress
   is its vote.
5. **A fused model** from :mod:`mmlab.fusion` — by default :class:`~mmlab.fusion.TemporalFusion`
   over ``seq_len`` consecutive windows, trained with modality dropout; ``"early"`` (a
   logistic regression), ``"forest"`` (a random forest) and ``"attention"`` are selectable —
   temperature scaled the same way. Its probability is reported (and can be thresholded instead).
6. **Consensus alerts** (:mod:`mmlab.systems.alerts`): k of the n modalities *present* must
   vote together for ``min_duration_s``; an absent or poor-quality modality shrinks n and
   never votes; hysteresis and a refractory period. Each alert carries its provenance.

Per-window output (:meth:`StressDetector.predict_proba`) is a table with ``subject``,
``start``, ``end``, ``label``, ``fused``, one ``p_<modality>`` column per modality, and its
``present_<modality>`` and ``quality_<modality>``.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from mmlab import features as FT
from mmlab.errors import SchemaError, SignalError
from mmlab.parallel import map_tasks
from mmlab.recording import Cohort, Recording, Stream
from mmlab.systems.alerts import Alert, ConsensusAlerter
from mmlab.systems._folder import load_pickled, save_pickled
from mmlab.validate import check_int, check_number, check_option, check_params, check_positive

__all__ = ["StressDetector", "StressStream", "StressEvaluation", "evaluate_loso", "default_streams", "window_labels",
           "stress_episodes", "stream_chunks", "open_recordings", "reference_loso", "select_loso",
           "PRESETS", "FORMAT"]

FORMAT = "mmlab-stress-detector/1"
CLASSES = ("rest", "stress")
#: phase name (lower case) -> binary label; phases not named here are not used as labels.
DEFAULT_LABEL_MAP = {"stress": "stress", "tsst": "stress", "baseline": "rest", "amusement": "rest",
                     "meditation": "rest", "relax": "rest", "rest": "rest"}
#: (device, stream modality) -> modality prefix; other devices use "<device>_<modality>".
_PREFIX = {("chest", "ecg"): "ecg", ("chest", "eda"): "eda", ("chest", "resp"): "resp",
           ("wrist", "bvp"): "bvp", ("wrist", "eda"): "wrist_eda", ("wrist", "temp"): "temp",
           ("wrist", "acc"): "acc", ("wrist", "hr"): "hr"}
_SKIP = {"acc"}  # chest ACC: no extractor worth voting (motion is the wrist's job)
#: Named settings :func:`select_loso` chooses between (``mmlab bench stress`` and ``mmlab
#: stress evaluate --preset select``): the defaults (calibration on the first minutes, temporal
#: model), and an adaptive calibration for sessions whose tonic levels drift (a 15-min
#: rolling z-score, 60-s windows, a random forest), which did better on the wrist-only
#: Stress-Predict recordings and worse on stress_protocol.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "adaptive": {"baseline": "rolling", "model": "forest", "window_s": 60.0},
}


# ----------------------------------------------------------------------------- streams
def default_streams(rec: Recording) -> dict[str, list[str]]:
    """Which streams feed which modality: every stream whose kind has a window extractor.

    Chest streams become ``ecg``, ``eda``, ``resp``; wrist streams ``bvp``, ``wrist_eda``,
    ``temp``, ``acc``, ``hr``; all audio clips together ``voice``. A recording with none of
    them raises :class:`~mmlab.errors.SchemaError`.
    """
    out: dict[str, list[str]] = {}
    for s in sorted(rec.streams.values(), key=lambda s: s.name):
        if s.modality not in FT.EXTRACTORS or s.rate is None:
            continue
        if s.modality == "audio":
            out.setdefault("voice", []).append(s.name)
            continue
        if s.device == "chest" and s.modality in _SKIP:
            continue
        prefix = _PREFIX.get((s.device, s.modality), f"{s.device or 'dev'}_{s.modality}".replace("-", "_"))
        out.setdefault(prefix, [s.name])  # one stream per modality (the first by name)
    if not out:
        kinds = sorted({s.modality for s in rec.streams.values()})
        raise SchemaError(f"recording {rec.subject!r} has no stream the stress detector can use "
                          f"(has {kinds}; usable: {sorted(FT.EXTRACTORS)})")
    return out


# ------------------------------------------------------------------------------ labels
def _labelled_phases(rec: Recording, label_map: Mapping[str, str]) -> pd.DataFrame:
    """``onset``, ``end``, ``label`` (stress/rest) of the recording's labelled phases."""
    ann = rec.annotations
    if ann is None or len(ann) == 0:
        return pd.DataFrame({"onset": [], "end": [], "label": []})
    ann = ann[ann["duration"].to_numpy(float) > 0]
    if "stress" in ann.columns and np.isfinite(pd.to_numeric(ann["stress"], errors="coerce")).any():
        s = pd.to_numeric(ann["stress"], errors="coerce").to_numpy(float)
        ok = np.isfinite(s)
        lab = np.where(s[ok] > 0.5, "stress", "rest")
        ann = ann[ok]
    else:
        if "kind" in ann.columns:
            ann = ann[ann["kind"] == "phase"]
        names = ann["label"].astype(str).str.strip().str.lower()
        lab = names.map(dict(label_map)).to_numpy()
        ok = pd.notna(lab)
        ann, lab = ann[ok], lab[ok].astype(str)
    onset = ann["onset"].to_numpy(float)
    return pd.DataFrame({"onset": onset, "end": onset + ann["duration"].to_numpy(float), "label": lab})


def window_labels(rec: Recording, starts: Any, ends: Any, label_map: Mapping[str, str] | None = None,
                  purity: float = 0.9) -> np.ndarray:
    """``"stress"``, ``"rest"`` or None per window: the label of the phase covering at
    least ``purity`` of the window (None: straddles two phases, or unlabelled).

    Phases come from ``kind == "phase"`` annotations mapped by ``label_map`` (default
    :data:`DEFAULT_LABEL_MAP`), or from a ``stress`` column (1 = stress) when the
    annotations have one (the Stress-Predict and WESAD readers).
    """
    starts, ends = np.asarray(starts, float), np.asarray(ends, float)
    purity = check_number(purity, "purity", low=0.5, high=1.0)
    ph = _labelled_phases(rec, DEFAULT_LABEL_MAP if label_map is None else label_map)
    out = np.full(len(starts), None, dtype=object)
    length = ends - starts
    for lab in CLASSES:
        sel = ph[ph["label"] == lab]
        cover = np.zeros(len(starts))
        for a, b in zip(sel["onset"], sel["end"]):
            cover += np.clip(np.minimum(ends, b) - np.maximum(starts, a), 0, None)
        out[cover >= purity * length] = lab
    return out


def stress_episodes(rec: Recording, label_map: Mapping[str, str] | None = None) -> list[tuple[float, float]]:
    """The recording's stress phases as ``(start, end)`` on the reference clock, clipped to
    the recording; a stress phase outside the recording raises (the labels are wrong)."""
    ph = _labelled_phases(rec, DEFAULT_LABEL_MAP if label_map is None else label_map)
    lo, hi = _recording_span(rec)
    out = []
    for a, b in zip(ph.loc[ph["label"] == "stress", "onset"], ph.loc[ph["label"] == "stress", "end"]):
        if b <= lo or a >= hi:
            raise SchemaError(f"recording {rec.subject!r}: stress phase {a:.0f}-{b:.0f} s lies outside "
                              f"the recording ({lo:.0f}-{hi:.0f} s); check the labels' clock")
        out.append((max(a, lo), min(b, hi)))
    return sorted(out)


def _fill_undefined(table: pd.DataFrame) -> pd.DataFrame:
    """A copy where a feature undefined by definition gets its natural value: the mean SCR
    amplitude of a window with no SCR (``scr_count == 0`` in raw units) is 0, so a quiet
    skin does not make its modality absent. Presence still follows the quality flags."""
    out = table.copy()
    for c in table.columns:
        count = c.replace("__scr_amp_mean", "__scr_count")
        if c.endswith("__scr_amp_mean") and count in table:
            none = (table[count] == 0).to_numpy() & table[c].isna().to_numpy()
            out.loc[none, c] = 0.0
    return out


def _recording_span(rec: Recording) -> tuple[float, float]:
    regular = [s for s in rec.streams.values() if s.rate is not None and s.modality != "audio"]
    if not regular:
        regular = [s for s in rec.streams.values() if s.rate is not None]
    if not regular:
        raise SchemaError(f"recording {rec.subject!r} has no regularly sampled stream")
    return min(s.start for s in regular), max(s.end for s in regular)


# ------------------------------------------------------------------------------ blocks
def _grid_block(block_end: float, block_s: float, window_s: float, step_s: float) -> tuple[float, float]:
    """(t_start, t_end) for window_features: the windows ending in (block_end - block_s, block_end]."""
    first_end = block_end - block_s + step_s
    return first_end - window_s, block_end


class _Series:
    """One regular stream as both paths hold it: samples from global index ``base`` on, the
    global index counted from ``origin`` (the stream's first sample). Cutting a time range
    uses integer sample indices from ``origin``, so the batch path (the whole stream) and the
    streaming path (a trimmed buffer) cut exactly the same samples."""

    def __init__(self, proto: Stream, origin: float, data: np.ndarray | None = None, base: int = 0):
        self.proto = proto.replace(data=proto.data[:0])
        self.origin, self.base = float(origin), int(base)
        self.rate = float(proto.rate)
        self.parts = [] if data is None else [np.asarray(data, float)]
        self.n = 0 if data is None else len(data)

    @classmethod
    def whole(cls, s: Stream, pad_to: float | None = None) -> "_Series":
        ser = cls(s, s.start, s.data)
        if pad_to is not None and s.modality != "audio":
            ser.pad(pad_to)
        return ser

    @property
    def end(self) -> float:
        return self.origin + (self.base + self.n) / self.rate

    def _index(self, t: float) -> int:
        return int(math.ceil((t - self.origin) * self.rate - 1e-6))

    def data(self) -> np.ndarray:
        if len(self.parts) > 1:
            self.parts = [np.concatenate(self.parts)]
        return self.parts[0] if self.parts else np.zeros((0,) + self.proto.data.shape[1:])

    def add(self, piece: Stream) -> None:
        """Append a delivered piece (pieces of one stream arrive in order); a hole before it
        becomes NaN, and a piece that overlaps what is held (e.g. data that arrived after its
        block was decided and padded with NaN) keeps the first copy."""
        g = self._index(piece.start)
        have = self.base + self.n
        data = np.asarray(piece.data, float)
        if g > have:  # nothing arrived for a while: a dropout
            self.parts.append(np.full((g - have,) + data.shape[1:], np.nan))
            self.n += g - have
        elif g < have:
            data = data[have - g:]
        if len(data):
            self.parts.append(data)
            self.n += len(data)

    def pad(self, t: float) -> None:
        """NaN up to time ``t``: what has not arrived by then is missing."""
        need = self._index(t) - (self.base + self.n)
        if need > 0:
            self.parts.append(np.full((need,) + self.proto.data.shape[1:], np.nan))
            self.n += need

    def trim(self, t: float) -> None:
        """Forget samples before ``t`` (bounded memory while streaming)."""
        drop = min(self._index(t) - self.base, self.n)
        if drop > 0:
            self.parts = [self.data()[drop:]]
            self.base += drop
            self.n -= drop

    def cut(self, t_lo: float, t_hi: float) -> Stream | None:
        g0 = max(self._index(t_lo), self.base)
        g1 = min(self._index(t_hi), self.base + self.n)
        if g1 <= g0:
            return None
        return self.proto.replace(data=self.data()[g0 - self.base:g1 - self.base],
                                  start=self.origin + g0 / self.rate)


def _view(series: Mapping[str, _Series], t_lo: float, t_hi: float, subject: str, meta: dict) -> Recording:
    """The streams cut to ``[t_lo, t_hi)`` (device clock = reference clock here)."""
    cut = [c for c in (ser.cut(t_lo, t_hi) for ser in series.values())
           if c is not None and c.n_samples >= max(c.rate, c.n_channels + 1)]  # under 1 s: nothing to use
    return Recording(subject, cut, meta=meta)


@dataclass
class _Featurizer:
    """Block-wise window features, the same for a whole recording and for a stream buffer."""

    streams: dict[str, list[str]]
    window_s: float
    step_s: float
    block_s: float
    context_s: float
    min_coverage: float

    def block(self, streams: Mapping[str, _Series], block_end: float, subject: str, meta: dict) -> pd.DataFrame:
        t_start, t_end = _grid_block(block_end, self.block_s, self.window_s, self.step_s)
        lo = t_start - self.context_s
        view = _view(streams, lo, t_end, subject, meta)
        chosen = {p: [n for n in names if n in view.streams] for p, names in self.streams.items()}
        chosen = {p: n for p, n in chosen.items() if n}
        starts, ends = FT.window_grid(t_start, t_end, self.window_s, self.step_s)
        base = pd.DataFrame({"subject": subject, "start": starts, "end": ends})
        if not chosen or not len(starts):
            return base
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # dropout stretches: NaN features, flagged
            try:
                t = FT.window_features(view, self.window_s, self.step_s, streams=chosen,
                                       t_start=t_start, t_end=t_end, min_coverage=self.min_coverage)
            except SignalError as e:
                if "shorter than one" in str(e):
                    return base
                raise
        keep = [c for c in t.columns if "__" in c]
        return pd.concat([base, t[keep].reset_index(drop=True)], axis=1)

    def block_ends(self, t_first: float, t_last: float) -> np.ndarray:
        """Block ends (multiples of ``block_s``) whose windows can hold data in ``[t_first, t_last]``."""
        k0 = math.floor(t_first / self.block_s) + 1
        k1 = math.ceil(t_last / self.block_s)
        return np.arange(k0, k1 + 1) * self.block_s


def _within(table: pd.DataFrame, t_first: float, t_last: float = math.inf) -> pd.DataFrame:
    """The windows that lie within the data: none that starts before its first sample (the
    first block's early windows) or ends after its last (the last block is partial)."""
    keep = (table["start"] >= t_first - 1e-9) & (table["end"] <= t_last + 1e-9)
    return table[keep.to_numpy()].reset_index(drop=True)


# ------------------------------------------------------------------------ the detector
def _quality(table: pd.DataFrame, prefix: str) -> np.ndarray:
    if f"{prefix}__q_sqi" in table:
        q = table[f"{prefix}__q_sqi"].to_numpy(float)
        ok = table[f"{prefix}__q_ok"].to_numpy(bool) if f"{prefix}__q_ok" in table else np.isfinite(q)
        return np.where(ok, q, 0.0)
    if f"{prefix}__q_ok" in table:
        return table[f"{prefix}__q_ok"].to_numpy(float)
    return np.ones(len(table))


class StressDetector:
    """Stress from wearables, per window and as consensus alerts (chapter 50_stress_system).

    Parameters
    ----------
    window_s, step_s : float, default 30, 10
        Window length and step (seconds). Windows end on multiples of ``step_s``.
    block_s : float, default 60
        Features are computed every ``block_s`` seconds of data (a multiple of ``step_s``);
        in streaming this is the decision delay.
    context_s : float, default 30
        Data before a block that its features may use (filter run-up).
    baseline : {"first", "rolling", "rest", "all", "none"}, default "first"
        Per-person calibration (see the module docstring); "first", "rolling" and "none"
        can stream.
    baseline_s : float, default 300
        Length of the calibration period for ``baseline="first"`` (and the wait before the
        first decision with ``"rolling"``).
    rolling_s : float, default 900
        The adaptive baseline's span for ``baseline="rolling"``.
    model : {"temporal", "early", "forest", "attention"}, default "temporal"
        The fused model; ``seq_len`` windows for "temporal". "forest" is an early fusion
        with a random forest (200 trees, at least 5 windows per leaf).
    modality_dropout : float, default 0.2
        Training-time modality dropout of the fused model.
    k, on, off, min_duration_s, refractory_s, min_quality
        The consensus rule (:class:`~mmlab.systems.alerts.ConsensusAlerter`).
    streams : mapping, optional
        Modality -> stream names (default: :func:`default_streams` of each recording).
    label_map : mapping, optional
        Phase name -> "stress"/"rest" (default :data:`DEFAULT_LABEL_MAP`).
    purity : float, default 0.9
        A window is labelled only when one phase covers this share of it.
    min_coverage : float, default 0.8
        Share of a window a stream must cover for its features (else that modality is absent).
    context_modalities : sequence of str, default ("acc", "temp")
        Modalities that feed the fused model but do not vote: wrist motion is a confound
        (walking and laughing move the wrist more than a stress test does) and skin
        temperature reacts over minutes. On ``stress_protocol`` (leave-one-subject-out), ACC
        alone detected no episode at 3.5 false alerts per hour.
    calibration_folds : int, default 3
        The temperatures of the detectors and of the fused model are fitted on out-of-fold
        probabilities, with the training subjects split into this many groups.
    random_state : int, default 0

    Examples
    --------
    >>> from mmlab import synth
    >>> cohort = synth.stress_protocol(n_subjects=4, fast=True, seed=1)
    >>> det = StressDetector(baseline_s=60, block_s=30, model="early").fit([cohort[s] for s in ("S01", "S02", "S03")])
    >>> probs = det.predict_proba(cohort["S04"])
    >>> "ecg" in det.modalities_, bool(probs["fused"].between(0, 1).any())
    (True, True)
    """

    def __init__(self, window_s: float = 30.0, step_s: float = 10.0, block_s: float = 60.0,
                 context_s: float = 30.0, baseline: str = "first", baseline_s: float = 300.0,
                 rolling_s: float = 900.0, model: str = "temporal", seq_len: int = 4, modality_dropout: float = 0.2,
                 epochs: int = 60, k: int = 2, on: float = 0.7, off: float = 0.5,
                 min_duration_s: float = 30.0, refractory_s: float = 300.0, min_quality: float = 0.5,
                 streams: Mapping[str, Sequence[str]] | None = None,
                 label_map: Mapping[str, str] | None = None, purity: float = 0.9,
                 min_coverage: float = 0.8, calibration_folds: int = 3,
                 context_modalities: Sequence[str] = ("acc", "temp"), random_state: int = 0):
        self.init_params = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.window_s = check_positive(window_s, "window_s", unit="seconds")
        self.step_s = check_positive(step_s, "step_s", unit="seconds")
        self.block_s = check_positive(block_s, "block_s", unit="seconds")
        if abs(self.block_s / self.step_s - round(self.block_s / self.step_s)) > 1e-9:
            raise SchemaError(f"block_s ({block_s}) must be a multiple of step_s ({step_s})")
        self.context_s = check_number(context_s, "context_s", low=0.0, unit="seconds")
        self.baseline = check_option(baseline, "baseline", ("first", "rolling", "rest", "all", "none"))
        self.baseline_s = check_positive(baseline_s, "baseline_s", unit="seconds")
        self.rolling_s = check_positive(rolling_s, "rolling_s", unit="seconds")
        if self.rolling_s < 2 * self.step_s:
            raise SchemaError(f"rolling_s ({rolling_s}) must span at least two steps ({2 * self.step_s} s)")
        self.model = check_option(model, "model", ("temporal", "early", "forest", "attention"))
        self.seq_len = check_int(seq_len, "seq_len", low=1)
        self.modality_dropout = check_number(modality_dropout, "modality_dropout", low=0.0, high=0.9)
        self.epochs = check_int(epochs, "epochs", low=1)
        self.alert_params = dict(k=k, on=on, off=off, min_duration_s=min_duration_s,
                                 refractory_s=refractory_s, min_quality=min_quality)
        ConsensusAlerter(**self.alert_params)  # validates them now, not at the first alert
        self.streams = None if streams is None else {str(p): [n] if isinstance(n, str) else list(n)
                                                     for p, n in streams.items()}
        self.label_map = dict(DEFAULT_LABEL_MAP if label_map is None else label_map)
        self.purity = check_number(purity, "purity", low=0.5, high=1.0)
        self.min_coverage = check_number(min_coverage, "min_coverage", low=0.0, high=1.0)
        self.calibration_folds = check_int(calibration_folds, "calibration_folds", low=2)
        self.context_modalities = tuple(str(m) for m in context_modalities)
        self.random_state = int(random_state)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "StressDetector":
        """A detector from a parameter mapping (the CLI's ``--set``); an unknown name is a
        clear error that lists the known ones."""
        return cls(**check_params(cls, params, error=SchemaError))

    # ---------------------------------------------------------------- features
    def _featurizer(self, rec: Recording) -> _Featurizer:
        streams = self.streams if self.streams is not None else default_streams(rec)
        streams = {p: [n for n in names if n in rec.streams] for p, names in streams.items()}
        streams = {p: n for p, n in streams.items() if n}
        if not streams:
            raise SchemaError(f"recording {rec.subject!r} has none of the streams {self.streams}")
        return _Featurizer(streams, self.window_s, self.step_s, self.block_s, self.context_s,
                           self.min_coverage)

    def window_table(self, rec: Recording) -> pd.DataFrame:
        """Raw per-window features of one recording (block-wise, as a stream would see them),
        with ``label`` (stress / rest / None)."""
        if not isinstance(rec, Recording):
            raise SchemaError(f"expected a Recording, got {type(rec).__name__}")
        fz = self._featurizer(rec)
        lo, hi = _recording_span(rec)
        used = {n: _Series.whole(rec[n], pad_to=hi) for names in fz.streams.values() for n in names}
        blocks = [fz.block(used, b, rec.subject, rec.meta) for b in fz.block_ends(lo, hi)]
        table = _within(pd.concat(blocks, ignore_index=True), lo, hi)
        table.insert(3, "label", window_labels(rec, table["start"], table["end"], self.label_map, self.purity))
        return table

    def tables(self, cohort: Cohort | Iterable[Recording], scheduler: str | None = None,
               progress: bool = False) -> pd.DataFrame:
        """:meth:`window_table` of every recording, one task per subject (``scheduler``:
        see :func:`mmlab.parallel.map_tasks`)."""
        recs = list(cohort)
        if not recs:
            raise SchemaError("the cohort is empty")
        out = map_tasks(_subject_task, [(self, r) for r in recs], scheduler=scheduler, progress=progress,
                        desc="features")
        return pd.concat([t for t, _ in out], ignore_index=True)

    # ---------------------------------------------------------------- calibration
    def _normalise(self, table: pd.DataFrame) -> pd.DataFrame:
        """Per-subject calibration of the feature columns; ``calibrated`` marks usable rows."""
        out = _fill_undefined(table)
        cols = [c for c in self.features_ if c in out.columns]
        out["calibrated"] = True
        if self.baseline == "none":
            return out
        for subj, idx in out.groupby("subject").groups.items():
            rows = out.loc[idx]
            if self.baseline in ("first", "rolling"):
                valid = rows[cols].notna().any(axis=1).to_numpy()
                if not valid.any():
                    out.loc[idx, "calibrated"] = False
                    continue
                t0 = rows["start"].to_numpy()[valid][0]
                ref = (rows["end"] <= t0 + self.baseline_s).to_numpy()
                out.loc[idx, "calibrated"] = ~ref
                if self.baseline == "rolling":
                    out.loc[idx, cols] = self._rolling_z(rows[cols], ref)
                    continue
            elif self.baseline == "rest":
                ref = (rows["label"] == "rest").to_numpy()
            else:
                ref = np.ones(len(rows), bool)
            base = rows.loc[ref, cols]
            mu, sd = base.mean(), base.std(ddof=0)
            sd = sd.where(sd > 1e-9 * (mu.abs() + 1), np.nan)
            # a feature constant in the baseline takes the training cohort's spread; one
            # with no baseline value cannot be calibrated (NaN: its modality is absent)
            out.loc[idx, cols] = (rows[cols] - mu) / sd.fillna(self.global_sd_[cols])
        return out

    def _rolling_z(self, vals: pd.DataFrame, first: np.ndarray) -> pd.DataFrame:
        """One subject's windows (consecutive, in time order) z-scored against the windows of
        the last ``rolling_s`` seconds, itself included. Where that spread is zero (a constant
        feature) the spread of the first ``baseline_s`` seconds, else the training cohort's,
        is used. Only past windows are read, so the streaming path computes the same values."""
        n = max(2, int(round(self.rolling_s / self.step_s)))
        mu = vals.rolling(n, min_periods=1).mean()
        sd = vals.rolling(n, min_periods=2).std(ddof=0)
        sd0 = vals[first].std(ddof=0)
        sd0 = sd0.where(sd0 > 1e-9 * (vals[first].mean().abs() + 1), np.nan).fillna(self.global_sd_[vals.columns])
        ok = sd > 1e-9 * (mu.abs() + 1)
        return (vals - mu) / sd.where(ok, sd0, axis=1)

    # ---------------------------------------------------------------- inputs
    def _modality_matrix(self, table: pd.DataFrame, m: str) -> tuple[np.ndarray, np.ndarray]:
        X = table[self.columns_[m]].to_numpy(float, copy=True)
        ok = np.isfinite(X).all(axis=1)
        if f"{m}__q_ok" in table:
            ok &= table[f"{m}__q_ok"].fillna(False).to_numpy(bool)
        X = np.where(ok[:, None], X, np.nan)
        return X, ok

    def _inputs(self, table: pd.DataFrame):
        X, mask = {}, {}
        for m in self.modalities_:
            X[m], mask[m] = self._modality_matrix(table, m)
        return X, mask

    def _sequences(self, table: pd.DataFrame, X: dict, mask: dict):
        """``(n, seq_len, d)`` windows ending at each row (same subject, consecutive rows)."""
        L = self.seq_len
        subj = table["subject"].to_numpy()
        pos = table.groupby("subject").cumcount().to_numpy()
        n = len(table)
        Xs = {m: np.full((n, L, a.shape[1]), np.nan) for m, a in X.items()}
        Ms = {m: np.zeros((n, L), bool) for m in X}
        rows = np.arange(n)
        for lag in range(L):
            src = rows - lag
            ok = (pos >= lag) & (subj[np.maximum(src, 0)] == subj)
            for m in X:
                Xs[m][ok, L - 1 - lag] = X[m][src[ok]]
                Ms[m][ok, L - 1 - lag] = mask[m][src[ok]]
        return Xs, Ms

    def _fused_model(self):
        from mmlab import fusion

        rs = self.random_state
        if self.model == "early":
            from sklearn.linear_model import LogisticRegression

            return fusion.EarlyFusion(LogisticRegression(max_iter=2000, class_weight="balanced"))
        if self.model == "forest":
            from sklearn.ensemble import RandomForestClassifier

            return fusion.EarlyFusion(RandomForestClassifier(200, min_samples_leaf=5, class_weight="balanced",
                                                             n_jobs=1, random_state=rs),
                                      modality_dropout=self.modality_dropout, random_state=rs)
        if self.model == "attention":
            return fusion.AttentionFusion(modality_dropout=self.modality_dropout, epochs=self.epochs,
                                          class_weight="balanced", random_state=rs)
        return fusion.TemporalFusion(modality_dropout=self.modality_dropout, epochs=self.epochs,
                                     class_weight="balanced", random_state=rs)

    def _fused_inputs(self, table, X, mask):
        if self.model == "temporal":
            return self._sequences(table, X, mask)
        return X, mask

    # ---------------------------------------------------------------- fit
    def fit(self, data: Cohort | Iterable[Recording] | pd.DataFrame, scheduler: str | None = None,
            progress: bool = False) -> "StressDetector":
        """Fit on recordings (or on a table from :meth:`tables`)."""
        from sklearn.linear_model import LogisticRegression


        table = data if isinstance(data, pd.DataFrame) else self.tables(data, scheduler, progress)
        feats = [c for c in table.columns if "__" in c and "__q_" not in c]
        mods = list(dict.fromkeys(c.split("__")[0] for c in feats))
        self.columns_ = {m: [c for c in feats if c.startswith(m + "__")] for m in mods}
        self.features_ = feats
        sd = table[feats].std(ddof=0)
        self.global_sd_ = sd.where(sd > 0, 1.0)
        norm = self._normalise(table)
        labelled = norm["label"].isin(CLASSES).to_numpy() & norm["calibrated"].to_numpy(bool)
        if not labelled.any():
            raise SchemaError("no labelled, calibrated windows to train on (are there stress and "
                              "rest phases after the calibration period?)")
        y_all = norm["label"].to_numpy()
        present_classes = set(y_all[labelled])
        if present_classes != set(CLASSES):
            raise SchemaError(f"training windows hold only {sorted(present_classes)}; need both "
                              f"{list(CLASSES)} (a subject with no stress phase cannot train alone)")
        # Modalities with enough labelled windows present
        self.modalities_ = mods
        X, mask = self._inputs(norm)
        self.modalities_ = [m for m in mods if mask[m][labelled].sum() >= 10]
        if not self.modalities_:
            raise SchemaError("no modality has 10 or more usable labelled windows")
        X = {m: X[m] for m in self.modalities_}
        mask = {m: mask[m] for m in self.modalities_}
        subjects = np.array(sorted(norm.loc[labelled, "subject"].unique()))
        groups = norm["subject"].to_numpy()
        folds = _subject_folds(subjects, self.calibration_folds, self.random_state)
        y = np.where(y_all == "stress", 1, 0)
        mods = [m for m in self.modalities_ if len(set(y[labelled & mask[m]])) == 2]
        self.modalities_ = mods
        self.voters_ = [m for m in mods if m not in self.context_modalities]
        if not self.voters_:
            raise SchemaError(f"no modality can vote: the usable ones {mods} are all context "
                              f"modalities {list(self.context_modalities)}")
        Xf, Mf = self._fused_inputs(norm, {m: X[m] for m in mods}, {m: mask[m] for m in mods})
        anyp = np.any([mask[m] for m in mods], axis=0)

        def detector(m, rows):
            return LogisticRegression(max_iter=2000, class_weight="balanced", C=0.5).fit(X[m][rows], y[rows])

        def fused_on(rows):
            model = self._fused_model()
            return model.fit({m: v[rows] for m, v in Xf.items()}, y_all[rows],
                             mask={m: v[rows] for m, v in Mf.items()})

        # Temperatures from out-of-fold probabilities (subjects held out together), so every
        # training subject calibrates and the final models still see every subject.
        oof = {m: np.full(len(norm), np.nan) for m in self.voters_}
        oof_fused = np.full((len(norm), 2), np.nan)
        for held in folds:
            out = np.isin(groups, held)
            for m in self.voters_:
                rows, test = labelled & ~out & mask[m], labelled & out & mask[m]
                if test.any() and len(set(y[rows])) == 2:
                    oof[m][test] = detector(m, rows).predict_proba(X[m][test])[:, 1]
            rows, test = np.flatnonzero(labelled & ~out & anyp), np.flatnonzero(labelled & out & anyp)
            if len(test) and len(set(y_all[rows])) == 2:
                model = fused_on(rows)
                pr = model.predict_proba({m: v[test] for m, v in Xf.items()}, mask={m: v[test] for m, v in Mf.items()})
                oof_fused[test] = pr[:, [list(model.classes_).index(c) for c in CLASSES]]
        self.detectors_, self.temperatures_ = {}, {}
        for m in self.voters_:
            self.detectors_[m] = detector(m, labelled & mask[m])
            ok = np.isfinite(oof[m])
            self.temperatures_[m] = _temperature(np.c_[1 - oof[m][ok], oof[m][ok]], y[ok])
        rows = np.flatnonzero(labelled & anyp)
        self.fused_ = fused_on(rows)
        ok = np.isfinite(oof_fused[:, 0])
        self.fused_temperature_ = _temperature(oof_fused[ok], y[ok])
        self.n_train_windows_ = int(labelled.sum())
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "fused_"):
            raise SchemaError("this StressDetector is not fitted: call fit(cohort) or StressDetector.load(folder)")

    # ---------------------------------------------------------------- predict
    def predict_table(self, table: pd.DataFrame) -> pd.DataFrame:
        """Probabilities for a feature table from :meth:`window_table` (one or more subjects)."""
        self._check_fitted()
        missing = [c for c in self.features_ if c not in table.columns]
        table = table.copy()
        for c in missing:  # a device this recording lacks: its modality is absent
            table[c] = np.nan
        norm = self._normalise(table)
        X, mask = self._inputs(norm)
        calibrated = norm["calibrated"].to_numpy(bool)
        out = table[["subject", "start", "end", "label"]].copy().reset_index(drop=True)
        n = len(table)
        for m in self.voters_:
            p = np.full(n, np.nan)
            rows = mask[m] & calibrated
            if rows.any():
                raw = self.detectors_[m].predict_proba(X[m][rows])
                p[rows] = self.temperatures_[m].transform_proba(raw)[:, 1]
            out[f"p_{m}"] = p
            out[f"present_{m}"] = rows
            out[f"quality_{m}"] = _quality(table.reset_index(drop=True), m)
        Xf, Mf = self._fused_inputs(norm, X, mask)
        anyp = np.any([mask[m] for m in self.modalities_], axis=0) & calibrated
        fused = np.full(n, np.nan)
        rows = np.flatnonzero(anyp)
        if len(rows):
            p = self.fused_.predict_proba({m: v[rows] for m, v in Xf.items()},
                                          mask={m: v[rows] for m, v in Mf.items()})
            p = self.fused_temperature_.transform_proba(p)
            fused[rows] = p[:, list(self.fused_.classes_).index("stress")]
        out["fused"] = fused
        return out

    def predict_proba(self, rec: Recording) -> pd.DataFrame:
        """Per-window probabilities of one recording (see the module docstring)."""
        return self.predict_table(self.window_table(rec))

    def alerts_from_table(self, probs: pd.DataFrame, t_end: float | None = None, **override) -> list[Alert]:
        """Consensus alerts from a :meth:`predict_proba` table of one recording (windows are
        decided at their end time). ``override`` changes the rule's parameters."""
        params = {**self.alert_params, **override}
        al = ConsensusAlerter(**params)
        for t, p, present, kw in _rows(probs, self.voters_):
            al.update(t, p, present, **kw)
        al.finish(t_end if t_end is not None else (float(probs["end"].max()) if len(probs) else None))
        return list(al.alerts)

    def alerts(self, rec: Recording, **override) -> list[Alert]:
        """Consensus alerts of one recording (the batch path)."""
        probs = self.predict_proba(rec)
        return self.alerts_from_table(probs, t_end=_recording_span(rec)[1], **override)

    # ---------------------------------------------------------------- streaming
    def stream(self, chunks: Iterable[tuple[float, Mapping[str, Stream]]], subject: str = "stream",
               wait_s: float = 2.0, meta: Mapping | None = None) -> Iterator[dict]:
        """Consume ``(arrival_time, {stream_name: Stream piece})`` chunks as a device delivers
        them; yield events as they happen.

        Events are dicts: ``{"event": "window", ...}`` for each decided window (its
        probabilities, as :meth:`predict_proba` rows) and ``{"event": "alert_raised" |
        "alert_ended", "alert": Alert.to_dict()}``. A block is decided once the arrival
        clock passes its end by ``wait_s``; data arriving later than that counts as missing.
        A stream that stops delivering is absent from the windows it misses (it never votes
        there) and votes again once it is back. With every piece delivered within
        ``wait_s``, the events equal the batch path's (:meth:`predict_proba`,
        :meth:`alerts`).
        """
        state = self.streamer(subject, wait_s, meta)
        for t, pieces in chunks:
            yield from state.push(float(t), pieces)
        yield from state.finish()

    def streamer(self, subject: str = "stream", wait_s: float = 2.0, meta: Mapping | None = None) -> "StressStream":
        """The state of one stream, fed chunk by chunk with ``push(t, pieces)`` and closed with
        ``finish()`` (each returns an iterator of events); :meth:`stream` drives one."""
        self._check_fitted()
        if self.baseline not in ("first", "rolling", "none"):
            raise SchemaError(f"baseline={self.baseline!r} needs the whole recording; streaming "
                              "calibrates on the past only (baseline='first', 'rolling' or 'none')")
        return StressStream(self, subject, check_number(wait_s, "wait_s", low=0.0, unit="seconds"),
                            dict(meta or {}))

    # ---------------------------------------------------------------- save / load
    def save(self, folder: str | Path) -> Path:
        """A versioned folder: ``manifest.json`` (format, mmlab version, modalities, features,
        classes, thresholds, temperatures) and ``model.pkl``."""
        self._check_fitted()
        manifest = {
            "classes": list(CLASSES),
            "modalities": self.modalities_, "voters": self.voters_, "features": self.features_,
            "params": {k: v for k, v in vars(self).items() if not k.endswith("_") and k != "alert_params"},
            "alert_params": self.alert_params,
            "temperatures": {m: float(t.temperature_) for m, t in self.temperatures_.items()},
            "fused_temperature": float(self.fused_temperature_.temperature_),
        }
        return save_pickled(self, folder, FORMAT, manifest)

    @classmethod
    def load(cls, folder: str | Path) -> "StressDetector":
        """Load a folder written by :meth:`save`; another format or mmlab version is an error."""
        return load_pickled(cls, folder, FORMAT, "a stress model", "mmlab stress train",
                            lambda det, mf: det.modalities_ == mf["modalities"])


def _subject_folds(subjects: np.ndarray, n_folds: int, seed: int) -> list[np.ndarray]:
    """Subjects shuffled (seeded) into ``min(n_folds, n)`` groups held out together."""
    order = np.random.default_rng(seed).permutation(subjects)
    return [f for f in np.array_split(order, min(n_folds, len(order))) if len(f)]


def _temperature(proba: np.ndarray, y: np.ndarray):
    """A temperature fitted on out-of-fold ``(rest, stress)`` probabilities; 1 (no change)
    when there are fewer than 20 of them or one class only."""
    from mmlab.evaluate import TemperatureScaler

    ts = TemperatureScaler()
    if len(y) >= 20 and len(set(y)) == 2:
        return ts.fit_proba(proba, y, classes=[0, 1])
    ts.temperature_ = 1.0
    return ts


def _rows(probs: pd.DataFrame, modalities: Sequence[str]):
    """(t, proba, present, quality, fused) per decided window, for ConsensusAlerter.update."""
    P = probs[[f"p_{m}" for m in modalities]].to_numpy(float)
    A = probs[[f"present_{m}" for m in modalities]].to_numpy(bool)
    Q = probs[[f"quality_{m}" for m in modalities]].to_numpy(float)
    for i, t in enumerate(probs["end"].to_numpy(float)):
        if not np.isfinite(probs["fused"].iat[i]) and not np.isfinite(P[i]).any():
            continue  # not decided (calibration period, nothing present)
        yield (t, dict(zip(modalities, P[i])), dict(zip(modalities, A[i])),
               {"quality": dict(zip(modalities, Q[i])), "fused": float(probs["fused"].iat[i])})


# --------------------------------------------------------------------------- streaming
class StressStream:
    """One recording being streamed (:meth:`StressDetector.streamer`): one buffer per stream
    (the last block plus its context), the windows needed for calibration and sequences,
    and the consensus state machine. ``push(t, pieces)`` and ``finish()`` return the events
    they cause (see :meth:`StressDetector.stream`)."""

    def __init__(self, det: StressDetector, subject: str, wait_s: float, meta: dict):
        self.det, self.subject, self.wait_s, self.meta = det, subject, wait_s, meta
        self.series: dict[str, _Series] = {}
        self.next_block: float | None = None
        self.t_first: float | None = None
        self.t_last = -math.inf
        self.alerter = ConsensusAlerter(**det.alert_params)
        self.history = pd.DataFrame()

    def push(self, t: float, pieces: Mapping[str, Stream]):
        for name, piece in pieces.items():
            if piece.rate is None:
                continue  # irregular streams (IBI) are not used
            if name not in self.series:
                self.series[name] = _Series(piece, piece.start)
            self.series[name].add(piece)
            if piece.modality != "audio":
                self.t_first = piece.start if self.t_first is None else min(self.t_first, piece.start)
                self.t_last = max(self.t_last, self.series[name].end)
        if self.next_block is None and self.t_first is not None:
            self.next_block = float(math.floor(self.t_first / self.det.block_s) + 1) * self.det.block_s
        while self.next_block is not None and t >= self.next_block + self.wait_s:
            yield from self._decide(self.next_block, min(self.next_block, self.t_last))
            self.next_block += self.det.block_s

    def finish(self):
        while self.next_block is not None and self.next_block - self.det.block_s < self.t_last:
            yield from self._decide(self.next_block, self.t_last, last=True)
            self.next_block += self.det.block_s
        for a in self.alerter.finish(self.t_last if self.t_last > -math.inf else None):
            yield {"event": "alert_ended", "alert": a.to_dict()}

    def _decide(self, block_end: float, pad_to: float, last: bool = False):
        det = self.det
        for ser in self.series.values():
            if ser.proto.modality != "audio":
                ser.pad(pad_to)
        rec = Recording(self.subject, [ser.proto for ser in self.series.values()])
        fz = det._featurizer(rec)
        used = {n: self.series[n] for names in fz.streams.values() for n in names}
        block = _within(fz.block(used, block_end, self.subject, self.meta), self.t_first,
                        self.t_last if last else math.inf)
        horizon = block_end - fz.window_s - fz.context_s
        if not len(block):  # a window longer than the data so far: nothing to decide yet
            for ser in self.series.values():
                ser.trim(horizon)
            return
        block.insert(3, "label", None)
        n_new = len(block)
        self.history = pd.concat([self.history, block], ignore_index=True) if len(self.history) else block
        probs = det.predict_table(self.history).iloc[len(self.history) - n_new:]
        # keep the calibration windows and the windows the next sequences need
        keep_tail = det.seq_len + int(round(det.block_s / det.step_s))
        if det.baseline == "rolling":
            keep_tail += int(round(det.rolling_s / det.step_s))
        if det.baseline in ("first", "rolling"):
            feats = [c for c in det.features_ if c in self.history]
            valid = self.history[feats].notna().any(axis=1).to_numpy()
            t0 = self.history["start"].to_numpy()[valid][0] if valid.any() else math.inf
            base = (self.history["end"] <= t0 + det.baseline_s).to_numpy() | ~valid.cumsum().astype(bool)
        else:
            base = np.zeros(len(self.history), bool)
        tail = np.arange(len(self.history)) >= len(self.history) - keep_tail
        self.history = self.history[base | tail].reset_index(drop=True)
        for _, r in probs.iterrows():
            yield {"event": "window", **{k: (None if isinstance(v, float) and math.isnan(v) else v)
                                          for k, v in r.items()}}
        for t, p, present, kw in _rows(probs, det.voters_):
            for a in self.alerter.update(t, p, present, **kw):
                yield {"event": "alert_ended" if a.end is not None else "alert_raised", "alert": a.to_dict()}
        for ser in self.series.values():
            ser.trim(horizon)


def stream_chunks(rec: Recording, chunk_s: float = 1.0, *, jitter_s: float = 0.0,
                  drop: Mapping[str, tuple[float, float]] | None = None, seed: int = 0,
                  ) -> Iterator[tuple[float, dict[str, Stream]]]:
    """A recording delivered as a device would: every ``chunk_s`` seconds, the new samples of
    each regular stream, arriving ``0..jitter_s`` seconds late (in order of arrival; each
    stream's pieces stay in order, as a device's sequence numbers keep them).

    ``drop`` maps a stream name to ``(t0, t1)``: that stream delivers nothing in between (a
    dropout; the batch path sees the same data only if the recording has NaN there).
    """
    chunk_s = check_positive(chunk_s, "chunk_s", unit="seconds")
    rng = np.random.default_rng(seed)
    drop = dict(drop or {})
    lo, hi = _recording_span(rec)
    events = []
    for s in rec.streams.values():
        if s.rate is None:
            continue
        edges = np.arange(math.floor(s.start / chunk_s) * chunk_s, s.end + chunk_s, chunk_s)
        last = -math.inf  # a device delivers each stream in order: lateness never reorders it
        for a, b in zip(edges[:-1], edges[1:]):
            piece = s.slice(a, b)
            if not piece.n_samples:
                continue
            if s.name in drop and drop[s.name][0] <= a < drop[s.name][1]:
                continue
            last = max(last, b + rng.uniform(0, jitter_s) if jitter_s else b)
            events.append((last, s.name, piece))
    events.sort(key=lambda e: e[0])
    for t, name, piece in events:
        yield t, {name: piece}


# ----------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class SubjectSource:
    """One subject of a dataset folder, read only when a task needs it (memory stays
    bounded by one subject per worker; saved mmlab cohorts are memory-mapped)."""

    format: str
    root: str
    subject: str

    def load(self) -> Recording:
        if self.format == "mmlab-cohort":
            return Recording.load(Path(self.root) / f"sub-{self.subject}", mmap=True)
        if self.format == "stress_predict":
            from mmlab.io.empatica import read_stress_predict

            return read_stress_predict(self.root, subjects=[self.subject])[self.subject]
        if self.format == "wesad":
            from mmlab.io.wesad import read_wesad_subject

            return read_wesad_subject(Path(self.root) / self.subject)
        raise SchemaError(f"unknown source format {self.format!r}")


def open_recordings(path: str | Path, subjects: Iterable[str] | None = None) -> list[SubjectSource]:
    """The subjects of a dataset folder the stress system can read: a saved mmlab cohort
    (``mmlab data make``), Stress-Predict (``Raw_data/SXX``) or WESAD (``SX/SX.pkl``)."""
    from mmlab.io.describe import detect_format

    root = Path(path).expanduser()
    fmt = detect_format(root)
    if fmt == "mmlab-cohort":
        info = json.loads((root / "dataset_description.json").read_text())
        if not info.get("complete", True):
            raise SchemaError(f"{root}: the cohort is incomplete (its writing was interrupted)")
        ids = [str(x) for x in info.get("subjects", [])]
    elif fmt == "stress_predict":
        from mmlab.io.empatica import stress_predict_subjects

        ids = stress_predict_subjects(root)
    elif fmt == "wesad":
        from mmlab.io.wesad import wesad_subjects

        ids = wesad_subjects(root)
    else:
        raise SchemaError(f"{root} holds {fmt!r} data; the stress system reads a saved mmlab cohort, "
                          "Stress-Predict or WESAD")
    if subjects is not None:
        want = [str(x) for x in subjects]
        unknown = sorted(set(want) - set(ids))
        if unknown:
            raise SchemaError(f"{root}: no subject(s) {unknown}; it has {ids}")
        ids = want
    if not ids:
        raise SchemaError(f"{root}: no subjects")
    return [SubjectSource(fmt, str(root), i) for i in ids]


def _recording(item) -> Recording:
    return item.load() if isinstance(item, SubjectSource) else item


# -------------------------------------------------------------------------- evaluation
def _subject_task(args):
    det, item = args
    rec = _recording(item)
    table = det.window_table(rec)
    lo, hi = _recording_span(rec)
    return table, {"subject": rec.subject, "episodes": stress_episodes(rec, det.label_map), "span": (lo, hi)}


def _fold_task(args):
    params, table, subject = args
    det = StressDetector(**params)
    train = table[table["subject"] != subject]
    det.fit(train)
    return det.predict_table(table[table["subject"] == subject].reset_index(drop=True))


def _window_scores(probs: pd.DataFrame, column: str = "fused") -> dict:
    from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

    sel = probs["label"].isin(CLASSES).to_numpy() & np.isfinite(probs[column].to_numpy(float))
    y = (probs.loc[sel, "label"] == "stress").to_numpy(int)
    p = probs.loc[sel, column].to_numpy(float)
    out = {"n_windows": int(sel.sum()), "balanced_accuracy": float("nan"), "macro_f1": float("nan"),
           "auroc": float("nan")}
    if len(y) and len(set(y)) == 2:
        out["balanced_accuracy"] = float(balanced_accuracy_score(y, p >= 0.5))
        out["macro_f1"] = float(f1_score(y, p >= 0.5, average="macro"))
        out["auroc"] = float(roc_auc_score(y, p))
    return out


@dataclass
class StressEvaluation:
    """Leave-one-subject-out results of a :class:`StressDetector` (from :func:`evaluate_loso`).

    ``windows`` holds every subject's held-out probabilities (:meth:`StressDetector.predict_table`
    columns); ``info`` each subject's stress episodes and recording span; alert rules are
    re-run on the stored probabilities, so sweeping them costs no refitting.
    """

    windows: pd.DataFrame
    info: dict
    modalities: list
    alert_params: dict
    #: set by :func:`select_loso`: the settings chosen for each held-out subject and every
    #: candidate's per-subject scores
    selection: dict | None = None

    def _alerts(self, probs: pd.DataFrame, rule: str, params: dict, t_end: float) -> list[Alert]:
        if rule == "consensus":
            mods = self.modalities
            cols = probs
        else:
            col = "fused" if rule == "fused" else f"p_{rule}"
            cols = pd.DataFrame({"end": probs["end"], "fused": probs["fused"], f"p_{rule}": probs[col],
                                 f"present_{rule}": np.isfinite(probs[col].to_numpy(float)),
                                 f"quality_{rule}": 1.0})
            mods = [rule]
            params = {**params, "k": 1}
        al = ConsensusAlerter(**params)
        for t, p, present, kw in _rows(cols, mods):
            al.update(t, p, present, **kw)
        al.finish(t_end)
        return list(al.alerts)

    def events(self, rule: str = "consensus", per_subject: bool = False, **params) -> dict | pd.DataFrame:
        """Event-level scores pooled over subjects: ``event_recall``, ``latency_median_s``,
        ``false_alerts_per_hour`` (over the non-stress time after each subject's calibration
        period). ``rule``: "consensus", "fused" (threshold the fused probability, with the
        same hysteresis, duration and refractory period) or a modality name (that modality
        alone). ``params`` override the alert rule."""
        from mmlab.evaluate import event_metrics

        params = {**self.alert_params, **params}
        rows = []
        for subj, probs in self.windows.groupby("subject", sort=True):
            lo, hi = self.info[subj]["span"]
            decided = probs.loc[np.isfinite(probs["fused"].to_numpy(float)), "start"]
            t_cal = float(decided.min()) if len(decided) else hi
            eps = [(a, b) for a, b in self.info[subj]["episodes"] if b > t_cal]
            quiet = max(hi - t_cal - sum(b - max(a, t_cal) for a, b in eps), 0.0)
            alerts = self._alerts(probs, rule, params, hi)
            m = event_metrics(alerts, eps, non_stress_time_s=quiet)
            rows.append({"subject": subj, **{k: v for k, v in m.items() if k != "latencies_s"},
                         "latencies_s": m["latencies_s"]})
        table = pd.DataFrame(rows)
        if per_subject:
            return table
        lat = [x for v in table["latencies_s"] for x in v]
        quiet = float(table["non_stress_time_s"].sum())
        n_ep = int(table["n_episodes"].sum())
        return {"event_recall": float(table["n_detected"].sum() / n_ep) if n_ep else float("nan"),
                "latency_median_s": float(np.median(lat)) if lat else float("nan"),
                "false_alerts_per_hour": float(table["n_false_alerts"].sum() / (quiet / 3600)) if quiet else float("nan"),
                "n_episodes": n_ep, "n_detected": int(table["n_detected"].sum()),
                "n_false_alerts": int(table["n_false_alerts"].sum()), "non_stress_hours": quiet / 3600}

    def per_subject(self) -> pd.DataFrame:
        """Window-level scores (fused probability, threshold 0.5) and event counts per subject."""
        rows = [{"subject": s, **_window_scores(p)} for s, p in self.windows.groupby("subject", sort=True)]
        ev = self.events(per_subject=True)[["subject", "n_episodes", "n_detected", "n_false_alerts"]]
        return pd.DataFrame(rows).merge(ev, on="subject")

    def summary(self) -> dict:
        """Window-level (pooled, and mean / minimum over subjects) and event-level figures."""
        per = self.per_subject()
        pooled = _window_scores(self.windows)
        out = {"balanced_accuracy": float(per["balanced_accuracy"].mean()),
               "balanced_accuracy_min_subject": float(per["balanced_accuracy"].min()),
               "balanced_accuracy_sd": float(per["balanced_accuracy"].std(ddof=0)),
               "macro_f1": float(per["macro_f1"].mean()), "auroc": float(per["auroc"].mean()),
               "auroc_pooled": pooled["auroc"], "n_subjects": len(per), "n_windows": pooled["n_windows"]}
        out.update(self.events())
        return out

    def operating_curve(self, rules: Sequence[str] | None = None, k: Sequence[int] = (1, 2, 3),
                        on: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9),
                        min_duration_s: Sequence[float] = (0, 30, 60), progress: bool = False) -> pd.DataFrame:
        """Event recall, median latency and false alerts per hour as the rule's ``k``,
        ``on`` threshold (``off = on - 0.2``) and minimum duration vary; one row per setting.
        ``rules``: "consensus" (all ``k``), "fused" and single modalities (``k`` = 1);
        ``progress`` shows a tqdm bar over the rules."""
        from tqdm.auto import tqdm

        rules = ["consensus", "fused", *self.modalities] if rules is None else list(rules)
        rows = []
        for rule in tqdm(rules, desc="rules", disable=not progress, leave=False):
            for kk in (k if rule == "consensus" else (1,)):
                for th in on:
                    for T in min_duration_s:
                        m = self.events(rule, k=kk, on=th, off=max(th - 0.2, 0.0), min_duration_s=T)
                        rows.append({"rule": rule, "k": kk, "on": th, "min_duration_s": T,
                                     **{c: m[c] for c in ("event_recall", "latency_median_s",
                                                          "false_alerts_per_hour")}})
        return pd.DataFrame(rows)

    def best_single_at_recall(self, recall: float, curve: pd.DataFrame | None = None) -> dict:
        """The single-modality rule with the fewest false alerts per hour among those whose
        event recall is at least ``recall`` (NaN figures when none reaches it)."""
        curve = self.operating_curve(rules=self.modalities) if curve is None else curve
        ok = curve[(curve["rule"].isin(self.modalities)) & (curve["event_recall"] >= recall - 1e-9)]
        if not len(ok):
            return {"rule": None, "false_alerts_per_hour": float("nan"), "event_recall": float("nan")}
        best = ok.sort_values(["false_alerts_per_hour", "latency_median_s"]).iloc[0]
        return best.to_dict()

    def plot_operating_curve(self, curve: pd.DataFrame | None = None, ax=None):
        """False alerts per hour against event recall, one marker per rule setting (colour:
        consensus / fused / each single modality; size: median latency). Returns the axes."""
        import matplotlib.pyplot as plt

        curve = self.operating_curve() if curve is None else curve
        ax = ax or plt.subplots(figsize=(6, 4))[1]
        for rule, part in curve.groupby("rule", sort=False):
            lat = part["latency_median_s"].fillna(part["latency_median_s"].max() or 60)
            ax.scatter(part["event_recall"], part["false_alerts_per_hour"], s=10 + lat / 5, alpha=0.6,
                       label=rule, marker="*" if rule == "consensus" else "o")
        ax.set_xlabel("event recall (stress episodes detected)")
        ax.set_ylabel("false alerts per hour")
        ax.set_title("operating points (marker size: median latency)")
        ax.legend(fontsize=7, ncol=2)
        return ax

    def select_rule(self, target_recall: float = 0.9, grid: pd.DataFrame | None = None,
                    rule: str = "consensus") -> dict:
        """Choose the alert rule's ``k``, ``on`` and minimum duration *nested*: for each
        subject, the setting with the fewest false alerts per hour among those reaching
        ``target_recall`` on the *other* subjects (ties: lower latency), applied to that
        subject. Returns the pooled figures of the held-out subjects, the settings chosen
        (the most frequent is the one to deploy) and ``per_subject``: each subject's episodes,
        detections and false alerts under the setting chosen for it."""
        from collections import Counter

        target_recall = check_number(target_recall, "target_recall", low=0.0, high=1.0)
        subjects = sorted(self.windows["subject"].unique())
        settings = self._grid(rule) if grid is None else grid
        per = {}  # setting -> per-subject events table
        for st in settings:
            per[st] = self.events(rule, per_subject=True, **self._params(rule, st)).set_index("subject")
        chosen, rows = [], []
        for s in subjects:
            best = None
            for st, tab in per.items():
                other = tab.drop(index=s)
                n_ep = other["n_episodes"].sum()
                recall = other["n_detected"].sum() / n_ep if n_ep else float("nan")
                fa = other["n_false_alerts"].sum() / (other["non_stress_time_s"].sum() / 3600)
                lat = [x for v in other["latencies_s"] for x in v]
                key = (fa, float(np.median(lat)) if lat else math.inf)
                if recall >= target_recall - 1e-9 and (best is None or key < best[0]):
                    best = (key, st)
            if best is None:  # nothing reaches the target: the most sensitive setting
                best = (None, max(per, key=lambda st: per[st].drop(index=s)["n_detected"].sum()))
            chosen.append(best[1])
            rows.append(per[best[1]].loc[s])
        held = pd.DataFrame(rows)
        per_subject = [{"subject": s, **{c: int(r[c]) for c in ("n_episodes", "n_detected", "n_false_alerts")},
                        **self._params(rule, st)} for s, r, st in zip(subjects, rows, chosen)]
        lat = [x for v in held["latencies_s"] for x in v]
        quiet = float(held["non_stress_time_s"].sum())
        n_ep = int(held["n_episodes"].sum())
        deploy = Counter(chosen).most_common(1)[0][0]
        return {"rule": rule, "event_recall": float(held["n_detected"].sum() / n_ep) if n_ep else float("nan"),
                "latency_median_s": float(np.median(lat)) if lat else float("nan"),
                "false_alerts_per_hour": float(held["n_false_alerts"].sum() / (quiet / 3600)) if quiet else float("nan"),
                "n_false_alerts": int(held["n_false_alerts"].sum()), "n_detected": int(held["n_detected"].sum()),
                "n_episodes": n_ep, "settings": self._params(rule, deploy),
                "settings_agreement": Counter(chosen).most_common(1)[0][1] / len(chosen),
                "per_subject": per_subject}

    def _grid(self, rule: str):
        ks = (1, 2, 3) if rule == "consensus" else (1,)
        return [(k, on, T) for k in ks for on in (0.6, 0.7, 0.8, 0.9) for T in (0, 30, 60, 120)]

    @staticmethod
    def _params(rule: str, st) -> dict:
        k, on, T = st
        return {"k": int(k), "on": float(on), "off": float(max(on - 0.2, 0.0)), "min_duration_s": float(T)}




def _stats_task(args):
    item, grid = args
    rec = _recording(item)
    g = grid[grid["subject"] == rec.subject]
    stats = FT.window_stats(rec, g["start"].to_numpy(), g["end"].to_numpy())
    cols = [c for c in stats.columns if "__" in c]
    sd = stats[cols].std(ddof=0)
    stats[cols] = (stats[cols] - stats[cols].mean()) / sd.where(sd > 0, 1.0)
    return pd.concat([g[["subject", "start", "end", "label"]].reset_index(drop=True),
                      stats[cols].add_prefix("ref_")], axis=1)


def reference_loso(data: Cohort | Iterable[Recording], windows: pd.DataFrame, scheduler: str | None = None,
                   progress: bool = False, random_state: int = 0) -> pd.DataFrame:
    """The plain baseline the stress system must beat, scored on the system's own windows.

    A random forest (200 trees, scikit-learn defaults) on raw window statistics
    (:func:`mmlab.features.window_stats` of every sampled stream: mean, sd, min, max per
    channel), each z-scored within its subject over all of that subject's windows (label
    free but non-causal: it sees the whole session), trained leave-one-subject-out on the
    other subjects' labelled windows. ``windows`` is :attr:`StressEvaluation.windows`: the
    same window grid, and each subject is scored (threshold 0.5) on the windows where the
    system has a fused probability, so the two are paired. Returns one row per subject:
    ``subject``, ``n_windows``, ``balanced_accuracy``, ``macro_f1``, ``auroc``.
    """
    from sklearn.ensemble import RandomForestClassifier

    grid = windows[["subject", "start", "end", "label"]]
    subjects = set(grid["subject"])
    recs = [r for r in data if r.subject in subjects]
    parts = map_tasks(_stats_task, [(r, grid) for r in recs], scheduler=scheduler, progress=progress,
                      desc="reference features")
    table = pd.concat(parts, ignore_index=True)
    cols = [c for c in table.columns if c.startswith("ref_")]
    # a stream one subject lacks would be NaN everywhere for it: those windows are unusable
    usable = table["label"].isin(CLASSES).to_numpy() & table[cols].notna().all(axis=1).to_numpy()
    rows = []
    for subj in sorted(table["subject"].unique()):
        train = usable & (table["subject"] != subj).to_numpy()
        model = RandomForestClassifier(200, n_jobs=1, random_state=random_state)
        model.fit(table.loc[train, cols].to_numpy(), table.loc[train, "label"].to_numpy())
        mine = windows[windows["subject"] == subj].reset_index(drop=True)
        test = (table["subject"] == subj).to_numpy()
        p = np.full(test.sum(), np.nan)
        ok = table.loc[test, cols].notna().all(axis=1).to_numpy()
        if ok.any():
            p[ok] = model.predict_proba(table.loc[test, cols].to_numpy()[ok])[:, list(model.classes_).index("stress")]
        scored = mine.assign(reference=np.where(mine["fused"].notna(), p, np.nan))
        rows.append({"subject": subj, **_window_scores(scored, "reference")})
    return pd.DataFrame(rows)


def evaluate_loso(detector: StressDetector, data: Cohort | Iterable[Recording], scheduler: str | None = None,
                  progress: bool = False) -> StressEvaluation:
    """Leave-one-subject-out evaluation of a detector's settings (one fit per held-out subject).

    Features are computed once per subject (one task each), then each fold (one task per
    subject) fits a fresh detector on the other subjects and predicts the held-out one.
    ``scheduler``: see :func:`mmlab.parallel.map_tasks` (serial by default; "local" or a
    scheduler address for dask.distributed); results do not depend on it.
    """
    recs = list(data)
    if len(recs) < 3:
        raise SchemaError(f"leave-one-subject-out needs at least 3 subjects, got {len(recs)}")
    out = map_tasks(_subject_task, [(detector, r) for r in recs], scheduler=scheduler, progress=progress,
                    desc="features")
    table = pd.concat([t for t, _ in out], ignore_index=True)
    info = {i["subject"]: i for _, i in out}
    with_stress = [s for s, i in info.items() if i["episodes"]]
    if not with_stress:
        raise SchemaError("no subject has a stress phase: nothing to detect")
    params = dict(detector.init_params)
    folds = map_tasks(_fold_task, [(params, table, subj) for subj in info], scheduler=scheduler,
                      progress=progress, desc="folds")
    windows = pd.concat(folds, ignore_index=True)
    mods = sorted({c[2:] for c in windows.columns if c.startswith("p_")},
                  key=lambda m: [c for c in windows.columns].index(f"p_{m}"))
    for m in mods:  # a fold may lack a modality another fold has
        windows[f"present_{m}"] = windows[f"present_{m}"].fillna(False).astype(bool)
    return StressEvaluation(windows, info, mods, dict(detector.alert_params))


def select_loso(candidates: Mapping[str, StressDetector | Mapping[str, Any]], data: Cohort | Iterable[Recording],
                metric: str = "balanced_accuracy", scheduler: str | None = None,
                progress: bool = False) -> StressEvaluation:
    """Choose between detector settings by leave-one-subject-out only, and score the choice.

    Every candidate (a :class:`StressDetector` or its parameters, e.g. :data:`PRESETS`) is
    run through :func:`evaluate_loso`. For each held-out subject the candidate with the
    best mean ``metric`` over the *other* subjects' held-out scores is chosen, and that
    subject's windows come from it, so the returned evaluation scores the selection
    procedure, not the winner picked with hindsight (the same nesting as
    :meth:`StressEvaluation.select_rule`). ``evaluation.selection`` holds ``chosen``
    (subject -> candidate), ``final`` (the candidate best over all subjects: what to train
    on the whole cohort) and ``scores`` (candidate -> subject -> ``metric``).
    """
    if not candidates:
        raise SchemaError("select_loso needs at least one candidate")
    if metric not in ("balanced_accuracy", "macro_f1", "auroc"):
        raise SchemaError(f"metric must be balanced_accuracy, macro_f1 or auroc, got {metric!r}")
    recs = list(data)
    evs = {}
    for name, cand in candidates.items():
        det = cand if isinstance(cand, StressDetector) else StressDetector.from_params(cand)
        evs[name] = evaluate_loso(det, recs, scheduler=scheduler, progress=progress)
    scores = {n: ev.per_subject().set_index("subject")[metric] for n, ev in evs.items()}
    subjects = sorted(set().union(*(sc.index for sc in scores.values())))

    def best(exclude):
        means = {n: float(sc.drop(exclude, errors="ignore").mean()) for n, sc in scores.items()}
        means = {n: v for n, v in means.items() if np.isfinite(v)}
        return max(means, key=means.get) if means else next(iter(evs))

    chosen = {s: best([s]) for s in subjects}
    windows = pd.concat([evs[chosen[s]].windows.loc[lambda w: w["subject"] == s] for s in subjects],
                        ignore_index=True)
    first = evs[next(iter(evs))]
    mods = list(dict.fromkeys(m for ev in evs.values() for m in ev.modalities))
    for m in mods:
        if f"present_{m}" in windows:
            windows[f"present_{m}"] = windows[f"present_{m}"].fillna(False).astype(bool)
    info = {s: i for ev in evs.values() for s, i in ev.info.items()}
    selection = {"metric": metric, "chosen": chosen, "final": best([]),
                 "scores": {n: {s: float(v) for s, v in sc.items()} for n, sc in scores.items()}}
    return StressEvaluation(windows, info, mods, dict(first.alert_params), selection)
