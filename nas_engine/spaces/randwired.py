"""Randomly wired networks (RandWiredNN; Xie, Kirillov, Girshick and He, 2019), as the TSE paper uses them.

An architecture is a **random graph generator** with its hyperparameters, a
node count ``n`` and a seed.  The graphs come from networkx's own generators,
the three models of Xie et al. (Sec. 3.3):

* ``ws`` -- Watts-Strogatz WS(k, p): :func:`networkx.watts_strogatz_graph`.
  A ring of ``n`` nodes, each joined to its ``k/2`` neighbours on either side
  (``k`` even, ``2 <= k < n``); then, clockwise and ``k/2`` times round the
  ring, every edge ``(i, i+j)`` is rewired with probability ``p`` to a
  uniformly chosen node (no self-loops or duplicate edges).  This is exactly
  the procedure Xie et al. describe; as they do, connectivity is not enforced
  (a rare disconnected piece is still wired to the stage's input and output).
* ``er`` -- Erdos-Renyi ER(p): :func:`networkx.erdos_renyi_graph` (G(n, p)):
  every pair of nodes is joined with probability ``p`` (``0 <= p <= 1``).
* ``ba`` -- Barabasi-Albert BA(m): :func:`networkx.barabasi_albert_graph`:
  nodes are added one by one, each joined to ``m`` distinct existing nodes
  chosen by preferential attachment (``1 <= m < n``).  networkx starts from a
  star on nodes ``0..m`` (hub 0) where Xie et al. start from ``m`` isolated
  nodes (whose first new node then becomes the hub): the same model up to
  the index of the hub.

Nodes are indexed as networkx numbers them (the ring order for WS, the order
of addition for BA, Xie et al.'s conventions; arbitrary for ER, whose model is
exchangeable).

Graphs and DAGs
---------------
An undirected graph on nodes ``0..n-1`` becomes a DAG by node order: edge
``{i, j}`` points from the lower index to the higher.  One **input** vertex
feeds every node without predecessors and one **output** vertex takes every
node without successors (:func:`to_dag`).  In the DAG, vertex 0 is the input,
vertex ``i + 1`` is graph node ``i`` and vertex ``n + 1`` the output, so the
vertex numbers are a topological order.  Every node then lies on an
input-output path.

The network (:class:`RandWiredNetwork`, Xie et al.'s small regime sized for CPU)
----------------------------------------------------------------------------------
A 3x3 conv-BN **stem** (``in_channels -> max(1, C // 2)``, stride 1; Xie et
al.'s small regime has two stride-2 3x3 convs, conv1 and conv2, for 224-pixel
images), then ``stages`` **stages**, stage
``s`` a random graph with ``C * 2**s`` channels, then ReLU, global average
pooling and a linear classifier (Xie et al.'s 1x1 conv to 1280 channels before
the pooling is left out).  The space's size parameters
(``Protocol(size={"C": ..., "stages": ...})``) set them: ``C`` the channels of
the first stage, ``stages`` the number of random-graph stages (the paper's
small regime has 3: ``C, 2C, 4C``; :attr:`RandWiredSpace.default_size` is
``C=16, stages=3``).  Every stage uses the architecture's ``n`` nodes (the paper's
first random stage has ``n/2``).

A node (:class:`RandWiredNode`) aggregates its inputs by a weighted sum with
learned positive weights ``sigmoid(w)`` (``w`` starts at 0, one weight per
input; a single input is passed on unweighted), then applies ReLU, a 3x3
separable convolution (depthwise 3x3 then pointwise 1x1, no bias) and
BatchNorm.  Nodes fed by the stage input convolve with stride 2 (they also
change the channels); the output vertex is the unweighted mean of its inputs.

Stage graphs and seeds
----------------------
Each stage has its own graph, drawn by the generator with the *stage seed*
``seed + stage * 2**31`` (:func:`stage_seed`): the first stage's graph is the
generator's output for the architecture's seed itself, and seeds lie in
``[0, 2**31)``, so no two (seed, stage) pairs share a graph.
:meth:`RandWiredSpace.to_graph` gives the first stage's DAG; ``stage_graph``
and ``stage_dag`` give any stage's.

Strings
-------
``ws(k=4,p=0.75,n=16,seed=3)``, ``er(p=0.2,n=16,seed=0)``,
``ba(m=5,n=16,seed=1)``: the generator, its hyperparameters, the node count
and the seed, in that order, without spaces.  Integers are plain decimals;
``p`` is written in its shortest form (Python's ``repr`` without a trailing
``.0``: ``0``, ``1``, ``0.75``).  :meth:`RandWiredSpace.from_string` is strict
(``to_string(from_string(s)) == s`` for every string it accepts) and raises a
one-line ``ValueError`` naming the bad part and the rule.

Sampling, mutation, encoding, equivalence
-----------------------------------------
:meth:`RandWiredSpace.sample`: a generator uniformly among the space's
``generators``, ``n`` uniformly in ``[min_nodes, max_nodes]``, then WS ``k``
uniformly among the even numbers in ``[2, n-1]`` and ``p`` uniformly on the
grid ``0, 0.01, ..., 1``; ER ``p`` on the same grid; BA ``m`` uniformly in
``[1, n-1]`` (the ranges of Xie et al.'s Fig. 3: WS ``k`` even, ``p`` in
[0, 1]; ER ``p``; BA ``m`` from 1); the seed uniformly in ``[0, 2**31)``.
:meth:`RandWiredSpace.mutate` makes one change, drawn uniformly among: the
seed (a new one), ``n`` by +-1, ``k`` by +-2, ``p`` by +-0.05 (clipped to
[0, 1]), ``m`` by +-1, and the generator itself (another of the space's
generators with freshly sampled hyperparameters; ``n`` and the seed kept).
:meth:`RandWiredSpace.encode` is a fixed-length vector in [0, 1]: the one-hot
generator (``ws, er, ba``), ``n / max_nodes``, WS ``k / (max_nodes - 1)``, WS
``p``, ER ``p``, BA ``m / (max_nodes - 1)`` (zeros for the other generators'
slots); the seed is *not* encoded (it is noise for a surrogate model, so the
seeds of one setting encode equal).

:meth:`RandWiredSpace.canonical` is the string, except for settings where the
generator draws nothing at random -- WS with ``p = 0`` or ``k = n - 1``, ER
with ``p`` 0 or 1, BA with ``m = n - 1`` -- whose seeds all give one graph:
there it is the setting without the seed (:meth:`RandWiredSpace.setting`).
Other coincidences (two seeds drawing isomorphic graphs, the complete graph
from ``er(p=1)`` and ``ws(k=n-1)``) are not merged.

Generator settings (TSE Appendix E)
-----------------------------------
A *setting* is everything but the seed (``ws(k=4,p=0.75,n=16)``).  To select
among settings as the TSE paper does (69 settings x 8 seeds), make the seeds
of each setting with :meth:`RandWiredSpace.with_seeds` or
:meth:`RandWiredSpace.from_hyperparameters`, score every architecture, and
average a setting's scores over its seeds with
:meth:`RandWiredSpace.score_settings`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import torch
from torch import nn

from nas_engine.config import check_int
from nas_engine.registry import spaces
from nas_engine.spaces.base import Architecture, Encodable, Mutable, SearchSpace

__all__ = ["GENERATORS", "HYPERPARAMETERS", "MAX_SEED", "NODE_OP", "RandWiredSpec", "RandWiredSpace",
           "RandWiredNetwork", "RandWiredStage", "RandWiredNode", "SeparableConv", "random_graph", "to_dag",
           "stage_seed"]

#: The generators (networkx's), by short name.
GENERATORS: tuple[str, ...] = ("ws", "er", "ba")
#: Each generator's hyperparameters, in the order of the string.
HYPERPARAMETERS: dict[str, tuple[str, ...]] = {"ws": ("k", "p"), "er": ("p",), "ba": ("m",)}
_GENERATOR_NAMES = {"ws": "Watts-Strogatz", "er": "Erdos-Renyi", "ba": "Barabasi-Albert"}
#: Seeds lie in ``[0, MAX_SEED)`` (stage ``s`` of seed ``x`` uses ``x + s * MAX_SEED``).
MAX_SEED = 2**31
#: The op of every random-graph node in :func:`to_dag` (ReLU -> 3x3 separable conv -> BN).
NODE_OP = "relu-sepconv3x3-bn"
#: Sampling grid of ``p`` (``0, 0.01, ..., 1``) and the step by which ``mutate`` moves ``p``.
P_GRID, P_STEP = 100, 0.05

_INT = re.compile(r"0|[1-9][0-9]*")
_STRING = re.compile(r"(?P<gen>[A-Za-z0-9_]+)\((?P<args>[^()]*)\)")
_EXAMPLE = "'ws(k=4,p=0.75,n=16,seed=3)', 'er(p=0.2,n=16,seed=0)' or 'ba(m=5,n=16,seed=1)'"


# ---------------------------------------------------------------------------------
# graphs
# ---------------------------------------------------------------------------------
def format_p(p: float) -> str:
    """The shortest text of ``p`` that reads back to it (``repr`` without a trailing ``.0``)."""
    text = repr(float(p))
    return text[:-2] if text.endswith(".0") else text


def stage_seed(seed: int, stage: int) -> int:
    """The networkx seed of ``stage``'s graph: ``seed + stage * 2**31`` (stage 0: the seed itself)."""
    return int(seed) + int(stage) * MAX_SEED


