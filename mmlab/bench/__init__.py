"""Benchmarks behind ``mmlab bench TOPIC``: they print figures; tests never time anything.

One module per topic (``mmlab/bench/<topic>.py``), each with a ``run(**options) -> dict``
returning JSON-able figures. :func:`run` imports the topic's module only when asked, so
``mmlab bench data`` does not pay for torch, and topics live in separate files.
"""

from __future__ import annotations

import importlib

from mmlab.errors import MMLabError

#: topic -> what it measures (the module ``mmlab.bench.<topic>`` holds ``run``)
TOPICS = {
    "data": "generate, save and load a full stress_protocol cohort (chapter 05)",
    "features": "vectorised windowed features vs a per-window neurokit2 reference (chapter 13)",
    "contrastive": "voice <-> transcript dual encoder on call_center (chapter 22)",
    "fusion": "every fusion method and the unimodal baselines, leave-one-subject-out (chapters 30-33)",
    "stress": "the wearable stress system: LOSO window and event scores, consensus vs single modality, streaming (chapter 50)",
    "emotion": "the call-centre emotion system: towers alone vs fused, per-call satisfaction; --data Emo-DB: LOSO UAR (chapter 51)",
    "federated": "federated sepsis monitoring: centralised, split, FedAvg/FedProx, alone, DP, SecAgg+ (chapter 52)",
    "maintenance": "predictive maintenance: per-modality vs fused fault F1, horizon AUROC, lead time, drift, a new sensor (chapter 53)",
    "dashboard": "the served clinician dashboard: first render, open a patient, ack round trip; concurrent sessions, lost acks (issue 13)",
    "serve": "the stress model in production: ONNX/int8/pruned/distilled latency, size, F1, ECE; streaming; HTTP load (chapter 60)",
}


def run(name: str, **kwargs) -> dict:
    """Run the benchmark ``name`` with keyword options (e.g. ``subjects``, ``seed``)."""
    if name not in TOPICS:
        raise MMLabError(f"unknown benchmark {name!r}; available: {sorted(TOPICS)}")
    return importlib.import_module(f"mmlab.bench.{name}").run(**kwargs)


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    return "" if v is None else str(v)


def _table(rows: list[dict]) -> list[str]:
    """A list of dicts as an aligned text table; nested dicts become ``key.sub`` columns."""
    flat = []
    for r in rows:
        f = {}
        for k, v in r.items():
            if isinstance(v, dict):
                f.update({f"{k}.{s}": x for s, x in v.items()})
            else:
                f[k] = v
        flat.append(f)
    cols = list(dict.fromkeys(k for f in flat for k in f))
    cells = [[_cell(f.get(c)) for c in cols] for f in flat]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    out = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    out += ["  ".join(x.ljust(w) for x, w in zip(r, widths)) for r in cells]
    return ["    " + line.rstrip() for line in out]


def format_result(name: str, result: dict) -> str:
    """``key  value`` lines; a list of dicts (e.g. one row per method) prints as a table."""
    width = max((len(k) for k in result), default=0)
    lines = [f"mmlab bench {name}"]
    for k, v in result.items():
        if isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
            lines.append(f"  {k}:")
            lines += _table(v)
            continue
        v = f"{v:.4g}" if isinstance(v, float) else v
        lines.append(f"  {k:<{width}}  {v}")
    return "\n".join(lines)
