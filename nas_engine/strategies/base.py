"""Strategy contract: ask/tell.

A strategy proposes architectures (``ask``) and learns from their evaluations
(``tell``).  ``setup(space, ctx)`` is called once before the first ask (one-shot
strategies train their supernet there).  ``state_dict``/``load_state_dict``
must round-trip everything the strategy needs to continue (its RNG included)
through JSON, so that a search stored on disk resumes exactly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..spaces.base import Architecture, SearchSpace, require_capability

if TYPE_CHECKING:  # pragma: no cover
    from ..context import Context
    from ..results import Evaluation

__all__ = ["Strategy"]


class Strategy(ABC):
    """Base class: subclasses implement ``ask`` and usually ``tell``.

    ``requires`` lists the space capabilities (``Mutable``, ``Encodable``, ...)
    the strategy needs; ``setup`` refuses a space that lacks one.
    """

    registry_name: str = "strategy"
    requires: tuple[type, ...] = ()

    def setup(self, space: SearchSpace, ctx: Context) -> None:
        for cap in self.requires:
            require_capability(space, cap, f"strategy {self.name!r}")
        self.space = space
        self.rng = np.random.default_rng(np.random.SeedSequence([int(ctx.seed), 0x5EED]))

    @abstractmethod
    def ask(self) -> list[Architecture]:
        """Next candidates to evaluate (usually one); an empty list ends the search."""

    def tell(self, evaluations: Sequence[Evaluation]) -> None:
        """Learn from finished evaluations (failed ones carry score ``-inf``)."""

    @property
    def name(self) -> str:
        return self.registry_name

    def get_params(self) -> dict[str, Any]:
        return {}

    #: seconds ``setup`` spent on work the search is charged for (a one-shot strategy's supernet training)
    setup_seconds: float = 0.0

    def for_workers(self) -> Any:
        """What estimators in worker processes see as ``Context.strategy`` (default: nothing).

        A one-shot strategy returns its inherited weights here, so that
        evaluations on other processes fine-tune from the same supernet.
        """
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
