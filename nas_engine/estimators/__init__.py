"""Estimators: one module per family; importing this package registers the built-ins."""

from .base import Context, CurveEstimator, Estimate, Estimator, FineTuning, derive_seed, score_curve
from .ensemble import Ensemble
from .fear import FEAR
from .gbm import LcLGBM, LcXGB
from .inherited import InheritedValAcc, InheritedValAccMini
from .lcsvr import LcSVR
from .predictor import CurvePredictor
from .tse import TSE, TSEE, TSEEMA, SoVL, TLMini
from .valacc import ValAcc
from .zero_cost import NWOT, SNIP, Fisher, FLOPs, GradNorm, GraSP, JacCov, Params, Plain, SynFlow, ZeroCostEstimator

__all__ = [
    "Context", "CurveEstimator", "CurvePredictor", "Estimate", "Estimator", "FineTuning", "derive_seed", "score_curve",
    "TSE", "TSEE", "TSEEMA", "TLMini", "SoVL", "ValAcc", "LcSVR", "LcXGB", "LcLGBM",
    "InheritedValAcc", "InheritedValAccMini",
    "ZeroCostEstimator", "SynFlow", "SNIP", "GraSP", "Fisher", "GradNorm", "Plain", "JacCov", "NWOT", "Params", "FLOPs",
    "FEAR", "Ensemble",
]
