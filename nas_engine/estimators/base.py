"""Estimator contracts.

An :class:`Estimator` turns an architecture into an :class:`Estimate` whose
``score`` is higher-is-better (losses are negated).  Learning-curve estimators
(TSE, TSE-E, TSE-EMA, TLmini, SoVL, ValAcc) share :class:`CurveEstimator`: they
obtain a :class:`~nas_engine.curves.LearningCurve` of ``epochs`` epochs through
the evaluation context and apply a pure ``score(curve)``; one run can be scored
by several of them with :func:`score_curve`.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..curves import LearningCurve

if TYPE_CHECKING:  # pragma: no cover
    from ..benchmarks.table import CurveTable
    from ..data import Dataset
    from ..spaces.base import Architecture, SearchSpace
    from ..training import Protocol

__all__ = ["Estimate", "Estimator", "CurveEstimator", "Context", "FineTuning", "derive_seed", "score_curve"]


def derive_seed(search_seed: int, arch_string: str) -> int:
    """The torch seed of one evaluation: a hash of (search seed, architecture string).

    Independent of evaluation order and executor, so results are reproducible.
    """
    h = hashlib.sha256(f"{int(search_seed)}|{arch_string}".encode()).digest()
    return int.from_bytes(h[:8], "little") % (2**31 - 1)


@dataclass
class Context:
    """What an evaluation (and a strategy's setup) may use.

    ``space``, ``data`` (a :class:`~nas_engine.data.Dataset`), ``protocol``
    (the training recipe), ``seed`` (the search seed), ``budget`` and
    ``progress`` (per-candidate progress bars).  ``strategy`` is set by the
    search so that estimators can ask a one-shot strategy for inherited weights.
    ``table`` (a :class:`~nas_engine.benchmarks.table.CurveTable`) switches to
    tabular mode: learning curves are read from it instead of trained.
    ``store_dir`` is the search's store directory (None without a store): a
    one-shot strategy keeps its supernet checkpoint there.

    Inherited weights: when ``strategy`` provides them (it has
    ``initial_weights(arch) -> nn.Module`` and ``fine_tuning``, a
    :class:`FineTuning`, as the one-shot strategies do), training-based
    estimators start from that network instead of a fresh one and train it
    with the fine-tuning protocol, in "epochs" of ``fine_tuning.steps_per_epoch``
    minibatches (see :meth:`train_model`).
    """

    space: SearchSpace
    data: Dataset | None
    protocol: Protocol
    seed: int = 0
    budget: Any = None
    progress: bool = False
    strategy: Any = None
    extras: dict[str, Any] = field(default_factory=dict)
    table: CurveTable | None = None
    store_dir: str | None = None

    def arch_seed(self, arch: Architecture) -> int:
        return derive_seed(self.seed, arch.string)

    @property
    def inherits_weights(self) -> bool:
        """Whether ``strategy`` provides initial weights (a one-shot strategy's supernet)."""
        return callable(getattr(self.strategy, "initial_weights", None))

    def initial_model(self, arch: Architecture):
        """The network an evaluation of ``arch`` starts from.

        The strategy's inherited weights when it provides them (a fresh copy:
        training it never changes the supernet), else a freshly initialised
        network seeded by :meth:`arch_seed`.
        """
        if self.inherits_weights:
            return self.strategy.initial_weights(arch)
        from ..training import build_model

        if self.data is None:
            raise ValueError("this context has no dataset; building a network needs its shape")
        return build_model(self.space, arch, self.data, self.protocol, self.arch_seed(arch))

    def learning_curve(self, arch: Architecture, epochs: int, *, validate: bool) -> LearningCurve:
        """The first ``epochs`` epochs of ``arch``'s learning curve.

        Live: train ``arch`` from scratch (seeded by :meth:`arch_seed`).
        Tabular (``table`` set): the table's recorded curve, whose
        ``epoch_seconds`` are the recorded times; ``KeyError`` if the table
        does not hold ``arch``.
        """
        if self.table is not None:
            if arch not in self.table:
                raise KeyError(f"architecture {arch.string!r} is not in {self.table!r}; "
                               "search a space restricted to the table's architectures (table.restrict(space))")
            return self.table.curve(arch, epochs, validate=validate)
        return self.train_model(arch, epochs, validate=validate)[1]

    def train_model(self, arch: Architecture, epochs: int, *, validate: bool):
        """Train ``arch`` (data order seeded by :meth:`arch_seed`): ``(model, curve)``.

        From scratch with ``protocol``, or -- when the strategy provides
        inherited weights -- fine-tuned from them with
        ``strategy.fine_tuning.protocol`` for ``epochs`` x
        ``strategy.fine_tuning.steps_per_epoch`` minibatches (one "epoch" per
        chunk of B minibatches; the curve's ``info["source"]`` says
        ``"fine-tuned"``).
        """
        from ..training import train

        if self.data is None:
            raise ValueError("this context has no dataset; a training-based estimator needs one")
        seed = self.arch_seed(arch)
        model = self.initial_model(arch)
        if not self.inherits_weights:
            curve = train(model, self.data, self.protocol, epochs=epochs, seed=seed,
                          validate=validate, progress=self.progress)
            return model, curve
        ft: FineTuning = self.strategy.fine_tuning
        curve = train(model, self.data, ft.protocol, epochs=epochs, seed=seed, validate=validate,
                      progress=self.progress, steps_per_epoch=ft.steps_per_epoch)
        return model, replace(curve, info={**curve.info, "source": "fine-tuned",
                                           "inherited_from": getattr(self.strategy, "name", "strategy")})

@dataclass(frozen=True)
class FineTuning:
    """How inherited weights are fine-tuned: ``protocol``, in "epochs" of ``steps_per_epoch`` minibatches."""

    protocol: Protocol
    steps_per_epoch: int


@dataclass
class Estimate:
    """An estimator's verdict on one architecture (``score``: higher is better)."""

    score: float
    cost_seconds: float = 0.0
    epochs: float = 0.0
    curve: LearningCurve | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Estimator(ABC):
    """Base of all estimators.  Constructor arguments are the whole configuration."""

    #: registry name, set by the registry decorator
    registry_name: str = "estimator"

    @abstractmethod
    def estimate(self, arch: Architecture, ctx: Context) -> Estimate:
        """Score ``arch``; raise :class:`~nas_engine.training.TrainingFailed` on divergence/OOM."""

    @property
    def name(self) -> str:
        return self.registry_name

    def get_params(self) -> dict[str, Any]:
        return {}

    def validate_context(self, ctx: Context) -> None:
        """Raise ``ValueError`` early when this estimator cannot run in ``ctx``."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class CurveEstimator(Estimator):
    """A learning-curve estimator: train ``epochs`` epochs, then ``score(curve)``.

    ``validate`` records the validation curve too (default: only when the score
    needs it, so TSE-type estimators are not charged for validation passes).
    ``score`` uses the first ``epochs`` epochs of a longer curve.
    """

    needs_validation: bool = False

    def __init__(self, epochs: int = 10, *, validate: bool | None = None):
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ValueError(f"{type(self).__name__}: epochs must be a positive integer, got {epochs!r}")
        self.epochs = epochs
        self.validate = self.needs_validation if validate is None else bool(validate)
        if self.needs_validation and not self.validate:
            raise ValueError(f"{type(self).__name__} scores validation data; validate=False is not possible")

    def get_params(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "validate": self.validate}

    def validate_context(self, ctx: Context) -> None:
        if ctx.table is not None:
            if ctx.table.max_epochs is not None and self.epochs > ctx.table.max_epochs:
                raise ValueError(f"{type(self).__name__}(epochs={self.epochs}) needs at least {self.epochs} "
                                 f"epochs, but {ctx.table!r} records {ctx.table.max_epochs}")
            return
        if self.epochs > ctx.protocol.epochs:
            raise ValueError(
                f"{type(self).__name__}(epochs={self.epochs}) needs at least {self.epochs} epochs, "
                f"but the protocol's schedule has epochs={ctx.protocol.epochs}"
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
