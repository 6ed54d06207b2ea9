"""Federated, privacy-preserving multimodal health monitoring across hospitals (chapter
52_federated_health).

Two levels, as the hospitals of the ``icu_ward`` scenario would run it:

1. **Inside a hospital (split / vertical learning)** — one node per modality (bedside
   vitals, nurse notes embedded with the shipped MiniLM, patient-nurse interaction audio)
   keeps its raw data and its feature extractor and sends only embeddings to the hospital's
   fusion server, which fuses them with attention (:class:`mmlab.fusion.deep.AttentionFusionNet`'s
   mechanism) and returns only gradients (:class:`SplitHospital`). A patient missing a
   modality is still scored; the attention weights are the provenance.
2. **Across hospitals (horizontal)** — the extractors and the fusion head are federated
   with Flower's Message API: :data:`server_app` (a :class:`flwr.serverapp.ServerApp` running
   FedAvg or FedProx, with an audit of every reply) and :data:`client_app` (a
   :class:`flwr.clientapp.ClientApp`: one hospital, its folder only). The same two objects
   run as a simulation (:func:`run_federated`, ``flwr.simulation.run_simulation`` on Ray
   sized for 2 cores) and as real processes (:func:`federation_up`: a SuperLink and one
   SuperNode per hospital, ``mmlab federated up``).

Privacy layers
--------------
* **DP-SGD** (Opacus) on what leaves a hospital: per-example clipping to ``max-grad-norm``
  and Gaussian noise ``noise-multiplier * max-grad-norm``, Poisson sampling, RDP
  accounting. Each hospital keeps its accountant's history in its ``Context.state``, so ε
  accumulates over rounds; the server reports the **maximum** ε over hospitals each round
  (a hospital that missed a round keeps its last ε, so the figure never decreases), with δ.
  (Window-level DP: a patient contributes several windows; group privacy multiplies ε.)
* **Embedding privacy** inside a hospital (optional): clipping + Gaussian noise per
  embedding row, see :mod:`mmlab.systems._federated_model` (and what it does not protect).
* **Secure aggregation**: Flower's SecAgg+ (:func:`run_secagg`), which in flwr 1.42 exists
  only on the legacy path (``NumPyClient`` + ``secaggplus_mod``, ``LegacyContext`` +
  ``SecAggPlusWorkflow``); the test checks its aggregate equals plain weighted FedAvg.
* **What crosses the wire** is audited by the server strategy (:func:`check_update`):
  exactly one ``ArrayRecord`` with the model's parameter names and shapes, and one
  ``MetricRecord`` with known scalar keys; anything else is rejected with a clear reason
  and the round completes without it.

Faults
------
A hospital that fails mid-round (simulated with ``fail-hospital``/``fail-round``) sends an
error reply; Flower's strategy aggregates the replies that did arrive: the new-API
``FedAvg`` samples ``min_train_nodes`` (of at least ``min_available_nodes`` connected
nodes) and then aggregates whatever valid replies come back before ``timeout`` — there
is no minimum number of *replies*, so the round completes with the rest. A hospital
with one class trains normally (its AUROC is not defined and is not reported). A
malformed update (wrong shapes) is rejected by :func:`check_update`.

Dashboard table
---------------
:func:`dashboard_table` writes, per patient and time, the risk, its trend and the modality
that drove it; the columns are in :data:`DASHBOARD_SCHEMA` and checked by
:func:`check_dashboard_table`.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

import mmlab
from mmlab.errors import SchemaError
from mmlab.systems._folder import read_manifest, write_manifest
from mmlab.systems._federated_data import (MODALITIES, HospitalData, hospital_tables, load_hospital,
                                           write_hospitals)
from mmlab.systems._federated_model import (HealthNet, SplitHospital, build_net, embedding_epsilon,
                                            expected_shapes, predict, train_local)
from mmlab.validate import check_int

__all__ = ["MODALITIES", "DIMS", "HospitalData", "hospital_tables", "write_hospitals", "load_hospital",
           "HealthNet", "SplitHospital", "build_net", "train_local", "predict", "embedding_epsilon",
           "check_update", "fedavg", "make_server_app", "make_client_app", "server_app", "client_app",
           "run_federated", "run_secagg", "dashboard_table", "check_dashboard_table", "DASHBOARD_SCHEMA",
           "pool", "net_from_state", "auroc", "prepare", "federation_up", "FederatedHealth", "write_flower_app",
           "FORMAT", "DEFAULTS", "METRIC_KEYS"]

FORMAT = "mmlab-federated-health/1"
#: Input sizes of the three modality nodes (vitals features, MiniLM, MFCC summary).
DIMS = {"vitals": 9, "notes": 384, "audio": 52}
#: Options of a federation (Flower run config keys); ``experiments`` is a comma-separated
#: list of ``fedavg``, ``fedprox`` or ``dp:<noise multiplier>`` run one after another.
#: Faults for tests and the chapter: in round ``fail-round``, ``fail-hospital`` (e.g. "H2")
#: raises instead of replying and ``malformed-hospital`` replies with a wrongly shaped array.
#: DP experiments train with ``dp-batch-size`` and ``dp-lr`` (larger batches shrink the noise
#: per example: the noise std on the mean gradient is noise * max-grad-norm / batch size).
DEFAULTS: dict[str, Any] = {
    "experiments": "fedavg", "rounds": 3, "local-epochs": 3, "lr": 0.01, "hidden": 16, "batch-size": 32,
    "proximal-mu": 0.1, "max-grad-norm": 1.0, "delta": 1e-3, "dp-batch-size": 64, "dp-lr": 0.05, "seed": 0,
    "hospitals": 3,
    "fail-hospital": "", "fail-round": 0, "malformed-hospital": "", "timeout": 600.0,
    "fraction-evaluate": 1.0, "result-path": "",
}
#: The only metric keys a hospital may send.
METRIC_KEYS = ("num-examples", "train-loss", "epsilon", "delta", "hospital-index", "auroc", "positives")
#: The columns of the dashboard table, in order, with their meaning.
DASHBOARD_SCHEMA: dict[str, str] = {
    "patient_id": "patient id (str)",
    "hospital": "hospital id, H1... (str)",
    "t_end_h": "end of the hourly window, hours since admission (float)",
    "risk": "P(sepsis now or within the horizon) from the fused model, in [0, 1] (float)",
    "trend": "risk minus the patient's previous window's risk; NaN for the first window (float)",
    "driving_modality": "the present modality with the largest attention weight (str: vitals|notes|audio)",
    **{f"attention_{m}": f"attention weight of {m}, 0 when absent; the weights of a row sum to 1 (float)"
       for m in MODALITIES},
    **{f"present_{m}": f"whether the {m} node had data for this window (bool)" for m in MODALITIES},
}


def _quiet_env() -> None:
    for k in ("FLWR_TELEMETRY_ENABLED", "RAY_USAGE_STATS_ENABLED"):
        os.environ.setdefault(k, "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")


# --------------------------------------------------------------------------- wire checks
def check_update(content, expected: Mapping[str, tuple], where: str = "update") -> int:
    """Check one hospital's training reply; return the bytes of its arrays.

    It must hold exactly an ``"arrays"`` ArrayRecord whose names and shapes are
    ``expected`` (float32, finite) and a ``"metrics"`` MetricRecord whose keys are in
    :data:`METRIC_KEYS`. Anything else raises :class:`~mmlab.errors.SchemaError` naming it.
    """
    from flwr.app import ArrayRecord, MetricRecord

    keys = set(content.keys())
    if keys != {"arrays", "metrics"}:
        raise SchemaError(f"{where}: a reply must hold exactly 'arrays' and 'metrics', got {sorted(keys)}")
    arrays, metrics = content["arrays"], content["metrics"]
    if not isinstance(arrays, ArrayRecord) or not isinstance(metrics, MetricRecord):
        raise SchemaError(f"{where}: 'arrays' must be an ArrayRecord and 'metrics' a MetricRecord")
    if set(arrays.keys()) != set(expected):
        extra, missing = sorted(set(arrays.keys()) - set(expected)), sorted(set(expected) - set(arrays.keys()))
        raise SchemaError(f"{where}: parameter names differ from the model's (unexpected {extra}, missing {missing})")
    nbytes = 0
    for k, arr in arrays.items():
        a = arr.numpy()
        if tuple(a.shape) != tuple(expected[k]):
            raise SchemaError(f"{where}: parameter {k!r} has shape {tuple(a.shape)}, the model's is "
                              f"{tuple(expected[k])}: malformed update rejected")
        if a.dtype != np.float32 or not np.isfinite(a).all():
            raise SchemaError(f"{where}: parameter {k!r} must be finite float32, got {a.dtype}")
        nbytes += a.nbytes
    bad = sorted(set(metrics.keys()) - set(METRIC_KEYS))
    if bad:
        raise SchemaError(f"{where}: metric keys {bad} are not allowed (allowed: {list(METRIC_KEYS)})")
    for k, v in metrics.items():
        if not isinstance(v, (int, float)):
            raise SchemaError(f"{where}: metric {k!r} must be a number, got {type(v).__name__}")
    return nbytes


def fedavg(arrays: list[list[np.ndarray]], weights) -> list[np.ndarray]:
    """Weighted FedAvg of parameter lists (the same arrays in the same order per client).

    Examples
    --------
    >>> import numpy as np
    >>> [a.tolist() for a in fedavg([[np.array([0.0, 2.0])], [np.array([4.0, 6.0])]], [1, 3])]
    [[3.0, 5.0]]
    """
    w = np.asarray(weights, dtype=float)
    if len(arrays) != len(w) or len(w) == 0:
        raise SchemaError(f"fedavg: {len(arrays)} parameter lists for {len(w)} weights")
    if (w < 0).any() or w.sum() <= 0:
        raise SchemaError("fedavg: weights must be >= 0 with a positive sum")
    shapes = [tuple(a.shape) for a in arrays[0]]
    for i, ps in enumerate(arrays):
        if [tuple(a.shape) for a in ps] != shapes:
            raise SchemaError(f"fedavg: client {i}'s shapes {[tuple(a.shape) for a in ps]} differ from {shapes}")
    return [sum(wi * np.asarray(ps[j], dtype=float) for wi, ps in zip(w, arrays)) / w.sum() for j in range(len(shapes))]


def _aggregate_metrics(records, weighted_by_key: str):
    """Weighted mean of each metric, except ``epsilon`` (the maximum over hospitals)."""
    from flwr.app import MetricRecord

    out: dict[str, float] = {}
    ms = [next(iter(r.metric_records.values())) for r in records]
    w = np.array([float(m[weighted_by_key]) for m in ms])
    for k in ms[0].keys():
        vals = np.array([float(m[k]) for m in ms])
        if k == "epsilon":
            out[k] = float(vals.max())
        elif k in (weighted_by_key, "positives"):
            out[k] = float(vals.sum())
        elif k == "auroc":
            ok = np.isfinite(vals) & (vals >= 0)
            out[k] = float(np.average(vals[ok], weights=w[ok])) if ok.any() else -1.0
        else:
            out[k] = float(np.average(vals, weights=w)) if w.sum() > 0 else float(vals.mean())
    return MetricRecord(out)


def _audited(base):
    """A strategy class ``base`` (FedAvg or FedProx) whose training replies are audited."""

    class Audited(base):
        def __init__(self, *args, expected: Mapping[str, tuple], audit: dict, **kwargs):
            super().__init__(*args, train_metrics_aggr_fn=_aggregate_metrics,
                             evaluate_metrics_aggr_fn=_aggregate_metrics, **kwargs)
            self.expected, self.audit = dict(expected), audit
            self.epsilon: dict[str, float] = {}
            self._t = time.perf_counter()

        def configure_train(self, server_round, arrays, config, grid):
            self._t = time.perf_counter()
            return super().configure_train(server_round, arrays, config, grid)

        def aggregate_train(self, server_round, replies):
            good = []
            for msg in replies:
                node = int(msg.metadata.src_node_id)
                if msg.has_error():
                    self.audit["failures"].append({"round": server_round, "node": node,
                                                   "reason": _short_reason(msg.error.reason)})
                    continue
                try:
                    nbytes = check_update(msg.content, self.expected, where=f"round {server_round}, node {node}")
                except SchemaError as e:
                    self.audit["rejected"].append({"round": server_round, "node": node, "reason": str(e)})
                    continue
                m = msg.content["metrics"]
                self.audit["wire"].append({
                    "round": server_round, "node": node, "hospital": f"H{int(m['hospital-index']) + 1}",
                    "records": sorted(msg.content.keys()),
                    "arrays": {k: list(a.numpy().shape) for k, a in msg.content["arrays"].items()},
                    "metrics": sorted(m.keys()), "bytes": nbytes, "epsilon": float(m["epsilon"])})
                good.append(msg)
            arrays, metrics = super().aggregate_train(server_round, good)
            # ε is cumulative per hospital: one that did not reply this round keeps its last ε,
            # so the reported maximum never decreases.
            for w in self.audit["wire"]:
                if w["round"] == server_round:
                    self.epsilon[w["hospital"]] = max(self.epsilon.get(w["hospital"], 0.0), w["epsilon"])
            if metrics is not None and self.epsilon:
                metrics["epsilon"] = float(max(self.epsilon.values()))
            self.audit["round_s"].append(time.perf_counter() - self._t)
            return arrays, metrics

    Audited.__name__ = f"Audited{base.__name__}"
    return Audited


def _short_reason(reason: str | None) -> str:
    """The last line of a ClientApp's error (Ray wraps it in its own traceback)."""
    text = str(reason or "")
    if "Message: " in text:
        text = text.rsplit("Message: ", 1)[1]
    return text.strip().strip("'>").splitlines()[-1] if text.strip() else "unknown error"


