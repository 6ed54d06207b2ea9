"""mmlab.represent.contrastive and .pairs: InfoNCE known answers, training on planted pairs,
the learnable temperature, determinism, zero-shot prototypes, paired data from the synthetic
cohorts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmlab import synth
from mmlab.errors import SignalError
from mmlab.represent import (VOICE_FEATURES, ContrastiveAligner, DualEncoder, call_center_pairs, info_nce,
                             make_paired_views, split_by_group, stress_pairs, utterance_voice_features,
                             window_views, zero_shot_predict, zscore_by_group)

FAST_FIT = dict(epochs=60, patience=60, batch_size=128)


# -------------------------------------------------------------------- InfoNCE
@pytest.mark.parametrize("n", [2, 16, 128])
def test_info_nce_is_log_n_for_uninformative_embeddings(n):
    import torch

    const = torch.ones(n, 8)
    for t in (0.01, 0.1, 1.0):
        assert float(info_nce(const, const, t)) == pytest.approx(math.log(n), rel=1e-5)


def test_info_nce_is_near_zero_for_aligned_pairs_at_low_temperature():
    import torch

    z = torch.eye(32)
    assert float(info_nce(z, z, 0.01)) < 1e-6
    assert float(info_nce(z, 3.0 * z, 0.01)) < 1e-6  # rows are normalised first
    # the same pairs at a high temperature are far from separable
    assert float(info_nce(z, z, 1.0)) > 2.0
    # and a wrong pairing is heavily penalised
    assert float(info_nce(z, z.roll(1, dims=0), 0.05)) > 10.0


def test_info_nce_gives_the_temperature_a_gradient_and_rejects_bad_input():
    import torch

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    log_t = torch.tensor(math.log(0.1), requires_grad=True)
    info_nce(a, b, log_t.exp()).backward()
    assert log_t.grad is not None and float(log_t.grad) != 0.0
    with pytest.raises(SignalError, match="same shape"):
        info_nce(a, b[:5])
    with pytest.raises(SignalError, match="temperature"):
        info_nce(a, b, 0.0)


# ------------------------------------------------------------------ training
@pytest.fixture(scope="module")
def planted():
    A, B = make_paired_views(800, dim_shared=8, noise=0.3, seed=0)
    return A[:600], B[:600], A[600:], B[600:]


@pytest.fixture(scope="module")
def trained(planted):
    A, B, _, _ = planted
    return ContrastiveAligner(random_state=0, **FAST_FIT).fit(A, B)


def test_training_on_planted_pairs_lifts_recall_far_above_chance(planted, trained):
    _, _, At, Bt = planted
    rep = trained.retrieval(At, Bt)
    # chance@1 = 1/200 = 0.005; measured 0.95-0.97 both ways (seeds 0-2)
    assert rep["a->b@1"] >= 0.5 and rep["b->a@1"] >= 0.5
    assert rep["a->b@10"] >= 0.9
    # before training (0 epochs) the towers are random: close to chance
    untrained = ContrastiveAligner(random_state=0, epochs=0).fit(*planted[:2]).retrieval(At, Bt)
    assert untrained["a->b@1"] < 0.1
    assert trained.loss(At, Bt) < math.log(len(At)) - 1.5  # uninformative: log(200) = 5.3


def test_temperature_is_learnt_and_stays_within_bounds(planted):
    A, B, _, _ = planted
    m = ContrastiveAligner(random_state=0, temperature=0.5, t_min=0.2, t_max=1.0, **FAST_FIT).fit(A, B)
    temps = m.history_["temperature"].to_numpy()
    assert temps.min() >= 0.2 - 1e-6 and temps.max() <= 1.0 + 1e-6
    assert temps[-1] < 0.45  # clean pairs want a sharper softmax: it moved down, to the floor
    assert float(m.model_.log_t.detach()) >= math.log(0.2) - 1e-6
    frozen = ContrastiveAligner(random_state=0, temperature=0.5, learn_temperature=False, epochs=5).fit(A, B)
    assert frozen.temperature_ == pytest.approx(0.5)
    assert not frozen.model_.log_t.requires_grad
    with pytest.raises(SignalError, match="t_min"):
        DualEncoder(4, 4, temperature=2.0, t_max=1.0)


def test_training_is_deterministic_by_seed(planted):
    A, B, At, _ = planted
    kw = dict(epochs=5, patience=10)
    a = ContrastiveAligner(random_state=3, **kw).fit(A, B).transform_a(At)
    b = ContrastiveAligner(random_state=3, **kw).fit(A, B).transform_a(At)
    c = ContrastiveAligner(random_state=4, **kw).fit(A, B).transform_a(At)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


def test_validation_split_keeps_groups_together(planted):
    A, B, _, _ = planted
    groups = np.repeat(np.arange(60), 10)
    m = ContrastiveAligner(random_state=0, epochs=2, validation_fraction=0.2).fit(A, B, groups=groups)
    assert m.n_val_ == 120 and m.n_train_ == 480  # 12 whole groups of 10 held out
    tr, te = split_by_group(groups, 0.25, random_state=0)
    assert not set(groups[tr]) & set(groups[te]) and len(tr) + len(te) == len(groups)


def test_zero_shot_prototypes_classify_by_the_text_side():
    """Planted: the class moves both views; a fake 'text encoder' maps prompts to class centres."""
    rng = np.random.default_rng(0)
    n, k = 900, 3
    y = rng.integers(0, k, n)
    centres = 3.0 * rng.standard_normal((k, 16))
    item = rng.standard_normal((n, 4))
    B = centres[y] + item @ rng.standard_normal((4, 16))
    A = np.hstack([np.eye(k)[y] * 2.0, item]) @ rng.standard_normal((k + 4, 12)) + 0.3 * rng.standard_normal((n, 12))
    model = ContrastiveAligner(random_state=0, **FAST_FIT).fit(A[:600], B[:600])
    names = ["red", "green", "blue"]
    encoder = lambda texts: np.vstack([centres[names.index(t)] for t in texts])  # noqa: E731
    pred = zero_shot_predict(model, A[600:], {c: [c] for c in names}, encoder=encoder)
    acc = np.mean(pred == np.array(names)[y[600:]])
    assert acc >= 0.8  # chance 1/3; measured ~0.97
    with pytest.raises(SignalError, match="no prompts"):
        zero_shot_predict(model, A[600:], {"red": []}, encoder=encoder)


def test_bad_input_raises_signal_error(planted):
    A, B, _, _ = planted
    Bn = B.copy()
    Bn[3, 0] = np.inf
    with pytest.raises(SignalError, match="row 3"):
        ContrastiveAligner().fit(A, Bn)
    with pytest.raises(SignalError, match="at least 8"):
        ContrastiveAligner().fit(A[:5], B[:5])
    with pytest.raises(SignalError, match="fit"):
        ContrastiveAligner().transform_a(A)


# ----------------------------------------------------------------- paired data
def test_utterance_voice_features_known_answers():
    from mmlab.synth.voice import harmonic_tone

    x = harmonic_tone(150.0, duration=1.5, sr=8000)
    f = dict(zip(VOICE_FEATURES, utterance_voice_features(x, 8000)))
    assert len(f) == len(VOICE_FEATURES)
    assert math.exp(f["f0_log_mean"]) == pytest.approx(150.0, abs=1.5)
    assert f["log_duration"] == pytest.approx(math.log(1.5), abs=1e-3)
    assert f["voiced_fraction"] > 0.8
    quiet = dict(zip(VOICE_FEATURES, utterance_voice_features(0.1 * x, 8000)))
    assert quiet["rms_db"] == pytest.approx(f["rms_db"] - 20.0, abs=0.5)
    with pytest.raises(SignalError):
        utterance_voice_features(np.zeros(10), 8000)


@pytest.fixture(scope="module")
def calls():
    return synth.make_cohort("call_center", n_subjects=6, seed=0, fast=True)


def test_call_center_pairs_one_row_per_caller_turn(calls):
    pairs = call_center_pairs(calls, embed=True, encoder=lambda t: np.array([[len(s), s.count(" ")] for s in t]))
    n_turns = sum(int(((r.annotations["kind"] == "utterance") & (r.annotations["label"] == "caller")).sum())
                  for r in calls)
    assert len(pairs) == n_turns and pairs.a.shape == (n_turns, len(VOICE_FEATURES))
    assert pairs.b.shape == (n_turns, 2) and np.isfinite(pairs.a).all()
    assert pairs.b[0, 0] == len(pairs.meta["text"][0])
    for rec in calls:
        rows = pairs.meta[pairs.meta["group"] == rec.subject]
        assert set(rows["label"]) == {rec.meta["truth"]["label"]}
        assert rows["turn"].tolist() == list(range(1, len(rows) + 1))
    # the audio side measures the turn's own clip: log duration matches the annotation
    np.testing.assert_allclose(np.exp(pairs.a[:, VOICE_FEATURES.index("log_duration")]),
                               pairs.meta["duration"], rtol=0.01)


def test_pair_builders_show_a_progress_bar_only_when_asked(calls, capsys):
    """progress=True: a labelled tqdm bar counting the calls (sessions) on stderr, and the
    same pairs as without it; progress=False: nothing on stderr."""
    enc = lambda t: np.array([[len(s), s.count(" ")] for s in t])  # noqa: E731
    quiet = call_center_pairs(calls, encoder=enc)
    assert capsys.readouterr().err == ""
    shown = call_center_pairs(calls, encoder=enc, progress=True)
    err = capsys.readouterr().err
    assert "calls: voice features" in err and f"{len(calls)}/{len(calls)}" in err
    np.testing.assert_array_equal(quiet.a, shown.a)
    cohort = synth.make_cohort("stress_protocol", n_subjects=2, seed=1, fast=True, voice_per_phase=1)
    sp_quiet = stress_pairs(cohort)
    assert capsys.readouterr().err == ""
    sp_shown = stress_pairs(cohort, progress=True)
    err = capsys.readouterr().err
    assert "sessions: physiology and voice" in err and "2/2" in err
    np.testing.assert_array_equal(sp_quiet.a, sp_shown.a)


def test_stress_pairs_physiology_follows_the_phase():
    cohort = synth.make_cohort("stress_protocol", n_subjects=2, seed=1, fast=True, voice_per_phase=2)
    pairs = stress_pairs(cohort, window_s=30.0)
    assert len(pairs) == 2 * 5 * 2  # 2 subjects x 5 conditions x 2 self-reports
    assert set(pairs.meta["label"]) == {"baseline", "stress", "amusement", "meditation"}
    hr = pairs.a[:, pairs.a_names.index("ecg__hr_mean")]
    lab = pairs.meta["label"].to_numpy()
    for s in ("S01", "S02"):
        m = pairs.meta["group"].to_numpy() == s
        # planted: +13 bpm in stress, -4 bpm in meditation (times the subject's reactivity)
        assert np.nanmean(hr[m & (lab == "stress")]) > np.nanmean(hr[m & (lab == "meditation")]) + 5
    z = zscore_by_group(pairs.a, pairs.meta["group"])
    for s in ("S01", "S02"):
        m = pairs.meta["group"].to_numpy() == s
        np.testing.assert_allclose(np.nanmean(z[m], axis=0), 0.0, atol=1e-9)


def test_window_views_drop_windows_with_dropouts_and_invent_nothing():
    rec = synth.make_cohort("stress_protocol", n_subjects=1, seed=0, fast=True, dropout_per_hour=0.0)[0]
    views = {"cardiac": ["wrist_bvp"], "skin": ["wrist_eda", "wrist_temp"]}
    full = window_views(rec, views, window_s=30.0)
    assert full.a.shape[1] == 2 and full.b.shape[1] == 4 and np.isfinite(full.a).all()
    s = rec["wrist_eda"]
    data = s.data.copy()
    data[(s.timestamps() > 100) & (s.timestamps() < 140)] = np.nan  # a 40 s dropout
    rec.streams["wrist_eda"] = s.replace(data=data)
    holed = window_views(rec, views, window_s=30.0)
    assert len(holed) < len(full) and np.isfinite(holed.b).all()
    t0 = holed.meta["t_start"].to_numpy()
    overlap = np.clip(np.minimum(t0 + 30, 140) - np.maximum(t0, 100), 0, None)
    assert overlap.max() <= 0.2 * 30  # kept only with >= 80 % of the samples (min_coverage)
    with pytest.raises(SignalError, match="no stream"):
        window_views(rec, {"x": ["nope"], "y": ["wrist_eda"]})
