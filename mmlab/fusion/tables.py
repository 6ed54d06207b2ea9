"""From a per-window feature table to fusion inputs (chapter 30_fusion_taxonomy).

A fusion table has one row per window, the columns ``subject``, ``start``, ``end``,
``label`` and feature columns named ``"<modality>__<feature>"`` (the naming of
:func:`mmlab.features.window_features`). :func:`inputs_from_table` turns it into the
input contract of :mod:`mmlab.fusion` (``X``, ``mask``) plus ``y`` and ``groups``;
:func:`sequences_from_table` builds the ``(n, T, d)`` inputs of the temporal model.
:func:`stress_window_table` makes the four-modality table of a ``stress_protocol`` cohort
used by chapters 30-31 and ``mmlab bench fusion``.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from mmlab.errors import SchemaError
from mmlab.fusion._contract import make_mask

STRESS_STREAMS = {"ecg": "chest_ecg", "eda": "chest_eda", "resp": "chest_resp"}


def wrist_window_features(rec, starts, ends) -> dict:
    """Wrist features per window: skin temperature mean and slope (°C, °C/s), log wrist
    motion (log sd of the change in ACC magnitude) and log BVP amplitude (log sd), as
    columns ``wrist__temp_mean``, ``wrist__temp_slope``, ``wrist__log_motion``,
    ``wrist__log_bvp_amp`` (chapter 30_fusion_taxonomy).

    :mod:`mmlab.features` has no extractor for these streams yet; swap this for it when it
    has. Device time is taken as reference time (the synthetic wrist clock is off by at
    most a few seconds, small against a 30 s window); a window with any NaN sample (a
    dropout), less than 90 % coverage, or without the wrist device gives NaN, i.e. an
    absent modality.
    """
    names = ("wrist__temp_mean", "wrist__temp_slope", "wrist__log_motion", "wrist__log_bvp_amp")
    out = {k: np.full(len(starts), np.nan) for k in names}
    if not all(s in rec for s in ("wrist_temp", "wrist_acc", "wrist_bvp")):
        return out

    def samples(name):
        s = rec[name]
        x = s.data.astype(float)
        t = s.start + np.arange(len(x)) / s.rate
        return x, t

    temp, t_temp = samples("wrist_temp")
    acc, t_acc = samples("wrist_acc")
    bvp, t_bvp = samples("wrist_bvp")
    mag = np.linalg.norm(acc, axis=1)
    for w, (a, b) in enumerate(zip(starts, ends)):
        i = slice(*np.searchsorted(t_temp, [a, b]))
        j = slice(*np.searchsorted(t_acc, [a, b]))
        k = slice(*np.searchsorted(t_bvp, [a, b]))
        x, m, p = temp[i, 0], mag[j], bvp[k, 0]
        span_ok = len(x) >= 0.9 * (b - a) * rec["wrist_temp"].rate
        if not span_ok or np.isnan(x).any() or np.isnan(m).any() or np.isnan(p).any():
            continue
        out["wrist__temp_mean"][w] = x.mean()
        out["wrist__temp_slope"][w] = np.polyfit(t_temp[i] - a, x, 1)[0]
        out["wrist__log_motion"][w] = np.log(np.std(np.diff(m)) + 1e-6)
        out["wrist__log_bvp_amp"][w] = np.log(np.std(p) + 1e-6)
    return out


def feature_modalities(table: pd.DataFrame) -> list[str]:
    """The modality prefixes of the ``"<modality>__<feature>"`` columns, in column order."""
    return list(dict.fromkeys(c.split("__")[0] for c in table.columns if "__" in c))


def stress_window_table(cohort, window_s: float = 30.0, zscore: str | None = "subject") -> pd.DataFrame:
    """Per-window features of a ``stress_protocol`` cohort in four modalities (chapter
    30_fusion_taxonomy): ``ecg`` (hr_mean, sdnn, rmssd, pnn50), ``eda`` (scl_mean, scl_std,
    scr_count, scr_amp_mean) and ``resp`` (rate) from :func:`mmlab.features.window_features`
    on the chest streams, and ``wrist`` (:func:`wrist_window_features`); non-overlapping
    ``window_s`` windows, labels by majority.

    ``zscore="subject"`` standardises every feature within each subject over all of that
    subject's windows (label-free, but it uses a test subject's unlabelled windows, as
    WESAD studies do); ``None`` keeps raw units. NaN features (dropouts) stay NaN: that
    modality is absent in that window (see :func:`inputs_from_table`).
    """
    from mmlab import features as FT

    if zscore not in ("subject", None):
        raise SchemaError(f"zscore must be 'subject' or None, got {zscore!r}")
    tables = []
    for rec in cohort:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SignalWarnings on dropout stretches: NaN features
            t = FT.window_features(rec, window_s, window_s, t_start=0.0, streams=STRESS_STREAMS)
        t = t[["subject", "start", "end", "label", *FT.feature_columns(t)]].copy()
        for k, v in wrist_window_features(rec, t["start"].to_numpy(), t["end"].to_numpy()).items():
            t[k] = v
        tables.append(t)
    table = pd.concat(tables, ignore_index=True)
    if zscore == "subject":
        cols = [c for c in table.columns if "__" in c]
        grouped = table.groupby("subject")[cols]
        sd = grouped.transform("std")
        table[cols] = (table[cols] - grouped.transform("mean")) / sd.where(sd > 0, 1.0)
    return table


def inputs_from_table(table: pd.DataFrame, classes: Sequence[str] | None = None,
                      modalities: Sequence[str] | None = None):
    """``(X, mask, y, groups)`` of the rows whose label is in ``classes`` (default: every
    row with a label) (chapter 30_fusion_taxonomy).

    ``X[m]`` holds the ``"m__*"`` columns as a float array; ``mask`` comes from
    :func:`~mmlab.fusion.make_mask` (a row with any NaN feature of ``m`` has ``m`` absent);
    ``y`` the labels as strings, ``groups`` the subject ids.
    """
    for c in ("subject", "label"):
        if c not in table.columns:
            raise SchemaError(f"the table has no {c!r} column (columns: {list(table.columns)[:8]}...)")
    mods = feature_modalities(table) if modalities is None else list(modalities)
    if not mods:
        raise SchemaError("the table has no feature columns named '<modality>__<feature>'")
    keep = table["label"].notna().to_numpy() if classes is None else table["label"].isin(classes).to_numpy()
    X = {}
    for m in mods:
        cols = [c for c in table.columns if c.startswith(m + "__")]
        if not cols:
            raise SchemaError(f"the table has no columns for modality {m!r}")
        X[m] = table.loc[keep, cols].to_numpy(float)
    y = table["label"].to_numpy()[keep].astype(str)
    groups = table["subject"].to_numpy()[keep].astype(str)
    return X, make_mask(X), y, groups


def sequences_from_table(table: pd.DataFrame, classes: Sequence[str], seq_len: int,
                         modalities: Sequence[str] | None = None):
    """``(Xs, masks)`` for :class:`~mmlab.fusion.TemporalFusion`: each row kept by
    :func:`inputs_from_table` (same order) with the ``seq_len - 1`` windows before it of the
    same subject (labelled or not), ``(n, seq_len, d)``; steps before a subject's first
    window are NaN, hence absent in ``masks`` ``(n, seq_len)``."""
    if int(seq_len) < 1:
        raise SchemaError(f"seq_len must be >= 1, got {seq_len}")
    mods = feature_modalities(table) if modalities is None else list(modalities)
    full = {m: table[[c for c in table.columns if c.startswith(m + "__")]].to_numpy(float) for m in mods}
    keep = table["label"].isin(classes).to_numpy()
    subj = table["subject"].to_numpy()
    pos = table.groupby("subject").cumcount().to_numpy()
    rows = np.flatnonzero(keep)
    Xs = {m: np.full((len(rows), seq_len, a.shape[1]), np.nan) for m, a in full.items()}
    for lag in range(seq_len):
        src = rows - lag
        ok = (pos[rows] >= lag) & (subj[np.maximum(src, 0)] == subj[rows])
        for m, a in full.items():
            Xs[m][ok, seq_len - 1 - lag] = a[src[ok]]
    return Xs, make_mask(Xs)
