"""Fusion tables (mmlab.fusion.tables) and the planted fusion tasks (mmlab.synth.fusion_tasks)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmlab import evaluate as E
from mmlab import fusion as FU
from mmlab.errors import SchemaError
from mmlab.fusion.tables import inputs_from_table, sequences_from_table, stress_window_table
from mmlab.synth.fusion_tasks import fusion_task


def _loso_f1(model, X, y, g):
    return E.cross_validate(model, X, y, g).scores()["macro_f1"]


def test_fusion_task_is_deterministic_and_shaped():
    X1, y1, g1 = fusion_task("coupled", n_subjects=3, windows=6, noise_features=4, seed=1)
    X2, y2, g2 = fusion_task("coupled", n_subjects=3, windows=6, noise_features=4, seed=1)
    assert {m: a.shape for m, a in X1.items()} == {"ecg": (18, 2), "acc": (18, 2), "eda": (18, 6)}
    assert all(np.array_equal(X1[m], X2[m]) for m in X1) and np.array_equal(y1, y2)
    assert list(np.unique(g1)) == ["P01", "P02", "P03"]
    # half of each subject's windows are stress
    assert all((y1[g1 == s] == "stress").sum() == 3 for s in np.unique(g1))


def test_fusion_task_rejects_bad_arguments():
    with pytest.raises(SchemaError, match="kind"):
        fusion_task("xor")
    with pytest.raises(SchemaError, match="noise_features"):
        fusion_task(noise_features=-1)


def test_coupled_task_needs_both_modalities():
    """The label is in hr - activity_sd * motion: early fusion finds it, late fusion and
    the accelerometer alone cannot."""
    X, y, g = fusion_task("coupled", n_subjects=10, windows=30, seed=0)
    early = _loso_f1(FU.EarlyFusion(), X, y, g)
    late = _loso_f1(FU.LateFusion(), X, y, g)
    acc = _loso_f1(FU.EarlyFusion(modalities=["acc"]), X, y, g)
    assert early > 0.8
    assert early - late > 0.1
    assert acc < 0.62
    # the planted direction itself separates the classes
    d = X["ecg"][:, 0] - 2.0 * X["acc"][:, 0]
    assert d[y == "stress"].mean() - d[y == "rest"].mean() > 1.5


def test_independent_task_every_modality_helps():
    """Each modality alone is useful, and fusing them beats the best one."""
    X, y, g = fusion_task("independent", n_subjects=10, windows=30, seed=0)
    uni = {m: _loso_f1(FU.EarlyFusion(modalities=[m]), X, y, g) for m in X}
    assert min(uni.values()) > 0.65
    assert _loso_f1(FU.LateFusion(), X, y, g) > max(uni.values()) + 0.03
    assert _loso_f1(FU.EarlyFusion(), X, y, g) > max(uni.values()) + 0.03


def _table():
    return pd.DataFrame({
        "subject": ["a", "a", "a", "b", "b"], "start": [0, 30, 60, 0, 30], "end": [30, 60, 90, 30, 60],
        "label": ["x", "transient", "y", "x", "y"],
        "ecg__hr": [1.0, 2.0, 3.0, 4.0, 5.0], "ecg__sdnn": [0.1, 0.2, np.nan, 0.4, 0.5],
        "eda__scl": [7.0, 8.0, 9.0, 10.0, 11.0]})


def test_inputs_from_table_masks_nan_rows_and_filters_classes():
    X, mask, y, g = inputs_from_table(_table(), ["x", "y"])
    assert list(X) == ["ecg", "eda"] and X["ecg"].shape == (4, 2) and X["eda"].shape == (4, 1)
    assert list(y) == ["x", "y", "x", "y"] and list(g) == ["a", "a", "b", "b"]
    assert mask["ecg"].tolist() == [True, False, True, True]  # subject a's 'y' window has NaN sdnn
    assert mask["eda"].all()
    with pytest.raises(SchemaError, match="subject"):
        inputs_from_table(_table().drop(columns="subject"))


def test_sequences_from_table_pads_at_subject_start():
    Xs, masks = sequences_from_table(_table(), ["x", "y"], seq_len=3)
    assert Xs["ecg"].shape == (4, 3, 2)
    # subject a's 'y' window (3rd row of a) sees both earlier windows, incl. the transient one
    assert Xs["eda"][1, :, 0].tolist() == [7.0, 8.0, 9.0]
    # subject b's first window has nothing before it; never a window of subject a
    assert masks["eda"][2].tolist() == [False, False, True]
    assert masks["eda"][3].tolist() == [False, True, True]


def test_stress_window_table_has_four_modalities():
    from mmlab import synth

    cohort = synth.make_cohort("stress_protocol", n_subjects=2, seed=0, fast=True)
    table = stress_window_table(cohort, 15.0)
    X, mask, y, g = inputs_from_table(table, ["baseline", "stress", "amusement", "meditation"])
    assert list(X) == ["ecg", "eda", "resp", "wrist"]
    assert set(y) == {"baseline", "stress", "amusement", "meditation"}
    # z-scored within subject: each subject's present features have mean ~0
    hr = table.groupby("subject")["ecg__hr_mean"].mean()
    assert np.allclose(hr, 0.0, atol=1e-9)
    raw = stress_window_table(cohort, 15.0, zscore=None)
    assert raw["ecg__hr_mean"].median() > 40  # beats per minute, not z-scores


def test_cohort_and_window_table_progress_bars_leave_results_unchanged(capsys):
    """progress=True shows a tqdm bar over the subjects (labelled, counting 2 of 2) on
    stderr and changes nothing in the data; progress=False prints nothing."""
    from mmlab import synth

    quiet = synth.make_cohort("stress_protocol", n_subjects=2, seed=0, fast=True)
    table = stress_window_table(quiet, 15.0)
    assert capsys.readouterr().err == ""
    shown = synth.make_cohort("stress_protocol", n_subjects=2, seed=0, fast=True, progress=True)
    err = capsys.readouterr().err
    assert "stress_protocol subjects" in err and "2/2" in err
    assert all(np.array_equal(a["chest_ecg"].data, b["chest_ecg"].data, equal_nan=True)
               for a, b in zip(quiet, shown))
    table2 = stress_window_table(shown, 15.0, progress=True)
    err = capsys.readouterr().err
    assert "window features" in err and "2/2" in err
    pd.testing.assert_frame_equal(table, table2)


def test_cross_val_weights_out_of_fold_and_perturbed():
    """Out-of-fold attention weights: rows sum to 1 over present modalities, an absent
    modality gets weight 0, and a perturbation only changes the test fold."""
    from mmlab.fusion.weights import cross_val_weights

    X, y, g = fusion_task("independent", n_subjects=4, windows=20, seed=0)
    mask = {m: np.ones(len(y), bool) for m in X}
    mask["acc"][::4] = False
    model = FU.AttentionFusion(epochs=5, random_state=0)
    drop_eda = {"no eda": lambda Xt, mt: E.remove_modality(Xt, mt, "eda")}
    res = cross_val_weights(model, X, y, E.loso_splits(g), mask, perturbations=drop_eda)
    w = res.weights["none"]
    assert list(w.columns) == ["ecg", "acc", "eda"] and len(w) == len(y)
    assert np.allclose(w.sum(axis=1), 1.0)
    assert (w["acc"].to_numpy()[~mask["acc"]] == 0).all()
    assert (res.weights["no eda"]["eda"] == 0).all()
    assert res.proba["none"].shape == (len(y), 2) and set(res.predictions()) <= {"rest", "stress"}
    with pytest.raises(SchemaError, match="modality_weights"):
        cross_val_weights(FU.EarlyFusion(), X, y, E.loso_splits(g))


def test_cross_val_weights_progress_bar_counts_the_folds(capsys):
    """progress=True: a tqdm bar named after the model, counting 4 of 4 folds; the weights
    are those of the run without a bar."""
    from mmlab.fusion.weights import cross_val_weights

    X, y, g = fusion_task("independent", n_subjects=4, windows=10, seed=0)
    model = FU.AttentionFusion(epochs=3, random_state=0)
    quiet = cross_val_weights(model, X, y, list(E.loso_splits(g)))
    assert capsys.readouterr().err == ""
    shown = cross_val_weights(model, X, y, list(E.loso_splits(g)), progress=True)
    err = capsys.readouterr().err
    assert "AttentionFusion" in err and "4/4" in err
    pd.testing.assert_frame_equal(quiet.weights["none"], shown.weights["none"])
