"""Tests of the NAS-Bench-101 search space (nas_engine.spaces.nb101)."""

from __future__ import annotations

import json
import os
import pickle
from collections import Counter
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nas_engine.registry import create, spaces
from nas_engine.spaces.base import Encodable, Enumerable, Mutable, SearchSpace
from nas_engine.spaces.nb101 import (
    CONV1X1,
    CONV3X3,
    INPUT,
    MAX_EDGES,
    MAXPOOL3X3,
    OPS,
    OUTPUT,
    NB101Cell,
    NB101Space,
    compute_vertex_channels,
    hash_module,
)
from nas_engine.testing import check_plugin, check_space

SPACE = NB101Space()
SHARED_DATA = Path(os.environ.get("NAS_ENGINE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
PEER_FILE = SHARED_DATA / "peer-reference" / "naslib_zc_nasbench101.json"

# The Inception-like cell of the benchmark's README / api.py docstring; the README prints its query result:
# pruned to a 7-vertex cell with trainable_parameters 2694282.
README_MATRIX = [[0, 1, 1, 1, 0, 1, 0],
                 [0, 0, 0, 0, 0, 0, 1],
                 [0, 0, 0, 0, 0, 0, 1],
                 [0, 0, 0, 0, 1, 0, 0],
                 [0, 0, 0, 0, 0, 0, 1],
                 [0, 0, 0, 0, 0, 0, 1],
                 [0, 0, 0, 0, 0, 0, 0]]
README_OPS = [INPUT, CONV1X1, CONV3X3, CONV3X3, CONV3X3, MAXPOOL3X3, OUTPUT]
README_PARAMS = 2694282

# cells of NASLib's zero-cost file (raw, unpruned specs, as NASLib samples them) with the params it records
# (millions with 6 decimals, i.e. exact counts): the one already-pruned 7-vertex cell, the largest and the
# smallest network of the file (both prune to 6 vertices), and a raw spec that prunes to input -> output.
PEER_CELLS = {
    "(0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, "
    "0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 3, 2, 3, 3, 4, 1)": 1.966891,
    "(0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, "
    "0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 4, 4, 4, 1)": 30.679178,
    "(0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, "
    "0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 3, 2, 2, 2, 2, 1)": 0.29313,
    "(0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, "
    "0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 4, 4, 3, 2, 1)": 0.88257,
}

CHAIN = "0100/0010/0001/0000:conv3x3-bn-relu,maxpool3x3"  # input -> conv3 -> pool -> output
TINY = {"stem_channels": 4, "stacks": 2, "cells_per_stack": 1}


def param_count(arch, **size) -> int:
    """Parameters of ``build(arch, 10)`` without allocating them (meta device)."""
    with torch.device("meta"):
        net = SPACE.build(arch, 10, **size)
    return sum(p.numel() for p in net.parameters())


def permuted(arch, pick):
    """An isomorphic copy of ``arch``: its vertices renumbered along a random topological order (the
    relabellings that keep the matrix upper triangular); ``pick(candidates)`` chooses the next vertex."""
    m, ops = SPACE.spec(arch)
    n = len(ops)
    order: list[int] = []
    while len(order) < n:
        ready = [v for v in range(n) if v not in order and all(u in order for u in np.flatnonzero(m[:, v]))]
        order.append(pick(ready))
    new = m[np.ix_(order, order)]
    return SPACE.from_spec(new, [ops[v] for v in order])


def rng_pick(rng):
    return lambda candidates: candidates[int(rng.integers(len(candidates)))]


@pytest.fixture(scope="module")
def peer() -> dict:
    if not PEER_FILE.is_file():
        pytest.skip(f"NAS-Bench-101 peer file not found: {PEER_FILE} (set NAS_ENGINE_SHARED_DATA)")
    return json.loads(PEER_FILE.read_text())["nasbench101"]["cifar10"]


# -- identity, registry --------------------------------------------------------------------------
def test_registered_and_capabilities():
    assert spaces.get("nb101") is NB101Space and create("space", "nb101") == SPACE
    assert isinstance(SPACE, (SearchSpace, Mutable, Encodable)) and not isinstance(SPACE, Enumerable)
    assert SPACE.name == "nb101" and SPACE.default_size == {"stem_channels": 128, "stacks": 3, "cells_per_stack": 3}
    assert OPS == (CONV3X3, CONV1X1, MAXPOOL3X3)


# -- specs, pruning, strings ---------------------------------------------------------------------
def test_readme_cell_prunes_nothing_and_round_trips():
    a = SPACE.from_spec(README_MATRIX, README_OPS)
    m, ops = SPACE.spec(a)
    assert m.tolist() == README_MATRIX and ops == README_OPS
    assert a.string == ("0111010/0000001/0000001/0000100/0000001/0000001/0000000:"
                        "conv1x1-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,maxpool3x3")
    assert SPACE.from_string(a.string) == a and SPACE.to_string(a) == str(a) == a.string
    assert pickle.loads(pickle.dumps(a)) == a


def test_pruning_removes_vertices_off_every_input_output_path():
    # vertex 2 is not reachable from the input, vertex 3 does not reach the output
    m = [[0, 1, 0, 1, 0],
         [0, 0, 0, 0, 1],
         [0, 0, 0, 0, 1],
         [0, 0, 0, 0, 0],
         [0, 0, 0, 0, 0]]
    a = SPACE.from_spec(m, [INPUT, CONV3X3, CONV1X1, MAXPOOL3X3, OUTPUT])
    assert a.string == "010/001/000:conv3x3-bn-relu"
    # the string form holds pruned cells only
    with pytest.raises(ValueError, match=r"is not pruned: 2 vertex\(es\) lie on no input-output path.*010/001/000"):
        SPACE.from_string("01010/00001/00001/00000/00000:conv3x3-bn-relu,conv1x1-bn-relu,maxpool3x3")
    # pruning happens before the edge limit: 10 raw edges, 3 after pruning
    m = np.triu(np.ones((7, 7), dtype=int), 1)
    m[:, 6] = 0
    m[0, 6] = 1
    m[0, 1] = 1
    assert m.sum() > MAX_EDGES
    assert SPACE.from_spec(m, [INPUT, *[CONV3X3] * 5, OUTPUT]).string == "01/00:"


def test_input_to_output_only_cell():
    a = SPACE.from_string("01/00:")
    assert SPACE.spec(a)[1] == [INPUT, OUTPUT] and SPACE.to_naslib(a) == (0, 1, 0, 0, 0, 1)
    out = SPACE.build(a, 10, **TINY)(torch.randn(2, 3, 8, 8))
    assert out.shape == (2, 10)


@pytest.mark.parametrize("matrix, ops, message", [
    ([[0, 1], [0, 0]], [INPUT, CONV3X3], r"must start with 'input' and end with 'output'"),
    ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [INPUT, "conv5x5", OUTPUT], r"unknown op 'conv5x5' at vertex 1; valid ops"),
    ([[0, 1, 0], [0, 0, 1], [1, 0, 0]], [INPUT, CONV3X3, OUTPUT], r"upper triangular .* row 2, column 0"),
    ([[0, 1, 0], [0, 1, 1], [0, 0, 0]], [INPUT, CONV3X3, OUTPUT], r"upper triangular .* row 1, column 1"),
    ([[0, 1, 0], [0, 0, 0], [0, 0, 0]], [INPUT, CONV3X3, OUTPUT], r"input \(vertex 0\) is not connected to the output"),
    ([[0, 2], [0, 0]], [INPUT, OUTPUT], r"entries must be 0 or 1, got \[0, 2\]"),
    ([[0, 1, 1], [0, 0, 1]], [INPUT, CONV3X3, OUTPUT], r"must be square .* got shape \(2, 3\)"),
    ([[0, 1], [0, 0]], [INPUT, CONV3X3, OUTPUT], r"one op label per vertex: matrix has 2 vertices, got 3"),
    (np.triu(np.ones((8, 8), dtype=int), 1), [INPUT, *[CONV3X3] * 6, OUTPUT], r"8 vertices after pruning; at most 7"),
    (np.triu(np.ones((7, 7), dtype=int), 1), [INPUT, *[CONV3X3] * 5, OUTPUT], r"21 edges after pruning; at most 9"),
])
def test_invalid_specs_name_the_rule(matrix, ops, message):
    with pytest.raises(ValueError, match=message) as info:
        SPACE.from_spec(matrix, ops)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text, message", [
    ("\u2603 not an architecture", r"exactly one ':'"),
    ("01/00", r"exactly one ':'"),
    ("01/00::", r"exactly one ':'"),
    ("01:", r"2 to 7 adjacency rows .* got 1"),
    ("0/0/0/0/0/0/0/0:", r"2 to 7 adjacency rows .* got 8"),
    ("010/01/000:conv3x3-bn-relu", r"adjacency row 1 '01' must be 3 digits 0/1"),
    ("010/0x1/000:conv3x3-bn-relu", r"adjacency row 1 '0x1' must be 3 digits"),
    ("010/001/000:", r"3 vertices must list 1 intermediate op\(s\) after ':', got 0"),
    ("010/001/000:conv3x3", r"unknown op 'conv3x3' at vertex 1"),
    ("010/001/100:conv3x3-bn-relu", r"upper triangular"),
    ("010/000/000:conv3x3-bn-relu", r"not connected to the output"),
])
def test_from_string_rejects_malformed_text(text, message):
    with pytest.raises(ValueError, match=message) as info:
        SPACE.from_string(text)
    assert "\n" not in str(info.value)
    with pytest.raises(TypeError):
        SPACE.from_string(None)


