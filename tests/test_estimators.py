import math
import re

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


def test_tse_e_fractional_window_by_hand():
    # last epoch: 10 minibatches 1..10 (B = 10); E < 1 sums the last ceil(E*B) of them, divided by B
    c = LearningCurve(minibatch_losses=[[9.0] * 10, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]])
    assert TSEE(epochs=2, E=0.1).score(c) == pytest.approx(-10 / 10)
    assert TSEE(epochs=2, E=0.3).score(c) == pytest.approx(-(8 + 9 + 10) / 10)  # 0.3*10 is 3, not 4
    assert TSEE(epochs=2, E=0.5).score(c) == pytest.approx(-40 / 10)
    assert TSEE(epochs=2, E=0.7).score(c) == pytest.approx(-49 / 10)
    assert TSEE(epochs=2, E=0.95).score(c) == TSEE(epochs=2, E=1).score(c) == pytest.approx(-5.5)  # ceil(9.5)
    assert TSEE(epochs=2, E=2).score(c) == pytest.approx(-14.5)
    assert TSEE(epochs=1, E=0.3).score(c) == pytest.approx(-27 / 10)  # epoch T=1: its own last 3
    # B = 3: E=0.5 -> ceil(1.5) = 2 minibatches; a tiny E still takes one
    three = LearningCurve(minibatch_losses=[[3.0, 6.0, 9.0]])
    assert TSEE(epochs=1, E=0.5).score(three) == pytest.approx(-15 / 3)
    assert TSEE(epochs=1, E=1e-6).score(three) == pytest.approx(-3.0)
    assert TSEE(epochs=2, E=2.0).E == 2 and isinstance(TSEE(epochs=2, E=2.0).E, int)
    with pytest.raises(ValueError, match=r"TSE-E with a fractional E=0.3 needs LearningCurve.minibatch_losses"):
        TSEE(epochs=2, E=0.3).score(LearningCurve(train_loss=[1.0, 0.5]))


@pytest.mark.parametrize("E", [0, 1.5, 3, True, float("nan"), -0.2, "0.5"])
def test_tse_e_bad_window_is_named(E):
    msg = f"TSEE: E (epochs=2) must be an integer in 1..2 or a fraction of the last epoch in (0, 1), got {E!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        TSEE(epochs=2, E=E)
