"""Where evaluations run: in the driver process, on a local process pool, or on Ray.

An :class:`Executor` runs module-level functions somewhere and hands back
their results; the search loop (:mod:`nas_engine.search`) keeps up to
``executor.workers`` evaluations in flight and tells the strategy each result
as it completes.  Three executors, chosen by name or passed as an instance
(:func:`create_executor`):

* ``"inline"`` (:class:`InlineExecutor`): one evaluation at a
  time, in the driver process, at ``submit``.
* ``"processes"`` (:class:`ProcessExecutor`): ``workers`` local worker
  processes (``concurrent.futures`` pools started with ``forkserver`` or
  ``spawn``: torch and ``fork`` do not mix), one candidate per worker, each
  with the thread policy's torch threads (:mod:`nas_engine.threads`; one for
  small candidates); optionally a memory cap per worker (``max_memory_mb``).
* ``"ray"`` (:class:`RayExecutor`, extra ``nas-engine[ray]``): one Ray task per
  evaluation with ``num_cpus``/``num_gpus`` resources (fractional GPUs
  allowed), on an existing cluster (``address=``) or a local one it starts.

The executors are a registry kind (:data:`nas_engine.registry.executors`,
entry-point group ``nas_engine.executors``; ``nas-engine list`` shows them):
:func:`create_executor` makes one by name through it, and also takes
``"auto"``, the default of ``Search`` and ``nas-engine search``
(:func:`auto_executor`: processes, one per CPU, when several CPUs are usable,
the candidates train on the CPU and worker processes can start from this
program; else inline).

The interface is small: ``start()``, ``share(obj)`` (an object every task
needs, sent to the workers once: the dataset rides along), ``submit(fn, *args) -> handle``,
``wait(handles)`` (the completed ones, at least one), ``result(handle)``,
``cancel(handles)`` and ``shutdown()``.  ``result`` raises :class:`WorkerDied`
when the process running the task died (killed, crashed, its node lost); the
search retries such a candidate up to ``executor.max_retries`` times.

Every executor runs its tasks with a set number of torch threads
(``threads``; when not given, the search loop applies the engine's thread
policy, :func:`nas_engine.threads.policy_threads`): the float
results of training depend on it (reduction order), so two executors give
bit-identical scores when their ``threads`` agree (see :mod:`nas_engine.search`
for the determinism guarantee).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from typing import Any, NamedTuple

from .config import check_int
from .registry import executors as executor_registry
from .threads import _set_torch_threads, available_cpus, check_threads, policy_threads, torch_threads

__all__ = [
    "Executor",
    "InlineExecutor",
    "ProcessExecutor",
    "RayExecutor",
    "WorkerDied",
    "MemoryCapTooLow",
    "create_executor",
    "available_executors",
    "resolve_executor_choice",
    "AUTO",
    "cpu_count",
    "torch_threads",
]

RAY_INSTALL_HINT = 'the "ray" executor needs Ray: pip install "nas-engine[ray]"'


class WorkerDied(RuntimeError):
    """The process running a task died before returning (killed, crashed, node lost)."""


class MemoryCapTooLow(ValueError):
    """``ProcessExecutor(max_memory_mb=...)`` is below what a worker process needs to start at all."""


def cpu_count() -> int:
    """CPUs this process may use (:func:`nas_engine.threads.available_cpus`: affinity mask and cgroup quota)."""
    return available_cpus()


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value


# -- what runs in a worker ------------------------------------------------------------------------
class _Shared(NamedTuple):
    """A placeholder for the ``key``-th object shared with :meth:`ProcessExecutor.share`."""

    key: int


_WORKER_SHARED: list[Any] = []  # in a ProcessExecutor worker: the shared objects, by key


def _process_task(fn: Callable, args: Sequence):
    """A :class:`ProcessExecutor` task: ``fn(*args)`` with ``_Shared`` placeholders replaced by their objects."""
    if _WORKER_START_ERROR:
        raise MemoryCapTooLow(_WORKER_START_ERROR[0])
    return fn(*(_WORKER_SHARED[a.key] if isinstance(a, _Shared) else a for a in args))


def _ray_task(fn: Callable, threads: int, *args):
    """A :class:`RayExecutor` task: ``fn(*args)`` with ``threads`` torch threads (Ray resolves the object
    refs among ``args``; a Ray worker process runs tasks of any resource size, so threads are set per task)."""
    _set_torch_threads(threads)
    return fn(*args)


def _init_worker(shared: list, threads: int, max_memory_mb: int | None, driver_pid: int,
                 cuda_device: int | None = None) -> None:
    """Initializer of a :class:`ProcessExecutor` worker process."""
    # Ctrl-C is the driver's to handle: it cancels the work and kills the workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _set_torch_threads(threads)
    if cuda_device is not None:  # this worker's GPU: "cuda" in its protocol means this device
        import torch

        torch.cuda.set_device(cuda_device)
    threading.Thread(target=_exit_with_driver, args=(driver_pid,), name="exit-with-driver", daemon=True).start()
    _WORKER_SHARED[:] = shared
    if max_memory_mb is not None:
        why = _cap_memory(max_memory_mb)
        _WORKER_START_ERROR[:] = [] if why is None else [why]


#: the modules every task needs (forkserver workers fork with them imported; a capped worker imports them):
#: torch's first optimizer imports torch._dynamo (1.8 s here, torch 2.13), so the fork server imports it once
#: instead of every worker at its first candidate
_WORKER_MODULES = ["nas_engine.search", "torch._dynamo"]
#: address space a capped worker must have left once started (a small allocation it makes to check)
_START_HEADROOM_MB = 64
_WORKER_START_ERROR: list[str] = []  # in a capped worker that cannot run tasks: why (the cap is too low)


def _mapped_mb() -> float | None:
    """This process's address-space size in MB (what ``RLIMIT_AS`` caps); ``None`` where /proc has no statm."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[0])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return None


