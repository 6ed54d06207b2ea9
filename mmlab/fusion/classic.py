"""Classic fusion on scikit-learn classifiers: early, late, stacking, hybrid (chapter
30_fusion_taxonomy).

All four follow the contract of :mod:`mmlab.fusion` and the scikit-learn estimator API
(``get_params``/``set_params``, :func:`sklearn.base.clone`). The per-modality base
classifier is any scikit-learn classifier with ``predict_proba`` (default: multinomial
logistic regression); features are standardised per modality on the rows where that
modality is present.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from mmlab.errors import SchemaError
from mmlab.fusion._contract import ModalityScaler, check_inputs, check_target, drop_modalities


def default_classifier() -> LogisticRegression:
    """The base classifier used when ``estimator=None``: L2 logistic regression, C=1."""
    return LogisticRegression(max_iter=2000)


class FusionClassifierMixin(ClassifierMixin):
    """``predict`` from ``predict_proba`` and the fitted-state check shared by all models."""

    def predict(self, X: Mapping[str, Any], mask: Mapping[str, Any] | None = None) -> np.ndarray:
        """The most probable class of each row (``classes_[argmax predict_proba]``)."""
        return self.classes_[np.argmax(self.predict_proba(X, mask), axis=1)]

    def score(self, X, y, mask=None, sample_weight=None) -> float:
        """Accuracy (as in scikit-learn), with the presence ``mask``."""
        from sklearn.metrics import accuracy_score

        return float(accuracy_score(y, self.predict(X, mask), sample_weight=sample_weight))

    def _inputs(self, X, mask):
        check_is_fitted(self, "classes_")
        return check_inputs(X, mask, self.modalities_, dims=self.dims_)

    def _prior(self, y: np.ndarray) -> np.ndarray:
        return np.array([np.mean(y == c) for c in self.classes_])


def _augment_dropout(xs, present, y, p, copies, seed):
    """The training rows plus ``copies`` copies with modality dropout applied to the mask."""
    if p <= 0 or copies <= 0:
        return xs, present, y
    rng = np.random.default_rng(seed)
    masks = [present] + [drop_modalities(present, p, rng) for _ in range(copies)]
    xs2 = {m: np.concatenate([a] * (copies + 1)) for m, a in xs.items()}
    pr2 = {m: np.concatenate([mk[m] for mk in masks]) for m in present}
    xs2 = {m: np.where(pr2[m][:, None], a, 0.0) for m, a in xs2.items()}
    return xs2, pr2, np.concatenate([y] * (copies + 1))


class EarlyFusion(FusionClassifierMixin, BaseEstimator):
    """Early fusion: standardise each modality, concatenate, one classifier (chapter
    30_fusion_taxonomy).

    Missing modalities are handled explicitly, never as an accidental zero: an absent
    modality is imputed with its training mean (0 after standardisation) *and* a presence
    indicator column per modality (1 present, 0 absent) is appended, so the classifier can
    tell "average value" from "not measured". ``modality_dropout=p`` adds ``dropout_copies``
    copies of the training rows in which each present modality is hidden with probability
    ``p`` (at least one stays), so the classifier learns what to do when one is missing.

    Parameters
    ----------
    estimator : classifier, optional
        The scikit-learn classifier fitted on the concatenation (cloned; default: a
        logistic regression, :func:`default_classifier`).
    modalities : list of str, optional
        The modalities used (``["ecg"]`` makes a unimodal baseline); ``None`` uses every
        key of ``X`` at fit time.
    modality_dropout : float, default 0.0
        Probability of hiding each present modality in the augmented copies.
    dropout_copies : int, default 1
        Number of augmented copies of the training rows (with ``modality_dropout > 0``).
    random_state : int, default 0
        Seed of the modality dropout.

    Attributes
    ----------
    modalities_, classes_ : list, ndarray
        The modalities used (in order) and the class labels (columns of ``predict_proba``).
    estimator_ : classifier
        The fitted classifier.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 50)  # the label shows in "ecg" only
    >>> X = {"ecg": rng.normal(2.0 * y[:, None], 1.0, (100, 3)), "eda": rng.normal(0.0, 1.0, (100, 2))}
    >>> mask = {"eda": np.arange(100) % 4 != 0}  # every 4th row has no EDA
    >>> model = EarlyFusion().fit(X, y, mask=mask)
    >>> model.modalities_, model.classes_.tolist(), model.predict_proba(X, mask=mask).shape
    (['ecg', 'eda'], [0, 1], (100, 2))
    >>> bool((model.predict(X, mask=mask) == y).mean() > 0.85)
    True
    """

    def __init__(self, estimator=None, modalities: Sequence[str] | None = None,
                 modality_dropout: float = 0.0, dropout_copies: int = 1, random_state: int = 0):
        self.estimator = estimator
        self.modalities = modalities
        self.modality_dropout = modality_dropout
        self.dropout_copies = dropout_copies
        self.random_state = random_state

    def _design(self, xs, present) -> np.ndarray:
        z = self.scaler_.transform(xs, present)
        blocks = []
        for m in self.modalities_:
            blocks += [z[m], present[m][:, None].astype(float)]
        return np.hstack(blocks)

    def fit(self, X: Mapping[str, Any], y: Any, mask: Mapping[str, Any] | None = None) -> "EarlyFusion":
        xs, present, n = check_inputs(X, mask, self.modalities)
        y = check_target(y, n)
        self.modalities_ = list(xs)
        self.dims_ = {m: a.shape[1] for m, a in xs.items()}
        self.scaler_ = ModalityScaler().fit(xs, present)
        xs, present, y = _augment_dropout(xs, present, y, self.modality_dropout,
                                          self.dropout_copies, self.random_state)
        self.estimator_ = clone(self.estimator if self.estimator is not None else default_classifier())
        self.estimator_.fit(self._design(xs, present), y)
        self.classes_ = np.asarray(self.estimator_.classes_)
        return self

    def predict_proba(self, X: Mapping[str, Any], mask: Mapping[str, Any] | None = None) -> np.ndarray:
        xs, present, _ = self._inputs(X, mask)
        return self.estimator_.predict_proba(self._design(xs, present))


def _unimodal_pipeline(estimator, x: np.ndarray, y: np.ndarray):
    """A standardise + classify pipeline, or a class-prior dummy when ``y`` has one class."""
    if len(np.unique(y)) < 2:
        return DummyClassifier(strategy="prior").fit(x, y)
    est = clone(estimator if estimator is not None else default_classifier())
    return make_pipeline(StandardScaler(), est).fit(x, y)


def _proba_on(model, x: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``model.predict_proba(x)`` with columns mapped to ``classes`` (absent classes: 0)."""
    out = np.zeros((len(x), len(classes)))
    if len(x) == 0:
        return out
    p = model.predict_proba(x)
    cols = np.searchsorted(classes, model.classes_)
    out[:, cols] = p
    return out


