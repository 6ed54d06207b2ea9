"""``mmlab bench federated``: federated multimodal sepsis monitoring across hospitals
(chapter 52_federated_health).

On an ``icu_ward`` cohort (hospitals with different case mix and devices), every AUROC is
measured on the same held-out patients (each hospital's test patients, pooled):

* ``auroc_centralised`` — one model on the pooled training data (what hospitals may not do);
* ``auroc_split`` — the same model trained the split way inside one site: modality nodes
  exchange only embeddings and gradients with the fusion server (pooled data, so it is
  comparable with the centralised figure);
* ``auroc_federated`` / ``auroc_federated_noniid`` — FedAvg and FedProx with Flower
  (``run_simulation``, Ray on 2 CPUs);
* ``auroc_alone`` — each hospital alone, on its own test patients, next to
  ``auroc_federated_by_hospital`` (the FedAvg model on the same patients);
* ``auroc_dp`` — DP-SGD (Opacus) at two noise multipliers: ``{epsilon: auroc}`` with the
  maximum ε over hospitals after the last round, ``epsilon_max`` (the larger) and ``delta``;
* ``attention_weights`` (mean over present rows, FedAvg model) and
  ``auroc_without`` (each modality node absent for every patient);
* ``secagg_equal`` — SecAgg+ aggregate equals plain weighted FedAvg (``secagg_max_abs_diff``);
* ``round_s`` (median round after the first, which includes Ray's start), ``wall_s``,
  ``bytes_per_client_round`` (parameter bytes a hospital sends per round).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np


def run(subjects: int = 60, rounds: int = 5, local_epochs: int = 3, noise: tuple = (0.8, 2.0), seed: int = 0,
        secagg: bool = True) -> dict:
    """Run the benchmark (see the module docstring); ``noise`` holds the two DP noise multipliers."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mmlab-bench-federated-") as tmp:
        out = _run(subjects, rounds, local_epochs, noise, seed, secagg, Path(tmp))
    out["wall_s"] = time.perf_counter() - t0
    return out


def _run(subjects, rounds, local_epochs, noise, seed, secagg, folder) -> dict:
    from mmlab.systems import federated as F

    tables, folder = F.prepare(subjects, seed=seed, folder=folder)
    pooled = F.pool(tables)
    epochs = rounds * local_epochs
    central = F.build_net(F.DIMS, 16, seed)
    F.train_local(central, pooled, epochs=epochs, seed=seed)
    split = F.SplitHospital(pooled, seed=seed).fit(epochs=epochs)
    alone, alone_nets = {}, {}
    for h, d in tables.items():
        net = F.build_net(F.DIMS, 16, seed)
        F.train_local(net, d, epochs=epochs, seed=seed)
        alone[h], alone_nets[h] = F.auroc(net, d), net
    exps = ["fedavg", "fedprox"] + [f"dp:{s}" for s in noise]
    fed = F.run_federated(folder, {"experiments": ",".join(exps), "rounds": rounds, "local-epochs": local_epochs,
                                   "seed": seed, "fraction-evaluate": 0.0})
    nets = {e: F.net_from_state(r["state_dict"]) for e, r in fed["experiments"].items()}
    fa = nets["fedavg"]
    test = pooled.rows("test")
    _, alpha = F.predict(fa, pooled, test)
    pres = np.stack([pooled.present[m][test] for m in F.MODALITIES], 1)
    attention = {m: float(alpha[pres[:, k], k].mean()) for k, m in enumerate(F.MODALITIES)}
    dp = {}
    for s in noise:
        r = fed["experiments"][f"dp:{s}"]
        dp[round(r["epsilon"][-1], 3)] = F.auroc(nets[f"dp:{s}"], pooled)
    audit = fed["experiments"]["fedavg"]["audit"]
    rounds_s = audit["round_s"]
    out = {
        "subjects": subjects, "hospitals": len(tables), "rounds": rounds, "local_epochs": local_epochs,
        "test_windows": int(len(test)), "test_positives": int(pooled.y[test].sum()),
        "auroc_centralised": F.auroc(central, pooled),
        "auroc_split": float(_auc(pooled.y[test], split.predict(test)[0])),
        "auroc_federated": F.auroc(fa, pooled),
        "auroc_federated_noniid": F.auroc(nets["fedprox"], pooled),
        "auroc_alone": alone,
        "auroc_federated_by_hospital": {h: F.auroc(fa, d) for h, d in tables.items()},
        "auroc_dp": dp,
        "epsilon_max": float(max(dp)),
        "delta": float(fed["experiments"][f"dp:{noise[0]}"]["delta"]),
        "epsilon_per_round": {f"dp:{s}": fed["experiments"][f"dp:{s}"]["epsilon"] for s in noise},
        "attention_weights": attention,
        "auroc_without": {m: F.auroc(fa, pooled, absent=m) for m in F.MODALITIES},
        "round_s": float(np.median(rounds_s[1:])) if len(rounds_s) > 1 else float(rounds_s[0]),
        "first_round_s": float(rounds_s[0]),
        "federation_s": float(fed["run_s"]),
        "bytes_per_client_round": int(np.median([w["bytes"] for w in audit["wire"]])),
    }
    if secagg:
        sa = F.run_secagg(folder, {"local-epochs": 1, "seed": seed})
        out["secagg_equal"] = sa["equal"]
        out["secagg_max_abs_diff"] = sa["max_abs_diff"]
    return out


def _auc(y, p) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")
