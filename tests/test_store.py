"""The run store under attack: kill -9, two drivers, damaged and foreign files, readers, bad plugin output.

Each test performs the attack for real and asserts that nothing finished is
lost or duplicated and that the error is the one-line one (docs/reliability.md
lists them).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from nas_engine import Budget, Search, SearchResult
from nas_engine.cli import main as cli
from nas_engine.curves import LearningCurve
from nas_engine.estimators.base import Estimate, Estimator
from nas_engine.executors import InlineExecutor, ProcessExecutor
from nas_engine.search import InvalidOutput
from nas_engine.store import RunStore, StoreError, StoreLockedError, StoreMismatchError, migrate
from nas_engine.strategies import FixedList, RandomSearch

from . import warm
from .conftest import stored_records
from .faulty import archs as distinct_archs
from .store_driver import make_search

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
LEGACY = ROOT / "reproduce" / "results" / "tse_rank_correlation" / "store"


def driver(store: Path, n: int, *extra: str) -> warm.WarmProcess:
    """``python -m tests.store_driver STORE N EXTRA`` as a warm process (:mod:`tests.warm`)."""
    return warm.popen(["-m", "tests.store_driver", str(store), str(n), *extra], cwd=ROOT, env=ENV)


def summary(result) -> list[tuple]:
    return [(e.index, e.arch.string, e.score, e.status, e.cached, e.seed) for e in result.history]


def files_of(path: Path) -> dict[str, str]:
    """Every file under ``path`` with its sha256 (to show that a reader changed nothing)."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def one_line_error(capsys, argv) -> str:
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nas-engine: error: ") and "\n" not in err and "Traceback" not in err
    return err


# -- kill -9 ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("run_seed", [0, 1])
def test_kill9_at_random_moments_loses_and_duplicates_nothing(tmp_path, run_seed):
    """SIGKILL the driver at random moments (while proposing, evaluating, committing) until it finishes;
    the final history equals an uninterrupted run's, with every index once."""
    n, store = 24, tmp_path / "s"
    reference = summary(make_search(None, n).run())
    rng = random.Random(run_seed)
    kills = 0
    for attempt in range(5):  # four runs killed at random moments, then one to the end
        proc = driver(store, n, "--sleep", "0.01")
        try:
            before = len(stored_records(store))
            # kill once it has added a random number of records (0: while starting or proposing),
            # plus a random fraction of one evaluation
            target, delay = before + rng.randint(0, 4), rng.uniform(0.0, 0.012)
            deadline = time.time() + 60
            while proc.poll() is None and time.time() < deadline and len(stored_records(store)) < target:
                time.sleep(0.002)
            time.sleep(delay)
            if proc.poll() is None and attempt < 4:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        records = stored_records(store)  # what survived: contiguous, no duplicate
        assert [r["index"] for r in records] == list(range(len(records)))
        fresh = [r["arch"] for r in records if not r["cached"]]
        assert len(set(fresh)) == len(fresh)
    assert proc.returncode == 0 and kills >= 3, (proc.returncode, kills)
    assert summary(SearchResult.load(store)) == reference


def test_kill9_with_worker_processes_resumes_exactly(tmp_path):
    n, store = 10, tmp_path / "s"
    proc = driver(store, n, "--sleep", "0.3", "--executor", "processes")
    try:
        deadline = time.time() + 120
        while len(stored_records(store)) < 3 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, "finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = [r["arch"] for r in stored_records(store)]
    resumed = make_search(str(store), n, sleep=0.3, executor="processes").run()
    assert [e.arch.string for e in resumed.history[:len(done)]] == done
    assert sorted(e.index for e in resumed.history) == list(range(n))
    # a learning strategy with two workers follows the completion order; every score is still its own
    assert all(e.score == make_search(None, 1).estimator.estimate(e.arch, None).score for e in resumed.history)