def test_graph_round_trip():
    a = SPACE.from_spec(README_MATRIX, README_OPS)
    g = SPACE.to_graph(a)
    assert isinstance(g, nx.DiGraph) and sorted(g.nodes) == list(range(7)) and g.number_of_edges() == 9
    assert [g.nodes[v]["op"] for v in range(7)] == README_OPS and nx.is_directed_acyclic_graph(g)
    assert SPACE.from_graph(g) == a
    g.nodes[3]["op"] = "conv7x7"
    with pytest.raises(ValueError, match="unknown op 'conv7x7' at vertex 3"):
        SPACE.from_graph(g)
    with pytest.raises(ValueError, match="must have vertices 0..V-1"):
        SPACE.from_graph(nx.relabel_nodes(SPACE.to_graph(a), {0: "in"}))


def test_naslib_encoding_both_ways():
    a = SPACE.from_spec(README_MATRIX, README_OPS)
    code = SPACE.to_naslib(a)
    assert len(code) == 56 and code[49:] == (0, 3, 4, 4, 4, 2, 1)
    assert SPACE.from_naslib(code) == a and SPACE.from_naslib(str(code)) == a and SPACE.from_naslib(list(code)) == a
    for bad, message in [((0, 1, 0), r"V\*V \+ V ints"), ("(0, 1, 0, 0, 0, 9)", r"op index 9 out of range"),
                         ("not a tuple", "must be a tuple of ints"), ((0.5,) * 6, "sequence of ints")]:
        with pytest.raises(ValueError, match=message):
            SPACE.from_naslib(bad)


