"""Subgroup audits (Part 3, the interpretability chapter).

:func:`subgroup_labels`, :func:`subgroup_metrics`, :func:`subgroup_gap` and
:func:`bias_amplification`: macro-F1, balanced accuracy and calibration error per group
(e.g. sex or an age band from a cohort's participants table), and whether fusing
modalities widens the gap that the single-modality models already have.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from mmlab.errors import SchemaError
from mmlab.explain._common import _check_X
from mmlab.fusion._contract import encode_known


# ----------------------------------------------------------------------- subgroups
def _default_classes(y_true, proba, classes):
    if proba.ndim != 2:
        raise SchemaError(f"proba: expected shape (n, n_classes), got {proba.shape}")
    if proba.shape[0] != len(y_true):
        raise SchemaError(f"proba has {proba.shape[0]} rows, y_true has {len(y_true)}")
    if classes is None:
        classes = np.unique(y_true)
        if len(classes) != proba.shape[1]:
            raise SchemaError(f"y_true has {len(classes)} distinct labels but proba has "
                              f"{proba.shape[1]} columns: pass classes= (e.g. model.classes_)")
    classes = np.asarray(classes)
    if len(classes) != proba.shape[1]:
        raise SchemaError(f"classes has {len(classes)} entries, proba has {proba.shape[1]} columns")
    return classes


def subgroup_labels(subjects: Any, participants: pd.DataFrame, column: str, *,
                    bins: Sequence[float] | None = None, labels: Sequence[str] | None = None,
                    id_column: str = "participant_id") -> np.ndarray:
    """One subgroup label per sample, joined from a participants table on the subject id.

    ``subjects`` holds the subject of each sample (e.g. the ``subject`` column of a window
    table); ``participants`` is a cohort's table (``Cohort.participants``: one row per
    subject, ``participant_id`` first). ``column`` is the attribute (``"sex"``, ``"age"``);
    with ``bins`` a numeric column is cut into bands (``pd.cut``, right-open), labelled
    ``"21-30"`` style unless ``labels`` are given. Subjects missing from the table raise
    SchemaError; a missing attribute stays NaN (such samples count only in "all").

    Parameters
    ----------
    subjects : array of shape (n,)
        The subject of each sample.
    participants : DataFrame
        One row per subject, with ``id_column`` and ``column``.
    column : str
        The attribute.
    bins, labels : sequence, optional
        Cut a numeric attribute into (labelled) bands.
    id_column : str, default "participant_id"
        The subject id column of ``participants``.

    Returns
    -------
    ndarray of shape (n,)
        One group label per sample.

    Examples
    --------
    >>> import pandas as pd
    >>> parts = pd.DataFrame({"participant_id": ["S01", "S02"], "age": [25, 41]})
    >>> subgroup_labels(["S01", "S01", "S02"], parts, "age", bins=[20, 30, 50]).tolist()
    ['20-30', '20-30', '30-50']
    """
    if id_column not in participants.columns:
        raise SchemaError(f"participants: no {id_column!r} column (have {list(participants.columns)})")
    if column not in participants.columns:
        raise SchemaError(f"participants: no {column!r} column (have {list(participants.columns)})")
    if participants[id_column].duplicated().any():
        dup = participants.loc[participants[id_column].duplicated(), id_column].tolist()
        raise SchemaError(f"participants: duplicate {id_column} {dup[:5]}")
    lookup = participants.set_index(id_column)[column]
    subj = pd.Series(np.asarray(subjects))
    unknown = sorted(set(subj) - set(lookup.index))
    if unknown:
        raise SchemaError(f"subjects {unknown[:5]} are not in the participants table")
    vals = subj.map(lookup)
    if bins is not None:
        edges = list(bins)
        if labels is None:
            labels = [f"{edges[i]:g}-{edges[i + 1]:g}" for i in range(len(edges) - 1)]
        vals = pd.cut(pd.to_numeric(vals, errors="coerce"), edges, right=False, labels=list(labels))
        return vals.astype(object).to_numpy()
    return vals.to_numpy()


_METRIC_COLUMNS = ("accuracy", "balanced_accuracy", "macro_f1", "ece")


def _metrics_row(y_idx, pred, proba, n_bins) -> dict:
    from mmlab.evaluate import balanced_accuracy, expected_calibration_error, macro_f1

    if len(y_idx) == 0:
        return {"n": 0, **{c: float("nan") for c in _METRIC_COLUMNS}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a group without some class: sklearn warns, we know
        row = {"n": len(y_idx), "accuracy": float(np.mean(y_idx == pred)),
               "balanced_accuracy": balanced_accuracy(y_idx, pred),
               "macro_f1": macro_f1(y_idx, pred)}
    if proba is None:
        row["ece"] = float("nan")
    else:
        row["ece"] = expected_calibration_error(y_idx, proba, np.arange(proba.shape[1]), n_bins)
    return row


def subgroup_metrics(y_true: Any, proba: Any, groups: Any, *, classes: Any = None,
                     n_bins: int = 15) -> pd.DataFrame:
    """Accuracy, balanced accuracy, macro-F1 and calibration error (ECE) per subgroup.

    ``proba`` is (n, C) class probabilities (columns in the order of ``classes``, e.g.
    ``model.classes_``) or a 1-D array of predicted labels (then ``ece`` is NaN).
    ``groups`` gives one label per sample (:func:`subgroup_labels`). One row per group
    (sorted), then a row ``"all"``; samples whose group is NaN count only in ``"all"``.
    Macro-F1 inside a group averages over the classes that occur in that group (true or
    predicted). The metrics are those of :mod:`mmlab.evaluate` (``ece``: top-label
    calibration error with ``n_bins`` equal-width bins), so a subgroup's row is comparable
    with the overall figures of the evaluation chapters. Introduced in the Part 3
    interpretability chapter.

    Parameters
    ----------
    y_true : array of shape (n,)
        True labels.
    proba : array of shape (n, C) or (n,)
        Class probabilities, or predicted labels.
    groups : array of shape (n,)
        A group label per sample.
    classes : array, optional
        The columns of ``proba`` (default: the sorted labels).
    n_bins : int, default 15
        Bins of the calibration error.

    Returns
    -------
    DataFrame
        Columns ``n``, ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``ece``; one row
        per group, then ``"all"``.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array(["calm", "calm", "stress", "stress", "calm", "stress"])
    >>> pred = np.array(["calm", "calm", "stress", "stress", "stress", "calm"])
    >>> table = subgroup_metrics(y, pred, ["f", "f", "f", "f", "m", "m"])
    >>> table["accuracy"].round(3).to_dict()
    {'f': 1.0, 'm': 0.0, 'all': 0.667}
    >>> subgroup_gap(table, "accuracy")
    1.0
    """
    y_true = np.asarray(y_true)
    n = len(y_true)
    p = np.asarray(proba)
    if p.ndim == 1:
        if len(p) != n:
            raise SchemaError(f"predictions have {len(p)} entries, y_true has {n}")
        if classes is None:
            classes = np.unique(np.concatenate([y_true, p]))
        classes = np.asarray(classes)
        y_idx = encode_known(y_true, classes, n)
        pred = encode_known(p, classes, n)
        p = None
    else:
        p = p.astype(float)
        classes = _default_classes(y_true, p, classes)
        y_idx = encode_known(y_true, classes, n)
        pred = p.argmax(axis=1)
    g = pd.Series(np.asarray(groups, dtype=object))
    if len(g) != n:
        raise SchemaError(f"groups has {len(g)} labels, y_true has {n}")
    rows, index = [], []
    for name in sorted(g.dropna().unique(), key=str):
        sel = (g == name).to_numpy()
        rows.append(_metrics_row(y_idx[sel], pred[sel], None if p is None else p[sel], n_bins))
        index.append(name)
    rows.append(_metrics_row(y_idx, pred, p, n_bins))
    index.append("all")
    out = pd.DataFrame(rows, index=pd.Index(index, name="group"))
    return out[["n", *_METRIC_COLUMNS]]


def subgroup_gap(table: pd.DataFrame, metric: str = "macro_f1") -> float:
    """Largest minus smallest ``metric`` across the groups of a :func:`subgroup_metrics`
    table (the ``"all"`` row excluded): 0 when every group is served equally."""
    if metric not in table.columns:
        raise SchemaError(f"subgroup_gap: no metric {metric!r} (have {list(table.columns)})")
    vals = table.drop(index="all", errors="ignore")[metric].dropna()
    if len(vals) < 2:
        return float("nan")
    return float(vals.max() - vals.min())


def bias_amplification(predictions: Mapping[str, Any], y_true: Any, groups: Any, *, fused: str,
                       metric: str = "macro_f1", X: Mapping[str, Any] | None = None,
                       mask: Mapping[str, Any] | None = None, classes: Any = None,
                       n_bins: int = 15) -> pd.DataFrame:
    """Does fusing modalities widen the subgroup gap the single-modality models have?

    ``predictions`` maps a model name (``"ecg"``, ``"eda"``, ``"fused"``) to its class
    probabilities (n, C), or to a fitted contract model (then ``X``/``mask`` are used to
    predict). ``fused`` names the fused model. Returns one row per model: ``metric`` in each
    group, ``gap`` (best minus worst group), ``worst_group``, and ``fused_minus_gap``
    (the fused model's gap minus this model's gap: positive means the fused model is less
    even-handed than this modality alone). Fusion *amplifies* bias when its gap exceeds
    the smallest unimodal gap, and *more than any one modality* when it exceeds the largest.
    Introduced in the Part 3 interpretability chapter.
    """
    if fused not in predictions:
        raise SchemaError(f"bias_amplification: fused model {fused!r} is not among {list(predictions)}")
    rows = {}
    for name, pred in predictions.items():
        cls = classes
        if hasattr(pred, "predict_proba"):
            if X is None:
                raise SchemaError(f"bias_amplification: {name!r} is a model; pass X (and mask) to predict")
            Xc, present, _ = _check_X(X, mask)
            cls = getattr(pred, "classes_", classes)
            pred = np.asarray(pred.predict_proba(Xc, mask=present), dtype=float)
        table = subgroup_metrics(y_true, pred, groups, classes=cls, n_bins=n_bins)
        per_group = table.drop(index="all")[metric]
        row = {f"{metric}[{g}]": v for g, v in per_group.items()}
        row[f"{metric}[all]"] = table.loc["all", metric]
        row["gap"] = subgroup_gap(table, metric)
        worst = per_group.idxmax() if metric == "ece" else per_group.idxmin()
        row["worst_group"] = worst if len(per_group) else None
        rows[name] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "model"
    out["role"] = ["fused" if name == fused else "unimodal" for name in out.index]
    out["fused_minus_gap"] = out.loc[fused, "gap"] - out["gap"]
    return out
