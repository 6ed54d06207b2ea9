"""mmlab.bio.resp: breaths of a planted rate, nothing in noise, gaps do not bias the rate."""

from __future__ import annotations

import numpy as np
import pytest

from mmlab.bio import resp
from mmlab.bio.quality import SignalWarning
from mmlab.synth.physio import simulate_resp


@pytest.mark.parametrize("fs, rate", [(25.0, 6.0), (25.0, 15.0), (50.0, 30.0)])
def test_planted_breathing_rate_is_found(fs, rate):
    x, _ = simulate_resp(120.0, fs, rate_bpm=rate, noise=0.05, seed=1)
    troughs, _ = resp.detect_breaths(x, fs)
    assert resp.breathing_rate(troughs, fs) == pytest.approx(rate, rel=0.05)


@pytest.mark.parametrize("fs", [25.0, 700.0])
@pytest.mark.parametrize("scale", [1.0, 1e-6])
def test_noise_gives_no_breaths(fs, scale):
    z = scale * np.random.default_rng(0).standard_normal(int(60 * fs))
    with pytest.warns(SignalWarning, match="100% of the detected breaths"):
        troughs, peaks = resp.detect_breaths(z, fs)
    assert len(troughs) == 0 and len(peaks) == 0
    assert np.isnan(resp.breathing_rate(troughs, fs))


def test_a_gap_does_not_bias_the_rate():
    fs = 25.0
    x, _ = simulate_resp(60.0, fs, rate_bpm=15.0, noise=0.02, seed=4)
    x[int(24 * fs): int(36 * fs)] = np.nan
    troughs, _ = resp.detect_breaths(x, fs)
    assert not np.any((troughs > 24 * fs) & (troughs < 36 * fs))
    assert resp.breathing_rate(troughs, fs) == pytest.approx(15.0, rel=0.05)
