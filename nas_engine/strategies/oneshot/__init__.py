"""One-shot (supernet) strategies: ``randnas``, ``spos``, ``fairnas``, ``multipath``, ``reptile``, ``metaprox``."""

from .base import CHECKPOINT, ENSEMBLE_MODES, FORGETTING_FILE, InheritedWeights, OneShotStrategy, snapshot_name
from .methods import SPOS, FairNAS, MetaProx, MultiPath, RandNAS, Reptile
from .supernet import (
    FORGETTING_IMAGES,
    Pruning,
    SupernetTrainer,
    fair_paths,
    path_accuracy,
    repeated,
    uniform_paths,
)

__all__ = ["OneShotStrategy", "InheritedWeights", "CHECKPOINT", "FORGETTING_FILE", "ENSEMBLE_MODES", "snapshot_name",
           "RandNAS", "SPOS", "FairNAS", "MultiPath", "Reptile", "MetaProx", "SupernetTrainer", "Pruning",
           "fair_paths", "uniform_paths", "repeated", "path_accuracy", "FORGETTING_IMAGES"]