def test_every_peer_cell_converts_both_ways(peer):
    """NASLib's keys are raw (unpruned) specs; each converts to the same cell as the benchmark spec it
    encodes, and the architecture's own NASLib code, string and graph round trip."""
    assert len(peer) == 500
    for key in peer:
        code = [int(x) for x in key.strip("()").split(",")]
        matrix = np.array(code[:49]).reshape(7, 7)
        ops = [("input", "output", "maxpool3x3", "conv1x1-bn-relu", "conv3x3-bn-relu")[k] for k in code[49:]]
        a = SPACE.from_naslib(key)
        assert a == SPACE.from_spec(matrix, ops)
        assert SPACE.from_naslib(SPACE.to_naslib(a)) == a
        assert SPACE.from_string(a.string) == a and SPACE.from_graph(SPACE.to_graph(a)) == a
        m, labels = SPACE.spec(a)
        assert m.sum() <= 9 and len(labels) <= 7


# -- hashing -------------------------------------------------------------------------------------
def test_hash_is_the_benchmarks_hash_module():
    # a hand-computed case: the 2-vertex cell input -> output, following graph_util.hash_module's text
    import hashlib

    def md5(s):
        return hashlib.md5(s.encode()).hexdigest()

    h = [md5(str((1, 0, -1))), md5(str((0, 1, -2)))]
    for _ in range(2):
        h = [md5("|" + h[1] + "|" + h[0]), md5(h[0] + "||" + h[1])]
    assert SPACE.canonical(SPACE.from_string("01/00:")) == md5(str(sorted(h)))
    assert hash_module(np.array([[0, 1], [0, 0]]), [-1, -2]) == md5(str(sorted(h)))


