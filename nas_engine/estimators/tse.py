"""The training-speed estimators (Ru et al., "Speedy Performance Estimation for NAS").

With ``L_t`` the mean minibatch training loss of epoch ``t`` and ``T`` the budget:

* ``tse``:     TSE     = sum_{t=1..T} L_t
* ``tse-e``:   TSE-E   = sum_{t=T-E+1..T} L_t            (E=1 recommended)
* ``tse-ema``: TSE-EMA = sum_{t=1..T} gamma^(T-t) L_t    (gamma=0.999 recommended)
* ``tlmini``:  the training loss of a single minibatch of epoch T (default: its last)
* ``sovl``:    SoVL    = sum_{t=1..T} validation loss at epoch t

All are returned negated, so that higher is better.
"""

from __future__ import annotations

import math

from ..config import check_float, check_int
from ..curves import LearningCurve
from ..registry import estimators
from .base import CurveEstimator

__all__ = ["TSE", "TSEE", "TSEEMA", "TLMini", "SoVL"]


@estimators.register("tse")
class TSE(CurveEstimator):
    """Sum of the per-epoch training losses over epochs 1..T (negated)."""

    score_description = "negated sum of the per-epoch training losses over T epochs, higher is better"

    def _score(self, curve: LearningCurve) -> float:
        return -math.fsum(self._need(curve, "train_loss", "TSE"))


@estimators.register("tse-e")
class TSEE(CurveEstimator):
    """Sum of the per-epoch training losses over the last ``E`` epochs (negated)."""

    score_description = "negated sum of the training losses of the last E of T epochs, higher is better"

    def __init__(self, epochs: int = 10, *, E: int = 1, validate: bool | None = None):
        super().__init__(epochs, validate=validate)
        self.E = check_int(E, f"E (epochs={epochs})", high=epochs, who="TSEE")

    def _score(self, curve: LearningCurve) -> float:
        return -math.fsum(self._need(curve, "train_loss", "TSE-E")[-self.E:])


@estimators.register("tse-ema")
class TSEEMA(CurveEstimator):
    """Exponentially weighted sum sum_t gamma^(T-t) L_t of the training losses (negated)."""

    score_description = ("negated discounted sum of training losses (sum of gamma^(T-t) L_t over T epochs), "
                         "higher is better")

    def __init__(self, epochs: int = 10, *, gamma: float = 0.999, validate: bool | None = None):
        super().__init__(epochs, validate=validate)
        self.gamma = check_float(gamma, "gamma", low=0, low_open=True, high=1, who="TSEEMA")

    def _score(self, curve: LearningCurve) -> float:
        losses = self._need(curve, "train_loss", "TSE-EMA")
        T = len(losses)
        return -math.fsum(self.gamma ** (T - t) * L for t, L in enumerate(losses, start=1))


@estimators.register("tlmini")
class TLMini(CurveEstimator):
    """The training loss of one minibatch of epoch T (``batch``: its index, default the last)."""

    score_description = "negated training loss of one minibatch of epoch T, higher is better"

    def __init__(self, epochs: int = 10, *, batch: int = -1, validate: bool | None = None):
        super().__init__(epochs, validate=validate)
        self.batch = check_int(batch, "batch (a minibatch index)", low=None, who="TLMini")

    def _score(self, curve: LearningCurve) -> float:
        last = self._need(curve, "minibatch_losses", "TLmini")[-1]
        try:
            return -last[self.batch]
        except IndexError:
            raise ValueError(f"TLMini: batch index {self.batch} is out of range for an epoch of "
                             f"{len(last)} minibatches") from None


@estimators.register("sovl")
class SoVL(CurveEstimator):
    """Sum of the validation losses over epochs 1..T (negated)."""

    needs_validation = True
    score_description = "negated sum of the validation losses over T epochs, higher is better"

    def _score(self, curve: LearningCurve) -> float:
        return -math.fsum(self._need(curve, "val_loss", "SoVL"))
