"""The NAS-Bench-101 cell search space (Ying et al., 2019).

A cell (the benchmark's "module") is a DAG over at most 7 vertices: vertex 0
is the cell input, the last vertex its output, and every vertex in between
carries one op label, ``conv3x3-bn-relu``, ``conv1x1-bn-relu`` or
``maxpool3x3`` (:data:`OPS`).  The benchmark's **spec** is an upper-triangular
0/1 adjacency matrix (``matrix[i, j] = 1``: an edge ``i -> j``) and the list of
vertex labels, ``"input"`` first and ``"output"`` last.

Validity and pruning (the benchmark's ``ModelSpec`` and ``NASBench.is_valid``)
-------------------------------------------------------------------------------
A spec is first *pruned*: every vertex that is not on a path from the input
to the output is removed (with its edges), the remaining vertices keep their
order.  The spec is valid when the matrix is square, upper triangular (no
self-loops, edges only from lower to higher vertices) and 0/1, there is one
label per vertex, the input is connected to the output, and the pruned cell
has at most 7 vertices (:data:`MAX_VERTICES`) and at most 9 edges
(:data:`MAX_EDGES`).  Labels must be ``input`` / ``output`` at the ends and one
of :data:`OPS` elsewhere -- here on *every* vertex, also one that pruning
removes (the benchmark only checks the kept ones).  An architecture *is* its
pruned spec (:meth:`NB101Space.from_spec` prunes; ``arch.spec`` is the pruned
``(matrix rows, labels)`` as tuples).

Strings
-------
An architecture's string is its pruned spec in one line: the adjacency rows as
0/1 digits separated by ``/``, a ``:``, then the labels of the intermediate
vertices separated by ``,`` (input and output are implied)::

    0111001/0000010/0000001/0000001/0000010/0000001/0000000:conv3x3-bn-relu,...

:meth:`NB101Space.from_string` is strict (``to_string(from_string(s)) == s``
for every accepted string): it refuses, with a one-line ``ValueError`` naming
the bad part and the rule, malformed text, an unknown label, a matrix that is
not upper triangular, a cell whose input does not reach its output, too many
edges or vertices, and an unpruned cell (a vertex on no input-output path; use
:meth:`NB101Space.from_spec`, which prunes).  NASLib's encoding -- the
flattened ``V x V`` matrix followed by one op index per vertex in the order
``input, output, maxpool3x3, conv1x1-bn-relu, conv3x3-bn-relu``
(:data:`NASLIB_OPS`), e.g. the keys of NASLib's zero-cost NAS-Bench-101 file
-- converts both ways (:meth:`NB101Space.to_naslib`, :meth:`NB101Space.from_naslib`).

Equivalence (:meth:`NB101Space.canonical`)
------------------------------------------
Two cells that differ only by a renumbering of the intermediate vertices
(a label-preserving graph isomorphism) are one cell of the benchmark (one
entry of its dataset).  Their networks are the same up to the order of the
concatenated channels -- except that the benchmark's channel split hands the
remainder channels to the *first* vertices feeding the output, so when the
output's fan-in does not divide the channels two relabellings can differ by a
few channels per vertex (and parameters: 1,861,666 vs 1,865,770 for two specs
of one cell in NASLib's file, whose counts match ours for each spec).
``build`` follows the spec it is given, as the benchmark's builder does.
``canonical`` is the benchmark's own iterative
graph hash (``graph_util.hash_module`` with the labelling of
``ModelSpec.hash_spec``: input -1, output -2, ops by their index in
:data:`OPS`): per vertex an MD5 of (out-degree, in-degree, label), refined
``V`` times from the sorted hashes of the in- and out-neighbours, and finally
the MD5 of the sorted vertex hashes.  It is the key the benchmark's dataset is
indexed by, equal for isomorphic cells (and in the benchmark's 423,624 cells
it separates all non-isomorphic ones).

Network (:class:`NB101Network`, the benchmark's ``model_builder``)
------------------------------------------------------------------
A 3x3 conv-BN-ReLU stem to ``stem_channels`` (128), then ``stacks`` (3) stacks
of ``cells_per_stack`` (3) cells; before every stack but the first a 2x2
max-pool with stride 2 and the channels doubled; global average pooling and a
dense layer.  In a cell, the output channels are split evenly among the
vertices that feed the output (the first ``remainder`` of them get one more),
every other vertex gets the largest count among its successors
(:func:`compute_vertex_channels`); a vertex adds its inputs -- an interior
vertex's tensor truncated to its channels, the cell input through a 1x1
conv-BN-ReLU projection -- and applies its op; the output concatenates the
vertices that feed it and adds a projection of the cell input when the input
feeds the output directly.  BatchNorm as the benchmark's (TensorFlow momentum
0.997, i.e. PyTorch ``momentum=0.003``, ``eps=1e-5``); convolutions have no
bias; initialisation as TensorFlow's (see :meth:`NB101Network.reset_parameters`).
At the benchmark's size the parameter count equals the benchmark's
``trainable_parameters``.
"""

