"""Fusion models: the input contract, shapes, masking, learning, determinism (mmlab.fusion).

Planted task: three modalities; the label is ``a[:, 0] + b[:, 0] > 0`` (it needs *two*
modalities: each alone gives about 75 % accuracy), ``c`` is noise. About a fifth of the
rows lack ``a`` and their ``a`` values are NaN: models must not read them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone

from mmlab.errors import SchemaError, SignalError
from mmlab.fusion import (AttentionFusion, EarlyFusion, GatedFusion, HybridFusion, LateFusion,
                          LowRankFusion, StackingFusion, TemporalFusion, TensorFusion,
                          TransformerFusion, check_inputs, drop_modalities, make_mask)

DEEP = dict(hidden=16, epochs=80, patience=10, batch_size=64)
FACTORIES = {
    "early": lambda: EarlyFusion(),
    "early_mdrop": lambda: EarlyFusion(modality_dropout=0.3),
    "late": lambda: LateFusion(),
    "late_log": lambda: LateFusion(combine="log"),
    "stacking": lambda: StackingFusion(modality_dropout=0.3),
    "hybrid": lambda: HybridFusion(),
    "tensor": lambda: TensorFusion(tensor_dim=4, **DEEP),
    "lmf": lambda: LowRankFusion(tensor_dim=8, **DEEP),
    "attention": lambda: AttentionFusion(**DEEP),
    "attention_mdrop": lambda: AttentionFusion(modality_dropout=0.3, **DEEP),
    "transformer": lambda: TransformerFusion(**DEEP),
    "gated": lambda: GatedFusion(**DEEP),
}


def planted(n: int, seed: int):
    rng = np.random.default_rng(seed)
    X = {"a": rng.normal(size=(n, 3)), "b": rng.normal(size=(n, 2)), "c": rng.normal(size=(n, 2))}
    y = np.where(X["a"][:, 0] + X["b"][:, 0] > 0, "yes", "no")
    mask = {"a": rng.uniform(size=n) > 0.2, "b": np.ones(n, bool), "c": np.ones(n, bool)}
    X["a"][~mask["a"]] = np.nan
    return X, y, mask


TRAIN = planted(400, 0)
TEST = planted(300, 1)


@pytest.fixture(scope="module")
def fitted():
    return {name: make().fit(*TRAIN) for name, make in FACTORIES.items()}


def _sub(D, rows):
    return {k: v[rows] for k, v in D.items()}


# ------------------------------------------------------------------------- the contract
def test_make_mask_marks_rows_with_any_nan():
    X = {"a": np.array([[1.0, 2.0], [np.nan, 1.0], [0.0, 0.0]]), "s": np.zeros((3, 4, 2))}
    X["s"][1, 2, 0] = np.nan
    m = make_mask(X)
    assert m["a"].tolist() == [True, False, True]
    assert m["s"].shape == (3, 4) and m["s"].sum() == 11 and not m["s"][1, 2]


def test_check_inputs_names_what_is_wrong():
    X, y, mask = TRAIN
    with pytest.raises(SchemaError, match="no modality 'd'"):
        check_inputs(X, mask, ["a", "d"])
    with pytest.raises(SchemaError, match="rows"):
        check_inputs({"a": np.zeros((3, 2)), "b": np.zeros((4, 2))})
    with pytest.raises(SignalError, match="NaN or inf in .* marked present"):
        check_inputs(X)  # 'a' has NaN rows but no mask says so
    with pytest.raises(SchemaError, match="shape"):
        check_inputs(X, {"a": np.ones(5, bool)})
    xs, present, n = check_inputs(X, mask)
    assert n == 400 and np.all(xs["a"][~present["a"]] == 0) and np.isfinite(xs["a"]).all()


def test_predicting_with_other_feature_sizes_is_an_error(fitted):
    X, _, mask = TEST
    bad = dict(X, b=np.zeros((len(X["b"]), 5)))
    for name in ("early", "attention"):
        with pytest.raises(SchemaError, match="fitted with 2"):
            fitted[name].predict_proba(bad, mask)


def test_drop_modalities_keeps_one_and_drops_at_rate():
    rng = np.random.default_rng(0)
    present = {"a": rng.uniform(size=20000) > 0.3, "b": np.ones(20000, bool), "c": np.ones(20000, bool)}
    out = drop_modalities(present, 0.4, rng)
    P = np.stack([out[m] for m in present])
    assert P.any(axis=0).all()                              # never all gone
    assert not (out["a"] & ~present["a"]).any()             # never brings one back
    assert 0.55 < out["b"].mean() < 0.65                    # about 1 - 0.4, plus the rescued rows


# ------------------------------------------------------------------------- every model
@pytest.mark.parametrize("name", FACTORIES)
def test_shapes_and_attributes(fitted, name):
    model = fitted[name]
    X, _, mask = TEST
    p = model.predict_proba(X, mask)
    assert p.shape == (300, 2)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    assert list(model.classes_) == ["no", "yes"] and model.modalities_ == ["a", "b", "c"]
    assert set(model.predict(X, mask)) <= {"no", "yes"}


@pytest.mark.parametrize("name", FACTORIES)
def test_masked_modality_has_no_influence(fitted, name):
    model = fitted[name]
    X, _, mask = TEST
    base = model.predict_proba(X, mask)
    absent = ~mask["a"]
    for fill in (np.nan, 1e6, -3.0):
        X2 = dict(X, a=X["a"].copy())
        X2["a"][absent] = fill
        assert np.array_equal(model.predict_proba(X2, mask), base), f"{name}: absent 'a' = {fill} leaks"
    # the test can fail: where 'a' is present, its values do matter
    X3 = dict(X, a=np.where(absent[:, None], X["a"], -X["a"]))
    assert not np.allclose(model.predict_proba(X3, mask)[~absent], base[~absent])
    # and with 'a' absent everywhere, its values are never read
    none = {"a": np.zeros(300, bool)}
    X4 = dict(X, a=np.full_like(X["a"], np.nan))
    assert np.array_equal(model.predict_proba(X4, none), model.predict_proba(X, none))


@pytest.mark.parametrize("name", FACTORIES)
def test_learns_a_task_that_needs_two_modalities(fitted, name):
    X, y, _ = TEST
    acc = np.mean(fitted[name].predict({k: np.nan_to_num(v) for k, v in X.items()}) == y)
    assert acc >= 0.85, f"{name}: accuracy {acc:.3f} (chance 0.5, one modality ~0.75)"


def test_fusion_beats_each_single_modality():
    X, y, mask = TRAIN
    Xt, yt, _ = TEST
    full = {k: np.nan_to_num(v) for k, v in Xt.items()}
    fused = EarlyFusion().fit(X, y, mask).score(full, yt)
    for m in ("a", "b"):
        single = EarlyFusion(modalities=[m]).fit(X, y, mask).score(full, yt)
        assert fused > single + 0.1


@pytest.mark.parametrize("name", FACTORIES)
def test_same_seed_same_model(name):
    X, y, mask = planted(150, 3)
    make = FACTORIES[name]
    kw = {"epochs": 5} if "epochs" in make().get_params() else {}
    p1 = clone(make()).set_params(**kw).fit(X, y, mask).predict_proba(X, mask)
    p2 = clone(make()).set_params(**kw).fit(X, y, mask).predict_proba(X, mask)
    assert np.array_equal(p1, p2)
    if kw:  # deep models: the seed matters
        p3 = make().set_params(random_state=1, **kw).fit(X, y, mask).predict_proba(X, mask)
        assert not np.array_equal(p1, p3)


def test_sklearn_api_clone_and_params():
    for make in FACTORIES.values():
        model = make()
        twin = clone(model)
        assert twin.get_params() == model.get_params() and twin is not model
    assert AttentionFusion(hidden=8).set_params(hidden=12).hidden == 12


def test_torch_tensors_are_accepted(fitted):
    X, _, mask = TEST
    Xt = {k: torch.as_tensor(np.nan_to_num(v)) for k, v in X.items()}
    mt = {k: torch.as_tensor(v) for k, v in mask.items()}
    for name in ("early", "gated"):
        np.testing.assert_array_equal(fitted[name].predict_proba(Xt, mt),
                                      fitted[name].predict_proba(X, mask))


# ------------------------------------------------------------------------- specific models
def test_late_fusion_renormalises_over_present_modalities(fitted):
    late = fitted["late"]
    X, _, mask = TEST
    only_b = {"a": np.zeros(300, bool), "b": np.ones(300, bool), "c": np.zeros(300, bool)}
    np.testing.assert_allclose(late.predict_proba(X, only_b), late.modality_proba(X, mask)["b"])
    nothing = {m: np.zeros(300, bool) for m in "abc"}
    np.testing.assert_allclose(late.predict_proba(X, nothing), np.tile(late.prior_, (300, 1)))


def test_attention_weights_are_zero_exactly_where_absent(fitted):
    att = fitted["attention"]
    X, _, mask = TEST
    w = att.modality_weights(X, mask)
    assert isinstance(w, pd.DataFrame) and list(w.columns) == ["a", "b", "c"] and len(w) == 300
    assert (w.loc[~mask["a"], "a"] == 0.0).all()
    assert (w.loc[mask["a"], "a"] > 0).all()
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-6)
    nothing = {m: np.zeros(300, bool) for m in "abc"}
    assert (att.modality_weights(X, nothing).to_numpy() == 0).all()
    assert np.isfinite(att.predict_proba(X, nothing)).all()


def test_attention_weights_favour_the_informative_modalities(fitted):
    w = fitted["attention"].modality_weights(*TEST[::2])
    assert w[["a", "b"]].mean().min() > w["c"].mean()


def test_gated_weights_sum_to_one_over_present(fitted):
    X, _, mask = TEST
    g = fitted["gated"].modality_weights(X, mask)
    assert (g.loc[~mask["a"], "a"] == 0.0).all()
    np.testing.assert_allclose(g.sum(axis=1), 1.0, atol=1e-6)


def test_deep_training_loop_early_stops_and_keeps_history(fitted):
    att = fitted["attention"]
    assert att.history_ and {"train_loss", "val_loss"} <= set(att.history_[0])
    assert len(att.history_) <= att.epochs and att.best_epoch_ < len(att.history_)
    assert att.history_[att.best_epoch_]["val_loss"] == min(h["val_loss"] for h in att.history_)


def test_explicit_validation_set_is_used():
    X, y, mask = TRAIN
    Xv, yv, mv = TEST
    model = AttentionFusion(epochs=3, hidden=8).fit(X, y, mask, validation=(Xv, yv, mv))
    assert len(model.history_) == 3 and "val_loss" in model.history_[0]


# ------------------------------------------------------------------------- temporal
def planted_sequences(n: int, seed: int, T: int = 4):
    rng = np.random.default_rng(seed)
    X = {"a": rng.normal(size=(n, T, 2)), "b": rng.normal(size=(n, T, 2))}
    y = (X["a"][:, :, 0].mean(1) + X["b"][:, :, 0].mean(1) > 0).astype(int)
    mask = {"a": rng.uniform(size=(n, T)) > 0.2, "b": np.ones((n, T), bool)}
    X["a"][~mask["a"]] = np.nan
    return X, y, mask


def test_temporal_model_shapes_masking_learning():
    X, y, mask = planted_sequences(500, 0)
    model = TemporalFusion(hidden=16, epochs=60, patience=10).fit(X, y, mask)
    Xt, yt, mt = planted_sequences(300, 1)
    p = model.predict_proba(Xt, mt)
    assert p.shape == (300, 2)
    X2 = dict(Xt, a=np.where(mt["a"][..., None], Xt["a"], 7.0))
    assert np.array_equal(model.predict_proba(X2, mt), p)
    assert np.mean(model.predict(Xt, mt) == yt) >= 0.8
    whole = {"a": np.zeros(300, bool)}  # an (n,) mask covers the whole sequence
    X3 = dict(Xt, a=np.full_like(Xt["a"], np.nan))
    assert np.array_equal(model.predict_proba(X3, whole), model.predict_proba(Xt, whole))
