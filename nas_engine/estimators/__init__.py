"""Estimators: one module per family; importing this package registers the built-ins."""

from .base import Context, CurveEstimator, Estimate, Estimator, derive_seed, score_curve
from .fear import FEAR
from .lcsvr import LcSVR
from .tse import TSE, TSEE, TSEEMA, SoVL, TLMini
from .valacc import ValAcc

__all__ = [
    "Context", "CurveEstimator", "Estimate", "Estimator", "derive_seed", "score_curve",
    "TSE", "TSEE", "TSEEMA", "TLMini", "SoVL", "ValAcc", "LcSVR", "FEAR",
]
