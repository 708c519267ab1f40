"""The DARTS cell search space (Liu et al., 2019; the space of NAS-Bench-301).

An architecture is a **normal** and a **reduction** cell.  Each cell has two
inputs, node 0 = the output of the cell before the previous one (``c_{k-2}``)
and node 1 = the output of the previous cell (``c_{k-1}``), and four
intermediate nodes 2..5; node ``i`` takes exactly two *distinct* inputs among
nodes ``0..i-1``, each through one of the seven ops of :data:`OPS`, and adds
them.  The cell output concatenates nodes 2..5 along the channels.

Strings
-------
An architecture's string is the DARTS ``Genotype`` text, exactly as the
official code prints a genotype (and as its ``genotypes.py`` writes
``DARTS_V2``)::

    Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...], normal_concat=[2, 3, 4, 5],
             reduce=[('max_pool_3x3', 0), ...], reduce_concat=[2, 3, 4, 5])

(one line; the list of a cell holds 8 ``(op, input)`` pairs, two per node in
node order).  :meth:`DartsSpace.from_string` also accepts the text with other
spacing, tuples instead of lists, positional fields, and NASLib's **compact**
encoding (below); every accepted form gives the same architecture, whose
string is the one-line text above.  The order of a node's two pairs is kept
(the peers' files round trip exactly); :meth:`DartsSpace.canonical` forgets it.
Concatenation must be ``[2, 3, 4, 5]`` (the space's cells concatenate every
intermediate node).  Parsing never evaluates code: the text is parsed with
:func:`ast.parse` and each field read with :func:`ast.literal_eval`.

Compact encoding
----------------
NASLib's compact form (``convert_genotype_to_compact`` in NASLib's
``naslib/search_spaces/nasbench301/conversions.py``; BANANAS; the keys of
NASLib's zero-cost NAS-Bench-301 file): two lists (normal, reduce) of 8
``(input, op index)`` pairs, op indices into :data:`OPS` (NASLib's order),
e.g. ``[[(0, 3), (1, 3), ...], [(0, 0), (1, 0), ...]]``.
:meth:`DartsSpace.to_compact` prints it as that file does;
:meth:`DartsSpace.from_compact` reads the text or nested sequences.

Equivalence (:meth:`DartsSpace.canonical`)
------------------------------------------
Two architectures are merged when, cell by cell, one turns into the other by

1. swapping the two ``(op, input)`` pairs of a node (a node is the sum of its
   two inputs, and addition commutes), and
2. renumbering the intermediate nodes 2..5 (a graph isomorphism that fixes
   the two cell inputs): the cell computes the same node values; only the
   order of the four blocks in the concatenated output changes, and every
   consumer of a cell output (the next cells' 1x1 preprocessing convolutions
   or FactorizedReduce, the auxiliary head's 1x1 convolution, the global
   pooling and linear classifier) is equivariant under a permutation of its
   input channels.  The networks therefore represent the same set of
   functions, and their initialisations have the same distribution.

Nothing else is merged: the two cell inputs are not interchangeable (they are
different feature maps with different preprocessing), the normal and the
reduction cell are not interchangeable, and ops are never identified with one
another (``skip_connect`` is a FactorizedReduce when it reads a cell input of
a reduction cell; a pooling reads with stride 2 there and stride 1 elsewhere).
The key is the ``Genotype`` text of the smallest representative, so it parses
back to an architecture of the class.

Network sizes
-------------
:meth:`DartsSpace.build` is the DARTS evaluation network (``NetworkCIFAR`` of
the official code, see :class:`DartsNetwork`).  Its depth is ``layers`` cells,
with reduction cells at ``layers // 3`` and ``2 * layers // 3``.  The space's
size parameters are the official code's ``C`` (initial channels) and
``layers`` (any value >= 3): the DARTS search network is ``layers=8``
(:attr:`DartsSpace.default_size`), the evaluation network ``layers=20``, the
engine's CPU-scale ``"small"`` size ``C=8, layers=5``.  (Before the space
owned its size the engine passed ``N`` normal cells per stage, ``layers = 3N +
2``; stores of that time are converted by :meth:`DartsSpace.legacy_size`.)

Supernet
--------
:meth:`DartsSpace.supernet` is a weight-sharing supernet in the layout of the
official search network (``cnn/model_search.py``'s ``Network``): all seven
ops on every candidate edge of every cell position, run one path at a time;
:meth:`DartsSupernet.extract` gives the evaluation network of a path with a
copy of its weights (see :class:`DartsSupernet` for what differs from
``model_search.py``).  The space is not :class:`~nas_engine.spaces.base.FixedEdgeOps`:
a path also chooses each node's inputs, so FairNAS's strict fairness (every
op on every edge once per step) is not defined on it.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Sequence

import networkx as nx
import numpy as np
import torch
from torch import nn

from nas_engine.config import check_bool, check_float, check_int
from nas_engine.registry import spaces
from nas_engine.spaces.base import Architecture, Encodable, Mutable, Relaxable, SearchSpace
from nas_engine.spaces.ops import ReLUConvBN, avg_pool_3x3, max_pool_3x3  # shared with NB201 / NB101

__all__ = ["OPS", "RELAXED_OPS", "CELLS", "DartsSpace", "DartsNetwork", "DartsCell", "DartsSupernet",
           "DartsSupernetCell", "AuxiliaryHeadCIFAR", "ReLUConvBN", "SepConv", "DilConv", "FactorizedReduce",
           "drop_path", "layers_for"]

#: The seven DARTS ops, in NASLib's compact-encoding order (op index = position here).
OPS: tuple[str, ...] = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                        "dil_conv_3x3", "dil_conv_5x5")
#: The columns of the continuous relaxation's mixing weights: the official DARTS ``PRIMITIVES`` (``none`` first,
#: then the seven ops above).  ``none`` takes part in the mixture, never in a derived architecture.
RELAXED_OPS: tuple[str, ...] = ("none", *OPS)
#: The two cells of an architecture, in spec / string / compact order.
CELLS: tuple[str, ...] = ("normal", "reduce")
#: intermediate nodes per cell and the cell inputs before them
STEPS, INPUTS = 4, 2
CONCAT: tuple[int, ...] = tuple(range(INPUTS, INPUTS + STEPS))  # (2, 3, 4, 5)
_PAIRS = 2 * STEPS
_OP_INDEX = {op: k for k, op in enumerate(OPS)}
#: the 14 possible edges (source, node) of a cell, node by node: the rows of :meth:`DartsSpace.encode`
EDGES: tuple[tuple[int, int], ...] = tuple((j, i) for i in range(INPUTS, INPUTS + STEPS) for j in range(i))
_EDGE_INDEX = {e: k for k, e in enumerate(EDGES)}

Cell = tuple[tuple[str, int], ...]  # 8 (op, input) pairs


def layers_for(N: int) -> int:
    """The number of cells of a network with ``N`` normal cells per stage: ``3 * N + 2``."""
    return 3 * N + 2


def _pairs_text(cell: Cell) -> str:
    return "[" + ", ".join(f"({op!r}, {j})" for op, j in cell) + "]"


def _genotype_text(spec: tuple[Cell, Cell]) -> str:
    concat = "[" + ", ".join(map(str, CONCAT)) + "]"
    return (f"Genotype(normal={_pairs_text(spec[0])}, normal_concat={concat}, "
            f"reduce={_pairs_text(spec[1])}, reduce_concat={concat})")


def _short(s: str, n: int = 80) -> str:
    return repr(s if len(s) <= n else s[:n] + "...")


@spaces.register("darts")
class DartsSpace(SearchSpace, Mutable, Encodable, Relaxable):
    """The DARTS space of normal + reduction cells (see the module docstring).

    The space has no configuration; :meth:`build` takes the network size
    (``C`` initial channels, ``layers`` cells; :attr:`default_size` is the
    DARTS search network, ``C=16``, 8 cells; ``"small"`` is 8 channels and 5
    cells, the CPU-scale network of the engine's reproductions).
    """

    default_size = {"C": 16, "layers": 8}
    named_sizes = {"small": {"C": 8, "layers": 5}, "tiny": {"C": 4, "layers": 5}}

    def check_size(self, size):
        out = super().check_size(size)
        if out.get("layers", 3) < 3:
            raise ValueError(f"space 'darts': size layers must be >= 3 (two reduction cells and a normal one), "
                             f"got {out['layers']!r}")
        return out

    def legacy_size(self, C: int, N: int) -> dict[str, int]:
        """An earlier version's ``C``/``N``: ``N`` normal cells per stage, i.e. ``layers = 3 * N + 2``."""
        return {"C": C, "layers": layers_for(N)}
    OPS = OPS

    # -- construction and text ---------------------------------------------------
    def from_cells(self, normal: Sequence, reduce: Sequence) -> Architecture:
        """The architecture with these cells: each a sequence of 8 ``(op, input)`` pairs, two per node.

        Node ``i`` (2..5) reads pairs ``2*(i-2)`` and ``2*(i-2)+1``; each input
        must be a node before ``i`` and the two inputs of a node distinct.
        """
        spec = (self._check_cell(normal, "normal"), self._check_cell(reduce, "reduce"))
        return Architecture(self, spec, _genotype_text(spec))

    def _check_cell(self, cell, name: str) -> Cell:
        if isinstance(cell, (str, bytes)) or not isinstance(cell, Sequence) or len(cell) != _PAIRS:
            raise ValueError(f"the {name} cell must be a list of {_PAIRS} (op, input) pairs (two per node), "
                             f"got {cell!r}")
        out = []
        for k, pair in enumerate(cell):
            node = INPUTS + k // 2
            if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
                raise ValueError(f"pair {k} of the {name} cell must be an (op, input) pair, got {pair!r}")
            op, j = pair
            if not isinstance(op, str) or op not in _OP_INDEX:
                raise ValueError(f"unknown op {op!r} in pair {k} (node {node}) of the {name} cell; "
                                 f"valid ops: {', '.join(OPS)}")
            if isinstance(j, (bool, np.bool_)) or not isinstance(j, (int, np.integer)) or not 0 <= j < node:
                raise ValueError(f"input {j!r} of pair {k} of the {name} cell: node {node} reads an integer "
                                 f"input 0..{node - 1} (0, 1: the cell inputs, 2..: earlier nodes)")
            out.append((str(op), int(j)))
        for i in range(STEPS):
            a, b = out[2 * i][1], out[2 * i + 1][1]
            if a == b:
                raise ValueError(f"node {INPUTS + i} of the {name} cell reads input {a} twice; "
                                 "a node's two inputs must be distinct nodes")
        return tuple(out)

    def from_string(self, s: str) -> Architecture:
        """Parse a DARTS ``Genotype(...)`` text or a NASLib compact text (see the module docstring).

        Malformed text raises a one-line ``ValueError`` naming the bad part and
        what was expected; a non-``str`` argument raises ``TypeError``.
        """
        if not isinstance(s, str):
            raise TypeError(f"expected a DARTS Genotype or compact string, got {type(s).__name__}: {s!r}")
        text = s.strip()
        if text.startswith("Genotype"):
            return self._from_genotype(text, s)
        if text.startswith(("[", "(")):
            return self.from_compact(text)
        raise ValueError(f"not a DARTS architecture string: {_short(s)}; expected "
                         "\"Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], reduce=[...], "
                         "reduce_concat=[2, 3, 4, 5])\" or NASLib's compact \"[[(0, 3), (1, 3), ...], [...]]\"")

    def _from_genotype(self, text: str, s: str) -> Architecture:
        fields = ("normal", "normal_concat", "reduce", "reduce_concat")
        try:
            tree = ast.parse(text, mode="eval").body
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            raise ValueError(f"malformed Genotype text {_short(s)}: not a Genotype(...) call") from None
        if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "Genotype"):
            raise ValueError(f"malformed Genotype text {_short(s)}: expected a single Genotype(...) call")
        if len(tree.args) > len(fields):
            raise ValueError(f"Genotype text {_short(s)} has {len(tree.args)} positional fields; expected at most 4 "
                             f"({', '.join(fields)})")
        values = {}
        nodes = list(zip(fields, tree.args)) + [(kw.arg, kw.value) for kw in tree.keywords]
        for key, node in nodes:
            if key not in fields:
                raise ValueError(f"unknown Genotype field {key!r} in {_short(s)}; expected {', '.join(fields)}")
            if key in values:
                raise ValueError(f"Genotype field {key!r} given twice in {_short(s)}")
            try:
                values[key] = ast.literal_eval(node)
            except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
                raise ValueError(f"Genotype field {key!r} in {_short(s)} is not a literal list") from None
        missing = [f for f in fields if f not in values]
        if missing:
            raise ValueError(f"Genotype text {_short(s)} lacks field(s) {', '.join(missing)}")
        for cell in CELLS:
            concat = values[f"{cell}_concat"]
            if isinstance(concat, (str, bytes)) or not isinstance(concat, Sequence) or tuple(concat) != CONCAT:
                raise ValueError(f"{cell}_concat must be [2, 3, 4, 5] (a cell concatenates all four intermediate "
                                 f"nodes), got {concat!r}")
        return self.from_cells(values["normal"], values["reduce"])

    def from_compact(self, compact) -> Architecture:
        """The architecture of NASLib's compact encoding: text or nested ``((input, op index) x 8) x 2``."""
        if isinstance(compact, str):
            try:
                value = ast.literal_eval(compact.strip())
            except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
                raise ValueError(f"malformed compact DARTS text {_short(compact)}: expected a literal "
                                 "[[(input, op index) x 8], [(input, op index) x 8]]") from None
        else:
            value = compact
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != len(CELLS):
            raise ValueError(f"compact DARTS encoding must be two cells (normal, reduce) of 8 (input, op index) "
                             f"pairs, got {_short(str(value))}")
        cells = []
        for name, cell in zip(CELLS, value):
            if isinstance(cell, (str, bytes)) or not isinstance(cell, Sequence) or len(cell) != _PAIRS:
                raise ValueError(f"the compact {name} cell must be {_PAIRS} (input, op index) pairs, got {cell!r}")
            pairs = []
            for k, pair in enumerate(cell):
                if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
                    raise ValueError(f"pair {k} of the compact {name} cell must be (input, op index), got {pair!r}")
                j, o = pair
                if isinstance(o, (bool, np.bool_)) or not isinstance(o, (int, np.integer)) or not 0 <= o < len(OPS):
                    raise ValueError(f"op index {o!r} in pair {k} of the compact {name} cell; expected 0..6 "
                                     f"({', '.join(f'{i}={op}' for i, op in enumerate(OPS))})")
                pairs.append((OPS[int(o)], j))
            cells.append(pairs)
        return self.from_cells(*cells)

    def to_compact(self, a: Architecture) -> str:
        """NASLib's compact encoding as text, in the form of NASLib's NAS-Bench-301 zero-cost file's keys."""
        return "[" + ", ".join("[" + ", ".join(f"({j}, {_OP_INDEX[op]})" for op, j in cell) + "]"
                               for cell in self.cells(a)) + "]"

    def cells(self, a: Architecture) -> tuple[Cell, Cell]:
        """``(normal, reduce)``: each cell's 8 ``(op, input)`` pairs (the architecture's ``spec``)."""
        self.check_architecture(a)
        return a.spec

    # -- graphs --------------------------------------------------------------------
    def cell_graph(self, a: Architecture, cell: str) -> nx.DiGraph:
        """One cell (``"normal"`` or ``"reduce"``) as a ``DiGraph`` over nodes 0..6.

        Nodes 0 and 1 are the cell inputs (``role="input"``), 2..5 the
        intermediate nodes (``role="node"``), 6 the output (``role="output"``).
        Each ``(op, input)`` pair of node ``i`` is an edge ``input -> i`` with
        ``op``; nodes 2..5 feed the output through edges with ``op="concat"``.
        """
        if cell not in CELLS:
            raise ValueError(f"cell must be 'normal' or 'reduce', got {cell!r}")
        pairs = self.cells(a)[CELLS.index(cell)]
        g = nx.DiGraph(cell=cell)
        out = INPUTS + STEPS
        for n in range(out + 1):
            g.add_node(n, role="input" if n < INPUTS else "output" if n == out else "node")
        for k, (op, j) in enumerate(pairs):
            g.add_edge(j, INPUTS + k // 2, op=op)
        for n in CONCAT:
            g.add_edge(n, out, op="concat")
        return g

    def to_graph(self, a: Architecture) -> nx.DiGraph:
        """Both cells in one ``DiGraph``: nodes ``(cell, n)``, the two cells' :meth:`cell_graph` side by side.

        ``("normal", n)`` and ``("reduce", n)`` for ``n`` in 0..6 (node
        attributes ``cell`` and ``role``; edges carry ``op``).  The two cells are
        disconnected components: in the network every cell reads the outputs of
        the two cells before it, which is macro structure, not part of the
        architecture.
        """
        g = nx.DiGraph(cells=CELLS)
        for cell in CELLS:
            sub = self.cell_graph(a, cell)
            for n, data in sub.nodes(data=True):
                g.add_node((cell, n), cell=cell, **data)
            for u, v, data in sub.edges(data=True):
                g.add_edge((cell, u), (cell, v), **data)
        return g

    # -- sampling, mutation, encoding --------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Architecture:
        """Uniform as in DARTS / NAS-Bench-301: per node two distinct inputs uniformly, each op uniformly.

        A node's two inputs are listed in ascending order (as NAS-Bench-301's
        configuration-to-genotype conversion lists them).
        """
        cells = []
        for _ in CELLS:
            pairs = []
            for i in range(INPUTS, INPUTS + STEPS):
                inputs = sorted(int(j) for j in rng.choice(i, size=2, replace=False))
                ops = rng.integers(len(OPS), size=2)
                pairs.extend((OPS[int(o)], j) for o, j in zip(ops, inputs))
            cells.append(pairs)
        return self.from_cells(*cells)

    def mutate(self, a: Architecture, rng: np.random.Generator) -> Architecture:
        """One local change: in a uniformly chosen cell and pair, a different op or a different input.

        Op or input with probability 1/2 each; an input change picks a node
        before the pair's node other than the current input and the node's
        other input (impossible for node 2, whose inputs are always 0 and 1:
        then the op changes).  The mutant is always another architecture, and
        never :meth:`canonical`-equal to ``a`` either.
        """
        cells = [list(c) for c in self.cells(a)]
        c = int(rng.integers(len(CELLS)))
        k = int(rng.integers(_PAIRS))
        op, j = cells[c][k]
        node = INPUTS + k // 2
        other = cells[c][k ^ 1][1]
        choices = [x for x in range(node) if x not in (j, other)]
        if choices and rng.random() < 0.5:
            cells[c][k] = (op, choices[int(rng.integers(len(choices)))])
        else:
            ops = [o for o in OPS if o != op]
            cells[c][k] = (ops[int(rng.integers(len(ops)))], j)
        return self.from_cells(*cells)

    def encode(self, a: Architecture) -> np.ndarray:
        """``float32`` of shape ``(2, 14, 7)``: per cell, per possible edge (:data:`EDGES`), a one-hot op row.

        Row ``(j, i)`` is zero when node ``i`` does not read node ``j``.  The
        order of a node's two pairs does not matter (swapped pairs encode
        alike).  Flatten with ``ravel()`` for a vector of 196 numbers.
        """
        out = np.zeros((len(CELLS), len(EDGES), len(OPS)), dtype=np.float32)
        for c, cell in enumerate(self.cells(a)):
            for k, (op, j) in enumerate(cell):
                out[c, _EDGE_INDEX[(j, INPUTS + k // 2)], _OP_INDEX[op]] = 1.0
        return out

    # -- equivalence -------------------------------------------------------------------
    def canonical(self, a: Architecture) -> str:
        """The ``Genotype`` text of the smallest member of ``a``'s class (see the module docstring).

        Per cell, over every renumbering of the intermediate nodes that keeps
        each node's inputs before it, the cell is written with each node's
        pairs sorted and the nodes in order; the smallest such cell is kept.
        """
        return _genotype_text(tuple(_canonical_cell(cell) for cell in self.cells(a)))

    # -- networks ------------------------------------------------------------------
    def build(self, a: Architecture, num_classes: int, *, in_channels: int = 3, C: int = 16, layers: int = 8,
              auxiliary: bool = False, drop_path_prob: float = 0.0) -> DartsNetwork:
        """The DARTS evaluation network (``NetworkCIFAR``) for ``a``, freshly initialised.

        ``C`` initial channels (default 16), ``layers`` cells (default 8, at
        least 3).  ``auxiliary`` adds the
        auxiliary head after cell ``2 * layers // 3`` (it expects 8x8 maps
        there, i.e. 32x32 input); ``drop_path_prob`` is the network's
        ``drop_path_prob`` attribute (the official training script raises it
        linearly over the epochs).
        """
        who = "DartsSpace.build"
        num_classes, in_channels, C, layers = _sizes(who, num_classes, in_channels, C, layers)
        check_bool(auxiliary, "auxiliary", who=who)
        check_float(drop_path_prob, "drop_path_prob", low=0, high=1, high_open=True, who=who)
        return DartsNetwork(self.cells(a), num_classes, C=C, layers=layers, auxiliary=auxiliary,
                            drop_path_prob=drop_path_prob, in_channels=in_channels)

    def supernet(self, num_classes: int, *, in_channels: int = 3, C: int = 16, layers: int = 8,
                 affine: bool = False) -> DartsSupernet:
        """A weight-sharing supernet over the whole space (see :class:`DartsSupernet`), freshly initialised.

        Sizes as :meth:`build` (``layers`` cells, default 8 = the DARTS search
        network); no auxiliary head, no drop path.  ``affine=True`` gives its
        BatchNorms affine parameters (default off).
        """
        num_classes, in_channels, C, layers = _sizes("DartsSpace.supernet", num_classes, in_channels, C, layers)
        return DartsSupernet(self, num_classes, in_channels=in_channels, C=C, layers=layers, affine=affine)

    # -- continuous relaxation (differentiable NAS) ------------------------------------------
    def relaxation(self) -> dict[str, tuple[int, int]]:
        """Two groups of mixing weights, ``"normal"`` and ``"reduce"``: the 14 edges (:data:`EDGES`) x
        :data:`RELAXED_OPS` (8, ``none`` first), as the official DARTS ``alphas_normal`` / ``alphas_reduce``."""
        return {cell: (len(EDGES), len(RELAXED_OPS)) for cell in CELLS}

    def relaxed_ops(self) -> tuple[str, ...]:
        return RELAXED_OPS

    def derive(self, weights) -> Architecture:
        """The DARTS rule (the official ``genotype()``), per cell: for each node, the two incoming edges
        whose strongest non-``none`` weight is largest, each with its strongest non-``none`` op.

        A node's two pairs are listed strongest edge first; ties go to the lower input (edges) and to the op
        listed first in :data:`OPS` (ops), as the official code's stable sort and argmax do.
        """
        w = self.check_relaxed_weights(weights)
        cells = []
        for cell in CELLS:
            W = w[cell][:, 1:]  # drop the ``none`` column
            pairs = []
            for node in range(INPUTS, INPUTS + STEPS):
                rows = [(j, W[_EDGE_INDEX[(j, node)]]) for j in range(node)]
                best = sorted(rows, key=lambda r: -float(r[1].max()))[:2]
                pairs.extend((OPS[int(np.argmax(row))], j) for j, row in best)
            cells.append(pairs)
        return self.from_cells(*cells)


def _sizes(who: str, num_classes, in_channels, C, layers) -> tuple[int, int, int, int]:
    """``num_classes, in_channels, C, layers``, checked."""
    num_classes = check_int(num_classes, "num_classes", who=who)
    in_channels = check_int(in_channels, "in_channels", who=who)
    return num_classes, in_channels, check_int(C, "C", who=who), check_int(layers, "layers", low=3, who=who)


def _canonical_cell(cell: Cell) -> Cell:
    nodes = [tuple(sorted(cell[2 * i: 2 * i + 2], key=lambda p: (p[1], p[0]))) for i in range(STEPS)]
    best = None
    for perm in itertools.permutations(range(STEPS)):  # perm[i]: the new number (0-based) of node 2 + i
        relabel = {0: 0, 1: 1, **{INPUTS + i: INPUTS + p for i, p in enumerate(perm)}}
        new: list = [None] * STEPS
        ok = True
        for i, pairs in enumerate(nodes):
            target = relabel[INPUTS + i]
            moved = tuple(sorted(((op, relabel[j]) for op, j in pairs), key=lambda p: (p[1], p[0])))
            if any(j >= target for _, j in moved):
                ok = False
                break
            new[target - INPUTS] = moved
        if ok:
            key = tuple(itertools.chain.from_iterable(new))
            if best is None or _sort_key(key) < _sort_key(best):
                best = key
    return best


def _sort_key(cell: Cell):
    return tuple((j, _OP_INDEX[op]) for op, j in cell)


# ---------------------------------------------------------------------------------
# network modules: the official DARTS code's cnn/operations.py and cnn/model.py
# ---------------------------------------------------------------------------------
class DilConv(nn.Sequential):
    """ReLU -> dilated depthwise conv -> pointwise 1x1 conv -> BatchNorm2d (DARTS ``DilConv``)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, dilation: int,
                 affine: bool = True, track_running_stats: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel_size, stride=stride, padding=padding, dilation=dilation, groups=c_in,
                      bias=False),
            nn.Conv2d(c_in, c_out, 1, padding=0, bias=False),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_running_stats),
        )


class SepConv(nn.Sequential):
    """Two stacked ReLU -> depthwise conv -> pointwise conv -> BatchNorm blocks (DARTS ``SepConv``).

    The first block carries the stride; both keep ``c_in`` channels until the last pointwise conv.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel_size, stride=stride, padding=padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_in, 1, padding=0, bias=False),
            nn.BatchNorm2d(c_in, affine=affine, track_running_stats=track_running_stats),
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel_size, stride=1, padding=padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, padding=0, bias=False),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_running_stats),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution: ReLU, two stride-2 1x1 convs (the second offset by one pixel), concat, BN.

    Each stride-2 1x1 conv runs as a stride-1 1x1 conv on every second pixel (``x[:, :, ::2, ::2]``
    and ``x[:, :, 1::2, 1::2]``): the same outputs, parameters and multiply-adds.  A strided 1x1
    conv on a channels_last input with few input channels (fewer than oneDNN's channel block: 8 with
    AVX2, 16 with AVX-512) makes oneDNN's CPU backward-weights kernel write past its workspace
    (oneDNN issue 6035; heap corruption, an abort, in torch 2.13's CPU build); a stride-1 1x1 conv
    does not take that path.
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True, track_running_stats: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, padding=0, bias=False)  # stride 2 by subsampling, see above
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_running_stats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x[:, :, ::2, ::2]), self.conv_2(x[:, :, 1::2, 1::2])], dim=1))


