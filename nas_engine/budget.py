"""The limits of a search: :class:`Budget`, and the default when none is given.

A value type with no dependency on the loop (it imports only the argument
checks), so the search loop, the harnesses, the CLI and the library's
defaults share it.  :data:`DEFAULT_EVALUATIONS` is the number of evaluations
a search runs when no budget is given; :meth:`Budget.default` is that budget.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import check_float, check_int

__all__ = ["Budget", "DEFAULT_EVALUATIONS"]

#: the evaluations of a search when no budget is given (:meth:`Budget.default`)
DEFAULT_EVALUATIONS = 20


@dataclass(frozen=True)
class Budget:
    """Limits of a search: any of evaluations, charged training epochs, wall seconds, charged seconds.

    ``seconds`` is the search's wall-clock time; ``cost_seconds`` is the sum of
    the evaluations' charged ``cost_seconds`` (the training time they report;
    in tabular mode the table's *recorded* training time, so a tabular search
    can be limited to "what this would have cost to train").
    The search stops before starting a candidate once a limit is reached.
    Candidates in flight count as evaluations, so ``evaluations`` is never
    exceeded; they are finished, so ``epochs``/``cost_seconds`` may be exceeded
    by the candidates in flight (at most one per worker).  ``seconds`` also ends
    the candidates in flight: their training stops at the next minibatch
    boundary and they are interrupted (not recorded; a resumed search runs
    them again; see :mod:`nas_engine.search`).
    """

    evaluations: int | None = None
    epochs: float | None = None
    seconds: float | None = None
    cost_seconds: float | None = None

    _LIMITS = ("evaluations", "epochs", "seconds", "cost_seconds")

    def __post_init__(self):
        if all(getattr(self, name) is None for name in self._LIMITS):
            raise ValueError("Budget needs at least one limit: evaluations=, epochs=, seconds= or cost_seconds=")
        object.__setattr__(self, "evaluations", check_int(self.evaluations, "evaluations", none=True, who="Budget"))
        for name in ("epochs", "seconds", "cost_seconds"):
            check_float(getattr(self, name), name, low=0, low_open=True, none=True, who="Budget")

    def exhausted(self, n_evaluations: int, epochs: float, seconds: float, cost_seconds: float = 0.0) -> bool:
        return ((self.evaluations is not None and n_evaluations >= self.evaluations)
                or (self.epochs is not None and epochs >= self.epochs)
                or (self.seconds is not None and seconds >= self.seconds)
                or (self.cost_seconds is not None and cost_seconds >= self.cost_seconds))

    @classmethod
    def default(cls) -> Budget:
        """The budget of a search when none is given: :data:`DEFAULT_EVALUATIONS` evaluations."""
        return cls(evaluations=DEFAULT_EVALUATIONS)