from __future__ import annotations

import ast
import hashlib
import math
from collections.abc import Sequence

import networkx as nx
import numpy as np
import torch
from torch import nn

from nas_engine.config import check_int
from nas_engine.registry import spaces
from nas_engine.spaces.base import Architecture, Encodable, Mutable, SearchSpace
from nas_engine.spaces.ops import max_pool_3x3

__all__ = ["INPUT", "OUTPUT", "CONV3X3", "CONV1X1", "MAXPOOL3X3", "OPS", "NASLIB_OPS", "MAX_VERTICES",
           "MAX_EDGES", "NB101Space", "NB101Network", "NB101Cell", "ConvBnRelu", "prune", "check_spec",
           "hash_module", "compute_vertex_channels"]

INPUT, OUTPUT = "input", "output"
CONV3X3, CONV1X1, MAXPOOL3X3 = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"
#: The vertex ops, in the benchmark's ``available_ops`` order (their index is the label the hash uses).
OPS: tuple[str, ...] = (CONV3X3, CONV1X1, MAXPOOL3X3)
#: NASLib's op indices (``all_ops`` of its NAS-Bench-101 conversions): position = index in its encoding.
NASLIB_OPS: tuple[str, ...] = (INPUT, OUTPUT, MAXPOOL3X3, CONV1X1, CONV3X3)
#: The benchmark's limits: at most 7 vertices (input and output included) and 9 edges, after pruning.
MAX_VERTICES, MAX_EDGES = 7, 9

#: TensorFlow's BatchNorm momentum 0.997 (running = 0.997 * running + 0.003 * batch) in PyTorch's convention.
BN_MOMENTUM, BN_EPSILON = 1.0 - 0.997, 1e-5

_LABELS = {op: k for k, op in enumerate(OPS)}
_HASH_LABEL = {INPUT: -1, OUTPUT: -2, **_LABELS}


# ---------------------------------------------------------------------------------
# specs: validity, pruning, hashing, channels
# ---------------------------------------------------------------------------------
def prune(matrix: np.ndarray, ops: Sequence[str]) -> tuple[np.ndarray, list[str]] | None:
    """The benchmark's pruning (``ModelSpec._prune``): remove every vertex that is not both reachable
    from the input and able to reach the output; ``None`` when the input does not reach the output.

    ``matrix`` must be a square upper-triangular 0/1 array with one label in ``ops`` per vertex.
    """
    n = len(matrix)
    from_input, frontier = {0}, [0]
    while frontier:
        top = frontier.pop()
        for v in range(top + 1, n):
            if matrix[top, v] and v not in from_input:
                from_input.add(v)
                frontier.append(v)
    to_output, frontier = {n - 1}, [n - 1]
    while frontier:
        top = frontier.pop()
        for v in range(top):
            if matrix[v, top] and v not in to_output:
                to_output.add(v)
                frontier.append(v)
    keep = sorted(from_input & to_output)
    if len(keep) < 2:  # the input and the output are not both on one path
        return None
    return matrix[np.ix_(keep, keep)].copy(), [ops[v] for v in keep]


