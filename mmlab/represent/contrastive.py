"""Contrastive alignment of two modalities: CLIP-style dual encoders (chapter 22_contrastive).

Two towers map the two views of an item (an utterance's voice features and its transcript;
a window of physiology and the voice clip spoken in it) into one space of unit vectors.
Training uses **InfoNCE** (van den Oord et al. 2018; CLIP, Radford et al. 2021): in a batch
of ``n`` pairs, the ``n x n`` matrix of cosine similarities divided by a temperature is read
as ``n`` classification problems per direction, "which column is my partner?", and the loss
is the mean cross-entropy over both directions (:func:`info_nce`). The temperature is a
parameter too, learnt on a log scale and clamped to ``[t_min, t_max]``.

* :func:`info_nce` -- the symmetric loss; ``log(n)`` for uninformative embeddings;
* :class:`DualEncoder` -- the PyTorch module (two MLP towers, the log-temperature);
* :class:`ContrastiveAligner` -- standardisation + a seeded training loop with a
  validation split and early stopping, scikit-learn style (``fit``, ``transform_a``,
  ``transform_b``, ``retrieval``);
* :func:`zero_shot_scores` / :func:`zero_shot_predict` -- labels without labelled
  training data: class prompts embedded by the frozen text tower
  (:func:`mmlab.text.embed`), projected by the text head, nearest prototype wins;
* :func:`make_paired_views` -- planted pairs for tests and warm-ups.

Paired data from the cohorts (voice <-> transcript, physiology <-> voice) is built in
:mod:`mmlab.represent.pairs`; retrieval metrics live in :mod:`mmlab.represent.retrieval`.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.preprocessing import StandardScaler

from mmlab._torch import minibatches, seeded, torch_threads, train_loop, validation_split
from mmlab.errors import SignalError
from mmlab.represent.retrieval import check_pair, retrieval_report, similarity

__all__ = [
    "info_nce", "DualEncoder", "ContrastiveAligner", "zero_shot_scores", "zero_shot_predict",
    "make_paired_views", "CALL_PROMPTS", "CALL_DESCRIPTIONS",
]


# ----------------------------------------------------------------------- the loss
def info_nce(za, zb, temperature=0.07):
    """Symmetric InfoNCE of two batches of paired embeddings (chapter 22_contrastive).

    Rows are L2-normalised, ``logits = za @ zb.T / temperature``, and the loss is the
    mean of the cross-entropies of the rows (a -> b) and of the columns (b -> a) with the
    diagonal as the target. Constant embeddings give exactly ``log(n)``; perfectly
    aligned, mutually orthogonal pairs give about ``0`` when the temperature is small.
    ``temperature`` is a float or a scalar tensor (then it receives a gradient).
    """
    import torch
    import torch.nn.functional as F

    if za.ndim != 2 or zb.ndim != 2 or za.shape != zb.shape:
        raise SignalError(f"info_nce: need two (batch, dim) tensors of the same shape, got "
                          f"{tuple(za.shape)} and {tuple(zb.shape)}")
    if za.shape[0] < 2:
        raise SignalError(f"info_nce: a batch needs at least 2 pairs, got {za.shape[0]}")
    t = temperature if torch.is_tensor(temperature) else torch.tensor(float(temperature))
    if not bool(t > 0):
        raise SignalError(f"info_nce: temperature must be > 0, got {float(t)}")
    za, zb = F.normalize(za, dim=1), F.normalize(zb, dim=1)
    logits = za @ zb.T / t
    target = torch.arange(za.shape[0])
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def _mlp(n_in: int, hidden: Sequence[int], n_out: int, dropout: float):
    import torch.nn as nn

    layers, d = [], n_in
    for h in hidden:
        layers += [nn.Linear(d, int(h)), nn.GELU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        d = int(h)
    layers.append(nn.Linear(d, n_out))
    return nn.Sequential(*layers)


@functools.lru_cache(maxsize=1)
def _dual_encoder_class():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class _DualEncoder(nn.Module):
        """Two towers to unit vectors and a clamped log-temperature (see :func:`DualEncoder`)."""

        def __init__(self, dim_a, dim_b, embed_dim, hidden_a, hidden_b, temperature, t_min, t_max,
                     learn_temperature, dropout):
            super().__init__()
            self.tower_a = _mlp(dim_a, hidden_a, embed_dim, dropout)
            self.tower_b = _mlp(dim_b, hidden_b, embed_dim, dropout)
            self.log_t = nn.Parameter(torch.tensor(math.log(temperature)), requires_grad=learn_temperature)
            self.log_t_min, self.log_t_max = math.log(t_min), math.log(t_max)

        def temperature(self):
            return self.log_t.clamp(self.log_t_min, self.log_t_max).exp()

        def clamp_(self):
            with torch.no_grad():
                self.log_t.clamp_(self.log_t_min, self.log_t_max)

        def encode_a(self, xa):
            return F.normalize(self.tower_a(xa), dim=1)

        def encode_b(self, xb):
            return F.normalize(self.tower_b(xb), dim=1)

        def forward(self, xa, xb):
            return self.encode_a(xa), self.encode_b(xb)

        def loss(self, xa, xb):
            za, zb = self(xa, xb)
            return info_nce(za, zb, self.temperature())

    return _DualEncoder


def DualEncoder(dim_a: int, dim_b: int, embed_dim: int = 32, hidden_a: Sequence[int] = (128,),
                hidden_b: Sequence[int] = (), temperature: float = 0.1, t_min: float = 0.01,
                t_max: float = 1.0, learn_temperature: bool = True, dropout: float = 0.1):
    """A two-tower encoder with a log-parameterised temperature (PyTorch ``nn.Module``;
    chapter 22_contrastive).

    ``tower_a`` / ``tower_b``: MLPs (GELU, optional dropout) from each view to
    ``embed_dim``; ``hidden_b=()`` makes the b side a linear projection head, the usual
    choice on top of a frozen pretrained encoder. ``log_t`` is an ``nn.Parameter``
    (``requires_grad=learn_temperature``); ``temperature()`` returns
    ``exp(clamp(log_t, log t_min, log t_max))`` and ``clamp_()`` pulls the parameter
    itself back into the bounds after an optimiser step. ``forward(xa, xb)`` returns the
    two batches of unit vectors, ``loss(xa, xb)`` their :func:`info_nce`.
    """
    if not 0 < t_min <= temperature <= t_max:
        raise SignalError(f"DualEncoder: need 0 < t_min <= temperature <= t_max, got "
                          f"{t_min}, {temperature}, {t_max}")
    if int(embed_dim) < 1 or int(dim_a) < 1 or int(dim_b) < 1:
        raise SignalError(f"DualEncoder: dimensions must be >= 1, got dim_a={dim_a}, dim_b={dim_b}, "
                          f"embed_dim={embed_dim}")
    return _dual_encoder_class()(int(dim_a), int(dim_b), int(embed_dim), tuple(hidden_a), tuple(hidden_b),
                                 float(temperature), float(t_min), float(t_max), bool(learn_temperature),
                                 float(dropout))


# ------------------------------------------------------------------- the trainer
class ContrastiveAligner(BaseEstimator):
    """Train a :func:`DualEncoder` on paired views (chapter 22_contrastive).

    ``fit(A, B, groups=None)`` z-scores both views, holds out ``validation_fraction`` of the
    rows (whole groups when ``groups`` is given, e.g. calls or subjects, so that no call
    is split across the two) and runs AdamW on :func:`info_nce` over shuffled mini-batches
    of ``batch_size`` pairs; after every epoch the validation loss decides early stopping
    (``patience`` epochs) and the best weights are kept. The temperature is learnt unless
    ``learn_temperature=False``, always within ``[t_min, t_max]``.

    ``transform_a(A)`` / ``transform_b(B)`` give unit vectors in the shared space;
    ``retrieval(A, B)`` recall@1/5/10 in both directions with chance. Seeded and CPU-only
    with ``n_threads`` PyTorch threads (default 1): identical arguments (``random_state``) give identical
    embeddings. ``history_`` has per-epoch ``train_loss``, ``val_loss``,
    ``temperature``; ``best_epoch_``, ``train_seconds_``.
    """

    def __init__(self, embed_dim: int = 32, hidden_a: Sequence[int] = (128,), hidden_b: Sequence[int] = (),
                 temperature: float = 0.5, t_min: float = 0.01, t_max: float = 1.0,
                 learn_temperature: bool = True, dropout: float = 0.1, lr: float = 2e-3,
                 weight_decay: float = 1e-3, epochs: int = 200, batch_size: int = 128,
                 validation_fraction: float = 0.15, patience: int = 20, random_state: int = 0,
                 n_threads: int | None = 1):
        self.embed_dim = embed_dim
        self.hidden_a = hidden_a
        self.hidden_b = hidden_b
        self.temperature = temperature
        self.t_min = t_min
        self.t_max = t_max
        self.learn_temperature = learn_temperature
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.n_threads = n_threads

    # -- training
    def fit(self, A, B, groups=None):
        import time

        import torch

        A, B = check_pair(A, B, "ContrastiveAligner.fit")
        n = len(A)
        if n < 8:
            raise SignalError(f"ContrastiveAligner.fit: need at least 8 pairs, got {n}")
        if not 0.0 <= float(self.validation_fraction) < 0.5:
            raise SignalError(f"ContrastiveAligner: validation_fraction must be in [0, 0.5), "
                              f"got {self.validation_fraction}")
        t_start = time.perf_counter()
        self.scaler_a_ = StandardScaler().fit(A)
        self.scaler_b_ = StandardScaler().fit(B)
        As = self.scaler_a_.transform(A).astype(np.float32)
        Bs = self.scaler_b_.transform(B).astype(np.float32)
        rng = np.random.default_rng(self.random_state)
        train, val = validation_split(n, float(self.validation_fraction), rng, groups=groups)
        if len(val) < 2:
            val = np.array([], dtype=int)
        bs = int(min(max(int(self.batch_size), 2), len(train)))

        with seeded(self.random_state), torch_threads(self.n_threads):
            model = DualEncoder(A.shape[1], B.shape[1], int(self.embed_dim), self.hidden_a, self.hidden_b,
                                float(self.temperature), float(self.t_min), float(self.t_max),
                                bool(self.learn_temperature), float(self.dropout))
            opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                    lr=float(self.lr), weight_decay=float(self.weight_decay))
            ta, tb = torch.from_numpy(As), torch.from_numpy(Bs)
            # a tiny last batch is an easy, noisy contrast: skip it
            result = train_loop(
                model, opt, lambda epoch: minibatches(train, bs, rng, min_size=2, min_last=bs // 2),
                lambda idx: model.loss(ta[idx], tb[idx]), epochs=int(self.epochs),
                validate=(lambda: model.loss(ta[val], tb[val])) if len(val) else None,
                patience=int(self.patience), min_delta=1e-4, after_step=model.clamp_,
                log=lambda rec: {"temperature": float(model.temperature().detach())})
        history, best_epoch = result.history, result.best_epoch
        self.model_ = model.eval()
        self.history_ = pd.DataFrame(history)
        self.best_epoch_ = best_epoch
        self.n_train_, self.n_val_ = len(train), len(val)
        self.temperature_ = float(model.temperature().detach())
        self.dims_ = (A.shape[1], B.shape[1])
        self.train_seconds_ = time.perf_counter() - t_start
        return self

    # -- embeddings
    def _encode(self, Z, which: str) -> np.ndarray:
        import torch

        if not hasattr(self, "model_"):
            raise SignalError("ContrastiveAligner: call fit(A, B) first")
        Z = np.asarray(Z, dtype=float)
        Z = Z[None, :] if Z.ndim == 1 else Z
        d = self.dims_[0 if which == "a" else 1]
        if Z.ndim != 2 or Z.shape[1] != d:
            raise SignalError(f"ContrastiveAligner: view {which} needs {d} features, got shape {Z.shape}")
        if not np.isfinite(Z).all():
            raise SignalError(f"ContrastiveAligner: view {which} has NaN/inf values; impute or drop those rows")
        scaler = self.scaler_a_ if which == "a" else self.scaler_b_
        x = torch.from_numpy(scaler.transform(Z).astype(np.float32))
        with torch.no_grad(), torch_threads(self.n_threads):
            z = self.model_.encode_a(x) if which == "a" else self.model_.encode_b(x)
        return z.numpy().astype(float)

    def transform_a(self, A) -> np.ndarray:
        """Unit-length embeddings of view A rows."""
        return self._encode(A, "a")

    def transform_b(self, B) -> np.ndarray:
        """Unit-length embeddings of view B rows."""
        return self._encode(B, "b")

    def loss(self, A, B) -> float:
        """InfoNCE of the pairs ``(A, B)`` at the learnt temperature (all rows, one batch)."""
        import torch

        za, zb = self.transform_a(A), self.transform_b(B)
        return float(info_nce(torch.from_numpy(za), torch.from_numpy(zb), self.temperature_))

    def retrieval(self, A, B, ks: Sequence[int] = (1, 5, 10), names: tuple[str, str] = ("a", "b")) -> dict:
        """Recall@k both ways between the embedded views, with chance (see
        :func:`~mmlab.represent.retrieval.retrieval_report`)."""
        return retrieval_report(self.transform_a(A), self.transform_b(B), ks, "cosine", names)


# -------------------------------------------------------------------- zero-shot
#: Class descriptions for the call_center labels, CLIP's "a photo of a ..." style
#: (chapter 22_contrastive). They read nothing like a caller's words, which is why they
#: transfer poorly here; compare :data:`CALL_PROMPTS`.
CALL_DESCRIPTIONS: dict[str, list[str]] = {
    "satisfied": ["a satisfied customer"],
    "neutral": ["a neutral customer"],
    "dissatisfied": ["an angry customer"],
}

#: Prompts for the call_center labels written the way callers speak (chapter
#: 22_contrastive): a few first-person sentences per class; their mean is the prototype.
CALL_PROMPTS: dict[str, list[str]] = {
    "satisfied": ["Thanks so much, you really helped me.", "Great, that solved my problem, thank you!",
                  "Wonderful, I appreciate your help."],
    "neutral": ["Okay.", "My customer number is three four one.",
                "It's about my account, it started on Tuesday."],
    "dissatisfied": ["This is absolutely unacceptable.",
                     "I have called three times and nobody fixes it, this is useless.",
                     "I'm really annoyed, why does this keep happening?"],
}


def zero_shot_scores(model: ContrastiveAligner, A, prompts: Mapping[str, str | Sequence[str]],
                     encoder: Callable[[list[str]], np.ndarray] | None = None) -> pd.DataFrame:
    """Cosine similarity of each embedded A row to each class prototype (chapter 22_contrastive).

    A class's prototype is the normalised mean of its prompts, embedded by ``encoder``
    (default: the frozen MiniLM tower, :func:`mmlab.text.embed`) and projected by the
    model's b-side head. Returns a DataFrame with one column per class.
    """
    if not prompts:
        raise SignalError("zero_shot_scores: no prompts given")
    if encoder is None:
        from mmlab.text import embed as encoder
    protos = []
    for label, texts in prompts.items():
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            raise SignalError(f"zero_shot_scores: class {label!r} has no prompts")
        zb = model.transform_b(np.asarray(encoder(texts), dtype=float).reshape(len(texts), -1))
        m = zb.mean(0)
        protos.append(m / max(np.linalg.norm(m), 1e-12))
    za = model.transform_a(A)
    return pd.DataFrame(similarity(za, np.vstack(protos)), columns=list(prompts))


def zero_shot_predict(model: ContrastiveAligner, A, prompts: Mapping[str, str | Sequence[str]],
                      encoder: Callable[[list[str]], np.ndarray] | None = None) -> np.ndarray:
    """The class whose prompt prototype is nearest to each embedded A row (see
    :func:`zero_shot_scores`)."""
    scores = zero_shot_scores(model, A, prompts, encoder)
    return scores.columns.to_numpy()[scores.to_numpy().argmax(axis=1)]


def make_paired_views(n: int = 600, dim_a: int = 20, dim_b: int = 30, dim_shared: int = 8,
                      noise: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Planted pairs (chapter 22_contrastive): a latent ``z`` of ``dim_shared`` dims per
    item is mapped into view A linearly and into view B through a random one-layer tanh
    network, each with Gaussian noise of std ``noise`` (relative to the signal). Item
    ``i`` of A belongs with item ``i`` of B; with ``noise`` small, a good aligner
    retrieves it among hundreds."""
    if n < 2 or dim_shared < 1 or noise < 0:
        raise SignalError(f"make_paired_views: need n >= 2, dim_shared >= 1, noise >= 0; got "
                          f"{n}, {dim_shared}, {noise}")
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, dim_shared))
    a = z @ rng.standard_normal((dim_shared, dim_a))
    h = np.tanh(z @ rng.standard_normal((dim_shared, 64)) / np.sqrt(dim_shared))
    b = h @ rng.standard_normal((64, dim_b))
    a = a + noise * a.std() * rng.standard_normal(a.shape)
    b = b + noise * b.std() * rng.standard_normal(b.shape)
    return a, b
