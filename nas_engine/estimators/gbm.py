"""Gradient-boosted curve predictors (``lc-xgb``, ``lc-lgbm``): XGBoost and LightGBM beside LcSVR.

The TSE paper (Ru et al., Appendix H) compares its estimators with XGBoost
(Chen & Guestrin, 2016) and LightGBM (Ke et al., 2017) used as LcSVR is: a
regressor from the learning curve up to T and features of the architecture to
the final accuracy, fitted on previously evaluated architectures.  These two
estimators are :class:`~nas_engine.estimators.predictor.CurvePredictor` s: the
features, the three ways to fit (``fit``, ``fit_from_table``, inside a search on
its first ``n_fit`` architectures), the NaN predictions for non-finite
features and the refusal to predict before a fit are LcSVR's (see
:mod:`nas_engine.estimators.lcsvr`); only the regressor differs.

Hyperparameters: an exhaustive grid search (scikit-learn's ``GridSearchCV``,
R^2) with ``cv``-fold cross-validation (shuffled, seeded ``KFold``), then a
refit on all the examples.  The default grids (``grid=None``), 8 points each:

* ``lc-xgb``: ``xgboost.XGBRegressor(tree_method="hist", n_jobs=1)`` with
  ``n_estimators`` in {100, 300}, ``max_depth`` in {3, 6}, ``learning_rate``
  in {0.05, 0.1};
* ``lc-lgbm``: ``lightgbm.LGBMRegressor(min_child_samples=5, n_jobs=1)``
  with ``n_estimators`` in {100, 300}, ``num_leaves`` in {7, 31},
  ``learning_rate`` in {0.05, 0.1} (``min_child_samples`` 5 instead of 20:
  the fits have about a hundred examples).  LightGBM does not fit one
  example, so ``lc-lgbm`` needs two in every training fold (``n_fit`` >= 4
  with ``cv=2``, >= 3 with ``cv=3``).

``grid`` replaces the default with ``{parameter: [values]}`` of the regressor.
Both regressors use one thread and ``random_state=seed``.

XGBoost and LightGBM are an optional extra, ``pip install "nas-engine[gbm]"``:
the engine imports them only to fit, so it works without them; without the
package a fit (and a search's ``validate_context``) raises an ``ImportError``
that says what to install.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..registry import estimators
from .predictor import ARCH_FEATURES, CurvePredictor

__all__ = ["GBMPredictor", "LcXGB", "LcLGBM", "INSTALL_HINT"]

INSTALL_HINT = 'pip install "nas-engine[gbm]"'


def _grid(grid: Mapping[str, Sequence[Any]] | None, who: str) -> dict[str, list[Any]] | None:
    if grid is None:
        return None
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError(f"{who}: grid must be a non-empty mapping {{parameter: [values]}} or None, got {grid!r}")
    out = {}
    for k, v in grid.items():
        if not isinstance(k, str) or isinstance(v, (str, bytes)) or not isinstance(v, Sequence) or not len(v):
            raise ValueError(f"{who}: grid must map parameter names to non-empty lists of values, "
                             f"got {k!r}: {v!r}")
        out[k] = list(v)
    return out


class GBMPredictor(CurvePredictor):
    """A curve predictor on a gradient-boosting regressor with a cross-validated grid (see the module docstring).

    Subclasses set ``package`` (the module to import), ``default_grid`` and :meth:`_regressor`.
    """

    #: the importable package the regressor comes from
    package: str = ""
    #: packages :mod:`nas_engine.testing` needs importable to run the conformance checks (else they are skipped)
    requires_packages: tuple[str, ...] = ()
    install_hint = INSTALL_HINT
    default_grid: dict[str, list[Any]] = {}

    def __init__(self, epochs: int = 10, *, n_fit: int = 100, fit_epochs: int | None = None,
                 arch_features: Sequence[str] = ARCH_FEATURES, cv: int = 3,
                 grid: Mapping[str, Sequence[Any]] | None = None, seed: int = 0):
        super().__init__(epochs, n_fit=n_fit, fit_epochs=fit_epochs, arch_features=arch_features, cv=cv, seed=seed)
        self.grid = _grid(grid, type(self).__name__)

    @classmethod
    def conformance_params(cls) -> dict[str, Any]:
        return {"epochs": 1, "n_fit": 2, "fit_epochs": 2, "cv": 2, "grid": {"n_estimators": [3, 5]}}

    @classmethod
    def available(cls) -> bool:
        """Whether the regressor's package can be imported."""
        return importlib.util.find_spec(cls.package) is not None

    def _require(self) -> None:
        if not self.available():
            raise ImportError(f"{self.name} needs {self.package}, which is not installed: {INSTALL_HINT}")

    def validate_context(self, ctx) -> None:
        self._require()
        super().validate_context(ctx)

    def _regressor(self):  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def _search(self, X: np.ndarray, y: np.ndarray) -> tuple[Any, dict[str, Any]]:
        from sklearn.model_selection import GridSearchCV

        self._require()
        search = GridSearchCV(self._regressor(), self.grid or self.default_grid, cv=self._folds())
        search.fit(X, y)
        return search.best_estimator_, {k: (v.item() if isinstance(v, np.generic) else v)
                                        for k, v in search.best_params_.items()}


@estimators.register("lc-xgb")
class LcXGB(GBMPredictor):
    """XGBoost on LcSVR's learning-curve and architecture features (see the module docstring)."""

    package = "xgboost"
    requires_packages = ("xgboost",)
    default_grid = {"n_estimators": [100, 300], "max_depth": [3, 6], "learning_rate": [0.05, 0.1]}

    def _regressor(self):
        from xgboost import XGBRegressor

        return XGBRegressor(tree_method="hist", n_jobs=1, random_state=self.seed)


@estimators.register("lc-lgbm")
class LcLGBM(GBMPredictor):
    """LightGBM on LcSVR's learning-curve and architecture features (see the module docstring)."""

    package = "lightgbm"
    requires_packages = ("lightgbm",)
    min_fold_examples = 2  # LightGBM refuses to fit one example

    @classmethod
    def conformance_params(cls) -> dict[str, Any]:  # the third architecture makes the fit
        return {**super().conformance_params(), "n_fit": 3, "cv": 3}
    default_grid = {"n_estimators": [100, 300], "num_leaves": [7, 31], "learning_rate": [0.05, 0.1]}

    def _regressor(self):
        from lightgbm import LGBMRegressor

        return LGBMRegressor(min_child_samples=5, n_jobs=1, random_state=self.seed, verbose=-1)
