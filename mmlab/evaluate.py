"""Honest evaluation of multimodal models: subject-wise splits, robustness, calibration.

Introduced across chapters 30_fusion_taxonomy (leave-one-subject-out, macro-F1,
unimodal vs fused tables), 40_missing_robustness (robustness sweeps: a modality removed,
noised at a given SNR, or shifted in time) and 41_calibration_interpretability (ECE,
reliability diagrams, temperature scaling). Every function takes the inputs of the
:mod:`mmlab.fusion` contract: ``X`` a dict of per-modality arrays, ``mask`` a dict of
presence flags (``None``: all present).

Splits are by *subject* (``groups``): windows of one person are strongly correlated, so a
random split lets a model recognise the person instead of the state and overstates
accuracy.

Calibration conventions: the confidence of a prediction is its top-class probability;
:func:`expected_calibration_error` sorts predictions into ``n_bins`` **equal-width** bins
of confidence, ``[0, 1/B), [1/B, 2/B), ..., [(B-1)/B, 1]``, and returns
``sum_b (n_b / n) * |accuracy_b - confidence_b|`` (empty bins contribute nothing).
Temperature scaling (Guo et al., 2017) divides the logits by one scalar ``T`` fitted on
held-out data by minimising the negative log-likelihood; it changes confidence, never the
predicted class. For models that only give probabilities, ``log p`` serves as logits
(softmax is unchanged by the per-row constant that separates them).

Event-level scores (chapter 50_stress_system): :func:`episodes_from_labels` turns window
labels into ``(start, end)`` episodes and :func:`event_metrics` scores alerts against them
(episodes detected, detection latency, false alerts per hour of non-stress time). Alerts
are duck-typed (``raised_at``/``onset``/``end`` attributes, or ``(start, end)`` pairs), so
this module never imports :mod:`mmlab.systems`.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from sklearn.base import clone
from sklearn.metrics import balanced_accuracy_score, f1_score
from sklearn.model_selection import LeaveOneGroupOut

from mmlab.errors import SchemaError, SignalError
from mmlab.fusion._contract import as_numpy
from mmlab.validate import check_number

Perturbation = Callable[[dict, dict, np.ndarray], tuple[dict, dict]]


# ------------------------------------------------------------------------------ splits
def _groups(groups: Any) -> np.ndarray:
    g = np.asarray(groups)
    if g.ndim != 1 or len(g) == 0:
        raise SchemaError(f"groups must be a non-empty 1-D array (one subject id per row), got shape {g.shape}")
    return g


def loso_splits(groups: Any) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Leave-one-subject-out: yield ``(train_idx, test_idx)`` once per subject, in sorted
    order of the subject ids; every row is tested exactly once (chapter 30_fusion_taxonomy).

    scikit-learn's :class:`~sklearn.model_selection.LeaveOneGroupOut` with a clear error
    for fewer than two subjects.

    Examples
    --------
    >>> [test.tolist() for _, test in loso_splits(["b", "a", "b", "c"])]
    [[1], [0, 2], [3]]
    """
    g = _groups(groups)
    n_subjects = len(np.unique(g))
    if n_subjects < 2:
        raise SchemaError(f"leave-one-subject-out needs at least 2 subjects, got {n_subjects}")
    yield from LeaveOneGroupOut().split(np.zeros((len(g), 1)), groups=g)


def group_kfold_splits(groups: Any, n_splits: int = 5, random_state: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Group k-fold: subjects shuffled with ``random_state`` and dealt round-robin into ``n_splits``
    folds (fold sizes differ by at most one subject); yield ``(train_idx, test_idx)``."""
    g = _groups(groups)
    subjects = np.unique(g)
    if not 2 <= n_splits <= len(subjects):
        raise SchemaError(f"n_splits must be between 2 and the number of subjects ({len(subjects)}), "
                          f"got {n_splits}")
    order = np.random.default_rng(random_state).permutation(subjects)
    for k in range(n_splits):
        test = np.isin(g, order[k::n_splits])
        yield np.flatnonzero(~test), np.flatnonzero(test)


# ------------------------------------------------------------------------------ metrics
def macro_f1(y_true: Any, y_pred: Any, labels: Sequence | None = None) -> float:
    """Unweighted mean of the per-class F1 scores (classes absent from both count 0 only
    if listed in ``labels``); scikit-learn's ``f1_score(average="macro")``."""
    return float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))


def balanced_accuracy(y_true: Any, y_pred: Any) -> float:
    """Mean per-class recall (scikit-learn's ``balanced_accuracy_score``)."""
    return float(balanced_accuracy_score(y_true, y_pred))


