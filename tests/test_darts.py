"""Tests of the DARTS search space (nas_engine.spaces.darts)."""

from __future__ import annotations

import json
import pickle

import networkx as nx
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from nas_engine import Budget, Search
from nas_engine.data import load_dataset
from nas_engine.registry import create, spaces
from nas_engine.spaces.base import Encodable, Enumerable, FixedEdgeOps, HasSupernet, Mutable
from nas_engine.spaces.darts import CELLS, EDGES, OPS, DartsNetwork, DartsSpace, DartsSupernet, layers_for
from nas_engine.strategies.oneshot import SupernetTrainer, uniform_paths
from nas_engine.testing import check_space
from nas_engine.training import Protocol

from .conftest import shared_path

SPACE = DartsSpace()

# DARTS_V2 and DARTS_V1, as written in the official DARTS code's cnn/genotypes.py (quark0/darts)
DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
            "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
            "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
            "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
DARTS_V1 = ("Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), "
            "('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], "
            "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
            "('max_pool_3x3', 0), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
            "('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])")
# DARTS_V2 in NASLib's compact encoding (input, op index) with op indices into OPS
DARTS_V2_COMPACT = ("[[(0, 3), (1, 3), (0, 3), (1, 3), (1, 3), (0, 2), (0, 2), (2, 5)], "
                    "[(0, 0), (1, 0), (2, 2), (1, 0), (0, 0), (2, 2), (2, 2), (1, 0)]]")
#: a cell in which every node reads the two cell inputs (nodes 2..5 are interchangeable up to their ops)
PLAIN = [("sep_conv_3x3", 0), ("sep_conv_5x5", 1), ("max_pool_3x3", 0), ("skip_connect", 1),
         ("dil_conv_3x3", 0), ("avg_pool_3x3", 1), ("sep_conv_3x3", 0), ("dil_conv_5x5", 1)]


def arch(normal, reduce=PLAIN):
    return SPACE.from_cells(normal, reduce)


# -- identity and strings ------------------------------------------------------------------------
def test_registered_with_its_capabilities():
    assert spaces.get("darts") is DartsSpace and create("space", "darts") == SPACE
    assert all(isinstance(SPACE, c) for c in (Mutable, Encodable, HasSupernet))
    assert not isinstance(SPACE, (Enumerable, FixedEdgeOps))  # FairNAS's strict fairness does not apply
    assert OPS == ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                   "dil_conv_3x3", "dil_conv_5x5")  # NASLib's compact op order
    assert len(EDGES) == 14 and CELLS == ("normal", "reduce")


def test_genotype_text_round_trips_exactly():
    for text in (DARTS_V2, DARTS_V1):
        a = SPACE.from_string(text)
        assert a.string == SPACE.to_string(a) == str(a) == text
        assert SPACE.from_string(a.string) == a and pickle.loads(pickle.dumps(a)) == a
    a = SPACE.from_string(DARTS_V2)
    assert a.spec[0][7] == ("dil_conv_3x3", 2) and SPACE.cells(a)[1][0] == ("max_pool_3x3", 0)


def test_other_spellings_of_the_genotype_parse_to_the_same_architecture():
    a = SPACE.from_string(DARTS_V2)
    multi_line = DARTS_V2.replace(", normal_concat", ",\n  normal_concat").replace("[(", "[\n    (")
    tuples = DARTS_V2.replace("[(", "((").replace(")]", "))").replace("[2, 3, 4, 5]", "(2, 3, 4, 5)")
    positional = DARTS_V2.replace("normal=", "").replace("normal_concat=", "").replace("reduce=", "").replace(
        "reduce_concat=", "")
    for text in (multi_line, tuples, positional, "  " + DARTS_V2 + "\n", DARTS_V2_COMPACT):
        assert SPACE.from_string(text) == a, text


def test_compact_encoding_both_ways():
    a = SPACE.from_string(DARTS_V2)
    assert SPACE.to_compact(a) == DARTS_V2_COMPACT
    assert SPACE.from_compact(DARTS_V2_COMPACT) == a
    nested = ((tuple(p) for p in cell) for cell in json.loads(DARTS_V2_COMPACT.replace("(", "[").replace(")", "]")))
    assert SPACE.from_compact([list(c) for c in nested]) == a
    assert SPACE.from_compact(DARTS_V2_COMPACT.replace("[", "(").replace("]", ")")) == a  # NASLib's tuple form


