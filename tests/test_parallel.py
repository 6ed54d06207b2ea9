"""map_tasks: the same results, bit for bit, serially, on a local cluster and on a scheduler
address; the first failing item's exception, named; clear errors for a bad scheduler."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from mmlab.errors import MMLabError
from mmlab.parallel import SchedulerError, check_scheduler, default_workers, map_tasks, scheduler_argument


def planted(seed: int) -> tuple[float, np.ndarray]:
    """A float that depends on every bit of the arithmetic, and an array."""
    x = np.random.default_rng(seed).normal(size=5000)
    return float(np.cumsum(x * np.pi).std() / 7.0), np.sort(x)[:3]


def fails_on_3_and_5(x: int) -> int:
    """Items 3 and 5 fail; 3 only after a pause, so on a cluster 5 usually fails first."""
    if x == 3:
        time.sleep(0.5)
    if x in (3, 5):
        raise KeyError(f"item {x} is bad")
    return x * 10


def same(a, b) -> bool:
    return all(fa == fb and np.array_equal(aa, ab) for (fa, aa), (fb, ab) in zip(a, b)) and len(a) == len(b)


def test_serial_is_a_loop():
    """The default scheduler is a plain loop in item order; no items, no tasks."""
    seen = []
    assert map_tasks(lambda x: seen.append(x) or x * 2, [3, 1, 2]) == [6, 2, 4]
    assert seen == [3, 1, 2]
    assert map_tasks(planted, []) == [] and map_tasks(planted, [], scheduler="local") == []


def test_serial_error_names_the_item():
    """The first failing item's own exception is raised, with a note naming it."""
    with pytest.raises(KeyError, match="item 3 is bad") as info:
        map_tasks(fails_on_3_and_5, range(8), desc="folds")
    assert info.value.__notes__ == ["folds: task 3 of 8 failed, item 3"]


@pytest.mark.parametrize("given, expected", [(None, "serial"), ("serial", "serial"), (" Local ", "local"),
                                             ("127.0.0.1:8786", "tcp://127.0.0.1:8786"),
                                             ("tls://sched.example.org:8786", "tls://sched.example.org:8786"),
                                             ("tcp://[::1]:8786", "tcp://[::1]:8786")])
def test_check_scheduler_forms(given, expected):
    assert check_scheduler(given) == expected


@pytest.mark.parametrize("bad, match", [("lcoal", "must be 'serial', 'local' or a dask scheduler address"),
                                        ("tcp://host", "address like"), ("http://h:80", "address like"),
                                        ("h:99999", "port 99999 is not in 1..65535"), (4, "got int 4")])
def test_check_scheduler_rejects(bad, match):
    """A typo is a SchedulerError (an MMLabError and a ValueError) before anything starts."""
    with pytest.raises(SchedulerError, match=match) as info:
        map_tasks(abs, [1], scheduler=bad)
    assert isinstance(info.value, MMLabError) and isinstance(info.value, ValueError)


def test_cli_argument_prints_the_reason(capsys):
    """As an argparse type, a typo exits with a usage error that says what is allowed."""
    import argparse

    parser = argparse.ArgumentParser(prog="mmlab stress train")
    parser.add_argument("--scheduler", type=scheduler_argument, default="serial")
    assert parser.parse_args([]).scheduler == "serial"
    with pytest.raises(SystemExit):
        parser.parse_args(["--scheduler", "lcoal"])
    err = capsys.readouterr().err
    assert "argument --scheduler: scheduler must be 'serial', 'local' or a dask scheduler address" in err


def test_bad_arguments():
    with pytest.raises(SchedulerError, match="n_workers"):
        map_tasks(abs, [1], scheduler="local", n_workers=0)
    with pytest.raises(SchedulerError, match="fn must be callable"):
        map_tasks(3, [1])


def test_unreachable_scheduler_is_a_quick_clear_error():
    """Nothing listens on port 1: a SchedulerError naming the address after the timeout, no hang."""
    t = time.perf_counter()
    with pytest.raises(SchedulerError, match=r"no dask scheduler answered at tcp://127\.0\.0\.1:1 within 1 s"):
        map_tasks(abs, [1], scheduler="127.0.0.1:1", connect_timeout=1.0)
    assert time.perf_counter() - t < 15.0


def test_default_workers():
    assert 1 <= default_workers() <= 2


@pytest.mark.slow
def test_local_cluster_matches_serial_bit_for_bit(capsys):
    """A LocalCluster (2 processes) returns the serial floats and arrays exactly, in item
    order; the progress bar counts the tasks; the first failing item in item order (3, though 5
    fails sooner) is re-raised as a loop would."""
    items = list(range(12, 0, -1))
    serial = map_tasks(planted, items)
    local = map_tasks(planted, items, scheduler="local", progress=True, desc="planted")
    assert same(serial, local)
    err = capsys.readouterr().err
    assert "planted:" in err and "/12" in err  # the tqdm bar, labelled and counting 12 tasks
    with pytest.raises(KeyError, match="item 3 is bad") as info:
        map_tasks(fails_on_3_and_5, range(8), scheduler="local", desc="folds")
    assert info.value.__notes__ == ["folds: task 3 of 8 failed, item 3"]


@pytest.mark.slow
def test_existing_scheduler_address():
    """An address of a running scheduler is used as is (and left running afterwards)."""
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.CRITICAL) as cluster:
        items = [5, 6, 7]
        assert same(map_tasks(planted, items, scheduler=cluster.scheduler_address), map_tasks(planted, items))
        assert map_tasks(fails_on_3_and_5, [1, 2], scheduler=cluster.scheduler_address) == [10, 20]
        assert cluster.status.name == "running"