def _options(run_config: Mapping, options: Mapping | None) -> dict:
    opts = {**DEFAULTS, **dict(run_config or {}), **dict(options or {})}
    unknown = sorted(set(opts) - set(DEFAULTS))
    if unknown:
        raise SchemaError(f"unknown federation options {unknown}; known: {sorted(DEFAULTS)}")
    return opts


def _parse_experiment(name: str) -> dict:
    name = name.strip()
    if name in ("fedavg", "fedprox"):
        return {"name": name, "strategy": name, "noise": 0.0}
    if name.startswith("dp:"):
        try:
            noise = float(name[3:])
        except ValueError:
            raise SchemaError(f"experiment {name!r}: 'dp:' must be followed by a noise multiplier") from None
        if noise <= 0:
            raise SchemaError(f"experiment {name!r}: the noise multiplier must be > 0")
        return {"name": name, "strategy": "fedavg", "noise": noise}
    raise SchemaError(f"unknown experiment {name!r}; use fedavg, fedprox or dp:<noise multiplier>")


def _state_dict_numpy(arrays) -> dict[str, np.ndarray]:
    return {k: a.numpy().copy() for k, a in arrays.items()}


# --------------------------------------------------------------------------- ServerApp
def make_server_app(options: Mapping | None = None, sink: dict | None = None, progress: bool = False):
    """The federation's :class:`~flwr.serverapp.ServerApp`.

    Options are :data:`DEFAULTS`, overridden by the run config (``flwr run ... --run-config``)
    and then by ``options``. Each experiment of ``experiments`` runs ``rounds`` rounds from
    the same initial weights; results go into ``sink`` (a dict, for simulations in this
    process) and, if ``result-path`` is set, to that JSON file (+ ``.npz`` weights).
    ``progress`` shows a tqdm bar over the experiments.
    """
    from flwr.app import ArrayRecord, ConfigRecord, Context
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAvg, FedProx

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        opts = _options(context.run_config, options)
        H = int(opts["hospitals"])
        t0 = time.perf_counter()
        out: dict[str, Any] = {"format": FORMAT, "options": {k: opts[k] for k in DEFAULTS}, "experiments": {}}
        from tqdm.auto import tqdm

        exps = [_parse_experiment(e) for e in str(opts["experiments"]).split(",") if e.strip()]
        for exp in tqdm(exps, desc="experiments", disable=not progress):
            net = build_net(DIMS, int(opts["hidden"]), int(opts["seed"]))
            audit: dict[str, list] = {"wire": [], "rejected": [], "failures": [], "round_s": []}
            kw = dict(fraction_train=1.0, fraction_evaluate=float(opts["fraction-evaluate"]), min_train_nodes=H,
                      min_evaluate_nodes=H if float(opts["fraction-evaluate"]) > 0 else 0, min_available_nodes=H,
                      expected=expected_shapes(net), audit=audit)
            if exp["strategy"] == "fedprox":
                strategy = _audited(FedProx)(proximal_mu=float(opts["proximal-mu"]), **kw)
            else:
                strategy = _audited(FedAvg)(**kw)
            cfg = ConfigRecord({"experiment": exp["name"], "local-epochs": int(opts["local-epochs"]),
                                "lr": float(opts["lr"]), "hidden": int(opts["hidden"]),
                                "batch-size": int(opts["batch-size"]), "seed": int(opts["seed"]),
                                "noise-multiplier": float(exp["noise"]), "max-grad-norm": float(opts["max-grad-norm"]),
                                "dp-batch-size": int(opts["dp-batch-size"]), "dp-lr": float(opts["dp-lr"]),
                                "delta": float(opts["delta"]), "fail-hospital": str(opts["fail-hospital"]),
                                "fail-round": int(opts["fail-round"]),
                                "malformed-hospital": str(opts["malformed-hospital"]),
                                "proximal-mu": float(opts["proximal-mu"]) if exp["strategy"] == "fedprox" else 0.0})
            t1 = time.perf_counter()
            result = strategy.start(grid=grid, initial_arrays=ArrayRecord(net.state_dict()),
                                    num_rounds=int(opts["rounds"]), timeout=float(opts["timeout"]),
                                    train_config=cfg, evaluate_config=ConfigRecord({"experiment": exp["name"]}))
            out["experiments"][exp["name"]] = {
                "state_dict": _state_dict_numpy(result.arrays),
                "train_metrics": {int(r): dict(m) for r, m in result.train_metrics_clientapp.items()},
                "evaluate_metrics": {int(r): dict(m) for r, m in result.evaluate_metrics_clientapp.items()},
                "epsilon": [float(result.train_metrics_clientapp[r]["epsilon"])
                            for r in sorted(result.train_metrics_clientapp)],
                "delta": float(opts["delta"]), "audit": audit, "wall_s": time.perf_counter() - t1}
        out["wall_s"] = time.perf_counter() - t0
        if sink is not None:
            sink.update(out)
        if opts["result-path"]:
            _write_result(out, Path(str(opts["result-path"])))

    return app


