"""mmlab.teach.checks: known verdicts, one-line messages, and answers that try to cheat."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest

import mmlab.teach.checks as C


# --- forged answers: each claims to equal / exceed anything --------------------------------

class AlwaysEqual:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    def __lt__(self, other):
        return True

    __le__ = __gt__ = __ge__ = __lt__

    def __bool__(self):
        return True

    def __float__(self):
        return 42000.0

    def __len__(self):
        return 3


class LyingFloat(float):
    def __eq__(self, other):
        return True

    def __lt__(self, other):
        return True

    __le__ = __gt__ = __ge__ = __lt__
    __hash__ = float.__hash__

    def __float__(self):
        return 42000.0

    def __sub__(self, other):
        return 0.0

    def __abs__(self):
        return 0.0


class LyingInt(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__

    def __int__(self):
        return 42000

    def __index__(self):
        return 42000


class LyingStr(str):
    def __eq__(self, other):
        return True

    __hash__ = str.__hash__

    def __str__(self):
        return "positive"


class LyingList(list):
    def __eq__(self, other):
        return True

    def __len__(self):
        return 4

    def __iter__(self):
        return iter([0, 2, 4, 6])


class LyingArray(np.ndarray):
    def __eq__(self, other):
        return np.ones(np.shape(self), bool)

    def __array__(self, *a, **k):
        return np.array([0, 2, 4, 6])


class LyingFloat64(np.float64):
    def __eq__(self, other):
        return True

    def __lt__(self, other):
        return True

    __hash__ = np.float64.__hash__


class LyingSeries(pd.Series):
    def __getitem__(self, key):
        return 99.0


def test_doctests_pass():
    result = doctest.testmod(C, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 30 and result.failed == 0


@pytest.mark.parametrize("forged", [AlwaysEqual(), LyingFloat(1.0), LyingInt(1), LyingFloat64(1.0)],
                         ids=["object", "float-subclass", "int-subclass", "float64-subclass"])
def test_forged_numbers_do_not_pass_close_equal_or_bounds(forged):
    # the naive checks are fooled ...
    assert forged == 42000 or isinstance(forged, (AlwaysEqual, LyingFloat64))
    # ... the helpers are not
    with pytest.raises(AssertionError):
        C.assert_equal(forged, 42000, msg="n_samples")
    with pytest.raises(AssertionError):
        C.assert_close(forged, 42000.0, msg="n_samples")
    with pytest.raises(AssertionError):
        C.assert_greater(forged, 5.0, msg="accuracy")
    with pytest.raises(AssertionError):
        C.assert_type(forged, (int, float), msg="type")


def test_forged_number_is_read_through_the_base_type():
    assert C.plain(LyingFloat(1.5)) == 1.5 and type(C.plain(LyingFloat(1.5))) is float
    assert C.plain(LyingInt(7)) == 7 and type(C.plain(LyingInt(7))) is int
    assert C.as_float(LyingFloat(1.5)) == 1.5
    assert C.as_float(LyingFloat64(2.5)) == 2.5
    assert C.plain(LyingStr("negative")) == "negative" and type(C.plain(LyingStr("x"))) is str
    with pytest.raises(AssertionError, match="expected a number, got .*AlwaysEqual"):
        C.as_float(AlwaysEqual())


def test_forged_containers_do_not_pass():
    with pytest.raises(AssertionError):
        C.assert_equal(LyingStr("negative"), "positive", msg="label")
    with pytest.raises(AssertionError):
        C.assert_equal(LyingList([1]), [0, 2, 4, 6], msg="starts")
    with pytest.raises(AssertionError, match="expected length 4, got length 1"):
        C.assert_len(LyingList([1]), 4, msg="starts")
    with pytest.raises(AssertionError):
        C.assert_array_equal(LyingList([1]), [0, 2, 4, 6], msg="starts")
    fake = np.array([9, 9, 9, 9]).view(LyingArray)
    with pytest.raises(AssertionError, match="first difference at index 0"):
        C.assert_array_equal(fake, [0, 2, 4, 6], msg="starts")
    with pytest.raises(AssertionError):
        C.assert_equal([AlwaysEqual()], [1], msg="list of forged")
    with pytest.raises(AssertionError):
        C.assert_array_equal(np.array([AlwaysEqual()], dtype=object), [1], msg="object array")
    with pytest.raises(AssertionError):
        C.assert_len(AlwaysEqual(), 3, msg="len")
    with pytest.raises(AssertionError):
        C.assert_true(AlwaysEqual(), msg="truthy object")
    s = LyingSeries({"stress": 1.0, "baseline": 2.0})
    assert s["stress"] == 99.0  # the naive read is fooled
    assert C.as_series(s)["stress"] == 1.0 and type(C.as_series(s)) is pd.Series


def test_assert_close_known_answers_and_message():
    C.assert_close(0.1 + 0.2, 0.3, msg="floats")
    C.assert_close([np.nan, -np.inf, 1.0], [np.nan, -np.inf, 1.0], msg="nan and inf")
    C.assert_close(np.float32(0.5), 0.5)
    C.assert_close(1.0 + 1e-6, 1.0, rtol=0, atol=1e-5)
    with pytest.raises(AssertionError) as err:
        C.assert_close(1.0 + 1e-6, 1.0, rtol=0, atol=1e-7, msg="tight")
    assert str(err.value) == "tight: expected 1.0, got 1.000001"
    with pytest.raises(AssertionError, match=r"^rr: expected \[1\. , 2\.1\], got \[1\., 2\.\] "
                                             r"\(largest difference 0\.1 at index 1\)$"):
        C.assert_close([1.0, 2.0], [1.0, 2.1], msg="rr")
    with pytest.raises(AssertionError, match=r"expected shape \(3,\)"):
        C.assert_close([1.0, 1.0], [1.0, 1.0, 1.0], msg="shape")
    with pytest.raises(AssertionError, match=r"expected shape \(\)"):
        C.assert_close([60.0], 60.0, msg="a scalar, not a 1-element list")
    with pytest.raises(AssertionError):
        C.assert_close(np.nan, 1.0, msg="nan is not a number")
    with pytest.raises(AssertionError):
        C.assert_close(np.nan, np.nan, msg="nan", equal_nan=False)
    with pytest.raises(AssertionError, match="expected numbers, got strings"):
        C.assert_close("1.0", 1.0, msg="a string")


def test_messages_are_one_line_and_capped():
    with pytest.raises(AssertionError) as err:
        C.assert_close(np.zeros((50, 50)), np.ones((50, 50)), msg="big")
    text = str(err.value)
    assert "\n" not in text and text.startswith("big: expected ") and "got" in text
    assert len(text) < 500


def test_assert_equal_kinds():
    C.assert_equal({"a": 1, "b": [1.0, np.nan]}, {"a": 1, "b": [1.0, np.nan]})
    C.assert_equal(np.array([1, 2]), [1, 2])
    C.assert_equal(2, 2.0)
    with pytest.raises(AssertionError, match="expected False, got 0"):
        C.assert_equal(0, False, msg="a bool")
    with pytest.raises(AssertionError):
        C.assert_equal(1, True)
    with pytest.raises(AssertionError):
        C.assert_equal((1, 2), [1, 2])
    with pytest.raises(AssertionError):
        C.assert_equal({"a": 1}, {"a": 1, "b": 2})
    with pytest.raises(AssertionError, match="expected a number, string, list, dict or array"):
        C.assert_equal(object(), 1)
    C.assert_equal(pd.Series({"a": 1.5}), {"a": 1.5})


def test_assert_array_equal_kinds():
    C.assert_array_equal([True, False], [1, 0])
    C.assert_array_equal(["a", "b"], np.array(["a", "b"], dtype=object))
    C.assert_array_equal([], np.zeros(0))
    C.assert_array_equal([np.nan, 1.0], [np.nan, 1.0])
    with pytest.raises(AssertionError, match="strings and numbers never match"):
        C.assert_array_equal(["1"], [1])
    with pytest.raises(AssertionError, match=r"first difference at index \(1, 0\)"):
        C.assert_array_equal([[1, 2], [3, 4]], [[1, 2], [0, 4]])


def test_shape_type_len_dtype():
    C.assert_shape(np.zeros((2, 3)), (2, 3))
    C.assert_shape(np.zeros((2, 3)), (None, 3))
    with pytest.raises(AssertionError, match=r"expected shape \(any, 4\), got shape \(2, 3\)"):
        C.assert_shape(np.zeros((2, 3)), (None, 4), msg="m")
    C.assert_type(3, int)
    C.assert_type(False, bool)
    with pytest.raises(AssertionError, match="expected bool, got numpy.bool"):
        C.assert_type(np.False_, bool)
    with pytest.raises(AssertionError, match="expected int, got bool"):
        C.assert_type(True, int)
    C.assert_len(pd.DataFrame({"a": [1, 2]}), 2)
    C.assert_len({"a": 1}, 1)
    C.assert_len(np.zeros((0, 3)), 0)
    C.assert_dtype(np.array([1, 2]), "i")
    C.assert_dtype(pd.Series([1.0]), "f")
    with pytest.raises(AssertionError, match="expected an array of dtype kind 'i', got list"):
        C.assert_dtype([1, 2], "i")
    with pytest.raises(AssertionError, match="got an array of dtype bool"):
        C.assert_dtype(np.array([True]), "iu")


def test_nan_finite_ranges_bounds_isin():
    C.assert_nan(np.float64("nan"))
    C.assert_nan([np.nan, np.nan])
    with pytest.raises(AssertionError, match="expected all nan"):
        C.assert_nan([np.nan, 1.0])
    C.assert_finite(3)
    with pytest.raises(AssertionError, match="expected a finite value, got nan"):
        C.assert_finite(np.nan)
    C.assert_in_range([0.0, 1.0], 0, 1)
    C.assert_in_range(5.0, None, 5.0)
    with pytest.raises(AssertionError, match=r"expected a value in \[0, inf\], got nan"):
        C.assert_in_range(np.nan, 0, None)
    C.assert_greater([2, 3], 1)
    with pytest.raises(AssertionError, match="expected a value > 1"):
        C.assert_greater(1, 1)
    C.assert_less(0, 1)
    with pytest.raises(AssertionError):
        C.assert_less(np.nan, 1)
    C.assert_isin(np.array(["a", "b"]), ["a", "b", "c"])
    with pytest.raises(AssertionError, match="expected only \\['a'\\], got 'b'"):
        C.assert_isin(["a", "b"], ["a"])
    with pytest.raises(AssertionError):
        C.assert_isin([True], [1])


def test_assert_raises():
    def boom(kind):
        raise kind("one subject only")

    err = C.assert_raises(ValueError, boom, ValueError, msg="one subject")
    assert str(err) == "one subject only"
    C.assert_raises((KeyError, ValueError), boom, KeyError)
    C.assert_raises(ValueError, boom, ValueError, match="subject")
    with pytest.raises(AssertionError, match="expected ValueError mentioning 'group'"):
        C.assert_raises(ValueError, boom, ValueError, match="group", msg="m")
    with pytest.raises(AssertionError, match=r"^m: expected ValueError, got no error \(returned \[1, 2\]\)$"):
        C.assert_raises(ValueError, lambda: [1, 2], msg="m")
    # a stub's NotImplementedError is not turned into a failed check
    with pytest.raises(NotImplementedError):
        C.assert_raises(ValueError, boom, NotImplementedError)


def test_assert_true():
    C.assert_true(True)
    C.assert_true(np.bool_(True))
    with pytest.raises(AssertionError, match="expected True, got numpy.ndarray"):
        C.assert_true(np.array([True, True]))


def test_converters():
    a = np.arange(3.0)
    b = C.as_array(a)
    b[0] = 9
    assert a[0] == 0, "as_array copies"
    class Sub(np.ndarray):
        pass

    assert type(C.as_array(np.zeros(2).view(Sub))) is np.ndarray
    with pytest.raises(AssertionError, match="expected a number, string, list, dict or array, got object"):
        C.as_array(np.array([1, object()], dtype=object))
    assert C.as_array(pd.Series([1, 2])).tolist() == [1, 2]
    with pytest.raises(AssertionError, match="expected a number, got str"):
        C.as_float("1.0")
    with pytest.raises(AssertionError, match=r"expected a number, got numpy.ndarray of shape \(1,\)"):
        C.as_float(np.array([1.0]))
    assert C.as_float(np.array(2.0)) == 2.0
    f = C.as_frame(pd.DataFrame({"x": [1.0, 2.0], "y": ["a", "b"]}, index=["r", "s"]))
    assert type(f) is pd.DataFrame and f.loc["s", "x"] == 2.0 and f.loc["r", "y"] == "a"
    with pytest.raises(AssertionError, match="expected a pandas DataFrame, got dict"):
        C.as_frame({"x": [1]})
    assert C.plain({"a": np.int64(1), "b": {np.str_("c")}}) == {"a": 1, "b": {"c"}}
    assert C.plain(np.array([1, pd.NA], dtype=object)) == [1, None]


def test_assert_contains_and_mixed_object_columns():
    C.assert_contains({"a": 1, "b": 2}, ["a"])
    C.assert_contains(np.array(["x", "y"]), {"y"})
    with pytest.raises(AssertionError, match=r"missing \['c'\]"):
        C.assert_contains(["a", "b"], ["a", "c"], msg="m")
    with pytest.raises(AssertionError):
        C.assert_contains([AlwaysEqual()], [1], msg="forged element")
    # a pandas column of strings and None stays an object array of plain values
    a = C.as_array(np.array(["ecg", None], dtype=object))
    assert a.dtype == object and a.tolist() == ["ecg", None]
    C.assert_array_equal(np.array(["ecg", None], dtype=object), ["ecg", None])
    with pytest.raises(AssertionError):
        C.assert_array_equal(np.array(["ecg", None], dtype=object), ["ecg", "eda"])
    f = C.as_frame(pd.DataFrame({"modality": ["", "ecg"], "f1": [0.5, np.nan]}))
    assert f["modality"].tolist() == ["", "ecg"] and np.isnan(f["f1"].iloc[1])


# --- the graded notebooks use the checks ---------------------------------------------------
def _solution_test_cells():
    import ast
    from pathlib import Path

    import nbformat

    from mmlab.teach.markers import cell_role, nbgrader_meta

    root = Path(__file__).resolve().parents[1] / "solutions"
    for path in sorted(root.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell_role(cell) == "test":
                yield f"{path.stem}:{nbgrader_meta(cell)['grade_id']}", ast.parse(cell.source)


TEST_CELLS = list(_solution_test_cells())


def test_there_are_solution_test_cells():
    assert len(TEST_CELLS) >= 40


@pytest.mark.parametrize("tree", [t for _, t in TEST_CELLS], ids=[i for i, _ in TEST_CELLS])
def test_solution_test_cell_uses_the_checks_with_a_message(tree):
    import ast

    body = tree.body
    assert isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
        and "\n" not in body[0].value.value, "a test cell opens with a one-line docstring"
    imported = {a.name for n in body if isinstance(n, ast.ImportFrom) and n.module == "mmlab.teach.checks"
                for a in n.names}
    assert imported, "the cell imports its checks from mmlab.teach.checks (so answers cannot rebind them)"
    nodes = list(ast.walk(tree))
    assert not [n for n in nodes if isinstance(n, ast.Assert)], "no bare assert: use the checks"
    calls = [n for n in nodes if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
             and n.func.id.startswith("assert_")]
    assert calls, "the cell checks something"
    assert {c.func.id for c in calls} <= imported
    for c in calls:
        msg = [k.value for k in c.keywords if k.arg == "msg"]
        assert msg and not (isinstance(msg[0], ast.Constant) and not msg[0].value), \
            f"line {c.lineno}: {c.func.id} without a message"


# --- end to end: a forged submission graded by mmlab grade ---------------------------------
FORGED_ANSWERS = {
    # an int that equals everything (the old `n_samples(60, 700) == 42000` and isinstance passed)
    "samples_answer": '''
class Everything(int):
    def __eq__(self, other):
        return True
    __hash__ = int.__hash__

def n_samples(duration_s, rate_hz):
    return Everything(0)
''',
    # a correct answer: the checks must still give it its points
    "windows_answer": '''
def window_starts(n, window, step):
    return np.arange(0, max(n - window + 1, 0), step, dtype=int)
''',
    # a float whose difference to anything is 0 (the old `abs(hr - 60) < 1e-9` passed)
    "hr_answer": '''
class Zero(float):
    def __sub__(self, other):
        return 0.0
    __rsub__ = __sub__

def mean_heart_rate(rr_s):
    return Zero(1.0)
''',
}


@pytest.mark.timeout(300)
def test_forged_answers_earn_nothing_from_mmlab_grade(tmp_path):
    from pathlib import Path

    import nbformat

    from mmlab.teach.grade import grade_notebook
    from mmlab.teach.markers import nbgrader_meta

    root = Path(__file__).resolve().parents[1]
    nb = nbformat.read(root / "exercises" / "00_welcome.ipynb", as_version=4)
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in FORGED_ANSWERS:
            cell.source = FORGED_ANSWERS[gid].strip()
    path = tmp_path / "00_welcome.ipynb"
    nbformat.write(nb, path)
    result = grade_notebook(path, "00_welcome", source_dir=root / "solutions", cell_timeout=60.0)
    tasks = {t["grade_id"]: t for t in result["tasks"]}
    assert tasks["windows_test"]["points"] == 2 and tasks["windows_test"]["error"] is None
    assert tasks["samples_test"]["points"] == 0
    assert tasks["samples_test"]["error"].startswith(
        "AssertionError: samples in 60 s at 700 Hz: expected 42000, got 0")
    assert tasks["hr_test"]["points"] == 0
    assert tasks["hr_test"]["error"].startswith("AssertionError: beats 1 s apart: expected 60.0, got 1.0")
    assert result["score"] == 2 and result["max_score"] == 5
