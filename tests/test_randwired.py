"""Tests of the randomly wired networks space (nas_engine.spaces.randwired)."""

from __future__ import annotations

import math
import pickle

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nas_engine import Budget, Search, create
from nas_engine.registry import spaces
from nas_engine.spaces.base import Encodable, Enumerable, Mutable, SearchSpace
from nas_engine.spaces.randwired import (
    GENERATORS,
    MAX_SEED,
    NODE_OP,
    RandWiredNetwork,
    RandWiredNode,
    RandWiredSpace,
    RandWiredStage,
    random_graph,
    stage_seed,
    to_dag,
)
from nas_engine.testing import check_plugin, check_space

from .test_nb101_search import PROTOCOL, STRATEGIES, api_search, cli_search

#: a small space for the tests (networks of 4-10 nodes)
SPACE = RandWiredSpace(min_nodes=4, max_nodes=10)
DEFAULT = create("space", "randwired")


def edges(g: nx.Graph) -> set[tuple[int, int]]:
    return {(min(u, v), max(u, v)) for u, v in g.edges}


def fields(a) -> dict:
    s = a.spec
    return {"generator": s.generator, "n": s.n, "seed": s.seed, "k": s.k, "p": s.p, "m": s.m}


# -- registration, strings ----------------------------------------------------------------------------
def test_registered_and_capabilities():
    assert spaces.get("randwired") is RandWiredSpace and DEFAULT.name == "randwired"
    assert isinstance(DEFAULT, (SearchSpace, Mutable, Encodable)) and not isinstance(DEFAULT, Enumerable)
    assert DEFAULT.get_params() == {"generators": ("ws", "er", "ba"), "min_nodes": 8, "max_nodes": 32}
    assert DEFAULT.default_size == {"C": 16, "stages": 3}


@pytest.mark.parametrize("text, fields_", [
    ("ws(k=4,p=0.75,n=16,seed=3)", {"generator": "ws", "k": 4, "p": 0.75, "n": 16, "seed": 3, "m": None}),
    ("er(p=0.2,n=16,seed=0)", {"generator": "er", "p": 0.2, "n": 16, "seed": 0, "k": None, "m": None}),
    ("ba(m=5,n=16,seed=1)", {"generator": "ba", "m": 5, "n": 16, "seed": 1, "k": None, "p": None}),
    ("er(p=0,n=8,seed=2147483647)", {"generator": "er", "p": 0.0, "n": 8, "seed": MAX_SEED - 1, "k": None,
                                     "m": None}),
    ("ws(k=30,p=1,n=32,seed=7)", {"generator": "ws", "k": 30, "p": 1.0, "n": 32, "seed": 7, "m": None}),
    ("er(p=1e-05,n=9,seed=12)", {"generator": "er", "p": 1e-05, "n": 9, "seed": 12, "k": None, "m": None}),
])
def test_strings_round_trip(text, fields_):
    a = DEFAULT.from_string(text)
    assert a.string == str(a) == DEFAULT.to_string(a) == text and fields(a) == fields_
    assert DEFAULT.from_string(text) == a and pickle.loads(pickle.dumps(a)) == a
    hp = {k: v for k, v in fields_.items() if k in ("k", "p", "m") and v is not None}
    assert DEFAULT.architecture(fields_["generator"], n=fields_["n"], seed=fields_["seed"], **hp) == a
    assert DEFAULT.hyperparameters(a) == hp


def test_sampled_strings_round_trip():
    for i in range(200):
        a = DEFAULT.sample(np.random.default_rng(i))
        assert DEFAULT.from_string(a.string) == a and DEFAULT.from_string(a.string).spec == a.spec


