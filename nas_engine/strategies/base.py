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

from ..config import Configurable
from ..spaces.base import Architecture, SearchSpace, require_capability

if TYPE_CHECKING:  # pragma: no cover
    from ..context import Context
    from ..results import Evaluation

__all__ = ["Strategy"]


class Strategy(Configurable, ABC):
    """Base class: subclasses implement ``ask`` and usually ``tell``.

    A :class:`~nas_engine.config.Configurable`: constructor arguments are the
    configuration (every one stored under its own name).  ``requires`` lists the
    space capabilities (``Mutable``, ``Encodable``, ...) the strategy needs;
    ``setup`` refuses a space that lacks one.

    State: a stored search resumes by calling ``setup`` on a fresh clone and then
    ``load_state_dict(state_dict())`` (through JSON); nothing else is replayed.
    The default state is the RNG alone: a strategy that keeps anything else
    between calls (a population, observations, a queue) must override both
    methods.  :func:`nas_engine.testing.check_strategy` fails a strategy whose
    continuation after that round trip differs from an uninterrupted run.
    """

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

    #: seconds ``setup`` spent on work the search is charged for (a one-shot strategy's supernet training)
    setup_seconds: float = 0.0

    def for_workers(self) -> Any:
        """What estimators in worker processes see as ``Context.strategy`` (default: nothing).

        A one-shot strategy returns its inherited weights here (an
        :class:`~nas_engine.context.InheritsWeights`, as the strategy itself is
        in this process), so that evaluations on other processes fine-tune from
        the same supernet.
        """
        return None

    def state_dict(self) -> dict[str, Any]:
        """Everything the strategy needs to continue, as JSON-compatible data (default: its RNG)."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (called after ``setup`` on a fresh clone)."""
        self.rng.bit_generator.state = state["rng"]
