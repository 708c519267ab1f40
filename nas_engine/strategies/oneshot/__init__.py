"""One-shot (supernet) strategies: ``randnas``, ``spos``, ``fairnas``, ``multipath``, ``reptile``, ``metaprox``."""

from .base import CHECKPOINT, InheritedWeights, OneShotStrategy
from .methods import SPOS, FairNAS, MetaProx, MultiPath, RandNAS, Reptile
from .supernet import SupernetTrainer, fair_paths, uniform_paths

__all__ = ["OneShotStrategy", "InheritedWeights", "CHECKPOINT", "RandNAS", "SPOS", "FairNAS", "MultiPath",
           "Reptile", "MetaProx", "SupernetTrainer", "fair_paths", "uniform_paths"]
