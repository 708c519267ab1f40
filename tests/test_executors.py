"""Executors (inline, processes, Ray) and the asynchronous search loop on them."""

from __future__ import annotations

import functools
import json
import math
import multiprocessing
import os
import re
import signal
import sys
import time

import pytest

from nas_engine import Budget, Search
from nas_engine.cli import main
from nas_engine.context import Context
from nas_engine.estimators import TSEEMA
from nas_engine.executors import (
    InlineExecutor,
    MemoryCapTooLow,
    ProcessExecutor,
    RayExecutor,
    WorkerDied,
    available_executors,
    create_executor,
    resolve_executor_choice,
)
from nas_engine.search import evaluate_candidate
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.strategies import FixedList, RandomSearch
from nas_engine.threads import torch_threads

from .conftest import TINY, digits_subset
from .faulty import REMOTE, Batches, Cheap, archs, make_executor, probe

SPACE = NB201Space()


def search(strategy, estimator=None, n=6, executor=None, **kw):
    return Search(strategy, "nb201", estimator or TSEEMA(epochs=2), data=digits_subset(), protocol=TINY,
                  budget=Budget(evaluations=n), progress=False, executor=executor, **kw)


def scores(result) -> dict[str, tuple[float, str]]:
    return {e.arch.string: (e.score, e.status) for e in result.history if not e.cached}


# -- construction ------------------------------------------------------------------------------------
def test_create_executor_by_name_instance_and_errors():
    assert available_executors() == ["inline", "processes", "ray"]
    # None is "auto": inline in the tests (conftest)
    assert isinstance(create_executor(None), InlineExecutor) and isinstance(create_executor("inline"), InlineExecutor)
    ex = create_executor("processes", 3, max_memory_mb=4000)
    assert isinstance(ex, ProcessExecutor) and ex.workers == 3 and ex.threads is None
    assert ex.threads_from_policy and ex.task_threads() == 1  # outside a search: the policy, size unknown
    assert ex.max_retries == 2 and ex.max_memory_mb == 4000 and ex.start_method in ("forkserver", "spawn")
    assert create_executor(ex) is ex
    with pytest.raises(ValueError, match="unknown executor 'slurm'; available: 'auto', 'inline', 'processes', 'ray'"):
        create_executor("slurm")
    with pytest.raises(ValueError, match="to the executor's constructor"):
        create_executor(ex, 2)
    with pytest.raises(ValueError, match="inline executor runs one evaluation at a time"):
        create_executor("inline", 2)
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        ProcessExecutor(workers=0)
    with pytest.raises(ValueError, match="max_retries must be a non-negative integer"):
        ProcessExecutor(max_retries=-1)
    with pytest.raises(ValueError, match="start_method must be 'forkserver' or 'spawn'"):
        ProcessExecutor(start_method="fork")
    with pytest.raises(TypeError, match="executor must be a name"):
        create_executor(3)
    with pytest.raises(ValueError, match="inline executor runs one evaluation"):
        Search("random", "nb201", TSEEMA(epochs=2), data=digits_subset(), protocol=TINY, executor="inline", workers=2)


def test_executors_are_a_registry_kind():
    from nas_engine import create, list_plugins
    from nas_engine.registry import executors
    from nas_engine.testing import check_plugin

    assert list_plugins("executor") == available_executors() == list_plugins()["executor"] == executors.names()
    assert executors.group == "nas_engine.executors" and executors.get("processes") is ProcessExecutor
    assert isinstance(create("executor", "inline"), InlineExecutor)
    assert isinstance(check_plugin("executor", "inline"), InlineExecutor)  # runs one task in this process
    assert isinstance(check_plugin("executor", "processes"), ProcessExecutor)  # construction only: no workers


@pytest.mark.real_auto_executor
def test_auto_executor_choice(monkeypatch):
    """The CLI's default rule, as a library function: processes, one per CPU, when several CPUs are available
    and the candidates train on the CPU; --workers 1 inline; other --workers that many processes."""
    import nas_engine.executors as executors_module

    monkeypatch.setattr(executors_module, "available_cpus", lambda: 4)
    assert resolve_executor_choice(None, None, "cpu") == resolve_executor_choice("auto", None, "cpu") \
        == ("processes", 4)
    assert resolve_executor_choice("auto", 1, "cpu") == ("inline", None)
    assert resolve_executor_choice("auto", 3, "cpu") == ("processes", 3)
    assert resolve_executor_choice("ray", None, "cpu") == ("ray", None)  # a name is kept, workers as given
    assert resolve_executor_choice("inline", 2) == ("inline", 2)
    import torch

    if not torch.cuda.is_available():
        assert resolve_executor_choice(None, None, "cuda") == ("inline", None)  # not on the CPU (not available)
    monkeypatch.setattr(executors_module, "available_cpus", lambda: 1)
    assert resolve_executor_choice(None, None, "cpu") == ("inline", None)
    monkeypatch.setattr(executors_module, "available_cpus", lambda: 2)
    ex = create_executor("auto", device="cpu", max_memory_mb=4000)
    assert isinstance(ex, ProcessExecutor) and ex.workers == 2 and ex.max_memory_mb == 4000
    assert isinstance(create_executor("auto", 1, device="cpu"), InlineExecutor)
    assert isinstance(create_executor("inline", device="cuda"), InlineExecutor)  # device is read by "auto" only
    s = Search("random", "nb201", TSEEMA(epochs=2), data=digits_subset(), protocol=TINY, executor="auto", workers=1)
    assert isinstance(s.executor, InlineExecutor)


