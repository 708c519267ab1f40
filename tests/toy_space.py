"""A tiny enumerable space for tests: a chain of `n` layers, each 'a' or 'b'."""

from __future__ import annotations

import itertools

import networkx as nx
import torch.nn as nn

from nas_engine.spaces.base import Architecture, Enumerable, Mutable, SearchSpace


class _ToyBase(SearchSpace, Enumerable):
    name = "toy"

    def __init__(self, n: int = 3):
        self.n = n

    def _make(self, spec):
        return Architecture(self, tuple(spec), "".join(spec))

    def sample(self, rng):
        return self._make(rng.choice(["a", "b"], size=self.n).tolist())

    def from_string(self, s):
        if not isinstance(s, str) or len(s) != self.n or set(s) - {"a", "b"}:
            raise ValueError(f"bad toy architecture {s!r}: expected {self.n} letters from 'ab'")
        return self._make(list(s))

    def to_graph(self, a):
        g = nx.DiGraph()
        for i, op in enumerate(a.spec):
            g.add_edge(i, i + 1, op=op)
        return g

    def build(self, a, num_classes, *, in_channels=3, **size):
        layers = [nn.Flatten()]
        for op in a.spec:
            layers += [nn.LazyLinear(16), nn.ReLU() if op == "a" else nn.Tanh()]
        layers.append(nn.Linear(16, num_classes))
        return nn.Sequential(*layers)

    def enumerate(self):
        for spec in itertools.product("ab", repeat=self.n):
            yield self._make(spec)

    def __len__(self):
        return 2**self.n


class _ToyMutable(_ToyBase, Mutable):
    def mutate(self, a, rng):
        i = int(rng.integers(self.n))
        spec = list(a.spec)
        spec[i] = "b" if spec[i] == "a" else "a"
        return self._make(spec)


def ToySpace(n: int = 3, mutable: bool = True):
    return (_ToyMutable if mutable else _ToyBase)(n)