def test_isomorphic_cells_hash_equal_and_near_misses_differ():
    # two parallel branches conv3 / conv1, listed in either order
    a = SPACE.from_string("0110/0001/0001/0000:conv3x3-bn-relu,conv1x1-bn-relu")
    b = SPACE.from_string("0110/0001/0001/0000:conv1x1-bn-relu,conv3x3-bn-relu")
    assert a != b and SPACE.canonical(a) == SPACE.canonical(b)
    # near misses: one op changed, one edge added, one edge moved, the chain reversed
    near = ["0110/0001/0001/0000:conv3x3-bn-relu,conv3x3-bn-relu",
            "0111/0001/0001/0000:conv3x3-bn-relu,conv1x1-bn-relu",
            "0110/0011/0001/0000:conv3x3-bn-relu,conv1x1-bn-relu",
            "0100/0011/0001/0000:conv3x3-bn-relu,conv1x1-bn-relu"]
    keys = {SPACE.canonical(a)} | {SPACE.canonical(SPACE.from_string(s)) for s in near}
    assert len(keys) == 1 + len(near)
    c1 = SPACE.from_string("0100/0010/0001/0000:conv3x3-bn-relu,conv1x1-bn-relu")
    c2 = SPACE.from_string("0100/0010/0001/0000:conv1x1-bn-relu,conv3x3-bn-relu")
    assert SPACE.canonical(c1) != SPACE.canonical(c2)  # order along a chain matters
    # the README cell: every relabelling of its 5 intermediate vertices hashes alike
    r = SPACE.from_spec(README_MATRIX, README_OPS)
    rng = np.random.default_rng(0)
    copies = {permuted(r, rng_pick(rng)) for _ in range(30)}
    assert len(copies) > 5  # really different specs
    assert {SPACE.canonical(p) for p in copies} == {SPACE.canonical(r)}
    # one op or one edge away from the README cell: different
    m, ops = SPACE.spec(r)
    for v in range(1, 6):
        for op in OPS:
            if op != ops[v]:
                assert SPACE.canonical(SPACE.from_spec(m, [*ops[:v], op, *ops[v + 1:]])) != SPACE.canonical(r)
    for i, j in zip(*np.triu_indices(7, 1)):
        flipped = m.copy()
        flipped[i, j] = 1 - flipped[i, j]
        try:
            other = SPACE.from_spec(flipped, ops)
        except ValueError:
            continue
        assert SPACE.canonical(other) != SPACE.canonical(r), (i, j)