def test_every_peer_architecture_round_trips_through_both_strings():
    """All 725 architectures of NASLib's zero-cost NAS-Bench-301 file (keys = compact encodings)."""
    path = shared_path("peer-reference", "naslib_zc_nasbench301.json")
    records = json.loads(path.read_text())["cifar10"]
    assert len(records) == 725
    canon = set()
    for key, rec in records.items():
        assert rec["arch"] == key
        a = SPACE.from_string(key)
        assert SPACE.to_compact(a) == key
        b = SPACE.from_string(a.string)
        assert b == a and b.string == a.string and SPACE.to_compact(b) == key
        canon.add(SPACE.canonical(a))
    assert len(canon) == 725  # no two of NASLib's sampled architectures are equivalent


@pytest.mark.parametrize("text, message", [
    ("", "not a DARTS architecture string: ''; expected \"Genotype\\("),
    ("resnet18", "not a DARTS architecture string: 'resnet18'"),
    ("Genotype(normal=[", "malformed Genotype text"),
    ("Genotype(normal=__import__('os').getcwd(), normal_concat=[2, 3, 4, 5], reduce=[], reduce_concat=[2, 3, 4, 5])",
     "Genotype field 'normal' in .* is not a literal list"),
    ("Genotypes(normal=[])", "expected a single Genotype\\(...\\) call"),
    (DARTS_V2.replace("normal_concat", "normal_cat"), "unknown Genotype field 'normal_cat'"),
    (DARTS_V2.replace(", reduce_concat=[2, 3, 4, 5]", ""), "lacks field\\(s\\) reduce_concat"),
    (DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[4, 5]"),
     "normal_concat must be \\[2, 3, 4, 5\\] .* got \\[4, 5\\]"),
    (DARTS_V2.replace("'dil_conv_3x3', 2", "'conv_7x1_1x7', 2"),
     "unknown op 'conv_7x1_1x7' in pair 7 \\(node 5\\) of the normal cell; valid ops: max_pool_3x3"),
    (DARTS_V2.replace("('sep_conv_3x3', 1), ('sep_conv_3x3', 0)", "('sep_conv_3x3', 1), ('sep_conv_3x3', 3)", 1),
     "input 3 of pair 2 of the normal cell: node 3 reads an integer input 0..2"),
    (DARTS_V2.replace("('sep_conv_3x3', 0), ('sep_conv_3x3', 1)", "('sep_conv_3x3', 0), ('sep_conv_3x3', 0)", 1),
     "node 2 of the normal cell reads input 0 twice; a node's two inputs must be distinct"),
    (DARTS_V2.replace("('max_pool_3x3', 1)]", "]"), "the reduce cell must be a list of 8 \\(op, input\\) pairs"),
    ("[[(0, 3)], []]", "the compact normal cell must be 8 \\(input, op index\\) pairs"),
    (DARTS_V2_COMPACT.replace("(2, 5)", "(2, 7)"), "op index 7 in pair 7 of the compact normal cell; expected 0..6"),
    ("[[(0, 3)] * 8, []]", "malformed compact DARTS text"),
])
def test_bad_strings_raise_one_line_errors_naming_the_bad_part(text, message):
    with pytest.raises(ValueError, match=message) as info:
        SPACE.from_string(text)
    assert "\n" not in str(info.value)
    with pytest.raises(TypeError, match="expected a DARTS Genotype or compact string, got int"):
        SPACE.from_string(3)


@st.composite
def cells(draw):
    """A valid cell: per node two distinct inputs before it, in either order, and two ops."""
    pairs = []
    for node in range(2, 6):
        j1, j2 = draw(st.lists(st.integers(0, node - 1), min_size=2, max_size=2, unique=True))
        pairs += [(draw(st.sampled_from(OPS)), j1), (draw(st.sampled_from(OPS)), j2)]
    return pairs