@pytest.mark.parametrize("text, message", [
    ("ws(k=4, p=0.75, n=16, seed=3)", "ws string must give k=..., p=..., n=..., seed=... in this order"),
    ("ws k=4", "randwired string must look like"),
    ("ws(k=4,p=0.75,n=16,seed=3))", "randwired string must look like"),
    ("WS(k=4,p=0.75,n=16,seed=3)", "unknown generator 'WS'"),
    ("gnp(p=0.1,n=16,seed=3)", "unknown generator 'gnp'"),
    ("ws(p=0.75,k=4,n=16,seed=3)", "in this order"),
    ("ws(k=4,n=16,seed=3)", "in this order"),
    ("er(p=0.5,n=16)", "er string must give p=..., n=..., seed=... in this order"),
    ("er(p=0.5,n=16,seed=3,m=2)", "in this order"),
    ("er(p,n=16,seed=3)", "in this order"),
    ("ws(k=5,p=0.75,n=16,seed=3)", "WS k must be an even integer with 2 <= k < n (=16)"),
    ("ws(k=16,p=0.75,n=16,seed=3)", "WS k must be an even integer with 2 <= k < n (=16)"),
    ("ws(k=0,p=0.75,n=16,seed=3)", "WS k must be an even integer"),
    ("ws(k=4,p=1.5,n=16,seed=3)", "WS p must be a probability in [0, 1], got p=1.5"),
    ("er(p=-0.1,n=16,seed=3)", "ER p must be a probability in [0, 1]"),
    ("er(p=nan,n=16,seed=3)", "ER p must be a probability in [0, 1]"),
    ("er(p=half,n=16,seed=3)", "ER p='half' in 'er(p=half,n=16,seed=3)' is not a number"),
    ("er(p=0.50,n=16,seed=3)", "must be written in its shortest form '0.5'"),
    ("er(p=1.0,n=16,seed=3)", "must be written in its shortest form '1'"),
    ("er(p=.5,n=16,seed=3)", "shortest form '0.5'"),
    ("ba(m=0,n=16,seed=3)", "BA m must be an integer with 1 <= m < n (=16)"),
    ("ba(m=16,n=16,seed=3)", "BA m must be an integer with 1 <= m < n (=16)"),
    ("ba(m=2,n=40,seed=3)", "node count n must be an integer in [8, 32]"),
    ("ba(m=2,n=7,seed=3)", "node count n must be an integer in [8, 32]"),
    ("ba(m=2,n=16,seed=2147483648)", "seed must be an integer in [0, 2**31)"),
    ("ba(m=2,n=16,seed=-1)", "seed='-1' in 'ba(m=2,n=16,seed=-1)' must be a non-negative integer"),
    ("ba(m=02,n=16,seed=1)", "m='02'"),
    ("ba(m=2.0,n=16,seed=1)", "m='2.0'"),
    ("ba(m=2,n=16,seed=1)\n", "randwired string must look like"),
])
def test_from_string_is_strict_and_names_the_bad_part(text, message):
    with pytest.raises(ValueError) as info:
        DEFAULT.from_string(text)
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_from_string_refuses_non_strings_and_foreign_generators():
    with pytest.raises(TypeError, match="expected a randwired architecture string, got int"):
        DEFAULT.from_string(3)
    ws_only = RandWiredSpace(generators=["ws"])
    with pytest.raises(ValueError, match=r"generator 'ba' is not in this space \(generators: ws\)"):
        ws_only.from_string("ba(m=2,n=16,seed=1)")
    assert ws_only.get_params()["generators"] == ("ws",)


@pytest.mark.parametrize("kwargs, message", [
    ({"generators": "ws"}, "generators must be a non-empty list"),
    ({"generators": []}, "generators must be a non-empty list"),
    ({"generators": ["ws", "sbm"]}, "unknown generator 'sbm'"),
    ({"generators": ["ws", "ws"]}, "must not repeat"),
    ({"min_nodes": 2}, "min_nodes must be an integer >= 3"),
    ({"min_nodes": 10, "max_nodes": 9}, r"max_nodes \(min_nodes=10\) must be an integer >= 10"),
])
def test_space_configuration_is_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RandWiredSpace(**kwargs)


