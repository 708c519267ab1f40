"""Search-space contracts.

A :class:`SearchSpace` makes :class:`Architecture` values.  What a space can do
beyond the core (sample / parse / print / graph / build) is expressed by small
capability ABCs that a strategy can require: :class:`Mutable`,
:class:`Encodable`, :class:`Enumerable`, :class:`HasSupernet`,
:class:`Relaxable` (a continuous relaxation, for differentiable NAS),
:class:`FixedEdgeOps` (an op per fixed edge) and :class:`IsomorphismClasses`
(architectures that are different strings of one cell).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator, Mapping
from typing import Any

import networkx as nx
import numpy as np

from ..config import Configurable

__all__ = [
    "Architecture",
    "SearchSpace",
    "Mutable",
    "Encodable",
    "Enumerable",
    "HasSupernet",
    "Relaxable",
    "FixedEdgeOps",
    "IsomorphismClasses",
    "require_capability",
]


class Architecture:
    """An immutable, hashable architecture made by a space.

    ``spec`` is the space's own hashable representation (for NB201 the tuple of
    six edge ops); ``string`` its canonical text form (the benchmark's string).
    Equality and hashing are by (space name, string).
    """

    __slots__ = ("_space", "_spec", "_string")

    def __init__(self, space: SearchSpace, spec: Hashable, string: str):
        object.__setattr__(self, "_space", space)
        object.__setattr__(self, "_spec", spec)
        object.__setattr__(self, "_string", string)

    def __setattr__(self, key, value):
        raise AttributeError("Architecture is immutable")

    @property
    def space(self) -> SearchSpace:
        return self._space

    @property
    def space_name(self) -> str:
        return self._space.name

    @property
    def spec(self) -> Hashable:
        return self._spec

    @property
    def string(self) -> str:
        return self._string

    @property
    def graph(self) -> nx.DiGraph:
        """A fresh ``networkx.DiGraph`` of the cell (see the space's ``to_graph``)."""
        return self._space.to_graph(self)

    def __str__(self) -> str:
        return self._string

    def __repr__(self) -> str:
        return f"Architecture({self.space_name!r}, {self._string!r})"

    def __eq__(self, other) -> bool:
        if not isinstance(other, Architecture):
            return NotImplemented
        return self.space_name == other.space_name and self._string == other._string

    def __hash__(self) -> int:
        return hash((self.space_name, self._string))

    def __reduce__(self):
        return (_rebuild_architecture, (self._space, self._string))


def _rebuild_architecture(space: SearchSpace, string: str) -> Architecture:
    return space.from_string(string)


class SearchSpace(Configurable, ABC):
    """Base class of every search space.

    A :class:`~nas_engine.config.Configurable`: its ``name`` is the name it is
    registered under, its constructor arguments are its configuration (stored
    with a search, so a resumed search must use an equal space).  Subclasses
    implement the abstract methods.

    **Size.**  A space owns its network's size parameters: ``default_size``
    declares them with their values in the benchmark's network (NB201
    ``{"C": 16, "N": 5}``, DARTS ``{"C": 16, "layers": 8}``, ...), and
    ``named_sizes`` adds named sizes over the same keys (every built-in space
    has ``"small"``, the CPU-scale network of ``Protocol.preset("small")``).
    :meth:`resolve_size` turns a protocol's ``scale`` and ``size`` into the
    complete, checked keyword arguments of :meth:`build` (and ``supernet``):
    an unknown key or a bad value raises ``ValueError`` naming it.  A value
    whose default is an ``int`` must be an integer >= 1, one whose default is
    a ``float`` a number > 0; :meth:`check_size` can add a space's own rules.
    """

    #: the size parameters and their values in the benchmark's network (``build``'s defaults)
    default_size: dict[str, Any] = {}
    #: further named sizes (e.g. ``"small"``), each a mapping over some of ``default_size``'s keys
    named_sizes: dict[str, dict[str, Any]] = {}

    def size_names(self) -> tuple[str, ...]:
        """The names :meth:`resolve_size` accepts as ``scale``: ``"default"`` and :attr:`named_sizes`."""
        return ("default", *self.named_sizes)

    def resolve_size(self, size: Mapping[str, Any] | None = None, *, scale: str = "default") -> dict[str, Any]:
        """The complete network size: the size named ``scale`` with ``size`` on top, checked
        (:meth:`check_size`).  A space without size parameters resolves every ``scale`` to ``{}``; a ``scale``
        the space does not name is refused unless ``size`` gives every size parameter."""
        covered = size is not None and set(self.default_size) <= set(size)  # every size parameter given
        if scale != "default" and scale not in self.named_sizes and self.default_size and not covered:
            raise ValueError(f"space {self.name!r} has no size named {scale!r}; its sizes: "
                             f"{', '.join(self.size_names())} (or give every size parameter: "
                             f"{', '.join(self.default_size)})")
        return self.check_size({**self.default_size, **self.named_sizes.get(scale, {}), **(size or {})})

    def check_size(self, size: Mapping[str, Any]) -> dict[str, Any]:
        """``size`` checked against the declared parameters (keys of :attr:`default_size`; values as the
        class docstring says); returns it as a plain dict.  Subclasses may add rules (call this first)."""
        if not isinstance(size, Mapping):
            raise ValueError(f"space {self.name!r}: a size must be a mapping, got {size!r}")
        known = ", ".join(self.default_size) or "none"
        out = {}
        for key, value in size.items():
            if key not in self.default_size:
                raise ValueError(f"space {self.name!r} has no size parameter {key!r}; its size parameters: "
                                 f"{known}")
            default = self.default_size[key]
            if isinstance(default, int) and not isinstance(default, bool):
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"space {self.name!r}: size {key} must be an integer >= 1, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
                    or value == float("inf"):
                raise ValueError(f"space {self.name!r}: size {key} must be a finite number > 0, got {value!r}")
            out[key] = value
        return out

    def legacy_size(self, C: int, N: int) -> dict[str, Any]:
        """The size that a protocol of an earlier version meant by ``C`` and ``N`` (stores written before
        the space owned its size).  Default: the keys ``C`` and ``N`` that the space declares."""
        return {k: v for k, v in (("C", C), ("N", N)) if k in self.default_size}

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Architecture:
        """A uniformly random architecture."""

    @abstractmethod
    def from_string(self, s: str) -> Architecture:
        """Parse ``s``; raise ``ValueError`` naming the bad part when malformed."""

    def to_string(self, a: Architecture) -> str:
        self.check_architecture(a)
        return a.string

    @abstractmethod
    def to_graph(self, a: Architecture) -> nx.DiGraph:
        """The cell as a ``networkx.DiGraph``."""

    @abstractmethod
    def build(self, a: Architecture, num_classes: int, *, in_channels: int = 3, **size):
        """A freshly initialised ``torch.nn.Module`` for ``a``."""

    def canonical(self, a: Architecture) -> str:
        """A key shared by functionally equivalent architectures (default: the string)."""
        self.check_architecture(a)
        return a.string

    def check_architecture(self, a) -> None:
        """Raise ``TypeError``/``ValueError`` unless ``a`` is an architecture of this space."""
        if not isinstance(a, Architecture):
            raise TypeError(f"expected an Architecture of space {self.name!r}, got {type(a).__name__}: {a!r}")
        if a.space_name != self.name:
            raise ValueError(f"architecture {a!r} belongs to space {a.space_name!r}, not {self.name!r}")

    # spaces are values: equal if same type and parameters
    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.get_params() == other.get_params()

    def __hash__(self) -> int:
        return hash((type(self), self.name))


class Mutable(ABC):
    @abstractmethod
    def mutate(self, a: Architecture, rng: np.random.Generator) -> Architecture:
        """A valid architecture that differs from ``a`` by one local change."""


class Encodable(ABC):
    @abstractmethod
    def encode(self, a: Architecture) -> np.ndarray:
        """A fixed-length numeric encoding (for surrogates such as BO's GP)."""


class Enumerable(ABC):
    @abstractmethod
    def enumerate(self) -> Iterator[Architecture]:
        """Every architecture of the space, in a fixed order."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of architectures in the space."""


class HasSupernet(ABC):
    @abstractmethod
    def supernet(self, num_classes: int, **size):
        """A weight-sharing supernet whose forward pass takes the architecture to run."""


class Relaxable(HasSupernet):
    """A continuous relaxation of the space (differentiable NAS: DARTS, DrNAS and their TSE variants).

    Every candidate edge mixes *all* its candidate ops with weights: the mixing
    weights are a dict ``{group: array of shape relaxation()[group]}`` whose
    rows are edges and whose columns are :meth:`relaxed_ops` (for NB201 one
    group ``"cell"`` of shape (6, 5); for the DARTS space ``"normal"`` and
    ``"reduce"`` of shape (14, 8), ``none`` included).  The space's supernet
    computes the mixture with ``supernet.mixed(x, weights)`` (weights as
    tensors; each edge's output is the weighted sum of its ops' outputs, a
    ``none`` op contributing zero), sharing its weights with the single paths
    ``supernet(x, arch)`` runs.  :meth:`derive` turns mixing weights into the
    architecture the space's rule selects (NB201: the strongest op per edge;
    DARTS: the two strongest incoming edges per node, ``none`` excluded, each
    with its strongest non-``none`` op).
    """

    @abstractmethod
    def relaxation(self) -> dict[str, tuple[int, int]]:
        """The shape ``(edges, len(relaxed_ops()))`` of each group of mixing weights, by group name."""

    @abstractmethod
    def relaxed_ops(self) -> tuple[str, ...]:
        """The op names of the mixing weights' columns, in order."""

    @abstractmethod
    def derive(self, weights: Mapping[str, Any]) -> Architecture:
        """The architecture the space's selection rule picks from mixing ``weights`` (arrays or tensors)."""

    def check_relaxed_weights(self, weights: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """``weights`` as float64 arrays, checked: the groups of :meth:`relaxation`, their shapes, finite values.

        Raises ``ValueError`` naming the bad group or value.
        """
        shapes = self.relaxation()
        if not isinstance(weights, Mapping) or set(weights) != set(shapes):
            got = sorted(weights) if isinstance(weights, Mapping) else type(weights).__name__
            raise ValueError(f"mixing weights for space {self.name!r} must be a dict with keys {sorted(shapes)}, "
                             f"got {got}")
        out = {}
        for group, shape in shapes.items():
            w = weights[group]
            if hasattr(w, "detach"):
                w = w.detach().cpu().numpy()
            w = np.asarray(w, dtype=np.float64)
            if w.shape != tuple(shape):
                raise ValueError(f"mixing weights {group!r} of space {self.name!r} must have shape {tuple(shape)} "
                                 f"(edges x ops {self.relaxed_ops()}), got {w.shape}")
            if not np.all(np.isfinite(w)):
                raise ValueError(f"mixing weights {group!r} of space {self.name!r} contain non-finite values")
            out[group] = w
        return out


class FixedEdgeOps(ABC):
    """Every edge of the cell chooses its op from one fixed set: ``OPS`` (op names), ``EDGES`` (the edges, in
    the order ``from_ops`` takes them) and ``from_ops(ops)`` (the architecture with ``ops[k]`` on edge ``k``).

    FairNAS's strict fairness needs it: each step trains ``len(OPS)`` paths that use every op on every edge once.
    """

    OPS: tuple[str, ...] = ()
    EDGES: tuple[Any, ...] = ()

    @abstractmethod
    def from_ops(self, ops) -> Architecture:
        """The architecture whose edge ``EDGES[k]`` carries ``ops[k]``."""


class IsomorphismClasses(ABC):
    """The space's architectures fall into isomorphism classes: different strings of one cell (the one-shot
    strategies' ``deiso`` sampling and ``post_deiso`` averaging need it).

    * :meth:`isomorphism_classes` -- every class as a tuple of its members, in a fixed order; a class's first
      member is its *representative*;
    * :meth:`isomorphism_class` -- the index of ``a``'s class in that tuple;
    * :meth:`representative` and :meth:`isomorphic` -- ``a``'s class representative and its class's members.
    """

    @abstractmethod
    def isomorphism_classes(self) -> tuple[tuple[Architecture, ...], ...]:
        """Every isomorphism class of the space (its members, representative first), in a fixed order."""

    @abstractmethod
    def isomorphism_class(self, a: Architecture) -> int:
        """The index of ``a``'s class in :meth:`isomorphism_classes`."""

    def representative(self, a: Architecture) -> Architecture:
        """The first member of ``a``'s isomorphism class."""
        return self.isomorphism_classes()[self.isomorphism_class(a)][0]

    def isomorphic(self, a: Architecture) -> tuple[Architecture, ...]:
        """Every member of ``a``'s isomorphism class (``a`` included), representative first."""
        return self.isomorphism_classes()[self.isomorphism_class(a)]


def require_capability(space: SearchSpace, capability: type, who: str) -> None:
    """Raise ``TypeError`` if ``space`` lacks ``capability`` (used by strategies)."""
    if not isinstance(space, capability):
        raise TypeError(
            f"{who} needs a search space with the {capability.__name__} capability; "
            f"space {getattr(space, 'name', space)!r} ({type(space).__name__}) does not provide it"
        )
