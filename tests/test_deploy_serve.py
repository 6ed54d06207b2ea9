"""The serving process on 127.0.0.1: batch = in-process, streaming = batch, fallback, dynamic
batching, load and fault tests (concurrent streams, a client disconnecting, a malformed
request storm, a rollback under load), and the registry (chapter 60_deployment).

One server is started for the module (a uvicorn thread on a free port) and stopped at the
end; every test is bounded in requests and time."""

import json
import socket
from pathlib import Path
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from mmlab.deploy.registry import Registry
from mmlab.deploy.serve import piece_json, start_server
from mmlab.errors import SchemaError
from mmlab.systems.stress import StressDetector, stream_chunks

CARD = {"data": "synthetic stress_protocol, 4 subjects (FAST)", "metrics": {"macro_f1": "see bench"},
        "calibration": "temperature scaled on out-of-fold subjects", "intended_use": "teaching",
        "failure_modes": ["short sessions", "wrist motion"]}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from mmlab.deploy._demo import demo_detector

    det, cohort, tables = demo_detector()
    root = tmp_path_factory.mktemp("serve")
    det.save(root / "m1")
    det2 = StressDetector.load(root / "m1")
    det2.fused_temperature_.temperature_ = 3.0  # a second version whose fused output differs
    det2.save(root / "m2")
    reg = Registry(root / "registry")
    v1 = reg.register(root / "m1", CARD, by="test")
    v2 = reg.register(root / "m2", {**CARD, "calibration": "temperature 3"}, by="test")
    reg.promote(v1, by="test", reason="first")
    reg.promote(v2, by="test", reason="second")
    server = start_server(root / "registry", batch_wait_ms=10)
    yield {"root": root, "det1": det, "det2": det2, "cohort": cohort, "tables": tables, "server": server, "reg": reg}
    server.stop()


def _client(setup):
    return httpx.Client(base_url=setup["server"].url, timeout=30)


def _rows(table):
    return json.loads(table.drop(columns=["label"]).to_json(orient="records"))


def _fused(windows):
    return np.array([np.nan if w["fused"] is None else w["fused"] for w in windows])


def _requests(rec, chunk_s, keep=None, until=None, drop=None):
    """(t, [piece json]) per arrival time: a device's delivery grouped by chunk."""
    groups = {}
    for t, pieces in stream_chunks(rec, chunk_s, drop=drop):
        for name, p in pieces.items():
            if (keep is None or name in keep) and (until is None or p.start < until):
                groups.setdefault(t, {})[name] = p
    return sorted(groups.items())


WRIST = ("wrist_bvp", "wrist_eda", "wrist_acc", "wrist_temp")


def test_health_names_the_version(setup):
    with _client(setup) as c:
        h = c.get("/health").json()
    assert h["status"] == "ok" and h["model_version"] == "v2" and "ecg" in h["modalities"]


def test_window_batches_equal_in_process_and_are_batched(setup):
    tables, det = setup["tables"], setup["det2"]
    subjects = sorted(tables["subject"].unique())
    results = {}

    def call(s):
        with _client(setup) as c:
            results[s] = c.post("/predict", json={"windows": _rows(tables[tables["subject"] == s])}).json()

    threads = [threading.Thread(target=call, args=(s,)) for s in subjects * 2]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    for s in subjects:
        ref = det.predict_table(tables[tables["subject"] == s])
        got = results[s]
        assert got["model_version"] == "v2"
        assert np.allclose(_fused(got["windows"]), ref["fused"].to_numpy(), atol=1e-6, equal_nan=True)
        assert all(w["subject"] == s for w in got["windows"])
    assert max(r["batch_size"] for r in results.values()) > 1  # requests shared a model call


