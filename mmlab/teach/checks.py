"""Checks for the test cells of graded notebooks: plain values first, then one-line verdicts.

A learner's answer is never trusted to compare itself: an object whose ``__eq__`` or
``__lt__`` always says ``True``, or a ``float`` subclass that claims to equal anything,
would pass ``assert answer == 42``. Every check here first converts the answer to plain
Python or numpy values (exact types, read through the base types' own conversions), then
compares with numpy functions on those plain values. A failed check raises a plain
:class:`AssertionError` whose message is one line, ``"<msg>: expected X, got Y"``, so
``mmlab grade`` can show it beside the task.

Converters (each raises :class:`AssertionError` naming what was given when the answer
cannot be read as asked):

* :func:`plain` -- numbers, strings, booleans, ``None`` and containers of them, as exact
  built-in types (numpy scalars and arrays become Python scalars and lists);
* :func:`as_float` -- one real number as a ``float``;
* :func:`as_array` -- an exact ``numpy.ndarray`` of numbers, booleans or strings (a copy);
* :func:`as_series` / :func:`as_frame` -- a rebuilt ``pandas.Series`` / ``DataFrame``.

Checks: :func:`assert_close`, :func:`assert_equal`, :func:`assert_array_equal`,
:func:`assert_shape`, :func:`assert_type`, :func:`assert_len`, :func:`assert_dtype`,
:func:`assert_nan`, :func:`assert_finite`, :func:`assert_in_range`, :func:`assert_greater`,
:func:`assert_less`, :func:`assert_isin`, :func:`assert_contains`, :func:`assert_true`,
:func:`assert_raises`.

A test cell reads::

    from mmlab.teach.checks import assert_close, assert_type
    assert_close(n_samples(60, 700), 42000, msg="60 s at 700 Hz")
    assert_type(n_samples(1, 4), int, msg="n_samples returns a Python int")

Introduced in chapter ``00_welcome``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

__all__ = [
    "plain", "as_float", "as_array", "as_series", "as_frame",
    "assert_close", "assert_equal", "assert_array_equal", "assert_shape", "assert_type",
    "assert_len", "assert_dtype", "assert_nan", "assert_finite", "assert_in_range",
    "assert_greater", "assert_less", "assert_isin", "assert_contains", "assert_true",
    "assert_raises",
]

_MAX_SHOWN = 160  # characters of one value in a message


# ----------------------------------------------------------------------------- messages

def _type_name(x: Any) -> str:
    t = type(x)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _show(v: Any) -> str:
    """A one-line, length-capped text of a plain value (never calls the learner's code)."""
    if isinstance(v, np.ndarray):
        text = np.array2string(v, precision=6, threshold=12, separator=", ",
                               max_line_width=10 ** 6)
    elif type(v) is float:
        text = repr(v) if len(repr(v)) <= 10 else f"{v:.6g}"
    elif type(v) in (int, bool, str, type(None), list, tuple, dict, set, frozenset):
        text = repr(v)
    elif isinstance(v, (pd.Series, pd.DataFrame)):
        text = " ".join(v.to_string(max_rows=6, max_cols=6).split())
    else:
        text = f"<{_type_name(v)}>"
    text = " ".join(text.split())
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN - 3] + "..."


def _fail(msg: str, expected: str, got: str) -> AssertionError:
    head = f"{msg}: " if msg else ""
    return AssertionError(f"{head}expected {expected}, got {got}")


# ---------------------------------------------------------------------------- converters

