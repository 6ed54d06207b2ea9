"""The hospital model and its two ways of training (chapter 52_federated_health).

* :class:`HealthNet` is :class:`mmlab.fusion.deep.AttentionFusionNet` with two logits: one
  feature extractor per modality (``enc[k]``: linear + ReLU) and an attention fusion head
  (``score``, ``head``). :func:`attention_fuse` is the fusion step alone (embeddings in,
  logits and attention weights out); ``HealthNet.forward`` equals extractors followed by
  :func:`attention_fuse`, checked by a test. An absent modality gets weight exactly 0, so a
  patient missing notes or audio is still scored, and the weights are the provenance.
* :func:`train_local` trains a whole ``HealthNet`` on one hospital's training rows with
  :func:`mmlab._torch.train_loop` (the package's loop): optionally the FedProx proximal
  term ``mu / 2 * ||w - w_global||^2`` and optionally DP-SGD with Opacus (per-example
  clipping to ``max_grad_norm`` and Gaussian noise of ``noise_multiplier * max_grad_norm``,
  Poisson-sampled batches, RDP accounting whose history the caller keeps between rounds).
* :class:`SplitHospital` is split (vertical) learning inside one hospital: each
  :class:`ModalityNode` keeps its raw features and its extractor and sends only
  embeddings ``(rows, hidden)`` to the :class:`FusionServer`, which holds the labels and the
  attention head and sends back only the gradients of the loss with respect to those
  embeddings. Every message is recorded in ``wire`` (sender, receiver, kind, shape) so tests
  can check that nothing else crosses. Optional **embedding privacy**: each embedding row is
  clipped to L2 norm ``embed_clip`` and Gaussian noise of standard deviation
  ``embed_noise * embed_clip`` is added before it leaves the node; one release of a row is
  a Gaussian mechanism with sensitivity ``2 * embed_clip`` (the row's data replaced), and
  the ``epochs`` releases of training compose (:func:`embedding_epsilon`, RDP). What this
  does **not** protect: the labels (the gradients returned to a node reveal which rows are
  positive), the same patient across the windows of the stay (group privacy: multiply by
  the windows per patient), and the extractor weights themselves.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from mmlab._torch import minibatches, seeded, torch_threads, train_loop
from mmlab.errors import SchemaError
from mmlab.fusion.deep import AttentionFusionNet, _masked_softmax
from mmlab.systems._federated_data import MODALITIES, HospitalData
from mmlab.validate import check_int, check_number, check_positive


def attention_fuse(score: nn.Module, head: nn.Module, h: torch.Tensor, present: torch.Tensor):
    """Attention fusion of embeddings ``h`` ``(n, M, hidden)``: logits ``(n, 2)`` and weights ``(n, M)``."""
    h = torch.where(present.unsqueeze(2), h, 0.0)
    alpha = _masked_softmax(score(h).squeeze(2), present, dim=1)
    return head((alpha.unsqueeze(2) * h).sum(dim=1)), alpha


class HealthNet(AttentionFusionNet):
    """Per-modality extractors + attention fusion with two classes (no BatchNorm: Opacus-ready)."""

    def __init__(self, dims: Sequence[int], hidden: int = 16, dropout: float = 0.0):
        super().__init__(list(dims), 2, hidden=hidden, dropout=dropout)
        self.dims = [int(d) for d in dims]
        self.hidden = int(hidden)

    def embed(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([enc(x) for enc, x in zip(self.enc, xs)], dim=1)

    def forward(self, xs, present, return_weights: bool = False):
        logits, alpha = attention_fuse(self.score, self.head, self.embed(xs), present)
        return (logits, alpha) if return_weights else logits


def build_net(dims: dict[str, int], hidden: int = 16, seed: int = 0) -> HealthNet:
    """A freshly initialised :class:`HealthNet` for ``dims`` (``{modality: d}``), seeded."""
    with seeded(int(seed)):
        return HealthNet([dims[m] for m in MODALITIES], hidden=hidden)


def expected_shapes(net: nn.Module) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape: what a hospital may send (and nothing else)."""
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def tensors(data: HospitalData, rows) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    rows = np.asarray(rows)
    xs = [torch.as_tensor(data.X[m][rows], dtype=torch.float32) for m in MODALITIES]
    pr = torch.as_tensor(np.stack([data.present[m][rows] for m in MODALITIES], axis=1), dtype=torch.bool)
    return xs, pr, torch.as_tensor(data.y[rows], dtype=torch.long)


