"""Engine overhead: one candidate trained through ``Search`` vs a bare PyTorch loop.

Both train the same NB201 network (same architecture, initialisation, data,
augmentation, optimiser and schedule) for the same epochs; the engine run goes
through the whole stack (registry, search loop, estimator, training loop with
curve recording, run store).  Runs alternate engine/bare ``--repeats`` times
within one process and the medians are compared: the ratio is the number to
read, not the seconds.

    python benchmarks/overhead.py [--data cifar10 --data-root ../shared/data] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from nas_engine import Budget, Protocol, Search, load_dataset
from nas_engine.data import augment_batch
from nas_engine.estimators import TSEEMA
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.strategies.base import Strategy
from nas_engine.training import build_model, resolve_device

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


class OneArch(Strategy):
    """Proposes one fixed architecture, then stops."""

    def setup(self, space, ctx):
        super().setup(space, ctx)
        self.done = False

    def ask(self):
        if self.done:
            return []
        self.done = True
        return [self.space.from_string(ARCH)]


def bare_loop(model, data, protocol, epochs, seed):
    """What a user would write by hand: the same training, nothing recorded."""
    device = resolve_device(protocol.device)
    data = data.to(device)
    model.to(device).to(memory_format=torch.channels_last).train()
    n, bs = data.n_train, protocol.batch_size
    steps = math.ceil(n / bs)
    opt = torch.optim.SGD(model.parameters(), lr=protocol.lr, momentum=protocol.momentum,
                          nesterov=protocol.nesterov, weight_decay=protocol.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps * protocol.schedule_epochs)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen).to(device)
        for s in range(steps):
            idx = perm[s * bs:(s + 1) * bs]
            xb = augment_batch(data.x_train[idx], gen, padding=data.crop_padding, flip=data.flip)
            xb = xb.contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(model(xb), data.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return float(loss.detach())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="cifar10")
    p.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--C", type=int, default=16)
    p.add_argument("--N", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=None, help="also write the results to this file")
    args = p.parse_args(argv)

    root = args.data_root if args.data == "cifar10" else None
    data = load_dataset(args.data, root, n_train=args.n_train, n_val=0 if args.data == "cifar10" else None)
    protocol = Protocol(schedule_epochs=200, batch_size=args.batch_size, lr=0.1, device=args.device,
                        size={"C": args.C, "N": args.N})
    space = NB201Space()
    arch = space.from_string(ARCH)
    estimator = TSEEMA(epochs=args.epochs)

    def engine():
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            r = Search(OneArch(), space, estimator, data=data, protocol=protocol,
                       budget=Budget(evaluations=1), seed=0, store=d, progress=False).run()
            dt = time.perf_counter() - t0
        assert r.history[0].ok
        return dt, r.history[0]

    def bare():
        seed = 12345
        t0 = time.perf_counter()
        model = build_model(space, arch, data, protocol, seed)
        bare_loop(model, data, protocol, args.epochs, seed)
        return time.perf_counter() - t0

    bare()  # warm-up (allocator, kernels)
    t_engine, t_bare = [], []
    for _ in range(args.repeats):
        dt, ev = engine()
        t_engine.append(dt)
        t_bare.append(bare())
    me, mb = statistics.median(t_engine), statistics.median(t_bare)
    res = {
        "device": str(resolve_device(args.device)),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "data": data.fingerprint(), "arch": ARCH, "C": args.C, "N": args.N, "epochs": args.epochs,
        "batch_size": args.batch_size, "images_per_run": args.epochs * data.n_train,
        "engine_seconds": t_engine, "bare_seconds": t_bare,
        "engine_median": me, "bare_median": mb, "ratio_engine_over_bare": me / mb,
        "bare_images_per_second": args.epochs * data.n_train / mb,
    }
    print(json.dumps(res, indent=2))
    print(f"\nengine / bare = {me / mb:.3f}  (medians {me:.2f} s vs {mb:.2f} s over {args.repeats} runs)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
