"""Fusion models with one input contract (chapters 30_fusion_taxonomy, 31_attention_transformers).

The contract (every model here, and :mod:`mmlab.explain`, relies on it)
-----------------------------------------------------------------------

* **Inputs**: ``X: dict[str, array]`` — per-modality features, shape ``(n, d_m)`` (or
  ``(n, T, d_m)`` for temporal models), numpy arrays or torch tensors. The keys are the
  modality names; a model uses the modalities it was fitted on (``modalities_``, in that
  order) and ignores extra keys.
* **Presence**: ``mask: dict[str, array[bool]]`` of shape ``(n,)`` — True where the
  modality is present (temporal models also accept ``(n, T)``). ``mask=None`` means all
  present; a modality missing from ``mask`` is present in every row. A missing modality is
  ordinary input: models never read values where the mask is False (they may be NaN) —
  never an accidental zero. :func:`make_mask` marks rows with any NaN as absent. A row
  marked present that holds NaN/inf raises :class:`~mmlab.errors.SignalError`.
* **Every model** (classic and deep) exposes ``fit(X, y, mask=None)``,
  ``predict_proba(X, mask=None) -> ndarray (n, n_classes)``, ``predict(X, mask=None)``,
  and ``modalities_`` / ``classes_`` (columns of ``predict_proba`` follow ``classes_``,
  sorted as in scikit-learn). Classic models follow the scikit-learn estimator API
  (``get_params``/``set_params``, :func:`sklearn.base.clone`); deep models are
  ``nn.Module`` s wrapped by a small scikit-learn-style estimator with an explicit training
  loop (tqdm bar with ``progress=True``, early stopping on a validation split, seeded by
  ``random_state``, ``device="cpu"`` by default).

Models
------

Classic (:mod:`mmlab.fusion.classic`, scikit-learn base classifiers):
:class:`EarlyFusion` (concatenation with per-modality standardisation; absent modality =
mean imputation + a presence-indicator feature), :class:`LateFusion` (per-modality
classifiers, probabilities averaged over the present modalities), :class:`StackingFusion`
(a meta-classifier on out-of-fold per-modality probabilities), :class:`HybridFusion`
(early + late).

Deep (:mod:`mmlab.fusion.deep`, PyTorch): :class:`TensorFusion` (outer product with
appended 1s), :class:`LowRankFusion` (LMF), :class:`AttentionFusion` (per-sample modality
weights via ``modality_weights(X, mask) -> DataFrame``; absent modalities get weight exactly
0 via ``-inf`` logits), :class:`TransformerFusion` (modality tokens, presence via the key
padding mask), :class:`GatedFusion`, :class:`TemporalFusion` (an LSTM over a sequence of
windows). All deep models (and :class:`EarlyFusion`, :class:`StackingFusion`) take
``modality_dropout``: during training, modalities are hidden at random so the model
learns to work without any one of them.

A unimodal baseline is any model restricted to one modality, e.g.
``EarlyFusion(modalities=["ecg"])``.
"""

from __future__ import annotations

from mmlab.fusion._contract import as_numpy, check_inputs, drop_modalities, make_mask
from mmlab.fusion.classic import EarlyFusion, HybridFusion, LateFusion, StackingFusion

_DEEP = ("DeepFusion", "TensorFusion", "LowRankFusion", "AttentionFusion", "TransformerFusion",
         "GatedFusion", "TemporalFusion")

__all__ = ["make_mask", "check_inputs", "as_numpy", "drop_modalities",
           "EarlyFusion", "LateFusion", "StackingFusion", "HybridFusion", *_DEEP]


def __getattr__(name: str):
    """Deep models are imported on first use, so ``import mmlab.fusion`` does not load torch."""
    if name in _DEEP:
        from mmlab.fusion import deep

        return getattr(deep, name)
    raise AttributeError(f"module 'mmlab.fusion' has no attribute {name!r}")
