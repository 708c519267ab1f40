"""Learning curves: what a training run records, whatever produced it.

A :class:`LearningCurve` holds, for epochs ``1..T``: every minibatch training
loss (grouped by epoch), per-epoch training loss/accuracy, validation
loss/accuracy (when measured) and seconds per epoch.  Curve-based estimators
score curves through a pure ``score(curve)``, so curves from a live run, a
tabular benchmark or another program are scored the same way.

:func:`overfitting_epoch` and :func:`overfitting_budget` find where curves start
to overfit, to cap the training budget of TSE-E/TSE-EMA (TSE paper, §4.2).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["LearningCurve", "overfitting_epoch", "overfitting_budget"]


def _floats(xs) -> list[float]:
    return [float(x) for x in xs]


@dataclass(frozen=True)
class LearningCurve:
    """Per-epoch record of one training run.

    Construct directly from lists (e.g. ``LearningCurve(minibatch_losses=[[2.3, 2.1],
    [1.9, 1.8]], val_acc=[0.3, 0.4])``) or get one from :func:`nas_engine.training.train`.

    ``train_loss`` defaults to the per-epoch mean of ``minibatch_losses``; a
    source that only has epoch means (a table) passes ``train_loss`` alone.
    Accuracies are fractions in [0, 1].  Every per-epoch list that is given must
    have one entry per epoch.
    """

    minibatch_losses: tuple[tuple[float, ...], ...] = ()
    train_loss: tuple[float, ...] = ()
    train_acc: tuple[float, ...] = ()
    val_loss: tuple[float, ...] = ()
    val_acc: tuple[float, ...] = ()
    epoch_seconds: tuple[float, ...] = ()
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        set_ = object.__setattr__
        mb = tuple(tuple(_floats(e)) for e in self.minibatch_losses)
        set_(self, "minibatch_losses", mb)
        tl = tuple(_floats(self.train_loss))
        if not tl and mb:
            tl = tuple(float(np.mean(e)) if e else math.nan for e in mb)
        set_(self, "train_loss", tl)
        for name in ("train_acc", "val_loss", "val_acc", "epoch_seconds"):
            set_(self, name, tuple(_floats(getattr(self, name))))
        n = self.epochs
        for name in ("minibatch_losses", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds"):
            v = getattr(self, name)
            if v and len(v) != n:
                raise ValueError(
                    f"LearningCurve.{name} has {len(v)} epochs but the curve has {n}; "
                    "every per-epoch list must have one entry per epoch"
                )

    @property
    def epochs(self) -> int:
        """Number of epochs recorded (T)."""
        return max(
            len(self.minibatch_losses), len(self.train_loss), len(self.train_acc),
            len(self.val_loss), len(self.val_acc), len(self.epoch_seconds),
        )

    @property
    def total_seconds(self) -> float:
        return float(sum(self.epoch_seconds))

    def truncate(self, epochs: int) -> LearningCurve:
        """The same run seen only up to epoch ``epochs`` (for scoring at several budgets T)."""
        if not 1 <= epochs <= self.epochs:
            raise ValueError(f"cannot truncate a {self.epochs}-epoch curve to {epochs} epochs")
        if epochs == self.epochs:
            return self
        return LearningCurve(**{
            name: getattr(self, name)[:epochs]
            for name in ("minibatch_losses", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds")
        }, info=dict(self.info))

    def is_finite(self) -> bool:
        vals = [x for e in self.minibatch_losses for x in e] + list(self.train_loss)
        return all(math.isfinite(x) for x in vals)

    # -- serialisation (JSON-friendly, used by the store) ---------------------
    def to_dict(self) -> dict[str, Any]:
        d = {
            name: [list(e) for e in v] if name == "minibatch_losses" else list(v)
            for name in ("minibatch_losses", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds")
            if (v := getattr(self, name))
        }
        if self.info:
            d["info"] = dict(self.info)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LearningCurve:
        return cls(**d)

    def __repr__(self) -> str:
        last = f", train_loss[-1]={self.train_loss[-1]:.4g}" if self.train_loss else ""
        va = f", val_acc[-1]={self.val_acc[-1]:.4g}" if self.val_acc else ""
        return f"LearningCurve(epochs={self.epochs}{last}{va})"


# -- overfitting (TSE paper §4.2: stop TSE-E/TSE-EMA at 0.9 T_o) -----------------
_SIGNALS = {"val_loss": 1.0, "val_acc": -1.0}  # sign that turns the signal into "lower is better"


def overfitting_epoch(curve: LearningCurve, *, patience: int = 3, tolerance: float = 0.0,
                      signal: str = "val_loss") -> int | None:
    """The epoch (1-based) at which ``curve`` starts to overfit, or None if it never does.

    Overfitting starts at epoch ``t`` when, for ``patience`` consecutive epochs
    ``t .. t + patience - 1``, validation gets worse while training gets better, both
    measured against their bests over epochs ``1 .. t - 1``:

    * the validation signal is worse than its best so far by more than ``tolerance``
      (``signal="val_loss"``: validation loss above its running minimum;
      ``signal="val_acc"``: validation accuracy below its running maximum), and
    * the training loss is below its best so far (training still improves).

    The first such ``t`` is returned, so ``t - 1`` is the last epoch before the rise.  A
    rise shorter than ``patience`` epochs (a noisy blip), or one that starts in the last
    ``patience - 1`` epochs (not yet confirmed), does not count.  NaN values never count as
    part of a rise and are skipped by the running bests.  ``tolerance`` is in the units of
    the signal (loss, or accuracy as a fraction).
    """
    if signal not in _SIGNALS:
        raise ValueError(f"signal must be one of {sorted(_SIGNALS)}; got {signal!r}")
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise ValueError(f"patience must be an integer >= 1; got {patience!r}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0; got {tolerance!r}")
    if not getattr(curve, signal):
        other = "val_acc" if signal == "val_loss" else "val_loss"
        raise ValueError(f"overfitting_epoch(signal={signal!r}) needs LearningCurve.{signal}, which this curve "
                         f"lacks (signal={other!r} uses LearningCurve.{other})")
    if not curve.train_loss:
        raise ValueError("overfitting_epoch needs LearningCurve.train_loss (or minibatch_losses), "
                         "which this curve lacks")
    val = _SIGNALS[signal] * np.asarray(getattr(curve, signal))
    train = np.asarray(curve.train_loss)
    best_val, best_train = np.fmin.accumulate(val), np.fmin.accumulate(train)  # [i]: best of epochs 1..i+1
    for i in range(1, len(val) - patience + 1):  # a rise over epochs i+1 .. i+patience, against epochs 1..i
        rise = slice(i, i + patience)
        if (val[rise] > best_val[i - 1] + tolerance).all() and (train[rise] < best_train[i - 1]).all():
            return i + 1
    return None


def overfitting_budget(curves: Iterable[LearningCurve], fraction: float = 0.9, *, patience: int = 3,
                       tolerance: float = 0.0, signal: str = "val_loss") -> int | None:
    """The training budget ``floor(fraction * T_o)`` (at least 1) from a few full learning curves.

    The TSE paper (§4.2) observes full curves of a few architectures, takes ``T_o`` as the
    earliest epoch at which any of them starts to overfit, and stops TSE-E/TSE-EMA at
    ``0.9 T_o``.  ``T_o`` is the minimum of :func:`overfitting_epoch` (with ``patience``,
    ``tolerance`` and ``signal``) over ``curves``; ``fraction * T_o`` is rounded to 9
    decimals before the floor, so floating-point noise does not lose an epoch.  Returns None
    when no curve overfits (no cap is needed).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1]; got {fraction!r}")
    curves = list(curves)
    if not curves:
        raise ValueError("overfitting_budget needs at least one learning curve")
    epochs = [e for c in curves
              if (e := overfitting_epoch(c, patience=patience, tolerance=tolerance, signal=signal)) is not None]
    if not epochs:
        return None
    return max(1, math.floor(round(fraction * min(epochs), 9)))