def predict(net: HealthNet, data: HospitalData, rows=None) -> tuple[np.ndarray, np.ndarray]:
    """P(sepsis) ``(n,)`` and attention weights ``(n, M)`` for ``rows`` (default: all)."""
    rows = data.rows("all") if rows is None else np.asarray(rows)
    xs, pr, _ = tensors(data, rows)
    net.eval()
    with torch.no_grad(), torch_threads(1):
        logits, alpha = net(xs, pr, return_weights=True)
    return torch.softmax(logits, 1)[:, 1].double().numpy(), alpha.double().numpy()


def _poisson_batches(n: int, rate: float, steps: int, gen: np.random.Generator):
    for _ in range(steps):
        idx = np.flatnonzero(gen.random(n) < rate)
        if len(idx):
            yield idx


def train_local(net: HealthNet, data: HospitalData, *, epochs: int = 5, lr: float = 0.01, batch_size: int = 32,
                seed: int = 0, mu: float = 0.0, dp: dict | None = None, dp_history: list | None = None,
                modality_dropout: float = 0.2) -> dict[str, Any]:
    """Train ``net`` in place on the hospital's training rows; returns ``loss``, ``n`` and, with
    ``dp`` (``{"noise_multiplier", "max_grad_norm", "delta"}``), ``epsilon`` and the accountant
    ``history`` (pass it back as ``dp_history`` next round: ε accumulates over rounds).

    ``mu > 0`` adds the FedProx proximal term to the weights ``net`` started from (not with
    DP: Opacus would not see its gradient). Modality dropout hides a present modality of a
    training row with probability ``modality_dropout`` (never all of a row's modalities).
    """
    epochs = check_int(epochs, "epochs", low=1)
    lr = check_positive(lr, "lr")
    mu = check_number(mu, "mu", low=0.0)
    rows = data.rows("train")
    if len(rows) == 0:
        raise SchemaError(f"hospital {data.hospital}: no training rows")
    xs, pr, y = tensors(data, rows)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(seed))
    loss_fn = nn.CrossEntropyLoss()
    global_w = [p.detach().clone() for p in net.parameters()] if mu > 0 else None

    def present_for(idx):
        p = pr[idx].clone()
        if modality_dropout > 0 and len(idx):
            drop = torch.as_tensor(rng.random(tuple(p.shape)) < modality_dropout) & p
            keep_one = (p & ~drop).any(1, keepdim=True)
            p = torch.where(keep_one, p & ~drop, p)
        return p

    out: dict[str, Any] = {"n": int(len(rows))}
    with torch_threads(1), seeded(int(seed)):
        if dp is None:
            opt = torch.optim.Adam(net.parameters(), lr=lr)

            def batch_loss(idx):
                idx = torch.as_tensor(idx)
                loss = loss_fn(net([x[idx] for x in xs], present_for(idx)), y[idx])
                if global_w is not None:
                    loss = loss + mu / 2 * sum(((p - g) ** 2).sum() for p, g in zip(net.parameters(), global_w))
                return loss

            res = train_loop(net, opt, lambda e: minibatches(np.arange(len(rows)), batch_size, gen), batch_loss,
                             epochs=epochs)
        else:
            from opacus import GradSampleModule
            from opacus.accountants import RDPAccountant
            from opacus.optimizers import DPOptimizer
            from opacus.validators import ModuleValidator

            net.train()
            if ModuleValidator.validate(net, strict=False):
                raise SchemaError("HealthNet is not Opacus-compatible: " + str(ModuleValidator.validate(net)))
            gsm = GradSampleModule(net)
            q = min(1.0, batch_size / len(rows))
            opt = DPOptimizer(torch.optim.Adam(net.parameters(), lr=lr), noise_multiplier=float(dp["noise_multiplier"]),
                              max_grad_norm=float(dp["max_grad_norm"]), expected_batch_size=batch_size,
                              generator=gen)
            acc = RDPAccountant()
            acc.history = [tuple(h) for h in (dp_history or [])]
            opt.attach_step_hook(acc.get_optimizer_hook_fn(sample_rate=q))
            steps = max(1, int(round(1 / q)))

            def batch_loss(idx):
                idx = torch.as_tensor(idx)
                return loss_fn(gsm([x[idx] for x in xs], present_for(idx)), y[idx])

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = train_loop(gsm, opt, lambda e: _poisson_batches(len(rows), q, steps, rng), batch_loss,
                                 epochs=epochs)
                out["epsilon"] = float(acc.get_epsilon(delta=float(dp["delta"])))
            out["history"] = [list(map(float, h)) for h in acc.history]
            gsm._close()
    out["loss"] = float(res.history[-1]["train_loss"]) if res.history else float("nan")
    return out


