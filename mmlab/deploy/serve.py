"""The serving process: a stress detector behind HTTP (``mmlab serve``; chapter 60_deployment).

An ASGI app (FastAPI, run by uvicorn) over a model folder written by ``mmlab stress train``
(:meth:`~mmlab.systems.stress.StressDetector.save`) or a registry folder
(:mod:`mmlab.deploy.registry`; its current version is served).

Endpoints (JSON in and out; every prediction response has ``model_version``):

``GET /health``
    status, model version, modalities.
``POST /predict``
    ``{"windows": [{"subject", "start", "end", <feature>: value, ...}, ...]}`` — feature
    rows as :meth:`StressDetector.window_table` makes them (a subject's session so far: the
    per-person calibration uses its first windows). A feature left out or ``null`` is
    missing; a modality without its features is absent and the prediction uses the rest.
    Requests arriving within ``batch_wait_ms`` of each other are predicted together
    (**dynamic batching**; ``batch_size`` in the response says how many shared the call).
``POST /stream``
    ``{"subject", "t", "pieces": [{"name", "modality", "device", "rate", "start", "data"}]}``
    — the new samples of each stream, as a device delivers them. The server keeps one
    :class:`~mmlab.systems.stress.StressStream` per subject (the detector's own streamer,
    so streaming equals batch) and answers with the events the chunk caused (decided
    windows, alerts). Chunks of one subject are processed in arrival order; ``seq`` counts
    them. A stream that stops arriving is absent from the windows it misses (**fallback**):
    each window event lists ``modalities_used`` (the voting modalities present).
``POST /stream/finish``
    ``{"subject"}`` — decide the last windows and forget the subject's state.
``POST /admin/promote`` / ``POST /admin/rollback``
    (registry only) change the current version and load it, without restarting; requests
    already running finish on the version they started with.

Bad requests get a 4xx with a message naming what is wrong (422 for the schema, 400 for
content: unknown stream, rate change, too many samples, ...); an error inside the model is
a 500 for that request only. The server logs counts and latencies, never the data.
"""


import asyncio
import hashlib
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmlab.errors import MMLabError, SchemaError
from mmlab.validate import check_number

__all__ = ["ModelHost", "create_app", "start_server", "Server", "MAX_SAMPLES_S", "MAX_RATE"]

#: the longest chunk a /stream request may carry, in seconds of each stream's samples.
MAX_SAMPLES_S = 120.0
#: the highest sampling rate accepted (Hz).
MAX_RATE = 50_000.0
#: the most windows in one /predict request.
MAX_WINDOWS = 5000
#: how far (s) a chunk's clock or a piece's start may run ahead of the data already held: a
#: larger jump would make the server fill hours of NaN or decide thousands of empty blocks.
MAX_AHEAD_S = 600.0
#: open streams at most (subjects), and streams (device channels) per subject.
MAX_SUBJECTS = 1000
MAX_STREAMS_PER_SUBJECT = 32