@settings(max_examples=60, deadline=None)
@given(cells(), cells(), st.randoms(use_true_random=False))
def test_property_round_trips_and_canonical_invariance(normal, reduce, rnd):
    a = SPACE.from_cells(normal, reduce)
    assert SPACE.from_string(a.string) == a and SPACE.from_string(SPACE.to_compact(a)) == a
    assert SPACE.from_string(a.string.replace(", ", ",")) == a
    # renumber the intermediate nodes along a random topological order and shuffle each node's pairs
    relabeled = []
    for cell in (normal, reduce):
        g = nx.DiGraph([(j, 2 + k // 2) for k, (_, j) in enumerate(cell)])
        order, free = [], {n for n in range(2, 6) if all(j < 2 for _, j in cell[2 * (n - 2): 2 * (n - 2) + 2])}
        while free:
            n = rnd.choice(sorted(free))
            free.remove(n)
            order.append(n)
            free |= {m for m in g.successors(n) if all(p in order or p < 2 for p in g.predecessors(m))}
        new = {0: 0, 1: 1, **{n: 2 + i for i, n in enumerate(order)}}
        nodes = [None] * 4
        for n in range(2, 6):
            pairs = [(op, new[j]) for op, j in cell[2 * (n - 2): 2 * (n - 2) + 2]]
            rnd.shuffle(pairs)
            nodes[new[n] - 2] = pairs
        relabeled.append([p for pairs in nodes for p in pairs])
    b = SPACE.from_cells(*relabeled)
    assert SPACE.canonical(b) == SPACE.canonical(a)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60) | st.sampled_from([DARTS_V2[:n] for n in range(0, len(DARTS_V2), 7)]))
def test_property_any_text_parses_or_raises_a_one_line_value_error(text):
    try:
        a = SPACE.from_string(text)
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert SPACE.from_string(a.string) == a


# -- graphs -----------------------------------------------------------------------------------------------
def test_to_graph_holds_both_cells_with_ops_on_edges():
    a = SPACE.from_string(DARTS_V2)
    g = SPACE.to_graph(a)
    assert isinstance(g, nx.DiGraph) and nx.is_directed_acyclic_graph(g)
    assert g.number_of_nodes() == 14 and g.number_of_edges() == 2 * (8 + 4)
    assert nx.number_weakly_connected_components(g) == 2
    assert g.edges[("normal", 2), ("normal", 5)]["op"] == "dil_conv_3x3"
    assert g.edges[("reduce", 1), ("reduce", 2)]["op"] == "max_pool_3x3"
    assert g.edges[("reduce", 3), ("reduce", 6)]["op"] == "concat"
    assert g.nodes["normal", 0]["role"] == "input" and g.nodes["reduce", 6]["role"] == "output"
    cell = SPACE.cell_graph(a, "normal")
    assert sorted(cell.predecessors(4)) == [0, 1] and cell.edges[0, 4]["op"] == "skip_connect"
    assert sorted(cell.predecessors(6)) == [2, 3, 4, 5]
    with pytest.raises(ValueError, match="cell must be 'normal' or 'reduce', got 'x'"):
        SPACE.cell_graph(a, "x")


# -- sampling, mutation, encoding ------------------------------------------------------------------
def test_sample_is_uniform_over_distinct_input_pairs_and_ops():
    rng = np.random.default_rng(0)
    archs = [SPACE.sample(rng) for _ in range(400)]
    assert SPACE.sample(np.random.default_rng(5)) == SPACE.sample(np.random.default_rng(5))
    assert len({a.string for a in archs}) == 400
    ops, node5 = np.zeros(len(OPS)), {}
    for a in archs:
        for cell in SPACE.cells(a):
            for i in range(4):
                (o1, j1), (o2, j2) = cell[2 * i: 2 * i + 2]
                assert j1 < j2 < 2 + i  # distinct, ascending, before the node
                ops[OPS.index(o1)] += 1
                ops[OPS.index(o2)] += 1
            node5[cell[6][1], cell[7][1]] = node5.get((cell[6][1], cell[7][1]), 0) + 1
    assert len(node5) == 10  # every pair of node 5's five possible inputs occurs
    expected = 400 * 2 * 8 / len(OPS)
    assert np.all(np.abs(ops - expected) < 5 * np.sqrt(expected))


def test_mutate_changes_one_op_or_one_input_and_never_gives_an_equivalent_architecture():
    rng = np.random.default_rng(1)
    kinds = set()
    for _ in range(300):
        a = SPACE.sample(rng)
        m = SPACE.mutate(a, rng)
        assert m != a and SPACE.canonical(m) != SPACE.canonical(a)
        diff = [(c, k) for c in range(2) for k in range(8) if a.spec[c][k] != m.spec[c][k]]
        assert len(diff) == 1
        c, k = diff[0]
        (op, j), (op2, j2) = a.spec[c][k], m.spec[c][k]
        kinds.add("op" if j == j2 else "input")
        assert (op == op2) != (j == j2)
        assert j2 != m.spec[c][k ^ 1][1]
    assert kinds == {"op", "input"}


def test_encode_is_a_fixed_one_hot_that_ignores_pair_order():
    a = SPACE.from_string(DARTS_V2)
    x = SPACE.encode(a)
    assert x.shape == (2, 14, 7) and x.dtype == np.float32 and x.sum() == 16
    assert x[0, EDGES.index((2, 5)), OPS.index("dil_conv_3x3")] == 1
    assert x.sum(axis=2).max() == 1  # at most one op per edge
    swapped = [PLAIN[1], PLAIN[0], *PLAIN[2:]]
    assert np.array_equal(SPACE.encode(arch(PLAIN)), SPACE.encode(arch(swapped)))
    other_node = arch([*PLAIN[:6], ("sep_conv_3x3", 2), PLAIN[7]])  # node 5 reads node 2, not c_{k-2}
    assert not np.array_equal(SPACE.encode(arch(PLAIN)), SPACE.encode(other_node))


# -- canonical -------------------------------------------------------------------------------------------
def test_canonical_merges_swapped_pairs_and_renumbered_nodes():
    base = arch(PLAIN)
    swapped = arch([PLAIN[1], PLAIN[0], *PLAIN[2:]])  # node 2's two pairs in the other order
    renumbered = arch([*PLAIN[2:4], *PLAIN[0:2], *PLAIN[4:]])  # nodes 2 and 3 exchanged (both read only 0, 1)
    reversed_nodes = arch(PLAIN[6:8] + PLAIN[4:6] + PLAIN[2:4] + PLAIN[0:2])
    assert len({base, swapped, renumbered, reversed_nodes}) == 4  # different strings ...
    assert len({SPACE.canonical(a) for a in (base, swapped, renumbered, reversed_nodes)}) == 1  # ... one class
    # renumbering with a dependency: node 3 reads node 2; exchanging them means node 2 reads node 3 -> relabel
    chain = [("sep_conv_3x3", 0), ("sep_conv_5x5", 1), ("skip_connect", 0), ("dil_conv_3x3", 2),
             ("max_pool_3x3", 1), ("avg_pool_3x3", 0), ("sep_conv_3x3", 3), ("sep_conv_3x3", 4)]
    # same DAG with the independent node 4 (reads 0, 1) numbered 2 and the chain shifted: 2->3, 3->4
    chain2 = [("avg_pool_3x3", 0), ("max_pool_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 1),
              ("skip_connect", 0), ("dil_conv_3x3", 3), ("sep_conv_3x3", 4), ("sep_conv_3x3", 2)]
    assert arch(chain) != arch(chain2) and SPACE.canonical(arch(chain)) == SPACE.canonical(arch(chain2))
    # the key is the Genotype text of a member of the class
    key = SPACE.canonical(arch(chain))
    assert SPACE.canonical(SPACE.from_string(key)) == key


def test_canonical_keeps_functionally_different_architectures_apart():
    base = arch(PLAIN)
    inputs_exchanged = arch([(op, 1 - j) for op, j in PLAIN])  # c_{k-2} and c_{k-1} are different feature maps
    cells_exchanged = SPACE.from_cells(PLAIN, SPACE.cells(SPACE.from_string(DARTS_V2))[0])
    v2 = SPACE.from_string(DARTS_V2)
    v2_cells_exchanged = SPACE.from_cells(SPACE.cells(v2)[1], SPACE.cells(v2)[0])
    op_moved = arch([("sep_conv_5x5", 0), ("sep_conv_3x3", 1), *PLAIN[2:]])  # ops exchanged between inputs
    chain = [("sep_conv_3x3", 0), ("sep_conv_5x5", 1), ("skip_connect", 0), ("dil_conv_3x3", 2),
             ("max_pool_3x3", 1), ("avg_pool_3x3", 0), ("sep_conv_3x3", 3), ("sep_conv_3x3", 4)]
    chain_other_source = chain[:3] + [("dil_conv_3x3", 1)] + chain[4:]  # node 3 reads c_{k-1}, not node 2
    pairs = [(base, inputs_exchanged), (base, op_moved), (v2, v2_cells_exchanged), (base, cells_exchanged),
             (arch(chain), arch(chain_other_source)), (v2, SPACE.from_string(DARTS_V1))]
    for a, b in pairs:
        assert SPACE.canonical(a) != SPACE.canonical(b), (a, b)


def test_canonical_is_invariant_on_random_relabelings():
    rng = np.random.default_rng(2)
    for _ in range(50):
        a = SPACE.sample(rng)
        cells = []
        for cell in SPACE.cells(a):
            pairs = [list(cell[2 * i: 2 * i + 2]) for i in range(4)]
            for p in pairs:
                if rng.random() < 0.5:
                    p.reverse()
            cells.append([x for p in pairs for x in p])
        b = SPACE.from_cells(*cells)
        assert SPACE.canonical(a) == SPACE.canonical(b)


# -- networks ---------------------------------------------------------------------------------------------
def test_darts_v2_parameter_count_is_the_official_codes():
    """DARTS_V2 (official cnn/genotypes.py) at C=36, layers=20, auxiliary=True, 10 classes.

    The official cnn/train.py logs ``param size = %fMB`` with utils.count_parameters_in_MB, which counts the
    parameters whose name lacks "auxiliary" (in millions); its log for DARTS_V2 reads ``param size =
    3.349342MB`` (quoted in an annotated copy of train.py in the code corpus; the DARTS paper rounds it to
    3.3M).  The same count here is 3,349,342 exactly.
    """
    net = SPACE.build(SPACE.from_string(DARTS_V2), 10, C=36, layers=20, auxiliary=True)
    count = sum(p.numel() for name, p in net.named_parameters() if "auxiliary" not in name)
    assert count == 3_349_342
    assert sum(p.numel() for p in net.auxiliary_head.parameters()) > 0  # the head exists, and is excluded
    same = SPACE.build(SPACE.from_string(DARTS_V2), 10, **SPACE.legacy_size(36, 6), auxiliary=True)  # 3 * 6 + 2
    assert sum(p.numel() for p in same.parameters()) == sum(p.numel() for p in net.parameters())


def test_network_structure_follows_network_cifar():
    net = SPACE.build(SPACE.from_string(DARTS_V2), 10, C=8, layers=8)
    assert isinstance(net, DartsNetwork) and len(net.cells) == 8
    assert [c.reduction for c in net.cells] == [False, False, True, False, False, True, False, False]
    assert net.stem[0].out_channels == 24  # 3C
    first_after_reduction = net.cells[3]
    assert type(first_after_reduction.preprocess0).__name__ == "FactorizedReduce"
    reduce = net.cells[2]
    assert type(reduce.ops[2]).__name__ == "Identity"  # skip_connect from node 2: stride 1
    reduce_v1 = SPACE.build(SPACE.from_string(DARTS_V1), 10, C=8, layers=8).cells[2]
    assert type(reduce_v1.ops[7]).__name__ == "AvgPool2d" and reduce_v1.ops[7].stride == 2
    normal_skip = net.cells[0].ops[5]
    assert isinstance(normal_skip, torch.nn.Identity)
    assert net.classifier.in_features == 4 * 32  # 4 nodes x 4C channels in the last stage


def test_size_is_c_and_layers_and_old_n_converts():
    a = SPACE.sample(np.random.default_rng(0))
    assert layers_for(1) == 5 and layers_for(2) == 8 and layers_for(6) == 20
    assert SPACE.default_size == {"C": 16, "layers": 8} and SPACE.resolve_size(scale="small") == {"C": 8, "layers": 5}
    assert SPACE.legacy_size(8, 1) == {"C": 8, "layers": 5}  # a store's C=8, N=1 of an earlier version
    assert len(SPACE.build(a, 10, C=4).cells) == 8  # default: the DARTS search network's 8 cells
    assert len(SPACE.build(a, 10, C=4, layers=3).cells) == 3
    with pytest.raises(ValueError, match="space 'darts' has no size parameter 'N'; its size parameters: C, layers"):
        SPACE.resolve_size({"C": 4, "N": 1})
    with pytest.raises(ValueError, match="size layers must be >= 3"):
        SPACE.resolve_size({"layers": 2})
    with pytest.raises(TypeError):
        SPACE.build(a, 10, C=4, N=1)
    with pytest.raises(ValueError, match="drop_path_prob must be a finite number >= 0 and < 1"):
        SPACE.build(a, 10, drop_path_prob=1.0)


def test_tiny_network_runs_on_8px_digits_and_trains_with_drop_path_and_the_auxiliary_head():
    a = SPACE.sample(np.random.default_rng(3))
    torch.manual_seed(0)
    net = SPACE.build(a, 10, in_channels=1, C=4, layers=5)  # 8x8 -> 4x4 -> 2x2
    x = torch.randn(4, 1, 8, 8)
    assert net.eval()(x).shape == (4, 10)
    net = SPACE.build(a, 10, C=4, layers=5, auxiliary=True, drop_path_prob=0.3)
    net.train()
    logits, aux = net(torch.randn(4, 3, 32, 32))  # the auxiliary head expects 8x8 maps: 32px input
    assert logits.shape == aux.shape == (4, 10)
    (logits.sum() + 0.4 * aux.sum()).backward()
    assert net.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)  # evaluation: logits only


def test_space_passes_the_conformance_suite():
    check_space(SPACE)


# -- searches -----------------------------------------------------------------------------------------------
TINY_DARTS = Protocol(schedule_epochs=2, batch_size=128, lr=0.05, device="cpu", size={"C": 4, "layers": 5})


def small_digits():
    """A quarter of the digits (a 5-cell DARTS network trains at about a third of NB201's speed at this size)."""
    return load_dataset("digits", n_train=288, n_val=72)


@pytest.mark.parametrize("strategy, kw", [("regularized-evolution", {"population_size": 3, "sample_size": 2}),
                                          ("random", {}), ("bo", {"initial_points": 2, "pool_size": 20,
                                                                  "fit_maxiter": 10})])
def test_query_based_searches_run_on_the_darts_space(strategy, kw):
    if strategy == "bo":
        pytest.importorskip("botorch", reason='bo needs BoTorch: pip install "nas-engine[bo]"')
    result = Search(create("strategy", strategy, **kw), "darts", create("estimator", "tse-ema", epochs=1),
                    data=small_digits(), protocol=TINY_DARTS, budget=Budget(evaluations=4), seed=0,
                    progress=False).run()
    assert len(result.history) == 4 and all(e.status == "ok" for e in result.history)
    assert all(e.arch.space_name == "darts" for e in result.history)
    assert np.isfinite(result.best.score)


def test_cli_searches_the_darts_space_with_the_size_options(capsys):
    from nas_engine.cli import main

    assert main(["search", "--space", "darts", "--strategy", "random", "--estimator", "tse-ema", "--data", "digits",
                 "--n-train", "288", "--n-val", "72",
                 "--evaluations", "2", "--epochs", "1", "--C", "4", "--size", "layers=5", "--batch-size", "128",
                 "--device", "cpu", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["evaluations"]) == 2 and out["best"]["arch"].startswith("Genotype(normal=[")
    assert SPACE.from_string(out["best"]["arch"]).string == out["best"]["arch"]


# -- the supernet ---------------------------------------------------------------------------------------------
def tiny_supernet(seed=0, **size):
    torch.manual_seed(seed)
    return SPACE.supernet(10, in_channels=1, **({"C": 4, "layers": 5} | size))


def test_supernet_layout_follows_the_search_network():
    net = SPACE.supernet(10, C=4)  # default: 8 cells, the DARTS search network's depth
    assert isinstance(net, DartsSupernet) and len(net.cells) == 8 and net.size == {"C": 4, "layers": 8}
    assert [c.reduction for c in net.cells] == [False, False, True, False, False, True, False, False]
    assert net.stem[0].out_channels == 12 and net.classifier.in_features == 4 * 16
    assert type(net.cells[3].preprocess0).__name__ == "FactorizedReduce"
    for cell in net.cells:
        assert len(cell.edges) == len(EDGES) and all(tuple(edge) == OPS for edge in cell.edges)
        for (j, _), edge in zip(EDGES, cell.edges):  # ops reading a cell input of a reduction cell: stride 2
            stride = 2 if cell.reduction and j < 2 else 1
            assert edge["max_pool_3x3"].stride == stride
            assert type(edge["skip_connect"]).__name__ == ("FactorizedReduce" if stride == 2 else "Identity")
    # every cell position has its own weights (normal and reduction cells alike)
    assert net.cells[0].edges[0]["sep_conv_3x3"][1].weight is not net.cells[1].edges[0]["sep_conv_3x3"][1].weight
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.affine and not m.track_running_stats for m in bns)
    assert SPACE.supernet(10, C=2).layers == 8 and SPACE.supernet(10, C=2, layers=5).layers == 5
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1, got 0"):
        SPACE.supernet(0)
    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match="unknown op 'conv'"):
        tiny_supernet()(x, [[("conv", 0)] * 8, PLAIN])
    with pytest.raises(ValueError, match="a DARTS supernet path is an architecture of the space"):
        tiny_supernet()(x, "sep_conv_3x3")


