"""A small stress detector trained on synthetic data, for the deploy tests, benchmark and
chapter 60 (not a model to deploy)."""

from __future__ import annotations

from mmlab import synth
from mmlab.systems.stress import StressDetector

#: short sessions, short calibration: the settings of the stress tests.
FAST = dict(baseline_s=60, block_s=30, min_duration_s=20, refractory_s=60, epochs=30)


def demo_detector(model: str = "temporal", n_subjects: int = 5, seed: int = 3, held_out: int = 1,
                  progress: bool = False):
    """``(detector, cohort, tables)``: a detector fitted on all but the last ``held_out``
    subjects of ``synth.stress_protocol(n_subjects, fast=True, seed)`` and the feature
    tables of every subject (``progress``: a bar over the subjects' feature tables)."""
    cohort = synth.stress_protocol(n_subjects=n_subjects, fast=True, seed=seed)
    det = StressDetector(model=model, **FAST)
    tables = det.tables(cohort, progress=progress)
    subjects = sorted(tables["subject"].unique())
    train = tables[tables["subject"].isin(subjects[:len(subjects) - held_out])]
    return det.fit(train), cohort, tables
