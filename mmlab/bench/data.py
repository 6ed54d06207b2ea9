"""``mmlab bench data``: generate, save and load a full stress_protocol cohort."""

from __future__ import annotations

_LOAD_IN_FRESH_PROCESS = """
import json, sys, time
from mmlab.recording import Cohort
Cohort.load(sys.argv[1])  # warm-up on a tiny cohort: lazy imports (pyarrow, soundfile)
wall, cpu = time.perf_counter(), time.process_time()
Cohort.load(sys.argv[2])
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}))
"""


def _touch_all(cohort) -> float:
    """Read every sample of every stream (a checksum), so a lazy load pays in full."""
    import numpy as np

    return sum(float(np.nansum(s.data, dtype=np.float64)) for r in cohort for s in r.streams.values())


def run(subjects: int = 10, seed: int = 0, **_) -> dict:
    """Generate a full-length ``stress_protocol`` cohort, save it, load it back (chapter 05_data).

    A tiny cohort is generated, saved and loaded first, so library imports and first-call
    costs are paid before anything is timed (for generating and loading alike). Then it
    times the three steps separately in this process, as wall-clock seconds (``*_s``) and
    CPU seconds (``*_cpu_s``, all threads; steadier than wall time on a busy machine), and
    checks that the loaded cohort equals the generated one. ``load_fresh_process_s`` /
    ``load_fresh_process_cpu_s`` time the same load in a new Python process (imports
    excluded, files flushed first), as when a notebook loads a saved cohort later; there
    the first touch of hundreds of MB of new memory is part of the cost.
    ``load_mmap_touch_s`` opens the cohort memory-mapped (``Cohort.load(mmap=True)``) and
    reads every sample once; pages come from the file cache without zero-filling new
    memory, which on small VMs is most of a copying load. Targets: 10
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

    with tempfile.TemporaryDirectory(prefix="mmlab-bench-") as tmp:
        warm = synth.make_cohort("stress_protocol", n_subjects=1, seed=seed, fast=True).save(Path(tmp) / "warm")
        Cohort.load(warm)
        cohort, gen_s, gen_cpu = timed(
            lambda: synth.make_cohort("stress_protocol", n_subjects=subjects, seed=seed))
        out = Path(tmp) / "cohort"
        _, save_s, save_cpu = timed(lambda: cohort.save(out))
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        loaded, load_s, load_cpu = timed(lambda: Cohort.load(out))
        equal = loaded.equals(cohort)
        del loaded
        # Memory-mapped: open, then read every sample once (so nothing is left unread).
        _, mmap_s, mmap_cpu = timed(lambda: _touch_all(Cohort.load(out, mmap=True)))
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
        "load_mmap_touch_s": round(mmap_s, 3),
        "load_mmap_speedup": round(gen_s / mmap_s, 2),
        "generate_cpu_s": round(gen_cpu, 3), "save_cpu_s": round(save_cpu, 3),
        "load_cpu_s": round(load_cpu, 3), "load_speedup_cpu": round(gen_cpu / load_cpu, 2),
        "load_fresh_process_s": round(fresh["wall"], 3),
        "load_fresh_process_cpu_s": round(fresh["cpu"], 3),
        "bytes_on_disk": int(size), "roundtrip_equal": bool(equal),
    }
