"""``mmlab bench dashboard``: the served dashboard (issue 13) on 127.0.0.1.

Data: the synthetic tables of :func:`mmlab.deploy.dashboard.synthetic_tables` (``base``
ICU patients of ``hours`` h plus two stress subjects), replicated under new ids to
``patients`` patients (default 200 x 24 h). The server is the real one (``panel serve``
with the login module), started and stopped here.

* ``first_render_s`` / ``open_patient_s`` / ``ack_roundtrip_s``: in headless Chromium
  (Debian's ``/usr/bin/chromium`` via Playwright): sign-in to the ward table drawn (its top
  row); click on a patient to its view drawn; click on Acknowledge to the server's
  answer drawn (the acknowledgement written to SQLite on the way). Without chromium they
  are ``None`` and ``browser`` is false.
* ``sessions`` concurrent bounded sessions, each for ``duration_s`` s once signed in, with
  think time ``think_s``. ``mode="browser"`` (default when chromium is there): one browser
  context per session (its own cookie and server session) in one headless Chromium; each
  loops over opening a patient, typing a note and clicking Acknowledge until the server's
  answer is drawn -- the acknowledgement goes through the served app. ``mode="http"``: each
  session signs in over HTTP and loops over opening a server document (ward or patient
  view, built in full by the server) and acknowledging through
  :class:`~mmlab.deploy.dashboard.AckStore` (the button handler's code path, own
  connection, the server's SQLite file). ``errors``: failed steps (``error_kinds`` says
  which); ``ack_lost``: acknowledgements clicked (or written) that are not in the database
  after a server restart; ``requests``: completed round trips.

Options: ``patients``, ``hours``, ``base``, ``sessions``, ``duration_s``, ``think_s``,
``mode``, ``seed`` (``mmlab bench dashboard --set sessions=5 --set duration_s=5 --set patients=40``
for a quick run).
"""

from __future__ import annotations

import http.cookiejar
import secrets
import shutil
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pandas as pd

CHROMIUM = "/usr/bin/chromium"
DEFAULTS = {"patients": 200, "hours": 24.0, "base": 8, "sessions": 20, "duration_s": 30.0, "think_s": 0.5,
            "mode": "browser"}


def replicate(tables, patients: int):
    """The tables with their ICU patients copied under new ids (``P01~2``) up to ``patients``."""
    risk, alerts, signals = tables
    icu = [p for p in risk["patient_id"].unique() if p.startswith("P")]
    out_r, out_a, out_s = [risk], [alerts], [signals]
    k, have = 1, risk["patient_id"].nunique()
    while have < patients:
        take = icu[: patients - have]
        ren = {p: f"{p}~{k}" for p in take}
        for src, dst in ((risk, out_r), (alerts, out_a), (signals, out_s)):
            part = src[src["patient_id"].isin(take)].copy()
            part["patient_id"] = part["patient_id"].map(ren)
            if "alert_id" in part:
                part["alert_id"] = part["alert_id"] + f"~{k}"
            dst.append(part)
        have += len(take)
        k += 1
    return tuple(pd.concat(x, ignore_index=True) for x in (out_r, out_a, out_s))


def _opener(url: str, user: str, password: str):
    op = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    op.open(url + "/login", urllib.parse.urlencode({"username": user, "password": password}).encode(), timeout=60).read()
    return op


def _browser_times(url: str, user: str, password: str, top_pid: str, pid: str, aid: str) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            pg = b.new_page()
            pg.set_default_timeout(120000)
            pg.goto(url + "/login")
            pg.fill("#username", user)
            pg.fill("#password", password)
            t0 = time.perf_counter()
            pg.click("#signin")
            pg.get_by_role("gridcell", name=top_pid, exact=True).wait_for()
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            pg.get_by_role("gridcell", name=pid, exact=True).click()
            pg.get_by_role("button", name=f"Acknowledge {aid}", exact=True).wait_for()
            open_s = time.perf_counter() - t0
            pg.get_by_placeholder("note").first.fill("bench")
            t0 = time.perf_counter()
            pg.get_by_role("button", name=f"Acknowledge {aid}", exact=True).click()
            pg.get_by_text(f"acknowledged by {user}: bench").first.wait_for()
            ack_s = time.perf_counter() - t0
        finally:
            b.close()
    return {"first_render_s": first, "open_patient_s": open_s, "ack_roundtrip_s": ack_s}


