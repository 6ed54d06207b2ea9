"""``mmlab grade`` against a hostile learner: every attack scores what an honest grader gives.

A tiny solution notebook (numpy only, 3 points) keeps each grading to a second or two.
Each test asserts the exact score and a time bound. Attacks run inside the real sandbox
(bubblewrap); the module is skipped where bubblewrap is missing (CI requires it).
"""

from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from mmlab.teach.assign import make_exercise
from mmlab.teach.grade import grade_batch, grade_notebook
from mmlab.teach.markers import nbgrader_meta
from mmlab.teach.sandbox import UID_RANGES, bwrap_path

pytestmark = pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap (bwrap) is not installed")

NAME = "99_tiny"
PROJECT = Path(__file__).resolve().parents[1]


def _cell(src, gid=None, role=None, points=None, tags=None, kind="code"):
    meta = {}
    if gid:
        meta["nbgrader"] = {"grade_id": gid, "solution": role == "answer", "grade": role == "test",
                            "locked": role == "test", "schema_version": 3}
        if points:
            meta["nbgrader"]["points"] = points
    if tags:
        meta["tags"] = tags
    if kind == "markdown":
        return nbformat.v4.new_markdown_cell(src, metadata=meta)
    return nbformat.v4.new_code_cell(src, metadata=meta)


