"""TSE paper Fig. 1 at CPU scale: rank correlation of cheap estimators vs budget T.

Samples distinct NAS-Bench-201 cells (distinct functional classes), trains each
once on the real CIFAR-10 subset with a reduced protocol, scores every curve
prefix t = 1..T with TSE, TSE-E, TSE-EMA, TLmini, SoVL and early ValAcc, and
ranks them against the benchmark's 200-epoch CIFAR-10 test accuracy (the full
protocol's ground truth), next to the free baselines #params and #FLOPs.

Reduced protocol (defaults; every choice is a flag): width C=8, N=1 cell per
stage, 16x16 inputs, 5,000 class-balanced training images and 2,000 validation
images from CIFAR-10's first training batch, batch 64, SGD lr 0.1 (Nesterov,
momentum 0.9, wd 5e-4) on NB201's 200-epoch cosine schedule, of which the first
T=12 epochs are run.  The algorithm is unchanged; only the scale is reduced.

    python -m reproduce.tse_rank_correlation [--archs 100] [--epochs 12] [--data-root ../shared/data]

Training runs are stored in --out/store and resume if interrupted.

``--nats DIR`` runs the same harness in tabular mode instead: the curves (with
real training losses) come from a NATS-Bench topology "simple" release
directory (cifar10-valid, 200-epoch schedule, mean over seeds) and the truth is
its CIFAR-10 test accuracy; pointed at the three-architecture fixtures in
../shared it exercises the table code path end to end, pointed at the full
release it is the paper's experiment.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from nas_engine.benchmarks import NATSBench, NB201Table
from nas_engine.correlate import (
    DEFAULT_ESTIMATORS,
    collect_curves,
    correlate,
    plot_correlation,
    sample_architectures,
)
from nas_engine.costs import model_costs
from nas_engine.data import load_dataset
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.training import Protocol

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    shared = ROOT.parent / "shared" / "data"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=str(shared))
    p.add_argument("--truth", default=str(shared / "nas-bench-201" / "nb201_cifar10_200ep.csv"))
    p.add_argument("--archs", type=int, default=100)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--schedule-epochs", type=int, default=200)
    p.add_argument("--C", type=int, default=8)
    p.add_argument("--N", type=int, default=1)
    p.add_argument("--resolution", type=int, default=16)
    p.add_argument("--n-train", type=int, default=5000)
    p.add_argument("--n-val", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "reproduce" / "results" / "tse_rank_correlation"))
    p.add_argument("--nats", default=None, help="tabular mode on a NATS-Bench release directory")
    args = p.parse_args(argv)
    if args.nats:
        return tabular(args)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    space = NB201Space()
    table = NB201Table(args.truth)
    truth = table.ground_truth()
    data = load_dataset("cifar10", args.data_root, n_train=args.n_train, n_val=args.n_val,
                        resolution=args.resolution, seed=args.seed)
    protocol = Protocol(schedule_epochs=args.schedule_epochs, batch_size=args.batch_size, lr=args.lr,
                        size={"C": args.C, "N": args.N}, device=args.device)
    archs = sample_architectures(space, args.archs, seed=args.seed)

    t0 = time.perf_counter()
    curves = collect_curves(space, archs, epochs=args.epochs, data=data, protocol=protocol,
                            seed=args.seed, store=str(out / "store"), executor="inline")
    wall = time.perf_counter() - t0
    costs = model_costs(space, archs, num_classes=10, in_channels=3, resolution=args.resolution,
                        C=args.C, N=args.N)
    full = model_costs(space, archs, num_classes=10, in_channels=3, resolution=32, C=16, N=5)
    baselines = {
        "params": {a: c["params"] for a, c in full.items()},
        "flops": {a: c["flops"] for a, c in full.items()},
        "params (proxy net)": {a: c["params"] for a, c in costs.items()},
    }
    df = correlate(curves, truth, estimators=DEFAULT_ESTIMATORS, baselines=baselines, ks=(0.1,))
    df.to_csv(out / "criteria.csv", index=False)
    plot_correlation(
        df[df["estimator"] != "params (proxy net)"], str(out / "spearman_vs_budget.png"),
        title=(f"NB201, {len(archs)} archs, CIFAR-10 {args.n_train} imgs @{args.resolution}px, "
               f"C={args.C} N={args.N}; truth: 200-ep test acc"))
    train_seconds = sum(c.total_seconds for c in curves.values() if c is not None)
    summary = {
        "archs": len(archs), "failed": sum(c is None or "failed" in c.info for c in curves.values()),
        "protocol": protocol.to_dict(), "data": data.fingerprint(), "epochs": args.epochs,
        "train_seconds": train_seconds, "wall_seconds_this_run": wall,
        "seconds_per_arch_epoch": train_seconds / max(1, len(archs) * args.epochs),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    pivot = df.pivot(index="epochs", columns="estimator", values="spearman")
    print(pivot.round(3).to_string())
    print(json.dumps(summary, indent=2))
    return 0


def tabular(args) -> int:
    """The harness on NATS-Bench curves: no training, every number from the release files."""
    nats = NATSBench(args.nats, dataset="cifar10-valid", hp="200")
    space = nats.restrict(NB201Space())
    archs = sample_architectures(space, min(args.archs, len(nats)), seed=args.seed, among=nats.archs())
    curves = collect_curves(space, archs, epochs=args.epochs, table=nats, seed=args.seed, progress=False)
    truth = {a.string: nats.final_accuracy(a, dataset="cifar10") for a in archs}
    baselines = {"params": {a.string: nats.params(a) for a in archs},
                 "flops": {a.string: nats.flops(a) for a in archs}}
    df = correlate(curves, truth, estimators=DEFAULT_ESTIMATORS, baselines=baselines, ks=(0.5,))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "criteria_nats_tabular.csv", index=False)
    print(f"tabular mode on {nats!r}: {len(archs)} architectures, T = 1..{args.epochs}")
    print(df.pivot(index="epochs", columns="estimator", values="spearman").round(3).to_string())
    charged = {a: round(c.total_seconds, 1) for a, c in curves.items()}
    print(f"charged (recorded) seconds for {args.epochs} epochs: {charged}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