def test_permuted_copies_of_every_peer_cell_hash_equal(peer):
    rng = np.random.default_rng(0)
    accuracies: dict[str, set[float]] = {}
    strings: dict[str, set[str]] = {}
    for key, entry in peer.items():
        a = SPACE.from_naslib(key)
        h = SPACE.canonical(a)
        for _ in range(3):
            assert SPACE.canonical(permuted(a, rng_pick(rng))) == h, key
        accuracies.setdefault(h, set()).add(entry["val_accuracy"])
        strings.setdefault(h, set()).add(a.string)
    # NASLib samples raw specs, many of which prune to the same small cells: 292 distinct cells by hash
    # (55 copies of input -> output alone), 9 of them reached as two different isomorphic specs
    assert len(accuracies) == 292 and sum(len(s) > 1 for s in strings.values()) == 9
    # NASLib records one of the benchmark's 3 training repeats of a cell: a hash never merges entries with
    # more than 3 different accuracies (it merges only copies of one benchmark cell)
    assert max(len(acc) for acc in accuracies.values()) == 3


# -- sampling, mutation, encoding ------------------------------------------------------------------
def test_sample_is_valid_deterministic_and_varied():
    archs = [SPACE.sample(np.random.default_rng(i)) for i in range(200)]
    assert SPACE.sample(np.random.default_rng(3)) == archs[3]
    for a in archs:
        m, ops = SPACE.spec(a)
        assert SPACE.from_string(a.string) == a and m.sum() <= 9 and 2 <= len(ops) <= 7
    # the benchmark's generator favours small cells (many raw specs prune to the same one)
    assert len({SPACE.canonical(a) for a in archs}) > 100
    assert {len(SPACE.ops(a)) for a in archs} >= {2, 3, 4, 5, 6}


def test_sample_matches_naslibs_sampling_of_the_peer_cells(peer):
    """NASLib drew its 500 cells with the benchmark's generator: same distribution of pruned sizes."""
    rng = np.random.default_rng(0)
    ours = Counter(len(SPACE.ops(SPACE.sample(rng))) for _ in range(2000))
    theirs = Counter(len(SPACE.ops(SPACE.from_naslib(k))) for k in peer)
    for n in range(2, 8):  # 3 standard errors of the peer's 500-cell frequencies
        assert abs(ours[n] / 2000 - theirs[n] / 500) < 0.06, (n, ours, theirs)


def test_mutate_gives_a_valid_different_cell_over_many_seeds():
    rng = np.random.default_rng(0)
    a = SPACE.from_string("01/00:")  # the smallest cell can only grow
    for seed in range(300):
        m = SPACE.mutate(a, np.random.default_rng(seed))
        assert m != a and SPACE.canonical(m) != SPACE.canonical(a)
        assert SPACE.from_string(m.string) == m
        a = m if rng.random() < 0.8 else SPACE.sample(rng)
    assert SPACE.mutate(a, np.random.default_rng(5)) == SPACE.mutate(a, np.random.default_rng(5))


def test_encode_fixed_length_one_hot():
    a = SPACE.from_spec(README_MATRIX, README_OPS)
    e = SPACE.encode(a)
    assert e.shape == (36,) and e.dtype == np.float32
    assert e[:21].sum() == 9 and e[21:].reshape(5, 3).sum(axis=1).tolist() == [1] * 5
    assert e[21:24].tolist() == [0, 1, 0]  # vertex 1: conv1x1 (OPS order conv3x3, conv1x1, maxpool3x3)
    small = SPACE.encode(SPACE.from_string(CHAIN))
    assert small.shape == (36,) and small[21:].reshape(5, 3).sum(axis=1).tolist() == [1, 1, 0, 0, 0]
    # chain 0 -> 1 -> 2 -> output (padded to vertex 6): upper-triangular entries (0,1), (1,2), (2,6)
    iu = list(zip(*np.triu_indices(7, 1)))
    assert {iu[k] for k in np.flatnonzero(small[:21])} == {(0, 1), (1, 2), (2, 6)}