async def _browser_sessions(url: str, password: str, n: int, duration: float, think: float, targets: list) -> dict:
    """``n`` browser contexts (own cookies, own server sessions) in one headless Chromium,
    each looping: open a patient, type a note, acknowledge, wait for the server's answer."""
    import asyncio

    from playwright.async_api import async_playwright

    written, kinds, errors, served = [], set(), [0], [0]

    async def one(b, k: int) -> None:
        ctx = await b.new_context()
        pg = await ctx.new_page()
        pg.set_default_timeout(60000)
        try:
            await pg.goto(url + "/login")
            await pg.fill("#username", "bench")
            await pg.fill("#password", password)
            await pg.click("#signin")
            await pg.get_by_text("Ward view").wait_for()
            i, stop_at = 0, time.monotonic() + duration  # each session runs `duration` s once signed in
            while time.monotonic() < stop_at:
                pid, aid = targets[(k * 3 + i) % len(targets)]
                note = f"s{k} n{i}"
                try:
                    await pg.goto(f"{url}/app?patient={urllib.parse.quote(pid)}")
                    await pg.get_by_role("button", name=f"Acknowledge {aid}", exact=True).wait_for()
                    await pg.get_by_placeholder("note").first.fill(note)
                    await pg.get_by_role("button", name=f"Acknowledge {aid}", exact=True).click()
                    written.append((aid, note))  # clicked: the server must keep it
                    await pg.get_by_text(f"acknowledged by bench: {note}", exact=False).first.wait_for()
                    served[0] += 1
                except Exception as e:
                    errors[0] += 1
                    kinds.add(f"{type(e).__name__}: {str(e).splitlines()[0]}"[:120])
                i += 1
                await asyncio.sleep(think)
        except Exception as e:
            errors[0] += 1
            kinds.add(f"login: {type(e).__name__}: {str(e).splitlines()[0]}"[:120])
        finally:
            await ctx.close()

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            await asyncio.gather(*(one(b, k) for k in range(n)))
        finally:
            await b.close()
    return {"written": written, "errors": errors[0], "kinds": kinds, "served": served[0]}


