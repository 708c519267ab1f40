"""The evaluation context: what an evaluation (and a strategy's setup) may use.

:class:`Context` (space, data, training protocol, seeds, the strategy's
inherited weights, a tabular benchmark), :class:`FineTuning`,
:class:`InheritsWeights` (the capability of a strategy whose candidates start
from inherited weights) and :func:`derive_seed`.  Estimators receive a
context; one-shot strategies provide the inherited weights a context hands on.
It sits below both, so neither imports the other
(:mod:`nas_engine.estimators.base` re-exports it).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .curves import LearningCurve
from .training import build_model, train

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from .benchmarks.table import CurveTable
    from .data import Dataset
    from .spaces.base import Architecture, SearchSpace
    from .training import Protocol

__all__ = ["Context", "FineTuning", "InheritsWeights", "derive_seed"]


def derive_seed(search_seed: int, arch_string: str) -> int:
    """The torch seed of one evaluation: a hash of (search seed, architecture string).

    Independent of evaluation order and executor, so results are reproducible.
    """
    h = hashlib.sha256(f"{int(search_seed)}|{arch_string}".encode()).digest()
    return int.from_bytes(h[:8], "little") % (2**31 - 1)


class InheritsWeights(ABC):
    """Capability: evaluations start from weights this object provides instead of a fresh network.

    The one-shot strategies have it (:class:`~nas_engine.strategies.oneshot.OneShotStrategy`,
    and :class:`~nas_engine.strategies.oneshot.InheritedWeights`, what their
    :meth:`~nas_engine.strategies.base.Strategy.for_workers` hands to worker
    processes).  When ``Context.strategy`` is an instance,
    :attr:`Context.inherits_weights` is true and training-based estimators
    fine-tune :meth:`initial_weights` with :attr:`fine_tuning`.

    * :meth:`initial_weights` ``(arch) -> nn.Module``: a standalone network for
      ``arch`` holding a copy of the inherited weights (training it must not
      change the source);
    * ``fine_tuning``: a :class:`FineTuning` (an attribute or a property, set by
      the time evaluations run);
    * :meth:`inherited_variants` ``(arch)``: the networks whose one-shot
      estimates (``valacc-inherited``, ``valacc-mini``) are averaged into
      ``arch``'s; by default :meth:`initial_weights` alone (a one-shot
      strategy's temporal score ensemble and post-deiso averaging give more).
    """

    fine_tuning: FineTuning

    @abstractmethod
    def initial_weights(self, arch: Architecture) -> nn.Module:
        """A fresh network for ``arch`` holding a copy of the inherited weights."""

    def inherited_variants(self, arch: Architecture) -> Iterator[nn.Module]:
        """The networks (fresh copies, made one at a time) whose inherited-weight estimates are averaged into
        ``arch``'s; default: :meth:`initial_weights` alone."""
        yield self.initial_weights(arch)


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

    Inherited weights: when ``strategy`` provides them (it is an
    :class:`InheritsWeights`: ``initial_weights(arch) -> nn.Module`` and
    ``fine_tuning``, a :class:`FineTuning`, as the one-shot strategies and
    their worker view are), training-based
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
        """Whether ``strategy`` provides initial weights: an :class:`InheritsWeights` (a one-shot strategy's
        supernet, or its worker view)."""
        return isinstance(self.strategy, InheritsWeights)

    def initial_model(self, arch: Architecture):
        """The network an evaluation of ``arch`` starts from.

        The strategy's inherited weights when it provides them (a fresh copy:
        training it never changes the supernet), else a freshly initialised
        network seeded by :meth:`arch_seed`.
        """
        if self.inherits_weights:
            return self.strategy.initial_weights(arch)
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