def random_graph(generator: str, n: int, seed: int, **hp) -> nx.Graph:
    """The undirected graph networkx's generator draws for ``n`` nodes, hyperparameters ``hp`` and ``seed``.

    ``ws``: ``watts_strogatz_graph(n, k, p, seed)``; ``er``: ``erdos_renyi_graph(n, p, seed)``;
    ``ba``: ``barabasi_albert_graph(n, m, seed)``.  Nodes are ``0..n-1``.
    """
    if generator == "ws":
        return nx.watts_strogatz_graph(n, hp["k"], hp["p"], seed=seed)
    if generator == "er":
        return nx.erdos_renyi_graph(n, hp["p"], seed=seed)
    if generator == "ba":
        return nx.barabasi_albert_graph(n, hp["m"], seed=seed)
    raise ValueError(f"unknown generator {generator!r}; expected one of {', '.join(GENERATORS)}")


def to_dag(graph: nx.Graph) -> nx.DiGraph:
    """Xie et al.'s DAG of an undirected graph on nodes ``0..n-1`` (see the module docstring).

    Vertex 0 is the input, vertex ``i + 1`` graph node ``i`` (edges from the lower
    index to the higher), vertex ``n + 1`` the output; the input feeds every node
    without predecessors, the output takes every node without successors.  Vertex
    attribute ``op``: ``"input"``, :data:`NODE_OP` or ``"output"``.
    """
    n = graph.number_of_nodes()
    if set(graph.nodes) != set(range(n)) or n < 1:
        raise ValueError(f"to_dag needs a graph on nodes 0..n-1 (n >= 1), got nodes {sorted(graph.nodes)}")
    dag = nx.DiGraph()
    dag.add_node(0, op="input")
    dag.add_nodes_from((v + 1, {"op": NODE_OP}) for v in range(n))
    dag.add_node(n + 1, op="output")
    dag.add_edges_from((min(u, v) + 1, max(u, v) + 1) for u, v in graph.edges if u != v)
    roots = [v for v in range(1, n + 1) if dag.in_degree(v) == 0]
    sinks = [v for v in range(1, n + 1) if dag.out_degree(v) == 0]
    dag.add_edges_from((0, v) for v in roots)
    dag.add_edges_from((v, n + 1) for v in sinks)
    return dag


