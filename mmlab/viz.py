"""Plots of the schema's objects (chapter 05_data).

Only matplotlib; every function takes an optional ``ax``/``axes`` and returns what it drew
on, so notebooks can compose figures.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mmlab.errors import SchemaError
from mmlab.recording import Recording, Stream

#: One colour per common phase/label name, so every chapter shades phases alike.
PHASE_COLOURS = {
    "baseline": "#9ecae1", "stress": "#fc9272", "amusement": "#a1d99b",
    "meditation": "#dadaeb", "transient": "#f0f0f0",
}


def _decimate_for_plot(t: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Every k-th sample so a plot holds at most ``max_points`` points (display only)."""
    step = max(1, int(np.ceil(len(t) / max_points)))
    return t[::step], y[::step]


def phase_colours(labels) -> dict[str, str]:
    """A colour per label: the shared ones for WESAD-style phases, then a qualitative palette
    in order of first appearance (so real datasets' own phase names stay distinguishable)."""
    from matplotlib import colormaps

    palette = [colormaps["Pastel1"](i) for i in range(9)] + [colormaps["Pastel2"](i) for i in range(8)]
    out, k = {}, 0
    for label in dict.fromkeys(labels):
        if label in PHASE_COLOURS:
            out[label] = PHASE_COLOURS[label]
        else:
            out[label] = palette[k % len(palette)]
            k += 1
    return out


def shade_phases(ax, recording: Recording, kind: str = "phase", alpha: float = 0.35,
                 skip: Sequence[str] = ("transient",)) -> list[str]:
    """Shade the ``kind`` annotations of ``recording`` on ``ax``; return the labels shaded."""
    shaded = []
    colours = phase_colours(recording.phases(kind)["label"])
    for row in recording.phases(kind).itertuples():
        if row.label in skip:
            continue
        colour = colours[row.label]
        ax.axvspan(row.onset, row.onset + row.duration, color=colour, alpha=alpha, lw=0,
                   label=row.label if row.label not in shaded else None)
        shaded.append(row.label)
    return shaded


def plot_recording(recording: Recording, streams: Sequence[str] | None = None,
                   start: float | None = None, end: float | None = None,
                   max_points: int = 4000, axes=None):
    """Stacked plots of 1-D/2-D streams against time, phases shaded; returns the axes.

    Times are each stream's own device clock, which equals the reference clock when the
    devices are synchronised (see chapter 20 for when they are not).
    """
    import matplotlib.pyplot as plt

    names = list(streams) if streams is not None else [
        s.name for s in recording.streams.values() if s.data.ndim == 2 and s.modality != "audio"]
    if not names:
        raise SchemaError(f"recording {recording.subject!r}: no streams to plot")
    if axes is None:
        _, axes = plt.subplots(len(names), 1, sharex=True, figsize=(10, 1.6 * len(names) + 0.6),
                               squeeze=False)
        axes = axes[:, 0]
    for ax, name in zip(axes, names):
        s: Stream = recording[name]
        if s.data.ndim != 2:
            raise SchemaError(f"stream {name!r} holds {s.data.ndim}-D samples (images?); plot it on its own")
        t = s.timestamps()
        lo = t[0] if start is None else start
        hi = t[-1] if end is None else end
        keep = (t >= lo) & (t <= hi)
        for c, ch in enumerate(s.channels):
            tt, yy = _decimate_for_plot(t[keep], s.data[keep, c], max_points)
            ax.plot(tt, yy, lw=0.6, label=ch if s.n_channels > 1 else None)
        shade_phases(ax, recording)
        unit = s.units[0] if s.units and s.units[0] else ""
        ax.set_ylabel(f"{name}\n[{unit}]" if unit else name, fontsize=8)
        ax.set_xlim(lo, hi)
    axes[-1].set_xlabel("time (s)")
    handles, labels = axes[0].get_legend_handles_labels()
    if labels:
        axes[0].legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                       frameon=False)
    axes[0].set_title(f"subject {recording.subject}")
    return axes
