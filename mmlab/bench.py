"""Benchmarks behind ``mmlab bench TOPIC``: they print figures, tests never time anything.

Each topic is a function returning a JSON-able dict; :func:`run` dispatches by name and
:func:`format_result` prints the dict as aligned ``key: value`` lines.
"""

from __future__ import annotations

from typing import Callable

from mmlab.errors import MMLabError

_TOPICS: dict[str, Callable[..., dict]] = {}


def topic(name: str):
    """Register a benchmark function under ``name``."""
    def deco(fn: Callable[..., dict]) -> Callable[..., dict]:
        _TOPICS[name] = fn
        return fn
    return deco


def run(name: str, **kwargs) -> dict:
    """Run the benchmark ``name`` with keyword options (e.g. ``subjects``, ``seed``)."""
    if name not in _TOPICS:
        raise MMLabError(f"unknown benchmark {name!r}; available: {sorted(_TOPICS)}")
    return _TOPICS[name](**kwargs)


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


_LOAD_IN_FRESH_PROCESS = """
import json, sys, time
from mmlab.recording import Cohort
Cohort.load(sys.argv[1])  # warm-up on a tiny cohort: lazy imports (pyarrow, soundfile)
wall, cpu = time.perf_counter(), time.process_time()
Cohort.load(sys.argv[2])
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}))
"""


@topic("data")
def bench_data(subjects: int = 10, seed: int = 0, **_) -> dict:
    """Generate a full-length ``stress_protocol`` cohort, save it, load it back (chapter 05_data).

    Times the three steps separately in this process, as wall-clock seconds (``*_s``) and
    CPU seconds (``*_cpu_s``, all threads; steadier than wall time on a busy machine), and
    checks that the loaded cohort equals the generated one. ``load_fresh_process_s`` /
    ``load_fresh_process_cpu_s`` time the same load in a new Python process (imports
    excluded, files flushed first), as when a notebook loads a saved cohort later; there
    the first touch of hundreds of MB of new memory is part of the cost. Targets: 10
    subjects (~1 h each) generate in under a minute; loading is at least 10x faster than
    generating (``load_speedup``).
    """
    import json
    import os
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path

    from mmlab import synth
    from mmlab.recording import Cohort

    def timed(fn):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        return out, time.perf_counter() - wall, time.process_time() - cpu

    cohort, gen_s, gen_cpu = timed(lambda: synth.make_cohort("stress_protocol", n_subjects=subjects, seed=seed))
    with tempfile.TemporaryDirectory(prefix="mmlab-bench-") as tmp:
        out = Path(tmp) / "cohort"
        _, save_s, save_cpu = timed(lambda: cohort.save(out))
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        loaded, load_s, load_cpu = timed(lambda: Cohort.load(out))
        equal = loaded.equals(cohort)
        del loaded
        warm = synth.make_cohort("stress_protocol", n_subjects=1, seed=seed, fast=True).save(Path(tmp) / "warm")
        if hasattr(os, "sync"):
            os.sync()
        child = subprocess.run([sys.executable, "-c", _LOAD_IN_FRESH_PROCESS, str(warm), str(out)],
                               capture_output=True, text=True, check=True)
        fresh = json.loads(child.stdout.strip().splitlines()[-1])
    hours = [max(s.end for s in r.streams.values()) / 3600.0 for r in cohort]
    samples = sum(s.data.size for r in cohort for s in r.streams.values())
    return {
        "scenario": "stress_protocol", "subjects": subjects, "seed": seed,
        "hours_per_subject": round(sum(hours) / len(hours), 3),
        "samples": int(samples),
        "generate_s": round(gen_s, 3), "save_s": round(save_s, 3), "load_s": round(load_s, 3),
        "load_speedup": round(gen_s / load_s, 2),
        "generate_cpu_s": round(gen_cpu, 3), "save_cpu_s": round(save_cpu, 3),
        "load_cpu_s": round(load_cpu, 3), "load_speedup_cpu": round(gen_cpu / load_cpu, 2),
        "load_fresh_process_s": round(fresh["wall"], 3),
        "load_fresh_process_cpu_s": round(fresh["cpu"], 3),
        "bytes_on_disk": int(size), "roundtrip_equal": bool(equal),
    }


