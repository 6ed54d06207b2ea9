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