def _label_index(y: Any, n_classes: int, classes: Sequence | None) -> np.ndarray:
    """Column index of each label: via ``classes`` when given; integers ``0..C-1`` as they
    are; otherwise the sorted distinct labels of ``y`` (which must number ``n_classes``)."""
    y = np.asarray(y)
    if classes is not None:
        lookup = {c: i for i, c in enumerate(np.asarray(classes).tolist())}
        if len(lookup) != n_classes:
            raise SchemaError(f"classes has {len(lookup)} entries but the scores have {n_classes} columns")
        try:
            return np.array([lookup[v] for v in y.tolist()], dtype=int)
        except KeyError as exc:
            raise SchemaError(f"label {exc.args[0]!r} is not among classes {list(lookup)}") from None
    if y.dtype.kind in "iu" and (len(y) == 0 or (y.min() >= 0 and y.max() < n_classes)):
        return y.astype(int)
    uniq = np.unique(y)
    if len(uniq) != n_classes:
        raise SchemaError(f"y has {len(uniq)} distinct labels but the scores have {n_classes} "
                          "columns; pass classes= (the model's classes_)")
    return np.searchsorted(uniq, y)


def _proba(proba: Any) -> np.ndarray:
    p = as_numpy(proba, "proba")
    if p.ndim != 2 or p.shape[1] < 2:
        raise SchemaError(f"proba must have shape (n, n_classes >= 2), got {p.shape}")
    return p


def reliability_curve(y_true: Any, proba: Any, classes: Sequence | None = None,
                      n_bins: int = 15) -> pd.DataFrame:
    """Reliability-diagram data (chapter 41_calibration_interpretability): one row per
    equal-width bin of confidence with ``bin_lo``, ``bin_hi``, ``count``, ``confidence``
    (mean top-class probability), ``accuracy`` (share correct) and ``gap`` (accuracy -
    confidence); empty bins have NaN statistics."""
    p = _proba(proba)
    if n_bins < 1:
        raise SchemaError(f"n_bins must be >= 1, got {n_bins}")
    yi = _label_index(y_true, p.shape[1], classes)
    if len(yi) != len(p):
        raise SchemaError(f"y_true has {len(yi)} rows but proba has {len(p)}")
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == yi).astype(float)
    b = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    count = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mconf = np.bincount(b, conf, n_bins) / count
        macc = np.bincount(b, correct, n_bins) / count
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame({"bin_lo": edges[:-1], "bin_hi": edges[1:], "count": count,
                         "confidence": mconf, "accuracy": macc, "gap": macc - mconf})


def expected_calibration_error(y_true: Any, proba: Any, classes: Sequence | None = None,
                               n_bins: int = 15) -> float:
    """ECE with ``n_bins`` equal-width confidence bins: ``sum_b n_b/n |acc_b - conf_b|``
    (chapter 41_calibration_interpretability; see the module docstring for the bin edges)."""
    curve = reliability_curve(y_true, proba, classes, n_bins)
    n = curve["count"].sum()
    if n == 0:
        return float("nan")
    used = curve["count"] > 0
    return float((curve["count"][used] / n * curve["gap"][used].abs()).sum())


def negative_log_likelihood(y_true: Any, proba: Any, classes: Sequence | None = None) -> float:
    """Mean ``-log p(true class)`` (probabilities clipped at 1e-12)."""
    p = _proba(proba)
    yi = _label_index(y_true, p.shape[1], classes)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(yi)), yi], 1e-12, 1.0))))


