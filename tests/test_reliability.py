"""Reliability, round two (issue 33): misbehaving plugins, strategies that only repeat, and thread counts beyond
the machine's CPUs are refused or bounded, with one-line errors, and nothing finished is lost."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from nas_engine import Budget, Search, SearchResult
from nas_engine.api import Estimate, Estimator, PluginContractError, Strategy
from nas_engine.cli import main
from nas_engine.executors import InlineExecutor, ProcessExecutor
from nas_engine.registry import Registry, create, register, strategies
from nas_engine.search import EvaluationWarning
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.strategies import BayesianOptimization, RandomSearch
from nas_engine.threads import usable_cpus

SPACE = NB201Space()
A = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"


class Answers(Strategy):
    """ask() returns ``answer`` once (after ``good`` real proposals), then nothing."""

    def __init__(self, answer=None, good: int = 0):
        self.answer, self.good = answer, good

    def setup(self, space, ctx) -> None:
        super().setup(space, ctx)
        self._asked = 0

    def ask(self):
        self._asked += 1
        if self._asked <= self.good:
            return [self.space.sample(self.rng)]
        return self.answer if self._asked == self.good + 1 else []


class Forever(Strategy):
    """Proposes the same architecture on every ask."""

    def ask(self):
        return [self.space.from_string(A)]


class Huge(Estimator):
    """Scores from a hash of the architecture; ``bad`` of every 4 get ``value`` instead."""

    def __init__(self, value=10**400, bad: int = 1):
        self.value, self.bad = value, bad

    def estimate(self, arch, ctx) -> Estimate:
        h = sum(map(ord, arch.string))
        return Estimate(score=self.value if h % 4 < self.bad else float(h % 97), cost_seconds=0.0, epochs=0.0)


# -- ask() output is checked before anything is stored ---------------------------------------------------
@pytest.mark.parametrize("answer, shown", [
    ("|none~0|", "got str '|none~0|'"),
    (5, "got int 5"),
    (None, "got NoneType None"),
    ([None], "a list holding NoneType None"),
    (["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"], "a list holding str"),
])
@pytest.mark.parametrize("stored", [False, True])
def test_bad_ask_output_is_one_clear_error_with_or_without_a_store(tmp_path, answer, shown, stored):
    store = str(tmp_path / "run") if stored else None
    search = Search(Answers(answer, good=2), "nb201", Huge(bad=0), data=None, budget=Budget(evaluations=5), store=store,
                    progress=False)
    with pytest.raises(PluginContractError, match="strategy 'answers': ask\\(\\) ") as err:
        search.run()
    assert shown in str(err.value) and "\n" not in str(err.value)
    if stored:  # the two evaluations before it are kept, and the store is still readable
        assert len(SearchResult.load(store).history) == 2


def test_an_architecture_of_another_space_is_refused_naming_both():
    from nas_engine.spaces.darts import DartsSpace

    other = DartsSpace().sample(np.random.default_rng(0))
    with pytest.raises(ValueError, match="strategy 'answers': ask\\(\\) proposed .* not an architecture of the "
                                         "space 'nb201'"):
        Search(Answers([other]), "nb201", Huge(bad=0), data=None, budget=Budget(evaluations=2), progress=False).run()


def test_an_empty_ask_still_ends_the_search():
    r = Search(Answers([], good=3), "nb201", Huge(bad=0), data=None, budget=Budget(evaluations=10),
               progress=False).run()
    assert len(r.history) == 3


# -- scores that do not fit a float ----------------------------------------------------------------------
def test_a_huge_int_score_is_invalid_output_and_the_search_goes_on():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = Search(RandomSearch(repeats=False), "nb201", Huge(), data=None, budget=Budget(evaluations=12), seed=1,
                   progress=False).run()
    assert len(r.history) == 12
    bad = [e for e in r.history if not e.ok]
    assert bad and all(e.score == -math.inf and "fits a 64-bit float" in e.reason for e in bad)
    assert any(e.ok for e in r.history) and math.isfinite(r.best.score)
    assert any(issubclass(w.category, EvaluationWarning) for w in caught)


def test_bo_stays_finite_with_scores_near_the_largest_float(tmp_path):
    def search(n):
        return Search(BayesianOptimization(initial_points=3), "nb201", Huge(value=1.7e308, bad=2), data=None,
                      budget=Budget(evaluations=n), store=str(tmp_path / "bo"), seed=0, progress=False)

    first = search(5).run()
    assert [e.score for e in first.history if e.score > 1e300] and len(first.history) == 5
    resumed = search(8).run()  # the GP is fitted on them and the resume does not crash where it stopped
    assert len(resumed.history) == 8 and all(math.isfinite(e.score) for e in resumed.history)
    assert {e.arch.string for e in resumed.history[5:]}.isdisjoint(e.arch.string for e in resumed.history[:5])


# -- a strategy that only repeats ends its search -----------------------------------------------------------
def test_a_strategy_that_only_repeats_ends_an_epochs_budget_search(monkeypatch):
    from nas_engine import search as search_module

    assert search_module.REPEAT_LIMIT == 1000
    with pytest.warns(EvaluationWarning, match="proposed only architectures already evaluated for 1000 proposals"):
        r = Search(Forever(), "nb201", Huge(bad=0), data=None, budget=Budget(epochs=5), progress=False).run()
    assert len(r.history) == 1001 and sum(e.cached for e in r.history) == 1000


def test_the_repeat_count_survives_a_resume(tmp_path, monkeypatch):
    from nas_engine import search as search_module

    monkeypatch.setattr(search_module, "REPEAT_LIMIT", 5)
    store = str(tmp_path / "run")
    with pytest.warns(EvaluationWarning, match="for 5 proposals in a row"):
        first = Search(Forever(), "nb201", Huge(bad=0), data=None, budget=Budget(cost_seconds=10), store=store,
                       progress=False).run()
    assert len(first.history) == 6
    with pytest.warns(EvaluationWarning, match="for 5 proposals in a row"):
        again = Search(Forever(), "nb201", Huge(bad=0), data=None, budget=Budget(cost_seconds=10), store=store,
                       progress=False).run()
    assert len(again.history) == 6  # the stored tail already holds five repeats: nothing new is added


# -- plugin constructor parameters -------------------------------------------------------------------------
def test_a_constructor_parameter_named_kind_is_passed_on_and_one_named_name_is_refused():
    reg = Registry("strategy", "nas_engine.test_reliability_none")

    @reg.register("with-kind")
    class WithKind(Strategy):
        def __init__(self, kind: str = "a"):
            self.kind = kind

        def ask(self):
            return []

    assert reg.create("with-kind", kind="b").kind == "b"
    with pytest.raises(ValueError, match="has a constructor parameter named 'name', which the engine reserves"):
        @reg.register("with-name")
        class WithName(Strategy):
            def __init__(self, name: str = "a"):
                self.label = name

            def ask(self):
                return []
    assert "with-name" not in reg


def test_create_passes_kind_to_a_registered_plugin():
    @register("strategy", "kind-taker", override=True)
    class KindTaker(Strategy):
        def __init__(self, kind: str = "x"):
            self.kind = kind

        def ask(self):
            return []

    try:
        assert create("strategy", "kind-taker", kind="y").kind == "y"
    finally:
        strategies._factories.pop("kind-taker", None)


# -- threads beyond this machine's CPUs ------------------------------------------------------------------
def test_more_threads_than_cpus_are_refused_in_one_line(capsys):
    cpus = usable_cpus()
    for make in (InlineExecutor, ProcessExecutor):
        with pytest.raises(ValueError, match=f"threads={cpus + 1}: more torch threads than the {cpus} CPU"):
            make(threads=cpus + 1)
        assert make(threads=cpus).threads == cpus
    assert main(["search", "--threads", "1000", "--evaluations", "1", "--estimator", "params"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "threads=1000: more torch threads than the" in err
    assert main(["train", "--arch", A, "--schedule-epochs", "1", "--threads", "1000", "--out", "unused"]) == 2
    assert "threads=1000: more torch threads" in capsys.readouterr().err
