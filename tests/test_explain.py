"""mmlab.explain: exact modality Shapley values, attention summaries, Integrated Gradients,
subgroup metrics and bias amplification — known answers on hand-written models."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from mmlab import explain as ex
from mmlab.errors import MMLabError, SchemaError, SignalError


# ----------------------------------------------------------------------- stub models
class PresenceModel:
    """Binary classifier whose p(class 1) is a known function of which modalities are present.

    ``f(present: dict[str, bool array]) -> p1 array``; it never looks at feature values,
    only at the mask (as the contract allows), and records every mask it was given.
    """

    def __init__(self, f, modalities, classes=(0, 1), fail_when_empty=False):
        self.f = f
        self.modalities_ = list(modalities)
        self.classes_ = np.asarray(classes)
        self.fail_when_empty = fail_when_empty
        self.calls = []

    def predict_proba(self, X, mask=None):
        n = len(next(iter(X.values())))
        present = {m: np.ones(n, bool) if mask is None or m not in mask else np.asarray(mask[m])
                   for m in self.modalities_}
        self.calls.append({m: v.copy() for m, v in present.items()})
        if self.fail_when_empty and not any(v.any() for v in present.values()):
            raise ValueError("no modality present")
        p1 = np.asarray(self.f(present), dtype=float) * np.ones(n)
        return np.column_stack([1 - p1, p1])

    def predict(self, X, mask=None):
        return self.classes_[self.predict_proba(X, mask).argmax(axis=1)]


def _X(n=6, mods=("a", "b", "c"), d=2, seed=0):
    rng = np.random.default_rng(seed)
    return {m: rng.normal(size=(n, d)) for m in mods}


def _brute_force_shapley(v, players):
    """Shapley values as the average marginal contribution over all M! orderings."""
    phi = {p: 0.0 for p in players}
    perms = list(itertools.permutations(players))
    for order in perms:
        s = frozenset()
        for p in order:
            phi[p] = phi[p] + (v[s | {p}] - v[s])
            s = s | {p}
    return {p: phi[p] / len(perms) for p in players}


# ------------------------------------------------------------------ Shapley: the game
def test_glove_game_known_answer():
    # a holds a left glove, b and c a right one; a pair is worth 1.
    players = ["a", "b", "c"]
    v = {s: float("a" in s and ("b" in s or "c" in s)) for s in ex.modality_subsets(players)}
    phi = ex.shapley_values(v, players)
    assert phi["a"] == pytest.approx(2 / 3)
    assert phi["b"] == pytest.approx(1 / 6)
    assert phi["c"] == pytest.approx(1 / 6)


def test_shapley_values_match_brute_force_on_random_games():
    rng = np.random.default_rng(1)
    players = ["w", "x", "y", "z"]
    for _ in range(5):
        v = {s: rng.normal() for s in ex.modality_subsets(players)}
        fast = ex.shapley_values(v, players)
        slow = _brute_force_shapley(v, players)
        for p in players:
            assert fast[p] == pytest.approx(slow[p], abs=1e-12)
        assert sum(fast.values()) == pytest.approx(v[frozenset(players)] - v[frozenset()])


def test_shapley_values_accept_tuples_and_arrays_and_reject_incomplete_tables():
    v = {(): np.array([0.0, 1.0]), ("a",): np.array([1.0, 1.0]), ("b",): np.array([0.0, 3.0]),
         ("a", "b"): np.array([1.0, 3.0])}
    phi = ex.shapley_values(v, ["a", "b"])
    np.testing.assert_allclose(phi["a"], [1.0, 0.0])
    np.testing.assert_allclose(phi["b"], [0.0, 2.0])
    del v[("b",)]
    with pytest.raises(SchemaError, match="subsets have no value"):
        ex.shapley_values(v, ["a", "b"])
    with pytest.raises(SchemaError, match="unknown players"):
        ex.shapley_values({("a", "q"): 1.0}, ["a", "b"])


def test_modality_subsets_order():
    subs = ex.modality_subsets(["a", "b", "c"])
    assert len(subs) == 8 and subs[0] == frozenset() and subs[-1] == frozenset("abc")
    assert [len(s) for s in subs] == [0, 1, 1, 1, 2, 2, 2, 3]


# ---------------------------------------------------------- Shapley: per-sample, model
def test_sample_shapley_recovers_planted_additive_contributions():
    # p(class 1) = 0.1 + 0.3 [a present] + 0.2 [b present]; c is a dummy.
    model = PresenceModel(lambda p: 0.1 + 0.3 * p["a"] + 0.2 * p["b"], ["a", "b", "c"])
    X = _X()
    res = ex.sample_shapley(model, X, target=1)
    assert list(res.attributions.columns) == ["a", "b", "c"]
    np.testing.assert_allclose(res.attributions["a"], 0.3, atol=1e-12)
    np.testing.assert_allclose(res.attributions["b"], 0.2, atol=1e-12)
    np.testing.assert_allclose(res.attributions["c"], 0.0, atol=1e-12)
    np.testing.assert_allclose(res.full, 0.6)
    np.testing.assert_allclose(res.empty, 0.1)
    assert res.efficiency_gap() < 1e-12
    assert len(model.calls) == 8  # exact: every subset once
    table = res.subset_table()
    assert table.loc["a+b", "value"] == pytest.approx(0.6)
    assert table.loc["none", "value"] == pytest.approx(0.1)


def test_sample_shapley_symmetry_and_efficiency_with_interaction():
    # a and b only help together: the synergy is split evenly between them (symmetry).
    model = PresenceModel(lambda p: 0.2 + 0.4 * (p["a"] & p["b"]) + 0.1 * p["c"], ["a", "b", "c"])
    res = ex.sample_shapley(model, _X(), target=1)
    np.testing.assert_allclose(res.attributions["a"], 0.2, atol=1e-12)
    np.testing.assert_allclose(res.attributions["b"], 0.2, atol=1e-12)
    np.testing.assert_allclose(res.attributions["c"], 0.1, atol=1e-12)
    np.testing.assert_allclose(res.attributions.sum(axis=1), res.full - res.empty, atol=1e-12)


def test_sample_shapley_matches_brute_force_on_a_non_additive_model():
    rng = np.random.default_rng(2)
    n, mods = 5, ["a", "b", "c"]
    table = {s: rng.uniform(0.05, 0.95, size=n) for s in ex.modality_subsets(mods)}

    def f(p):
        out = np.empty(n)
        for i in range(n):
            out[i] = table[frozenset(m for m in mods if p[m][i])][i]
        return out

    res = ex.sample_shapley(PresenceModel(f, mods), _X(n=n), target=1)
    for i in range(n):
        ref = _brute_force_shapley({s: v[i] for s, v in table.items()}, mods)
        for m in mods:
            assert res.attributions[m].iloc[i] == pytest.approx(ref[m], abs=1e-12)
    assert res.efficiency_gap() < 1e-12


def test_sample_shapley_already_missing_modality_gets_zero():
    model = PresenceModel(lambda p: 0.1 + 0.3 * p["a"] + 0.2 * p["b"], ["a", "b"])
    X = _X(n=4, mods=("a", "b"))
    mask = {"a": np.array([True, False, True, False])}
    res = ex.sample_shapley(model, X, mask, target=1)
    np.testing.assert_allclose(res.attributions["a"], [0.3, 0.0, 0.3, 0.0], atol=1e-12)
    np.testing.assert_allclose(res.attributions["b"], 0.2, atol=1e-12)
    # the given mask is respected in every evaluation: a stays absent for rows 1 and 3
    assert all(not c["a"][1] and not c["a"][3] for c in model.calls)


def test_sample_shapley_targets_pred_true_and_log():
    model = PresenceModel(lambda p: 0.1 + 0.3 * p["a"] + 0.2 * p["b"], ["a", "b"])
    X = _X(n=3, mods=("a", "b"))
    pred = ex.sample_shapley(model, X, target="pred")  # full model predicts class 1 (p=0.6)
    np.testing.assert_allclose(pred.attributions["a"], 0.3)
    true = ex.sample_shapley(model, X, target="true", y=np.array([0, 1, 0]))
    np.testing.assert_allclose(true.attributions["a"], [-0.3, 0.3, -0.3])
    lg = ex.sample_shapley(model, X, target=1, log=True)
    np.testing.assert_allclose(lg.attributions.sum(axis=1), np.log(0.6) - np.log(0.1))
    with pytest.raises(SchemaError, match="needs y"):
        ex.sample_shapley(model, X, target="true")
    with pytest.raises(SchemaError, match="not among the model's classes"):
        ex.sample_shapley(model, X, target=7)
    named = PresenceModel(model.f, ["a", "b"], classes=["calm", "stress"])
    np.testing.assert_allclose(ex.sample_shapley(named, X, target="stress").attributions["a"], 0.3)
    with pytest.raises(SchemaError, match="not among the model's classes"):
        ex.sample_shapley(named, X, target="stressed")  # not truncated to 'stress'
    per_row = ex.sample_shapley(named, X, target=["calm", "stress", "calm"])
    np.testing.assert_allclose(per_row.attributions["a"], [-0.3, 0.3, -0.3])


def test_sample_shapley_keeps_non_player_modalities_and_the_dataframe_index():
    model = PresenceModel(lambda p: 0.1 + 0.3 * p["a"] + 0.2 * p["b"], ["a", "b"])
    X = {m: pd.DataFrame(np.zeros((3, 2)), index=[10, 11, 12]) for m in ("a", "b")}
    res = ex.sample_shapley(model, X, target=1, modalities=["a"])
    assert list(res.attributions.index) == [10, 11, 12]
    # b is background (always present), so a's contribution is still 0.3 and v(none) = 0.3
    np.testing.assert_allclose(res.attributions["a"], 0.3)
    np.testing.assert_allclose(res.empty, 0.3)
    assert all(c["b"].all() for c in model.calls)


# ------------------------------------------------------------------ Shapley: global
def _label_model(mods=("a", "b")):
    """Predicts the true label (carried in X['a'][:, 0]) when a is present, class 0 otherwise."""

    class M(PresenceModel):
        def predict_proba(self, X, mask=None):
            n = len(X["a"])
            a = np.ones(n, bool) if mask is None or "a" not in mask else np.asarray(mask["a"])
            p1 = np.where(a, (X["a"][:, 0] > 0).astype(float), 0.0)
            p1 = np.clip(p1, 0.02, 0.98)
            self.calls.append(mask)
            return np.column_stack([1 - p1, p1])

    return M(None, mods)


def test_modality_shapley_accuracy_and_macro_f1_known_answers():
    y = np.array([0, 1] * 10)
    X = {"a": np.where(y[:, None] == 1, 1.0, -1.0), "b": np.zeros((20, 3))}
    model = _label_model()
    acc = ex.modality_shapley(model, X, y, value="accuracy")
    assert acc.attributions["a"] == pytest.approx(0.5)  # 1.0 with a, 0.5 (all class 0) without
    assert acc.attributions["b"] == pytest.approx(0.0)
    f1 = ex.modality_shapley(model, X, y, value="macro_f1")
    assert f1.attributions["a"] == pytest.approx(1 - 1 / 3)  # all-0 predictions: (2/3 + 0) / 2
    bal = ex.modality_shapley(model, X, y, value="balanced_accuracy")
    assert bal.attributions["a"] == pytest.approx(0.5)
    assert f1.efficiency_gap() < 1e-12 and f1.value == "macro_f1"


def test_modality_shapley_log_proba_known_answer_and_custom_value():
    # log p(true) = -1 + 0.5 [a] + 0.25 [b] for every sample: additive in log space.
    def f(p):
        return np.exp(-1 + 0.5 * p["a"] + 0.25 * p["b"])

    model = PresenceModel(f, ["a", "b", "c"])
    X = _X(n=8)
    y = np.ones(8, dtype=int)
    res = ex.modality_shapley(model, X, y)
    assert res.attributions["a"] == pytest.approx(0.5)
    assert res.attributions["b"] == pytest.approx(0.25)
    assert res.attributions["c"] == pytest.approx(0.0, abs=1e-12)
    assert res.full == pytest.approx(-0.25) and res.empty == pytest.approx(-1.0)

    def mean_p_true(y_true, proba, classes):
        return proba[np.arange(len(y_true)), np.searchsorted(classes, y_true)].mean()

    custom = ex.modality_shapley(model, X, y, value=mean_p_true)
    assert custom.attributions.sum() == pytest.approx(np.exp(-0.25) - np.exp(-1))
    assert custom.value == "mean_p_true"
    # the global Shapley of the mean probability is the mean of the per-sample ones (linearity)
    per = ex.sample_shapley(model, X, target="true", y=y)
    pd.testing.assert_series_equal(per.mean(), custom.attributions, check_names=False)


def test_empty_subset_options():
    f = lambda p: 0.1 + 0.3 * p["a"] + 0.2 * p["b"]  # noqa: E731
    failing = PresenceModel(f, ["a", "b"], fail_when_empty=True)
    X = _X(n=4, mods=("a", "b"))
    with pytest.raises(MMLabError, match="every modality masked.*empty='uniform'"):
        ex.sample_shapley(failing, X, target=1)
    res = ex.sample_shapley(failing, X, target=1, empty="uniform")
    np.testing.assert_allclose(res.empty, 0.5)
    np.testing.assert_allclose(res.attributions.sum(axis=1), 0.6 - 0.5)
    res = ex.sample_shapley(failing, X, target=1, empty=[0.8, 0.2])
    np.testing.assert_allclose(res.empty, 0.2)
    with pytest.raises(SchemaError, match="summing to 1"):
        ex.sample_shapley(failing, X, target=1, empty=[0.8, 0.8])


def test_shapley_bad_input():
    model = PresenceModel(lambda p: 0.5, ["a", "b"])
    with pytest.raises(SchemaError, match=r"X\['b'\] has 3 rows"):
        ex.sample_shapley(model, {"a": np.zeros((4, 2)), "b": np.zeros((3, 2))})
    with pytest.raises(SchemaError, match=r"mask\['a'\] must have shape \(4,\)"):
        ex.sample_shapley(model, _X(n=4, mods=("a", "b")), {"a": np.ones(3, bool)})
    with pytest.raises(SchemaError, match="no such modality"):
        ex.sample_shapley(model, _X(n=4, mods=("a", "b")), {"zz": np.ones(4, bool)})
    with pytest.raises(SchemaError, match="not among the model's classes"):
        ex.modality_shapley(model, _X(n=4, mods=("a", "b")), np.array([0, 1, 2, 1]))
    with pytest.raises(SchemaError, match="not in X"):
        ex.sample_shapley(model, _X(n=4, mods=("a",)))
    many = [f"m{i}" for i in range(13)]
    with pytest.raises(MMLabError, match="2\\^13"):
        ex.sample_shapley(PresenceModel(lambda p: 0.5, many), _X(n=2, mods=many))
    with pytest.raises(MMLabError, match="predict_proba"):
        ex.sample_shapley(object(), _X(n=2, mods=("a",)), modalities=["a"])


# ------------------------------------------------------------------ attention weights
class AttentionStub(PresenceModel):
    """Attention weights planted per class: class 0 -> (0.8, 0.2), class 1 -> (0.3, 0.7);
    an absent modality gets weight 0 and the other one all of it."""

    def __init__(self, y):
        super().__init__(lambda p: 0.5, ["a", "b"])
        self.y = np.asarray(y)

    def modality_weights(self, X, mask=None):
        w = np.where(self.y[:, None] == 0, [0.8, 0.2], [0.3, 0.7])
        if mask is not None:
            a = np.asarray(mask.get("a", np.ones(len(w), bool)))
            w = np.where(a[:, None], w, [0.0, 1.0])
        return pd.DataFrame(w, columns=["a", "b"])


def test_attention_summary_recovers_planted_weights_per_class():
    y = np.array([0, 0, 1, 1, 1])
    model = AttentionStub(y)
    X = _X(n=5, mods=("a", "b"))
    s = ex.attention_summary(model, X, by=y)
    assert list(s.index) == [0, 1] and list(s["n"]) == [2, 3]
    np.testing.assert_allclose(s.loc[0, ["a", "b"]], [0.8, 0.2])
    np.testing.assert_allclose(s.loc[1, ["a", "b"]], [0.3, 0.7])
    overall = ex.attention_summary(model, X)
    assert list(overall.index) == ["all"]
    assert overall.loc["all", "a"] == pytest.approx((2 * 0.8 + 3 * 0.3) / 5)


def test_attention_summary_counts_a_modality_only_where_present():
    y = np.array([1, 1, 1, 1])
    mask = {"a": np.array([True, False, False, True])}
    model = AttentionStub(y)
    X = _X(n=4, mods=("a", "b"))
    s = ex.attention_summary(model, X, mask, by=y)
    assert s.loc[1, "a"] == pytest.approx(0.3)  # not 0.15: the two absent rows are left out
    naive = ex.attention_summary(model, X, mask, by=y, present_only=False)
    assert naive.loc[1, "a"] == pytest.approx(0.15)
    # a precomputed weight table works too
    w = model.modality_weights(X, mask)
    pd.testing.assert_frame_equal(ex.attention_summary(w, mask=mask, by=y), s)


def test_attention_summary_needs_modality_weights():
    with pytest.raises(MMLabError, match="no modality_weights"):
        ex.attention_summary(PresenceModel(lambda p: 0.5, ["a"]), _X(n=2, mods=("a",)))
    with pytest.raises(SchemaError, match="by has 3 labels"):
        ex.attention_summary(AttentionStub([0, 1]), _X(n=2, mods=("a", "b")), by=[0, 1, 1])


# ---------------------------------------------------------------- integrated gradients
torch = pytest.importorskip("torch")
pytest.importorskip("captum")


class TinyFusion(torch.nn.Module):
    """A small module with the fusion call convention ``net(xs, present)``: per-modality
    encoders, masked mean of the embeddings, a head."""

    def __init__(self, dims, n_classes=3, hidden=8, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.enc = torch.nn.ModuleList(torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.Tanh())
                                       for d in dims)
        self.drop = torch.nn.Dropout(0.5)
        self.head = torch.nn.Linear(hidden, n_classes)
        self.double()

    def forward(self, xs, present):
        w = present.to(xs[0].dtype)  # (n, M)
        h = torch.stack([enc(x) for enc, x in zip(self.enc, xs)], dim=1) * w[:, :, None]
        z = h.sum(1) / w.sum(1, keepdim=True).clamp(min=1.0)
        return self.head(self.drop(z))


class LinearModule(torch.nn.Module):
    """logit(class 1) = sum over present modalities of x_m . w_m; logit(class 0) = 0."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.ParameterList(torch.nn.Parameter(torch.as_tensor(v, dtype=torch.float64))
                                        for v in w)

    def forward(self, xs, present):
        out = sum((x @ w) * present[:, i].to(torch.float64) for i, (x, w) in enumerate(zip(xs, self.w)))
        return torch.stack([torch.zeros_like(out), out], dim=1)


