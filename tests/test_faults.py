"""Injected faults: diverging, raising and memory-hungry candidates, killed workers, Ctrl-C, a killed driver."""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nas_engine import Budget, Search
from nas_engine.estimators import TSEEMA
from nas_engine.executors import InlineExecutor, ProcessExecutor
from nas_engine.search import EvaluationWarning, RemoteTraceback
from nas_engine.store import RunStore
from nas_engine.strategies import FixedList, RandomSearch

from .conftest import TINY, digits_subset, kill_after_records, stored_records
from .faulty import REMOTE, Cheap, Faulty, InterruptingList, archs, make_executor
from .test_search import PoisonedNB201

ROOT = Path(__file__).resolve().parents[1]


def run(strategy, estimator, executor, n, space="nb201", **kw):
    return Search(strategy, space, estimator, data=digits_subset(), protocol=TINY, budget=Budget(evaluations=n),
                  progress=False, executor=executor, **kw).run()


def by_arch(result):
    return {e.arch.string: e for e in result.history}


# -- candidates that fail --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["inline", *REMOTE])
def test_diverging_and_raising_candidates_are_recorded_failed(kind, request, tmp_path):
    listed = archs(5)
    space = PoisonedNB201(listed[1])  # its network outputs NaN: training really diverges
    estimator = Faulty({listed[3]: "raise"}, inner=TSEEMA(epochs=2))
    with pytest.warns(EvaluationWarning, match=r"(?s)raised ValueError: injected error.*Traceback.*faulty\.py"):
        r = run(FixedList(listed), estimator, make_executor(kind, request), 5, space=space,
                store=str(tmp_path / "s"))
    got = by_arch(r)
    assert got[listed[1]].reason.startswith("diverged: training loss became non-finite in epoch 1")
    assert got[listed[1]].curve.epochs == 1
    assert got[listed[3]].reason == f"ValueError: injected error for {listed[3]}"
    for a in (listed[1], listed[3]):
        assert got[a].status == "failed" and got[a].score == -math.inf
    assert all(got[a].ok and math.isfinite(got[a].score) for a in (listed[0], listed[2], listed[4]))
    assert r.best.arch.string not in (listed[1], listed[3])
    stored = {rec["arch"]: rec for rec in stored_records(tmp_path / "s")}
    assert stored[listed[3]]["status"] == "failed" and stored[listed[3]]["score"] is None


@pytest.mark.parametrize("kind", ["inline", "processes"])
def test_the_same_error_on_the_first_three_candidates_is_raised(kind, request, tmp_path):
    listed = archs(6)
    estimator = Faulty(dict.fromkeys(listed, "raise"))
    with pytest.warns(EvaluationWarning), pytest.raises(ValueError, match="injected error") as info:
        run(FixedList(listed), estimator, make_executor(kind, request), 6, store=str(tmp_path / "s"))
    assert [rec["status"] for rec in stored_records(tmp_path / "s")] == ["failed"] * 3  # recorded before raising
    assert "the first 3 evaluation(s) of this search run all failed with ValueError" in "".join(
        getattr(info.value, "__notes__", []))
    if kind == "processes":  # the worker's traceback comes along
        assert isinstance(info.value.__cause__, RemoteTraceback) and "faulty.py" in str(info.value.__cause__)
    # different errors, or errors among successes, are individual failures
    mixed = Faulty({listed[0]: "raise", listed[2]: "raise"})
    with pytest.warns(EvaluationWarning):
        r = run(FixedList(listed), mixed, make_executor(kind, request), 6)
    assert [e.status for e in r.history].count("failed") == 2


def test_memory_cap_turns_a_huge_allocation_into_out_of_memory(request):
    listed = archs(4)
    executor = make_executor("processes", request, max_memory_mb=3000)
    r = run(FixedList(listed), Faulty({listed[1]: "allocate"}), executor, 4)
    got = by_arch(r)
    assert got[listed[1]].status == "failed" and got[listed[1]].score == -math.inf
    assert got[listed[1]].reason.startswith("out-of-memory: RuntimeError:")
    assert "can't allocate memory" in got[listed[1]].reason
    assert all(got[a].ok for a in listed if a != listed[1])


# -- workers that die -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", REMOTE)
def test_worker_killed_mid_evaluation_is_retried(kind, request, tmp_path):
    listed = archs(4)
    estimator = Faulty({listed[1]: "kill-once"}, marker_dir=str(tmp_path))
    with pytest.warns(EvaluationWarning, match="died .*running it again \\(attempt 2 of 3\\)"):
        r = run(FixedList(listed), estimator, make_executor(kind, request), 4)
    got = by_arch(r)
    assert all(e.ok for e in r.history) and len(r.history) == 4
    assert got[listed[1]].info["attempts"] == 2 and "attempts" not in got[listed[0]].info
    reference = run(FixedList(listed), Cheap(), "inline", 4)
    assert {a: e.score for a, e in got.items()} == {e.arch.string: e.score for e in reference.history}


@pytest.mark.parametrize("kind", REMOTE)
def test_worker_that_always_dies_is_recorded_failed_after_retries(kind, request):
    listed = archs(4)
    executor = make_executor(kind, request, max_retries=1)
    with pytest.warns(EvaluationWarning, match="died"):
        r = run(FixedList(listed), Faulty({listed[2]: "kill"}), executor, 4)
    got = by_arch(r)
    assert got[listed[2]].status == "failed" and got[listed[2]].score == -math.inf
    assert got[listed[2]].reason.startswith("worker died: ") and got[listed[2]].reason.endswith("(after 2 attempts)")
    assert all(got[a].ok for a in listed if a != listed[2])