class LateFusion(FusionClassifierMixin, BaseEstimator):
    """Late fusion: one classifier per modality, probabilities averaged (chapter
    30_fusion_taxonomy).

    Each modality's classifier is trained on the rows where that modality is present. At
    prediction the per-modality probabilities are averaged over the modalities *present in
    that row* (weights ``weights[m]``, default equal), i.e. renormalised over what is there;
    a row with no modality present gets the training class prior. ``combine="mean"``
    averages probabilities, ``combine="log"`` averages log-probabilities (a normalised
    product of experts). Late fusion needs no modality dropout: it degrades by design.

    Parameters
    ----------
    estimator : classifier, optional
        The per-modality classifier (cloned per modality; default: standardisation and a
        logistic regression).
    modalities : list of str, optional
        The modalities used; ``None`` uses every key of ``X`` at fit time.
    weights : mapping, optional
        Weight of each modality in the average (default: equal).
    combine : {"mean", "log"}, default "mean"
        Average probabilities, or log-probabilities (a normalised product of experts).

    Attributes
    ----------
    modalities_, classes_ : list, ndarray
        The modalities used (in order) and the class labels (columns of ``predict_proba``).
    prior_ : ndarray
        The training class frequencies (the prediction when no modality is present).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 50)  # the label shows in "ecg" only
    >>> X = {"ecg": rng.normal(2.0 * y[:, None], 1.0, (100, 3)), "eda": rng.normal(0.0, 1.0, (100, 2))}
    >>> mask = {"eda": np.arange(100) % 4 != 0}  # every 4th row has no EDA
    >>> model = LateFusion(weights={"ecg": 2.0, "eda": 1.0}).fit(X, y, mask=mask)
    >>> proba = model.predict_proba(X, mask=mask)
    >>> proba.shape, bool(np.allclose(proba.sum(axis=1), 1.0))
    ((100, 2), True)
    >>> none = {"ecg": np.zeros(100, bool), "eda": np.zeros(100, bool)}
    >>> model.predict_proba(X, mask=none)[0].tolist() == model.prior_.tolist()  # nothing present
    True
    """

    def __init__(self, estimator=None, modalities: Sequence[str] | None = None,
                 weights: Mapping[str, float] | None = None, combine: str = "mean"):
        self.estimator = estimator
        self.modalities = modalities
        self.weights = weights
        self.combine = combine

    def fit(self, X: Mapping[str, Any], y: Any, mask: Mapping[str, Any] | None = None) -> "LateFusion":
        if self.combine not in ("mean", "log"):
            raise SchemaError(f"combine must be 'mean' or 'log', got {self.combine!r}")
        xs, present, n = check_inputs(X, mask, self.modalities)
        y = check_target(y, n)
        self.modalities_ = list(xs)
        self.dims_ = {m: a.shape[1] for m, a in xs.items()}
        self.classes_ = np.unique(y)
        self.prior_ = self._prior(y)
        self.estimators_ = {}
        for m in self.modalities_:
            if not present[m].any():
                raise SchemaError(f"modality {m!r} is absent in every training row")
            self.estimators_[m] = _unimodal_pipeline(self.estimator, xs[m][present[m]], y[present[m]])
        return self

    def modality_proba(self, X: Mapping[str, Any], mask: Mapping[str, Any] | None = None) -> dict:
        """Each modality's probabilities ``(n, n_classes)``; NaN rows where it is absent."""
        xs, present, n = self._inputs(X, mask)
        out = {}
        for m in self.modalities_:
            p = np.full((n, len(self.classes_)), np.nan)
            p[present[m]] = _proba_on(self.estimators_[m], xs[m][present[m]], self.classes_)
            out[m] = p
        return out

    def predict_proba(self, X: Mapping[str, Any], mask: Mapping[str, Any] | None = None) -> np.ndarray:
        per = self.modality_proba(X, mask)
        n = len(next(iter(per.values())))
        num = np.zeros((n, len(self.classes_)))
        den = np.zeros((n, 1))
        for m, p in per.items():
            w = 1.0 if self.weights is None else float(self.weights.get(m, 1.0))
            here = ~np.isnan(p[:, :1])
            if self.combine == "log":
                term = np.log(np.clip(np.nan_to_num(p), 1e-12, 1.0))
            else:
                term = np.nan_to_num(p)
            num += np.where(here, w * term, 0.0)
            den += w * here
        none = den[:, 0] == 0
        den[none] = 1.0
        out = num / den
        if self.combine == "log":
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
        out[none] = self.prior_
        return out