def plain(x: Any, msg: str = "") -> Any:
    """``x`` as exact built-in Python values, or :class:`AssertionError`.

    Numbers, strings and booleans (including numpy scalars and subclasses of ``int``,
    ``float`` and ``str``) become exact ``int``/``float``/``bool``/``str``, read through the
    base type so an overridden ``__eq__``, ``__float__`` or ``__str__`` plays no part.
    Lists, tuples, dicts, sets, numpy arrays (as nested lists) and pandas objects (a
    Series as a dict, a DataFrame as a dict of column dicts) are converted element by
    element. Anything else is refused.

    Parameters
    ----------
    x : object
        The learner's answer.
    msg : str
        What is being checked, for the error message.

    Returns
    -------
    object
        An equal value built only from built-in types.

    Examples
    --------
    >>> plain(np.float64(2.5)), plain([np.int64(1), (True, "a")])
    (2.5, [1, (True, 'a')])
    >>> class Liar(float):
    ...     def __eq__(self, other):
    ...         return True
    >>> plain(Liar(1.0)) == 2.0
    False
    >>> plain(object(), msg="labels")
    Traceback (most recent call last):
    ...
    AssertionError: labels: expected a number, string, list, dict or array, got object
    """
    if x is None or type(x) in (bool, int, float, str):
        return x
    if x is pd.NA:  # pandas' missing value in nullable columns
        return None
    if isinstance(x, bool):  # unreachable (bool cannot be subclassed); kept for clarity
        return bool(x)
    if isinstance(x, np.generic):
        if not isinstance(x, (np.number, np.bool_, np.str_, np.bytes_)):
            raise _fail(msg, "a number, string or boolean", _type_name(x))
        return np.array(x, subok=False).item()  # the base dtype's own conversion
    if isinstance(x, int):
        return int.__int__(x)
    if isinstance(x, float):
        return float.__float__(x)
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, np.ndarray):
        return as_array(x, msg=msg).tolist()
    if isinstance(x, pd.DataFrame):
        f = as_frame(x, msg=msg)
        return {plain(c, msg): dict(zip(plain(list(f.index), msg), plain(f[c].to_numpy(), msg)))
                for c in f.columns}
    if isinstance(x, (pd.Series, pd.Index)):
        if isinstance(x, pd.Index):
            return plain(as_array(x, msg=msg), msg)
        s = as_series(x, msg=msg)
        return dict(zip(plain(list(s.index), msg), plain(s.to_numpy(), msg)))
    if isinstance(x, tuple):
        return tuple(plain(v, msg) for v in tuple.__iter__(x))
    if isinstance(x, list):
        return [plain(v, msg) for v in list.__iter__(x)]
    if isinstance(x, dict):
        return {plain(k, msg): plain(dict.__getitem__(x, k), msg) for k in dict.__iter__(x)}
    if isinstance(x, (set, frozenset)):
        kind = frozenset if isinstance(x, frozenset) else set
        return kind(plain(v, msg) for v in (frozenset.__iter__(x) if kind is frozenset
                                            else set.__iter__(x)))
    raise _fail(msg, "a number, string, list, dict or array", _type_name(x))


def as_float(x: Any, msg: str = "") -> float:
    """``x`` as one exact ``float``, or :class:`AssertionError`.

    Accepts Python and numpy real numbers, booleans and 0-d arrays; a string, a list, a
    1-element array or any other object is refused, so the answer's type is part of the
    check.

    Parameters
    ----------
    x : object
        The learner's answer.
    msg : str
        What is being checked, for the error message.

    Returns
    -------
    float

    Examples
    --------
    >>> as_float(np.float32(0.5)), as_float(3)
    (0.5, 3.0)
    >>> as_float([1.0], msg="heart rate")
    Traceback (most recent call last):
    ...
    AssertionError: heart rate: expected a number, got list
    """
    if isinstance(x, np.ndarray) and x.ndim == 0:
        x = x[()]
    if isinstance(x, (np.number, np.bool_)) and not isinstance(x, np.complexfloating):
        return float(np.array(x, dtype=float, subok=False))
    if isinstance(x, (int, float)) and not isinstance(x, complex):
        return float(plain(x, msg))
    raise _fail(msg, "a number", _type_name(x) + (f" of shape {x.shape}" if isinstance(x, np.ndarray) else ""))


