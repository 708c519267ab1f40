"""Append-only run store: durable results and exact resume.

A store is a directory:

* ``config.json``       what the search is (plugins, data, protocol, seed); a
                        resumed search must match it.
* ``evaluations.jsonl`` one JSON line per finished evaluation, appended and
                        fsync'ed as it completes (a torn last line from a crash
                        is ignored on load).
* ``state.json``        the search's state (strategy state, pending proposals,
                        elapsed time, how many records it reflects), replaced
                        atomically.  Pending proposals are those asked for and
                        not yet recorded: in flight on a worker or queued; a
                        resumed search starts them again.

Records are appended in completion order, which with several workers need not
be the order of the proposals.  The search writes the state after every
``ask`` and after every ``tell``, one record at a time, so the records are at
most one ahead of the state: a crash between appending a record and writing
the next state is repaired on load by removing the record's architecture from
the pending proposals (any of them, not necessarily the first) and replaying
its ``tell`` (see :mod:`nas_engine.search`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .config import config_diff

__all__ = ["RunStore", "StoreMismatchError"]


class StoreMismatchError(ValueError):
    """The store holds a different search than the one asked to resume."""


def _dumps(obj: Any) -> str:
    # JSON with Infinity/NaN allowed (failed candidates carry score -inf)
    return json.dumps(obj, separators=(",", ":"), allow_nan=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


class RunStore:
    """The on-disk record of one search (see the module docstring)."""

    CONFIG = "config.json"
    RECORDS = "evaluations.jsonl"
    STATE = "state.json"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(f"store path {str(self.path)!r} exists and is not a directory")

    # -- config -------------------------------------------------------------
    def open(self, config: dict[str, Any]) -> None:
        """Create the store, or check that an existing one holds the same search."""
        self.path.mkdir(parents=True, exist_ok=True)
        cfg_path = self.path / self.CONFIG
        if cfg_path.exists():
            old, new = json.loads(cfg_path.read_text()), json.loads(_dumps(config))
            diff = config_diff(old, new)
            if diff:
                raise StoreMismatchError(
                    f"store {str(self.path)!r} holds a different search (differs in: {', '.join(diff)}); "
                    "use a new directory or the same configuration to resume"
                )
        else:
            self._atomic_write(cfg_path, json.dumps(config, indent=2, allow_nan=True))

    def config(self) -> dict[str, Any] | None:
        p = self.path / self.CONFIG
        return json.loads(p.read_text()) if p.exists() else None

    # -- records --------------------------------------------------------------
    def append(self, record: dict[str, Any]) -> None:
        line = _dumps(record) + "\n"
        with open(self.path / self.RECORDS, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def records(self) -> list[dict[str, Any]]:
        """All complete records, in order; a torn trailing line is dropped (and truncated away)."""
        p = self.path / self.RECORDS
        if not p.exists():
            return []
        data = p.read_bytes()
        out, good = [], 0
        for raw in data.splitlines(keepends=True):
            if not raw.endswith(b"\n"):
                break
            try:
                out.append(json.loads(raw))
            except json.JSONDecodeError:
                break
            good += len(raw)
        if good != len(data):  # drop a torn last line so later appends stay well-formed
            with open(p, "r+b") as f:
                f.truncate(good)
        return out

    # -- state ---------------------------------------------------------------
    def write_state(self, state: dict[str, Any]) -> None:
        self._atomic_write(self.path / self.STATE, _dumps(state))

    def state(self) -> dict[str, Any] | None:
        p = self.path / self.STATE
        return json.loads(p.read_text()) if p.exists() else None

    def _atomic_write(self, path: Path, text: str) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"
