"""A search space restricted to a subset of its architectures (e.g. those a tabular benchmark holds).

:class:`RestrictedSpace` wraps any :class:`~nas_engine.spaces.base.SearchSpace`;
:meth:`nas_engine.benchmarks.table.CurveTable.restrict` makes one from a
table's architectures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import networkx as nx
import numpy as np

from .base import Architecture, Encodable, Enumerable, HasSupernet, Mutable, SearchSpace

__all__ = ["RestrictedSpace"]


class RestrictedSpace(SearchSpace, Mutable, Enumerable):
    """``space`` restricted to the architectures ``arch_strings`` (e.g. a table's).

    It has the base space's ``name`` (its architectures are the base space's:
    equal strings, equal architectures, compatible stores) and keeps its
    parsing, printing, graphs, networks, canonical form, encoding
    (:class:`Encodable` when the base space is) and supernet
    (:class:`HasSupernet` when the base space has one).  Within the subset:

    * ``sample`` draws uniformly;
    * ``mutate(a)`` returns one of the subset's architectures *nearest* to
      ``a`` other than ``a``, uniformly among the nearest.  Distance: when the
      base space's ``spec`` is a fixed-length tuple (NB201: the six edge ops),
      the number of differing positions (for NB201: of differing ops);
      otherwise, for an :class:`Encodable` base space, the L1 distance of the
      encodings; otherwise all other architectures are equally near;
    * ``enumerate`` lists the subset in the given order;
    * ``from_string`` and ``check_architecture`` refuse (``ValueError``) an
      architecture outside the subset.
    """

    def __new__(cls, space: SearchSpace, arch_strings: Iterable[str]):
        if cls is RestrictedSpace:  # add the optional capabilities the base space has
            caps = tuple(mixin for cap, mixin in ((Encodable, _EncodeMixin), (HasSupernet, _SupernetMixin))
                         if isinstance(space, cap))
            if caps:
                cls = _restricted_class(caps)
        return super().__new__(cls)

    def __init__(self, space: SearchSpace, arch_strings: Iterable[str]):
        if not isinstance(space, SearchSpace):
            raise TypeError(f"expected a SearchSpace to restrict, got {type(space).__name__}: {space!r}")
        if isinstance(arch_strings, str):
            raise TypeError("arch_strings must be an iterable of architecture strings, not one string")
        self.base = space
        self.default_size, self.named_sizes = space.default_size, space.named_sizes
        archs: dict[str, Architecture] = {}
        for s in arch_strings:
            b = space.from_string(s)
            archs.setdefault(b.string, Architecture(self, b.spec, b.string))
        if not archs:
            raise ValueError(f"cannot restrict space {space.name!r} to no architectures")
        self._archs = list(archs.values())
        self._index = {s: i for i, s in enumerate(archs)}
        self._features: tuple[str, np.ndarray] | None = None
        self.space, self.arch_strings = space, self.strings  # the constructor's arguments (its parameters)

    @property
    def strings(self) -> tuple[str, ...]:
        """The architecture strings of the subset, in order."""
        return tuple(a.string for a in self._archs)

    # -- identity -------------------------------------------------------------
    @property
    def name(self) -> str:
        """The base space's name: the subset's architectures are the base space's."""
        return self.base.name

    def to_config(self) -> dict[str, Any]:
        """The base space's configuration (a search adds the subset's fingerprint as ``space_subset``)."""
        return self.base.to_config()

    def __reduce__(self):
        return (RestrictedSpace, (self.base, self.strings))

    def __eq__(self, other) -> bool:
        return isinstance(other, RestrictedSpace) and self.base == other.base and self.strings == other.strings

    def __hash__(self) -> int:
        return hash((RestrictedSpace, self.base, self.strings))

    def __repr__(self) -> str:
        return f"RestrictedSpace({self.base!r}, {len(self._archs)} architectures)"

    def fingerprint(self) -> dict[str, Any]:
        """The subset's identity (for a search's stored config)."""
        digest = hashlib.sha256("\n".join(self.strings).encode()).hexdigest()[:16]
        return {"base": self.name, "architectures": len(self._archs), "sha256": digest}

    # -- the base space's operations, checked against the subset ----------------
    def check_architecture(self, a) -> None:
        super().check_architecture(a)
        if a.string not in self._index:
            raise ValueError(f"architecture {a.string!r} is not among the {len(self._archs)} "
                             f"architectures of {self!r}")

    def from_string(self, s: str) -> Architecture:
        b = self.base.from_string(s)
        i = self._index.get(b.string)
        if i is None:
            raise ValueError(f"architecture {s!r} is not among the {len(self._archs)} architectures of {self!r}")
        return self._archs[i]

    def to_graph(self, a: Architecture) -> nx.DiGraph:
        self.check_architecture(a)
        return self.base.to_graph(a)

    def check_size(self, size):
        return self.base.check_size(size)

    def legacy_size(self, C: int, N: int):
        return self.base.legacy_size(C, N)

    def build(self, a: Architecture, num_classes: int, *, in_channels: int = 3, **size):
        self.check_architecture(a)
        return self.base.build(a, num_classes, in_channels=in_channels, **size)

    def canonical(self, a: Architecture) -> str:
        self.check_architecture(a)
        return self.base.canonical(a)

    # -- sampling, mutation, enumeration ---------------------------------------
    def sample(self, rng: np.random.Generator) -> Architecture:
        return self._archs[int(rng.integers(len(self._archs)))]

    def mutate(self, a: Architecture, rng: np.random.Generator) -> Architecture:
        self.check_architecture(a)
        if len(self._archs) < 2:
            raise ValueError(f"cannot mutate within {self!r}: it has no other architecture")
        i = self._index[a.string]
        d = self._distances(i)
        d[i] = np.inf
        nearest = np.flatnonzero(d == d.min())
        return self._archs[int(nearest[int(rng.integers(len(nearest)))])]

    def _distances(self, i: int) -> np.ndarray:
        """Distances (float) from architecture ``i`` to every architecture of the subset."""
        if self._features is None:
            specs = [a.spec for a in self._archs]
            if all(isinstance(s, tuple) for s in specs) and len({len(s) for s in specs}) == 1:
                codes = [{v: k for k, v in enumerate(dict.fromkeys(col))} for col in zip(*specs)]
                m = np.array([[c[v] for c, v in zip(codes, s)] for s in specs], dtype=np.int64)
                self._features = ("hamming", m.reshape(len(specs), -1))
            elif isinstance(self.base, Encodable):
                m = np.stack([np.asarray(self.base.encode(a), dtype=np.float64).ravel() for a in self._archs])
                self._features = ("l1", m)
            else:
                self._features = ("none", np.zeros((len(specs), 0)))
        metric, m = self._features
        if metric == "hamming":
            return (m != m[i]).sum(axis=1).astype(np.float64)
        return np.abs(m - m[i]).sum(axis=1)

    def enumerate(self) -> Iterator[Architecture]:
        return iter(list(self._archs))

    def __len__(self) -> int:
        return len(self._archs)


class _EncodeMixin(Encodable):
    def encode(self, a: Architecture) -> np.ndarray:
        self.check_architecture(a)
        return self.base.encode(a)


class _SupernetMixin(HasSupernet):
    def supernet(self, num_classes: int, **size):
        return self.base.supernet(num_classes, **size)


_RESTRICTED_CLASSES: dict[tuple[type, ...], type] = {}


def _restricted_class(mixins: Sequence[type]) -> type:
    """The subclass of :class:`RestrictedSpace` with the given capability mixins (made once)."""
    key = tuple(mixins)
    if key not in _RESTRICTED_CLASSES:
        _RESTRICTED_CLASSES[key] = type("RestrictedSpace", (RestrictedSpace, *key), {
            "__module__": __name__, "__doc__": RestrictedSpace.__doc__,
        })
    return _RESTRICTED_CLASSES[key]
