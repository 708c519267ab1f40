"""The gradient-boosted curve predictors ``lc-xgb`` and ``lc-lgbm`` (optional extra ``nas-engine[gbm]``).

Each test runs for both, and skips with a message naming the missing package
where xgboost or lightgbm is not installed.
"""

from __future__ import annotations

import importlib.util
import math
import pickle
import re

import numpy as np
import pytest

from nas_engine import Budget, LearningCurve, Search
from nas_engine.context import Context
from nas_engine.criteria import spearman
from nas_engine.estimators import LcLGBM, LcSVR, LcXGB
from nas_engine.registry import create
from nas_engine.strategies import FixedList
from nas_engine.testing import check_registered, missing_packages

from .conftest import TINY
from .test_lcsvr import EPOCHS, SPACE, synthetic_runs, table  # noqa: F401  (table: a fixture)


def _needs(cls):
    return pytest.param(cls, id=cls.registry_name, marks=pytest.mark.skipif(
        importlib.util.find_spec(cls.package) is None,
        reason=f"{cls.registry_name} needs {cls.package}, which is not installed (pip install \"nas-engine[gbm]\")"))


GBM = [_needs(LcXGB), _needs(LcLGBM)]
SMALL = {"n_estimators": [20, 60], "learning_rate": [0.1, 0.3]}


@pytest.mark.parametrize("cls", GBM)
def test_refuses_to_predict_before_fit_then_fits_by_cross_validation(cls):
    archs, curves, final = synthetic_runs(150)
    est = cls(epochs=8, arch_features=["ops"], grid=SMALL)
    with pytest.raises(RuntimeError, match=rf"^{cls.__name__} is not fitted: call fit\(curves, final_accuracies"):
        est.predict(curves[:2], archs[:2])
    assert est.fit(curves[:100], final[:100], archs[:100]) is est and est.fitted
    # the grid point chosen by 3-fold cross-validation
    assert set(est.best_params_) == set(SMALL) and all(est.best_params_[k] in v for k, v in SMALL.items())
    assert est.n_features_ == 3 * 8 - 1 + 5
    pred = est.predict(curves[100:], archs[100:])
    assert pred.shape == (50,) and spearman(pred, final[100:]) > 0.8
    # seeded: the same fit gives the same predictions; the fitted state pickles
    assert np.array_equal(cls(**est.get_params()).fit(curves[:100], final[:100], archs[:100])
                          .predict(curves[100:], archs[100:]), pred)
    assert np.array_equal(pickle.loads(pickle.dumps(est)).predict(curves[100:], archs[100:]), pred)
    with pytest.raises(ValueError, match=f"{cls.__name__} was fitted on 28 features, got 26"):
        est._predict_features(np.zeros((1, 26)))


@pytest.mark.parametrize("cls", GBM)
def test_same_features_as_lcsvr_and_nan_for_non_finite(cls):
    archs, curves, final = synthetic_runs(12)
    mine = cls(epochs=4).features(curves[:3], archs[:3])
    assert np.array_equal(mine, LcSVR(epochs=4).features(curves[:3], archs[:3]))
    broken = LearningCurve(val_acc=[math.nan] * EPOCHS)
    est = cls(epochs=3, arch_features=[], grid={"n_estimators": [10]})
    est.fit([broken] + curves[1:], final, archs)  # the NaN curve is left out
    pred = est.predict([broken, curves[0]], archs[:2])
    assert math.isnan(pred[0]) and math.isfinite(pred[1])
    with pytest.raises(ValueError, match=f"{cls.__name__} needs at least cv=3 examples with finite features"):
        cls(epochs=3, arch_features=[]).fit([broken] * 3 + curves[:2], final[:5], archs[:5])


@pytest.mark.parametrize("cls", GBM)
def test_in_search_fits_on_its_first_n_fit_architectures(cls, table):  # noqa: F811
    est = cls(epochs=5, n_fit=10, arch_features=["ops"], grid={"n_estimators": [10, 30]})
    r = Search(FixedList(table.archs()), table.restrict(SPACE), est, data=None, table=table,
               budget=Budget(evaluations=40), progress=False).run()
    name = cls.registry_name
    assert [e.index for e in r.history if not e.ok] == [3, 30]  # the table's NaN curves
    assert [e.info[name] for e in r.history] == ["fit-example"] * 11 + ["predicted"] * 29 and est.fitted
    assert all((e.epochs, e.cost_seconds) == (EPOCHS, EPOCHS) for e in r.history[:11])
    ok = [e for e in r.history[11:] if e.ok]
    assert all((e.epochs, e.cost_seconds) == (5, 5) for e in r.history[11:])
    assert [e.score for e in ok] == list(est.predict([table.curve(e.arch) for e in ok], [e.arch for e in ok]))
    est.validate_context(Context(space=SPACE, data=None, protocol=TINY, table=table))


@pytest.mark.parametrize("cls", GBM)
def test_configuration_and_one_line_errors(cls):
    est = check_registered("estimator", cls.registry_name)
    assert not est.fitted and est.grid is None and est.get_params()["cv"] == 3
    assert create("estimator", cls.registry_name, grid={"n_estimators": (5, 7)}).grid == {"n_estimators": [5, 7]}
    for bad in ({}, {"n_estimators": []}, {"n_estimators": "100"}, [("n_estimators", [1])]):
        with pytest.raises(ValueError, match=f"^{cls.__name__}: grid must"):
            cls(grid=bad)
    with pytest.raises(ValueError, match=f"^{cls.__name__}: arch_features must be a subset"):
        cls(arch_features="ops")


def test_lightgbm_needs_two_examples_per_training_fold():
    with pytest.raises(ValueError, match=r"^LcLGBM: n_fit must leave at least 2 examples in each of the cv=2 "
                                         r"training folds, got n_fit=3$"):
        LcLGBM(n_fit=3, cv=2)
    assert LcLGBM(n_fit=4, cv=2).n_fit == 4 and LcXGB(n_fit=2, cv=2).n_fit == 2
    archs, curves, final = synthetic_runs(6)
    with pytest.raises(ValueError, match=r"^LcLGBM needs at least 2 examples in each of the cv=2 training folds, "
                                         r"got 3 examples with finite features and accuracy of 3$"):
        LcLGBM(epochs=3, n_fit=4, cv=2).fit(curves[:3], final[:3], archs[:3])


def test_a_missing_package_is_named(monkeypatch):
    """Without the package: the conformance checks are skipped naming it; fitting and a search refuse."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "xgboost" else real(name, *a))
    assert missing_packages("estimator", "lc-xgb") == ["xgboost"]
    from nas_engine.testing import parametrize_plugins

    params = {p.id: p for p in parametrize_plugins(("estimator",)).args[1]}
    skip = [m for m in params["estimator-lc-xgb-check_estimates"].marks if m.name == "skip"]
    assert skip and skip[0].kwargs["reason"] == ("estimator 'lc-xgb' needs xgboost, which is not installed "
                                                 '(pip install "nas-engine[gbm]")')
    assert not [m for m in params["estimator-lcsvr-check_estimates"].marks if m.name == "skip"]
    archs, curves, final = synthetic_runs(6)
    msg = 'lc-xgb needs xgboost, which is not installed: pip install "nas-engine[gbm]"'
    with pytest.raises(ImportError, match=f"^{re.escape(msg)}$"):
        LcXGB(epochs=3).fit(curves, final, archs)
    with pytest.raises(ImportError, match="lc-xgb needs xgboost"):
        LcXGB().validate_context(Context(space=SPACE, data=None, protocol=TINY))
