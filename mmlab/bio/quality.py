"""Input checks and signal-quality masks shared by the biosignal modules (chapter 12_ecg_hrv).

Every function in :mod:`mmlab.bio` starts with :func:`as_signal`, which turns its input
into a 1-D float array and raises one clear :class:`~mmlab.errors.SignalError` for input no
method could process: a sampling rate that is not a positive number or too low for the
signal, a signal shorter than the method needs, an empty or all-NaN signal, data that is
not one channel of numbers. Problems that are *in the data* (a dropout, a flat lead, a
clipped amplifier) are not errors: :func:`assess` measures them, the masks below mark
them, and detectors skip them instead of inventing events there.

* :func:`finite_runs` — start/stop of the runs of finite samples (NaN marks a dropout);
* :func:`flat_mask` — samples in runs that do not change for at least ``min_s`` seconds;
* :func:`clipped_mask` — samples stuck at the signal's extreme values (saturation);
* :func:`assess` — a :class:`SignalReport` with the fraction of each problem.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from mmlab.errors import SignalError
from mmlab.validate import check_rate

__all__ = ["SignalWarning", "SHORT_SEGMENT_S", "segment_failure", "as_signal", "finite_runs", "mask_runs", "flat_mask", "clipped_mask",
           "usable_mask", "SignalReport", "assess"]


class SignalWarning(UserWarning):
    """A stretch of a signal was skipped because a library could not process it."""


#: A library failure on a valid stretch shorter than this skips the stretch (with a
#: :class:`SignalWarning`) instead of failing the whole signal: a few seconds between two
#: dropouts may simply hold too little for the method (e.g. less than one breath).
SHORT_SEGMENT_S = 30.0


def segment_failure(what: str, failure: Exception, a: int, b: int, fs: float) -> None:
    """Handle a library failing on samples ``a:b``: raise for a long stretch, warn for a short one.

    Long stretches (``>= SHORT_SEGMENT_S``) raise :class:`~mmlab.errors.SignalError` naming
    ``what`` and the samples; short ones are skipped with a :class:`SignalWarning`.
    """
    msg = f"{what} failed on samples {a}-{b} ({type(failure).__name__}: {failure})"
    if (b - a) / fs >= SHORT_SEGMENT_S:
        raise SignalError(msg) from failure
    warnings.warn(msg + "; this short stretch is skipped", SignalWarning, stacklevel=4)


def as_signal(x, fs, what: str = "signal", min_rate: float | None = None,
              min_duration_s: float | None = None, why_rate: str = "",
              allow_all_nan: bool = False) -> tuple[np.ndarray, float]:
    """Validate one channel of samples and its rate; return ``(float64 copy, rate)``.

    ``x`` may be 1-D or ``(n, 1)``; infinities become NaN (missing), never values. Raises
    :class:`SignalError` naming ``what`` when the rate is not a positive number or is below
    ``min_rate``, when the signal is empty, not numeric, has several channels, is shorter
    than ``min_duration_s`` seconds, or is all NaN (unless ``allow_all_nan``).
    """
    rate = check_rate(fs, what, min_rate=min_rate, why=why_rate)
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise SignalError(f"{what}: cannot read the samples as an array ({exc})") from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise SignalError(f"{what}: expected one channel of samples (1-D), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) or np.iscomplexobj(arr):
        raise SignalError(f"{what}: samples must be real numbers, got dtype {arr.dtype}")
    out = arr.astype(np.float64, copy=True)
    if len(out) == 0:
        raise SignalError(f"{what} is empty (0 samples)")
    out[~np.isfinite(out)] = np.nan
    duration = len(out) / rate
    if min_duration_s is not None and duration < min_duration_s:
        raise SignalError(f"{what} is too short: {duration:.3g} s ({len(out)} samples at {rate:g} Hz); "
                          f"at least {min_duration_s:g} s is needed")
    if np.isnan(out).all() and not allow_all_nan:
        raise SignalError(f"{what} is all NaN: no valid samples")
    return out, rate


def mask_runs(mask: np.ndarray, min_len: int = 1) -> np.ndarray:
    """``(k, 2)`` array of ``[start, stop)`` of the runs of True in ``mask`` at least ``min_len`` long."""
    m = np.asarray(mask, dtype=bool)
    if len(m) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    d = np.diff(np.concatenate([[0], m.astype(np.int8), [0]]))
    starts = np.flatnonzero(d == 1)
    stops = np.flatnonzero(d == -1)
    keep = (stops - starts) >= max(int(min_len), 1)
    return np.stack([starts[keep], stops[keep]], axis=1).astype(np.int64)


def finite_runs(x: np.ndarray, min_len: int = 1) -> np.ndarray:
    """``[start, stop)`` of the runs of finite samples at least ``min_len`` samples long."""
    return mask_runs(np.isfinite(np.asarray(x, dtype=float)), min_len)


def _runs_to_mask(n: int, runs: np.ndarray) -> np.ndarray:
    out = np.zeros(n + 1, dtype=np.int32)
    if len(runs):
        np.add.at(out, runs[:, 0], 1)
        np.add.at(out, runs[:, 1], -1)
    return np.cumsum(out[:-1]) > 0


def flat_mask(x: np.ndarray, fs: float, min_s: float = 0.5, tol: float = 0.0) -> np.ndarray:
    """True for samples inside runs where the signal changes by at most ``tol`` between
    neighbouring samples for at least ``min_s`` seconds (a lead off, a frozen sensor)."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    if n < 2:
        return np.zeros(n, dtype=bool)
    same = (x[1:] == x[:-1]) if tol == 0 else (np.abs(np.diff(x)) <= tol)  # NaN compares False
    # sample i+1 continues the run of sample i; a run of k "same" steps covers k+1 samples
    runs = mask_runs(same, max(int(math.ceil(min_s * fs)) - 1, 1))
    if len(runs):
        runs = runs.copy()
        runs[:, 1] += 1
    return _runs_to_mask(n, runs)


