"""Search-space contracts.

A :class:`SearchSpace` makes :class:`Architecture` values.  What a space can do
beyond the core (sample / parse / print / graph / build) is expressed by small
capability ABCs that a strategy can require: :class:`Mutable`,
:class:`Encodable`, :class:`Enumerable`, :class:`HasSupernet`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator
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
    "FixedEdgeOps",
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
    implement the abstract methods; ``default_size`` gives the network size
    ``build`` uses when a protocol does not say.
    """

    default_size: dict[str, Any] = {}

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


def require_capability(space: SearchSpace, capability: type, who: str) -> None:
    """Raise ``TypeError`` if ``space`` lacks ``capability`` (used by strategies)."""
    if not isinstance(space, capability):
        raise TypeError(
            f"{who} needs a search space with the {capability.__name__} capability; "
            f"space {getattr(space, 'name', space)!r} ({type(space).__name__}) does not provide it"
        )
