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


#: Wrist streams behind the ``wrist`` columns of :func:`stress_window_table`.
WRIST_STREAMS = {"temp": "wrist_temp", "acc": "wrist_acc", "bvp": "wrist_bvp"}
#: ``wrist__*`` column -> column of :func:`mmlab.features.features_at`.
WRIST_COLUMNS = {"wrist__temp_mean": "temp__mean", "wrist__temp_slope": "temp__slope",
                 "wrist__log_motion": "acc__log_motion", "wrist__log_bvp_amp": "bvp__log_amp"}
#: Largest fraction of a window any wrist stream may miss (NaN or outside the stream).
WRIST_MAX_MISSING = 0.1


def wrist_window_features(rec, starts, ends) -> dict:
    """Wrist features per window: skin temperature mean and slope (°C, °C/s), log wrist
    motion (log sd of the change in ACC magnitude) and log BVP amplitude (log sd of the
    cleaned BVP), as columns ``wrist__temp_mean``, ``wrist__temp_slope``,
    ``wrist__log_motion``, ``wrist__log_bvp_amp`` (chapter 30_fusion_taxonomy).

    The extractors of :mod:`mmlab.features` (``temp``, ``acc``, ``bvp``;
    :func:`mmlab.features.features_at`). Device time is taken as reference time (the
    synthetic wrist clock is off by at most a few seconds, small against a 30 s window). A
    window where any of the three streams misses more than 10 % of its samples (a dropout,
    the edge of the recording), or a recording without the wrist device, gives NaN in all
    four columns, i.e. an absent modality.
    """
    from mmlab import features as FT

    out = {k: np.full(len(starts), np.nan) for k in WRIST_COLUMNS}
    if not all(s in rec for s in WRIST_STREAMS.values()):
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SignalWarnings on dropout stretches: NaN features
        t = FT.features_at(rec, starts, ends, streams=WRIST_STREAMS, min_coverage=1.0 - WRIST_MAX_MISSING,
                           options={"bvp": {"correct_artifacts": False}})
    present = np.ones(len(t), dtype=bool)
    for m in WRIST_STREAMS:
        present &= t[f"{m}__q_missing"].to_numpy() <= WRIST_MAX_MISSING
    for k, c in WRIST_COLUMNS.items():
        present &= np.isfinite(t[c].to_numpy())
    for k, c in WRIST_COLUMNS.items():
        out[k] = np.where(present, t[c].to_numpy(), np.nan)
    return out


def feature_modalities(table: pd.DataFrame) -> list[str]:
    """The modality prefixes of the ``"<modality>__<feature>"`` columns, in column order."""
    return list(dict.fromkeys(c.split("__")[0] for c in table.columns if "__" in c))


def stress_window_table(cohort, window_s: float = 30.0, zscore: str | None = "subject",
                        progress: bool = False) -> pd.DataFrame:
    """Per-window features of a ``stress_protocol`` cohort in four modalities (chapter
    30_fusion_taxonomy): ``ecg`` (hr_mean, sdnn, rmssd, pnn50), ``eda`` (scl_mean, scl_std,
    scr_count, scr_amp_mean) and ``resp`` (rate) from :func:`mmlab.features.window_features`
    on the chest streams, and ``wrist`` (:func:`wrist_window_features`); non-overlapping
    ``window_s`` windows, labels by majority.

    ``zscore="subject"`` standardises every feature within each subject over all of that
    subject's windows (label-free, but it uses a test subject's unlabelled windows, as
    WESAD studies do); ``None`` keeps raw units. NaN features (dropouts) stay NaN: that
    modality is absent in that window (see :func:`inputs_from_table`). ``progress=True``
    shows a tqdm bar over the subjects.
    """
    from tqdm.auto import tqdm

    from mmlab import features as FT

    if zscore not in ("subject", None):
        raise SchemaError(f"zscore must be 'subject' or None, got {zscore!r}")
    tables = []
    for rec in tqdm(cohort, desc="window features", disable=not progress):
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