class ModelHost:
    """The detector being served and its version; :meth:`reload` swaps both at once."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self.reload()

    def _resolve(self) -> tuple[str, Path]:
        from mmlab.deploy.registry import Registry, is_registry

        if is_registry(self.folder):
            reg = Registry(self.folder)
            v = reg.current()
            if v is None:
                raise SchemaError(f"registry {self.folder} has no current version: promote one first")
            return v, reg.path(v)
        mf = self.folder / "manifest.json"
        if not mf.is_file():
            raise SchemaError(f"{self.folder} is neither a model folder (manifest.json) nor a registry (registry.json)")
        digest = hashlib.sha256((self.folder / "model.pkl").read_bytes()).hexdigest()[:8]
        return f"{self.folder.name}@{digest}", self.folder

    def reload(self) -> str:
        from mmlab.systems.stress import StressDetector

        version, path = self._resolve()
        det = StressDetector.load(path)
        with self._lock:
            self.version, self.detector = version, det
        return version

    def snapshot(self):
        """``(version, detector)``, consistent with each other."""
        with self._lock:
            return self.version, self.detector

    @property
    def registry(self):
        from mmlab.deploy.registry import Registry, is_registry

        if not is_registry(self.folder):
            raise SchemaError(f"{self.folder} is a single model, not a registry: nothing to promote or roll back")
        return Registry(self.folder)


def _jsonable(v):
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return None if math.isnan(v) else v
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _used(row: dict, voters) -> list[str]:
    return [m for m in voters if bool(row.get(f"present_{m}", False))]


class _Batcher:
    """Dynamic batching of /predict: requests queued within ``wait_s`` go to one
    ``predict_table`` call (each request's subjects are kept apart)."""

    def __init__(self, host: ModelHost, pool: ThreadPoolExecutor, wait_s: float, max_rows: int):
        self.host, self.pool, self.wait_s, self.max_rows = host, pool, wait_s, max_rows
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None
        self.batches = 0

    def start(self):
        self.queue = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def submit(self, table: pd.DataFrame):
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((table, fut))
        return await fut

    async def _run(self):
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            rows = len(items[0][0])
            deadline = loop.time() + self.wait_s
            while rows < self.max_rows:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), left)
                except asyncio.TimeoutError:
                    break
                items.append(item)
                rows += len(item[0])
            self.batches += 1
            version, det = self.host.snapshot()
            try:
                outs = await loop.run_in_executor(self.pool, self._predict, det, [t for t, _ in items])
            except Exception:  # one bad request must not fail the others: predict them alone
                outs = []
                for t, _ in items:
                    try:
                        outs.append(await loop.run_in_executor(self.pool, self._predict, det, [t]))
                    except Exception as e:  # noqa: BLE001 (the error goes to that request)
                        outs.append(e)
                outs = [o[0] if isinstance(o, list) else o for o in outs]
            for (_, fut), out in zip(items, outs):
                if not fut.done():
                    if isinstance(out, Exception):
                        fut.set_exception(out)
                    else:
                        fut.set_result((version, out, len(items)))

    @staticmethod
    def _predict(det, tables: list[pd.DataFrame]) -> list[pd.DataFrame]:
        parts = []
        for i, t in enumerate(tables):
            t = t.copy()
            t["subject"] = f"{i}\x1f" + t["subject"].astype(str)
            parts.append(t)
        probs = det.predict_table(pd.concat(parts, ignore_index=True))
        key = probs["subject"].str.split("\x1f", n=1)
        probs["subject"] = key.str[1]
        idx = key.str[0].astype(int).to_numpy()
        return [probs[idx == i].reset_index(drop=True) for i in range(len(tables))]


class _StreamState:
    def __init__(self, stream, version: str):
        self.stream, self.version = stream, version
        self.lock = asyncio.Lock()
        self.seq = 0
        self.rates: dict[str, float] = {}
        self.channels: dict[str, int] = {}
        self.last_seen = time.monotonic()


