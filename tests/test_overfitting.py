import math

import pytest

from nas_engine.curves import LearningCurve, overfitting_budget, overfitting_epoch

TRAIN = [2.0, 1.5, 1.2, 1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2]
# validation loss is best at epoch 4 and rises from epoch 5 on
OVERFITS_AT_5 = LearningCurve(train_loss=TRAIN, val_loss=[2.1, 1.7, 1.4, 1.3, 1.35, 1.4, 1.5, 1.6, 1.7, 1.8])
# a two-epoch blip (epochs 5-6) and then new bests
BLIP = LearningCurve(train_loss=TRAIN, val_loss=[2.1, 1.7, 1.4, 1.3, 1.35, 1.36, 1.2, 1.1, 1.0, 0.95])
NO_OVERFIT = LearningCurve(train_loss=TRAIN, val_loss=[2.1, 1.7, 1.4, 1.3, 1.25, 1.2, 1.15, 1.1, 1.05, 1.0])


def test_overfitting_epoch_is_the_first_epoch_of_the_rise():
    assert overfitting_epoch(OVERFITS_AT_5) == 5
    assert overfitting_epoch(OVERFITS_AT_5, patience=1) == 5
    assert overfitting_epoch(NO_OVERFIT) is None


def test_blips_shorter_than_patience_are_ignored():
    assert overfitting_epoch(BLIP) is None
    assert overfitting_epoch(BLIP, patience=2) == 5


def test_rise_must_last_patience_epochs_within_the_curve():
    late = LearningCurve(train_loss=TRAIN, val_loss=[2.1, 1.7, 1.4, 1.3, 1.2, 1.1, 1.0, 0.9, 1.0, 1.1])
    assert overfitting_epoch(late) is None  # rises at epochs 9-10 only: not yet confirmed
    assert overfitting_epoch(late, patience=2) == 9


def test_tolerance_ignores_small_rises():
    assert overfitting_epoch(OVERFITS_AT_5, tolerance=0.06) == 6  # 1.35 is within 0.06 of 1.3
    assert overfitting_epoch(OVERFITS_AT_5, tolerance=1.0) is None


def test_validation_rising_with_training_loss_is_not_overfitting():
    diverging = LearningCurve(train_loss=[2.0, 1.5, 1.2, 1.3, 1.5, 1.8, 2.0],
                              val_loss=[2.1, 1.7, 1.4, 1.5, 1.7, 2.0, 2.2])
    assert overfitting_epoch(diverging) is None
    # training loss must stay below its best before the rise, not merely fall epoch to epoch
    plateau = LearningCurve(train_loss=[2.0, 1.0, 1.4, 1.3, 1.2, 1.1], val_loss=[2.0, 1.5, 1.6, 1.7, 1.8, 1.9])
    assert overfitting_epoch(plateau) is None


def test_val_acc_signal():
    curve = LearningCurve(train_loss=TRAIN, val_acc=[0.3, 0.5, 0.6, 0.7, 0.72, 0.69, 0.68, 0.66, 0.65, 0.6])
    assert overfitting_epoch(curve, signal="val_acc") == 6  # best at epoch 5
    assert overfitting_epoch(curve, signal="val_acc", tolerance=0.045) == 8  # 0.69 and 0.68 are within 0.045
    with pytest.raises(ValueError, match=r"needs LearningCurve.val_loss.*signal='val_acc'"):
        overfitting_epoch(curve)


def test_train_loss_from_minibatches_and_nan_values():
    curve = LearningCurve(minibatch_losses=[[2.1, 1.9], [1.6, 1.4], [1.1, 0.9], [0.7, 0.5], [0.4, 0.3]],
                          val_loss=[2.0, 1.5, 1.6, 1.7, 1.8])
    assert overfitting_epoch(curve, patience=2) == 3
    # a NaN validation value breaks a rise
    gap = LearningCurve(train_loss=TRAIN[:6], val_loss=[2.0, 1.5, 1.6, math.nan, 1.7, 1.8])
    assert overfitting_epoch(gap, patience=2) == 5
    # and is skipped by the running best
    first_nan = LearningCurve(train_loss=TRAIN[:5], val_loss=[math.nan, 1.5, 1.6, 1.7, 1.8])
    assert overfitting_epoch(first_nan) == 3


def test_overfitting_budget_uses_the_earliest_overfit():
    overfits_at_7 = LearningCurve(train_loss=TRAIN, val_loss=[2.1, 1.7, 1.4, 1.3, 1.2, 1.1, 1.2, 1.3, 1.4, 1.5])
    assert overfitting_budget([overfits_at_7]) == 6  # floor(0.9 * 7)
    assert overfitting_budget([NO_OVERFIT, overfits_at_7, BLIP, OVERFITS_AT_5]) == 4  # floor(0.9 * 5)
    assert overfitting_budget(iter([overfits_at_7, OVERFITS_AT_5]), fraction=0.5) == 2
    assert overfitting_budget([BLIP], patience=2) == 4
    assert overfitting_budget([NO_OVERFIT, BLIP]) is None


def test_overfitting_budget_rounding():
    earliest = LearningCurve(train_loss=TRAIN, val_loss=[1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9])
    assert overfitting_epoch(earliest) == 2
    assert overfitting_budget([earliest], fraction=0.3) == 1  # floor(0.6), but at least 1
    # 0.29 * 100 is 28.999999999999996 in floating point
    long = LearningCurve(train_loss=[1 / e for e in range(1, 104)],
                         val_loss=[1 / e for e in range(1, 100)] + [1.0, 1.0, 1.0, 1.0])
    assert overfitting_epoch(long) == 100
    assert overfitting_budget([long], fraction=0.29) == 29


def test_errors():
    with pytest.raises(ValueError, match="needs LearningCurve.val_acc"):
        overfitting_epoch(OVERFITS_AT_5, signal="val_acc")
    with pytest.raises(ValueError, match="needs LearningCurve.train_loss"):
        overfitting_epoch(LearningCurve(val_loss=[1.0, 2.0]))
    with pytest.raises(ValueError, match="signal must be one of"):
        overfitting_epoch(OVERFITS_AT_5, signal="train_loss")
    with pytest.raises(ValueError, match="patience must be an integer >= 1; got 0"):
        overfitting_epoch(OVERFITS_AT_5, patience=0)
    with pytest.raises(ValueError, match="tolerance must be >= 0; got -0.1"):
        overfitting_epoch(OVERFITS_AT_5, tolerance=-0.1)
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]; got 1.5"):
        overfitting_budget([OVERFITS_AT_5], fraction=1.5)
    with pytest.raises(ValueError, match="at least one learning curve"):
        overfitting_budget([])
    with pytest.raises(ValueError, match="needs LearningCurve.val_loss"):
        overfitting_budget([OVERFITS_AT_5, LearningCurve(train_loss=[1.0, 0.5], val_acc=[0.1, 0.2])])