def _write_result(out: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{e}/{k}": v for e, r in out["experiments"].items() for k, v in r["state_dict"].items()}
    np.savez(path.with_suffix(".npz"), **arrays)
    slim = {**out, "experiments": {e: {k: v for k, v in r.items() if k != "state_dict"}
                                   for e, r in out["experiments"].items()}}
    path.write_text(json.dumps(slim, indent=1, default=float))


# --------------------------------------------------------------------------- ClientApp
_DATA_CACHE: dict[str, HospitalData] = {}


def _hospital(context, data_root: str | None) -> HospitalData:
    folder = context.node_config.get("data-dir")
    if not folder:
        if not data_root:
            raise SchemaError("this SuperNode has no hospital folder: start it with --node-config "
                              "\"data-dir='<folder>'\" (or give make_client_app a data_root)")
        folder = str(Path(data_root) / f"H{int(context.node_config['partition-id']) + 1}")
    if folder not in _DATA_CACHE:
        _DATA_CACHE[folder] = load_hospital(folder)
    return _DATA_CACHE[folder]


def make_client_app(data_root: str | None = None):
    """The hospital :class:`~flwr.clientapp.ClientApp`.

    Its data is the folder in the node config ``data-dir`` (deployment: each SuperNode
    sees only its own hospital), else ``<data_root>/H<partition-id + 1>`` (simulation).
    """
    from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        cfg = msg.content["config"]
        data = _hospital(context, data_root)
        rnd = int(cfg["server-round"])
        if cfg["fail-hospital"] == data.hospital and int(cfg["fail-round"]) == rnd:
            raise RuntimeError(f"hospital {data.hospital} dropped out in round {rnd} (simulated fault)")
        net = build_net(data.dims, int(cfg["hidden"]), int(cfg["seed"]))
        net.load_state_dict(msg.content["arrays"].to_torch_state_dict())
        noise = float(cfg["noise-multiplier"])
        key = f"dp/{cfg['experiment']}"
        dp = hist = None
        if noise > 0:
            dp = {"noise_multiplier": noise, "max_grad_norm": float(cfg["max-grad-norm"]), "delta": float(cfg["delta"])}
            if key in context.state:
                flat = list(context.state[key]["history"])
                hist = [flat[i:i + 3] for i in range(0, len(flat), 3)]
        seed = int(cfg["seed"]) * 1000 + 10 * rnd + int(data.hospital[1:])
        res = train_local(net, data, epochs=int(cfg["local-epochs"]),
                          lr=float(cfg["dp-lr"] if dp else cfg["lr"]),
                          batch_size=int(cfg["dp-batch-size"] if dp else cfg["batch-size"]), seed=seed,
                          mu=float(cfg["proximal-mu"]), dp=dp, dp_history=hist)
        if dp is not None:
            context.state[key] = ConfigRecord({"history": [float(v) for h in res["history"] for v in h]})
        sd = net.state_dict()
        if cfg["malformed-hospital"] == data.hospital and int(cfg["fail-round"]) == rnd:
            k0 = next(iter(sd))
            sd[k0] = sd[k0][..., :-1].clone()
        rows = data.rows("train")
        metrics = MetricRecord({"num-examples": int(res["n"]), "train-loss": float(res["loss"]),
                                "epsilon": float(res.get("epsilon", 0.0)), "delta": float(cfg["delta"]),
                                "hospital-index": int(data.hospital[1:]) - 1,
                                "positives": int(data.y[rows].sum())})
        return Message(RecordDict({"arrays": ArrayRecord({k: v.detach().contiguous() for k, v in sd.items()}),
                                   "metrics": metrics}), reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        from sklearn.metrics import roc_auc_score

        data = _hospital(context, data_root)
        sd = msg.content["arrays"].to_torch_state_dict()
        net = HealthNet([data.dims[m] for m in MODALITIES], hidden=int(sd["score.0.weight"].shape[0]))
        net.load_state_dict(sd)
        rows = data.rows("test")
        p, _ = predict(net, data, rows)
        y = data.y[rows]
        auroc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else -1.0
        return Message(RecordDict({"metrics": MetricRecord({"num-examples": int(len(rows)), "auroc": auroc})}),
                       reply_to=msg)

    return app


def __getattr__(name: str):
    """``server_app`` / ``client_app``: the apps Flower's deployment engine loads
    (``mmlab.systems.federated:server_app``), built on first use so that importing this
    module does not import flwr."""
    if name == "server_app":
        globals()[name] = make_server_app()
        return globals()[name]
    if name == "client_app":
        globals()[name] = make_client_app()
        return globals()[name]
    raise AttributeError(f"module 'mmlab.systems.federated' has no attribute {name!r}")


# --------------------------------------------------------------------------- simulation
def backend_config(n_cpus: int = 2) -> dict:
    """Ray backend sized for a small machine: ``n_cpus`` for Ray, one CPU per ClientApp."""
    return {"client_resources": {"num_cpus": 1, "num_gpus": 0.0}, "init_args": {"num_cpus": int(n_cpus)}}


def run_federated(data_root: str | Path, options: Mapping | None = None, n_cpus: int = 2,
                  progress: bool = False) -> dict:
    """Run the federation as a Flower simulation (``run_simulation``, Ray) over the hospital
    folders under ``data_root``; returns the server's results (see :func:`make_server_app`).
    ``progress`` shows a tqdm bar over the experiments."""
    _quiet_env()
    from flwr.simulation import run_simulation

    data_root = Path(data_root)
    hospitals = sorted(p.name for p in data_root.iterdir() if (p / "data.npz").is_file())
    if not hospitals:
        raise SchemaError(f"{data_root} holds no hospital folders (write them with write_hospitals)")
    opts = {**dict(options or {}), "hospitals": len(hospitals)}
    sink: dict = {}
    t0 = time.perf_counter()
    import logging

    logging.getLogger("flwr").setLevel(logging.WARNING)
    run_simulation(server_app=make_server_app(opts, sink, progress), client_app=make_client_app(str(data_root)),
                   num_supernodes=len(hospitals), backend_config=backend_config(n_cpus))
    if "experiments" not in sink:
        raise SchemaError("the federation did not finish (the ServerApp raised; see Flower's log above)")
    sink["run_s"] = time.perf_counter() - t0
    return sink


# --------------------------------------------------------------------------- secure aggregation
def _secagg_local_update(data: HospitalData, init: list[np.ndarray], opts: Mapping) -> list[np.ndarray]:
    """One hospital's deterministic local update from ``init`` (used by the SecAgg+ client
    and, in this process, by the plain-FedAvg reference)."""
    import torch

    net = build_net(data.dims, int(opts["hidden"]), int(opts["seed"]))
    keys = list(net.state_dict())
    net.load_state_dict({k: torch.as_tensor(v) for k, v in zip(keys, init)})
    train_local(net, data, epochs=int(opts["local-epochs"]), lr=float(opts["lr"]), batch_size=int(opts["batch-size"]),
                seed=int(opts["seed"]) * 1000 + int(data.hospital[1:]))
    return [v.detach().numpy().copy() for v in net.state_dict().values()]


def run_secagg(data_root: str | Path, options: Mapping | None = None, n_cpus: int = 2) -> dict:
    """One round of FedAvg under Flower's SecAgg+ (simulation), compared with plain weighted
    FedAvg of the same local updates computed here.

    SecAgg+ in flwr 1.42 runs on the legacy path: a ``NumPyClient`` behind ``secaggplus_mod``
    and a ``LegacyContext`` + ``DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(...))``. The
    server only ever sees masked, quantised vectors and their sum. Returns ``max_abs_diff``,
    ``equal`` (within ``atol``: the quantisation step), the aggregate, and ``wall_s``.
    """
    _quiet_env()
    from flwr.client import NumPyClient
    from flwr.client.mod import secaggplus_mod
    from flwr.clientapp import ClientApp
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.strategy import FedAvg as LegacyFedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    opts = _options({}, options)
    data_root = Path(data_root)
    hospitals = sorted((p.name for p in data_root.iterdir() if (p / "data.npz").is_file()), key=lambda s: (len(s), s))
    H = len(hospitals)
    if H < 3:
        raise SchemaError(f"SecAgg+ needs at least 3 hospitals, {data_root} has {H}")
    init = [v.numpy().copy() for v in build_net(DIMS, int(opts["hidden"]), int(opts["seed"])).state_dict().values()]
    datas = [load_hospital(data_root / h) for h in hospitals]
    max_weight = float(max(d.rows("train").size for d in datas) + 1)
    sink: dict = {}

    class _Hospital(NumPyClient):
        def __init__(self, folder: str):
            self.folder = folder

        def fit(self, parameters, config):
            data = load_hospital(self.folder)
            return _secagg_local_update(data, parameters, opts), int(data.rows("train").size), {}

    def client_fn(context):
        return _Hospital(str(data_root / f"H{int(context.node_config['partition-id']) + 1}")).to_client()

    class _Capture(LegacyFedAvg):
        def aggregate_fit(self, server_round, results, failures):
            params, metrics = super().aggregate_fit(server_round, results, failures)
            sink["aggregate"] = parameters_to_ndarrays(params)
            sink["failures"] = len(failures)
            return params, metrics

    server = ServerApp()

    @server.main()
    def main(grid, context) -> None:
        strategy = _Capture(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=H, min_available_clients=H,
                            initial_parameters=ndarrays_to_parameters(init))
        ctx = LegacyContext(context=context, config=ServerConfig(num_rounds=1), strategy=strategy)
        DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(num_shares=H, reconstruction_threshold=H - 1,
                                                        max_weight=max_weight))(grid, ctx)

    import logging

    logging.getLogger("flwr").setLevel(logging.WARNING)
    t0 = time.perf_counter()
    run_simulation(server_app=server, client_app=ClientApp(client_fn=client_fn, mods=[secaggplus_mod]),
                   num_supernodes=H, backend_config=backend_config(n_cpus))
    wall = time.perf_counter() - t0
    if "aggregate" not in sink:
        raise SchemaError("SecAgg+ did not produce an aggregate (see Flower's log above)")
    updates = [_secagg_local_update(d, init, opts) for d in datas]
    plain = fedavg(updates, [d.rows("train").size for d in datas])
    diff = max(float(np.abs(a - b).max()) for a, b in zip(sink["aggregate"], plain))
    # SecAgg+ quantises each value to 2**22 levels over [-8, 8] (default clipping range):
    # a step of 16 / 2**22 ~ 4e-6 per client, so sums of H clients agree to ~H steps.
    atol = 1e-4
    return {"max_abs_diff": diff, "equal": bool(diff <= atol), "atol": atol, "aggregate": sink["aggregate"],
            "fedavg": plain, "failures": sink["failures"], "wall_s": wall}


# --------------------------------------------------------------------------- evaluation and outputs
def pool(datas: Mapping[str, HospitalData] | list[HospitalData], name: str = "pooled") -> HospitalData:
    """All hospitals' rows in one table (the centralised baseline that hospitals cannot do)."""
    ds = list(datas.values()) if isinstance(datas, Mapping) else list(datas)
    if not ds:
        raise SchemaError("pool: no hospitals")
    cat = np.concatenate
    return HospitalData(name, {m: cat([d.X[m] for d in ds]) for m in MODALITIES},
                        {m: cat([d.present[m] for d in ds]) for m in MODALITIES}, cat([d.y for d in ds]),
                        cat([d.patient for d in ds]), cat([d.t_end_h for d in ds]), cat([d.train for d in ds]),
                        {"hospitals": [d.hospital for d in ds]})


def net_from_state(state_dict: Mapping[str, np.ndarray]) -> HealthNet:
    """A :class:`HealthNet` holding the weights ``state_dict`` (e.g. a federation's result)."""
    import torch

    sd = {k: torch.as_tensor(np.asarray(v)) for k, v in state_dict.items()}
    if "score.0.weight" not in sd:
        raise SchemaError(f"not a HealthNet state dict (keys {sorted(sd)[:4]}...)")
    net = HealthNet([int(sd[f"enc.{k}.0.weight"].shape[1]) for k in range(len(MODALITIES))],
                    hidden=int(sd["score.0.weight"].shape[0]))
    net.load_state_dict(sd)
    return net


def auroc(net: HealthNet, data: HospitalData, which: str = "test", absent: str | None = None) -> float:
    """AUROC of ``net`` on ``data``'s ``which`` rows (NaN with one class); ``absent`` hides a
    modality node for every row."""
    from sklearn.metrics import roc_auc_score

    if absent is not None:
        data = HospitalData(data.hospital, data.X, {**data.present, absent: np.zeros(data.n, bool)}, data.y,
                            data.patient, data.t_end_h, data.train, data.meta)
    rows = data.rows(which)
    y = data.y[rows]
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, predict(net, data, rows)[0]))