def _make_op(op: str, C: int, stride: int, bn: dict | None = None) -> nn.Module:
    """DARTS ``OPS[op](C, stride, affine)``; ``bn`` holds the BatchNorms' ``affine`` / ``track_running_stats``
    (default: both on, the evaluation network's)."""
    bn = bn or {}
    if op == "max_pool_3x3":
        return max_pool_3x3(stride)
    if op == "avg_pool_3x3":
        return avg_pool_3x3(stride)
    if op == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(C, C, **bn)
    if op == "sep_conv_3x3":
        return SepConv(C, C, 3, stride, 1, **bn)
    if op == "sep_conv_5x5":
        return SepConv(C, C, 5, stride, 2, **bn)
    if op == "dil_conv_3x3":
        return DilConv(C, C, 3, stride, 2, 2, **bn)
    if op == "dil_conv_5x5":
        return DilConv(C, C, 5, stride, 4, 2, **bn)
    raise ValueError(f"unknown op {op!r}; valid ops: {', '.join(OPS)}")


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples with probability ``drop_prob`` and scale the rest by ``1 / (1 - drop_prob)``."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


def _preprocessing(c_prev_prev: int, c_prev: int, C: int, reduction_prev: bool, bn: dict) -> tuple[nn.Module,
                                                                                                  nn.Module]:
    """A cell's ``preprocess0`` (FactorizedReduce after a reduction cell, else 1x1 ReLUConvBN) and ``preprocess1``."""
    pre0 = FactorizedReduce(c_prev_prev, C, **bn) if reduction_prev else ReLUConvBN(c_prev_prev, C, 1, 1, 0, **bn)
    return pre0, ReLUConvBN(c_prev, C, 1, 1, 0, **bn)