def _object_elements(a: np.ndarray, msg: str) -> np.ndarray:
    """An object array rebuilt from plain elements.

    All strings -> a string array, all booleans -> bool, all numbers -> float; a mix of
    plain scalars (e.g. strings and ``None``) stays an object array of exact built-in
    values, which compare honestly. Containers and other objects are refused.
    """
    items = [plain(v, msg) for v in a.ravel().tolist()]
    if items and all(type(v) is str for v in items):
        return np.array(items, dtype=str).reshape(a.shape)
    if items and all(type(v) is bool for v in items):
        return np.array(items, dtype=bool).reshape(a.shape)
    if all(type(v) in (int, float, bool) for v in items):
        return np.array(items, dtype=float).reshape(a.shape)
    odd = sorted({_type_name(v) for v in items if type(v) not in (int, float, bool, str, type(None))})
    if odd:
        raise _fail(msg, "an array of numbers, booleans or strings", "elements of type " + ", ".join(odd))
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out.reshape(a.shape)


def as_array(x: Any, dtype: Any = None, msg: str = "") -> np.ndarray:
    """``x`` as a new, exact ``numpy.ndarray`` of numbers, booleans or strings.

    Accepts arrays (and their subclasses, read as plain arrays), nested lists and tuples,
    numbers, pandas objects (their values) and anything exposing ``__array__`` (e.g. a
    tensor). Elements of an object array must themselves be plain numbers or strings.

    Parameters
    ----------
    x : object
        The learner's answer.
    dtype : numpy dtype, optional
        Convert to this dtype (e.g. ``float``); refused if the values do not convert.
    msg : str
        What is being checked, for the error message.

    Returns
    -------
    numpy.ndarray
        A copy, never a view of the learner's data.

    Examples
    --------
    >>> as_array([[1, 2], [3, 4]], dtype=float)
    array([[1., 2.],
           [3., 4.]])
    >>> as_array(pd.Series(["a", "b"], dtype=object))
    array(['a', 'b'], dtype='<U1')
    >>> as_array([[1, 2], [3]], msg="frames")
    Traceback (most recent call last):
    ...
    AssertionError: frames: expected an array-like of numbers or strings, got list (setting an array element with a sequence...)
    """
    if isinstance(x, (pd.Series, pd.Index, pd.DataFrame)):
        x = x.to_numpy()
    elif isinstance(x, np.generic) or (not isinstance(x, np.ndarray) and not hasattr(x, "__array__")):
        x = plain(x, msg)  # scalars and (nested) lists: exact built-in values first
    try:
        a = np.array(x, subok=False, copy=True)
    except (TypeError, ValueError) as exc:
        why = str(exc).split(".")[0]
        raise _fail(msg, "an array-like of numbers or strings",
                    f"{_type_name(x)} ({why}...)") from None
    if type(a) is not np.ndarray:  # defensive: np.array(subok=False) returns a base ndarray
        a = np.asarray(a).view(np.ndarray)
    if a.dtype.kind == "O":
        a = _object_elements(a, msg)
    elif a.dtype.kind not in "biufcUSMm":
        raise _fail(msg, "an array of numbers, booleans or strings", f"an array of dtype {a.dtype}")
    if dtype is not None:
        if a.dtype.kind in "US" and np.dtype(dtype).kind in "biufc":
            raise _fail(msg, "numbers", f"strings {_show(a)}")
        try:
            a = a.astype(dtype)
        except (TypeError, ValueError):
            raise _fail(msg, f"values convertible to {np.dtype(dtype).name}", _show(a)) from None
    return a


