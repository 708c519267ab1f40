"""Every registered plugin passes the shipped conformance suite; the plugin contract cannot fail silently."""

from __future__ import annotations

import itertools
import json

import networkx as nx
import numpy as np
import pytest
import torch.nn as nn

from nas_engine import Budget, Search
from nas_engine.api import (
    Architecture,
    Enumerable,
    Estimate,
    Estimator,
    Mutable,
    PluginContractError,
    SearchSpace,
    Strategy,
    parameters,
)
from nas_engine.config import check_choice, check_float, check_int, config_diff, kebab_case
from nas_engine.registry import create, from_config, spaces
from nas_engine.store import RunStore, StoreMismatchError
from nas_engine.testing import (
    ConformanceError,
    check_estimator,
    check_plugin,
    check_strategy,
    parametrize_plugins,
    plugin_checks,
)

from .conftest import TINY
from .toy_space import ToySpace


@parametrize_plugins()
def test_every_registered_plugin_conforms(kind, name, check):
    check_plugin(kind, name, check)


def test_every_kind_is_covered():
    from nas_engine.testing import registered_plugins

    cases = registered_plugins()
    assert {k for k, _ in cases} == {"space", "strategy", "estimator"}
    assert ("space", "nb201") in cases and ("strategy", "random") in cases and ("estimator", "tse-ema") in cases


def test_one_test_per_plugin_and_check_named_by_its_id():
    mark = parametrize_plugins(("estimator", "strategy"))
    assert mark.args[0] == "kind, name, check"
    ids = [p.id for p in mark.args[1]]
    assert len(ids) == len(set(ids))
    assert "estimator-tse-ema-check_scores_higher_is_better" in ids and "estimator-tse-ema-check_registered" in ids
    assert "estimator-synflow-check_scores_higher_is_better" not in ids  # not a curve estimator
    assert "strategy-regularized-evolution-check_required_capabilities" in ids  # it requires Mutable
    assert "strategy-random-check_required_capabilities" not in ids
    assert plugin_checks("estimator", "tse-ema") == [
        "check_registered", "check_configuration", "check_estimates", "check_scores_are_seeded",
        "check_scores_higher_is_better", "check_refuses_missing_data"]
    old = parametrize_plugins(("space",), per_check=False)
    assert old.args[0] == "kind, name" and ("space", "nb201") in old.args[1]


def test_a_single_check_runs_alone_and_an_unknown_one_is_refused():
    assert check_plugin("estimator", "tse-ema", "check_scores_higher_is_better").name == "tse-ema"
    with pytest.raises(ValueError, match="'check_mutants' is not a check of estimator 'tse-ema'; its checks: "
                                         "check_registered, check_configuration"):
        check_plugin("estimator", "tse-ema", "check_mutants")


# -- silent failure 1: a space's name is the name it is registered under ---------------------------------------
class Bits(SearchSpace, Enumerable):
    """Strings of ``n`` bits; no ``name`` attribute: its name is the registered one."""

    def __init__(self, n: int = 2):
        self.n = check_int(n, "n", who="Bits")

    def sample(self, rng):
        return self.from_string("".join(rng.choice(["0", "1"], size=self.n)))

    def from_string(self, s):
        if not isinstance(s, str) or len(s) != self.n or set(s) - {"0", "1"}:
            raise ValueError(f"bad Bits architecture {s!r}: expected {self.n} characters 0/1")
        return Architecture(self, s, s)

    def to_graph(self, a):
        return nx.DiGraph([(i, i + 1, {"op": c}) for i, c in enumerate(a.string)])

    def build(self, a, num_classes, *, in_channels=3, **size):
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))

    def enumerate(self):
        return (self.from_string("".join(bits)) for bits in itertools.product("01", repeat=self.n))

    def __len__(self):
        return 2**self.n