def test_architecture_api_checks_types_and_hyperparameters():
    with pytest.raises(ValueError, match="ws \\(Watts-Strogatz\\) takes the hyperparameters k, p, got p"):
        DEFAULT.architecture("ws", n=16, seed=0, p=0.5)
    with pytest.raises(ValueError, match="WS k must be an even integer"):
        DEFAULT.architecture("ws", n=16, seed=0, k=4.0, p=0.5)
    with pytest.raises(ValueError, match="seed must be an integer"):
        DEFAULT.architecture("er", n=16, seed=True, p=0.5)
    with pytest.raises(ValueError, match="unknown generator 'sbm'"):
        DEFAULT.architecture("sbm", n=16, seed=0)
    a = DEFAULT.architecture("er", n=np.int64(16), seed=np.int64(4), p=np.float64(0.25))
    assert a.string == "er(p=0.25,n=16,seed=4)"


# -- graphs: networkx's generators, DAG conversion --------------------------------------------------------
@pytest.mark.parametrize("text", ["ws(k=4,p=0.75,n=16,seed=3)", "ws(k=6,p=0.2,n=20,seed=11)",
                                  "er(p=0.2,n=16,seed=0)", "er(p=0.6,n=9,seed=123456)",
                                  "ba(m=5,n=16,seed=1)", "ba(m=1,n=32,seed=99)"])
def test_graphs_for_a_fixed_seed_equal_networkx_generator_output(text):
    a = DEFAULT.from_string(text)
    s = a.spec
    for stage in range(3):
        seed = s.seed + stage * 2**31
        assert stage_seed(s.seed, stage) == seed
        if s.generator == "ws":
            theirs = nx.watts_strogatz_graph(s.n, s.k, s.p, seed=seed)
        elif s.generator == "er":
            theirs = nx.erdos_renyi_graph(s.n, s.p, seed=seed)
        else:
            theirs = nx.barabasi_albert_graph(s.n, s.m, seed=seed)
        ours = DEFAULT.stage_graph(a, stage)
        assert set(ours.nodes) == set(theirs.nodes) == set(range(s.n)) and edges(ours) == edges(theirs)
        dag = DEFAULT.stage_dag(a, stage)
        inner = {(u - 1, v - 1) for u, v in dag.edges if u != 0 and v != s.n + 1}
        assert inner == edges(theirs)  # the DAG holds exactly networkx's edges, directed low -> high
    assert edges(DEFAULT.stage_graph(a, 0)) != edges(DEFAULT.stage_graph(a, 1))  # each stage its own graph
    assert nx.utils.graphs_equal(DEFAULT.to_graph(a), DEFAULT.stage_dag(a, 0))


def test_random_graph_dispatches_to_networkx():
    assert edges(random_graph("er", 12, 5, p=0.3)) == edges(nx.gnp_random_graph(12, 0.3, seed=5))
    with pytest.raises(ValueError, match="unknown generator 'x'"):
        random_graph("x", 5, 0)


def check_dag(dag: nx.DiGraph, graph: nx.Graph) -> None:
    """The DAG conversion rules of Xie et al. for ``graph``'s DAG."""
    n = graph.number_of_nodes()
    out = n + 1
    assert set(dag.nodes) == set(range(n + 2)) and nx.is_directed_acyclic_graph(dag)
    assert dag.nodes[0]["op"] == "input" and dag.nodes[out]["op"] == "output"
    assert all(dag.nodes[v]["op"] == NODE_OP for v in range(1, n + 1))
    assert all(u < v for u, v in dag.edges)  # by node order (and the vertex numbers are a topological order)
    assert dag.in_degree(0) == 0 and dag.out_degree(out) == 0 and not dag.has_edge(0, out)
    inner = dag.subgraph(range(1, n + 1))
    roots = {v for v in inner if inner.in_degree(v) == 0}
    sinks = {v for v in inner if inner.out_degree(v) == 0}
    assert set(dag.successors(0)) == roots and set(dag.predecessors(out)) == sinks
    assert dag.number_of_edges() == graph.number_of_edges() + len(roots) + len(sinks)
    reach = nx.descendants(dag, 0)
    back = nx.ancestors(dag, out)
    assert all(v in reach and v in back for v in range(1, n + 1))  # every node on an input-output path


