"""Map a function over many items: a plain loop, a local dask cluster, or a running scheduler.

Cohort-scale work (features of every subject, one LOSO fold per subject) is a list of
independent tasks. :func:`map_tasks` runs ``fn(item)`` for each item and returns the results
in the order of the items, whatever ran them:

==============================  ==============================================================
``scheduler``                   where the tasks run
==============================  ==============================================================
``None`` or ``"serial"``        a plain loop in this process (the default; no dask at all)
``"local"``                     a :class:`distributed.LocalCluster` started for this call and
                                closed after it: ``n_workers`` processes (default
                                ``min(2, cpu count)``), one thread each, no dashboard
``"tcp://host:port"``           an existing dask scheduler (``dask scheduler`` on a server);
(or ``"host:port"``)            the connection is given a few seconds, then a clear error
==============================  ==============================================================

The results are the same objects, bit for bit, in every mode: each item is one task, whose
result is pickled back unchanged. (A computation whose last bits depend on the number of BLAS
threads is the exception: dask starts its worker processes with one OpenMP/MKL/OpenBLAS
thread, so run the serial reference with one thread too, as the tests do.) When tasks fail, the exception of the *first* failing item
(in item order, as a loop would raise it) is re-raised with its own type and message, and a
note naming the task, its index and the item; tasks after it are cancelled.

Processes need picklable work: ``fn`` must be importable (a module-level function) or
picklable by value, and a script that uses ``"local"`` must guard its entry point with
``if __name__ == "__main__":`` (the workers are spawned).

What it costs (measured on a shared, loaded 2-core machine, 2 workers): starting a local
cluster takes about 1.4-1.7 s and closing it 0.25-0.4 s, so a ``"local"`` call costs about
2 s before any work; each task then adds about 3-6 ms of scheduling (serially, a call costs
microseconds). A cluster pays off for tasks of a second or more each (a subject's features,
a LOSO fold), not for many tiny ones: batch those into fewer items.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from typing import Any, Callable, Iterable

from mmlab.errors import MMLabError
from mmlab.validate import check_int, check_positive

__all__ = ["map_tasks", "check_scheduler", "scheduler_argument", "SchedulerError", "SCHEDULERS",
           "CONNECT_TIMEOUT_S"]

#: The named schedulers; any other string is a scheduler address.
SCHEDULERS = ("serial", "local")
#: Seconds to wait for an existing scheduler to answer before giving up.
CONNECT_TIMEOUT_S = 5.0
_ADDRESS = re.compile(r"^(?:(?P<proto>tcp|tls|inproc|ucx|ws|wss)://)?(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+)"
                      r":(?P<port>\d{1,5})/?$")
_QUIET = ("distributed", "tornado", "asyncio")


class SchedulerError(MMLabError, ValueError):
    """``scheduler`` is not a known name or a reachable dask scheduler address."""


def check_scheduler(scheduler: Any) -> str:
    """``scheduler`` as ``"serial"``, ``"local"`` or a scheduler address, else SchedulerError.

    Only the form is checked here (no connection), so a CLI can reject a typo before any
    work starts; :func:`map_tasks` then connects with a short timeout.

    >>> check_scheduler(None), check_scheduler("local"), check_scheduler("10.0.0.5:8786")
    ('serial', 'local', 'tcp://10.0.0.5:8786')
    >>> check_scheduler("lcoal")
    Traceback (most recent call last):
    ...
    mmlab.parallel.SchedulerError: scheduler must be 'serial', 'local' or a dask scheduler address like 'tcp://host:8786'; got 'lcoal'
    """
    if scheduler is None:
        return "serial"
    if not isinstance(scheduler, str):
        raise SchedulerError(f"scheduler must be None, 'serial', 'local' or an address string; "
                             f"got {type(scheduler).__name__} {scheduler!r}")
    name = scheduler.strip()
    if name.lower() in SCHEDULERS:
        return name.lower()
    m = _ADDRESS.match(name)
    if m is None:
        raise SchedulerError("scheduler must be 'serial', 'local' or a dask scheduler address like "
                             f"'tcp://host:8786'; got {scheduler!r}")
    port = int(m.group("port"))
    if not 1 <= port <= 65535:
        raise SchedulerError(f"scheduler address {scheduler!r}: port {port} is not in 1..65535")
    return f"{m.group('proto') or 'tcp'}://{m.group('host')}:{port}"


def scheduler_argument(text: str) -> str:
    """:func:`check_scheduler` as an argparse ``type=``: a bad value becomes a usage error
    that prints the same message (argparse hides a plain ValueError's text).

    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> _ = parser.add_argument("--scheduler", type=scheduler_argument, default="serial")
    >>> parser.parse_args(["--scheduler", "127.0.0.1:8786"]).scheduler
    'tcp://127.0.0.1:8786'
    """
    import argparse

    try:
        return check_scheduler(text)
    except SchedulerError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def default_workers() -> int:
    """Workers of a local cluster when not told: ``min(2, cpu count)``."""
    return max(1, min(2, os.cpu_count() or 1))


def map_tasks(fn: Callable[[Any], Any], items: Iterable[Any], *, scheduler: str | None = None,
              progress: bool = False, desc: str | None = None, n_workers: int | None = None,
              connect_timeout: float = CONNECT_TIMEOUT_S) -> list:
    """``[fn(item) for item in items]``, run serially, on a local cluster or on a scheduler.

    Parameters
    ----------
    fn : callable
        Called once per item; one task each. Must be picklable unless ``scheduler`` is serial.
    items : iterable
        The task inputs (read once into a list).
    scheduler : {None, "serial", "local"} or str
        Where to run (see the module docstring); a string that is neither name is the
        address of a running dask scheduler.
    progress : bool
        Show a tqdm progress bar labelled ``desc`` (ticks as tasks finish).
    desc : str, optional
        A name for the work, used by the bar and in error notes (default: ``fn``'s name).
    n_workers : int, optional
        Worker processes of a ``"local"`` cluster (default ``min(2, cpu count)``); ignored
        otherwise.
    connect_timeout : float
        Seconds to wait for a scheduler address to answer.

    Returns
    -------
    list
        The results in the order of ``items``.

    Raises
    ------
    SchedulerError
        An unknown scheduler name, a malformed address, or no answer within ``connect_timeout``.
    Exception
        Whatever the first failing item raised, with a note naming the item.

    Examples
    --------
    >>> map_tasks(abs, [-2, 3, -5])
    [2, 3, 5]
    """
    mode = check_scheduler(scheduler)
    if n_workers is not None:
        n_workers = check_int(n_workers, "n_workers", low=1, error=SchedulerError)
    connect_timeout = check_positive(connect_timeout, "connect_timeout", unit="s", error=SchedulerError)
    if not callable(fn):
        raise SchedulerError(f"fn must be callable, got {type(fn).__name__}")
    items = list(items)
    if not items:
        return []
    label = desc or getattr(fn, "__name__", None) or type(fn).__name__
    from tqdm.auto import tqdm

    bar = tqdm(total=len(items), desc=desc, disable=not progress, leave=False)
    try:
        if mode == "serial":
            return _serial(fn, items, bar, label)
        with _client(mode, n_workers, connect_timeout) as client:
            return _distributed(client, fn, items, bar, label)
    finally:
        bar.close()


def _note(exc: BaseException, label: str, index: int, n: int, item: Any) -> BaseException:
    text = repr(item)
    if len(text) > 120:
        text = text[:117] + "..."
    exc.add_note(f"{label}: task {index} of {n} failed, item {text}")
    return exc


def _serial(fn, items, bar, label) -> list:
    out = []
    for i, item in enumerate(items):
        try:
            out.append(fn(item))
        except Exception as exc:
            raise _note(exc, label, i, len(items), item)
        bar.update(1)
    return out


@contextlib.contextmanager
def _quiet_logs():
    """Raise distributed's (and its event loop's) loggers to ERROR while a cluster runs:
    start-up and teardown chatter is not the user's business; real errors still show."""
    loggers = [logging.getLogger(name) for name in _QUIET]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextlib.contextmanager
def _client(mode: str, n_workers: int | None, connect_timeout: float):
    """A distributed Client on a fresh LocalCluster (closed afterwards) or on ``mode``."""
    from dask.distributed import Client, LocalCluster

    with _quiet_logs():
        if mode == "local":
            with LocalCluster(n_workers=n_workers or default_workers(), threads_per_worker=1,
                              processes=True, dashboard_address=None,
                              silence_logs=logging.CRITICAL) as cluster, \
                    Client(cluster, set_as_default=False) as client:
                yield client
            return
        try:
            client = Client(mode, timeout=connect_timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise SchedulerError(
                f"no dask scheduler answered at {mode} within {connect_timeout:g} s "
                f"({type(exc).__name__}); start one with `dask scheduler` and `dask worker {mode}`, "
                "or use scheduler='local' or 'serial'") from None
        with client:
            yield client


def _distributed(client, fn, items, bar, label) -> list:
    from dask.distributed import as_completed

    n = len(items)
    # pure=False: one task per item even when two items are equal (no deduplication by key)
    futures = client.map(fn, items, pure=False)
    index = {f.key: i for i, f in enumerate(futures)}
    first_error: int | None = None
    try:
        for future in as_completed(futures, loop=client.loop):
            i = index[future.key]
            if future.status == "error" and (first_error is None or i < first_error):
                first_error = i
                later = [f for f in futures[i + 1:] if not f.done()]
                if later:
                    client.cancel(later)
            bar.update(1)
        if first_error is not None:
            exc = futures[first_error].exception()
            raise _note(exc, label, first_error, n, items[first_error])
        return client.gather(futures)
    finally:
        client.cancel([f for f in futures if not f.done()])