class StackingFusion(FusionClassifierMixin, BaseEstimator):
    """Stacking: a meta-classifier on the per-modality probabilities (chapter 30_fusion_taxonomy).

    The per-modality classifiers are as in :class:`LateFusion`. The meta-classifier
    (``final_estimator``, default logistic regression) is trained on *out-of-fold*
    probabilities (``cv`` stratified folds, or stratified group folds when ``fit`` gets
    ``groups``), so it learns how far to trust each modality without seeing overfitted
    training predictions. Its input per modality is the probability vector times the
    presence flag plus the presence flag, so an absent modality is an explicit state.
    ``modality_dropout=p`` adds ``dropout_copies`` copies of the meta-level rows with
    modalities hidden at random, so the meta-classifier also learns the missing cases.

    Parameters
    ----------
    estimator : classifier, optional
        The per-modality classifier (as in :class:`LateFusion`).
    final_estimator : classifier, optional
        The meta-classifier (default: a logistic regression).
    modalities : list of str, optional
        The modalities used; ``None`` uses every key of ``X`` at fit time.
    cv : int, default 5
        Folds for the out-of-fold probabilities.
    modality_dropout : float, default 0.0
        Probability of hiding each present modality in the augmented meta-level copies.
    dropout_copies : int, default 2
        Number of augmented copies (with ``modality_dropout > 0``).
    random_state : int, default 0
        Seed of the folds and of the modality dropout.

    Attributes
    ----------
    modalities_, classes_ : list, ndarray
        The modalities used (in order) and the class labels (columns of ``predict_proba``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 50)  # the label shows in "ecg" only
    >>> X = {"ecg": rng.normal(2.0 * y[:, None], 1.0, (100, 3)), "eda": rng.normal(0.0, 1.0, (100, 2))}
    >>> mask = {"eda": np.arange(100) % 4 != 0}  # every 4th row has no EDA
    >>> model = StackingFusion(cv=3).fit(X, y, mask=mask)
    >>> model.predict_proba(X, mask=mask).shape, bool((model.predict(X, mask=mask) == y).mean() > 0.85)
    ((100, 2), True)
    """

    def __init__(self, estimator=None, final_estimator=None, modalities: Sequence[str] | None = None,
                 cv: int = 5, modality_dropout: float = 0.0, dropout_copies: int = 2,
                 random_state: int = 0):
        self.estimator = estimator
        self.final_estimator = final_estimator
        self.modalities = modalities
        self.cv = cv
        self.modality_dropout = modality_dropout
        self.dropout_copies = dropout_copies
        self.random_state = random_state

    def _meta(self, probas: dict, present: dict) -> np.ndarray:
        blocks = []
        for m in self.modalities_:
            blocks += [np.where(present[m][:, None], probas[m], 0.0), present[m][:, None].astype(float)]
        return np.hstack(blocks)

    def fit(self, X: Mapping[str, Any], y: Any, mask: Mapping[str, Any] | None = None,
            groups: Any = None) -> "StackingFusion":
        xs, present, n = check_inputs(X, mask, self.modalities)
        y = check_target(y, n)
        self.modalities_ = list(xs)
        self.dims_ = {m: a.shape[1] for m, a in xs.items()}
        self.classes_ = np.unique(y)
        groups = None if groups is None else np.asarray(groups)
        self.estimators_, oof = {}, {}
        for m in self.modalities_:
            rows = present[m]
            if not rows.any():
                raise SchemaError(f"modality {m!r} is absent in every training row")
            self.estimators_[m] = _unimodal_pipeline(self.estimator, xs[m][rows], y[rows])
            oof[m] = np.zeros((n, len(self.classes_)))
            oof[m][rows] = self._out_of_fold(xs[m][rows], y[rows],
                                             None if groups is None else groups[rows])
        P, pr, yy = _augment_dropout(oof, present, y, self.modality_dropout, self.dropout_copies,
                                     self.random_state)
        self.final_estimator_ = clone(self.final_estimator if self.final_estimator is not None
                                      else default_classifier())
        self.final_estimator_.fit(self._meta(P, pr), yy)
        return self

    def _out_of_fold(self, x, y, groups) -> np.ndarray:
        counts = np.unique(y, return_counts=True)[1]
        k = int(min(self.cv, counts.min()))
        if len(counts) < 2 or k < 2:
            return _proba_on(_unimodal_pipeline(self.estimator, x, y), x, self.classes_)
        if groups is not None and len(np.unique(groups)) >= k:
            splitter = StratifiedGroupKFold(k, shuffle=True, random_state=self.random_state)
            splits = list(splitter.split(x, y, groups))
        else:
            splits = list(StratifiedKFold(k, shuffle=True, random_state=self.random_state).split(x, y))
        out = np.zeros((len(x), len(self.classes_)))
        for tr, te in splits:
            out[te] = _proba_on(_unimodal_pipeline(self.estimator, x[tr], y[tr]), x[te], self.classes_)
        return out

    def predict_proba(self, X: Mapping[str, Any], mask: Mapping[str, Any] | None = None) -> np.ndarray:
        xs, present, n = self._inputs(X, mask)
        probas = {m: np.zeros((n, len(self.classes_))) for m in self.modalities_}
        for m in self.modalities_:
            probas[m][present[m]] = _proba_on(self.estimators_[m], xs[m][present[m]], self.classes_)
        out = np.zeros((n, len(self.classes_)))
        out[:, np.searchsorted(self.classes_, self.final_estimator_.classes_)] = \
            self.final_estimator_.predict_proba(self._meta(probas, present))
        return out


