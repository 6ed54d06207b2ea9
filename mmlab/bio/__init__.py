"""Biosignals: thin, tested wrappers over neurokit2 and biosppy (chapters 12_ecg_hrv, 13_eda).

* :mod:`mmlab.bio.ecg` — cleaning, R-peaks (neurokit2 and biosppy detectors), RR
  intervals, HRV in the time and frequency domain, signal quality, peak matching;
* :mod:`mmlab.bio.eda` — tonic/phasic decomposition, skin-conductance responses, SCL;
* :mod:`mmlab.bio.resp` — respiration cleaning, breaths, breathing rate;
* :mod:`mmlab.bio.quality` — input checks and masks of missing, flat and clipped samples;
* :mod:`mmlab.bio.eeg` — EEG with MNE (chapter 14_eeg).

What the wrappers add to the libraries: one :class:`~mmlab.errors.SignalError` naming the
problem for input no method can process (wrong rate, too short, all NaN, flat ECG),
detectors that skip dropouts instead of inventing events in them, detectors that consult
signal quality (no R-peaks, SCRs or breaths in noise or a lead-off trace), unit checks
where a plausible range exists (RR in seconds, EDA in µS), and amplitude floors where a
library's relative threshold finds events in noise. Importing this package is
cheap: neurokit2, biosppy and MNE are imported by the functions that use them.
"""

from __future__ import annotations

from mmlab.bio import ecg, eda, eeg, quality, resp

__all__ = ["ecg", "eda", "eeg", "resp", "quality"]
