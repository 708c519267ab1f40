"""Zero-cost scores of one NB201 cell on the CPU and on CUDA, with TF32 on and off (needs a GPU).

Same network initialisation and minibatch on both devices: the differences are the devices' float
arithmetic (TF32 convolutions and matmuls on Ampere/Hopper when allowed).

    python benchmarks/zero_cost_devices.py
"""

from __future__ import annotations

import torch

from nas_engine.context import Context
from nas_engine.data import load_dataset
from nas_engine.estimators.zero_cost import ZERO_COST_PROXIES
from nas_engine.registry import create
from nas_engine.spaces import NB201Space
from nas_engine.training import Protocol

ARCH = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"


def main() -> None:
    space, data = NB201Space(), load_dataset("digits")
    arch = space.from_string(ARCH)
    proto = Protocol(schedule_epochs=10, batch_size=32, lr=0.05, device="cpu", size={"C": 8, "N": 1})
    rows = {name: [create("estimator", name).estimate(arch, Context(space, data, proto, seed=0)).score]
            for name in ZERO_COST_PROXIES}
    for tf32 in (True, False):
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
        ctx = Context(space, data, proto.replace(device="cuda"), seed=0)
        for name in ZERO_COST_PROXIES:
            rows[name].append(create("estimator", name).estimate(arch, ctx).score)
    print(f"{'proxy':10s} {'cpu':>14s} {'cuda tf32':>14s} {'cuda fp32':>14s}  rel(tf32) rel(fp32)")
    for name, (cpu, t, f) in rows.items():
        rel = [abs(v - cpu) / max(abs(cpu), 1e-12) for v in (t, f)]
        print(f"{name:10s} {cpu:14.6g} {t:14.6g} {f:14.6g}  {rel[0]:9.2e} {rel[1]:9.2e}")


if __name__ == "__main__":
    main()