def test_space_name_is_the_registered_name():
    spaces.register("bits", override=True)(Bits)
    try:
        space = create("space", "bits", n=3)
        assert space.name == "bits" and space.sample(np.random.default_rng(0)).space_name == "bits"
        check_plugin("space", "bits")
    finally:
        spaces._factories.pop("bits", None)
    # a class attribute that contradicts the registered name is refused, not silently kept
    with pytest.raises(ValueError, match="sets name='toy' but is registered as 'toy2'"):
        spaces.register("toy2")(type(ToySpace()))


# -- silent failure 2: a strategy that does not save its state is caught ---------------------------------------------
class HillClimb(Strategy):
    """Keeps an incumbent and mutates it: state beyond the RNG."""

    requires = (Mutable,)

    def __init__(self, patience: int = 3):
        self.patience = patience

    def setup(self, space, ctx):
        super().setup(space, ctx)
        self.best, self.best_score = None, -np.inf

    def ask(self):
        base = self.best if self.best is not None else self.space.sample(self.rng)
        return [self.space.mutate(base, self.rng)]

    def tell(self, evaluations):
        for e in evaluations:
            if e.score > self.best_score:
                self.best, self.best_score = e.arch, e.score


class SavedHillClimb(HillClimb):
    def state_dict(self):
        return {**super().state_dict(), "best": self.best.string if self.best else None,
                "best_score": self.best_score}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.best = self.space.from_string(state["best"]) if state["best"] else None
        self.best_score = state["best_score"]


def test_a_strategy_that_loses_its_state_on_resume_fails_the_suite():
    with pytest.raises(ConformanceError, match="resumed after 6 evaluations .* state_dict\\(\\) must hold everything"):
        check_strategy(HillClimb())
    check_strategy(SavedHillClimb())


def test_the_suite_catches_a_strategy_that_ignores_its_seed():
    class Unseeded(SavedHillClimb):
        def ask(self):
            return [self.space.sample(np.random.default_rng())]

    with pytest.raises(ConformanceError, match="same seed proposed different architectures"):
        check_strategy(Unseeded())


# -- silent failure 3: constructor arguments are the configuration ---------------------------------------------
class ConvCount(Estimator):
    def __init__(self, weight: float = 1.0):
        self.weight = weight

    def estimate(self, arch, ctx):
        return Estimate(score=self.weight * sum(op.startswith("nor_conv") for op in arch.spec))


def test_constructor_arguments_are_visible_without_get_params(tmp_path):
    est = ConvCount(weight=100)
    assert est.get_params() == {"weight": 100} and repr(est) == "ConvCount(weight=100)"
    assert est.name == "conv-count" and est.clone().weight == 100
    check_estimator(est)
    store = str(tmp_path / "s")
    Search("random", "nb201", est, data="digits", protocol=TINY, budget=Budget(evaluations=2), store=store,
           progress=False).run()
    with pytest.raises(StoreMismatchError, match=r"differs in: estimator\.params\.weight"):
        Search("random", "nb201", ConvCount(), data="digits", protocol=TINY, budget=Budget(evaluations=3),
               store=store, progress=False).run()


def test_kwargs_and_unstored_parameters_are_refused():
    with pytest.raises(PluginContractError, match=r"takes \*\*kwargs: a plugin lists every constructor parameter"):
        class Passthrough(ConvCount):
            def __init__(self, k: int = 1, **kwargs):
                super().__init__(**kwargs)

    class Forgets(Estimator):
        def __init__(self, weight: float = 1.0):
            self.w = weight

        def estimate(self, arch, ctx):
            return Estimate(0.0)

    with pytest.raises(PluginContractError, match="has no attribute 'weight'"):
        Forgets().get_params()
    with pytest.raises(ConformanceError, match="has no attribute 'weight'"):
        check_estimator(Forgets())