def plot_reliability(y_true: Any, proba: Any, classes: Sequence | None = None, n_bins: int = 15,
                     ax=None, label: str | None = None):
    """Draw a reliability diagram (accuracy against confidence per bin, the diagonal is
    perfect calibration; marker area ~ bin count) and return the matplotlib Axes."""
    import matplotlib.pyplot as plt

    curve = reliability_curve(y_true, proba, classes, n_bins)
    ece = expected_calibration_error(y_true, proba, classes, n_bins)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    used = curve["count"] > 0
    size = 20 + 300 * curve["count"][used] / max(curve["count"].max(), 1)
    text = f"{label + ': ' if label else ''}ECE {ece:.3f}"
    ax.plot(curve["confidence"][used], curve["accuracy"][used], "-", lw=1)
    ax.scatter(curve["confidence"][used], curve["accuracy"][used], s=size, label=text, alpha=0.7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left", fontsize="small")
    return ax


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def logits_from_proba(proba: Any) -> np.ndarray:
    """``log p`` (clipped at 1e-12): logits that give back ``proba`` through softmax."""
    return np.log(np.clip(_proba(proba), 1e-12, 1.0))


class TemperatureScaler:
    """Temperature scaling (chapter 41_calibration_interpretability): ``softmax(logits / T)``.

    ``fit(logits, y)`` finds the ``T`` in ``bounds`` (default ``[0.05, 20]``) minimising the
    mean negative log-likelihood on held-out data (a bounded 1-D search over ``log T``);
    ``temperature_`` holds it. ``transform(logits)`` returns calibrated probabilities.
    ``fit_proba`` / ``transform_proba`` do the same from probabilities (using ``log p`` as
    logits). If the model classifies every validation row correctly, the likelihood keeps
    rising as ``T`` shrinks and the fit stops at the lower bound (``at_bound_`` is True):
    the validation data cannot say how confident to be, and more of it is the only fix.
    """

    def __init__(self, bounds: tuple[float, float] = (0.05, 20.0)):
        self.bounds = bounds

    def fit(self, logits: Any, y: Any, classes: Sequence | None = None) -> "TemperatureScaler":
        z = _proba(logits)
        yi = _label_index(y, z.shape[1], classes)
        if len(yi) != len(z):
            raise SchemaError(f"y has {len(yi)} rows but logits has {len(z)}")
        if len(z) == 0:
            raise SchemaError("temperature scaling needs at least one validation row")
        z = z - z.max(axis=1, keepdims=True)

        def nll(log_t: float) -> float:
            s = z / np.exp(log_t)
            s = s - s.max(axis=1, keepdims=True)
            return float(np.mean(np.log(np.exp(s).sum(axis=1)) - s[np.arange(len(yi)), yi]))

        lo, hi = np.log(self.bounds[0]), np.log(self.bounds[1])
        res = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-5})
        # the bounded search never evaluates the bounds themselves: compare with them
        best_x, best_f = min([(float(res.x), float(res.fun)), (lo, nll(lo)), (hi, nll(hi))],
                             key=lambda t: t[1])
        self.temperature_ = float(np.exp(best_x))
        self.nll_ = best_f
        self.at_bound_ = best_x in (lo, hi)
        return self

    def transform(self, logits: Any) -> np.ndarray:
        if not hasattr(self, "temperature_"):
            raise SchemaError("TemperatureScaler is not fitted; call fit(logits, y) first")
        return _softmax(_proba(logits) / self.temperature_)

    def fit_proba(self, proba: Any, y: Any, classes: Sequence | None = None) -> "TemperatureScaler":
        return self.fit(logits_from_proba(proba), y, classes)

    def transform_proba(self, proba: Any) -> np.ndarray:
        return self.transform(logits_from_proba(proba))


# ------------------------------------------------------------------------------ perturbations
def _full_mask(X: Mapping[str, Any], mask: Mapping[str, Any] | None) -> dict:
    out = {}
    for m, v in X.items():
        lead = np.shape(v)[:-1]
        out[m] = np.ones(lead, bool) if mask is None or mask.get(m) is None else np.asarray(mask[m], bool).copy()
    return out


def _check_modality(X: Mapping[str, Any], modality: str) -> None:
    if modality not in X:
        raise SchemaError(f"X has no modality {modality!r} (it has {', '.join(map(repr, X))})")


def remove_modality(X: Mapping[str, Any], mask: Mapping[str, Any] | None, modality: str) -> tuple[dict, dict]:
    """``(X, mask)`` with ``modality`` marked absent in every row (values untouched)."""
    _check_modality(X, modality)
    new = _full_mask(X, mask)
    new[modality] = np.zeros_like(new[modality])
    return dict(X), new


def add_noise(X: Mapping[str, Any], mask: Mapping[str, Any] | None, modality: str, snr_db: float,
              random_state: int = 0) -> tuple[dict, dict]:
    """``(X, mask)`` with white Gaussian noise added to ``modality`` at ``snr_db``.

    Per feature, signal power is the feature's variance over the present rows; the noise
    variance is ``power / 10 ** (snr_db / 10)``, so 0 dB adds noise as strong as the signal.
    Absent rows stay as they were.
    """
    _check_modality(X, modality)
    full = _full_mask(X, mask)
    x = as_numpy(X[modality], f"X[{modality!r}]").copy()
    p = full[modality]
    rows = x[p]
    if len(rows) == 0:
        return dict(X), full
    sd = np.sqrt(np.nanvar(rows, axis=0) / 10.0 ** (snr_db / 10.0))
    noise = np.random.default_rng(random_state).standard_normal(x.shape) * sd
    x = np.where(p[..., None], x + noise, x)
    out = dict(X)
    out[modality] = x
    return out, full


def shift_modality(X: Mapping[str, Any], mask: Mapping[str, Any] | None, modality: str, k: int,
                   groups: Any, order: Any = None) -> tuple[dict, dict]:
    """``(X, mask)`` with ``modality`` shifted by ``k`` windows within each subject.

    Within each group (rows sorted by ``order``, default: their order in ``X``), row ``i``
    receives the values (and presence) of row ``i - k``: ``k > 0`` makes the modality lag
    ``k`` windows behind the others (a clock error), ``k < 0`` lead. Rows with no source
    window become absent.
    """
    _check_modality(X, modality)
    g = _groups(groups)
    full = _full_mask(X, mask)
    x = as_numpy(X[modality], f"X[{modality!r}]")
    if len(g) != len(x):
        raise SchemaError(f"groups has {len(g)} rows but X[{modality!r}] has {len(x)}")
    order = np.arange(len(g)) if order is None else np.asarray(order)
    new_x = np.zeros_like(x)
    new_p = np.zeros_like(full[modality])
    for s in np.unique(g):
        idx = np.flatnonzero(g == s)
        idx = idx[np.argsort(order[idx], kind="stable")]
        if abs(k) >= len(idx):
            continue
        dst, src = (idx[k:], idx[:len(idx) - k]) if k >= 0 else (idx[:k], idx[-k:])
        new_x[dst] = x[src]
        new_p[dst] = full[modality][src]
    out = dict(X)
    out[modality] = new_x
    full[modality] = new_p
    return out, full


