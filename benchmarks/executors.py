"""Executor throughput and overhead: evaluations per hour with 1 vs 2 workers, on processes and on Ray.

Every configuration evaluates the same fixed list of NB201 candidates with
TSE-EMA on ``digits`` (a small protocol, about 1-4 s per candidate on one
core), through the whole ``Search`` stack:

* ``inline``: one candidate at a time in this process (torch's default threads);
* ``processes-1`` / ``processes-2``: ``ProcessExecutor(workers=1|2)`` (threads
  per worker = cpus // workers);
* ``ray-1`` / ``ray-2``: ``RayExecutor(workers=1|2, num_cpus=cpus // workers)``
  on a local Ray instance started once (its start-up is reported apart).

The overhead an executor adds is measured with an estimator that does no work
(``Instant``), against inline: ``first_startup_seconds`` is the extra wall
time of the first one-candidate search on that configuration in this process
(it starts the fork server, which imports torch, or Ray's workers),
``startup_seconds`` that of a later one, and ``per_eval_ms`` the extra wall
time per further candidate.  Numbers are wall-clock on this machine: read the ratios.
Other processes competing for the CPUs distort them (the load average is
recorded).

    python benchmarks/executors.py [--candidates 10] [--epochs 10] [--cheap 40] [--no-ray]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

from nas_engine import Budget, Protocol, Search, load_dataset
from nas_engine.estimators import TSEEMA
from nas_engine.estimators.base import Estimate, Estimator
from nas_engine.executors import InlineExecutor, ProcessExecutor, RayExecutor, cpu_count
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.strategies import FixedList

SPACE = NB201Space()
CONVS = ("nor_conv_1x1", "nor_conv_3x3")


class Instant(Estimator):
    """No work at all: a score from the evaluation seed (measures what the executor costs)."""

    def estimate(self, arch, ctx):
        return Estimate(score=-(ctx.arch_seed(arch) % 1000) / 1000)


def candidates(n: int, *, min_convs: int = 0, seed: int = 0) -> list[str]:
    """``n`` distinct architectures with at least ``min_convs`` convolutions (similar training cost)."""
    rng, out = np.random.default_rng(seed), []
    while len(out) < n:
        a = SPACE.sample(rng)
        if sum(op in CONVS for op in a.spec) >= min_convs and a.string not in out:
            out.append(a.string)
    return out


def executors(cpus: int, with_ray: bool) -> dict:
    configs = {
        "inline": InlineExecutor,
        "processes-1": lambda: ProcessExecutor(workers=1),
        "processes-2": lambda: ProcessExecutor(workers=2),
    }
    if with_ray:
        configs["ray-1"] = lambda: RayExecutor(workers=1, num_cpus=cpus)
        configs["ray-2"] = lambda: RayExecutor(workers=2, num_cpus=max(1, cpus // 2))
    return configs


def timed_search(archs, estimator, executor, data, protocol):
    t0 = time.perf_counter()
    result = Search(FixedList(archs), SPACE, estimator, data=data, protocol=protocol,
                    budget=Budget(evaluations=len(archs)), progress=False, executor=executor).run()
    return time.perf_counter() - t0, result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--candidates", type=int, default=10, help="candidates trained per configuration")
    p.add_argument("--epochs", type=int, default=10, help="training epochs per candidate (TSE-EMA's T)")
    p.add_argument("--cheap", type=int, default=40, help="candidates of the overhead measurement")
    p.add_argument("--no-ray", action="store_true", help="skip the Ray configurations")
    args = p.parse_args(argv)

    cpus = cpu_count()
    with_ray = not args.no_ray
    if with_ray:
        try:
            import ray
        except ImportError:
            print('ray is not installed (pip install "nas-engine[ray]"): skipping the Ray configurations')
            with_ray = False
    data = load_dataset("digits")
    protocol = Protocol(schedule_epochs=args.epochs, batch_size=128, lr=0.05, device="cpu", size={"C": 16, "N": 1})
    archs = candidates(args.candidates, min_convs=3)
    cheap = candidates(args.cheap, seed=1)
    load_start = os.getloadavg()
    ray_init_seconds = None
    if with_ray:
        t0 = time.perf_counter()
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        ray_init_seconds = time.perf_counter() - t0

    runs, overhead, scores = {}, {}, {}
    try:
        for name, make in executors(cpus, with_ray).items():
            first = timed_search(cheap[:1], Instant(), make(), data, protocol)[0]  # the cold start
            seconds, result = timed_search(archs, TSEEMA(epochs=args.epochs), make(), data, protocol)
            assert all(e.ok for e in result.history), name
            scores[name] = {e.arch.string: e.score for e in result.history}
            runs[name] = {
                "seconds": round(seconds, 3),
                "evals_per_hour": round(len(archs) / seconds * 3600, 1),
                "mean_eval_seconds": round(statistics.fmean(e.cost_seconds for e in result.history), 3),
            }
            one = timed_search(cheap[:1], Instant(), make(), data, protocol)[0]
            many = timed_search(cheap, Instant(), make(), data, protocol)[0]
            overhead[name] = {"first_seconds": first, "one_seconds": one,
                              "per_eval_seconds": (many - one) / (len(cheap) - 1)}
    finally:
        if with_ray:
            ray.shutdown()

    base = overhead["inline"]
    for name in overhead:
        o = overhead[name]
        overhead[name] = {"first_startup_seconds": round(o["first_seconds"] - base["first_seconds"], 3),
                          "startup_seconds": round(o["one_seconds"] - base["one_seconds"], 3),
                          "per_eval_ms": round(1000 * (o["per_eval_seconds"] - base["per_eval_seconds"]), 2)}

    def ratio(a, b):
        return round(runs[a]["evals_per_hour"] / runs[b]["evals_per_hour"], 3) if a in runs and b in runs else None

    ratios = {"processes_2_vs_1_workers": ratio("processes-2", "processes-1"),
              "ray_2_vs_1_workers": ratio("ray-2", "ray-1"),
              "processes_1_vs_inline": ratio("processes-1", "inline"),
              "processes_2_vs_inline": ratio("processes-2", "inline"),
              "ray_2_vs_inline": ratio("ray-2", "inline")}
    report = {
        "machine": {"cpus": cpus, "loadavg_start": [round(x, 2) for x in load_start],
                    "loadavg_end": [round(x, 2) for x in os.getloadavg()]},
        "protocol": {"data": "digits", "epochs": args.epochs, "C": protocol.size["C"], "N": protocol.size["N"],
                     "batch_size": protocol.batch_size, "candidates": len(archs), "cheap_candidates": len(cheap)},
        "ray_init_seconds": None if ray_init_seconds is None else round(ray_init_seconds, 2),
        "runs": runs,
        "overhead_vs_inline": overhead,
        "ratios": ratios,
        # both run one torch thread per evaluation, so their scores must agree bit for bit
        "processes_2_and_ray_2_scores_identical": scores["processes-2"] == scores["ray-2"] if with_ray else None,
    }
    print(json.dumps(report, indent=2))
    parts = [f"evals/hour inline {runs['inline']['evals_per_hour']:.0f}",
             f"processes 1w {runs['processes-1']['evals_per_hour']:.0f} -> 2w "
             f"{runs['processes-2']['evals_per_hour']:.0f} (x{ratios['processes_2_vs_1_workers']})"]
    if with_ray:
        parts.append(f"ray 1w {runs['ray-1']['evals_per_hour']:.0f} -> 2w {runs['ray-2']['evals_per_hour']:.0f} "
                     f"(x{ratios['ray_2_vs_1_workers']})")
    parts.append("overhead per evaluation " + ", ".join(
        f"{n} {o['per_eval_ms']:+.1f} ms (startup {o['startup_seconds']:+.2f} s, "
        f"first {o['first_startup_seconds']:+.2f} s)"
        for n, o in overhead.items() if n != "inline"))
    print("summary: " + "; ".join(parts))


if __name__ == "__main__":
    main()
