"""Validation accuracy of inherited weights, without training (the standard one-shot selection).

Under a one-shot strategy (``randnas``, ``spos``, ``fairnas``, ``multipath``)
each candidate is scored with the weights it inherits from the trained
supernet (``ctx.initial_model(arch)``), as in the one-shot evaluation protocols
the SoTL thesis (Table 4.1) and the TSE paper compare TSE against:

* ``valacc-inherited``: accuracy on the whole validation split (thesis "ValAcc");
* ``valacc-mini``: accuracy on one random validation minibatch of
  ``batch_size`` images (thesis "ValAccMini"; RandNAS/SPOS's default), drawn
  per candidate from its seed (so the estimate is reproducible and, as in the
  original protocols, each candidate sees a different minibatch).

With a one-shot strategy's temporal score ensemble (``ensemble=k,
ensemble_mode="scores"``) or ``post_deiso`` averaging, the estimate is the mean
over the strategy's :meth:`~nas_engine.context.InheritsWeights.inherited_variants`
(the last k checkpoints' weights, the members of the isomorphism class), each
on the same images; ``info["variants"]`` says how many.

The supernet's BatchNorm uses batch statistics (see
:class:`~nas_engine.spaces.nb201.NB201Supernet`), so the validation batches are
normalised with their own statistics.  The other estimators of the thesis'
table run through the ordinary curve estimators on a fine-tuning curve from the
inherited weights: ``tse`` (SoTL over B = 100 x epochs fine-tuning minibatches)
and ``tlmini`` with ``batch=0`` at ``epochs=1`` (the loss of the first
fine-tuning minibatch, computed before any update: the inherited weights'
training loss).
"""

from __future__ import annotations

import time

import torch

from ..config import check_int
from ..registry import estimators
from ..training import evaluate, resolve_device
from .base import Context, Estimate, Estimator

__all__ = ["InheritedValAcc", "InheritedValAccMini"]


class _InheritedEstimator(Estimator):
    conformance_strategy = "randnas"

    def validate_context(self, ctx: Context) -> None:
        if not ctx.inherits_weights:
            raise ValueError(
                f"{self.name} scores weights inherited from a supernet; it needs a one-shot strategy "
                f"(randnas, spos, fairnas, multipath), but strategy {getattr(ctx.strategy, 'name', None)!r} "
                "provides no initial weights")
        if ctx.table is not None:
            raise ValueError(f"{self.name} evaluates live networks; it cannot run in tabular mode")
        if ctx.data is None or ctx.data.n_val == 0:
            raise ValueError(f"{self.name} needs a dataset with a validation split")

    def _evaluate(self, arch, ctx: Context, x: torch.Tensor, y: torch.Tensor) -> Estimate:
        """The mean loss and accuracy over the strategy's ``inherited_variants(arch)`` (one network unless it
        averages a temporal score ensemble or an isomorphism class), each on ``(x, y)``."""
        t0 = time.perf_counter()
        device = resolve_device(ctx.protocol.device)
        losses, accs = [], []
        for model in ctx.strategy.inherited_variants(arch):
            loss, acc = evaluate(model.to(device), x, y, ctx.protocol, device)
            losses.append(loss)
            accs.append(acc)
        info = {"val_loss": sum(losses) / len(losses), "images": int(len(y))}
        if len(accs) > 1:
            info["variants"] = len(accs)
        return Estimate(sum(accs) / len(accs), time.perf_counter() - t0, 0.0, None, info)


@estimators.register("valacc-inherited")
class InheritedValAcc(_InheritedEstimator):
    """Accuracy of the inherited weights on the whole validation split (no training)."""

    score_description = "validation accuracy of the weights inherited from the supernet (no training)"
    score_is_accuracy = True

    def estimate(self, arch, ctx: Context) -> Estimate:
        self.validate_context(ctx)
        return self._evaluate(arch, ctx, ctx.data.x_val, ctx.data.y_val)


@estimators.register("valacc-mini")
class InheritedValAccMini(_InheritedEstimator):
    """Accuracy of the inherited weights on one random validation minibatch of ``batch_size`` images."""

    score_description = "accuracy of the inherited weights on one random validation minibatch (no training)"
    score_is_accuracy = True

    def __init__(self, batch_size: int = 64):
        # at least 2 images: BatchNorm normalises with the minibatch's statistics
        self.batch_size = check_int(batch_size, "batch_size", low=2, who="InheritedValAccMini")

    def estimate(self, arch, ctx: Context) -> Estimate:
        self.validate_context(ctx)
        gen = torch.Generator().manual_seed(ctx.arch_seed(arch))
        idx = torch.randperm(ctx.data.n_val, generator=gen)[: self.batch_size].to(ctx.data.x_val.device)
        return self._evaluate(arch, ctx, ctx.data.x_val[idx], ctx.data.y_val[idx])
