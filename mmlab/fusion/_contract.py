"""The input contract shared by every fusion model (chapter 30_fusion_taxonomy).

Everything here turns what a caller passes (``X``: a dict of per-modality arrays or
tensors, ``mask``: a dict of per-row presence flags) into checked float64 numpy arrays in
which absent rows hold zeros, so that no model can ever read a value the mask hides.
See the docstring of :mod:`mmlab.fusion` for the contract itself.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from mmlab.errors import SchemaError, SignalError


def as_numpy(value: Any, name: str = "array") -> np.ndarray:
    """A numpy float64 copy of ``value`` (numpy array, list, or torch tensor on any device)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{name} must be numeric, got {type(value).__name__}: {exc}") from None
    return arr


def _as_bool(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype != bool:
        if arr.dtype.kind not in "iuf" or not np.isin(arr, (0, 1)).all():
            raise SchemaError(f"{name} must hold booleans (True = present), got dtype {arr.dtype}")
        arr = arr.astype(bool)
    return arr


def make_mask(X: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Presence flags: a row is absent where it has any NaN (chapter 30_fusion_taxonomy).

    For ``(n, d)`` arrays the result has shape ``(n,)``; for temporal ``(n, T, d)`` arrays
    it has shape ``(n, T)`` (one flag per window of each sequence). Use it when missing
    values arrive as NaN, e.g. from a feature table where a sensor dropped out.
    """
    if not isinstance(X, Mapping) or not X:
        raise SchemaError("X must be a non-empty dict {modality: array}")
    out = {}
    for m, v in X.items():
        a = as_numpy(v, f"X[{m!r}]")
        if a.ndim < 2:
            raise SchemaError(f"X[{m!r}] must have shape (n, d) or (n, T, d), got {a.shape}")
        out[m] = ~np.isnan(a).any(axis=-1)
    return out


def check_inputs(X: Mapping[str, Any], mask: Mapping[str, Any] | None = None,
                 modalities: Sequence[str] | None = None, *, temporal: bool = False,
                 dims: Mapping[str, int] | None = None) -> tuple[dict, dict, int]:
    """Validate ``X``/``mask`` and return ``(X_safe, present, n)``.

    ``X_safe[m]`` is a float64 array with zeros wherever ``present[m]`` is False (the
    caller's values there are never looked at beyond this copy: NaN is fine); ``present[m]``
    is a bool array of shape ``(n,)`` (``(n, T)`` when ``temporal``; a ``(n,)`` mask is
    broadcast over time). ``modalities`` selects (and orders) the modalities a model uses;
    extra keys in ``X`` are ignored. ``dims`` are the feature sizes seen at fit time.

    Raises :class:`~mmlab.errors.SchemaError` for a wrong layout (missing modality,
    shapes, row counts, feature sizes) and :class:`~mmlab.errors.SignalError` when a row
    marked present holds NaN or inf.
    """
    if not isinstance(X, Mapping) or not X:
        raise SchemaError("X must be a non-empty dict {modality: array of shape (n, d)}")
    names = list(X) if modalities is None else list(modalities)
    absent_keys = [m for m in names if m not in X]
    if absent_keys:
        raise SchemaError(f"X has no modality {', '.join(map(repr, absent_keys))} "
                          f"(it has {', '.join(map(repr, X))}); pass every modality the model "
                          "was fitted on and mark absent rows in mask instead")
    if mask is not None and not isinstance(mask, Mapping):
        raise SchemaError("mask must be None or a dict {modality: bool array of shape (n,)}")
    ndim = 3 if temporal else 2
    xs, present, n = {}, {}, None
    for m in names:
        a = as_numpy(X[m], f"X[{m!r}]")
        if a.ndim == ndim - 1 and not temporal:
            a = a[:, None]  # a single feature given as a vector
        if a.ndim != ndim:
            want = "(n, T, d)" if temporal else "(n, d)"
            raise SchemaError(f"X[{m!r}] must have shape {want}, got {a.shape}")
        if n is None:
            n = a.shape[0]
        elif a.shape[0] != n:
            raise SchemaError(f"X[{m!r}] has {a.shape[0]} rows but the other modalities have {n}")
        if dims is not None and m in dims and a.shape[-1] != dims[m]:
            raise SchemaError(f"X[{m!r}] has {a.shape[-1]} features but the model was fitted "
                              f"with {dims[m]}")
        lead = a.shape[:-1]
        if mask is None or m not in mask or mask[m] is None:
            p = np.ones(lead, dtype=bool)
        else:
            p = _as_bool(mask[m], f"mask[{m!r}]")
            if temporal and p.shape == (n,):
                p = np.repeat(p[:, None], a.shape[1], axis=1)
            if p.shape != lead:
                raise SchemaError(f"mask[{m!r}] must have shape {lead}, got {p.shape}")
        bad = p & ~np.isfinite(a).all(axis=-1)
        if bad.any():
            raise SignalError(
                f"X[{m!r}] has NaN or inf in {int(bad.sum())} row(s) marked present "
                f"(first: {np.argwhere(bad)[0].tolist()}); mark them absent with "
                "mmlab.fusion.make_mask(X) or impute them first")
        xs[m] = np.where(p[..., None], a, 0.0)
        present[m] = p
    if not names:
        raise SchemaError("no modalities selected")
    return xs, present, int(n)


def check_target(y: Any, n: int) -> np.ndarray:
    """``y`` as a 1-D array of length ``n`` (labels of any hashable type)."""
    if hasattr(y, "detach") and hasattr(y, "cpu"):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise SchemaError(f"y must have shape ({n},), got {y.shape}")
    if len(np.unique(y)) < 2:
        raise SchemaError("y must contain at least two classes")
    return y


def encode_known(y: Any, classes: Any, n: int, what: str = "y") -> np.ndarray:
    """Positions in ``classes`` of labels ``y`` (shape ``(n,)``) for an already fitted model:
    a wrong shape, or a label the model was not trained on (also one of another type), is a
    :class:`SchemaError` naming it; ``what`` names the labels in the message."""
    y = np.asarray(y)
    if y.shape != (n,):
        raise SchemaError(f"{what} must have shape ({n},), got {y.shape}")
    classes = np.asarray(classes)
    order = np.argsort(classes, kind="stable")
    try:
        pos = np.searchsorted(classes[order], y)
    except TypeError:  # labels of another type than the classes (str vs int)
        pos = np.zeros(len(y), dtype=int)
    idx = order[np.clip(pos, 0, len(classes) - 1)]
    bad = np.asarray(classes[idx] != y, dtype=bool)
    if np.any(bad):
        raise SchemaError(f"{what} holds labels {sorted(set(y[bad].tolist()))[:5]} that are not among the "
                          f"model's classes {classes.tolist()}")
    return idx


class ModalityScaler:
    """Per-modality standardisation fitted on present rows only (mean 0, sd 1 per feature).

    ``transform`` keeps absent rows at exactly 0 (the training mean): mean imputation in
    the standardised space. Constant features get scale 1.
    """

    def fit(self, xs: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray]) -> "ModalityScaler":
        self.mean_, self.scale_ = {}, {}
        for m, a in xs.items():
            rows = a[present[m]]
            if len(rows) == 0:
                raise SchemaError(f"modality {m!r} is absent in every training row; drop it "
                                  "from X or from the model's modalities")
            mu = rows.mean(axis=0)
            sd = rows.std(axis=0)
            self.mean_[m] = mu
            self.scale_[m] = np.where(sd > 1e-12, sd, 1.0)
        return self

    def transform(self, xs: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray]) -> dict:
        return {m: np.where(present[m][..., None], (a - self.mean_[m]) / self.scale_[m], 0.0)
                for m, a in xs.items()}


def drop_modalities(present: Mapping[str, np.ndarray], p: float,
                    rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Modality dropout: hide each present modality of each row with probability ``p``.

    A row never loses all of its present modalities: where the draw would hide all of
    them, one of them (chosen at random) stays. Works for ``(n,)`` and ``(n, T)`` masks
    (a modality is dropped for the whole sequence).
    """
    names = list(present)
    P = np.stack([np.asarray(present[m]) for m in names])  # (M, n) or (M, n, T)
    per_row = P.reshape(len(names), P.shape[1], -1).any(axis=2)  # (M, n)
    keep = rng.uniform(size=per_row.shape) >= p
    keep &= per_row
    lost_all = ~keep.any(axis=0) & per_row.any(axis=0)
    if lost_all.any():
        score = np.where(per_row[:, lost_all], rng.uniform(size=(len(names), int(lost_all.sum()))), -1.0)
        keep[score.argmax(axis=0), np.flatnonzero(lost_all)] = True
    shape = (P.shape[1],) + (1,) * (P.ndim - 2)
    return {m: np.asarray(present[m]) & keep[i].reshape(shape) for i, m in enumerate(names)}
