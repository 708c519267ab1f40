"""Candidates per hour on this machine, where a candidate's time goes, and how far it is from the limit.

The standard CPU-scale protocol: NB201 cells at C=8, N=1, 16x16 real CIFAR-10
images, 5,000 training images, batch 64, 12 epochs of a 200-epoch cosine
schedule, scored by TSE-EMA (no validation passes), evaluated through the whole
``Search`` stack.  Printed:

1. **Candidates per hour** for ``inline`` with 1 and 2 torch threads and
   ``processes`` with 2 workers x 1 thread, on the idle machine and next to
   one competing busy process (a pure-Python loop started by this script), over
   the same ``--candidates`` architectures.
2. **The split of one candidate's training step** (1 thread): data and
   augmentation, forward, backward, optimiser (SGD step and schedule), and the
   rest (bookkeeping: loss recording, accuracy, the epoch loop), from one epoch
   of an instrumented copy of the engine's loop, against the engine's own
   epoch time.
3. **Achieved vs ceiling FLOP/s**: the training FLOP/s of that candidate
   (3x forward FLOPs per image, torch's counter, 2 per multiply-add) against
   this machine's dense float32 matrix-multiply FLOP/s measured in the same run
   (1 thread; the practical ceiling).
4. **bf16 autocast on the CPU** (``Protocol(amp="bf16")``): the speed ratio on
   the same candidates, and the fidelity of the scores -- the Spearman between
   float32 and bf16 TSE-EMA over ``--fidelity-archs`` architectures (default
   50) at a reduced protocol (``--fidelity-images`` images, ``--fidelity-epochs``
   epochs) so that it fits the run.

Wall-clock on this machine: read the ratios.  The load average is printed.

    python benchmarks/throughput.py [--candidates 4] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from nas_engine.correlate import sample_architectures
from nas_engine.costs import count_flops
from nas_engine.criteria import spearman
from nas_engine.data import load_dataset
from nas_engine.executors import InlineExecutor, ProcessExecutor
from nas_engine.registry import create
from nas_engine.search import Budget, Search
from nas_engine.spaces import NB201Space
from nas_engine.strategies import FixedList
from nas_engine.threads import torch_threads
from nas_engine.training import Optimization, Protocol, build_model, prepare_model, train, training_batch

PROTOCOL = Protocol(schedule_epochs=200, batch_size=64, lr=0.1, device="cpu", size={"C": 8, "N": 1})


def _spin() -> None:  # the competing busy process
    while True:
        pass


class Busy:
    """One busy process for the duration of the block."""

    def __enter__(self):
        self.proc = multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
        self.proc.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.join()


def candidates_per_hour(space, archs, data, epochs: int, executor, protocol=PROTOCOL) -> tuple[float, list[float]]:
    est = create("estimator", "tse-ema", epochs=epochs)
    t = time.perf_counter()
    result = Search(FixedList(archs), space, est, data=data, protocol=protocol, budget=Budget(evaluations=len(archs)),
                    executor=executor, progress=False).run()
    wall = time.perf_counter() - t
    assert all(ev.ok for ev in result.history), [ev.reason for ev in result.history if not ev.ok]
    scores = {ev.arch.string: ev.score for ev in result.history}
    return len(archs) / wall * 3600, [scores[a.string] for a in archs]


def step_split(space, arch, data, seed: int = 0) -> dict[str, float]:
    """Seconds per training step in each part (one epoch, 1 thread), and the engine's own epoch time per step."""
    model = build_model(space, arch, data, PROTOCOL, seed)
    device = prepare_model(model, PROTOCOL)
    model.train()
    steps = (len(data.y_train) + PROTOCOL.batch_size - 1) // PROTOCOL.batch_size
    opt = Optimization(model.parameters(), PROTOCOL, device, steps)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(data.y_train), generator=gen)
    parts = dict.fromkeys(("data", "forward", "backward", "optimizer"), 0.0)
    bs = PROTOCOL.batch_size
    t_epoch = time.perf_counter()
    for step in range(steps):
        t0 = time.perf_counter()
        xb, yb = training_batch(data, perm[step * bs:(step + 1) * bs], PROTOCOL, gen)
        t1 = time.perf_counter()
        opt.optimizer.zero_grad(set_to_none=True)
        out, loss = opt.forward(model, xb, yb)
        t2 = time.perf_counter()
        opt.backward(loss)
        t3 = time.perf_counter()
        opt.update()
        t4 = time.perf_counter()
        for k, a, b in (("data", t0, t1), ("forward", t1, t2), ("backward", t2, t3), ("optimizer", t3, t4)):
            parts[k] += b - a
    loop = time.perf_counter() - t_epoch
    fresh = build_model(space, arch, data, PROTOCOL, seed)
    curve = train(fresh, data, PROTOCOL, epochs=2, seed=seed, validate=False)
    engine = curve.epoch_seconds[1]  # the second epoch: warm
    out = {k: v / steps for k, v in parts.items()}
    out["rest"] = max(0.0, engine - sum(parts.values())) / steps
    out["engine_step"] = engine / steps
    out["instrumented_step"] = loop / steps
    return out


def matmul_flops(n: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - t)


