"""Random search (``random``): uniform samples from the space, optionally without repeats."""

from __future__ import annotations

from typing import Any

from ..config import check_choice
from ..registry import strategies
from ..spaces.base import Architecture, Enumerable, IsomorphismClasses, require_capability
from .base import Strategy

__all__ = ["RandomSearch"]

_MAX_REJECTIONS = 10_000


@strategies.register("random")
class RandomSearch(Strategy):
    """Uniform random sampling.

    ``repeats=False`` never proposes the same architecture twice; ``dedupe``
    says what "the same" means: ``"string"`` (identical architectures),
    ``"canonical"`` (the space's functional-equivalence class) or
    ``"isomorphism"`` (the space's isomorphism class, for a space with the
    :class:`~nas_engine.spaces.base.IsomorphismClasses` capability).  When no new
    architecture can be found (the space is exhausted) the search ends.
    """

    def __init__(self, repeats: bool = True, dedupe: str = "string"):
        self.repeats = bool(repeats)
        self.dedupe = check_choice(dedupe, "dedupe", ("string", "canonical", "isomorphism"), who="RandomSearch")

    def setup(self, space, ctx) -> None:
        super().setup(space, ctx)
        if self.dedupe == "isomorphism":
            require_capability(space, IsomorphismClasses, "RandomSearch(dedupe='isomorphism')")
        self._seen: set[str] = set()

    def _key(self, a: Architecture) -> str:
        if self.dedupe == "isomorphism":
            return f"class {self.space.isomorphism_class(a)}"
        return a.string if self.dedupe == "string" else self.space.canonical(a)

    def ask(self) -> list[Architecture]:
        if self.repeats:
            return [self.space.sample(self.rng)]
        if isinstance(self.space, Enumerable) and self.dedupe == "string" and len(self._seen) >= len(self.space):
            return []
        for _ in range(_MAX_REJECTIONS):
            a = self.space.sample(self.rng)
            key = self._key(a)
            if key not in self._seen:
                self._seen.add(key)
                return [a]
        if isinstance(self.space, Enumerable):  # nearly exhausted: pick among the rest
            rest = [a for a in self.space.enumerate() if self._key(a) not in self._seen]
            if rest:
                a = rest[int(self.rng.integers(len(rest)))]
                self._seen.add(self._key(a))
                return [a]
        return []

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "seen": sorted(self._seen)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._seen = set(state["seen"])