def _cap_memory(max_memory_mb: int) -> str | None:
    """Cap this worker's address space at ``max_memory_mb`` MB; why no task can run under it, or ``None``.

    Too low: below what the worker has mapped already, or so close to it that
    importing the task's modules, a little torch work or a small allocation
    fails under the cap (``MemoryError``, or an ``ImportError``/``OSError``/
    ``RuntimeError`` from a failed mapping -- garbage like "the scipy install
    seems to be broken" if it happened in a task instead).
    """
    import importlib
    import resource

    mapped = _mapped_mb()
    if mapped is not None and max_memory_mb <= mapped + _START_HEADROOM_MB:
        return _cap_too_low(max_memory_mb, mapped)
    limit = max_memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        import torch

        for module in _WORKER_MODULES:
            importlib.import_module(module)
        torch.nn.functional.conv2d(torch.ones(2, 3, 8, 8), torch.ones(4, 3, 3, 3)).sum().item()
        bytearray(_START_HEADROOM_MB * 2**20)
    except (MemoryError, ImportError, OSError, RuntimeError) as exc:
        return _cap_too_low(max_memory_mb, mapped, exc)
    return None


def _cap_too_low(max_memory_mb: int, mapped: float | None, failed: BaseException | str | None = None) -> str:
    """The one-line message of :class:`MemoryCapTooLow`; ``failed`` is what went wrong under the cap."""
    if isinstance(failed, BaseException):
        text = next((line.strip() for line in str(failed).splitlines() if line.strip()), "")
        failed = f"starting one under it failed with {type(failed).__name__}{': ' + text if text else ''}"
    need = (f"a worker maps {mapped:.0f} MB before its first task and the cap counts all of its address space"
            if mapped is not None else "the cap counts a worker's whole address space, about 1 GB once torch "
            "is imported")
    suggest = 4000 if mapped is None else max(4000, 1000 * math.ceil(2 * mapped / 1000))
    return (f"ProcessExecutor: memory cap of {max_memory_mb} MB is too low to start a worker "
            f"({failed + '; ' if failed else ''}{need}: give max_memory_mb well above that, e.g. {suggest}, "
            "or None for no cap)")


