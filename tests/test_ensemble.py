"""The voting-ensemble estimator (issue 32): votes with known answers, scores against a fixed reference
sample that do not depend on the order of the search, its configuration stored and resumed."""

import numpy as np
import pytest

from nas_engine import Budget, Search, create
from nas_engine.context import Context
from nas_engine.registry import PluginNotFoundError

from .conftest import TINY, digits_subset


def test_majority_vote_and_mean_rank_against_a_hand_made_reference():
    ref = np.array([[1.0, 10.0, 0.1],
                    [2.0, 30.0, 0.3],
                    [3.0, 20.0, 0.2],
                    [4.0, 40.0, 0.4]])
    majority = create("estimator", "ensemble", members=["params", "flops", "synflow"])
    # candidate (2.5, 25, 0.5): all three members rank it above ref 0; two of three above ref 1 and ref 2; only
    # one above ref 3.  It beats 3 of 4.
    assert majority.combine([2.5, 25.0, 0.5], ref) == 0.75
    # a tie in one member is no vote: against ref 1, (2.0 tie, 31 > 30, 0.2 < 0.3) is a tied vote -> half
    assert majority.combine([2.0, 31.0, 0.2], ref) == pytest.approx((1 + 0.5 + 0.5 + 0) / 4)
    borda = create("estimator", "ensemble", members=["params", "flops", "synflow"], vote="mean-rank")
    # percentiles: member 1: 2 of 4 below -> 0.5; member 2: 2 below -> 0.5; member 3: 4 below -> 1.0
    assert borda.combine([2.5, 25.0, 0.5], ref) == pytest.approx(2 / 3)
    # ties count half; NaN is the worst score of its member (ties with nothing finite)
    assert borda.combine([2.0, np.nan, 0.4], ref) == pytest.approx(((1 + 0.5) / 4 + 0 + (3 + 0.5) / 4) / 3)
    with pytest.raises(ValueError, match=r"expected 3 member scores and a \[reference, 3\] array"):
        borda.combine([1.0, 2.0], ref)


def test_configuration_is_checked_in_one_line():
    with pytest.raises(ValueError, match="two or more estimators, got 1"):
        create("estimator", "ensemble", members=["params"])
    with pytest.raises(ValueError, match="members must be a list of two or more estimators, got 'params'"):
        create("estimator", "ensemble", members="params")
    with pytest.raises(ValueError, match=r"members\[1\] must be a registered estimator name"):
        create("estimator", "ensemble", members=["params", 3])
    with pytest.raises(ValueError, match="vote must be one of majority, mean-rank, got 'borda'"):
        create("estimator", "ensemble", members=["params", "flops"], vote="borda")
    with pytest.raises(ValueError, match="reference"):
        create("estimator", "ensemble", members=["params", "flops"], reference=1)
    with pytest.raises(PluginNotFoundError, match="no-such-proxy"):
        create("estimator", "ensemble", members=["params", "no-such-proxy"])
    with pytest.raises(TypeError, match="epochs"):
        create("estimator", "ensemble", members=["params", {"name": "synflow", "params": {"epochs": 3}}])


@pytest.fixture(scope="module")
def ctx():
    space = create("space", "nb201")
    return Context(space=space, data=digits_subset(), protocol=TINY, seed=3)


def test_score_is_the_vote_of_the_members_own_estimates_against_the_reference(ctx):
    ens = create("estimator", "ensemble", members=["params", "synflow"], reference=5)
    params, synflow = create("estimator", "params"), create("estimator", "synflow")
    refs = ens.reference_architectures(ctx)
    assert len({ctx.space.canonical(a) for a in refs}) == 5
    reference = np.array([[params.estimate(a, ctx).score, synflow.estimate(a, ctx).score] for a in refs])
    archs = [ctx.space.sample(np.random.default_rng(s)) for s in (10, 11)]
    first = ens.estimate(archs[0], ctx)
    mine = [params.estimate(archs[0], ctx).score, synflow.estimate(archs[0], ctx).score]
    assert first.score == ens.combine(mine, reference)
    assert first.info["members"] == {"params": mine[0], "synflow": mine[1]}
    assert first.info["vote"] == "majority" and first.info["reference"] == 5
    # the reference is scored once per context: the first estimate pays for it, the next does not
    second = ens.estimate(archs[1], ctx)
    assert first.cost_seconds > second.cost_seconds > 0
    # the order of the search does not change a score: a fresh clone scoring them the other way round agrees
    other = ens.clone()
    assert [other.estimate(a, ctx).score for a in archs[::-1]] == [second.score, first.score]
    # another search seed draws another reference sample
    assert [ctx.space.canonical(a) for a in ens.reference_architectures(Context(
        space=ctx.space, data=ctx.data, protocol=ctx.protocol, seed=4))] != [ctx.space.canonical(a) for a in refs]


def test_a_stored_search_keeps_the_members_and_resumes_to_the_same_scores(tmp_path, ctx):
    members = ["params", {"name": "synflow", "params": {}}]
    est = create("estimator", "ensemble", members=members, vote="mean-rank", reference=3)

    def run(n, out):
        return Search("random", ctx.space, est.clone(), data=ctx.data, protocol=ctx.protocol, seed=1,
                      budget=Budget(evaluations=n), store=out).run()

    whole = run(2, tmp_path / "whole")
    config = whole.config["estimator"]
    assert config == {"name": "ensemble", "params": {"members": members, "vote": "mean-rank", "reference": 3}}
    run(1, tmp_path / "part")
    resumed = run(2, tmp_path / "part")
    assert [(e.arch.string, e.score) for e in resumed.history] == [(e.arch.string, e.score) for e in whole.history]
    assert all(0 <= e.score <= 1 for e in whole.history)
