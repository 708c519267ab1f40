"""Seconds per search epoch of differentiable NAS vs single-path one-shot training, on one supernet and data.

The thesis (§3.3.3, §4.3.2) claims SoTL-DARTS costs no more than first-order
DARTS: both make two forward/backward passes of the mixed supernet per
training minibatch (DARTS: one on a validation minibatch for the
architecture, one on the training minibatch for the weights; DARTS-TSE: the
unrolled pass that also yields the architecture gradient, and the pass
repeated after the architecture step).  This measures it: the NB201 supernet
(``--space nb201``; or ``darts``) at C=8, N=1, 16x16 real CIFAR-10,
``--n-train`` training (and as many validation) images, batch 64, one torch
thread; per method, ``--epochs`` search epochs after one warm-up epoch, the
methods interleaved epoch by epoch so that load changes hit all alike.
Methods: ``darts`` (first order), ``darts-2nd`` (second order),
``darts-tse`` (T=100, which on the default data is one chunk per epoch, and
T=10), ``drnas``, ``drnas-tse``, and ``randnas`` (the engine's single-path
supernet training, :class:`~nas_engine.strategies.oneshot.SupernetTrainer`
with one uniform path per step) on the same supernet.  Prints seconds per
epoch (median over the epochs) and the ratios to first-order DARTS.

    OMP_NUM_THREADS=1 python benchmarks/differentiable_speed.py [--epochs 3] [--n-train 1000] [--space nb201]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from nas_engine.data import load_dataset
from nas_engine.registry import create
from nas_engine.strategies.differentiable import RelaxedTrainer
from nas_engine.strategies.oneshot import SupernetTrainer, uniform_paths
from nas_engine.training import Protocol

METHODS = {
    "darts": {"mixing": "softmax", "update": "darts"},
    "darts-2nd": {"mixing": "softmax", "update": "darts", "order": 2},
    "darts-tse (T=100)": {"mixing": "softmax", "update": "tse", "T": 100},
    "darts-tse (T=10)": {"mixing": "softmax", "update": "tse", "T": 10},
    "drnas": {"mixing": "dirichlet", "update": "darts"},
    "drnas-tse (T=100)": {"mixing": "dirichlet", "update": "tse", "T": 100},
}


def main(argv=None) -> int:
    shared = Path(__file__).resolve().parents[2] / "shared"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", default=str(shared))
    p.add_argument("--space", default="nb201", choices=("nb201", "darts"))
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--resolution", type=int, default=16)
    p.add_argument("--C", type=int, default=8)
    p.add_argument("--N", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the numbers to this file")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    data = load_dataset("cifar10", str(Path(args.shared) / "data"), n_train=args.n_train, n_val=args.n_train,
                        resolution=args.resolution, seed=0)
    space = create("space", args.space)
    protocol = Protocol(schedule_epochs=args.epochs + 1, batch_size=64, lr=0.025, lr_min=0.001, momentum=0.9,
                        nesterov=False,
                        weight_decay=5e-4, device="cpu", size=space.legacy_size(args.C, args.N))  # DARTS: 3N+2 cells

    def supernet():
        torch.manual_seed(0)
        return space.supernet(data.num_classes, in_channels=data.in_channels, **protocol.size_for(space))

    runners = {name: RelaxedTrainer(supernet(), space, data, protocol, seed=0, **kw) for name, kw in METHODS.items()}
    runners["randnas"] = SupernetTrainer(supernet(), space, data, protocol, uniform_paths(1), seed=0)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for epoch in range(args.epochs + 1):
        for name, r in runners.items():
            t0 = time.perf_counter()
            r.train_epoch()
            if epoch > 0:  # the first epoch is a warm-up
                times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(t) for name, t in times.items()}
    base = med["darts"]
    print(f"{args.space} supernet C={args.C} N={args.N}, {args.resolution}px, {args.n_train} train + "
          f"{args.n_train} val images, batch 64, 1 thread; load average {os.getloadavg()[0]:.2f}")
    print(f"{'method':<20} {'s/epoch':>8} {'vs darts':>9}")
    for name, s in med.items():
        print(f"{name:<20} {s:8.2f} {s / base:9.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"seconds_per_epoch": med, "times": times, "args": vars(args)},
                                              indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
