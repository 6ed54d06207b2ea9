"""The public entry points a researcher starts from have numpydoc docstrings: Parameters,
Returns (functions) and Examples, which `pytest --doctest-modules` executes."""

from __future__ import annotations

import doctest
import importlib
import inspect
import re

import pytest

FUNCTIONS = [
    "mmlab.features.window_features",
    "mmlab.bio.ecg.detect_r_peaks",
    "mmlab.bio.eda.detect_scr",
    "mmlab.align.clocks.align_recording",
    "mmlab.recording.Cohort.load",
    "mmlab.recording.Cohort.save",
    "mmlab.synth.scenarios.write_cohort",
    "mmlab.systems.alerts.consensus_alerts",
    "mmlab.evaluate.episodes_from_labels",
    "mmlab.evaluate.event_metrics",
]

CLASSES = [
    "mmlab.recording.CohortWriter",
    "mmlab.fusion.classic.EarlyFusion",
    "mmlab.fusion.classic.LateFusion",
    "mmlab.fusion.classic.StackingFusion",
    "mmlab.fusion.classic.HybridFusion",
    "mmlab.fusion.deep.DeepFusion",
    "mmlab.fusion.deep.TensorFusion",
    "mmlab.fusion.deep.LowRankFusion",
    "mmlab.fusion.deep.AttentionFusion",
    "mmlab.fusion.deep.TransformerFusion",
    "mmlab.fusion.deep.GatedFusion",
    "mmlab.fusion.deep.TemporalFusion",
    "mmlab.systems.alerts.ConsensusAlerter",
]


def _resolve(path: str):
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(path)


def sections(doc: str) -> set[str]:
    """The numpydoc section titles of a docstring (a title line underlined with dashes)."""
    lines = inspect.cleandoc(doc or "").splitlines()
    return {lines[i].strip() for i in range(len(lines) - 1)
            if lines[i].strip() and re.fullmatch(r"-{3,}", lines[i + 1].strip())
            and len(lines[i + 1].strip()) >= len(lines[i].strip())}


def _examples(obj) -> list:
    return [ex for t in doctest.DocTestFinder(recurse=False).find(obj) for ex in t.examples]


@pytest.mark.parametrize("path", FUNCTIONS)
def test_function_docstrings_have_parameters_returns_examples(path):
    obj = _resolve(path)
    assert {"Parameters", "Returns", "Examples"} <= sections(obj.__doc__), path
    assert len(_examples(obj)) >= 2, f"{path}: the Examples section has no runnable example"


@pytest.mark.parametrize("path", CLASSES)
def test_class_docstrings_have_parameters_and_examples(path):
    obj = _resolve(path)
    assert {"Parameters", "Examples"} <= sections(obj.__doc__), path
    assert len(_examples(obj)) >= 2, f"{path}: the Examples section has no runnable example"


def test_every_parameter_is_documented():
    """Every argument of a function is named in its Parameters section."""
    for path in FUNCTIONS:
        obj = _resolve(path)
        doc = inspect.cleandoc(obj.__doc__)
        block = re.split(r"\n\S[^\n]*\n-{3,}", doc.split("Parameters\n----------\n", 1)[1])[0]
        names = [n.strip() for line in block.splitlines() if line and not line.startswith(" ")
                 for n in line.split(":")[0].split(",")]
        args = set(inspect.signature(obj).parameters) - {"self", "cls"}
        assert args <= {n.lstrip("*") for n in names}, (path, sorted(args - set(names)))


def test_the_section_finder_can_fail():
    assert sections("Summary.\n\nParameters\n----------\nx : int\n") == {"Parameters"}
    assert sections("Summary.\n\nParameters\nx : int\n") == set()


# ------------------------------------------------------------ claims about other libraries
def test_neurokit2_claims_in_the_docs_hold_for_the_installed_version():
    """bio/eda.py and chapter 12 describe what the installed neurokit2 does; if an upgrade
    changes that, this test says which text to update."""
    import warnings
    from importlib.metadata import version

    import numpy as np
    import neurokit2 as nk

    from mmlab.bio.eda import detect_scr

    assert version("neurokit2") == "0.3.0", "update the version named in bio/eda.py and 12_ecg_hrv"
    noise = 1e-6 * np.random.default_rng(0).standard_normal(50 * 120)
    assert len(nk.eda_peaks(noise, sampling_rate=50)[1]["SCR_Peaks"]) > 1000  # relative threshold
    assert len(detect_scr(noise, 50.0)) == 0
    with pytest.raises(ValueError):
        nk.eda_peaks(np.zeros(50 * 120), sampling_rate=50)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        signals, info = nk.ecg_process(np.zeros(500 * 30), sampling_rate=500)
    assert len(info["ECG_R_Peaks"]) == 0 and signals["ECG_Rate"].isna().all() and caught