def test_streaming_equals_in_process_stream_with_fallback(setup):
    det, rec = setup["det2"], setup["cohort"]["S05"]
    keep = (*WRIST, "chest_ecg")
    reqs = _requests(rec, 10.0, keep=keep, until=230.0, drop={"chest_ecg": (120.0, 1e9)})
    wins = []
    with _client(setup) as c:
        for t, pieces in reqs:
            r = c.post("/stream", json={"subject": "fallback", "t": t, "pieces": [piece_json(p) for p in pieces.values()]})
            assert r.status_code == 200, r.text
            assert r.json()["model_version"] == "v2"
            wins += [e for e in r.json()["events"] if e["event"] == "window"]
        wins += [e for e in c.post("/stream/finish", json={"subject": "fallback"}).json()["events"]
                 if e["event"] == "window"]
    local = [e for e in det.stream(((t, p) for t, p in reqs), subject="fallback") if e["event"] == "window"]
    assert [(w["start"], w["end"]) for w in wins] == [(w["start"], w["end"]) for w in local]
    assert np.allclose(_fused(wins), [np.nan if w["fused"] is None else w["fused"] for w in local], equal_nan=True)
    before = [w for w in wins if w["end"] <= 110 and w["fused"] is not None]
    after = [w for w in wins if w["start"] >= 130 and w["fused"] is not None]
    assert before and after
    assert all("ecg" in w["modalities_used"] for w in before)  # ECG votes while it arrives
    assert all("ecg" not in w["modalities_used"] and "bvp" in w["modalities_used"] for w in after)


def test_concurrent_streams_lose_and_duplicate_no_window(setup):
    cohort = setup["cohort"]
    subjects = sorted(cohort.subjects)[:4] if hasattr(cohort, "subjects") else ["S01", "S02", "S03", "S04"]
    n_streams, deadline = 8, time.monotonic() + 40
    out, errors = {}, []

    def run(i):
        rec = cohort[subjects[i % len(subjects)]]
        name = f"load{i}"
        wins = []
        with _client(setup) as c:
            for t, pieces in _requests(rec, 10.0, keep=WRIST, until=200.0):
                if time.monotonic() > deadline:
                    errors.append(f"{name}: out of time")
                    return
                r = c.post("/stream", json={"subject": name, "t": t, "pieces": [piece_json(p) for p in pieces.values()]})
                if r.status_code != 200:
                    errors.append(r.text)
                    return
                wins += [(e["start"], e["end"]) for e in r.json()["events"] if e["event"] == "window"]
            r = c.post("/stream/finish", json={"subject": name})
            wins += [(e["start"], e["end"]) for e in r.json()["events"] if e["event"] == "window"]
        out[i] = wins

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_streams)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    assert not errors and len(out) == n_streams
    step = setup["det2"].step_s
    for i, wins in out.items():
        ends = np.array([e for _, e in wins])
        assert len(set(wins)) == len(wins) > 10  # no duplicate
        assert np.allclose(np.diff(ends), step)  # no gap: every window of the grid, in order
        assert ends[-1] >= 190 - step


def test_client_disconnecting_mid_stream_leaves_the_server_serving(setup):
    server = setup["server"]
    rec = setup["cohort"]["S02"]
    reqs = _requests(rec, 10.0, keep=WRIST, until=120.0)
    with _client(setup) as c:
        for t, pieces in reqs[:3]:
            assert c.post("/stream", json={"subject": "gone", "t": t,
                                           "pieces": [piece_json(p) for p in pieces.values()]}).status_code == 200
    # a client that promises a long body, sends a piece of it and hangs up
    for _ in range(3):
        s = socket.create_connection((server.host, server.port), timeout=5)
        s.sendall(b"POST /stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100000\r\n\r\n{\"subject\": \"gone\", \"t\": 40, \"pieces\": [")
        s.close()
    # and one that gives up waiting
    with httpx.Client(base_url=server.url, timeout=0.001) as c:
        with pytest.raises(httpx.TimeoutException):
            c.post("/predict", json={"windows": _rows(setup["tables"])})
    with _client(setup) as c:
        assert c.get("/health").json()["status"] == "ok"
        for t, pieces in reqs[3:]:  # the stream resumes where it was
            r = c.post("/stream", json={"subject": "gone", "t": t, "pieces": [piece_json(p) for p in pieces.values()]})
            assert r.status_code == 200 and r.json()["seq"] >= 4