def test_dag_conversion_rules_on_many_graphs():
    for i in range(150):
        a = SPACE.sample(np.random.default_rng(i))
        for stage in range(2):
            check_dag(SPACE.stage_dag(a, stage), SPACE.stage_graph(a, stage))


def test_dag_conversion_on_hand_made_graphs():
    g = nx.Graph([(2, 0), (0, 1)])
    g.add_node(3)  # isolated: fed by the input, feeds the output
    dag = to_dag(g)
    check_dag(dag, g)
    assert sorted(dag.edges) == [(0, 1), (0, 4), (1, 2), (1, 3), (2, 5), (3, 5), (4, 5)]
    empty = to_dag(nx.empty_graph(3))  # ER with p=0: every node in parallel
    assert sorted(empty.edges) == [(0, 1), (0, 2), (0, 3), (1, 4), (2, 4), (3, 4)]
    with pytest.raises(ValueError, match="nodes 0..n-1"):
        to_dag(nx.Graph([(1, 2)]))


# -- canonical, settings, seeds (TSE Appendix E) --------------------------------------------------------------
def test_canonical_merges_seeds_only_where_the_generator_draws_nothing():
    for det in ("ws(k=4,p=0,n=16,seed={})", "er(p=0,n=16,seed={})", "er(p=1,n=16,seed={})",
                "ba(m=15,n=16,seed={})", "ws(k=16,p=0.5,n=17,seed={})"):
        a, b = DEFAULT.from_string(det.format(1)), DEFAULT.from_string(det.format(2))
        assert DEFAULT.canonical(a) == DEFAULT.canonical(b) == DEFAULT.setting(a)
        for stage in range(2):
            assert edges(DEFAULT.stage_graph(a, stage)) == edges(DEFAULT.stage_graph(b, stage))
    for rnd in ("ws(k=4,p=0.05,n=16,seed={})", "er(p=0.5,n=16,seed={})", "ba(m=14,n=16,seed={})"):
        a, b = DEFAULT.from_string(rnd.format(1)), DEFAULT.from_string(rnd.format(2))
        assert DEFAULT.canonical(a) == a.string != DEFAULT.canonical(b) == b.string
        assert edges(DEFAULT.stage_graph(a)) != edges(DEFAULT.stage_graph(b))


def test_settings_and_seeds():
    a = DEFAULT.from_string("ws(k=4,p=0.75,n=16,seed=3)")
    assert DEFAULT.setting(a) == "ws(k=4,p=0.75,n=16)"
    eight = DEFAULT.with_seeds(a, range(8))
    assert [x.string for x in eight] == [f"ws(k=4,p=0.75,n=16,seed={s})" for s in range(8)]
    assert DEFAULT.from_hyperparameters("ws", 16, range(8), k=4, p=0.75) == eight
    assert {DEFAULT.setting(x) for x in eight} == {"ws(k=4,p=0.75,n=16)"}
    assert len({frozenset(edges(DEFAULT.stage_graph(x))) for x in eight}) == 8  # eight different graphs
    with pytest.raises(ValueError, match="seeds must be distinct"):
        DEFAULT.with_seeds(a, [1, 1])
    with pytest.raises(ValueError, match="at least one seed"):
        DEFAULT.with_seeds(a, [])
    with pytest.raises(ValueError, match="BA m must be"):
        DEFAULT.from_hyperparameters("ba", 16, [0], m=20)


