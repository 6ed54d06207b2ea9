"""The in-sandbox runner of ``mmlab grade`` (run as a script; standard library only).

The grader (the host) starts this file inside the sandbox and talks to it over two pipes:

* requests on stdin, one line each: ``KIND TOKEN HEXSOURCE`` with KIND ``run`` (a notebook
  cell) or ``test`` (a test cell); TOKEN is a fresh random secret per request;
* records on the file descriptor named by ``MMLAB_RECORD_FD``, one line per request:
  ``@@MMLAB@@ TOKEN STATUS HEXTEXT`` with STATUS ``ok``/``error`` (cells) or
  ``pass``/``fail`` (tests). The host accepts a record only with the token it sent.

Learner output (``print``, ``os.write(1, ...)``) goes to stdout, which the host caps.

Why learner code cannot forge a verdict (see docs/instructor.md for the full model):

* learner code never runs in the main thread, the only place the token lives: every
  cell runs in a fresh worker thread; the main thread only calls C builtins captured at
  start-up (Python-level functions could be rewritten through ``__code__``), keeps
  garbage collection off (so no learner ``__del__`` runs there), never drops a reference
  learner code may hold, ignores SIGINT, cannot have learner signal handlers (only the
  main thread can set them) and dies rather than report an error of its own;
* a test thread is three steps chained by C code only (``list(starmap(operator.call,
  ...))``): restore and prepare, ``exec`` of the test, then a trailer that appends
  ``True`` to a list only the main thread and that trailer hold. No harness frame sits
  above the test, so learner code called by the test finds nothing to tamper with by
  walking frames; the trailer runs only if the test's code ran to its end;
* before each test the worker restores builtins and the modules imported at start-up
  (module dicts, functions' code and defaults, class attributes) and gives the test a
  fresh namespace whose imported names point at the real objects;
* an audit hook, installed before any learner code and impossible to remove, forbids
  adding audit hooks, ``sys._current_frames``, the ``gc`` object walkers, ``ctypes``
  symbols of the interpreter that reach frames, thread states, tracing or audit hooks and opening ``/proc/*/mem``; ``sys.settrace`` and
  ``sys.setprofile`` are removed;
* a learner thread left running after a cell ends the runner (no verdict: the task fails),
  and learner processes are killed after every cell.
"""

import sys

RECORD = b"@@MMLAB@@ "
ERROR_CAP = 1000
OUTPUT_CAP = 20000


