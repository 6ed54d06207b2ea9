"""The one place where arguments are checked (rates, positive numbers, options, counts).

Public functions call these first, so every error says which argument is at fault, what
was given and what is allowed, in the same words everywhere (the habit of MNE-Python's
``_check_option``/``_validate_type``). Each check returns the value converted to the type
the caller computes with, so ``rate = check_rate(rate, "ECG")`` both validates and converts.

The error class is chosen by the caller through ``error`` (default :class:`SignalError`,
which is also a ``ValueError``), so a schema check can raise :class:`SchemaError` with the
same wording.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

from mmlab.errors import MMLabError, SignalError

__all__ = ["check_number", "check_positive", "check_rate", "check_int", "check_option",
           "check_fraction"]


def check_number(value: Any, what: str, *, low: float | None = None, high: float | None = None,
                 low_inclusive: bool = True, high_inclusive: bool = True, unit: str = "",
                 error: type[MMLabError] = SignalError) -> float:
    """``value`` as a finite float inside the given bounds, else ``error`` naming ``what``.

    >>> check_number("2.5", "gain")
    2.5
    >>> check_number(float("nan"), "gain")
    Traceback (most recent call last):
    ...
    mmlab.errors.SignalError: gain must be a finite number, got nan
    """
    units = f" {unit}" if unit else ""
    if isinstance(value, bool):
        raise error(f"{what} must be a number{' of ' + unit if unit else ''}, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise error(f"{what} must be a number{' of ' + unit if unit else ''}, got {value!r}") from None
    if not math.isfinite(v):
        raise error(f"{what} must be a finite number{' of ' + unit if unit else ''}, got {value!r}")
    if low is not None and (v < low or (v == low and not low_inclusive)):
        op = ">=" if low_inclusive else ">"
        raise error(f"{what} must be {op} {low:g}{units}, got {value!r}")
    if high is not None and (v > high or (v == high and not high_inclusive)):
        op = "<=" if high_inclusive else "<"
        raise error(f"{what} must be {op} {high:g}{units}, got {value!r}")
    return v


def check_positive(value: Any, what: str, *, unit: str = "",
                   error: type[MMLabError] = SignalError) -> float:
    """``value`` as a finite float > 0, else ``error`` naming ``what``.

    >>> check_positive(0.5, "window_s", unit="seconds")
    0.5
    >>> check_positive(-1, "window_s", unit="seconds")
    Traceback (most recent call last):
    ...
    mmlab.errors.SignalError: window_s must be a positive number of seconds, got -1
    """
    u = f" of {unit}" if unit else ""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise error(f"{what} must be a positive number{u}, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(v) or v <= 0:
        raise error(f"{what} must be a positive number{u}, got {value!r}")
    return v


def check_rate(rate: Any, what: str = "signal", *, min_rate: float | None = None,
               max_rate: float | None = None, why: str = "",
               error: type[MMLabError] = SignalError) -> float:
    """A sampling rate in Hz as a float: finite, > 0 and inside ``[min_rate, max_rate]``.

    ``what`` names the signal (``"ECG"``, ``"stream 'chest_ecg'"``); ``why`` says why a
    minimum applies.

    >>> check_rate(700, "ECG")
    700.0
    >>> check_rate(0, "ECG")
    Traceback (most recent call last):
    ...
    mmlab.errors.SignalError: ECG: sampling rate must be a positive number of Hz, got 0
    >>> check_rate(50, "ECG", min_rate=100, why="R-peaks need 100 Hz")
    Traceback (most recent call last):
    ...
    mmlab.errors.SignalError: ECG sampled at 50 Hz: this needs at least 100 Hz (R-peaks need 100 Hz)
    """
    try:
        fs = float(rate)
    except (TypeError, ValueError):
        raise error(f"{what}: sampling rate must be a number of Hz, got {rate!r}") from None
    if isinstance(rate, bool) or not math.isfinite(fs) or fs <= 0:
        raise error(f"{what}: sampling rate must be a positive number of Hz, got {rate!r}")
    reason = f" ({why})" if why else ""
    if min_rate is not None and fs < min_rate:
        raise error(f"{what} sampled at {fs:g} Hz: this needs at least {min_rate:g} Hz{reason}")
    if max_rate is not None and fs > max_rate:
        raise error(f"{what} sampled at {fs:g} Hz: at most {max_rate:g} Hz is supported{reason}")
    return fs


def check_int(value: Any, what: str, *, low: int | None = None, high: int | None = None,
              error: type[MMLabError] = SignalError) -> int:
    """``value`` as an int (a whole-valued number) inside ``[low, high]``.

    >>> check_int(3.0, "n_splits", low=2)
    3
    >>> check_int(2.5, "n_splits")
    Traceback (most recent call last):
    ...
    mmlab.errors.SignalError: n_splits must be a whole number, got 2.5
    """
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, numbers.Real)):
        raise error(f"{what} must be a whole number, got {value!r}")
    if isinstance(value, numbers.Integral):
        v = int(value)
    else:
        f = float(value)
        if not math.isfinite(f) or f != round(f):
            raise error(f"{what} must be a whole number, got {value!r}")
        v = int(round(f))
    if low is not None and v < low:
        raise error(f"{what} must be >= {low}, got {value!r}")
    if high is not None and v > high:
        raise error(f"{what} must be <= {high}, got {value!r}")
    return v


def check_fraction(value: Any, what: str, *, open_low: bool = True, open_high: bool = True,
                   error: type[MMLabError] = SignalError) -> float:
    """A fraction in (0, 1) (bounds open by default), e.g. ``validation_fraction``.

    >>> check_fraction(0.2, "validation_fraction")
    0.2
    >>> check_fraction(1.0, "validation_fraction")
    Traceback (most recent call last):
    ...
    mmlab.errors.SignalError: validation_fraction must be < 1, got 1.0
    """
    return check_number(value, what, low=0.0, high=1.0, low_inclusive=not open_low,
                        high_inclusive=not open_high, error=error)


def check_option(value: Any, what: str, allowed: Iterable[Any], *,
                 error: type[MMLabError] = SignalError) -> Any:
    """``value`` if it is one of ``allowed``, else ``error`` listing what is allowed.

    >>> check_option("welch", "method", ("welch", "multitaper"))
    'welch'
    >>> check_option("fft", "method", ("welch", "multitaper"))
    Traceback (most recent call last):
    ...
    mmlab.errors.SignalError: method must be one of 'welch', 'multitaper'; got 'fft'
    """
    options = list(allowed)
    try:
        ok = value in options
    except TypeError:
        ok = False
    if not ok:
        listed = ", ".join(repr(o) for o in options)
        raise error(f"{what} must be one of {listed}; got {value!r}")
    return value


def check_params(cls: type, params: Any, *, error: type[MMLabError] = SignalError) -> dict:
    """``params`` as a dict if every name is a parameter of ``cls`` (e.g. the CLI's ``--set``
    for a system), else ``error`` naming the first unknown one and the known ones.

    >>> class Model:
    ...     def __init__(self, depth=3, seed=0): ...
    >>> check_params(Model, {"depth": 5})
    {'depth': 5}
    >>> check_params(Model, {"colour": "red"})
    Traceback (most recent call last):
    ...
    mmlab.errors.SignalError: 'colour' is not a Model parameter; known: depth, seed
    """
    import inspect

    params = dict(params)
    known = set(inspect.signature(cls).parameters)
    unknown = sorted(set(params) - known)
    if unknown:
        raise error(f"{unknown[0]!r} is not a {cls.__name__} parameter; known: {', '.join(sorted(known))}")
    return params