def test_score_settings_averages_over_seeds():
    ws = DEFAULT.from_hyperparameters("ws", 16, [0, 1], k=4, p=0.75)
    er = DEFAULT.from_hyperparameters("er", 16, [0, 1, 2], p=0.2)
    ba = DEFAULT.from_hyperparameters("ba", 16, [5], m=3)
    scored = [(ws[0], 1.0), (ws[1], 3.0), (er[0], 4.0), (er[1], 1.0), (er[2], 1.0), (ba[0], -math.inf)]
    means = DEFAULT.score_settings(scored)
    assert means == {"ws(k=4,p=0.75,n=16)": 2.0, "er(p=0.2,n=16)": 2.0, "ba(m=3,n=16)": -math.inf}
    assert list(means)[-1] == "ba(m=3,n=16)"


def test_selecting_a_generator_setting_through_the_api():
    """TSE Appendix E at a tiny size: two settings x two seeds, evaluated by a search; a setting's score is
    the mean of its seeds' scores."""
    archs = [*SPACE.from_hyperparameters("ws", 6, [0, 1], k=2, p=0.5),
             *SPACE.from_hyperparameters("ba", 6, [0, 1], m=2)]
    result = Search(create("strategy", "fixed", archs=archs), SPACE, create("estimator", "tse", epochs=1),
                    data="digits", protocol=PROTOCOL, budget=Budget(evaluations=4), progress=False).run()
    assert [e.arch for e in result.history] == archs
    means = SPACE.score_settings(result.history)
    scores = {e.arch.string: e.score for e in result.history}
    assert set(means) == {"ws(k=2,p=0.5,n=6)", "ba(m=2,n=6)"}
    assert means["ws(k=2,p=0.5,n=6)"] == pytest.approx((scores[archs[0].string] + scores[archs[1].string]) / 2)
    assert means["ba(m=2,n=6)"] == pytest.approx((scores[archs[2].string] + scores[archs[3].string]) / 2)
    assert all(math.isfinite(v) for v in means.values())


# -- sampling, mutation, encoding ----------------------------------------------------------------------------
def check_valid(space: RandWiredSpace, a) -> None:
    s = a.spec
    assert s.generator in space.generators and space.min_nodes <= s.n <= space.max_nodes and 0 <= s.seed < MAX_SEED
    if s.generator == "ws":
        assert s.k % 2 == 0 and 2 <= s.k < s.n and 0 <= s.p <= 1 and s.m is None
    elif s.generator == "er":
        assert 0 <= s.p <= 1 and s.k is None and s.m is None
    else:
        assert 1 <= s.m < s.n and s.k is None and s.p is None
    assert space.from_string(a.string) == a


def test_sample_is_valid_deterministic_and_varied():
    archs = [DEFAULT.sample(np.random.default_rng(i)) for i in range(600)]
    for a in archs:
        check_valid(DEFAULT, a)
    assert DEFAULT.sample(np.random.default_rng(7)) == archs[7]
    assert {a.spec.generator for a in archs} == set(GENERATORS)
    assert len(set(archs)) == 600 and len({DEFAULT.setting(a) for a in archs}) > 500
    ns = [a.spec.n for a in archs]
    assert min(ns) == 8 and max(ns) == 32
    ks = {a.spec.k for a in archs if a.spec.generator == "ws"}
    assert {2, 4, 6, 8} <= ks and max(ks) >= 24
    ps = [a.spec.p for a in archs if a.spec.p is not None]
    assert all(p == round(p, 2) for p in ps) and min(ps) < 0.05 and max(ps) > 0.95  # the 0.01 grid
    ms = {a.spec.m for a in archs if a.spec.generator == "ba"}
    assert 1 in ms and max(ms) >= 25


def changed(a, b) -> set[str]:
    fa, fb = fields(a), fields(b)
    return {k for k in fa if fa[k] != fb[k]}