def create_app(model: str | Path | ModelHost, batch_wait_ms: float = 5.0, max_batch_rows: int = 20000,
               wait_s: float = 2.0, idle_s: float = 600.0):
    """The FastAPI app serving ``model`` (a model or registry folder, or a :class:`ModelHost`)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, ConfigDict, Field

    from mmlab.recording import Stream

    host = model if isinstance(model, ModelHost) else ModelHost(model)
    wait_ms = check_number(batch_wait_ms, "batch_wait_ms", low=0.0, unit="ms")
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mmlab-serve")
    batcher = _Batcher(host, pool, wait_ms / 1000.0, max_batch_rows)
    streams: dict[str, _StreamState] = {}
    stats = {"requests": 0, "errors_4xx": 0, "errors_5xx": 0, "windows": 0}

    class Piece(BaseModel):
        model_config = ConfigDict(extra="forbid")
        name: str = Field(min_length=1, max_length=100)
        modality: str = Field(min_length=1, max_length=50)
        device: str = Field(default="", max_length=50)
        rate: float = Field(gt=0, le=MAX_RATE)
        start: float
        data: list[float | None] | list[list[float | None]]  # null: a missing sample (NaN)

    class Chunk(BaseModel):
        model_config = ConfigDict(extra="forbid")
        subject: str = Field(min_length=1, max_length=100)
        t: float
        pieces: list[Piece] = Field(max_length=64)

    class Finish(BaseModel):
        subject: str = Field(min_length=1, max_length=100)

    class Windows(BaseModel):
        windows: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_WINDOWS)

    class Promote(BaseModel):
        version: str
        by: str = "api"
        reason: str = ""

    class Rollback(BaseModel):
        by: str = "api"
        reason: str = ""

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        batcher.task.cancel()
        pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="mmlab stress detector", lifespan=lifespan)
    app.state.host, app.state.batcher, app.state.streams, app.state.stats = host, batcher, streams, stats

    @app.middleware("http")
    async def count(request: Request, call_next):
        stats["requests"] += 1
        try:
            resp = await call_next(request)
        except Exception as e:  # noqa: BLE001 (never let one request take the server down)
            stats["errors_5xx"] += 1
            return JSONResponse({"detail": f"internal error: {type(e).__name__}"}, status_code=500)
        if 400 <= resp.status_code < 500:
            stats["errors_4xx"] += 1
        elif resp.status_code >= 500:
            stats["errors_5xx"] += 1
        return resp

    @app.exception_handler(MMLabError)
    async def mmlab_error(request: Request, exc: MMLabError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.get("/health")
    async def health():
        version, det = host.snapshot()
        return {"status": "ok", "model_version": version, "modalities": list(det.modalities_),
                "voters": list(det.voters_), "streams_open": len(streams), "batches": batcher.batches,
                **stats}

    @app.post("/predict")
    async def predict(body: Windows):
        table = pd.DataFrame(body.windows)
        for col in ("subject", "start", "end"):
            if col not in table:
                raise HTTPException(400, f"every window needs 'subject', 'start' and 'end'; '{col}' is missing")
        try:
            table["start"] = pd.to_numeric(table["start"]).astype(float)
            table["end"] = pd.to_numeric(table["end"]).astype(float)
        except (TypeError, ValueError):
            raise HTTPException(400, "'start' and 'end' must be numbers (seconds)") from None
        if not (np.isfinite(table[["start", "end"]]).all().all() and (table["end"] > table["start"]).all()):
            raise HTTPException(400, "each window needs finite start < end")
        _, det = host.snapshot()
        known = set(det.features_) | {"subject", "start", "end", "label"} | {
            c for c in table.columns if "__q_" in c}
        unknown = sorted(set(table.columns) - known)
        if unknown:
            raise HTTPException(400, f"unknown feature columns {unknown[:5]} (the model uses {len(det.features_)} "
                                     f"features such as {det.features_[:3]})")
        feats = [c for c in table.columns if c in det.features_]
        try:
            table[feats] = table[feats].apply(pd.to_numeric).astype(float)
        except (TypeError, ValueError):
            raise HTTPException(400, "feature values must be numbers or null") from None
        table["subject"] = table["subject"].astype(str)
        if "label" not in table:
            table["label"] = None
        version, probs, size = await batcher.submit(table)
        voters = list(det.voters_)
        out = []
        for row in probs.to_dict("records"):
            r = {k: _jsonable(v) for k, v in row.items()}
            r["modalities_used"] = _used(row, voters)
            out.append(r)
        stats["windows"] += len(out)
        return {"model_version": version, "batch_size": size, "windows": out}

    def _pieces(state: _StreamState, chunk: Chunk) -> dict:
        pieces = {}
        held = state.stream.series
        for p in chunk.pieces:
            try:
                data = np.asarray(p.data, dtype=float)
            except ValueError:
                raise SchemaError(f"stream {p.name!r}: rows of data have different lengths") from None
            if data.ndim == 2 and data.shape[1] == 0:
                raise SchemaError(f"stream {p.name!r}: data has no channel")
            n_ch = 1 if data.ndim == 1 else data.shape[1]
            if state.channels.get(p.name, n_ch) != n_ch:
                raise SchemaError(f"stream {p.name!r} changed from {state.channels[p.name]} to {n_ch} channels mid-stream")
            if p.name not in held and len(set(held) | set(pieces) | {p.name}) > MAX_STREAMS_PER_SUBJECT:
                raise SchemaError(f"more than {MAX_STREAMS_PER_SUBJECT} streams for subject {chunk.subject!r}")
            if p.name in held and p.start > held[p.name].end + MAX_AHEAD_S:
                raise SchemaError(f"stream {p.name!r}: piece starts at {p.start:g} s, more than {MAX_AHEAD_S:g} s "
                                  f"after the data held ({held[p.name].end:g} s)")
            if len(data) > p.rate * MAX_SAMPLES_S:
                raise SchemaError(f"stream {p.name!r}: {len(data)} samples at {p.rate} Hz is more than "
                                  f"{MAX_SAMPLES_S:g} s in one chunk")
            if not math.isfinite(p.start) or not math.isfinite(chunk.t):
                raise SchemaError("'t' and each piece's 'start' must be finite seconds")
            seen = state.rates.get(p.name)
            if seen is not None and seen != p.rate:
                raise SchemaError(f"stream {p.name!r} changed its rate from {seen} to {p.rate} Hz mid-stream")
            if p.name in pieces:
                raise SchemaError(f"stream {p.name!r} appears twice in one chunk")
            pieces[p.name] = Stream(p.name, data, p.modality, rate=p.rate, start=p.start, device=p.device)
        ends = [ser.end for ser in held.values()] + [q.start + q.n_samples / q.rate for q in pieces.values()]
        if ends and chunk.t > max(ends) + MAX_AHEAD_S:
            raise SchemaError(f"'t' = {chunk.t:g} s is more than {MAX_AHEAD_S:g} s after the last sample ({max(ends):g} s)")
        return pieces

    def _push(state: _StreamState, det, t: float, pieces: dict) -> list[dict]:
        state.stream.det = det  # a promotion / rollback applies from this chunk on
        return list(state.stream.push(t, pieces))

    def _events(events: list[dict], voters) -> list[dict]:
        out = []
        for e in events:
            e = {k: _jsonable(v) for k, v in e.items()}
            if e.get("event") == "window":
                e["modalities_used"] = _used(e, voters)
            out.append(e)
        return out

    def _expire():
        now = time.monotonic()
        for s in [s for s, st in streams.items() if now - st.last_seen > idle_s and not st.lock.locked()]:
            streams.pop(s, None)

    @app.post("/stream")
    async def stream(chunk: Chunk):
        _expire()
        version, det = host.snapshot()
        state = streams.get(chunk.subject)
        if state is None and len(streams) >= MAX_SUBJECTS:
            raise HTTPException(429, f"{MAX_SUBJECTS} streams are open: finish one (POST /stream/finish) or retry later")
        if state is None:
            state = streams.setdefault(chunk.subject, _StreamState(det.streamer(chunk.subject, wait_s), version))
        async with state.lock:
            pieces = _pieces(state, chunk)
            version, det = host.snapshot()
            loop = asyncio.get_running_loop()
            events = await loop.run_in_executor(pool, _push, state, det, float(chunk.t), pieces)
            for name, p in pieces.items():
                state.rates[name] = p.rate
                state.channels[name] = p.n_channels
            state.seq += 1
            state.version = version
            state.last_seen = time.monotonic()
        events = _events(events, det.voters_)
        stats["windows"] += sum(e.get("event") == "window" for e in events)
        return {"model_version": version, "subject": chunk.subject, "seq": state.seq, "events": events}

    @app.post("/stream/finish")
    async def finish(body: Finish):
        state = streams.get(body.subject)
        if state is None:
            raise HTTPException(404, f"no open stream for subject {body.subject!r}")
        async with state.lock:
            version, det = host.snapshot()
            state.stream.det = det
            loop = asyncio.get_running_loop()
            events = await loop.run_in_executor(pool, lambda: list(state.stream.finish()))
            streams.pop(body.subject, None)
        events = _events(events, det.voters_)
        return {"model_version": version, "subject": body.subject, "seq": state.seq + 1, "events": events}

    @app.post("/admin/promote")
    async def promote(body: Promote):
        host.registry.promote(body.version, by=body.by, reason=body.reason)
        return {"model_version": host.reload()}

    @app.post("/admin/rollback")
    async def rollback(body: Rollback):
        host.registry.rollback(by=body.by, reason=body.reason)
        return {"model_version": host.reload()}

    return app


class Server:
    """A uvicorn server on a thread (tests, notebooks, benchmarks): ``url``, ``stop()``;
    a context manager."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="mmlab-serve")
        self.thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() - t0 > 30:
                raise RuntimeError("the server did not start (port in use?)")
            time.sleep(0.02)
        sock = self.server.servers[0].sockets[0].getsockname()
        self.host, self.port = sock[0], sock[1]
        self.url = f"http://{self.host}:{self.port}"
        self.app = app

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_server(model: str | Path | ModelHost, port: int = 0, host: str = "127.0.0.1", **options) -> Server:
    """Serve ``model`` on ``host:port`` (0: a free port) from a background thread."""
    return Server(create_app(model, **options), host=host, port=port)


def serve(model: str | Path, port: int = 8000, host: str = "127.0.0.1", **options) -> None:
    """Serve in the foreground until interrupted (``mmlab serve``)."""
    import uvicorn

    app = create_app(model, **options)
    print(f"serving {app.state.host.version} on http://{host}:{port} (Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def piece_json(piece) -> dict:
    """A :class:`~mmlab.recording.Stream` piece as the ``/stream`` request wants it; missing
    (non-finite) samples become ``null``, which JSON allows and NaN is not."""
    data = np.asarray(piece.data, dtype=float)
    data = data[:, 0] if data.shape[1] == 1 else data
    out = data.astype(object)
    out[~np.isfinite(data)] = None
    return {"name": piece.name, "modality": piece.modality, "device": piece.device, "rate": float(piece.rate),
            "start": float(piece.start), "data": out.tolist()}
