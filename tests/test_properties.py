"""Property tests (hypothesis) over the NB201 space, extending those in tests/test_nb201.py.

test_nb201.py already checks that arbitrary text parses and round-trips or
raises ``ValueError``, that ``mutate`` changes exactly one edge, and that
``canonical`` is invariant under swapping the two middle nodes.  Here:
strings built from the format's grammar with wrong parts in it (near misses
that random text almost never produces), the exact set of mutants and
mutation chains, and the symmetry of ``canonical`` under edits of edges that
cannot affect the cell's output (dead branches, edges out of zero nodes),
together with its converse: every other edit changes the class.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nas_engine.spaces.nb201 import EDGES, OPS, NB201Space

SPACE = NB201Space()
ops6 = st.tuples(*[st.sampled_from(OPS)] * len(EDGES))
archs = ops6.map(SPACE.from_ops)


# -- parsing: strings in the grammar's shape, right or wrong ----------------------------------------------------
_op = st.one_of(st.sampled_from(OPS), st.sampled_from(["", "conv", "max_pool_3x3", "None", "skip"]),
                st.text(alphabet="abcegiklnoprstuvx_0123", max_size=14))
_index = st.one_of(st.sampled_from("0123"), st.text(alphabet="0123~|+ ", max_size=3))
_edge = st.tuples(_op, st.sampled_from(["~", "", "~~", "-"]), _index).map("".join)


@st.composite
def grammar_strings(draw) -> tuple[str, bool]:
    """A string shaped like ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` and whether it is well formed.

    Most draws follow the grammar with valid parts (every node has as many
    edges as its index, each ``<op>~<source>``); the rest break one thing: an
    op, a separator, a source index, the number of edges or of nodes, or a
    bar.
    """
    n_nodes = draw(st.sampled_from([3] * 8 + [2, 4]))
    nodes, valid = [], n_nodes == 3
    for node in range(1, n_nodes + 1):
        n_edges = draw(st.sampled_from([node] * 8 + [node - 1, node + 1]))
        valid &= n_edges == node
        edges = []
        for src in range(n_edges):
            if draw(st.integers(0, 11)):
                edges.append(f"{draw(st.sampled_from(OPS))}~{src}")
            else:
                edge = draw(_edge)
                edges.append(edge)
                valid &= edge in {f"{op}~{src}" for op in OPS}
        nodes.append("|" + "|".join(edges) + "|")
    text = "+".join(nodes)
    if not draw(st.integers(0, 9)):  # drop a character
        i = draw(st.integers(0, len(text) - 1))
        text, valid = text[:i] + text[i + 1:], False
    return text, valid


@settings(max_examples=500, deadline=None)
@given(grammar_strings())
def test_grammar_strings_parse_exactly_when_well_formed(drawn):
    text, well_formed = drawn
    try:
        a = SPACE.from_string(text)
    except ValueError as exc:
        assert not well_formed, f"rejected a well-formed string: {exc}"
        return
    assert SPACE.to_string(a) == text and SPACE.from_ops(a.spec) == a


# -- mutation ----------------------------------------------------------------------------------------------
def _neighbours(a) -> set:
    out = set()
    for k in range(len(EDGES)):
        for op in OPS:
            if op != a.spec[k]:
                out.add(SPACE.from_ops(a.spec[:k] + (op,) + a.spec[k + 1:]))
    return out


@settings(max_examples=25, deadline=None)
@given(archs, st.integers(0, 2**32 - 1))
def test_mutants_are_exactly_the_one_edge_neighbours(a, seed):
    rng = np.random.default_rng(seed)
    mutants = {SPACE.mutate(a, rng) for _ in range(400)}
    assert mutants == _neighbours(a)  # 24 neighbours; missing one in 400 draws has probability ~1e-8


@settings(max_examples=100, deadline=None)
@given(archs, st.integers(0, 2**32 - 1), st.integers(1, 30))
def test_mutation_chains_stay_valid_and_are_reproducible(a, seed, steps):
    def walk():
        rng, cur, path = np.random.default_rng(seed), a, []
        for _ in range(steps):
            nxt = SPACE.mutate(cur, rng)
            SPACE.check_architecture(nxt)
            assert nxt != cur and nxt in _neighbours(cur)
            assert SPACE.from_string(nxt.string) == nxt and SPACE.from_graph(nxt.graph) == nxt
            path.append(nxt)
            cur = nxt
        return path

    assert walk() == walk()


# -- canonical forms ---------------------------------------------------------------------------------------
def _irrelevant_edges(ops: tuple[str, ...]) -> set[int]:
    """Edges whose op cannot change the cell's output: into a node that does not reach node 3,
    or out of a node whose value is zero (all its inputs are ``none`` or zero)."""
    e01, e02, e12, e03, e13, e23 = ops
    reaches = {3: True, 2: e23 != "none"}
    reaches[1] = e13 != "none" or (e12 != "none" and reaches[2])
    zero = {0: False, 1: e01 == "none"}
    zero[2] = e02 == "none" and (e12 == "none" or zero[1])
    return {k for k, (src, dst) in enumerate(EDGES) if not reaches[dst] or zero[src]}


@settings(max_examples=300, deadline=None)
@given(ops6, st.integers(0, len(EDGES) - 1), st.sampled_from(OPS))
def test_canonical_is_invariant_exactly_under_edits_of_irrelevant_edges(ops, edge, op):
    edited = ops[:edge] + (op,) + ops[edge + 1:]
    same = SPACE.canonical(SPACE.from_ops(ops)) == SPACE.canonical(SPACE.from_ops(edited))
    if op == ops[edge] or edge in _irrelevant_edges(ops):
        assert same
    else:
        assert not same, f"editing live edge {EDGES[edge]} to {op} left the function unchanged"


def _swap_middle_nodes(ops: tuple[str, ...]) -> tuple[str, ...]:
    e01, e02, e12, e03, e13, e23 = ops
    return (e02, e01, e12, e03, e23, e13)


_moves = st.lists(st.one_of(st.just("swap"), st.tuples(st.integers(0, len(EDGES) - 1), st.sampled_from(OPS))),
                  max_size=8)


@settings(max_examples=300, deadline=None)
@given(ops6, _moves)
def test_canonical_is_invariant_under_the_symmetries_combined(ops, moves):
    """Any sequence of symmetries -- swapping nodes 1 and 2 when edge 1->2 is ``none``, and
    editing an irrelevant edge -- keeps the canonical form (and the graph round trip too)."""
    start = SPACE.canonical(SPACE.from_ops(ops))
    for move in moves:
        if move == "swap":
            if ops[2] != "none":
                continue
            ops = _swap_middle_nodes(ops)
        elif move[0] in _irrelevant_edges(ops):
            ops = ops[:move[0]] + (move[1],) + ops[move[0] + 1:]
        a = SPACE.from_ops(ops)
        assert SPACE.canonical(a) == SPACE.canonical(SPACE.from_graph(a.graph)) == start