def test_mutate_changes_one_thing_and_is_valid_and_different():
    moves = set()
    for i in range(400):
        rng = np.random.default_rng(i)
        a = SPACE.sample(rng)
        m = SPACE.mutate(a, rng)
        check_valid(SPACE, m)
        assert m != a and SPACE.canonical(m) != SPACE.canonical(a)
        diff = changed(a, m)
        if "generator" in diff:
            assert m.spec.n == a.spec.n and m.spec.seed == a.spec.seed
            moves.add("generator")
        elif "n" in diff:  # k or m shrink only when they no longer fit: to the largest valid value
            assert abs(m.spec.n - a.spec.n) == 1 and diff <= {"n", "k", "m"}
            if diff != {"n"}:
                largest = m.spec.n - 1 - (m.spec.n - 1) % 2 if m.spec.generator == "ws" else m.spec.n - 1
                assert (m.spec.k or m.spec.m) == largest
            moves.add("n")
        else:
            assert len(diff) == 1, (a, m)
            (key,) = diff
            moves.add(key)
            if key == "k":
                assert abs(m.spec.k - a.spec.k) == 2
            elif key == "p":
                assert abs(m.spec.p - a.spec.p) <= 0.05 + 1e-12
            elif key == "m":
                assert abs(m.spec.m - a.spec.m) == 1
    assert moves == {"generator", "n", "seed", "k", "p", "m"}


def test_mutate_never_only_reseeds_a_deterministic_setting():
    a = SPACE.from_string("ws(k=2,p=0,n=6,seed=9)")
    for i in range(100):
        m = SPACE.mutate(a, np.random.default_rng(i))
        assert SPACE.canonical(m) != SPACE.canonical(a) and changed(a, m) != {"seed"}
    one = RandWiredSpace(generators=["er"], min_nodes=5, max_nodes=5)
    assert one.mutate(one.from_string("er(p=1,n=5,seed=0)"), np.random.default_rng(0)).string == "er(p=0.95,n=5,seed=0)"


def test_encode_fixed_length_numeric_and_seed_free():
    a = DEFAULT.from_string("ws(k=4,p=0.75,n=16,seed=3)")
    np.testing.assert_allclose(DEFAULT.encode(a), [1, 0, 0, 0.5, 4 / 31, 0.75, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(DEFAULT.encode(DEFAULT.from_string("er(p=0.2,n=8,seed=3)")),
                               [0, 1, 0, 0.25, 0, 0, 0.2, 0], rtol=1e-6)
    np.testing.assert_allclose(DEFAULT.encode(DEFAULT.from_string("ba(m=31,n=32,seed=3)")),
                               [0, 0, 1, 1, 0, 0, 0, 1], rtol=1e-6)
    assert np.array_equal(DEFAULT.encode(a), DEFAULT.encode(DEFAULT.with_seeds(a, [99])[0]))
    codes = np.stack([DEFAULT.encode(DEFAULT.sample(np.random.default_rng(i))) for i in range(300)])
    assert codes.shape == (300, 8) and codes.dtype == np.float32 and np.isfinite(codes).all()
    assert codes.min() >= 0 and codes.max() <= 1 and np.all(codes[:, :3].sum(axis=1) == 1)


# -- networks ---------------------------------------------------------------------------------------------
def test_build_forward_at_a_tiny_size():
    torch.manual_seed(0)
    a = SPACE.from_string("ws(k=4,p=0.5,n=8,seed=3)")
    net = SPACE.build(a, 10, C=4, stages=3)
    assert isinstance(net, RandWiredNetwork) and len(net.stages) == 3
    out = net(torch.randn(2, 3, 8, 8))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert net.classifier.in_features == 16 and net.stem[0].out_channels == 2
    for s, stage in enumerate(net.stages):
        dag = SPACE.stage_dag(a, s)
        assert stage.inputs == [sorted(dag.predecessors(v)) for v in range(1, 9)]
        assert stage.outputs == sorted(dag.predecessors(9))
        for node, src in zip(stage.nodes, stage.inputs):
            dw, pw = node.op[1]
            c_in = (2 if s == 0 else 4 * 2 ** (s - 1)) if src == [0] else 4 * 2**s  # the stem has C // 2
            assert dw.stride == ((2, 2) if src == [0] else (1, 1)) and dw.groups == dw.in_channels == c_in
            assert pw.out_channels == 4 * 2**s
    shapes = []
    hooks = [stage.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape))) for stage in net.stages]
    net(torch.randn(2, 3, 8, 8))
    for h in hooks:
        h.remove()
    assert shapes == [(2, 4, 4, 4), (2, 8, 2, 2), (2, 16, 1, 1)]  # stride 2 at every stage's input
    one = SPACE.build(a, 3, in_channels=1, C=2, stages=1)
    assert one(torch.randn(2, 1, 8, 8)).shape == (2, 3) and len(one.stages) == 1