def dashboard_table(net: HealthNet, data: HospitalData, which: str = "all") -> pd.DataFrame:
    """Per patient and hourly window: risk, trend, driving modality (provenance) and the
    attention weights; columns and meaning in :data:`DASHBOARD_SCHEMA`."""
    rows = data.rows(which)
    p, alpha = predict(net, data, rows)
    df = pd.DataFrame({"patient_id": data.patient[rows].astype(str), "hospital": data.hospital,
                       "t_end_h": data.t_end_h[rows].astype(float), "risk": p})
    df = df.sort_values(["patient_id", "t_end_h"], kind="stable")
    order = df.index.to_numpy()
    df["trend"] = df.groupby("patient_id")["risk"].diff()
    a = alpha[order]
    pres = np.stack([data.present[m][rows][order] for m in MODALITIES], axis=1)
    drive = np.where(pres.any(1), np.argmax(np.where(pres, a, -1.0), axis=1), -1)
    df["driving_modality"] = [MODALITIES[k] if k >= 0 else "" for k in drive]
    for k, m in enumerate(MODALITIES):
        df[f"attention_{m}"] = a[:, k]
    for k, m in enumerate(MODALITIES):
        df[f"present_{m}"] = pres[:, k]
    return df.reset_index(drop=True)[list(DASHBOARD_SCHEMA)]


