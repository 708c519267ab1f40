"""Reliability (issue 33, budgets and resources): a wall-clock budget ends a candidate in training, a
per-evaluation time limit, SIGTERM as Ctrl-C, worker counts and a memory estimate checked before any cost."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import time
from dataclasses import replace

import numpy as np
import pytest

from nas_engine import Budget, Search, memory
from nas_engine import search as search_module
from nas_engine.cli import main
from nas_engine.data import load_dataset
from nas_engine.estimators.base import Estimate, Estimator
from nas_engine.executors import InlineExecutor
from nas_engine.memory import InsufficientMemory, estimate_memory
from nas_engine.registry import estimators as estimator_registry
from nas_engine.search import BudgetWarning
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.store import RunStore, StoreMismatchError
from nas_engine.strategies import FixedList
from nas_engine.threads import usable_cpus
from nas_engine.training import build_model

from .conftest import TINY, digits_subset, stored_records
from .faulty import REMOTE, Cheap, archs, make_executor

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
        r = search(listed, Budget(seconds=1.0), hours, store=store).run()
    assert time.perf_counter() - t0 < 1.0 + 1.5  # stopped at a minibatch boundary after the deadline
    assert outcomes(r) == [(listed[0], "ok", r.history[0].score, False)]  # the finished one is kept
    assert [rec["arch"] for rec in stored_records(store)] == listed[:1]
    assert RunStore(store).state()["pending"] == listed[1:2]  # interrupted: pending, not a result
    # resumed with a larger budget (and, the test's doing, one epoch): it runs again, like an uninterrupted search
    resumed = search(listed, Budget(evaluations=3), store=store).run()
    assert outcomes(resumed) == uninterrupted
    assert [e.status for e in resumed.history] == ["ok"] * 3


@pytest.mark.parametrize("kind", REMOTE)
def test_workers_stop_a_plugin_that_blocks_past_the_deadline(kind, request, tmp_path, monkeypatch):
    monkeypatch.setattr(search_module, "STOP_GRACE_SECONDS", 0.3)
    listed, store = archs(2), str(tmp_path / "s")
    blocks = Trains().doing(sleep={listed[0]: 60.0})  # sleeps: no minibatch boundary to stop at
    s = search(listed, Budget(seconds=0.5), blocks, make_executor(kind, request), store=store)
    started, submit = [], s.executor.submit
    s.executor.submit = lambda *a: (submit(*a), started.append(time.perf_counter()))[0]  # once its worker runs
    with pytest.warns(BudgetWarning):
        r = s.run()
    # stopped at the deadline plus the grace (the budget's clock also counts the worker's start, 5 s when cold)
    assert time.perf_counter() - started[-1] < 0.5 + 0.3 + 2.0
    pending, stored = RunStore(store).state()["pending"], [rec["arch"] for rec in stored_records(store)]
    # the blocked one is pending; the other (if the budget let it start) finished or is pending: nothing twice
    assert listed[0] in pending and set(pending + stored) <= set(listed)
    assert not set(pending) & set(stored)
    assert [e.arch.string for e in r.history] == stored and all(e.ok for e in r.history)


# -- a per-evaluation time limit -----------------------------------------------------------------------------
def test_a_candidate_over_its_time_limit_fails_and_the_search_goes_on(tmp_path, warm):
    listed, store = archs(3), str(tmp_path / "s")
    slow = Trains().doing(epochs={listed[1]: 100000})
    # 1 s: ten times what one epoch of the others takes here, three times that on a loaded 2-core machine
    r = search(listed, Budget(evaluations=3), slow, store=store, evaluation_seconds=1.0).run()
    got = {e.arch.string: e for e in r.history}
    assert 1.0 <= got[listed[1]].cost_seconds < 1.0 + 1.0  # stopped at a minibatch boundary
    assert got[listed[1]].status == "failed" and got[listed[1]].score == -math.inf
    assert got[listed[1]].reason == "time limit: the evaluation ran past evaluation_seconds=1"
    assert got[listed[0]].ok and got[listed[2]].ok  # the search went on
    assert [rec["status"] for rec in stored_records(store)] == ["ok", "failed", "ok"]
    # a plugin that returns after its limit without training fails too
    r = search(listed[:1], Budget(evaluations=1), Cheap(sleep=0.35), evaluation_seconds=0.3).run()
    assert r.history[0].status == "failed" and r.history[0].reason.startswith("time limit: the evaluation took 0.3")
    # stored in the configuration: a resume with another limit is refused naming the key
    with pytest.raises(StoreMismatchError, match="evaluation_seconds"):
        search(listed, Budget(evaluations=3), store=store, evaluation_seconds=2.0).run()


# -- SIGTERM does what Ctrl-C does -------------------------------------------------------------------------------
class Terminates(Estimator):
    """Sends its own process SIGTERM while evaluating the architectures in ``archs`` (a class attribute: the
    test's doing, not the configuration)."""

    archs: set[str] = set()

    def estimate(self, arch, ctx):
        if arch.string in self.archs:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the signal arrives during the sleep
        return Cheap().estimate(arch, ctx)


def test_sigterm_ends_a_cli_search_like_ctrl_c_and_keeps_what_finished(tmp_path, capsys, monkeypatch):
    listed, store = archs(3), str(tmp_path / "s")
    monkeypatch.setattr(estimator_registry, "_factories", {**estimator_registry._factories, "terminates": Terminates})
    monkeypatch.setattr(Terminates, "archs", {listed[1]})
    argv = ["search", "--strategy", "fixed", "--strategy-arg", f"archs={json.dumps(listed)}", "--estimator",
            "terminates", "--evaluations", "3", "--executor", "inline", "--threads", "1", "--n-train", "384",
            "--n-val", "96", "--out", store, "--quiet"]
    before = signal.getsignal(signal.SIGTERM)
    t0 = time.perf_counter()
    assert main(argv) == 130
    assert time.perf_counter() - t0 < 4  # not the 5-second sleep: interrupted at once
    assert "nas-engine: interrupted; finished evaluations are in the store" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before  # restored
    assert [rec["arch"] for rec in stored_records(store)] == listed[:1]
    assert RunStore(store).state()["pending"] == listed[1:2]
    monkeypatch.setattr(Terminates, "archs", set())
    assert main(argv) == 0  # resumed: the rest runs
    assert [rec["arch"] for rec in stored_records(store)] == listed


# -- worker processes and memory ---------------------------------------------------------------------------------
def test_more_workers_than_cpus_are_refused_in_one_line(capsys):
    cpus = usable_cpus()
    with pytest.raises(ValueError, match=f"ProcessExecutor: workers={cpus + 1}: more worker processes than the "
                                         f"{cpus} CPU"):
        Search("random", "nb201", "params", data=digits_subset(), executor="processes", workers=cpus + 1,
               progress=False)
    assert main(["search", "--workers", "1000", "--executor", "processes", "--evaluations", "1",
                 "--estimator", "params", "--n-train", "384", "--n-val", "96"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"workers=1000: more worker processes than the {cpus} CPU" in err
    assert f"give at most {cpus}" in err


def test_an_impossible_resolution_is_refused_before_the_data_is_loaded(capsys, monkeypatch):
    loads = []
    monkeypatch.setattr("nas_engine.data.load_dataset", lambda *a, **k: loads.append(a))
    assert main(["search", "--resolution", "100000", "--evaluations", "1", "--estimator", "params"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and loads == []
    assert err.startswith("nas-engine: error: resolution 100000: one minibatch of 128 images at 100000x100000 "
                          "(float32, 1 channel) needs about 5.12 TB, more than the ")
    # the dataset's images count when their number is given
    assert main(["train", "--arch", archs(1)[0], "--schedule-epochs", "1", "--resolution", "30000", "--n-train",
                 "1000", "--batch-size", "8", "--out", "unused"]) == 2
    assert "resolution 30000: one minibatch of 8 images and the 1000 images of the dataset" in capsys.readouterr().err


def test_the_memory_estimate_is_exact_and_a_search_over_memory_is_refused_with_the_numbers(monkeypatch):
    data = load_dataset("digits", n_train=384, n_val=96, resolution=16)
    space, protocol = NB201Space(), replace(TINY, batch_size=32).resolved(NB201Space())
    arch = space.sample(np.random.default_rng(0))
    est = estimate_memory(space, arch, data, protocol)
    # the activations measured the hard way: a real training-mode forward of the whole minibatch
    model, outs = build_model(space, arch, data, protocol, 0), [4 * 32 * 16 * 16]
    for m in model.modules():
        if next(m.children(), None) is None:
            m.register_forward_hook(lambda _m, _i, out: outs.append(out.numel() * out.element_size()))
    model(data.x_train[:32].float())
    assert est.activations == sum(outs)
    n_params = sum(p.numel() for p in model.parameters())
    assert est.training_state == 2 * 4 * n_params  # gradients and SGD's momentum
    assert est.data == sum(t.numel() * t.element_size() for t in (data.x_train, data.y_train, data.x_val,
                                                                  data.y_val, data.x_test, data.y_test))
    # measured at 8x8 and scaled by the area: a little above (pooled features and logits do not grow)
    monkeypatch.setattr(memory, "MEASURE_RESOLUTION", 8)
    assert est.activations <= estimate_memory(space, arch, data, protocol).activations < 1.01 * est.activations
    # a machine with less memory than the search needs: refused before anything trains, with the numbers
    monkeypatch.setattr(memory, "available_memory", lambda: 5_000_000)
    with pytest.raises(InsufficientMemory, match=r"the search \(one candidate at batch 128: parameters .* kB, "
                                                 r"gradients and optimiser state .*, activations .* MB, data "
                                                 r".*\) needs about .* MB, more than the 5 MB of memory"):
        Search(FixedList([arch.string]), space, "params", data=data, protocol=TINY, progress=False,
               executor="inline")
    monkeypatch.setattr(memory, "available_memory", lambda: 10**12)
    Search(FixedList([arch.string]), space, "params", data=data, protocol=TINY, progress=False, executor="inline")
