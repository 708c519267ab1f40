"""Is Synthetic CIFAR-10 learnable at a given size?  A position-aware linear baseline.

The labels of ``synthetic-cifar10`` (FEAR Appendix A.4) are the argmax of ten
random 3072-3072-1 ReLU networks of i.i.d. Gaussian pixels, mostly a random
position-specific linear function of the pixels.  This fits multinomial
logistic regression (scikit-learn) on the raw pixels for a few training-set
sizes and prints its training and validation accuracy: the reference for
whether NB201 networks trained on the same split (``zero_cost_synthetic.py``)
generalise at all.  With ``--cell-epochs E`` it also trains one NB201 cell
(all 3x3 convolutions, C=8, N=1, batch 128, lr 0.1 cosine) on the largest size
for E epochs and prints its training and validation accuracy per epoch.
``--side S`` uses the scaled-down construction (S x S images, labelling
networks on 3*S*S inputs; ``load_dataset(..., side=S)``).

    python -m reproduce.synthetic_learnability --sizes 5000,20000
    python -m reproduce.synthetic_learnability --sizes 40000 --cell-epochs 15
    python -m reproduce.synthetic_learnability --side 8 --sizes 5000,10000 --cell-epochs 15
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from sklearn.linear_model import LogisticRegression

from nas_engine.data import load_dataset
from nas_engine.spaces.nb201 import NB201Network
from nas_engine.training import Protocol, train

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="5000,20000", help="comma-separated training-set sizes")
    p.add_argument("--n-val", type=int, default=2000)
    p.add_argument("--max-iter", type=int, default=200)
    p.add_argument("--cell-epochs", type=int, default=0, help="also train one NB201 cell for this many epochs")
    p.add_argument("--skip-linear", action="store_true", help="only the NB201 cell")
    p.add_argument("--side", type=int, default=32, help="side of the generated images (32: the paper's)")
    args = p.parse_args(argv)
    sizes = [int(v) for v in args.sizes.split(",")]
    print(f"side {args.side}\nn_train,train_acc,val_acc,seconds")
    for n in ([] if args.skip_linear else sizes):
        d = load_dataset("synthetic-cifar10", n_train=n, n_val=args.n_val, n_test=0, side=args.side)
        x, y = d.x_train.reshape(n, -1).numpy(), d.y_train.numpy()
        xv, yv = d.x_val.reshape(len(d.y_val), -1).numpy(), d.y_val.numpy()
        t = time.perf_counter()
        clf = LogisticRegression(max_iter=args.max_iter).fit(x, y)
        print(f"{n},{clf.score(x, y):.3f},{clf.score(xv, yv):.3f},{time.perf_counter() - t:.0f}", flush=True)
    if args.cell_epochs:
        d = load_dataset("synthetic-cifar10", n_train=max(sizes), n_val=args.n_val, n_test=0, side=args.side)
        torch.manual_seed(0)
        net = NB201Network(["nor_conv_3x3"] * 6, 10, in_channels=3, C=8, N=1)
        protocol = Protocol(schedule_epochs=args.cell_epochs, batch_size=128, lr=0.1, size={"C": 8, "N": 1},
                            device="cpu")
        t0 = time.perf_counter()
        print("cell epoch,train_acc,val_acc,seconds")

        def on_epoch(epoch, curve):
            print(f"{epoch},{curve.train_acc[-1]:.3f},{curve.val_acc[-1]:.3f},{time.perf_counter() - t0:.0f}",
                  flush=True)

        train(net, d, protocol, on_epoch=on_epoch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
