import numpy as np
import pytest

from nas_engine.context import Context
from nas_engine.registry import create
from nas_engine.results import Budget, Evaluation
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.strategies import RandomSearch, RegularizedEvolution

from .toy_space import ToySpace

SPACE = NB201Space()


def ctx(space=SPACE, evaluations=None, seed=0):
    budget = Budget(evaluations=evaluations) if evaluations else None
    return Context(space=space, data=None, protocol=None, seed=seed, budget=budget)


def ev(i, arch, score):
    return Evaluation(index=i, arch=arch, score=score, cost_seconds=0.0, epochs=0.0)


def n_diff(a, b):
    return sum(x != y for x, y in zip(a.spec, b.spec))


def test_re_scales_population_to_small_budgets():
    s = RegularizedEvolution()
    s.setup(SPACE, ctx(evaluations=12))
    assert (s.P, s.S) == (6, 2)
    s.setup(SPACE, ctx(evaluations=1000))
    assert (s.P, s.S) == (100, 10)
    s = RegularizedEvolution(scale_to_budget=False)
    s.setup(SPACE, ctx(evaluations=12))
    assert (s.P, s.S) == (100, 10)


def test_re_tournament_mutation_and_aging():
    s = RegularizedEvolution(population_size=5, sample_size=5)
    s.setup(SPACE, ctx(seed=1))
    told = []
    for i in range(5):  # initial population: random samples
        (a,) = s.ask()
        told.append(ev(i, a, float(i)))
        s.tell([told[-1]])
    best = told[-1].arch  # S == P: the tournament always sees the whole population
    for i in range(5, 12):
        (child,) = s.ask()
        top = max(sc for _, sc in s.population)
        assert any(n_diff(child, a) == 1 for a, sc in s.population if sc == top)
        s.tell([ev(i, child, -1.0)])
        told.append(ev(i, child, -1.0))
        assert [a for a, _ in s.population] == [e.arch for e in told[-5:]]  # oldest removed
    assert best not in [a for a, _ in s.population]


def test_re_failed_candidates_are_never_parents():
    s = RegularizedEvolution(population_size=3, sample_size=3)
    s.setup(SPACE, ctx(seed=2))
    archs = [s.ask()[0] for _ in range(3)]
    for i, (a, sc) in enumerate(zip(archs, [-np.inf, 0.5, -np.inf])):
        s.tell([ev(i, a, sc)])
    for _ in range(5):
        assert n_diff(s.ask()[0], archs[1]) == 1


def test_re_needs_mutable_space():
    with pytest.raises(TypeError, match="needs a search space with the Mutable capability"):
        RegularizedEvolution().setup(ToySpace(mutable=False), ctx())


@pytest.mark.parametrize("make", [lambda: RegularizedEvolution(population_size=4, sample_size=2),
                                  lambda: RandomSearch(repeats=False)])
def test_state_dict_round_trip_continues_identically(make):
    import json

    a = make()
    a.setup(SPACE, ctx(seed=3))
    for i in range(6):
        (x,) = a.ask()
        a.tell([ev(i, x, float(np.sin(i)))])
    b = make()
    b.setup(SPACE, ctx(seed=99))
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    for i in range(6, 12):
        (x,), (y,) = a.ask(), b.ask()
        assert x == y
        a.tell([ev(i, x, 0.1 * i)])
        b.tell([ev(i, y, 0.1 * i)])


def test_random_is_seeded_and_uniform_over_ops():
    def run(seed):
        s = RandomSearch()
        s.setup(SPACE, ctx(seed=seed))
        return [s.ask()[0] for _ in range(400)]

    a = run(0)
    assert a == run(0) and a != run(1)
    counts = np.zeros(5)
    for x in a:
        for op in x.spec:
            counts[SPACE.OPS.index(op)] += 1
    assert counts.min() > 0.8 * 480 and counts.max() < 1.2 * 480  # 2400 draws / 5 ops


def test_random_without_repeats_exhausts_and_stops():
    s = RandomSearch(repeats=False)
    space = ToySpace()
    s.setup(space, ctx(space=space))
    seen = [s.ask()[0] for _ in range(len(space))]
    assert len(set(seen)) == len(space)
    assert s.ask() == []


def test_random_without_repeats_by_canonical_class():
    s = RandomSearch(repeats=False, dedupe="canonical")
    s.setup(SPACE, ctx())
    keys = [SPACE.canonical(s.ask()[0]) for _ in range(300)]
    assert len(set(keys)) == 300
    with pytest.raises(ValueError, match="dedupe must be one of 'string', 'canonical', 'isomorphism', got 'graph'"):
        RandomSearch(dedupe="graph")


def test_random_without_repeats_by_isomorphism_class():
    s = RandomSearch(repeats=False, dedupe="isomorphism")
    s.setup(SPACE, ctx())
    classes = [SPACE.isomorphism_class(s.ask()[0]) for _ in range(300)]
    assert len(set(classes)) == 300
    darts = create("space", "darts")
    with pytest.raises(TypeError, match="IsomorphismClasses capability"):
        RandomSearch(repeats=False, dedupe="isomorphism").setup(darts, ctx(space=darts))


def test_re_without_repeats_never_reproposes_and_ends_when_exhausted():
    from nas_engine.spaces import RestrictedSpace

    small = RestrictedSpace(SPACE, [SPACE.sample(np.random.default_rng(i)).string for i in range(12)])
    for repeats, expect_all_new in ((True, False), (False, True)):
        s = RegularizedEvolution(population_size=3, sample_size=2, scale_to_budget=False, repeats=repeats)
        s.setup(small, ctx(space=small, seed=4))
        proposed = []
        for i in range(40):
            out = s.ask()
            if not out:
                break
            proposed.append(out[0].string)
            s.tell([ev(i, out[0], float(len(proposed) % 5))])
        if expect_all_new:
            assert len(proposed) == len(set(proposed)) == len(small)  # every architecture once, then []
        else:
            assert len(proposed) == 40 and len(set(proposed)) < 40  # the default re-proposes on a small space
