"""Small helpers shared by the readers (paths, errors, label tables, label spans)."""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from mmlab.errors import DataFormatError, DatasetError, SchemaError

#: Environment variable naming the folder that holds the real datasets.
DATA_DIR_ENV = "MMLAB_DATA_DIR"


@contextlib.contextmanager
def library_deprecations_hidden(package: str):
    """Hide the deprecation warnings ``package`` triggers inside its own code (e.g. wfdb
    calling pandas with ``inplace=True``): the reader cannot act on them, and they bury
    the warnings that matter. Warnings raised from mmlab's own code are untouched."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category, module=rf"{package}(\.|$)")
        yield


def data_dir() -> Path | None:
    """The folder named by ``$MMLAB_DATA_DIR``, or ``None`` when it is unset or empty.

    Readers never look at this on their own: they take explicit paths. Notebooks and
    tests use it to find the real-data samples (chapter 05_data), e.g.
    ``read_stress_predict(data_dir() / "stress_predict")``.
    """
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def existing_dir(path: str | Path, what: str) -> Path:
    """``path`` as a Path, or a DatasetError saying the folder is missing."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(f"{what}: {p} does not exist")
    if not p.is_dir():
        raise DatasetError(f"{what}: {p} is not a folder")
    return p


def existing_file(path: str | Path, what: str) -> Path:
    """``path`` as a Path, or a DataFormatError saying the file is missing."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataFormatError(f"{p}: {what} file is missing")
    return p


def safe_name(text: str) -> str:
    """A stream/subject-safe name: letters, digits, '_', '-', '.' (others become '_')."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_")
    if not name or not name[0].isalnum():
        name = "x" + name
    return name


def slug(text: str) -> str:
    """A lower-case machine label: 'Stroop Test' -> 'stroop_test'."""
    return re.sub(r"[^a-z0-9]+", "_", str(text).lower()).strip("_")


def check_choice(value, known: dict | Iterable, what: str, where: str):
    """Return ``value`` if it is one of ``known``; otherwise a DataFormatError listing them."""
    if value in known:
        return value
    if isinstance(known, dict):
        listing = ", ".join(f"{k}={v}" for k, v in known.items())
    else:
        listing = ", ".join(str(k) for k in known)
    raise DataFormatError(f"{where}: unknown {what} {value!r} (known: {listing})")


def runs_of(codes: np.ndarray) -> list[tuple[int, int, int]]:
    """Run-length encoding of a 1-D integer array: (start index, stop index, value)."""
    codes = np.asarray(codes).reshape(-1)
    if codes.size == 0:
        return []
    change = np.flatnonzero(np.diff(codes) != 0) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [codes.size]])
    return [(int(a), int(b), int(codes[a])) for a, b in zip(starts, stops)]


def counts(values: Iterable) -> dict:
    """Label counts as a plain dict, most common first (ties by name)."""
    out: dict = {}
    for v in values:
        key = v.item() if isinstance(v, np.generic) else v
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], str(kv[0]))))


# ------------------------------------------------------------------- label spans
#: Columns of the table :func:`check_label_span` returns.
LABEL_SPAN_COLUMNS = ("subject", "kind", "phase", "stress", "onset", "end", "span_start",
                      "span_end", "status")
LABEL_SPAN_STATUS = ("inside", "clipped", "outside")


def recording_span(rec) -> tuple[float, float]:
    """``(start, end)`` of a Recording on its reference clock: the earliest stream start
    and the latest stream end (the interval :attr:`Recording.duration` measures).

    A recording without streams has no span: SchemaError.
    """
    if not rec.streams:
        raise SchemaError(f"recording {rec.subject!r} has no streams, so no span to check labels against")
    return (float(min(s.start for s in rec.streams.values())),
            float(max(s.end for s in rec.streams.values())))


