"""The ``bo`` strategy: GP-based Bayesian optimisation on BoTorch."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

from nas_engine import Budget, Search
from nas_engine.context import Context
from nas_engine.estimators.base import Estimate, Estimator
from nas_engine.results import Evaluation
from nas_engine.spaces import RestrictedSpace
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.strategies import RandomSearch
from nas_engine.strategies.bo import PATH_ENCODING_LENGTH, BayesianOptimization, nb201_path_encoding
from nas_engine.testing import check_registered as check_plugin

from .toy_space import ToySpace

pytest.importorskip("botorch", reason='the bo strategy needs BoTorch: pip install "nas-engine[bo]"')

SPACE = NB201Space()
# 300 random cells: a candidate set small enough for fast q-batch acquisitions
SMALL = RestrictedSpace(SPACE, sorted({SPACE.sample(np.random.default_rng(i)).string for i in range(300)}))


def ctx(space=SPACE, seed=0):
    return Context(space=space, data=None, protocol=None, seed=seed)


def synthetic(a) -> float:
    """A cheap objective over NB201 with its optimum at the all-``nor_conv_3x3`` cell, plus fixed noise."""
    noise = np.random.default_rng(SPACE.index(a)).normal(0, 0.1)
    return sum(op == "nor_conv_3x3" for op in a.spec) + 0.5 * sum(op == "nor_conv_1x1" for op in a.spec) + noise


def run(bo, steps, space=SPACE, seed=0, score=synthetic):
    """ask/tell ``steps`` times; returns the proposals (lists, one per ask)."""
    bo.setup(space, ctx(space, seed))
    asked = []
    for _ in range(steps):
        batch = bo.ask()
        asked.append(batch)
        bo.tell([Evaluation(len(asked), a, score(a), 0.0, 0.0) for a in batch])
    return asked


def strings(batches):
    return [a.string for batch in batches for a in batch]


def test_conformance_and_state_is_json():
    bo = check_plugin("strategy", "bo")
    run(bo, 3)
    state = bo.state_dict()
    assert json.loads(json.dumps(state, allow_nan=False)) == state


def test_encodings():
    a = SPACE.from_string("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|")
    onehot = BayesianOptimization()
    onehot.setup(SPACE, ctx())
    assert onehot.encode(a).shape == (30,) and onehot.encode(a).dtype == np.float64
    assert np.array_equal(onehot.encode(a), SPACE.encode(a).ravel())
    path = BayesianOptimization(encoding="path")
    path.setup(SPACE, ctx())
    x = path.encode(a)
    assert x.shape == (PATH_ENCODING_LENGTH,) == (84,) and set(np.unique(x)) <= {0.0, 1.0}
    # paths 0->3 (pool) and 0->1->3 (conv3, conv1); 0->2->3 and 0->1->2->3 end in `none`
    assert x.sum() == 2
    ops = ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert x[ops.index("avg_pool_3x3")] == 1 and x[4 + 4 * ops.index("nor_conv_3x3") + ops.index("nor_conv_1x1")] == 1
    assert not nb201_path_encoding(SPACE.to_graph(SPACE.from_ops(["none"] * 6)), SPACE.OPS).any()
    assert nb201_path_encoding(SPACE.to_graph(SPACE.from_ops(["skip_connect"] * 6)), SPACE.OPS).sum() == 3
    # a branch no input->output path uses does not count
    dead = SPACE.from_ops(["nor_conv_3x3", "none", "none", "avg_pool_3x3", "none", "none"])
    alive = SPACE.from_ops(["none", "none", "none", "avg_pool_3x3", "none", "none"])
    assert np.array_equal(path.encode(dead), path.encode(alive))


def test_refuses_spaces_it_cannot_use(monkeypatch):
    with pytest.raises(TypeError, match="needs a search space with the Encodable capability"):
        BayesianOptimization().setup(ToySpace(mutable=False), ctx(ToySpace(mutable=False)))
    with pytest.raises(ValueError, match="encoding must be 'onehot' or 'path', got 'graph'"):
        BayesianOptimization(encoding="graph")
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        BayesianOptimization(batch_size=0)
    monkeypatch.setitem(sys.modules, "botorch", None)  # as if BoTorch were not installed
    with pytest.raises(ImportError, match=r'pip install "nas-engine\[bo\]"'):
        BayesianOptimization().setup(SPACE, ctx())


def test_random_phase_then_gp(monkeypatch):
    fits = []
    fit_gp = BayesianOptimization._fit_gp

    def spy(self, X, y):
        fits.append((X.numpy().copy(), y.numpy().ravel().copy()))
        return fit_gp(self, X, y)

    monkeypatch.setattr(BayesianOptimization, "_fit_gp", spy)
    bo = BayesianOptimization(initial_points=4)
    bo.setup(SPACE, ctx())
    failed = lambda a: -math.inf  # noqa: E731
    for i in range(5):  # 4 random proposals; then still random: no finite score to fit
        (a,) = bo.ask()
        bo.tell([Evaluation(i, a, failed(a), 0.0, 0.0, status="failed")])
    assert fits == []
    run_batches = [bo.ask()]
    bo.tell([Evaluation(5, run_batches[0][0], 1.0, 0.0, 0.0)])
    assert fits == []  # one finite score is not enough
    (a,) = bo.ask()
    bo.tell([Evaluation(6, a, 2.0, 0.0, 0.0)])
    bo.ask()
    assert len(fits) == 1
    X, y = fits[0]
    assert X.shape == (7, 30) and np.isfinite(y).all()
    assert sorted(y) == [1.0] * 5 + [1.0, 2.0]  # the 5 failures imputed with the worst finite score
    assert [s for _, s in bo.observations].count(-math.inf) == 5


def test_nan_scores_count_as_failures():
    bo = BayesianOptimization(initial_points=2)
    asked = run(bo, 6, score=lambda a: math.nan if a.spec[0] == "none" else synthetic(a))
    assert len(set(strings(asked))) == 6
    assert all(math.isfinite(s) or s == -math.inf for _, s in bo.observations)


def test_a_failed_gp_fit_warns_and_proposes_with_initial_hyperparameters(monkeypatch):
    import botorch.fit
    from botorch.exceptions.errors import ModelFittingError

    def fail(mll, **kw):
        raise ModelFittingError("All attempts to fit the model have failed.")

    monkeypatch.setattr(botorch.fit, "fit_gpytorch_mll", fail)
    bo = BayesianOptimization(initial_points=3)
    with pytest.warns(RuntimeWarning, match="GP hyperparameter fit on 3 observations failed"):
        asked = run(bo, 4, space=SMALL)
    assert len(set(strings(asked))) == 4


def test_never_repeats_and_stops_when_exhausted():
    space = RestrictedSpace(SPACE, [SPACE.sample(np.random.default_rng(i)).string for i in range(12)])
    bo = BayesianOptimization(initial_points=8)
    asked = run(bo, len(space) + 1, space=space)
    assert sorted(strings(asked)) == sorted(a.string for a in space.enumerate())
    assert asked[-1] == []


def test_batches_are_distinct_and_avoid_pending():
    bo = BayesianOptimization(initial_points=4, batch_size=4)
    bo.setup(SMALL, ctx(SMALL))
    first = bo.ask()
    assert len(first) == 4 and len(set(first)) == 4
    bo.tell([Evaluation(i, a, synthetic(a), 0.0, 0.0) for i, a in enumerate(first)])
    second = bo.ask()  # qLogEI
    third = bo.ask()  # asked before `second` is told: `second` is pending
    assert len(second) == len(third) == 4
    assert len({a.string for a in first + second + third}) == 12
    assert bo.pending == second + third


def test_pool_of_mutations_for_spaces_too_large_to_enumerate():
    bo = BayesianOptimization(initial_points=3, max_candidates=0, pool_size=40, n_incumbents=2)
    asked = strings(run(bo, 6))
    assert len(set(asked)) == 6


def test_seeded_and_state_dict_round_trip_continues_identically():
    def fresh():
        return BayesianOptimization(initial_points=3, batch_size=2)

    a = fresh()
    first = strings(run(a, 3, space=SMALL, seed=5))
    assert first == strings(run(fresh(), 3, space=SMALL, seed=5))
    assert first != strings(run(fresh(), 3, space=SMALL, seed=6))
    pending = a.ask()  # saved while in flight, as a search saves its state
    b = fresh()
    b.setup(SMALL, ctx(SMALL, seed=99))
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert b.pending == pending
    for bo in (a, b):
        bo.tell([Evaluation(0, x, synthetic(x), 0.0, 0.0) for x in pending])
    for _ in range(2):
        x, y = a.ask(), b.ask()
        assert x == y
        for bo in (a, b):
            bo.tell([Evaluation(0, s, synthetic(s), 0.0, 0.0) for s in x])


class Synthetic(Estimator):
    """Scores an architecture by :func:`synthetic`, for free."""

    def estimate(self, arch, ctx):
        return Estimate(synthetic(arch))


def test_bo_beats_random_search_on_a_synthetic_objective():
    def best(strategy, seed):
        return Search(strategy, SPACE, Synthetic(), data=None, budget=Budget(evaluations=20), seed=seed,
                      progress=False).run().best.score

    random_best = np.mean([best(RandomSearch(), s) for s in range(5)])
    bo_best = best(BayesianOptimization(initial_points=5), 0)
    assert bo_best > random_best + 0.5, (bo_best, random_best)
