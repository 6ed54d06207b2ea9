"""Which modality did the work, and for whom? Modality attribution and subgroup audits
(Part 3, the interpretability chapter).

Everything here talks to a model only through the fusion contract (:mod:`mmlab.fusion`):
per-modality inputs ``X: dict[str, array (n, d_m)]`` (or ``(n, T, d_m)``), an optional
presence ``mask: dict[str, bool array (n,)]`` (True where the modality is present, ``None``
= all present), and an estimator with ``predict_proba(X, mask=None) -> (n, n_classes)``,
``classes_`` and ``modalities_``. Integrated Gradients also needs the network: a deep
estimator's ``net_``, called as ``net_(xs, present)`` with the per-modality tensors in
``modalities_`` order and the stacked presence flags. No fusion class is imported, so the
tools work for any model that honours the contract.

* **Exact Shapley values over modalities** (:func:`modality_shapley` globally,
  :func:`sample_shapley` per sample, :func:`shapley_values` for any game given as a table
  of subset values). Because a missing modality is ordinary input, "the model without
  ECG" is simply the same model with ECG masked out: no retraining, no imputation. With
  ``M`` modalities all ``2^M`` subsets are evaluated, so the values are exact (M <= 12).
* **Attention weights** (:func:`attention_summary`): mean ``modality_weights`` per class or
  subgroup, counting a modality only where it is present.
* **Integrated Gradients** (:func:`integrated_gradients`) through captum on a deep model,
  summed over each modality's features; the completeness gap (sum of attributions minus
  ``f(x) - f(baseline)``) is reported per sample.
* **Subgroups** (:func:`subgroup_labels`, :func:`subgroup_metrics`, :func:`subgroup_gap`,
  :func:`bias_amplification`): macro-F1, balanced accuracy and calibration error per group
  (e.g. sex or an age band from a cohort's participants table), and whether fusing
  modalities widens the gap that the single-modality models already have.
* **Plots** (:func:`plot_modality_attributions`, :func:`plot_attention_summary`,
  :func:`plot_subgroup_gaps`) return the matplotlib ``Axes``.

Shapley values (Shapley 1953) give each modality its average marginal contribution over
all orders in which the modalities could be added; they are the unique attribution with
efficiency (they sum to ``v(all) - v(none)``), symmetry, dummy (a modality that never
changes the value gets 0) and additivity. Integrated Gradients (Sundararajan, Taly & Yan
2017) integrate the gradient along the straight line from a baseline to the input.

Bad input (ragged arrays, a mask of the wrong length, labels the model does not know, a
model without ``modality_weights``) raises :class:`~mmlab.errors.SchemaError` or
:class:`~mmlab.errors.MMLabError` naming what is wrong.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from mmlab.errors import MMLabError, SchemaError
from mmlab.fusion._contract import check_inputs

__all__ = [
    "MAX_EXACT_MODALITIES", "shapley_values", "modality_subsets", "ShapleyResult",
    "modality_shapley", "sample_shapley", "attention_summary", "IGResult",
    "integrated_gradients", "subgroup_labels",
    "subgroup_metrics", "subgroup_gap", "bias_amplification", "plot_modality_attributions",
    "plot_attention_summary", "plot_subgroup_gaps",
]

#: Exact Shapley values cost ``2^M`` model evaluations; beyond this many modalities we refuse.
MAX_EXACT_MODALITIES = 12

#: Label of the empty subset in subset tables.
EMPTY_LABEL = "none"

_EPS = 1e-12


# ------------------------------------------------------------------------ input checks
def _to_numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # a torch tensor, without importing torch
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _check_X(X: Mapping[str, Any], mask: Mapping[str, Any] | None = None
             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """``(X, present, n)`` by the fusion contract (:func:`mmlab.fusion._contract.check_inputs`).

    Every modality of X is checked (temporal when any is ``(n, T, d)``); absent rows hold
    zeros, ``present[m]`` has each modality's lead shape, and mask keys that are not in
    X are refused (a misspelt modality would otherwise count as present).
    """
    temporal = isinstance(X, Mapping) and any(np.ndim(_to_numpy(a)) == 3 for a in X.values())
    if isinstance(mask, Mapping) and isinstance(X, Mapping):
        unknown = [m for m in mask if m not in X]
        if unknown:
            raise SchemaError(f"mask[{unknown[0]!r}]: no such modality in X (have {sorted(X)})")
    xs, present, n = check_inputs(X, mask, temporal=temporal)
    return xs, present, n


def _index_of(X: Mapping[str, Any]):
    """The row index of the first pandas input in X (None for plain arrays)."""
    return next((v.index for v in X.values() if isinstance(v, (pd.DataFrame, pd.Series))), None)


def _players(model: Any, X: Mapping[str, np.ndarray], modalities: Sequence[str] | None) -> list[str]:
    if modalities is None:
        modalities = getattr(model, "modalities_", None) or list(X)
    modalities = list(modalities)
    if len(set(modalities)) != len(modalities):
        raise SchemaError(f"modalities: duplicates in {modalities}")
    missing = [m for m in modalities if m not in X]
    if missing:
        raise SchemaError(f"modalities {missing} are not in X (have {sorted(X)})")
    if not modalities:
        raise SchemaError("modalities: need at least one modality")
    if len(modalities) > MAX_EXACT_MODALITIES:
        raise MMLabError(f"exact Shapley values need 2^{len(modalities)} model evaluations; "
                         f"more than {MAX_EXACT_MODALITIES} modalities is not supported "
                         f"(group modalities first)")
    return modalities


def _target_indices(target, y, classes, n: int, predicted: np.ndarray, who: str) -> np.ndarray:
    """Class index per row for ``target``: "pred" (``predicted``), "true" (``y``), or labels."""
    if isinstance(target, str) and target == "pred":
        return predicted
    if isinstance(target, str) and target == "true":
        if y is None:
            raise SchemaError(f"{who}: target='true' needs y")
        return _label_indices(y, classes, n)
    t = np.asarray(target)
    return _label_indices(np.repeat(t[None], n) if t.ndim == 0 else t, classes, n)


def _label_indices(y: Any, classes: np.ndarray, n: int) -> np.ndarray:
    """Positions of the labels ``y`` in ``classes`` (SchemaError for unknown labels)."""
    y = np.asarray(y)
    if y.shape != (n,):
        raise SchemaError(f"y: expected shape ({n},), got {y.shape}")
    classes = np.asarray(classes)
    order = np.argsort(classes, kind="stable")
    try:
        pos = np.searchsorted(classes[order], y)
    except TypeError:  # labels of another type than the classes (str vs int)
        pos = np.zeros(len(y), dtype=int)
    pos = np.clip(pos, 0, len(classes) - 1)
    idx = order[pos]
    bad = np.asarray(classes[idx] != y, dtype=bool)
    if np.any(bad):
        raise SchemaError(f"y: labels {sorted(set(y[bad].tolist()))[:5]} are not among the "
                          f"model's classes {classes.tolist()}")
    return idx


def _classes_of(model: Any, n_classes: int) -> np.ndarray:
    classes = getattr(model, "classes_", None)
    if classes is None:
        return np.arange(n_classes)
    classes = np.asarray(classes)
    if len(classes) != n_classes:
        raise MMLabError(f"model has {len(classes)} classes_ but predict_proba returned "
                         f"{n_classes} columns")
    return classes


def _predict(model: Any, X: dict, mask: dict, n: int, what: str) -> np.ndarray:
    if not hasattr(model, "predict_proba"):
        raise MMLabError(f"{type(model).__name__} has no predict_proba(X, mask); "
                         f"the explain tools need the fusion contract")
    p = np.asarray(model.predict_proba(X, mask=mask), dtype=float)
    if p.ndim != 2 or p.shape[0] != n:
        raise MMLabError(f"predict_proba with {what} returned shape {p.shape}; expected ({n}, n_classes)")
    return p


# ------------------------------------------------------------------- Shapley: the game
def modality_subsets(modalities: Sequence[str]) -> list[frozenset]:
    """All ``2^M`` subsets of ``modalities``, by size, then in the order the modalities are given.

    >>> [sorted(s) for s in modality_subsets(["a", "b"])]
    [[], ['a'], ['b'], ['a', 'b']]
    """
    mods = list(modalities)
    return [frozenset(c) for k in range(len(mods) + 1) for c in itertools.combinations(mods, k)]


def _subset_label(s: Iterable[str], order: Sequence[str]) -> str:
    names = [m for m in order if m in s]
    return "+".join(names) if names else EMPTY_LABEL


def shapley_values(values: Mapping[Any, Any], players: Sequence[str]) -> dict[str, Any]:
    """Exact Shapley values of a cooperative game given as a table of subset values.

    ``values`` maps every subset of ``players`` (a frozenset, set, tuple or list of player
    names; the empty subset included) to its value, a float or an array (then the values
    are computed elementwise, e.g. one per sample). Returns ``{player: value}`` with

    ``phi_i = sum over S not containing i of |S|! (M-|S|-1)! / M! * (v(S + i) - v(S))``.

    They sum to ``v(all) - v(empty)`` (efficiency). Introduced in the Part 3
    interpretability chapter; :func:`modality_shapley` builds the table from a model.
    """
    players = list(players)
    M = len(players)
    if M == 0:
        raise SchemaError("shapley_values: need at least one player")
    if len(set(players)) != M:
        raise SchemaError(f"shapley_values: duplicate players in {players}")
    table: dict[frozenset, Any] = {}
    for k, v in values.items():
        key = frozenset([k]) if isinstance(k, str) else frozenset(k)
        extra = key - set(players)
        if extra:
            raise SchemaError(f"shapley_values: subset {sorted(key)} names unknown players {sorted(extra)}")
        table[key] = np.asarray(v, dtype=float)
    missing = [s for s in modality_subsets(players) if s not in table]
    if missing:
        shown = ", ".join(_subset_label(s, players) for s in missing[:4])
        raise SchemaError(f"shapley_values: {len(missing)} of {2 ** M} subsets have no value "
                          f"(e.g. {shown})")
    weight = [math.factorial(k) * math.factorial(M - k - 1) / math.factorial(M) for k in range(M)]
    out: dict[str, Any] = {}
    for i in players:
        others = [p for p in players if p != i]
        phi = 0.0
        for k in range(M):
            for c in itertools.combinations(others, k):
                s = frozenset(c)
                phi = phi + weight[k] * (table[s | {i}] - table[s])
        out[i] = float(phi) if np.ndim(phi) == 0 else np.asarray(phi)
    return out


@dataclass
class ShapleyResult:
    """Exact modality Shapley values and the subset values they came from.

    ``attributions`` is a Series (one value per modality, global value functions) or a
    DataFrame (one row per sample, one column per modality). ``values`` holds ``v(S)`` for
    every subset in ``subsets`` (shape ``(2^M,)`` or ``(2^M, n)``).
    """

    attributions: pd.Series | pd.DataFrame
    subsets: list[frozenset]
    values: np.ndarray
    modalities: list[str]
    value: str
    meta: dict = field(default_factory=dict)

    @property
    def full(self):
        """``v(all modalities)`` (a float, or one value per sample)."""
        return self.values[self.subsets.index(frozenset(self.modalities))]

    @property
    def empty(self):
        """``v(no modality)`` (a float, or one value per sample)."""
        return self.values[self.subsets.index(frozenset())]

    def subset_table(self) -> pd.DataFrame:
        """One row per subset: a presence column per modality, its size and ``v(S)``
        (the mean over samples for per-sample values), indexed by labels like ``ecg+eda``."""
        rows = {m: [m in s for s in self.subsets] for m in self.modalities}
        df = pd.DataFrame(rows, index=[_subset_label(s, self.modalities) for s in self.subsets])
        df["size"] = [len(s) for s in self.subsets]
        v = self.values if self.values.ndim == 1 else self.values.mean(axis=1)
        df["value"] = v
        df.index.name = "subset"
        return df

    def efficiency_gap(self) -> float:
        """Largest ``|sum of attributions - (v(all) - v(empty))|`` (0 up to round-off)."""
        a = self.attributions
        total = a.to_numpy().sum(axis=-1) if isinstance(a, pd.DataFrame) else a.to_numpy().sum()
        return float(np.max(np.abs(total - (self.full - self.empty))))

    def mean(self) -> pd.Series:
        """Global attribution: the per-sample attributions averaged (the Series itself if global)."""
        a = self.attributions
        return a.mean(axis=0).rename("shapley") if isinstance(a, pd.DataFrame) else a


def _subset_probas(model, X, base, players, empty, n) -> tuple[list[frozenset], list[np.ndarray]]:
    subsets = modality_subsets(players)
    probas: list[np.ndarray] = []
    for s in subsets:
        if not s and not (isinstance(empty, str) and empty == "model"):
            probas.append(None)  # filled below, once the number of classes is known
            continue
        m_s = {m: (base[m] & (m in s)) if m in players else base[m] for m in X}
        what = f"modalities {{{_subset_label(s, players)}}}"
        try:
            probas.append(_predict(model, X, m_s, n, what))
        except Exception as exc:
            if s:
                raise
            raise MMLabError(f"{type(model).__name__}.predict_proba failed with every modality "
                             f"masked ({type(exc).__name__}: {exc}); pass empty='uniform' or a "
                             f"class prior as empty=[...]") from exc
    C = next(p.shape[1] for p in probas if p is not None)
    if probas[0] is None:
        if isinstance(empty, str):
            if empty != "uniform":
                raise SchemaError(f"empty: expected 'model', 'uniform' or class probabilities, got {empty!r}")
            prior = np.full(C, 1.0 / C)
        else:
            prior = np.asarray(empty, dtype=float)
            if prior.shape != (C,) or np.any(prior < 0) or not np.isclose(prior.sum(), 1.0):
                raise SchemaError(f"empty: class probabilities must be {C} non-negative numbers "
                                  f"summing to 1, got {prior}")
        probas[0] = np.tile(prior, (n, 1))
    return subsets, probas


def _global_value(value: str | Callable, y_idx, proba, classes) -> float:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    if callable(value):
        return float(value(classes[y_idx], proba, classes))
    pred = proba.argmax(axis=1)
    if value == "log_proba":
        return float(np.mean(np.log(np.clip(proba[np.arange(len(y_idx)), y_idx], _EPS, None))))
    if value == "accuracy":
        return float(accuracy_score(y_idx, pred))
    if value == "balanced_accuracy":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(balanced_accuracy_score(y_idx, pred))
    if value == "macro_f1":
        return float(f1_score(y_idx, pred, average="macro", zero_division=0))
    raise SchemaError(f"value: unknown value function {value!r}; use 'log_proba', 'accuracy', "
                      f"'balanced_accuracy', 'macro_f1' or a callable (y_true, proba, classes) -> float")


def modality_shapley(model: Any, X: Mapping[str, Any], y: Any, mask: Mapping[str, Any] | None = None, *,
                     value: str | Callable = "log_proba", modalities: Sequence[str] | None = None,
                     empty: str | Sequence[float] = "model") -> ShapleyResult:
    """Global exact Shapley values of each modality for a model's performance on a dataset.

    The value of a subset ``S`` of modalities is the model's score on ``(X, y)`` with every
    modality outside ``S`` masked (on top of ``mask``): ``value="log_proba"`` (mean log
    probability of the true class, the default: smooth, so small contributions show),
    ``"accuracy"``, ``"balanced_accuracy"``, ``"macro_f1"``, or a callable
    ``(y_true, proba, classes) -> float``. The model is evaluated on all ``2^M`` subsets,
    never retrained: masking is how the fusion contract says "this modality is absent".

    ``modalities`` defaults to ``model.modalities_``; other modalities in ``X`` stay as they
    are. ``empty`` says what the model predicts with nothing present: ``"model"`` (ask it),
    ``"uniform"``, or class probabilities (e.g. the training class frequencies).

    Returns a :class:`ShapleyResult` whose ``attributions`` Series sums to
    ``v(all) - v(empty)``. Introduced in the Part 3 interpretability chapter.
    """
    X, present, n = _check_X(X, mask)
    players = _players(model, X, modalities)
    subsets, probas = _subset_probas(model, X, present, players, empty, n)
    classes = _classes_of(model, probas[-1].shape[1])
    y_idx = _label_indices(y, classes, n)
    values = np.array([_global_value(value, y_idx, p, classes) for p in probas])
    phi = shapley_values(dict(zip(subsets, values)), players)
    attr = pd.Series({m: phi[m] for m in players}, name="shapley")
    attr.index.name = "modality"
    name = value if isinstance(value, str) else getattr(value, "__name__", "custom")
    return ShapleyResult(attr, subsets, values, players, name, {"n": n})


def sample_shapley(model: Any, X: Mapping[str, Any], mask: Mapping[str, Any] | None = None, *,
                   target: Any = "pred", y: Any = None, log: bool = False,
                   modalities: Sequence[str] | None = None,
                   empty: str | Sequence[float] = "model") -> ShapleyResult:
    """Per-sample exact Shapley values: how much each modality moved one prediction.

    The value of a subset ``S`` for sample ``i`` is the probability (``log=True``: log
    probability) of one class for that sample with the modalities outside ``S`` masked.
    ``target`` picks the class: ``"pred"`` (the class the model predicts with every
    modality present, fixed across subsets), ``"true"`` (needs ``y``), or a class label
    (one, or one per sample).

    Each row of ``attributions`` sums to ``p(all) - p(none)`` for that sample. A modality
    already missing for a sample (``mask`` False) gets exactly 0 there. Averaging the rows
    (``result.mean()``) gives the Shapley values of the mean probability, by linearity.
    Introduced in the Part 3 interpretability chapter.
    """
    index = _index_of(X)
    X, present, n = _check_X(X, mask)
    players = _players(model, X, modalities)
    subsets, probas = _subset_probas(model, X, present, players, empty, n)
    C = probas[-1].shape[1]
    classes = _classes_of(model, C)
    t_idx = _target_indices(target, y, classes, n, probas[-1].argmax(axis=1), "sample_shapley")
    rows = np.arange(n)
    vals = np.stack([p[rows, t_idx] for p in probas])
    if log:
        vals = np.log(np.clip(vals, _EPS, None))
    phi = shapley_values(dict(zip(subsets, vals)), players)
    attr = pd.DataFrame({m: phi[m] for m in players}, index=index)
    attr.columns.name = "modality"
    name = ("log_" if log else "") + f"proba_{target if isinstance(target, str) else 'class'}"
    return ShapleyResult(attr, subsets, vals, players, name, {"n": n, "target": classes[t_idx]})


# ------------------------------------------------------------------ attention weights
def attention_summary(model: Any, X: Mapping[str, Any] | None = None, mask: Mapping[str, Any] | None = None,
                      *, by: Any = None, present_only: bool = True) -> pd.DataFrame:
    """Mean attention weight of each modality, overall or per class/subgroup.

    ``model`` is a model with ``modality_weights(X, mask) -> DataFrame (n, M)`` (attention
    fusion) or such a DataFrame itself. ``by`` is one label per sample (the true or
    predicted class, sex, an age band) or None for one row ``"all"``. With
    ``present_only`` (default) a modality's weight is averaged only over the samples where
    it is present, so "ECG was often missing" is not mistaken for "ECG got little
    attention". Returns one row per group, one column per modality, plus ``n``.

    Attention weights say where the model looked, not what changed its answer: compare
    them with :func:`sample_shapley` before trusting them. Introduced in the Part 3
    interpretability chapter.
    """
    if isinstance(model, pd.DataFrame):
        w = model.copy()
    else:
        if not hasattr(model, "modality_weights"):
            raise MMLabError(f"{type(model).__name__} has no modality_weights(X, mask): only "
                             f"attention-based fusion exposes attention weights")
        if X is None:
            raise SchemaError("attention_summary: X is needed to ask the model for its weights")
        w = model.modality_weights(X, mask)
        if not isinstance(w, pd.DataFrame):
            w = pd.DataFrame(np.asarray(w), columns=list(getattr(model, "modalities_", X)))
    w = w.astype(float)
    n = len(w)
    if present_only and mask is not None:
        for m, v in mask.items():
            if m in w.columns:
                v = np.asarray(v, dtype=bool)
                if v.shape != (n,):
                    raise SchemaError(f"mask[{m!r}]: expected shape ({n},), got {v.shape}")
                w.loc[~v, m] = np.nan
    w = w.reset_index(drop=True)
    if by is None:
        groups = pd.Series(np.repeat("all", n))
    else:
        groups = pd.Series(np.asarray(by))
        if len(groups) != n:
            raise SchemaError(f"attention_summary: by has {len(groups)} labels for {n} samples")
    out = w.groupby(groups.to_numpy(), sort=True).mean()
    out["n"] = groups.value_counts().reindex(out.index).to_numpy()
    out.index.name = "group" if by is not None else None
    out.columns.name = None
    return out


# ---------------------------------------------------------------- integrated gradients
@dataclass
class IGResult:
    """Integrated Gradients of one output per sample, per feature and summed per modality.

    ``per_modality`` is a DataFrame (n, M); ``per_feature[m]`` an array with the shape of
    ``X[m]`` ((n, d_m), or (n, T, d_m) for a temporal model: summed over time and features);
    ``delta`` the completeness gap per sample, ``sum of attributions - (f(x) - f(baseline))``;
    ``f_x`` and ``f_baseline`` the attributed output at the input and at the baseline;
    ``target`` the class index attributed for each sample.
    """

    per_modality: pd.DataFrame
    per_feature: dict[str, np.ndarray]
    delta: np.ndarray
    f_x: np.ndarray
    f_baseline: np.ndarray
    target: np.ndarray
    output: str
    baseline: str

    def completeness_gap(self, relative: bool = False) -> float:
        """Largest ``|delta|`` over samples (``relative``: divided by the largest
        ``|f(x) - f(baseline)|``)."""
        gap = float(np.max(np.abs(self.delta))) if len(self.delta) else 0.0
        if relative:
            scale = float(np.max(np.abs(self.f_x - self.f_baseline))) if len(self.delta) else 0.0
            return gap / max(scale, _EPS)
        return gap

    def mean_abs(self) -> pd.Series:
        """Global importance: the mean absolute attribution of each modality."""
        return self.per_modality.abs().mean(axis=0).rename("mean_abs_ig")


_MODULE_ATTRS = ("net_", "module_")


def _deep_parts(model: Any, X: Mapping[str, np.ndarray], modalities: Sequence[str] | None):
    """(module, modality order, scaler or None) of a bare module or a deep contract estimator."""
    import torch

    if isinstance(model, torch.nn.Module):
        return model, list(modalities) if modalities is not None else list(X), None
    for name in _MODULE_ATTRS:
        mod = getattr(model, name, None)
        if isinstance(mod, torch.nn.Module):
            order = list(getattr(model, "modalities_", None) or X)
            scaler = getattr(model, "scaler_", None)
            if not (hasattr(scaler, "mean_") and hasattr(scaler, "scale_")):
                scaler = None
            return mod, order, scaler
    raise MMLabError(f"{type(model).__name__} holds no torch nn.Module (looked for "
                     f"{', '.join(_MODULE_ATTRS)}); Integrated Gradients needs a deep model, "
                     f"or pass forward=callable(list_of_tensors, presence) -> logits")


def _resolve_baseline(baseline, X, base_mask, players, reference, reference_mask, scaler) -> tuple[dict, str]:
    """Per-modality baselines with the shape of X (raw feature units) and their description."""
    if isinstance(baseline, str) and baseline == "auto":
        baseline = "train_mean" if scaler is not None else "mean"
    if isinstance(baseline, Mapping):
        out = {}
        for m in players:
            if m not in baseline:
                raise SchemaError(f"baseline: no entry for modality {m!r}")
            b = _to_numpy(baseline[m]).astype(float)
            d = X[m].shape[-1]
            try:
                out[m] = np.broadcast_to(b, X[m].shape).copy()
            except ValueError:
                raise SchemaError(f"baseline[{m!r}]: expected shape ({d},) or {X[m].shape}, "
                                  f"got {b.shape}") from None
        return out, "given"
    if baseline == "zeros":
        return {m: np.zeros(X[m].shape) for m in players}, "zeros"
    if baseline == "train_mean":
        if scaler is None:
            raise SchemaError("baseline='train_mean': the model keeps no training mean (scaler_); "
                              "use baseline='mean' with reference=X_train")
        return {m: np.broadcast_to(np.asarray(scaler.mean_[m], float), X[m].shape).copy()
                for m in players}, "train_mean"
    if baseline == "mean":
        if reference is None:
            ref, ref_mask = X, base_mask
        else:
            ref, ref_mask, _ = _check_X(reference, reference_mask)
        out = {}
        for m in players:
            if m not in ref:
                raise SchemaError(f"reference: no modality {m!r}")
            r = ref[m].astype(float)
            if r.shape[-1] != X[m].shape[-1]:
                raise SchemaError(f"reference[{m!r}] has {r.shape[-1]} features, X has {X[m].shape[-1]}")
            rm = ref_mask[m]
            pm = np.broadcast_to(rm.reshape(rm.shape + (1,) * (r.ndim - 1 - rm.ndim)), r.shape[:-1])
            rows = r[pm]
            if len(rows) == 0:
                raise SchemaError(f"baseline='mean': modality {m!r} is never present in the reference data")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                mu = np.nanmean(rows, axis=0)
            out[m] = np.broadcast_to(np.nan_to_num(mu), X[m].shape).copy()
        return out, "mean" if reference is None else "reference mean"
    raise SchemaError(f"baseline: expected 'auto', 'train_mean', 'mean', 'zeros' or a dict of "
                      f"arrays, got {baseline!r}")


def integrated_gradients(model: Any, X: Mapping[str, Any], mask: Mapping[str, Any] | None = None, *,
                         target: Any = "pred", y: Any = None, baseline: Any = "auto",
                         reference: Mapping[str, Any] | None = None,
                         reference_mask: Mapping[str, Any] | None = None,
                         output: str = "proba", n_steps: int = 64, internal_batch_size: int | None = None,
                         modalities: Sequence[str] | None = None,
                         forward: Callable | None = None) -> IGResult:
    """Integrated Gradients (captum) of a deep fusion model, summed over each modality.

    For every sample, the attribution of feature ``j`` is ``(x_j - b_j)`` times the average
    gradient of the output along the straight path from the baseline ``b`` to ``x``; the
    attributions of one sample add up to ``f(x) - f(b)`` (completeness, checked: see
    ``IGResult.delta``). Summing a modality's features gives its share of that change.

    * ``model``: a deep contract estimator (e.g. ``mmlab.fusion.AttentionFusion``): its
      module ``net_`` is called as ``net_(xs, present)`` with ``xs`` the list of
      per-modality tensors in ``modalities_`` order and ``present`` the stacked presence
      flags ``(n, M)``; if it keeps a ``scaler_`` (per-modality ``mean_``/``scale_``), the
      standardisation is part of the differentiated function, so attributions are in the
      units of ``X``. A bare ``nn.Module`` with the same call convention works too (the
      modality order is ``modalities``, default the keys of ``X``), as does your own
      ``forward(xs, present) -> logits``.
    * ``output``: which number is explained: ``"proba"`` (softmax of the logits, the
      default: bounded, so attributions read as "moved the probability by ..."),
      ``"log_proba"`` or ``"logit"``. ``target``: ``"pred"`` (the predicted class),
      ``"true"`` (needs ``y``), or a class label (one, or one per sample); labels are
      looked up in ``model.classes_`` (a bare module without ``classes_``: class indices).
    * ``baseline``, "an uninformative input": ``"auto"`` (default) is ``"train_mean"`` (the
      training mean the estimator's scaler stores: exactly zeros after its normalisation)
      when there is one, else ``"mean"`` (the per-feature mean over present rows of
      ``reference`` — pass the training data — or of ``X``); ``"zeros"`` (zeros in the
      units of ``X``: only sensible for features already standardised on the training
      set, where zeros *is* the training mean; a heart rate of 0 is far outside the data);
      or a dict of arrays.
    * ``modalities``: which modalities to attribute (default: all the model uses); the
      others stay at their values in ``X``.

    Absent modalities (``mask`` False) have baseline = input, so their attribution is 0 by
    construction; the model never reads them anyway. The completeness gap shrinks with
    ``n_steps`` (Gauss-Legendre quadrature); a confident model whose probability jumps
    from 0 to 1 over a short stretch of the path needs more steps (a UserWarning says so
    when the gap exceeds 5 % of the largest output change). It stays above round-off even for a float64
    model, since captum rounds its quadrature weights to float32 (~1e-7 relative; the
    fusion models themselves run in float32). The module runs in eval mode (dropout off)
    and is put back in its previous mode afterwards. Introduced in the Part 3
    interpretability chapter.
    """
    import torch
    from captum.attr import IntegratedGradients

    if output not in ("proba", "log_proba", "logit"):
        raise SchemaError(f"output: expected 'proba', 'log_proba' or 'logit', got {output!r}")
    index = _index_of(X)
    X, base_mask, n = _check_X(X, mask)
    if forward is None:
        module, order, scaler = _deep_parts(model, X, modalities)
        forward = module
    else:
        module, scaler = None, None
        order = list(modalities) if modalities is not None else list(getattr(model, "modalities_", None) or X)
    players = list(modalities) if modalities is not None else list(order)
    missing = [m for m in order if m not in X]
    if missing:
        raise SchemaError(f"X has no modality {missing} (have {sorted(X)}); mark absent rows in mask instead")
    if any(m not in order for m in players):
        raise SchemaError(f"modalities {[m for m in players if m not in order]} are not used by the "
                          f"model (it uses {order})")
    params = list(module.parameters()) + list(module.buffers()) if module is not None else []
    dtype = params[0].dtype if params else torch.float32
    device = params[0].device if params else torch.device("cpu")
    present = base_mask  # the lead shape of each modality ((n,) or (n, T)), present rows finite
    bl, bl_name = _resolve_baseline(baseline, X, base_mask, players, reference, reference_mask, scaler)

    def to_t(a):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)

    xin = {m: np.where(present[m][..., None], np.nan_to_num(X[m].astype(float)), 0.0) for m in order}
    inputs = [to_t(xin[m]) for m in players]
    baselines = [to_t(np.where(present[m][..., None], bl[m], 0.0)) for m in players]
    others = [m for m in order if m not in players]
    # Presence flags and the modalities not attributed travel as captum's additional forward
    # args: captum repeats them along dim 0 once per step, exactly as it stacks the scaled
    # inputs, so every row keeps its own mask.
    extra = tuple(torch.as_tensor(present[m], device=device) for m in order) + tuple(
        to_t(xin[m]) for m in others)
    shift = {m: (to_t(scaler.mean_[m]), to_t(scaler.scale_[m])) for m in order} if scaler is not None else {}
    k, M = len(players), len(order)

    def f(*args):
        xd = dict(zip(players, args[:k]))
        pd_ = dict(zip(order, args[k:k + M]))
        xd.update(zip(others, args[k + M:]))
        xs = []
        for m in order:
            t = xd[m]
            if m in shift:
                t = (t - shift[m][0]) / shift[m][1]
            xs.append(torch.where(pd_[m].unsqueeze(-1), t, torch.zeros_like(t)))
        out = forward(xs, torch.stack([pd_[m] for m in order], dim=-1))
        if isinstance(out, (tuple, list)):
            out = out[0]
        if out.ndim == 1:
            out = out[:, None]
        if output == "proba":
            return torch.softmax(out, dim=-1)
        if output == "log_proba":
            return torch.log_softmax(out, dim=-1)
        return out

    was_training = module.training if module is not None else None
    if module is not None:
        module.eval()
    try:
        with torch.no_grad():
            fx_all = f(*inputs, *extra)
            fb_all = f(*baselines, *extra)
        C = fx_all.shape[1]
        classes = _classes_of(model, C)
        t_idx = _target_indices(target, y, classes, n, fx_all.argmax(dim=1).cpu().numpy(),
                                "integrated_gradients")
        ig = IntegratedGradients(f)
        attrs, delta = ig.attribute(tuple(inputs), baselines=tuple(baselines),
                                    target=torch.as_tensor(t_idx, device=device),
                                    additional_forward_args=extra, n_steps=int(n_steps),
                                    internal_batch_size=internal_batch_size,
                                    return_convergence_delta=True)
    finally:
        if module is not None and was_training:
            module.train()
    per_feature = {m: a.detach().cpu().double().numpy() for m, a in zip(players, attrs)}
    result_delta = delta.detach().cpu().double().numpy()
    rows = np.arange(n)
    f_x = fx_all.detach().cpu().double().numpy()[rows, t_idx]
    f_b = fb_all.detach().cpu().double().numpy()[rows, t_idx]
    change = float(np.max(np.abs(f_x - f_b))) if n else 0.0
    gap = float(np.max(np.abs(result_delta))) if n else 0.0
    if gap > 0.05 * max(change, _EPS) and gap > 1e-6:
        warnings.warn(f"integrated_gradients: completeness gap {gap:.3g} is "
                      f"{100 * gap / max(change, _EPS):.0f} % of the largest output change; the "
                      f"path is too steep for n_steps={n_steps}: increase n_steps",
                      UserWarning, stacklevel=2)
    per_mod = pd.DataFrame({m: per_feature[m].reshape(n, -1).sum(axis=1) for m in players}, index=index)
    per_mod.columns.name = "modality"
    return IGResult(per_mod, per_feature, result_delta, f_x, f_b, t_idx, output, bl_name)


# ----------------------------------------------------------------------- subgroups
def _default_classes(y_true, proba, classes):
    if proba.ndim != 2:
        raise SchemaError(f"proba: expected shape (n, n_classes), got {proba.shape}")
    if proba.shape[0] != len(y_true):
        raise SchemaError(f"proba has {proba.shape[0]} rows, y_true has {len(y_true)}")
    if classes is None:
        classes = np.unique(y_true)
        if len(classes) != proba.shape[1]:
            raise SchemaError(f"y_true has {len(classes)} distinct labels but proba has "
                              f"{proba.shape[1]} columns: pass classes= (e.g. model.classes_)")
    classes = np.asarray(classes)
    if len(classes) != proba.shape[1]:
        raise SchemaError(f"classes has {len(classes)} entries, proba has {proba.shape[1]} columns")
    return classes


def subgroup_labels(subjects: Any, participants: pd.DataFrame, column: str, *,
                    bins: Sequence[float] | None = None, labels: Sequence[str] | None = None,
                    id_column: str = "participant_id") -> np.ndarray:
    """One subgroup label per sample, joined from a participants table on the subject id.

    ``subjects`` holds the subject of each sample (e.g. the ``subject`` column of a window
    table); ``participants`` is a cohort's table (``Cohort.participants``: one row per
    subject, ``participant_id`` first). ``column`` is the attribute (``"sex"``, ``"age"``);
    with ``bins`` a numeric column is cut into bands (``pd.cut``, right-open), labelled
    ``"21-30"`` style unless ``labels`` are given. Subjects missing from the table raise
    SchemaError; a missing attribute stays NaN (such samples count only in "all").
    """
    if id_column not in participants.columns:
        raise SchemaError(f"participants: no {id_column!r} column (have {list(participants.columns)})")
    if column not in participants.columns:
        raise SchemaError(f"participants: no {column!r} column (have {list(participants.columns)})")
    if participants[id_column].duplicated().any():
        dup = participants.loc[participants[id_column].duplicated(), id_column].tolist()
        raise SchemaError(f"participants: duplicate {id_column} {dup[:5]}")
    lookup = participants.set_index(id_column)[column]
    subj = pd.Series(np.asarray(subjects))
    unknown = sorted(set(subj) - set(lookup.index))
    if unknown:
        raise SchemaError(f"subjects {unknown[:5]} are not in the participants table")
    vals = subj.map(lookup)
    if bins is not None:
        edges = list(bins)
        if labels is None:
            labels = [f"{edges[i]:g}-{edges[i + 1]:g}" for i in range(len(edges) - 1)]
        vals = pd.cut(pd.to_numeric(vals, errors="coerce"), edges, right=False, labels=list(labels))
        return vals.astype(object).to_numpy()
    return vals.to_numpy()


_METRIC_COLUMNS = ("accuracy", "balanced_accuracy", "macro_f1", "ece")


def _metrics_row(y_idx, pred, proba, n_bins) -> dict:
    from mmlab.evaluate import balanced_accuracy, expected_calibration_error, macro_f1

    if len(y_idx) == 0:
        return {"n": 0, **{c: float("nan") for c in _METRIC_COLUMNS}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a group without some class: sklearn warns, we know
        row = {"n": len(y_idx), "accuracy": float(np.mean(y_idx == pred)),
               "balanced_accuracy": balanced_accuracy(y_idx, pred),
               "macro_f1": macro_f1(y_idx, pred)}
    if proba is None:
        row["ece"] = float("nan")
    else:
        row["ece"] = expected_calibration_error(y_idx, proba, np.arange(proba.shape[1]), n_bins)
    return row


def subgroup_metrics(y_true: Any, proba: Any, groups: Any, *, classes: Any = None,
                     n_bins: int = 15) -> pd.DataFrame:
    """Accuracy, balanced accuracy, macro-F1 and calibration error (ECE) per subgroup.

    ``proba`` is (n, C) class probabilities (columns in the order of ``classes``, e.g.
    ``model.classes_``) or a 1-D array of predicted labels (then ``ece`` is NaN).
    ``groups`` gives one label per sample (:func:`subgroup_labels`). One row per group
    (sorted), then a row ``"all"``; samples whose group is NaN count only in ``"all"``.
    Macro-F1 inside a group averages over the classes that occur in that group (true or
    predicted). The metrics are those of :mod:`mmlab.evaluate` (``ece``: top-label
    calibration error with ``n_bins`` equal-width bins), so a subgroup's row is comparable
    with the overall figures of the evaluation chapters. Introduced in the Part 3
    interpretability chapter.
    """
    y_true = np.asarray(y_true)
    n = len(y_true)
    p = np.asarray(proba)
    if p.ndim == 1:
        if len(p) != n:
            raise SchemaError(f"predictions have {len(p)} entries, y_true has {n}")
        if classes is None:
            classes = np.unique(np.concatenate([y_true, p]))
        classes = np.asarray(classes)
        y_idx = _label_indices(y_true, classes, n)
        pred = _label_indices(p, classes, n)
        p = None
    else:
        p = p.astype(float)
        classes = _default_classes(y_true, p, classes)
        y_idx = _label_indices(y_true, classes, n)
        pred = p.argmax(axis=1)
    g = pd.Series(np.asarray(groups, dtype=object))
    if len(g) != n:
        raise SchemaError(f"groups has {len(g)} labels, y_true has {n}")
    rows, index = [], []
    for name in sorted(g.dropna().unique(), key=str):
        sel = (g == name).to_numpy()
        rows.append(_metrics_row(y_idx[sel], pred[sel], None if p is None else p[sel], n_bins))
        index.append(name)
    rows.append(_metrics_row(y_idx, pred, p, n_bins))
    index.append("all")
    out = pd.DataFrame(rows, index=pd.Index(index, name="group"))
    return out[["n", *_METRIC_COLUMNS]]


def subgroup_gap(table: pd.DataFrame, metric: str = "macro_f1") -> float:
    """Largest minus smallest ``metric`` across the groups of a :func:`subgroup_metrics`
    table (the ``"all"`` row excluded): 0 when every group is served equally."""
    if metric not in table.columns:
        raise SchemaError(f"subgroup_gap: no metric {metric!r} (have {list(table.columns)})")
    vals = table.drop(index="all", errors="ignore")[metric].dropna()
    if len(vals) < 2:
        return float("nan")
    return float(vals.max() - vals.min())


def bias_amplification(predictions: Mapping[str, Any], y_true: Any, groups: Any, *, fused: str,
                       metric: str = "macro_f1", X: Mapping[str, Any] | None = None,
                       mask: Mapping[str, Any] | None = None, classes: Any = None,
                       n_bins: int = 15) -> pd.DataFrame:
    """Does fusing modalities widen the subgroup gap the single-modality models have?

    ``predictions`` maps a model name (``"ecg"``, ``"eda"``, ``"fused"``) to its class
    probabilities (n, C), or to a fitted contract model (then ``X``/``mask`` are used to
    predict). ``fused`` names the fused model. Returns one row per model: ``metric`` in each
    group, ``gap`` (best minus worst group), ``worst_group``, and ``fused_minus_gap``
    (the fused model's gap minus this model's gap: positive means the fused model is less
    even-handed than this modality alone). Fusion *amplifies* bias when its gap exceeds
    the smallest unimodal gap, and *more than any one modality* when it exceeds the largest.
    Introduced in the Part 3 interpretability chapter.
    """
    if fused not in predictions:
        raise SchemaError(f"bias_amplification: fused model {fused!r} is not among {list(predictions)}")
    rows = {}
    for name, pred in predictions.items():
        cls = classes
        if hasattr(pred, "predict_proba"):
            if X is None:
                raise SchemaError(f"bias_amplification: {name!r} is a model; pass X (and mask) to predict")
            Xc, present, _ = _check_X(X, mask)
            cls = getattr(pred, "classes_", classes)
            pred = np.asarray(pred.predict_proba(Xc, mask=present), dtype=float)
        table = subgroup_metrics(y_true, pred, groups, classes=cls, n_bins=n_bins)
        per_group = table.drop(index="all")[metric]
        row = {f"{metric}[{g}]": v for g, v in per_group.items()}
        row[f"{metric}[all]"] = table.loc["all", metric]
        row["gap"] = subgroup_gap(table, metric)
        worst = per_group.idxmax() if metric == "ece" else per_group.idxmin()
        row["worst_group"] = worst if len(per_group) else None
        rows[name] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "model"
    out["role"] = ["fused" if name == fused else "unimodal" for name in out.index]
    out["fused_minus_gap"] = out.loc[fused, "gap"] - out["gap"]
    return out


# ---------------------------------------------------------------------------- plots
def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(5, 3))
    return ax


def plot_modality_attributions(attributions: Any, ax=None, *, stat: str | None = None,
                               title: str | None = None, color: str = "C0"):
    """Bar plot of one attribution per modality; returns the matplotlib Axes.

    ``attributions``: a Series (one value per modality), a per-sample DataFrame (bars are
    the mean, or the mean absolute value with ``stat="mean_abs"``, with standard-error
    whiskers), a :class:`ShapleyResult` or an :class:`IGResult` (default ``stat``:
    ``"mean"`` for Shapley values, ``"mean_abs"`` for Integrated Gradients, whose signed
    per-sample values can cancel).
    """
    if isinstance(attributions, IGResult):
        data, stat = attributions.per_modality, stat or "mean_abs"
        title = title or f"Integrated Gradients ({attributions.output}), per modality"
    elif isinstance(attributions, ShapleyResult):
        data = attributions.attributions
        title = title or f"Shapley value ({attributions.value}), per modality"
    else:
        data = attributions
    stat = stat or "mean"
    if stat not in ("mean", "mean_abs"):
        raise SchemaError(f"stat: expected 'mean' or 'mean_abs', got {stat!r}")
    err = None
    if isinstance(data, pd.DataFrame):
        d = data.abs() if stat == "mean_abs" else data
        vals = d.mean(axis=0)
        err = d.std(axis=0, ddof=1) / np.sqrt(max(len(d), 1)) if len(d) > 1 else None
    else:
        vals = pd.Series(data, dtype=float)
        if stat == "mean_abs":
            vals = vals.abs()
    ax = _axes(ax)
    ax.bar([str(i) for i in vals.index], vals.to_numpy(), yerr=None if err is None else err.to_numpy(),
           color=color, capsize=3)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xlabel("modality")
    ax.set_ylabel("mean |attribution|" if stat == "mean_abs" else "attribution")
    if title:
        ax.set_title(title)
    return ax


def _grouped_bars(ax, table: pd.DataFrame, xlabel: str, ylabel: str, title: str | None):
    groups, series = list(table.index), list(table.columns)
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for j, col in enumerate(series):
        ax.bar(x + (j - (len(series) - 1) / 2) * width, table[col].to_numpy(dtype=float), width,
               label=str(col))
    ax.set_xticks(x)
    ax.set_xticklabels([str(g) for g in groups])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small", frameon=False)
    if title:
        ax.set_title(title)
    return ax


def plot_attention_summary(summary: pd.DataFrame, ax=None, *, title: str | None = "Mean attention weight"):
    """Grouped bars of an :func:`attention_summary` table (groups on x, one bar per
    modality); returns the Axes."""
    table = summary.drop(columns=["n"], errors="ignore")
    return _grouped_bars(_axes(ax), table, "group", "mean attention weight", title)


def plot_subgroup_gaps(table: pd.DataFrame, ax=None, *, metric: str | None = None, title: str | None = None):
    """Grouped bars of a :func:`bias_amplification` table: the metric in each subgroup,
    one cluster per model; returns the Axes."""
    cols = [c for c in table.columns if "[" in c and not c.endswith("[all]")]
    if metric is not None:
        cols = [c for c in cols if c.startswith(f"{metric}[")]
    if not cols:
        raise SchemaError("plot_subgroup_gaps: expected a bias_amplification table (columns 'metric[group]')")
    m = cols[0].split("[")[0]
    data = table[cols].rename(columns=lambda c: c.split("[", 1)[1].rstrip("]"))
    return _grouped_bars(_axes(ax), data, "model", m, title or f"{m} per subgroup (gap = best - worst)")