def check_label_span(rec, *, kinds: Iterable[str] = ("phase", "label"),
                     stress_labels: Iterable[str] = (), span: tuple[float, float] | None = None,
                     clip: bool = False, source: str | None = None) -> pd.DataFrame:
    """Check every labelled interval of ``rec`` against the recording span (chapter 05_data).

    Each annotation whose ``kind`` is in ``kinds`` is compared with the span
    (:func:`recording_span`, or ``span=(start, end)`` in reference seconds) and gets a
    status: ``inside`` (onset >= start and end <= span end), ``clipped`` (it overlaps the
    span but reaches outside it) or ``outside`` (no overlap; a zero-length event exactly on
    a boundary is inside). The policy:

    * a **stress-labelled** interval that is not inside raises SchemaError naming the
      subject, the phase, the interval and the span (``source``, e.g. the time log's path,
      is named too): a stress label the signals do not cover is a broken label file, and
      training on half of it would be silent;
    * any other interval partly outside is ``clipped``; entirely outside is ``outside``.

    An interval is stress-labelled when a ``stress`` column holds 1 (Stress-Predict) or
    its ``label`` is in ``stress_labels`` (WESAD: ``("stress",)``).

    With ``clip=True`` the recording is changed in place, so the labels match what was
    recorded: clipped intervals are cut to the span, ``outside`` ones are removed from
    ``rec.annotations``, and the report is kept in ``rec.meta["label_span"]`` (a list of
    rows; ``rec.meta["labels_outside"]`` names the removed intervals), so nothing vanishes
    silently. The readers of Stress-Predict and WESAD do this at read time.

    Returns a DataFrame with columns ``subject, kind, phase (the label), stress (0/1),
    onset, end (as labelled, s), span_start, span_end, status``, one row per checked
    interval in onset order.

    Examples
    --------
    >>> import numpy as np
    >>> from mmlab.recording import Recording, Stream
    >>> rec = Recording("S1", [Stream("eda", np.zeros(400), "eda", rate=4.0)],
    ...                 annotations=[{"onset": -30.0, "duration": 10.0, "kind": "phase", "label": "consent"},
    ...                              {"onset": -5.0, "duration": 20.0, "kind": "phase", "label": "rest"},
    ...                              {"onset": 20.0, "duration": 30.0, "kind": "phase", "label": "task"}])
    >>> check_label_span(rec)["status"].tolist()
    ['outside', 'clipped', 'inside']
    """
    if span is None:
        start, stop = recording_span(rec)
    else:
        try:
            start, stop = (float(v) for v in span)
        except (TypeError, ValueError):
            raise SchemaError(f"recording {rec.subject!r}: span must be (start, end) in seconds, "
                              f"got {span!r}") from None
        if not (np.isfinite(start) and np.isfinite(stop) and stop >= start):
            raise SchemaError(f"recording {rec.subject!r}: span {span!r} is not a finite "
                              "(start, end) with end >= start")
    kinds = {kinds} if isinstance(kinds, str) else set(kinds)
    stress_labels = {stress_labels} if isinstance(stress_labels, str) else set(stress_labels)
    ann = rec.annotations
    mask = ann["kind"].isin(kinds).to_numpy()
    rows = ann[mask]
    onset = rows["onset"].to_numpy(dtype=float)
    end = onset + rows["duration"].to_numpy(dtype=float)
    stress = rows["label"].isin(stress_labels).to_numpy().copy()
    if "stress" in rows:
        stress |= pd.to_numeric(rows["stress"], errors="coerce").to_numpy(dtype=float) == 1
    inside = (onset >= start) & (end <= stop)
    point = end == onset
    overlaps = (onset < stop) & (end > start)
    status = np.where(inside, "inside", np.where(overlaps & ~point, "clipped", "outside"))
    report = pd.DataFrame({
        "subject": rec.subject, "kind": rows["kind"].to_numpy(), "phase": rows["label"].to_numpy(),
        "stress": stress.astype(int), "onset": onset, "end": end, "span_start": start,
        "span_end": stop, "status": status}, columns=list(LABEL_SPAN_COLUMNS))
    bad = report[(report["stress"] == 1) & (report["status"] != "inside")]
    if len(bad):
        r = bad.iloc[0]
        where = f" ({source})" if source else ""
        raise SchemaError(
            f"recording {rec.subject!r}{where}: stress-labelled {r.kind} {r.phase!r} at "
            f"{r.onset:g} .. {r.end:g} s is {'partly' if r.status == 'clipped' else 'entirely'} "
            f"outside the recording span {start:g} .. {stop:g} s; a stress label must lie inside "
            "the recorded signals (check the label file's times and date)")
    if clip:
        _clip_annotations(rec, np.flatnonzero(mask), report, start, stop)
    return report


def _clip_annotations(rec, index: np.ndarray, report: pd.DataFrame, start: float, stop: float) -> None:
    """Cut clipped intervals to [start, stop], drop outside ones, keep the report in meta."""
    ann = rec.annotations.reset_index(drop=True).copy()
    status = report["status"].to_numpy()
    clipped = index[status == "clipped"]
    if len(clipped):
        on = ann.loc[clipped, "onset"].to_numpy(dtype=float)
        off = on + ann.loc[clipped, "duration"].to_numpy(dtype=float)
        new_on, new_off = np.maximum(on, start), np.minimum(off, stop)
        ann.loc[clipped, "onset"] = new_on
        ann.loc[clipped, "duration"] = new_off - new_on
    outside = index[status == "outside"]
    rec.annotations = ann.drop(index=ann.index[outside])
    rec.annotations = rec.annotations.sort_values("onset", kind="stable").reset_index(drop=True)
    rec.meta["label_span"] = [
        {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        for row in report.to_dict("records")]
    rec.meta["labels_outside"] = [
        f"{r.phase} ({r.onset:g} .. {r.end:g} s; span {r.span_start:g} .. {r.span_end:g} s)"
        for r in report[report["status"] == "outside"].itertuples()]


def label_span_table(recordings: Iterable) -> pd.DataFrame:
    """The label-span reports the readers kept (``rec.meta["label_span"]``) as one table,
    one row per checked interval (columns :data:`LABEL_SPAN_COLUMNS`); a recording read
    without labels adds no rows. E.g. ``label_span_table(read_stress_predict(root))``.
    """
    frames = [pd.DataFrame(rec.meta["label_span"], columns=list(LABEL_SPAN_COLUMNS))
              for rec in recordings if rec.meta.get("label_span")]
    if not frames:
        return pd.DataFrame(columns=list(LABEL_SPAN_COLUMNS))
    return pd.concat(frames, ignore_index=True)
