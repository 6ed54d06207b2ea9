"""The scenario registry and :func:`make_cohort` (chapter 05_data).

A scenario module (``stress``, ``call_center``, ``icu``, ``factory``) defines ``NAME``,
``PREFIX`` (of subject ids), ``KNOBS``, ``LABEL_NAMES``, optionally
``finalize_knobs(knobs, fast)`` (defaults that depend on ``fast``), ``plan(n, seed, knobs, fast)``
(cohort-level choices such as balanced labels or hospital assignment) and
``make_subject(i, sid, seed, knobs, fast, plan_i) -> (Recording, participants row)``.
This module checks the arguments, runs the subjects and assembles the Cohort.
"""

from __future__ import annotations

import importlib
from typing import Any

import pandas as pd

from mmlab.errors import SchemaError
from mmlab.recording import Cohort
from mmlab.synth import _base as B

_MODULES = {
    "stress_protocol": "mmlab.synth.stress",
    "call_center": "mmlab.synth.call_center",
    "icu_ward": "mmlab.synth.icu",
    "factory": "mmlab.synth.factory",
}

#: The scenario names :func:`make_cohort` accepts.
SCENARIOS: tuple[str, ...] = tuple(_MODULES)


def _module(scenario: str):
    if scenario not in _MODULES:
        raise SchemaError(f"unknown scenario {scenario!r}; valid scenarios: {', '.join(SCENARIOS)}")
    return importlib.import_module(_MODULES[scenario])


def knobs(scenario: str) -> dict[str, Any]:
    """The default knob values of ``scenario`` (what ``--set`` can change)."""
    return {k: v.default for k, v in _module(scenario).KNOBS.items()}


def describe_knobs(scenario: str) -> str:
    """One line per knob: name, default and meaning."""
    return B.knob_table(_module(scenario).KNOBS)


def make_cohort(scenario: str, n_subjects: int = 10, seed: int = 0, fast: bool = False,
                **knob_values: Any) -> Cohort:
    """Generate a synthetic cohort of ``scenario`` (one of :data:`SCENARIOS`).

    The same arguments always give identical data. ``fast=True`` makes short sessions
    (a few minutes per subject) for tests and FAST notebooks. Knobs are scenario settings
    (see :func:`describe_knobs`); unknown scenarios, knobs or knob keys raise
    :class:`~mmlab.errors.SchemaError` listing the valid ones. ``Cohort.meta`` records
    the scenario, seed, resolved knobs and label names.
    """
    mod = _module(scenario)
    n = B.check_n_subjects(n_subjects)
    seed = B.check_seed(seed)
    resolved = B.resolve_knobs(scenario, mod.KNOBS, knob_values)
    if hasattr(mod, "finalize_knobs"):  # fill mode-dependent defaults (full vs fast)
        resolved = mod.finalize_knobs(resolved, bool(fast))
    plan = mod.plan(n, seed, resolved, bool(fast))
    ids = B.subject_ids(mod.PREFIX, n)
    recs, rows = [], []
    for i, sid in enumerate(ids):
        rec, row = mod.make_subject(i, sid, seed, resolved, bool(fast), plan[i])
        recs.append(rec)
        rows.append(row)
    extra = mod.cohort_meta(resolved, bool(fast)) if hasattr(mod, "cohort_meta") else {}
    return B.build_cohort(scenario, recs, pd.DataFrame(rows), seed, n, bool(fast), resolved,
                          mod.LABEL_NAMES, **extra)


def _scenario_function(scenario: str):
    def generate(n_subjects: int = 10, seed: int = 0, fast: bool = False, **knob_values: Any) -> Cohort:
        return make_cohort(scenario, n_subjects=n_subjects, seed=seed, fast=fast, **knob_values)

    mod = importlib.import_module(_MODULES[scenario])
    generate.__name__ = generate.__qualname__ = scenario
    generate.__doc__ = (
        f"Generate a ``{scenario}`` cohort: ``make_cohort({scenario!r}, ...)``.\n\n"
        f"{(mod.__doc__ or '').strip()}\n\nKnobs (``Cohort.meta['knobs']`` keeps the resolved "
        f"values)::\n\n" + "\n".join("    " + line for line in B.knob_table(mod.KNOBS).splitlines())
    )
    return generate