def test_malformed_request_storm_gets_4xx_and_no_crash(setup):
    good = {"name": "wrist_eda", "modality": "eda", "device": "wrist", "rate": 4.0, "start": 0.0, "data": [1.0] * 4}
    feature = setup["det2"].features_[0]
    bad = [
        ("/predict", b"{not json"),
        ("/predict", {"windows": []}),
        ("/predict", {"windows": [{"subject": "a", "start": 0}]}),
        ("/predict", {"windows": [{"subject": "a", "start": 0, "end": 30, "no_such_feature": 1.0}]}),
        ("/predict", {"windows": [{"subject": "a", "start": "soon", "end": 30}]}),
        ("/predict", {"windows": [{"subject": "a", "start": 30, "end": 0}]}),
        ("/predict", {"windows": [{"subject": "a", "start": 0, "end": 30, feature: "high"}]}),
        ("/stream", {"subject": "storm", "t": 1.0}),
        ("/stream", {"subject": "storm", "t": 1.0, "pieces": [{**good, "rate": -4}]}),
        ("/stream", {"subject": "storm", "t": 1.0, "pieces": [{**good, "data": "abc"}]}),
        ("/stream", {"subject": "storm", "t": 1.0, "pieces": [{**good, "data": [1.0] * 4000}]}),
        ("/stream", {"subject": "storm", "t": 1.0, "pieces": [good, good]}),
        ("/stream", {"subject": "storm", "t": 1.0, "pieces": [{**good, "extra": 1}]}),
        ("/stream", {"subject": "", "t": 1.0, "pieces": [good]}),
        ("/stream/finish", {"subject": "never-opened"}),
        ("/admin/promote", {"version": "v99"}),
    ]
    with _client(setup) as c:
        assert c.post("/stream", json={"subject": "storm", "t": 1.0, "pieces": [good]}).status_code == 200
        assert c.post("/stream", json={"subject": "storm", "t": 2.0,
                                       "pieces": [{**good, "start": 1.0}]}).status_code == 200
        bad += [("/stream", {"subject": "storm", "t": 2.0, "pieces": [{**good, "data": [[1.0, 2.0], [3.0]]}]}),
                ("/stream", {"subject": "storm", "t": 2.0, "pieces": [{**good, "data": [[1.0, 2.0]] * 4}]}),
                ("/stream", {"subject": "storm", "t": 2.0, "pieces": [{**good, "start": 1e9}]}),
                ("/stream", {"subject": "storm", "t": 1e12, "pieces": [{**good, "start": 1.0}]}),
                ("/stream", {"subject": "storm", "t": 2.0, "pieces": [{**good, "rate": 8.0, "data": [1.0] * 8}]})]
        before = c.get("/health").json()["errors_5xx"]
        codes = []
        for i in range(150):
            path, body = bad[i % len(bad)]
            r = (c.post(path, content=body, headers={"content-type": "application/json"}) if isinstance(body, bytes)
                 else c.post(path, json=body))
            codes.append(r.status_code)
            assert 400 <= r.status_code < 500, (path, body, r.text)
            assert r.json()["detail"]
        h = c.get("/health").json()
    assert h["status"] == "ok" and h["errors_5xx"] == before
    msgs = {}
    with _client(setup) as c:
        for path, body in bad[-2:] + bad[3:4]:
            msgs[path] = c.post(path, json=body).json()["detail"]
    assert "changed its rate" in msgs["/stream"] and "no_such_feature" in msgs["/predict"]


def test_rollback_under_load_every_response_names_one_version(setup):
    tables, reg = setup["tables"], setup["reg"]
    table = tables[tables["subject"] == "S05"]
    refs = {"v1": setup["det1"].predict_table(table)["fused"].to_numpy(),
            "v2": setup["det2"].predict_table(table)["fused"].to_numpy()}
    assert np.nanmax(np.abs(refs["v1"] - refs["v2"])) > 1e-3  # the versions are told apart by their output
    stop = threading.Event()
    seen, errors = [], []

    def load():
        with _client(setup) as c:
            for _ in range(60):
                if stop.is_set():
                    return
                r = c.post("/predict", json={"windows": _rows(table)})
                if r.status_code != 200:
                    errors.append(r.text)
                    continue
                body = r.json()
                v = body["model_version"]
                match = [k for k, ref in refs.items()
                         if np.allclose(_fused(body["windows"]), ref, atol=1e-6, equal_nan=True)]
                seen.append((v, match))

    threads = [threading.Thread(target=load) for _ in range(4)]
    [t.start() for t in threads]
    with _client(setup) as c:
        time.sleep(0.5)
        assert c.post("/admin/rollback", json={"by": "test", "reason": "bad v2"}).json()["model_version"] == "v1"
        time.sleep(0.5)
        assert c.post("/admin/promote", json={"version": "v2", "by": "test"}).json()["model_version"] == "v2"
        time.sleep(0.3)
    stop.set()
    [t.join(60) for t in threads]
    assert not errors and len(seen) > 10
    assert {v for v, _ in seen} == {"v1", "v2"}
    assert all(match == [v] for v, match in seen)  # made by exactly the version it names
    actions = [(a["action"], a["version"]) for a in reg.audit()]
    assert actions[-2:] == [("rollback", "v1"), ("promote", "v2")]


