"""The DARTS / NAS-Bench-301 peer file and our DARTS network at NASLib's size (see ``darts_peer_check``).

``peer-reference/naslib_zc_nasbench301.json`` (shared data) holds NASLib's values for 725 DARTS
architectures on CIFAR-10, keyed by NASLib's compact encoding.  NASLib computed its params / flops on
its ``NasBench301SearchSpace`` with ``channels = [32, 64, 128]`` (``C=32``, 8 cells), 32x32 input,
10 classes; :func:`naslib_counts` recounts our network under its definition (torchstat's rules, the
cell ops' BatchNorms taken as NASLib's ``affine=False`` ones).  :data:`TARGET` is the peer check's
:class:`~reproduce.common.naslib_peer.Target`; ``tse_darts`` trains the first keys of its seeded order.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nas_engine.spaces.darts import DartsSpace

from . import naslib_peer
from .naslib_peer import seeded_order

__all__ = ["PEER_FILE", "TARGET", "naslib_counts", "load_peer", "compute_costs", "seeded_order"]

PEER_FILE = ("peer-reference", "naslib_zc_nasbench301.json")
#: NASLib's network size for these values: NasBench301SearchSpace with channels [32, 64, 128] (8 cells)
C, LAYERS, RESOLUTION, NUM_CLASSES = 32, 8, 32, 10
BATCH_SIZE = naslib_peer.BATCH_SIZE


def naslib_counts(model) -> tuple[int, int]:
    """(params, FLOPs) of our DARTS network under NASLib's definition (tensorwatch / torchstat, see the docstring).

    The BatchNorms inside the cell ops count as NASLib's ``affine=False``
    ones (no parameters, one FLOP per element), and each pooling op adds the
    elements of NASLib's ``BatchNorm2d(affine=False)`` after it.
    """
    from torch import nn

    op_bn = set()
    for cell in model.cells:
        for op in cell.ops:
            op_bn.update(m for m in op.modules() if isinstance(m, nn.BatchNorm2d))
    return naslib_peer.torchstat_counts(model, RESOLUTION, unparametrised_bn=op_bn, bn_after_pool=True)


_space = DartsSpace()
TARGET = naslib_peer.Target(
    name="darts_peer_check", peer_file=PEER_FILE, space=_space, decode=_space.from_compact,
    build_size={"C": C, "layers": LAYERS},
    size_text=f"C={C}, {LAYERS} cells", truth_text="NB301 val acc", naslib_counts=naslib_counts)


def load_peer(shared: Path) -> pd.DataFrame:
    """NASLib's 725 architectures: index = compact text, one column per proxy score, ``val_accuracy``."""
    return naslib_peer.load_peer(shared, PEER_FILE)


def compute_costs(peer: pd.DataFrame, path: Path, archs=None) -> pd.DataFrame:
    return naslib_peer.compute_costs(TARGET, peer, path, archs)