def as_series(x: Any, msg: str = "") -> pd.Series:
    """``x`` (which must be a ``pandas.Series``) rebuilt from plain values and labels.

    Examples
    --------
    >>> print(as_series(pd.Series({"a": 1.0, "b": 2.5}))["b"])
    2.5
    >>> as_series({"a": 1.0}, msg="means")
    Traceback (most recent call last):
    ...
    AssertionError: means: expected a pandas Series, got dict
    """
    if not isinstance(x, pd.Series):
        raise _fail(msg, "a pandas Series", _type_name(x))
    base = pd.Series(x, copy=True)  # the base class's own view of the data
    values = as_array(base.to_numpy(), msg=msg)
    index = pd.Index(as_array(base.index.to_numpy(), msg=msg))
    return pd.Series(values, index=index, name=None if base.name is None else plain(base.name, msg))


def as_frame(x: Any, msg: str = "") -> pd.DataFrame:
    """``x`` (which must be a ``pandas.DataFrame``) rebuilt column by column from plain values.

    Examples
    --------
    >>> f = as_frame(pd.DataFrame({"ecg": [0.5, 1.0]}, index=["rest", "stress"]))
    >>> print(f.loc["stress", "ecg"])
    1.0
    >>> as_frame([[1.0]], msg="table")
    Traceback (most recent call last):
    ...
    AssertionError: table: expected a pandas DataFrame, got list
    """
    if not isinstance(x, pd.DataFrame):
        raise _fail(msg, "a pandas DataFrame", _type_name(x))
    base = pd.DataFrame(x, copy=True)  # the base class's own view of the data
    columns = [plain(c, msg) for c in base.columns.tolist()]
    index = pd.Index(as_array(base.index.to_numpy(), msg=msg))
    data = {c: as_array(base.iloc[:, j].to_numpy(), msg=msg) for j, c in enumerate(columns)}
    if len(set(columns)) != len(columns):
        raise _fail(msg, "unique column names", repr(columns))
    return pd.DataFrame(data, index=index, columns=columns)


# -------------------------------------------------------------------------------- checks

def assert_close(got: Any, expected: Any, rtol: float = 1e-7, atol: float = 1e-12,
                 msg: str = "", equal_nan: bool = True) -> None:
    """Pass when ``got`` equals ``expected`` within ``atol + rtol * |expected|`` everywhere.

    Both are converted with :func:`as_array` to floats; the shapes must be equal (no
    broadcasting: write the expected array in full). ``NaN`` matches ``NaN`` unless
    ``equal_nan`` is false, and infinities match infinities of the same sign.

    Parameters
    ----------
    got, expected : number or array-like
    rtol, atol : float
        Relative and absolute tolerance, as in :func:`numpy.isclose`.
    msg : str
        What is being checked (one line).
    equal_nan : bool

    Raises
    ------
    AssertionError
        ``"msg: expected X, got Y"`` with the largest difference for arrays.

    Examples
    --------
    >>> assert_close(60 / 0.5, 120.0, msg="two beats per second")
    >>> assert_close([1.0, 2.0], [1.0, 2.1], msg="RR intervals")
    Traceback (most recent call last):
    ...
    AssertionError: RR intervals: expected [1. , 2.1], got [1., 2.] (largest difference 0.1 at index 1)
    """
    g = as_array(got, dtype=float, msg=msg)
    e = as_array(expected, dtype=float, msg=msg)
    if g.shape != e.shape:
        raise _fail(msg, f"shape {e.shape}" + (f" ({_show(e)})" if e.size <= 6 else ""),
                    f"shape {g.shape} ({_show(g)})")
    ok = np.isclose(g, e, rtol=rtol, atol=atol, equal_nan=equal_nan)
    if bool(np.all(ok)):
        return
    got_s, exp_s = (_show(g), _show(e)) if g.ndim else (_show(float(g)), _show(float(e)))
    extra = ""
    if g.ndim:
        with np.errstate(invalid="ignore"):
            diff = np.where(ok, 0.0, np.abs(g - e))
        diff = np.where(np.isnan(diff), np.inf, diff)
        k = np.unravel_index(int(np.argmax(diff)), g.shape)
        where = k[0] if len(k) == 1 else tuple(int(i) for i in k)
        extra = f" (largest difference {_show(float(diff[k]))} at index {where})"
    raise _fail(msg, exp_s, got_s + extra)


