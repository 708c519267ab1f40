"""A search driver for the store's attack tests, run as its own process (``python -m tests.store_driver``).

Regularized evolution (its population is state that must survive a crash) over
NB201 with :class:`Quick`, a deterministic estimator that takes ``sleep``
seconds and trains nothing, so that a test can kill the driver at many moments
of a run in a few seconds.

    python -m tests.store_driver STORE EVALUATIONS [--sleep S] [--executor inline|processes]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time

import numpy as np

from nas_engine import Budget, Search
from nas_engine.curves import LearningCurve
from nas_engine.estimators.base import Estimate, Estimator
from nas_engine.executors import InlineExecutor, ProcessExecutor
from nas_engine.strategies import RegularizedEvolution


class Quick(Estimator):
    """A score read from the architecture string's hash, after ``sleep`` seconds; numpy values in ``info``."""

    def __init__(self, sleep: float = 0.02):
        self.sleep = sleep

    def estimate(self, arch, ctx) -> Estimate:
        time.sleep(self.sleep)
        h = int.from_bytes(hashlib.sha256(arch.string.encode()).digest()[:8], "big")
        score = h / 2**64
        curve = LearningCurve(train_loss=[2.0 - score, 1.5 - score])
        return Estimate(score=np.float64(score), cost_seconds=self.sleep, epochs=2, curve=curve,
                        info={"hash": np.int64(h % 1000), "losses": np.array([2.0 - score, 1.5 - score])})


def make_search(store: str | None, evaluations: int, *, sleep: float = 0.02, executor: str = "inline",
                seed: int = 0) -> Search:
    ex = InlineExecutor(threads=1) if executor == "inline" else ProcessExecutor(workers=2, threads=1)
    return Search(RegularizedEvolution(population_size=5, sample_size=3), "nb201", Quick(sleep), data=None,
                  budget=Budget(evaluations=evaluations), seed=seed, store=store, executor=ex, progress=False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("store")
    p.add_argument("evaluations", type=int)
    p.add_argument("--sleep", type=float, default=0.02)
    p.add_argument("--executor", default="inline")
    args = p.parse_args(argv)
    make_search(args.store, args.evaluations, sleep=args.sleep, executor=args.executor).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
