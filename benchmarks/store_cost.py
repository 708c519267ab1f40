"""The run store's cost per evaluation: milliseconds spent in the store by a search.

A search with regularized evolution (its population is the strategy state
written after every ``tell``) over NB201 evaluates ``--evaluations``
candidates with a cheap deterministic estimator whose result looks like a
TSE-EMA evaluation at the standard CPU protocol: a learning curve of
``--epochs`` epochs with ``--steps`` minibatch losses each, and a small
``info``.  Every method of :class:`~nas_engine.store.RunStore` is timed while
the search runs; the store's share of the search is the number to read (a real
candidate trains for seconds, see ``benchmarks/overhead.py``).

    python benchmarks/store_cost.py [--evaluations 300] [--json FILE]
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nas_engine import Budget, Search
from nas_engine.curves import LearningCurve
from nas_engine.estimators.base import Estimate, Estimator
from nas_engine.store import RunStore


class SyntheticCurve(Estimator):
    """A deterministic curve per architecture (no training): what a TSE-EMA evaluation stores."""

    def __init__(self, epochs: int = 12, steps: int = 79):
        self.epochs = epochs
        self.steps = steps

    def estimate(self, arch, ctx) -> Estimate:
        rng = np.random.default_rng(abs(hash(arch.string)) % 2**32)
        losses = np.cumsum(rng.uniform(-0.02, 0.0, size=(self.epochs, self.steps)), axis=None).reshape(
            self.epochs, self.steps) + 2.3
        curve = LearningCurve(minibatch_losses=losses.tolist(), epoch_seconds=[0.5] * self.epochs)
        return Estimate(score=-float(losses[-1].mean()), cost_seconds=0.5 * self.epochs, epochs=self.epochs,
                        curve=curve, info={"estimator": "synthetic", "final_loss": float(losses[-1, -1])})


def timed_store(times: dict[str, list[float]]):
    """Wrap every public method of RunStore so that its calls are timed into ``times``."""
    originals = {}
    for name, fn in inspect.getmembers(RunStore, inspect.isfunction):
        if name.startswith("_"):  # public methods only (private ones run inside them)
            continue
        originals[name] = fn

        def wrapper(*a, __fn=fn, __name=name, **kw):
            t0 = time.perf_counter()
            try:
                return __fn(*a, **kw)
            finally:
                times.setdefault(__name, []).append(time.perf_counter() - t0)

        setattr(RunStore, name, functools.wraps(fn)(wrapper))
    return originals


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--evaluations", type=int, default=300)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--steps", type=int, default=79, help="minibatches per epoch (5,000 images / 64)")
    p.add_argument("--json", default=None, help="also write the results to this file")
    args = p.parse_args(argv)

    def run(store):
        return Search("regularized-evolution", "nb201", SyntheticCurve(args.epochs, args.steps), data=None,
                      budget=Budget(evaluations=args.evaluations), seed=0, store=store, progress=False).run()

    t0 = time.perf_counter()
    run(None)
    t_plain = time.perf_counter() - t0
    times: dict[str, list[float]] = {}
    originals = timed_store(times)
    try:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            result = run(d)
            t_stored = time.perf_counter() - t0
            size = sum(f.stat().st_size for f in Path(d).iterdir() if f.is_file())
    finally:
        for name, fn in originals.items():
            setattr(RunStore, name, fn)
    n = len(result.history)
    total = sum(sum(v) for v in times.values())
    res = {
        "evaluations": n, "epochs": args.epochs, "steps": args.steps,
        "search_seconds_without_store": t_plain, "search_seconds_with_store": t_stored,
        "store_ms_per_evaluation": 1e3 * total / n,
        "store_bytes": size,
        "methods": {k: {"calls": len(v), "median_ms": 1e3 * statistics.median(v), "total_s": sum(v)}
                    for k, v in sorted(times.items())},
    }
    print(json.dumps(res, indent=2))
    print(f"\nstore: {res['store_ms_per_evaluation']:.2f} ms per evaluation over {n} evaluations "
          f"(search {t_plain:.2f} s without a store, {t_stored:.2f} s with)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
