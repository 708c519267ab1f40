"""Reliability (issue 33, budgets and resources): a wall-clock budget ends a candidate in training, a
per-evaluation time limit, SIGTERM as Ctrl-C, worker counts and a memory estimate checked before any cost."""

from __future__ import annotations

import math
import re
import time
from dataclasses import replace

import pytest

from nas_engine import Budget, Search
from nas_engine import search as search_module
from nas_engine.estimators.base import Estimate, Estimator
from nas_engine.executors import InlineExecutor, ProcessExecutor
from nas_engine.search import BudgetWarning
from nas_engine.store import RunStore, StoreMismatchError
from nas_engine.strategies import FixedList

from .conftest import TINY, digits_subset, stored_records
from .faulty import Cheap, archs

#: a schedule long enough for any epoch count (stored in the configuration, the same for every run below)
LONG = replace(TINY, schedule_epochs=100000)


class Trains(Estimator):
    """Trains ``epochs`` epochs after sleeping ``sleep`` seconds, per architecture (set by :meth:`doing`: the
    test's doing, not part of the configuration, so that a store resumes with other values)."""

    def doing(self, epochs: dict[str, int] | None = None, sleep: dict[str, float] | None = None) -> Trains:
        self.epochs, self.sleep = epochs or {}, sleep or {}
        return self

    def estimate(self, arch, ctx):
        time.sleep(getattr(self, "sleep", {}).get(arch.string, 0.0))
        curve = ctx.learning_curve(arch, getattr(self, "epochs", {}).get(arch.string, 1), validate=False)
        return Estimate(score=curve.train_acc[-1], cost_seconds=sum(curve.epoch_seconds), epochs=curve.epochs)


def search(listed, budget, estimator=None, executor=None, **kw):
    return Search(FixedList(listed), "nb201", estimator or Trains(), data=digits_subset(), protocol=LONG,
                  budget=budget, progress=False, executor=executor or InlineExecutor(threads=1), **kw)


@pytest.fixture
def warm():
    """Torch warmed up (its first training in a process takes a second more): the limits below are short."""
    search(archs(1), Budget(evaluations=1)).run()


def outcomes(result):
    return [(e.arch.string, e.status, e.score, e.cached) for e in result.history]


# -- a wall-clock budget ends a candidate in training ----------------------------------------------------
def test_the_seconds_budget_stops_a_candidate_mid_training_keeps_the_finished_and_a_resume_runs_it(tmp_path, warm):
    listed, store = archs(3), str(tmp_path / "s")
    uninterrupted = outcomes(search(listed, Budget(evaluations=3)).run())
    hours = Trains().doing(epochs={listed[1]: 100000})  # the second candidate would train for hours
    t0 = time.perf_counter()
    with pytest.warns(BudgetWarning, match=re.escape(f"ended 1 candidate(s) in training ({listed[1]}): not recorded")):
        r = search(listed, Budget(seconds=0.5), hours, store=store).run()
    assert time.perf_counter() - t0 < 0.5 + 1.5  # stopped at a minibatch boundary after the deadline
    assert outcomes(r) == [(listed[0], "ok", r.history[0].score, False)]  # the finished one is kept
    assert [rec["arch"] for rec in stored_records(store)] == listed[:1]
    assert RunStore(store).state()["pending"] == listed[1:2]  # interrupted: pending, not a result
    # resumed with a larger budget (and, the test's doing, one epoch): it runs again, like an uninterrupted search
    resumed = search(listed, Budget(evaluations=3), store=store).run()
    assert outcomes(resumed) == uninterrupted
    assert [e.status for e in resumed.history] == ["ok"] * 3


def test_processes_stop_a_plugin_that_blocks_past_the_deadline(tmp_path, monkeypatch):
    monkeypatch.setattr(search_module, "STOP_GRACE_SECONDS", 0.3)
    listed, store = archs(2), str(tmp_path / "s")
    blocks = Trains().doing(sleep={listed[0]: 60.0})  # sleeps: no minibatch boundary to stop at
    s = search(listed, Budget(seconds=0.5), blocks, ProcessExecutor(workers=1, threads=1), store=store)
    started, submit = [], s.executor.submit
    s.executor.submit = lambda *a: (submit(*a), started.append(time.perf_counter()))[0]  # once its worker runs
    with pytest.warns(BudgetWarning):
        r = s.run()
    # stopped at the deadline plus the grace (the budget's clock also counts the worker's start, 5 s when cold)
    assert time.perf_counter() - started[0] < 0.5 + 0.3 + 2.0
    assert r.history == [] and RunStore(store).state()["pending"] == listed[:1]


# -- a per-evaluation time limit -----------------------------------------------------------------------------
def test_a_candidate_over_its_time_limit_fails_and_the_search_goes_on(tmp_path, warm):
    listed, store = archs(3), str(tmp_path / "s")
    slow = Trains().doing(epochs={listed[1]: 100000})
    r = search(listed, Budget(evaluations=3), slow, store=store, evaluation_seconds=0.3).run()
    got = {e.arch.string: e for e in r.history}
    assert 0.3 <= got[listed[1]].cost_seconds < 0.3 + 1.0  # stopped at a minibatch boundary
    assert got[listed[1]].status == "failed" and got[listed[1]].score == -math.inf
    assert got[listed[1]].reason == "time limit: the evaluation ran past evaluation_seconds=0.3"
    assert got[listed[0]].ok and got[listed[2]].ok  # the search went on
    assert [rec["status"] for rec in stored_records(store)] == ["ok", "failed", "ok"]
    # a plugin that returns after its limit without training fails too
    r = search(listed[:1], Budget(evaluations=1), Cheap(sleep=0.35), evaluation_seconds=0.3).run()
    assert r.history[0].status == "failed" and r.history[0].reason.startswith("time limit: the evaluation took 0.3")
    # stored in the configuration: a resume with another limit is refused naming the key
    with pytest.raises(StoreMismatchError, match="evaluation_seconds"):
        search(listed, Budget(evaluations=3), store=store, evaluation_seconds=2.0).run()
