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


def format_result(name: str, result: dict) -> str:
    width = max((len(k) for k in result), default=0)
    lines = [f"mmlab bench {name}"]
    for k, v in result.items():
        v = f"{v:.4g}" if isinstance(v, float) else v
        lines.append(f"  {k:<{width}}  {v}")
    return "\n".join(lines)


@topic("data")
def bench_data(subjects: int = 10, seed: int = 0, **_) -> dict:
    """Generate a full-length ``stress_protocol`` cohort, save it, load it back (chapter 05_data).

    Times the three steps separately, as wall-clock seconds (``*_s``) and as CPU seconds
    of this process (``*_cpu_s``, all threads; steadier than wall time on a busy machine),
    and checks that the loaded cohort equals the generated one. Targets: 10 subjects
    (~1 h each) generate in under a minute; loading is at least 10x faster than generating.
    """
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
        loaded, load_s, load_cpu = timed(lambda: Cohort.load(out))
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    hours = [max(s.end for s in r.streams.values()) / 3600.0 for r in cohort]
    samples = sum(s.data.size for r in cohort for s in r.streams.values())
    return {
        "scenario": "stress_protocol", "subjects": subjects, "seed": seed,
        "hours_per_subject": round(sum(hours) / len(hours), 3),
        "samples": int(samples),
        "generate_s": round(gen_s, 3), "save_s": round(save_s, 3), "load_s": round(load_s, 3),
        "load_speedup": round(gen_s / load_s, 2) if load_s > 0 else None,
        "generate_cpu_s": round(gen_cpu, 3), "save_cpu_s": round(save_cpu, 3),
        "load_cpu_s": round(load_cpu, 3),
        "load_speedup_cpu": round(gen_cpu / load_cpu, 2) if load_cpu > 0 else None,
        "bytes_on_disk": int(size), "roundtrip_equal": bool(loaded.equals(cohort)),
    }
