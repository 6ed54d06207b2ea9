"""mmlab.images: layouts, colour, resize and normalisation known answers; a CNN that learns a
planted hot spot; bad input."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmlab import images as I  # noqa: E402
from mmlab.errors import SignalError  # noqa: E402
from mmlab.synth import make_cohort  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def planted_hotspots(n, size=24, seed=0, hot_c=3.0):
    """Thermal-like frames (°C): a random level and tilt, sensor noise, and in every other
    frame (label 1) a blurred hot spot of ``hot_c`` °C at a random place."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    x = 25 + rng.normal(0, 2, (n, 1, 1)) + 0.3 * rng.standard_normal((n, size, size))
    x = x + rng.normal(0, 0.05, (n, 1, 1)) * yy + rng.normal(0, 0.05, (n, 1, 1)) * xx
    y = np.arange(n) % 2
    cx, cy = rng.uniform(3, size - 3, n), rng.uniform(3, size - 3, n)
    spot = np.exp(-((xx - cx[:, None, None]) ** 2 + (yy - cy[:, None, None]) ** 2) / (2 * 1.5 ** 2))
    return (x + hot_c * y[:, None, None] * spot).astype(np.float32), y


def test_layouts_are_read_as_nchw():
    rng = np.random.default_rng(0)
    assert I.as_images(rng.random((5, 7))).shape == (1, 1, 5, 7)
    assert I.as_images(rng.random((4, 5, 7))).shape == (4, 1, 5, 7)
    hwc = (rng.random((2, 5, 7, 3)) * 255).astype(np.uint8)
    chw = I.as_images(hwc)
    assert chw.shape == (2, 3, 5, 7) and chw.dtype == np.float32
    assert np.allclose(chw[1, 2], hwc[1, :, :, 2] / 255.0)  # uint8 scaled to [0, 1]
    assert I.as_images(rng.random((2, 3, 5, 7))).shape == (2, 3, 5, 7)


def test_colour_conversions():
    rgb = np.zeros((1, 3, 4, 4), np.float32)
    rgb[0, 0] = 1.0  # pure red
    assert np.allclose(I.to_grayscale(rgb), I.LUMA[0])
    gray = np.random.default_rng(0).random((2, 6, 6)).astype(np.float32)
    rep = I.to_rgb(gray)
    assert rep.shape == (2, 3, 6, 6) and np.allclose(rep[:, 1], gray)
    assert np.allclose(I.to_grayscale(rep)[:, 0], gray, atol=1e-6)  # luma weights sum to 1
    false = I.to_rgb(gray, cmap="inferno")
    assert false.shape == (2, 3, 6, 6) and false.min() >= 0 and false.max() <= 1


def test_resize_keeps_a_constant_image_and_the_mean_of_a_smooth_one():
    const = np.full((2, 1, 32, 32), 7.0, np.float32)
    assert np.allclose(I.resize(const, 16), 7.0)
    yy, xx = np.mgrid[0:32, 0:32]
    ramp = (xx + yy).astype(np.float32)[None]
    small = I.resize(ramp, (8, 16))
    assert small.shape == (1, 1, 8, 16)
    assert small.mean() == pytest.approx(ramp.mean(), rel=1e-3)
    assert np.all(np.diff(small[0, 0], axis=1) > 0)  # still a ramp


def test_normalizer_gives_the_stated_shape_mean_and_std():
    rng = np.random.default_rng(1)
    train = np.stack([rng.normal(30, 3, (40, 40)), ], axis=0).repeat(10, axis=0) + rng.normal(0, 1, (10, 40, 40))
    norm = I.ImageNormalizer(size=20, color="rgb").fit(train)
    out = norm.transform(train)
    assert out.shape == (10, 3, 20, 20) and out.dtype == np.float32
    assert np.allclose(out.mean(axis=(0, 2, 3)), 0.0, atol=1e-4)
    assert np.allclose(out.std(axis=(0, 2, 3)), 1.0, atol=1e-3)
    test = train[:3] + 5.0  # new images keep the training statistics: the shift shows
    shifted = norm.transform(test)
    assert shifted.mean() == pytest.approx(5.0 / norm.std_[0], rel=0.05)
    gray = I.ImageNormalizer(size=None, color="gray").fit(I.to_rgb(train))
    assert gray.transform(I.to_rgb(train)).shape == (10, 1, 40, 40)


