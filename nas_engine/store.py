"""The run store: one SQLite database per search, one writer at a time, readers that never write.

A store is a directory holding

* ``run.sqlite``  the database (Python's built-in :mod:`sqlite3`): the search's
  configuration, one row per finished evaluation, the search's state (strategy
  state, pending proposals, elapsed time) and the artifacts kept beside it;
* ``run.lock``    the writer's lock file (who holds it: host, pid, since);
* large artifacts as files (e.g. a one-shot strategy's ``supernet.pt``, with
  its own checksummed manifest).

**Transactions.**  Each finished evaluation and the search state after the
strategy has been told about it are written in *one* transaction
(:meth:`RunStore.record`); the state after an ``ask`` is written on its own
(:meth:`RunStore.write_state`).  So the evaluations and the state always agree:
a driver killed at any moment leaves the store as of its last commit, and a
resumed search re-runs the proposals that were pending then.  The database runs
in WAL mode with ``synchronous=FULL`` (a commit is on disk when it returns);
a writer that closes cleanly checkpoints the WAL and leaves a single
self-contained file.

**One writer.**  A writer holds an exclusive POSIX lock (``fcntl.lockf``) on
``run.lock`` for as long as the store is open.  A second writer, in another
process or in this one, is refused at once with :class:`StoreLockedError`
naming the store and the holder.  The kernel releases the lock when its
process dies, so a driver killed with ``kill -9`` leaves no lock behind: the
next run takes over by itself (the file's stale holder line is simply
overwritten).  POSIX locks are not inherited by worker processes and are
unreliable on network file systems (SQLite's WAL mode also needs a local file
system): keep stores on local disks.  The lock is
:class:`nas_engine.files.DirectoryLock` (final training's too): a link, FIFO
or directory named ``run.lock`` is refused in one line, and so are a
non-regular ``run.sqlite``, ``-wal`` or ``-shm`` (a link too, for a writer),
before SQLite opens them (a FIFO would block a reader forever).

**Lost commits.**  After each commit the writer records the number of
committed evaluations in ``run.lock`` (``"evaluations"``), where the database
cannot lose it together with its rows; a database holding fewer (its WAL
deleted before a crash, an older copy) is refused by the writer and every
reader.  The writer also checks after each commit that the ``-wal`` file is
still the one it writes (one ``stat``): a deleted or replaced WAL is
checkpointed from the still open file into the database and the search stops
with one line.  A failed commit (a full disk) is reported with SQLite's own
cause; SQLite rolled it back, so the store resumes.

**Readers never write.**  Every read method of a store that is not open for
writing uses a read-only connection (``mode=ro``), so a running search, a
finished store and a read-only directory can be read without modifying them.

**Schema.**  ``PRAGMA application_id`` marks the file as a nas-engine store and
``PRAGMA user_version`` holds the schema version; a newer or foreign file is
refused with a one-line :class:`StoreError`, like a corrupt or truncated one.

**Older stores.**  Directories written by earlier versions (``config.json``,
``evaluations.jsonl``, ``state.json``) are read by a read-only importer (the
committed results under ``reproduce/results/`` are such stores); to resume one,
convert it with :func:`migrate` (``nas-engine migrate DIR``).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Callable
from contextlib import closing, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .config import config_diff
from .files import (
    HOLDER_KEYS,
    DirectoryLock,
    DirectoryLockedError,
    UnsafeFileError,
    check_regular,
    describe_holder,
    lock_holder,
    read_lock_record,
    read_regular,
)

__all__ = ["RunStore", "StoreError", "StoreMismatchError", "StoreLockedError", "SCHEMA_VERSION", "migrate",
           "dumps_strict"]

#: the schema this version writes and reads
SCHEMA_VERSION = 1
#: ``PRAGMA application_id`` of a nas-engine store ("NASE")
APPLICATION_ID = 0x4E415345
#: seconds a writer retries a held lock before refusing (covers a reader's brief probe)
LOCK_RETRY_SECONDS = 1.0

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE evaluations (
    idx INTEGER PRIMARY KEY,
    arch TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    score REAL,
    reason TEXT,
    cost_seconds REAL NOT NULL,
    epochs REAL NOT NULL,
    seed INTEGER NOT NULL,
    cached INTEGER NOT NULL,
    elapsed REAL,
    info TEXT NOT NULL,
    curve TEXT
);
CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 1), n_records INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE artifacts (name TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL, meta TEXT NOT NULL);
"""

