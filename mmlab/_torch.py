"""PyTorch plumbing shared by every model mmlab trains (fusion, CCA, contrastive, voice, images).

One implementation each of:

* :func:`torch_threads` -- run a block with ``n_threads`` intra-op threads, restored after;
* :func:`seeded` -- seed torch for a block without touching the global RNG afterwards;
* :func:`validation_split` -- hold out a ``validation_fraction`` of the rows (whole groups,
  or stratified by class);
* :func:`minibatches` -- shuffled mini-batch indices of an epoch;
* :func:`train_loop` -- the epoch loop: optimiser steps, per-epoch history, early stopping
  on the validation loss with the best epoch's weights restored.

torch is imported inside the functions, so importing this module does not need it.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from mmlab.errors import SignalError
from mmlab.validate import check_int, check_number

__all__ = ["torch_threads", "seeded", "validation_split", "minibatches", "train_loop", "TrainResult"]


@contextlib.contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Run a block with ``n_threads`` PyTorch CPU threads, restoring the previous count after.

    Small models (a few thousand parameters, batches of hundreds) train fastest on one
    thread; on a shared machine more threads mostly wait for each other. ``None`` leaves
    the setting alone.

    Examples
    --------
    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    import torch

    if n_threads is None:
        yield
        return
    n = check_int(n_threads, "n_threads", low=1)
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def seeded(random_state: int) -> Iterator[None]:
    """Seed torch's CPU RNG with ``random_state`` for a block; the global state is restored after.

    Examples
    --------
    >>> import torch
    >>> with seeded(0):
    ...     a = torch.rand(2)
    >>> with seeded(0):
    ...     b = torch.rand(2)
    >>> bool((a == b).all())
    True
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(random_state))
        yield


def validation_split(n: int, validation_fraction: float, random_state: int | np.random.Generator = 0, *,
                     groups=None, stratify=None) -> tuple[np.ndarray, np.ndarray]:
    """Sorted row indices ``(train, val)`` with about ``validation_fraction`` of ``n`` rows held out.

    With ``groups`` whole groups are held out (at least one when there are two or more);
    with ``stratify`` (class labels) the split keeps the class proportions (plain random
    when a class has fewer than two rows). ``random_state`` is a seed or a NumPy Generator
    (which is advanced). ``validation_fraction`` 0 gives an empty validation set.

    Examples
    --------
    >>> train, val = validation_split(10, 0.2, random_state=0)
    >>> len(train), len(val), sorted({*train, *val}) == list(range(10))
    (8, 2, True)
    >>> train, val = validation_split(6, 0.5, 0, groups=["a", "a", "b", "b", "c", "c"])
    >>> len(val) in (2, 4) and len(set(val) & set(train)) == 0
    True
    """
    fraction = check_number(validation_fraction, "validation_fraction", low=0.0, high=1.0,
                            high_inclusive=False)
    if fraction == 0 or n == 0:
        return np.arange(n), np.array([], dtype=int)
    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    if groups is not None:
        groups = np.asarray(groups)
        if len(groups) != n:
            raise SignalError(f"groups has {len(groups)} entries for {n} rows")
        uniq = np.unique(groups)
        k = max(1, int(round(fraction * len(uniq)))) if len(uniq) > 1 else 0
        held = np.isin(groups, rng.permutation(uniq)[:k])
        return np.flatnonzero(~held), np.flatnonzero(held)
    if stratify is not None:
        from sklearn.model_selection import train_test_split

        stratify = np.asarray(stratify)
        _, counts = np.unique(stratify, return_counts=True)
        seed = random_state if not isinstance(random_state, np.random.Generator) else int(rng.integers(2**31))
        train, val = train_test_split(np.arange(n), test_size=fraction, random_state=seed,
                                      stratify=stratify if counts.min() >= 2 else None)
        return np.sort(train), np.sort(val)
    order = rng.permutation(n)
    k = int(round(fraction * n))
    return np.sort(order[k:]), np.sort(order[:k])


