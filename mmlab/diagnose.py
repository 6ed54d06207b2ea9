"""The same per-window fusion inputs in training and in serving, built in one place
(chapters 40_missing_robustness and 41_calibration_interpretability).

A model that scores well in the lab and poorly "in production" is most often fed
different inputs than it was trained on: features computed on windows cut on the wrong
clock, standardised another way, or a modality that carried the label only in the lab.
These helpers make every step of the input pipeline an explicit argument, so a serving
pipeline can be rebuilt with one step changed and compared with the training one:

* :func:`window_table` — a cohort's per-window features (:func:`mmlab.features.window_features`
  on chosen streams, windows on the reference clock, device clocks mapped with ``clocks``);
* :func:`feature_stats` / :func:`standardize` — z-scoring within each subject (label-free,
  as WESAD studies do), with given (e.g. training) statistics, or not at all;
* :func:`fusion_inputs` — the :mod:`mmlab.fusion` contract (``X`` per modality, presence
  ``mask``, labels ``y``, subject ``groups``) of the labelled windows; a window whose
  features of a modality hold any NaN (a dropout, a missing device) has that modality absent;
* :func:`subject_moments` — per modality, how far each subject's features are from mean 0
  and standard deviation 1: the fingerprint of per-subject standardisation.

Column names follow :mod:`mmlab.features`: ``<modality>__<feature>``; the modality is the
text before ``__``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from mmlab.errors import SchemaError
from mmlab.features import feature_columns  # re-exported: the one definition is features'
from mmlab.fusion import make_mask
from mmlab.recording import Cohort, Recording

__all__ = ["STRESS_STREAMS", "STRESS_CLASSES", "window_table", "feature_columns", "feature_stats",
           "standardize", "FusionInputs", "fusion_inputs", "subject_moments"]

#: Modalities of a ``stress_protocol`` cohort used in Part 4: chest ECG, EDA and
#: respiration on the reference clock, and the wrist's EDA on the wrist's own clock.
STRESS_STREAMS = {"ecg": "chest_ecg", "eda": "chest_eda", "resp": "chest_resp", "wrist": "wrist_eda"}

#: The four conditions of ``stress_protocol`` (transient windows are left out).
STRESS_CLASSES = ("baseline", "stress", "amusement", "meditation")


def _recordings(cohort: Cohort | Sequence[Recording]) -> list[Recording]:
    recs = list(cohort)
    if not recs or not all(isinstance(r, Recording) for r in recs):
        raise SchemaError("window_table needs a Cohort or a non-empty list of Recordings")
    return recs


def _clocks_for(rec: Recording, clocks: Any):
    """``clocks`` of one recording: None, "truth", {device: clock} or {subject: {device: clock}}."""
    if clocks is None or isinstance(clocks, str):
        return clocks
    if not isinstance(clocks, Mapping):
        raise SchemaError(f"clocks must be None, 'truth' or a mapping, got {type(clocks).__name__}")
    if rec.subject in clocks:
        return clocks[rec.subject]
    devices = {s.device for s in rec.streams.values()}
    if set(clocks) & devices or not clocks:
        return clocks
    raise SchemaError(f"clocks has no entry for subject {rec.subject!r} (keys: {sorted(clocks)[:5]}...)")


def window_table(cohort: Cohort | Sequence[Recording], window_s: float = 30.0, step_s: float | None = None,
                 *, streams: Mapping[str, str] = STRESS_STREAMS, clocks: Any = None,
                 min_coverage: float = 0.5, progress: bool = False) -> pd.DataFrame:
    """Per-window features of every recording: ``subject``, ``start``, ``end``, ``label`` and
    the ``<prefix>__<feature>`` columns of :func:`mmlab.features.window_features`.

    Windows start at 0 s on the reference clock, every ``step_s`` (default ``window_s``),
    and end with the reference device's streams (``meta["reference_device"]``), so the
    windows do not depend on ``clocks``.
    ``streams`` maps a prefix (the modality name in fusion) to a stream; a recording that
    lacks a stream (a missing device) gets NaN in that prefix's columns. ``clocks`` maps
    device time to reference time: ``None`` takes every device clock as the reference (what
    a pipeline does when nobody checked), ``"truth"`` uses each synthetic recording's
    ``meta["clock_truth"]``, ``{device: {"offset_s", "drift_ppm"}}`` one clock for all, and
    ``{subject: {device: ...}}`` one per subject (e.g. estimates from :mod:`mmlab.align`).
    Signal warnings on dropouts are silenced: those windows get NaN features. ``progress``
    shows a tqdm bar over the recordings.
    """
    from tqdm.auto import tqdm

    from mmlab import features as FT

    tables = []
    recs = list(_recordings(cohort))
    for rec in tqdm(recs, desc="recordings", disable=not progress, leave=False):
        chosen = {p: s for p, s in streams.items() if s in rec}
        if not chosen:
            continue
        ref = rec.meta.get("reference_device")
        ends = [s.end for s in rec.streams.values() if ref and s.device == ref and s.is_regular]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = FT.window_features(rec, window_s, window_s if step_s is None else step_s, t_start=0.0,
                                   t_end=max(ends) if ends else None, streams=chosen,
                                   clocks=_clocks_for(rec, clocks),
                                   min_coverage=min_coverage)
        tables.append(t[["subject", "start", "end", "label", *FT.feature_columns(t)]])
    if not tables:
        raise SchemaError(f"no recording has any of the streams {sorted(streams.values())}")
    table = pd.concat(tables, ignore_index=True)
    cols = feature_columns(table)
    order = [p for p in streams if any(c.startswith(p + "__") for c in cols)]
    cols = [c for p in order for c in cols if c.startswith(p + "__")]
    return table[["subject", "start", "end", "label", *cols]]


def feature_stats(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation of every feature column (rows ``mean``, ``sd``), NaN ignored."""
    cols = feature_columns(table)
    return pd.DataFrame({"mean": table[cols].mean(), "sd": table[cols].std()}).T


