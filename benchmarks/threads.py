"""One vs two torch threads for training steps of several model sizes, idle and next to one busy process.

The measurement behind the engine's thread policy (``nas_engine.threads``):
for NB201 and DARTS networks from tiny (C=8, one cell per stage, 16x16) to
the benchmark's full size (NB201 C=16, N=5, 32x32), the median time of a
training step (batch 64, channels-last, SGD) with 1 and with 2 threads, on
the idle machine and next to one competing busy process (a pure-Python loop
started by this script), with the forward GFLOPs of the minibatch (torch's
counter, 2 per multiply-add).  Two architectures per size, sampled with the
seed.  Wall-clock on this machine: read the ratios.

    python benchmarks/threads.py [--json PATH]
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

from nas_engine.costs import count_flops
from nas_engine.spaces import NB201Space
from nas_engine.spaces.darts import DartsSpace

#: (space, C, N, resolution)
CASES = [("nb201", 8, 1, 16), ("nb201", 16, 1, 32), ("nb201", 16, 5, 16), ("nb201", 16, 5, 32),
         ("darts", 8, 1, 16), ("darts", 16, 2, 32)]


def _spin() -> None:
    while True:
        pass


def step_time(model, res: int, threads: int, batch: int = 64, n: int = 12) -> float:
    torch.set_num_threads(threads)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, res, res).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    times = []
    for _ in range(n + 2):
        t = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return float(np.median(times[2:]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    spaces = {"nb201": NB201Space(), "darts": DartsSpace()}
    models = []
    for name, C, N, res in CASES:
        for k in range(2):
            m = spaces[name].build(spaces[name].sample(rng), 10, **spaces[name].legacy_size(C,
                                                                                            N)).to(memory_format=torch.channels_last)
            models.append((name, C, N, res, k, m, count_flops(m, torch.randn(64, 3, res, res)) / 1e9))
    rows = []
    print(f"load average {os.getloadavg()[0]:.2f}; {len(os.sched_getaffinity(0))} CPUs")
    for load in ("idle", "busy"):
        busy = None
        if load == "busy":
            busy = multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
            busy.start()
            time.sleep(1)
        try:
            for name, C, N, res, k, m, gflop in models:
                t1, t2 = step_time(m, res, 1), step_time(m, res, 2)
                rows.append({"load": load, "space": name, "C": C, "N": N, "resolution": res, "arch": k,
                             "gflop_per_batch": gflop, "seconds_1_thread": t1, "seconds_2_threads": t2})
                print(f"{load:4s} {name:5s} C={C:2d} N={N} {res:2d}px #{k}: {gflop:7.2f} GFLOP/batch, 1 thread "
                      f"{1000 * t1:6.0f} ms, 2 threads {1000 * t2:6.0f} ms: 2 threads {t1 / t2:.2f}x", flush=True)
        finally:
            if busy is not None:
                busy.terminate()
                busy.join()
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