def minibatches(rows, batch_size: int, rng, *, min_size: int = 1, min_last: int = 0) -> Iterator[np.ndarray]:
    """Shuffled mini-batches of ``rows`` for one epoch.

    ``rng`` is a NumPy Generator or a ``torch.Generator`` (each gives its own, reproducible
    order). Batches shorter than ``min_size`` are skipped (batch norm needs 2 rows), and
    so is a short batch after the first one when it has fewer than ``min_last`` rows (a
    handful of rows gives a useless covariance or contrast).

    Examples
    --------
    >>> [len(b) for b in minibatches(range(10), 4, np.random.default_rng(0))]
    [4, 4, 2]
    >>> [len(b) for b in minibatches(range(10), 4, np.random.default_rng(0), min_last=3)]
    [4, 4]
    """
    rows = np.asarray(rows)
    if isinstance(rng, np.random.Generator):
        order = rows[rng.permutation(len(rows))]
    else:
        import torch

        order = rows[torch.randperm(len(rows), generator=rng).numpy()]
    bs = max(1, int(batch_size))
    for i in range(0, len(order), bs):
        idx = order[i:i + bs]
        if len(idx) < min_size or (i > 0 and len(idx) < min_last):
            continue
        yield idx


@dataclass
class TrainResult:
    """What :func:`train_loop` did: per-epoch ``history`` records and the ``best_epoch``
    (the epoch whose weights the modules hold; -1 if no epoch improved the monitored loss)."""

    history: list[dict]
    best_epoch: int

    @property
    def n_epochs(self) -> int:
        return len(self.history)


def _modules(modules) -> list:
    return list(modules) if isinstance(modules, (list, tuple)) else [modules]


def train_loop(modules, optimizer, batches: Callable[[int], Iterable[np.ndarray]],
               loss_fn: Callable[[np.ndarray], Any], *, epochs: int,
               validate: Callable[[], float] | None = None, patience: int | None = None,
               min_delta: float = 0.0, scheduler=None, after_step: Callable[[], None] | None = None,
               log: Callable[[dict], dict] | None = None, progress: bool = False,
               desc: str = "training") -> TrainResult:
    """The training loop of every mmlab model: epochs of optimiser steps with early stopping.

    Each epoch puts ``modules`` (one ``nn.Module`` or a sequence) in train mode and, for
    every batch ``idx`` of ``batches(epoch)``, takes a step on ``loss_fn(idx)`` (then
    ``scheduler.step()`` and ``after_step()`` if given). The record of the epoch holds
    ``epoch``, ``train_loss`` (batch-size weighted mean), ``val_loss`` (``validate()`` in
    eval mode without gradients, if given) and whatever ``log(record)`` returns.

    With ``patience`` set, training stops once the monitored loss (``val_loss``, or
    ``train_loss`` without ``validate``) has not improved by more than ``min_delta`` for
    ``patience`` epochs, and the best epoch's weights are restored. Without it every epoch
    runs and the last weights are kept. The modules end in eval mode. ``progress`` shows
    a tqdm bar labelled ``desc``.

    Examples
    --------
    >>> import torch
    >>> with seeded(0):
    ...     net = torch.nn.Linear(1, 1)
    ...     x = torch.linspace(-1, 1, 32)[:, None]
    ...     opt = torch.optim.SGD(net.parameters(), lr=0.5)
    ...     res = train_loop(net, opt, lambda e: minibatches(range(32), 8, np.random.default_rng(e)),
    ...                      lambda idx: ((net(x[idx]) - 3 * x[idx]) ** 2).mean(), epochs=50,
    ...                      validate=lambda: float(((net(x) - 3 * x) ** 2).mean()), patience=3)
    >>> round(net.weight.item(), 2), res.n_epochs < 50
    (3.0, True)
    """
    import torch
    from tqdm.auto import tqdm

    mods = _modules(modules)
    epochs = check_int(epochs, "epochs", low=0)
    if patience is not None:
        patience = check_int(patience, "patience", low=0)
    history: list[dict] = []
    best, best_state, best_epoch, wait = np.inf, None, -1, 0
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        for m in mods:
            m.train()
        total, count = 0.0, 0
        for idx in batches(epoch):
            loss = loss_fn(idx)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if after_step is not None:
                after_step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        record = {"epoch": epoch, "train_loss": total / count if count else float("nan")}
        for m in mods:
            m.eval()
        if validate is not None:
            with torch.no_grad():
                record["val_loss"] = float(validate())
        if log is not None:
            record.update(log(record))
        history.append(record)
        bar.set_postfix({k: round(v, 4) for k, v in record.items() if k != "epoch" and isinstance(v, float)})
        if patience is None:
            best_epoch = epoch
            continue
        v = record["val_loss" if validate is not None else "train_loss"]
        if v < best - min_delta:
            best, best_epoch, wait = v, epoch, 0
            best_state = [copy.deepcopy(m.state_dict()) for m in mods]
        else:
            wait += 1
            if wait >= patience:
                break
    if best_state is not None:
        for m, state in zip(mods, best_state):
            m.load_state_dict(state)
    for m in mods:
        m.eval()
    return TrainResult(history, best_epoch)
