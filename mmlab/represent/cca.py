"""Canonical correlation analysis, linear and deep (chapter 21_cca).

CCA looks for directions ``u = X a`` and ``v = Y b`` in two views of the same items whose
correlation is as large as possible, then for further pairs uncorrelated with the earlier
ones. The correlations of those pairs, the *canonical correlations*, say how much the two
views share, and the projections (*canonical variates*) are a shared space: retrieve one
view from the other, or concatenate the variates as fused features.

* :class:`LinearCCA` -- scikit-learn's :class:`~sklearn.cross_decomposition.CCA` on
  standardised views, with :meth:`~LinearCCA.canonical_correlations` on any (held-out) data;
* :func:`cca_closed_form` -- the same problem solved in one step (regularised whitening and
  an SVD), the reference for the library and the last stage of deep CCA;
* :func:`cca_loss` -- the negative sum of the top canonical correlations of two batches,
  differentiable (PyTorch), computed in float64 with a ridge on both covariances;
* :class:`DeepCCA` -- two small MLP towers trained on :func:`cca_loss` (Andrew et al. 2013),
  seeded, with a validation split and early stopping; a closed-form linear CCA on the
  towers' outputs gives the final variates;
* planted data with known answers: :func:`make_correlated_views` (chosen canonical
  correlations), :func:`make_nonlinear_views` (a relation linear CCA cannot see) and
  :func:`make_fusion_task` (a label both views carry noisily).

Inputs are ``(n_samples, n_features)`` arrays with rows paired across the views; NaN/inf,
a row-count mismatch or too few rows raise :class:`~mmlab.errors.SignalError`.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import StandardScaler

from mmlab._torch import minibatches, seeded, torch_threads, train_loop, validation_split
from mmlab.errors import SignalError
from mmlab.represent.retrieval import check_pair

__all__ = [
    "canonical_correlations", "cca_closed_form", "LinearCCA", "cca_loss", "DeepCCA",
    "make_correlated_views", "make_nonlinear_views", "make_fusion_task",
]


# ------------------------------------------------------------------ basic pieces
def canonical_correlations(U, V) -> np.ndarray:
    """Pearson correlation of each column of ``U`` with the same column of ``V``.

    Applied to canonical variates of held-out data this is the *held-out* canonical
    correlation, the honest measure (in-sample values are biased upwards). A constant
    column gives NaN.
    """
    U, V = check_pair(U, V, "canonical_correlations")
    if U.shape[1] != V.shape[1]:
        raise SignalError(f"canonical_correlations: {U.shape[1]} vs {V.shape[1]} columns")
    U = U - U.mean(0)
    V = V - V.mean(0)
    den = np.sqrt((U * U).sum(0) * (V * V).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (U * V).sum(0) / np.where(den > 0, den, 1.0), np.nan)


def _check_views(X, Y, what: str, min_rows: int = 3) -> tuple[np.ndarray, np.ndarray]:
    X, Y = check_pair(X, Y, what)
    if len(X) < min_rows:
        raise SignalError(f"{what}: need at least {min_rows} paired rows, got {len(X)}")
    return X, Y


def _inv_sqrt(S: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    w, V = np.linalg.eigh((S + S.T) / 2.0)
    return (V / np.sqrt(np.maximum(w, eps))) @ V.T


def cca_closed_form(X, Y, n_components: int | None = None, reg: float = 1e-4) -> dict:
    """Linear CCA in closed form (chapter 21_cca).

    Centre both views, whiten each with its ridge-regularised covariance
    ``(S + reg * trace(S)/d * I)^(-1/2)``, and take the SVD of the whitened
    cross-covariance: its singular values are the canonical correlations, its singular
    vectors (mapped back through the whitening) the canonical directions. Returns a dict
    with ``mean_x``, ``mean_y``, ``Wx`` ``(p, k)``, ``Wy`` ``(q, k)`` and ``corrs`` ``(k,)``;
    variates are ``(X - mean_x) @ Wx`` (unit variance on the fitting data).
    """
    X, Y = _check_views(X, Y, "cca_closed_form")
    k_max = min(X.shape[1], Y.shape[1])
    k = k_max if n_components is None else int(n_components)
    if not 1 <= k <= k_max:
        raise SignalError(f"cca_closed_form: n_components must be 1..{k_max}, got {n_components}")
    mx, my = X.mean(0), Y.mean(0)
    Xc, Yc = X - mx, Y - my
    n = len(X)
    Sxx, Syy, Sxy = Xc.T @ Xc / (n - 1), Yc.T @ Yc / (n - 1), Xc.T @ Yc / (n - 1)
    Sxx += reg * max(np.trace(Sxx) / len(Sxx), 1e-12) * np.eye(len(Sxx))
    Syy += reg * max(np.trace(Syy) / len(Syy), 1e-12) * np.eye(len(Syy))
    Ax, Ay = _inv_sqrt(Sxx), _inv_sqrt(Syy)
    A, s, Bt = np.linalg.svd(Ax @ Sxy @ Ay)
    return {"mean_x": mx, "mean_y": my, "Wx": Ax @ A[:, :k], "Wy": Ay @ Bt.T[:, :k],
            "corrs": np.clip(s[:k], 0.0, 1.0)}


# ------------------------------------------------------------------- linear CCA
class _TwoViews:
    """What both CCA estimators share once ``_side(Z, "x" | "y")`` projects one view."""

    def transform(self, X, Y=None):
        u = self._side(X, "x")
        return u if Y is None else (u, self._side(Y, "y"))

    def transform_y(self, Y) -> np.ndarray:
        return self._side(Y, "y")

    def fit_transform(self, X, Y=None, **fit_params):
        if Y is None:
            raise SignalError(f"{type(self).__name__}.fit_transform needs both views X and Y")
        return self.fit(X, Y).transform(X, Y)

    def canonical_correlations(self, X, Y) -> np.ndarray:
        """Correlation of each pair of variates on ``(X, Y)`` (held-out data, ideally)."""
        return canonical_correlations(*self.transform(X, Y))


class LinearCCA(_TwoViews, TransformerMixin, BaseEstimator):
    """Linear CCA with standardisation: scikit-learn's ``CCA`` on z-scored views
    (chapter 21_cca).

    ``fit(X, Y)`` learns ``n_components`` pairs of directions; ``transform(X)`` gives the
    X-side variates, ``transform(X, Y)`` both; ``transform_y(Y)`` the Y side.
    ``canonical_correlations(X, Y)`` correlates the paired variates on any data (use
    held-out rows); ``correlations_`` holds the in-sample values. The variates are
    standardised with their training mean and std, so cosine retrieval and downstream
    classifiers see comparable scales on both sides.

    ``pca``: keep at most this many principal components of each standardised view
    before CCA (PCA-CCA). With few rows and many features (a 384-dimensional sentence
    embedding, a few hundred pairs) plain CCA finds spurious perfect correlations; the
    PCA step is the usual regularisation.
    """

    def __init__(self, n_components: int = 2, pca: int | None = None, max_iter: int = 1000, tol: float = 1e-8):
        self.n_components = n_components
        self.pca = pca
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X, Y):
        from sklearn.cross_decomposition import CCA

        from sklearn.decomposition import PCA
        from sklearn.pipeline import make_pipeline

        X, Y = _check_views(X, Y, "LinearCCA.fit")
        dx, dy = X.shape[1], Y.shape[1]
        if self.pca is not None:
            if int(self.pca) < 1:
                raise SignalError(f"LinearCCA: pca must be >= 1 or None, got {self.pca}")
            dx, dy = min(dx, int(self.pca), len(X)), min(dy, int(self.pca), len(X))
        k_max = min(dx, dy, len(X) - 1)
        if not 1 <= int(self.n_components) <= k_max:
            raise SignalError(f"LinearCCA: n_components must be 1..{k_max} for views of "
                              f"{X.shape[1]} and {Y.shape[1]} features (pca={self.pca}) and "
                              f"{len(X)} rows; got {self.n_components}")
        self.n_features_x_, self.n_features_y_ = X.shape[1], Y.shape[1]
        if self.pca is None:
            self.scaler_x_, self.scaler_y_ = StandardScaler().fit(X), StandardScaler().fit(Y)
        else:
            self.scaler_x_ = make_pipeline(StandardScaler(), PCA(dx, random_state=0)).fit(X)
            self.scaler_y_ = make_pipeline(StandardScaler(), PCA(dy, random_state=0)).fit(Y)
        Xs, Ys = self.scaler_x_.transform(X), self.scaler_y_.transform(Y)
        self.cca_ = CCA(n_components=int(self.n_components), scale=self.pca is not None,
                        max_iter=int(self.max_iter), tol=float(self.tol))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NIPALS convergence chatter on tiny data
            self.cca_.fit(Xs, Ys)
        u, v = self.cca_.transform(Xs, Ys)
        self.u_mean_, self.u_std_ = u.mean(0), np.maximum(u.std(0), 1e-12)
        self.v_mean_, self.v_std_ = v.mean(0), np.maximum(v.std(0), 1e-12)
        self.correlations_ = canonical_correlations(u, v)
        return self

    def _check_fitted(self):
        if not hasattr(self, "cca_"):
            raise SignalError("LinearCCA: call fit(X, Y) first")

    def _side(self, Z, which: str) -> np.ndarray:
        self._check_fitted()
        Z = np.asarray(Z, dtype=float)
        Z = Z[:, None] if Z.ndim == 1 else Z
        n_feat = self.n_features_x_ if which == "x" else self.n_features_y_
        if Z.ndim != 2 or Z.shape[1] != n_feat:
            raise SignalError(f"LinearCCA: view {which.upper()} needs {n_feat} features, got shape {Z.shape}")
        if not np.isfinite(Z).all():
            raise SignalError(f"LinearCCA: view {which.upper()} has NaN/inf values")
        if which == "x":
            u = self.cca_.transform(self.scaler_x_.transform(Z))
            return (u.reshape(len(Z), -1) - self.u_mean_) / self.u_std_
        _, v = self.cca_.transform(np.zeros((len(Z), self.cca_.x_rotations_.shape[0])), self.scaler_y_.transform(Z))
        return (v.reshape(len(Z), -1) - self.v_mean_) / self.v_std_



# --------------------------------------------------------------------- deep CCA
def cca_loss(h1, h2, n_components: int | None = None, reg: float = 1e-3):
    """Negative sum of the top ``n_components`` canonical correlations of two batches
    (PyTorch, differentiable; chapter 21_cca).

    The Andrew et al. (2013) objective computed stably on a CPU: float64, centred
    outputs, covariances with a ridge ``reg`` (relative to their mean variance), inverse
    square roots by a symmetric eigendecomposition with clamped eigenvalues, and the
    singular values of ``T = S11^-1/2 S12 S22^-1/2``. The result lies in
    ``[-n_components, 0]``; -k means k perfectly correlated directions.
    """
    import torch

    if h1.ndim != 2 or h2.ndim != 2 or h1.shape[0] != h2.shape[0]:
        raise SignalError(f"cca_loss: need two (batch, dim) tensors with the same batch, got "
                          f"{tuple(h1.shape)} and {tuple(h2.shape)}")
    n = h1.shape[0]
    if n < 3:
        raise SignalError(f"cca_loss: a batch of {n} rows is too small")
    k_max = min(h1.shape[1], h2.shape[1])
    k = k_max if n_components is None else min(int(n_components), k_max)
    a = h1.double() - h1.double().mean(0, keepdim=True)
    b = h2.double() - h2.double().mean(0, keepdim=True)

    def inv_sqrt(S):
        S = (S + S.T) / 2
        d = S.shape[0]
        S = S + reg * (torch.trace(S) / d).clamp_min(1e-12) * torch.eye(d, dtype=S.dtype)
        w, V = torch.linalg.eigh(S)
        return (V * w.clamp_min(1e-12).rsqrt()) @ V.T

    s11, s22, s12 = a.T @ a / (n - 1), b.T @ b / (n - 1), a.T @ b / (n - 1)
    T = inv_sqrt(s11) @ s12 @ inv_sqrt(s22)
    # singular values of T through the eigenvalues of T^T T (clamped before the root,
    # so the gradient stays finite when a correlation is 0)
    ev = torch.linalg.eigvalsh(T.T @ T).clamp_min(1e-12)
    corr = ev.sqrt().flip(0)[:k]
    return -corr.sum().to(h1.dtype)


def _mlp(n_in: int, hidden: Sequence[int], n_out: int, activation: str):
    import torch.nn as nn

    acts = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "softplus": nn.Softplus}
    if activation not in acts:
        raise SignalError(f"unknown activation {activation!r}; use one of {sorted(acts)}")
    layers, d = [], n_in
    for h in hidden:
        layers += [nn.Linear(d, int(h)), acts[activation]()]
        d = int(h)
    layers.append(nn.Linear(d, n_out))
    return nn.Sequential(*layers)


class DeepCCA(_TwoViews, TransformerMixin, BaseEstimator):
    """Deep CCA: two MLP towers trained to maximise the canonical correlations of their
    outputs (Andrew et al. 2013; chapter 21_cca).

    Both views are z-scored, each goes through its tower (``hidden`` layers with
    ``activation``, ``out_dim`` outputs), and Adam minimises :func:`cca_loss` over
    mini-batches (large ones: the loss estimates covariances). A ``validation_fraction`` of the
    rows is held out; training stops after ``patience`` epochs without a better
    validation loss and keeps the best weights. A closed-form linear CCA on the towers'
    training outputs then gives ``n_components`` variates. Seeded and CPU-only:
    identical arguments give identical results (PyTorch's global RNG is left untouched).

    ``n_threads`` PyTorch threads are used while training (default 1, see
    :func:`mmlab._torch.torch_threads`); ``random_state`` seeds everything.

    Attributes after ``fit``: ``history_`` (train and validation loss per epoch),
    ``best_epoch_``, ``correlations_`` (in-sample), ``n_epochs_``.
    """

    def __init__(self, n_components: int = 2, hidden: Sequence[int] = (64, 64), out_dim: int | None = None,
                 activation: str = "relu", reg: float = 1e-3, lr: float = 3e-3, weight_decay: float = 1e-5,
                 epochs: int = 300, batch_size: int = 512, validation_fraction: float = 0.2,
                 patience: int = 30, random_state: int = 0, n_threads: int | None = 1):
        self.n_components = n_components
        self.hidden = hidden
        self.out_dim = out_dim
        self.activation = activation
        self.reg = reg
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.n_threads = n_threads

    def fit(self, X, Y):
        import torch

        X, Y = _check_views(X, Y, "DeepCCA.fit", min_rows=20)
        k = int(self.n_components)
        out_dim = int(self.out_dim or k)
        if not 1 <= k <= out_dim:
            raise SignalError(f"DeepCCA: need 1 <= n_components <= out_dim, got {k} and {out_dim}")
        if not 0.0 <= float(self.validation_fraction) < 0.5:
            raise SignalError(f"DeepCCA: validation_fraction must be in [0, 0.5), got {self.validation_fraction}")
        self.scaler_x_ = StandardScaler().fit(X)
        self.scaler_y_ = StandardScaler().fit(Y)
        Xs, Ys = self.scaler_x_.transform(X), self.scaler_y_.transform(Y)
        rng = np.random.default_rng(self.random_state)
        train, val = validation_split(len(X), float(self.validation_fraction), rng)
        bs = max(min(int(self.batch_size), len(train)), 10)

        with seeded(self.random_state), torch_threads(self.n_threads):
            fx = _mlp(X.shape[1], self.hidden, out_dim, self.activation).double()
            fy = _mlp(Y.shape[1], self.hidden, out_dim, self.activation).double()
            params = list(fx.parameters()) + list(fy.parameters())
            opt = torch.optim.Adam(params, lr=float(self.lr), weight_decay=float(self.weight_decay))
            tx, ty = torch.from_numpy(Xs), torch.from_numpy(Ys)
            # the loss estimates covariances: monitor the training rows if too few are held out
            ids = val if len(val) >= out_dim + 3 else train
            result = train_loop(
                [fx, fy], opt,
                # drop a too-small last batch: a handful of rows gives a useless covariance
                lambda epoch: minibatches(train, bs, rng, min_last=max(bs // 2, out_dim + 2)),
                lambda idx: cca_loss(fx(tx[idx]), fy(ty[idx]), out_dim, self.reg),
                epochs=int(self.epochs), patience=int(self.patience), min_delta=1e-5,
                validate=lambda: cca_loss(fx(tx[ids]), fy(ty[ids]), out_dim, self.reg))
        history, best_epoch = result.history, result.best_epoch
        self.tower_x_, self.tower_y_ = fx.eval(), fy.eval()
        self.history_, self.best_epoch_, self.n_epochs_ = history, best_epoch, len(history)
        hx, hy = self._towers(Xs, Ys)
        self.linear_ = cca_closed_form(hx[train], hy[train], k, reg=self.reg)
        self.n_features_x_, self.n_features_y_ = X.shape[1], Y.shape[1]
        self.correlations_ = canonical_correlations(*self.transform(X[train], Y[train]))
        return self

    def _towers(self, Xs: np.ndarray | None, Ys: np.ndarray | None):
        import torch

        with torch.no_grad():
            hx = None if Xs is None else self.tower_x_(torch.from_numpy(Xs)).numpy()
            hy = None if Ys is None else self.tower_y_(torch.from_numpy(Ys)).numpy()
        return hx, hy

    def _side(self, Z, which: str) -> np.ndarray:
        if not hasattr(self, "linear_"):
            raise SignalError("DeepCCA: call fit(X, Y) first")
        Z = np.asarray(Z, dtype=float)
        Z = Z[:, None] if Z.ndim == 1 else Z
        n_feat = self.n_features_x_ if which == "x" else self.n_features_y_
        if Z.ndim != 2 or Z.shape[1] != n_feat:
            raise SignalError(f"DeepCCA: view {which.upper()} needs {n_feat} features, got shape {Z.shape}")
        if not np.isfinite(Z).all():
            raise SignalError(f"DeepCCA: view {which.upper()} has NaN/inf values")
        L = self.linear_
        if which == "x":
            h, _ = self._towers(self.scaler_x_.transform(Z), None)
            return (h - L["mean_x"]) @ L["Wx"]
        _, h = self._towers(None, self.scaler_y_.transform(Z))
        return (h - L["mean_y"]) @ L["Wy"]



# ------------------------------------------------------------------ planted data
def _mixing(rng: np.random.Generator, d: int) -> np.ndarray:
    """A random well-conditioned ``d x d`` matrix (orthogonal times scales 0.5..3)."""
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return Q * rng.uniform(0.5, 3.0, size=d)


def make_correlated_views(n: int = 1000, correlations: Sequence[float] = (0.9, 0.5), dim_x: int = 6,
                          dim_y: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two views with known canonical correlations (chapter 21_cca).

    Shared latents ``z_k`` (one per entry of ``correlations``) enter view X as
    ``sqrt(r) z + sqrt(1-r) e`` and view Y as ``sqrt(r) z + sqrt(1-r) e'`` with
    independent noises, so each pair correlates exactly ``r``; the remaining
    ``dim - len(correlations)`` dimensions of each view are independent noise. Each view
    is then mixed by a random invertible matrix and offset, which hides the structure
    from a glance at the columns but leaves the canonical correlations unchanged: they
    are ``correlations`` followed by zeros.
    """
    r = np.asarray(correlations, dtype=float)
    if r.ndim != 1 or np.any((r < 0) | (r >= 1)):
        raise SignalError(f"make_correlated_views: correlations must lie in [0, 1), got {list(r)}")
    k = len(r)
    if k > min(dim_x, dim_y):
        raise SignalError(f"make_correlated_views: {k} correlations do not fit in {dim_x} and {dim_y} dims")
    if n < 3:
        raise SignalError(f"make_correlated_views: n must be >= 3, got {n}")
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, k))
    a = np.sqrt(r) * z + np.sqrt(1 - r) * rng.standard_normal((n, k))
    b = np.sqrt(r) * z + np.sqrt(1 - r) * rng.standard_normal((n, k))
    Xl = np.hstack([a, rng.standard_normal((n, dim_x - k))])
    Yl = np.hstack([b, rng.standard_normal((n, dim_y - k))])
    X = Xl @ _mixing(rng, dim_x).T + rng.uniform(-5, 5, dim_x)
    Y = Yl @ _mixing(rng, dim_y).T + rng.uniform(-5, 5, dim_y)
    return X, Y


