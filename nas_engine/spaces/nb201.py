"""The NAS-Bench-201 (NATS-Bench topology) search space.

A cell is a DAG over four nodes (feature maps) 0..3: node 0 is the cell input,
node 3 its output, and each of the six edges ``j -> i`` (``j < i``) carries one
of five operations (:data:`OPS`), giving 5**6 = 15,625 cells.  Edges are ordered
as in the benchmark's string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``, i.e.
(0->1), (0->2), (1->2), (0->3), (1->3), (2->3) (see :data:`EDGES`); an
architecture's ``spec`` is the tuple of the six op names in that order and its
``string`` the benchmark string.

Equivalence classes over the 15,625 cells:

* :meth:`NB201Space.canonical` (functional equivalence, see its docstring):
  **4,930** classes.
* :meth:`NB201Space.unique_str`, which reproduces the benchmark code's
  ``CellStructure.to_unique_str``: **6,466** classes with ``consider_zero=True``
  (the figure quoted by the NAS-Bench-201 paper), 12,751 with ``False`` and
  15,625 with ``None``.  These 6,466 classes are the space's
  :class:`~nas_engine.spaces.base.IsomorphismClasses` (the one-shot strategies'
  ``deiso`` sampling and ``post_deiso`` averaging, Ning et al. §6.2).

Enumeration order: the benchmark's ``index`` is *not* a mixed-radix order of the
ops (index 0 is ``|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+...``), so
:meth:`NB201Space.enumerate` uses its own documented order instead (see
:meth:`NB201Space.index`); map to benchmark indices through the benchmark's own
table of architecture strings.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence

import networkx as nx
import numpy as np
import torch
from torch import nn

from nas_engine.config import check_int
from nas_engine.registry import spaces
from nas_engine.spaces.base import (
    Architecture,
    Encodable,
    Enumerable,
    FixedEdgeOps,
    IsomorphismClasses,
    Mutable,
    Relaxable,
    SearchSpace,
)
from nas_engine.spaces.ops import ReLUConvBN, avg_pool_3x3  # shared with DARTS (ReLUConvBN also importable from here)

__all__ = ["OPS", "EDGES", "NB201Space", "NB201Network", "NB201Cell", "NB201Supernet", "SupernetCell",
           "ResNetBasicBlock", "ReLUConvBN", "Zero"]

#: The five candidate operations, in the benchmark's order.
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

#: The six cell edges ``(source, target)``, in the order of the benchmark string.
EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))

_NUM_NODES = 4
_OP_INDEX = {op: k for k, op in enumerate(OPS)}
# short names of the parametric/pooling ops in canonical strings
_CANONICAL_NAMES = {"nor_conv_1x1": "conv1", "nor_conv_3x3": "conv3", "avg_pool_3x3": "pool"}


def _in_edges(target: int) -> list[tuple[int, int]]:
    """``(edge index, source node)`` of every edge into ``target``, by source."""
    return [(k, src) for k, (src, dst) in enumerate(EDGES) if dst == target]


@spaces.register("nb201")
class NB201Space(SearchSpace, Mutable, Encodable, Enumerable, Relaxable, FixedEdgeOps, IsomorphismClasses):
    """The NAS-Bench-201 cell space (see the module docstring).

    The space has no configuration; the network size is chosen in :meth:`build`
    (``C`` channels in the first stage, ``N`` cells per stage; the benchmark's
    size is :attr:`default_size`, the CPU-scale ``"small"`` size ``C=8, N=1``).
    """

    default_size = {"C": 16, "N": 5}
    named_sizes = {"small": {"C": 8, "N": 1}, "tiny": {"C": 4, "N": 1}}
    OPS = OPS
    EDGES = EDGES

    # -- construction and text ---------------------------------------------------
    def from_ops(self, ops: Sequence[str]) -> Architecture:
        """The architecture whose six edges carry ``ops`` (in :data:`EDGES` order)."""
        if isinstance(ops, str) or not isinstance(ops, Sequence):
            raise TypeError(
                f"from_ops expects a sequence of {len(EDGES)} op names, got {type(ops).__name__}: {ops!r}"
                + ("; use from_string for a benchmark string" if isinstance(ops, str) else "")
            )
        ops = tuple(ops)
        if len(ops) != len(EDGES):
            raise ValueError(f"expected {len(EDGES)} ops (one per edge), got {len(ops)}: {ops!r}")
        for k, op in enumerate(ops):
            if not isinstance(op, str) or op not in _OP_INDEX:
                src, dst = EDGES[k]
                raise ValueError(
                    f"unknown op {op!r} on edge {src}->{dst}; valid ops: {', '.join(OPS)}"
                )
        ops = tuple(str(op) for op in ops)  # plain str, also for str subclasses such as numpy.str_
        string = "+".join(
            "|" + "|".join(f"{ops[k]}~{src}" for k, src in _in_edges(node)) + "|"
            for node in range(1, _NUM_NODES)
        )
        return Architecture(self, ops, string)

    def from_string(self, s: str) -> Architecture:
        """Parse a benchmark string such as ``|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|``.

        The parser is strict: ``to_string(from_string(s)) == s`` for every string
        it accepts.  A malformed string raises ``ValueError`` naming the bad part
        (a non-``str`` argument raises ``TypeError``).
        """
        if not isinstance(s, str):
            raise TypeError(f"expected an NB201 architecture string, got {type(s).__name__}: {s!r}")
        parts = s.split("+")
        if len(parts) != _NUM_NODES - 1:
            raise ValueError(
                f"NB201 string must have {_NUM_NODES - 1} nodes separated by '+', "
                f"got {len(parts)} in {s!r}"
            )
        ops: list[str] = []
        for node, part in enumerate(parts, start=1):
            if len(part) < 2 or not (part.startswith("|") and part.endswith("|")):
                raise ValueError(f"node {node} {part!r} must start and end with '|' in {s!r}")
            tokens = part[1:-1].split("|")
            if len(tokens) != node:
                raise ValueError(
                    f"node {node} {part!r} must have {node} input edge(s), got {len(tokens)} in {s!r}"
                )
            for src, token in enumerate(tokens):
                op, sep, idx = token.partition("~")
                if not sep:
                    raise ValueError(f"edge {token!r} of node {node} lacks '~<input>' in {s!r}")
                if op not in _OP_INDEX:
                    raise ValueError(
                        f"unknown op {op!r} in edge {token!r} of node {node}; valid ops: {', '.join(OPS)}"
                    )
                if idx != str(src):
                    raise ValueError(
                        f"wrong input index '~{idx}' in edge {token!r} of node {node}: "
                        f"edge {src + 1} of a node must read '~{src}'"
                    )
                ops.append(op)
        # ops are collected node by node, sources ascending: exactly the EDGES order
        return self.from_ops(ops)

    def ops(self, a: Architecture) -> tuple[str, ...]:
        """The six edge ops of ``a`` (its ``spec``), in :data:`EDGES` order."""
        self.check_architecture(a)
        return a.spec

    # -- graphs --------------------------------------------------------------------
    def to_graph(self, a: Architecture) -> nx.DiGraph:
        """The cell as a ``DiGraph`` over nodes 0..3 with an ``op`` attribute per edge.

        All six edges are present, ``none`` edges included (with ``op="none"``),
        so the graph encodes the architecture faithfully (:meth:`from_graph`
        inverts it).
        """
        g = nx.DiGraph()
        g.add_nodes_from(range(_NUM_NODES))
        for (src, dst), op in zip(EDGES, self.ops(a)):
            g.add_edge(src, dst, op=op)
        return g

    def from_graph(self, g: nx.DiGraph) -> Architecture:
        """Inverse of :meth:`to_graph`; ``ValueError`` for a graph that is not an NB201 cell."""
        if not isinstance(g, nx.DiGraph):
            raise TypeError(f"expected a networkx.DiGraph, got {type(g).__name__}")
        if set(g.nodes) != set(range(_NUM_NODES)):
            raise ValueError(f"NB201 cell graph must have nodes 0..3, got {sorted(g.nodes, key=repr)}")
        extra = set(g.edges) - set(EDGES)
        if extra:
            raise ValueError(f"edges {sorted(extra)} are not NB201 cell edges; expected {list(EDGES)}")
        ops = []
        for src, dst in EDGES:
            if not g.has_edge(src, dst):
                raise ValueError(f"NB201 cell graph lacks edge {src}->{dst} (use op='none' for no connection)")
            if "op" not in g.edges[src, dst]:
                raise ValueError(f"edge {src}->{dst} has no 'op' attribute")
            ops.append(g.edges[src, dst]["op"])
        return self.from_ops(ops)

    # -- sampling, mutation, encoding, enumeration ----------------------------------
    def sample(self, rng: np.random.Generator) -> Architecture:
        """A uniformly random cell (each edge's op drawn independently and uniformly)."""
        return self.from_ops([OPS[k] for k in rng.integers(len(OPS), size=len(EDGES))])

    def mutate(self, a: Architecture, rng: np.random.Generator) -> Architecture:
        """``a`` with one uniformly chosen edge set to a uniformly chosen *different* op."""
        ops = list(self.ops(a))
        edge = int(rng.integers(len(EDGES)))
        others = [op for op in OPS if op != ops[edge]]
        ops[edge] = others[int(rng.integers(len(others)))]
        return self.from_ops(ops)

    def encode(self, a: Architecture) -> np.ndarray:
        """One-hot encoding, ``float32`` of shape ``(6, 5)``: row = edge, column = op.

        Callers that need a flat vector (e.g. a GP surrogate) use ``encode(a).ravel()``.
        """
        out = np.zeros((len(EDGES), len(OPS)), dtype=np.float32)
        out[np.arange(len(EDGES)), [_OP_INDEX[op] for op in self.ops(a)]] = 1.0
        return out

    def enumerate(self) -> Iterator[Architecture]:
        """All 15,625 cells in mixed-radix order (see :meth:`index`)."""
        for i in range(len(self)):
            yield self.from_ops([OPS[(i // len(OPS) ** (len(EDGES) - 1 - k)) % len(OPS)] for k in range(len(EDGES))])

    def __len__(self) -> int:
        return len(OPS) ** len(EDGES)

    def index(self, a: Architecture) -> int:
        """Position of ``a`` in :meth:`enumerate`.

        The six op indices (into :data:`OPS`) are the base-5 digits, edge (0->1)
        the most significant: ``|none~0|+...|none~2|`` is 0 and
        ``|avg_pool_3x3~0|+...|avg_pool_3x3~2|`` is 15,624.  This is not the
        benchmark's own index order (see the module docstring).
        """
        i = 0
        for op in self.ops(a):
            i = i * len(OPS) + _OP_INDEX[op]
        return i

    # -- equivalence classes -------------------------------------------------------
    def canonical(self, a: Architecture) -> str:
        """A string shared exactly by cells that compute the same function of the input ``x``.

        The cell output (node 3) is expanded symbolically: ``none`` contributes
        nothing, ``skip_connect`` passes its source through, every other op
        wraps its source (``conv1(..)``, ``conv3(..)``, ``pool(..)``), and a node
        is the commutative, associative sum of its inputs: nested sums are
        flattened into one multiset of terms (multiplicities kept, so ``x+x`` is
        not ``x``) and the terms are sorted, recursively.  An op applied to a
        zero node is zero (the benchmark's ``consider_zero`` convention: an
        all-zero map carries no information about the input, although a trained
        BatchNorm adds a constant bias to it).  Branches that do not reach node 3
        never appear.  An all-zero cell gives ``"0"``.  Example:
        ``conv3(x)+pool(conv1(x)+x)``.
        """
        ops = self.ops(a)
        nodes: list[tuple[str, ...]] = [("x",)]  # each node: sorted multiset of terms
        for node in range(1, _NUM_NODES):
            terms: list[str] = []
            for k, src in _in_edges(node):
                op, value = ops[k], nodes[src]
                if op == "none" or not value:
                    continue
                if op == "skip_connect":
                    terms.extend(value)
                else:
                    terms.append(f"{_CANONICAL_NAMES[op]}({'+'.join(value)})")
            nodes.append(tuple(sorted(terms)))
        return "+".join(nodes[-1]) or "0"

    def unique_str(self, a: Architecture, consider_zero: bool | None = True) -> str:
        """The benchmark's ``CellStructure.to_unique_str(consider_zero)``, reproduced exactly.

        With ``consider_zero=True`` (the default here) it partitions the 15,625
        cells into the 6,466 classes quoted by the NAS-Bench-201 paper; ``False``
        (the benchmark's default) gives 12,751 and ``None`` 15,625 classes.  Use
        :meth:`canonical` for true functional equivalence.
        """
        ops = self.ops(a)
        nodes = {0: "0"}
        for node in range(1, _NUM_NODES):
            cur = []
            for k, src in _in_edges(node):
                op, value = ops[k], nodes[src]
                if consider_zero is None:
                    x = f"({value})@{op}"
                elif consider_zero and (op == "none" or value == "#"):
                    x = "#"
                elif op == "skip_connect":
                    x = value
                else:
                    x = f"({value})@{op}"
                cur.append(x)
            nodes[node] = "+".join(sorted(cur))
        return nodes[_NUM_NODES - 1]

    def isomorphism_classes(self) -> tuple[tuple[Architecture, ...], ...]:
        """The 6,466 classes of :meth:`unique_str` (``consider_zero=True``: the NAS-Bench-201 paper's and Ning et
        al.'s "6466 unique structures"), each a tuple of its members in :meth:`enumerate` order, so its
        representative is its member of lowest :meth:`index`; the classes ordered by their representatives'
        index.  Computed once per process (about 0.2 s)."""
        return tuple(tuple(self.from_ops(ops) for ops in members) for members in _isomorphism_table()[0])

    def isomorphism_class(self, a: Architecture) -> int:
        """The index of ``a``'s :meth:`unique_str` class in :meth:`isomorphism_classes`."""
        return _isomorphism_table()[1][self.index(a)]

    def representative(self, a: Architecture) -> Architecture:
        return self.from_ops(_isomorphism_table()[0][self.isomorphism_class(a)][0])

    def isomorphic(self, a: Architecture) -> tuple[Architecture, ...]:
        return tuple(self.from_ops(ops) for ops in _isomorphism_table()[0][self.isomorphism_class(a)])

    # -- networks ------------------------------------------------------------------
    def build(
        self, a: Architecture, num_classes: int, *, in_channels: int = 3, C: int = 16, N: int = 5
    ) -> NB201Network:
        """The benchmark's network for ``a`` (see :class:`NB201Network`), freshly initialised."""
        num_classes, in_channels, C, N = _sizes(num_classes=num_classes, in_channels=in_channels, C=C, N=N)
        return NB201Network(self.ops(a), num_classes, in_channels=in_channels, C=C, N=N)

    def supernet(self, num_classes: int, *, in_channels: int = 3, C: int = 16, N: int = 5,
                 affine: bool = False) -> NB201Supernet:
        """A weight-sharing supernet over the whole space (see :class:`NB201Supernet`), freshly initialised;
        ``affine=True`` gives its BatchNorms affine parameters (default off, see the class docstring)."""
        num_classes, in_channels, C, N = _sizes(num_classes=num_classes, in_channels=in_channels, C=C, N=N)
        return NB201Supernet(self, num_classes, in_channels=in_channels, C=C, N=N, affine=affine)

    # -- continuous relaxation (differentiable NAS) ------------------------------------------
    def relaxation(self) -> dict[str, tuple[int, int]]:
        """One group of mixing weights, ``"cell"``: the six edges x the five ops (shared by every cell)."""
        return {"cell": (len(EDGES), len(OPS))}

    def relaxed_ops(self) -> tuple[str, ...]:
        return OPS

    def derive(self, weights) -> Architecture:
        """The strongest op of every edge (``none`` included), as the NAS-Bench-201 code's DARTS genotype.

        Ties go to the op listed first in :data:`OPS`.
        """
        w = self.check_relaxed_weights(weights)["cell"]
        return self.from_ops([OPS[int(k)] for k in np.argmax(w, axis=1)])


@functools.lru_cache(maxsize=1)
def _isomorphism_table() -> tuple[tuple[tuple[tuple[str, ...], ...], ...], tuple[int, ...]]:
    """(the classes' members as op tuples, the class index of every :meth:`NB201Space.index`), computed once."""
    space = NB201Space()
    classes: dict[str, list[tuple[str, ...]]] = {}
    of_index: list[str] = []
    for a in space.enumerate():
        key = space.unique_str(a, consider_zero=True)
        classes.setdefault(key, []).append(a.spec)
        of_index.append(key)
    position = {key: i for i, key in enumerate(classes)}  # dicts keep insertion order: by representative index
    return tuple(tuple(m) for m in classes.values()), tuple(position[k] for k in of_index)


# ---------------------------------------------------------------------------------
# network modules (the benchmark's TinyNetwork / InferCell)
# ---------------------------------------------------------------------------------
def _batch_norm(channels: int, bn: dict) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, affine=bn.get("affine", True),
                          track_running_stats=bn.get("track_running_stats", True))


def _sizes(**sizes) -> list[int]:
    """The network sizes, each checked to be a positive integer."""
    return [check_int(v, k) for k, v in sizes.items()]


class Zero(nn.Module):
    """The ``none`` op: maps any input to zeros of the same shape (no parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def _make_op(op: str, channels: int, bn: dict | None = None) -> nn.Module:
    bn = bn or {}
    if op == "none":
        return Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, **bn)
    if op == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, **bn)
    if op == "avg_pool_3x3":
        return avg_pool_3x3()
    raise ValueError(f"unknown op {op!r}; valid ops: {', '.join(OPS)}")


def _cell_plan(ops: Sequence[str]) -> tuple[tuple[int, tuple[tuple[int, int], ...]], ...]:
    """Per node that reaches the output through non-``none`` edges (ascending): its ``(edge, source)`` inputs."""
    needed = {_NUM_NODES - 1}
    for k in reversed(range(len(EDGES))):
        src, dst = EDGES[k]
        if ops[k] != "none" and dst in needed:
            needed.add(src)
    return tuple(
        (node, tuple((k, src) for k, src in _in_edges(node) if ops[k] != "none"))
        for node in range(1, _NUM_NODES)
        if node in needed
    )


def _run_plan(x: torch.Tensor, plan, edge) -> torch.Tensor:
    """Evaluate a cell plan; ``edge(k, input)`` applies edge ``k``'s op."""
    nodes = {0: x}
    for node, inputs in plan:
        out = None
        for k, src in inputs:
            y = edge(k, nodes[src])
            out = y if out is None else out + y
        nodes[node] = torch.zeros_like(x) if out is None else out
    return nodes[_NUM_NODES - 1]


class NB201Cell(nn.Module):
    """One NAS-Bench-201 cell: node i = sum over j < i of op_{j->i}(node j); output node 3.

    Every edge gets its module (so the parameter count matches the benchmark,
    which counts all ops), but ``forward`` skips ``none`` edges and edges into
    nodes that cannot reach node 3; a node without a computed input is a zero
    tensor shaped like the cell input.
    """

    def __init__(self, ops: Sequence[str], channels: int, *, affine: bool = True, track_running_stats: bool = True):
        super().__init__()
        self.ops = tuple(ops)
        bn = {"affine": affine, "track_running_stats": track_running_stats}
        self.edges = nn.ModuleList(_make_op(op, channels, bn) for op in self.ops)
        self._plan = _cell_plan(self.ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _run_plan(x, self._plan, lambda k, h: self.edges[k](h))

    def extra_repr(self) -> str:
        return f"ops={self.ops}"


class ResNetBasicBlock(nn.Module):
    """The benchmark's reduction block: out = shortcut(x) + conv_b(conv_a(x)), stride 2."""

    def __init__(self, c_in: int, c_out: int, *, affine: bool = True, track_running_stats: bool = True):
        super().__init__()
        bn = {"affine": affine, "track_running_stats": track_running_stats}
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2, **bn)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, **bn)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, kernel_size=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


def _macro_skeleton(net: nn.Module, num_classes: int, in_channels: int, C: int, N: int, bn: dict,
                    make_cell, container) -> None:
    """Give ``net`` the NB201 skeleton: ``stem``, ``cells`` (a ``container`` of the stages), ``lastact``,
    ``global_pooling``, ``classifier``, created in that order (so seeded initialisation is unchanged).

    The stages: ``N`` cells (``make_cell(channels)``) at ``C``, a reduction
    block ``C -> 2C``, ``N`` cells at ``2C``, a reduction ``2C -> 4C``, ``N``
    cells at ``4C``.  Shared by the standalone network and the supernet, so the
    two have the same parameter names (what lets a path be extracted).
    """
    net.stem = nn.Sequential(nn.Conv2d(in_channels, C, kernel_size=3, padding=1, bias=False), _batch_norm(C, bn))
    layers: list[nn.Module] = []
    for stage, channels in enumerate((C, 2 * C, 4 * C)):
        if stage > 0:
            layers.append(ResNetBasicBlock(channels // 2, channels, **bn))
        layers.extend(make_cell(channels) for _ in range(N))
    net.cells = container(layers)
    net.lastact = nn.Sequential(_batch_norm(4 * C, bn), nn.ReLU(inplace=True))
    net.global_pooling = nn.AdaptiveAvgPool2d(1)
    net.classifier = nn.Linear(4 * C, num_classes)


class NB201Network(nn.Module):
    """The NAS-Bench-201 macro skeleton (the benchmark's ``TinyNetwork``) around one cell.

    stem (Conv3x3 ``in_channels -> C``, no bias, + BN); ``N`` cells at ``C``;
    reduction block ``C -> 2C``; ``N`` cells at ``2C``; reduction ``2C -> 4C``;
    ``N`` cells at ``4C``; BN-ReLU; global average pooling; ``Linear(4C, num_classes)``.
    ``forward`` returns the logits only (the benchmark's returns ``(features, logits)``).
    ``affine`` / ``track_running_stats`` configure every BatchNorm (default: the
    benchmark's; :meth:`NB201Supernet.extract` turns both off, like the supernet).
    """

    def __init__(self, ops: Sequence[str], num_classes: int, *, in_channels: int = 3, C: int = 16, N: int = 5,
                 affine: bool = True, track_running_stats: bool = True):
        super().__init__()
        bn = {"affine": affine, "track_running_stats": track_running_stats}
        _macro_skeleton(self, num_classes, in_channels, C, N, bn, lambda ch: NB201Cell(ops, ch, **bn),
                        lambda layers: nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.lastact(self.cells(self.stem(x)))
        return self.classifier(torch.flatten(self.global_pooling(out), 1))


# ---------------------------------------------------------------------------------
# the weight-sharing supernet
# ---------------------------------------------------------------------------------
#: the ops that carry a module in the supernet (``none`` is the absence of one)
SUPERNET_OPS: tuple[str, ...] = tuple(op for op in OPS if op != "none")
_SUPERNET_BN = {"affine": False, "track_running_stats": False}


class SupernetCell(nn.Module):
    """A cell whose every edge holds one module per non-``none`` op (``edges[k][op]``), shared by all paths.

    ``bn``: the BatchNorms' ``affine`` / ``track_running_stats`` (default: the supernet policy, both off)."""

    def __init__(self, channels: int, bn: dict | None = None):
        super().__init__()
        bn = _SUPERNET_BN if bn is None else bn
        self.edges = nn.ModuleList(
            nn.ModuleDict({op: _make_op(op, channels, bn) for op in SUPERNET_OPS}) for _ in EDGES
        )

    def forward(self, x: torch.Tensor, ops: tuple[str, ...], plan) -> torch.Tensor:
        return _run_plan(x, plan, lambda k, h: self.edges[k][ops[k]](h))

    def mixed(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Every edge's weighted sum of its ops (``weights``: edges x :data:`OPS`; ``none`` adds zero)."""
        nodes = [x]
        for node in range(1, _NUM_NODES):
            out = None
            for k, src in _in_edges(node):
                h = nodes[src]
                for op in SUPERNET_OPS:
                    y = weights[k, _OP_INDEX[op]] * self.edges[k][op](h)
                    out = y if out is None else out + y
            nodes.append(out)
        return nodes[-1]


class NB201Supernet(nn.Module):
    """The NB201 weight-sharing supernet (one-shot model): the macro skeleton of :class:`NB201Network`
    in which every cell edge holds all non-``none`` ops with weights shared by every architecture.

    ``supernet(x, arch)`` runs the single path ``arch`` (an :class:`Architecture`
    of the space or a tuple of six op names): each edge applies the module of
    its op, ``none`` edges and dead branches are skipped exactly as in
    :class:`NB201Network`, so a path computes the same function as the
    standalone network given the same weights.

    BatchNorm policy: every BatchNorm is affine-free (``affine=False``, as the
    one-shot-estimator study recommends for supernet training) and keeps no
    running statistics (``track_running_stats=False``), so it always normalises
    with the statistics of the batch it sees, in training and in evaluation
    alike.  Running averages would mix the statistics of different paths; batch
    statistics need no recalibration per path.  Evaluations therefore use
    batches of a reasonable size (``Protocol.eval_batch_size``; a single image
    cannot be normalised).  ``affine=True`` (the one-shot strategies'
    ``bn_affine`` option, Ning et al. §6.3's comparison) gives every BatchNorm
    learnable affine parameters, shared like every other weight; running
    statistics stay off.

    :meth:`extract` gives a standalone :class:`NB201Network` for one path (same
    BatchNorm policy) holding a copy of the inherited weights: fine-tuning it
    never changes the supernet.
    """

    def __init__(self, space: NB201Space, num_classes: int, *, in_channels: int = 3, C: int = 16, N: int = 5,
                 affine: bool = False):
        super().__init__()
        if not isinstance(affine, bool):
            raise TypeError(f"NB201Supernet: affine must be True or False, got {affine!r}")
        self.space = space
        self.num_classes, self.in_channels, self.C, self.N = num_classes, in_channels, C, N
        self.bn = {**_SUPERNET_BN, "affine": affine}
        _macro_skeleton(self, num_classes, in_channels, C, N, self.bn,
                        lambda channels: SupernetCell(channels, self.bn), nn.ModuleList)
        self._plans: dict[tuple[str, ...], tuple] = {}

    @property
    def size(self) -> dict[str, int]:
        return {"C": self.C, "N": self.N}

    def path_ops(self, arch) -> tuple[str, ...]:
        """The six ops of ``arch`` (an architecture of the space, or a sequence of op names), validated."""
        if isinstance(arch, Architecture):
            return self.space.ops(arch)
        return self.space.from_ops(arch).spec

    def forward(self, x: torch.Tensor, arch) -> torch.Tensor:
        ops = self.path_ops(arch)
        plan = self._plans.get(ops)
        if plan is None:
            plan = self._plans[ops] = _cell_plan(ops)
        out = self.stem(x)
        for layer in self.cells:
            out = layer(out, ops, plan) if isinstance(layer, SupernetCell) else layer(out)
        out = self.lastact(out)
        return self.classifier(torch.flatten(self.global_pooling(out), 1))

    def mixed(self, x: torch.Tensor, weights) -> torch.Tensor:
        """The continuous relaxation: every edge of every cell outputs the weighted sum of all its ops.

        ``weights``: ``{"cell": tensor (6, 5)}`` (see :meth:`NB201Space.relaxation`), the mixing
        weights over :data:`OPS` shared by every cell; ``none`` contributes zero, so its weight only
        matters through the normalisation of the others.  All nodes are computed (no dead-branch pruning).
        """
        w = weights["cell"] if isinstance(weights, dict) else weights
        if tuple(w.shape) != (len(EDGES), len(OPS)):
            raise ValueError(f"NB201 mixing weights must have shape ({len(EDGES)}, {len(OPS)}), got {tuple(w.shape)}")
        out = self.stem(x)
        for layer in self.cells:
            out = layer.mixed(out, w) if isinstance(layer, SupernetCell) else layer(out)
        out = self.lastact(out)
        return self.classifier(torch.flatten(self.global_pooling(out), 1))

    def extract(self, arch) -> NB201Network:
        """A standalone network for path ``arch`` initialised with a copy of the supernet's weights.

        The network is an :class:`NB201Network` with the supernet's BatchNorm
        policy (batch statistics; affine-free unless ``affine``), on the supernet's device; its
        output equals ``self(x, arch)`` for every input.
        """
        ops = self.path_ops(arch)
        p = next(self.parameters())
        net = NB201Network(ops, self.num_classes, in_channels=self.in_channels, C=self.C, N=self.N,
                           **self.bn).to(device=p.device)
        shared = self.state_dict()
        state = {}
        for key in net.state_dict():
            parts = key.split(".")
            if parts[0] == "cells" and parts[2] == "edges":  # cells.<i>.edges.<k>.<rest> -> ...<k>.<op>.<rest>
                parts.insert(4, ops[int(parts[3])])
            state[key] = shared[".".join(parts)]
        net.load_state_dict(state)  # copies: the network owns its tensors
        return net

    def extra_repr(self) -> str:
        return (f"C={self.C}, N={self.N}, num_classes={self.num_classes}, ops per edge={SUPERNET_OPS}"
                + (", affine BatchNorm" if self.bn["affine"] else ""))