def test_ig_linear_model_known_answer_with_mean_baseline():
    rng = np.random.default_rng(3)
    w = {"a": np.array([1.0, -2.0]), "b": np.array([0.5, 0.5, 3.0])}
    X = {"a": rng.normal(size=(6, 2)), "b": rng.normal(size=(6, 3))}
    ref = {"a": rng.normal(1.0, 1.0, size=(50, 2)), "b": rng.normal(-1.0, 1.0, size=(50, 3))}
    res = ex.integrated_gradients(LinearModule(w.values()), X, target=1, output="logit", reference=ref,
                                  n_steps=8)
    assert res.baseline == "reference mean"
    for m in w:
        expected = (X[m] - ref[m].mean(axis=0)) @ w[m]  # IG of a linear function is exact
        # (captum rounds its quadrature weights to float32: exact up to ~1e-7 relative)
        np.testing.assert_allclose(res.per_modality[m], expected, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(res.per_feature[m], (X[m] - ref[m].mean(axis=0)) * w[m],
                                   rtol=1e-6, atol=1e-9)
    assert res.completeness_gap(relative=True) < 1e-6
    zeros = ex.integrated_gradients(LinearModule(w.values()), X, target=1, output="logit", baseline="zeros")
    np.testing.assert_allclose(zeros.per_modality["b"], X["b"] @ w["b"], rtol=1e-6, atol=1e-9)


def test_ig_completeness_on_a_small_network():
    rng = np.random.default_rng(4)
    dims = {"ecg": 4, "eda": 3, "text": 5}
    net = TinyFusion(dims.values())
    net.train()  # integrated_gradients must switch dropout off and then restore the mode
    X = {m: rng.normal(size=(10, d)) for m, d in dims.items()}
    res = ex.integrated_gradients(net, X, n_steps=64)
    assert net.training and res.baseline == "mean"
    # completeness: the modality sums add up to f(x) - f(baseline), checked independently
    net.eval()
    with torch.no_grad():
        t = [torch.as_tensor(v) for v in X.values()]
        present = torch.ones(10, 3, dtype=torch.bool)
        base = [torch.as_tensor(np.broadcast_to(v.mean(axis=0), v.shape).copy()) for v in X.values()]
        fx = torch.softmax(net(t, present), -1).numpy()
        fb = torch.softmax(net(base, present), -1).numpy()
    rows = np.arange(10)
    assert (res.target == fx.argmax(axis=1)).all()
    change = fx[rows, res.target] - fb[rows, res.target]
    np.testing.assert_allclose(res.per_modality.sum(axis=1), change, atol=1e-4)
    np.testing.assert_allclose(res.f_x - res.f_baseline, change, atol=1e-12)
    assert res.completeness_gap() < 1e-4 and res.completeness_gap(relative=True) < 1e-2
    for m in dims:
        np.testing.assert_allclose(res.per_modality[m], res.per_feature[m].sum(axis=1))
    assert list(res.mean_abs().index) == list(dims)


class TemporalLinear(torch.nn.Module):
    """logit(class 1) = sum over present windows and modalities of x . w (inputs (n, T, d))."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.ParameterList(torch.nn.Parameter(torch.as_tensor(v, dtype=torch.float64))
                                        for v in w)

    def forward(self, xs, present):  # present: (n, T, M)
        out = sum(((x @ w) * present[..., i].to(x.dtype)).sum(1) for i, (x, w) in enumerate(zip(xs, self.w)))
        return torch.stack([torch.zeros_like(out), out], dim=1)


def test_ig_temporal_inputs_and_window_masks():
    rng = np.random.default_rng(11)
    w = {"a": np.array([1.0, 2.0]), "b": np.array([-1.0])}
    X = {"a": rng.normal(size=(5, 4, 2)), "b": rng.normal(size=(5, 4, 1))}
    mask = {"a": rng.uniform(size=(5, 4)) > 0.4, "b": np.array([True, True, False, True, True])}
    res = ex.integrated_gradients(TemporalLinear(w.values()), X, mask, target=1, output="logit",
                                  baseline="zeros", n_steps=8)
    assert res.per_feature["a"].shape == (5, 4, 2)
    expected_a = ((X["a"] @ w["a"]) * mask["a"]).sum(axis=1)
    expected_b = ((X["b"] @ w["b"]) * mask["b"][:, None]).sum(axis=1)
    np.testing.assert_allclose(res.per_modality["a"], expected_a, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(res.per_modality["b"], expected_b, rtol=1e-6, atol=1e-9)
    assert res.per_modality.loc[2, "b"] == 0.0
    # Shapley over temporal inputs with per-window masks: a sequence without b gets 0 for b
    model = PresenceModel(lambda p: 0.2 + 0.1 * p["a"].mean(axis=1) + 0.3 * p["b"][:, 0], ["a", "b"])
    sh = ex.sample_shapley(model, X, {"a": mask["a"], "b": np.repeat(mask["b"][:, None], 4, 1)}, target=1)
    np.testing.assert_allclose(sh.attributions["a"], 0.1 * mask["a"].mean(axis=1), atol=1e-12)
    np.testing.assert_allclose(sh.attributions["b"], 0.3 * mask["b"], atol=1e-12)


def test_ig_warns_when_the_path_is_too_steep():
    # a logistic unit with a huge slope: the probability jumps from 0 to 1 mid-path
    w = [np.array([200.0])]
    X = {"a": np.array([[1.0], [-1.0]])}
    with pytest.warns(UserWarning, match="increase n_steps"):
        res = ex.integrated_gradients(LinearModule(w), X, target=1, baseline="zeros", n_steps=4)
    assert res.completeness_gap() > 0.05
    fine = ex.integrated_gradients(LinearModule(w), X, target=1, baseline="zeros", n_steps=2000)
    assert fine.completeness_gap() < res.completeness_gap()


class Scaler:
    def __init__(self, mean, scale):
        self.mean_, self.scale_ = mean, scale


def test_ig_estimator_with_scaler_absent_modality_and_targets():
    rng = np.random.default_rng(5)
    dims = {"a": 3, "b": 2}

    class Estimator:  # the shape of a deep mmlab.fusion estimator: net_, scaler_, classes_
        def __init__(self):
            self.net_ = TinyFusion(dims.values(), n_classes=2)
            self.scaler_ = Scaler({"a": np.array([1.0, 2.0, 3.0]), "b": np.array([-1.0, 0.0])},
                                  {"a": np.array([2.0, 1.0, 0.5]), "b": np.array([1.0, 3.0])})
            self.classes_ = np.array(["calm", "stress"])
            self.modalities_ = ["a", "b"]

    est = Estimator()
    X = {m: rng.normal(size=(6, d)) for m, d in dims.items()}
    X["b"][[1, 4]] = np.nan  # absent values may be NaN: they are never read
    mask = {"b": np.array([True, False, True, True, False, True])}
    y = np.array(["calm", "stress"] * 3)
    res = ex.integrated_gradients(est, X, mask, target="true", y=y, output="log_proba")
    assert res.baseline == "train_mean"
    np.testing.assert_array_equal(res.target, [0, 1] * 3)
    np.testing.assert_allclose(res.per_modality.loc[[1, 4], "b"], 0.0, atol=0)
    assert np.isfinite(res.per_modality.to_numpy()).all()
    assert res.completeness_gap() < 1e-4
    # the scaler is part of the function: f(baseline) is the net at standardised zeros
    est.net_.eval()
    with torch.no_grad():
        zero = [torch.zeros(6, d, dtype=torch.float64) for d in dims.values()]
        pres = torch.as_tensor(np.column_stack([np.ones(6, bool), mask["b"]]))
        fb = torch.log_softmax(est.net_(zero, pres), -1).numpy()
    np.testing.assert_allclose(res.f_baseline, fb[np.arange(6), res.target], atol=1e-12)
    res2 = ex.integrated_gradients(est, X, mask, target="stress", output="logit", modalities=["a"])
    np.testing.assert_array_equal(res2.target, 1)
    assert list(res2.per_modality.columns) == ["a"]
    # b is held fixed, so a alone accounts for the whole change
    np.testing.assert_allclose(res2.per_modality["a"], res2.f_x - res2.f_baseline, atol=1e-4)
    with pytest.raises(MMLabError, match="holds no torch nn.Module"):
        ex.integrated_gradients(PresenceModel(lambda p: 0.5, ["a"]), {"a": np.zeros((2, 1))})
    with pytest.raises(SchemaError, match=r"baseline\['a'\]"):
        ex.integrated_gradients(est, X, mask, baseline={"a": np.zeros(7), "b": np.zeros(2)})
    with pytest.raises(SchemaError, match="output"):
        ex.integrated_gradients(est, X, output="softmax")
    with pytest.raises(SignalError, match=r"X\['b'\] has NaN"):
        ex.integrated_gradients(est, X)  # NaN rows not marked absent
    with pytest.raises(SchemaError, match="train_mean"):
        ex.integrated_gradients(TinyFusion(dims.values()), X, mask, baseline="train_mean")


def test_ig_on_a_real_attention_fusion_model():
    fusion = pytest.importorskip("mmlab.fusion")
    rng = np.random.default_rng(9)
    n = 120
    y = rng.integers(0, 2, n)
    X = {"ecg": (2.0 * y - 1)[:, None] + 0.5 * rng.normal(size=(n, 3)),  # informative
         "eda": rng.normal(size=(n, 2))}                                 # noise
    model = fusion.AttentionFusion(epochs=40, hidden=8, lr=1e-2, random_state=0).fit(X, y)
    res = ex.integrated_gradients(model, X, target="true", y=y, n_steps=128)
    assert res.baseline == "train_mean"
    # a ReLU network in float32: completeness to about 1 % of the output change
    assert res.completeness_gap(relative=True) < 0.02
    imp = res.mean_abs()
    assert imp["ecg"] > 3 * imp["eda"]
    glob = ex.modality_shapley(model, X, y, value="accuracy")
    assert glob.attributions["ecg"] > 0.3 and glob.attributions["ecg"] > 3 * abs(glob.attributions["eda"])
    assert glob.efficiency_gap() < 1e-9
    summ = ex.attention_summary(model, X, by=y)
    np.testing.assert_allclose(summ[["ecg", "eda"]].sum(axis=1), 1.0, atol=1e-6)


# ----------------------------------------------------------------------- subgroups
def test_subgroup_labels_join_and_age_bands():
    participants = pd.DataFrame({"participant_id": ["S01", "S02", "S03"], "sex": ["F", "M", np.nan],
                                 "age": [22, 35, 51]})
    subjects = ["S02", "S01", "S01", "S03"]
    np.testing.assert_array_equal(ex.subgroup_labels(subjects, participants, "sex")[:3], ["M", "F", "F"])
    assert pd.isna(ex.subgroup_labels(subjects, participants, "sex")[3])
    bands = ex.subgroup_labels(subjects, participants, "age", bins=[18, 30, 50, 120])
    assert list(bands) == ["30-50", "18-30", "18-30", "50-120"]
    with pytest.raises(SchemaError, match=r"\['S09'\] are not in the participants table"):
        ex.subgroup_labels(["S09"], participants, "sex")
    with pytest.raises(SchemaError, match="no 'height' column"):
        ex.subgroup_labels(subjects, participants, "height")


def test_subgroup_metrics_known_answers():
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    groups = np.array(["A"] * 4 + ["B"] * 4)
    pred1 = np.array([0.1, 0.9, 0.1, 0.9,   # A: all right, confidence 0.9
                      0.1, 0.1, 0.1, 0.1])  # B: always class 0, confidence 0.9 -> half right
    proba = np.column_stack([1 - pred1, pred1])
    t = ex.subgroup_metrics(y, proba, groups)
    assert list(t.index) == ["A", "B", "all"] and list(t["n"]) == [4, 4, 8]
    assert t.loc["A", "accuracy"] == 1.0 and t.loc["B", "accuracy"] == 0.5
    assert t.loc["B", "balanced_accuracy"] == 0.5
    assert t.loc["B", "macro_f1"] == pytest.approx(1 / 3)
    assert t.loc["A", "ece"] == pytest.approx(0.1) and t.loc["B", "ece"] == pytest.approx(0.4)
    assert ex.subgroup_gap(t, "accuracy") == pytest.approx(0.5)
    assert ex.subgroup_gap(t, "ece") == pytest.approx(0.3)
    labels = ex.subgroup_metrics(y, proba.argmax(axis=1), groups)
    assert labels.loc["B", "accuracy"] == 0.5 and labels["ece"].isna().all()
    with pytest.raises(SchemaError, match="pass classes="):
        ex.subgroup_metrics(np.zeros(8, int), proba, groups)
    with pytest.raises(SchemaError, match="groups has 3 labels"):
        ex.subgroup_metrics(y, proba, ["A", "B", "A"])


class LogRegModel:
    """A contract model: scikit-learn logistic regression on the concatenated given modalities.

    Absent modalities are replaced by their training mean (so they carry no evidence)."""

    def __init__(self, modalities):
        self.modalities_ = list(modalities)

    def _stack(self, X, mask):
        parts = []
        for m in self.modalities_:
            x = np.asarray(X[m], float).copy()
            if mask is not None and m in mask:
                x[~np.asarray(mask[m])] = self.mean_[m]
            parts.append(x)
        return np.hstack(parts)

    def fit(self, X, y, mask=None):
        from sklearn.linear_model import LogisticRegression

        self.mean_ = {m: np.asarray(X[m]).mean(axis=0) for m in self.modalities_}
        self.clf_ = LogisticRegression(C=10.0).fit(self._stack(X, mask), y)
        self.classes_ = self.clf_.classes_
        return self

    def predict_proba(self, X, mask=None):
        return self.clf_.predict_proba(self._stack(X, mask))


def _planted_subgroup_data(n, seed):
    """Modality a is nearly perfect for group A and pure noise for group B; modality b is
    weakly informative (about 69 % accurate) for everyone."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    g = np.where(rng.uniform(size=n) < 0.5, "A", "B")
    s = 2.0 * y - 1.0
    a = np.where(g == "A", 3.0 * s, 0.0) + 0.3 * rng.normal(size=n)
    b = 0.5 * s + rng.normal(size=n)
    return {"a": a[:, None], "b": b[:, None]}, y, g


def test_bias_amplification_recovers_the_planted_gap():
    Xtr, ytr, _ = _planted_subgroup_data(1500, seed=7)
    Xte, yte, gte = _planted_subgroup_data(3000, seed=8)
    models = {"a": LogRegModel(["a"]).fit(Xtr, ytr), "b": LogRegModel(["b"]).fit(Xtr, ytr),
              "fused": LogRegModel(["a", "b"]).fit(Xtr, ytr)}
    t = ex.bias_amplification(models, yte, gte, fused="fused", metric="balanced_accuracy", X=Xte)
    assert list(t.index) == ["a", "b", "fused"]
    # a alone: ~1.0 in A, chance (0.5) in B -> the planted gap of ~0.5
    assert t.loc["a", "balanced_accuracy[A]"] > 0.97
    assert abs(t.loc["a", "balanced_accuracy[B]"] - 0.5) < 0.05
    assert t.loc["a", "gap"] == pytest.approx(0.5, abs=0.06)
    assert t.loc["a", "worst_group"] == "B"
    # b alone serves both groups equally (planted: same signal in A and B)
    assert t.loc["b", "gap"] < 0.06
    # the fused model leans on a: most of a's gap survives fusion
    assert t.loc["fused", "gap"] > 0.2 and t.loc["fused", "worst_group"] == "B"
    assert t.loc["b", "fused_minus_gap"] > 0.15 and t.loc["fused", "fused_minus_gap"] == 0
    assert set(t["role"]) == {"fused", "unimodal"}
    # the same from probabilities, with calibration error as the metric (worst = largest)
    probs = {k: m.predict_proba(Xte) for k, m in models.items()}
    te = ex.bias_amplification(probs, yte, gte, fused="fused", metric="ece")
    assert te.loc["a", "worst_group"] == "B"
    with pytest.raises(SchemaError, match="pass X"):
        ex.bias_amplification(models, yte, gte, fused="fused")
    with pytest.raises(SchemaError, match="'late' is not among"):
        ex.bias_amplification(probs, yte, gte, fused="late")


# ---------------------------------------------------------------------------- plots
def test_plots_return_axes_with_the_plotted_values():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = PresenceModel(lambda p: 0.1 + 0.3 * p["a"] + 0.2 * p["b"], ["a", "b", "c"])
    res = ex.sample_shapley(model, _X(), target=1)
    ax = ex.plot_modality_attributions(res)
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, [0.3, 0.2, 0.0], atol=1e-12)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    ax2 = ex.plot_modality_attributions(pd.Series({"x": -0.5, "y": 0.25}), stat="mean_abs")
    np.testing.assert_allclose([p.get_height() for p in ax2.patches], [0.5, 0.25])
    y = np.array([0, 0, 1])
    summ = ex.attention_summary(AttentionStub(y), _X(n=3, mods=("a", "b")), by=y)
    ax3 = ex.plot_attention_summary(summ)
    assert len(ax3.patches) == 4
    table = pd.DataFrame({"macro_f1[A]": [0.9, 0.8], "macro_f1[B]": [0.5, 0.8], "macro_f1[all]": [0.7, 0.8],
                          "gap": [0.4, 0.0]}, index=["a", "fused"])
    ax4 = ex.plot_subgroup_gaps(table)
    assert len(ax4.patches) == 4 and ax4.get_ylabel() == "macro_f1"
    with pytest.raises(SchemaError):
        ex.plot_modality_attributions(pd.Series({"x": 1.0}), stat="median")
    plt.close("all")