# ---------------------------------------------------------------------------------
# the space
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RandWiredSpec:
    """An architecture's spec: the generator, the node count, the seed and the generator's hyperparameters
    (``k`` and ``p`` for WS, ``p`` for ER, ``m`` for BA; the others ``None``)."""

    generator: str
    n: int
    seed: int
    k: int | None = None
    p: float | None = None
    m: int | None = None

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The generator's hyperparameters, in the order of the string."""
        return {name: getattr(self, name) for name in HYPERPARAMETERS[self.generator]}

    @property
    def setting(self) -> str:
        """The generator setting: the string without the seed (``ws(k=4,p=0.75,n=16)``)."""
        return f"{self.generator}({self._hp_text()}n={self.n})"

    @property
    def string(self) -> str:
        return f"{self.generator}({self._hp_text()}n={self.n},seed={self.seed})"

    def _hp_text(self) -> str:
        return "".join(f"{k}={format_p(v) if k == 'p' else v}," for k, v in self.hyperparameters.items())

    @property
    def deterministic(self) -> bool:
        """True when the generator draws nothing at random for these hyperparameters (every seed, one graph)."""
        if self.generator == "ws":
            return self.p == 0 or self.k == self.n - 1
        if self.generator == "er":
            return self.p in (0, 1)
        return self.m == self.n - 1


