"""Everything a plugin author subclasses, receives or raises, in one place.

A plugin is a class with a registered name whose constructor arguments are its
configuration (see ``docs/plugins.md`` for one worked example per kind)::

    from nas_engine.api import Estimate, Estimator, register

    @register("estimator", "conv-count")
    class ConvCount(Estimator):
        def __init__(self, weight: float = 1.0):
            self.weight = weight                    # stored under its own name: part of the configuration

        def estimate(self, arch, ctx):
            convs = sum(op.startswith("nor_conv") for op in arch.spec)
            return Estimate(score=self.weight * convs)

Bases: :class:`SearchSpace` (with the capabilities :class:`Mutable`,
:class:`Encodable`, :class:`Enumerable`, :class:`HasSupernet`,
:class:`Relaxable`, :class:`FixedEdgeOps`, :class:`IsomorphismClasses`), :class:`Strategy` (with the capability
:class:`InheritsWeights`: a one-shot strategy's candidates start from its supernet's weights),
:class:`Estimator` and :class:`CurveEstimator`.  Values: :class:`Architecture`, :class:`Estimate`,
:class:`Evaluation`, :class:`LearningCurve`, :class:`Context`,
:class:`FineTuning`, :class:`Protocol`, :class:`Dataset`, and for a dataset
plugin (a function registered as ``"dataset"``) :class:`RawData` and
:class:`DatasetSpec`.  Helpers:
:func:`register`, :func:`create`, :func:`parameters` (declare parameters as
annotated attributes), the argument checks, :func:`train` / :func:`build_model`
(the engine's one training loop), :func:`derive_seed`.  Errors: what a plugin
raises (:class:`TrainingDiverged`, :class:`TrainingOutOfMemory`: the candidate is
recorded as failed and the search goes on) and what the engine raises at a
plugin (:class:`PluginContractError`, :class:`PluginNotFoundError`).  Check a
plugin with :mod:`nas_engine.testing`.
"""

from __future__ import annotations

from .config import (
    Configurable,
    PluginContractError,
    check_bool,
    check_choice,
    check_float,
    check_int,
    parameters,
)
from .context import Context, FineTuning, InheritsWeights, derive_seed
from .curves import LearningCurve
from .data import Dataset, DatasetSpec, RawData
from .estimators.base import CurveEstimator, Estimate, Estimator
from .registry import PluginNotFoundError, create, register
from .results import Evaluation
from .spaces.base import (
    Architecture,
    Encodable,
    Enumerable,
    FixedEdgeOps,
    HasSupernet,
    IsomorphismClasses,
    Mutable,
    Relaxable,
    SearchSpace,
    require_capability,
)
from .strategies.base import Strategy
from .training import Protocol, TrainingDiverged, TrainingFailed, TrainingOutOfMemory, build_model, train

__all__ = [
    # bases and capabilities
    "Configurable", "SearchSpace", "Strategy", "Estimator", "CurveEstimator",
    "Mutable", "Encodable", "Enumerable", "HasSupernet", "Relaxable", "FixedEdgeOps", "IsomorphismClasses",
    "require_capability",
    "InheritsWeights",
    # values
    "Architecture", "Estimate", "Evaluation", "LearningCurve", "Context", "FineTuning", "Protocol", "Dataset",
    "RawData", "DatasetSpec",
    # helpers
    "register", "create", "parameters", "check_int", "check_float", "check_bool", "check_choice",
    "train", "build_model", "derive_seed",
    # errors
    "TrainingFailed", "TrainingDiverged", "TrainingOutOfMemory", "PluginContractError", "PluginNotFoundError",
]
