"""Early-stopping validation accuracy (``valacc``): the validation accuracy at epoch T."""

from __future__ import annotations

from ..curves import LearningCurve
from ..registry import estimators
from .base import CurveEstimator

__all__ = ["ValAcc"]


@estimators.register("valacc")
class ValAcc(CurveEstimator):
    """Validation accuracy after ``epochs`` epochs of the protocol's schedule."""

    needs_validation = True
    score_description = "validation accuracy after T epochs (a fraction), higher is better"
    score_is_accuracy = True

    def _score(self, curve: LearningCurve) -> float:
        return self._need(curve, "val_acc", "ValAcc")[-1]
