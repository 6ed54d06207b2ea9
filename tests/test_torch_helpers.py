"""mmlab._torch: the one thread context, seeding, validation split and training loop."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmlab._torch import minibatches, seeded, torch_threads, train_loop, validation_split  # noqa: E402
from mmlab.errors import SignalError  # noqa: E402


def test_torch_threads_sets_and_restores_the_count():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before  # restored on error too
    with torch_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(SignalError, match="n_threads must be >= 1"), torch_threads(0):
        pass


def test_seeded_repeats_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    with seeded(3):
        a = torch.rand(4)
    with seeded(3):
        b = torch.rand(4)
    with seeded(4):
        c = torch.rand(4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_validation_split_plain_grouped_and_stratified():
    train, val = validation_split(100, 0.2, 0)
    assert len(val) == 20 and len(train) == 80 and not set(train) & set(val)
    assert np.array_equal(np.sort(np.r_[train, val]), np.arange(100))
    assert np.array_equal(validation_split(100, 0.2, 0)[1], val)  # repeatable
    groups = np.repeat(np.arange(10), 5)
    train, val = validation_split(50, 0.2, 1, groups=groups)
    assert len(set(groups[val])) == 2 and not set(groups[val]) & set(groups[train])
    y = np.r_[np.zeros(90, int), np.ones(10, int)]
    train, val = validation_split(100, 0.2, 0, stratify=y)
    assert y[val].sum() == 2  # the class balance is kept: 10 % of the held-out rows
    assert len(validation_split(10, 0.0, 0)[1]) == 0
    with pytest.raises(SignalError, match="validation_fraction"):
        validation_split(10, 1.0)
    with pytest.raises(SignalError, match="groups has 3 entries for 10 rows"):
        validation_split(10, 0.2, groups=[1, 2, 3])


def test_minibatches_cover_every_row_and_skip_short_batches():
    batches = list(minibatches(np.arange(10), 4, np.random.default_rng(0)))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(10))
    assert [len(b) for b in minibatches(np.arange(9), 4, torch.Generator().manual_seed(0), min_size=2)] == [4, 4]
    assert [len(b) for b in minibatches(np.arange(10), 4, np.random.default_rng(0), min_last=3)] == [4, 4]


def _line_problem():
    x = torch.linspace(-1, 1, 40)[:, None]
    return x, 3.0 * x


def test_train_loop_fits_a_line_and_stops_early():
    x, y = _line_problem()
    with seeded(0):
        net = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.3)
    res = train_loop(net, opt, lambda e: minibatches(range(40), 10, np.random.default_rng(e)),
                     lambda idx: ((net(x[idx]) - y[idx]) ** 2).mean(), epochs=500,
                     validate=lambda: ((net(x) - y) ** 2).mean(), patience=3, min_delta=1e-9)
    assert net.weight.item() == pytest.approx(3.0, abs=1e-3)
    assert res.n_epochs < 500 and res.best_epoch == res.n_epochs - 1 - 3
    assert {"epoch", "train_loss", "val_loss"} <= set(res.history[0])
    assert not net.training


def test_train_loop_restores_the_best_epoch_weights():
    # the validation target is 0 while training pulls the weight towards 3: validation gets
    # worse every epoch after the first, so the first epoch's weights must come back
    x, y = _line_problem()
    with seeded(0):
        net = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(net.weight)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    res = train_loop(net, opt, lambda e: [np.arange(40)], lambda idx: ((net(x) - y) ** 2).mean(),
                     epochs=50, validate=lambda: (net(x) ** 2).mean(), patience=2)
    assert res.best_epoch == 0 and res.n_epochs == 3
    w_first = 0.1 * 2 * float((x * y).mean())  # one gradient step from 0
    assert net.weight.item() == pytest.approx(w_first, rel=1e-5)
    # without patience every epoch runs and the last weights stay
    res = train_loop(net, opt, lambda e: [np.arange(40)], lambda idx: ((net(x) - y) ** 2).mean(), epochs=5)
    assert res.n_epochs == 5 and res.best_epoch == 4 and "val_loss" not in res.history[0]