def _worker_start_error() -> str | None:
    """A :class:`ProcessExecutor` worker's first task when capped: why it cannot run tasks, or ``None``."""
    return _WORKER_START_ERROR[0] if _WORKER_START_ERROR else None


def _exit_with_driver(driver_pid: int, interval: float = 1.0) -> None:
    """End this worker process within ``interval`` seconds of the driver's death (e.g. ``kill -9``).

    Without this, orphaned workers would go on training, and idle ones would
    wait forever: a worker holds both ends of its task queue, and forkserver
    children keep the fork server alive, so neither sees the driver go.
    """
    while True:
        time.sleep(interval)
        try:
            os.kill(driver_pid, 0)
        except OSError:  # gone (or its pid now belongs to someone else)
            os._exit(1)


# -- the interface -----------------------------------------------------------------------------------
class Executor(ABC):
    """Runs tasks (module-level functions and picklable arguments) and returns their results.

    ``workers`` is how many tasks the search keeps in flight; ``max_retries``
    how often a task whose worker died is run again; ``threads`` the torch
    threads of a task (``None``: the executor's default).  ``remote`` says
    whether tasks run outside the driver process (then arguments are pickled
    and a task cannot reach driver-side objects such as the strategy).
    """

    name: str = "executor"
    remote: bool = True
    #: whether tasks run on this machine (then ``threads`` is checked against its CPUs)
    local: bool = True

    def __init__(self, workers: int | None = 1, *, max_retries: int = 2, threads: int | None = None):
        self._workers = None if workers is None else _positive_int(workers, f"{type(self).__name__}: workers")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"{type(self).__name__}: max_retries must be a non-negative integer, got {max_retries!r}")
        self.max_retries = max_retries
        if threads is not None:  # on this machine: no more threads than its CPUs
            threads = (check_threads if self.local else _positive_int)(threads, f"{type(self).__name__}: threads")
        self.threads = self._given_threads = threads

    @property
    def threads_from_policy(self) -> bool:
        """Whether ``threads`` is left to the engine's thread policy (not given to the constructor)."""
        return self._given_threads is None

    def use_policy_threads(self, n: int) -> None:
        """Run tasks with ``n`` torch threads, the policy's choice, unless the constructor was given ``threads``
        (the search loop calls this with :func:`nas_engine.threads.policy_threads` for its candidates)."""
        if self._given_threads is None:
            self.threads = _positive_int(n, f"{type(self).__name__}: threads")

    @property
    def workers(self) -> int:
        """How many tasks may run at once (known after :meth:`start` for executors that ask a cluster)."""
        if self._workers is None:
            raise RuntimeError(f"{self!r}: the number of workers is known once the executor has started")
        return self._workers

    def start(self) -> None:
        """Get ready to run tasks (connect, start workers); idempotent."""

    def share(self, obj: Any) -> Any:
        """A stand-in for ``obj`` to pass to :meth:`submit`, transferred to the workers once, not per task."""
        return obj

    @abstractmethod
    def submit(self, fn: Callable, *args) -> Any:
        """Start ``fn(*args)`` (``fn`` a module-level function); return a handle.  At most ``workers`` at a time."""

    @abstractmethod
    def wait(self, handles: Iterable[Any], timeout: float | None = None) -> list[Any]:
        """Block until at least one of ``handles`` has completed, or ``timeout`` seconds have passed (then
        the list may be empty); return the completed ones.  The search passes ``timeout`` only when it has a
        deadline to enforce on a remote executor (``Budget(seconds=...)``, ``evaluation_seconds``)."""

    @abstractmethod
    def result(self, handle: Any) -> Any:
        """The return value of a completed task; re-raises its exception; :class:`WorkerDied` if its worker died."""

    def cancel(self, handles: Iterable[Any]) -> None:
        """Stop the tasks of ``handles`` (killing their workers where they run); their results are lost."""

    def shutdown(self) -> None:
        """Release workers and connections; the executor can be started again."""

    def __enter__(self) -> Executor:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        workers = "?" if self._workers is None else self._workers
        return f"{type(self).__name__}(workers={workers}, max_retries={self.max_retries}, threads={self.threads})"