def check_dashboard_table(df: pd.DataFrame) -> pd.DataFrame:
    """Raise :class:`~mmlab.errors.SchemaError` unless ``df`` follows :data:`DASHBOARD_SCHEMA`
    (columns in order, risk in [0, 1], weights of a row summing to 1 and 0 where absent)."""
    cols = list(df.columns)
    if cols != list(DASHBOARD_SCHEMA):
        raise SchemaError(f"dashboard table: columns {cols} differ from DASHBOARD_SCHEMA {list(DASHBOARD_SCHEMA)}")
    r = df["risk"].to_numpy(float)
    if not ((r >= 0) & (r <= 1)).all():
        raise SchemaError("dashboard table: risk must lie in [0, 1]")
    a = df[[f"attention_{m}" for m in MODALITIES]].to_numpy(float)
    pres = df[[f"present_{m}" for m in MODALITIES]].to_numpy(bool)
    if np.abs(a[~pres]).max(initial=0.0) > 0:
        raise SchemaError("dashboard table: an absent modality has a non-zero attention weight")
    if not np.allclose(a.sum(1)[pres.any(1)], 1.0, atol=1e-5):
        raise SchemaError("dashboard table: the attention weights of a row must sum to 1")
    bad = set(df["driving_modality"]) - set(MODALITIES) - {""}
    if bad:
        raise SchemaError(f"dashboard table: unknown driving modalities {sorted(bad)}")
    return df


