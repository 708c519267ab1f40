"""Search spaces: one module per space; importing this package registers the built-ins.

Shared by every space: :mod:`.base` (the contracts), :mod:`.restricted`
(:class:`RestrictedSpace`, any space restricted to some of its architectures)
and :mod:`.ops` (network blocks that several spaces build from, e.g. ``ReLUConvBN``).
"""

from .base import (
    Architecture,
    Encodable,
    Enumerable,
    HasSupernet,
    IsomorphismClasses,
    Mutable,
    Relaxable,
    SearchSpace,
    require_capability,
)
from .darts import DartsSpace
from .nb101 import NB101Space
from .nb201 import NB201Space
from .nds import NDSResNetSpace, NDSResNeXtASpace, NDSResNeXtBSpace, NDSSpace
from .randwired import RandWiredSpace
from .restricted import RestrictedSpace

__all__ = [
    "Architecture", "SearchSpace", "Mutable", "Encodable", "Enumerable", "HasSupernet", "Relaxable",
    "IsomorphismClasses", "require_capability", "DartsSpace", "NB101Space", "NB201Space", "NDSSpace",
    "NDSResNetSpace", "NDSResNeXtASpace", "NDSResNeXtBSpace", "RandWiredSpace",
    "RestrictedSpace",
]