@spaces.register("randwired")
class RandWiredSpace(SearchSpace, Mutable, Encodable):
    """Randomly wired networks (see the module docstring).

    ``generators``: the generators the space holds (default all of
    :data:`GENERATORS`); ``min_nodes`` / ``max_nodes``: the range of the node
    count ``n`` (default 8..32; Xie et al. use 32, and 16 in the first random
    stage).  Architectures outside the space (another generator, ``n`` out of
    range) are refused by every constructor.  Size (:attr:`default_size`):
    ``C`` (the first random stage's channels) 16 and ``stages`` (random-graph
    stages) 3; ``"small"``: ``C=8``, 3 stages.
    """

    default_size = {"C": 16, "stages": 3}
    named_sizes = {"small": {"C": 8, "stages": 3}, "tiny": {"C": 4, "stages": 1}}

    def legacy_size(self, C: int, N: int) -> dict[str, int]:
        """An earlier version's ``C``/``N``: ``N`` counted the random-graph stages."""
        return {"C": C, "stages": N}

    def __init__(self, generators: Sequence[str] = GENERATORS, min_nodes: int = 8, max_nodes: int = 32):
        who = "RandWiredSpace"
        if isinstance(generators, str) or not isinstance(generators, Sequence) or not generators:
            raise ValueError(f"{who}: generators must be a non-empty list of names among {', '.join(GENERATORS)}, "
                             f"got {generators!r}")
        for g in generators:
            if g not in GENERATORS:
                raise ValueError(f"{who}: unknown generator {g!r}; expected names among {', '.join(GENERATORS)}")
        if len(set(generators)) != len(generators):
            raise ValueError(f"{who}: generators must not repeat a name, got {list(generators)}")
        self.generators = tuple(str(g) for g in generators)
        self.min_nodes = check_int(min_nodes, "min_nodes", low=3, who=who)
        self.max_nodes = check_int(max_nodes, f"max_nodes (min_nodes={self.min_nodes})", low=self.min_nodes,
                                   who=who)

    @classmethod
    def conformance_params(cls) -> dict[str, Any]:
        return {"min_nodes": 4, "max_nodes": 8}

    # -- construction and text ---------------------------------------------------------------------
    def architecture(self, generator: str, *, n: int, seed: int, **hp) -> Architecture:
        """The architecture of ``generator`` with hyperparameters ``hp``, ``n`` nodes and ``seed``.

        E.g. ``architecture("ws", k=4, p=0.75, n=16, seed=3)``.  Raises a one-line
        ``ValueError`` naming the broken rule.
        """
        if generator not in GENERATORS:
            raise ValueError(f"unknown generator {generator!r}; expected one of "
                             + ", ".join(f"{g} ({_GENERATOR_NAMES[g]})" for g in GENERATORS))
        if generator not in self.generators:
            raise ValueError(f"generator {generator!r} is not in this space (generators: "
                             f"{', '.join(self.generators)})")
        expected = HYPERPARAMETERS[generator]
        if set(hp) != set(expected):
            raise ValueError(f"{generator} ({_GENERATOR_NAMES[generator]}) takes the hyperparameters "
                             f"{', '.join(expected)}, got {', '.join(sorted(hp)) or 'none'}")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not self.min_nodes <= n <= self.max_nodes:
            raise ValueError(f"node count n must be an integer in [{self.min_nodes}, {self.max_nodes}] "
                             f"(the space's min_nodes..max_nodes), got {n!r}")
        n = int(n)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < MAX_SEED:
            raise ValueError(f"seed must be an integer in [0, 2**31), got {seed!r}")
        values: dict[str, Any] = {}
        if "k" in hp:
            k = hp["k"]
            if (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k % 2 or not 2 <= k < n):
                raise ValueError(f"WS k must be an even integer with 2 <= k < n (={n}) (each node joins k/2 "
                                 f"neighbours on either side of the ring), got {k!r}")
            values["k"] = int(k)
        if "p" in hp:
            p = hp["p"]
            if (isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating))
                    or not 0 <= p <= 1):
                raise ValueError(f"{generator.upper()} p must be a probability in [0, 1], got {p!r}")
            values["p"] = float(p)
        if "m" in hp:
            m = hp["m"]
            if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not 1 <= m < n:
                raise ValueError(f"BA m must be an integer with 1 <= m < n (={n}) (edges from each new node), "
                                 f"got {m!r}")
            values["m"] = int(m)
        spec = RandWiredSpec(generator, n, int(seed), **values)
        return Architecture(self, spec, spec.string)

    def from_string(self, s: str) -> Architecture:
        """Parse ``ws(k=4,p=0.75,n=16,seed=3)``, ``er(p=0.2,n=16,seed=0)``, ``ba(m=5,n=16,seed=1)``.

        Strict (``to_string(from_string(s)) == s``); a malformed or invalid string
        raises a one-line ``ValueError`` naming the bad part and the rule (a
        non-``str`` argument raises ``TypeError``).
        """
        if not isinstance(s, str):
            raise TypeError(f"expected a randwired architecture string, got {type(s).__name__}: {s!r}")
        match = _STRING.fullmatch(s)
        if match is None:
            raise ValueError(f"randwired string must look like {_EXAMPLE} (no spaces), got {s!r}")
        generator = match["gen"]
        if generator not in GENERATORS:
            raise ValueError(f"unknown generator {generator!r} in {s!r}; expected one of "
                             + ", ".join(f"{g} ({_GENERATOR_NAMES[g]})" for g in GENERATORS))
        keys = [*HYPERPARAMETERS[generator], "n", "seed"]
        items = match["args"].split(",")
        pairs = [item.partition("=") for item in items]
        if [key for key, _, _ in pairs] != keys or not all(sep for _, sep, _ in pairs):
            raise ValueError(f"{generator} string must give {', '.join(k + '=...' for k in keys)} in this order, "
                             f"got {match['args']!r} in {s!r}")
        values: dict[str, Any] = {}
        for key, _, text in pairs:
            if key == "p":
                values[key] = _parse_p(text, generator, s)
            elif _INT.fullmatch(text):
                values[key] = int(text)
            else:
                raise ValueError(f"{key}={text!r} in {s!r} must be a non-negative integer in plain decimals "
                                 f"(no sign, no leading zeros)")
        n, seed = values.pop("n"), values.pop("seed")
        try:
            return self.architecture(generator, n=n, seed=seed, **values)
        except ValueError as exc:
            raise ValueError(f"{exc} in {s!r}") from None

    def spec(self, a: Architecture) -> RandWiredSpec:
        """``a``'s :class:`RandWiredSpec` (generator, n, seed, hyperparameters)."""
        self.check_architecture(a)
        return a.spec

    def hyperparameters(self, a: Architecture) -> dict[str, Any]:
        """``a``'s generator hyperparameters (``{"k": 4, "p": 0.75}`` for WS, ``{"p": ...}`` ER, ``{"m": ...}`` BA)."""
        return self.spec(a).hyperparameters

    # -- generator settings (TSE Appendix E) -------------------------------------------------------
    def setting(self, a: Architecture) -> str:
        """``a``'s generator setting: its string without the seed (``ws(k=4,p=0.75,n=16)``)."""
        return self.spec(a).setting

    def with_seeds(self, a: Architecture, seeds: Iterable[int]) -> list[Architecture]:
        """``a``'s setting with each of ``seeds`` (distinct integers in ``[0, 2**31)``), in that order."""
        spec = self.spec(a)
        return self.from_hyperparameters(spec.generator, spec.n, seeds, **spec.hyperparameters)

    def from_hyperparameters(self, generator: str, n: int, seeds: Iterable[int], **hp) -> list[Architecture]:
        """One architecture per seed of one generator setting, e.g.
        ``from_hyperparameters("ws", 16, range(8), k=4, p=0.75)`` (the TSE paper's 8 seeds per setting)."""
        seeds = list(seeds)
        if not seeds:
            raise ValueError("seeds must hold at least one seed")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {seeds}")
        return [self.architecture(generator, n=n, seed=seed, **hp) for seed in seeds]

    def score_settings(self, scored: Iterable) -> dict[str, float]:
        """The mean score of every generator setting over its seeds: ``{setting: mean}``, best first.

        ``scored``: ``(architecture, score)`` pairs or objects with ``arch`` and
        ``score`` (the engine's ``Evaluation``, e.g. ``result.history``).  A
        failed evaluation's ``-inf`` makes its setting's mean ``-inf``.
        """
        sums: dict[str, list[float]] = {}
        for item in scored:
            arch, score = (item.arch, item.score) if hasattr(item, "arch") else item
            sums.setdefault(self.setting(arch), []).append(float(score))
        means = {key: (math.fsum(v) / len(v) if all(math.isfinite(x) for x in v) else -math.inf)
                 for key, v in sums.items()}
        return dict(sorted(means.items(), key=lambda kv: -kv[1]))

    # -- graphs ---------------------------------------------------------------------------------------
    def stage_graph(self, a: Architecture, stage: int = 0) -> nx.Graph:
        """The undirected graph of ``stage`` (networkx's generator with :func:`stage_seed`)."""
        spec = self.spec(a)
        stage = check_int(stage, "stage", low=0, who="RandWiredSpace.stage_graph")
        return random_graph(spec.generator, spec.n, stage_seed(spec.seed, stage), **spec.hyperparameters)

    def stage_dag(self, a: Architecture, stage: int = 0) -> nx.DiGraph:
        """The DAG of ``stage`` with its input (0) and output (``n + 1``) vertices (see :func:`to_dag`)."""
        dag = to_dag(self.stage_graph(a, stage))
        dag.graph.update(arch=a.string, stage=int(stage))
        return dag

    def to_graph(self, a: Architecture) -> nx.DiGraph:
        """The first stage's DAG (:meth:`stage_dag` with ``stage=0``): vertex 0 the input, ``1..n`` the
        generator's nodes ``0..n-1``, ``n + 1`` the output; each vertex has an ``op`` attribute."""
        return self.stage_dag(a, 0)

    # -- equivalence ------------------------------------------------------------------------------------
    def canonical(self, a: Architecture) -> str:
        """The string, or the setting (no seed) when the generator draws nothing at random for it."""
        spec = self.spec(a)
        return spec.setting if spec.deterministic else spec.string

    # -- sampling, mutation, encoding --------------------------------------------------------------------
    def _sample_hp(self, generator: str, n: int, rng: np.random.Generator) -> dict[str, Any]:
        if generator == "ws":
            return {"k": 2 * int(rng.integers(1, (n - 1) // 2 + 1)), "p": int(rng.integers(P_GRID + 1)) / P_GRID}
        if generator == "er":
            return {"p": int(rng.integers(P_GRID + 1)) / P_GRID}
        return {"m": int(rng.integers(1, n))}

    def sample(self, rng: np.random.Generator) -> Architecture:
        """A random architecture (see the module docstring for the ranges)."""
        generator = self.generators[int(rng.integers(len(self.generators)))]
        n = int(rng.integers(self.min_nodes, self.max_nodes + 1))
        hp = self._sample_hp(generator, n, rng)
        return self.architecture(generator, n=n, seed=int(rng.integers(MAX_SEED)), **hp)

    def _moves(self, spec: RandWiredSpec) -> list[str]:
        """The mutations that change ``spec``'s network (the seed only where it matters)."""
        moves = [] if spec.deterministic else ["seed"]
        if len(self.generators) > 1:
            moves.append("generator")
        if self.max_nodes > self.min_nodes:
            moves.append("n")
        if spec.generator == "ws" and spec.n - 1 >= 4:  # another even k in [2, n-1]
            moves.append("k")
        if spec.generator in ("ws", "er"):
            moves.append("p")
        if spec.generator == "ba" and spec.n - 1 >= 2:
            moves.append("m")
        return moves

    def mutate(self, a: Architecture, rng: np.random.Generator) -> Architecture:
        """One change to ``a`` (see the module docstring), always a different network: its
        :meth:`canonical` differs from ``a``'s (a new seed only where the seed matters)."""
        spec = self.spec(a)
        moves = self._moves(spec)
        move = moves[int(rng.integers(len(moves)))]
        generator, n, seed, hp = spec.generator, spec.n, spec.seed, spec.hyperparameters
        if move == "seed":
            seed = int(rng.integers(MAX_SEED - 1))
            seed += seed >= spec.seed  # uniform among the other seeds
        elif move == "generator":
            others = [g for g in self.generators if g != generator]
            generator = others[int(rng.integers(len(others)))]
            hp = self._sample_hp(generator, n, rng)
        elif move == "n":
            n = _step(n, 1, self.min_nodes, self.max_nodes, rng)
            if "k" in hp:
                hp["k"] = min(hp["k"], n - 1 - (n - 1) % 2)  # the largest even k < n when k no longer fits
            if "m" in hp:
                hp["m"] = min(hp["m"], n - 1)
        elif move == "k":
            hp["k"] = _step(hp["k"], 2, 2, n - 1 - (n - 1) % 2, rng)
        elif move == "p":
            up, down = min(1.0, round(hp["p"] + P_STEP, 10)), max(0.0, round(hp["p"] - P_STEP, 10))
            options = [q for q in (up, down) if q != hp["p"]]
            hp["p"] = options[int(rng.integers(len(options)))]
        else:  # "m"
            hp["m"] = _step(hp["m"], 1, 1, n - 1, rng)
        return self.architecture(generator, n=n, seed=seed, **hp)

    def encode(self, a: Architecture) -> np.ndarray:
        """``float32`` of shape ``(8,)`` in [0, 1]: one-hot generator (ws, er, ba), ``n / max_nodes``,
        WS ``k / (max_nodes - 1)``, WS ``p``, ER ``p``, BA ``m / (max_nodes - 1)`` (other generators' slots 0).

        The seed is not encoded: every seed of a setting encodes equal.
        """
        spec = self.spec(a)
        code = np.zeros(8, dtype=np.float32)
        code[GENERATORS.index(spec.generator)] = 1.0
        code[3] = spec.n / self.max_nodes
        if spec.generator == "ws":
            code[4], code[5] = spec.k / (self.max_nodes - 1), spec.p
        elif spec.generator == "er":
            code[6] = spec.p
        else:
            code[7] = spec.m / (self.max_nodes - 1)
        return code

    # -- networks --------------------------------------------------------------------------------------
    def build(self, a: Architecture, num_classes: int, *, in_channels: int = 3, C: int = 16,
              stages: int = 3) -> RandWiredNetwork:
        """The network for ``a`` (see :class:`RandWiredNetwork`), freshly initialised.

        ``C``: channels of the first random-graph stage (default 16); ``stages``:
        the number of random-graph stages (default 3), stage ``s`` with
        ``C * 2**s`` channels and the graph of :meth:`stage_dag` ``(a, s)``.
        """
        who = "RandWiredSpace.build"
        num_classes = check_int(num_classes, "num_classes", who=who)
        in_channels = check_int(in_channels, "in_channels", who=who)
        C = check_int(C, "C", who=who)
        stages = check_int(stages, "stages", who=who)
        dags = [self.stage_dag(a, s) for s in range(stages)]
        return RandWiredNetwork(dags, num_classes, in_channels=in_channels, C=C)


def _parse_p(text: str, generator: str, s: str) -> float:
    try:
        p = float(text)
    except ValueError:
        raise ValueError(f"{generator.upper()} p={text!r} in {s!r} is not a number; expected a probability in "
                         f"[0, 1] such as 0.75") from None
    if not 0 <= p <= 1:
        raise ValueError(f"{generator.upper()} p must be a probability in [0, 1], got p={text} in {s!r}")
    if format_p(p) != text:
        raise ValueError(f"p={text!r} in {s!r} must be written in its shortest form {format_p(p)!r} "
                         f"(strings round trip exactly)")
    return p


def _step(value: int, step: int, low: int, high: int, rng: np.random.Generator) -> int:
    """``value`` moved by ``+-step`` within ``[low, high]`` (a random direction where both fit)."""
    options = [v for v in (value - step, value + step) if low <= v <= high]
    return options[int(rng.integers(len(options)))]


# ---------------------------------------------------------------------------------
# network modules
# ---------------------------------------------------------------------------------
class SeparableConv(nn.Sequential):
    """A 3x3 separable convolution: depthwise 3x3 (``stride``, padding 1) then pointwise 1x1; no biases."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__(
            nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
        )


class RandWiredNode(nn.Module):
    """One node: weighted sum of its ``fan_in`` inputs with weights ``sigmoid(weight)`` (learned, positive;
    none for a single input) -> ReLU -> 3x3 separable conv (``c_in -> c_out``, ``stride``) -> BatchNorm."""

    def __init__(self, fan_in: int, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.fan_in = check_int(fan_in, "fan_in", who="RandWiredNode")
        self.weight = nn.Parameter(torch.zeros(fan_in)) if fan_in > 1 else None
        self.op = nn.Sequential(nn.ReLU(inplace=False), SeparableConv(c_in, c_out, stride), nn.BatchNorm2d(c_out))

    def aggregation_weights(self) -> torch.Tensor:
        """The positive weights of the inputs (``sigmoid(weight)``; ``[1.]`` for a single input)."""
        if self.weight is None:
            return torch.ones(1)
        return torch.sigmoid(self.weight)

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        if self.weight is None:
            x = inputs[0]
        else:
            w = torch.sigmoid(self.weight)
            x = w[0] * inputs[0]
            for i in range(1, self.fan_in):
                x = x + w[i] * inputs[i]
        return self.op(x)


class RandWiredStage(nn.Module):
    """One random-graph stage for a DAG of :func:`to_dag`: nodes fed by the input (vertex 0) convolve
    ``c_in -> c_out`` with stride 2, the others ``c_out -> c_out``; the output is the mean of its inputs."""

    def __init__(self, dag: nx.DiGraph, c_in: int, c_out: int):
        super().__init__()
        n = dag.number_of_nodes() - 2
        self.n = n
        self.inputs = [sorted(dag.predecessors(v)) for v in range(1, n + 1)]
        self.outputs = sorted(dag.predecessors(n + 1))
        self.nodes = nn.ModuleList(
            RandWiredNode(len(src), c_in, c_out, stride=2) if src == [0] else RandWiredNode(len(src), c_out, c_out)
            for src in self.inputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tensors = [x]
        for node, src in zip(self.nodes, self.inputs):
            tensors.append(node([tensors[u] for u in src]))
        out = tensors[self.outputs[0]]
        for u in self.outputs[1:]:
            out = out + tensors[u]
        return out / len(self.outputs)

    def extra_repr(self) -> str:
        return f"n={self.n}, edges={sum(len(s) for s in self.inputs) + len(self.outputs)}"


class RandWiredNetwork(nn.Module):
    """Stem (3x3 conv ``in_channels -> max(1, C // 2)``, stride 1, no bias, + BN); one
    :class:`RandWiredStage` per DAG, stage ``s`` at ``C * 2**s`` channels (stride 2 at its input);
    ReLU; global average pooling; ``Linear(C * 2**(stages - 1), num_classes)``.  Returns the logits."""

    def __init__(self, dags: Sequence[nx.DiGraph], num_classes: int, *, in_channels: int = 3, C: int = 16):
        super().__init__()
        if not dags:
            raise ValueError("RandWiredNetwork needs at least one stage graph")
        stem = max(1, C // 2)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem, 3, padding=1, bias=False), nn.BatchNorm2d(stem))
        channels, stages = stem, []
        for s, dag in enumerate(dags):
            stages.append(RandWiredStage(dag, channels, C * 2**s))
            channels = C * 2**s
        self.stages = nn.Sequential(*stages)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.stages(self.stem(x)))
        return self.classifier(out.mean(dim=(2, 3)))

