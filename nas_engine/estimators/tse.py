"""The training-speed estimators (Ru et al., "Speedy Performance Estimation for NAS").

With ``L_t`` the mean minibatch training loss of epoch ``t`` and ``T`` the budget:

* ``tse``:     TSE     = sum_{t=1..T} L_t
* ``tse-e``:   TSE-E   = sum_{t=T-E+1..T} L_t            (E=1 recommended); for a fraction
  0 < E < 1 of the last epoch, (1/B) sum of its last k = ceil(E B) minibatch losses (see :class:`TSEE`)
* ``tse-ema``: TSE-EMA = sum_{t=1..T} gamma^(T-t) L_t    (gamma=0.999 recommended)
* ``tlmini``:  the training loss of a single minibatch of epoch T (default: its last)
* ``sovl``:    SoVL    = sum_{t=1..T} validation loss at epoch t

All are returned negated, so that higher is better.
"""

from __future__ import annotations

import math
import numbers

from ..config import check_float, check_int
from ..curves import LearningCurve
from ..registry import estimators
from .base import CurveEstimator

__all__ = ["TSE", "TSEE", "TSEEMA", "TLMini", "SoVL", "fraction_batches"]


@estimators.register("tse")
class TSE(CurveEstimator):
    """Sum of the per-epoch training losses over epochs 1..T (negated)."""

    score_description = "negated sum of the per-epoch training losses over T epochs, higher is better"

    def _score(self, curve: LearningCurve) -> float:
        return -math.fsum(self._need(curve, "train_loss", "TSE"))


@estimators.register("tse-e")
class TSEE(CurveEstimator):
    """Sum of the per-epoch training losses over the last ``E`` epochs (negated).

    ``E`` is an integer ``1 <= E <= epochs``, or a fraction ``0 < E < 1`` of the
    last epoch (TSE paper, Appendix D: "E = 0.1 corresponds to the sum of
    training losses over the last 10% of the mini-batches in an epoch"): with
    ``B`` the minibatches of epoch ``T`` and ``k = ceil(E * B)`` (``E * B``
    rounded to 9 decimals first, so that 0.3 * 10 is 3, not 4; at least 1),
    the score is ``-(1/B) * sum`` of the last ``k`` minibatch losses of epoch
    ``T``.  Dividing by ``B`` (not ``k``) makes it the part of ``L_T`` that
    those minibatches contribute: as ``E`` grows to 1 it becomes TSE-E with
    ``E = 1``, and for curves of the same ``B`` it ranks as their plain sum
    does.  A fractional ``E`` needs ``LearningCurve.minibatch_losses``.
    """

    score_description = ("negated sum of the training losses of the last E of T epochs (E < 1: the last "
                         "ceil(E*B) of the B minibatch losses of epoch T, divided by B), higher is better")

    def __init__(self, epochs: int = 10, *, E: int | float = 1, validate: bool | None = None):
        super().__init__(epochs, validate=validate)
        self.E = _window(E, self.epochs)

    def _score(self, curve: LearningCurve) -> float:
        if self.E >= 1:
            return -math.fsum(self._need(curve, "train_loss", "TSE-E")[-self.E:])
        last = self._need(curve, "minibatch_losses", f"TSE-E with a fractional E={self.E:g}")[-1]
        if not last:
            raise ValueError(f"TSE-E with a fractional E={self.E:g} needs the minibatch losses of epoch "
                             f"{curve.epochs}, which this curve records as empty")
        return -math.fsum(last[-fraction_batches(self.E, len(last)):]) / len(last)


def fraction_batches(E: float, batches: int) -> int:
    """``k = max(1, ceil(E * B))`` minibatches of an epoch of ``B = batches`` (``E * B`` rounded to 9 decimals)."""
    return min(batches, max(1, math.ceil(round(E * batches, 9))))


def _window(E, epochs: int) -> int | float:
    """TSE-E's ``E``: an integer in ``1..epochs`` (an integral float becomes an int) or a float in (0, 1)."""
    ok = isinstance(E, numbers.Real) and not isinstance(E, bool) and math.isfinite(E)
    if ok and 0 < E < 1:
        return float(E)
    if ok and float(E).is_integer() and 1 <= E <= epochs:
        return int(E)
    raise ValueError(f"TSEE: E (epochs={epochs}) must be an integer in 1..{epochs} or a fraction of the last "
                     f"epoch in (0, 1), got {E!r}")


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
