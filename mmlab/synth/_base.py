"""Machinery shared by the scenarios: seeds, knobs, device clocks, dropouts, missing data.

Introduced in chapter 05_data. Nothing here knows about physiology; the scenario modules
use it to turn "ideal" signals on the reference clock into what devices would have
recorded (their own clocks, gaps, missing sensors), and to keep the ground truth of every
imperfection in ``Recording.meta``.

Randomness: every subject draws from its own generators, one per *purpose* (physiology,
sensor noise, clocks, dropouts, missing modalities...), all derived from
``(seed, scenario, subject index, purpose)``. So subject 3 is the same whether you make 5
or 50 subjects, and switching dropouts on does not change the heartbeats.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from mmlab.errors import SchemaError
from mmlab.recording import REFERENCE_CLOCK, Clock, Stream

#: The unix time (2024-03-04 09:00 UTC) the first synthetic session starts at.
EPOCH = 1_709_542_800.0


# ------------------------------------------------------------------------- seeds
def _key(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SchemaError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def rng_for(seed: int, scenario: str, subject: int, purpose: str) -> np.random.Generator:
    """The generator of one subject for one purpose (stable across numpy versions' API)."""
    return np.random.default_rng([int(seed), _key(scenario), int(subject), _key(purpose)])


# ------------------------------------------------------------------------- knobs
@dataclass(frozen=True)
class Knob:
    """One documented scenario setting.

    ``kind`` is ``"float"``, ``"int"``, ``"prob"`` (a float in [0, 1]), ``"dict"`` (a
    mapping with the keys of ``default``, partial mappings are merged into the default),
    ``"durations"`` (like dict but values are positive minutes), ``"floats"`` (a list of
    floats or one float), or ``"choice"``. ``None`` is accepted when ``optional``.
    """

    default: Any
    doc: str
    kind: str = "float"
    lo: float | None = 0.0
    hi: float | None = None
    optional: bool = False
    choices: tuple = ()
    keys: tuple = ()  # allowed keys of a dict knob whose default is None


def common_knobs(missing: Mapping[str, float], informativeness: Mapping[str, float],
                 clock_offset_s: float = 2.0, clock_drift_ppm: float = 20.0,
                 timestamp_jitter_s: float = 0.002, dropout_per_hour: float = 1.0,
                 dropout_mean_s: float = 8.0) -> dict[str, Knob]:
    """The knobs every scenario has (realistic but modest defaults)."""
    return {
        "noise": Knob(1.0, "sensor noise multiplier (white noise, mains hum, motion "
                           "artifacts, background noise); 0 gives clean signals", hi=100.0),
        "subject_variability": Knob(1.0, "spread of per-subject baselines and reactivity; "
                                         "0 makes every subject the same average person", hi=10.0),
        "informativeness": Knob(dict(informativeness), "per-modality multiplier of how "
                                "strongly the label shows in that modality (0 = no "
                                "information, 1 = realistic, 2 = exaggerated)", kind="dict",
                                hi=10.0),
        "missing": Knob(dict(missing), "probability that a subject lacks a device/modality "
                        "entirely (its streams are not in the recording)", kind="dict", hi=1.0),
        "dropout_per_hour": Knob(dropout_per_hour, "expected sensor dropouts per hour per "
                                 "device (NaN runs; ground truth in meta['dropouts'])", hi=3600.0),
        "dropout_mean_s": Knob(dropout_mean_s, "mean dropout length in seconds (exponential, "
                               "at least 0.5 s)", lo=0.5, hi=3600.0),
        "clock_offset_s": Knob(clock_offset_s, "non-reference device clocks are offset by "
                               "a uniform draw in [-x, x] seconds", hi=3600.0),
        "clock_drift_ppm": Knob(clock_drift_ppm, "non-reference device clocks drift by "
                                "0.5x-1x this many ppm, random sign (real crystals: "
                                "under 100; at most 10000, i.e. 1%)", hi=10_000.0),
        "timestamp_jitter_s": Knob(timestamp_jitter_s, "standard deviation of the noise on "
                                   "timestamps of irregular streams and clip starts (s)", hi=1.0),
    }


def _as_number(name: str, value: Any, knob: Knob, what: str = "") -> float:
    label = f"knob {name!r}{what}"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SchemaError(f"{label} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise SchemaError(f"{label} must be finite, got {value!r}")
    lo = 0.0 if knob.kind == "prob" else knob.lo
    hi = 1.0 if knob.kind == "prob" else knob.hi
    if lo is not None and value < lo:
        raise SchemaError(f"{label} must be >= {lo:g}, got {value!r}")
    if hi is not None and value > hi:
        raise SchemaError(f"{label} must be <= {hi:g}, got {value!r}")
    return value


def resolve_knobs(scenario: str, spec: Mapping[str, Knob], given: Mapping[str, Any]) -> dict:
    """Merge ``given`` into the defaults of ``spec``, checking names, types and ranges."""
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise SchemaError(
            f"scenario {scenario!r} has no knob{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; valid knobs: {', '.join(sorted(spec))}"
        )
    out: dict[str, Any] = {}
    for name, knob in spec.items():
        value = given.get(name, knob.default)
        if value is None:
            if not (knob.optional or knob.default is None):
                raise SchemaError(f"knob {name!r} of scenario {scenario!r} cannot be None")
            out[name] = None
            continue
        if knob.kind in ("dict", "durations"):
            if not isinstance(value, Mapping):
                raise SchemaError(f"knob {name!r} must be a mapping with keys "
                                  f"{sorted(knob.keys or knob.default)}, got {value!r}")
            allowed = knob.keys or tuple(knob.default)
            bad = sorted(set(value) - set(allowed))
            if bad:
                raise SchemaError(f"knob {name!r} has no key{'s' if len(bad) > 1 else ''} "
                                  f"{', '.join(map(repr, bad))}; valid keys: "
                                  f"{', '.join(sorted(allowed))}")
            merged = dict(knob.default or {})
            for k, v in value.items():
                merged[k] = _as_number(name, v, knob, f"[{k!r}]")
                if knob.kind == "durations" and merged[k] <= 0:
                    raise SchemaError(f"knob {name!r}[{k!r}] must be > 0 minutes, got {v!r}")
            out[name] = merged
        elif knob.kind == "floats":
            values = [value] if not isinstance(value, (list, tuple, np.ndarray)) else list(value)
            if not values:
                raise SchemaError(f"knob {name!r} needs at least one value")
            out[name] = [_as_number(name, v, knob, f"[{i}]") for i, v in enumerate(values)]
        elif knob.kind == "int":
            if isinstance(value, bool) or not float(_as_number(name, value, knob)).is_integer():
                raise SchemaError(f"knob {name!r} must be an integer, got {value!r}")
            out[name] = int(value)
        elif knob.kind == "choice":
            if value not in knob.choices:
                raise SchemaError(f"knob {name!r} must be one of {list(knob.choices)}, got {value!r}")
            out[name] = value
        else:
            out[name] = _as_number(name, value, knob)
    return out


def knob_table(spec: Mapping[str, Knob]) -> str:
    """The knobs as ``name (default): doc`` lines, for docstrings and ``--help``."""
    return "\n".join(f"{k} (default {v.default!r}): {v.doc}" for k, v in spec.items())


def check_n_subjects(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise SchemaError(f"n_subjects must be a positive integer, got {n!r}")
    return int(n)


def subject_ids(prefix: str, n: int) -> list[str]:
    width = max(2, len(str(n)))
    return [f"{prefix}{i + 1:0{width}d}" for i in range(n)]


def exact_counts(weights: Sequence[float], n: int) -> np.ndarray:
    """Integer counts summing to ``n`` as close to ``n * weights / sum`` as possible."""
    w = np.asarray(weights, dtype=float)
    if w.sum() <= 0:
        raise SchemaError("label balance weights must not all be zero")
    share = n * w / w.sum()
    counts = np.floor(share).astype(int)
    rest = n - counts.sum()
    order = np.argsort(-(share - counts), kind="stable")
    counts[order[:rest]] += 1
    return counts


# ------------------------------------------------------------------------- clocks
# The clock model is the schema's (mmlab.recording.Clock).
REFERENCE = REFERENCE_CLOCK


def draw_clock(rng: np.random.Generator, knobs: Mapping[str, Any]) -> Clock:
    """A non-reference device clock drawn from the clock knobs (all zero: the reference)."""
    offset = float(rng.uniform(-1.0, 1.0)) * knobs["clock_offset_s"]
    drift = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0)) * knobs["clock_drift_ppm"]
    return Clock(offset_s=round(offset, 6), drift_ppm=round(drift, 4),
                 jitter_s=float(knobs["timestamp_jitter_s"]))


@dataclass(frozen=True)
class Grid:
    """Where a regular stream's samples fall: device start, count, and reference times."""

    start: float  # device seconds
    n: int
    rate: float
    ref_start: float
    ref_step: float

    def ref_times(self) -> np.ndarray:
        return self.ref_start + np.arange(self.n) * self.ref_step


def grid(clock: Clock, ref_start: float, ref_end: float, rate: float) -> Grid:
    """The samples a device at nominal ``rate`` (its own clock) takes over a reference span."""
    n = int(math.floor((ref_end - ref_start) * clock.scale * rate + 1e-9))
    return Grid(start=float(clock.to_device(ref_start)), n=max(n, 0), rate=float(rate),
                ref_start=float(ref_start), ref_step=1.0 / (rate * clock.scale))


def jitter_times(rng: np.random.Generator, t_dev: np.ndarray, jitter_s: float,
                 min_gap: float = 1e-3) -> np.ndarray:
    """Device timestamps with Gaussian jitter, kept strictly increasing."""
    t = np.asarray(t_dev, dtype=float)
    if jitter_s > 0 and len(t):
        steps = np.arange(len(t)) * min_gap
        t = np.maximum.accumulate(np.sort(t + rng.normal(0.0, jitter_s, len(t))) - steps) + steps
    return np.round(t, 9)


# ------------------------------------------------------------------------- dropouts
def plan_dropouts(rng: np.random.Generator, ref_start: float, ref_end: float,
                  per_hour: float, mean_s: float) -> list[tuple[float, float]]:
    """Non-overlapping dropout intervals in reference seconds, inside the span."""
    span = ref_end - ref_start
    if per_hour <= 0 or span <= 0:
        return []
    k = int(rng.poisson(per_hour * span / 3600.0))
    out: list[tuple[float, float]] = []
    for _ in range(k):
        length = float(min(max(0.5, rng.exponential(mean_s)), 0.25 * span))
        a = float(rng.uniform(ref_start, ref_end - length))
        out.append((round(a, 6), round(a + length, 6)))
    out.sort()
    merged: list[tuple[float, float]] = []
    for a, b in out:
        if merged and a <= merged[-1][1] + 1.0:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def apply_dropouts(streams: Sequence[Stream], intervals: Sequence[tuple[float, float]],
                   clock: Clock) -> tuple[list[Stream], list[dict]]:
    """Blank the samples of ``streams`` (one device) inside reference ``intervals``.

    Regular streams get NaN where ``start <= t < end`` (device time, the same test
    :meth:`Stream.slice` uses); irregular streams lose those samples. Returns the new
    streams and the ground-truth records ``{stream, start, end, clock, ref_start,
    ref_end, fill}``.
    """
    out_streams, records = [], []
    for s in streams:
        if not intervals:
            out_streams.append(s)
            continue
        t = s.timestamps()
        keep = np.ones(len(t), dtype=bool)
        data = s.data
        for a, b in intervals:
            start, end = float(clock.to_device(a)), float(clock.to_device(b))
            inside = (t >= start) & (t < end)
            if not inside.any():
                continue
            records.append({"stream": s.name, "start": start, "end": end, "clock": "device",
                            "ref_start": a, "ref_end": b,
                            "fill": "nan" if s.is_regular else "cut"})
            if s.is_regular:
                if data is s.data:
                    data = np.array(data, dtype=np.result_type(data.dtype, np.float32))
                data[inside] = np.nan
            else:
                keep &= ~inside
        if s.is_regular:
            out_streams.append(s if data is s.data else s.replace(data=data))
        else:
            out_streams.append(s if keep.all() else s.replace(data=s.data[keep], times=t[keep]))
    return out_streams, records


# ------------------------------------------------------------------------- assembly
def regular_stream(name: str, data: np.ndarray, modality: str, g: Grid, device: str,
                   channels: Sequence[str] | None = None, units: Any = None,
                   meta: dict | None = None, dtype=np.float32) -> Stream:
    return Stream(name=name, data=np.asarray(data, dtype=dtype), modality=modality,
                  rate=g.rate, start=g.start, channels=list(channels) if channels else None,
                  units=units, device=device, meta=meta or {})


def annotations(rows: list[dict]) -> pd.DataFrame:
    """An annotations table with every extra column present in every row (empty string
    by default), so the table reads back from ``events.tsv`` with the same columns."""
    extra = sorted({k for r in rows for k in r} - {"onset", "duration", "kind", "label", "text"})
    full = [{"onset": float(r["onset"]), "duration": float(r.get("duration", 0.0)), "kind": r["kind"],
             "label": r.get("label", ""), "text": r.get("text", ""),
             **{k: str(r.get(k, "")) for k in extra}} for r in rows]
    return pd.DataFrame(full, columns=["onset", "duration", "kind", "label", "text", *extra])


def cohort_meta(scenario: str, seed: int, n_subjects: int, fast: bool, knobs: dict,
                label_names: list[str], **meta: Any) -> dict:
    """``Cohort.meta`` of a synthetic cohort (known before any subject is generated)."""
    from mmlab import __version__

    return {
        "name": f"mmlab synthetic {scenario}", "scenario": scenario, "seed": seed,
        "n_subjects": n_subjects, "fast": bool(fast), "knobs": knobs,
        "label_names": list(label_names), "generator": f"mmlab.synth {__version__}",
        "synthetic": True, **meta,
    }
