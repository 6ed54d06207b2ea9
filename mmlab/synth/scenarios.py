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
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from mmlab.errors import SchemaError
from mmlab.recording import Cohort, CohortWriter
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


def _prepare(scenario: str, n_subjects: Any, seed: Any, fast: bool, knob_values: dict):
    """Check the arguments; return the module, resolved knobs, plan, subject ids and meta."""
    mod = _module(scenario)
    n = B.check_n_subjects(n_subjects)
    seed = B.check_seed(seed)
    resolved = B.resolve_knobs(scenario, mod.KNOBS, knob_values)
    if hasattr(mod, "finalize_knobs"):  # fill mode-dependent defaults (full vs fast)
        resolved = mod.finalize_knobs(resolved, bool(fast))
    plan = mod.plan(n, seed, resolved, bool(fast))
    ids = B.subject_ids(mod.PREFIX, n)
    extra = mod.cohort_meta(resolved, bool(fast)) if hasattr(mod, "cohort_meta") else {}
    meta = B.cohort_meta(scenario, seed, n, bool(fast), resolved, mod.LABEL_NAMES, **extra)
    return mod, seed, resolved, plan, ids, meta


def make_cohort(scenario: str, n_subjects: int = 10, seed: int = 0, fast: bool = False,
                *, progress: bool = False, **knob_values: Any) -> Cohort:
    """Generate a synthetic cohort of ``scenario`` (one of :data:`SCENARIOS`).

    The same arguments always give identical data. ``fast=True`` makes short sessions
    (a few minutes per subject) for tests and FAST notebooks. Knobs are scenario settings
    (see :func:`describe_knobs`); unknown scenarios, knobs or knob keys, and values outside
    a knob's range, raise :class:`~mmlab.errors.SchemaError` naming the valid ones.
    ``Cohort.meta`` records the scenario, seed, resolved knobs and label names.
    ``progress=True`` shows a tqdm bar over the subjects (a full-length subject takes
    seconds). For cohorts larger than memory use :func:`write_cohort`.
    """
    from tqdm.auto import tqdm

    mod, seed, resolved, plan, ids, meta = _prepare(scenario, n_subjects, seed, fast, knob_values)
    recs, rows = [], []
    for i, sid in enumerate(tqdm(ids, desc=f"{scenario} subjects", disable=not progress)):
        rec, row = mod.make_subject(i, sid, seed, resolved, bool(fast), plan[i])
        recs.append(rec)
        rows.append(row)
    return Cohort(recordings=recs, participants=pd.DataFrame(rows), meta=meta)


def write_cohort(scenario: str, folder: str | Path, n_subjects: int = 10, seed: int = 0,
                 fast: bool = False, overwrite: bool = False,
                 progress: Callable[[int, int, str], None] | None = None,
                 **knob_values: Any) -> Path:
    """Generate a synthetic cohort straight to disk, one subject at a time.

    Same arguments and same result as ``make_cohort(...).save(folder)``, but only one
    subject is in memory at a time, so any number of subjects fits. Until the last
    subject is written the folder is marked incomplete (``Cohort.load`` refuses it unless
    ``allow_incomplete=True``), so an interrupted run never passes for a whole cohort; the
    writer also stops early when the disk cannot hold the remaining subjects
    (:class:`~mmlab.recording.CohortWriter`).

    Parameters
    ----------
    scenario : str
        One of :data:`SCENARIOS`.
    folder : str or Path
        Where to write; must be new or empty unless ``overwrite``.
    n_subjects, seed, fast, **knob_values
        As for :func:`make_cohort`.
    overwrite : bool, default False
        Replace an existing saved mmlab cohort at ``folder`` (no stale subject is left).
    progress : callable, optional
        Called as ``progress(done, total, subject)`` after each subject is written.

    Returns
    -------
    Path
        ``folder``.

    Examples
    --------
    >>> import tempfile
    >>> from mmlab.recording import Cohort, CohortWriter
    >>> folder = write_cohort("factory", Path(tempfile.mkdtemp()) / "f", n_subjects=2, fast=True,
    ...                       minutes=0.1, image_every_s=3.0)
    >>> Cohort.load(folder).equals(make_cohort("factory", n_subjects=2, fast=True,
    ...                                        minutes=0.1, image_every_s=3.0))
    True
    """
    mod, seed, resolved, plan, ids, meta = _prepare(scenario, n_subjects, seed, fast, knob_values)
    writer = CohortWriter(folder, meta=meta, subjects=ids, overwrite=overwrite)
    rows = []
    for i, sid in enumerate(ids):
        rec, row = mod.make_subject(i, sid, seed, resolved, bool(fast), plan[i])
        writer.add(rec)
        rows.append(row)
        del rec
        if progress is not None:
            progress(i + 1, len(ids), sid)
    return writer.close(pd.DataFrame(rows))


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
