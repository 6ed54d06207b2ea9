"""The grader's side of the runner protocol: start, send a cell, read its verdict, kill.

See ``_harness.py`` for the protocol. Every request carries a fresh random token; a
record counts only when it carries that token. Output is read while it streams and
capped; a cell that does not answer before its deadline (or whose runner dies) is
reported as such and the whole sandbox is killed (process group and pid namespace).
"""

from __future__ import annotations

import os
import secrets
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass

from mmlab.teach import sandbox

RECORD = b"@@MMLAB@@ "
STARTUP_TIMEOUT = 120.0


@dataclass
class Reply:
    status: str            # ok, error, pass, fail, timeout, died
    text: str | None       # error text (capped)
    output: str            # learner output (capped)
    seconds: float


class Kernel:
    """One sandboxed runner for one submission."""

    def __init__(self, bwrap: str | None, preimport: list[str], memory_mb: int = 4096,
                 output_cap: int = 10_000, aliases: list[str] = ()):
        self.bwrap, self.preimport, self.aliases = bwrap, preimport, list(aliases)
        self.memory_mb, self.output_cap = memory_mb, output_cap
        self.proc: subprocess.Popen | None = None
        self.scratch: str | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, deadline: float) -> str | None:
        """Start the runner; None when ready, else why not."""
        self.scratch = tempfile.mkdtemp(prefix="mmlab-grade-")
        # As root, each start gets a user id of its own (see sandbox: RLIMIT_NPROC is per user).
        uid = sandbox.submission_uid() if self.bwrap is not None and os.geteuid() == 0 else None
        sandbox.prepare_scratch(self.scratch, uid)
        rfd, wfd = os.pipe()
        env = sandbox.environment(self.scratch, self.preimport, wfd, self.bwrap is not None, self.aliases)
        try:
            self.proc = subprocess.Popen(
                sandbox.command(self.bwrap, self.scratch, uid), stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, pass_fds=(wfd,), env=env,
                cwd=self.scratch, start_new_session=True,
                preexec_fn=sandbox.limiter(self.memory_mb, own_uid=uid is not None))
        finally:
            os.close(wfd)
        self.rec = os.fdopen(rfd, "rb", buffering=0)
        self._rbuf = b""
        for f in (self.proc.stdout, self.rec):
            os.set_blocking(f.fileno(), False)
        reply = self._await(b"ready", min(deadline, time.monotonic() + STARTUP_TIMEOUT))
        if reply.status != "ready":
            tail = reply.output.strip().splitlines()[-3:]
            return f"the sandbox did not start ({reply.status}{': ' + ' | '.join(tail) if tail else ''})"
        return None

    def stop(self) -> None:
        """Kill every process of this submission and remove its scratch folder."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            for f in (self.proc.stdin, self.proc.stdout, self.rec):
                try:
                    f.close()
                except OSError:
                    pass
            self.proc = None
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    # ------------------------------------------------------------------- requests
    def run(self, source: str, test: bool, deadline: float) -> Reply:
        """Send one cell; wait for its record until ``deadline`` (monotonic seconds)."""
        token = secrets.token_hex(16).encode()
        line = (b"test " if test else b"run ") + token + b" " + source.encode("utf-8").hex().encode() + b"\n"
        try:
            self.proc.stdin.write(line)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            return Reply("died", None, "", 0.0)
        return self._await(token, deadline)

    def _await(self, token: bytes, deadline: float) -> Reply:
        start = time.monotonic()
        out = bytearray()
        dropped = 0
        want = RECORD + token + b" "
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ, "out")
        sel.register(self.rec, selectors.EVENT_READ, "rec")
        status, text = None, None
        try:
            while status is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    status = "timeout"
                    break
                events = sel.select(timeout=min(left, 1.0))
                if not events and self.proc.poll() is not None:
                    status = "died"
                    break
                for key, _ in events:
                    try:
                        chunk = os.read(key.fileobj.fileno(), 1 << 16)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        if key.data == "rec" or self.proc.poll() is not None:
                            status = status or "died"
                        sel.unregister(key.fileobj)
                        continue
                    if key.data == "out":
                        room = self.output_cap - len(out)
                        if room > 0:
                            out += chunk[:room]
                        dropped += max(0, len(chunk) - max(room, 0))
                        continue
                    # Record channel: learner code may write junk here too; keep a bounded
                    # window and look only for this request's token.
                    self._rbuf = (self._rbuf + chunk)[-65536:]
                    at = self._rbuf.find(want)
                    if at >= 0:
                        end = self._rbuf.find(b"\n", at)
                        if end < 0:
                            continue
                        fields = self._rbuf[at + len(want):end].split(b" ")
                        self._rbuf = self._rbuf[end + 1:]
                        status = fields[0].decode("ascii", "replace")
                        if len(fields) > 1 and fields[1]:
                            try:
                                text = bytes.fromhex(fields[1].decode("ascii")).decode("utf-8", "replace")
                            except ValueError:
                                text = None
                        break
        finally:
            sel.close()
        if status not in ("timeout", "died"):
            for _ in range(64):  # what the cell printed just before its record
                try:
                    chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
                except (BlockingIOError, ValueError, OSError):
                    break
                if not chunk:
                    break
                room = self.output_cap - len(out)
                out += chunk[:max(room, 0)]
                dropped += max(0, len(chunk) - max(room, 0))
        if status == "died" and text is None:  # say why in the cell's record
            code = self.proc.poll()
            text = f"the runner ended (exit code {code})" if code is not None else "the runner closed its record channel"
        output = out.decode("utf-8", "replace")
        if dropped:
            output += f"\n[... {dropped} more bytes of output dropped by mmlab grade]\n"
        return Reply(status, text, output, time.monotonic() - start)
