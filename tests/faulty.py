"""Fault injection and executors for the executor and fault tests.

Everything here is importable by module path, so that worker processes and Ray
workers can unpickle it (classes defined inside a test function could not be).
"""

from __future__ import annotations

import os
import resource
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nas_engine.estimators.base import Estimate, Estimator
from nas_engine.executors import InlineExecutor, ProcessExecutor, RayExecutor
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.strategies import FixedList
from nas_engine.strategies.base import Strategy

SPACE = NB201Space()
REMOTE = ["processes", pytest.param("ray", marks=pytest.mark.ray)]  # executor kinds that run workers


def make_executor(kind: str, request, **kw):
    """A 2-worker executor of ``kind`` with one torch thread per evaluation (inline: one worker)."""
    if kind == "inline":
        return InlineExecutor(threads=1)
    if kind == "processes":
        return ProcessExecutor(workers=2, threads=1, **kw)
    request.getfixturevalue("ray_cluster")
    return RayExecutor(workers=2, num_cpus=1, **kw)


def archs(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct NB201 architecture strings."""
    rng, out = np.random.default_rng(seed), []
    while len(out) < n:
        a = SPACE.sample(rng).string
        if a not in out:
            out.append(a)
    return out


class Cheap(Estimator):
    """A score that depends only on the evaluation seed, after ``sleep`` seconds (no training)."""

    def __init__(self, sleep: float = 0.0):
        self.sleep = sleep

    def estimate(self, arch, ctx):
        time.sleep(self.sleep)
        return Estimate(score=-(ctx.arch_seed(arch) % 10007) / 10007, cost_seconds=self.sleep, epochs=1.0,
                        info={"pid": os.getpid()})


class Faulty(Estimator):
    """Scores like ``inner`` except for the architectures in ``faults`` (``{arch string: fault}``).

    Faults: ``"raise"`` (a ``ValueError``), ``"kill"`` (SIGKILL of its own
    process, every time), ``"kill-once"`` (SIGKILL the first time only,
    remembered by a marker file in ``marker_dir``), ``"allocate"`` (a 16 GB
    tensor: refuses to run without a memory cap), ``"sleep"`` (2 s, then scores
    like ``inner``).
    """

    def __init__(self, faults: dict[str, str], inner: Estimator | None = None, marker_dir: str | None = None):
        self.faults, self.inner, self.marker_dir = dict(faults), inner or Cheap(), marker_dir

    def estimate(self, arch, ctx):
        fault = self.faults.get(arch.string)
        if fault == "raise":
            raise ValueError(f"injected error for {arch.string}")
        if fault == "kill-once":
            marker = Path(self.marker_dir) / f"killed-{ctx.arch_seed(arch)}"
            if not marker.exists():
                marker.touch()
                fault = "kill"
        if fault == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if fault == "allocate":
            if resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY:
                raise AssertionError("the 'allocate' fault needs a memory cap (RLIMIT_AS)")
            torch.empty(4 * 2**30)
        if fault == "sleep":
            time.sleep(2.0)
        return self.inner.estimate(arch, ctx)


class InterruptingList(FixedList):
    """A fixed list whose ``tell`` number ``at`` is interrupted: by raising ``KeyboardInterrupt``
    (``how="raise"``) or by sending this process SIGINT (``how="signal"``).

    The interruption is set by :meth:`interrupting`, not by a constructor parameter: it is the test's
    doing, not part of the search's configuration, so the same store resumes with a plain ``FixedList``.
    """

    def interrupting(self, at: int, how: str = "raise") -> InterruptingList:
        self.at, self.how, self.told = at, how, 0
        return self

    def tell(self, evaluations):
        self.told += 1
        if self.told == self.at:
            if self.how == "raise":
                raise KeyboardInterrupt
            # Python leaves SIGINT ignored when it started with it ignored (e.g. pytest run as a background
            # job); install the interactive handler for this kill so it raises KeyboardInterrupt as in a shell
            previous = signal.signal(signal.SIGINT, signal.default_int_handler)
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)  # the signal arrives during the sleep
            finally:
                signal.signal(signal.SIGINT, previous)


class Batches(Strategy):
    """Proposes ``size`` random architectures at a time and nothing more until all of them are told
    (a synchronous batch strategy, like batch BO), ``batches`` times."""

    def __init__(self, size: int = 2, batches: int = 3):
        self.size, self.batches = size, batches

    def setup(self, space, ctx):
        super().setup(space, ctx)
        self.asked, self.waiting = 0, 0

    def ask(self):
        if self.waiting or self.asked == self.batches:
            return []
        self.asked += 1
        self.waiting = self.size
        return [self.space.sample(self.rng) for _ in range(self.size)]

    def tell(self, evaluations):
        self.waiting -= len(evaluations)


def probe() -> tuple[int, int, bool]:
    """(pid, torch threads, whether SIGINT is ignored) of the process running it."""
    return os.getpid(), torch.get_num_threads(), signal.getsignal(signal.SIGINT) is signal.SIG_IGN


class Threads(Estimator):
    """Scores a candidate by the torch threads its evaluation ran with (no training)."""

    def estimate(self, arch, ctx):
        return Estimate(score=float(torch.get_num_threads()), cost_seconds=0.0, epochs=1.0,
                        info={"pid": os.getpid()})
