"""Learning-curve SVR (``lcsvr``): Baker et al., "Accelerating neural architecture search
using performance prediction" (2017).

A ν-SVR predicts an architecture's final accuracy from the first ``T``
(``epochs``) epochs of its validation-accuracy curve and from features of the
architecture.  The features of one architecture, in this order:

* the curve: ``val_acc[0:T]``, its first differences (T - 1), its second
  differences (T - 2), its mean and its standard deviation -- ``3T - 1``
  values for T >= 2 (3 for T = 1);
* ``arch_features`` (any of, in this order):

  - ``"params"``, ``"flops"``: the parameter count and forward FLOPs of the
    network, from :func:`nas_engine.costs.model_costs` at one fixed
    reference setting -- the space's ``default_size`` (NB201: C=16, N=5) on
    CIFAR-10-shaped input (3x32x32, 10 classes) -- whatever the protocol or
    data of a search, so that the features of a fit and of later predictions
    (in any search, or from a table) always agree; pass ``costs=`` to
    :meth:`LcSVR.fit` / :meth:`LcSVR.predict` to use other values;
  - ``"ops"``: op counts from the space's encoding when the space is
    :class:`~nas_engine.spaces.base.Encodable`: a 2-D encoding (positions x
    choices) is summed over positions -- for NB201's (6 edges x 5 ops) one-hot,
    the count of each op over the six edges -- and any other is flattened;
    nothing for a space without an encoding.

The regressor is ``Pipeline(StandardScaler, NuSVR(kernel="rbf"))``; its ``C``,
``gamma`` and ``nu`` are chosen by a seeded random search (``n_iter`` draws,
``C`` and ``gamma`` log-uniform and ``nu`` uniform over the given ranges) with
``cv``-fold cross-validation (shuffled, seeded; R^2), then refitted on all the
examples.  Examples whose features or target are not finite are left out of a
fit; predictions for them are NaN.

The estimator is fitted in one of three ways:

* :meth:`LcSVR.fit` ``(curves, final_accuracies, archs)``;
* :meth:`LcSVR.fit_from_table` ``(table, archs)``: the table's curves against
  its ground truth (the final test accuracy, the target of the TSE paper);
* inside a search, on its first ``n_fit`` architectures: until it is fitted,
  :meth:`LcSVR.estimate` trains each architecture for the full schedule
  (``fit_epochs``; default: the protocol's ``epochs``, or in tabular mode the
  epochs the table records), is charged that whole run (``Estimate.epochs``
  and ``cost_seconds`` of the full curve), keeps (curve features, final
  validation accuracy) as a training example and returns the final validation
  accuracy as the score -- the same quantity it predicts later, so scores
  before and after the fit are comparable.  When ``n_fit`` examples are
  collected (candidates that fail or give a non-finite accuracy do not count)
  it fits, and from then on trains each architecture for ``epochs`` only and
  returns the predicted final validation accuracy.

The in-search examples live in the estimator object, so that phase needs the
estimator to stay in the search process (the default inline executor); with
worker processes or Ray each worker would collect its own.  A resumed search
starts collecting again.  For those cases, fit beforehand.  A fitted
estimator (its state included) is picklable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import check_int
from ..costs import model_costs
from ..curves import LearningCurve
from ..registry import estimators
from ..spaces.base import Architecture, Encodable
from .base import Context, Estimate, Estimator

if TYPE_CHECKING:  # pragma: no cover
    from ..benchmarks.table import CurveTable
    from ..spaces.base import SearchSpace

__all__ = ["LcSVR", "curve_features", "ARCH_FEATURES", "REFERENCE_INPUT"]

#: the architecture features LcSVR can use, in feature order
ARCH_FEATURES = ("params", "flops", "ops")
#: input shape at which ``params`` and ``flops`` are computed (with the space's ``default_size``)
REFERENCE_INPUT = {"num_classes": 10, "in_channels": 3, "resolution": 32}

Costs = Mapping[str, Mapping[str, float]]


def curve_features(val_acc: Sequence[float], epochs: int) -> np.ndarray:
    """The curve features of the first ``epochs`` validation accuracies (see the module docstring)."""
    v = np.asarray(val_acc, dtype=np.float64)[:epochs]
    if len(v) < epochs:
        raise ValueError(f"LcSVR(epochs={epochs}) needs {epochs} epochs of validation accuracy, got {len(v)}")
    return np.concatenate([v, np.diff(v), np.diff(v, n=2), [v.mean(), v.std()]])


def _val_acc(curve: LearningCurve | Sequence[float]) -> Sequence[float]:
    if not isinstance(curve, LearningCurve):
        return curve
    if not curve.val_acc:
        source = curve.info.get("source")
        raise ValueError("LcSVR needs LearningCurve.val_acc, which this curve does not have"
                         + (f" (curve from {source})" if source else ""))
    return curve.val_acc


def _op_features(a: Architecture) -> np.ndarray:
    if not isinstance(a.space, Encodable):
        return np.zeros(0)
    e = np.asarray(a.space.encode(a), dtype=np.float64)
    return e.sum(axis=0).ravel() if e.ndim >= 2 else e


def _range(name: str, value, high: float = math.inf) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in value)
    except (TypeError, ValueError):
        raise ValueError(f"LcSVR: {name} must be a (low, high) pair, got {value!r}") from None
    if not 0 < lo <= hi <= high:
        raise ValueError(f"LcSVR: {name} must satisfy 0 < low <= high"
                         + (f" <= {high:g}" if high < math.inf else "") + f", got {value!r}")
    return lo, hi


@estimators.register("lcsvr")
class LcSVR(Estimator):
    """ν-SVR on learning-curve and architecture features (see the module docstring).

    ``epochs``: T, the epochs of curve it predicts from.  ``n_fit``:
    architectures fully trained inside a search before it fits.
    ``fit_epochs``: the full schedule of that phase (None: the protocol's
    epochs, or the table's in tabular mode).  ``arch_features``: a subset of
    :data:`ARCH_FEATURES`.  ``cv``, ``n_iter``: folds and draws of the
    hyperparameter search over the ranges ``C``, ``gamma`` (log-uniform) and
    ``nu`` (uniform).  ``seed`` seeds the folds and the draws.
    """

    score_description = ("predicted final validation accuracy from the first T epochs (the measured one for "
                         "the first n_fit architectures, trained fully to fit the predictor)")

    def __init__(self, epochs: int = 10, *, n_fit: int = 100, fit_epochs: int | None = None,
                 arch_features: Sequence[str] = ARCH_FEATURES, cv: int = 3, n_iter: int = 100,
                 C: Sequence[float] = (1e-2, 1e3), gamma: Sequence[float] = (1e-4, 1.0),
                 nu: Sequence[float] = (0.05, 1.0), seed: int = 0):
        self.epochs = check_int(epochs, "epochs", who="LcSVR")
        self.cv = check_int(cv, "cv", low=2, who="LcSVR")
        self.n_fit = check_int(n_fit, "n_fit", low=self.cv, who="LcSVR")
        self.fit_epochs = check_int(fit_epochs, f"fit_epochs (epochs={epochs})", low=epochs, none=True, who="LcSVR")
        if isinstance(arch_features, str) or not set(arch_features) <= set(ARCH_FEATURES):
            raise ValueError(f"LcSVR: arch_features must be a subset of {ARCH_FEATURES}, got {arch_features!r}")
        self.arch_features = tuple(f for f in ARCH_FEATURES if f in arch_features)
        self.n_iter = check_int(n_iter, "n_iter", who="LcSVR")
        self.C, self.gamma, self.nu = _range("C", C), _range("gamma", gamma), _range("nu", nu, 1.0)
        self.seed = check_int(seed, "seed", low=0, who="LcSVR")
        self.model_ = None  # the fitted Pipeline
        self.best_params_: dict[str, float] | None = None  # the C, gamma, nu chosen by cross-validation
        self.n_features_: int | None = None
        self._examples: tuple[list[np.ndarray], list[float]] = ([], [])  # in-search fit phase: (features, target)

    @classmethod
    def conformance_params(cls) -> dict[str, Any]:
        return {"epochs": 1, "n_fit": 2, "fit_epochs": 2, "cv": 2, "n_iter": 2}

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
            raise ValueError(f"LcSVR: got {len(curves)} curves but {len(archs)} architectures")
        for a in archs:
            if not isinstance(a, Architecture):
                raise TypeError(f"LcSVR needs Architecture objects (for their space), got {type(a).__name__}: {a!r}")
        cost_names = [f for f in self.arch_features if f != "ops"]
        if cost_names:
            costs = self._costs(archs, costs)
        rows = []
        for curve, a in zip(curves, archs):
            parts = [curve_features(_val_acc(curve), self.epochs),
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
            archs: Sequence[Architecture], *, costs: Costs | None = None) -> LcSVR:
        """Fit on ``curves`` of ``archs`` and their final accuracies (fractions); returns ``self``."""
        y = np.asarray(final_accuracies, dtype=np.float64)
        if y.shape != (len(curves),):
            raise ValueError(f"LcSVR: need one final accuracy per curve ({len(curves)}), got shape {y.shape}")
        return self._fit_features(self.features(curves, archs, costs=costs), y)

    def fit_from_table(self, table: CurveTable, archs: Sequence[Architecture | str] | None = None, *,
                       space: SearchSpace | None = None, costs: Costs | None = None) -> LcSVR:
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

    def _fit_features(self, X: np.ndarray, y: np.ndarray) -> LcSVR:
        from scipy.stats import loguniform, uniform
        from sklearn.model_selection import KFold, RandomizedSearchCV
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import NuSVR

        ok = np.isfinite(X).all(axis=1) & np.isfinite(y)
        if ok.sum() < self.cv:
            raise ValueError(f"LcSVR needs at least cv={self.cv} examples with finite features and accuracy, "
                             f"got {int(ok.sum())} of {len(y)}")
        search = RandomizedSearchCV(
            Pipeline([("scale", StandardScaler()), ("svr", NuSVR(kernel="rbf"))]),
            {"svr__C": loguniform(*self.C), "svr__gamma": loguniform(*self.gamma),
             "svr__nu": uniform(self.nu[0], self.nu[1] - self.nu[0])},
            n_iter=self.n_iter, cv=KFold(self.cv, shuffle=True, random_state=self.seed),
            random_state=self.seed,
        )
        search.fit(X[ok], y[ok])
        self.model_ = search.best_estimator_
        self.best_params_ = {k.removeprefix("svr__"): float(v) for k, v in search.best_params_.items()}
        self.n_features_ = X.shape[1]
        return self

    def predict(self, curves: Sequence[LearningCurve | Sequence[float]], archs: Sequence[Architecture], *,
                costs: Costs | None = None) -> np.ndarray:
        """Predicted final accuracies; NaN where a feature is not finite."""
        return self._predict_features(self.features(curves, archs, costs=costs))

    def _predict_features(self, X: np.ndarray) -> np.ndarray:
        if not self.fitted:
            raise RuntimeError("LcSVR is not fitted: call fit(curves, final_accuracies, archs) or "
                               "fit_from_table(table, archs) first, or let a search fit it on its first "
                               f"n_fit={self.n_fit} architectures (estimate)")
        if X.shape[1] != self.n_features_:
            raise ValueError(f"LcSVR was fitted on {self.n_features_} features, got {X.shape[1]} "
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
                raise ValueError(f"LcSVR: {ctx.table!r} does not say how many epochs it records; "
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
                raise ValueError(f"LcSVR needs a validation split, but dataset {ctx.data.name!r} has n_val=0")
        if limit is not None and self.epochs > limit:
            raise ValueError(f"LcSVR(epochs={self.epochs}) needs {self.epochs} epochs, but {where}")
        if not self.fitted:
            full = self.full_epochs(ctx)
            if limit is not None and full > limit:
                raise ValueError(f"LcSVR trains its first n_fit={self.n_fit} architectures for fit_epochs={full} "
                                 f"epochs to fit, but {where}")

    def estimate(self, arch: Architecture, ctx: Context) -> Estimate:
        if self.fitted:
            curve = ctx.learning_curve(arch, self.epochs, validate=True)
            score = float(self._predict_features(self.features([curve], [arch]))[0])
            return Estimate(score, curve.total_seconds, self.epochs, curve, info={"lcsvr": "predicted"})
        epochs = self.full_epochs(ctx)
        curve = ctx.learning_curve(arch, epochs, validate=True)
        final = float(_val_acc(curve)[-1])
        x = self.features([curve], [arch])[0]
        if math.isfinite(final) and np.isfinite(x).all():
            self._examples[0].append(x)
            self._examples[1].append(final)
            if len(self._examples[1]) >= self.n_fit:
                self._fit_features(np.stack(self._examples[0]), np.array(self._examples[1]))
        return Estimate(final, curve.total_seconds, epochs, curve,
                        info={"lcsvr": "fit-example", "examples": len(self._examples[1])})
