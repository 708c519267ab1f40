"""Regularised (aging) evolution, Real et al. 2019 (``regularized-evolution``).

The first ``P`` proposals are uniform random samples (the initial population).
After that, each proposal samples ``S`` members of the population uniformly
without replacement, takes the best of that tournament as the parent and
proposes a mutation of it.  Every evaluated child joins the population and the
oldest member is removed, so the population is always the ``P`` most recent
evaluations (aging).  Failed candidates enter with score ``-inf`` and age out.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config import check_int
from ..registry import strategies
from ..spaces.base import Architecture, Enumerable, Mutable
from .base import Strategy

__all__ = ["RegularizedEvolution"]

_MUTATION_TRIES = 100


@strategies.register("regularized-evolution")
class RegularizedEvolution(Strategy):
    """Aging evolution with population ``population_size`` (P) and tournament ``sample_size`` (S).

    With ``scale_to_budget`` (default) and an evaluation budget E smaller than
    2P, the population shrinks to ``max(2, E // 2)`` and the tournament in
    proportion (at least 2, at most P), so that a small search still evolves
    (e.g. E=12 gives P=6, S=2).
    """

    requires = (Mutable,)

    def __init__(self, population_size: int = 100, sample_size: int = 10, scale_to_budget: bool = True,
                 repeats: bool = True):
        who = "RegularizedEvolution"
        self.population_size = check_int(population_size, "population_size", low=2, who=who)
        self.sample_size = check_int(sample_size, f"sample_size (population_size={population_size})", low=1,
                                     high=population_size, who=who)
        self.scale_to_budget = bool(scale_to_budget)
        self.repeats = bool(repeats)

    def setup(self, space, ctx) -> None:
        super().setup(space, ctx)
        P, S = self.population_size, self.sample_size
        E = getattr(ctx.budget, "evaluations", None)
        if self.scale_to_budget and E is not None and E < 2 * P:
            P_new = max(2, E // 2)
            S = max(2, min(P_new, round(S * P_new / P)))
            P = P_new
        self.P, self.S = P, min(S, P)
        self._population: deque[tuple[Architecture, float]] = deque()
        self._n_asked = 0
        self._proposed: set[str] = set()

    def ask(self) -> list[Architecture]:
        self._n_asked += 1
        if self._n_asked <= self.P or not self._population:
            child = self.space.sample(self.rng)
        else:
            idx = self.rng.choice(len(self._population), size=min(self.S, len(self._population)), replace=False)
            scores = np.array([self._population[i][1] for i in idx])
            parent = self._population[int(idx[int(np.argmax(scores))])][0]
            child = self.space.mutate(parent, self.rng)
            for _ in range(_MUTATION_TRIES if not self.repeats else 0):
                if child.string not in self._proposed:
                    break
                child = self.space.mutate(parent, self.rng)
        if not self.repeats and child.string in self._proposed:
            child = self._unseen_sample()
            if child is None:
                return []  # the space is exhausted
        self._proposed.add(child.string)
        return [child]

    def _unseen_sample(self) -> Architecture | None:
        """A uniform sample not proposed yet (None when there is none)."""
        for _ in range(_MUTATION_TRIES):
            a = self.space.sample(self.rng)
            if a.string not in self._proposed:
                return a
        if isinstance(self.space, Enumerable):
            rest = [a for a in self.space.enumerate() if a.string not in self._proposed]
            return rest[int(self.rng.integers(len(rest)))] if rest else None
        return None

    def tell(self, evaluations: Sequence) -> None:
        for ev in evaluations:
            self._population.append((ev.arch, float(ev.score)))
            while len(self._population) > self.P:
                self._population.popleft()

    @property
    def population(self) -> list[tuple[Architecture, float]]:
        """Current population, oldest first, as (architecture, score)."""
        return list(self._population)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "n_asked": self._n_asked, "P": self.P, "S": self.S,
                "population": [[a.string, s] for a, s in self._population], "proposed": sorted(self._proposed)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._n_asked = int(state["n_asked"])
        self.P, self.S = int(state["P"]), int(state["S"])  # keep the sizes of the run being resumed
        self._population = deque((self.space.from_string(s), float(sc)) for s, sc in state["population"])
        self._proposed = set(state.get("proposed", ()))