@pytest.mark.parametrize("cap", [0, -5, 2.5, True, "4000"])
def test_bad_memory_cap_value(cap):
    with pytest.raises(ValueError) as info:
        ProcessExecutor(max_memory_mb=cap)
    assert str(info.value) == f"ProcessExecutor: max_memory_mb must be an integer >= 1 or None, got {cap!r}"


def test_memory_cap_too_low_to_start_a_worker_is_one_error_not_failed_candidates():
    executor = ProcessExecutor(workers=2, threads=1, max_memory_mb=50)
    with pytest.raises(MemoryCapTooLow) as info:  # from the first submit: no candidate is evaluated
        search(RandomSearch(), n=4, executor=executor).run()
    assert isinstance(info.value, ValueError)
    assert re.fullmatch(r"ProcessExecutor: memory cap of 50 MB is too low to start a worker \(a worker maps \d+ MB "
                        r"before its first task and the cap counts all of its address space: give max_memory_mb "
                        r"well above that, e.g. \d+, or None for no cap\)", str(info.value)), str(info.value)
    assert multiprocessing.active_children() == []
    later = ProcessExecutor(workers=1, threads=1, max_memory_mb=50)
    later._cap_checked = True  # as for a worker started after the first one: its task reports it
    try:
        with pytest.raises(MemoryCapTooLow, match=r"^ProcessExecutor: memory cap of 50 MB is too low to start"):
            later.result(later.submit(probe))
    finally:
        later.shutdown()


def test_ray_missing_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    hint = 'pip install "nas-engine[ray]"'
    with pytest.raises(ImportError, match=hint.replace("[", r"\[").replace("]", r"\]")):
        Search("random", "nb201", TSEEMA(epochs=2), data=digits_subset(), protocol=TINY, executor="ray")
    assert main(["search", "--executor", "ray", "--evaluations", "1"]) == 2
    assert hint in capsys.readouterr().err


def test_inline_executor_runs_at_submit_and_restores_threads():
    import torch

    before = torch.get_num_threads()
    ex = InlineExecutor(threads=1)
    h = ex.submit(probe)
    assert ex.wait([h]) == [h] and ex.result(h)[:2] == (os.getpid(), 1)
    assert torch.get_num_threads() == before
    bad = ex.submit(int, "x")
    with pytest.raises(ValueError, match="invalid literal"):
        ex.result(bad)
    with torch_threads(None):
        assert torch.get_num_threads() == before


# -- the executor interface on workers ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", REMOTE)
def test_remote_executor_interface(kind, request):
    ex = make_executor(kind, request, max_retries=1)

    def run(fn, *args):
        return ex.result(ex.wait([ex.submit(fn, *args)])[0])

    ex.start()
    try:
        assert ex.workers == 2 and ex.remote
        shared = ex.share(list(range(1000)))
        handles = [ex.submit(probe), ex.submit(len, shared)]
        results = []
        while handles:  # wait() hands back the completed ones until none is left
            for h in ex.wait(handles):
                handles.remove(h)
                results.append(ex.result(h))
        (pid, threads, sigint_ignored), n = sorted(results, key=lambda r: isinstance(r, int))
        assert pid != os.getpid() and threads == 1 and n == 1000
        assert sigint_ignored or kind == "ray"  # worker processes leave Ctrl-C to the driver
        with pytest.raises(ValueError, match="invalid literal"):  # a task's exception is re-raised
            run(int, "x")
        with pytest.raises(WorkerDied):
            run(os._exit, 3)
        assert run(probe)[0] != os.getpid()  # a new worker takes over

        worker = run(probe)[0]  # processes: the first free worker, which runs the next task too
        running = ex.submit(time.sleep, 600)
        ex.cancel([running])
        if kind == "processes":
            with pytest.raises(ProcessLookupError):  # killed and reaped
                os.kill(worker, 0)
            idle = run(probe)[0]
            os.kill(idle, signal.SIGKILL)  # a worker dies between tasks: the next task gets another
            try:
                replacement = run(probe)[0]
            except WorkerDied:  # the death was noticed only after the task went to the dead worker
                replacement = run(probe)[0]
            assert replacement not in (idle, os.getpid())
        else:
            ray = request.getfixturevalue("ray_cluster")
            with pytest.raises(ray.exceptions.TaskCancelledError):
                ray.get(running)
    finally:
        ex.shutdown()
    assert multiprocessing.active_children() == []


# -- determinism across executors ------------------------------------------------------------------
STRATEGIES = {"fixed": lambda: FixedList(archs(6)), "random-no-repeats": lambda: RandomSearch(repeats=False)}


