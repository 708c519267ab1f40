"""Training throughput of the DARTS network vs the NB201 network at the same width (CPU).

Both spaces at the size the CPU-scale experiments use: C=8 with ``N=1``
(NB201: 5 cells, one per stage plus two residual reductions; DARTS: 5 cells,
reductions after cells 1 and 3), 16x16 real CIFAR-10 images, batch 64, the
engine's own training loop (:func:`nas_engine.training.train`: augmentation,
SGD, cosine schedule, channels-last), no validation passes.  For each thread
count, ``--archs`` seeded random architectures of each space are trained for
``--epochs`` epochs of ``--n-train`` images, spaces interleaved architecture by
architecture so that load changes hit both alike; the first epoch is a
warm-up and not counted.  Reported: training images/s (mean and range over
the architectures), forward FLOPs per image (torch's counter, 2 per
multiply-add) and the achieved training FLOP/s (3x forward FLOPs per image,
the usual forward + backward estimate), and the DARTS / NB201 ratios within
the run.  Numbers are wall-clock on this machine: read the ratios; the load
average is recorded.

    OMP_NUM_THREADS=1 python benchmarks/darts_throughput.py [--threads 1,2] [--archs 6]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np

from nas_engine.costs import count_flops
from nas_engine.data import load_dataset
from nas_engine.spaces import NB201Space
from nas_engine.spaces.darts import DartsSpace
from nas_engine.threads import torch_threads
from nas_engine.training import Protocol, build_model, train


def measure(space, arch, data, protocol, epochs: int, seed: int) -> tuple[float, float]:
    """(training images/s after the warm-up epoch, forward FLOPs per image)."""
    model = build_model(space, arch, data, protocol, seed)
    x = data.x_train[:1].float()
    flops = count_flops(model, x)
    curve = train(model, data, protocol, epochs=epochs, seed=seed, validate=False)
    seconds = sum(curve.epoch_seconds[1:])
    return len(data.y_train) * (epochs - 1) / seconds, float(flops)


def main(argv=None) -> int:
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=str(shared))
    p.add_argument("--threads", default="1,2")
    p.add_argument("--archs", type=int, default=6)
    p.add_argument("--epochs", type=int, default=3, help="epochs per architecture (the first is a warm-up)")
    p.add_argument("--n-train", type=int, default=1024)
    p.add_argument("--C", type=int, default=8)
    p.add_argument("--N", type=int, default=1)
    p.add_argument("--resolution", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    if args.epochs < 2:
        p.error(f"--epochs must be >= 2 (the first is a warm-up), got {args.epochs}")
    if not Path(args.data_root).joinpath("cifar-10-batches-py").exists():
        p.error(f"needs CIFAR-10 under {args.data_root} (cifar-10-batches-py; pass --data-root)")
    data = load_dataset("cifar10", args.data_root, n_train=args.n_train, n_val=0, resolution=args.resolution,
                        seed=args.seed)
    protocol = Protocol(schedule_epochs=100, batch_size=64, lr=0.025, device="cpu")
    rng = np.random.default_rng(args.seed)
    spaces = {"nb201": NB201Space(), "darts": DartsSpace()}
    archs = {name: [s.sample(rng) for _ in range(args.archs)] for name, s in spaces.items()}
    results = {"load_before": os.getloadavg(), "cpus": len(os.sched_getaffinity(0)), "args": vars(args), "rows": []}
    print(f"C={args.C}, N={args.N}, {args.resolution}px, batch 64, {args.n_train} CIFAR-10 images x "
          f"{args.epochs - 1} timed epochs, {args.archs} archs per space; load average {os.getloadavg()[0]:.2f}")
    print(f"{'threads':>7s} {'space':6s} {'images/s':>9s} {'range':>15s} {'GFLOP/img':>10s} {'train GFLOP/s':>13s}")
    for threads in [int(t) for t in args.threads.split(",")]:
        got = {name: [] for name in spaces}
        with torch_threads(threads):
            for i in range(args.archs):
                for name, space in spaces.items():
                    got[name].append(measure(space, archs[name][i], data,
                                             protocol.replace(size=space.legacy_size(args.C, args.N)),  # DARTS: 3N+2
                                             args.epochs, args.seed + i))
        for name, vals in got.items():
            ips = [v[0] for v in vals]
            flops = statistics.mean(v[1] for v in vals)
            achieved = statistics.mean(3 * v[0] * v[1] for v in vals) / 1e9
            row = {"threads": threads, "space": name, "images_per_s": statistics.mean(ips), "min": min(ips),
                   "max": max(ips), "forward_gflop_per_image": flops / 1e9, "train_gflop_per_s": achieved}
            results["rows"].append(row)
            print(f"{threads:7d} {name:6s} {row['images_per_s']:9.0f} {min(ips):7.0f}-{max(ips):<7.0f} "
                  f"{row['forward_gflop_per_image']:10.4f} {achieved:13.2f}")
        nb, da = (next(r for r in results["rows"] if r["threads"] == threads and r["space"] == s)
                  for s in ("nb201", "darts"))
        print(f"{'':7s} darts/nb201: throughput x{da['images_per_s'] / nb['images_per_s']:.3f}, "
              f"FLOPs per image x{da['forward_gflop_per_image'] / nb['forward_gflop_per_image']:.2f}, "
              f"achieved FLOP/s x{da['train_gflop_per_s'] / nb['train_gflop_per_s']:.2f}")
    results["load_after"] = os.getloadavg()
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