# -- one writer ---------------------------------------------------------------------------------------------------
def test_second_driver_is_refused_naming_the_holder_and_takes_over_after_kill9(tmp_path, capsys):
    store = tmp_path / "s"
    first = driver(store, 200, "--sleep", "0.05")
    try:
        deadline = time.time() + 60
        while len(stored_records(store)) < 2 and time.time() < deadline:
            time.sleep(0.02)
        assert first.poll() is None
        # another process (the CLI in this one) on the same directory: refused at once, naming who holds it
        t0 = time.perf_counter()
        err = one_line_error(capsys, ["search", "--strategy", "random", "--estimator", "params", "--evaluations",
                                      "2", "--out", str(store), "--quiet"])
        assert time.perf_counter() - t0 < 30
        assert f"store {str(store)!r} is in use by another search (pid {first.pid} on " in err
        # the same search object twice in this process is refused too, without touching the first's lock
        s = make_search(str(tmp_path / "t"), 2)
        s.store.open(s.config())
        with pytest.raises(StoreLockedError, match="in use by another search in this process"):
            make_search(str(tmp_path / "t"), 2).run()
        s.store.close()
        # a reader sees that it runs and who runs it, and does not disturb it
        assert cli(["show", str(store), "--top", "1"]) in (0, 1)
        assert f"running: pid {first.pid} on " in capsys.readouterr().out
        assert RunStore(store).holder()["pid"] == first.pid
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    assert RunStore(store).holder() is None  # the kernel released the lock: no stale lock to clean
    done = stored_records(store)
    resumed = make_search(str(store), len(done) + 3, sleep=0.05).run()
    assert summary(resumed) == summary(make_search(None, len(done) + 3).run())


# -- damaged, foreign and newer files -----------------------------------------------------------------------------
@pytest.fixture
def finished(tmp_path) -> Path:
    store = tmp_path / "done"
    make_search(str(store), 6).run()
    return store