def standardize(table: pd.DataFrame, how: str = "subject", stats: pd.DataFrame | None = None) -> pd.DataFrame:
    """A copy of ``table`` with its feature columns z-scored.

    ``how="subject"``: within each subject, over all its windows (label-free; uses the
    subject's own unlabelled windows, which a deployed system also has after a while);
    ``"global"``: with ``stats`` (rows ``mean``/``sd`` of :func:`feature_stats`, e.g. the
    training set's; default: this table's); ``"none"``: unchanged. A constant column
    (sd 0 or NaN) is only centred.
    """
    if how not in ("subject", "global", "none"):
        raise SchemaError(f"how must be 'subject', 'global' or 'none', got {how!r}")
    out = table.copy()
    cols = feature_columns(table)
    if how == "none":
        return out
    if how == "subject":
        grouped = table.groupby("subject")[cols]
        sd = grouped.transform("std")
        out[cols] = (table[cols] - grouped.transform("mean")) / sd.where(sd > 0, 1.0)
        return out
    stats = feature_stats(table) if stats is None else stats
    missing = [c for c in cols if c not in stats.columns]
    if missing:
        raise SchemaError(f"stats has no column(s) {missing[:5]}; compute them with feature_stats on a "
                          "table with the same features")
    sd = stats.loc["sd", cols]
    out[cols] = (table[cols] - stats.loc["mean", cols]) / sd.where(sd > 0, 1.0)
    return out


@dataclass
class FusionInputs:
    """Labelled windows in the :mod:`mmlab.fusion` contract: ``X`` (modality -> ``(n, d)``),
    ``mask`` (modality -> presence ``(n,)``), ``y`` (labels), ``groups`` (subjects),
    ``start`` (window start, s) and ``modalities`` (in column order)."""

    X: dict[str, np.ndarray]
    mask: dict[str, np.ndarray]
    y: np.ndarray
    groups: np.ndarray
    start: np.ndarray
    modalities: list[str]

    def __len__(self) -> int:
        return len(self.y)


def fusion_inputs(table: pd.DataFrame, classes: Sequence[str] | None = STRESS_CLASSES,
                  modalities: Sequence[str] | None = None) -> FusionInputs:
    """The windows of ``table`` labelled with one of ``classes`` (None: every non-empty
    label) as fusion inputs; a modality is absent in a window where any of its features is
    NaN. ``modalities`` (default: every prefix, in column order) selects and orders them."""
    cols = feature_columns(table)
    found = list(dict.fromkeys(c.split("__", 1)[0] for c in cols))
    mods = found if modalities is None else list(modalities)
    unknown = [m for m in mods if m not in found]
    if unknown:
        raise SchemaError(f"table has no modality {unknown}; it has {found}")
    labels = table["label"].astype(str)
    keep = (labels != "") & (labels != "nan") if classes is None else labels.isin(list(classes))
    keep = keep.to_numpy()
    if not keep.any():
        raise SchemaError(f"no window is labelled with one of {list(classes or [])}")
    X = {m: table.loc[keep, [c for c in cols if c.split("__", 1)[0] == m]].to_numpy(float) for m in mods}
    return FusionInputs(X=X, mask=make_mask(X), y=labels[keep].to_numpy(), groups=table["subject"].to_numpy()[keep].astype(str),
                        start=table["start"].to_numpy(float)[keep], modalities=mods)


def subject_moments(X: Mapping[str, Any], groups: Any, mask: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Per modality: ``mean_abs_mean`` (the absolute per-subject mean of each feature,
    averaged over features and subjects) and ``mean_sd`` (the per-subject standard deviation,
    averaged likewise), over the present rows. Features z-scored within each subject give about
    0 and 1 (less than 1 when only a labelled subset of the windows is shown)."""
    g = np.asarray(groups)
    rows = []
    for m, v in X.items():
        x = np.asarray(v, float)
        present = np.ones(len(x), bool) if mask is None or m not in mask else np.asarray(mask[m], bool)
        means, sds = [], []
        for s in np.unique(g):
            xs = x[(g == s) & present]
            if len(xs) < 2:
                continue
            means.append(np.nanmean(np.abs(np.nanmean(xs, axis=0))))
            sds.append(np.nanmean(np.nanstd(xs, axis=0, ddof=1)))
        rows.append({"modality": m, "mean_abs_mean": float(np.mean(means)) if means else np.nan,
                     "mean_sd": float(np.mean(sds)) if sds else np.nan})
    return pd.DataFrame(rows).set_index("modality")
