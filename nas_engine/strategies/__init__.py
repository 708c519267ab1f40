"""Strategies: one module per strategy; importing this package registers the built-ins."""

from .base import Strategy
from .bo import BayesianOptimization
from .differentiable import DARTS, DARTSTSE, DrNAS, DrNASTSE
from .evolution import RegularizedEvolution
from .fixed import FixedList
from .oneshot import SPOS, FairNAS, MultiPath, RandNAS
from .random import RandomSearch

__all__ = ["Strategy", "BayesianOptimization", "FixedList", "RandomSearch", "RegularizedEvolution",
           "RandNAS", "SPOS", "FairNAS", "MultiPath", "DARTS", "DARTSTSE", "DrNAS", "DrNASTSE"]