def _same(a: Any, b: Any) -> bool:
    """Equality of plain values; bool is not a number, NaN equals NaN, containers by type."""
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a is b
    if type(a) in (int, float) and type(b) in (int, float):
        return a == b or (a != a and b != b)
    if type(a) is not type(b):
        return False
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b  # str, None, set, frozenset of plain hashables


def assert_equal(got: Any, expected: Any, msg: str = "") -> None:
    """Pass when ``got`` and ``expected`` are equal as plain values (see :func:`plain`).

    Containers must be of the same kind (a tuple is not a list), ``True`` is not ``1``,
    ``2 == 2.0`` and ``NaN`` equals ``NaN``. Numpy scalars and arrays compare as the Python
    values and nested lists they hold; for floats with rounding use :func:`assert_close`.

    Examples
    --------
    >>> assert_equal(np.int64(3), 3, msg="count")
    >>> assert_equal(["b", "a"], ["a", "b"], msg="vocabulary")
    Traceback (most recent call last):
    ...
    AssertionError: vocabulary: expected ['a', 'b'], got ['b', 'a']
    """
    g, e = plain(got, msg), plain(expected, msg)
    if not _same(g, e):
        raise _fail(msg, _show(e), _show(g))


def assert_array_equal(got: Any, expected: Any, msg: str = "") -> None:
    """Pass when ``got`` has ``expected``'s shape and exactly its elements (NaN equals NaN).

    Numbers compare with numbers and strings with strings; booleans are numbers here
    (``[True, False]`` equals ``[1, 0]``). Use :func:`assert_dtype` to check the kind too.

    Examples
    --------
    >>> assert_array_equal(np.array([0, 2, 4]), [0, 2, 4], msg="window starts")
    >>> assert_array_equal(["left", "right"], ["left", "left"], msg="labels")
    Traceback (most recent call last):
    ...
    AssertionError: labels: expected ['left', 'left'], got ['left', 'right'] (first difference at index 1)
    """
    g, e = as_array(got, msg=msg), as_array(expected, msg=msg)
    if g.shape != e.shape:
        raise _fail(msg, f"shape {e.shape}" + (f" ({_show(e)})" if e.size <= 6 else ""),
                    f"shape {g.shape} ({_show(g)})")
    text_g, text_e = g.dtype.kind in "USO", e.dtype.kind in "USO"
    if g.size and text_g != text_e:
        raise _fail(msg, _show(e), _show(g) + " (strings and numbers never match)")
    if text_g or text_e or not g.size:
        same = g == e if g.size else np.ones(g.shape, bool)
    else:
        gf, ef = g.astype(float) if g.dtype.kind != "c" else g, e.astype(float) if e.dtype.kind != "c" else e
        same = (gf == ef) | (np.isnan(gf) & np.isnan(ef)) if gf.dtype.kind == "f" and ef.dtype.kind == "f" else gf == ef
    same = np.asarray(same, dtype=bool)
    if bool(np.all(same)):
        return
    k = np.unravel_index(int(np.argmin(same)), g.shape)
    where = k[0] if len(k) == 1 else tuple(int(i) for i in k)
    raise _fail(msg, _show(e), f"{_show(g)} (first difference at index {where})")


def assert_shape(got: Any, shape: Iterable[int | None], msg: str = "") -> None:
    """Pass when ``as_array(got).shape`` is ``shape``; ``None`` in ``shape`` matches any size.

    Examples
    --------
    >>> assert_shape(np.zeros((4, 2, 8)), (4, None, 8), msg="attention output")
    >>> assert_shape([1, 2, 3], (3, 1), msg="column")
    Traceback (most recent call last):
    ...
    AssertionError: column: expected shape (3, 1), got shape (3,)
    """
    want = tuple(shape)
    have = as_array(got, msg=msg).shape
    if len(have) != len(want) or any(w is not None and w != h for w, h in zip(want, have)):
        shown = "(" + ", ".join("any" if w is None else str(w) for w in want) + ("," if len(want) == 1 else "") + ")"
        raise _fail(msg, f"shape {shown}", f"shape {have}")


