"""Estimator contracts.

An :class:`Estimator` turns an architecture into an :class:`Estimate` whose
``score`` is higher-is-better (losses are negated).  Learning-curve estimators
(TSE, TSE-E, TSE-EMA, TLmini, SoVL, ValAcc) share :class:`CurveEstimator`: they
obtain a :class:`~nas_engine.curves.LearningCurve` of ``epochs`` epochs through
the evaluation context and apply a pure ``score(curve)``; one run can be scored
by several of them with :func:`score_curve`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import Configurable, check_int
from ..context import Context, FineTuning, derive_seed  # re-exported: estimators receive a Context
from ..curves import LearningCurve

if TYPE_CHECKING:  # pragma: no cover
    from ..spaces.base import Architecture

__all__ = ["Estimate", "Estimator", "CurveEstimator", "Context", "FineTuning", "derive_seed", "score_curve"]


@dataclass
class Estimate:
    """An estimator's verdict on one architecture (``score``: higher is better)."""

    score: float
    cost_seconds: float = 0.0
    epochs: float = 0.0
    curve: LearningCurve | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Estimator(Configurable, ABC):
    """Base of all estimators: a :class:`~nas_engine.config.Configurable` (constructor arguments are the
    whole configuration, each stored under its own name)."""

    #: the registered strategy whose set-up the estimator's context needs (e.g. a one-shot strategy for
    #: estimators of inherited weights); :mod:`nas_engine.testing` sets it up before checking the estimator
    conformance_strategy: str | None = None

    #: what the score is, in one line (printed by ``nas-engine search``/``show`` and the report); every
    #: built-in estimator sets it, e.g. TSE-EMA: "negated discounted sum of training losses, higher is better"
    score_description: str = ""

    #: whether the score is an accuracy (a fraction): then the CLI's tables and the report show it in
    #: their ``accuracy`` column too (see :func:`nas_engine.results.evaluation_accuracy`)
    score_is_accuracy: bool = False

    @abstractmethod
    def estimate(self, arch: Architecture, ctx: Context) -> Estimate:
        """Score ``arch``; raise :class:`~nas_engine.training.TrainingFailed` on divergence/OOM."""

    def validate_context(self, ctx: Context) -> None:
        """Raise ``ValueError`` early when this estimator cannot run in ``ctx``."""



class CurveEstimator(Estimator):
    """A learning-curve estimator: train ``epochs`` epochs, then ``score(curve)``.

    ``validate`` records the validation curve too (default: only when the score
    needs it, so TSE-type estimators are not charged for validation passes).
    ``score`` uses the first ``epochs`` epochs of a longer curve.
    """

    needs_validation: bool = False

    @classmethod
    def conformance_params(cls) -> dict[str, Any]:
        return {"epochs": 2}

    def __init__(self, epochs: int = 10, *, validate: bool | None = None):
        self.epochs = check_int(epochs, "epochs", who=type(self).__name__)
        self.validate = self.needs_validation if validate is None else bool(validate)
        if self.needs_validation and not self.validate:
            raise ValueError(f"{type(self).__name__} scores validation data; validate=False is not possible")

    def validate_context(self, ctx: Context) -> None:
        if ctx.table is not None:
            if ctx.table.max_epochs is not None and self.epochs > ctx.table.max_epochs:
                raise ValueError(f"{type(self).__name__}(epochs={self.epochs}) needs at least {self.epochs} "
                                 f"epochs, but {ctx.table!r} records {ctx.table.max_epochs}")
            return
        if self.epochs > ctx.protocol.schedule_epochs:
            raise ValueError(
                f"{type(self).__name__}(epochs={self.epochs}) needs at least {self.epochs} epochs, "
                f"but the protocol's schedule has schedule_epochs={ctx.protocol.schedule_epochs}"
            )
        if self.needs_validation and ctx.data is not None and ctx.data.n_val == 0:
            raise ValueError(f"{type(self).__name__} needs a validation split, but dataset "
                             f"{ctx.data.name!r} has n_val=0")

    def estimate(self, arch: Architecture, ctx: Context) -> Estimate:
        curve = ctx.learning_curve(arch, self.epochs, validate=self.validate)
        return Estimate(self.score(curve), curve.total_seconds, self.epochs, curve)

    def score(self, curve: LearningCurve) -> float:
        """The score of the first ``epochs`` epochs of ``curve`` (higher is better)."""
        if curve.epochs < self.epochs:
            raise ValueError(
                f"{type(self).__name__}(epochs={self.epochs}) cannot score a curve of {curve.epochs} epochs"
            )
        return float(self._score(curve.truncate(self.epochs)))

    @abstractmethod
    def _score(self, curve: LearningCurve) -> float:
        """Score a curve of exactly ``self.epochs`` epochs."""

    @staticmethod
    def _need(curve: LearningCurve, attr: str, who: str) -> tuple:
        v = getattr(curve, attr)
        if not v:
            source = curve.info.get("source")
            raise ValueError(f"{who} needs LearningCurve.{attr}, which this curve does not have"
                             + (f" (curve from {source})" if source else ""))
        return v


def score_curve(curve: LearningCurve, estimators: Iterable[CurveEstimator] | Mapping[str, CurveEstimator]
                ) -> dict[str, float]:
    """Score one curve with several curve estimators: ``{name: score}``.

    Pass a mapping to choose the keys (e.g. ``{"tse-ema@5": TSEEMA(epochs=5), ...}``);
    an estimator that cannot score the curve (too short, missing data) gives NaN.
    """
    items = estimators.items() if isinstance(estimators, Mapping) else ((e.name, e) for e in estimators)
    out = {}
    for key, est in items:
        try:
            out[key] = est.score(curve)
        except ValueError:
            out[key] = math.nan
    return out