def test_augment_is_seeded_and_label_preserving():
    x, _ = planted_hotspots(16, seed=2)
    a1, a2 = I.augment(x, seed=5), I.augment(x, seed=5)
    assert np.array_equal(a1, a2) and a1.shape == (16, 1, 24, 24)
    assert not np.array_equal(a1, I.augment(x, seed=6))
    flipped = I.augment(x[:1], seed=0, flip=True, max_shift=0)
    assert np.array_equal(flipped[0, 0], x[0]) or np.array_equal(flipped[0, 0], x[0, :, ::-1])
    # shifts move pixels, they do not invent heat: the hottest pixel stays as hot
    shifted = I.augment(x, seed=1, flip=False, max_shift=2)
    assert np.allclose(shifted.max(axis=(1, 2, 3)), x.max(axis=(1, 2)), atol=0.7)


def test_cnn_learns_a_planted_hot_spot():
    xtr, ytr = planted_hotspots(256, seed=0)
    xte, yte = planted_hotspots(256, seed=1)
    norm = I.ImageNormalizer(size=None).fit(xtr)
    clf = I.CNNClassifier(epochs=5, random_state=0).fit(norm.transform(xtr), np.where(ytr == 1, "hot", "ok"))
    acc = float((clf.predict(norm.transform(xte)) == np.where(yte == 1, "hot", "ok")).mean())
    assert acc > 0.9, clf.history_
    assert len(clf.history_) == 5 and clf.history_["loss"].iloc[-1] < clf.history_["loss"].iloc[0]
    again = I.CNNClassifier(epochs=5, random_state=0).fit(norm.transform(xtr), np.where(ytr == 1, "hot", "ok"))
    assert np.allclose(again.predict_proba(norm.transform(xte)), clf.predict_proba(norm.transform(xte)))
    # without a hot spot to find the same network stays at chance
    xn, _ = planted_hotspots(256, seed=0, hot_c=0.0)
    xnt, _ = planted_hotspots(256, seed=1, hot_c=0.0)
    null = I.CNNClassifier(epochs=5, random_state=0).fit(norm.transform(xn), ytr)
    assert float((null.predict(norm.transform(xnt)) == yte).mean()) < 0.7


def test_train_cnn_history_and_predict_proba():
    xtr, ytr = planted_hotspots(64, seed=3)
    model = I.SmallCNN(in_channels=1, n_classes=2)
    hist = I.train_cnn(model, I.ImageNormalizer(None).fit_transform(xtr), ytr, epochs=2,
                       X_val=I.ImageNormalizer(None).fit_transform(xtr), y_val=ytr)
    assert list(hist.columns) == ["epoch", "loss", "train_acc", "val_acc"] and len(hist) == 2
    p = I.predict_proba(model, I.ImageNormalizer(None).fit_transform(xtr))
    assert p.shape == (64, 2) and np.allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_thermal_frames_of_the_factory_scenario():
    cohort = make_cohort("factory", 4, seed=0, fast=True, minutes=0.5, failure_fraction=0.5)
    frames, labels, groups = I.thermal_frames(cohort)
    assert frames.ndim == 3 and frames.shape[1:] == (32, 32) and len(frames) == len(labels) == len(groups)
    assert set(labels) == {"failure", "healthy"} and set(groups) == set(cohort.subjects)
    for rec in cohort:
        assert (labels[groups == rec.subject] == rec.phases("label")["label"].iloc[0]).all()
    assert 15 < float(np.median(frames)) < 45  # degrees Celsius


def test_bad_input_raises_signal_error():
    with pytest.raises(SignalError, match="NaN"):
        x = np.zeros((3, 8, 8), np.float32)
        x[1, 2, 2] = np.nan
        I.as_images(x)
    with pytest.raises(SignalError, match="channel axis"):
        I.as_images(np.zeros((2, 5, 7, 9)))
    with pytest.raises(SignalError, match="expected"):
        I.as_images(np.zeros(10))
    with pytest.raises(SignalError, match="constant"):
        I.ImageNormalizer().fit(np.full((4, 8, 8), 3.0))
    with pytest.raises(SignalError, match="fit"):
        I.ImageNormalizer().transform(np.zeros((1, 8, 8)))
    with pytest.raises(SignalError, match="color"):
        I.ImageNormalizer(color="hsv").fit(np.random.default_rng(0).random((2, 8, 8)))
    with pytest.raises(SignalError, match="labels"):
        I.CNNClassifier(epochs=1).fit(np.random.default_rng(0).random((4, 8, 8)), [0, 1])
    with pytest.raises(SignalError, match="one class"):
        I.CNNClassifier(epochs=1).fit(np.random.default_rng(0).random((4, 8, 8)), [1, 1, 1, 1])
    with pytest.raises(SignalError, match="numbers"):
        I.as_images(np.array([["a", "b"], ["c", "d"]]))