def assert_type(got: Any, types: type | tuple[type, ...], msg: str = "") -> None:
    """Pass when the type of ``got`` is exactly one of ``types`` (subclasses do not count).

    Examples
    --------
    >>> assert_type(42000, int, msg="a sample count")
    >>> assert_type(np.int64(3), int, msg="a Python int")
    Traceback (most recent call last):
    ...
    AssertionError: a Python int: expected int, got numpy.int64
    >>> class Sneaky(int):
    ...     pass
    >>> assert_type(Sneaky(1), int, msg="a Python int")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: a Python int: expected int, got ...Sneaky
    """
    allowed = types if isinstance(types, tuple) else (types,)
    if type(got) not in allowed:
        raise _fail(msg, " or ".join(t.__name__ if t.__module__ == "builtins" else
                                     f"{t.__module__}.{t.__qualname__}" for t in allowed),
                    _type_name(got))


def _length(x: Any, msg: str) -> int:
    for base in (list, tuple, dict, str, set, frozenset):
        if isinstance(x, base):
            return base.__len__(x)
    if isinstance(x, (pd.DataFrame, pd.Series, pd.Index)):
        return len(as_array(x.index if not isinstance(x, pd.Index) else x, msg=msg))
    if isinstance(x, np.ndarray) or hasattr(x, "__array__"):
        a = as_array(x, msg=msg)
        if a.ndim == 0:
            raise _fail(msg, "a sequence", "a 0-d array (a single value)")
        return a.shape[0]
    raise _fail(msg, "a sequence (list, tuple, dict, array, Series, DataFrame)", _type_name(x))


def assert_len(got: Any, n: int, msg: str = "") -> None:
    """Pass when ``got`` (a sequence, dict, array, Series or DataFrame) has ``n`` items.

    The length is taken by the base type (``list.__len__``, the array's first axis), never
    by an overridden ``__len__``.

    Examples
    --------
    >>> assert_len(np.zeros((3, 2)), 3, msg="three windows")
    >>> assert_len([], 1, msg="one fold")
    Traceback (most recent call last):
    ...
    AssertionError: one fold: expected length 1, got length 0
    """
    have = _length(got, msg)
    if have != int(n):
        raise _fail(msg, f"length {int(n)}", f"length {have}")


def assert_dtype(got: Any, kinds: str, msg: str = "") -> None:
    """Pass when ``got`` is a numpy array, numpy scalar or pandas object whose dtype kind is in ``kinds``.

    Kinds are numpy's one-letter codes: ``"i"`` signed integer, ``"u"`` unsigned, ``"f"``
    float, ``"b"`` boolean, ``"U"`` string. A list is refused: it has no dtype.

    Examples
    --------
    >>> assert_dtype(np.arange(3), "iu", msg="indices")
    >>> assert_dtype(np.arange(3.0), "i", msg="counts")
    Traceback (most recent call last):
    ...
    AssertionError: counts: expected an array of dtype kind 'i', got an array of dtype float64
    """
    if isinstance(got, (pd.Series, pd.Index)):
        dt = got.to_numpy().dtype
    elif isinstance(got, (np.ndarray, np.generic)):
        dt = np.array(got, subok=False).dtype
    else:
        raise _fail(msg, f"an array of dtype kind {kinds!r}", _type_name(got))
    if dt.kind not in kinds:
        raise _fail(msg, f"an array of dtype kind {kinds!r}", f"an array of dtype {dt}")