# -- networks ------------------------------------------------------------------------------------
def test_vertex_channels_follow_the_benchmark():
    # README cell at 128 channels: 4 vertices feed the output (32 each); vertex 3 feeds only vertex 4
    m = np.array(README_MATRIX)
    assert compute_vertex_channels(64, 128, m) == [64, 32, 32, 32, 32, 32, 128]
    # 3 vertices into the output, 128 = 43 + 43 + 42; vertex 1 feeds vertex 2 (43) and 3 (42): 43
    m = np.array([[0, 1, 0, 0, 0], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0] * 5])
    assert compute_vertex_channels(128, 128, m) == [128, 43, 43, 42, 128]
    # below the benchmark's widths a vertex keeps at least one channel
    assert compute_vertex_channels(2, 2, m) == [2, 1, 1, 1, 2]


def test_cell_truncates_concatenates_and_projects():
    m = np.array([[0, 1, 0, 0, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0] * 5])
    cell = NB101Cell(m, [INPUT, CONV3X3, MAXPOOL3X3, CONV1X1, OUTPUT], 6, 8)
    assert cell.vertex_channels == [6, 3, 3, 2, 8] and cell.out_channels == 8
    assert set(cell.projections) == {"1"} and cell.output_projection is not None
    x = torch.randn(2, 6, 5, 5)
    cell.eval()
    with torch.no_grad():
        out = cell(x)
        v1 = cell.ops["1"](cell.projections["1"](x))
        v2 = cell.ops["2"](v1)
        v3 = cell.ops["3"](v1[:, :2])  # vertex 1 (3 channels) truncated to vertex 3's 2
        expect = torch.cat([v1, v2, v3], 1) + cell.output_projection(x)
    assert out.shape == (2, 8, 5, 5) and torch.allclose(out, expect)


def test_build_forward_at_a_tiny_size():
    for s in ("01/00:", CHAIN):
        net = SPACE.build(SPACE.from_string(s), 7, in_channels=1, **TINY)
        assert net(torch.randn(3, 1, 8, 8)).shape == (3, 7)
    a = SPACE.from_spec(README_MATRIX, README_OPS)
    net = SPACE.build(a, 10, stem_channels=8, stacks=3, cells_per_stack=1)
    out = net(torch.randn(2, 3, 9, 9))  # odd sizes: 9 -> 5 -> 3, as TF's 'same' max-pooling
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    bn = next(mod for mod in net.modules() if isinstance(mod, torch.nn.BatchNorm2d))
    assert bn.momentum == pytest.approx(0.003) and bn.eps == 1e-5
    # the space's own size names; an earlier version's C / N were the stem width and cells per stack
    assert SPACE.legacy_size(8, 2) == {"stem_channels": 8, "stacks": 3, "cells_per_stack": 2}
    assert SPACE.resolve_size({"stacks": 2}, scale="small") == {"stem_channels": 16, "stacks": 2, "cells_per_stack": 1}
    with pytest.raises(ValueError, match="space 'nb101' has no size parameter 'C'; its size parameters: "
                                         "stem_channels, stacks, cells_per_stack"):
        SPACE.resolve_size({"C": 16})
    with pytest.raises(ValueError, match="stacks must be an integer >= 1, got 0"):
        SPACE.build(a, 10, stacks=0)


def test_bn_momentum_is_configurable_and_round_trips():
    from nas_engine.registry import from_config

    a = SPACE.from_string(CHAIN)
    fast = create("space", "nb101", bn_momentum=0.1)
    net = fast.build(a, 10, **TINY)
    momenta = {mod.momentum for mod in net.modules() if isinstance(mod, torch.nn.BatchNorm2d)}
    assert momenta == {0.1}
    assert from_config("space", fast.to_config()).bn_momentum == 0.1 and SPACE.bn_momentum == pytest.approx(0.003)
    # the same parameters, only the running statistics' averaging differs
    assert param_count(a, **TINY) == sum(p.numel() for p in net.parameters())
    for bad in (0, 1.5, "0.1", True):
        with pytest.raises(ValueError, match=r"bn_momentum must be a number in \(0, 1\].*got"):
            create("space", "nb101", bn_momentum=bad)