def embedding_epsilon(noise: float, releases: int, delta: float) -> float:
    """ε of ``releases`` Gaussian releases of one clipped embedding row (noise std
    ``noise * C``, sensitivity ``2 C``), by RDP composition."""
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    orders = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
    rdp = compute_rdp(q=1.0, noise_multiplier=noise / 2.0, steps=int(releases), orders=orders)
    return float(get_privacy_spent(orders=orders, rdp=rdp, delta=delta)[0])


# --------------------------------------------------------------------------- split learning
class ModalityNode:
    """One modality's node: raw features and extractor stay here; embeddings go out."""

    def __init__(self, name: str, X: np.ndarray, present: np.ndarray, extractor: nn.Module, wire: list,
                 lr: float = 0.01, embed_clip: float | None = None, embed_noise: float = 0.0, seed: int = 0):
        self.name, self.X, self.present = name, np.asarray(X, np.float32), np.asarray(present, bool)
        self.extractor, self.wire = extractor, wire
        self.opt = torch.optim.Adam(self.extractor.parameters(), lr=lr)
        self.embed_clip, self.embed_noise = embed_clip, float(embed_noise)
        self.gen = torch.Generator().manual_seed(int(seed))
        self._pending: tuple[torch.Tensor, np.ndarray] | None = None

    def send_embeddings(self, rows: np.ndarray, training: bool) -> tuple[np.ndarray, np.ndarray]:
        """(rows this node has data for, embeddings ``(k, hidden)``) — what leaves the node."""
        rows = np.asarray(rows)
        mine = rows[self.present[rows]]
        z = self.extractor(torch.as_tensor(self.X[mine]))
        if self.embed_clip is not None:
            norm = z.norm(dim=1, keepdim=True).clamp_min(1e-12)
            z = z * torch.clamp(self.embed_clip / norm, max=1.0)
            if self.embed_noise > 0:
                z = z + self.embed_noise * self.embed_clip * torch.randn(z.shape, generator=self.gen)
        if training:
            self._pending = (z, mine)
        out = z.detach().numpy().copy()
        self.wire.append({"from": self.name, "to": "fusion", "kind": "embeddings", "shape": out.shape,
                          "dtype": str(out.dtype)})
        return mine, out

    def receive_gradients(self, grad: np.ndarray) -> None:
        self.wire.append({"from": "fusion", "to": self.name, "kind": "gradients", "shape": grad.shape,
                          "dtype": str(grad.dtype)})
        z, _ = self._pending
        if grad.shape != tuple(z.shape):
            raise SchemaError(f"node {self.name}: gradient of shape {grad.shape} for embeddings {tuple(z.shape)}")
        self.opt.zero_grad()
        if len(grad):
            z.backward(torch.as_tensor(grad))
        self.opt.step()
        self._pending = None


