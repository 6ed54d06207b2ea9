"""``mmlab bench serve``: the stress model in production (chapter 60_deployment).

On a detector trained on synthetic ``stress_protocol`` sessions (FAST settings, the last
``held_out`` subjects held out; :func:`mmlab.deploy._demo.demo_detector`):

- per-window latency p50/p95 in-process, one thread, of the fused model as ``torch`` (the
  original), ``onnx``, ``int8`` (dynamic quantization), ``pruned`` (50 % of the weights)
  and ``distilled`` (a student of width 8); their size on disk, and the macro-F1 and ECE of
  the detector with each, on the held-out subject's labelled windows (``f1_delta``: minus
  the original's);
- streaming latency per 1-s chunk (the detector's own streamer, in-process; all streams'
  samples of that second in one push); most chunks only buffer, so ``stream_block_p95_ms``
  times the chunks that complete a block (features, models, alerts for ``block_s`` s);
- HTTP: the server on 127.0.0.1 (uvicorn thread), 1, 16 and 64 concurrent clients each
  posting a subject's session of windows to ``/predict`` for ``duration_s`` seconds:
  throughput in windows/s, request p95, and errors (non-200 answers). The clients run in the
  benchmark's process, sharing its cores with the server: a lower bound on the server.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def _stream_latency(det, rec, chunk_s: float = 1.0) -> np.ndarray:
    from mmlab.systems.stress import stream_chunks

    st = det.streamer(rec.subject)
    chunks: dict[float, dict] = {}
    for t, pieces in stream_chunks(rec, chunk_s):
        chunks.setdefault(t, {}).update(pieces)
    times, decided = [], []
    for t, pieces in sorted(chunks.items()):
        t0 = time.perf_counter()
        events = list(st.push(t, pieces))
        times.append(time.perf_counter() - t0)
        decided.append(any(e["event"] == "window" for e in events))
    list(st.finish())
    return np.asarray(times) * 1e3, np.asarray(decided)


async def _load(url: str, bodies: list[dict], concurrency: int, duration_s: float) -> dict:
    import httpx

    lat, windows, errors = [], 0, 0
    t_end = time.monotonic() + duration_s
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        async def worker(i):
            nonlocal windows, errors
            k = i
            while k == i or time.monotonic() < t_end:  # at least one request each, however busy the machine
                body = bodies[k % len(bodies)]
                k += 1
                t0 = time.perf_counter()
                try:
                    r = await client.post("/predict", json=body)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                lat.append(time.perf_counter() - t0)
                if ok:
                    windows += len(body["windows"])
                else:
                    errors += 1

        t0 = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.monotonic() - t0
    return {"throughput_wps": windows / elapsed, "p95_ms": float(np.percentile(lat, 95) * 1e3),
            "requests": len(lat), "errors": errors}


def run(subjects: int = 8, seed: int = 3, held_out: int = 3, duration_s: float = 3.0, concurrency=(1, 16, 64),
        repeats: int = 300, **_ignored) -> dict:
    from mmlab.deploy._demo import demo_detector
    from mmlab.deploy.compress import tradeoff, variants
    from mmlab.deploy.serve import start_server

    t0 = time.time()
    det, cohort, tables = demo_detector(n_subjects=int(subjects), seed=int(seed), held_out=int(held_out))
    names = sorted(tables["subject"].unique())
    held = names[-int(held_out):]
    train, test = tables[~tables["subject"].isin(held)], tables[tables["subject"].isin(held)]
    with tempfile.TemporaryDirectory() as tmp:
        models = variants(det, train, Path(tmp) / "variants")
        table = tradeoff(det, test, models, repeats=repeats)
        stream_ms, decided = _stream_latency(det, cohort[held[0]])
        det.save(Path(tmp) / "model")
        bodies = [{"windows": json.loads(tables[tables["subject"] == s].drop(columns=["label"])
                                         .to_json(orient="records"))} for s in names]
        http = {}
        with start_server(Path(tmp) / "model") as server:
            for c in concurrency:
                http[str(c)] = asyncio.run(_load(server.url, bodies, int(c), float(duration_s)))
    col = lambda name: {v: round(float(x), 4) for v, x in table[name].items()}  # noqa: E731
    result = {
        "data": f"synthetic stress_protocol (FAST), {subjects} subjects, {','.join(held)} held out, seed {seed}",
        "n_windows": int(table["n_windows"].iloc[0]),
        "fused_model": type(det.fused_).__name__,
        "p50_ms": col("p50_ms"), "p95_ms": col("p95_ms"),
        "speedup_p50": col("speedup"),
        "macro_f1": col("macro_f1"), "f1_delta": col("f1_delta"), "ece": col("ece"),
        "size_mb": col("size_mb"),
        "stream_p50_ms": round(float(np.percentile(stream_ms, 50)), 3),
        "stream_p95_ms": round(float(np.percentile(stream_ms, 95)), 3),
        "stream_block_p95_ms": round(float(np.percentile(stream_ms[decided], 95)), 3) if decided.any() else None,
        "http": http, "errors": int(sum(h["errors"] for h in http.values())),
        "windows_per_request": round(float(np.mean([len(b["windows"]) for b in bodies])), 1),
        "seconds": round(time.time() - t0, 1),
    }
    return {**result, **tables_of(result)}


def tables_of(result: dict) -> dict:
    """The trade-off and HTTP figures as rows (``mmlab bench serve`` prints them as tables)."""
    variants = [{"variant": v, "p50_ms": result["p50_ms"][v], "p95_ms": result["p95_ms"][v],
                 "size_mb": result["size_mb"][v], "f1_delta": result["f1_delta"][v], "ece": result["ece"][v]}
                for v in result["p50_ms"]]
    http = [{"concurrency": int(c), "throughput_wps": round(h["throughput_wps"], 1),
             "p95_ms": round(h["p95_ms"], 1), "errors": h["errors"]} for c, h in result["http"].items()]
    return {"variants": variants, "http_load": http}