def test_extract_is_the_evaluation_network_computing_the_supernet_path():
    net = tiny_supernet().eval()  # layers=5: cells 1 and 3 reduce, so both cells of each path run
    x = torch.randn(16, 1, 8, 8)
    rng = np.random.default_rng(0)
    archs = [SPACE.from_string(DARTS_V2), SPACE.from_string(DARTS_V1), arch(PLAIN)] + \
        [SPACE.sample(rng) for _ in range(4)]
    shared = {p.data_ptr() for p in net.parameters()}
    for a in archs:
        sub = net.extract(a).eval()
        assert isinstance(sub, DartsNetwork) and sub.drop_path_prob == 0 and not sub.auxiliary
        torch.testing.assert_close(sub(x), net(x, a), rtol=0, atol=1e-6)
        torch.testing.assert_close(sub(x), net(x, SPACE.cells(a)), rtol=0, atol=1e-6)  # a path given as cells
        assert not any(p.data_ptr() in shared for p in sub.parameters())  # copies
        fresh = DartsNetwork(SPACE.cells(a), 10, C=4, layers=5, in_channels=1, affine=False,
                             track_running_stats=False)
        assert sum(p.numel() for p in sub.parameters()) == sum(p.numel() for p in fresh.parameters())
        # each pair's op holds the weights of the supernet module of that op on that edge of that cell position
        for c, (cell, sub_cell) in enumerate(zip(net.cells, sub.cells)):
            for k, (op, j) in enumerate(SPACE.cells(a)[1 if cell.reduction else 0]):
                module = cell.edges[EDGES.index((j, 2 + k // 2))][op]
                assert type(module) is type(sub_cell.ops[k])
                mine = sub_cell.ops[k].state_dict()
                assert mine.keys() == module.state_dict().keys()
                assert all(torch.equal(mine[key], v) for key, v in module.state_dict().items()), (c, k)


def test_weight_sharing_is_real():
    """A gradient step through path A changes the op module path B reads on a shared edge, and B's output."""
    net = tiny_supernet()
    normal_b = list(PLAIN)
    normal_b[1] = ("dil_conv_5x5", 1)  # B differs from A only in the second op of node 2 of the normal cell
    a, b = arch(PLAIN), arch(normal_b)
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    out_b = net(x, b).detach()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    F.cross_entropy(net(x, a), y).backward()
    opt.step()
    after = net.state_dict()
    shared = f"cells.0.edges.{EDGES.index((0, 2))}.sep_conv_3x3.1.weight"  # used by A and B
    assert not torch.equal(before[shared], after[shared])
    unused = f"cells.0.edges.{EDGES.index((1, 2))}.dil_conv_5x5.1.weight"  # B's own op on that edge
    assert torch.equal(before[unused], after[unused])
    off_path = f"cells.0.edges.{EDGES.index((2, 3))}.sep_conv_3x3.1.weight"  # an edge A does not use
    assert torch.equal(before[off_path], after[off_path])
    assert not torch.allclose(net(x, b), out_b)


TINY_ONESHOT = {"epochs": 1, "finetune_batches": 5}


@pytest.mark.parametrize("strategy, kw", [("spos", {"population_size": 3, "sample_size": 2}), ("randnas", {})])
def test_one_shot_searches_run_on_the_darts_space(strategy, kw):
    result = Search(create("strategy", strategy, **TINY_ONESHOT, **kw), "darts", create("estimator", "tse", epochs=1),
                    data=small_digits(), protocol=TINY_DARTS, budget=Budget(evaluations=3), seed=0,
                    progress=False).run()
    assert len(result.history) == 3 and all(e.ok and e.arch.space_name == "darts" for e in result.history)
    assert all(e.curve.info["source"] == "fine-tuned" and e.curve.info["inherited_from"] == strategy
               for e in result.history)
    assert result.setup_seconds > 0 and np.isfinite(result.best.score)


@pytest.mark.parametrize("sampler, meta", [(uniform_paths(2), {}), (uniform_paths(1), {"inner_steps": 2}),
                                           (uniform_paths(1), {"inner_steps": 2, "prox": 10.0})],
                         ids=["multipath", "reptile", "metaprox"])
def test_the_other_supernet_trainings_step_the_darts_supernet(sampler, meta):
    """multipath's k paths per step and the meta-learning step (reptile, metaprox) train the DARTS supernet too."""
    net = tiny_supernet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    proto = TINY_DARTS.replace(schedule_epochs=1, batch_size=2000,
                               augment=False)  # one step on the whole training split
    trainer = SupernetTrainer(net, SPACE, load_dataset("digits"), proto, sampler, seed=0, **meta)
    assert np.isfinite(trainer.train_epoch()) and trainer.paths_trained == (2 if not meta else 1)
    assert not torch.equal(before["stem.0.weight"], net.state_dict()["stem.0.weight"])


def test_fairnas_is_refused_on_darts_for_lack_of_fixed_edge_ops():
    """FairNAS's strict fairness (every op on every edge once per step) needs a path per op assignment; a
    DARTS node also chooses its inputs, so the space does not offer FixedEdgeOps (see docs/oneshot.md)."""
    with pytest.raises(TypeError, match="needs a search space with the FixedEdgeOps capability; space 'darts'"):
        Search("fairnas", "darts", create("estimator", "tse-ema", epochs=1), data="digits", protocol=TINY_DARTS,
               budget=Budget(evaluations=1), progress=False).run()


def test_inherited_weights_cross_to_workers_as_one_buffer():
    """A DARTS supernet has hundreds of tensors; sent to worker processes tensor by tensor (one file
    descriptor each) it failed with "too many fds" (the docs' SPOS-on-DARTS search runs it through worker
    processes): it travels as one bytes object, weights intact."""
    from multiprocessing.reduction import ForkingPickler

    from nas_engine.context import FineTuning
    from nas_engine.strategies.oneshot.base import InheritedWeights

    net = SPACE.supernet(10, C=4, layers=5)
    assert len(net.state_dict()) > 253  # more than one message may carry as file descriptors
    weights = InheritedWeights(net, FineTuning(Protocol(schedule_epochs=1, size={"C": 4, "N": 1}), 2), "spos")
    assert isinstance(weights.__getstate__()["supernet"], bytes)
    back = pickle.loads(ForkingPickler.dumps(weights))
    arch = SPACE.sample(np.random.default_rng(0))
    a, b = weights.initial_weights(arch).state_dict(), back.initial_weights(arch).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_factorized_reduce_is_two_offset_stride_2_convs_and_trains_channels_last_with_few_channels():
    """FactorizedReduce subsamples and runs stride-1 1x1 convs: the same function as DARTS's two stride-2 1x1
    convs (checked against them in NCHW), and its backward on a channels_last input with 4 input channels
    (below oneDNN's channel block) runs: the stride-2 form corrupts the heap there (oneDNN issue 6035)."""
    from nas_engine.spaces.darts import FactorizedReduce

    torch.manual_seed(0)
    m = FactorizedReduce(4, 6)
    x = torch.randn(8, 4, 8, 8, requires_grad=True)
    out = m(x)
    r = F.relu(x)
    ref = m.bn(torch.cat([F.conv2d(r, m.conv_1.weight, stride=2),
                          F.conv2d(r[:, :, 1:, 1:], m.conv_2.weight, stride=2)], 1))
    assert out.shape == (8, 6, 4, 4)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, [x, m.conv_1.weight, m.conv_2.weight], g)
    want = torch.autograd.grad(ref, [x, m.conv_1.weight, m.conv_2.weight], g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
    m.to(memory_format=torch.channels_last)
    for _ in range(10):
        xc = torch.randn(64, 4, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_(True)
        gw = torch.autograd.grad(m(xc).square().sum(), [m.conv_1.weight, m.conv_2.weight])
        assert all(torch.isfinite(w).all() for w in gw)