def check_spec(matrix, ops) -> tuple[np.ndarray, list[str]]:
    """Validate a benchmark spec and prune it: ``(pruned matrix as int8 array, pruned labels)``.

    Raises a one-line ``ValueError`` naming the rule that ``(matrix, ops)``
    breaks (see the module docstring for the rules).
    """
    try:
        m = np.asarray(matrix)
    except Exception as exc:  # ragged nested lists and the like
        raise ValueError(f"NB101 adjacency matrix must be a square 0/1 array, got {matrix!r} ({exc})") from None
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
        raise ValueError(f"NB101 adjacency matrix must be square with at least 2 vertices (input and output), "
                         f"got shape {m.shape}")
    if m.dtype == bool:
        m = m.astype(np.int8)
    if not (np.issubdtype(m.dtype, np.number) and np.isin(m, (0, 1)).all()):
        values = sorted(set(m.ravel().tolist()), key=repr)
        raise ValueError(f"NB101 adjacency matrix entries must be 0 or 1, got {values}")
    m = m.astype(np.int8)
    n = m.shape[0]
    if isinstance(ops, str) or not isinstance(ops, Sequence):
        raise ValueError(f"NB101 ops must be a list of {n} vertex labels, got {type(ops).__name__}: {ops!r}")
    ops = list(ops)
    if len(ops) != n:
        raise ValueError(f"NB101 spec needs one op label per vertex: matrix has {n} vertices, got {len(ops)} "
                         f"labels {ops!r}")
    lower = np.argwhere(np.tril(m) != 0)
    if len(lower):
        i, j = (int(x) for x in lower[0])
        raise ValueError(f"NB101 adjacency matrix must be upper triangular (edges i -> j with i < j only), "
                         f"got an entry at row {i}, column {j}")
    if ops[0] != INPUT or ops[-1] != OUTPUT:
        raise ValueError(f"NB101 op labels must start with 'input' and end with 'output', got {ops[0]!r} ... "
                         f"{ops[-1]!r}")
    for v, op in enumerate(ops[1:-1], start=1):
        if not isinstance(op, str) or op not in _LABELS:
            raise ValueError(f"unknown op {op!r} at vertex {v}; valid ops: {', '.join(OPS)}")
    ops = [str(op) for op in ops]  # plain str, also for numpy.str_
    pruned = prune(m, ops)
    if pruned is None:
        raise ValueError(f"NB101 cell is invalid: the input (vertex 0) is not connected to the output "
                         f"(vertex {n - 1})")
    pm, pops = pruned
    if len(pops) > MAX_VERTICES:
        raise ValueError(f"NB101 cell has {len(pops)} vertices after pruning; at most {MAX_VERTICES} "
                         f"(input and output included)")
    edges = int(pm.sum())
    if edges > MAX_EDGES:
        raise ValueError(f"NB101 cell has {edges} edges after pruning; at most {MAX_EDGES}")
    return pm, pops


def hash_module(matrix: np.ndarray, labeling: Sequence[int]) -> str:
    """The benchmark's isomorphism-invariant MD5 graph hash (``graph_util.hash_module``).

    ``labeling``: one int per vertex (the benchmark's: input -1, output -2, ops
    by their index in :data:`OPS`).  Equal for label-preserving isomorphic
    graphs; the text hashed is the benchmark's exactly (Python ints), so the
    result is the key of the benchmark's dataset.
    """
    m = np.asarray(matrix)
    n = m.shape[0]
    in_edges = [int(x) for x in m.sum(axis=0)]
    out_edges = [int(x) for x in m.sum(axis=1)]
    hashes = [_md5(str((out_edges[v], in_edges[v], int(labeling[v])))) for v in range(n)]
    for _ in range(n):
        hashes = [
            _md5("".join(sorted(hashes[w] for w in range(n) if m[w, v])) + "|"
                 + "".join(sorted(hashes[w] for w in range(n) if m[v, w])) + "|" + hashes[v])
            for v in range(n)
        ]
    return _md5(str(sorted(hashes)))


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def compute_vertex_channels(input_channels: int, output_channels: int, matrix: np.ndarray) -> list[int]:
    """Channels of every vertex of a pruned cell (the benchmark's ``compute_vertex_channels``).

    The output's channels are split evenly among the vertices that feed it,
    the first ``output_channels % fan_in`` of them (in vertex order) getting
    one more; every other interior vertex gets the largest count among its
    interior successors (filled from the last vertex backwards), so channels
    never increase along an edge and a vertex's tensor is truncated (by at most
    one channel) where a successor has fewer.  Vertex 0 has ``input_channels``,
    the output ``output_channels``.

    Below the benchmark's widths, when ``output_channels`` is smaller than the
    output's fan-in, a vertex that would get 0 channels gets 1 (the benchmark
    asserts instead); the output then has ``fan_in`` channels, not
    ``output_channels`` (see :class:`NB101Cell`).
    """
    m = np.asarray(matrix)
    n = m.shape[0]
    channels = [0] * n
    channels[0], channels[n - 1] = input_channels, output_channels
    if n == 2:
        return channels
    fan_in = int(m[1:, n - 1].sum())
    interior, correction = divmod(output_channels, fan_in)
    for v in range(1, n - 1):
        if m[v, n - 1]:
            channels[v] = interior
            if correction:
                channels[v] += 1
                correction -= 1
            channels[v] = max(channels[v], 1)
    for v in range(n - 3, 0, -1):
        if not m[v, n - 1]:
            for dst in range(v + 1, n - 1):
                if m[v, dst]:
                    channels[v] = max(channels[v], channels[dst])
        if channels[v] <= 0:
            raise ValueError(f"vertex {v} of the cell gets no channels: the cell is not pruned")
    return channels


