"""Files the engine writes and reads in its own directories, safe against what may be planted there.

A store or output directory may hold things the engine did not put there: a
symbolic link named like one of its files (writing through it would truncate
the link's target), a FIFO (opening it for reading blocks until someone writes
to it), a directory.  Every file the engine creates or locks goes through this
module:

* :func:`atomic_write` writes a new file under a fresh name made exclusively by
  :func:`tempfile.mkstemp` (``O_CREAT | O_EXCL``, so never through a planted
  link or into another file), fsyncs it and renames it into place: a rename
  replaces a planted link itself, never its target.  A crash leaves at most a
  hidden ``.NAME.XXXXXXXX.tmp`` beside it.
* :func:`read_regular` reads a file only when it is a regular file (opened
  with ``O_NONBLOCK``, checked with ``fstat``): a FIFO or device is refused in
  one line instead of blocking.  :func:`check_regular` does the same check
  without reading (before SQLite opens a database).
* :class:`DirectoryLock` is a directory's one-writer lock: an exclusive POSIX
  lock (``fcntl.lockf``) on a lock file holding one JSON line (``host``,
  ``pid``, ``since``, and whatever the writer records with
  :meth:`DirectoryLock.update`).  The lock file is opened with ``O_NOFOLLOW``
  and must be a regular file.  The kernel releases the lock when its process
  dies, so a killed writer's lock is taken over by the next one.  POSIX locks
  belong to a process and are dropped when *any* descriptor of the file is
  closed, so this process never opens a lock file it holds: the holders of
  this process are kept in memory (:func:`read_lock_record`,
  :func:`lock_holder`).

Refusals are :class:`UnsafeFileError` (a ``ValueError``) with one line naming
the file; a held lock is :class:`DirectoryLockedError` with the holder.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["UnsafeFileError", "DirectoryLockedError", "DirectoryLock", "atomic_write", "read_regular",
           "check_regular", "read_lock_record", "lock_holder", "describe_holder"]

#: the keys of a lock's holder (the rest of its record is the writer's own)
HOLDER_KEYS = ("host", "pid", "since")


class UnsafeFileError(ValueError):
    """A path the engine reads or writes is a symbolic link, a FIFO, a directory or another non-regular file."""


class DirectoryLockedError(ValueError):
    """Another writer holds the lock; ``holder`` is its record (``{}`` when unreadable), ``here`` whether that
    writer is in this process."""

    def __init__(self, message: str, holder: dict[str, Any], here: bool):
        super().__init__(message)
        self.holder, self.here = holder, here


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISLNK, "a symbolic link"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _blocking_if_regular(fd: int, path: Any, what: str, verb: str) -> None:
    """Refuse (:class:`UnsafeFileError`) the file opened without blocking as ``fd`` unless it is a regular file;
    then make its reads and writes blocking again."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFileError(f"{path}: the {what} is {_kind(st.st_mode)}, not a regular file; refusing to "
                              f"{verb} it (remove it)")
    os.set_blocking(fd, True)


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def check_regular(path: str | os.PathLike[str], *, follow: bool = True, what: str = "file") -> bool:
    """Whether ``path`` exists; refuses (:class:`UnsafeFileError`) when it exists and is not a regular file
    (with ``follow=False`` a symbolic link is refused too, whatever it points at)."""
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFileError(f"{path}: the {what} is {_kind(st.st_mode)}, not a regular file; refusing to "
                              "open it (remove it)")
    return True