def make_nonlinear_views(n: int = 2000, noise: float = 0.2, n_noise: int = 2,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two views related only nonlinearly (chapter 21_cca).

    Two latents ``z1, z2 ~ N(0, 1)``: view X holds them linearly (plus ``n_noise`` noise
    dimensions), view Y holds ``z1**2`` and ``cos(2 z2)`` (plus noise dimensions), each
    with added Gaussian noise of std ``noise`` times its own spread, then both views are
    mixed. By symmetry every linear function of X is *uncorrelated* with every linear
    function of Y, so linear CCA finds nothing, while a nonlinear map of X can predict Y's
    two signals almost perfectly (correlation about ``1 / sqrt(1 + noise**2)``).
    """
    if n < 3 or noise < 0 or n_noise < 0:
        raise SignalError(f"make_nonlinear_views: need n >= 3, noise >= 0, n_noise >= 0; got "
                          f"{n}, {noise}, {n_noise}")
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 2))
    fx = z
    fy = np.column_stack([z[:, 0] ** 2 - 1.0, np.cos(2.0 * z[:, 1])])
    fx = fx + noise * fx.std(0) * rng.standard_normal(fx.shape)
    fy = fy + noise * fy.std(0) * rng.standard_normal(fy.shape)
    Xl = np.hstack([fx, rng.standard_normal((n, n_noise))])
    Yl = np.hstack([fy / fy.std(0), rng.standard_normal((n, n_noise))])
    X = Xl @ _mixing(rng, Xl.shape[1]).T
    Y = Yl @ _mixing(rng, Yl.shape[1]).T
    return X, Y


def make_fusion_task(n: int = 600, noise: float = 1.0, n_nuisance: int = 20, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two views that each carry a binary label noisily (chapter 21_cca).

    A shared latent ``z ~ N(0, 1)`` sets the label ``y = (z > 0)``; each view measures
    ``z`` once with independent noise of std ``noise`` and adds ``n_nuisance`` loud,
    label-free dimensions of its own, and the columns are mixed. Neither view alone pins
    ``z`` down; the two noisy measurements together do better, and CCA, which never sees
    a label, finds the one direction the views share. Returns ``X, Y, y``.
    """
    if n < 3 or noise < 0 or n_nuisance < 0:
        raise SignalError(f"make_fusion_task: need n >= 3, noise >= 0, n_nuisance >= 0; got "
                          f"{n}, {noise}, {n_nuisance}")
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n)
    y = (z > 0).astype(int)
    views = []
    for _ in range(2):
        m = z + noise * rng.standard_normal(n)
        L = np.column_stack([m, 3.0 * rng.standard_normal((n, n_nuisance))])
        views.append(L @ _mixing(rng, L.shape[1]).T)
    return views[0], views[1], y