def test_build_checks_sizes_and_uses_the_default_size():
    a = SPACE.from_string("ba(m=2,n=5,seed=0)")
    with pytest.raises(ValueError, match="C must be an integer >= 1"):
        SPACE.build(a, 10, C=0)
    with pytest.raises(ValueError, match="stages must be an integer >= 1"):
        SPACE.build(a, 10, stages=0)
    net = SPACE.build(a, 10)
    assert len(net.stages) == 3 and net.classifier.in_features == 64


def test_node_weights_are_learnable_and_positive_via_sigmoid():
    torch.manual_seed(0)
    node = RandWiredNode(3, 4, 4)
    assert isinstance(node.weight, torch.nn.Parameter) and node.weight.requires_grad
    assert torch.equal(node.aggregation_weights(), torch.full((3,), 0.5))  # sigmoid(0)
    with torch.no_grad():
        node.weight.copy_(torch.tensor([-30.0, 0.0, 4.0]))
    w = node.aggregation_weights()
    assert (w > 0).all() and torch.allclose(w, torch.sigmoid(torch.tensor([-30.0, 0.0, 4.0])))
    xs = [torch.randn(2, 4, 5, 5) for _ in range(3)]
    node.eval()
    expected = node.op(sum(wi * x for wi, x in zip(w, xs)))
    assert torch.allclose(node(xs), expected, atol=1e-6)
    node.train()
    node(xs).square().mean().backward()
    assert node.weight.grad is not None and node.weight.grad.abs().sum() > 0
    assert RandWiredNode(1, 4, 4).weight is None  # a single input is passed on unweighted

    net = SPACE.build(SPACE.from_string("er(p=0.8,n=6,seed=1)"), 10, C=4, stages=1)
    names = [name for name, _ in net.named_parameters() if name.endswith(".weight") and ".nodes." in name
             and ".op." not in name]
    fan_ins = [len(src) for src in net.stages[0].inputs]
    assert len(names) == sum(f > 1 for f in fan_ins) > 0
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    before = {n: p.detach().clone() for n, p in net.named_parameters() if n in names}
    torch.nn.functional.cross_entropy(net(torch.randn(8, 3, 8, 8)), torch.arange(8)).backward()
    opt.step()
    assert any(not torch.equal(before[n], p) for n, p in net.named_parameters() if n in names)


def test_stage_output_is_the_mean_of_the_sinks():
    g = nx.Graph([(0, 1)])
    g.add_node(2)
    stage = RandWiredStage(to_dag(g), 2, 2).eval()
    x = torch.randn(1, 2, 4, 4)
    n0 = stage.nodes[0]([x])
    n1 = stage.nodes[1]([n0])
    n2 = stage.nodes[2]([x])
    assert stage.outputs == [2, 3] and torch.allclose(stage(x), (n1 + n2) / 2, atol=1e-6)


# -- conformance ---------------------------------------------------------------------------------------------
def test_conformance():
    check_space(SPACE)
    check_plugin("space", "randwired")