def standard_perturbations(modalities: Sequence[str], snr_db: Sequence[float] = (20, 10, 0),
                           shifts: Sequence[int] = (1, 2), random_state: int = 0) -> dict[str, Perturbation]:
    """Named perturbations for :func:`cross_validate`: ``remove:<m>``, ``noise:<m>:<snr>dB``
    and ``shift:<m>:<k>`` for each modality ``m``."""
    out: dict[str, Perturbation] = {}
    for m in modalities:
        out[f"remove:{m}"] = lambda X, mask, g, m=m: remove_modality(X, mask, m)
        for s in snr_db:
            out[f"noise:{m}:{s:g}dB"] = lambda X, mask, g, m=m, s=s: add_noise(X, mask, m, s, random_state)
        for k in shifts:
            out[f"shift:{m}:{k}"] = lambda X, mask, g, m=m, k=k: shift_modality(X, mask, m, k, g)
    return out


# ------------------------------------------------------------------------------ cross-validation
def _take(D: Mapping[str, Any] | None, idx: np.ndarray) -> dict | None:
    if D is None:
        return None
    return {m: (None if v is None else np.asarray(as_numpy(v) if not isinstance(v, np.ndarray) else v)[idx])
            for m, v in D.items()}


def _model_logits(model, X, mask) -> np.ndarray:
    if hasattr(model, "predict_logits"):
        return model.predict_logits(X, mask)
    return logits_from_proba(model.predict_proba(X, mask))


