"""mmlab.represent.cca and .retrieval: planted canonical correlations, retrieval, deep CCA on a
nonlinear relation, CCA variates as fused features, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from mmlab.errors import SignalError
from mmlab.represent import (DeepCCA, LinearCCA, canonical_correlations, cca_closed_form, cca_loss,
                             chance_recall, make_correlated_views, make_fusion_task, make_nonlinear_views,
                             recall_at_k, retrieval_ranks, retrieval_report)


# ------------------------------------------------------------------ linear CCA
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_cca_recovers_planted_correlations_on_held_out_data(seed):
    X, Y = make_correlated_views(2000, correlations=(0.9, 0.5), dim_x=6, dim_y=5, seed=seed)
    model = LinearCCA(n_components=2).fit(X[:1000], Y[:1000])
    r = model.canonical_correlations(X[1000:], Y[1000:])
    assert r[0] == pytest.approx(0.9, abs=0.05)
    assert r[1] == pytest.approx(0.5, abs=0.07)


def test_a_third_component_finds_nothing_where_nothing_is_shared():
    X, Y = make_correlated_views(2000, correlations=(0.9, 0.5), seed=3)
    r = LinearCCA(n_components=3).fit(X[:1000], Y[:1000]).canonical_correlations(X[1000:], Y[1000:])
    assert abs(r[2]) < 0.1


def test_closed_form_agrees_with_scikit_learn():
    X, Y = make_correlated_views(1500, correlations=(0.8, 0.6, 0.3), seed=4)
    ours = cca_closed_form(X, Y, 3, reg=0.0)
    lib = LinearCCA(3).fit(X, Y)
    np.testing.assert_allclose(ours["corrs"], lib.correlations_, atol=0.01)
    u = (X - ours["mean_x"]) @ ours["Wx"]
    v = (Y - ours["mean_y"]) @ ours["Wy"]
    np.testing.assert_allclose(canonical_correlations(u, v), ours["corrs"], atol=1e-6)
    np.testing.assert_allclose(u.std(0, ddof=1), 1.0, atol=1e-6)  # whitened: unit variance


def test_variates_are_standardised_and_in_both_orders():
    X, Y = make_correlated_views(500, seed=5)
    model = LinearCCA(2).fit(X, Y)
    u, v = model.transform(X, Y)
    np.testing.assert_allclose(u.mean(0), 0.0, atol=1e-9)
    np.testing.assert_allclose(v.std(0), 1.0, atol=1e-9)
    np.testing.assert_allclose(model.transform(X), u)
    np.testing.assert_allclose(model.transform_y(Y), v)


# ------------------------------------------------------------------- retrieval
def test_retrieval_known_answers():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((50, 4))
    assert recall_at_k(a, a, ks=(1,))[1] == 1.0
    np.testing.assert_array_equal(retrieval_ranks(a, a), 0)
    shifted = np.roll(a, 1, axis=0)  # every partner replaced by another row
    assert recall_at_k(a, shifted, ks=(1,))[1] == 0.0
    const = np.ones((50, 4))  # all ties: ranked last, never a hit
    assert recall_at_k(const, const, ks=(1, 10))[10] == 0.0
    assert chance_recall(200, 10) == pytest.approx(0.05)
    assert chance_recall(5, 10) == 1.0


def test_cca_retrieval_beats_chance():
    X, Y = make_correlated_views(1400, correlations=(0.95, 0.9, 0.8), dim_x=8, dim_y=7, seed=0)
    model = LinearCCA(3).fit(X[:1000], Y[:1000])
    u, v = model.transform(X[1000:], Y[1000:])
    rep = retrieval_report(u, v, names=("x", "y"))
    # measured: recall@1 ~0.07 and recall@10 ~0.41 both ways; chance 0.0025 and 0.025
    for d in ("x->y", "y->x"):
        assert rep[f"{d}@10"] >= 10 * rep["chance@10"]
        assert rep[f"{d}@1"] >= 10 * rep["chance@1"]
    # and a model fitted on shuffled pairs has nothing to retrieve with
    perm = np.random.default_rng(1).permutation(1000)
    bad = LinearCCA(3).fit(X[:1000], Y[:1000][perm])
    assert retrieval_report(*bad.transform(X[1000:], Y[1000:]))["a->b@10"] < 4 * rep["chance@10"]


# ------------------------------------------------------------------ deep CCA
def test_cca_loss_known_answers():
    import torch

    g = torch.Generator().manual_seed(0)
    h = torch.randn(2000, 3, generator=g, dtype=torch.float64)
    mix = torch.randn(3, 3, generator=g, dtype=torch.float64)
    assert float(cca_loss(h, h @ mix, reg=1e-6)) == pytest.approx(-3.0, abs=1e-3)
    other = torch.randn(2000, 3, generator=g, dtype=torch.float64)
    assert float(cca_loss(h, other)) > -0.2
    a = torch.randn(256, 4, generator=g, requires_grad=True)
    loss = cca_loss(a, a.detach() + 0.5 * torch.randn(256, 4, generator=g), n_components=2)
    loss.backward()
    assert torch.isfinite(a.grad).all() and float(a.grad.abs().sum()) > 0


def test_deep_cca_sees_a_nonlinear_relation_linear_cca_cannot():
    X, Y = make_nonlinear_views(3000, seed=0)
    lin = LinearCCA(2).fit(X[:2000], Y[:2000]).canonical_correlations(X[2000:], Y[2000:])
    deep = DeepCCA(2, random_state=0).fit(X[:2000], Y[:2000]).canonical_correlations(X[2000:], Y[2000:])
    # measured on seeds 0-3: linear |r1| <= 0.07; deep r1 0.93-0.94, r2 0.87-0.90
    assert abs(lin[0]) < 0.15
    assert deep[0] > 0.85 and deep[1] > 0.7


def test_deep_cca_is_deterministic_by_seed():
    X, Y = make_nonlinear_views(600, seed=1)
    kw = dict(hidden=(16,), epochs=15, batch_size=200, patience=100)
    a = DeepCCA(2, random_state=0, **kw).fit(X, Y).transform(X[:20])
    b = DeepCCA(2, random_state=0, **kw).fit(X, Y).transform(X[:20])
    c = DeepCCA(2, random_state=1, **kw).fit(X, Y).transform(X[:20])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(np.abs(a), np.abs(c))


def test_deep_cca_stops_early_and_keeps_history():
    X, Y = make_correlated_views(600, correlations=(0.9,), dim_x=3, dim_y=3, seed=2)
    model = DeepCCA(1, hidden=(8,), epochs=400, patience=5, random_state=0).fit(X, Y)
    assert model.n_epochs_ < 400 and model.n_epochs_ == len(model.history_)
    assert model.best_epoch_ == model.n_epochs_ - 1 - 5


# ------------------------------------------------------------ fused features
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cca_variates_are_better_fused_features_than_either_view(seed):
    """CCA fitted on 1000 unlabelled pairs; a classifier trained on only 40 labels."""
    X, Y, y = make_fusion_task(5000, noise=1.0, seed=seed)
    unl, lab, test = slice(0, 1000), slice(1000, 1040), slice(1040, None)
    cca = LinearCCA(1).fit(X[unl], Y[unl])
    u, v = cca.transform(X, Y)

    def acc(F):
        return LogisticRegression(max_iter=1000).fit(F[lab], y[lab]).score(F[test], y[test])

    raw_x = acc(StandardScaler().fit(X[unl]).transform(X))
    raw_y = acc(StandardScaler().fit(Y[unl]).transform(Y))
    fused = acc(np.hstack([u, v]))
    # measured: raw views 0.51-0.68, one variate 0.70-0.75, both variates 0.76-0.80
    assert fused >= max(raw_x, raw_y) + 0.08
    assert fused >= max(acc(u), acc(v)) + 0.01


# ------------------------------------------------------------------ bad input
def test_bad_input_raises_signal_error():
    X, Y = make_correlated_views(100, seed=0)
    Xn = X.copy()
    Xn[7, 2] = np.nan
    with pytest.raises(SignalError, match="row 7"):
        LinearCCA(2).fit(Xn, Y)
    with pytest.raises(SignalError, match="paired"):
        LinearCCA(2).fit(X, Y[:-1])
    with pytest.raises(SignalError, match="n_components"):
        LinearCCA(9).fit(X, Y)
    with pytest.raises(SignalError, match="fit"):
        LinearCCA(2).transform(X)
    model = LinearCCA(2).fit(X, Y)
    with pytest.raises(SignalError, match="features"):
        model.transform(X[:, :3])
    with pytest.raises(SignalError, match="correlations"):
        make_correlated_views(10, correlations=(1.2,))
    with pytest.raises(SignalError, match="n_components"):
        DeepCCA(3, out_dim=2).fit(X, Y)


# ------------------------------------------------------------------ real data
def test_stress_predict_first_shared_direction_is_wrist_motion(data_dir):
    """Chapter 21's real-data finding: on an E4, pulse-wave amplitude and acceleration share most."""
    from mmlab import io
    from mmlab.represent import concat_pairs, window_views, zscore_by_group

    root = data_dir / "stress_predict"
    if not root.is_dir():
        pytest.skip("stress_predict sample not in MMLAB_DATA_DIR")
    cohort = io.read_stress_predict(root)
    views = {"cardiac": ["wrist_hr", "wrist_bvp"], "skin": ["wrist_eda", "wrist_temp", "wrist_acc"]}
    pairs = concat_pairs([window_views(rec, views, window_s=60.0, step_s=30.0) for rec in cohort])
    g = pairs.meta["group"].to_numpy()
    A, B = zscore_by_group(pairs.a, g), zscore_by_group(pairs.b, g)
    fit = np.isin(g, sorted(set(g))[:6])
    model = LinearCCA(2).fit(A[fit], B[fit])
    r = model.canonical_correlations(A[~fit], B[~fit])
    assert r[0] > 0.4  # measured 0.56 on S08-S10 (in-sample 0.70)
    u, v = model.transform(A, B)
    sa = [abs(np.corrcoef(A[:, j], u[:, 0])[0, 1]) for j in range(A.shape[1])]
    sb = [abs(np.corrcoef(B[:, j], v[:, 0])[0, 1]) for j in range(B.shape[1])]
    assert pairs.a_names[int(np.argmax(sa))] == "wrist_bvp_std"
    assert pairs.b_names[int(np.argmax(sb))] == "wrist_acc_std"
