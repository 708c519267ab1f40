"""Strategies: one module per strategy; importing this package registers the built-ins."""

from .base import Strategy
from .evolution import RegularizedEvolution
from .random import RandomSearch

__all__ = ["Strategy", "RandomSearch", "RegularizedEvolution"]
