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

The features, the fitting protocol below and the refusal to predict before a
fit are those of every curve predictor (:class:`~.predictor.CurvePredictor`); the
gradient-boosted ones (``lc-xgb``, ``lc-lgbm``: :mod:`.gbm`) differ from
LcSVR only in the regressor and its hyperparameter search.

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
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config import check_int
from ..registry import estimators
from .predictor import ARCH_FEATURES, REFERENCE_INPUT, CurvePredictor, curve_features

__all__ = ["LcSVR", "CurvePredictor", "curve_features", "ARCH_FEATURES", "REFERENCE_INPUT"]


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
class LcSVR(CurvePredictor):
    """ν-SVR on learning-curve and architecture features (see the module docstring).

    ``epochs``: T, the epochs of curve it predicts from.  ``n_fit``:
    architectures fully trained inside a search before it fits.
    ``fit_epochs``: the full schedule of that phase (None: the protocol's
    epochs, or the table's in tabular mode).  ``arch_features``: a subset of
    :data:`ARCH_FEATURES`.  ``cv``, ``n_iter``: folds and draws of the
    hyperparameter search over the ranges ``C``, ``gamma`` (log-uniform) and
    ``nu`` (uniform).  ``seed`` seeds the folds and the draws.
    """

    def __init__(self, epochs: int = 10, *, n_fit: int = 100, fit_epochs: int | None = None,
                 arch_features: Sequence[str] = ARCH_FEATURES, cv: int = 3, n_iter: int = 100,
                 C: Sequence[float] = (1e-2, 1e3), gamma: Sequence[float] = (1e-4, 1.0),
                 nu: Sequence[float] = (0.05, 1.0), seed: int = 0):
        super().__init__(epochs, n_fit=n_fit, fit_epochs=fit_epochs, arch_features=arch_features, cv=cv, seed=seed)
        self.n_iter = check_int(n_iter, "n_iter", who="LcSVR")
        self.C, self.gamma, self.nu = _range("C", C), _range("gamma", gamma), _range("nu", nu, 1.0)

    @classmethod
    def conformance_params(cls) -> dict[str, Any]:
        return {"epochs": 1, "n_fit": 2, "fit_epochs": 2, "cv": 2, "n_iter": 2}

    def _search(self, X: np.ndarray, y: np.ndarray) -> tuple[Any, dict[str, Any]]:
        from scipy.stats import loguniform, uniform
        from sklearn.model_selection import RandomizedSearchCV
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import NuSVR

        search = RandomizedSearchCV(
            Pipeline([("scale", StandardScaler()), ("svr", NuSVR(kernel="rbf"))]),
            {"svr__C": loguniform(*self.C), "svr__gamma": loguniform(*self.gamma),
             "svr__nu": uniform(self.nu[0], self.nu[1] - self.nu[0])},
            n_iter=self.n_iter, cv=self._folds(), random_state=self.seed,
        )
        search.fit(X, y)
        return search.best_estimator_, {k.removeprefix("svr__"): float(v) for k, v in search.best_params_.items()}
