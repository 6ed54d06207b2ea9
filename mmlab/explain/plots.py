"""Plots of attributions, attention and subgroup gaps; each returns the matplotlib ``Axes``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mmlab.errors import SchemaError
from mmlab.explain.gradients import IGResult
from mmlab.explain.shapley import ShapleyResult


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