def main(argv=None) -> int:
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=str(shared))
    p.add_argument("--candidates", type=int, default=4)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--n-train", type=int, default=5000)
    p.add_argument("--fidelity-archs", type=int, default=50)
    p.add_argument("--fidelity-images", type=int, default=1000)
    p.add_argument("--fidelity-epochs", type=int, default=2)
    p.add_argument("--no-busy", action="store_true", help="skip the runs next to a busy process")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if not Path(args.data_root).joinpath("cifar-10-batches-py").exists():
        p.error(f"needs CIFAR-10 under {args.data_root} (cifar-10-batches-py; pass --data-root)")
    t_start = time.perf_counter()
    space = NB201Space()
    data = load_dataset("cifar10", args.data_root, n_train=args.n_train, n_val=0, resolution=16, seed=args.seed)
    archs = sample_architectures(space, args.candidates, seed=args.seed)
    res: dict = {"cpus": len(os.sched_getaffinity(0)), "load_before": os.getloadavg(), "args": vars(args)}
    print(f"NB201 C=8 N=1, 16px, {args.n_train} CIFAR-10 images, batch 64, {args.epochs} epochs, TSE-EMA; "
          f"{args.candidates} candidates per configuration; load average {os.getloadavg()[0]:.2f}")

    configs = {"inline, 1 thread": lambda: InlineExecutor(threads=1),
               "inline, 2 threads": lambda: InlineExecutor(threads=2),
               "processes, 2 x 1 thread": lambda: ProcessExecutor(workers=2, threads=1)}
    candidates_per_hour(space, archs[:1], data, 1, InlineExecutor(threads=1))  # warm-up: first-call costs
    rows, scores = {}, {}
    for load in ("idle", "busy") if not args.no_busy else ("idle",):
        for name, make in configs.items():
            if load == "busy":
                with Busy():
                    cph, s = candidates_per_hour(space, archs, data, args.epochs, make())
            else:
                cph, s = candidates_per_hour(space, archs, data, args.epochs, make())
            rows[(load, name)] = cph
            scores[(load, name)] = s
            print(f"  {load:4s}  {name:24s} {cph:7.0f} candidates/hour", flush=True)
    base = rows[("idle", "inline, 1 thread")]
    print("ratios to idle inline 1 thread: " + ", ".join(f"{load} {name}: {v / base:.2f}x"
                                                           for (load, name), v in rows.items()))
    res["candidates_per_hour"] = {f"{load} / {name}": v for (load, name), v in rows.items()}

    with torch_threads(1):
        split = step_split(space, archs[0], data, args.seed)
        model = build_model(space, archs[0], data, PROTOCOL, args.seed)
        fwd = count_flops(model, data.x_train[:1].float())
        ceiling = matmul_flops()
    total = sum(split[k] for k in ("data", "forward", "backward", "optimizer", "rest"))
    print(f"split of one training step (1 thread, {archs[0].string}): " + ", ".join(
        f"{k} {1000 * split[k]:.1f} ms ({100 * split[k] / total:.0f}%)"
        for k in ("data", "forward", "backward", "optimizer", "rest"))
        + f"; engine step {1000 * split['engine_step']:.1f} ms")
    achieved = 3 * fwd * PROTOCOL.batch_size / split["engine_step"]
    print(f"achieved training FLOP/s {achieved / 1e9:.2f} G vs dense matmul ceiling {ceiling / 1e9:.1f} G "
          f"(1 thread): {100 * achieved / ceiling:.1f}% of the ceiling")
    res.update(split=split, forward_flops_per_image=fwd, achieved_flops=achieved, ceiling_flops=ceiling)

    # bf16 autocast: speed on the same candidates, fidelity over many at a reduced protocol
    bf16 = PROTOCOL.replace(amp="bf16")
    with torch_threads(1):
        t = time.perf_counter()
        candidates_per_hour(space, archs[:2], data, 2, InlineExecutor(threads=1))
        t32 = time.perf_counter() - t
        t = time.perf_counter()
        candidates_per_hour(space, archs[:2], data, 2, InlineExecutor(threads=1), protocol=bf16)
        t16 = time.perf_counter() - t
    print(f"bf16 autocast vs float32 (2 candidates x 2 epochs, 1 thread): {t32 / t16:.2f}x the speed")
    small = load_dataset("cifar10", args.data_root, n_train=args.fidelity_images, n_val=0, resolution=16,
                         seed=args.seed)
    many = sample_architectures(space, args.fidelity_archs, seed=args.seed + 1)
    ex = ProcessExecutor(workers=2, threads=1)
    _, s32 = candidates_per_hour(space, many, small, args.fidelity_epochs, ex)
    _, s16 = candidates_per_hour(space, many, small, args.fidelity_epochs, ex, protocol=bf16)
    rho = spearman(np.array(s16), np.array(s32))
    print(f"bf16 fidelity: Spearman(fp32, bf16 TSE-EMA) = {rho:.3f} over {len(many)} architectures "
          f"({args.fidelity_images} images, {args.fidelity_epochs} epochs)")
    res.update(bf16_speed_ratio=t32 / t16, bf16_spearman=rho, load_after=os.getloadavg(),
               seconds=time.perf_counter() - t_start)
    print(f"load average after: {os.getloadavg()[0]:.2f}; {res['seconds']:.0f} s in all")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