def read_regular(path: str | os.PathLike[str], *, follow: bool = True, what: str = "file") -> bytes:
    """The bytes of ``path``, a regular file (``FileNotFoundError`` when it does not exist); a FIFO, device or
    directory (and with ``follow=False`` a symbolic link) is refused at once, never waited on."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            raise UnsafeFileError(f"{path}: the {what} is a symbolic link; refusing to follow it (remove it)") \
                from None
        if exc.errno == errno.ENXIO:  # a socket or a device without a reader
            check_regular(path, follow=follow, what=what)
        raise
    try:
        _blocking_if_regular(fd, path, what, "read")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], payload: bytes, *, mode: int = 0o644) -> None:
    """Write ``payload`` as ``path``: into a new file made exclusively beside it (never through a planted
    link), fsynced, then renamed into place (a link at ``path`` is replaced, its target untouched)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fchmod(f.fileno(), mode & ~_umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- the lock ---------------------------------------------------------------------------------------------------
# the locks of this process, by resolved lock-file path (a second lockf in this process would succeed, and
# closing any descriptor of the file would release the lock)
_HELD: dict[str, DirectoryLock] = {}


def _key(directory: Path, name: str) -> str:
    return str((directory / name).resolve())


def _parse(raw: bytes) -> dict[str, Any] | None:
    # the first line: a writer rewriting its record in place leaves the end of a longer one until it truncates
    try:
        record = json.loads(raw.split(b"\n", 1)[0].decode() or "null")
    except ValueError:  # torn or garbage: unknown
        return None
    return record if isinstance(record, dict) else None


def describe_holder(holder: dict[str, Any] | None) -> str:
    """``pid 123 on host since 2026-...`` (or ``holder unknown``)."""
    if not holder:
        return "holder unknown"
    return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"


class DirectoryLock:
    """The one-writer lock of ``directory`` (file ``name`` in it; see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str], name: str):
        self.directory, self.name = Path(directory), name
        self.path = self.directory / name
        self.previous: dict[str, Any] | None = None  # the record the last writer left (read when acquiring)
        self.record: dict[str, Any] = {}
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, retry_seconds: float = 1.0, keep: tuple[str, ...] = ()) -> None:
        """Take the lock (retrying ``retry_seconds`` for a reader's brief probe), or raise
        :class:`DirectoryLockedError`; :class:`UnsafeFileError` when the lock file is a link or not a regular
        file; ``OSError`` when it cannot be opened.  ``previous`` is then what the last writer recorded; the
        new record (the holder) carries over its ``keep`` fields."""
        key = _key(self.directory, self.name)
        other = _HELD.get(key)
        if other is not None:
            raise DirectoryLockedError(f"{self.path} is held by this process ({describe_holder(other.record)})",
                                       dict(other.record), True)
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeFileError(f"{self.path}: the lock file is a symbolic link; refusing to write through "
                                      "it (remove it)") from None
            if exc.errno in (errno.EISDIR, errno.ENXIO):
                check_regular(self.path, follow=False, what="lock file")
            raise
        try:
            _blocking_if_regular(fd, self.path, "lock file", "use")
            deadline = time.monotonic() + retry_seconds
            while True:
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EACCES, errno.EAGAIN):
                        raise
                    if time.monotonic() >= deadline:
                        holder = _parse(os.pread(fd, 4096, 0)) or {}
                        raise DirectoryLockedError(f"{self.path} is held by {describe_holder(holder)}",
                                                   holder, False) from None
                    time.sleep(0.05)
            self.previous = _parse(os.pread(fd, 4096, 0))
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        _HELD[key] = self
        self.record = {k: self.previous[k] for k in keep if self.previous and k in self.previous}
        self.update(host=socket.gethostname(), pid=os.getpid(), since=_now())

    def update(self, durable: bool = True, **fields: Any) -> None:
        """Add ``fields`` to the lock's record and write it (one JSON line; fsynced when ``durable``)."""
        if self._fd is None:
            raise RuntimeError(f"{self.path}: the lock is not held")
        self.record = {**self.record, **fields}
        line = (json.dumps(self.record) + "\n").encode()
        os.pwrite(self._fd, line, 0)
        os.ftruncate(self._fd, len(line))
        if durable:
            os.fsync(self._fd)

    def release(self) -> None:
        """Let go (the record stays in the file for the next writer to read)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            _HELD.pop(_key(self.directory, self.name), None)
            os.close(fd)

    def __enter__(self) -> DirectoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def read_lock_record(directory: str | os.PathLike[str], name: str) -> dict[str, Any] | None:
    """The record in ``directory/name`` (None when absent or unreadable), without locking; refuses a link or a
    non-regular file.  For a lock this process holds, the record in memory (the file is not opened)."""
    directory = Path(directory)
    mine = _HELD.get(_key(directory, name))
    if mine is not None:
        return dict(mine.record)
    try:
        return _parse(read_regular(directory / name, follow=False, what="lock file")[:4096])
    except FileNotFoundError:
        return None


def lock_holder(directory: str | os.PathLike[str], name: str) -> dict[str, Any] | None:
    """Who holds the lock ``directory/name`` now (its record; ``{}`` when unreadable), or None when nobody
    does.  Never blocks and never takes the lock; refuses a link or a non-regular lock file."""
    directory = Path(directory)
    mine = _HELD.get(_key(directory, name))
    if mine is not None:
        return dict(mine.record)
    path = directory / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFileError(f"{path}: the lock file is a symbolic link; refusing to follow it (remove it)") \
                from None
        check_regular(path, follow=False, what="lock file")
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError(f"{path}: the lock file is {_kind(st.st_mode)}, not a regular file; refusing "
                                  "to read it (remove it)")
        try:  # a shared lock is refused while a writer holds the exclusive one; never blocks
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                return _parse(os.pread(fd, 4096, 0)) or {}
            return None
        return None
    finally:
        os.close(fd)