def prepare(n_patients: int = 60, seed: int = 0, folder: str | Path | None = None, fast: bool = True,
            text: bool = True, **knobs) -> tuple[dict[str, HospitalData], Path]:
    """Generate an ``icu_ward`` cohort, build each hospital's tables and write one folder per
    hospital under ``folder`` (a new temporary folder by default): ``(tables, folder)``."""
    from mmlab.synth import make_cohort

    n_patients = check_int(n_patients, "n_patients", low=3)
    cohort = make_cohort("icu_ward", n_patients, seed=seed, fast=fast, **knobs)
    tables = hospital_tables(cohort, seed=seed, text=text)
    folder = Path(tempfile.mkdtemp(prefix="mmlab-hospitals-")) if folder is None else Path(folder)
    write_hospitals(tables, folder)
    return tables, folder


# --------------------------------------------------------------------------- deployment engine
_APP_TOML = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "mmlab-federated-health"
version = "1.0.0"
description = "mmlab: federated multimodal health monitoring (chapter 52)"
license = "MIT"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "mmlab"

[tool.flwr.app.components]
serverapp = "mmlab.systems.federated:server_app"
clientapp = "mmlab.systems.federated:client_app"

[tool.flwr.app.config]
"""


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))


def write_flower_app(folder: str | Path) -> Path:
    """A Flower App folder (``pyproject.toml`` only) whose components are this module's
    :data:`server_app` / :data:`client_app` and whose run config is :data:`DEFAULTS`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    body = _APP_TOML + "".join(f"{k} = {_toml_value(v)}\n" for k, v in DEFAULTS.items())
    (folder / "pyproject.toml").write_text(body)
    return folder


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float, proc) -> None:
    import socket

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SchemaError(f"a Flower process exited early (code {proc.returncode}); see its log")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.3)
    raise SchemaError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def _descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (Linux /proc), children first found first."""
    kids: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _stop(procs: list, grace: float = 15.0) -> tuple[list[int], list[int]]:
    """Stop the processes we started and everything they started (SIGTERM, then SIGKILL
    after ``grace`` seconds): ``(ids that needed SIGKILL, ids still running after it)``."""
    import signal

    pids = []
    for p in procs:
        pids += [p.pid] + _descendants(p.pid)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    end = time.monotonic() + grace
    while time.monotonic() < end and any(_alive(pid) for pid in pids):
        for p in procs:
            p.poll()
        time.sleep(0.2)
    killed = []
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=5)
        except Exception:  # noqa: BLE001 - reported below
            pass
    time.sleep(0.5 if killed else 0.0)
    return killed, [pid for pid in pids if _alive(pid)]


def federation_up(hospitals: int = 3, rounds: int = 2, experiments: str = "fedavg", subjects: int | None = None,
                  seed: int = 0, workdir: str | Path | None = None, timeout: float = 900.0,
                  options: Mapping | None = None, progress=None) -> dict:
    """Run the federation on Flower's deployment engine, as real sites would, on localhost.

    Writes each hospital's folder, starts a SuperLink (``flower-superlink --insecure``) and one
    SuperNode per hospital (``flower-supernode``, node config ``data-dir`` = that hospital's
    folder only) as separate processes, submits the app with ``flwr run`` (a Flower
    configuration in ``<workdir>/flwr``), waits for the ServerApp's result file, then stops
    every process it started (and their children) — also on error. Runtime dependency
    installation is disabled (``FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1``); telemetry
    off. Returns the server's results (without weights) plus ``processes``, ``killed`` (ids
    that ignored SIGTERM for 15 s), ``left_running`` (ids alive after SIGKILL: empty), ``workdir`` and ``wall_s``.
    """
    import subprocess
    import sys

    hospitals = check_int(hospitals, "hospitals", low=2, high=20)
    rounds = check_int(rounds, "rounds", low=1)
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="mmlab-federation-")) if workdir is None else Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    prev = None if hospitals == 3 else [0.3]
    say(f"preparing {hospitals} hospital folders in {work / 'hospitals'}")
    prepare(subjects or 8 * hospitals, seed=seed, folder=work / "hospitals", n_hospitals=hospitals,
            **({} if prev is None else {"prevalence": prev}))
    app = write_flower_app(work / "app")
    home = work / "flwr"
    home.mkdir(exist_ok=True)
    link = _free_port()
    (home / "config.toml").write_text(f'[superlink]\ndefault = "mmlab"\n\n[superlink.mmlab]\n'
                                      f'address = "127.0.0.1:{link}"\ninsecure = true\n')
    bindir = str(Path(sys.executable).parent)
    root = str(Path(mmlab.__file__).resolve().parent.parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
           "PYTHONPATH": root + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""),
           "FLWR_HOME": str(home), "FLWR_TELEMETRY_ENABLED": "0", "RAY_USAGE_STATS_ENABLED": "0",
           "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1", "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result_path = work / "result.json"
    procs: list = []
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    out: dict[str, Any] = {}
    try:
        say(f"starting the SuperLink on 127.0.0.1:{link}")
        sl = subprocess.Popen([str(Path(bindir) / "flower-superlink"), "--insecure", "--port", str(link)],
                              env=env, cwd=work, stdout=open(logs / "superlink.log", "w"), stderr=subprocess.STDOUT)
        procs.append(sl)
        _wait_port(link, 60, sl)
        for k in range(1, hospitals + 1):
            say(f"starting the SuperNode of hospital H{k} (sees only {work / 'hospitals' / f'H{k}'})")
            procs.append(subprocess.Popen(
                [str(Path(bindir) / "flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{link}",
                 "--port", str(_free_port()), "--node-config", f"data-dir='{work / 'hospitals' / f'H{k}'}'"],
                env=env, cwd=work, stdout=open(logs / f"supernode_H{k}.log", "w"), stderr=subprocess.STDOUT))
        overrides = {**dict(options or {}), "rounds": rounds, "experiments": experiments, "hospitals": hospitals,
                     "seed": seed, "result-path": str(result_path)}
        _options({}, overrides)  # unknown keys are an error before anything is submitted
        # the run config must keep the types of the app's defaults (0 for a float option is 0.0)
        overrides = {k: type(DEFAULTS[k])(v) for k, v in overrides.items()}
        cfg = " ".join(f"{k}={_toml_value(v)}" for k, v in overrides.items())
        say("submitting the app with flwr run")
        run = subprocess.run([str(Path(bindir) / "flwr"), "run", str(app), "mmlab", "--run-config", cfg,
                              "--format", "json"], env=env, cwd=work, capture_output=True, text=True, timeout=120)
        try:
            submitted = json.loads(run.stdout[run.stdout.index("{"):])
        except ValueError:
            submitted = {"success": False, "error-message": run.stdout + run.stderr}
        if not submitted.get("success"):
            raise SchemaError(f"flwr run failed: {submitted.get('error-message', submitted)}")
        say(f"run {submitted['run-id']} started; waiting for the result")
        end = time.monotonic() + timeout
        while not result_path.is_file():
            if time.monotonic() > end:
                raise SchemaError(f"the federation did not finish within {timeout:.0f} s (logs in {logs})")
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                raise SchemaError(f"a Flower process exited during the run (logs in {logs})")
            time.sleep(1.0)
        time.sleep(0.5)
        out = json.loads(result_path.read_text())
        out["run_id"] = submitted["run-id"]
    finally:
        say("stopping the SuperNodes and the SuperLink")
        out["processes"] = len(procs)
        out["killed"], out["left_running"] = _stop(procs[::-1])
    out["workdir"] = str(work)
    out["wall_s"] = time.perf_counter() - t0
    return out


# --------------------------------------------------------------------------- the system object
class FederatedHealth:
    """The federated sepsis monitor as one object: ``fit`` runs the federation (simulation),
    ``predict_proba`` / ``dashboard`` score a hospital's table, ``save`` / ``load`` a
    versioned folder (``manifest.json`` + ``weights.npz``; another format or mmlab version
    is a clear error).

    ``options`` are federation options (:data:`DEFAULTS`); ``experiment`` chooses which of
    them becomes the model (default: the first).
    """

    def __init__(self, options: Mapping | None = None, experiment: str | None = None):
        self.options = dict(options or {})
        self.experiment = experiment

    def fit(self, data_root: str | Path) -> "FederatedHealth":
        res = run_federated(data_root, self.options)
        name = self.experiment or next(iter(res["experiments"]))
        if name not in res["experiments"]:
            raise SchemaError(f"experiment {name!r} was not run; ran {sorted(res['experiments'])}")
        r = res["experiments"][name]
        return self._set(r["state_dict"], {"experiment": name, "epsilon": r["epsilon"][-1] if r["epsilon"] else 0.0,
                                           "delta": r["delta"], "rounds": len(r["epsilon"])})

    def _set(self, state_dict: Mapping, info: dict) -> "FederatedHealth":
        self.net_ = net_from_state(state_dict)
        self.state_dict_ = {k: np.asarray(v) for k, v in state_dict.items()}
        self.info_ = dict(info)
        return self

    @classmethod
    def from_result(cls, result: Mapping, experiment: str = "fedavg") -> "FederatedHealth":
        """The model of one experiment of a :func:`run_federated` result."""
        r = result["experiments"][experiment]
        return cls(result.get("options"), experiment)._set(
            r["state_dict"], {"experiment": experiment, "epsilon": r["epsilon"][-1] if r["epsilon"] else 0.0,
                              "delta": r["delta"], "rounds": len(r["epsilon"])})

    def _fitted(self) -> HealthNet:
        if not hasattr(self, "net_"):
            raise SchemaError("FederatedHealth is not fitted: call fit() or load() first")
        return self.net_

    def predict_proba(self, data: HospitalData, which: str = "all") -> np.ndarray:
        """``(n, 2)``: P(no sepsis), P(sepsis) for ``which`` rows."""
        p, _ = predict(self._fitted(), data, data.rows(which))
        return np.stack([1 - p, p], axis=1)

    def dashboard(self, data: HospitalData, which: str = "all") -> pd.DataFrame:
        return dashboard_table(self._fitted(), data, which)

    def save(self, folder: str | Path) -> Path:
        self._fitted()
        manifest = {"modalities": list(MODALITIES),
                    "dims": [int(self.state_dict_[f"enc.{k}.0.weight"].shape[1]) for k in range(len(MODALITIES))],
                    "hidden": int(self.state_dict_["score.0.weight"].shape[0]), "classes": ["no_sepsis", "sepsis"],
                    "dashboard_columns": list(DASHBOARD_SCHEMA), **self.info_}
        folder = write_manifest(folder, FORMAT, manifest)
        np.savez(folder / "weights.npz", **self.state_dict_)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "FederatedHealth":
        folder = Path(folder)
        manifest = read_manifest(folder, FORMAT, "a FederatedHealth model", "run_federated, then FederatedHealth.from_result")
        with np.load(folder / "weights.npz") as z:
            sd = {k: z[k] for k in z.files}
        info = {k: manifest[k] for k in ("experiment", "epsilon", "delta", "rounds") if k in manifest}
        return cls(None, manifest.get("experiment"))._set(sd, info)