# ---------------------------------------------------------------------------------
# the space
# ---------------------------------------------------------------------------------
@spaces.register("nb101")
class NB101Space(SearchSpace, Mutable, Encodable):
    """The NAS-Bench-101 cell space (see the module docstring).

    Configuration: ``bn_momentum``, the BatchNorm momentum of the networks
    :meth:`build` makes, in PyTorch's convention (default the benchmark's
    TensorFlow decay 0.997, i.e. ``0.003``).  Its running statistics average
    over about ``1 / bn_momentum`` = 333 steps: right for the benchmark's
    108 epochs of 195 steps, but on a short CPU-scale schedule they lag the
    weights by epochs and evaluation-mode accuracy (ValAcc, SoVL, test
    accuracy) reads stale statistics; ``0.1`` (PyTorch's default, as the
    other spaces use) fits short schedules.  Not enumerable here (the
    benchmark lists 423,624 unique cells, found by exhaustive generation and
    hashing).  Size (:attr:`default_size`): the benchmark's network,
    ``stem_channels`` 128, ``stacks`` 3, ``cells_per_stack`` 3; ``"small"``
    is the CPU-scale network of the engine's reproductions (stem 16, 3 stacks
    of 1 cell).
    """

    default_size = {"stem_channels": 128, "stacks": 3, "cells_per_stack": 3}
    named_sizes = {"small": {"stem_channels": 16, "stacks": 3, "cells_per_stack": 1},
                   "tiny": {"stem_channels": 4, "stacks": 3, "cells_per_stack": 1}}
    OPS = OPS

    def __init__(self, bn_momentum: float = BN_MOMENTUM):
        if isinstance(bn_momentum, bool) or not isinstance(bn_momentum, (int, float)) or not (
                0 < bn_momentum <= 1):
            raise ValueError(f"NB101Space: bn_momentum must be a number in (0, 1] (PyTorch's convention; the "
                             f"benchmark's is {BN_MOMENTUM:.3f}), got {bn_momentum!r}")
        self.bn_momentum = float(bn_momentum)

    # -- construction ------------------------------------------------------------------
    def from_spec(self, matrix, ops) -> Architecture:
        """The architecture of a benchmark spec (adjacency matrix, labels with ``input``/``output``), pruned.

        Raises a one-line ``ValueError`` naming the broken rule (see :func:`check_spec`).
        """
        m, labels = check_spec(matrix, ops)
        return self._make(m, labels)

    def _make(self, m: np.ndarray, labels: list[str]) -> Architecture:
        """An architecture from a checked, pruned spec."""
        rows = tuple(tuple(int(x) for x in row) for row in m)
        string = "/".join("".join(str(x) for x in row) for row in rows) + ":" + ",".join(labels[1:-1])
        return Architecture(self, (rows, tuple(labels)), string)

    def from_string(self, s: str) -> Architecture:
        """Parse a string such as ``0110/0001/0001/0000:conv3x3-bn-relu,maxpool3x3`` (see the module docstring).

        Strict: only pruned cells are accepted, so ``to_string(from_string(s)) == s``.
        A malformed or invalid string raises a one-line ``ValueError`` naming the
        bad part and the rule; a non-``str`` argument raises ``TypeError``.
        """
        if not isinstance(s, str):
            raise TypeError(f"expected an NB101 architecture string, got {type(s).__name__}: {s!r}")
        adjacency, sep, op_text = s.partition(":")
        if not sep or ":" in op_text:
            raise ValueError(f"NB101 string must be '<adjacency rows of 0/1 separated by '/'>:<intermediate ops "
                             f"separated by ','>' with exactly one ':', got {s!r}")
        rows = adjacency.split("/")
        n = len(rows)
        if not 2 <= n <= MAX_VERTICES:
            raise ValueError(f"NB101 string must have 2 to {MAX_VERTICES} adjacency rows (one per vertex), got {n} "
                             f"in {s!r}")
        for i, row in enumerate(rows):
            if len(row) != n or set(row) - {"0", "1"}:
                raise ValueError(f"adjacency row {i} {row!r} must be {n} digits 0/1 (one per vertex) in {s!r}")
        labels = op_text.split(",") if op_text else []
        if len(labels) != n - 2:
            raise ValueError(f"NB101 string with {n} vertices must list {n - 2} intermediate op(s) after ':', got "
                             f"{len(labels)} in {s!r}")
        matrix = np.array([[int(c) for c in row] for row in rows], dtype=np.int8)
        a = self.from_spec(matrix, [INPUT, *labels, OUTPUT])
        if a.string != s:
            m, _ = self.spec(a)
            kept = len(m)
            raise ValueError(f"NB101 string {s!r} is not pruned: {n - kept} vertex(es) lie on no input-output path; "
                             f"strings hold pruned cells (its pruned form is {a.string!r}; from_spec prunes)")
        return a

    def spec(self, a: Architecture) -> tuple[np.ndarray, list[str]]:
        """The pruned benchmark spec of ``a``: ``(adjacency matrix as an int8 array, labels)`` (fresh copies)."""
        self.check_architecture(a)
        rows, labels = a.spec
        return np.array(rows, dtype=np.int8), list(labels)

    def ops(self, a: Architecture) -> tuple[str, ...]:
        """The labels of ``a``'s vertices, ``input`` first and ``output`` last."""
        self.check_architecture(a)
        return a.spec[1]

    # -- NASLib's encoding ------------------------------------------------------------------
    def to_naslib(self, a: Architecture) -> tuple[int, ...]:
        """NASLib's tuple (``convert_spec_to_tuple``): the flattened ``V x V`` matrix, then one index into
        :data:`NASLIB_OPS` per vertex (``V*V + V`` ints; 56 for a 7-vertex cell)."""
        m, labels = self.spec(a)
        return tuple(int(x) for x in m.ravel()) + tuple(NASLIB_OPS.index(op) for op in labels)

    def from_naslib(self, code) -> Architecture:
        """Inverse of :meth:`to_naslib`: a sequence of ints or its text (``"(0, 1, ...)"``, the keys of
        NASLib's files); the spec is validated and pruned.  One-line ``ValueError`` for a bad code."""
        if isinstance(code, str):
            try:
                code = ast.literal_eval(code.strip())
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                raise ValueError(f"NASLib NB101 code must be a tuple of ints such as '(0, 1, ..., 0, 1)', got "
                                 f"{code!r}") from None
        if isinstance(code, np.ndarray):
            code = code.tolist()
        if not isinstance(code, Sequence) or isinstance(code, str) or not all(
                isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in code):
            raise ValueError(f"NASLib NB101 code must be a sequence of ints, got {code!r}")
        n = next((v for v in range(2, MAX_VERTICES + 1) if v * v + v == len(code)), None)
        if n is None:
            raise ValueError(f"NASLib NB101 code must have V*V + V ints for V = 2..{MAX_VERTICES} vertices "
                             f"(56 for 7), got {len(code)}")
        idx = [int(x) for x in code[n * n:]]
        bad = [x for x in idx if not 0 <= x < len(NASLIB_OPS)]
        if bad:
            raise ValueError(f"NASLib NB101 op index {bad[0]} out of range; indices 0..{len(NASLIB_OPS) - 1} mean "
                             f"{', '.join(NASLIB_OPS)}")
        matrix = np.array([int(x) for x in code[:n * n]]).reshape(n, n)
        return self.from_spec(matrix, [NASLIB_OPS[k] for k in idx])

    # -- graphs ------------------------------------------------------------------------
    def to_graph(self, a: Architecture) -> nx.DiGraph:
        """The pruned cell as a ``DiGraph`` over vertices ``0..V-1`` (0 the input, ``V-1`` the output), each
        with an ``op`` attribute (``input``, one of :data:`OPS`, ``output``); edges as the matrix."""
        m, labels = self.spec(a)
        g = nx.DiGraph()
        g.add_nodes_from((v, {"op": op}) for v, op in enumerate(labels))
        g.add_edges_from((int(i), int(j)) for i, j in np.argwhere(m))
        return g

    def from_graph(self, g: nx.DiGraph) -> Architecture:
        """Inverse of :meth:`to_graph` (any such graph: it is validated and pruned as a spec)."""
        if not isinstance(g, nx.DiGraph):
            raise TypeError(f"expected a networkx.DiGraph, got {type(g).__name__}")
        n = g.number_of_nodes()
        if set(g.nodes) != set(range(n)):
            raise ValueError(f"NB101 cell graph must have vertices 0..V-1, got {sorted(g.nodes, key=repr)}")
        missing = [v for v in range(n) if "op" not in g.nodes[v]]
        if missing:
            raise ValueError(f"vertex {missing[0]} of the NB101 cell graph has no 'op' attribute")
        matrix = np.zeros((n, n), dtype=np.int8)
        for i, j in g.edges:
            matrix[i, j] = 1
        return self.from_spec(matrix, [g.nodes[v]["op"] for v in range(n)])

    # -- equivalence ---------------------------------------------------------------------
    def canonical(self, a: Architecture) -> str:
        """The benchmark's graph hash of ``a`` (``ModelSpec.hash_spec``): equal for isomorphic cells."""
        m, labels = self.spec(a)
        return hash_module(m, [_HASH_LABEL[op] for op in labels])

    # -- sampling, mutation, encoding ------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Architecture:
        """The benchmark's random spec: a random upper-triangular 7x7 0/1 matrix and uniformly drawn ops,
        redrawn until valid (uniform over valid 7-vertex specs, not over the unique cells they prune to)."""
        n = MAX_VERTICES
        while True:
            matrix = np.triu(rng.integers(0, 2, size=(n, n)), 1)
            labels = [INPUT, *(OPS[k] for k in rng.integers(len(OPS), size=n - 2)), OUTPUT]
            try:
                return self.from_spec(matrix, labels)
            except ValueError:
                continue

    def _padded(self, a: Architecture, rng: np.random.Generator | None) -> tuple[np.ndarray, list[str | None]]:
        """``a``'s spec on 7 vertices: its vertices first, the output last, unused vertices in between
        (no edges; labels drawn with ``rng``, or ``None`` without one)."""
        m, labels = self.spec(a)
        n, full = len(labels), MAX_VERTICES
        out = np.zeros((full, full), dtype=np.int8)
        keep = [*range(n - 1), full - 1]
        out[np.ix_(keep, keep)] = m
        pad: list[str | None] = [None] * (full - n)
        if rng is not None:
            pad = [OPS[k] for k in rng.integers(len(OPS), size=full - n)]
        return out, [*labels[:-1], *pad, OUTPUT]

    def mutate(self, a: Architecture, rng: np.random.Generator) -> Architecture:
        """The benchmark's mutation (its example's ``mutate_spec``, mutation rate 1) on ``a``'s spec padded
        to 7 vertices: each possible edge flips with probability 1/7, each intermediate op is redrawn among
        the other two with probability 1/5; repeated until the result is valid and not isomorphic to ``a``
        (its :meth:`canonical` differs), so the mutant is always a different cell.

        Unused vertices of a smaller cell get random ops first, so a mutation can grow the cell.
        """
        base, labels = self._padded(a, rng)
        key = self.canonical(a)
        n = MAX_VERTICES
        for _ in range(100_000):
            matrix = base.copy()
            flips = np.triu(rng.random((n, n)) < 1.0 / n, 1)
            matrix[flips] = 1 - matrix[flips]
            new = list(labels)
            for v in range(1, n - 1):
                if rng.random() < 1.0 / (n - 2):
                    others = [op for op in OPS if op != new[v]]
                    new[v] = others[int(rng.integers(len(others)))]
            try:
                m = self.from_spec(matrix, new)
            except ValueError:
                continue
            if self.canonical(m) != key:
                return m
        raise RuntimeError(f"NB101 mutate found no valid different cell for {a} in 100,000 tries")  # pragma: no cover

    def encode(self, a: Architecture) -> np.ndarray:
        """NASLib's adjacency-one-hot encoding, ``float32`` of shape ``(36,)``: the 21 upper-triangular
        entries of the 7x7 matrix (row by row; a smaller cell padded with unused vertices before the
        output), then a one-hot over :data:`OPS` for each of the 5 intermediate vertices (zeros for an unused one).

        Isomorphic cells may encode differently (use :meth:`canonical` to de-duplicate).
        """
        m, labels = self._padded(a, None)
        n = MAX_VERTICES
        onehot = np.zeros((n - 2, len(OPS)), dtype=np.float32)
        for v, op in enumerate(labels[1:-1]):
            if op is not None:
                onehot[v, _LABELS[op]] = 1.0
        return np.concatenate([m[np.triu_indices(n, 1)].astype(np.float32), onehot.ravel()])

    # -- networks -----------------------------------------------------------------------
    def legacy_size(self, C: int, N: int) -> dict[str, int]:
        """An earlier version's ``C``/``N``: the stem's channels and the cells per stack (3 stacks)."""
        return {"stem_channels": C, "stacks": 3, "cells_per_stack": N}

    def build(self, a: Architecture, num_classes: int, *, in_channels: int = 3, stem_channels: int = 128,
              stacks: int = 3, cells_per_stack: int = 3) -> NB101Network:
        """The benchmark's network for ``a`` (see :class:`NB101Network`), freshly initialised."""
        who = "NB101Space.build"
        num_classes = check_int(num_classes, "num_classes", who=who)
        in_channels = check_int(in_channels, "in_channels", who=who)
        stacks = check_int(stacks, "stacks", who=who)
        stem = check_int(stem_channels, "stem_channels", who=who)
        cells = check_int(cells_per_stack, "cells_per_stack", who=who)
        m, labels = self.spec(a)
        return NB101Network(m, labels, num_classes, in_channels=in_channels, stem_channels=stem, stacks=stacks,
                            cells_per_stack=cells, bn_momentum=self.bn_momentum)


