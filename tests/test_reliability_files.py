"""Reliability, round two (issue 33), files and directories: the writer lock of final training, planted symlinks
and FIFOs, a full disk, a vanished write-ahead log, and pickles that ask for huge buffers through the restricted
unpickler's admitted globals."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from nas_engine.cli import main as cli
from nas_engine.final import CHECKPOINT, EXPORT, LOCK, MODEL, SUMMARY, train_final
from nas_engine.safeload import manifest_path, safe_pickle_load
from nas_engine.store import RunStore, StoreError

from .conftest import TINY, digits_subset
from .store_driver import Quick, make_search

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1
    from numpy.core.multiarray import _reconstruct

HUGE = 1_460_000_000  # the 1.46 GB of the attack


class Reduce:
    """Pickles as ``func(*args)`` (with ``state`` given to the result's ``__setstate__`` when not None)."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _flagged_void() -> np.dtype:
    """A void dtype flagged as holding object pointers (what ``dtype.__setstate__`` lets a pickle make)."""
    dt = np.dtype("V8")
    dt.__setstate__((3, "|", None, None, None, 8, 1, 0x3F))
    assert dt.hasobject
    return dt


SIZED = {  # a buffer or array of a size the file does not hold, through an admitted global
    "bytearray(numpy.int64)": (Reduce(bytearray, (np.int64(HUGE),)), "bytearray(int64) is not admitted"),
    "bytes(numpy.int64)": (Reduce(bytes, (np.int64(HUGE),)), "bytes(int64) is not admitted"),
    "bytearray(0-d array)": (Reduce(bytearray, (np.array(HUGE),)), "bytearray(ndarray) is not admitted"),
    "bytes(str, utf-32)": (Reduce(bytes, ("a", "utf-32")), "bytes(str, str) is not admitted"),
    "ndarray(shape)": (Reduce(np.ndarray, ((HUGE,), "u1")), "is not admitted"),
    "_reconstruct(shape)": (Reduce(_reconstruct, (np.ndarray, (HUGE,), b"u1")),
                            "_reconstruct is admitted only as _reconstruct(ndarray, (0,), b'b')"),
    "array state larger than its data": (Reduce(_reconstruct, (np.ndarray, (0,), b"b"),
                                                (1, (HUGE,), np.dtype("u1"), False, b"ab")),
                                         "buffer size does not match array size"),
    "object array, short list": (Reduce(_reconstruct, (np.ndarray, (0,), b"b"),
                                        (1, (HUGE // 8,), np.dtype("O"), False, [1])),
                                 f"an object array of shape ({HUGE // 8},) needs a list of {HUGE // 8} objects"),
    "void dtype flagged as objects": (Reduce(_reconstruct, (np.ndarray, (0,), b"b"),
                                             (1, (1,), _flagged_void(), False, b"\x01" * 8)),
                                      "is not one numpy makes; not admitted"),
    "zero item size": (Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, (10**12,), np.dtype([]), False, b"")),
                       "item size 0"),
}


@pytest.mark.parametrize("protocol", [2, 5])
@pytest.mark.parametrize("name", list(SIZED))
def test_admitted_globals_never_allocate_what_the_file_does_not_hold(name, protocol):
    """``bytearray(numpy.int64(n))`` allocated 1.46 GB from a 239-byte file before the refusal; every sized
    constructor reachable through the admitted globals is refused (or checked by numpy against the data's size)
    before it allocates: the traced peak stays under 1 MB."""
    payload, message = SIZED[name]
    raw = pickle.dumps(payload, protocol=protocol)
    assert len(raw) < 400
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as err:
            safe_pickle_load(io.BytesIO(raw), path_for_errors="crafted.pkl", what="a CIFAR-10 batch")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"{name}: {peak} bytes allocated"
    line = str(err.value)
    assert line.startswith("crafted.pkl: ") and "\n" not in line and message in line


def test_what_numpy_pickles_still_loads():
    """The checked forms are the ones numpy writes: arrays (plain, structured, objects), scalars, protocols 2-5."""
    obj = {"u8": np.arange(6, dtype=np.uint8).reshape(2, 3), "rec": np.zeros(2, [("a", "<i4"), ("b", "<f8", (2,))]),
           "obj": np.array([1, "a", None], dtype=object), "s": np.float32(2.5), "str": np.array(["ab", "c"]),
           "b": bytearray(b"xy"), "e": b""}
    for protocol in (2, 3, 4, 5):
        back = safe_pickle_load(io.BytesIO(pickle.dumps(obj, protocol=protocol)), path_for_errors="x", what="a test")
        for k, v in obj.items():
            assert type(back[k]) is type(v)
            if isinstance(v, np.ndarray):
                assert back[k].dtype == v.dtype and back[k].shape == v.shape
                assert back[k].tolist() == v.tolist() if v.dtype.hasobject else back[k].tobytes() == v.tobytes()
            else:
                assert back[k] == v


# -- helpers ------------------------------------------------------------------------------------------------------
ARCH = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
VICTIM = b"precious data, not to be truncated\n"


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(VICTIM)
    return victim


def _one_line(capsys, argv) -> str:
    """Run the CLI in a thread bounded to 20 s (a FIFO would block it forever); it must exit 2 with one line."""
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("rc", cli(argv)), daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), f"nas-engine {' '.join(argv)} blocked"
    err = capsys.readouterr().err.strip()
    assert box["rc"] == 2, err
    assert err.startswith("nas-engine: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def _summary(result) -> list[tuple]:
    return [(e.index, e.arch.string, e.score, e.status, e.seed) for e in result.history]


@pytest.fixture
def quick_export(monkeypatch):
    """``torch.export`` (2 s a network) stands for nothing these tests check: its bytes are written the same."""
    import nas_engine.final

    monkeypatch.setattr(nas_engine.final, "_export", lambda net, data: (b"an exported program", 0.0))


def _train(out: Path, epochs: int = 1, progress=False):
    return train_final("nb201", ARCH, digits_subset(), TINY, schedule_epochs=epochs, out=out, seed=1,
                       progress=progress)


# -- final training's writer lock ---------------------------------------------------------------------------------
HOLDER = """
import fcntl, json, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.lockf(fd, fcntl.LOCK_EX)
record = {"host": "other-host", "pid": os.getpid(), "since": "2026-12-07T21:00:00+00:00"}
os.write(fd, (json.dumps(record) + "\\n").encode())
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_final_training_into_the_same_out_is_refused_and_a_killed_holders_lock_is_taken_over(
        tmp_path, capsys, quick_export):
    """Two ``nas-engine train`` runs into one ``--out`` both succeeded and mixed their files.  Another process
    holding the output directory's lock (the kernel's lockf on run.lock, as a running training holds it) makes
    the CLI refuse in one line naming its pid, host and start time, before anything is written; once the holder
    is killed (-9), the next training takes the stale lock over and runs."""
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out / LOCK)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        err = _one_line(capsys, ["train", "--arch", ARCH, "--schedule-epochs", "1", "--data", "digits", "--C", "4",
                                 "--N", "1", "--device", "cpu", "--threads", "1", "--out", str(out), "--quiet"])
        assert (f"{out}: the output directory is in use by another final training or search (pid {holder.pid} on "
                "other-host since 2026-12-07T21:00:00+00:00); wait for it to finish") in err
        assert sorted(p.name for p in out.iterdir()) == [LOCK]  # nothing of the refused run
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    # the same training in this process while one runs: refused too (from the epoch callback of the first)
    seen = []

    def second(line: str) -> None:
        with pytest.raises(ValueError, match="the output directory is in use by another final training or search "
                                             "in this process"):
            _train(out)
        seen.append(line)

    final = _train(out, progress=second)
    assert seen and final.files["summary"].is_file()
    assert json.loads((out / LOCK).read_text())["pid"] == os.getpid()


# -- planted links and FIFOs --------------------------------------------------------------------------------------
def test_links_planted_in_an_output_directory_are_replaced_never_written_through(tmp_path, capsys, quick_export):
    """checkpoint.pt.tmp, model.pt.tmp, summary.json.tmp (and every other name a writer used) pointing at another
    file had that file truncated and overwritten.  Every file is now made exclusively under a fresh name and
    renamed into place: the links are replaced, the victim stays byte-identical; a link named run.lock is
    refused in one line."""
    victim = _victim(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    for name in (CHECKPOINT + ".tmp", manifest_path(CHECKPOINT).name + ".tmp", MODEL + ".tmp", EXPORT + ".tmp",
                 SUMMARY + ".tmp"):
        (out / name).symlink_to(victim)
    final = _train(out, epochs=2)
    assert victim.read_bytes() == VICTIM
    assert final.files["summary"].is_file() and (out / EXPORT).read_bytes() == b"an exported program"
    assert not any((out / name).is_symlink() for name in (CHECKPOINT, MODEL, EXPORT, SUMMARY))
    assert json.loads((out / SUMMARY).read_text())["epochs"] == 2
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no temporary file left
    # a link named run.lock: refused (a lock would truncate its target to write the holder)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / LOCK).symlink_to(victim)
    err = _one_line(capsys, ["train", "--arch", ARCH, "--schedule-epochs", "1", "--data", "digits", "--C", "4",
                             "--N", "1", "--device", "cpu", "--threads", "1", "--out", str(linked), "--quiet"])
    assert f"{linked / LOCK}: the lock file is a symbolic link; refusing to write through it (remove it)" in err
    store = tmp_path / "store"
    store.mkdir()
    (store / RunStore.LOCK).symlink_to(victim)
    with pytest.raises(StoreError, match="the lock file is a symbolic link; refusing to write through it"):
        make_search(str(store), 2).run()
    assert victim.read_bytes() == VICTIM and sorted(p.name for p in store.iterdir()) == [RunStore.LOCK]


@pytest.fixture
def finished(tmp_path) -> Path:
    store = tmp_path / "done"
    make_search(str(store), 4, sleep=0.0).run()
    return store


@pytest.mark.parametrize("name", [RunStore.LOCK, RunStore.DATABASE, RunStore.DATABASE + "-wal"])
def test_a_fifo_in_a_store_is_refused_in_one_line_instead_of_blocking(finished, tmp_path, name, capsys):
    """A FIFO named run.lock or run.sqlite blocked ``nas-engine show`` forever.  Readers and writers check the
    file type first (opening with O_NONBLOCK): one line, exit 2, within the test's 20 s bound (it takes
    milliseconds); the same for a training whose output directory has a FIFO as run.lock."""
    path = finished / name
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    kind = {RunStore.LOCK: "lock file", RunStore.DATABASE: "database"}.get(name, "write-ahead log")
    expected = f"{path}: the {kind} is a FIFO, not a regular file; refusing to"
    assert expected in _one_line(capsys, ["show", str(finished)])
    assert expected in _one_line(capsys, ["report", str(finished), "--out", str(tmp_path / "r.html")])
    with pytest.raises(StoreError, match="is a FIFO, not a regular file"):
        make_search(str(finished), 6, sleep=0.0).run()
    if name == RunStore.LOCK:
        out = tmp_path / "out"
        out.mkdir()
        os.mkfifo(out / LOCK)
        with pytest.raises(ValueError, match="the lock file is a FIFO, not a regular file; refusing to use it"):
            _train(out)


# -- a full disk --------------------------------------------------------------------------------------------------
def test_a_full_disk_is_reported_as_such_and_the_store_resumes(finished, tmp_path, monkeypatch):
    """SQLITE_FULL (here: the database's page limit, ``PRAGMA max_page_count``, on the writer's connection) was
    reported as "cannot rollback - no transaction is active": now it is one line naming the full disk; every
    committed evaluation is kept and the same search resumes to the uninterrupted result."""
    connect = RunStore._connect

    def small_disk(self, write):
        con = connect(self, write)
        if write:
            (pages,) = con.execute("PRAGMA page_count").fetchone()
            con.execute(f"PRAGMA max_page_count = {pages + 1}")
        return con

    monkeypatch.setattr(RunStore, "_connect", small_disk)
    with pytest.raises(StoreError) as err:
        make_search(str(finished), 40, sleep=0.0).run()
    line = str(err.value)
    assert "run.sqlite: database or disk is full (the disk is full, or the database reached its size limit); " \
           "nothing committed is lost: free space and run the same command to resume" in line
    assert "\n" not in line and "cannot rollback" not in line
    monkeypatch.undo()
    kept = RunStore(finished).records()
    assert 4 < len(kept) < 40
    reference = tmp_path / "reference"  # the same two runs (4, then resumed to 40) on a disk with room
    make_search(str(reference), 4, sleep=0.0).run()
    whole = make_search(str(reference), 40, sleep=0.0).run()
    assert [(r["index"], r["arch"], r["score"]) for r in kept] == \
        [(e.index, e.arch.string, e.score) for e in whole.history[:len(kept)]]
    assert _summary(make_search(str(finished), 40, sleep=0.0).run()) == _summary(whole)


# -- a vanished write-ahead log -----------------------------------------------------------------------------------
def test_a_deleted_wal_stops_the_search_and_loses_nothing(tmp_path, monkeypatch):
    """Deleting run.sqlite-wal while a search ran went unnoticed (and a crash then lost every evaluation).  The
    writer checks after each commit that the WAL is still its file; here it is deleted during the 5th
    evaluation: the 5 committed evaluations are checkpointed from the still open file into run.sqlite, the
    search stops with one line, and the same search resumes to the uninterrupted result."""
    store = tmp_path / "s"
    estimate, calls = Quick.estimate, []

    def deleting(self, arch, ctx):
        calls.append(arch)
        if len(calls) == 5:
            (store / "run.sqlite-wal").unlink()
        return estimate(self, arch, ctx)

    monkeypatch.setattr(Quick, "estimate", deleting)
    with pytest.raises(StoreError) as err:
        make_search(str(store), 12, sleep=0.0).run()
    line = str(err.value)
    assert ("its write-ahead log run.sqlite-wal was deleted while the search was writing; the 5 evaluations "
            "committed so far were copied into run.sqlite and are safe; the search stops") in line
    assert "\n" not in line and len(calls) == 5
    monkeypatch.undo()
    assert len(RunStore(store).records()) == 5
    assert _summary(make_search(str(store), 12, sleep=0.0).run()) == _summary(make_search(None, 12, sleep=0.0).run())


def _files(path: Path) -> dict[str, str]:
    """The database's sha256 and the committed count the lock records (a refused writer rewrites the lock's
    holder; SQLite's connections may leave empty -wal/-shm files)."""
    return {"database": hashlib.sha256((path / RunStore.DATABASE).read_bytes()).hexdigest(),
            "evaluations": json.loads((path / RunStore.LOCK).read_text())["evaluations"]}