def test_registry_cards_audit_and_rollback(tmp_path, setup):
    reg = Registry(tmp_path / "r")
    src = setup["reg"].path("v1")
    with pytest.raises(SchemaError, match="failure_modes"):
        reg.register(src, {k: v for k, v in CARD.items() if k != "failure_modes"})
    with pytest.raises(SchemaError, match="not a model folder"):
        reg.register(tmp_path, CARD)
    a, b = reg.register(src, CARD, by="me"), reg.register(src, CARD, by="me")
    assert (a, b) == ("v1", "v2") and reg.versions() == ["v1", "v2"] and reg.current() is None
    reg.promote(a, by="me")
    with pytest.raises(SchemaError, match="nothing to roll back"):
        reg.rollback()
    reg.promote(b, by="me", reason="better")
    assert reg.rollback(by="me", reason="worse") == "v1" and reg.current() == "v1"
    assert reg.card("v2")["intended_use"] == "teaching"
    assert [e["action"] for e in reg.audit()] == ["register", "register", "promote", "promote", "rollback"]
    assert reg.audit()[-1]["reason"] == "worse"
    with pytest.raises(SchemaError, match="no version 'v7'"):
        reg.promote("v7")


def test_mmlab_serve_command_serves_a_model_folder(setup):
    """`mmlab serve --model FOLDER --port N` in a subprocess: it answers, then stops on SIGTERM."""
    import os
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "mmlab.cli", "serve", "--model", str(setup["root"] / "m1"),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
                                [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])})
    try:
        deadline, health = time.monotonic() + 60, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert health is not None, proc.stderr.read().decode() if proc.poll() is not None else "no answer"
        assert health["model_version"].startswith("m1@") and health["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(20)
    bad = subprocess.run([sys.executable, "-m", "mmlab.cli", "serve", "--model", str(setup["root"])],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "neither a model folder" in bad.stderr


def test_a_stream_across_a_rollback_switches_version_once_each_way(setup):
    """A stream keeps its state across a rollback and a promotion: each chunk's response names
    the one version that decided it, in the order of the switches, with no window lost."""
    rec = setup["cohort"]["S03"]
    reqs = _requests(rec, 10.0, keep=WRIST, until=200.0)
    versions, wins = [], []
    with _client(setup) as c:
        for i, (t, pieces) in enumerate(reqs):
            if i == 8:
                assert c.post("/admin/rollback", json={"by": "test"}).json()["model_version"] == "v1"
            if i == 14:
                assert c.post("/admin/promote", json={"version": "v2", "by": "test"}).json()["model_version"] == "v2"
            r = c.post("/stream", json={"subject": "switch", "t": t, "pieces": [piece_json(p) for p in pieces.values()]})
            assert r.status_code == 200, r.text
            versions.append(r.json()["model_version"])
            wins += [(e["start"], e["end"]) for e in r.json()["events"] if e["event"] == "window"]
        c.post("/stream/finish", json={"subject": "switch"})
    assert versions == ["v2"] * 8 + ["v1"] * 6 + ["v2"] * (len(reqs) - 14)
    ends = np.array([e for _, e in wins])
    assert len(set(wins)) == len(wins) > 10 and np.allclose(np.diff(ends), setup["det2"].step_s)


def test_piece_json_sends_missing_samples_as_null_and_the_server_reads_them_as_nan(setup):
    """A stream with a dropout (NaN samples) must still be valid JSON: NaN becomes null, and
    the server's /stream accepts it (chapter 60 in full mode streams such a wearer)."""
    import json

    from mmlab.recording import Stream

    piece = Stream(name="wrist_eda", data=np.array([0.1, np.nan, 0.3, np.inf]), modality="eda", rate=4.0,
                   start=0.0, device="wrist")
    doc = piece_json(piece)
    assert doc["data"] == [0.1, None, 0.3, None]
    json.dumps(doc, allow_nan=False)  # raises if a NaN were left
    with _client(setup) as c:
        r = c.post("/stream", json={"subject": "gap", "t": 1.0, "pieces": [doc]})
        assert r.status_code == 200, r.text
        c.post("/stream/finish", json={"subject": "gap"})
