"""Synchronising devices: resampling, windows, clocks, gaps (chapter 20_alignment).

The layer between the schema (:mod:`mmlab.recording`) and the features: it takes a
Recording whose streams sit on their own devices' clocks, at their own rates, with holes,
and makes them comparable window by window.

=========================  ===========================================================
:mod:`~mmlab.align.resample`  anti-aliased :func:`resample`, :func:`interpolate_irregular`
                              (IBI onto a grid), :func:`common_grid`
:mod:`~mmlab.align.windows`   :func:`window_table`: windows with labels by rule
                              (``majority``, ``centre``, ``any``, ``pure``)
:mod:`~mmlab.align.clocks`    offsets from a shared tap (:func:`tap_offset`) or by
                              cross-correlation (:func:`xcorr_offset`), drift
                              (:func:`estimate_clock`, :func:`fit_drift`), correction
                              (:func:`align_recording`), jitter (:func:`dejitter`)
:mod:`~mmlab.align.gaps`      :func:`find_gaps`, :func:`coverage` and
                              :func:`presence_mask` per window for fusion
=========================  ===========================================================

A typical pipeline::

    from mmlab import align
    off = align.tap_offset(rec["chest_acc"], rec["wrist_acc"], start=0, end=20)
    clock = align.estimate_clock(rec["chest_eda"], rec["wrist_eda"], around_s=off,
                                 segment_s=120, max_lag_s=0.5)
    aligned = align.align_recording(rec, {"wrist": clock})
    windows = align.window_table(aligned, 60, 30, label_rule="majority")
    present = align.presence_mask(aligned, windows, min_coverage=0.5)

Clock model (as ``Recording.meta["clock_truth"]``):
``device_time = offset_s + (1 + drift_ppm * 1e-6) * reference_time``.
"""

from __future__ import annotations

from mmlab.align.clocks import (
    Lag,
    align_recording,
    dejitter,
    estimate_clock,
    event_offset,
    fit_drift,
    jolt_times,
    offset_track,
    regularize,
    tap_offset,
    to_reference,
    xcorr_curve,
    xcorr_lag,
    xcorr_offset,
)
from mmlab.align.gaps import coverage, find_gaps, presence_mask, valid_intervals
from mmlab.align.resample import (
    common_grid,
    grid_times,
    interpolate_irregular,
    median_interval,
    rational_ratio,
    resample,
)
from mmlab.align.windows import LABEL_RULES, window_labels, window_table

__all__ = [
    "resample", "interpolate_irregular", "common_grid", "grid_times", "rational_ratio",
    "median_interval",
    "LABEL_RULES", "window_table", "window_labels",
    "Lag", "jolt_times", "event_offset", "tap_offset", "xcorr_curve", "xcorr_lag", "xcorr_offset",
    "offset_track", "fit_drift", "estimate_clock", "to_reference", "align_recording",
    "dejitter", "regularize",
    "find_gaps", "valid_intervals", "coverage", "presence_mask",
]