def assert_nan(got: Any, msg: str = "") -> None:
    """Pass when ``got`` is NaN (a number) or all NaN (an array).

    Examples
    --------
    >>> assert_nan(float("nan"), msg="no beats, no rate")
    >>> assert_nan(0.0, msg="no beats, no rate")
    Traceback (most recent call last):
    ...
    AssertionError: no beats, no rate: expected nan, got 0.0
    """
    a = as_array(got, dtype=float, msg=msg)
    if not bool(np.all(np.isnan(a))):
        raise _fail(msg, "nan" if a.ndim == 0 else "all nan", _show(a if a.ndim else float(a)))


def assert_finite(got: Any, msg: str = "") -> None:
    """Pass when every value of ``got`` is a finite number (no NaN, no infinity).

    Examples
    --------
    >>> assert_finite([0.1, 2.0], msg="loss")
    >>> assert_finite([0.1, float("inf")], msg="loss")
    Traceback (most recent call last):
    ...
    AssertionError: loss: expected finite values, got [0.1, inf]
    """
    a = as_array(got, dtype=float, msg=msg)
    if not bool(np.all(np.isfinite(a))):
        raise _fail(msg, "finite values" if a.ndim else "a finite value", _show(a if a.ndim else float(a)))


def assert_in_range(got: Any, low: float | None = None, high: float | None = None,
                    msg: str = "") -> None:
    """Pass when every value of ``got`` lies in the closed interval ``[low, high]``.

    ``None`` leaves that side open. NaN is never in range.

    Examples
    --------
    >>> assert_in_range([0.2, 0.5], 0.0, 1.0, msg="probabilities")
    >>> assert_in_range(1.5, 0.0, 1.0, msg="probability")
    Traceback (most recent call last):
    ...
    AssertionError: probability: expected a value in [0, 1], got 1.5
    """
    a = as_array(got, dtype=float, msg=msg)
    ok = ~np.isnan(a)
    if low is not None:
        ok &= a >= as_float(low, msg)
    if high is not None:
        ok &= a <= as_float(high, msg)
    if not bool(np.all(ok)):
        lo = "-inf" if low is None else f"{as_float(low, msg):g}"
        hi = "inf" if high is None else f"{as_float(high, msg):g}"
        what = "values" if a.ndim else "a value"
        raise _fail(msg, f"{what} in [{lo}, {hi}]", _show(a if a.ndim else float(a)))


def assert_greater(got: Any, bound: float, msg: str = "") -> None:
    """Pass when every value of ``got`` is strictly greater than ``bound``.

    Examples
    --------
    >>> assert_greater(0.9, 0.75, msg="accuracy")
    >>> assert_greater([0.9, 0.5], 0.75, msg="accuracy")
    Traceback (most recent call last):
    ...
    AssertionError: accuracy: expected values > 0.75, got [0.9, 0.5]
    """
    a, b = as_array(got, dtype=float, msg=msg), as_float(bound, msg)
    if not bool(np.all(a > b)):
        raise _fail(msg, f"{'values' if a.ndim else 'a value'} > {b:g}", _show(a if a.ndim else float(a)))


def assert_less(got: Any, bound: float, msg: str = "") -> None:
    """Pass when every value of ``got`` is strictly less than ``bound``.

    Examples
    --------
    >>> assert_less(1e-9, 1e-6, msg="loss of a perfect match")
    >>> assert_less(0.3, 0.1, msg="relative alpha of a 25 Hz rhythm")
    Traceback (most recent call last):
    ...
    AssertionError: relative alpha of a 25 Hz rhythm: expected a value < 0.1, got 0.3
    """
    a, b = as_array(got, dtype=float, msg=msg), as_float(bound, msg)
    if not bool(np.all(a < b)):
        raise _fail(msg, f"{'values' if a.ndim else 'a value'} < {b:g}", _show(a if a.ndim else float(a)))