_COLUMNS = ("idx", "arch", "status", "score", "reason", "cost_seconds", "epochs", "seed", "cached", "elapsed",
            "info", "curve")

def _create(con: sqlite3.Connection, config_text: str, **meta: str) -> None:
    """Create the schema and the ``meta`` rows (inside the caller's transaction)."""
    for stmt in filter(str.strip, _SCHEMA.split(";")):
        con.execute(stmt)
    con.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
        ("config", config_text), ("created", _now()), ("schema_version", str(SCHEMA_VERSION)), *meta.items()])
    con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


class StoreError(ValueError):
    """A store cannot be used: damaged, foreign, newer, locked, or not the search asked for (one-line message)."""


class StoreMismatchError(StoreError):
    """The store holds a different search than the one asked to resume."""


class StoreLockedError(StoreError):
    """Another search is writing to the store."""


def dumps_strict(obj: Any) -> str:
    """Strict JSON (no NaN/Infinity tokens); raises ``ValueError``/``TypeError`` for what JSON cannot hold."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def _dumps_internal(obj: Any) -> str:
    # curves and strategy states may hold non-finite floats (a diverged loss, a -inf incumbent); they are
    # read back by Python's json only, which knows NaN/Infinity
    return json.dumps(obj, separators=(",", ":"), allow_nan=True)


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


class RunStore:
    """The on-disk record of one search (see the module docstring).

    ``RunStore(path)`` reads; :meth:`open` (with the search's configuration)
    makes it the store's one writer until :meth:`close`.
    """

    DATABASE = "run.sqlite"
    LOCK = "run.lock"
    # the files of the JSONL stores of earlier versions (read-only importer)
    LEGACY_CONFIG, LEGACY_RECORDS, LEGACY_STATE = "config.json", "evaluations.jsonl", "state.json"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(f"store path {str(self.path)!r} exists and is not a directory")
        self._con: sqlite3.Connection | None = None
        self._lock_file: DirectoryLock | None = None
        self._wal: tuple[int, int] | None = None  # (device, inode) of the write-ahead log while writing
        self._n = 0  # evaluations committed while writing

    @property
    def database(self) -> Path:
        return self.path / self.DATABASE

    @property
    def is_legacy(self) -> bool:
        """True for a JSONL store of an earlier version (no database, ``evaluations.jsonl`` or ``config.json``)."""
        return not self.database.exists() and any(
            (self.path / f).exists() for f in (self.LEGACY_RECORDS, self.LEGACY_CONFIG, self.LEGACY_STATE))

    @property
    def writing(self) -> bool:
        return self._con is not None

    def _err(self, what: str) -> StoreError:
        return StoreError(f"store {str(self.path)!r}: {what}")

    # -- the writer ---------------------------------------------------------------------------------
    def open(self, config: dict[str, Any], upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None
             ) -> None:
        """Become the store's writer: create it, or check that it holds the same search.

        ``upgrade`` converts a stored configuration of an earlier version into
        the current vocabulary before the comparison; when the converted one
        equals ``config``, the store's configuration is rewritten in the new
        vocabulary (in one transaction) and the search resumes.

        Raises :class:`StoreLockedError` if another search holds the store,
        :class:`StoreMismatchError` if it holds a different search, and
        :class:`StoreError` for a damaged, foreign, newer or older-format store.
        """
        if self._con is not None:
            raise self._err("is already open for writing by this RunStore")
        try:
            config_text = dumps_strict(config)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the search configuration cannot be stored as JSON: {exc}") from None
        if self.is_legacy:
            raise self._err("holds a JSONL store of an earlier nas-engine version; it can be read "
                            "(SearchResult.load, nas-engine show) but not resumed: convert it with "
                            f"`nas-engine migrate {self.path}` first")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._err(f"cannot create the directory ({exc.strerror or exc})") from None
        self._lock()
        try:
            con = self._connect(write=True)
            try:
                self._n = self._init_or_check(con, config, config_text, upgrade)
                self._lock_file.update(evaluations=self._n)
            except BaseException:
                con.close()
                raise
            self._con = con
            self._wal = self._wal_identity()  # None until the first commit creates it
        except BaseException:
            self._con = None
            self._unlock()
            raise

    def _init_or_check(self, con: sqlite3.Connection, config: dict[str, Any], config_text: str,
                       upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> int:
        """Create the store or check it; the number of evaluations it holds."""
        committed = self._committed()
        with self._translate():
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:  # a new store (or an empty file left by a crash before the first commit)
                others = sorted(p.name for p in self.path.iterdir()
                                if p.name not in (self.DATABASE, self.LOCK) and not p.name.startswith(self.DATABASE))
                if others:
                    raise self._err(f"has no database ({self.DATABASE}) but holds {', '.join(others[:5])}; "
                                    "refusing to start a new search over it: use an empty directory")
                self._check_committed(0, committed)
                con.execute("BEGIN IMMEDIATE")
                _create(con, config_text)
                con.execute("COMMIT")
                return 0
            self._check_schema(con, tables)
            (held,) = con.execute("SELECT COUNT(*) FROM evaluations").fetchone()
            self._check_committed(held, committed)
            stored = self._config_from(con)
            old = upgrade(stored) if upgrade is not None else stored
            diff = config_diff(old, json.loads(config_text))
            if diff:
                raise StoreMismatchError(
                    f"store {str(self.path)!r} holds a different search (differs in: {', '.join(diff)}); "
                    "use a new directory or the same configuration to resume")
            if old != stored:  # the same search in an earlier version's words: store it in the current ones
                con.execute("BEGIN IMMEDIATE")
                con.execute("UPDATE meta SET value = ? WHERE key = 'config'", (config_text,))
                con.execute("COMMIT")
            return held

    def close(self) -> None:
        """Stop writing: checkpoint the WAL into the database file and release the lock."""
        con, self._con = self._con, None
        if con is not None:
            try:
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                con.execute("PRAGMA journal_mode = DELETE")  # a finished store is one self-contained file
            except sqlite3.Error:  # a reader holds the WAL open: it stays in WAL mode, which is fine
                pass
            finally:
                con.close()
        self._unlock()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write_state(self, state: dict[str, Any]) -> None:
        """Replace the search state (after an ``ask``: new pending proposals)."""
        con = self._writer()
        body = self._state_body(state)
        with self._translate():
            con.execute("BEGIN IMMEDIATE")
            try:
                self._put_state(con, int(state["n_records"]), body)
                con.execute("COMMIT")
            except BaseException:
                self._rollback(con)
                raise
        self._check_wal()

    def record(self, record: dict[str, Any], state: dict[str, Any]) -> None:
        """Add one finished evaluation and the state after its ``tell``, in one transaction.

        ``record`` is :meth:`~nas_engine.results.Evaluation.to_record` plus
        ``elapsed``; its ``index`` must be the number of evaluations stored so
        far (a duplicate or a gap is refused), and ``state["n_records"]`` the
        count after it.
        """
        con = self._writer()
        row = self._row(record)
        body = self._state_body(state)
        with self._translate():
            con.execute("BEGIN IMMEDIATE")
            try:
                (n,) = con.execute("SELECT COUNT(*) FROM evaluations").fetchone()
                if row[0] != n:
                    raise self._err(f"evaluation index {row[0]} does not follow the {n} stored evaluations")
                if int(state["n_records"]) != n + 1:
                    raise self._err(f"state reflects {state['n_records']} evaluations, the store would hold {n + 1}")
                con.execute(f"INSERT INTO evaluations ({', '.join(_COLUMNS)}) VALUES "
                            f"({', '.join('?' * len(_COLUMNS))})", row)
                self._put_state(con, n + 1, body)
                con.execute("COMMIT")
            except BaseException:
                self._rollback(con)
                raise
        self._n = n + 1
        self._check_wal()
        # where the database cannot lose it together with its rows: a resume or a reader holding fewer refuses
        self._lock_file.update(durable=False, evaluations=self._n)

    @staticmethod
    def _rollback(con: sqlite3.Connection) -> None:
        """Roll back what is left of a failed transaction: SQLite has already rolled back one whose COMMIT failed
        (a full disk), and a ROLLBACK then would hide the real error behind "no transaction is active"."""
        if con.in_transaction:
            try:
                con.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def put_artifact(self, name: str, sha256: str, size: int, meta: dict[str, Any] | None = None) -> None:
        """Reference a file kept beside the database (path relative to the store) with its checksum."""
        con = self._writer()
        with self._translate():
            con.execute("INSERT OR REPLACE INTO artifacts (name, sha256, size, meta) VALUES (?, ?, ?, ?)",
                        (name, sha256, int(size), dumps_strict(meta or {})))  # autocommit: one statement

    def _writer(self) -> sqlite3.Connection:
        if self._con is None:
            raise self._err("is not open for writing (call open(config) first)")
        return self._con

    @staticmethod
    def _state_body(state: dict[str, Any]) -> str:
        try:
            return _dumps_internal(state)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the search state cannot be stored as JSON: {exc}") from None

    @staticmethod
    def _put_state(con: sqlite3.Connection, n: int, body: str) -> None:
        con.execute("INSERT INTO state (id, n_records, body) VALUES (1, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET n_records = excluded.n_records, body = excluded.body", (n, body))

    def _row(self, rec: dict[str, Any]) -> tuple:
        try:
            score = rec["score"]
            score = float(score) if score is not None and math.isfinite(float(score)) else None
            curve = rec.get("curve")
            return (int(rec["index"]), str(rec["arch"]), str(rec["status"]), score, rec.get("reason"),
                    float(rec["cost_seconds"]), float(rec["epochs"]), int(rec["seed"]), int(bool(rec["cached"])),
                    None if rec.get("elapsed") is None else float(rec["elapsed"]),
                    dumps_strict(rec.get("info") or {}), None if curve is None else _dumps_internal(curve))
        except KeyError as exc:
            raise ValueError(f"an evaluation record needs the key {exc.args[0]!r}; got keys {sorted(rec)}") from None

    # -- the lock -----------------------------------------------------------------------------------
    def _lock(self) -> None:
        lock = DirectoryLock(self.path, self.LOCK)
        try:
            lock.acquire(LOCK_RETRY_SECONDS, keep=("evaluations",))  # until the database is checked against it
        except DirectoryLockedError as exc:
            if exc.here:
                raise StoreLockedError(f"store {str(self.path)!r} is in use by another search in this process "
                                       f"({describe_holder(exc.holder)}); wait for it or use another directory"
                                       ) from None
            raise StoreLockedError(f"store {str(self.path)!r} is in use by another search "
                                   f"({describe_holder(exc.holder)}); wait for it to finish or stop it, or use "
                                   "another directory") from None
        except UnsafeFileError as exc:
            raise self._err(str(exc)) from None
        except OSError as exc:
            raise self._err(f"cannot open its lock file {self.LOCK} for writing "
                            f"({exc.strerror or exc}); a read-only store can be read, not resumed") from None
        self._lock_file = lock

    def _unlock(self) -> None:
        lock, self._lock_file = self._lock_file, None
        if lock is not None:
            lock.release()  # the record stays (the next writer reads the committed count, then overwrites it)

    def _committed(self) -> int:
        """The number of evaluations the last writer recorded in the lock file as committed (0 when unknown):
        the database may not hold fewer (see :meth:`_check_committed`)."""
        if self._lock_file is not None:
            record = self._lock_file.previous
        else:
            try:
                record = read_lock_record(self.path, self.LOCK)
            except UnsafeFileError as exc:
                raise self._err(str(exc)) from None
        n = (record or {}).get("evaluations")
        return n if type(n) is int and n > 0 else 0

    def _check_committed(self, held: int, committed: int) -> None:
        if held < committed:
            raise self._err(
                f"{self.DATABASE} holds {held} evaluations but {self.LOCK} records that {committed} were committed: "
                f"the database lost committed results (its write-ahead log {self.DATABASE}-wal deleted, or the "
                "file replaced by an older copy); refusing to go on as if they never existed: restore the "
                f"database, or delete {self.LOCK} to accept the loss")

    def _check_wal(self) -> None:
        """After a commit: the write-ahead log must still be the file this connection writes.  A deleted (or
        replaced) ``-wal`` file takes every commit since the last checkpoint with it when the process ends;
        the connection still has it open, so its content is checkpointed into the database and the search
        stopped with one line."""
        ident = self._wal_identity()
        if ident is not None and (self._wal is None or ident == self._wal):
            self._wal = ident
            return
        try:
            self._con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            saved = f"the {self._n} evaluations committed so far were copied into {self.DATABASE} and are safe"
        except sqlite3.Error as exc:
            saved = f"copying them into {self.DATABASE} failed ({exc}): evaluations may be lost"
        raise self._err(f"its write-ahead log {self.DATABASE}-wal was {'deleted' if ident is None else 'replaced'} "
                        f"while the search was writing; {saved}; the search stops: run the same command to "
                        "resume (never delete the -wal file of a running search)")

    def _wal_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path / f"{self.DATABASE}-wal")
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def holder(self) -> dict[str, Any] | None:
        """Who is writing to the store now (``{"host", "pid", "since"}``), or None when no search holds it."""
        try:
            record = lock_holder(self.path, self.LOCK)
        except UnsafeFileError as exc:
            raise self._err(str(exc)) from None
        return None if record is None else {k: record[k] for k in HOLDER_KEYS if k in record}

    # -- connections --------------------------------------------------------------------------------
    def _connect(self, write: bool) -> sqlite3.Connection:
        db = self.database
        try:  # SQLite would block on a FIFO, and a writer would write through a planted link
            for name, what in ((self.DATABASE, "database"), (f"{self.DATABASE}-wal", "write-ahead log"),
                               (f"{self.DATABASE}-shm", "shared-memory index")):
                check_regular(self.path / name, follow=not write, what=what)
        except UnsafeFileError as exc:
            raise self._err(str(exc)) from None
        if write:
            uri = f"{db.resolve().as_uri()}?mode=rwc"
        else:
            if not db.exists():
                raise self._err(f"has no database {self.DATABASE}")
            uri = f"{db.resolve().as_uri()}?mode=ro"
        with self._translate():
            con = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0, check_same_thread=False)
            try:
                if write:
                    mode = con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                    if mode != "wal":
                        raise self._err(f"cannot use WAL mode (journal_mode {mode!r})")
                    con.execute("PRAGMA synchronous = FULL")
                con.execute("PRAGMA foreign_keys = ON")
            except BaseException:
                con.close()
                raise
        return con

    @contextmanager
    def _reader(self):
        """The writer's connection when open, else a fresh read-only one (closed afterwards)."""
        if self._con is not None:
            yield self._con
            return
        committed = self._committed()  # before the database: the writer records a count after its commit
        con = self._connect(write=False)
        try:
            with self._translate():
                tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if not tables:
                    self._check_committed(0, committed)
                    raise self._err(f"{self.DATABASE} is empty (a search that crashed before its first commit)")
                self._check_schema(con, tables)
            yield con
        finally:
            con.close()

    @contextmanager
    def _translate(self):
        """Turn SQLite's errors into one-line :class:`StoreError` naming the database file."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            msg = str(exc)
            if "not a database" in msg or "malformed" in msg or "disk image" in msg:
                what = f"{self.DATABASE} is corrupt or not a SQLite database ({msg})"
            elif "readonly" in msg or "read-only" in msg:
                what = f"{self.DATABASE} is read-only ({msg}); a read-only store can be read, not resumed"
            elif "full" in msg:
                what = (f"{self.DATABASE}: {msg} (the disk is full, or the database reached its size limit); "
                        "nothing committed is lost: free space and run the same command to resume")
            elif "unable to open" in msg:
                what = f"cannot open {self.DATABASE} ({msg})"
            else:
                what = f"{self.DATABASE}: {msg}"
            raise self._err(what) from None

    def _check_schema(self, con: sqlite3.Connection, tables: set[str]) -> None:
        (app,) = con.execute("PRAGMA application_id").fetchone()
        (version,) = con.execute("PRAGMA user_version").fetchone()
        if app != APPLICATION_ID:
            raise self._err(f"{self.DATABASE} is a SQLite database but not a nas-engine store "
                            f"(application_id {app:#x}, expected {APPLICATION_ID:#x})")
        if version > SCHEMA_VERSION:
            raise self._err(f"{self.DATABASE} has schema version {version}, written by a newer nas-engine; "
                            f"this version reads schema {SCHEMA_VERSION}: upgrade nas-engine")
        if version != SCHEMA_VERSION:
            raise self._err(f"{self.DATABASE} has unknown schema version {version} (expected {SCHEMA_VERSION})")
        missing = {"meta", "evaluations", "state", "artifacts"} - tables
        if missing:
            raise self._err(f"{self.DATABASE} is damaged: tables {sorted(missing)} are missing")
        problems = [r[0] for r in con.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise self._err(f"{self.DATABASE} is corrupt (integrity check: {problems[0]})")

    def _config_from(self, con: sqlite3.Connection) -> dict[str, Any]:
        row = con.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
        if row is None:
            raise self._err(f"{self.DATABASE} holds no search configuration; it is damaged (refusing to guess "
                            "which search it belongs to)")
        try:
            return json.loads(row[0])
        except ValueError as exc:
            raise self._err(f"the stored configuration is not valid JSON ({exc})") from None

    # -- readers ------------------------------------------------------------------------------------
    def exists(self) -> bool:
        """Whether the directory holds a store (of this or an earlier version)."""
        return self.database.exists() or self.is_legacy

    def config(self) -> dict[str, Any] | None:
        """The stored search configuration (None when the directory holds no store)."""
        if self.is_legacy:
            return _Legacy(self.path).config()
        if not self.database.exists():
            return None
        with self._reader() as con:
            return self._config_from(con)

    def records(self) -> list[dict[str, Any]]:
        """Every finished evaluation, in order, as :meth:`~nas_engine.results.Evaluation.to_record` dicts
        plus ``elapsed``."""
        return self.load()[0]

    def state(self) -> dict[str, Any] | None:
        """The search state (None before the first one was written)."""
        return self.load()[1]

    def load(self) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """The evaluations and the state, read in one transaction (so they agree)."""
        return self.read()[1:]

    def read(self) -> tuple[dict[str, Any] | None, list[dict[str, Any]], dict[str, Any] | None]:
        """The configuration, the evaluations and the state, read through one connection in one transaction
        (what :meth:`~nas_engine.results.SearchResult.load` needs)."""
        if self.is_legacy:
            legacy = _Legacy(self.path)
            return legacy.config(), legacy.records(), legacy.state()
        if not self.database.exists():
            return None, [], None
        committed = 0 if self._con is not None else self._committed()
        with self._reader() as con, self._translate():
            con.execute("BEGIN")
            try:
                config = self._config_from(con)
                rows = con.execute(f"SELECT {', '.join(_COLUMNS)} FROM evaluations ORDER BY idx").fetchall()
                st = con.execute("SELECT n_records, body FROM state WHERE id = 1").fetchone()
            finally:
                con.execute("COMMIT")
        records = [self._record_of(row) for row in rows]
        state = None
        if st is not None:
            try:
                state = json.loads(st[1])
            except ValueError as exc:
                raise self._err(f"the stored search state is not valid JSON ({exc})") from None
            if st[0] != len(records):
                raise self._err(f"is inconsistent: the state reflects {st[0]} evaluations, the database "
                                f"holds {len(records)}")
        self._check_committed(len(records), committed)
        for i, r in enumerate(records):
            if r["index"] != i:
                raise self._err(f"is inconsistent: evaluation {i} has index {r['index']}")
        return config, records, state

    def artifacts(self) -> dict[str, dict[str, Any]]:
        """The files referenced from the database: ``{name: {"sha256", "size", "meta"}}``."""
        if self.is_legacy or not self.database.exists():
            return {}
        with self._reader() as con, self._translate():
            rows = con.execute("SELECT name, sha256, size, meta FROM artifacts ORDER BY name").fetchall()
        return {n: {"sha256": h, "size": s, "meta": json.loads(m)} for n, h, s, m in rows}

    def _record_of(self, row: tuple) -> dict[str, Any]:
        rec = dict(zip(_COLUMNS, row))
        try:
            info = json.loads(rec["info"])
            curve = None if rec["curve"] is None else json.loads(rec["curve"])
        except ValueError as exc:
            raise self._err(f"evaluation {rec['idx']} holds invalid JSON ({exc})") from None
        return {"index": rec["idx"], "arch": rec["arch"], "score": rec["score"], "cost_seconds": rec["cost_seconds"],
                "epochs": rec["epochs"], "status": rec["status"], "reason": rec["reason"], "seed": rec["seed"],
                "cached": bool(rec["cached"]), "info": info, "curve": curve, "elapsed": rec["elapsed"]}

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"


class _Legacy:
    """Read-only importer of the JSONL stores of earlier versions (never modifies them)."""

    def __init__(self, path: Path):
        self.path = path

    def _err(self, what: str) -> StoreError:
        return StoreError(f"store {str(self.path)!r}: {what}")

    def _json_file(self, name: str) -> Any:
        p = self.path / name
        if not p.exists():
            return None
        try:
            return json.loads(read_regular(p, what=name).decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise self._err(f"{name} is not readable JSON ({exc})") from None

    def config(self) -> dict[str, Any]:
        cfg = self._json_file(RunStore.LEGACY_CONFIG)
        if cfg is None:
            raise self._err(f"has evaluations but no {RunStore.LEGACY_CONFIG}; refusing to guess which search "
                            "they belong to")
        return cfg

    def state(self) -> dict[str, Any] | None:
        return self._json_file(RunStore.LEGACY_STATE)

    def records(self) -> list[dict[str, Any]]:
        """The complete records; a torn last line (a crash mid-append) is ignored, anything else is an error."""
        p = self.path / RunStore.LEGACY_RECORDS
        if not p.exists():
            return []
        try:
            data = read_regular(p, what=p.name)
        except UnsafeFileError as exc:
            raise self._err(str(exc)) from None
        except OSError as exc:
            raise self._err(f"cannot read {p.name} ({exc.strerror or exc})") from None
        lines = data.split(b"\n")
        out = []
        for i, raw in enumerate(lines):
            if not raw.strip():
                continue
            last = i == len(lines) - 1  # no newline after it: possibly torn
            try:
                rec = json.loads(raw)
            except ValueError as exc:
                if last:
                    break
                raise self._err(f"{p.name} line {i + 1} is not a JSON record ({exc}); the store is damaged") \
                    from None
            if not isinstance(rec, dict) or rec.get("index") != len(out):
                raise self._err(f"{p.name} line {i + 1}: expected the record with index {len(out)}, got "
                                f"{rec.get('index') if isinstance(rec, dict) else type(rec).__name__!r}")
            out.append(rec)
        return out


def migrate(path: str | os.PathLike) -> RunStore:
    """Convert a JSONL store of an earlier version into a database store in place.

    The old files move to ``DIR/legacy-jsonl/`` (nothing is deleted).  The
    configuration is carried over as it was: resuming it works when the
    current version describes the search the same way (otherwise the resume is
    refused naming the differing keys, as for any other store).
    """
    store = RunStore(path)
    if not store.is_legacy:
        raise StoreError(f"store {str(store.path)!r} is not a JSONL store of an earlier version "
                         "(nothing to migrate)")
    legacy = _Legacy(store.path)
    config, records, state = legacy.config(), legacy.records(), legacy.state()
    if state is None and records:
        raise StoreError(f"store {str(store.path)!r} has evaluations but no {RunStore.LEGACY_STATE}; it is damaged")
    backup = store.path / "legacy-jsonl"
    backup.mkdir(exist_ok=True)
    moved = []
    for name in (RunStore.LEGACY_CONFIG, RunStore.LEGACY_RECORDS, RunStore.LEGACY_STATE):
        if (store.path / name).exists():
            os.replace(store.path / name, backup / name)
            moved.append(name)
    try:
        new = RunStore(store.path)
        # the database may be created over the remaining files (artifacts such as supernet.pt)
        new._lock()
        try:
            con = new._connect(write=True)
            with new._translate(), closing(con):
                con.execute("BEGIN IMMEDIATE")
                _create(con, dumps_strict(config), migrated_from="jsonl")
                n = int(state["n_records"]) if state is not None else 0
                for rec in records[:n]:  # a record ahead of the state is re-run on resume, as before
                    con.execute(f"INSERT INTO evaluations ({', '.join(_COLUMNS)}) VALUES "
                                f"({', '.join('?' * len(_COLUMNS))})", new._row(rec))
                if state is not None:
                    RunStore._put_state(con, n, _dumps_internal(state))
                con.execute("COMMIT")
                con.execute("PRAGMA journal_mode = DELETE")
            new._lock_file.update(evaluations=n)
        finally:
            new._unlock()
    except BaseException:
        (store.path / RunStore.DATABASE).unlink(missing_ok=True)
        for name in moved:
            os.replace(backup / name, store.path / name)
        raise
    return RunStore(store.path)
