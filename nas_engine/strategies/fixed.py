"""A fixed list of architectures (``fixed``): evaluate exactly these, in order, then stop.

Useful for measuring estimators on a chosen sample (the correlation harness
and the benchmark builder use it) and for re-evaluating known architectures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..registry import strategies
from ..spaces.base import Architecture
from .base import Strategy

__all__ = ["FixedList"]


@strategies.register("fixed")
class FixedList(Strategy):
    """Proposes ``archs`` (architectures or their strings) one by one, then ends the search."""

    def __init__(self, archs: Sequence[Architecture | str]):
        if isinstance(archs, str) or not isinstance(archs, Sequence) or not archs:
            raise ValueError(f"FixedList needs a non-empty sequence of architectures, got {archs!r}")
        self.archs = [a.string if isinstance(a, Architecture) else a for a in archs]

    @classmethod
    def conformance_params(cls) -> dict[str, Any]:
        return {"archs": ["|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",
                          "|avg_pool_3x3~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"]}

    def setup(self, space, ctx) -> None:
        super().setup(space, ctx)
        self._parsed = [space.from_string(s) for s in self.archs]  # fail early on a bad string
        self._next = 0

    def ask(self) -> list[Architecture]:
        if self._next >= len(self._parsed):
            return []
        self._next += 1
        return [self._parsed[self._next - 1]]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "next": self._next}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._next = int(state["next"])
