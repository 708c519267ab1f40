"""The ``lcsvr`` estimator: Baker et al.'s learning-curve SVR."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from nas_engine import Budget, LearningCurve, Search
from nas_engine.benchmarks import JsonlCurveTable
from nas_engine.context import Context
from nas_engine.criteria import spearman
from nas_engine.estimators import LcSVR
from nas_engine.estimators.lcsvr import curve_features
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.strategies import FixedList
from nas_engine.testing import check_registered as check_plugin

from .conftest import TINY

SPACE = NB201Space()
EPOCHS = 20  # recorded per synthetic curve


def synthetic_runs(n: int, seed: int = 0):
    """``n`` distinct NB201 cells with saturating curves ``a (1 - exp(-t / tau))``.

    The final accuracy (the curve's limit) is a known function of the early curve.
    """
    rng = np.random.default_rng(seed)
    archs = list({SPACE.sample(rng): None for _ in range(3 * n)})[:n]
    a, tau = rng.uniform(0.5, 0.95, n), rng.uniform(2, 10, n)
    t = np.arange(1, EPOCHS + 1)
    curves = [LearningCurve(val_acc=ai * (1 - np.exp(-t / ti)), epoch_seconds=[1.0] * EPOCHS)
              for ai, ti in zip(a, tau)]
    return archs, curves, a * (1 - np.exp(-200 / tau))


def test_conformance_and_pickle():
    est = check_plugin("estimator", "lcsvr")
    assert not est.fitted
    assert pickle.loads(pickle.dumps(est)).get_params() == est.get_params()


def test_features():
    v = [0.1, 0.3, 0.4, 0.45]
    f = curve_features(v, 4)
    assert np.allclose(f, [0.1, 0.3, 0.4, 0.45, 0.2, 0.1, 0.05, -0.1, -0.05, np.mean(v), np.std(v)])
    assert curve_features(v, 1).shape == (3,) and curve_features(v + [0.5] * 6, 10).shape == (29,)
    with pytest.raises(ValueError, match=r"needs 5 epochs of validation accuracy, got 4"):
        curve_features(v, 5)

    a = SPACE.from_ops(["nor_conv_3x3", "nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3", "nor_conv_3x3"])
    ops_only = LcSVR(epochs=4, arch_features=["ops"]).features([v], [a])
    assert ops_only.shape == (1, 11 + 5)
    assert list(ops_only[0, 11:]) == [1, 1, 0, 3, 1]  # counts of none, skip, conv1x1, conv3x3, pool
    full = LcSVR(epochs=4).features([LearningCurve(val_acc=v)], [a])
    assert full.shape == (1, 11 + 2 + 5)
    params, flops = full[0, 11:13]
    assert params == sum(p.numel() for p in SPACE.build(a, 10).parameters()) and flops > params
    given = LcSVR(epochs=4).features([v], [a], costs={a.string: {"params": 7, "flops": 8}})
    assert list(given[0, 11:13]) == [7, 8]
    with pytest.raises(ValueError, match="needs LearningCurve.val_acc"):
        LcSVR(epochs=1).features([LearningCurve(train_loss=[1.0])], [a])


def test_fit_predict_and_cross_validated_hyperparameters():
    archs, curves, final = synthetic_runs(150)
    est = LcSVR(epochs=8, arch_features=["ops"], n_iter=15, C=(0.1, 100), gamma=(1e-3, 0.3), nu=(0.2, 0.9))
    with pytest.raises(RuntimeError, match="LcSVR is not fitted"):
        est.predict(curves[:2], archs[:2])
    assert est.fit(curves[:100], final[:100], archs[:100]) is est and est.fitted
    assert 0.1 <= est.best_params_["C"] <= 100 and 1e-3 <= est.best_params_["gamma"] <= 0.3
    assert 0.2 <= est.best_params_["nu"] <= 0.9
    pred = est.predict(curves[100:], archs[100:])
    assert spearman(pred, final[100:]) > 0.9
    # seeded: the same fit again gives the same predictions; the fitted state pickles
    assert np.array_equal(LcSVR(**est.get_params()).fit(curves[:100], final[:100], archs[:100])
                          .predict(curves[100:], archs[100:]), pred)
    assert np.array_equal(pickle.loads(pickle.dumps(est)).predict(curves[100:], archs[100:]), pred)
    with pytest.raises(ValueError, match="fitted on 28 features, got 26"):
        est._predict_features(np.zeros((1, 26)))


def test_non_finite_curves_are_left_out_and_predict_nan():
    archs, curves, final = synthetic_runs(12)
    broken = LearningCurve(val_acc=[math.nan] * EPOCHS)
    est = LcSVR(epochs=3, arch_features=[], n_iter=3)
    est.fit([broken] + curves[1:], final, archs)  # the NaN curve is left out
    pred = est.predict([broken, curves[0]], archs[:2])
    assert math.isnan(pred[0]) and math.isfinite(pred[1])
    with pytest.raises(ValueError, match="at least cv=3 examples with finite features"):
        LcSVR(epochs=3, arch_features=[]).fit([broken] * 3 + curves[:2], final[:5], archs[:5])


@pytest.fixture
def table(tmp_path):
    archs, curves, final = synthetic_runs(40, seed=1)
    curves[3] = curves[30] = LearningCurve(val_acc=[math.nan] * EPOCHS, epoch_seconds=[1.0] * EPOCHS)
    return JsonlCurveTable.write(tmp_path / "table.jsonl", (
        {"arch": a, "curve": c, "final_accuracy": float(y)} for a, c, y in zip(archs, curves, final)))


def test_in_search_fits_on_its_first_n_fit_architectures(table):
    est = LcSVR(epochs=5, n_fit=10, arch_features=["ops"], n_iter=5)
    r = Search(FixedList(table.archs()), table.restrict(SPACE), est, data=None, table=table,
               budget=Budget(evaluations=40), progress=False).run()
    # table rows 3 and 30 have NaN curves: row 3 fails in the fit phase and does not count towards n_fit
    assert [e.index for e in r.history if not e.ok] == [3, 30]
    assert all(e.reason == "non-finite score nan" for e in r.history if not e.ok)
    assert [e.info["lcsvr"] for e in r.history] == ["fit-example"] * 11 + ["predicted"] * 29 and est.fitted
    for e in r.history[:11]:  # trained for the whole recorded schedule and charged for it
        assert (e.epochs, e.cost_seconds) == (EPOCHS, EPOCHS)
        assert e.score == table.curve(e.arch).val_acc[-1] or not e.ok
    ok = [e for e in r.history[11:] if e.ok]
    assert all((e.epochs, e.cost_seconds) == (5, 5) for e in r.history[11:])
    assert [e.score for e in ok] == list(est.predict([table.curve(e.arch) for e in ok], [e.arch for e in ok]))


def test_fit_from_table_and_context_checks(table):
    est = LcSVR(epochs=5, arch_features=["ops"], n_iter=5).fit_from_table(table)
    archs = [SPACE.from_string(s) for s in table.archs()[:3]]
    assert est.predict([table.curve(a) for a in archs], archs).shape == (3,)

    def ctx(**kw):
        return Context(space=SPACE, data=None, protocol=kw.pop("protocol", TINY), **kw)

    est.validate_context(ctx(table=table))
    with pytest.raises(ValueError, match=r"LcSVR\(epochs=25\) needs 25 epochs, but JsonlCurveTable.* records 20"):
        LcSVR(epochs=25).validate_context(ctx(table=table))
    with pytest.raises(ValueError, match=r"first n_fit=100 architectures for fit_epochs=30 epochs to fit, but Jsonl"):
        LcSVR(epochs=5, fit_epochs=30).validate_context(ctx(table=table))
    with pytest.raises(ValueError,
                       match=r"for fit_epochs=30 epochs to fit, but the protocol's schedule has schedule_epochs=10"):
        LcSVR(epochs=5, fit_epochs=30).validate_context(ctx())
    LcSVR(epochs=5).validate_context(ctx())  # TINY: 10 epochs, the fit phase's full schedule
    with pytest.raises(ValueError, match=r"fit_epochs \(epochs=5\) must be an integer >= 5 or None, got 3"):
        LcSVR(epochs=5, fit_epochs=3)
    with pytest.raises(ValueError, match="arch_features must be a subset"):
        LcSVR(arch_features="ops")
    with pytest.raises(ValueError, match="nu must satisfy 0 < low <= high <= 1"):
        LcSVR(nu=(0.5, 2))
