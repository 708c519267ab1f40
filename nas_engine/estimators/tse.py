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

from ..curves import LearningCurve
from ..registry import estimators
from .base import CurveEstimator

__all__ = ["TSE", "TSEE", "TSEEMA", "TLMini", "SoVL"]


@estimators.register("tse")
class TSE(CurveEstimator):
    """Sum of the per-epoch training losses over epochs 1..T (negated)."""

    def _score(self, curve: LearningCurve) -> float:
        return -math.fsum(self._need(curve, "train_loss", "TSE"))


@estimators.register("tse-e")
class TSEE(CurveEstimator):
    """Sum of the per-epoch training losses over the last ``E`` epochs (negated)."""

    def __init__(self, epochs: int = 10, *, E: int = 1, validate: bool | None = None):
        super().__init__(epochs, validate=validate)
        if not isinstance(E, int) or isinstance(E, bool) or not 1 <= E <= epochs:
            raise ValueError(f"TSEE: E must be an integer in [1, epochs={epochs}], got {E!r}")
        self.E = E

    def get_params(self):
        return {**super().get_params(), "E": self.E}

    def _score(self, curve: LearningCurve) -> float:
        return -math.fsum(self._need(curve, "train_loss", "TSE-E")[-self.E:])


@estimators.register("tse-ema")
class TSEEMA(CurveEstimator):
    """Exponentially weighted sum sum_t gamma^(T-t) L_t of the training losses (negated)."""

    def __init__(self, epochs: int = 10, *, gamma: float = 0.999, validate: bool | None = None):
        super().__init__(epochs, validate=validate)
        if not isinstance(gamma, (int, float)) or not 0 < gamma <= 1:
            raise ValueError(f"TSEEMA: gamma must be in (0, 1], got {gamma!r}")
        self.gamma = float(gamma)

    def get_params(self):
        return {**super().get_params(), "gamma": self.gamma}

    def _score(self, curve: LearningCurve) -> float:
        losses = self._need(curve, "train_loss", "TSE-EMA")
        T = len(losses)
        return -math.fsum(self.gamma ** (T - t) * L for t, L in enumerate(losses, start=1))


@estimators.register("tlmini")
class TLMini(CurveEstimator):
    """The training loss of one minibatch of epoch T (``batch``: its index, default the last)."""

    def __init__(self, epochs: int = 10, *, batch: int = -1, validate: bool | None = None):
        super().__init__(epochs, validate=validate)
        if not isinstance(batch, int) or isinstance(batch, bool):
            raise ValueError(f"TLMini: batch must be an integer index, got {batch!r}")
        self.batch = batch

    def get_params(self):
        return {**super().get_params(), "batch": self.batch}

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

    def _score(self, curve: LearningCurve) -> float:
        return -math.fsum(self._need(curve, "val_loss", "SoVL"))