def main():  # noqa: C901 - one closure on purpose: nothing here is reachable from learner code
    import _thread
    import builtins
    import gc
    import os
    import signal
    import time
    import types

    # ------------------------------------------------------------ start-up (trusted)
    rec_fd = int(os.environ.get("MMLAB_RECORD_FD", "3"))
    preimport = [m for m in os.environ.get("MMLAB_PREIMPORT", "").split(",") if m]
    alias_specs = [a for a in os.environ.get("MMLAB_ALIASES", "").split(",") if "=" in a]
    os.environ.pop("MMLAB_RECORD_FD", None)
    for name in ["numpy", "numpy.testing", "math", "cmath", "operator"] + preimport:
        try:
            __import__(name)
        except Exception:  # a missing optional module shows up later as the cell's error
            pass

    bound = []  # (name, real object) the source's imports define, re-bound before each test
    for spec in alias_specs:
        name, target = spec.split("=", 1)
        mod_name, _, attr = target.partition(":")
        mod = sys.modules.get(mod_name)
        if mod is None:
            continue
        if attr:
            if hasattr(mod, attr):
                bound.append((name, getattr(mod, attr)))
            elif f"{mod_name}.{attr}" in sys.modules:
                bound.append((name, sys.modules[f"{mod_name}.{attr}"]))
        else:
            bound.append((name, mod))
    bound = tuple(bound)

    try:  # tqdm's monitor thread would outlive cells (and end the runner): switch it off
        import tqdm

        tqdm.tqdm.monitor_interval = 0
    except Exception:
        pass

    _write, _read = os.write, os.read
    _start, _lock, _count = _thread.start_new_thread, _thread.allocate_lock, _thread._count
    _set_sentinel = _thread._set_sentinel

    def grab_sentinel(holder):
        """First step of a test thread: a lock released when this thread ends."""
        lock = _set_sentinel()  # released by the interpreter when this thread's state is deleted
        lock.acquire()
        holder.append(lock)
    _gc_disable, _gc_collect = gc.disable, gc.collect
    _sleep, _exit = time.sleep, os._exit
    _compile, _exec, _type, _len, _str, _repr, _list = compile, exec, type, len, str, repr, list
    _isinstance, _getattr, _setattr, _delattr = isinstance, getattr, setattr, delattr
    _hex = bytes.fromhex
    _encode, _bhex = str.encode, bytes.hex
    _ModuleType, _FunctionType = types.ModuleType, types.FunctionType

    import _signal as _sigmod

    _SIG_IGN, _SIG_DFL, _SIGINT = _sigmod.SIG_IGN, _sigmod.SIG_DFL, _sigmod.SIGINT
    _RESET_SIGNALS = tuple(getattr(_sigmod, n) for n in (
        "SIGALRM", "SIGVTALRM", "SIGPROF", "SIGUSR1", "SIGUSR2", "SIGHUP", "SIGTERM", "SIGCHLD"))
    _TIMERS = (_sigmod.ITIMER_REAL, _sigmod.ITIMER_VIRTUAL, _sigmod.ITIMER_PROF)
    _signal, _setitimer = _sigmod.signal, _sigmod.setitimer
    _listdir, _kill, _getpid, _int = os.listdir, os.kill, os.getpid, int
    _waitpid, _WNOHANG = os.waitpid, os.WNOHANG
    _SIGKILL = _sigmod.SIGKILL
    _RECORD, _ERROR_CAP, _OSError, _ValueError = RECORD, ERROR_CAP, OSError, ValueError
    _sys, _BaseException = sys, BaseException
    import itertools
    import operator

    _starmap, _call = itertools.starmap, operator.call
    _TRAILER = compile("box.append(True)", "<mmlab-verdict>", "exec")
    _BUILTINS_NONE = {}
    keep = []  # every box ever used: main never drops a reference learner code may hold

    # C API symbols that reach frames, threads' states, tracing or audit hooks (numba and
    # friends look up harmless ones such as _Py_HashSecret, so a blanket ban breaks them).
    _DENY_SYMBOLS = ("Frame", "AsyncExc", "Trace", "Profile", "ThreadState", "Audit", "PyEval_Get",
                     "Locals", "GC_", "Interpreter", "PyObject_GetAttr")

    def audit(event, args):
        if event == "sys.addaudithook":
            raise RuntimeError("mmlab grade: audit hooks are not allowed")
        if event in ("sys._current_frames", "gc.get_objects", "gc.get_referrers", "gc.get_referents"):
            raise RuntimeError(f"mmlab grade: {event} is not allowed while grading")
        if event == "ctypes.dlsym" and _len(args) > 1 and _isinstance(args[1], str) \
                and any(w in args[1] for w in _DENY_SYMBOLS):
            raise RuntimeError(f"mmlab grade: {args[1]} of the interpreter's C API is not available while grading")
        if event == "open" and args and _isinstance(args[0], str) and args[0].startswith("/proc/") \
                and (args[0].endswith("/mem") or "/mem" in args[0]):
            raise RuntimeError("mmlab grade: process memory is not readable while grading")

    sys.addaudithook(audit)
    for name in ("settrace", "setprofile"):
        delattr(sys, name)
    _signal(_SIGINT, _SIG_IGN)

    def _display(*objs, **_):
        for o in objs:
            print(repr(o))

    builtins.display = _display

    # Snapshot of what tests rely on: builtins, every module imported so far, their
    # functions' code and defaults, and their classes' attributes.
    snap_modules = []
    snap_funcs = []
    snap_classes = []
    for mname, mod in list(sys.modules.items()):
        if not _isinstance(mod, _ModuleType) or mname == "__main__":
            continue
        d = getattr(mod, "__dict__", None)
        if not _isinstance(d, dict):
            continue
        items = tuple((k, v) for k, v in d.items() if _type(k) is str)
        snap_modules.append((mname, mod, d, items))
        for _, v in items:
            if _type(v) is _FunctionType:
                snap_funcs.append((v, v.__code__, v.__defaults__, v.__kwdefaults__))
            if _isinstance(v, type) and getattr(v, "__module__", None) == mname:
                cls_items = tuple((k, w) for k, w in v.__dict__.items() if _type(k) is str)
                snap_classes.append((v, cls_items))
                for _, w in cls_items:
                    if _type(w) is _FunctionType:
                        snap_funcs.append((w, w.__code__, w.__defaults__, w.__kwdefaults__))
    snap_modules = tuple(snap_modules)
    snap_funcs = tuple(snap_funcs)
    snap_classes = tuple(snap_classes)
    snap_sysmods = tuple((m[0], m[1]) for m in snap_modules)
    builtins_items = tuple((k, v) for k, v in builtins.__dict__.items())
    sys_items = (("stdout", sys.stdout), ("stderr", sys.stderr), ("excepthook", sys.excepthook),
                 ("displayhook", sys.displayhook), ("modules", sys.modules))
    sysmods = sys.modules
    main_stdout = sys.stdout

    ns = {"__name__": "__main__", "__builtins__": builtins}

    class _Capped:
        """sys.stdout/stderr for learner code: writes to fd 1, at most OUTPUT_CAP per cell."""

        def __init__(self):
            self.left = OUTPUT_CAP

        def write(self, s):
            s = str(s)
            if self.left <= 0:
                return len(s)
            part = s[: self.left]
            self.left -= len(part)
            if self.left <= 0:
                part += f"\n[... output capped at {OUTPUT_CAP} characters by mmlab grade]\n"
            os.write(1, part.encode("utf-8", "replace"))
            return len(s)

        def flush(self):
            pass

        def isatty(self):
            return False

    def restore(fresh):
        """Put back everything the snapshot holds; return a problem text or None."""
        bd = builtins.__dict__
        for k in [k for k in bd if _type(k) is not str]:
            bd.pop(k, None)
        known = {k for k, _ in builtins_items}
        for k in [k for k in bd if k not in known]:
            del bd[k]
        for k, v in builtins_items:
            if bd.get(k) is not v:
                bd[k] = v
        for name, value in sys_items:
            _setattr(_sys, name, value)
        for mname, mod in snap_sysmods:
            if sysmods.get(mname) is not mod:
                sysmods[mname] = mod
        for _ in range(3):
            dirty = False
            for _, _, d, _ in snap_modules:
                for k in [k for k in d if _type(k) is not str]:
                    dirty = True
                    d.pop(k, None)
            if not dirty:
                break
        else:
            return "module namespaces were tampered with"
        for _, _, d, items in snap_modules:
            for k, v in items:
                if d.get(k) is not v:
                    d[k] = v
        for f, code, defaults, kwdefaults in snap_funcs:
            if f.__code__ is not code:
                f.__code__ = code
            if f.__defaults__ is not defaults:
                f.__defaults__ = defaults
            if f.__kwdefaults__ is not kwdefaults:
                f.__kwdefaults__ = kwdefaults
        for cls, items in snap_classes:
            cd = cls.__dict__
            try:
                for k, v in items:
                    if cd.get(k) is not v:
                        type.__setattr__(cls, k, v)
                keep = {k for k, _ in items}
                for k in [k for k in cd if _type(k) is str and k not in keep]:
                    type.__delattr__(cls, k)
            except (TypeError, AttributeError):
                pass  # built-in or frozen classes cannot be changed by learner code either
        # The test's namespace: a fresh dict with the learner's names (str keys only) and
        # every module-valued name pointing back at the real module.
        for k, v in ns.items():
            if _type(k) is str:
                fresh[k] = v
        for k, v in list(fresh.items()):
            if _isinstance(v, _ModuleType) or _type(v) is _ModuleType:
                real = sysmods.get(getattr(v, "__name__", None) if _type(getattr(v, "__name__", None)) is str else None)
                if real is not None:
                    fresh[k] = real
        for k, v in bound:
            fresh[k] = v
        fresh["__builtins__"] = builtins
        fresh["display"] = _display
        return None

    def split_last(source):
        """Compile a cell; if it ends in an expression, also compile that expression."""
        import ast

        tree = ast.parse(source, "<cell>")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        body = compile(tree, "<cell>", "exec")
        return body, (compile(last, "<cell>", "eval") if last is not None else None)

    def error_text(exc, at=1):
        try:
            name = type(exc).__name__
            msg = str(exc)
        except BaseException:
            name, msg = "Exception", "(an exception whose text could not be shown)"
        line = None
        tb = exc.__traceback__
        depth = 0
        while tb is not None and depth <= at:  # skip the harness frame (at=1) if any
            line = tb.tb_lineno if depth == at else line
            tb = tb.tb_next
            depth += 1
        text = f"{name}: {msg}".strip().rstrip(":")
        if line is not None:
            text += f" (line {line})"
        return text[:ERROR_CAP]

    def worker_cell(source, box, done, junk, carry):
        """Run a notebook cell (learner or set-up code) in this worker thread."""
        junk.clear()
        for k, v in _list(carry.items()):
            if _type(k) is str and k != "__builtins__":
                ns[k] = v
        sys.stdout = sys.stderr = _Capped()
        try:
            body, last = split_last(source)
            exec(body, ns)
            if last is not None:
                value = eval(last, ns)
                if value is not None:
                    print(repr(value)[:2000])
            box.append(None)
        except BaseException as exc:  # SystemExit, KeyboardInterrupt... all end the cell
            box.append(error_text(exc))
        _gc_collect(1)  # learner cycles die here, in the worker, not in the main thread
        _gc_disable()
        done.release()

    def prepare_test(fresh, errs, junk, carry):
        """First step of a test thread: restore, then fill the test's fresh namespace."""
        junk.clear()
        for k, v in _list(carry.items()):  # names the previous test defined, as in Jupyter
            if _type(k) is str and k != "__builtins__":
                ns[k] = v

        def report(unraisable):
            errs.append(error_text(unraisable.exc_value, 0))

        problem = restore(fresh)
        _sys.unraisablehook = report
        if problem is not None:
            raise RuntimeError("not graded: " + problem)
        _sys.stdout = _sys.stderr = _Capped()

    # Main-thread helpers: only captured C builtins and plain constants (module attributes
    # and builtins could have been replaced by learner code).
    def reset_main():
        _gc_disable()
        for sig in _RESET_SIGNALS:
            try:
                _signal(sig, _SIG_DFL)
            except (_OSError, _ValueError):
                pass
        _signal(_SIGINT, _SIG_IGN)
        for timer in _TIMERS:
            _setitimer(timer, 0.0)

    def others_alive():
        """Learner threads still running after a cell; learner processes are killed."""
        waited = 0
        while _count() > 0 and waited < 400:
            _sleep(0.005)
            waited += 1
        if _count() > 0:
            return True
        me = _getpid()
        # In the sandbox's own pid namespace the runner has a small pid (bwrap is 1).
        if me > 10:
            return False  # not in a pid namespace (--unsafe): the host kills the group
        try:
            names = _listdir("/proc")
        except _OSError:
            return False
        others = [_int(p) for p in names if p.isdigit() and _int(p) not in (me, 1)]
        for pid in others:
            try:
                _kill(pid, _SIGKILL)
            except _OSError:
                pass
        # Killed tasks count against the process limit until reaped: reap our children
        # (bwrap, pid 1, reaps the rest) before the next cell needs a thread.
        waited = 0
        while others and waited < 400:
            try:
                while _waitpid(-1, _WNOHANG)[0] > 0:
                    pass
            except _OSError:  # no children left
                pass
            try:
                others = [p for p in _listdir("/proc") if p.isdigit() and _int(p) not in (me, 1)]
            except _OSError:
                break
            if others:
                _sleep(0.005)
                waited += 1
        return False

    buf = b""
    carry = {}
    _write(rec_fd, _RECORD + b"ready ready\n")
    while True:
        try:
            reset_main()
            if others_alive():
                _exit(3)
            while b"\n" not in buf:
                chunk = _read(0, 1 << 20)
                if not chunk:
                    _exit(0)
                buf += chunk
            line, buf = buf.split(b"\n", 1)
            parts = line.split(b" ")
            if _len(parts) != 3:
                _exit(5)
            kind, token, payload = parts
            source = _hex(payload.decode("ascii")).decode("utf-8")
            box, errs, done = [], [], _lock()
            done.acquire()
            junk = keep[-1] if keep else []
            keep.append(box)
            keep.append(errs)
            if kind == b"test":
                # The test thread runs three steps chained by C code only (list, starmap,
                # operator.call, exec): prepare, the test, then the verdict trailer. No
                # Python frame of the harness sits above the test, so learner code it
                # calls cannot reach `box`; the trailer runs only if the test finished.
                try:
                    code = _compile(source, "<test>", "exec")
                except _BaseException:
                    code = None
                fresh = {}
                # A lock released when the thread ends, then done.release: main waits for
                # exactly this thread (not for whatever else learner code started).
                holder = []
                keep.append(holder)
                steps = [(grab_sentinel, holder), (done.release,), (prepare_test, fresh, errs, junk, carry)]
                if code is not None:
                    steps += [(_exec, code, fresh), (_exec, _TRAILER, {"__builtins__": _BUILTINS_NONE, "box": box})]
                carry = fresh
                _start(_list, (_starmap(_call, steps),))
                steps = None
                done.acquire()
                holder[0].acquire()  # the host's deadline bounds this wait
            else:
                _start(worker_cell, (source, box, done, junk, carry))
                carry = {}
                done.acquire()
            _gc_disable()
            if others_alive():
                _exit(3)
            _gc_disable()
            if kind == b"test":
                ok = _len(box) == 1 and box[0] is True
                status = b"pass" if ok else b"fail"
                text = None if ok else (errs[0] if _len(errs) > 0 and _type(errs[0]) is str
                                        else "the test did not finish (SystemExit, or an error that "
                                             "could not be reported)")
                if code is None:
                    text = "the test cell does not compile"
            else:
                ok = _len(box) == 1 and box[0] is None
                status = b"ok" if ok else b"error"
                text = box[0] if _len(box) == 1 and _type(box[0]) is str else None
            body = b"" if text is None else _encode(text[:_ERROR_CAP], "utf-8", "replace")
            _write(rec_fd, _RECORD + token + b" " + status + b" " + _encode(_bhex(body), "ascii") + b"\n")
            token = None
        except _BaseException:
            # Never let Python report an error of the main thread: sys.excepthook is
            # learner-controllable and would see this frame (and the token). Die instead.
            _exit(6)


if __name__ == "__main__":
    main()
