"""Differentiable NAS strategies: ``darts``, ``darts-tse``, ``drnas``, ``drnas-tse`` (see :mod:`.methods`)."""

from .methods import CHECKPOINT, DARTS, DARTSTSE, DifferentiableStrategy, DrNAS, DrNASTSE
from .trainer import RelaxedTrainer, hessian_vector_product

__all__ = ["DifferentiableStrategy", "DARTS", "DARTSTSE", "DrNAS", "DrNASTSE", "CHECKPOINT", "RelaxedTrainer",
           "hessian_vector_product"]