def _accepts(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


@dataclass
class CVResult:
    """Out-of-fold predictions of :func:`cross_validate`.

    ``proba`` are the raw out-of-fold probabilities (columns ``classes``); ``calibrated``
    the temperature-scaled ones (``None`` without calibration); ``perturbed[name]`` the
    probabilities under each test-time perturbation (calibrated when calibrating);
    ``temperatures`` one per fold (``at_bound`` flags those stopped at a bound of
    :class:`TemperatureScaler`); ``fit_seconds`` total training time; ``modalities`` of the
    fitted model.
    """

    y: np.ndarray
    groups: np.ndarray
    classes: np.ndarray
    proba: np.ndarray
    calibrated: np.ndarray | None = None
    perturbed: dict[str, np.ndarray] = field(default_factory=dict)
    temperatures: list[float] = field(default_factory=list)
    at_bound: list[bool] = field(default_factory=list)
    fit_seconds: float = 0.0
    modalities: list[str] = field(default_factory=list)

    def best_proba(self) -> np.ndarray:
        return self.calibrated if self.calibrated is not None else self.proba

    def predictions(self, proba: np.ndarray | None = None) -> np.ndarray:
        p = self.best_proba() if proba is None else proba
        return self.classes[p.argmax(axis=1)]

    def scores(self, proba: np.ndarray | None = None, n_bins: int = 15) -> dict[str, float]:
        """``macro_f1``, ``balanced_accuracy``, ``ece`` and ``nll`` of ``proba`` (default:
        the calibrated probabilities if any, else the raw ones)."""
        p = self.best_proba() if proba is None else proba
        pred = self.classes[p.argmax(axis=1)]
        return {"macro_f1": macro_f1(self.y, pred, labels=list(self.classes)),
                "balanced_accuracy": balanced_accuracy(self.y, pred),
                "ece": expected_calibration_error(self.y, p, self.classes, n_bins),
                "nll": negative_log_likelihood(self.y, p, self.classes)}


def cross_validate(model, X: Mapping[str, Any], y: Any, groups: Any,
                   mask: Mapping[str, Any] | None = None,
                   splits: Iterable[tuple[np.ndarray, np.ndarray]] | None = None,
                   calibrate: bool = False, n_val_groups: int = 2,
                   perturbations: Mapping[str, Perturbation] | None = None, random_state: int = 0,
                   progress: bool = False) -> CVResult:
    """Out-of-fold predictions of ``model`` (a fresh clone per fold), leave-one-subject-out
    by default (chapter 30_fusion_taxonomy).

    With ``calibrate=True``, ``n_val_groups`` training subjects of each fold (drawn with
    ``random_state``) are held out of training; a :class:`TemperatureScaler` is fitted on their
    logits and applied to the test fold. Models whose ``fit`` takes ``validation`` (the deep
    models) also early-stop on those subjects, and models whose ``fit`` takes ``groups``
    (stacking) get the subject ids. ``perturbations`` (e.g. from
    :func:`standard_perturbations`) are applied to each test fold only.
    """
    from tqdm.auto import tqdm

    y = np.asarray(y)
    g = _groups(groups)
    if len(g) != len(y):
        raise SchemaError(f"groups has {len(g)} rows but y has {len(y)}")
    classes = np.unique(y)
    n, C = len(y), len(classes)
    folds = list(loso_splits(g) if splits is None else splits)
    proba = np.full((n, C), np.nan)
    calibrated = np.full((n, C), np.nan) if calibrate else None
    perturbed = {k: np.full((n, C), np.nan) for k in (perturbations or {})}
    temps, bounds_hit, fit_s, mods = [], [], 0.0, []
    rng = np.random.default_rng(random_state)
    for train, test in tqdm(folds, desc=type(model).__name__, disable=not progress, leave=False):
        fit_idx, val_idx = np.asarray(train), np.array([], dtype=int)
        if calibrate:
            subjects = np.unique(g[train])
            if len(subjects) <= n_val_groups:
                raise SchemaError(f"calibration needs more than {n_val_groups} training subjects "
                                  f"per fold, got {len(subjects)}")
            val_subj = rng.choice(subjects, size=n_val_groups, replace=False)
            is_val = np.isin(g[train], val_subj)
            fit_idx, val_idx = np.asarray(train)[~is_val], np.asarray(train)[is_val]
        m = clone(model)
        kw = {}
        if _accepts(m.fit, "groups"):
            kw["groups"] = g[fit_idx]
        if calibrate and _accepts(m.fit, "validation"):
            kw["validation"] = (_take(X, val_idx), y[val_idx], _take(mask, val_idx))
        t0 = time.perf_counter()
        m.fit(_take(X, fit_idx), y[fit_idx], _take(mask, fit_idx), **kw)
        fit_s += time.perf_counter() - t0
        mods = list(m.modalities_)
        cols = np.searchsorted(classes, m.classes_)
        scaler = None
        if calibrate:
            known = np.isin(y[val_idx], m.classes_)
            zv = _model_logits(m, _take(X, val_idx), _take(mask, val_idx))
            scaler = TemperatureScaler().fit(zv[known], y[val_idx][known], m.classes_)
            temps.append(scaler.temperature_)
            bounds_hit.append(scaler.at_bound_)

        def predict(Xt, mt):
            z = _model_logits(m, Xt, mt)
            raw = np.zeros((len(z), C))
            raw[:, cols] = _softmax(z)
            cal = None
            if scaler is not None:
                cal = np.zeros((len(z), C))
                cal[:, cols] = scaler.transform(z)
            return raw, cal

        Xt, mt = _take(X, test), _take(mask, test)
        raw, cal = predict(Xt, mt)
        proba[test] = raw
        if calibrate:
            calibrated[test] = cal
        for name, fn in (perturbations or {}).items():
            Xp, mp = fn(Xt, mt, g[test])
            raw_p, cal_p = predict(Xp, mp)
            perturbed[name][test] = cal_p if calibrate else raw_p
    if np.isnan(proba).any():
        raise SchemaError("the splits do not cover every row; pass splits that test each row once")
    return CVResult(y=y, groups=g, classes=classes, proba=proba, calibrated=calibrated,
                    perturbed=perturbed, temperatures=temps, at_bound=bounds_hit, fit_seconds=fit_s, modalities=mods)


def unimodal_baselines(modalities: Sequence[str], estimator=None) -> dict[str, Any]:
    """``{"<m>": EarlyFusion(estimator, modalities=[m])}``: one single-modality model each."""
    from mmlab.fusion import EarlyFusion

    return {m: EarlyFusion(estimator, modalities=[m]) for m in modalities}


def compare_models(models: Mapping[str, Any], X: Mapping[str, Any], y: Any, groups: Any,
                   mask: Mapping[str, Any] | None = None, calibrate: bool = True,
                   splits: Sequence | None = None, random_state: int = 0, progress: bool = False) -> pd.DataFrame:
    """The unimodal-vs-fused table (chapter 30_fusion_taxonomy): one row per model with ``name``,
    ``kind`` ("unimodal" if it uses one modality, else "fused"), ``modalities``,
    ``macro_f1``, ``balanced_accuracy``, ``ece`` (after temperature scaling when
    ``calibrate``) and ``train_s`` (total fitting time over the folds), sorted by macro-F1."""
    rows = []
    splits = None if splits is None else list(splits)
    for name, model in models.items():
        res = cross_validate(model, X, y, groups, mask, splits, calibrate=calibrate, random_state=random_state,
                             progress=progress)
        s = res.scores()
        rows.append({"name": name, "kind": "unimodal" if len(res.modalities) == 1 else "fused",
                     "modalities": ",".join(res.modalities), "macro_f1": s["macro_f1"],
                     "balanced_accuracy": s["balanced_accuracy"], "ece": s["ece"],
                     "train_s": res.fit_seconds})
    return pd.DataFrame(rows).sort_values("macro_f1", ascending=False, ignore_index=True)


def robustness_sweep(model, X: Mapping[str, Any], y: Any, groups: Any,
                     mask: Mapping[str, Any] | None = None, modalities: Sequence[str] | None = None,
                     snr_db: Sequence[float] = (20, 10, 0), shifts: Sequence[int] = (1, 2),
                     splits: Sequence | None = None, random_state: int = 0,
                     progress: bool = False) -> pd.DataFrame:
    """Macro-F1 and balanced accuracy of ``model`` (cross-validated once) on clean test data
    and under each perturbation of :func:`standard_perturbations` (chapter
    40_missing_robustness). Columns: ``perturbation`` ("none", "remove", "noise", "shift"),
    ``modality``, ``level`` (SNR in dB or shift in windows), ``macro_f1``,
    ``balanced_accuracy``. ``progress=True`` shows a tqdm bar over the folds."""
    mods = list(X) if modalities is None else list(modalities)
    pert = standard_perturbations(mods, snr_db, shifts, random_state)
    res = cross_validate(model, X, y, groups, mask, splits, perturbations=pert, random_state=random_state,
                         progress=progress)
    rows = [{"perturbation": "none", "modality": "", "level": np.nan, **_two(res, res.proba)}]
    for name, p in res.perturbed.items():
        kind, m, *rest = name.split(":")
        level = float(rest[0].removesuffix("dB")) if rest else np.nan
        rows.append({"perturbation": kind, "modality": m, "level": level, **_two(res, p)})
    return pd.DataFrame(rows)


def _two(res: CVResult, p: np.ndarray) -> dict:
    s = res.scores(p)
    return {"macro_f1": s["macro_f1"], "balanced_accuracy": s["balanced_accuracy"]}


# ------------------------------------------------------------ repeated k-fold (no groups)
@dataclass
class RepeatedCVResult:
    """Scores of :func:`repeated_cv`, one per fold and repeat (chapter 14_eeg).

    ``chance`` is the share of the majority class: what always guessing it scores.
    """

    scores: np.ndarray
    n_trials: int
    class_counts: dict = field(default_factory=dict)
    n_splits: int = 5
    n_repeats: int = 10
    random_state: int = 0
    scoring: str = "accuracy"

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def std(self) -> float:
        return float(np.std(self.scores))

    @property
    def chance(self) -> float:
        return max(self.class_counts.values()) / self.n_trials if self.n_trials else float("nan")

    def __str__(self) -> str:
        return (f"{self.scoring} {self.mean:.3f} ± {self.std:.3f} over {len(self.scores)} folds "
                f"({self.n_repeats} x {self.n_splits}-fold, random_state {self.random_state}); "
                f"{self.n_trials} trials {self.class_counts}; chance {self.chance:.3f}")


def repeated_cv(estimator, X: Any, y: Any, n_splits: int = 5, n_repeats: int = 10, random_state: int = 0,
                scoring: str = "accuracy") -> RepeatedCVResult:
    """Repeated stratified k-fold score of a scikit-learn ``estimator`` on arrays ``(X, y)``.

    For one subject's trials (chapter 14_eeg), where rows are exchangeable; across
    subjects use :func:`cross_validate` with subject-wise splits. With few trials (45 in
    one eegmmidb subject) a single 5-fold split swings by ±10 points with the shuffle;
    repeating it ``n_repeats`` times with a seeded shuffle gives a steadier mean. Runs
    with one BLAS thread (much faster for small covariance matrices on a busy machine).
    :class:`~mmlab.errors.SignalError` when a class has fewer rows than ``n_splits``.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(["a", "b"], 20)
    >>> X = rng.normal(size=(40, 2)) + 3.0 * (y == "b")[:, None]
    >>> res = repeated_cv(LogisticRegression(), X, y, n_repeats=2)
    >>> len(res.scores), res.chance, res.mean > 0.9
    (10, 0.5, True)
    """
    from sklearn.model_selection import RepeatedStratifiedKFold, cross_val_score
    from threadpoolctl import threadpool_limits

    X, y = np.asarray(X), np.asarray(y)
    if len(X) != len(y):
        raise SignalError(f"repeated_cv: {len(X)} rows but {len(y)} labels")
    labels, counts = np.unique(y, return_counts=True)
    if len(labels) < 2:
        raise SignalError(f"repeated_cv: one class only ({labels.tolist()}); nothing to decode")
    if counts.min() < n_splits:
        raise SignalError(f"repeated_cv: class {labels[counts.argmin()]!r} has {counts.min()} rows, "
                          f"fewer than the {n_splits} folds")
    cv = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=random_state)
    with threadpool_limits(limits=1):
        scores = cross_val_score(clone(estimator), X, y, cv=cv, scoring=scoring)
    return RepeatedCVResult(np.asarray(scores), len(y), {str(k): int(c) for k, c in zip(labels, counts)},
                            n_splits, n_repeats, random_state, scoring)