def test_one_shot_subclasses_show_their_parents_parameters():
    for name, own in (("multipath", {"k": 4}), ("spos", {"population_size": 50, "sample_size": 10}),
                      ("reptile", {"inner_steps": 4}), ("metaprox", {"inner_steps": 4, "prox": 10.0})):
        params = create("strategy", name).get_params()
        assert {"epochs", "lr", "finetune_batches", "candidates"} <= set(params) and own.items() <= params.items()
        assert create("strategy", name, epochs=7).get_params()["epochs"] == 7
    for name in ("synflow", "params", "flops"):  # data-free measures: batch_size is visible (and must stay None)
        assert create("estimator", name).get_params() == {"batch_size": None}


def test_parameters_decorator_declares_keyword_only_parameters():
    @parameters
    class Base(Strategy):
        size: int = 2

        def __post_init__(self):
            self.size = check_int(self.size, "size", who="Base")

        def ask(self):
            return []

    @parameters
    class Child(Base):
        rate: float = 0.5

    assert Child(size=3, rate=0.1).get_params() == {"size": 3, "rate": 0.1}
    with pytest.raises(ValueError, match="Base: size must be an integer >= 1, got 0"):
        Child(size=0)
    with pytest.raises(TypeError):
        Child(3)  # keyword-only


# -- silent failure 4: a space's parameters are part of the stored config -------------------------------------
def test_resuming_with_a_differently_configured_space_is_a_mismatch(tmp_path):
    store = str(tmp_path / "s")

    class ToyCount(Estimator):
        def estimate(self, arch, ctx):
            return Estimate(score=float(arch.string.count("a")))

    Search("random", ToySpace(3), ToyCount(), data="digits", protocol=TINY, budget=Budget(evaluations=2),
           store=store, progress=False).run()
    assert RunStore(tmp_path / "s").config()["space"] == {"name": "toy", "params": {"n": 3}}
    with pytest.raises(StoreMismatchError, match=r"differs in: space\.params\.n"):
        Search("random", ToySpace(4), ToyCount(), data="digits", protocol=TINY, budget=Budget(evaluations=3),
               store=store, progress=False).run()


# -- the configurable base and the shared checks -------------------------------------------------------------
def test_config_round_trip_through_json_and_registry():
    for kind, name, kw in (("estimator", "tse-ema", {"epochs": 3, "gamma": 0.9}),
                           ("strategy", "bo", {"initial_points": 4, "encoding": "path"}),
                           ("strategy", "multipath", {"k": 2, "epochs": 5}), ("space", "nb201", {})):
        obj = create(kind, name, **kw)
        again = from_config(kind, json.loads(json.dumps(obj.to_config())))
        assert type(again) is type(obj) and again.get_params() == obj.get_params()
    with pytest.raises(ValueError, match="config must be a dict"):
        from_config("estimator", {"params": {}})


def test_argument_checks_name_the_value_and_what_was_expected():
    assert check_int(np.int64(3), "n") == 3 and check_float(1, "x") == 1.0
    assert check_int(None, "n", none=True) is None
    for call, msg in [(lambda: check_int(True, "n", who="X"), "X: n must be an integer >= 1, got True"),
                      (lambda: check_int(5, "n", high=4), "n must be an integer >= 1 and <= 4, got 5"),
                      (lambda: check_float(float("nan"), "x", low=0), "x must be a finite number >= 0, got nan"),
                      (lambda: check_float(0, "g", low=0, low_open=True, high=1), "g must be a finite number > 0 "
                                                                                   "and <= 1, got 0"),
                      (lambda: check_choice("c", "m", ("a", "b")), "m must be 'a' or 'b', got 'c'"),
                      (lambda: check_choice("d", "m", ("a", "b", "c")), "m must be one of 'a', 'b', 'c', got 'd'")]:
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value) == msg


def test_config_diff_names_nested_keys_and_helpers():
    old = {"a": 1, "b": {"c": [1, 2], "d": float("nan")}, "e": 1}
    assert config_diff(old, {"a": 1, "b": {"c": [1, 3], "d": float("nan")}, "f": 2}) == ["b.c", "e", "f"]
    assert config_diff(old, old) == []
    assert kebab_case("ConvCount") == "conv-count" and kebab_case("NB201Space") == "nb201-space"
