"""Shared test helpers: a tiny, fast training configuration and the shared-data location."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas_engine.training import Protocol

from . import warm

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NAS_ENGINE_SHARED_DATA",
                                  Path(__file__).resolve().parents[2] / "shared" / "data"))


@functools.lru_cache(maxsize=1)
def digits_subset():
    """The digits with a 384-image training split (96 for validation, the 359 test images): enough for what the
    tests check, at a third of the full split's time per epoch."""
    from nas_engine.data import load_dataset

    return load_dataset("digits", n_train=384, n_val=96)


# each space's "tiny" size (NB201 at width 4, one cell per stage), on 8x8 digits: ~0.1 s per epoch on 2 cores
TINY = Protocol(schedule_epochs=10, batch_size=128, lr=0.05, scale="tiny", device="cpu")


def run_reproduce(name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the reproduction script ``python -m reproduce.<name> ARGS`` from the repository root, one torch
    thread; its exit status and output (text) are in the result.  (Tests import no script: the helpers the
    scripts share are in ``reproduce.common``.)"""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return warm.run(["-m", f"reproduce.{name}", *map(str, args)], cwd=ROOT, env=env, timeout=timeout)


def zero_cost_store(out: Path, evaluations: int) -> str:
    """A stored search of ``evaluations`` NB201 candidates scored by #params (nothing trains) in ``out``."""
    from nas_engine.cli import main

    assert main(["search", "--strategy", "random", "--estimator", "params", "--evaluations", str(evaluations),
                 "--C", "4", "--device", "cpu", "--workers", "1", "--quiet", "--out", str(out)]) == 0
    return str(out)


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test naming the missing path."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs the shared data at {p} (set NAS_ENGINE_SHARED_DATA to its location)")
    return p


def pytest_configure(config):
    """Every test process trains with the engine's thread policy for small candidates (one thread): the
    suite's networks are tiny, so threads gain nothing, and with ``pytest -n 2`` two processes with two
    threads each would outnumber the cores and collapse (see nas_engine/threads.py)."""
    import torch

    from nas_engine.threads import CPUS_ENV_VAR, available_cpus, policy_threads

    torch.set_num_threads(policy_threads())
    _compile_once(config)
    # under pytest-xdist each test process has its share of the CPUs, and what it starts (a documentation
    # block's search, a `nas-engine` subprocess) inherits that share: with the other test process busy, a
    # subprocess's "auto" choice of one worker process per CPU would outnumber the cores
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and workers.isdigit():
        share = max(1, available_cpus() // int(workers))
        os.environ.setdefault(CPUS_ENV_VAR, str(share))
        # numpy's and scipy's OpenBLAS and scikit-learn's OpenMP start a thread per CPU (spinning while they
        # wait): held to the share here and in the subprocesses, as torch is
        from threadpoolctl import threadpool_limits

        threadpool_limits(share)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(share))


def _compile_once(config) -> None:
    """With ``PYTHONDONTWRITEBYTECODE`` set (as on the project's machines) no process caches the engine's
    bytecode, so each of the suite's ~100 processes (test workers, documentation jobs, ``nas-engine`` and worker
    subprocesses) compiled every module of the engine again: ~0.3 s each.  The controller compiles the engine,
    the tests and the reproduction scripts once, into their ordinary (git-ignored) ``__pycache__`` directories,
    which Python validates against the sources as always.  (A ``PYTHONPYCACHEPREFIX`` instead would move every
    package's cache there, torch's included, and cost seconds per process.)"""
    if not sys.dont_write_bytecode or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    import compileall

    for folder in ("nas_engine", "tests", "reproduce"):
        compileall.compile_dir(ROOT / folder, quiet=2)


def pytest_xdist_auto_num_workers(config):
    """``pytest -n auto``: one test process per CPU this process may use (affinity and cgroup quota, as the
    engine counts them; pytest-xdist's own count would take psutil's physical cores)."""
    from nas_engine.threads import available_cpus

    return available_cpus()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``--dist loadgroup``) the Ray tests share one worker (one local Ray at a time).  First:
    pytest-xdist's own hook turns ``xdist_group`` marks into the node ids its scheduler groups by.  The
    documentation tests are not grouped: a file's two tests (its python blocks, its commands) share one job when
    they run in one test process (``test_docs._DONE``); grouping every file made the fast suite slower here
    (5 min 4 s against 4 min 24 s, back to back), as the scheduler then hands out the groups as whole units."""
    for item in items:
        if item.get_closest_marker("ray") is not None:
            item.add_marker(pytest.mark.xdist_group("ray"))


@pytest.fixture(autouse=True)
def _auto_executor_is_inline(request, monkeypatch):
    """The "auto" executor runs the tests' searches in the test process (one worker per test process under
    pytest-xdist already uses the cores; nested pools would outnumber them, and a search's history is then
    reproducible); ``workers > 1`` still gets worker processes.  Tests marked ``real_auto_executor`` check the
    real rule."""
    if request.node.get_closest_marker("real_auto_executor") is None:
        from nas_engine import executors

        monkeypatch.setattr(executors, "auto_executor", lambda workers=None, device="auto", plugins=(), trains=True:
                            ("inline", None) if workers in (None, 1) or not trains else ("processes", workers))


@pytest.fixture
def tiny_protocol() -> Protocol:
    return TINY


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray instance with 2 CPUs, shared by every Ray test of the run (one start, not one per module:
    ~5 s each); skips where Ray is not installed."""
    ray = pytest.importorskip("ray", reason='needs Ray: pip install "nas-engine[ray]"')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def stored_records(store: Path) -> list[dict]:
    """The evaluations a run store holds (empty if none yet), read without modifying it."""
    from nas_engine.store import RunStore

    s = RunStore(store)
    if not s.database.exists():
        return []
    try:
        return s.records()
    except ValueError as exc:  # created, before its first commit
        if "is empty" in str(exc):
            return []
        raise


def kill_after_records(argv: list[str], store: Path, at_least: int, *, env: dict, cwd: Path,
                       timeout: float = 300) -> list[dict]:
    """Run ``python ARGV`` (a warm process, :mod:`tests.warm`), SIGKILL it once its store holds ``at_least``
    records; return those records."""
    proc = warm.popen(argv, cwd=cwd, env=env)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline and proc.poll() is None:
            if len(stored_records(store)) >= at_least:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the search finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return stored_records(store)