@topic("contrastive")
def bench_contrastive(subjects: int = 200, seed: int = 0, **_) -> dict:
    """Voice <-> transcript alignment on a full-length ``call_center`` cohort (chapter
    22_contrastive).

    One pair per caller turn (voice features <-> frozen MiniLM embedding of the
    transcript); 30 % of the calls are held out. Times feature extraction, text embedding
    and training separately (wall clock, one process; training uses one PyTorch thread).
    Reports held-out recall@1/5/10 (mean of voice->text and text->voice) against chance
    and against linear CCA (4 components on PCA-64 views) on the same split, and zero-shot
    satisfaction labels from caller-style prompts (and from one-line descriptions) per turn
    and per call (scores averaged over the call's turns) against the majority class, and
    a supervised logistic regression on the voice features as the ceiling.
    Target: training under 2 minutes on 2 CPU cores.
    """
    import time

    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mmlab import synth
    from mmlab.represent import (CALL_DESCRIPTIONS, CALL_PROMPTS, ContrastiveAligner, LinearCCA,
                                 call_center_pairs, retrieval_report, split_by_group, zero_shot_predict,
                                 zero_shot_scores)
    from mmlab.text import embed

    t = time.perf_counter()
    cohort = synth.make_cohort("call_center", n_subjects=subjects, seed=seed)
    generate_s = time.perf_counter() - t
    t = time.perf_counter()
    pairs = call_center_pairs(cohort, embed=False)
    voice_s = time.perf_counter() - t
    t = time.perf_counter()
    pairs.b = embed(pairs.meta["text"].tolist())
    text_s = time.perf_counter() - t
    groups = pairs.meta["group"].to_numpy()
    keep = np.isfinite(pairs.a).all(axis=1)
    tr, te = split_by_group(groups, 0.3, seed=seed)
    tr, te = tr[keep[tr]], te[keep[te]]
    A, B, y = pairs.a, pairs.b, pairs.meta["label"].to_numpy()

    model = ContrastiveAligner(seed=seed).fit(A[tr], B[tr], groups=groups[tr])
    rep = model.retrieval(A[te], B[te], names=("voice", "text"))
    t = time.perf_counter()
    cca = LinearCCA(4, pca=64).fit(A[tr], B[tr])
    cca_s = time.perf_counter() - t
    crep = retrieval_report(*cca.transform(A[te], B[te]), names=("voice", "text"))

    def both(r: dict, k: int) -> float:
        return round((r[f"voice->text@{k}"] + r[f"text->voice@{k}"]) / 2, 4)

    scores = zero_shot_scores(model, A[te], CALL_PROMPTS)
    zs = float(np.mean(scores.idxmax(axis=1).to_numpy() == y[te]))
    per_call = scores.groupby(groups[te]).mean()  # one decision per call: mean over its turns
    call_y = pairs.meta.iloc[te].groupby("group")["label"].first()
    zs_call = float(np.mean(per_call.idxmax(axis=1) == call_y.loc[per_call.index]))
    zs_desc = float(np.mean(zero_shot_predict(model, A[te], CALL_DESCRIPTIONS) == y[te]))
    values, counts = np.unique(y[tr], return_counts=True)
    majority = values[np.argmax(counts)]
    chance_acc = float(np.mean(y[te] == majority))
    chance_call = float(np.mean(call_y == majority))
    sup = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(A[tr], y[tr])
    return {
        "scenario": "call_center", "subjects": subjects, "seed": seed,
        "n_train": int(len(tr)), "n_test": int(len(te)),
        "generate_s": round(generate_s, 2), "voice_features_s": round(voice_s, 2),
        "text_embed_s": round(text_s, 2), "train_s": round(model.train_seconds_, 2),
        "epochs": int(len(model.history_)), "best_epoch": int(model.best_epoch_),
        "temperature": round(model.temperature_, 4),
        "recall_at_1": both(rep, 1), "recall_at_5": both(rep, 5), "recall_at_10": both(rep, 10),
        "voice_to_text_at_1": round(rep["voice->text@1"], 4), "text_to_voice_at_1": round(rep["text->voice@1"], 4),
        "chance_at_1": round(rep["chance@1"], 4), "chance_at_10": round(rep["chance@10"], 4),
        "cca_train_s": round(cca_s, 2), "cca_recall_at_1": both(crep, 1), "cca_recall_at_10": both(crep, 10),
        "zero_shot_accuracy": round(zs, 4), "zero_shot_accuracy_descriptions": round(zs_desc, 4),
        "chance_accuracy": round(chance_acc, 4),
        "zero_shot_call_accuracy": round(zs_call, 4), "chance_call_accuracy": round(chance_call, 4),
        "supervised_voice_accuracy": round(float(sup.score(A[te], y[te])), 4),
    }