class DartsCell(nn.Module):
    """One DARTS cell (the official ``Cell``): preprocess both inputs to ``C`` channels, four nodes, concat.

    ``preprocess0`` is a FactorizedReduce when the previous cell reduced (its
    input ``c_{k-2}`` then has twice the resolution), else a 1x1 ReLUConvBN;
    ``preprocess1`` a 1x1 ReLUConvBN.  In a reduction cell the ops that read a
    cell input have stride 2.  Drop path (training only) applies to every op's
    output except an identity ``skip_connect``.  ``affine`` / ``track_running_stats`` configure every
    BatchNorm (default: the official network's; the supernet's paths turn both off).
    """

    def __init__(self, pairs: Cell, c_prev_prev: int, c_prev: int, C: int, reduction: bool, reduction_prev: bool,
                 *, affine: bool = True, track_running_stats: bool = True):
        super().__init__()
        bn = {"affine": affine, "track_running_stats": track_running_stats}
        self.reduction = reduction
        self.preprocess0, self.preprocess1 = _preprocessing(c_prev_prev, c_prev, C, reduction_prev, bn)
        self.ops = nn.ModuleList(_make_op(op, C, 2 if reduction and j < INPUTS else 1, bn) for op, j in pairs)
        self.indices = tuple(j for _, j in pairs)
        self.multiplier = len(CONCAT)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(STEPS):
            s = 0
            for k in (2 * i, 2 * i + 1):
                op = self.ops[k]
                h = op(states[self.indices[k]])
                if self.training and drop_prob > 0.0 and not isinstance(op, nn.Identity):
                    h = drop_path(h, drop_prob)
                s = s + h
            states.append(s)
        return torch.cat([states[i] for i in CONCAT], dim=1)