# ------------------------------------------------------------ paired comparison
def paired_difference(ours: Any, reference: Any, units: Sequence | None = None, confidence: float = 0.95,
                      n_resamples: int = 9999, random_state: int = 0) -> dict:
    """How much ``ours`` beats ``reference`` on the same units (e.g. one score per held-out
    subject of a leave-one-subject-out run), with its uncertainty (chapter 50_stress_system).

    Returns ``mean_difference`` (ours - reference), its ``ci`` (a percentile bootstrap over
    units, scipy's ``stats.bootstrap``, seeded), ``better`` / ``n`` (units where ours is
    higher), ``wilcoxon_p`` (two-sided signed-rank test, scipy) and the per-unit
    ``differences``. With nine subjects a gain of 0.03 usually has a CI that reaches below
    zero: report the interval, not only the mean. Units where either score is NaN are
    an error (a score that could not be computed must not be dropped silently).

    Examples
    --------
    >>> r = paired_difference([0.8, 0.7, 0.9, 0.75], [0.7, 0.65, 0.8, 0.7])
    >>> round(r["mean_difference"], 3), r["better"], r["n"]
    (0.075, 4, 4)
    """
    from scipy import stats

    a = np.asarray(ours, dtype=float)
    b = np.asarray(reference, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise SchemaError(f"ours and reference must be 1-D of one length, got shapes {a.shape} and {b.shape}")
    names = list(range(len(a))) if units is None else list(units)
    if len(names) != len(a):
        raise SchemaError(f"units has {len(names)} names for {len(a)} scores")
    bad = [names[i] for i in np.flatnonzero(~(np.isfinite(a) & np.isfinite(b)))]
    if bad:
        raise SchemaError(f"paired_difference: no score for units {bad} (NaN); pair only units scored by both")
    if len(a) < 3:
        raise SchemaError(f"paired_difference needs at least 3 units, got {len(a)}")
    confidence = check_number(confidence, "confidence", low=0.5, high=0.999)
    d = a - b
    if np.ptp(d) > 0:
        boot = stats.bootstrap((d,), np.mean, confidence_level=confidence, n_resamples=int(n_resamples),
                               method="percentile", random_state=np.random.default_rng(random_state))
        ci = (float(boot.confidence_interval.low), float(boot.confidence_interval.high))
    else:
        ci = (float(d[0]), float(d[0]))
    p = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
    return {"mean_difference": float(d.mean()), "ci": ci, "confidence": confidence,
            "better": int((d > 0).sum()), "n": int(len(d)), "wilcoxon_p": p,
            "differences": dict(zip(map(str, names), map(float, d)))}


# ------------------------------------------------------------ event-level metrics (alerts)
def episodes_from_labels(times: Any, labels: Any, positive: Any = "stress",
                         step_s: float | None = None) -> list[tuple[float, float]]:
    """Runs of consecutive ``positive`` labels as ``(start, end)`` episodes in seconds.

    ``times`` are window times (non-decreasing). An episode starts at the time of its first
    positive window and ends at the time of the next non-positive window; an episode that
    reaches the last window ends one step later (``step_s``, default the median spacing of
    ``times``). Missing labels (NaN/None) are not positive.

    Parameters
    ----------
    times : array-like of float, shape (n,)
        Window times in seconds.
    labels : array-like, shape (n,)
        One label per window.
    positive : object, default "stress"
        The label that marks an episode.
    step_s : float, optional
        Duration of the last window (default: the median spacing of ``times``; 0 for one window).

    Returns
    -------
    list of (float, float)
        The episodes, in time order.

    Examples
    --------
    >>> episodes_from_labels([0, 10, 20, 30, 40, 50], ["rest", "stress", "stress", "rest", "stress", "stress"])
    [(10.0, 30.0), (40.0, 60.0)]
    >>> episodes_from_labels([0, 10], ["rest", "rest"])
    []
    """
    t = np.asarray(times, dtype=float).ravel()
    lab = np.asarray(labels, dtype=object).ravel()
    if len(t) != len(lab):
        raise SchemaError(f"episodes_from_labels: {len(t)} times but {len(lab)} labels")
    if len(t) and (not np.all(np.isfinite(t)) or np.any(np.diff(t) < 0)):
        raise SignalError("episodes_from_labels: times must be finite and non-decreasing")
    if step_s is None:
        step = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
    else:
        step = check_number(step_s, "step_s", low=0.0, unit="seconds")
    pos = np.array([x == positive for x in lab], dtype=bool)
    episodes, i, n = [], 0, len(t)
    while i < n:
        if not pos[i]:
            i += 1
            continue
        j = i
        while j < n and pos[j]:
            j += 1
        episodes.append((float(t[i]), float(t[j]) if j < n else float(t[-1] + step)))
        i = j
    return episodes


def _alert_interval(alert: Any) -> tuple[float, float, float]:
    """``(onset, raised_at, end)`` of an alert object or a ``(start, end)`` pair."""
    if hasattr(alert, "raised_at"):
        raised = float(alert.raised_at)
        onset = float(getattr(alert, "onset", raised))
        end = getattr(alert, "end", None)
    else:
        try:
            start, end = alert
        except (TypeError, ValueError):
            raise SchemaError(f"an alert must have raised_at/onset/end attributes or be a "
                              f"(start, end) pair, got {alert!r}") from None
        onset = raised = float(start)
    end = raised if end is None else float(end)
    if not (np.isfinite(raised) and np.isfinite(end)) or end < raised:
        raise SignalError(f"an alert must have finite times with end >= raised_at, got {alert!r}")
    return onset, raised, end


def event_metrics(alerts: Iterable[Any], episodes: Iterable[tuple[float, float]], *,
                  total_time_s: float | None = None, non_stress_time_s: float | None = None,
                  grace_s: float = 0.0) -> dict:
    """Event-level scores of an alerting rule: episodes detected, latency, false alerts per hour.

    An alert is any object with ``raised_at`` (and ``onset``, ``end``) attributes — e.g. a
    :class:`mmlab.systems.alerts.Alert` — or a plain ``(start, end)`` pair (then raised at
    ``start``); an open alert (``end`` None) is the instant ``raised_at``.

    * An episode ``(start, end)`` is **detected** when some alert is *raised* inside
      ``[start, end + grace_s]``; its **latency** is the first such ``raised_at - start``.
      An alert raised before an episode began is not a detection of it (but not false either
      if it is still active when the episode starts).
    * An alert is **false** when its active span ``[raised_at, end]`` overlaps no
      ``[start, end + grace_s]`` of any episode.
    * ``false_alerts_per_hour`` divides the false alerts by the hours of non-stress time:
      ``non_stress_time_s``, or ``total_time_s`` minus the episodes' total duration; NaN
      when neither is given (or the non-stress time is 0).

    Parameters
    ----------
    alerts : iterable
        Alert objects or ``(start, end)`` pairs, in seconds.
    episodes : iterable of (float, float)
        The true episodes, e.g. from :func:`episodes_from_labels`.
    total_time_s : float, optional
        Length of the recording(s) in seconds.
    non_stress_time_s : float, optional
        Seconds of non-stress time (takes precedence over ``total_time_s``).
    grace_s : float, default 0.0
        Seconds after an episode's end during which an alert still counts for it.

    Returns
    -------
    dict
        ``event_recall``, ``latency_median_s``, ``false_alerts_per_hour``, ``n_alerts``,
        ``n_episodes``, ``n_detected``, ``n_false_alerts``, ``latencies_s`` (one per detected
        episode), ``non_stress_time_s``.

    Examples
    --------
    >>> m = event_metrics([(130, 200), (5000, 5100)], [(100, 400), (1000, 1300)], total_time_s=7200)
    >>> m["event_recall"], m["latency_median_s"], m["n_false_alerts"]
    (0.5, 30.0, 1)
    >>> round(m["false_alerts_per_hour"], 3)  # 1 false alert in 6600 s of non-stress time
    0.545
    """
    grace = check_number(grace_s, "grace_s", low=0.0, unit="seconds")
    spans = [_alert_interval(a) for a in alerts]
    eps = []
    for ep in episodes:
        try:
            s, e = (float(x) for x in ep)
        except (TypeError, ValueError):
            raise SchemaError(f"an episode must be a (start, end) pair, got {ep!r}") from None
        if not (np.isfinite(s) and np.isfinite(e)) or e < s:
            raise SignalError(f"an episode must have finite times with end >= start, got {ep!r}")
        eps.append((s, e))
    latencies = []
    for s, e in eps:
        raised = [r for _, r, _ in spans if s <= r <= e + grace]
        if raised:
            latencies.append(min(raised) - s)
    n_false = sum(1 for _, r, end in spans if not any(r <= e + grace and end >= s for s, e in eps))
    if non_stress_time_s is not None:
        quiet = check_number(non_stress_time_s, "non_stress_time_s", low=0.0, unit="seconds")
    elif total_time_s is not None:
        total = check_number(total_time_s, "total_time_s", low=0.0, unit="seconds")
        quiet = max(total - sum(e - s for s, e in eps), 0.0)
    else:
        quiet = float("nan")
    return {
        "event_recall": len(latencies) / len(eps) if eps else float("nan"),
        "latency_median_s": float(np.median(latencies)) if latencies else float("nan"),
        "false_alerts_per_hour": n_false / (quiet / 3600.0) if quiet > 0 else float("nan"),
        "n_alerts": len(spans), "n_episodes": len(eps), "n_detected": len(latencies),
        "n_false_alerts": n_false, "latencies_s": [float(x) for x in latencies],
        "non_stress_time_s": quiet,
    }
