"""Windows on the reference clock and their labels (chapter 20_alignment).

Most multimodal models see a recording as a sequence of windows (e.g. 60 s every 10 s),
each with one label. :func:`window_table` cuts a recording into windows and labels each
from the annotations of one ``kind`` (default: protocol phases) by a rule:

* ``"majority"`` — the label covering more than half of the window, else ``""`` (a window
  split evenly between two phases, or mostly in an unlabelled transition). The same rule
  as :func:`mmlab.features.window_labels`.
* ``"centre"`` — the label at the window's centre (as :meth:`Recording.label_at`).
* ``"any"`` — every label touching the window (instants too, e.g. a tap event), joined
  with ``"+"`` in order of onset; ``""`` if none. For rare events ("did a laugh happen?").
* ``"pure"`` — the label only if it covers the whole window, else ``""``: drops the
  windows that straddle a boundary (common in stress detection papers).

The features module builds its per-window tables on these windows.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mmlab.align._intervals import covered_length, merge
from mmlab.errors import SignalError
from mmlab.validate import check_option, check_positive
from mmlab.recording import Recording

__all__ = ["LABEL_RULES", "window_table", "window_labels"]

#: The label rules :func:`window_table` accepts.
LABEL_RULES = ("majority", "centre", "any", "pure")
_EPS = 1e-9


def window_labels(annotations: pd.DataFrame, starts, ends, label_rule: str = "majority",
                  kind: str | None = "phase") -> tuple[np.ndarray, np.ndarray]:
    """Label and label fraction of windows ``[starts[i], ends[i])`` from an annotation table.

    The building block of :func:`window_table` (see the module docstring for the rules);
    ``kind=None`` uses every row. Returns ``(labels, fractions)``: the label (``""`` for
    none) and the fraction of the window its annotations cover.
    """
    check_option(label_rule, "label_rule", LABEL_RULES)
    a = np.asarray(starts, dtype=float)
    b = np.asarray(ends, dtype=float)
    rows = annotations if kind is None else annotations[annotations["kind"] == kind]
    onset = rows["onset"].to_numpy(dtype=float)
    stop = onset + rows["duration"].to_numpy(dtype=float)
    labels = rows["label"].astype(str).to_numpy()
    width = b - a
    n = len(a)
    real = labels != ""
    # labels in order of first onset; coverage of each window by each label's union
    order: list[str] = []
    for lab in labels[np.argsort(onset, kind="stable")]:
        if lab and lab not in order:
            order.append(lab)
    cover = np.zeros((n, len(order)))
    for j, lab in enumerate(order):
        s, e = merge(onset[labels == lab], stop[labels == lab])
        cover[:, j] = covered_length(s, e, a, b)
    frac = cover / np.maximum(width, _EPS)[:, None]
    s, e = merge(onset[real], stop[real])
    unlabelled = 1.0 - covered_length(s, e, a, b) / np.maximum(width, _EPS)
    column = {lab: j for j, lab in enumerate(order)}
    ix = np.arange(n)

    def fraction_of(out: np.ndarray) -> np.ndarray:
        """Fraction of each window covered by its chosen label (or by no label for "")."""
        f = unlabelled.copy()
        for lab, j in column.items():
            f[out == lab] = frac[out == lab, j]
        return f

    if label_rule == "centre":
        centre = 0.5 * (a + b)
        out = np.full(n, "", dtype=object)
        for o, e_, lab in zip(onset, stop, labels):  # later rows win, as in Recording.label_at
            out[(centre >= o) & (centre < e_)] = lab
        return out, np.clip(fraction_of(out), 0.0, 1.0)
    if label_rule == "any":
        touch = cover > _EPS * np.maximum(width, 1.0)[:, None]
        for lab, j in column.items():  # zero-length annotations (instants) touch too
            for t in onset[(labels == lab) & (stop <= onset)]:
                touch[:, j] |= (a <= t) & (t < b)
        out = np.array(["+".join(lab for lab, j in column.items() if touch[i, j]) for i in ix],
                       dtype=object)
        f = np.where(touch.any(axis=1), (frac * touch).sum(axis=1), unlabelled) if order else unlabelled
        return out, np.clip(f, 0.0, 1.0)
    if not order:
        return np.full(n, "", dtype=object), np.clip(unlabelled, 0.0, 1.0)
    best = np.argmax(frac, axis=1)
    top = frac[ix, best]
    names = np.array(order, dtype=object)[best]
    if label_rule == "pure":
        out = np.where(top >= 1.0 - 1e-9, names, "").astype(object)
    else:  # majority: more than half of the window
        out = np.where(top > 0.5 + 1e-9, names, "").astype(object)
    return out, np.clip(fraction_of(out), 0.0, 1.0)


def window_table(recording: Recording, window_s: float, step_s: float | None = None, *,
                 label_rule: str = "majority", kind: str = "phase",
                 start: float | None = None, end: float | None = None) -> pd.DataFrame:
    """Windows of ``window_s`` seconds every ``step_s`` (default: no overlap), with labels.

    Windows are on the recording's **reference clock** (the clock of its annotations), so
    align the device clocks before cutting streams with them. By default they cover the
    span of the ``kind`` annotations (the labelled part of the session); pass ``start`` and
    ``end`` to cover more (unlabelled time gets ``""`` under most rules). Only whole windows
    are kept.

    Returns a DataFrame with columns ``start``, ``end``, ``centre`` (s), ``label`` and
    ``label_fraction`` (how much of the window the label's annotations cover; for ``""``
    the fraction without any label), one row per window.

    >>> window_table(rec, 60, 30, label_rule="majority")  # doctest: +SKIP
    """
    window_s = check_positive(window_s, "window_s", unit="seconds")
    step_s = window_s if step_s is None else check_positive(step_s, "step_s", unit="seconds")
    rows = recording.phases(kind)
    if start is None or end is None:
        if rows.empty:
            raise SignalError(
                f"recording {recording.subject!r} has no {kind!r} annotations to take the window "
                f"span from; give start= and end= (kinds present: "
                f"{sorted(set(recording.annotations['kind']))})")
        lo = float(rows["onset"].min())
        hi = float((rows["onset"] + rows["duration"]).max())
        start = lo if start is None else float(start)
        end = hi if end is None else float(end)
    start, end = float(start), float(end)
    if not (math.isfinite(start) and math.isfinite(end)):
        raise SignalError(f"window span must be finite, got start={start!r}, end={end!r}")
    n = int(math.floor((end - start - window_s) / step_s + 1e-9)) + 1 if end - start >= window_s - 1e-9 else 0
    if n <= 0:
        raise SignalError(f"recording {recording.subject!r}: the span [{start:g}, {end:g}) s is "
                          f"shorter than one {window_s:g} s window")
    a = start + np.arange(n) * step_s
    b = a + window_s
    labels, frac = window_labels(recording.annotations, a, b, label_rule, kind)
    return pd.DataFrame({"start": a, "end": b, "centre": 0.5 * (a + b),
                         "label": pd.Series(labels, dtype=object).astype(str).to_numpy(),
                         "label_fraction": frac})