def test_build_at_the_smallest_widths_stays_consistent():
    """At widths below a cell's output fan-in (TINY protocols) a cell still builds and runs."""
    a = SPACE.from_string("011110/000001/000001/000001/000001/000000:" + ",".join([CONV3X3] * 4))
    net = SPACE.build(a, 10, stem_channels=2, cells_per_stack=2, stacks=2)
    assert [cell.out_channels for cell in net.layers if isinstance(cell, NB101Cell)] == [4, 4, 8, 8]
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_parameter_count_equals_the_benchmarks_readme_cell():
    assert param_count(SPACE.from_spec(README_MATRIX, README_OPS)) == README_PARAMS


@pytest.mark.parametrize("key", list(PEER_CELLS))
def test_parameter_count_equals_naslib_for_known_cells(key):
    assert param_count(SPACE.from_naslib(key)) == round(PEER_CELLS[key] * 1e6)


def test_parameter_count_equals_naslib_for_every_peer_cell(peer):
    """NASLib's ``params`` are millions with 6 decimals, i.e. exact counts: all 500 must match exactly."""
    counts: dict[str, int] = {}  # the 500 keys are 292 cells: each network is built once
    archs = {k: SPACE.from_naslib(k) for k in peer}
    ours = {k: counts[a.string] if a.string in counts else counts.setdefault(a.string, param_count(a))
            for k, a in archs.items()}
    wrong = [(k, ours[k], v["params"]) for k, v in peer.items() if ours[k] != round(v["params"] * 1e6)]
    assert not wrong, wrong[:3]
    assert min(ours.values()) == 293_130 and max(ours.values()) == 30_679_178


# -- conformance -----------------------------------------------------------------------------------
def test_conformance():
    check_space(SPACE)
    check_plugin("space", "nb101")


# -- properties (hypothesis) -------------------------------------------------------------------------
vertex_count = st.integers(min_value=2, max_value=8)


@st.composite
def raw_specs(draw):
    """Any square 0/1 matrix (upper triangular or not) with labels mostly from the space."""
    n = draw(vertex_count)
    bits = draw(st.lists(st.integers(0, 1), min_size=n * n, max_size=n * n))
    matrix = np.array(bits).reshape(n, n)
    if draw(st.booleans()):
        matrix = np.triu(matrix, 1)
    labels = [draw(st.sampled_from([INPUT, *OPS, OUTPUT, "conv5x5"])) for _ in range(n)]
    if draw(st.integers(0, 9)):
        labels[0], labels[-1] = INPUT, OUTPUT
    return matrix, labels


RULES = ("upper triangular", "unknown op", "must start with 'input'", "not connected to the output",
         "edges after pruning; at most 9", "vertices after pruning; at most 7")


@settings(max_examples=400, deadline=None)
@given(raw_specs())
def test_any_spec_is_valid_or_rejected_naming_the_rule(spec):
    matrix, labels = spec
    try:
        a = SPACE.from_spec(matrix, labels)
    except ValueError as exc:
        assert "\n" not in str(exc) and any(rule in str(exc) for rule in RULES), str(exc)
        return
    m, ops = SPACE.spec(a)
    assert m.sum() <= 9 and len(ops) <= 7 and SPACE.from_string(a.string) == a
    g = SPACE.to_graph(a)
    assert all(nx.has_path(g, 0, v) and nx.has_path(g, v, len(ops) - 1) for v in g)  # pruned


archs = st.integers(0, 2**32 - 1).map(lambda seed: SPACE.sample(np.random.default_rng(seed)))


@settings(max_examples=150, deadline=None)
@given(archs, st.integers(0, 2**32 - 1))
def test_mutants_are_valid_and_different(a, seed):
    m = SPACE.mutate(a, np.random.default_rng(seed))
    assert SPACE.from_string(m.string) == m and SPACE.canonical(m) != SPACE.canonical(a)


@settings(max_examples=150, deadline=None)
@given(archs, st.randoms(use_true_random=False))
def test_canonical_equal_on_isomorphic_relabellings(a, random):
    assert SPACE.canonical(permuted(a, random.choice)) == SPACE.canonical(a)
