"""NAS-Bench-101 peer check: our network's size and zero-cost scores vs NASLib's.

``peer-reference/naslib_zc_nasbench101.json`` (shared data) holds NASLib's
values (NAS-Bench-Suite-Zero) for 500 NAS-Bench-101 architectures on
CIFAR-10, keyed by NASLib's encoding (the flattened 7x7 adjacency matrix,
then the 7 op indices): ``params`` and ``flops`` (millions), the zero-cost
proxies, and ``val_accuracy`` (the benchmark's 108-epoch validation accuracy).

**The keys.**  They are raw, unpruned specs: the 500 are 292 distinct cells
(by the benchmark's graph hash, ``NB101Space.canonical``), 55 of them pruning
to the bare input -> output cell.  Copies of one cell carry slightly different
``val_accuracy`` values (the benchmark's ``query`` samples one of its 3
training repeats) and zero-cost scores (a fresh initialisation each).  The
seeded order visits every distinct cell once (its first key in a seeded
permutation) before any repeat, so ``--limit 150`` scores the data-dependent
proxies on 150 distinct cells -- the ones ``tse_nb101`` trains.

**Size.**  NASLib's NAS-Bench-101 network is the benchmark's own (the
PyTorch port in ``naslib/search_spaces/nasbench101``): stem 128 channels,
3 stacks of 3 cells, 32x32 input, 10 classes -- our ``nb101`` space's default
size.  Its params / flops are tensorwatch's ``ModelStats`` of one
``1x3x32x32`` input divided by 1e6 (``reproduce.common.naslib_peer.torchstat_counts``); the
network's modules are ours one for one (conv-BN-ReLU, 3x3 max-pools,
2x2 max-pool downsampling, the mean over pixels outside any module), so no
correction is needed.

Part 1 (``costs.csv``) and part 2 (``scores.csv``) are described in
``reproduce/common/naslib_peer.py``; ``summary.md`` adds the duplicate-key statistics.

    OMP_NUM_THREADS=1 python -m reproduce.nb101_peer_check [--shared ../shared/data] [--limit 150] [--out DIR]

The default ``--out`` is a new directory named after the current UTC time;
an existing non-empty ``--out`` is refused unless ``--resume`` or
``--summarize`` is given, so committed results are never overwritten by
accident.
"""

from __future__ import annotations

import sys
from pathlib import Path

from reproduce.common import naslib_peer
from reproduce.common.nb101_peer import TARGET, duplicate_lines

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    return naslib_peer.main(TARGET, __doc__, ROOT.parent / "shared" / "data", ROOT / "reproduce" / "results", argv,
                            extra=duplicate_lines)


if __name__ == "__main__":
    sys.exit(main())
