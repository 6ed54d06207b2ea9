"""Images: normalisation, augmentation and a small CNN (chapter 15_images_sensors).

Images travel as float32 arrays ``(n, channels, height, width)`` (PyTorch's layout);
:func:`as_images` accepts the other common layouts (one ``(H, W)`` image, a gray stack
``(n, H, W)`` such as a thermal camera's frames, channel-last ``(n, H, W, 3)`` RGB, uint8
or float) and converts.

* :func:`resize`, :func:`to_grayscale`, :func:`to_rgb` — fixed size and colour space;
* :class:`ImageNormalizer` — resize + colour + per-channel standardisation, fitted on the
  training images only (scikit-learn ``fit``/``transform``);
* :func:`augment` — random flips, small shifts and sensor noise, seeded;
* :class:`SmallCNN` (an ``nn.Module``) and :class:`CNNClassifier` (the same network with
  the scikit-learn ``fit``/``predict`` API), trained on the CPU, seeded;
* :func:`thermal_frames` — every thermal frame of a cohort (the synthetic ``factory``
  scenario) with its machine's label and id, for grouped splits.

Bad input (NaN pixels, an unknown layout, a constant training set, labels that do not
match the images) raises :class:`~mmlab.errors.SignalError` naming the problem.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from torch import nn

from mmlab._torch import minibatches, seeded, torch_threads, train_loop
from mmlab.errors import SignalError

__all__ = ["as_images", "resize", "to_grayscale", "to_rgb", "ImageNormalizer", "augment",
           "SmallCNN", "train_cnn", "predict_proba", "CNNClassifier", "thermal_frames", "LUMA"]

#: ITU-R BT.601 luma weights for R, G, B (what most libraries use for RGB -> gray).
LUMA = (0.299, 0.587, 0.114)


def as_images(x, what: str = "images") -> np.ndarray:
    """``x`` as float32 ``(n, channels, height, width)``; uint8 is scaled to [0, 1].

    Introduced in chapter 15_images_sensors. Layouts: ``(H, W)`` one gray image,
    ``(n, H, W)`` gray frames, ``(n, C, H, W)`` with C in 1, 3, 4, and channel-last
    ``(n, H, W, C)`` with C in 1, 3, 4 (when the second axis is not itself 1, 3 or 4).
    SignalError for other shapes, empty input or NaN/inf pixels.
    """
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise SignalError(f"{what}: pixels must be numbers, got dtype {arr.dtype}")
    scale = 1.0 / 255.0 if arr.dtype == np.uint8 else 1.0
    arr = arr.astype(np.float32) * np.float32(scale)
    if arr.ndim == 2:
        arr = arr[None, None]
    elif arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4:
        if arr.shape[1] not in (1, 3, 4) and arr.shape[-1] in (1, 3, 4):
            arr = np.ascontiguousarray(arr.transpose(0, 3, 1, 2))
        elif arr.shape[1] not in (1, 3, 4):
            raise SignalError(f"{what}: cannot tell the channel axis of shape {arr.shape}: "
                              "expected (n, C, H, W) or (n, H, W, C) with C in 1, 3, 4")
    else:
        raise SignalError(f"{what}: expected (H, W), (n, H, W), (n, C, H, W) or (n, H, W, C); "
                          f"got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[2] < 2 or arr.shape[3] < 2:
        raise SignalError(f"{what}: empty or degenerate images, shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = sorted(set(np.flatnonzero(bad.any(axis=(1, 2, 3))).tolist()))
        raise SignalError(f"{what}: {int(bad.sum())} NaN or infinite pixels in image(s) "
                          f"{idx[:10]}{' ...' if len(idx) > 10 else ''}")
    return arr


def resize(images, size: int | tuple[int, int]) -> np.ndarray:
    """Images resized to ``size`` (an int for square) by bilinear interpolation with
    anti-aliasing (``torch.nn.functional.interpolate``); chapter 15_images_sensors."""
    import torch.nn.functional as F

    x = as_images(images)
    hw = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    if min(hw) < 1:
        raise SignalError(f"resize: size must be positive, got {size!r}")
    if hw == x.shape[2:]:
        return x.copy()
    with torch.no_grad():
        out = F.interpolate(torch.from_numpy(x), size=hw, mode="bilinear", align_corners=False,
                            antialias=True)
    return out.numpy()


def to_grayscale(images) -> np.ndarray:
    """``(n, 1, H, W)``: RGB(A) images weighted by :data:`LUMA`; gray images unchanged
    (chapter 15_images_sensors)."""
    x = as_images(images)
    if x.shape[1] == 1:
        return x.copy()
    w = np.asarray(LUMA, dtype=np.float32)[None, :, None, None]
    return (x[:, :3] * w).sum(axis=1, keepdims=True)


def to_rgb(images, cmap: str | None = None) -> np.ndarray:
    """``(n, 3, H, W)``: gray images repeated over R, G, B, or, with ``cmap`` (e.g.
    ``"inferno"``), false colour after scaling each image to [0, 1], as a thermal camera's
    display does; RGBA loses alpha (chapter 15_images_sensors)."""
    x = as_images(images)
    if x.shape[1] >= 3:
        return x[:, :3].copy()
    if cmap is None:
        return np.repeat(x, 3, axis=1)
    from matplotlib import colormaps

    g = x[:, 0]
    lo = g.min(axis=(1, 2), keepdims=True)
    span = g.max(axis=(1, 2), keepdims=True) - lo
    g = np.where(span > 0, (g - lo) / np.where(span > 0, span, 1.0), 0.0)
    return colormaps[cmap](g)[..., :3].transpose(0, 3, 1, 2).astype(np.float32)


class ImageNormalizer(BaseEstimator, TransformerMixin):
    """Resize, convert colour and standardise each channel with statistics of the training set.

    Introduced in chapter 15_images_sensors. ``size``: output height/width (None keeps the
    input's); ``color``: ``"keep"``, ``"gray"`` or ``"rgb"``; ``standardize``: subtract
    the per-channel mean and divide by the per-channel standard deviation learned in
    ``fit`` (so the training set has mean 0 and std 1 per channel; test images reuse the
    training statistics, never their own). Output float32 ``(n, C, size, size)``.
    """

    def __init__(self, size: int | None = 32, color: str = "keep", standardize: bool = True):
        self.size = size
        self.color = color
        self.standardize = standardize

    def _prepare(self, X) -> np.ndarray:
        x = as_images(X)
        if self.color == "gray":
            x = to_grayscale(x)
        elif self.color == "rgb":
            x = to_rgb(x)
        elif self.color != "keep":
            raise SignalError(f"ImageNormalizer: color must be 'keep', 'gray' or 'rgb', got {self.color!r}")
        if self.size is not None:
            x = resize(x, self.size)
        return x

    def fit(self, X, y=None):
        x = self._prepare(X)
        self.mean_ = x.mean(axis=(0, 2, 3)).astype(np.float64)
        self.std_ = x.std(axis=(0, 2, 3)).astype(np.float64)
        if self.standardize and (self.std_ <= 1e-12 * np.maximum(1.0, np.abs(self.mean_))).any():
            ch = np.flatnonzero(self.std_ <= 1e-12 * np.maximum(1.0, np.abs(self.mean_))).tolist()
            raise SignalError(f"ImageNormalizer: channel(s) {ch} are constant over the training images; "
                              "nothing to standardise")
        self.n_channels_ = x.shape[1]
        return self

    def transform(self, X) -> np.ndarray:
        if not hasattr(self, "mean_"):
            raise SignalError("ImageNormalizer: call fit on the training images first")
        x = self._prepare(X)
        if x.shape[1] != self.n_channels_:
            raise SignalError(f"ImageNormalizer: fitted on {self.n_channels_} channel(s), got {x.shape[1]}")
        if self.standardize:
            x = (x - self.mean_[None, :, None, None]) / self.std_[None, :, None, None]
        return x.astype(np.float32)


def augment(images, seed: int | np.random.Generator = 0, flip: bool = True, max_shift: int = 2,
            noise_std: float = 0.0) -> np.ndarray:
    """Randomly augmented copies: horizontal flips (p = 0.5), shifts of up to ``max_shift``
    pixels (edges repeated) and Gaussian noise of ``noise_std`` (chapter 15_images_sensors).

    Use it only on training images, after normalisation; the label must not depend on what
    it changes (a hot spot is a hot spot on either side of a machine).
    """
    x = as_images(images)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n, _, h, w = x.shape
    out = x.copy()
    if flip:
        flips = rng.random(n) < 0.5
        out[flips] = out[flips, :, :, ::-1]
    s = int(max_shift)
    if s > 0:
        pad = np.pad(out, ((0, 0), (0, 0), (s, s), (s, s)), mode="edge")
        dy, dx = rng.integers(-s, s + 1, n), rng.integers(-s, s + 1, n)
        out = np.stack([pad[i, :, s + dy[i]: s + dy[i] + h, s + dx[i]: s + dx[i] + w] for i in range(n)])
    if noise_std > 0:
        out = out + rng.normal(0.0, noise_std, out.shape).astype(np.float32)
    return out.astype(np.float32)


# --------------------------------------------------------------------------- CNN
class SmallCNN(nn.Module):
    """A small CNN for ``(n, in_channels, H, W)`` images (chapter 15_images_sensors).

    ``conv3x3(in, w) -> BN -> ReLU -> maxpool2 -> conv3x3(w, 2w) -> BN -> ReLU -> global
    max pool -> linear(2w, n_classes)``. Global max pooling answers "is the pattern
    anywhere in the image?", which suits hot spots. About 1.3 k parameters at ``width=8``;
    any image size of at least 2x2 works.
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 2, width: int = 8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.head = nn.Linear(2 * width, n_classes)

    def forward(self, x):
        return self.head(self.features(x))


def _check_xy(X, y, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    x = as_images(X, what)
    if y is None:
        return x, None
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
        raise SignalError(f"{what}: {len(x)} images but labels of shape {y.shape}")
    return x, y


def train_cnn(model, X, y, epochs: int = 5, batch_size: int = 16, lr: float = 3e-3, random_state: int = 0,
              augment_fn: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
              X_val=None, y_val=None, weight_decay: float = 1e-4, n_threads: int | None = 1) -> pd.DataFrame:
    """Train ``model`` in place with Adam and cross-entropy on the CPU; return the history.

    Introduced in chapter 15_images_sensors. ``y`` are integer class indices ``0..k-1``.
    Batches are shuffled with ``random_state`` (PyTorch is seeded too, without touching its
    global RNG afterwards), ``augment_fn(batch, rng)`` (e.g. ``lambda b, r: augment(b, r)``)
    is applied to each training batch; torch runs on ``n_threads`` CPU threads. The history
    has one row per epoch (from 1): ``loss`` and ``train_acc`` (on the un-augmented training
    images) and, given ``X_val``/``y_val``, ``val_acc``.
    """
    x, y = _check_xy(X, y, "train_cnn")
    y = y.astype(np.int64)
    if y.min() < 0:
        raise SignalError("train_cnn: labels must be class indices 0..k-1")
    val = None if X_val is None else _check_xy(X_val, y_val, "train_cnn validation")
    rng = np.random.default_rng(random_state)

    def batch_loss(idx):
        xb = x[idx] if augment_fn is None else augment_fn(x[idx], rng)
        xb_t = torch.from_numpy(np.ascontiguousarray(xb, dtype=np.float32))
        return nn.functional.cross_entropy(model(xb_t), torch.from_numpy(y[idx]))

    def accuracies(record):
        acc = {"train_acc": float((predict_proba(model, x).argmax(1) == y).mean())}
        if val is not None:
            acc["val_acc"] = float((predict_proba(model, val[0]).argmax(1) == val[1].astype(np.int64)).mean())
        return acc

    with seeded(random_state), torch_threads(n_threads):
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        # batch norm needs two samples per batch
        result = train_loop(model, opt, lambda epoch: minibatches(np.arange(len(x)), batch_size, rng, min_size=2),
                            batch_loss, epochs=int(epochs), log=accuracies)
    rows = [{"epoch": r["epoch"] + 1, "loss": r["train_loss"],
             **{k: r[k] for k in ("train_acc", "val_acc") if k in r}} for r in result.history]
    return pd.DataFrame(rows)


def predict_proba(model, X, batch_size: int = 256) -> np.ndarray:
    """Class probabilities ``(n, n_classes)`` of ``model`` in eval mode (chapter 15_images_sensors)."""
    x = as_images(X)
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            out.append(torch.softmax(model(torch.from_numpy(x[start:start + batch_size])), dim=1).numpy())
    return np.concatenate(out)


class CNNClassifier(BaseEstimator, ClassifierMixin):
    """:func:`SmallCNN` behind the scikit-learn API (chapter 15_images_sensors).

    ``fit(X, y)`` accepts any labels (mapped to ``classes_``) and images in any layout
    :func:`as_images` reads; normalise them first (e.g. :class:`ImageNormalizer` in a
    Pipeline). ``augment=True`` applies :func:`augment` to training batches.
    ``history_`` holds the per-epoch loss and training accuracy.
    """

    def __init__(self, width: int = 8, epochs: int = 5, batch_size: int = 16, lr: float = 3e-3,
                 augment: bool = False, random_state: int = 0, n_threads: int | None = 1):
        self.width = width
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.augment = augment
        self.random_state = random_state
        self.n_threads = n_threads

    def fit(self, X, y):
        x, y = _check_xy(X, y, "CNNClassifier.fit")
        self.classes_, yi = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise SignalError(f"CNNClassifier.fit: one class only ({self.classes_.tolist()})")
        with seeded(self.random_state):  # the initial weights follow random_state too
            self.model_ = SmallCNN(x.shape[1], len(self.classes_), self.width)
        fn = (lambda b, r: augment(b, r)) if self.augment else None
        self.history_ = train_cnn(self.model_, x, yi, self.epochs, self.batch_size, self.lr, self.random_state, fn,
                                  n_threads=self.n_threads)
        return self

    def predict_proba(self, X) -> np.ndarray:
        if not hasattr(self, "model_"):
            raise SignalError("CNNClassifier: call fit first")
        with torch_threads(self.n_threads):
            return predict_proba(self.model_, X)

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


# --------------------------------------------------------------------------- data
def thermal_frames(cohort, stream: str = "thermal", label_kind: str = "label") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(frames, labels, groups)`` from every recording of a cohort (chapter 15_images_sensors).

    ``frames`` ``(n, H, W)`` float32 (°C for the factory scenario), ``labels`` the label of
    the ``label_kind`` annotation of each frame's recording (``failure``/``healthy``),
    ``groups`` the recording's subject id: frames of one machine are near copies of each
    other, so split by group (e.g. ``GroupShuffleSplit``), never by frame. Recordings
    without the stream (a missing modality) are skipped.
    """
    frames, labels, groups = [], [], []
    for rec in cohort:
        if stream not in rec:
            continue
        s = rec[stream]
        lab = rec.annotations[rec.annotations["kind"] == label_kind]["label"]
        if lab.empty:
            raise SignalError(f"recording {rec.subject!r}: no {label_kind!r} annotation to label its frames")
        data = s.data
        if data.ndim != 3:
            raise SignalError(f"recording {rec.subject!r}, stream {stream!r}: expected frames "
                              f"(n, H, W), got shape {data.shape}")
        frames.append(np.asarray(data, dtype=np.float32))
        labels += [str(lab.iloc[0])] * len(data)
        groups += [rec.subject] * len(data)
    if not frames:
        raise SignalError(f"no recording of the cohort has a {stream!r} stream")
    return np.concatenate(frames), np.array(labels), np.array(groups)

