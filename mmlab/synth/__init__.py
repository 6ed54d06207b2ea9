"""Deterministic synthetic multimodal cohorts (chapter 05_data).

``make_cohort(scenario, n_subjects, seed, fast, **knobs)`` returns a
:class:`~mmlab.recording.Cohort` for one of :data:`SCENARIOS`; the same arguments give
identical arrays, offline. One function per scenario does the same:

* :func:`stress_protocol` — WESAD-like lab sessions: chest ECG/EDA/RESP/ACC at 700 Hz,
  wrist BVP/EDA/ACC/TEMP/IBI at Empatica E4 rates, spoken self-reports; phases baseline,
  stress, amusement, meditation;
* :func:`call_center` — one call per caller: telephone audio, aligned transcripts, a
  satisfaction label, a wearable heart rate for some callers;
* :func:`icu_ward` — patients in several hospitals with different case mix: per-minute
  vitals, charted temperature and blood pressure, nurse notes, short interactions, a sepsis
  label with its onset;
* :func:`factory` — machines: kHz vibration, small thermal images, operator notes, a
  failure label with bearing-defect physics.

Every scenario shares knobs for noise, between-subject variability, per-modality
informativeness, missing modalities, sensor dropouts and device clocks (offset, drift,
timestamp jitter), and writes their ground truth into ``Recording.meta``:

* ``clock_truth[device] = {"offset_s", "drift_ppm", "jitter_s"}`` with
  ``device_time = offset_s + (1 + drift_ppm * 1e-6) * reference_time``; the scenario's
  ``reference_device`` has zeros, and annotations are on its clock;
* ``dropouts``: ``{"stream", "start", "end", "clock": "device", "ref_start", "ref_end",
  "fill"}`` — samples of a regular stream with ``start <= t < end`` (its device seconds)
  are NaN (``fill="nan"``); irregular streams lose those samples (``fill="cut"``);
* ``missing``: devices/modalities left out; ``truth``: scenario-specific ground truth
  (R peaks, SCR onsets, breaths, sepsis onset, bearing defect frequencies...).

With ``clock_offset_s``, ``clock_drift_ppm``, ``timestamp_jitter_s`` and
``dropout_per_hour`` at 0 the devices are perfectly aligned and gap-free. The building
blocks live in
:mod:`~mmlab.synth.physio`, :mod:`~mmlab.synth.voice`, :mod:`~mmlab.synth.text`,
:mod:`~mmlab.synth.images` and :mod:`~mmlab.synth.vibration`; :mod:`~mmlab.synth.eeg` simulates
a motor-imagery EEG session (chapter 14_eeg).
"""

from __future__ import annotations

from mmlab.synth.scenarios import SCENARIOS, _scenario_function, describe_knobs, knobs, make_cohort, write_cohort

stress_protocol = _scenario_function("stress_protocol")
call_center = _scenario_function("call_center")
icu_ward = _scenario_function("icu_ward")
factory = _scenario_function("factory")

__all__ = ["SCENARIOS", "make_cohort", "write_cohort", "knobs", "describe_knobs",
           "stress_protocol", "call_center", "icu_ward", "factory"]
