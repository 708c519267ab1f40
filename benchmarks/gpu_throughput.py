"""Candidates per hour on one GPU with 1, 4, 8 and 16 candidates training at once (needs CUDA).

The standard protocol of ``benchmarks/throughput.py`` (NB201 cells at C=8,
N=1, 5,000 CIFAR-10 images, batch 64, 12 epochs of a 200-epoch cosine
schedule, TSE-EMA, no validation passes), at 16x16 and at 32x32, on
``cuda``: ``K`` worker processes of the processes executor share the device
(one CUDA context each, one torch thread each; ``--devices`` spreads them
over several GPUs).  Each configuration evaluates ``max(2K, --min-candidates)``
distinct architectures through the whole ``Search`` stack; candidates per
hour = candidates / wall seconds (worker start-up included).  The scores of
every configuration are compared with the one-at-a-time run on the same
architectures (largest relative difference: float rounding of cuDNN's
kernels, not different results).  The issue's target: at least 8x the
one-at-a-time rate at 16 concurrent candidates.

    python benchmarks/gpu_throughput.py [--concurrency 1,4,8,16] [--resolutions 16,32] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from nas_engine.correlate import sample_architectures
from nas_engine.data import load_dataset
from nas_engine.executors import ProcessExecutor
from nas_engine.registry import create
from nas_engine.search import Budget, Search
from nas_engine.spaces import NB201Space
from nas_engine.strategies import FixedList
from nas_engine.training import Protocol


def run(space, archs, data, protocol, epochs: int, workers: int, devices) -> tuple[float, dict[str, float]]:
    """(wall seconds, {arch: score}) of one search over ``archs`` with ``workers`` processes on the GPU."""
    executor = ProcessExecutor(workers=workers, threads=1, devices=devices)
    t = time.perf_counter()
    result = Search(FixedList(archs), space, create("estimator", "tse-ema", epochs=epochs), data=data,
                    protocol=protocol, budget=Budget(evaluations=len(archs)), executor=executor,
                    progress=False).run()
    wall = time.perf_counter() - t
    bad = [ev.reason for ev in result.history if not ev.ok]
    if bad:
        raise RuntimeError(f"{len(bad)} candidate(s) failed with {workers} workers, e.g. {bad[0]}")
    return wall, {ev.arch.string: ev.score for ev in result.history}


def main(argv=None) -> int:
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=str(shared))
    p.add_argument("--concurrency", default="1,4,8,16")
    p.add_argument("--resolutions", default="16,32")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--n-train", type=int, default=5000)
    p.add_argument("--min-candidates", type=int, default=8)
    p.add_argument("--devices", default=None, help="CUDA devices to spread the workers over, e.g. 0,1 "
                   "(default: the current device)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        p.error("needs a CUDA GPU (torch.cuda.is_available() is False); the CPU numbers are benchmarks/throughput.py")
    if not Path(args.data_root).joinpath("cifar-10-batches-py").exists():
        p.error(f"needs CIFAR-10 under {args.data_root} (cifar-10-batches-py; pass --data-root)")
    levels = [int(k) for k in args.concurrency.split(",")]
    devices = [int(d) for d in args.devices.split(",")] if args.devices else None
    space = NB201Space()
    protocol = Protocol(schedule_epochs=200, batch_size=64, lr=0.1, device="cuda", size={"C": 8, "N": 1})
    out = {"gpu": torch.cuda.get_device_name(), "args": vars(args), "rows": []}
    print(f"{out['gpu']}: NB201 C=8 N=1, {args.n_train} CIFAR-10 images, batch 64, {args.epochs} epochs, TSE-EMA")
    for res in [int(r) for r in args.resolutions.split(",")]:
        data = load_dataset("cifar10", args.data_root, n_train=args.n_train, n_val=0, resolution=res,
                            seed=args.seed)
        archs = sample_architectures(space, max(2 * max(levels), args.min_candidates), seed=args.seed)
        run(space, archs[:1], data, protocol, 1, 1, devices)  # warm-up: CUDA and cuDNN start-up, not counted
        base_rate, base_scores = None, {}
        for k in levels:
            n = max(2 * k, args.min_candidates)
            wall, scores = run(space, archs[:n], data, protocol, args.epochs, k, devices)
            rate = n / wall * 3600
            if base_rate is None:
                base_rate = rate
            diff = max((abs(scores[a] - base_scores[a]) / max(abs(base_scores[a]), 1e-12)
                        for a in scores if a in base_scores), default=0.0)
            base_scores.update({a: s for a, s in scores.items() if a not in base_scores})
            row = {"resolution": res, "concurrent": k, "candidates": n, "wall_seconds": wall,
                   "candidates_per_hour": rate, "speedup": rate / base_rate, "max_rel_score_diff": diff}
            out["rows"].append(row)
            print(f"  {res:2d}px  {k:2d} at once: {n:2d} candidates in {wall:6.1f} s = {rate:7.0f}/hour "
                  f"({rate / base_rate:5.2f}x one at a time); scores vs earlier runs: max rel diff {diff:.1e}",
                  flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
