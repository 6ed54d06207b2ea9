"""Acknowledgements in SQLite, users with hashed passwords, and the cookie secret.

* :class:`AckStore` -- ``acks.sqlite`` in the data folder; each acknowledgement is one
  row written in its own ``BEGIN IMMEDIATE`` transaction (WAL journal, busy timeout), so
  two sessions acknowledging at once both land and a restart keeps them.
* :class:`Users` -- ``users.json`` in the data folder: ``name -> {"hash", "salt", "n",
  "role", "wards"}`` with an scrypt hash (:func:`hash_password`); no password is ever
  written. ``wards`` is a list of ward ids or ``["*"]`` (all wards, for a supervisor).
* :func:`cookie_secret` -- ``MMLAB_DASHBOARD_COOKIE_SECRET`` from the environment, else a
  random secret generated once into ``~/.config/mmlab/dashboard_cookie_secret`` (mode
  0600; ``MMLAB_CONFIG_DIR`` moves it), never a file in the repository.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import time
from pathlib import Path

from mmlab.errors import MMLabError

ROLES = ("clinician", "supervisor")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str, salt: bytes | None = None, n: int = _SCRYPT["n"]) -> dict:
    """``{"hash", "salt", "n"}`` (hex) of ``password`` with scrypt (r=8, p=1)."""
    if not isinstance(password, str) or not password:
        raise MMLabError("password must be a non-empty string")
    salt = secrets.token_bytes(16) if salt is None else salt
    h = hashlib.scrypt(password.encode(), salt=salt, n=n, r=_SCRYPT["r"], p=_SCRYPT["p"], dklen=32)
    return {"hash": h.hex(), "salt": salt.hex(), "n": n}


def verify_password(password: str, record: dict) -> bool:
    """Whether ``password`` matches a :func:`hash_password` record (constant-time compare)."""
    if not isinstance(password, str) or not password:
        return False
    h = hash_password(password, bytes.fromhex(record["salt"]), int(record["n"]))["hash"]
    return hmac.compare_digest(h, record["hash"])


class Users:
    """The users file: named users with a role and the wards they may see."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def _read(self) -> dict:
        if not self.path.exists():
            return {}
        try:
            return json.loads(self.path.read_text())
        except json.JSONDecodeError as e:
            raise MMLabError(f"users file {self.path} is not valid JSON: {e}") from None

    def add(self, name: str, password: str, role: str = "clinician", wards=("*",)) -> None:
        """Add or replace ``name`` (written atomically, mode 0600)."""
        if not name or not str(name).isidentifier():
            raise MMLabError(f"user name {name!r} must be a simple identifier")
        if role not in ROLES:
            raise MMLabError(f"role {role!r} unknown; one of {ROLES}")
        wards = [str(w) for w in wards]
        if not wards:
            raise MMLabError("a user needs at least one ward ('*' for all)")
        data = self._read()
        data[name] = {**hash_password(password), "role": role, "wards": wards}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def authenticate(self, name: str, password: str) -> dict | None:
        """The user's ``{"name", "role", "wards"}`` when the password matches, else ``None``."""
        rec = self._read().get(name)
        if rec is None or not verify_password(password, rec):
            return None
        return {"name": name, "role": rec["role"], "wards": list(rec["wards"])}

    def get(self, name: str | None) -> dict | None:
        """The user's ``{"name", "role", "wards"}`` (no check of a password), or ``None``."""
        rec = self._read().get(name) if name else None
        return None if rec is None else {"name": name, "role": rec["role"], "wards": list(rec["wards"])}


def allowed(user: dict | None, ward: str) -> bool:
    """Whether ``user`` may see ``ward``: the server-side rule every view goes through."""
    return bool(user) and ("*" in user["wards"] or str(ward) in user["wards"])


class AckStore:
    """Acknowledgements of alerts, one SQLite file (``acks.sqlite``) in the data folder."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / "acks.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("CREATE TABLE IF NOT EXISTS acks (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                        "alert_id TEXT NOT NULL, user TEXT NOT NULL, note TEXT NOT NULL, at REAL NOT NULL)")
            con.execute("CREATE INDEX IF NOT EXISTS acks_alert ON acks(alert_id)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30.0, isolation_level=None)

    def acknowledge(self, alert_id: str, user: str, note: str = "") -> int:
        """Record one acknowledgement in its own transaction; returns its row id."""
        if not alert_id or not user:
            raise MMLabError("an acknowledgement needs an alert id and a user")
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            cur = con.execute("INSERT INTO acks(alert_id, user, note, at) VALUES (?, ?, ?, ?)",
                              (str(alert_id), str(user), str(note), time.time()))
            con.execute("COMMIT")
            return int(cur.lastrowid)
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def acks(self, alert_ids=None) -> list[dict]:
        """Every acknowledgement (of ``alert_ids`` when given), oldest first."""
        con = self._connect()
        try:
            rows = con.execute("SELECT id, alert_id, user, note, at FROM acks ORDER BY id").fetchall()
        finally:
            con.close()
        keep = None if alert_ids is None else set(map(str, alert_ids))
        return [dict(zip(("id", "alert_id", "user", "note", "at"), r)) for r in rows
                if keep is None or r[1] in keep]


def cookie_secret() -> str:
    """The cookie secret: ``MMLAB_DASHBOARD_COOKIE_SECRET``, else a generated file outside
    the repository (``$MMLAB_CONFIG_DIR`` or ``~/.config/mmlab``)."""
    env = os.environ.get("MMLAB_DASHBOARD_COOKIE_SECRET")
    if env:
        return env
    folder = Path(os.environ.get("MMLAB_CONFIG_DIR") or Path.home() / ".config" / "mmlab")
    path = folder / "dashboard_cookie_secret"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()