class FusionServer:
    """The hospital's aggregation server: labels and the attention fusion head."""

    def __init__(self, score: nn.Module, head: nn.Module, hidden: int, y: np.ndarray, lr: float = 0.01):
        self.score, self.head, self.hidden, self.y = score, head, int(hidden), np.asarray(y)
        self.opt = torch.optim.Adam(list(score.parameters()) + list(head.parameters()), lr=lr)
        self.leaves: list[tuple[str, torch.Tensor]] = []

    def fuse(self, rows: np.ndarray, received: dict[str, tuple[np.ndarray, np.ndarray]], training: bool):
        n = len(rows)
        pos = {r: i for i, r in enumerate(rows)}
        h = torch.zeros(n, len(MODALITIES), self.hidden)
        present = torch.zeros(n, len(MODALITIES), dtype=torch.bool)
        self.leaves = []
        for k, m in enumerate(MODALITIES):
            r, z = received[m]
            zt = torch.as_tensor(z).requires_grad_(training)
            self.leaves.append((m, zt))
            ii = torch.as_tensor([pos[i] for i in r], dtype=torch.long)
            if len(ii):
                h = h.index_put((ii, torch.full_like(ii, k)), zt)
                present[ii, k] = True
        return attention_fuse(self.score, self.head, h, present)


class _SplitStep:
    """The 'optimizer' of the split loop: the server steps, then returns gradients to the nodes."""

    def __init__(self, server: FusionServer, nodes: dict[str, ModalityNode]):
        self.server, self.nodes = server, nodes

    def zero_grad(self):
        self.server.opt.zero_grad()

    def step(self):
        self.server.opt.step()
        for m, zt in self.server.leaves:
            g = zt.grad if zt.grad is not None else torch.zeros_like(zt)
            self.nodes[m].receive_gradients(g.numpy().copy())


class SplitHospital:
    """Split learning inside one hospital: three :class:`ModalityNode` s and a :class:`FusionServer`.

    ``fit`` trains with :func:`mmlab._torch.train_loop`; ``predict`` scores rows (a patient
    whose node has no data for a row is scored from the other modalities); ``wire`` lists
    every message. ``as_net()`` assembles the trained parts into a :class:`HealthNet`.
    """

    def __init__(self, data: HospitalData, hidden: int = 16, lr: float = 0.01, seed: int = 0,
                 embed_clip: float | None = None, embed_noise: float = 0.0):
        self.data, self.seed = data, int(seed)
        net = build_net(data.dims, hidden, seed)
        self.wire: list[dict] = []
        self.nodes = {m: ModalityNode(m, data.X[m], data.present[m], net.enc[k], self.wire, lr, embed_clip,
                                      embed_noise, seed + k) for k, m in enumerate(MODALITIES)}
        self.server = FusionServer(net.score, net.head, hidden, data.y, lr)
        self._net = net

    def _forward(self, rows, training):
        got = {m: node.send_embeddings(rows, training) for m, node in self.nodes.items()}
        return self.server.fuse(rows, got, training)

    def fit(self, epochs: int = 10, batch_size: int = 32) -> "SplitHospital":
        rows = self.data.rows("train")
        y = torch.as_tensor(self.data.y, dtype=torch.long)
        gen = torch.Generator().manual_seed(self.seed)
        loss_fn = nn.CrossEntropyLoss()

        def batch_loss(idx):
            r = rows[idx]
            logits, _ = self._forward(r, True)
            return loss_fn(logits, y[r])

        mods = [self.server.score, self.server.head] + [n.extractor for n in self.nodes.values()]
        with torch_threads(1), seeded(self.seed):
            train_loop(mods, _SplitStep(self.server, self.nodes),
                       lambda e: minibatches(np.arange(len(rows)), batch_size, gen), batch_loss, epochs=epochs)
        return self

    def predict(self, rows=None) -> tuple[np.ndarray, np.ndarray]:
        rows = self.data.rows("all") if rows is None else np.asarray(rows)
        with torch.no_grad(), torch_threads(1):
            logits, alpha = self._forward(rows, False)
        return torch.softmax(logits, 1)[:, 1].double().numpy(), alpha.double().numpy()

    def as_net(self) -> HealthNet:
        return copy.deepcopy(self._net)
