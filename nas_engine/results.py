"""The search's value types: :class:`Budget`, :class:`Evaluation`, :class:`SearchResult`, :class:`Outcome`.

They live below the search loop (:mod:`nas_engine.search`, which re-exports
them) so that strategies, stores and harnesses can use them without importing
the loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import check_float, check_int
from .curves import LearningCurve

if TYPE_CHECKING:  # pragma: no cover
    from .spaces.base import Architecture, SearchSpace

__all__ = ["Budget", "Evaluation", "SearchResult", "Outcome", "WORST_SCORE"]

#: the score of a failed evaluation
WORST_SCORE = -math.inf


@dataclass(frozen=True)
class Budget:
    """Limits of a search: any of evaluations, charged training epochs, wall seconds, charged seconds.

    ``seconds`` is the search's wall-clock time; ``cost_seconds`` is the sum of
    the evaluations' charged ``cost_seconds`` (the training time they report;
    in tabular mode the table's *recorded* training time, so a tabular search
    can be limited to "what this would have cost to train").
    The search stops before starting a candidate once a limit is reached.
    Candidates in flight count as evaluations, so ``evaluations`` is never
    exceeded; they are finished, so ``epochs``/``seconds``/``cost_seconds`` may
    be exceeded by the candidates in flight (at most one per worker).
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


@dataclass
class Evaluation:
    """One finished evaluation.  ``status`` is ``"ok"`` or ``"failed"`` (then ``reason`` says why)."""

    index: int
    arch: Architecture
    score: float
    cost_seconds: float
    epochs: float
    status: str = "ok"
    reason: str | None = None
    curve: LearningCurve | None = None
    seed: int = 0
    cached: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def arch_string(self) -> str:
        return self.arch.string

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_record(self) -> dict[str, Any]:
        return {
            "index": self.index, "arch": self.arch.string, "score": self.score,
            "cost_seconds": self.cost_seconds, "epochs": self.epochs, "status": self.status,
            "reason": self.reason, "seed": self.seed, "cached": self.cached, "info": self.info,
            "curve": self.curve.to_dict() if self.curve is not None else None,
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any], space: SearchSpace) -> Evaluation:
        curve = rec.get("curve")
        return cls(
            index=rec["index"], arch=space.from_string(rec["arch"]), score=float(rec["score"]),
            cost_seconds=float(rec["cost_seconds"]), epochs=float(rec["epochs"]), status=rec["status"],
            reason=rec.get("reason"), curve=LearningCurve.from_dict(curve) if curve else None,
            seed=int(rec["seed"]), cached=bool(rec.get("cached", False)), info=rec.get("info") or {},
        )


@dataclass
class SearchResult:
    """What a search produced: the full ``history`` and the ``best`` evaluation.

    ``seconds`` is the search's wall-clock time, ``setup_seconds`` what the
    strategy's setup was charged (a one-shot strategy's supernet training; 0
    otherwise).  Both include earlier runs of a resumed search.
    """

    history: list[Evaluation]
    space: SearchSpace
    seconds: float = 0.0
    setup_seconds: float = 0.0

    @property
    def best(self) -> Evaluation | None:
        """The successful evaluation with the highest score (earliest on ties), or None."""
        ok = [e for e in self.history if e.ok and not math.isnan(e.score)]
        return max(ok, key=lambda e: (e.score, -e.index)) if ok else None

    @property
    def best_arch(self) -> Architecture | None:
        return self.best.arch if self.best is not None else None

    @property
    def total_cost_seconds(self) -> float:
        """Seconds charged: every evaluation's cost plus the strategy's setup (a supernet's training)."""
        return math.fsum([self.setup_seconds, *(e.cost_seconds for e in self.history)])

    def to_dataframe(self):
        import pandas as pd

        rows = [{
            "index": e.index, "arch": e.arch.string, "score": e.score, "status": e.status,
            "reason": e.reason, "cost_seconds": e.cost_seconds, "epochs": e.epochs,
            "seed": e.seed, "cached": e.cached,
        } for e in self.history]
        cols = ["index", "arch", "score", "status", "reason", "cost_seconds", "epochs", "seed", "cached"]
        return pd.DataFrame(rows, columns=cols)

    def __repr__(self) -> str:
        b = self.best
        return (f"SearchResult(evaluations={len(self.history)}, "
                f"best={b.arch.string if b else None!r}, best_score={b.score if b else None})")


@dataclass
class Outcome:
    """What evaluating one candidate produced, as plain data (it travels back from worker processes).

    The fields are those of an :class:`Evaluation` that the evaluation itself
    decides; ``error`` and ``traceback`` are set for a failure by an exception
    that is not a training failure (see the module docstring).
    """

    score: float
    cost_seconds: float = 0.0
    epochs: float = 0.0
    status: str = "ok"
    reason: str | None = None
    curve: LearningCurve | None = None
    info: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None
    traceback: str | None = None
