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

Modules: :mod:`~mmlab.explain.shapley`, :mod:`~mmlab.explain.gradients` (attention and
Integrated Gradients), :mod:`~mmlab.explain.subgroups`, :mod:`~mmlab.explain.plots`; input
checks go through :func:`mmlab.fusion._contract.check_inputs` like every fusion model.

Bad input (ragged arrays, a mask of the wrong length, labels the model does not know, a
model without ``modality_weights``) raises :class:`~mmlab.errors.SchemaError` or
:class:`~mmlab.errors.MMLabError` naming what is wrong.
"""

from mmlab.explain._common import MAX_EXACT_MODALITIES
from mmlab.explain.gradients import IGResult, attention_summary, integrated_gradients
from mmlab.explain.plots import plot_attention_summary, plot_modality_attributions, plot_subgroup_gaps
from mmlab.explain.shapley import ShapleyResult, modality_shapley, modality_subsets, sample_shapley, shapley_values
from mmlab.explain.subgroups import bias_amplification, subgroup_gap, subgroup_labels, subgroup_metrics

__all__ = [
    "MAX_EXACT_MODALITIES", "shapley_values", "modality_subsets", "ShapleyResult",
    "modality_shapley", "sample_shapley", "attention_summary", "IGResult",
    "integrated_gradients", "subgroup_labels",
    "subgroup_metrics", "subgroup_gap", "bias_amplification", "plot_modality_attributions",
    "plot_attention_summary", "plot_subgroup_gaps",
]
