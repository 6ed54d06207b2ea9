"""Deep fusion: PyTorch modules and the estimator that trains them (chapters
30_fusion_taxonomy, 31_attention_transformers).

Each architecture is an ``nn.Module`` whose ``forward(xs, present)`` takes a list of
per-modality tensors (in the order of ``modalities_``; absent rows already zero) and a
bool presence tensor ``(n, M)`` (``(n, T, M)`` for the temporal model) and returns
logits. The absent rows never reach the output: each module replaces or masks them
explicitly (``torch.where``, ``-inf`` attention logits, key padding masks), which the tests
check by changing absent values (also to NaN) and comparing outputs bit for bit.

The estimators (:class:`TensorFusion`, :class:`LowRankFusion`, :class:`AttentionFusion`,
:class:`TransformerFusion`, :class:`GatedFusion`, :class:`TemporalFusion`) follow the
contract of :mod:`mmlab.fusion` and the scikit-learn API. Training is an explicit loop:
AdamW, mini-batches, cross-entropy (optionally class-balanced), early stopping on the
validation loss (a stratified ``validation_fraction`` of the training rows, or the
``validation=(X, y, mask)`` given to ``fit``), the best epoch's weights restored, a tqdm
bar when ``progress=True``, seeded by ``random_state`` without touching the global torch
RNG, on ``device`` (default ``"cpu"``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from torch import nn

from mmlab._torch import minibatches, seeded, torch_threads, train_loop, validation_split
from mmlab.errors import SchemaError
from mmlab.fusion._contract import ModalityScaler, check_inputs, check_target, drop_modalities, encode_known
from mmlab.fusion.classic import FusionClassifierMixin


# ---------------------------------------------------------------------------- modules
def _encoder(d: int, h: int, dropout: float, act: type[nn.Module] = nn.ReLU) -> nn.Module:
    return nn.Sequential(nn.Linear(d, h), act(), nn.Dropout(dropout))


def _masked_softmax(scores: torch.Tensor, present: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax over ``dim`` with absent entries at -inf (weight exactly 0); all-absent -> 0."""
    masked = scores.masked_fill(~present, float("-inf"))
    anyp = present.any(dim=dim, keepdim=True)
    w = torch.softmax(torch.where(anyp, masked, torch.zeros_like(scores)), dim=dim)
    return torch.where(present, w, torch.zeros_like(w))


