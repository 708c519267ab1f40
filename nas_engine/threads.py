"""What this process may use -- CPUs and memory -- and torch's intra-op thread count: the engine's policy for
it, and :func:`torch_threads` to set it for a block.

Low-level helpers (standard library only; torch is imported when it is
used), shared by the search loop, the executors and strategies that run torch
themselves (BO's GP fit); :mod:`nas_engine.executors` re-exports them.

**The policy** (:func:`policy_threads`): a candidate trains with one thread
unless its training step is big enough for more threads to pay, and never with
more threads than its share of the CPUs this process may use
(:func:`available_cpus`: the affinity mask, capped by a cgroup CPU quota and
by ``$NAS_ENGINE_CPUS``).
Intra-op threads pay less than parallel candidates (2 threads on 2 idle
cores: 1.36-1.83x, larger networks gaining more) and collapse as soon as
threads outnumber free cores (next to one busy process 2 threads ran
0.35-0.81x as fast as 1, for every network size measured; 13-48x slower under
heavier load): cores are used by evaluating candidates in parallel instead,
and a single candidate never takes every CPU.  The threshold
:data:`MULTI_THREAD_GFLOP` is measured (``benchmarks/threads.py``,
docs/executors.md, "Threads").
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

__all__ = ["torch_threads", "available_cpus", "usable_cpus", "check_threads", "check_workers", "policy_threads",
           "MULTI_THREAD_GFLOP", "CPUS_ENV_VAR", "available_memory", "format_bytes"]

#: an environment variable capping the CPUs the engine counts as its own (like joblib's LOKY_MAX_CPU_COUNT):
#: on a shared machine, or beside other busy processes, ``NAS_ENGINE_CPUS=1`` keeps the "auto" executor in
#: one process and every candidate at one thread
CPUS_ENV_VAR = "NAS_ENGINE_CPUS"

#: forward GFLOPs of one training minibatch (torch's counter, 2 per multiply-add) from which a candidate
#: may get more than one thread (measured on 2 idle cores: 2 threads gave 1.50-1.83x from 0.37 GFLOP per
#: minibatch up, 1.36-1.45x below; see docs/executors.md#threads)
MULTI_THREAD_GFLOP = 1.0


def _cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), None if unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory(root: Path = Path("/sys/fs/cgroup"), meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Bytes this process may still allocate: ``MemAvailable`` of ``/proc/meminfo``, capped by the cgroup's
    limit less its usage (v2 ``memory.max`` / ``memory.current``, v1 ``memory.limit_in_bytes`` /
    ``memory.usage_in_bytes``); ``None`` where neither can be read (not Linux)."""
    available = None
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        limit, usage = _read_int(root / limit_file), _read_int(root / usage_file)
        if limit is not None and limit < 2**60:  # v1 writes a huge number for "no limit"
            left = max(0, limit - (usage or 0))
            available = left if available is None else min(available, left)
            break
    return available


def format_bytes(n: float) -> str:
    """``n`` bytes as a short size: ``256 bytes``, ``36.9 kB``, ``1.5 GB`` (decimal units)."""
    if abs(n) < 1000:
        return f"{int(n)} bytes"
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        n /= 1000
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def usable_cpus() -> int:
    """CPUs the operating system lets this process use: its affinity mask, capped by its cgroup's CPU quota
    (rounded up); the hard limit that explicit thread counts are checked against."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        cpus = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        cpus = min(cpus, max(1, math.ceil(limit)))
    return max(1, cpus)


def check_threads(n: int, who: str) -> int:
    """``n`` torch threads for one local evaluation, or a one-line ``ValueError``: more threads than
    :func:`usable_cpus` only oversubscribe the cores (1,000 threads put a 3-second search past a minute)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{who} must be a positive integer, got {n!r}")
    cpus = usable_cpus()
    if n > cpus:
        raise ValueError(f"{who}={n}: more torch threads than the {cpus} CPU{'s' if cpus > 1 else ''} this process "
                         f"may use (affinity mask and cgroup quota); give at most {cpus}")
    return n


def check_workers(n: int, who: str) -> int:
    """``n`` local worker processes for candidates that train on the CPU, or a one-line ``ValueError``: more
    workers than :func:`usable_cpus` only time-slice the same cores (and each holds a candidate and a copy
    of the data)."""
    cpus = usable_cpus()
    if n > cpus:
        raise ValueError(f"{who}={n}: more worker processes than the {cpus} CPU{'s' if cpus > 1 else ''} this "
                         f"process may use (affinity mask and cgroup quota) for candidates that train on the "
                         f"CPU; give at most {cpus}")
    return n


def available_cpus() -> int:
    """CPUs this process may use: :func:`usable_cpus`, capped by ``$NAS_ENGINE_CPUS`` where set (a whole
    number >= 1)."""
    cpus = usable_cpus()
    cap = os.environ.get(CPUS_ENV_VAR, "").strip()
    if cap:
        if not cap.isdigit() or int(cap) < 1:
            raise ValueError(f"{CPUS_ENV_VAR}={cap!r}: expected a whole number of CPUs >= 1 (or leave it unset)")
        cpus = min(cpus, int(cap))
    return max(1, cpus)


def policy_threads(workers: int = 1, gflop_per_batch: float | None = None, *, cpus: int | None = None,
                   device: str = "cpu") -> int:
    """The torch threads of one evaluation under the engine's policy (see the module docstring).

    ``workers``: evaluations running at once on this machine; ``gflop_per_batch``:
    forward GFLOPs of one training minibatch of a typical candidate (None:
    unknown, one thread); ``cpus``: default :func:`available_cpus`.  On a GPU
    the host side needs one thread.
    """
    if device != "cpu" or gflop_per_batch is None or gflop_per_batch < MULTI_THREAD_GFLOP:
        return 1
    cpus = available_cpus() if cpus is None else cpus
    # its share of the CPUs, but never all of them: one CPU stays free for everything else on the machine
    # (next to one busy process, 2 threads on 2 cores ran 0.35-0.81x as fast as 1, for every size measured)
    return max(1, min(cpus // max(1, workers), cpus - 1))


def _set_torch_threads(n: int) -> int:
    """Set torch's intra-op threads to ``n``; return the previous setting."""
    import torch

    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    return before


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` torch intra-op threads, restored afterwards (``None``: leave them alone)."""
    if n is None:
        yield
        return
    before = _set_torch_threads(n)
    try:
        yield
    finally:
        _set_torch_threads(before)