def _source():
    nb = nbformat.v4.new_notebook(cells=[
        _cell("# Tiny\nTwo tasks.", kind="markdown"),
        _cell("import numpy as np\nimport math"),
        _cell("FAST = False\nSEED = 0", tags=["parameters"]),
        _cell("data = np.arange(10.0) + SEED"),
        _cell("def double(x):\n    ### BEGIN SOLUTION\n    return 2 * np.asarray(x, dtype=float)\n"
              "    ### END SOLUTION", "a1", "answer"),
        _cell('"""double doubles."""\nassert np.allclose(double([1, 2]), [2, 4])\n'
              "np.testing.assert_allclose(double([1, 2]), [2, 4])\n"
              "### BEGIN HIDDEN TESTS\nassert np.allclose(double(data), 2 * data)\n"
              "assert FAST is True\n### END HIDDEN TESTS", "t1", "test", 1),
        _cell("def mean_of(x):\n    ### BEGIN SOLUTION\n    return float(np.mean(x))\n"
              "    ### END SOLUTION", "a2", "answer"),
        _cell('"""mean_of is a plain float mean."""\nv = mean_of([1, 2, 3])\n'
              "assert type(v) is float and abs(v - 2.0) < 1e-12 and math.isclose(v, 2.0)", "t2", "test", 2),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    (root / "solutions").mkdir()
    src = _source()
    nbformat.write(src, root / "solutions" / f"{NAME}.ipynb")
    ex = make_exercise(src, f"{NAME}.ipynb")
    return root, src, ex


def _by_id(nb, gid):
    return next(c for c in nb.cells if nbgrader_meta(c).get("grade_id") == gid)


def _grade(setup, nb, tmp_path, name="alice_99.ipynb", timeout=30.0, notebook_timeout=120.0, bound=90.0):
    root = setup[0]
    path = tmp_path / name
    if isinstance(nb, (str, bytes)):
        path.write_text(nb) if isinstance(nb, str) else path.write_bytes(nb)
    else:
        nbformat.write(nb, path)
    before = path.read_bytes()
    start = time.monotonic()
    result = grade_notebook(path, NAME, source_dir=root / "solutions", cell_timeout=timeout,
                            notebook_timeout=notebook_timeout)
    took = time.monotonic() - start
    assert took < bound, f"grading took {took:.1f} s"
    assert path.read_bytes() == before, "the submission must never be modified"
    return result, {t["grade_id"]: t for t in result["tasks"]}


def _attack(ex, code, where="a1"):
    """The untouched exercise with attack code inserted as an added cell after ``where``."""
    nb = copy.deepcopy(ex)
    pos = nb.cells.index(_by_id(nb, where)) + 1
    nb.cells.insert(pos, nbformat.v4.new_code_cell(code))
    return nb


def _wrong(ex):
    """Answers that run but are wrong."""
    nb = copy.deepcopy(ex)
    _by_id(nb, "a1").source = "def double(x):\n    return x"
    _by_id(nb, "a2").source = "def mean_of(x):\n    return 0.0"
    return nb


# ------------------------------------------------------------------- honest learners
def test_solution_full_marks_exercise_zero(setup, tmp_path):
    _, src, ex = setup
    r, _ = _grade(setup, src, tmp_path)
    assert (r["score"], r["max_score"], r["error"]) == (3, 3, None), (r["tasks"], r["notes"], r["cells"])
    r, tasks = _grade(setup, ex, tmp_path)
    assert r["score"] == 0 and "NotImplementedError" in tasks["t1"]["error"]


@pytest.mark.parametrize("which, score", [(1, 3), (2, 0)], ids=["solution_full_marks", "stub_zero"])
def test_stripped_metadata(setup, tmp_path, which, score):
    """With every cell's metadata stripped, answers are found by the documented fallback."""
    nb = copy.deepcopy(setup[which])
    for c in nb.cells:
        c.metadata = {}
    r, _ = _grade(setup, nb, tmp_path)
    assert r["score"] == score


def test_deleted_parameters_cell_gets_full_marks(setup, tmp_path):
    nb = copy.deepcopy(setup[1])
    nb.cells = [c for c in nb.cells if "parameters" not in c.metadata.get("tags", [])]
    r, _ = _grade(setup, nb, tmp_path)
    assert r["score"] == 3


def test_learner_added_helper_cell_is_run(setup, tmp_path):
    nb = copy.deepcopy(setup[2])
    nb.cells.insert(4, nbformat.v4.new_code_cell("def _twice(x):\n    return 2 * np.asarray(x, float)"))
    _by_id(nb, "a1").source = "def double(x):\n    return _twice(x)"
    r, tasks = _grade(setup, nb, tmp_path)
    assert tasks["t1"]["points"] == 1 and r["score"] == 1


def test_exit_in_answer_names_the_cell(setup, tmp_path):
    nb = copy.deepcopy(setup[1])
    _by_id(nb, "a1").source = "exit()\n" + _by_id(nb, "a1").source
    r, tasks = _grade(setup, nb, tmp_path)
    assert r["score"] == 2
    assert "answer a1" in tasks["t1"]["error"] and "SystemExit" in tasks["t1"]["error"]


def test_os_exit_costs_only_its_task(setup, tmp_path):
    nb = copy.deepcopy(setup[1])
    _by_id(nb, "a1").source = "import os\nos._exit(1)"
    r, tasks = _grade(setup, nb, tmp_path)
    assert r["score"] == 2 and "ended the kernel" in tasks["t1"]["error"]


def test_endless_loop_costs_only_its_task(setup, tmp_path):
    nb = copy.deepcopy(setup[1])
    _by_id(nb, "a1").source = "while True:\n    pass"
    r, tasks = _grade(setup, nb, tmp_path, timeout=2, bound=30)
    assert r["score"] == 2 and "timed out after 2 s" in tasks["t1"]["error"]


def test_second_loss_stops_replay(setup, tmp_path):
    nb = copy.deepcopy(setup[1])
    _by_id(nb, "a1").source = "while True:\n    pass"
    _by_id(nb, "a2").source = "while True:\n    pass"
    r, tasks = _grade(setup, nb, tmp_path, timeout=2, bound=20)
    assert r["score"] == 0 and "at most one restart" in tasks["t2"]["error"] or "timed out" in tasks["t2"]["error"]


def test_notebook_timeout_bounds_the_submission(setup, tmp_path):
    nb = _attack(setup[1], "import time\ntime.sleep(3)", "a1")
    nb.cells.insert(nb.cells.index(_by_id(nb, "a2")) + 1, nbformat.v4.new_code_cell("import time\ntime.sleep(3)"))
    r, tasks = _grade(setup, nb, tmp_path, timeout=10, notebook_timeout=4, bound=15)
    assert tasks["t2"]["points"] == 0 and r["score"] <= 1


# ------------------------------------------------------------------------ the source
def test_submission_metadata_cannot_choose_the_source(setup, tmp_path):
    nb = copy.deepcopy(setup[2])
    nb.metadata["mmlab"] = {"source": "/etc/passwd"}
    for c in nb.cells:  # tests replaced by `pass` worth 1000 points
        if nbgrader_meta(c).get("grade"):
            c.source = "pass"
            c.metadata["nbgrader"]["points"] = 1000
    r, _ = _grade(setup, nb, tmp_path)
    assert (r["score"], r["max_score"]) == (0, 3)


def test_other_assignment_is_reported_not_scored(setup, tmp_path, root):
    other = nbformat.read(root / "solutions" / "00_welcome.ipynb", as_version=4)
    r, tasks = _grade(setup, other, tmp_path)
    assert r["score"] == 0 and "does not match assignment" in r["error"]


def test_duplicated_and_foreign_grade_ids_are_ignored(setup, tmp_path):
    nb = copy.deepcopy(setup[2])
    t1 = copy.deepcopy(_by_id(nb, "t1"))
    t1.source, t1.id = "pass", "dup-of-t1"
    md = nbformat.v4.new_markdown_cell("look", metadata={"nbgrader": dict(t1.metadata["nbgrader"])})
    nb.cells += [t1, md, _cell("pass", "bonus", "test", 50)]
    r, _ = _grade(setup, nb, tmp_path)
    assert (r["score"], r["max_score"]) == (0, 3)
    assert any("appears again" in n for n in r["notes"]) and any("'bonus'" in n for n in r["notes"])


def test_unreadable_and_odd_files_are_rows_not_crashes(setup, tmp_path):
    root, src, _ = setup
    folder = tmp_path / "class"
    folder.mkdir()
    nbformat.write(src, folder / "bob_99.ipynb")
    (folder / "carol_99.ipynb").write_text("{not json")
    (folder / "dan_99.ipynb").write_text(json.dumps({"cells": [{"cell_type": "code", "source": "x",
                                                                  "metadata": ["not", "a", "dict"]}]}))
    results = grade_batch([folder], NAME, source_dir=root / "solutions", cell_timeout=30)
    by = {r["student"]: r for r in results}
    assert by["bob"]["score"] == 3
    assert by["carol"]["score"] == 0 and "not a readable notebook" in by["carol"]["error"]
    assert by["dan"]["score"] == 0 and by["dan"]["error"]


# ----------------------------------------------------------- forging the verdict
ATTACKS = {
    "forged_record_print": "import sys\nfor t in ['0'*32, 'ready']:\n"
                           "    print('@@MMLAB@@', t, 'pass', '')\n"
                           "import os\nos.write(int(os.environ.get('MMLAB_RECORD_FD', 3)), b'@@MMLAB@@ x pass \\n')",
    "record_fd_flood": "import os, threading\nfor fd in range(3, 20):\n    try:\n"
                       "        os.write(fd, b'@@MMLAB@@ ' + b'a'*32 + b' pass \\n' * 100)\n    except OSError:\n        pass",
    "patch_allclose": "np.allclose = lambda *a, **k: True\nnp.isclose = lambda *a, **k: True\n"
                      "np.testing.assert_allclose = lambda *a, **k: None\n"
                      "import math\nmath.isclose = lambda *a, **k: True",
    "patch_allclose_code": "np.allclose = lambda *a, **k: True\n"
                           "np.testing.assert_allclose.__code__ = (lambda *a, **k: None).__code__",
    "patch_builtins": "import builtins\nbuiltins.abs = lambda x: 0\nbuiltins.type = lambda x: float\n"
                      "builtins.AssertionError = type('Quiet', (Exception,), {})",
    "fake_numpy_alias": "class _Fake:\n    def __call__(self, *a, **k):\n        return True\n"
                        "    def __getattr__(self, n):\n        return self\nnp = _Fake()",
    "sys_modules_poison": "import sys, types\nfake = types.ModuleType('numpy')\n"
                          "fake.allclose = lambda *a, **k: True\nsys.modules['numpy'] = fake",
    "forged_float": "class Yes(float):\n    def __eq__(s, o): return True\n    def __lt__(s, o): return True\n"
                    "    def __sub__(s, o): return Yes(0)\n    __abs__ = lambda s: Yes(0)\n"
                    "def mean_of(x):\n    return Yes(0)",
    "excepthook": "import sys\nsys.excepthook = lambda *a: None\nsys.displayhook = lambda *a: None",
    "settrace": "import sys\nsys.settrace(lambda *a: None)",
    "threading_settrace": "import threading\nthreading.settrace(lambda f, e, a: None)",
    "gc_walk": "import gc\n[o for o in gc.get_objects() if isinstance(o, list)]",
    "frame_walk_in_test": "import sys\ndef mean_of(x):\n    f = sys._getframe(1)\n    while f:\n"
                          "        box = f.f_locals.get('box')\n        if isinstance(box, list):\n"
                          "            box[:] = [True, None]\n        f = f.f_back\n    raise ValueError('x')",
    "traceback_frame_in_test": "def mean_of(x):\n    try:\n        raise ValueError\n    except ValueError as e:\n"
                               "        f = e.__traceback__.tb_frame\n        while f:\n"
                               "            b = f.f_locals.get('box')\n            if isinstance(b, list):\n"
                               "                b.append(True); b.append(None)\n            f = f.f_back\n"
                               "    raise ValueError('wrong')",
    "current_frames": "import sys\nsys._current_frames()",
    "audit_hook": "import sys\nsys.addaudithook(lambda e, a: None)",
    "ctypes_pythonapi": "import ctypes\nctypes.pythonapi.PyFrame_LocalsToFast",
    "sigalrm": "import signal\nsignal.signal(signal.SIGALRM, lambda *a: None)",
    "setitimer_kill": "import signal\nsignal.setitimer(signal.ITIMER_REAL, 0.05)\nimport time\ntime.sleep(1)",
    "proc_self_mem": "open('/proc/self/mem', 'rb')",
    "background_thread_forger": "import threading, os, time\n"
                                "def spam():\n    while True:\n        os.write(1, b'@@MMLAB@@ ' + b'0'*32 + b' pass \\n')\n"
                                "        time.sleep(0.001)\nthreading.Thread(target=spam, daemon=True).start()",
    "stdin_thief": "import os, threading\nthreading.Thread(target=lambda: os.read(0, 1 << 20), daemon=True).start()",
    "interrupt_main": "import _thread\n_thread.interrupt_main()",
    "special_exceptions": "def double(x):\n    raise SystemExit(0)\ndef mean_of(x):\n    raise KeyboardInterrupt",
    "exit_in_test": "import os\ndef mean_of(x):\n    os._exit(0)",
    "class_patch": "import numpy\nnumpy.ndarray_allclose = 1\nclass _M(type(np)):\n    pass\n",
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_scores_zero(setup, tmp_path, name):
    """Wrong answers plus an attack cell: nothing may be earned."""
    nb = _attack(_wrong(setup[2]), ATTACKS[name], "a1")
    if name in ("forged_float", "frame_walk_in_test", "traceback_frame_in_test"):
        nb = _attack(_wrong(setup[2]), ATTACKS[name], "a2")
    r, tasks = _grade(setup, nb, tmp_path, timeout=5, bound=45)
    assert (r["score"], r["max_score"]) == (0, 3), (name, r["tasks"], r["cells"][-3:])


#: The issue's IPython attacks: each made an untouched exercise of stubs score full marks when
#: a test counted as passed if its cell showed no error. The runner is not IPython and the
#: verdict is the token, so whatever these reach, stubs still earn nothing.
IPYTHON_ATTACKS = {
    "showtraceback": "ip = get_ipython()\nip.showtraceback = lambda *a, **k: None\n"
                     "ip._showtraceback = lambda *a, **k: None",
    "custom_exc": "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)",
    "event_clears_output": "from IPython.display import clear_output\n"
                           "get_ipython().events.register('post_run_cell', lambda *a: clear_output())",
    "input_transformer": "get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])",
    "via_import": "from IPython import get_ipython as g\nip = g()\nip.showtraceback = lambda *a, **k: None\n"
                  "ip.input_transformers_post.append(lambda lines: ['pass\\n'])",
    "special_exception": "import IPython.core.error as E\ndef double(x):\n    raise E.StdinNotImplementedError('x')\n"
                         "def mean_of(x):\n    raise E.UsageError('x')",
}


@pytest.mark.parametrize("name", sorted(IPYTHON_ATTACKS))
def test_ipython_display_attacks_on_stubs_score_zero(setup, tmp_path, name):
    """The untouched exercise plus an attack on how IPython shows or runs errors: 0 of 3."""
    nb = _attack(setup[2], IPYTHON_ATTACKS[name], "a2" if name == "special_exception" else "a1")
    r, tasks = _grade(setup, nb, tmp_path, timeout=5, bound=45)
    assert (r["score"], r["max_score"]) == (0, 3), (name, r["tasks"])


def test_patching_does_not_break_a_correct_solution(setup, tmp_path):
    """The restore before each test puts numpy back: correct answers still pass."""
    nb = _attack(setup[1], ATTACKS["patch_allclose_code"] + "\n" + ATTACKS["patch_builtins"], "a1")
    r, _ = _grade(setup, nb, tmp_path)
    assert r["score"] == 3


# -------------------------------------------------------------------- isolation
def test_cannot_read_solutions_or_grader_or_write_outside(setup, tmp_path):
    root, src, ex = setup
    victim = tmp_path / "victim.txt"
    victim.write_text("classmate")
    sol = root / "solutions" / f"{NAME}.ipynb"
    probe = (f"import os, json\nseen = {{}}\n"
             f"for p in [{str(sol)!r}, {str(victim)!r}, {str(PROJECT / 'pyproject.toml')!r}, {str(PROJECT / 'solutions')!r}, "
             f"{str(PROJECT / 'mmlab')!r}, {str(Path.cwd() / 'pyproject.toml')!r}, '/root/.ssh', "
             f"'/opt/mmlab/mmlab/teach/grade.py']:\n"
             f"    try:\n        seen[p] = os.path.exists(p)\n    except Exception as e:\n        seen[p] = str(e)\n"
             f"print(json.dumps(seen))\n"
             f"for p in [{str(victim)!r}, '/opt/mmlab/mmlab/teach/grade.py', '/etc/x', '/usr/x']:\n"
             f"    try:\n        open(p, 'w').write('pwned')\n        print('WROTE', p)\n"
             f"    except Exception as e:\n        print('refused', p, type(e).__name__)\n"
             f"open('/scratch/mine.txt', 'w').write('ok')\nprint('scratch ok')\n"
             f"import socket\ntry:\n    socket.create_connection(('1.1.1.1', 80), timeout=2)\n    print('NET')\n"
             f"except OSError as e:\n    print('no network', type(e).__name__)\n"
             f"print('uid', os.getuid())")
    nb = _attack(_wrong(ex), probe, "a1")
    grade_py = (Path(__file__).parents[1] / "mmlab" / "teach" / "grade.py").read_bytes()
    r, _ = _grade(setup, nb, tmp_path)
    out = next(c["output"] for c in r["cells"] if c["origin"] == "added")
    seen = json.loads(out.splitlines()[0])
    assert seen[str(sol)] is False and seen[str(victim)] is False
    # the project's files stay out of sight (its folder may exist: the venv inside it is mounted)
    hidden = [PROJECT / "pyproject.toml", PROJECT / "solutions", PROJECT / "mmlab", Path.cwd() / "pyproject.toml"]
    assert all(seen[str(p)] is False for p in hidden), seen
    assert "WROTE" not in out and "scratch ok" in out and "no network" in out
    if os.geteuid() == 0:  # a user id of the submission's own: not root, no account
        import pwd

        uid = int(out.split("uid ")[-1].split()[0])
        lo, hi = min(r[0] for r in UID_RANGES), max(r[1] for r in UID_RANGES)
        assert lo <= uid < hi
        with pytest.raises(KeyError):
            pwd.getpwuid(uid)
    assert victim.read_text() == "classmate" and sol.is_file()
    assert (Path(__file__).parents[1] / "mmlab" / "teach" / "grade.py").read_bytes() == grade_py
    assert r["score"] == 0


def _marker_procs(marker):
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if marker.encode() in (p / "cmdline").read_bytes():
                    found.append(int(p.name))
            except OSError:
                pass
    return found


def test_children_and_setsid_processes_die_with_the_submission(setup, tmp_path):
    code = ("import subprocess, os\n"
            "subprocess.Popen(['sleep', '987654'], start_new_session=True)\n"
            "if os.fork() == 0:\n    os.setsid()\n    os.execvp('sleep', ['sleep', '987653'])\n")
    nb = _attack(setup[1], code, "a1")
    r, _ = _grade(setup, nb, tmp_path)
    time.sleep(0.5)
    assert _marker_procs("98765") == []
    assert r["score"] == 3


def test_fork_bomb_is_bounded(setup, tmp_path):
    code = "import os\nfor _ in range(100000):\n    try:\n        os.fork()\n    except OSError:\n        break"
    nb = _attack(setup[1], code, "a1")
    r, _ = _grade(setup, nb, tmp_path, timeout=10, bound=60)
    assert r["score"] in (2, 3), (r["tasks"], r["notes"], r["cells"])  # the bomb's cell (and its task at worst) is lost, never more


def test_a_fork_bomb_does_not_starve_a_submission_graded_beside_it(setup, tmp_path):
    """The process limit counts a user's tasks: a bomb at its limit must not stop a neighbour's threads."""
    import threading

    # Children become `sleep 987652` (a marker this test alone uses) until the limit stops forks.
    code = ("import os, time\nwhile True:\n    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
            "    if pid == 0:\n        os.execvp('sleep', ['sleep', '987652'])\ntime.sleep(10)")
    bomb = _attack(setup[1], code, "a1")
    (tmp_path / "b").mkdir()
    done = {}
    t = threading.Thread(target=lambda: done.update(r=_grade(setup, bomb, tmp_path / "b", name="bomb_99.ipynb")))
    t.start()
    deadline = time.monotonic() + 40
    while len(_marker_procs("987652")) < 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(_marker_procs("987652")) >= 200, "the bomb never reached its limit"
    r, _ = _grade(setup, setup[1], tmp_path, name="carol_99.ipynb")
    held = len(_marker_procs("987652"))
    t.join(90)
    assert held >= 200, "the bomb ended before the neighbour was graded: the test proved nothing"
    assert (r["score"], r["error"]) == (3, None), (r["tasks"], r["notes"])
    assert done["r"][0]["score"] == 3, (done["r"][0]["tasks"], done["r"][0]["notes"], done["r"][0]["cells"])
    assert _marker_procs("987652") == []


def test_unreaped_children_do_not_use_up_the_process_limit(setup, tmp_path):
    """Children left as zombies up to the process limit would hold it: the runner reaps them."""
    code = ("import os\nn = 0\nwhile n < 5000:\n    try:\n        pid = os.fork()\n    except OSError:\n"
            "        break\n    if pid == 0:\n        os._exit(0)\n    n += 1\nprint('forked', n)")
    later = "import threading\nt = threading.Thread(target=print, args=('thread ok',))\nt.start()\nt.join()"
    r, _ = _grade(setup, _attack(_attack(setup[1], code, "a1"), later, "a2"), tmp_path)
    assert r["score"] == 3, (r["tasks"], r["notes"], r["cells"])
    added = [c for c in r["cells"] if c["origin"] == "added"]
    assert "forked" in added[0]["output"] and added[1]["output"].strip() == "thread ok", added


def test_huge_allocation_is_a_memory_error(setup, tmp_path):
    nb = _attack(setup[1], "x = bytearray(64 * 1024 ** 3)", "a1")
    r, _ = _grade(setup, nb, tmp_path)
    assert r["score"] == 3
    assert any("MemoryError" in (c["error"] or "") for c in r["cells"])


def test_output_flood_is_capped_while_streaming(setup, tmp_path):
    code = ("import os, sys\nchunk = b'x' * (1 << 20)\nfor _ in range(300):\n    os.write(1, chunk)\n"
            "print('y' * 10_000_000)")
    nb = _attack(setup[1], code, "a1")
    r, _ = _grade(setup, nb, tmp_path, timeout=30.0, bound=90)
    out = next(c["output"] for c in r["cells"] if c["origin"] == "added")
    assert len(out) < 12_000 and "dropped" in out
    assert r["score"] == 3


def test_huge_exception_text_is_capped(setup, tmp_path):
    nb = copy.deepcopy(setup[2])
    _by_id(nb, "a1").source = "raise ValueError('x' * 2_000_000)"
    r, tasks = _grade(setup, nb, tmp_path)
    assert r["score"] == 0 and len(json.dumps(r)) < 20_000


def test_one_submission_cannot_change_anothers_grade(setup, tmp_path):
    root, src, ex = setup
    folder = tmp_path / "class"
    folder.mkdir()
    a = folder / "aaa_99.ipynb"
    b = folder / "bbb_99.ipynb"
    evil = _attack(_wrong(ex), f"for p in [{str(b)!r}, {str(root / 'solutions' / (NAME + '.ipynb'))!r}]:\n"
                               "    try:\n        open(p, 'w').write('{}')\n    except OSError:\n        pass", "a1")
    nbformat.write(evil, a)
    nbformat.write(src, b)
    results = grade_batch([folder], NAME, source_dir=root / "solutions", cell_timeout=30)
    assert [(r["student"], r["score"]) for r in results] == [("aaa", 0), ("bbb", 3)]


# -------------------------------------------------------------------------- CLI
def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "mmlab.cli", "grade", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_cli_refuses_bad_timeouts(setup, value, tmp_path):
    proc = _cli("x.ipynb", "--assignment", NAME, "--timeout", value, cwd=tmp_path)
    assert proc.returncode == 2 and "must be a positive number of seconds" in proc.stderr
    proc = _cli("x.ipynb", "--assignment", NAME, "--notebook-timeout", value, cwd=tmp_path)
    assert proc.returncode == 2


def test_cli_batch_csv_feedback_roster(setup, tmp_path):
    root, src, ex = setup
    folder = tmp_path / "subs"
    folder.mkdir()
    nbformat.write(src, folder / "s1.ipynb")
    nbformat.write(ex, folder / "s2.ipynb")
    (folder / "s3.ipynb").write_bytes(b"\x00\xff")
    roster = tmp_path / "roster.csv"
    roster.write_text("file,student\ns1.ipynb,ada\ns2.ipynb,bob\ns3.ipynb,cy\n")
    proc = _cli(str(folder), "--assignment", NAME, "--source", str(root / "solutions"), "--csv",
                str(tmp_path / "book.csv"), "--feedback", str(tmp_path / "fb"), "--roster", str(roster),
                "--json", "--timeout", "10", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert [(r["student"], r["score"]) for r in results] == [("ada", 3), ("bob", 0), ("cy", 0)]
    rows = list(csv.DictReader((tmp_path / "book.csv").open()))
    assert [(r["student"], r["assignment"], float(r["score"])) for r in rows] == [
        ("ada", NAME, 3), ("bob", NAME, 0), ("cy", NAME, 0)]
    assert float(rows[0]["t2"]) == 2 and "not a readable notebook" in rows[2]["error"]
    pages = sorted(p.name for p in (tmp_path / "fb").iterdir())
    assert pages == [f"ada_{NAME}.html", f"bob_{NAME}.html", f"cy_{NAME}.html"]
    assert "NotImplementedError" in (tmp_path / "fb" / f"bob_{NAME}.html").read_text()


def test_cli_requires_the_assignment(tmp_path):
    proc = _cli("x.ipynb", cwd=tmp_path)
    assert proc.returncode == 2 and "--assignment" in proc.stderr


def test_unsafe_mode_still_grades(setup, tmp_path):
    """--unsafe (no sandbox) runs the same protocol: same scores, loud warning elsewhere."""
    root, src, ex = setup
    for nb, want in ((src, 3), (_attack(_wrong(ex), ATTACKS["patch_allclose"]), 0)):
        path = tmp_path / "u.ipynb"
        nbformat.write(nb, path)
        r = grade_notebook(path, NAME, source_dir=root / "solutions", cell_timeout=10, bwrap=None)
        assert r["score"] == want


def test_closing_the_record_channel_with_an_excepthook_earns_nothing(setup, tmp_path):
    """Make the main thread's record write fail so that a learner excepthook could see its
    frame: the runner dies instead (no verdict, no points)."""
    code = ("import os, sys\nfd = int(os.environ.get('MMLAB_RECORD_FD', '-1'))\n"
            "keep = [os.dup(f) for f in range(3, 12) if f != 0]\n"
            "for f in range(3, 64):\n    try:\n        os.close(f)\n    except OSError:\n        pass\n"
            "def hook(t, v, tb):\n    f = tb.tb_frame\n    tok = f.f_locals.get('token')\n"
            "    for k in keep:\n        try:\n            os.write(k, b'@@MMLAB@@ ' + tok + b' pass \\n')\n"
            "        except Exception:\n            pass\nsys.excepthook = hook")
    nb = _attack(_wrong(setup[2]), code, "a2")
    r, _ = _grade(setup, nb, tmp_path, timeout=5)
    assert r["score"] == 0


def test_names_defined_by_a_test_reach_later_cells(setup, tmp_path):
    root, src, _ = setup
    nb = copy.deepcopy(src)
    _by_id(nb, "t1").source = _by_id(nb, "t1").source + "\nshared = 21"
    path = root / "solutions" / "98_shared.ipynb"
    nbformat.write(nb, path)
    sub = copy.deepcopy(nb)
    _by_id(sub, "a2").source = "def mean_of(x):\n    return float(np.mean(x)) + (shared - 21)"
    p = tmp_path / "s.ipynb"
    nbformat.write(sub, p)
    r = grade_notebook(p, source_notebook=path, cell_timeout=10)
    assert r["score"] == 3


def test_slow_test_is_waited_for(setup, tmp_path):
    """A test that takes longer than the thread check's grace period still passes."""
    nb = copy.deepcopy(setup[1])
    _by_id(nb, "a2").source = ("import time\ndef mean_of(x):\n    time.sleep(3)\n"
                               "    return float(np.mean(x))")
    r, _ = _grade(setup, nb, tmp_path, timeout=20)
    assert r["score"] == 3


def test_feedback_page_escapes_learner_output(setup, tmp_path):
    from mmlab.teach.grade import write_feedback

    nb = _attack(_wrong(setup[2]), "print('<script>alert(1)</script>')\nraise ValueError('<img src=x onerror=alert(2)>')")
    r, _ = _grade(setup, nb, tmp_path)
    r["student"] = "eve"
    page = write_feedback(r, tmp_path / "fb").read_text()
    assert "&lt;script&gt;" in page and "<script>" not in page and "<img" not in page
    assert r["score"] == 0


def test_scratch_space_is_bounded(setup, tmp_path, monkeypatch):
    from mmlab.teach import sandbox

    monkeypatch.setattr(sandbox, "SCRATCH_MB", 4)
    code = ("for d in ['/scratch', '/tmp']:\n    try:\n        with open(d + '/fill', 'wb') as f:\n"
            "            for _ in range(16):\n                f.write(b'x' * (1 << 20))\n        print(d, 'FILLED')\n"
            "    except OSError as e:\n        print(d, 'full', e.errno)")
    r, _ = _grade(setup, _attack(setup[1], code), tmp_path)
    out = next(c["output"] for c in r["cells"] if c["origin"] == "added")
    assert "FILLED" not in out and out.count("full") == 2
    assert r["score"] == 3
