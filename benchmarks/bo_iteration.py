"""One BO iteration on NB201 vs training one candidate, measured in the same run.

BO iteration: ``BayesianOptimization.ask()`` with 100 observations -- fit the
GP (one-hot encoding, 30 features) and score all 15,625 NB201 encodings but
the 100 observed with LogEI, then pick the best; and the same for a q=4 batch
(qLogEI).  The observations are 100 random architectures scored by their real
200-epoch CIFAR-10 test accuracy (shared NB201 CSV) or, without the shared
data, by a synthetic score.  The one-off candidate table (encoding the whole
space, cached per process) is timed separately.

Candidate: one NB201 network at the benchmark's size (C=16, N=5) trained
through the engine's training loop (default protocol: batch 256, no
validation) for ``--epochs`` epochs -- default 10, the budget T of TSE-EMA in
the TSE paper's query-based searches -- on ``--data`` (default ``digits``:
1,150 training images of 8x8, about the cheapest candidate there is; CIFAR-10
images are 16 times larger and its training split 20 times larger).  The
per-epoch time is reported too.

    python benchmarks/bo_iteration.py [--epochs 10] [--data digits|cifar10 --n-train N]
                                      [--shared ../shared/data] [--repeats 3] [--json out.json]

Medians over ``--repeats`` runs; the ratio is the number to read, not the seconds.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import botorch  # noqa: F401  (imported before timing anything)
import numpy as np
import torch

from nas_engine import Protocol, load_dataset
from nas_engine.context import Context
from nas_engine.results import Evaluation
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.strategies.bo import BayesianOptimization

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def observations(space, n: int, shared: Path) -> tuple[list[Evaluation], str]:
    """``n`` random architectures with scores: real test accuracies when the shared CSV exists."""
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(n)]
    path = shared / "nas-bench-201" / "nb201_cifar10_200ep.csv"
    if path.is_file():
        with open(path, newline="") as f:
            acc = {r["arch_str"]: float(r["cifar10_test_acc"]) / 100 for r in csv.DictReader(f)}
        scores, source = [acc[a.string] for a in archs], f"NB201 test accuracy ({path.name})"
    else:
        scores = [sum(op == "nor_conv_3x3" for op in a.spec) + rng.normal(0, 0.3) for a in archs]
        source = "synthetic (#nor_conv_3x3 + noise)"
    return [Evaluation(i, a, s, 0.0, 0.0) for i, (a, s) in enumerate(zip(archs, scores))], source


def time_ask(space, ctx, evaluations, batch_size: int) -> float:
    bo = BayesianOptimization(initial_points=0, batch_size=batch_size)
    bo.setup(space, ctx)
    bo.tell(evaluations)
    t0 = time.perf_counter()
    proposals = bo.ask()
    dt = time.perf_counter() - t0
    assert len(proposals) == batch_size
    return dt


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    p.add_argument("--observations", type=int, default=100)
    p.add_argument("--epochs", type=int, default=10, help="training epochs of the candidate")
    p.add_argument("--data", default="digits")
    p.add_argument("--n-train", type=int, default=None, help="training images (default: the dataset's)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=None, help="also write the results to this file")
    args = p.parse_args(argv)

    space = NB201Space()
    evaluations, source = observations(space, args.observations, Path(args.shared))
    root = Path(args.shared) if args.data == "cifar10" else None
    data = load_dataset(args.data, root, n_train=args.n_train)
    protocol = Protocol(device="cpu")  # the NB201 recipe and size: C=16, N=5, batch 256, 200 epochs
    ctx = Context(space=space, data=data, protocol=protocol, seed=0)

    t0 = time.perf_counter()
    BayesianOptimization().setup(space, ctx)  # builds the candidate table, cached for the process
    table_seconds = time.perf_counter() - t0
    arch = space.from_string(ARCH)
    ctx.learning_curve(arch, 1, validate=False)  # warm-up (imports, allocator)
    time_ask(space, ctx, evaluations, 1)

    bo_q1, bo_q4, train = [], [], []
    for _ in range(args.repeats):
        bo_q1.append(time_ask(space, ctx, evaluations, 1))
        bo_q4.append(time_ask(space, ctx, evaluations, 4))
        t0 = time.perf_counter()
        ctx.learning_curve(arch, args.epochs, validate=False)
        train.append(time.perf_counter() - t0)
    q1, q4, tr = statistics.median(bo_q1), statistics.median(bo_q4), statistics.median(train)
    res = {
        "torch": torch.__version__, "training_threads": torch.get_num_threads(),
        "bo_threads": BayesianOptimization().threads,
        "observations": args.observations, "scores": source, "candidates": len(space) - args.observations,
        "candidate_table_seconds_once": table_seconds,
        "bo_iteration_seconds": bo_q1, "bo_batch4_iteration_seconds": bo_q4,
        "candidate": {"arch": ARCH, "C": protocol.size["C"], "N": protocol.size["N"], "data": data.fingerprint(),
                      "epochs": args.epochs, "batch_size": protocol.batch_size},
        "train_candidate_seconds": train,
        "bo_median": q1, "bo_batch4_median": q4, "train_median": tr, "train_epoch_median": tr / args.epochs,
        "ratio_bo_over_candidate": q1 / tr, "ratio_bo_batch4_over_4_candidates": q4 / (4 * tr),
        "ratio_bo_over_candidate_epoch": q1 / (tr / args.epochs),
    }
    print(json.dumps(res, indent=2))
    print(f"\nBO iteration / training one candidate ({args.epochs} epochs) = {q1 / tr:.3f} "
          f"({q1:.2f} s vs {tr:.2f} s, medians of {args.repeats}); per epoch: {q1 / (tr / args.epochs):.2f}; "
          f"q=4 batch / 4 candidates = {q4 / (4 * tr):.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