# -- Ctrl-C ----------------------------------------------------------------------------------------------------
def test_ctrl_c_in_tell_keeps_finished_results_and_resume_completes(tmp_path):
    listed, store = archs(6), tmp_path / "s"
    full = run(FixedList(listed), Cheap(), "inline", 6)
    with pytest.raises(KeyboardInterrupt):
        run(InterruptingList(listed).interrupting(at=3), Cheap(), "inline", 6, store=str(store))
    # the third evaluation and the state after its tell are one transaction: interrupted in the tell, neither
    # was written, and the third is pending again
    assert [rec["arch"] for rec in stored_records(store)] == listed[:2]
    state = RunStore(store).state()
    assert state["n_records"] == 2 and state["pending"] == [listed[2]]
    resumed = run(FixedList(listed), Cheap(), "inline", 6, store=str(store))
    assert [(e.arch.string, e.score, e.cached) for e in resumed.history] == \
        [(e.arch.string, e.score, e.cached) for e in full.history]


@pytest.mark.parametrize("kind", REMOTE)
def test_sigint_cancels_work_in_flight_and_resume_completes(kind, request, tmp_path):
    listed, store = archs(6), tmp_path / "s"
    with pytest.raises(KeyboardInterrupt):
        run(InterruptingList(listed).interrupting(at=2, how="signal"), Cheap(sleep=0.3),
            make_executor(kind, request), 6, store=str(store))
    assert multiprocessing.active_children() == []  # the workers are gone
    done = [rec["arch"] for rec in stored_records(store)]
    assert len(done) == 1 and set(done) <= set(listed[:4])  # interrupted in the second tell: one is stored
    state = RunStore(store).state()
    assert not set(state["pending"]) & set(done)  # stored evaluations and state agree
    resumed = run(FixedList(listed), Cheap(sleep=0.3), make_executor(kind, request), 6, store=str(store))
    assert [e.arch.string for e in resumed.history[:1]] == done
    assert sorted(e.arch.string for e in resumed.history) == sorted(listed)
    assert not any(e.cached for e in resumed.history)  # nothing finished was evaluated again


def test_resume_when_a_later_proposal_finished_first(request, tmp_path):
    """Interrupted while telling a result that finished before an earlier proposal: the evaluation and the
    state after its tell are one transaction, so neither is stored and both proposals are pending again."""
    listed, store = archs(4), tmp_path / "s"
    slow_first = Faulty({listed[0]: "sleep"})
    with pytest.raises(KeyboardInterrupt):
        run(InterruptingList(listed).interrupting(at=1), slow_first, make_executor("processes", request), 4,
            store=str(store))
    # interrupted in the tell of the first result (listed[1], which finished first): nothing is stored
    assert stored_records(store) == []
    assert RunStore(store).state()["pending"] == listed[:2]
    # resumed inline with the same torch threads per evaluation (the thread count is part of the config)
    resumed = run(FixedList(listed), slow_first, make_executor("inline", request), 4, store=str(store))
    assert [e.arch.string for e in resumed.history] == listed
    assert not any(e.cached for e in resumed.history)


# -- the driver killed -----------------------------------------------------------------------------------------
_DRIVER = textwrap.dedent("""
    import sys
    from nas_engine import Budget, Search
    from nas_engine.estimators import TSEEMA
    from nas_engine.executors import ProcessExecutor
    from nas_engine.strategies import RandomSearch
    from tests.conftest import TINY, digits_subset
    Search(RandomSearch(repeats=False), "nb201", TSEEMA(epochs=2), data=digits_subset(), protocol=TINY,
           budget=Budget(evaluations=int(sys.argv[2])), store=sys.argv[1], progress=False,
           executor=ProcessExecutor(workers=2, threads=1)).run()
""")


def _processes_with_env(marker: str) -> list[int]:
    """Pids of the processes whose environment holds ``marker`` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "environ").read_bytes():
                pids.append(int(entry.name))
        except OSError:  # gone, or not ours
            pass
    return pids


def test_driver_killed_with_workers_in_flight_resumes_losing_nothing(tmp_path):
    n, store = 8, tmp_path / "store"
    marker = f"NAS_ENGINE_TEST_DRIVER={tmp_path}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NAS_ENGINE_TEST_DRIVER": str(tmp_path)}
    done_before = [rec["arch"] for rec in kill_after_records(["-c", _DRIVER, str(store), str(n)],
                                                             store, 3, env=env, cwd=ROOT)]
    assert 3 <= len(done_before) < n
    if sys.platform.startswith("linux"):  # the driver's workers (and fork server) exit too
        deadline = time.time() + 30
        while _processes_with_env(marker) and time.time() < deadline:
            time.sleep(0.2)
        assert _processes_with_env(marker) == []
    resumed = Search(RandomSearch(repeats=False), "nb201", TSEEMA(epochs=2), data=digits_subset(), protocol=TINY,
                     budget=Budget(evaluations=n), store=str(store), progress=False,
                     executor=ProcessExecutor(workers=2, threads=1)).run()
    assert [e.arch.string for e in resumed.history[:len(done_before)]] == done_before
    assert not any(e.cached for e in resumed.history), "a finished evaluation was trained again"
    reference = run(RandomSearch(repeats=False), TSEEMA(epochs=2), InlineExecutor(threads=1), n)
    assert {(e.arch.string, e.score) for e in resumed.history} == {(e.arch.string, e.score) for e in reference.history}