def _network_skeleton(net: nn.Module, in_channels: int, C: int, layers: int, bn: dict,
                      make_cell) -> tuple[int, int]:
    """Give ``net`` the ``NetworkCIFAR`` / ``model_search.Network`` layout: ``stem`` and ``cells``
    (``make_cell(reduction, c_prev_prev, c_prev, c_curr, reduction_prev)`` for each of the ``layers`` cells);
    the caller adds its auxiliary head, if any, ``global_pooling`` and ``classifier``.  Shared by
    :class:`DartsNetwork` and :class:`DartsSupernet`, so the two have the same parameter names outside the
    cells' ops (what lets a path be extracted).  Returns the channels of cell ``2 * layers // 3``'s output
    (the auxiliary head's input) and of the last cell's output (the classifier's).
    """
    c_curr = 3 * C
    net.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr, **bn))
    c_prev_prev, c_prev, c_curr = c_curr, c_curr, C
    net.cells = nn.ModuleList()
    reduction_prev = False
    c_aux = c_prev
    for i in range(layers):
        reduction = i in (layers // 3, 2 * layers // 3)
        if reduction:
            c_curr *= 2
        net.cells.append(make_cell(reduction, c_prev_prev, c_prev, c_curr, reduction_prev))
        reduction_prev = reduction
        c_prev_prev, c_prev = c_prev, len(CONCAT) * c_curr
        if i == 2 * layers // 3:
            c_aux = c_prev
    return c_aux, c_prev


class AuxiliaryHeadCIFAR(nn.Module):
    """The DARTS auxiliary classifier (for 8x8 input maps): ReLU, 5x5/3 avg pool, 1x1 conv 128, 2x2 conv 768."""

    def __init__(self, C: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class DartsNetwork(nn.Module):
    """The DARTS CIFAR evaluation network (the official ``NetworkCIFAR``) around one genotype.

    Stem: 3x3 conv ``in_channels -> 3C`` (no bias) + BN.  Then ``layers``
    cells; cells ``layers // 3`` and ``2 * layers // 3`` are reduction cells
    (stride 2, channels doubled: ``C``, ``2C``, ``4C`` per stage), each cell
    reads the outputs of the two cells before it (the stem output for the
    first two) and outputs ``4 * C_stage`` channels.  An optional auxiliary
    head (:class:`AuxiliaryHeadCIFAR`) reads the output of cell ``2 * layers // 3``.
    Global average pooling and ``Linear(4 * 4C, num_classes)``.

    ``forward`` returns the logits; in training mode with the auxiliary head it
    returns ``(logits, auxiliary logits)`` as the official network does (its
    training adds ``0.4 * loss_aux``).  ``drop_path_prob`` is read at every
    forward pass (set it per epoch, as the official ``train.py`` does).
    ``affine`` / ``track_running_stats`` configure the stem's and the cells'
    BatchNorms (default: the official network's; :meth:`DartsSupernet.extract`
    turns both off, like the supernet).
    """

    def __init__(self, cells: tuple[Cell, Cell], num_classes: int, *, C: int = 16, layers: int = 8,
                 auxiliary: bool = False, drop_path_prob: float = 0.0, in_channels: int = 3, affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__()
        normal, reduce = cells
        self.layers, self.auxiliary, self.drop_path_prob = layers, auxiliary, drop_path_prob
        self.aux_position = 2 * layers // 3
        bn = {"affine": affine, "track_running_stats": track_running_stats}

        def make_cell(reduction, c_prev_prev, c_prev, c_curr, reduction_prev):
            return DartsCell(reduce if reduction else normal, c_prev_prev, c_prev, c_curr, reduction, reduction_prev,
                             **bn)

        c_aux, c_prev = _network_skeleton(self, in_channels, C, layers, bn, make_cell)
        if auxiliary:
            self.auxiliary_head = AuxiliaryHeadCIFAR(c_aux, num_classes)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor):
        logits_aux = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_position and self.auxiliary and self.training:
                logits_aux = self.auxiliary_head(s1)
        logits = self.classifier(torch.flatten(self.global_pooling(s1), 1))
        return logits if logits_aux is None else (logits, logits_aux)

    def extra_repr(self) -> str:
        return f"layers={self.layers}, auxiliary={self.auxiliary}, drop_path_prob={self.drop_path_prob}"


# ---------------------------------------------------------------------------------
# the weight-sharing supernet (the layout of the official cnn/model_search.py Network, run one path at a time)
# ---------------------------------------------------------------------------------
#: every BatchNorm of the supernet and of its extracted paths: affine-free, batch statistics only
_SUPERNET_BN = {"affine": False, "track_running_stats": False}


class DartsSupernetCell(nn.Module):
    """A search cell: the preprocessing of :class:`DartsCell`, and on each of the 14 candidate edges
    (:data:`EDGES`: node ``i`` may read nodes ``0..i-1``) one module per op of :data:`OPS` (``edges[e][op]``),
    shared by every path that uses that op on that edge.  Ops reading a cell input of a reduction cell have
    stride 2, as in the evaluation cell.

    ``forward(s0, s1, pairs)`` runs the 8 ``(op, input)`` pairs of one cell: node ``i`` sums its two chosen
    edges, each through its chosen op; the other 6 edges and the other ops are not run.
    """

    def __init__(self, c_prev_prev: int, c_prev: int, C: int, reduction: bool, reduction_prev: bool,
                 bn: dict | None = None):
        super().__init__()
        bn = _SUPERNET_BN if bn is None else bn
        self.reduction = reduction
        self.preprocess0, self.preprocess1 = _preprocessing(c_prev_prev, c_prev, C, reduction_prev, bn)
        self.edges = nn.ModuleList(
            nn.ModuleDict({op: _make_op(op, C, 2 if reduction and j < INPUTS else 1, bn) for op in OPS})
            for j, _ in EDGES
        )
        self.multiplier = len(CONCAT)

    def mixed(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Every edge outputs the weighted sum of its ops (``weights``: 14 edges x :data:`RELAXED_OPS`;
        ``none`` adds zero); node ``i`` sums all its incoming edges, as ``model_search.py``'s ``Cell``."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(INPUTS, INPUTS + STEPS):
            s = None
            for j in range(i):
                e = _EDGE_INDEX[(j, i)]
                for o, op in enumerate(OPS, start=1):
                    y = weights[e, o] * self.edges[e][op](states[j])
                    s = y if s is None else s + y
            states.append(s)
        return torch.cat([states[i] for i in CONCAT], dim=1)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, pairs: Cell) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(STEPS):
            s = 0
            for k in (2 * i, 2 * i + 1):  # the same order of summation as DartsCell
                op, j = pairs[k]
                s = s + self.edges[_EDGE_INDEX[(j, INPUTS + i)]][op](states[j])
            states.append(s)
        return torch.cat([states[i] for i in CONCAT], dim=1)


class DartsSupernet(nn.Module):
    """The DARTS weight-sharing supernet (one-shot model), run one path at a time.

    Layout: the official search network (``model_search.py``'s ``Network``),
    which is also the evaluation network's (:class:`DartsNetwork`) at the same
    ``C`` and ``layers``: stem (3x3 conv to ``3C`` + BN), ``layers`` cells with
    reduction cells at ``layers // 3`` and ``2 * layers // 3``, each cell's
    ``preprocess0`` / ``preprocess1`` as in the evaluation cell, global average
    pooling and a linear classifier.  Each cell (:class:`DartsSupernetCell`)
    holds all seven ops on each of its 14 candidate edges, with its own
    weights per cell position (normal and reduction cells alike, as
    ``model_search.py``'s ``MixedOp`` per cell and edge).

    ``supernet(x, arch)`` runs the single path ``arch`` (an
    :class:`Architecture` of the space, or a ``(normal, reduce)`` pair of
    8-pair cells): every normal cell runs the normal cell's pairs, every
    reduction cell the reduction cell's; node ``i`` adds its two chosen edges'
    chosen ops.  Unlike ``model_search.py`` no continuous mixture is computed
    (no architecture weights, no ``none`` op: the space has none), and the
    pooling ops carry no extra BatchNorm (so a path has exactly the evaluation
    network's modules and can be extracted).

    BatchNorm policy (as :class:`~nas_engine.spaces.nb201.NB201Supernet`):
    every BatchNorm, the stem's included, is affine-free and keeps no running
    statistics, normalising with the statistics of the batch it sees in
    training and evaluation alike (``model_search.py``: ``affine=False`` in
    the cells, an affine stem BN, running statistics everywhere).  ``affine=True``
    gives every BatchNorm affine parameters (the one-shot strategies' ``bn_affine``).

    :meth:`extract` gives a standalone :class:`DartsNetwork` for one path (same
    BatchNorm policy, no auxiliary head, no drop path) holding a copy of the
    path's weights.
    """

    def __init__(self, space: DartsSpace, num_classes: int, *, in_channels: int = 3, C: int = 16, layers: int = 8,
                 affine: bool = False):
        super().__init__()
        if not isinstance(affine, bool):
            raise TypeError(f"DartsSupernet: affine must be True or False, got {affine!r}")
        self.space = space
        self.num_classes, self.in_channels, self.C, self.layers = num_classes, in_channels, C, layers
        self.bn = {**_SUPERNET_BN, "affine": affine}

        def make_cell(reduction, c_prev_prev, c_prev, c_curr, reduction_prev):
            return DartsSupernetCell(c_prev_prev, c_prev, c_curr, reduction, reduction_prev, self.bn)

        _, c_prev = _network_skeleton(self, in_channels, C, layers, self.bn, make_cell)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    @property
    def size(self) -> dict[str, int]:
        return {"C": self.C, "layers": self.layers}

    def path_cells(self, arch) -> tuple[Cell, Cell]:
        """The ``(normal, reduce)`` cells of ``arch`` (an architecture of the space, or two cells), validated."""
        if isinstance(arch, Architecture):
            return self.space.cells(arch)
        if isinstance(arch, (str, bytes)) or not isinstance(arch, Sequence) or len(arch) != len(CELLS):
            raise ValueError(f"a DARTS supernet path is an architecture of the space or a (normal, reduce) pair of "
                             f"cells, got {_short(repr(arch))}")
        return self.space.from_cells(*arch).spec

    def forward(self, x: torch.Tensor, arch) -> torch.Tensor:
        normal, reduce = self.path_cells(arch)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, reduce if cell.reduction else normal)
        return self.classifier(torch.flatten(self.global_pooling(s1), 1))

    def mixed(self, x: torch.Tensor, weights) -> torch.Tensor:
        """The continuous relaxation (the official search network's forward): every normal cell mixes with
        ``weights["normal"]``, every reduction cell with ``weights["reduce"]`` (tensors of shape (14, 8) over
        :data:`RELAXED_OPS`).  Unlike ``model_search.py``'s ``MixedOp`` the pooling ops carry no extra
        BatchNorm (the paths stay extractable; see the class docstring)."""
        shape = (len(EDGES), len(RELAXED_OPS))
        for cell in CELLS:
            if cell not in weights or tuple(weights[cell].shape) != shape:
                raise ValueError(f"DARTS mixing weights must be a dict with 'normal' and 'reduce' tensors of shape "
                                 f"{shape}, got {_short(repr({k: tuple(v.shape) for k, v in weights.items()}))}")
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell.mixed(s0, s1, weights["reduce" if cell.reduction else "normal"])
        return self.classifier(torch.flatten(self.global_pooling(s1), 1))

    def extract(self, arch) -> DartsNetwork:
        """A standalone network for path ``arch`` initialised with a copy of the supernet's weights.

        The network is a :class:`DartsNetwork` at the supernet's size with the
        supernet's BatchNorm policy (affine-free, batch statistics), on the
        supernet's device; its output equals ``self(x, arch)`` for every input.
        """
        cells = self.path_cells(arch)
        p = next(self.parameters())
        net = DartsNetwork(cells, self.num_classes, C=self.C, layers=self.layers, in_channels=self.in_channels,
                           **self.bn).to(device=p.device)
        shared = self.state_dict()
        state = {}
        for key in net.state_dict():
            parts = key.split(".")
            if parts[0] == "cells" and parts[2] == "ops":  # cells.<c>.ops.<k>.<rest> -> cells.<c>.edges.<e>.<op>.<rest>
                k = int(parts[3])
                op, j = cells[1 if self.cells[int(parts[1])].reduction else 0][k]
                parts[2:4] = ["edges", str(_EDGE_INDEX[(j, INPUTS + k // 2)]), op]
            state[key] = shared[".".join(parts)]
        net.load_state_dict(state)  # copies: the network owns its tensors
        return net

    def extra_repr(self) -> str:
        return (f"C={self.C}, layers={self.layers}, num_classes={self.num_classes}, "
                f"ops per edge={len(OPS)}, edges per cell={len(EDGES)}")
