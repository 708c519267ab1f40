"""TSE on the DARTS space at CPU scale (TSE paper Fig. 2 / Table 1 style).

Trains NAS-Bench-301 peer architectures (``peer-reference/naslib_zc_nasbench301.json``:
725 DARTS-space cells with NAS-Bench-301's predicted CIFAR-10 validation
accuracy) from scratch on the real CIFAR-10 subset with a reduced protocol,
scores every curve prefix t = 1..T with TSE, TSE-E, TSE-EMA, SoVL and early
ValAcc, and ranks them against the NAS-Bench-301 accuracy (Spearman and
Kendall), next to the free baselines: #params and #FLOPs (NASLib's values at
NAS-Bench-301's size, C=32 and 8 cells), and every zero-cost proxy as NASLib
recorded it for the same architectures (and ours, from the committed DARTS
peer check, where it scored them).

The architectures are the first ``--archs`` of the DARTS peer check's seeded
order (``reproduce.common.darts_peer.seeded_order``, seed 0): a uniformly random subset
of the 725 on which that check also computed our data-dependent zero-cost
proxies (its first 120).

Reduced protocol (defaults; every choice is a flag): the DARTS evaluation
network at C=8 with 5 cells (``N=1``: reductions after cells 1 and 3), no
auxiliary head, no drop path, 16x16 inputs, 3,000 class-balanced training and
1,000 validation images from CIFAR-10's first training batch, random crop and
flip, batch 64, SGD lr 0.025 (momentum 0.9, weight decay 3e-4, DARTS's
evaluation recipe) on a cosine schedule of 100 epochs, of which the first
T=12 are run.  Candidates train two at a time (processes executor, one torch
thread each).  The algorithm is unchanged; only the scale is reduced.

    OMP_NUM_THREADS=1 python -m reproduce.tse_darts [--archs 100] [--epochs 12] [--out DIR]

The default ``--out`` is a new directory named after the current UTC time; an
existing non-empty ``--out`` is refused unless ``--resume`` (the training runs
are stored in ``--out/store`` and a resumed run continues where it stopped).
"""

from __future__ import annotations

import sys
from pathlib import Path

from nas_engine.spaces.darts import DartsSpace
from reproduce.common import peer_tse
from reproduce.common.darts_peer import PEER_FILE, load_peer, seeded_order
from reproduce.common.naslib_peer import NASLIB_KEY, PROXIES

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    results = ROOT / "reproduce" / "results"
    p = peer_tse.parser(__doc__, name="tse_darts", archs=100, schedule_epochs=100, C=8, N=1,
                        N_help="cells per stage; the network has 3N+2 cells", lr=0.025, weight_decay=3e-4,
                        zero_cost=results / "darts_peer_check" / "scores.csv",
                        default_shared=ROOT.parent / "shared" / "data")
    args = p.parse_args(argv)
    out = peer_tse.output_dir(p, args, results, "tse_darts", PEER_FILE)
    peer = load_peer(Path(args.shared))
    keys = seeded_order(peer, args.seed)[:args.archs]
    space = DartsSpace()
    archs = {k: space.from_compact(k) for k in keys}
    truth = {archs[k].string: float(peer.at[k, "val_accuracy"]) for k in keys}
    return peer_tse.run(
        args, out, space=space, archs=archs, truth=truth, peer=peer, size_label="NB301 size",
        naslib_proxies=[(q, NASLIB_KEY.get(q, q)) for q in PROXIES if q not in ("params", "flops")],
        what="NB301 acc", shown_proxies=("synflow (NASLib)", "nwot (NASLib)"), protocol_kw={"nesterov": False},
        header=[f"# TSE on the DARTS space: {len(keys)} NB301 peer architectures, T = 1..{args.epochs}", ""],
        title=(f"DARTS space, {len(keys)} NB301 peer archs; truth: NB301 predicted val acc\n"
               f"CIFAR-10 {args.n_train} imgs @{args.resolution}px, C={args.C}, {3 * args.N + 2} cells"))


if __name__ == "__main__":
    sys.exit(main())
