"""mmlab.diagnose: the same per-window fusion inputs for training and serving."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmlab import diagnose as D
from mmlab import synth
from mmlab.errors import SchemaError


@pytest.fixture(scope="module")
def cohort():
    return synth.make_cohort("stress_protocol", n_subjects=3, seed=3, fast=True, clock_offset_s=30.0,
                             clock_drift_ppm=400.0, missing={"wrist": 0.0})


@pytest.fixture(scope="module")
def table(cohort):
    return D.window_table(cohort, 20.0, 10.0, clocks="truth")


def test_window_table_columns_follow_streams(table):
    mods = list(dict.fromkeys(c.split("__")[0] for c in D.feature_columns(table)))
    assert mods == ["ecg", "eda", "resp", "wrist"]
    assert list(table.columns[:4]) == ["subject", "start", "end", "label"]
    assert not any("__q_" in c for c in table.columns)
    assert set(table.subject) == {"S01", "S02", "S03"}
    assert (table.groupby("subject").start.min() == 0).all()


def test_window_table_progress_bar(cohort, table, capsys):
    """progress=True: a tqdm bar counting the 3 recordings; the same table as without it."""
    shown = D.window_table(cohort, 20.0, 10.0, clocks="truth", progress=True)
    err = capsys.readouterr().err
    assert "window features" in err and "3/3" in err
    pd.testing.assert_frame_equal(shown, table)


def test_wrong_clock_moves_the_wrist_windows(cohort, table):
    """Ignoring a 30 s-scale wrist offset changes the wrist features, not the chest ones;
    passing the true clock per subject reproduces clocks='truth'."""
    naive = D.window_table(cohort, 20.0, 10.0)
    per_subject = D.window_table(cohort, 20.0, 10.0,
                                 clocks={r.subject: r.meta["clock_truth"] for r in cohort})
    pd.testing.assert_frame_equal(per_subject, table)
    w = [c for c in table.columns if c.startswith("wrist__")]
    e = [c for c in table.columns if c.startswith("ecg__")]
    assert np.allclose(naive[e].to_numpy(), table[e].to_numpy(), equal_nan=True)
    assert not np.allclose(naive[w].to_numpy(), table[w].to_numpy(), equal_nan=True)
    # with the true clock the wrist SCL tracks the chest SCL far better than without
    r_true = table[["eda__scl_mean", "wrist__scl_mean"]].corr().iloc[0, 1]
    # within-subject correlation (subjects differ in level)
    def within(t):
        z = D.standardize(t, "subject")
        return z[["eda__scl_mean", "wrist__scl_mean"]].corr().iloc[0, 1]
    assert within(table) > within(naive) + 0.1, (within(table), within(naive), r_true)


def test_missing_device_gives_nan_columns():
    c = synth.make_cohort("stress_protocol", n_subjects=4, seed=0, fast=True, missing={"wrist": 1.0})
    t = D.window_table(c, 20.0)
    assert not any(col.startswith("wrist__") for col in t.columns)
    c2 = synth.make_cohort("stress_protocol", n_subjects=2, seed=0, fast=True)
    recs = [c2[1], c[0]]  # S02 with, S01 without a wristband
    t2 = D.window_table(recs, 20.0)
    no_wrist = t2.subject == recs[1].subject
    assert t2.loc[no_wrist, "wrist__scl_mean"].isna().all() and t2.loc[~no_wrist, "wrist__scl_mean"].notna().any()
    data = D.fusion_inputs(t2)
    assert not data.mask["wrist"][data.groups == recs[1].subject].any()


def test_standardize_modes():
    t = pd.DataFrame({"subject": ["a"] * 3 + ["b"] * 3, "start": 0.0, "end": 1.0, "label": "x",
                      "m__f": [1.0, 2.0, 3.0, 10.0, 20.0, 30.0], "m__q_ok": True})
    s = D.standardize(t, "subject")
    assert np.allclose(s["m__f"], [-1, 0, 1, -1, 0, 1])
    assert s["m__q_ok"].all()
    stats = D.feature_stats(t.iloc[:3])
    g = D.standardize(t, "global", stats)
    assert np.allclose(g["m__f"], [-1, 0, 1, 8, 18, 28])
    assert D.standardize(t, "none")["m__f"].tolist() == t["m__f"].tolist()
    with pytest.raises(SchemaError, match="how"):
        D.standardize(t, "per-window")
    with pytest.raises(SchemaError, match="no column"):
        D.standardize(t.assign(n__g=1.0), "global", stats)


def test_fusion_inputs_and_subject_moments():
    rng = np.random.default_rng(0)
    n = 40
    t = pd.DataFrame({"subject": np.repeat(["a", "b"], n // 2), "start": np.tile(np.arange(n // 2), 2) * 10.0,
                      "end": 0.0, "label": np.tile(["stress", "baseline", "transient", "amusement"], n // 4),
                      "ecg__x": rng.normal(5, 3, n), "ecg__y": rng.normal(size=n), "eda__z": rng.normal(size=n)})
    t.loc[3, "eda__z"] = np.nan
    data = D.fusion_inputs(t)
    assert len(data) == 30 and set(data.y) == {"stress", "baseline", "amusement"}
    assert data.X["ecg"].shape == (30, 2) and data.modalities == ["ecg", "eda"]
    assert data.mask["eda"].sum() == 29 and data.mask["ecg"].all()
    raw = D.subject_moments(data.X, data.groups, data.mask)
    z = D.fusion_inputs(D.standardize(t, "subject"))
    mom = D.subject_moments(z.X, z.groups, z.mask)
    assert raw.loc["ecg", "mean_abs_mean"] > 2  # (|5| + |0|) / 2 and mom.loc["ecg", "mean_abs_mean"] < 0.5
    assert 0.7 < mom.loc["ecg", "mean_sd"] < 1.3
    with pytest.raises(SchemaError, match="no modality"):
        D.fusion_inputs(t, modalities=["voice"])
    with pytest.raises(SchemaError, match="labelled"):
        D.fusion_inputs(t, classes=["meditation"])