@functools.cache
def inline_reference(strategy: str):
    return search(STRATEGIES[strategy](), executor=InlineExecutor(threads=1)).run()


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("kind", REMOTE)
def test_same_evaluated_set_as_inline(kind, strategy, request):
    reference = scores(inline_reference(strategy))
    assert len(reference) == 6 and all(s < 0 and st == "ok" for s, st in reference.values())
    r = search(STRATEGIES[strategy](), executor=make_executor(kind, request)).run()
    assert scores(r) == reference  # bit-identical scores; only the order may differ
    assert [e.index for e in r.history] == list(range(6))
    assert all(e.seed == Context(SPACE, None, TINY).arch_seed(e.arch) for e in r.history)


@pytest.mark.parametrize("kind", REMOTE)
def test_regularized_evolution_runs_on_workers_and_scores_reproduce(kind, request):
    r = Search("regularized-evolution", "nb201", "tse-ema", data=digits_subset(), protocol=TINY,
               budget=Budget(evaluations=4), progress=False, executor=make_executor(kind, request)).run()
    assert len(r.history) == 4 and all(e.ok and math.isfinite(e.score) for e in r.history)
    ctx = Context(SPACE, digits_subset(), TINY)
    with torch_threads(1):  # every single evaluation is reproducible in this process
        for e in r.history[:2]:
            assert evaluate_candidate(SPACE, TSEEMA(), ctx, e.arch).score == e.score


# -- the asynchronous loop ------------------------------------------------------------------------------
def test_duplicate_of_an_architecture_in_flight_waits_for_it(request):
    a, b = archs(2)
    r = search(FixedList([a, a, b, a]), Cheap(sleep=0.3), n=4, executor=make_executor("processes", request)).run()
    fresh = [e for e in r.history if not e.cached]
    assert sorted(e.arch.string for e in fresh) == sorted([a, b])
    assert [e.arch.string for e in r.history if e.cached] == [a, a]
    assert [(e.arch.string, e.cached) for e in r.history[:2]] == [(a, False), (a, True)]  # waited for its twin
    assert len({e.score for e in r.history if e.arch.string == a}) == 1


def test_evaluations_budget_counts_the_candidates_in_flight(request):
    listed = archs(8)
    r = search(FixedList(listed), Cheap(sleep=0.1), n=5, executor=make_executor("processes", request)).run()
    assert len(r.history) == 5 and {e.arch.string for e in r.history} == set(listed[:5])


def test_batch_strategy_is_asked_again_after_results(request):
    r = search(Batches(size=2, batches=3), Cheap(), n=100, executor=make_executor("processes", request)).run()
    assert len(r.history) == 6


def test_cli_search_on_worker_processes(capsys):
    args = ["search", "--strategy", "random", "--space", "nb201", "--estimator", "tse-ema", "--data", "digits",
            "--evaluations", "3", "--epochs", "1", "--schedule-epochs", "10", "--C", "4", "--N", "1",
            "--batch-size", "128", "--device", "cpu", "--executor", "processes", "--workers", "2",
            "--executor-arg", "max_retries=1", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["evaluations"]) == 3 and all(e["status"] == "ok" for e in out["evaluations"])


def test_what_workers_receive_pickles_and_the_strategy_stays_home(request):
    import pickle
    import threading

    ctx = Context(SPACE, digits_subset(), TINY, seed=3)
    back = pickle.loads(pickle.dumps((SPACE, TSEEMA(epochs=2), ctx)))[2]
    assert back.data.fingerprint() == ctx.data.fingerprint() and set(back.data.info) == set(ctx.data.info)
    assert (back.data.x_train == ctx.data.x_train).all() and back.arch_seed(SPACE.from_ops(["none"] * 6)) == \
        ctx.arch_seed(SPACE.from_ops(["none"] * 6))
    strategy = FixedList(archs(3))
    strategy.lock = threading.Lock()  # unpicklable: fine, the strategy is never sent to a worker
    r = search(strategy, Cheap(), n=3, executor=make_executor("processes", request)).run()
    assert len(r.history) == 3 and all(e.info["pid"] != os.getpid() for e in r.history)


@pytest.mark.ray
def test_ray_executor_resources(ray_cluster):
    with pytest.raises(ValueError, match="num_cpus must be a non-negative number"):
        RayExecutor(num_cpus=-1)
    with pytest.raises(ValueError, match="needs num_cpus > 0 or num_gpus > 0"):
        RayExecutor(num_cpus=0)
    half = RayExecutor(num_cpus=0.5)
    half.start()
    assert half.workers == 4 and half.threads == 1  # what the 2-CPU cluster fits
    half.shutdown()
    assert ray_cluster.is_initialized()  # a cluster it did not start is left running
    with pytest.raises(ValueError, match=r"fits no task of num_cpus=1, num_gpus=0.25; pass workers="):
        RayExecutor(num_gpus=0.25).start()  # no GPU here
    assert RayExecutor(workers=3, num_gpus=0.25).workers == 3