class _Done:
    """Handle of an inline task: already complete."""

    __slots__ = ("value", "error")

    def __init__(self, value: Any = None, error: BaseException | None = None):
        self.value, self.error = value, error


@executor_registry.register("inline")
class InlineExecutor(Executor):
    """Runs each task in the driver process when it is submitted (one worker).

    ``threads`` fixes torch's threads during a task (restored afterwards);
    ``None`` lets the search loop apply the engine's thread policy (used
    outside a search, it leaves torch's setting alone).  A task's ``Exception`` is kept and
    re-raised by :meth:`result`; ``KeyboardInterrupt`` propagates at once.
    """

    name = "inline"
    remote = False

    def __init__(self, workers: int = 1, *, threads: int | None = None):
        if workers != 1:
            raise ValueError(f"the inline executor runs one evaluation at a time, got workers={workers!r}; "
                             "use executor='processes' or 'ray' for parallel evaluations")
        super().__init__(1, max_retries=0, threads=threads)

    def submit(self, fn: Callable, *args) -> _Done:
        try:
            with torch_threads(self.threads):
                return _Done(fn(*args))
        except Exception as exc:
            return _Done(error=exc)

    def wait(self, handles: Iterable[_Done], timeout: float | None = None) -> list[_Done]:
        return list(handles)

    def result(self, handle: _Done) -> Any:
        if handle.error is not None:
            raise handle.error
        return handle.value