# -- searches (as tests/test_nb101_search.py on nb101) ------------------------------------------------------------
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_api_search_on_randwired(strategy):
    result = api_search(strategy, "randwired", SPACE)
    if strategy == "regularized-evolution":  # the third proposal is one mutation of the better of the first two
        parent = max(result.history[:2], key=lambda e: e.score).arch
        diff = changed(parent, result.history[2].arch)
        assert "generator" in diff or diff in ({"seed"}, {"n"}, {"k"}, {"p"}, {"m"}, {"n", "k"}, {"n", "m"}), diff


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_cli_search_on_randwired(strategy, tmp_path, capsys):
    out = cli_search(strategy, "randwired", tmp_path, capsys)
    assert out["config"]["space"]["params"] == {"generators": ["ws", "er", "ba"], "min_nodes": 8, "max_nodes": 32}


# -- properties (hypothesis) -------------------------------------------------------------------------------------
RULES = ("randwired string must look like", "unknown generator", "in this order", "WS k must be an even integer",
         "p must be a probability in [0, 1]", "is not a number", "shortest form", "BA m must be an integer",
         "node count n must be an integer", "seed must be an integer", "must be a non-negative integer")

#: mostly plausible values, sometimes out of range or badly written
int_text = st.one_of(st.integers(-1, 12).map(str), st.integers(-1, 12).map(str), st.integers(-1, 12).map(str),
                     st.sampled_from(["01", "2.0", "", "x", "2147483647", "2147483648", "1e3", "+3"]))
p_text = st.one_of(st.floats(0, 1).map(repr), st.floats(-0.5, 1.5).map(repr),
                   st.sampled_from(["0", "1", "0.5", ".5", "1.0", "nan", "inf", "p", "0.250"]))


@st.composite
def candidate_strings(draw):
    """Strings close to valid ones: a (sometimes wrong) generator, (sometimes shuffled or missing) keys, values
    that are sometimes out of range or badly written."""
    gen = draw(st.sampled_from(["ws", "er", "ba", "ws", "er", "ba", "xx"]))
    keys = {"ws": ["k", "p"], "er": ["p"], "ba": ["m"], "xx": ["p"]}[gen] + ["n", "seed"]
    if draw(st.integers(0, 9)) == 0:
        keys = draw(st.permutations(keys))
    if draw(st.integers(0, 9)) == 0:
        keys = keys[:-1]
    parts = [f"{k}={draw(p_text) if k == 'p' else draw(int_text)}" for k in keys]
    return f"{gen}({','.join(parts)})"


@settings(max_examples=400, deadline=None)
@given(candidate_strings())
def test_any_string_is_valid_or_rejected_naming_the_rule(text):
    try:
        a = SPACE.from_string(text)
    except ValueError as exc:
        assert "\n" not in str(exc) and any(rule in str(exc) for rule in RULES), str(exc)
        return
    assert a.string == text
    check_valid(SPACE, a)
    check_dag(SPACE.to_graph(a), SPACE.stage_graph(a))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(GENERATORS), st.integers(-2, 14), st.integers(-2, 14), st.floats(-1, 2),
       st.integers(-1, 2**31 + 1))
def test_any_hyperparameters_are_valid_or_rejected_naming_the_rule(generator, n, k_or_m, p, seed):
    hp = {"ws": {"k": k_or_m, "p": p}, "er": {"p": p}, "ba": {"m": k_or_m}}[generator]
    try:
        a = SPACE.architecture(generator, n=n, seed=seed, **hp)
    except ValueError as exc:
        assert "\n" not in str(exc) and any(rule in str(exc) for rule in RULES), str(exc)
        return
    check_valid(SPACE, a)
    assert SPACE.from_string(a.string) == a


archs = st.integers(0, 2**32 - 1).map(lambda seed: SPACE.sample(np.random.default_rng(seed)))


@settings(max_examples=300, deadline=None)
@given(archs, st.integers(0, 2**32 - 1))
def test_mutants_are_valid_and_different(a, seed):
    m = SPACE.mutate(a, np.random.default_rng(seed))
    check_valid(SPACE, m)
    assert m != a and SPACE.canonical(m) != SPACE.canonical(a)
