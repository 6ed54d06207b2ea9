"""Gradient and attention attributions of deep fusion models (Part 3, interpretability).

* :func:`attention_summary`: mean ``modality_weights`` per class or subgroup, counting a
  modality only where it is present;
* :func:`integrated_gradients` (Sundararajan, Taly & Yan 2017) through captum, summed over
  each modality's features, with the completeness gap reported per sample.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from mmlab.errors import MMLabError, SchemaError
from mmlab.explain._common import _EPS, _check_X, _classes_of, _index_of, _target_indices, _to_numpy


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

    Parameters
    ----------
    model : estimator or DataFrame
        An attention fusion model (``modality_weights``) or its weights ``(n, M)``.
    X, mask : dict, optional
        Inputs and presence flags (``X`` is needed to ask a model for its weights).
    by : array of shape (n,), optional
        A group label per sample.
    present_only : bool, default True
        Average a modality's weight only where it is present.

    Returns
    -------
    DataFrame
        One row per group, one column per modality, plus ``n``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> w = pd.DataFrame({"a": [0.8, 0.6, 0.0], "b": [0.2, 0.4, 1.0]})
    >>> attention_summary(w, by=["x", "x", "y"], present_only=False).round(3).to_dict("index")
    {'x': {'a': 0.7, 'b': 0.3, 'n': 2}, 'y': {'a': 0.0, 'b': 1.0, 'n': 1}}
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

    Parameters
    ----------
    model : estimator or nn.Module
        A deep contract estimator (``net_``) or a module called as ``(xs, present)``.
    X : dict of str to array
        Per-modality inputs ``(n, d_m)`` or ``(n, T, d_m)``.
    mask : dict of str to bool array, optional
        Presence flags (``None``: all present).
    target, y, baseline, reference, reference_mask, output, modalities, forward
        See above.
    n_steps : int, default 64
        Quadrature steps along the path.
    internal_batch_size : int, optional
        Passed to captum (memory bound).

    Returns
    -------
    IGResult
        ``per_modality`` ``(n, M)``, ``per_feature``, the completeness gap ``delta``.

    Examples
    --------
    A linear logit ``2 * sum(a) + sum(b)`` from a zero baseline: the attributions are the
    terms themselves.

    >>> import numpy as np, torch
    >>> class Linear(torch.nn.Module):
    ...     def forward(self, xs, present):
    ...         z = 2 * xs[0].sum(dim=1) + xs[1].sum(dim=1)
    ...         return torch.stack([torch.zeros_like(z), z], dim=1)
    >>> X = {"a": np.ones((3, 2)), "b": np.ones((3, 1))}
    >>> res = integrated_gradients(Linear(), X, output="logit", target=1, baseline="zeros")
    >>> res.per_modality.round(3).iloc[0].to_dict()
    {'a': 4.0, 'b': 1.0}
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