def _attack(store: Path, how: str) -> None:
    db = store / RunStore.DATABASE
    if how == "garbage-header":
        with open(db, "r+b") as f:
            f.write(os.urandom(100))
    elif how == "garbage-pages":
        size = db.stat().st_size
        with open(db, "r+b") as f:
            f.seek(4096)
            f.write(bytes(random.Random(0).randrange(256) for _ in range(size - 4096)))
    elif how == "truncated":
        with open(db, "r+b") as f:
            f.truncate(db.stat().st_size // 2 + 17)
    elif how == "foreign":
        db.unlink()
        with sqlite3.connect(db) as con:
            con.execute("CREATE TABLE evaluations (x)")
    elif how == "newer":
        with sqlite3.connect(db) as con:
            con.execute("PRAGMA user_version = 99")
    elif how == "no-config":
        with sqlite3.connect(db) as con:
            con.execute("DELETE FROM meta WHERE key = 'config'")
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("how, message", [
    ("garbage-header", r"run.sqlite is corrupt or not a SQLite database"),
    ("garbage-pages", r"run.sqlite is corrupt"),
    ("truncated", r"run.sqlite is corrupt"),
    ("foreign", r"run.sqlite is a SQLite database but not a nas-engine store"),
    ("newer", r"run.sqlite has schema version 99, written by a newer nas-engine; this version reads schema 1"),
    ("no-config", r"run.sqlite holds no search configuration; it is damaged"),
])
def test_damaged_or_foreign_database_is_refused_with_one_line(finished, how, message, capsys):
    _attack(finished, how)
    with pytest.raises(StoreError, match=message):
        make_search(str(finished), 8).run()
    with pytest.raises(StoreError, match=message):
        SearchResult.load(finished)
    err = one_line_error(capsys, ["show", str(finished)])
    assert str(finished) in err
    assert RunStore(finished).holder() is None  # the refused writer released its lock


def test_store_without_database_but_with_files_is_not_silently_recreated(finished):
    (finished / RunStore.DATABASE).unlink()
    (finished / "supernet.pt").write_bytes(b"weights")
    with pytest.raises(StoreError, match=r"has no database \(run.sqlite\) but holds supernet.pt; refusing"):
        make_search(str(finished), 8).run()


def test_resume_with_another_configuration_names_the_key(finished):
    with pytest.raises(StoreMismatchError, match=r"differs in: seed"):
        make_search(str(finished), 8, seed=3).run()
    # the torch threads of the evaluations change their floats: part of the configuration
    s = make_search(str(finished), 8)
    s.executor = ProcessExecutor(workers=2, threads=2)
    with pytest.raises(StoreMismatchError, match=r"differs in: execution.threads"):
        s.run()
    assert make_search(str(finished), 8).run().history[7].index == 7  # the same configuration resumes


# -- readers never write ------------------------------------------------------------------------------------------
def test_readers_change_nothing_in_a_finished_store(finished, capsys):
    before = files_of(finished)
    result = SearchResult.load(finished)
    assert len(result.history) == 6 and result.config["seed"] == 0
    assert cli(["show", str(finished)]) == 0 and "not running" in capsys.readouterr().out
    assert cli(["show", str(finished), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["evaluations"][5]["index"] == 5
    assert files_of(finished) == before


def _make_read_only(path: Path) -> list[Path]:
    """Make ``path`` and its files unwritable: immutable (``chattr +i``) where possible, since permissions do
    not stop root; returns what must be made mutable again.  Skips where neither works."""
    items = [*path.iterdir(), path]
    for p in items:
        p.chmod(0o555 if p.is_dir() else 0o444)
    if os.geteuid() != 0:
        return []
    if shutil.which("chattr") is None or \
            subprocess.run(["chattr", "+i", *map(str, items)], capture_output=True).returncode != 0:
        pytest.skip("runs as root, whom file permissions do not stop, and chattr +i is not available here")
    return items


def test_read_only_store_can_be_viewed(finished, tmp_path, capsys):
    ro = Path(shutil.copytree(finished, tmp_path / "ro"))
    immutable = _make_read_only(ro)
    try:
        with pytest.raises(OSError):  # really read-only
            (ro / "probe").write_text("x")
        assert len(SearchResult.load(ro).history) == 6
        assert cli(["show", str(ro), "--json"]) == 0
        assert len(json.loads(capsys.readouterr().out)["evaluations"]) == 6
        err = one_line_error(capsys, ["search", "--strategy", "random", "--estimator", "params", "--out", str(ro),
                                      "--quiet"])
        assert "a read-only store can be read, not resumed" in err
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", *map(str, immutable)], check=True)
        for p in [ro, *ro.iterdir()]:
            p.chmod(0o755 if p.is_dir() else 0o644)


def test_reading_a_running_store_does_not_disturb_it(tmp_path):
    store = tmp_path / "s"
    proc = driver(store, 40, "--sleep", "0.01")
    seen = []
    try:
        while proc.poll() is None:
            if (store / RunStore.DATABASE).exists():
                try:
                    seen.append(len(SearchResult.load(store).history))
                except StoreError as exc:
                    assert "is empty" in str(exc)  # created, before its first commit
            time.sleep(0.01)
    finally:
        proc.wait(60)
    assert proc.returncode == 0, proc.stderr
    assert seen == sorted(seen) and len(set(seen)) > 3  # it read the run as it grew
    assert summary(SearchResult.load(store)) == summary(make_search(None, 40).run())


# -- older stores -------------------------------------------------------------------------------------------------
def test_committed_jsonl_stores_stay_readable():
    if not LEGACY.exists():
        pytest.skip(f"needs the committed store {LEGACY}")
    before = files_of(LEGACY)
    r = SearchResult.load(LEGACY)
    assert len(r.history) == 100 and all(e.ok for e in r.history) and r.config["estimator"]["name"] == "valacc"
    assert r.seconds == pytest.approx(741.921423386)
    assert files_of(LEGACY) == before
    with pytest.raises(StoreError, match=r"JSONL store of an earlier nas-engine version; .*`nas-engine migrate"):
        RunStore(LEGACY).open(r.config)


def _as_jsonl(store: Path, legacy: Path) -> None:
    """Write ``store``'s content as the JSONL store an earlier version would have written."""
    legacy.mkdir()
    records, state = RunStore(store).load()
    (legacy / "config.json").write_text(json.dumps(RunStore(store).config()))
    (legacy / "evaluations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (legacy / "state.json").write_text(json.dumps(state))


def test_jsonl_store_with_a_garbage_line_is_refused_and_left_intact(finished, tmp_path, capsys):
    legacy = tmp_path / "old"
    _as_jsonl(finished, legacy)
    lines = (legacy / "evaluations.jsonl").read_text().splitlines(keepends=True)
    (legacy / "evaluations.jsonl").write_text("".join(lines[:2] + ["{garbage\n"] + lines[2:]))
    before = files_of(legacy)
    err = one_line_error(capsys, ["show", str(legacy)])
    assert "evaluations.jsonl line 3 is not a JSON record" in err
    assert files_of(legacy) == before  # nothing after it was deleted (the old reader truncated 5 lines to 1)
    # a torn last line (a crash mid-append) is ignored, not an error
    (legacy / "evaluations.jsonl").write_text("".join(lines) + '{"index": 6, "ar')
    assert len(SearchResult.load(legacy).history) == 6


def test_migrated_jsonl_store_resumes_to_the_uninterrupted_result(finished, tmp_path, capsys):
    legacy = tmp_path / "old"
    _as_jsonl(finished, legacy)
    assert cli(["migrate", str(legacy)]) == 0
    assert "converted" in capsys.readouterr().out
    assert sorted(p.name for p in (legacy / "legacy-jsonl").iterdir()) == \
        ["config.json", "evaluations.jsonl", "state.json"]
    resumed = make_search(str(legacy), 10).run()
    assert summary(resumed) == summary(make_search(str(finished), 10).run())  # as if it had never been JSONL
    with pytest.raises(StoreError, match="nothing to migrate"):
        migrate(legacy)


# -- bad output from plugins --------------------------------------------------------------------------------------
# at most two bad ones in any four consecutive proposals: the first 3 results to complete (with two workers,
# from the first 4 proposals) are never all invalid, which would stop the search as a systematic error
SCORE_MUST = "invalid output: score must be a real number that fits a 64-bit float, got"
BAD = {  # what the estimator returns for the architecture at that position, and the reason recorded
    1: (lambda: None, "invalid output: the estimator returned NoneType None, expected an Estimate"),
    2: (lambda: Estimate(score="0.5"), f"{SCORE_MUST} str '0.5'"),
    4: (lambda: Estimate(score=(0.5, 1.0)), f"{SCORE_MUST} tuple (0.5, 1.0)"),
    5: (lambda: Estimate(score=np.array([1.0, 2.0])), f"{SCORE_MUST} ndarray"),
    7: (lambda: Estimate(score=0.5, cost_seconds=math.nan),
        "invalid output: cost_seconds must be a finite number >= 0, got float nan"),
    8: (lambda: Estimate(score=0.5, epochs=-1), "invalid output: epochs must be a finite number >= 0, got int -1"),
    10: (lambda: Estimate(score=0.5, info={"model": object()}),
        "invalid output: info['model'] is a builtins.object, which JSON cannot hold"),
    11: (lambda: Estimate(score=0.5, curve=[1.0, 2.0]),
        "invalid output: curve must be a LearningCurve or None, got list [1.0, 2.0]"),
    13: (lambda: Estimate(score=math.nan, cost_seconds=1.0), "non-finite score nan"),
}
GOOD = {  # numpy values are accepted and stored as plain numbers
    0: lambda: Estimate(score=np.float32(0.25), cost_seconds=np.float64(1.0), epochs=np.int64(1),
                        info={"acc": np.float32(0.5), "per_epoch": np.arange(3), "nan": math.nan},
                        curve=LearningCurve(train_loss=[2.0])),
    3: lambda: Estimate(score=np.array(0.75), cost_seconds=1.0, epochs=1),
}


class Scripted(Estimator):
    """Returns a scripted (good or bad) estimate for the i-th architecture of ``archs``."""

    def __init__(self, archs: list[str], default_cost: float = 1.0):
        self.archs = archs
        self.default_cost = default_cost

    def estimate(self, arch, ctx):
        i = self.archs.index(arch.string)
        if i in BAD:
            return BAD[i][0]()
        if i in GOOD:
            return GOOD[i]()
        return Estimate(score=float(i), cost_seconds=self.default_cost, epochs=1)


@pytest.mark.parametrize("executor", ["inline", "processes"])
def test_bad_estimates_fail_their_evaluation_and_the_search_goes_on(tmp_path, executor, capsys):
    archs = distinct_archs(16)
    ex = InlineExecutor(threads=1) if executor == "inline" else ProcessExecutor(workers=2, threads=1)
    store = tmp_path / "s"
    r = Search(FixedList(archs), "nb201", Scripted(archs), data=None, budget=Budget(evaluations=16),
               store=str(store), executor=ex, progress=False).run()
    got = {e.arch.string: e for e in r.history}
    for i, (_, reason) in BAD.items():
        e = got[archs[i]]
        assert e.status == "failed" and e.score == -math.inf and e.reason.startswith(reason), (i, e.reason)
        assert math.isfinite(e.cost_seconds) and e.cost_seconds >= 0 and math.isfinite(e.epochs)
    assert got[archs[0]].score == pytest.approx(0.25) and got[archs[3]].score == 0.75
    assert got[archs[0]].info == {"acc": 0.5, "per_epoch": [0, 1, 2], "nan": None}
    assert sum(e.ok for e in r.history) == 16 - len(BAD)
    assert summary(SearchResult.load(store)) == summary(r)  # everything was stored, bad ones included
    # strict JSON from the CLI, failed scores as null beside their status
    assert cli(["show", str(store), "--json"]) == 0
    out = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    rows = {row["arch"]: row for row in out["evaluations"]}
    assert rows[archs[1]]["score"] is None and rows[archs[1]]["status"] == "failed"


def test_an_estimator_that_always_returns_garbage_stops_the_search_after_recording(tmp_path):
    class Garbage(Estimator):
        def estimate(self, arch, ctx):
            return "0.9"

    with pytest.raises(InvalidOutput, match="the estimator returned str '0.9', expected an Estimate"):
        Search("random", "nb201", Garbage(), data=None, budget=Budget(evaluations=10), store=str(tmp_path / "s"),
               progress=False).run()
    assert [r["status"] for r in stored_records(tmp_path / "s")] == ["failed"] * 3


@pytest.mark.parametrize("budget", [Budget(cost_seconds=20.0), Budget(epochs=10)])
def test_nan_costs_never_disable_a_budget(budget):
    class SometimesNaN(Estimator):
        def estimate(self, arch, ctx):
            bad = int(hashlib.sha256(arch.string.encode()).hexdigest(), 16) % 3 == 0
            return Estimate(score=0.5, cost_seconds=math.nan if bad else 2.0,
                            epochs=math.nan if bad else 1.0)

    r = Search(RandomSearch(repeats=False), "nb201", SometimesNaN(), data=None, budget=budget,
               progress=False).run()
    failed = [e for e in r.history if not e.ok]
    assert failed and all(e.reason.startswith("invalid output: cost_seconds must be a finite number")
                          for e in failed)
    assert 10 <= sum(e.ok for e in r.history) <= 11 and len(r.history) < 40  # it stopped


def test_search_json_exits_like_the_table_and_is_strict(tmp_path, capsys):
    """Every evaluation diverges (learning rate 1e30): the table and --json both exit 1, and the JSON is strict."""
    argv = ["search", "--strategy", "random", "--estimator", "tse-ema", "--epochs", "1", "--lr", "1e30",
            "--evaluations", "2", "--quiet", "--C", "4", "--N", "1"]
    assert cli(argv) == 1
    assert "no successful evaluation" in capsys.readouterr().out
    assert cli(argv + ["--json", "--out", str(tmp_path / "s")]) == 1
    out = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert out["best"] is None and [e["score"] for e in out["evaluations"]] == [None, None]
    assert all(e["status"] == "failed" and e["reason"].startswith("diverged") for e in out["evaluations"])
    assert cli(["show", str(tmp_path / "s")]) == 1  # show too


def test_memory_cap_too_low_is_a_one_line_error(capsys):
    err = one_line_error(capsys, ["search", "--strategy", "random", "--estimator", "params", "--evaluations", "2",
                                  "--quiet", "--executor", "processes", "--executor-arg", "max_memory_mb=50"])
    assert "memory cap of 50 MB is too low to start a worker" in err


def test_bench_table_on_a_damaged_build_store_changes_nothing(finished, tmp_path, capsys):
    """``nas-engine bench table`` (documented as safe on a running build) used to truncate a store at a bad line."""
    out = tmp_path / "build"
    out.mkdir()
    _as_jsonl(finished, out / "store")
    lines = (out / "store" / "evaluations.jsonl").read_text().splitlines(keepends=True)
    (out / "store" / "evaluations.jsonl").write_text("".join(lines[:1] + ["garbage\n"] + lines[1:]))
    before = files_of(out)
    err = one_line_error(capsys, ["bench", "table", "--out", str(out)])
    assert "evaluations.jsonl line 2 is not a JSON record" in err
    assert files_of(out) == before


def test_a_result_the_store_cannot_hold_fails_that_evaluation_not_the_search(tmp_path, monkeypatch):
    """An outcome that slipped past validation (e.g. from an executor of one's own) with an object in ``info``."""
    import nas_engine.search as search_module
    from nas_engine.results import Outcome

    real = search_module.check_estimate

    def leaky(est, seconds):
        out = real(est, seconds)
        return Outcome(out.score, out.cost_seconds, out.epochs, info={"model": object()}) if out.score > 0.5 else out

    monkeypatch.setattr(search_module, "check_estimate", leaky)
    r = make_search(str(tmp_path / "s"), 8).run()
    bad = [e for e in r.history if not e.ok]
    assert bad and all(e.reason.startswith("unstorable result: info['model'] is a builtins.object") for e in bad)
    assert all(e.ok for e in r.history if e not in bad) and len(r.history) == 8
    assert summary(SearchResult.load(tmp_path / "s")) == summary(r)


# -- stores of an earlier version's protocol vocabulary (epochs, C, N) ------------------------------------------
def _to_old_vocabulary(store: Path, C: int, N: int) -> dict:
    """Rewrite a store's configuration as the version before ``schedule_epochs`` and space-owned sizes wrote it."""
    con = sqlite3.connect(store / RunStore.DATABASE)
    config = json.loads(con.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()[0])
    protocol = dict(config["protocol"])
    protocol["epochs"] = protocol.pop("schedule_epochs")
    protocol.pop("size"), protocol.pop("scale")
    config["protocol"] = {**protocol, "C": C, "N": N}
    with con:
        con.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps(config),))
    con.close()
    return config


@pytest.mark.parametrize("space, size, old", [("nb201", {"C": 4, "N": 1}, (4, 1)),
                                              ("darts", {"C": 4, "layers": 5}, (4, 1))])  # DARTS: layers = 3N + 2
def test_a_store_of_the_old_vocabulary_resumes_and_is_converted(tmp_path, space, size, old):
    from nas_engine.training import Protocol

    def search(n):
        return Search(RandomSearch(repeats=False), space, "params", data="digits", budget=Budget(evaluations=n),
                      protocol=Protocol(schedule_epochs=3, batch_size=64, size=size), store=str(tmp_path / "s"),
                      progress=False)

    first = search(2).run()
    new_config = RunStore(tmp_path / "s").config()
    _to_old_vocabulary(tmp_path / "s", *old)
    loaded = SearchResult.load(tmp_path / "s")  # read: converted, the store untouched
    assert loaded.config == new_config and "C" in RunStore(tmp_path / "s").config()["protocol"]
    resumed = search(4).run()  # the same search in the old words: it resumes, and the store is rewritten
    assert summary(resumed)[:2] == summary(first) and len(resumed.history) == 4
    assert RunStore(tmp_path / "s").config() == new_config
    other = {"C": 8, "N": 1} if space == "nb201" else {"C": 4, "layers": 8}
    with pytest.raises(StoreMismatchError, match="differs in: protocol.size"):
        Search(RandomSearch(repeats=False), space, "params", data="digits", budget=Budget(evaluations=5),
               protocol=Protocol(schedule_epochs=3, batch_size=64, size=other), store=str(tmp_path / "s"),
               progress=False).run()
