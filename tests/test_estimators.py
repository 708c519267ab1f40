import math

import pytest

from nas_engine.curves import LearningCurve
from nas_engine.estimators import TSE, TSEE, TSEEMA, SoVL, TLMini, ValAcc, score_curve

# per-epoch means: 2.0, 1.5, 1.0, 0.6
CURVE = LearningCurve(
    minibatch_losses=[[2.2, 1.8], [1.6, 1.4], [1.1, 0.9], [0.7, 0.5]],
    val_loss=[2.1, 1.7, 1.3, 1.2],
    val_acc=[0.2, 0.35, 0.5, 0.55],
    epoch_seconds=[1.0, 1.0, 1.0, 1.0],
)


def test_curve_means_and_fields():
    assert CURVE.epochs == 4
    assert CURVE.train_loss == pytest.approx((2.0, 1.5, 1.0, 0.6))
    assert CURVE.total_seconds == 4.0
    short = CURVE.truncate(2)
    assert short.epochs == 2 and short.val_acc == (0.2, 0.35)
    assert LearningCurve.from_dict(CURVE.to_dict()) == CURVE


def test_curve_rejects_inconsistent_lengths():
    with pytest.raises(ValueError, match="val_acc has 1 epochs but the curve has 2"):
        LearningCurve(minibatch_losses=[[1.0], [2.0]], val_acc=[0.1])


def test_tse_formulas_by_hand():
    assert TSE(epochs=4).score(CURVE) == pytest.approx(-(2.0 + 1.5 + 1.0 + 0.6))
    assert TSE(epochs=2).score(CURVE) == pytest.approx(-(2.0 + 1.5))
    assert TSEE(epochs=4, E=1).score(CURVE) == pytest.approx(-0.6)
    assert TSEE(epochs=4, E=2).score(CURVE) == pytest.approx(-(1.0 + 0.6))
    assert TSEE(epochs=3, E=2).score(CURVE) == pytest.approx(-(1.5 + 1.0))
    # sum_t gamma^(T-t) L_t with T=4, gamma=0.5: 0.125*2 + 0.25*1.5 + 0.5*1 + 1*0.6
    assert TSEEMA(epochs=4, gamma=0.5).score(CURVE) == pytest.approx(-(0.25 + 0.375 + 0.5 + 0.6))
    assert TSEEMA(epochs=4, gamma=0.999).score(CURVE) == pytest.approx(
        -(0.999**3 * 2.0 + 0.999**2 * 1.5 + 0.999 * 1.0 + 0.6))
    assert TSEEMA(epochs=4, gamma=1.0).score(CURVE) == pytest.approx(TSE(epochs=4).score(CURVE))
    assert TLMini(epochs=4).score(CURVE) == pytest.approx(-0.5)
    assert TLMini(epochs=2, batch=0).score(CURVE) == pytest.approx(-1.6)
    assert SoVL(epochs=3).score(CURVE) == pytest.approx(-(2.1 + 1.7 + 1.3))
    assert ValAcc(epochs=3).score(CURVE) == pytest.approx(0.5)


def test_table_curves_without_minibatches():
    c = LearningCurve(train_loss=[1.0, 0.5], val_acc=[0.3, 0.6])
    assert TSE(epochs=2).score(c) == -1.5
    with pytest.raises(ValueError, match="needs LearningCurve.minibatch_losses"):
        TLMini(epochs=2).score(c)


def test_score_curve_scores_one_run_with_many_estimators():
    out = score_curve(CURVE, {"tse@2": TSE(epochs=2), "valacc@4": ValAcc(epochs=4), "tse@9": TSE(epochs=9)})
    assert out["tse@2"] == pytest.approx(-3.5) and out["valacc@4"] == pytest.approx(0.55)
    assert math.isnan(out["tse@9"])  # curve too short
    assert set(score_curve(CURVE, [TSE(epochs=1), ValAcc(epochs=1)])) == {"tse", "valacc"}


def test_too_short_curve_is_refused():
    with pytest.raises(ValueError, match=r"TSEEMA\(epochs=5\) cannot score a curve of 4 epochs"):
        TSEEMA(epochs=5).score(CURVE)


@pytest.mark.parametrize("bad", [
    lambda: TSE(epochs=0), lambda: TSEE(epochs=3, E=4), lambda: TSEEMA(gamma=0.0),
    lambda: TSEEMA(gamma=1.5), lambda: TLMini(batch=0.5), lambda: ValAcc(validate=False),
])
def test_bad_configuration(bad):
    with pytest.raises(ValueError):
        bad()


def test_validation_only_when_needed():
    assert TSEEMA().validate is False and ValAcc().validate is True
    assert TSEEMA(validate=True).validate is True
