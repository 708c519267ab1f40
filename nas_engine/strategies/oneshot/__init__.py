"""One-shot (supernet) strategies: ``randnas``, ``spos``, ``fairnas``, ``multipath``."""

from .base import CHECKPOINT, InheritedWeights, OneShotStrategy
from .methods import SPOS, FairNAS, MultiPath, RandNAS
from .supernet import SupernetTrainer, fair_paths, uniform_paths

__all__ = ["OneShotStrategy", "InheritedWeights", "CHECKPOINT", "RandNAS", "SPOS", "FairNAS", "MultiPath",
           "SupernetTrainer", "fair_paths", "uniform_paths"]
