"""TSE on NAS-Bench-101 at CPU scale (TSE paper §4 / the thesis' §3.2.1 question on NB101).

Trains NAS-Bench-101 peer architectures (``peer-reference/naslib_zc_nasbench101.json``:
500 keys = 292 distinct cells with the benchmark's 108-epoch CIFAR-10
validation accuracy) from scratch on the real CIFAR-10 subset with a reduced
protocol, scores every curve prefix t = 1..T with TSE, TSE-E, TSE-EMA, SoVL
and early ValAcc, and ranks them against the benchmark accuracy (Spearman and
Kendall), next to the free baselines: #params and #FLOPs (NASLib's values at
the benchmark's size, which our network reproduces exactly), #params of the
proxy network, and every zero-cost proxy as NASLib recorded it for the same
key (and ours, from the committed NB101 peer check, where it scored all the
trained cells).

The architectures are the first ``--archs`` distinct cells of the NB101 peer
check's seeded order (``reproduce.common.nb101_peer.distinct_cells``, seed 0), a
uniformly random subset of the 292.  A cell's truth is the mean of the
``val_accuracy`` values recorded for its keys (each one of the benchmark's 3
repeats).

Reduced protocol (defaults; every choice is a flag): the NAS-Bench-101
network with a 16-channel stem (the benchmark's 128) and 3 stacks of 1 cell
(the benchmark's 3), 16x16 inputs, 3,000 class-balanced training and 1,000
validation images from CIFAR-10's first training batch, random crop and flip,
batch 64, SGD lr 0.1 (Nesterov momentum 0.9, weight decay 5e-4; the benchmark
used RMSProp at batch 256) on a cosine schedule of 108 epochs (the
benchmark's length) of which the first T=12 are run, BatchNorm momentum 0.1
(``--bn-momentum``; the benchmark's TensorFlow decay 0.997 is 0.003 in
PyTorch's convention: its running statistics average over ~333 steps, several
of these short epochs, so evaluation-mode accuracy would read statistics that
lag the weights).  Candidates train two at
a time (processes executor, one torch thread each).

    OMP_NUM_THREADS=1 python -m reproduce.tse_nb101 [--archs 150] [--epochs 12] [--out DIR]

The default ``--out`` is a new directory named after the current UTC time; an
existing non-empty ``--out`` is refused unless ``--resume`` (the training runs
are stored in ``--out/store`` and a resumed run continues where it stopped).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from nas_engine.spaces.nb101 import NB101Space
from reproduce.common import peer_tse
from reproduce.common.naslib_peer import NASLIB_KEY
from reproduce.common.nb101_peer import PEER_FILE, canonical, cell_accuracy, distinct_cells, load_peer

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    results = ROOT / "reproduce" / "results"
    p = peer_tse.parser(__doc__, name="tse_nb101", archs=150, schedule_epochs=108, C=16, N=1,
                        C_help="stem channels (the benchmark's 128)",
                        N_help="cells per stack (the benchmark's 3); 3 stacks", lr=0.1, weight_decay=5e-4,
                        zero_cost=results / "nb101_peer_check" / "scores.csv",
                        default_shared=ROOT.parent / "shared" / "data")
    p.add_argument("--bn-momentum", type=float, default=0.1,
                   help="BatchNorm momentum (PyTorch's convention): 0.1 for a short schedule; the benchmark's "
                        "0.003 lets evaluation-mode statistics lag the weights (see the docstring)")
    args = p.parse_args(argv)
    out = peer_tse.output_dir(p, args, results, "tse_nb101", PEER_FILE)
    peer = load_peer(Path(args.shared))
    keys = distinct_cells(peer, args.seed)[:args.archs]
    space = NB101Space(bn_momentum=args.bn_momentum)
    archs = {k: space.from_naslib(k) for k in keys}
    by_cell = cell_accuracy(peer)
    truth = {archs[k].string: by_cell[canonical(k)] for k in keys}
    acc = np.array(list(truth.values()))
    ours_name = {v: k for k, v in NASLIB_KEY.items()}
    return peer_tse.run(
        args, out, space=space, archs=archs, truth=truth, peer=peer, size_label="NB101 size",
        # NASLib's NB101 file has epe_nas and l2_norm (not ours) and no nwot
        naslib_proxies=[(ours_name.get(c, c), c) for c in peer.columns
                        if c not in ("params", "flops", "val_accuracy", "idx")],
        what="NB101 acc", shown_proxies=("synflow (NASLib)", "jacov (NASLib)"),
        header=[f"# TSE on NAS-Bench-101: {len(keys)} peer cells, T = 1..{args.epochs}", "",
                f"truth (NB101 val acc, %): {acc.min():.2f} .. {acc.max():.2f}, std {acc.std():.2f}", ""],
        title=(f"NAS-Bench-101, {len(keys)} peer cells; truth: NB101 108-epoch val acc\n"
               f"CIFAR-10 {args.n_train} imgs @{args.resolution}px, stem {args.C}, 3 stacks x {args.N} cell(s), "
               f"BN momentum {args.bn_momentum:g}"))


if __name__ == "__main__":
    sys.exit(main())
