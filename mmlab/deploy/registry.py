"""A model registry: versions, model cards, promotions, rollback, an audit log (chapter
60_deployment).

A registry is a folder::

    registry.json            current version and the stack of earlier current versions
    audit.jsonl              one JSON line per register / promote / rollback (who, when, why)
    versions/v1/             a model folder (StressDetector.save) + card.json
    versions/v2/ ...

:meth:`Registry.register` copies a model folder in as a new version with its **model card**
(:data:`CARD_FIELDS`: the data it was trained on, its metrics, its calibration, the intended
use and the known failure modes — every one required, none empty). :meth:`Registry.promote`
makes a version current; :meth:`Registry.rollback` returns to the version that was current
before. Both append to the audit log, which is never rewritten. A running server
(:mod:`mmlab.deploy.serve`) re-reads ``registry.json`` when told to, so a rollback needs no
restart, and each of its responses names the version that made it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any, Mapping

from mmlab.errors import SchemaError

__all__ = ["Registry", "CARD_FIELDS", "is_registry"]

CARD_FIELDS = ("data", "metrics", "calibration", "intended_use", "failure_modes")
_LOCK = threading.Lock()


def is_registry(folder: str | Path) -> bool:
    return (Path(folder) / "registry.json").is_file()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


class Registry:
    """The registry in ``folder`` (created if missing)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        (self.folder / "versions").mkdir(parents=True, exist_ok=True)
        if not is_registry(self.folder):
            self._write_state({"current": None, "previous": []})

    # ------------------------------------------------------------------ state
    def _state(self) -> dict:
        return json.loads((self.folder / "registry.json").read_text())

    def _write_state(self, state: dict) -> None:
        tmp = self.folder / "registry.json.tmp"
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, self.folder / "registry.json")  # atomic: a reader never sees half a file

    def _audit(self, action: str, **fields) -> dict:
        entry = {"time": _now(), "action": action, **fields}
        with open(self.folder / "audit.jsonl", "a") as f:
            f.write(json.dumps(entry) + "\n")
        return entry

    # ------------------------------------------------------------------ queries
    def versions(self) -> list[str]:
        """Registered versions, oldest first."""
        vs = [p.name for p in (self.folder / "versions").iterdir() if (p / "card.json").is_file()]
        return sorted(vs, key=lambda v: int(v[1:]))

    def current(self) -> str | None:
        return self._state()["current"]

    def path(self, version: str) -> Path:
        p = self.folder / "versions" / str(version)
        if not (p / "card.json").is_file():
            raise SchemaError(f"no version {version!r} in {self.folder} (has {self.versions()})")
        return p

    def card(self, version: str) -> dict:
        return json.loads((self.path(version) / "card.json").read_text())

    def audit(self) -> list[dict]:
        f = self.folder / "audit.jsonl"
        return [json.loads(line) for line in f.read_text().splitlines()] if f.is_file() else []

    # ------------------------------------------------------------------ changes
    def register(self, model_folder: str | Path, card: Mapping[str, Any], by: str = "unknown") -> str:
        """Copy ``model_folder`` in as a new version with its model ``card``; returns the
        version name (``v1``, ``v2``, ...). Not promoted."""
        missing = [k for k in CARD_FIELDS if not card.get(k)]
        if missing:
            raise SchemaError(f"the model card lacks {', '.join(missing)} (a card needs every one of "
                              f"{', '.join(CARD_FIELDS)})")
        src = Path(model_folder)
        if not (src / "manifest.json").is_file():
            raise SchemaError(f"{src} is not a model folder (no manifest.json)")
        with _LOCK:
            n = max([int(v[1:]) for v in self.versions()] + [0]) + 1
            version = f"v{n}"
            dst = self.folder / "versions" / version
            shutil.copytree(src, dst)
            (dst / "card.json").write_text(json.dumps({"version": version, "registered": _now(),
                                                       **dict(card)}, indent=2, default=str))
            self._audit("register", version=version, by=by, source=str(src))
        return version

    def promote(self, version: str, by: str = "unknown", reason: str = "") -> str:
        """Make ``version`` current (the current one goes on the rollback stack)."""
        self.path(version)
        with _LOCK:
            st = self._state()
            if st["current"] == version:
                raise SchemaError(f"{version} is already the current version")
            if st["current"] is not None:
                st["previous"].append(st["current"])
            old, st["current"] = st["current"], version
            self._write_state(st)
            self._audit("promote", version=version, previous=old, by=by, reason=reason)
        return version

    def rollback(self, by: str = "unknown", reason: str = "") -> str:
        """Return to the version that was current before the last promotion; returns it."""
        with _LOCK:
            st = self._state()
            if not st["previous"]:
                raise SchemaError(f"nothing to roll back to: {st['current']} is the first version promoted")
            old, st["current"] = st["current"], st["previous"].pop()
            self._write_state(st)
            self._audit("rollback", version=st["current"], previous=old, by=by, reason=reason)
        return st["current"]
