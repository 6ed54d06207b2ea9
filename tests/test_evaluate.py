"""mmlab.evaluate: subject-wise splits, metrics, calibration and robustness, with known answers."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from mmlab import evaluate as E
from mmlab.errors import SchemaError
from mmlab.fusion import EarlyFusion, LateFusion


# ------------------------------------------------------------------------------ splits
def test_loso_tests_each_subject_once():
    groups = np.array(["s2", "s1", "s3", "s1", "s2", "s3", "s3"])
    folds = list(E.loso_splits(groups))
    assert len(folds) == 3
    tested = np.concatenate([te for _, te in folds])
    assert sorted(tested.tolist()) == list(range(7))
    for tr, te in folds:
        assert len(set(groups[te])) == 1 and not set(groups[tr]) & set(groups[te])
        assert len(tr) + len(te) == 7
    assert [groups[te][0] for _, te in folds] == ["s1", "s2", "s3"]
    with pytest.raises(SchemaError, match="at least 2 subjects"):
        list(E.loso_splits(["a", "a"]))


def test_group_kfold_keeps_subjects_together():
    groups = np.repeat(np.arange(10), 5)
    folds = list(E.group_kfold_splits(groups, n_splits=3, random_state=1))
    sizes = sorted(len(np.unique(groups[te])) for _, te in folds)
    assert sizes == [3, 3, 4]
    assert sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(50))
    for tr, te in folds:
        assert not set(groups[tr]) & set(groups[te])
    again = list(E.group_kfold_splits(groups, n_splits=3, random_state=1))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    with pytest.raises(SchemaError, match="n_splits"):
        list(E.group_kfold_splits(groups, n_splits=11))


# ------------------------------------------------------------------------------ metrics
def test_macro_f1_and_balanced_accuracy_known_answers():
    y, pred = [0, 0, 1, 1], [0, 1, 1, 1]
    # F1(class 0) = 2/3 (precision 1, recall 1/2), F1(class 1) = 4/5 (precision 2/3, recall 1)
    assert E.macro_f1(y, pred) == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert E.balanced_accuracy(y, pred) == pytest.approx(0.75)


def test_ece_known_answers():
    # every prediction 80 % confident, half of them right: ECE = |0.5 - 0.8| = 0.3
    proba = np.tile([0.8, 0.2], (100, 1))
    y = np.array([0, 1] * 50)
    assert E.expected_calibration_error(y, proba) == pytest.approx(0.3)
    # two bins: 0.6-confident all right (gap 0.4), 0.9-confident all right (gap 0.1), equal counts
    proba = np.array([[0.6, 0.4]] * 10 + [[0.1, 0.9]] * 10)
    y = np.array([0] * 10 + [1] * 10)
    assert E.expected_calibration_error(y, proba, n_bins=10) == pytest.approx(0.25)
    # a confidence of exactly 1 lands in the last bin (closed on the right)
    curve = E.reliability_curve([0], np.array([[1.0, 0.0]]), n_bins=5)
    assert curve["count"].tolist() == [0, 0, 0, 0, 1] and curve["gap"].iloc[-1] == 0


def test_ece_near_zero_for_calibrated_probabilities():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, (20000, 3))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = (rng.uniform(size=(20000, 1)) > np.cumsum(p, axis=1)).sum(axis=1)  # y ~ p
    assert E.expected_calibration_error(y, p) < 0.015


def test_string_labels_need_matching_classes():
    proba = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert E.expected_calibration_error(["cat", "dog"], proba, classes=["cat", "dog"]) == pytest.approx(0.15)
    with pytest.raises(SchemaError, match="not among classes"):
        E.expected_calibration_error(["cat", "cow"], proba, classes=["cat", "dog"])


def _sample_labels(p, rng):
    return (rng.uniform(size=(len(p), 1)) > np.cumsum(p, axis=1)).sum(axis=1)


def test_temperature_scaling_recovers_a_known_temperature():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 1.5, (6000, 4))
    y = _sample_labels(np.exp(z) / np.exp(z).sum(1, keepdims=True), rng)
    over = 3.0 * z  # an over-confident model: true logits scaled by 3
    ts = E.TemperatureScaler().fit(over, y)
    assert ts.temperature_ == pytest.approx(3.0, rel=0.05)
    before = E.expected_calibration_error(y, np.exp(over) / np.exp(over).sum(1, keepdims=True))
    after = E.expected_calibration_error(y, ts.transform(over))
    assert after < before / 3 and after < 0.03
    assert np.array_equal(ts.transform(over).argmax(1), over.argmax(1))  # classes unchanged
    under = E.TemperatureScaler().fit(z / 2.0, y)  # under-confident: T = 0.5
    assert under.temperature_ == pytest.approx(0.5, rel=0.05)


def test_temperature_stops_at_the_bound_when_validation_is_perfect():
    z = np.array([[2.0, 0.0], [0.0, 2.0]] * 20)
    y = np.array([0, 1] * 20)
    ts = E.TemperatureScaler().fit(z, y)
    assert ts.at_bound_ and ts.temperature_ == pytest.approx(0.05, rel=1e-3)
    y[0] = 1  # one mistake: now there is an optimum inside the bounds
    ts = E.TemperatureScaler().fit(z, y)
    assert not ts.at_bound_ and 0.1 < ts.temperature_ < 20


def test_temperature_scaling_from_probabilities():
    rng = np.random.default_rng(2)
    z = rng.normal(0, 1.0, (4000, 3))
    y = _sample_labels(np.exp(z) / np.exp(z).sum(1, keepdims=True), rng)
    p = np.exp(2 * z) / np.exp(2 * z).sum(1, keepdims=True)
    ts = E.TemperatureScaler().fit_proba(p, y)
    assert ts.temperature_ == pytest.approx(2.0, rel=0.07)
    with pytest.raises(SchemaError, match="not fitted"):
        E.TemperatureScaler().transform(z)


def test_plot_reliability_returns_axes():
    matplotlib.use("Agg")
    rng = np.random.default_rng(0)
    p = rng.dirichlet([1, 1, 1], 300)
    ax = E.plot_reliability(rng.integers(0, 3, 300), p, label="random")
    assert isinstance(ax, matplotlib.axes.Axes) and "ECE" in ax.get_legend().get_texts()[0].get_text()


# ------------------------------------------------------------------------------ perturbations
def test_remove_modality_only_changes_the_mask():
    X = {"a": np.ones((4, 2)), "b": np.zeros((4, 1))}
    X2, m2 = E.remove_modality(X, None, "a")
    assert X2["a"] is X["a"] and not m2["a"].any() and m2["b"].all()
    with pytest.raises(SchemaError, match="no modality 'c'"):
        E.remove_modality(X, None, "c")


def test_noise_has_the_requested_snr():
    rng = np.random.default_rng(0)
    X = {"a": rng.normal(3.0, 2.0, (20000, 2)), "b": np.zeros((20000, 1))}
    mask = {"a": np.arange(20000) % 10 != 0}
    X2, m2 = E.add_noise(X, mask, "a", snr_db=10, random_state=1)
    noise = X2["a"] - X["a"]
    ratio = noise[mask["a"]].var(axis=0) / X["a"][mask["a"]].var(axis=0)
    np.testing.assert_allclose(ratio, 0.1, rtol=0.05)
    assert (noise[~mask["a"]] == 0).all() and np.array_equal(m2["a"], mask["a"])
    assert X2["b"] is X["b"]


def test_shift_within_subject_known_answer():
    groups = np.array(["p", "p", "p", "q", "q", "q", "q"])
    X = {"a": np.arange(7.0)[:, None], "b": np.zeros((7, 1))}
    X2, m2 = E.shift_modality(X, None, "a", 1, groups)
    assert m2["a"].tolist() == [False, True, True, False, True, True, True]
    assert X2["a"][m2["a"], 0].tolist() == [0, 1, 3, 4, 5]  # each row gets the window before
    X3, m3 = E.shift_modality(X, None, "a", -2, groups)
    assert X3["a"][m3["a"], 0].tolist() == [2, 5, 6] and m3["a"].tolist() == [1, 0, 0, 1, 1, 0, 0]
    order = np.array([2, 1, 0, 0, 1, 2, 3])  # subject p's windows stored backwards
    X4, m4 = E.shift_modality(X, None, "a", 1, groups, order=order)
    assert X4["a"][:3, 0].tolist() == [1, 2, 0] and m4["a"][:3].tolist() == [True, True, False]


# ------------------------------------------------------------------------------ cross-validation
def cohort_like(n_subjects=8, per=60, seed=0):
    """Windows of several subjects; label = sign(a0 + b0); a subject offset on every feature."""
    rng = np.random.default_rng(seed)
    g = np.repeat([f"S{i}" for i in range(n_subjects)], per)
    n = len(g)
    offset = np.repeat(rng.normal(0, 0.3, n_subjects), per)[:, None]
    X = {"a": rng.normal(size=(n, 2)) + offset, "b": rng.normal(size=(n, 2)) + offset,
         "c": rng.normal(size=(n, 2))}
    y = np.where(X["a"][:, 0] + X["b"][:, 0] - 2 * offset[:, 0] > 0, "up", "down")
    return X, y, g


def test_cross_validate_covers_every_row_and_calibrates():
    X, y, g = cohort_like()
    res = E.cross_validate(EarlyFusion(), X, y, g, calibrate=True, n_val_groups=2,
                           perturbations={"no b": lambda X, m, gg: E.remove_modality(X, m, "b")})
    assert res.proba.shape == (480, 2) and np.isfinite(res.calibrated).all()
    assert len(res.temperatures) == 8 and all(0.05 <= t <= 20 for t in res.temperatures)
    assert len(res.at_bound) == 8
    s = res.scores()
    assert s["macro_f1"] > 0.85 and 0 <= s["ece"] < 0.1
    assert res.scores(res.perturbed["no b"])["macro_f1"] < s["macro_f1"] - 0.1
    assert res.modalities == ["a", "b", "c"]


def test_compare_models_unimodal_vs_fused():
    X, y, g = cohort_like()
    table = E.compare_models({**E.unimodal_baselines(["a", "b"]), "early": EarlyFusion(),
                              "late": LateFusion()}, X, y, g)
    assert list(table.columns) == ["name", "kind", "modalities", "macro_f1", "balanced_accuracy",
                                   "ece", "train_s"]
    kinds = dict(zip(table["name"], table["kind"]))
    assert kinds == {"a": "unimodal", "b": "unimodal", "early": "fused", "late": "fused"}
    f1 = dict(zip(table["name"], table["macro_f1"]))
    assert min(f1["early"], f1["late"]) > max(f1["a"], f1["b"]) + 0.05
    assert table["macro_f1"].is_monotonic_decreasing


def test_robustness_sweep_orders_the_damage():
    X, y, g = cohort_like()
    sweep = E.robustness_sweep(EarlyFusion(), X, y, g, snr_db=(20, 0), shifts=(1,))
    assert len(sweep) == 1 + 3 * 4 and set(sweep["perturbation"]) == {"none", "remove", "noise", "shift"}
    f1 = {(r.perturbation, r.modality, -1.0 if np.isnan(r.level) else r.level): r.macro_f1
          for r in sweep.itertuples()}
    clean = f1[("none", "", -1.0)]
    assert f1[("noise", "a", 20.0)] > f1[("noise", "a", 0.0)]          # more noise, more damage
    assert f1[("remove", "a", -1.0)] < clean - 0.1                      # a carries the label
    assert abs(f1[("remove", "c", -1.0)] - clean) < 0.03                # c is noise
    assert f1[("shift", "b", 1.0)] < clean - 0.1                        # misaligned windows hurt


def test_sweep_and_model_comparison_progress_bars(capsys):
    """progress=True shows the per-fold tqdm bar (named after the model, counting the
    subjects) and leaves the numbers unchanged; progress=False prints nothing."""
    X, y, g = cohort_like()
    n = len(np.unique(g))
    quiet = E.robustness_sweep(EarlyFusion(), X, y, g, snr_db=(0,), shifts=(1,))
    assert capsys.readouterr().err == ""
    shown = E.robustness_sweep(EarlyFusion(), X, y, g, snr_db=(0,), shifts=(1,), progress=True)
    err = capsys.readouterr().err
    assert "EarlyFusion" in err and f"/{n} " in err  # the bar (cleared at the end: leave=False)
    pd.testing.assert_frame_equal(quiet, shown)
    E.compare_models({"early": EarlyFusion()}, X, y, g, progress=True)
    assert f"/{n} " in capsys.readouterr().err


# ------------------------------------------------------------------------------ bench fusion
def test_bench_fusion_is_registered_and_builds_sequences_within_subject():
    from mmlab import bench

    assert "fusion" in bench.TOPICS
    table = pd.DataFrame({"subject": ["p"] * 4 + ["q"] * 3, "label": ["x", "", "y", "x", "y", "x", ""],
                          "a__f": np.arange(7.0), "b__g": np.arange(7.0) * 10})
    from mmlab.bench.fusion import _fusion_inputs
    X, mask, y, groups, Xs, masks, mods = _fusion_inputs(table, ["x", "y"], seq_len=3)
    assert mods == ["a", "b"] and y.tolist() == ["x", "y", "x", "y", "x"]
    assert X["a"][:, 0].tolist() == [0, 2, 3, 4, 5] and groups.tolist() == list("pppqq")
    # the last step is the labelled window; earlier steps come from the same subject only
    assert Xs["a"][:, -1, 0].tolist() == [0, 2, 3, 4, 5]
    assert masks["a"].tolist() == [[False, False, True], [True, True, True], [True, True, True],
                                   [False, False, True], [False, True, True]]
    assert Xs["a"][1, :, 0].tolist() == [0, 1, 2] and Xs["b"][4, 1:, 0].tolist() == [40, 50]


def test_paired_difference_known_answers_and_refusals():
    from scipy import stats

    ours = np.array([0.80, 0.70, 0.90, 0.75, 0.60])
    ref = np.array([0.70, 0.65, 0.80, 0.70, 0.70])
    r = E.paired_difference(ours, ref, ["a", "b", "c", "d", "e"])
    d = ours - ref
    assert r["mean_difference"] == pytest.approx(d.mean())
    assert (r["better"], r["n"]) == (4, 5)
    assert r["wilcoxon_p"] == pytest.approx(stats.wilcoxon(d).pvalue)
    lo, hi = r["ci"]
    assert d.min() <= lo < d.mean() < hi <= d.max()
    assert r["differences"]["e"] == pytest.approx(-0.10)
    same = E.paired_difference(ours, ref, random_state=0)
    assert same["ci"] == E.paired_difference(ours, ref, random_state=0)["ci"]  # seeded
    with pytest.raises(SchemaError, match=r"\['b'\]"):
        E.paired_difference([0.8, np.nan, 0.7], [0.7, 0.7, 0.6], ["a", "b", "c"])
    with pytest.raises(SchemaError, match="shapes"):
        E.paired_difference([0.8, 0.7, 0.6], [0.7, 0.6])
