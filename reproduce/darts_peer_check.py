"""DARTS / NAS-Bench-301 peer check: our network's size and zero-cost scores vs NASLib's.

``peer-reference/naslib_zc_nasbench301.json`` (shared data) holds NASLib's
values (NAS-Bench-Suite-Zero) for 725 DARTS architectures on CIFAR-10, keyed
by NASLib's compact encoding: ``params`` and ``flops`` (``score`` in millions),
the zero-cost proxies, and ``val_accuracy`` (predicted by NAS-Bench-301).

**Size.**  NASLib computed them on its ``NasBench301SearchSpace`` graph as it
was before NASLib commit a4412f18 (2022-10-06, "Reduce number of channels in
NB301 graph"): ``channels = [32, 64, 128]``, i.e. ``C=32``, 8 cells
(``layers=8``, our ``N=2``), 32x32 input, 10 classes, no auxiliary head in the
counted forward pass.  Its params / flops are tensorwatch's ``ModelStats`` of
one ``1x3x32x32`` input divided by 1e6 (``find_measures`` in
``naslib/predictors/utils/pruners/predictive.py``): torchstat's rules -- the
parameters of every leaf module that runs; FLOPs = conv and linear
multiply-accumulates (no factor 2), plus one per element for ReLU, one
(non-affine) or two (affine) per element for BatchNorm, ``k*k`` per output
element of a pooling, ``(h+1)(w+1)`` per channel for the global pooling.
NASLib's cell ops differ from the DARTS ``NetworkCIFAR`` (ours) only in their
BatchNorms: sep/dil convs and the reduction cell's FactorizedReduce skip have
``affine=False`` BatchNorms, and the pooling ops are followed by a
``BatchNorm2d(affine=False)``.

Part 1 (``costs.csv``): for every architecture, NASLib's values, ours as the
engine counts them (:func:`nas_engine.costs.count_params`, every parameter;
:func:`nas_engine.costs.count_flops`, torch's counter, 2 FLOPs per
multiply-add, convs and matmuls only) and ours recounted under NASLib's
definition (:func:`reproduce.common.darts_peer.naslib_counts`: torchstat's rules on our network, its
cell-op BatchNorms taken as NASLib's).

Part 2 (``scores.csv``): our zero-cost proxies
(:func:`nas_engine.estimators.zero_cost.zero_cost_scores`, seed 0, one fixed
minibatch of 32 un-augmented images from the shared ``data_batch_1``; NASLib's
batch is 32 too: its jacov values, <= -32 and >= -32.38, say so) at NASLib's
size.  Architectures are visited in a seeded random order and the proxies in
tiers (data-free on all, then the data-dependent ones on the first
``--limit``, then grasp on the first ``--grasp-limit``), so an interrupted
run leaves each proxy scored on a uniformly random subset; rerun with
``--resume`` to continue.  ``summary.md`` / ``summary.csv`` are rewritten at
the end (``--summarize`` rebuilds them from the CSVs alone).  ``--start N`` begins the
data-dependent tiers at the N-th architecture of the order, so that two
processes (different ``--out``) can share the work; their ``scores.csv`` rows
are then concatenated.

The machinery is shared with the NAS-Bench-101 peer check (:mod:`reproduce.common.naslib_peer`).

    OMP_NUM_THREADS=1 python -m reproduce.darts_peer_check [--shared ../shared/data] [--out DIR]

The default ``--out`` is a new directory named after the current UTC time;
an existing non-empty ``--out`` is refused unless ``--resume`` or
``--summarize`` is given, so committed results are never overwritten by
accident.
"""

from __future__ import annotations

import sys
from pathlib import Path

from reproduce.common import naslib_peer
from reproduce.common.darts_peer import TARGET

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    return naslib_peer.main(TARGET, __doc__, ROOT.parent / "shared" / "data", ROOT / "reproduce" / "results", argv)


if __name__ == "__main__":
    sys.exit(main())
