"""`make lab NO_BROWSER=1 PORT=...` brings JupyterLab up headless and it answers on its port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_make_lab_serves_headless():
    port = _free_port()
    proc = subprocess.Popen(["make", "lab", "NO_BROWSER=1", f"PORT={port}"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, reply = time.monotonic() + 90, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=2) as r:
                    reply = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.5)
        if reply is None:
            log = proc.stdout.read().decode(errors="replace") if proc.poll() is not None else ""
            pytest.fail(f"JupyterLab did not answer on port {port}\n{log}")
        assert "version" in reply
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