@executor_registry.register("processes")
class ProcessExecutor(Executor):
    """``workers`` local worker processes, one candidate per worker.

    Each worker is its own one-process ``concurrent.futures`` pool, so a worker
    that dies (``BrokenProcessPool``) is attributed to exactly the task it was
    running, and only its pool is recreated.  Workers start with
    ``start_method`` (default ``"forkserver"`` where available, else
    ``"spawn"``), ignore ``SIGINT`` (the driver handles Ctrl-C and kills them),
    exit within a second of the driver's death, and run ``threads`` torch
    threads (default: the thread policy's choice, which the search loop makes
    from the candidates' size; outside a search, one).  Objects passed to
    :meth:`share` (the dataset) reach each worker once, when it starts.

    **Several candidates on a GPU.** With a protocol on ``"cuda"``, every
    worker trains on the GPU, each in its own CUDA context: small candidates
    are launch-bound (a few percent of the device busy), and several processes
    launching kernels at once keep it busier.  ``devices=[0, 1, ...]`` spreads
    the workers over those GPUs in turn (worker ``i`` uses
    ``devices[i % len(devices)]``); without it every worker uses the current
    device.  ``benchmarks/gpu_throughput.py`` measures candidates per hour at
    1, 4, 8 and 16 workers.  The CPU path is unchanged by any of this.

    ``max_memory_mb`` caps each worker's address space (``RLIMIT_AS``, Unix):
    an allocation beyond it fails (``MemoryError``, or torch's "can't allocate
    memory") and the evaluation is recorded as out of memory.  The cap counts
    virtual memory, including the ~1 GB a worker maps once torch is imported,
    so choose it well above that: a cap too low for a worker to start (to
    import the engine and do a little torch work under it) raises
    :class:`MemoryCapTooLow` (a ``ValueError``) from the first :meth:`submit`
    (and from :meth:`result` of any later worker that cannot start).
    """

    name = "processes"

    def __init__(self, workers: int | None = None, *, max_retries: int = 2, threads: int | None = None,
                 max_memory_mb: int | None = None, start_method: str | None = None,
                 devices: Sequence[int] | None = None):
        cpus = cpu_count()
        workers = cpus if workers is None else _positive_int(workers, "ProcessExecutor: workers")
        super().__init__(workers, max_retries=max_retries, threads=threads)
        self.devices = None if devices is None else _cuda_devices(devices)
        self.max_memory_mb = check_int(max_memory_mb, "max_memory_mb", none=True, who="ProcessExecutor")
        self._cap_checked = False  # whether a worker has started under max_memory_mb
        methods = multiprocessing.get_all_start_methods()
        if start_method is None:
            start_method = "forkserver" if "forkserver" in methods else "spawn"
        if start_method not in ("forkserver", "spawn") or start_method not in methods:
            raise ValueError(f"ProcessExecutor: start_method must be 'forkserver' or 'spawn' (available here: "
                             f"{[m for m in methods if m != 'fork']}), got {start_method!r}")
        self.start_method = start_method
        self._shared: list[Any] = []
        self._pools: list[ProcessPoolExecutor | None] = [None] * workers
        self._pool_shares = [0] * workers  # how many shared objects each pool's worker received
        self._slot_of: dict[Future, int] = {}

    def device_of(self, slot: int) -> int | None:
        """The CUDA device of worker ``slot``: ``devices`` in turn (None without ``devices``)."""
        return None if self.devices is None else self.devices[slot % len(self.devices)]

    def task_threads(self) -> int:
        """The torch threads of a worker: ``threads``, or the policy's choice for ``workers`` at once when unset."""
        return self.threads if self.threads is not None else policy_threads(self.workers)

    def share(self, obj: Any) -> _Shared:
        self._shared.append(obj)
        return _Shared(len(self._shared) - 1)

    def _pool(self, slot: int) -> ProcessPoolExecutor:
        pool = self._pools[slot]
        if pool is not None and self._pool_shares[slot] < len(self._shared):
            pool.shutdown(wait=True)  # started before the last share(): restart with every shared object
            pool = None
        if pool is None:
            pool = self._new_pool(slot)
            if self.max_memory_mb is not None and not self._cap_checked:
                self._check_cap(slot)
                pool = self._pools[slot]
        return pool

    def _new_pool(self, slot: int) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context(self.start_method)
        if self.start_method == "forkserver":
            ctx.set_forkserver_preload(_WORKER_MODULES)  # workers fork with torch imported
        pool = ProcessPoolExecutor(1, mp_context=ctx, initializer=_init_worker,
                                   initargs=(list(self._shared), self.task_threads(), self.max_memory_mb,
                                             os.getpid(), self.device_of(slot)))
        self._pools[slot], self._pool_shares[slot] = pool, len(self._shared)
        return pool

    def _check_cap(self, slot: int) -> None:
        """Start the worker of ``slot`` (a new pool) and raise :class:`MemoryCapTooLow` if it cannot run tasks
        under the memory cap (or dies twice while starting under it)."""
        for attempt in (1, 2):
            try:
                why = self._pools[slot].submit(_worker_start_error).result()
            except BrokenProcessPool:  # e.g. a thread library aborting when it cannot map a thread's stack
                self._discard(slot, kill=False)
                if attempt == 1:
                    self._new_pool(slot)
                    continue
                why = _cap_too_low(self.max_memory_mb, None, "its worker process died twice while starting under it")
            if why is not None:
                self._discard(slot, kill=False)
                raise MemoryCapTooLow(why)
            self._cap_checked = True
            return

    def submit(self, fn: Callable, *args) -> Future:
        busy = set(self._slot_of.values())
        slot = next((s for s in range(self.workers) if s not in busy), None)
        if slot is None:
            raise RuntimeError(f"all {self.workers} workers are busy; wait for a result before submitting")
        try:
            future = self._pool(slot).submit(_process_task, fn, args)
        except BrokenProcessPool:  # its worker died while idle: start another
            self._discard(slot, kill=False)
            future = self._pool(slot).submit(_process_task, fn, args)
        self._slot_of[future] = slot
        return future

    def wait(self, handles: Iterable[Future], timeout: float | None = None) -> list[Future]:
        done, _ = wait_futures(list(handles), timeout=timeout, return_when=FIRST_COMPLETED)
        return list(done)

    def result(self, handle: Future) -> Any:
        slot = self._slot_of.pop(handle)
        try:
            return handle.result()
        except BrokenProcessPool as exc:
            self._discard(slot, kill=False)
            raise WorkerDied(f"worker process terminated abruptly ({exc})") from exc

    def cancel(self, handles: Iterable[Future]) -> None:
        for handle in handles:
            slot = self._slot_of.pop(handle, None)
            if slot is not None and not handle.done():
                self._discard(slot, kill=True)

    def shutdown(self) -> None:
        self.cancel(list(self._slot_of))
        for slot in range(self.workers):
            self._discard(slot, kill=False)
        self._shared.clear()

    def _discard(self, slot: int, *, kill: bool) -> None:
        pool, self._pools[slot] = self._pools[slot], None
        if pool is None:
            return
        if kill:  # a task is running: stop its process (concurrent.futures cannot cancel a running task)
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.kill()
        pool.shutdown(wait=True, cancel_futures=True)

    def __repr__(self) -> str:
        return (f"ProcessExecutor(workers={self.workers}, max_retries={self.max_retries}, threads={self.threads}, "
                f"max_memory_mb={self.max_memory_mb}, start_method={self.start_method!r}, devices={self.devices})")


