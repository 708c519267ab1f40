"""Search spaces: one module per space; importing this package registers the built-ins."""

from .base import (
    Architecture,
    Encodable,
    Enumerable,
    HasSupernet,
    Mutable,
    SearchSpace,
    require_capability,
)
from .nb201 import NB201Space

__all__ = [
    "Architecture", "SearchSpace", "Mutable", "Encodable", "Enumerable", "HasSupernet",
    "require_capability", "NB201Space",
]
