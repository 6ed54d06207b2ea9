"""Deterministic synthetic multimodal data (chapter 05_data).

Building blocks: :mod:`~mmlab.synth.physio` (ECG, PPG/BVP, EDA, respiration),
:mod:`~mmlab.synth.voice` (a source-filter voice synthesizer), :mod:`~mmlab.synth.text`
(a templated grammar with planted cues), :mod:`~mmlab.synth.images` (thermal frames) and
:mod:`~mmlab.synth.vibration` (bearing-fault vibration); :mod:`~mmlab.synth._base` holds
seeds, knobs, device clocks and dropouts shared by the scenarios.
"""