def _cuda_devices(devices) -> list[int]:
    """``devices`` checked: a non-empty sequence of indices of CUDA devices this machine has."""
    if isinstance(devices, (str, bytes)) or not isinstance(devices, Sequence) or not devices or any(
            isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in devices):
        raise ValueError(f"ProcessExecutor: devices must be a non-empty list of CUDA device indices, e.g. [0, 1], "
                         f"got {devices!r}")
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    missing = [d for d in devices if d >= count]
    if missing:
        raise ValueError(f"ProcessExecutor: devices={list(devices)!r} names CUDA device(s) {missing} but this "
                         f"machine has {count}")
    return list(devices)


@executor_registry.register("ray")
class RayExecutor(Executor):
    """One Ray task per evaluation.

    Connects to the cluster at ``address`` (e.g. ``"auto"`` or
    ``"ray://head:10001"``), or to the Ray instance this process already
    initialised, or else starts a local one (``ray.init(**init_kwargs)``) that
    :meth:`shutdown` stops again.  Each task asks for ``num_cpus`` CPUs and
    ``num_gpus`` GPUs (fractions allowed, e.g. 0.25 to pack four evaluations on
    a GPU) and runs ``threads`` torch threads (default ``max(1, int(num_cpus))``).
    ``workers`` (how many tasks are in flight) defaults to what the cluster's
    resources fit at start.  Ray's own task retries are off: a task whose
    worker died is retried by the search, ``max_retries`` times.
    """

    name = "ray"
    local = False  # tasks may run on other machines of the cluster
    _WAIT_SECONDS = 0.5  # ray.wait slice, so that Ctrl-C is handled promptly

    def __init__(self, workers: int | None = None, *, address: str | None = None, num_cpus: float = 1,
                 num_gpus: float = 0, max_retries: int = 2, threads: int | None = None,
                 init_kwargs: dict[str, Any] | None = None):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ImportError(RAY_INSTALL_HINT) from None
        for key, value, low in (("num_cpus", num_cpus, 0), ("num_gpus", num_gpus, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < low:
                raise ValueError(f"RayExecutor: {key} must be a non-negative number, got {value!r}")
        if num_cpus == 0 and num_gpus == 0:
            raise ValueError("RayExecutor: a task needs num_cpus > 0 or num_gpus > 0")
        super().__init__(workers, max_retries=max_retries,
                         threads=max(1, int(num_cpus)) if threads is None else threads)
        self.address, self.num_cpus, self.num_gpus = address, num_cpus, num_gpus
        self.init_kwargs = dict(init_kwargs or {})
        self._fixed_workers = workers
        self._owns_ray = False
        self._task = None

    def start(self) -> None:
        import ray

        if self._task is not None:
            return
        if not ray.is_initialized():
            ray.init(address=self.address, **self.init_kwargs)
            self._owns_ray = True
        if self._fixed_workers is None:
            resources = ray.cluster_resources()
            fits = int(min(resources.get(name, 0.0) / need
                           for name, need in (("CPU", self.num_cpus), ("GPU", self.num_gpus)) if need > 0))
            if fits < 1:
                raise ValueError(f"the Ray cluster (CPU={resources.get('CPU', 0)}, GPU={resources.get('GPU', 0)}) "
                                 f"fits no task of num_cpus={self.num_cpus}, num_gpus={self.num_gpus}; pass "
                                 "workers= to submit tasks anyway (e.g. to an autoscaling cluster)")
            self._workers = fits
        self._task = ray.remote(_ray_task)

    def share(self, obj: Any) -> Any:
        import ray

        self.start()
        return ray.put(obj)

    def submit(self, fn: Callable, *args) -> Any:
        self.start()
        task = self._task.options(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=0,
                                  name=getattr(fn, "__name__", "task"))
        return task.remote(fn, self.threads, *args)

    def wait(self, handles: Iterable[Any], timeout: float | None = None) -> list[Any]:
        import ray

        handles = list(handles)
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if end is None else end - time.monotonic()
            ready, _ = ray.wait(handles, num_returns=1,
                                timeout=self._WAIT_SECONDS if left is None else max(0.0, min(left, self._WAIT_SECONDS)))
            if not ready and left is not None and left <= self._WAIT_SECONDS:
                return []
            if ready:
                more, _ = ray.wait([h for h in handles if h not in ready], num_returns=len(handles) - len(ready),
                                   timeout=0)
                return ready + more

    def result(self, handle: Any) -> Any:
        import ray
        from ray import exceptions as rex

        died = (rex.WorkerCrashedError, rex.NodeDiedError, rex.LocalRayletDiedError, rex.ObjectLostError,
                rex.OutOfMemoryError)
        try:
            return ray.get(handle)
        except died as exc:
            raise WorkerDied(f"Ray task lost: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}") from exc
        except rex.RayTaskError as exc:
            raise exc.as_instanceof_cause() from None

    def cancel(self, handles: Iterable[Any]) -> None:
        import ray

        for handle in handles:
            with contextlib.suppress(Exception):  # already finished or gone
                ray.cancel(handle, force=True)

    def shutdown(self) -> None:
        self._task = None
        if self._owns_ray:
            import ray

            ray.shutdown()
            self._owns_ray = False
            if self._fixed_workers is None:
                self._workers = None

    def __repr__(self) -> str:
        return (f"RayExecutor(workers={self._workers if self._workers is not None else 'auto'}, "
                f"address={self.address!r}, num_cpus={self.num_cpus}, num_gpus={self.num_gpus}, "
                f"max_retries={self.max_retries}, threads={self.threads})")


# -- by name -----------------------------------------------------------------------------------------
#: the name :func:`create_executor` resolves with :func:`resolve_executor_choice`
AUTO = "auto"


def available_executors() -> list[str]:
    """Names accepted by :func:`create_executor` (the registered executors, sorted; besides them ``"auto"``)."""
    return executor_registry.names()


def main_is_import_safe() -> bool:
    """Whether worker processes can start from this program without re-running it: ``__main__`` is
    interactive (no file: a shell, ``python -c``, a notebook), runs as a module (``python -m ...``), or is a
    script whose source has an ``if __name__ == "__main__":`` guard (every console script, e.g.
    ``nas-engine``).  Worker processes (``forkserver``/``spawn``) import ``__main__`` again; an unguarded
    script would start its search again in every worker."""
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        return True
    path = getattr(main, "__file__", None)
    if path is None:
        return True
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            source = f.read(1_000_000)
    except OSError:
        return False
    return re.search(r"""^if\s+__name__\s*==\s*['"]__main__['"]\s*:""", source, re.MULTILINE) is not None


def auto_executor(workers: int | None = None, device: str = "auto", plugins: Iterable[Any] = (),
                  trains: bool = True) -> tuple[str, int | None]:
    """The ``"auto"`` choice, ``(executor name, workers)``: the one rule that ``Search(executor=None)`` and
    ``nas-engine search`` share.

    ``workers=1`` is the one-worker (reproducible) mode: inline.  Otherwise
    local worker processes (``workers``, default one per usable CPU) when
    several CPUs are usable (or ``workers`` > 1 is asked for), the candidates
    train on the CPU, no plugin in ``plugins`` is defined in ``__main__`` (a
    worker finds a class by its module, and what ``__main__`` holds in a
    worker depends on how the program was started: a plugin that should run
    in worker processes lives in an importable module) and worker processes
    can start safely (:func:`main_is_import_safe`); else inline.  Candidates
    on a GPU stay in this process (one device), and so does a search in which
    nothing trains (``trains=False``: a tabular or data-free search, where
    worker processes would only cost).
    """
    from .training import resolve_device

    if workers == 1 or not trains:
        return "inline", None
    try:
        on_cpu = resolve_device(device).type == "cpu"
    except ValueError:  # e.g. device="cuda" without a GPU: the search reports it
        on_cpu = False
    in_main = any(type(p).__module__ == "__main__" for p in plugins)
    n = workers if workers is not None else cpu_count()
    if n > 1 and on_cpu and not in_main and main_is_import_safe():
        return "processes", n
    return "inline", None


def resolve_executor_choice(executor: str | None = None, workers: int | None = None, device: Any = "auto",
                            plugins: Iterable[Any] = ()) -> tuple[str, int | None]:
    """``(executor name, workers)``: a name other than ``"auto"`` is kept with ``workers`` as given; None and
    ``"auto"`` are :func:`auto_executor`'s choice."""
    if executor is not None and executor != AUTO:
        return executor, workers
    return auto_executor(workers, device, plugins)


def create_executor(executor: Executor | str | None = None, workers: int | None = None, *, device: Any = "auto",
                    plugins: Iterable[Any] = (), trains: bool = True, **kwargs) -> Executor:
    """An executor from a name (``"auto"``, ``"inline"``, ``"processes"``, ``"ray"``, any registered one) or an
    instance.

    ``None`` and ``"auto"`` are :func:`auto_executor`'s choice for ``workers``,
    the candidates' ``device``, the search's ``plugins`` and whether it ``trains``.  ``workers`` and
    ``kwargs`` go to the executor's constructor (an instance is returned as it
    is and takes neither).
    """
    if isinstance(executor, Executor):
        if workers is not None or kwargs:
            raise ValueError(f"give workers and other options to the executor's constructor, not with an "
                             f"instance: {executor!r}")
        return executor
    name = "auto" if executor is None else executor
    if not isinstance(name, str):
        raise TypeError(f"executor must be a name ('auto', {', '.join(map(repr, available_executors()))}) or an "
                        f"Executor instance, got {type(executor).__name__}: {executor!r}")
    if name == AUTO:
        name, workers = auto_executor(workers, device, plugins, trains)
    if name not in executor_registry:
        raise ValueError(f"unknown executor {name!r}; available: 'auto', {', '.join(map(repr, available_executors()))}")
    if workers is not None:
        kwargs["workers"] = workers
    return executor_registry.create(name, **kwargs)
