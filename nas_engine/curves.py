"""Learning curves: what a training run records, whatever produced it.

A :class:`LearningCurve` holds, for epochs ``1..T``: every minibatch training
loss (grouped by epoch), per-epoch training loss/accuracy, validation
loss/accuracy (when measured) and seconds per epoch.  Curve-based estimators
score curves through a pure ``score(curve)``, so curves from a live run, a
tabular benchmark or another program are scored the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["LearningCurve"]


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


