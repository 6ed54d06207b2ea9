"""Out-of-fold modality weights of attention and gated fusion (chapter 31_attention_transformers).

:func:`cross_val_weights` fits a fresh clone of a model with ``modality_weights`` (e.g.
:class:`~mmlab.fusion.AttentionFusion`, :class:`~mmlab.fusion.GatedFusion`) on each
training fold and records, for the held-out rows, the per-row modality weights and class
probabilities, on clean test data and under test-time perturbations (e.g. a modality
noised with :func:`mmlab.evaluate.add_noise`). Splits are passed in (e.g.
:func:`mmlab.evaluate.loso_splits`), so this module stays below :mod:`mmlab.evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd
from sklearn.base import clone

from mmlab.errors import SchemaError


@dataclass
class WeightsResult:
    """``weights[name]``: a DataFrame ``(n, M)`` of out-of-fold modality weights (columns:
    the model's modalities); ``proba[name]``: ``(n, C)`` probabilities (columns
    ``classes``); ``name`` is ``"none"`` for clean test data or a perturbation's name;
    ``y`` the labels."""

    classes: np.ndarray
    y: np.ndarray
    weights: dict[str, pd.DataFrame] = field(default_factory=dict)
    proba: dict[str, np.ndarray] = field(default_factory=dict)

    def predictions(self, name: str = "none") -> np.ndarray:
        return self.classes[self.proba[name].argmax(axis=1)]


def _take(D, idx):
    return None if D is None else {m: np.asarray(v)[idx] for m, v in D.items()}


def cross_val_weights(model, X: Mapping[str, Any], y: Any, splits: Iterable, mask: Mapping[str, Any] | None = None,
                      perturbations: Mapping[str, Callable] | None = None,
                      train_transform: Callable | None = None, progress: bool = False) -> WeightsResult:
    """Out-of-fold modality weights and probabilities of ``model`` (chapter
    31_attention_transformers).

    ``splits``: ``(train_idx, test_idx)`` pairs covering every row once (e.g.
    ``mmlab.evaluate.loso_splits(groups)``). ``perturbations[name](X_test, mask_test) ->
    (X, mask)`` changes the test fold only; ``train_transform(X, mask, y) -> (X, mask, y)``
    changes the training fold only (e.g. augmentation with noised copies). ``progress=True``
    shows a tqdm bar over the folds.
    """
    from tqdm.auto import tqdm

    if not hasattr(model, "modality_weights"):
        raise SchemaError(f"{type(model).__name__} has no modality_weights(); use AttentionFusion or GatedFusion")
    y = np.asarray(y)
    n = len(y)
    classes = np.unique(y)
    names = ["none", *(perturbations or {})]
    weights: dict[str, list] = {k: [] for k in names}
    proba = {k: np.full((n, len(classes)), np.nan) for k in names}
    order = []
    total = len(splits) if hasattr(splits, "__len__") else None
    for train, test in tqdm(splits, desc=type(model).__name__, total=total, disable=not progress):
        train, test = np.asarray(train), np.asarray(test)
        Xt, mt, yt = _take(X, train), _take(mask, train), y[train]
        if train_transform is not None:
            Xt, mt, yt = train_transform(Xt, mt, yt)
        m = clone(model).fit(Xt, yt, mt)
        cols = np.searchsorted(classes, m.classes_)
        Xe, me = _take(X, test), _take(mask, test)
        for k in names:
            Xk, mk = (Xe, me) if k == "none" else perturbations[k](Xe, me)
            w = m.modality_weights(Xk, mk)
            w.index = test
            weights[k].append(w)
            p = np.zeros((len(test), len(classes)))
            p[:, cols] = m.predict_proba(Xk, mk)
            proba[k][test] = p
        order.append(test)
    if np.isnan(proba["none"]).any():
        raise SchemaError("the splits do not cover every row; pass splits that test each row once")
    return WeightsResult(classes=classes, y=y, proba=proba,
                         weights={k: pd.concat(v).sort_index() for k, v in weights.items()})