# ---------------------------------------------------------------------------------
# network modules (the benchmark's model_builder / base_ops)
# ---------------------------------------------------------------------------------
class ConvBnRelu(nn.Sequential):
    """Conv2d (k x k, stride 1, 'same' padding, no bias) -> BatchNorm2d (the benchmark's momentum/eps) -> ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(c_out, eps=BN_EPSILON, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=False),
        )


def _vertex_op(op: str, channels: int) -> nn.Module:
    if op == CONV3X3:
        return ConvBnRelu(channels, channels, 3)
    if op == CONV1X1:
        return ConvBnRelu(channels, channels, 1)
    if op == MAXPOOL3X3:
        return max_pool_3x3()  # PyTorch pads max-pooling with -inf: TF's 'same'
    raise ValueError(f"unknown op {op!r}; valid ops: {', '.join(OPS)}")


class NB101Cell(nn.Module):
    """One NAS-Bench-101 cell (the benchmark's ``build_module``) for a pruned spec.

    Vertex ``t`` sums its inputs -- an interior predecessor's tensor truncated
    to ``t``'s channels, and ``projections[t]`` (1x1 conv-BN-ReLU) of the cell
    input when the input feeds ``t`` -- and applies its op.  The output
    concatenates (in vertex order) the vertices that feed it, plus the output
    projection of the cell input when the input feeds the output directly
    (the projection alone when no other vertex does).  ``out_channels`` is
    ``channels`` (more only below the benchmark's widths, see
    :func:`compute_vertex_channels`).
    """

    def __init__(self, matrix: np.ndarray, ops: Sequence[str], in_channels: int, channels: int):
        super().__init__()
        m = np.asarray(matrix)
        self.n = n = m.shape[0]
        self.matrix = m
        self.vertex_channels = vc = compute_vertex_channels(in_channels, channels, m)
        self.inputs = [[src for src in range(1, t) if m[src, t]] for t in range(n)]
        self.concat = [t for t in range(1, n - 1) if m[t, n - 1]]
        self.out_channels = sum(vc[t] for t in self.concat) if self.concat else channels
        self.input_to_output = bool(m[0, n - 1])
        self.projections = nn.ModuleDict(
            {str(t): ConvBnRelu(in_channels, vc[t], 1) for t in range(1, n - 1) if m[0, t]})
        self.ops = nn.ModuleDict({str(t): _vertex_op(ops[t], vc[t]) for t in range(1, n - 1)})
        self.output_projection = ConvBnRelu(in_channels, self.out_channels, 1) if self.input_to_output else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tensors = [x]
        for t in range(1, self.n - 1):
            c = self.vertex_channels[t]
            add = [tensors[src][:, :c] for src in self.inputs[t]]
            if str(t) in self.projections:
                add.append(self.projections[str(t)](x))
            h = add[0]
            for y in add[1:]:
                h = h + y
            tensors.append(self.ops[str(t)](h))
        if not self.concat:
            return self.output_projection(x)
        out = tensors[self.concat[0]] if len(self.concat) == 1 else torch.cat([tensors[t] for t in self.concat], 1)
        if self.output_projection is not None:
            out = out + self.output_projection(x)
        return out

    def extra_repr(self) -> str:
        return f"vertex_channels={self.vertex_channels}"


class NB101Network(nn.Module):
    """The NAS-Bench-101 network around one pruned cell spec.

    ``stem`` (3x3 conv-BN-ReLU ``in_channels -> stem_channels``); ``stacks``
    stacks of ``cells_per_stack`` cells, each stack but the first preceded by a
    2x2 max-pool with stride 2 (TF 'same' padding: ``ceil_mode``) and doubling
    the channels; global average pooling; ``classifier`` (dense with bias).
    ``forward`` returns the logits.  Every BatchNorm has momentum
    ``bn_momentum`` (default the benchmark's, see :class:`NB101Space`).
    """

    def __init__(self, matrix: np.ndarray, ops: Sequence[str], num_classes: int, *, in_channels: int = 3,
                 stem_channels: int = 128, stacks: int = 3, cells_per_stack: int = 3,
                 bn_momentum: float = BN_MOMENTUM):
        super().__init__()
        self.stem = ConvBnRelu(in_channels, stem_channels, 3)
        layers: list[nn.Module] = []
        channels = stem_channels
        for stack in range(stacks):
            out = channels
            if stack > 0:
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
                out = channels * 2
            for _ in range(cells_per_stack):
                cell = NB101Cell(matrix, ops, channels, out)
                layers.append(cell)
                channels = cell.out_channels
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)
        for mod in self.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.momentum = bn_momentum
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """TensorFlow's initialisers, as the benchmark: convolutions ``variance_scaling`` (fan-in, scale 1,
        truncated normal), the dense layer Glorot-uniform with zero bias, BatchNorm ``gamma=1, beta=0``."""
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                fan_in = mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1]
                std = math.sqrt(1.0 / fan_in) / 0.87962566103423978  # TF's truncation correction
                nn.init.trunc_normal_(mod.weight, std=std, a=-2 * std, b=2 * std)
            elif isinstance(mod, nn.Linear):
                nn.init.xavier_uniform_(mod.weight)
                nn.init.zeros_(mod.bias)
            elif isinstance(mod, nn.BatchNorm2d):
                mod.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(self.stem(x))
        return self.classifier(out.mean(dim=(2, 3)))
