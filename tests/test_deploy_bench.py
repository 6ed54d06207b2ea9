"""`mmlab bench serve`: one JSON object with every key issue 15 names (a small, short run;
the figures themselves are not checked: tests never time anything)."""

import json

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("fastapi")


def test_bench_serve_has_the_issue_keys():
    from mmlab import bench

    r = bench.run("serve", subjects=5, held_out=1, duration_s=0.3, concurrency=(1, 4), repeats=5)
    variants = {"torch", "onnx", "int8", "distilled", "pruned"}
    for key in ("p50_ms", "p95_ms", "f1_delta", "ece", "size_mb"):
        assert set(r[key]) == variants, key
    assert r["f1_delta"]["torch"] == 0 and r["size_mb"]["int8"] < r["size_mb"]["onnx"]
    assert set(r["http"]) == {"1", "4"}
    assert all({"throughput_wps", "p95_ms", "errors"} <= set(h) for h in r["http"].values())
    assert r["errors"] == 0 and r["stream_p95_ms"] >= 0
    json.dumps(r)  # JSON-able as it is
    assert "variant" in bench.format_result("serve", r)


def test_load_makes_at_least_one_request_per_worker_when_time_is_already_up():
    """On a busy machine the load window could close before a worker starts: each worker
    still sends one request, so the percentile has data (it raised IndexError before)."""
    import asyncio
    import socket

    from mmlab.bench.serve import _load

    with socket.socket() as s:  # a free 127.0.0.1 port with nothing listening: every request fails fast
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = asyncio.run(_load(f"http://127.0.0.1:{port}", [{"windows": []}], concurrency=3, duration_s=0.0))
    assert r["requests"] == 3 and r["errors"] == 3 and r["throughput_wps"] == 0