def clipped_mask(x: np.ndarray, fs: float | None = None, min_run: int = 3,
                 rel_tol: float = 1e-9) -> np.ndarray:
    """True for samples stuck at the signal's maximum or minimum for at least ``min_run``
    consecutive samples: the plateau an amplifier or converter produces when it saturates.

    An unclipped signal reaches its extreme value at one sample (or two, when quantised),
    so its mask is all False. A constant signal is all "clipped"; :func:`flat_mask` is the
    better description of it and :func:`assess` reports both.
    """
    x = np.asarray(x, dtype=float)
    if len(x) == 0 or np.isnan(x).all():
        return np.zeros(len(x), dtype=bool)
    hi, lo = np.nanmax(x), np.nanmin(x)
    tol = rel_tol * max(abs(hi), abs(lo), hi - lo, 1e-300)
    rail = (x >= hi - tol) | (x <= lo + tol)
    return _runs_to_mask(len(x), mask_runs(rail, min_run))


def usable_mask(x: np.ndarray, fs: float, flat_s: float = 0.5, clip_run: int = 3) -> np.ndarray:
    """Samples that are finite, not in a flat run and not clipped."""
    x = np.asarray(x, dtype=float)
    return np.isfinite(x) & ~flat_mask(x, fs, flat_s) & ~clipped_mask(x, fs, clip_run)


@dataclass(frozen=True)
class SignalReport:
    """What is wrong with a signal, as fractions of its samples (chapter 12_ecg_hrv)."""

    what: str
    n_samples: int
    rate: float
    nan_frac: float
    flat_frac: float
    clipped_frac: float

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.rate

    @property
    def usable_frac(self) -> float:
        return max(0.0, 1.0 - self.nan_frac - self.flat_frac - self.clipped_frac)

    def problems(self, threshold: float = 0.001) -> list[str]:
        """Human-readable problems above ``threshold`` (a fraction of the samples)."""
        out = []
        if self.nan_frac > threshold:
            out.append(f"{self.nan_frac:.1%} missing (NaN)")
        if self.flat_frac > threshold:
            out.append(f"{self.flat_frac:.1%} flat")
        if self.clipped_frac > threshold:
            out.append(f"{self.clipped_frac:.1%} clipped")
        return out

    def __str__(self) -> str:
        issues = ", ".join(self.problems()) or "no problems found"
        return f"{self.what}: {self.duration_s:.1f} s at {self.rate:g} Hz; {issues}"


def assess(x, fs, what: str = "signal", flat_s: float = 0.5, clip_run: int = 3) -> SignalReport:
    """Measure missing, flat and clipped samples (rates and shape are checked as in :func:`as_signal`)."""
    arr, rate = as_signal(x, fs, what, allow_all_nan=True)
    n = len(arr)
    nan = np.isnan(arr)
    flat = flat_mask(arr, rate, flat_s)
    clipped = clipped_mask(arr, rate, clip_run) & ~flat
    return SignalReport(what, n, rate, float(nan.mean()), float(flat.mean()), float(clipped.mean()))