def run(params: dict | None = None, seed: int = 0, subjects: int | None = None, **_) -> dict:
    """Run the benchmark (``subjects`` sets ``patients``); returns JSON-able figures."""
    from mmlab.errors import MMLabError

    opts = dict(DEFAULTS, **({"patients": subjects} if subjects else {}), **(params or {}))
    unknown = set(opts) - set(DEFAULTS)
    if unknown:
        raise MMLabError(f"bench dashboard: unknown option(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    if opts["mode"] not in ("browser", "http"):
        raise MMLabError(f"bench dashboard: mode must be 'browser' or 'http', not {opts['mode']!r}")
    folder = Path(tempfile.mkdtemp(prefix="mmlab-dash-bench-"))
    try:
        return _run(folder, opts, seed)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(folder: Path, opts: dict, seed: int) -> dict:
    from mmlab.deploy.dashboard import AckStore, Users, synthetic_tables, write_tables
    from mmlab.deploy.dashboard.app import ward_rows
    from mmlab.deploy.dashboard.server import start, stop
    from mmlab.errors import MMLabError

    n_sessions, duration = int(opts["sessions"]), float(opts["duration_s"])
    t0 = time.perf_counter()
    tables = replicate(synthetic_tables(n_icu=int(opts["base"]), n_stress=2, seed=seed, hours=float(opts["hours"])),
                       int(opts["patients"]))
    write_tables(folder, *tables)
    prep_s = time.perf_counter() - t0
    risk, alerts, _ = tables
    password = secrets.token_urlsafe(12)
    Users(folder / "users.json").add("bench", password, "supervisor", ["*"])
    rows = ward_rows(risk)
    if alerts.empty:
        raise MMLabError("bench dashboard: the synthetic tables have no alert; raise base or hours")
    with_alert = [p for p in rows["patient_id"] if p in set(alerts["patient_id"])]
    pid = with_alert[0]  # the highest-risk patient with an alert (top rows of the ward view)
    aid = alerts.loc[alerts["patient_id"] == pid, "alert_id"].iloc[0]
    proc, url = start(folder, log=folder / "server.log")
    result = {"patients": int(risk["patient_id"].nunique()), "windows": int(len(risk)), "alerts": int(len(alerts)),
              "prepare_s": round(prep_s, 2)}
    written, errors, requests, lock, kinds = [], [0], [0], threading.Lock(), set()
    try:
        browser = Path(CHROMIUM).exists()
        if browser:
            try:
                result.update(_browser_times(url, "bench", password, rows["patient_id"].iloc[0], pid, aid))
                written.append(aid)
            except Exception as e:  # reported, not hidden
                browser, result["browser_error"] = False, f"{type(e).__name__}: {e}"[:300]
        if not browser:
            result.update({"first_render_s": None, "open_patient_s": None, "ack_roundtrip_s": None})
        result["browser"] = browser

        if opts["mode"] == "browser" and browser:
            import asyncio

            firsts = alerts.drop_duplicates("patient_id")
            targets = list(zip(firsts["patient_id"], firsts["alert_id"]))
            before = len(AckStore(folder).acks())
            r = asyncio.run(_browser_sessions(url, password, n_sessions, duration, float(opts["think_s"]), targets))
            stop(proc)
            proc, url = start(folder, log=folder / "server.log")  # acks must survive a restart
            kept = {(a["alert_id"], a["note"]) for a in AckStore(folder).acks()}
            result.update({"mode": "browser", "sessions": n_sessions, "duration_s": duration, "requests": r["served"],
                           "errors": r["errors"], "error_kinds": sorted(r["kinds"]), "acks_written": len(r["written"]),
                           "ack_lost": sum((a, n) not in kept for a, n in r["written"]),
                           "acks_in_db": len(kept) - before})
            return _rounded(result)
        pids = list(rows["patient_id"])
        aids = list(alerts["alert_id"])
        stop_at = time.monotonic() + duration

        def session(k: int) -> None:
            try:
                op = _opener(url, "bench", password)
                store = AckStore(folder)
            except Exception as e:
                with lock:
                    errors[0] += 1
                    kinds.add(f"login: {type(e).__name__}: {e}"[:120])
                return
            i = 0
            while time.monotonic() < stop_at:
                target = "/app" if i % 2 == 0 else f"/app?patient={urllib.parse.quote(pids[(k * 7 + i) % len(pids)])}"
                try:
                    body = op.open(url + target, timeout=120).read().decode()
                    ok = "data-root-id" in body and "Sign in" not in body
                    a = f"{aids[(k + i) % len(aids)]}"
                    store.acknowledge(a, "bench", f"s{k} n{i}")
                    with lock:
                        requests[0] += 1
                        written.append(a)
                        errors[0] += not ok
                except Exception as e:
                    with lock:
                        errors[0] += 1
                        kinds.add(f"{type(e).__name__}: {e}"[:120])
                i += 1
                time.sleep(float(opts["think_s"]))

        threads = [threading.Thread(target=session, args=(k,)) for k in range(n_sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop(proc)
        proc, url = start(folder, log=folder / "server.log")  # acks must survive a restart
        found = len(AckStore(folder).acks())
        result.update({"mode": "http", "sessions": n_sessions, "duration_s": duration, "requests": requests[0],
                       "errors": errors[0], "error_kinds": sorted(kinds), "acks_written": len(written), "ack_lost": len(written) - found})
    finally:
        stop(proc)
    return _rounded(result)


def _rounded(result: dict) -> dict:
    for k in ("first_render_s", "open_patient_s", "ack_roundtrip_s"):
        if result.get(k) is not None:
            result[k] = round(result[k], 3)
    return result
