"""Input checks and model plumbing shared by the explain modules (the fusion contract)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from mmlab.errors import MMLabError, SchemaError
from mmlab.fusion._contract import check_inputs, encode_known


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
        return encode_known(y, classes, n)
    t = np.asarray(target)
    return encode_known(np.repeat(t[None], n) if t.ndim == 0 else t, classes, n)


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
