"""Exact Shapley values over modalities (Part 3, the interpretability chapter).

:func:`modality_shapley` (globally), :func:`sample_shapley` (per sample) and
:func:`shapley_values` (any game given as a table of subset values). A missing modality is
ordinary input, so "the model without ECG" is the same model with ECG masked out: no
retraining, no imputation. With ``M`` modalities all ``2^M`` subsets are evaluated, so the
values are exact (M <= 12). Shapley values (Shapley 1953) are the unique attribution with
efficiency (they sum to ``v(all) - v(none)``), symmetry, dummy and additivity.
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
from mmlab.explain._common import (_EPS, EMPTY_LABEL, _check_X, _classes_of, _index_of, _players,
                                   _predict, _target_indices)
from mmlab.fusion._contract import encode_known


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

    Parameters
    ----------
    values : mapping
        Subset of players -> value (float or array), for all ``2^M`` subsets.
    players : sequence of str
        The players (modalities).

    Returns
    -------
    dict
        ``{player: Shapley value}`` (arrays when the values are arrays).

    Examples
    --------
    >>> phi = shapley_values({(): 0.0, ("a",): 1.0, ("b",): 2.0, ("a", "b"): 4.0}, ["a", "b"])
    >>> {k: float(v) for k, v in phi.items()}
    {'a': 1.5, 'b': 2.5}
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

    Parameters
    ----------
    model : estimator
        Has ``predict_proba(X, mask=None)``, ``classes_`` and (optionally) ``modalities_``.
    X : dict of str to array
        Per-modality inputs ``(n, d_m)`` or ``(n, T, d_m)``.
    y : array of shape (n,)
        True labels (among ``model.classes_``).
    mask : dict of str to bool array, optional
        Presence flags (``None``: all present).
    value : str or callable, default "log_proba"
        The score of a subset (see above).
    modalities : sequence of str, optional
        The players (default ``model.modalities_``).
    empty : str or sequence of float, default "model"
        The prediction with nothing present.

    Returns
    -------
    ShapleyResult
        ``attributions`` is a Series (one value per modality).

    Examples
    --------
    >>> import numpy as np
    >>> class OnlyA:  # class 1 with p = 0.9 when modality "a" is present, else a coin flip
    ...     classes_, modalities_ = np.array([0, 1]), ["a", "b"]
    ...     def predict_proba(self, X, mask=None):
    ...         p = np.where(mask["a"], 0.9, 0.5)
    ...         return np.column_stack([1 - p, p])
    >>> X = {"a": np.zeros((4, 1)), "b": np.zeros((4, 1))}
    >>> res = modality_shapley(OnlyA(), X, np.array([1, 1, 1, 1]), value="accuracy")
    >>> res.attributions.to_dict()
    {'a': 1.0, 'b': 0.0}
    """
    X, present, n = _check_X(X, mask)
    players = _players(model, X, modalities)
    subsets, probas = _subset_probas(model, X, present, players, empty, n)
    classes = _classes_of(model, probas[-1].shape[1])
    y_idx = encode_known(y, classes, n)
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

    Parameters
    ----------
    model : estimator
        Has ``predict_proba(X, mask=None)``, ``classes_`` and (optionally) ``modalities_``.
    X : dict of str to array
        Per-modality inputs ``(n, d_m)`` or ``(n, T, d_m)``.
    mask : dict of str to bool array, optional
        Presence flags (``None``: all present).
    target : "pred", "true" or label(s), default "pred"
        The class whose probability is explained.
    y : array of shape (n,), optional
        True labels (for ``target="true"``).
    log : bool, default False
        Explain the log probability instead.
    modalities : sequence of str, optional
        The players (default ``model.modalities_``).
    empty : str or sequence of float, default "model"
        The prediction with nothing present.

    Returns
    -------
    ShapleyResult
        ``attributions`` is a DataFrame ``(n, M)``; each row sums to ``p(all) - p(none)``.

    Examples
    --------
    >>> import numpy as np
    >>> class OnlyA:  # class 1 with p = 0.9 when modality "a" is present, else a coin flip
    ...     classes_, modalities_ = np.array([0, 1]), ["a", "b"]
    ...     def predict_proba(self, X, mask=None):
    ...         p = np.where(mask["a"], 0.9, 0.5)
    ...         return np.column_stack([1 - p, p])
    >>> X = {"a": np.zeros((4, 1)), "b": np.zeros((4, 1))}
    >>> res = sample_shapley(OnlyA(), X, target=1)
    >>> res.attributions.round(3).iloc[0].to_dict()
    {'a': 0.4, 'b': 0.0}
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