def assert_isin(got: Any, allowed: Iterable[Any], msg: str = "") -> None:
    """Pass when every element of ``got`` (a value or an array-like) is one of ``allowed``.

    Examples
    --------
    >>> assert_isin(["left", "right", "left"], {"left", "right"}, msg="labels")
    >>> assert_isin(["left", "up"], ["left", "right"], msg="labels")
    Traceback (most recent call last):
    ...
    AssertionError: labels: expected only ['left', 'right'], got 'up'
    """
    allowed_plain = plain(list(allowed), msg)
    values = plain(as_array(got, msg=msg).ravel(), msg)
    for v in values:
        if not any(_same(v, a) for a in allowed_plain):
            raise _fail(msg, f"only {_show(allowed_plain)}", _show(v))


def assert_contains(got: Any, required: Iterable[Any], msg: str = "") -> None:
    """Pass when every item of ``required`` is among the items of ``got`` (a collection or
    array-like; for a dict, its keys).

    Examples
    --------
    >>> assert_contains({"baseline": 60.0, "stress": 30.0}, ["stress"], msg="phases")
    >>> assert_contains(["ecg", "eda"], ["resp"], msg="changed modalities")
    Traceback (most recent call last):
    ...
    AssertionError: changed modalities: expected to include ['resp'], got ['ecg', 'eda'] (missing ['resp'])
    """
    have = plain(got, msg)
    if type(have) is dict:
        items = list(have)
    elif type(have) in (list, tuple, set, frozenset):
        items = list(have)
    else:
        items = plain(as_array(have, msg=msg).ravel(), msg)
    need = plain(list(required), msg)
    missing = [r for r in need if not any(_same(r, v) for v in items)]
    if missing:
        raise _fail(msg, f"to include {_show(need)}", f"{_show(items)} (missing {_show(missing)})")


def assert_true(condition: Any, msg: str = "") -> None:
    """Pass when ``condition`` is ``True`` (a Python or numpy boolean, nothing else).

    Prefer the specific checks; this is for conditions the test computes itself from plain
    values. An object's ``__bool__`` is never consulted.

    Examples
    --------
    >>> assert_true(np.all(np.diff([1, 2, 3]) > 0), msg="sorted")
    >>> assert_true(1, msg="sorted")
    Traceback (most recent call last):
    ...
    AssertionError: sorted: expected True, got int
    >>> assert_true(False, msg="sorted")
    Traceback (most recent call last):
    ...
    AssertionError: sorted: expected True, got False
    """
    if type(condition) is not bool and not (type(condition) is np.bool_):
        raise _fail(msg, "True", _type_name(condition))
    if not bool(condition):
        raise _fail(msg, "True", "False")


def assert_raises(exception: type[BaseException] | tuple[type[BaseException], ...],
                  func: Callable, *args: Any, msg: str = "", match: str | None = None,
                  **kwargs: Any) -> BaseException:
    """Call ``func(*args, **kwargs)`` and pass when it raises ``exception``; return the error.

    Any other exception propagates unchanged (so a stub's ``NotImplementedError`` still
    says the answer is missing). ``match`` must then occur in the error message.

    Examples
    --------
    >>> err = assert_raises(ValueError, int, "x", msg="not a number")
    >>> assert_raises(ValueError, int, "3", msg="int('3') is fine")
    Traceback (most recent call last):
    ...
    AssertionError: int('3') is fine: expected ValueError, got no error (returned 3)
    """
    expected = exception if isinstance(exception, tuple) else (exception,)
    names = " or ".join(e.__name__ for e in expected)
    try:
        result = func(*args, **kwargs)
    except expected as exc:
        if match is not None and match not in str(exc):
            raise _fail(msg, f"{names} mentioning {match!r}", f"{type(exc).__name__}: {exc}") from None
        return exc
    try:
        shown = _show(plain(result))
    except AssertionError:
        shown = f"<{_type_name(result)}>"
    raise _fail(msg, names, f"no error (returned {shown})")