class TensorFusionNet(nn.Module):
    """Tensor fusion (Zadeh et al., 2017): the outer product of ``[z_m, 1]`` over modalities.

    The appended 1 keeps every lower-order term (unimodal and pairwise) in the product. An
    absent modality contributes ``[0, ..., 0, 1]``: only its constant term, so the product
    reduces exactly to the tensor of the present modalities. Size grows as
    ``(tensor_dim + 1) ** M``.
    """

    def __init__(self, dims: Sequence[int], n_classes: int, hidden: int = 32, tensor_dim: int = 8,
                 dropout: float = 0.1):
        super().__init__()
        self.enc = nn.ModuleList(_encoder(d, tensor_dim, dropout) for d in dims)
        size = (tensor_dim + 1) ** len(dims)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(size, hidden), nn.ReLU(),
                                  nn.Linear(hidden, n_classes))

    def forward(self, xs: list[torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        t = None
        for k, (enc, x) in enumerate(zip(self.enc, xs)):
            z = torch.where(present[:, k:k + 1], enc(x), 0.0)
            z = torch.cat([z, torch.ones_like(z[:, :1])], dim=1)
            t = z if t is None else (t.unsqueeze(2) * z.unsqueeze(1)).flatten(1)
        return self.head(t)


class LowRankFusionNet(nn.Module):
    """Low-rank multimodal fusion (LMF; Liu et al., 2018): the tensor fusion's weight as a
    sum of ``rank`` products of per-modality factors, never forming the outer product.

    ``fused = sum_r w_r * prod_m ([z_m, 1] @ W_m[r]) + b``; an absent modality contributes
    ``[0, ..., 0, 1] @ W_m[r]`` (a learned constant), exactly as in :class:`TensorFusionNet`.
    """

    def __init__(self, dims: Sequence[int], n_classes: int, hidden: int = 32, tensor_dim: int = 16,
                 rank: int = 4, dropout: float = 0.1):
        super().__init__()
        self.enc = nn.ModuleList(_encoder(d, tensor_dim, dropout) for d in dims)
        self.factors = nn.ParameterList(
            nn.Parameter(nn.init.xavier_normal_(torch.empty(rank, tensor_dim + 1, hidden))) for _ in dims)
        self.rank_weights = nn.Parameter(nn.init.xavier_normal_(torch.empty(1, rank)))
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def forward(self, xs: list[torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        prod = None
        for k, (enc, x, W) in enumerate(zip(self.enc, xs, self.factors)):
            z = torch.where(present[:, k:k + 1], enc(x), 0.0)
            z = torch.cat([z, torch.ones_like(z[:, :1])], dim=1)
            f = torch.einsum("nk,rkh->nrh", z, W)
            prod = f if prod is None else prod * f
        fused = torch.einsum("r,nrh->nh", self.rank_weights[0], prod) + self.bias
        return self.head(fused)


class AttentionFusionNet(nn.Module):
    """Attention over modality embeddings: ``fused = sum_m alpha_m h_m``.

    ``alpha = softmax(score(h_m))`` over the modalities present in the row; absent ones get
    a ``-inf`` score, hence weight exactly 0. ``forward(..., return_weights=True)`` also
    returns ``alpha`` ``(n, M)``.
    """

    def __init__(self, dims: Sequence[int], n_classes: int, hidden: int = 32, dropout: float = 0.1):
        super().__init__()
        self.enc = nn.ModuleList(_encoder(d, hidden, dropout) for d in dims)
        self.score = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, n_classes))

    def forward(self, xs: list[torch.Tensor], present: torch.Tensor, return_weights: bool = False):
        h = torch.stack([enc(x) for enc, x in zip(self.enc, xs)], dim=1)  # (n, M, h)
        h = torch.where(present.unsqueeze(2), h, 0.0)
        alpha = _masked_softmax(self.score(h).squeeze(2), present, dim=1)  # (n, M)
        logits = self.head((alpha.unsqueeze(2) * h).sum(dim=1))
        return (logits, alpha) if return_weights else logits


class TransformerFusionNet(nn.Module):
    """A cross-modal transformer: one token per modality plus a [CLS] token.

    Token ``m`` is ``Linear_m(x_m) + embedding_m``; self-attention lets every modality
    attend to every other; absent modalities are excluded as keys through the key padding
    mask (the [CLS] token is always present), and the classifier reads the [CLS] output.
    """

    def __init__(self, dims: Sequence[int], n_classes: int, hidden: int = 32, heads: int = 4,
                 layers: int = 1, dropout: float = 0.1):
        super().__init__()
        if hidden % heads:
            raise SchemaError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
        self.proj = nn.ModuleList(nn.Linear(d, hidden) for d in dims)
        self.modality_emb = nn.Parameter(0.02 * torch.randn(len(dims), hidden))
        self.cls = nn.Parameter(0.02 * torch.randn(1, 1, hidden))
        layer = nn.TransformerEncoderLayer(hidden, heads, 2 * hidden, dropout, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, n_classes))

    def forward(self, xs: list[torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        tok = torch.stack([p(x) for p, x in zip(self.proj, xs)], dim=1) + self.modality_emb
        tok = torch.where(present.unsqueeze(2), tok, 0.0)
        n = tok.shape[0]
        seq = torch.cat([self.cls.expand(n, -1, -1), tok], dim=1)
        pad = torch.cat([torch.zeros(n, 1, dtype=torch.bool, device=tok.device), ~present], dim=1)
        out = self.encoder(seq, src_key_padding_mask=pad)
        return self.head(out[:, 0])


class GatedFusionNet(nn.Module):
    """Gated multimodal units (after Arevalo et al., 2017) for any number of modalities.

    ``h_m = tanh(W_m x_m)``; per feature, gates ``g[:, m, j]`` (a softmax over the present
    modalities of a linear map of all ``h`` and the presence flags) choose how much of each
    modality enters ``fused_j = sum_m g_mj h_mj``. Absent modalities get gate exactly 0.
    """

    def __init__(self, dims: Sequence[int], n_classes: int, hidden: int = 32, dropout: float = 0.1):
        super().__init__()
        M = len(dims)
        self.enc = nn.ModuleList(_encoder(d, hidden, dropout, nn.Tanh) for d in dims)
        self.gate = nn.Linear(M * hidden + M, M * hidden)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, n_classes))

    def forward(self, xs: list[torch.Tensor], present: torch.Tensor, return_gates: bool = False):
        h = torch.stack([enc(x) for enc, x in zip(self.enc, xs)], dim=1)  # (n, M, h)
        h = torch.where(present.unsqueeze(2), h, 0.0)
        u = torch.cat([h.flatten(1), present.to(h.dtype)], dim=1)
        g = _masked_softmax(self.gate(u).view_as(h), present.unsqueeze(2).expand_as(h), dim=1)
        logits = self.head((g * h).sum(dim=1))
        return (logits, g) if return_gates else logits


class TemporalFusionNet(nn.Module):
    """Per-window fusion followed by an LSTM over a sequence of windows.

    At each step the per-modality embeddings (absent ones replaced by 0) and the presence
    flags are concatenated; the LSTM reads the sequence and the classifier its last step
    (the window being labelled, with the earlier windows as context).
    """

    def __init__(self, dims: Sequence[int], n_classes: int, hidden: int = 32, dropout: float = 0.1):
        super().__init__()
        M = len(dims)
        self.enc = nn.ModuleList(_encoder(d, hidden, dropout) for d in dims)
        self.rnn = nn.LSTM(M * hidden + M, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def forward(self, xs: list[torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        h = torch.stack([enc(x) for enc, x in zip(self.enc, xs)], dim=2)  # (n, T, M, h)
        h = torch.where(present.unsqueeze(3), h, 0.0)
        u = torch.cat([h.flatten(2), present.to(h.dtype)], dim=2)
        out, _ = self.rnn(u)
        return self.head(out[:, -1])


# ---------------------------------------------------------------------------- estimators
class DeepFusion(FusionClassifierMixin, BaseEstimator):
    """Base estimator: standardisation, the training loop, prediction (chapter
    31_attention_transformers).

    Subclasses set ``_net`` (the module class) and ``_net_params`` (constructor arguments
    taken from the estimator's parameters); use one of them (:class:`AttentionFusion`,
    :class:`TensorFusion`, ...). The parameters below are shared by all deep models.

    Parameters
    ----------
    modalities : list of str, optional
        The modalities used; ``None`` uses every key of ``X`` at fit time.
    hidden : int, default 32
        Width of the per-modality embeddings.
    dropout : float, default 0.1
        Dropout rate inside the network.
    modality_dropout : float, default 0.0
        During training, each present modality of each row is hidden with this
        probability (at least one stays), so the model learns to do without it.
    epochs, batch_size : int, default 200, 64
        AdamW training length and mini-batch size.
    lr, weight_decay : float, default 3e-3, 1e-4
        AdamW learning rate and weight decay.
    patience : int, default 20
        Epochs without a better validation loss before training stops.
    validation_fraction : float, default 0.15
        Stratified share of the training rows used for early stopping (unless ``fit``
        gets ``validation=(X_val, y_val[, mask_val])``).
    class_weight : None or "balanced", default None
        ``"balanced"`` weights the loss by inverse class frequency.
    random_state : int, default 0
        Seeds the initialisation, batches, split and modality dropout (the global torch
        RNG is not touched).
    device : str, default "cpu"
        Torch device.
    progress : bool, default False
        Show a tqdm bar over the epochs.
    n_threads : int or None, default 1
        Torch's intra-op threads while fitting and predicting (restored afterwards). 1 is
        the fastest for models this small and avoids the dramatic slow-down of several
        threads on a busy machine; ``None`` keeps torch's setting.

    Attributes
    ----------
    net_ : torch.nn.Module
        The trained network (eval mode, best epoch's weights).
    history_ : list of dict
        Per-epoch training and validation losses.
    best_epoch_ : int
        The epoch whose weights were kept.
    classes_, modalities_ : ndarray, list
        Class labels (columns of ``predict_proba``) and the modalities used, in order.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 50)  # the label shows in "ecg" only
    >>> X = {"ecg": rng.normal(2.0 * y[:, None], 1.0, (100, 3)), "eda": rng.normal(0.0, 1.0, (100, 2))}
    >>> mask = {"eda": np.arange(100) % 4 != 0}  # every 4th row has no EDA
    >>> model = AttentionFusion(epochs=30).fit(X, y, mask=mask)
    >>> model.predict_proba(X, mask=mask).shape, bool((model.predict(X, mask=mask) == y).mean() > 0.85)
    ((100, 2), True)
    >>> model.best_epoch_ <= 30 and len(model.history_) <= 30
    True
    """

    _net: type[nn.Module] = nn.Module
    _net_params: tuple[str, ...] = ()
    _temporal = False

    def __init__(self, modalities: Sequence[str] | None = None, hidden: int = 32,
                 dropout: float = 0.1, modality_dropout: float = 0.0, epochs: int = 200,
                 batch_size: int = 64, lr: float = 3e-3, weight_decay: float = 1e-4,
                 patience: int = 20, validation_fraction: float = 0.15,
                 class_weight: str | None = None, random_state: int = 0, device: str = "cpu",
                 progress: bool = False, n_threads: int | None = 1):
        self.modalities = modalities
        self.hidden = hidden
        self.dropout = dropout
        self.modality_dropout = modality_dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.class_weight = class_weight
        self.random_state = random_state
        self.device = device
        self.progress = progress
        self.n_threads = n_threads

    # ------------------------------------------------------------------ data
    def _tensors(self, xs: dict, present: dict, rows=None):
        dev = torch.device(self.device)
        sel = slice(None) if rows is None else rows
        t = [torch.as_tensor(xs[m][sel], dtype=torch.float32, device=dev) for m in self.modalities_]
        p = torch.as_tensor(np.stack([present[m][sel] for m in self.modalities_], axis=-1), device=dev)
        return t, p

    def _prepare(self, X, mask, fitting: bool = False):
        if fitting:
            xs, present, n = check_inputs(X, mask, self.modalities, temporal=self._temporal)
        else:
            check_is_fitted(self, "classes_")
            xs, present, n = check_inputs(X, mask, self.modalities_, temporal=self._temporal,
                                          dims=self.dims_)
        return xs, present, n

    # ------------------------------------------------------------------ fit
    def fit(self, X: Mapping[str, Any], y: Any, mask: Mapping[str, Any] | None = None,
            validation: tuple | None = None) -> "DeepFusion":
        """Train on ``(X, y, mask)``; ``validation=(X_val, y_val[, mask_val])`` replaces the
        internal validation split used for early stopping."""
        if self.class_weight not in (None, "balanced"):
            raise SchemaError(f"class_weight must be None or 'balanced', got {self.class_weight!r}")
        if not 0.0 <= self.modality_dropout < 1.0:
            raise SchemaError(f"modality_dropout must be in [0, 1), got {self.modality_dropout!r}")
        xs, present, n = self._prepare(X, mask, fitting=True)
        y = check_target(y, n)
        self.modalities_ = list(xs)
        self.dims_ = {m: a.shape[-1] for m, a in xs.items()}
        self.classes_ = np.unique(y)
        yi = np.searchsorted(self.classes_, y)
        self.scaler_ = ModalityScaler().fit(xs, present)
        xs = self.scaler_.transform(xs, present)

        train = np.arange(n)
        val_data = None
        if validation is not None:
            Xv, yv = validation[0], validation[1]
            mv = validation[2] if len(validation) > 2 else None
            xv, pv, nv = check_inputs(Xv, mv, self.modalities_, temporal=self._temporal, dims=self.dims_)
            val_data = (self.scaler_.transform(xv, pv), pv, encode_known(yv, self.classes_, nv, "validation y"))
        elif self.validation_fraction > 0 and n >= 20:
            train, val = validation_split(n, self.validation_fraction, self.random_state, stratify=yi)
            val_data = ({m: a[val] for m, a in xs.items()}, {m: p[val] for m, p in present.items()},
                        yi[val])

        with seeded(self.random_state), torch_threads(self.n_threads):
            self._train(xs, present, yi, np.sort(train), val_data)
        return self

    def _build(self) -> nn.Module:
        params = {k: getattr(self, k) for k in self._net_params}
        return self._net([self.dims_[m] for m in self.modalities_], len(self.classes_),
                         hidden=self.hidden, dropout=self.dropout, **params)

    def _train(self, xs, present, yi, train, val_data) -> None:
        dev = torch.device(self.device)
        net = self._build().to(dev)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        weight = None
        if self.class_weight == "balanced":
            counts = np.bincount(yi[train], minlength=len(self.classes_)).astype(float)
            weight = torch.as_tensor(len(train) / (len(counts) * np.maximum(counts, 1)),
                                     dtype=torch.float32, device=dev)
        loss_fn = nn.CrossEntropyLoss(weight=weight)
        rng = np.random.default_rng(self.random_state)
        gen = torch.Generator().manual_seed(self.random_state)
        y_t = torch.as_tensor(yi, dtype=torch.long, device=dev)

        def batch_loss(rows):
            pr = {m: present[m][rows] for m in self.modalities_}
            if self.modality_dropout > 0:
                pr = drop_modalities(pr, self.modality_dropout, rng)
            xb, pb = self._tensors({m: xs[m][rows] for m in self.modalities_}, pr)
            return loss_fn(net(xb, pb), y_t[rows])

        validate = None
        if val_data is not None:
            xv, pv = self._tensors(val_data[0], val_data[1])
            yv = torch.as_tensor(val_data[2], dtype=torch.long, device=dev)

            def validate():
                return nn.functional.cross_entropy(net(xv, pv), yv, weight=weight)

        result = train_loop(net, opt, lambda epoch: minibatches(train, self.batch_size, gen), batch_loss,
                            epochs=self.epochs, validate=validate,
                            patience=self.patience if val_data is not None else None, min_delta=1e-6,
                            progress=self.progress, desc=type(self).__name__)
        self.history_, self.best_epoch_ = result.history, result.best_epoch
        self.net_ = net

    # ------------------------------------------------------------------ predict
    def _forward(self, X, mask, **kw):
        xs, present, n = self._prepare(X, mask)
        xs = self.scaler_.transform(xs, present)
        outs = []
        with torch.no_grad(), torch_threads(self.n_threads):
            for a in range(0, n, 2048):
                rows = np.arange(a, min(n, a + 2048))
                xb, pb = self._tensors(xs, present, rows)
                outs.append(self.net_(xb, pb, **kw))
        return outs, n

    def predict_logits(self, X: Mapping[str, Any], mask: Mapping[str, Any] | None = None) -> np.ndarray:
        """The unnormalised scores ``(n, n_classes)`` (for temperature scaling)."""
        outs, n = self._forward(X, mask)
        if not outs:
            return np.zeros((0, len(self.classes_)))
        return torch.cat(outs).cpu().double().numpy()

    def predict_proba(self, X: Mapping[str, Any], mask: Mapping[str, Any] | None = None) -> np.ndarray:
        z = self.predict_logits(X, mask)
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)


class TensorFusion(DeepFusion):
    """Tensor fusion network (:class:`TensorFusionNet`): the outer product of the modality
    embeddings, each with a 1 appended.

    Parameters
    ----------
    tensor_dim : int, default 8
        Size of each modality's projection before the outer product (the fused tensor has
        ``(tensor_dim + 1) ** M`` entries).
    **others
        As for :class:`DeepFusion` (``modalities``, ``hidden``, ``epochs``,
        ``random_state``, ``n_threads``...).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 50)  # the label shows in "ecg" only
    >>> X = {"ecg": rng.normal(2.0 * y[:, None], 1.0, (100, 3)), "eda": rng.normal(0.0, 1.0, (100, 2))}
    >>> mask = {"eda": np.arange(100) % 4 != 0}  # every 4th row has no EDA
    >>> model = TensorFusion(tensor_dim=4, epochs=30).fit(X, y, mask=mask)
    >>> model.predict_proba(X, mask=mask).shape, bool((model.predict(X, mask=mask) == y).mean() > 0.85)
    ((100, 2), True)
    """

    _net = TensorFusionNet
    _net_params = ("tensor_dim",)

    def __init__(self, modalities=None, tensor_dim: int = 8, hidden: int = 32, dropout: float = 0.1,
                 modality_dropout: float = 0.0, epochs: int = 200, batch_size: int = 64,
                 lr: float = 3e-3, weight_decay: float = 1e-4, patience: int = 20,
                 validation_fraction: float = 0.15, class_weight=None, random_state: int = 0,
                 device: str = "cpu", progress: bool = False, n_threads: int | None = 1):
        super().__init__(modalities, hidden, dropout, modality_dropout, epochs, batch_size, lr,
                         weight_decay, patience, validation_fraction, class_weight, random_state,
                         device, progress, n_threads)
        self.tensor_dim = tensor_dim


class LowRankFusion(DeepFusion):
    """Low-rank multimodal fusion (:class:`LowRankFusionNet`): the tensor-fusion product
    computed through ``rank`` modality-specific factors, without building the tensor.

    Parameters
    ----------
    tensor_dim : int, default 16
        Size of the fused representation.
    rank : int, default 4
        Number of low-rank factors.
    **others
        As for :class:`DeepFusion`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 50)  # the label shows in "ecg" only
    >>> X = {"ecg": rng.normal(2.0 * y[:, None], 1.0, (100, 3)), "eda": rng.normal(0.0, 1.0, (100, 2))}
    >>> mask = {"eda": np.arange(100) % 4 != 0}  # every 4th row has no EDA
    >>> model = LowRankFusion(rank=2, epochs=30).fit(X, y, mask=mask)
    >>> model.predict_proba(X, mask=mask).shape, bool((model.predict(X, mask=mask) == y).mean() > 0.85)
    ((100, 2), True)
    """

    _net = LowRankFusionNet
    _net_params = ("tensor_dim", "rank")

    def __init__(self, modalities=None, tensor_dim: int = 16, rank: int = 4, hidden: int = 32,
                 dropout: float = 0.1, modality_dropout: float = 0.0, epochs: int = 200,
                 batch_size: int = 64, lr: float = 3e-3, weight_decay: float = 1e-4,
                 patience: int = 20, validation_fraction: float = 0.15, class_weight=None,
                 random_state: int = 0, device: str = "cpu", progress: bool = False,
                 n_threads: int | None = 1):
        super().__init__(modalities, hidden, dropout, modality_dropout, epochs, batch_size, lr,
                         weight_decay, patience, validation_fraction, class_weight, random_state,
                         device, progress, n_threads)
        self.tensor_dim = tensor_dim
        self.rank = rank


class AttentionFusion(DeepFusion):
    """Attention fusion (:class:`AttentionFusionNet`) with inspectable modality weights.

    Each row's modality embeddings are averaged with softmax attention weights over the
    modalities present in that row (absent ones get weight exactly 0), see
    :meth:`modality_weights`.

    Parameters
    ----------
    **params
        As for :class:`DeepFusion` (``modalities``, ``hidden``, ``dropout``,
        ``modality_dropout``, ``epochs``, ``random_state``, ``n_threads``...).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 50)  # the label shows in "ecg" only
    >>> X = {"ecg": rng.normal(2.0 * y[:, None], 1.0, (100, 3)), "eda": rng.normal(0.0, 1.0, (100, 2))}
    >>> mask = {"eda": np.arange(100) % 4 != 0}  # every 4th row has no EDA
    >>> model = AttentionFusion(epochs=30).fit(X, y, mask=mask)
    >>> w = model.modality_weights(X, mask=mask)
    >>> list(w.columns), float(w.loc[0, "eda"]), bool(np.allclose(w.sum(axis=1), 1.0))
    (['ecg', 'eda'], 0.0, True)
    """

    _net = AttentionFusionNet

    def modality_weights(self, X: Mapping[str, Any], mask: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Per-row attention weight of each modality: a DataFrame ``(n, M)``, columns
        ``modalities_``; rows sum to 1 over the present modalities, absent ones are exactly 0
        (a row with no modality present is all 0)."""
        outs, n = self._forward(X, mask, return_weights=True)
        w = torch.cat([o[1] for o in outs]).double().numpy() if outs else np.zeros((0, len(self.modalities_)))
        return pd.DataFrame(w, columns=list(self.modalities_))


class TransformerFusion(DeepFusion):
    """Cross-modal transformer (:class:`TransformerFusionNet`): one token per modality,
    absent modalities hidden by the key padding mask.

    Parameters
    ----------
    heads : int, default 4
        Attention heads (``hidden`` must be divisible by it).
    layers : int, default 1
        Transformer encoder layers.
    **others
        As for :class:`DeepFusion`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 50)  # the label shows in "ecg" only
    >>> X = {"ecg": rng.normal(2.0 * y[:, None], 1.0, (100, 3)), "eda": rng.normal(0.0, 1.0, (100, 2))}
    >>> mask = {"eda": np.arange(100) % 4 != 0}  # every 4th row has no EDA
    >>> model = TransformerFusion(heads=2, epochs=30).fit(X, y, mask=mask)
    >>> model.predict_proba(X, mask=mask).shape, bool((model.predict(X, mask=mask) == y).mean() > 0.85)
    ((100, 2), True)
    """

    _net = TransformerFusionNet
    _net_params = ("heads", "layers")

    def __init__(self, modalities=None, heads: int = 4, layers: int = 1, hidden: int = 32,
                 dropout: float = 0.1, modality_dropout: float = 0.0, epochs: int = 200,
                 batch_size: int = 64, lr: float = 3e-3, weight_decay: float = 1e-4,
                 patience: int = 20, validation_fraction: float = 0.15, class_weight=None,
                 random_state: int = 0, device: str = "cpu", progress: bool = False,
                 n_threads: int | None = 1):
        super().__init__(modalities, hidden, dropout, modality_dropout, epochs, batch_size, lr,
                         weight_decay, patience, validation_fraction, class_weight, random_state,
                         device, progress, n_threads)
        self.heads = heads
        self.layers = layers


class GatedFusion(DeepFusion):
    """Gated fusion (:class:`GatedFusionNet`): each feature of each modality's embedding is
    scaled by a learned gate (a softmax over the present modalities, per feature) before
    summing; absent modalities get gate 0.

    Parameters
    ----------
    **params
        As for :class:`DeepFusion`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 50)  # the label shows in "ecg" only
    >>> X = {"ecg": rng.normal(2.0 * y[:, None], 1.0, (100, 3)), "eda": rng.normal(0.0, 1.0, (100, 2))}
    >>> mask = {"eda": np.arange(100) % 4 != 0}  # every 4th row has no EDA
    >>> model = GatedFusion(epochs=30).fit(X, y, mask=mask)
    >>> g = model.modality_weights(X, mask=mask)
    >>> g.shape, float(g.loc[0, "eda"])
    ((100, 2), 0.0)
    """

    _net = GatedFusionNet

    def modality_weights(self, X: Mapping[str, Any], mask: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Per-row gate of each modality averaged over the embedding features ``(n, M)``;
        absent modalities are exactly 0."""
        outs, n = self._forward(X, mask, return_gates=True)
        g = torch.cat([o[1] for o in outs]).mean(dim=2).double().numpy() if outs \
            else np.zeros((0, len(self.modalities_)))
        return pd.DataFrame(g, columns=list(self.modalities_))


class TemporalFusion(DeepFusion):
    """Temporal fusion (:class:`TemporalFusionNet`): an LSTM over a sequence of windows.

    ``X[m]`` has shape ``(n, T, d_m)``, ``mask[m]`` shape ``(n, T)`` (or ``(n,)`` for the
    whole sequence); the label belongs to the last window of each sequence
    (:func:`mmlab.fusion.tables.sequences_from_table` builds such inputs).

    Parameters
    ----------
    **params
        As for :class:`DeepFusion`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 50)
    >>> X = {"ecg": rng.normal(2.0 * y[:, None, None], 1.0, (100, 4, 3)),  # 4 windows each
    ...      "eda": rng.normal(0.0, 1.0, (100, 4, 2))}
    >>> model = TemporalFusion(epochs=30).fit(X, y)
    >>> model.predict_proba(X).shape, bool((model.predict(X) == y).mean() > 0.85)
    ((100, 2), True)
    """

    _net = TemporalFusionNet
    _temporal = True