class HybridFusion(FusionClassifierMixin, BaseEstimator):
    """Hybrid fusion: the average of an early-fusion and a late-fusion model (chapter
    30_fusion_taxonomy).

    ``early_weight * EarlyFusion + (1 - early_weight) * LateFusion``: the early part can use
    feature interactions across modalities, the late part stays robust when a modality is
    missing. ``modality_dropout`` is passed to the early part.

    Parameters
    ----------
    estimator : classifier, optional
        Used by both parts (see :class:`EarlyFusion` and :class:`LateFusion`).
    modalities : list of str, optional
        The modalities used; ``None`` uses every key of ``X`` at fit time.
    early_weight : float, default 0.5
        Weight of the early-fusion probabilities, in [0, 1].
    modality_dropout : float, default 0.0
        Passed to the early part.
    random_state : int, default 0
        Seed of the early part's modality dropout.

    Attributes
    ----------
    early_, late_ : EarlyFusion, LateFusion
        The two fitted parts.
    modalities_, classes_ : list, ndarray
        As for the parts.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 50)  # the label shows in "ecg" only
    >>> X = {"ecg": rng.normal(2.0 * y[:, None], 1.0, (100, 3)), "eda": rng.normal(0.0, 1.0, (100, 2))}
    >>> mask = {"eda": np.arange(100) % 4 != 0}  # every 4th row has no EDA
    >>> model = HybridFusion(early_weight=0.7).fit(X, y, mask=mask)
    >>> p = model.predict_proba(X, mask=mask)
    >>> bool(np.allclose(p, 0.7 * model.early_.predict_proba(X, mask=mask)
    ...                  + 0.3 * model.late_.predict_proba(X, mask=mask)))
    True
    """

    def __init__(self, estimator=None, modalities: Sequence[str] | None = None,
                 early_weight: float = 0.5, modality_dropout: float = 0.0, random_state: int = 0):
        self.estimator = estimator
        self.modalities = modalities
        self.early_weight = early_weight
        self.modality_dropout = modality_dropout
        self.random_state = random_state

    def fit(self, X: Mapping[str, Any], y: Any, mask: Mapping[str, Any] | None = None) -> "HybridFusion":
        if not 0.0 <= self.early_weight <= 1.0:
            raise SchemaError(f"early_weight must be in [0, 1], got {self.early_weight!r}")
        self.early_ = EarlyFusion(self.estimator, self.modalities, self.modality_dropout,
                                  random_state=self.random_state).fit(X, y, mask)
        self.late_ = LateFusion(self.estimator, self.modalities).fit(X, y, mask)
        self.modalities_ = self.early_.modalities_
        self.dims_ = self.early_.dims_
        self.classes_ = self.early_.classes_
        return self

    def predict_proba(self, X: Mapping[str, Any], mask: Mapping[str, Any] | None = None) -> np.ndarray:
        check_is_fitted(self, "classes_")
        w = self.early_weight
        return w * self.early_.predict_proba(X, mask) + (1 - w) * self.late_.predict_proba(X, mask)
