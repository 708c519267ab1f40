"""Curve predictors: regressors from the learning curve up to T and features of the architecture to the
final accuracy, fitted on previously evaluated architectures (Baker et al., "Accelerating neural
architecture search using performance prediction", 2017; the TSE paper's LcSVR and its Appendix H).

:class:`CurvePredictor` holds what ``lcsvr`` (:mod:`.lcsvr`), ``lc-xgb`` and
``lc-lgbm`` (:mod:`.gbm`) share: the features, the three ways to fit, prediction
and the in-search fit phase (described in :mod:`.lcsvr`'s docstring); a
subclass chooses the regressor and its cross-validated hyperparameters.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import check_int
from ..costs import model_costs
from ..curves import LearningCurve
from ..spaces.base import Architecture, Encodable
from .base import Context, Estimate, Estimator

if TYPE_CHECKING:  # pragma: no cover
    from ..benchmarks.table import CurveTable
    from ..spaces.base import SearchSpace

__all__ = ["CurvePredictor", "curve_features", "ARCH_FEATURES", "REFERENCE_INPUT"]

#: the architecture features a curve predictor can use, in feature order
ARCH_FEATURES = ("params", "flops", "ops")
#: input shape at which ``params`` and ``flops`` are computed (with the space's ``default_size``)
REFERENCE_INPUT = {"num_classes": 10, "in_channels": 3, "resolution": 32}

Costs = Mapping[str, Mapping[str, float]]


def curve_features(val_acc: Sequence[float], epochs: int, who: str = "LcSVR") -> np.ndarray:
    """The curve features of the first ``epochs`` validation accuracies (see the module docstring)."""
    v = np.asarray(val_acc, dtype=np.float64)[:epochs]
    if len(v) < epochs:
        raise ValueError(f"{who}(epochs={epochs}) needs {epochs} epochs of validation accuracy, got {len(v)}")
    return np.concatenate([v, np.diff(v), np.diff(v, n=2), [v.mean(), v.std()]])


def _val_acc(curve: LearningCurve | Sequence[float], who: str = "LcSVR") -> Sequence[float]:
    if not isinstance(curve, LearningCurve):
        return curve
    if not curve.val_acc:
        source = curve.info.get("source")
        raise ValueError(f"{who} needs LearningCurve.val_acc, which this curve does not have"
                         + (f" (curve from {source})" if source else ""))
    return curve.val_acc


def _op_features(a: Architecture) -> np.ndarray:
    if not isinstance(a.space, Encodable):
        return np.zeros(0)
    e = np.asarray(a.space.encode(a), dtype=np.float64)
    return e.sum(axis=0).ravel() if e.ndim >= 2 else e


class CurvePredictor(Estimator):
    """A regressor from learning-curve and architecture features to the final accuracy (see the module
    docstring): the features, the three ways to fit, prediction and the in-search fit phase.

    A subclass chooses the regressor and its cross-validated hyperparameters in
    :meth:`_search`; its constructor takes ``epochs, n_fit, fit_epochs,
    arch_features, cv, seed`` (passed to ``super().__init__``) and its own.
    ``estimate``'s ``info`` says ``{name: "fit-example" | "predicted"}`` under
    the registered name.
    """

    score_description = ("predicted final validation accuracy from the first T epochs (the measured one for "
                         "the first n_fit architectures, trained fully to fit the predictor)")

    #: the fewest examples the regressor fits on (every training fold of the cross-validation must have them)
    min_fold_examples: int = 1

    def __init__(self, epochs: int = 10, *, n_fit: int = 100, fit_epochs: int | None = None,
                 arch_features: Sequence[str] = ARCH_FEATURES, cv: int = 3, seed: int = 0):
        who = type(self).__name__
        self.epochs = check_int(epochs, "epochs", who=who)
        self.cv = check_int(cv, "cv", low=2, who=who)
        self.n_fit = check_int(n_fit, "n_fit", low=self.cv, who=who)
        if self._smallest_fold(self.n_fit) < self.min_fold_examples:
            raise ValueError(f"{who}: n_fit must leave at least {self.min_fold_examples} examples in each of the "
                             f"cv={self.cv} training folds, got n_fit={n_fit}")
        self.fit_epochs = check_int(fit_epochs, f"fit_epochs (epochs={epochs})", low=epochs, none=True, who=who)
        if isinstance(arch_features, str) or not set(arch_features) <= set(ARCH_FEATURES):
            raise ValueError(f"{who}: arch_features must be a subset of {ARCH_FEATURES}, got {arch_features!r}")
        self.arch_features = tuple(f for f in ARCH_FEATURES if f in arch_features)
        self.seed = check_int(seed, "seed", low=0, who=who)
        self.model_ = None  # the fitted regressor
        self.best_params_: dict[str, Any] | None = None  # the hyperparameters chosen by cross-validation
        self.n_features_: int | None = None
        self._examples: tuple[list[np.ndarray], list[float]] = ([], [])  # in-search fit phase: (features, target)

    def _smallest_fold(self, n: int) -> int:
        """The examples in the smallest training fold of ``cv``-fold cross-validation on ``n``."""
        return n - math.ceil(n / self.cv)

    @property
    def _who(self) -> str:
        return type(self).__name__

    @property
    def fitted(self) -> bool:
        return self.model_ is not None

    # -- features ---------------------------------------------------------------------
    def features(self, curves: Sequence[LearningCurve | Sequence[float]], archs: Sequence[Architecture], *,
                 costs: Costs | None = None) -> np.ndarray:
        """The feature matrix, one row per (curve, architecture).

        ``curves``: learning curves (their ``val_acc`` is used) or sequences of
        validation accuracies, at least ``epochs`` long.  ``costs``: ``{arch
        string: {"params": ..., "flops": ...}}``; missing ones are computed at
        the reference setting (see the module docstring).
        """
        if len(curves) != len(archs):
            raise ValueError(f"{self._who}: got {len(curves)} curves but {len(archs)} architectures")
        for a in archs:
            if not isinstance(a, Architecture):
                raise TypeError(f"{self._who} needs Architecture objects (for their space), "
                                f"got {type(a).__name__}: {a!r}")
        cost_names = [f for f in self.arch_features if f != "ops"]
        if cost_names:
            costs = self._costs(archs, costs)
        rows = []
        for curve, a in zip(curves, archs):
            parts = [curve_features(_val_acc(curve, self._who), self.epochs, self._who),
                     np.array([float(costs[a.string][f]) for f in cost_names])]
            if "ops" in self.arch_features:
                parts.append(_op_features(a))
            rows.append(np.concatenate(parts))
        return np.stack(rows)

    @staticmethod
    def _costs(archs: Sequence[Architecture], given: Costs | None) -> Costs:
        out = dict(given or {})
        missing: dict[SearchSpace, list[Architecture]] = {}
        for a in archs:
            if a.string not in out:
                missing.setdefault(a.space, []).append(a)
        for space, todo in missing.items():
            out.update(model_costs(space, todo, **REFERENCE_INPUT, **space.default_size))
        return out

    # -- fitting and prediction -----------------------------------------------------------
    def fit(self, curves: Sequence[LearningCurve | Sequence[float]], final_accuracies: Sequence[float],
            archs: Sequence[Architecture], *, costs: Costs | None = None):
        """Fit on ``curves`` of ``archs`` and their final accuracies (fractions); returns ``self``."""
        y = np.asarray(final_accuracies, dtype=np.float64)
        if y.shape != (len(curves),):
            raise ValueError(f"{self._who}: need one final accuracy per curve ({len(curves)}), got shape {y.shape}")
        return self._fit_features(self.features(curves, archs, costs=costs), y)

    def fit_from_table(self, table: CurveTable, archs: Sequence[Architecture | str] | None = None, *,
                       space: SearchSpace | None = None, costs: Costs | None = None):
        """Fit on a table's curves of ``archs`` (default: all it holds) against its ground truth.

        Architecture strings are parsed with ``space`` (default: the registered
        space of the table's ``space_name``).
        """
        from ..registry import create

        if space is None:
            space = create("space", table.space_name)
        archs = [space.from_string(a) if isinstance(a, str) else a
                 for a in (table.archs() if archs is None else archs)]
        return self.fit([table.curve(a) for a in archs], [table.final_accuracy(a) for a in archs], archs,
                        costs=costs)

    def _fit_features(self, X: np.ndarray, y: np.ndarray):
        ok = np.isfinite(X).all(axis=1) & np.isfinite(y)
        if ok.sum() < self.cv:
            raise ValueError(f"{self._who} needs at least cv={self.cv} examples with finite features and "
                             f"accuracy, got {int(ok.sum())} of {len(y)}")
        if self._smallest_fold(int(ok.sum())) < self.min_fold_examples:
            raise ValueError(f"{self._who} needs at least {self.min_fold_examples} examples in each of the "
                             f"cv={self.cv} training folds, got {int(ok.sum())} examples with finite features "
                             f"and accuracy of {len(y)}")
        self.model_, self.best_params_ = self._search(X[ok], y[ok])
        self.n_features_ = X.shape[1]
        return self

    def _folds(self):
        from sklearn.model_selection import KFold

        return KFold(self.cv, shuffle=True, random_state=self.seed)

    @abstractmethod
    def _search(self, X: np.ndarray, y: np.ndarray) -> tuple[Any, dict[str, Any]]:
        """The regressor fitted on all of ``(X, y)`` (finite) with the hyperparameters chosen by
        ``cv``-fold cross-validation (:meth:`_folds`), and those hyperparameters."""

    def predict(self, curves: Sequence[LearningCurve | Sequence[float]], archs: Sequence[Architecture], *,
                costs: Costs | None = None) -> np.ndarray:
        """Predicted final accuracies; NaN where a feature is not finite."""
        return self._predict_features(self.features(curves, archs, costs=costs))

    def _predict_features(self, X: np.ndarray) -> np.ndarray:
        if not self.fitted:
            raise RuntimeError(f"{self._who} is not fitted: call fit(curves, final_accuracies, archs) or "
                               "fit_from_table(table, archs) first, or let a search fit it on its first "
                               f"n_fit={self.n_fit} architectures (estimate)")
        if X.shape[1] != self.n_features_:
            raise ValueError(f"{self._who} was fitted on {self.n_features_} features, got {X.shape[1]} "
                             "(a different space or arch_features?)")
        out = np.full(len(X), np.nan)
        ok = np.isfinite(X).all(axis=1)
        if ok.any():
            out[ok] = self.model_.predict(X[ok])
        return out

    # -- in a search --------------------------------------------------------------------------
    def full_epochs(self, ctx: Context) -> int:
        """Epochs of the full schedule for the in-search fit phase (see the class docstring)."""
        if self.fit_epochs is not None:
            return self.fit_epochs
        if ctx.table is not None:
            if ctx.table.max_epochs is None:
                raise ValueError(f"{self._who}: {ctx.table!r} does not say how many epochs it records; "
                                 "pass fit_epochs= (or fit the estimator beforehand)")
            return ctx.table.max_epochs
        return ctx.protocol.schedule_epochs

    def validate_context(self, ctx: Context) -> None:
        if ctx.table is not None:
            limit, where = ctx.table.max_epochs, f"{ctx.table!r} records {ctx.table.max_epochs} epochs"
        else:
            limit = ctx.protocol.schedule_epochs
            where = f"the protocol's schedule has schedule_epochs={limit}"
            if ctx.data is not None and ctx.data.n_val == 0:
                raise ValueError(f"{self._who} needs a validation split, but dataset {ctx.data.name!r} has n_val=0")
        if limit is not None and self.epochs > limit:
            raise ValueError(f"{self._who}(epochs={self.epochs}) needs {self.epochs} epochs, but {where}")
        if not self.fitted:
            full = self.full_epochs(ctx)
            if limit is not None and full > limit:
                raise ValueError(f"{self._who} trains its first n_fit={self.n_fit} architectures for "
                                 f"fit_epochs={full} epochs to fit, but {where}")

    def estimate(self, arch: Architecture, ctx: Context) -> Estimate:
        if self.fitted:
            curve = ctx.learning_curve(arch, self.epochs, validate=True)
            score = float(self._predict_features(self.features([curve], [arch]))[0])
            return Estimate(score, curve.total_seconds, self.epochs, curve, info={self.name: "predicted"})
        epochs = self.full_epochs(ctx)
        curve = ctx.learning_curve(arch, epochs, validate=True)
        final = float(_val_acc(curve, self._who)[-1])
        x = self.features([curve], [arch])[0]
        if math.isfinite(final) and np.isfinite(x).all():
            self._examples[0].append(x)
            self._examples[1].append(final)
            if len(self._examples[1]) >= self.n_fit:
                self._fit_features(np.stack(self._examples[0]), np.array(self._examples[1]))
        return Estimate(final, curve.total_seconds, epochs, curve,
                        info={self.name: "fit-example", "examples": len(self._examples[1])})
