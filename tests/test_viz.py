"""Plots of recordings: one axis per stream, phases shaded, clear errors."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from mmlab.errors import SchemaError
from mmlab.recording import Recording, Stream
from mmlab.viz import plot_recording, shade_phases


def _rec():
    t = np.arange(0, 100, 0.1)
    return Recording("01", [
        Stream("ecg", np.sin(t), "ecg", rate=10, units="mV"),
        Stream("acc", np.c_[t, -t, t * 0], "acc", rate=10, channels=["x", "y", "z"]),
        Stream("img", np.zeros((3, 4, 4)), "image", rate=0.1),
    ], [{"onset": 0, "duration": 40, "kind": "phase", "label": "baseline"},
        {"onset": 40, "duration": 10, "kind": "phase", "label": "transient"},
        {"onset": 50, "duration": 50, "kind": "phase", "label": "stress"}])


def test_plot_recording_one_axis_per_stream_with_phases():
    axes = plot_recording(_rec(), start=10, end=90)
    assert len(axes) == 2  # the image stream is not plotted by default
    assert [len(ax.lines) for ax in axes] == [1, 3]
    assert axes[0].get_xlim() == (10, 90)
    assert len(axes[0].patches) == 2  # baseline and stress shaded, transient skipped


def test_shade_phases_returns_labels():
    import matplotlib.pyplot as plt

    _, ax = plt.subplots()
    assert shade_phases(ax, _rec(), skip=()) == ["baseline", "transient", "stress"]


def test_plot_rejects_image_stream():
    with pytest.raises(SchemaError, match="stream 'img' holds 3-D samples"):
        plot_recording(_rec(), streams=["img"])


def test_phase_colours_distinguish_unknown_labels():
    from mmlab.viz import PHASE_COLOURS, phase_colours

    c = phase_colours(["stress", "stroop", "relax", "stroop", "interview"])
    assert c["stress"] == PHASE_COLOURS["stress"]
    assert len({str(c[k]) for k in ("stroop", "relax", "interview")}) == 3
