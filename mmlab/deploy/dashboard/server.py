"""Start the dashboard: ``panel serve`` with the auth module, on 127.0.0.1 by default.

:func:`command` gives the command and environment (the cookie secret and the data folder
go through the environment, not the command line); :func:`start` launches it and waits
until it answers; :func:`stop` ends it. ``mmlab dashboard --data DIR --port N`` runs it in
the foreground.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from mmlab.deploy.dashboard.store import cookie_secret
from mmlab.errors import MMLabError

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(data: str | Path, port: int, address: str = "127.0.0.1") -> tuple[list[str], dict]:
    data = Path(data).resolve()
    if not (data / "users.json").exists():
        raise MMLabError(f"{data}: no users.json (add users with `mmlab dashboard --data {data} --add-user NAME ...`)")
    origins = [f"{address}:{port}"] + ([f"localhost:{port}"] if address == "127.0.0.1" else [])
    cmd = [sys.executable, "-m", "panel", "serve", str(HERE / "app.py"), "--port", str(int(port)),
           "--address", address, "--auth-module", str(HERE / "auth.py"), "--num-procs", "1"]
    for o in origins:
        cmd += ["--allow-websocket-origin", o]
    env = dict(os.environ, MMLAB_DASHBOARD_DATA=str(data), BOKEH_COOKIE_SECRET=cookie_secret())
    env.pop("PANEL_COOKIE_SECRET", None)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parents[2])] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return cmd, env


def start(data: str | Path, port: int | None = None, timeout: float = 60.0, log: str | Path | None = None):
    """Launch the server; returns ``(process, base_url)`` once ``/login`` answers."""
    port = port or free_port()
    cmd, env = command(data, port)
    out = open(log, "ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise MMLabError(f"dashboard server exited with code {proc.returncode} (log: {log})")
        try:
            urllib.request.urlopen(url + "/login", timeout=2).read()
            return proc, url
        except OSError:
            time.sleep(0.2)
    stop(proc)
    raise MMLabError(f"dashboard server did not answer on {url} within {timeout} s")


def stop(proc, grace: float = 10.0) -> None:
    """Terminate the server process (its own process group) and wait for it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


CHROMIUM = "/usr/bin/chromium"


def screenshots(data: str | Path, out: str | Path, user: str, password: str, patient: str | None = None,
                chromium: str = CHROMIUM) -> list[Path]:
    """Serve ``data``, sign in as ``user`` in headless Chromium and save ``ward.png`` and
    ``patient.png`` (``patient``, default the highest-risk one with an alert) into ``out``.

    For the chapters' text; needs Playwright and Debian's chromium (``make browser``).
    """
    from playwright.sync_api import sync_playwright

    from mmlab.deploy.dashboard.app import visible, ward_rows
    from mmlab.deploy.dashboard.store import Users
    from mmlab.deploy.dashboard.tables import read_tables

    if not Path(chromium).exists():
        raise MMLabError(f"{chromium} is missing: install Debian's chromium (`make browser`)")
    who = Users(Path(data) / "users.json").authenticate(user, password)
    if who is None:
        raise MMLabError(f"wrong user name or password for {user!r}")
    risk, alerts, _ = visible(read_tables(data), who)
    if patient is None:
        order = [p for p in ward_rows(risk)["patient_id"] if p in set(alerts["patient_id"])]
        patient = order[0] if order else risk["patient_id"].iloc[0]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    proc, url = start(data)
    try:
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=chromium, args=[
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            try:
                pg = b.new_page(viewport={"width": 1200, "height": 800})
                pg.set_default_timeout(60000)
                pg.goto(url + "/login")
                pg.fill("#username", user)
                pg.fill("#password", password)
                pg.click("#signin")
                pg.get_by_text("Ward view").wait_for()
                pg.wait_for_timeout(500)
                pg.screenshot(path=str(out / "ward.png"))
                pg.goto(f"{url}/app?patient={patient}")
                pg.get_by_text(f"Patient {patient} ").wait_for()
                pg.wait_for_timeout(500)
                pg.screenshot(path=str(out / "patient.png"), full_page=True)
            finally:
                b.close()
    finally:
        stop(proc)
    return [out / "ward.png", out / "patient.png"]