def test_a_database_that_lost_committed_evaluations_is_refused_not_restarted(tmp_path, monkeypatch, capsys):
    """After the WAL was deleted and the driver killed, the store was reported as "crashed before its first
    commit" and the same command started from zero.  The writer records its committed count in run.lock (which
    the database cannot lose with it); a database holding fewer is refused by the writer and the readers, and
    nothing is changed.  The crashed store here is what the disk holds after ``rm run.sqlite-wal; kill -9``
    (run.sqlite and run.lock as they were mid-run, no WAL); the second case an older copy of the database."""
    store, crashed, older = tmp_path / "s", tmp_path / "crashed", tmp_path / "older"
    estimate, calls = Quick.estimate, []

    def snapshot(self, arch, ctx):
        calls.append(arch)
        if len(calls) == 4:  # 3 committed: the disk after a crash that took the WAL with it
            crashed.mkdir()
            for name in (RunStore.DATABASE, RunStore.LOCK):
                shutil.copyfile(store / name, crashed / name)
            older.mkdir()  # a consistent older copy (database and its WAL)
            with sqlite3.connect(store / RunStore.DATABASE) as src, sqlite3.connect(older / "copy.sqlite") as dst:
                src.backup(dst)
        return estimate(self, arch, ctx)

    monkeypatch.setattr(Quick, "estimate", snapshot)
    make_search(str(store), 8, sleep=0.0).run()
    monkeypatch.undo()
    before = _files(crashed)
    message = (f"store {str(crashed)!r}: run.sqlite holds 0 evaluations but run.lock records that 3 were committed: "
               "the database lost committed results")
    with pytest.raises(StoreError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        make_search(str(crashed), 8, sleep=0.0).run()
    assert message in _one_line(capsys, ["show", str(crashed)])
    assert _files(crashed) == before and before["evaluations"] == 3
    # a database replaced by an older copy: 3 evaluations where 8 were committed
    os.replace(older / "copy.sqlite", store / RunStore.DATABASE)
    with pytest.raises(StoreError, match="run.sqlite holds 3 evaluations but run.lock records that 8 were committed"):
        make_search(str(store), 8, sleep=0.0).run()
    assert "holds 3 evaluations but run.lock records that 8" in _one_line(capsys, ["show", str(store)])
    # deleting run.lock accepts the loss, as the message says: the search resumes from the 3
    (store / RunStore.LOCK).unlink()
    assert _summary(make_search(str(store), 8, sleep=0.0).run()) == _summary(make_search(None, 8, sleep=0.0).run())


def test_a_report_replaces_links_planted_as_its_page_or_figures(finished, tmp_path):
    """The report's page and its PNG figures are written like every other file: a link planted under their
    names is replaced and its target stays byte-identical."""
    from nas_engine.report import write_report

    victim = _victim(tmp_path)
    page = tmp_path / "page"
    page.mkdir()
    for name in ("index.html", "progress.png", "scores.png", "cells.png"):
        (page / name).symlink_to(victim)
    report = write_report(finished, page)
    assert victim.read_bytes() == VICTIM
    assert not any((page / name).is_symlink() for name in ("index.html", "progress.png", "scores.png"))
    assert report.figures["progress"].read_bytes().startswith(b"\x89PNG")


def test_final_training_refuses_an_empty_out_instead_of_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"train_final: out must be a directory path, got ''"):
        _train("")
    assert list(tmp_path.iterdir()) == []
