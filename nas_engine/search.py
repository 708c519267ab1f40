"""The search loop: ask -> estimate -> tell, with budgets, a store, resume and parallel workers.

Execution: ``executor=`` chooses where candidates are evaluated (``"auto"``,
the default: the library's one rule, :func:`~nas_engine.executors.auto_executor`,
which ``nas-engine search`` uses too -- local worker processes, one per CPU,
when several CPUs are usable and the candidates train on the CPU, else this
process; ``"inline"``: one at a time in this process; ``"processes"``: local
worker processes; ``"ray"``: Ray tasks; or an
:class:`~nas_engine.executors.Executor` instance) and ``workers=`` how many at
once (``workers=1``: the one-worker mode).  Worker processes import the main
module again: a script that runs a search with worker processes needs the
usual ``if __name__ == "__main__":`` guard (without one, "auto" stays in this
process).  A tabular or data-free search (nothing trains) runs inline.  The loop is asynchronous: it
keeps up to ``workers`` candidates in flight, asks the strategy for another
whenever one is free and tells it each result as it completes; the strategy
stays in this process.  ``history`` is in completion order (``index`` is the
position).  A strategy whose ``ask`` returns nothing while evaluations are in
flight is asked again after the next result; with nothing in flight, an empty
``ask`` ends the search.  An evaluations budget counts the candidates in
flight, so it is never overshot; epochs and cost seconds are checked before a
candidate starts, so the candidates in flight (at most ``workers``) may run
past them.  A wall-clock ``Budget(seconds=...)`` also ends the candidates in
flight: each evaluation gets the deadline, its training stops at the next
minibatch boundary (:func:`~nas_engine.training.check_limits`), and the
candidate is *interrupted* -- not recorded, pending in the store, run again by
a resumed search with a larger budget (a :class:`BudgetWarning` names it).  A
plugin that blocks without training is stopped :data:`STOP_GRACE_SECONDS`
after the deadline in a worker process or Ray task (its worker is killed);
the inline executor cannot stop it (the search ends when it returns, and what
it returns is recorded).  ``evaluation_seconds`` is the time limit of one
evaluation, part of the stored configuration: training past it stops at a
minibatch boundary and the candidate fails with ``"time limit: ..."`` (so does
one that returns after it without training, or blocks past it plus the grace
in a worker); the search goes on.

Resources: before anything trains, a search refuses worker processes beyond
the CPUs this process may use (for candidates on the CPU) and a candidate
whose memory estimate, times the workers, exceeds the memory available
(:meth:`Search.check_resources`, :mod:`nas_engine.memory`).

An architecture proposed a second time is not trained again: its earlier
result is reused (same seed, same result) and recorded with ``cached=True`` and
zero cost, also when the first proposal is still in flight (the second waits
for it, holding one of the ``workers`` places); it still counts as an
evaluation (a query) against the budget.

Determinism: the strategy's RNG derives from the search seed, and every
evaluation's torch seed from (search seed, architecture string) and nothing
else.  What is guaranteed, on one machine (same device and software):

* One worker (inline, or any executor with ``workers=1``): the same ``Search``
  gives the same history, and a stored search that is interrupted and resumed
  gives the same history as an uninterrupted one.
* Strategies whose proposals do not depend on results (``fixed``, ``random``)
  under an evaluations budget: every executor and number of workers evaluates
  the same proposals and gives the same multiset of (architecture, score,
  status, cached) -- bit-identical scores -- provided the evaluations run with
  the same number of torch threads (``executor.threads``; training's float
  reductions depend on it: ``InlineExecutor(threads=1)``,
  ``ProcessExecutor(workers=2, threads=1)`` and ``RayExecutor(workers=2,
  num_cpus=1)`` agree).  Only the order of ``history`` may differ.  Budgets in
  epochs or seconds stop at a point that depends on timing.
* Strategies that learn from results (regularized evolution, BO) with more
  than one worker: what they propose depends on the order in which results
  complete, i.e. on timing, so the trajectory is not reproducible; each single
  architecture still always gets the same score.

Faults: a candidate that cannot be evaluated is recorded with
``status="failed"``, score ``-inf`` and a ``reason``, and the search goes on:

* training diverged (NaN/inf loss) or ran out of memory
  (:class:`~nas_engine.training.TrainingFailed`): ``"diverged: ..."``,
  ``"out-of-memory: ..."``, with the epochs completed as its curve;
  ``MemoryError`` or an allocator failure elsewhere (e.g. under
  ``ProcessExecutor(max_memory_mb=...)``): ``"out-of-memory: ..."``;
* a non-finite score: ``"non-finite score nan"``;
* output that is not a valid estimate (a score that is not a real number, a
  NaN or negative cost or epoch count, a curve that is not a
  ``LearningCurve``, an ``info`` JSON cannot hold): ``"invalid output: ..."``,
  charged the measured time (numpy scalars and arrays are converted, not
  refused; see :func:`check_estimate`); a result the store still cannot hold:
  ``"unstorable result: ..."``;
* any other ``Exception``: ``"<type>: <message>"``, with an
  :class:`EvaluationWarning` carrying the traceback.  Such errors are usually
  bugs or a broken setup, not bad candidates: if the first 3 candidates a run
  evaluates (or all of them, when it evaluates fewer) fail with exceptions of
  the same type (invalid output counts as :class:`InvalidOutput`), the search
  raises that exception (after recording them);
* its worker process or Ray task died (killed, crashed, node lost): run again
  up to ``executor.max_retries`` times (default 2; a retried candidate's
  ``info["attempts"]`` says how many it took), then
  ``"worker died: ... (after N attempts)"``.

Failed results are final, like any other: a repeated proposal and a resumed
search reuse them.  Ctrl-C (``KeyboardInterrupt``; ``nas-engine`` turns SIGTERM
into one too) cancels the evaluations in flight, stops the workers and propagates; everything finished is in the
store.  The store survives ``kill -9`` of this process too: each evaluation
and the state after its ``tell`` are one transaction
(:mod:`nas_engine.store`), and a resumed search re-runs the candidates that
were in flight.  While it runs, the search holds the store's lock: a second
search on the same store is refused (:class:`~nas_engine.store.StoreLockedError`).

Set-up cost: a strategy's ``setup`` may do work the search is charged for --
a one-shot strategy trains its supernet there (checkpointed in the store, so a
resumed search reloads it).  Its ``setup_seconds`` start the search's clock (so
a ``Budget(seconds=...)`` includes them), count towards ``Budget(cost_seconds=...)``,
are reported as ``SearchResult.setup_seconds``, added to ``SearchResult.total_cost_seconds``
and kept in the store's state.  The store is opened before ``setup``; checkpoint
files the strategy keeps there are referenced from the database with their
checksums after it.
Worker processes see ``strategy.for_workers()`` as ``Context.strategy`` (for a
one-shot strategy: its inherited weights), the inline executor the strategy
itself.

Tabular mode: with ``table=`` (a :class:`~nas_engine.benchmarks.table.CurveTable`)
the estimators read recorded learning curves from the table instead of
training, and each evaluation is charged the table's recorded seconds.  The
strategy, the space and the estimator are the same as in a live search;
``data=None`` is allowed since nothing is trained.  Restrict the space to the
table's architectures with ``table.restrict(space)`` when the table does not
hold the whole space.
"""

from __future__ import annotations

import math
import pickle
import time
import traceback
import warnings
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .benchmarks.table import CurveTable
from .budget import Budget
from .config import PluginContractError, check_float
from .context import Context
from .curves import LearningCurve
from .data import Dataset, load_dataset
from .estimators.base import Estimate, Estimator
from .executors import Executor, WorkerDied, create_executor
from .registry import estimators as estimator_registry
from .registry import spaces as space_registry
from .registry import strategies as strategy_registry
from .results import WORST_SCORE, Evaluation, Outcome, SearchResult, jsonable, upgrade_config
from .safeload import checkpoint_manifests
from .spaces.base import Architecture, SearchSpace
from .spaces.restricted import RestrictedSpace
from .store import RunStore, StoreError
from .strategies.base import Strategy
from .training import DEFAULT_PRESET, Protocol, TrainingFailed, TrainingInterrupted, evaluation_limits, is_out_of_memory

__all__ = ["Search", "SearchResult", "Budget", "Evaluation", "Outcome", "EvaluationWarning", "BudgetWarning",
           "evaluate_candidate", "check_estimate", "InvalidOutput", "INTERRUPTED", "STOP_GRACE_SECONDS"]

#: a run raises when its first this-many evaluations fail with the same (non-training) exception type
SYSTEMATIC_FAILURES = 3

#: the status of an outcome whose training the search's wall-clock budget (or a stop) ended: not a result
INTERRUPTED = "interrupted"

#: seconds past the search's deadline, or past a candidate's ``evaluation_seconds``, after which the loop stops
#: a worker process (or Ray task) that has not returned -- one that blocks without training, which cannot stop
#: at a minibatch boundary (the inline executor cannot be stopped: see the module docstring)
STOP_GRACE_SECONDS = 5.0


class EvaluationWarning(UserWarning):
    """An evaluation raised an unexpected exception (the message holds its traceback); it is recorded as failed."""


class BudgetWarning(UserWarning):
    """The search's wall-clock budget ended candidates in training: they are pending, not recorded."""


class RemoteTraceback(Exception):
    """The formatted traceback of an exception raised in a worker process (set as its ``__cause__``)."""

    def __str__(self) -> str:
        return "\n" + self.args[0]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _picklable(exc: Exception) -> Exception:
    """``exc``, or a ``RuntimeError`` with its description where it cannot travel between processes."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(_describe(exc))
    return exc


def evaluate_candidate(space: SearchSpace, estimator: Estimator, ctx: Context, arch: Architecture,
                       deadline: float | None = None, evaluation_seconds: float | None = None) -> Outcome:
    """Evaluate one candidate: the task every executor runs (module level, so that workers can import it).

    Never raises an ``Exception``: failures become an :class:`Outcome` with
    ``status="failed"`` (see the module docstring for the reasons), and so does
    an estimate that is not valid output (:func:`check_estimate`).
    ``deadline`` (``time.time()`` at which the search's wall-clock budget runs
    out) and ``evaluation_seconds`` (the candidate's own time limit) bound its
    training (:func:`~nas_engine.training.evaluation_limits`): past the
    deadline the outcome has ``status="interrupted"`` (not a result: the search
    runs it again when resumed); past its own limit it is failed with the
    reason ``"time limit: ..."`` (also when an estimator that does not train
    returns after its limit).  ``KeyboardInterrupt`` and other
    ``BaseException`` propagate.
    """
    t0 = time.perf_counter()
    try:
        with evaluation_limits(deadline, evaluation_seconds):
            est = estimator.estimate(arch, ctx)
    except TrainingInterrupted as exc:
        return Outcome(WORST_SCORE, time.perf_counter() - t0, status=INTERRUPTED, reason=f"interrupted: {exc}")
    except TrainingFailed as exc:
        curve = exc.curve
        return Outcome(WORST_SCORE, time.perf_counter() - t0, float(curve.epochs) if curve is not None else 0.0,
                       status="failed", reason=f"{exc.reason}: {exc}", curve=curve)
    except Exception as exc:
        if is_out_of_memory(exc):
            return Outcome(WORST_SCORE, time.perf_counter() - t0, status="failed",
                           reason=f"out-of-memory: {_describe(exc)}")
        return Outcome(WORST_SCORE, time.perf_counter() - t0, status="failed", reason=_describe(exc),
                       error=_picklable(exc), traceback=traceback.format_exc())
    seconds = time.perf_counter() - t0
    if evaluation_seconds is not None and seconds > evaluation_seconds:
        return Outcome(WORST_SCORE, seconds, status="failed",
                       reason=f"time limit: the evaluation took {seconds:.3g} s, more than evaluation_seconds="
                              f"{evaluation_seconds:g}")
    return check_estimate(est, seconds)


class InvalidOutput(ValueError):
    """An estimator returned something that is not a valid estimate (the evaluation is recorded as failed)."""


def _real(x: Any) -> float | None:
    """``x`` as a float if it is a real number (Python or numpy, a 0-d array included; not a bool), else None."""
    if isinstance(x, bool):
        return None
    if isinstance(x, np.ndarray) and x.ndim == 0:
        x = x[()]
    if isinstance(x, (int, float, np.integer, np.floating)):
        try:
            return float(x)
        except OverflowError:  # an int beyond a 64-bit float (10**400): not a value a search can compare
            return None
    return None


def _show(x: Any) -> str:
    text = repr(x)
    return f"{type(x).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def check_estimate(est: Any, seconds: float) -> Outcome:
    """The :class:`Outcome` of an estimator's return value, validated and converted to plain data.

    A score that is not a real number, a cost or an epoch count that is not a
    finite number >= 0, a curve that is not a
    :class:`~nas_engine.curves.LearningCurve` or an ``info`` that JSON cannot
    hold (after numpy scalars and arrays are converted, see
    :func:`~nas_engine.results.jsonable`) make a failed outcome whose reason
    says so, charged the measured ``seconds`` (its ``error`` is an
    :class:`InvalidOutput`, so an estimator that always returns garbage stops
    the search after its first evaluations, like any systematic error).  A
    finite score of valid output is ``"ok"``; a non-finite one is a failure
    (``"non-finite score nan"``), as a diverged training is.
    """
    def invalid(reason: str, **kw) -> Outcome:
        return Outcome(WORST_SCORE, seconds, kw.pop("epochs", 0.0), status="failed", reason=reason,
                       error=InvalidOutput(reason), **kw)

    if not isinstance(est, Estimate):
        return invalid(f"invalid output: the estimator returned {_show(est)}, expected an Estimate")
    cost, epochs = _real(est.cost_seconds), _real(est.epochs)
    if cost is None or not math.isfinite(cost) or cost < 0:
        return invalid(f"invalid output: cost_seconds must be a finite number >= 0, got {_show(est.cost_seconds)}")
    if epochs is None or not math.isfinite(epochs) or epochs < 0:
        return invalid(f"invalid output: epochs must be a finite number >= 0, got {_show(est.epochs)}", )
    if est.curve is not None and not isinstance(est.curve, LearningCurve):
        return invalid(f"invalid output: curve must be a LearningCurve or None, got {_show(est.curve)}",
                       epochs=epochs)
    if not isinstance(est.info, dict):
        return invalid(f"invalid output: info must be a dict, got {_show(est.info)}", epochs=epochs)
    try:
        info = jsonable(est.info, "info")
        if est.curve is not None:
            jsonable(est.curve.to_dict(), "curve")  # raises for what JSON cannot hold
    except (TypeError, ValueError) as exc:
        return invalid(f"invalid output: {exc}", epochs=epochs, curve=None)
    score = _real(est.score)
    if score is None:
        return invalid(f"invalid output: score must be a real number that fits a 64-bit float, got "
                       f"{_show(est.score)}", epochs=epochs,
                       curve=est.curve, info=info)
    if not math.isfinite(score):
        return Outcome(WORST_SCORE, cost, epochs, status="failed", reason=f"non-finite score {score}",
                       curve=est.curve, info=info)
    return Outcome(score, cost, epochs, curve=est.curve, info=info)


def _resolve(obj, registry, kind: str, base: type):
    if isinstance(obj, str):
        return registry.create(obj)
    if isinstance(obj, base):
        return obj
    raise TypeError(f"{kind} must be a registered name (str) or a {base.__name__} instance, "
                    f"got {type(obj).__name__}: {obj!r}")


class Search:
    """A neural architecture search: ``Search(strategy, space, estimator, ...).run()``.

    ``strategy``, ``space`` and ``estimator`` are instances or registry names.
    ``data`` is a dataset name for :func:`~nas_engine.data.load_dataset` or a
    :class:`~nas_engine.data.Dataset`; ``protocol`` the training recipe and
    network size (default: ``Protocol.preset("small")``, the CPU-scale recipe
    at the space's small size; ``Protocol.preset("nb201")`` is the benchmark's
    recipe); ``budget`` the limits (default: ``Budget(evaluations=20)``,
    :data:`~nas_engine.budget.DEFAULT_EVALUATIONS`);
    ``store`` a directory for durable results and resume; ``progress`` a tqdm
    bar over evaluations (``"all"``: also one per candidate's training, inline only);
    ``table`` a :class:`~nas_engine.benchmarks.table.CurveTable` for a tabular
    search; ``executor`` (``"auto"``, the default, ``"inline"``,
    ``"processes"``, ``"ray"`` or an :class:`~nas_engine.executors.Executor`)
    and ``workers`` where and how many candidates are evaluated at once (see
    the module docstring); ``evaluation_seconds`` the time limit of one
    evaluation (None: none; stored with the configuration).  ``nas-engine search`` is this class with the same
    defaults.
    """

    def __init__(
        self,
        strategy: Strategy | str,
        space: SearchSpace | str,
        estimator: Estimator | str,
        *,
        data: Dataset | str | None = "digits",
        protocol: Protocol | None = None,
        budget: Budget | None = None,
        seed: int = 0,
        store: str | None = None,
        executor: Executor | str | None = None,
        workers: int | None = None,
        progress: bool | str = True,
        table: CurveTable | None = None,
        evaluation_seconds: float | None = None,
    ):
        self.strategy = _resolve(strategy, strategy_registry, "strategy", Strategy)
        self.space = _resolve(space, space_registry, "space", SearchSpace)
        self.estimator = _resolve(estimator, estimator_registry, "estimator", Estimator)
        if isinstance(data, str):
            data = load_dataset(data)
        if data is not None and not isinstance(data, Dataset):
            raise TypeError(f"data must be a dataset name, a Dataset or None, got {type(data).__name__}")
        self.data = data
        protocol = protocol if protocol is not None else Protocol.preset(DEFAULT_PRESET)
        if not isinstance(protocol, Protocol):
            raise TypeError(f"protocol must be a Protocol, got {type(protocol).__name__}")
        self.protocol = protocol.resolved(self.space)  # the size spelled out and checked by the space
        self.budget = budget if budget is not None else Budget.default()
        if not isinstance(self.budget, Budget):
            raise TypeError(f"budget must be a Budget, got {type(self.budget).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = seed
        self.evaluation_seconds = check_float(evaluation_seconds, "evaluation_seconds", low=0, low_open=True,
                                              none=True, who="Search")
        self.executor = create_executor(executor, workers, device=self.protocol.device,
                                        plugins=(self.strategy, self.space, self.estimator),
                                        trains=table is None and data is not None)
        self._policy_threads: int | None = None
        self.store = RunStore(store) if store is not None else None
        if progress not in (True, False, "all"):
            raise ValueError(f"progress must be True, False or 'all', got {progress!r}")
        self.progress = bool(progress)
        if table is not None:
            if not isinstance(table, CurveTable):
                raise TypeError(f"table must be a CurveTable or None, got {type(table).__name__}: {table!r}")
            if table.space_name != self.space.name:
                raise ValueError(f"{table!r} holds architectures of space {table.space_name!r}, "
                                 f"but the search space is {self.space.name!r}")
        self.table = table
        self.ctx = Context(space=self.space, data=self.data, protocol=self.protocol, seed=seed,
                           budget=self.budget, progress=progress == "all", strategy=self.strategy, table=table,
                           store_dir=str(self.store.path) if self.store is not None else None)
        self.estimator.validate_context(self.ctx)
        if table is None and self.data is not None:
            self.check_resources()

    def check_resources(self) -> None:
        """Refuse, before anything trains, what this machine cannot run (a one-line ``ValueError``).

        Worker processes for candidates that train on the CPU: at most
        :func:`~nas_engine.threads.usable_cpus` (more only time-slice the
        same cores and multiply the memory; on a GPU more workers than CPUs are
        allowed, they mostly wait for the device).  Memory: the estimate of a
        candidate sampled with the search seed
        (:func:`~nas_engine.memory.estimate_memory`: parameters, gradients and
        optimiser state, activations at the batch size and resolution, the
        data), times the workers of a local executor (each worker process holds
        its own copy of the data), must fit in
        :func:`~nas_engine.memory.available_memory`
        (:class:`~nas_engine.memory.InsufficientMemory` otherwise); on a CUDA
        device the candidates and their data are checked against the device's
        free memory and the data copies against the host's.
        """
        from .memory import check_memory, estimate_memory, format_bytes, search_memory
        from .threads import check_workers
        from .training import resolve_device

        ex = self.executor
        on_cpu = resolve_device(self.protocol.device).type == "cpu"
        if ex.local and ex.remote and on_cpu:
            check_workers(ex.workers, f"{type(ex).__name__}: workers")
        if not ex.local:  # tasks on a cluster: their machines' memory is not this one's
            return
        try:
            arch = self.space.sample(np.random.default_rng(self.seed))
            estimate = estimate_memory(self.space, arch, self.data, self.protocol)
        except Exception:  # noqa: BLE001 - a space that cannot build shows when its candidates are evaluated
            return
        workers = ex.workers if ex.remote else 1
        what = (f"the search (one candidate at batch {self.protocol.batch_size}: {estimate.describe()}"
                + (f"; {workers} worker processes, each with its own copy of the data)" if ex.remote else ")"))
        if on_cpu:
            check_memory(search_memory(estimate, workers, processes=ex.remote), what)
            return
        # on a GPU: the candidates and the data they train on are in device memory, the data also in this host's
        check_memory(estimate.data * (1 + workers if ex.remote else 1), f"the data ({format_bytes(estimate.data)} "
                     f"per process, {1 + workers if ex.remote else 1} processes)")
        device = resolve_device(self.protocol.device)
        if device.type == "cuda":
            import torch

            free = torch.cuda.mem_get_info(device)[0]
            check_memory(workers * estimate.total, what, free,
                         source=f"free on {device} (torch.cuda.mem_get_info)")

    # -- configuration identity (for the store) ---------------------------------
    def config(self) -> dict[str, Any]:
        """What the search is, as stored with its results.

        A tabular search adds ``table`` (the table's fingerprint) and a search
        over a :class:`~nas_engine.benchmarks.table.RestrictedSpace` adds
        ``space_subset`` (the subset's fingerprint), so that a store never mixes
        live and tabular runs or different subsets; ``evaluation_seconds`` is
        stored when given (it decides which candidates fail); the keys are absent
        otherwise, so stores of live searches over whole spaces are unchanged.
        """
        extra: dict[str, Any] = {}
        if self.table is not None:
            extra["table"] = self.table.fingerprint()
        else:  # a live search: how its evaluations run changes their floats
            extra["execution"] = self.execution()
        if isinstance(self.space, RestrictedSpace):
            extra["space_subset"] = self.space.fingerprint()
        if self.evaluation_seconds is not None:
            extra["evaluation_seconds"] = self.evaluation_seconds
        return {
            "strategy": self.strategy.to_config(),
            "space": self.space.to_config(),
            "estimator": self.estimator.to_config(),
            "data": self.data.fingerprint() if self.data is not None else None,
            "protocol": {k: v for k, v in self.protocol.to_dict().items() if k != "device"},
            "seed": self.seed,
            **extra,
        }

    def execution(self) -> dict[str, Any]:
        """What of the execution changes a live evaluation's floats: the torch threads of each evaluation
        (:attr:`threads`) and the kind of device (``cpu``, ``cuda``, ``mps``).  Part of the stored
        configuration."""
        from .training import resolve_device

        return {"threads": self.threads, "device": resolve_device(self.protocol.device).type}

    @property
    def threads(self) -> int:
        """The torch threads of each evaluation: the executor's ``threads`` when given, else the engine's
        policy (:func:`nas_engine.threads.policy_threads`) for the executor's workers and the size of a
        typical candidate (one sampled with the search seed, at the protocol's size and batch)."""
        if not self.executor.threads_from_policy:
            return int(self.executor.threads)
        if self._policy_threads is None:
            from .threads import policy_threads
            from .training import resolve_device

            device = resolve_device(self.protocol.device).type
            gflop = self._gflop_per_batch() if device == "cpu" and self.table is None else None
            self._policy_threads = policy_threads(self.executor.workers, gflop, device=device)
        return self._policy_threads

    def _gflop_per_batch(self) -> float | None:
        """Forward GFLOPs of one training minibatch of a candidate sampled with the search seed (None when the
        search has no data or the space cannot build it: the policy then takes one thread)."""
        if self.data is None:
            return None
        from .costs import count_flops
        from .training import build_model

        try:
            arch = self.space.sample(np.random.default_rng(self.seed))
            model = build_model(self.space, arch, self.data, self.protocol, self.seed)
            flops = count_flops(model, self.data.x_train[:1].float())
        except Exception:  # noqa: BLE001 - a space that cannot build shows when its candidates are evaluated
            return None
        return flops * self.protocol.batch_size / 1e9

    # -- the loop -----------------------------------------------------------------
    def run(self) -> SearchResult:
        """Run the search to its budget (or until the strategy stops proposing); see the module docstring."""
        if self.store is None:
            return self._run()
        # before setup: a strategy may keep files there (a supernet); a store of an earlier version's words converts
        self.store.open(self.config(), upgrade=lambda old: upgrade_config(old, self.space))
        try:
            return self._run()
        finally:
            self.store.close()

    def _run(self) -> SearchResult:
        self.strategy.setup(self.space, self.ctx)
        if self.store is not None:  # files a strategy keeps in the store (a supernet), with their checksums
            for m in checkpoint_manifests(self.store.path):
                self.store.put_artifact(m["file"], m["sha256"], m["size"], {"fingerprint": m["fingerprint"]})
        history: list[Evaluation] = []
        pending: deque[Architecture] = deque()
        elapsed_before = None
        if self.store is not None:
            history, pending, elapsed_before = self._restore()
        if elapsed_before is None:  # a new search: its clock starts with what setup was charged
            elapsed_before = float(self.strategy.setup_seconds)
        return _Run(self, history, pending, elapsed_before).run()

    def _restore(self) -> tuple[list[Evaluation], deque, float | None]:
        """Reload history and strategy state from the store: they were committed together, so they agree."""
        records, state = self.store.load()
        try:
            history = [Evaluation.from_record(r, self.space) for r in records]
        except (ValueError, TypeError) as exc:
            raise StoreError(f"store {str(self.store.path)!r}: {exc}") from None
        if state is None:
            return history, deque(), None
        self.strategy.load_state_dict(state["strategy"])
        pending = deque(self.space.from_string(s) for s in state["pending"])
        return history, pending, float(state["elapsed"])


#: proposals in a row that repeat an evaluated (or running) architecture after which a search ends: a strategy
#: that only repeats would otherwise never end a search limited by epochs, seconds or cost
REPEAT_LIMIT = 1000


def check_proposals(strategy: Strategy, space: SearchSpace, proposed: Any) -> list[Architecture]:
    """``strategy.ask()``'s output, checked before anything is stored: a list (or tuple) of architectures of
    ``space``; else a one-line :class:`~nas_engine.config.PluginContractError` naming what came back."""
    who = f"strategy {strategy.name!r}"
    if not isinstance(proposed, (list, tuple)):
        raise PluginContractError(f"{who}: ask() must return a list of architectures (empty when it has none "
                                  f"to propose now), got {_show(proposed)}")
    for a in proposed:
        if not isinstance(a, Architecture):
            raise PluginContractError(f"{who}: ask() returned a list holding {_show(a)}; expected Architecture "
                                      "objects (space.sample(rng), space.from_string(s), space.mutate(a, rng))")
        try:
            space.check_architecture(a)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{who}: ask() proposed {a.string!r}, not an architecture of the space "
                            f"{space.name!r}: {exc}") from None
    return list(proposed)


@dataclass
class _InFlight:
    """A proposal being evaluated (``handle``) or waiting for an identical one in flight (``handle=None``)."""

    arch: Architecture
    handle: Any = None
    attempts: int = 1
    started: float = 0.0  # time.monotonic() at its (last) submission


class _Run:
    """One call of :meth:`Search.run`: the asynchronous ask / evaluate / tell loop and its bookkeeping.

    Proposals are either ``queued`` (asked, not started) or ``running`` (in
    flight, in proposal order); both are the store state's ``pending`` list,
    which a resumed search starts again.  The state is written after every
    ``ask`` and every ``tell``, one record at a time.
    """

    def __init__(self, search: Search, history: list[Evaluation], queued: deque, elapsed_before: float):
        self.search, self.strategy, self.store = search, search.strategy, search.store
        self.executor: Executor = search.executor
        self.history = history
        self.queued = queued
        self.running: list[_InFlight] = []
        self.done = {e.arch.string: e for e in history if not e.cached}
        self.epochs_used = math.fsum(e.epochs for e in history)
        self.cost_used = math.fsum([float(self.strategy.setup_seconds), *(e.cost_seconds for e in history)])
        self.elapsed_before = elapsed_before
        self.t_start = time.perf_counter()
        self.first_outcomes: list[Outcome] = []  # of the first evaluations this run trains
        # proposals in a row answered by an earlier evaluation (a resumed search counts its history's tail)
        self.repeats = next((i for i, e in enumerate(reversed(history)) if not e.cached), len(history))
        self.stalled = False
        self.bar = None
        self.interrupted: list[_InFlight] = []  # ended by the wall-clock budget: pending again, not recorded
        self.deadline: float | None = None  # time.time() at which Budget(seconds=...) runs out (set by run)
        self.deadline_monotonic: float | None = None

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.t_start

    def state(self) -> dict[str, Any]:
        return {"n_records": len(self.history), "strategy": self.strategy.state_dict(),
                "pending": [r.arch.string for r in self.interrupted + self.running] + [a.string for a in self.queued],
                "elapsed": self.elapsed(), "setup_seconds": float(self.strategy.setup_seconds)}

    def save_state(self) -> None:
        if self.store is not None:
            self.store.write_state(self.state())

    def run(self) -> SearchResult:
        search = self.search
        if search.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=search.budget.evaluations, initial=len(self.history), desc="search", unit="arch")
        try:
            self.executor.use_policy_threads(search.threads)  # a no-op when the executor was given threads
            self.executor.start()
            ctx = (replace(search.ctx, strategy=self.strategy.for_workers(), progress=False)
                   if self.executor.remote else search.ctx)
            self.task_args = tuple(self.executor.share(x) for x in (search.space, search.estimator, ctx))
            if search.budget.seconds is not None:  # the deadline every evaluation's training stops at
                remaining = search.budget.seconds - self.elapsed()
                self.deadline, self.deadline_monotonic = time.time() + remaining, time.monotonic() + remaining
            # appended to each task only when there is a limit, so a search without one submits what it always did
            self.limits = (self.deadline, search.evaluation_seconds) \
                if self.deadline is not None or search.evaluation_seconds is not None else ()
            self.save_state()
            while True:
                self.fill()
                if not self.running:
                    break
                finished = self.wait([r.handle for r in self.running if r.handle is not None])
                for r in [r for r in self.running if r.handle is not None and r.handle in finished]:
                    self.complete(r)
            if self.interrupted:
                self.save_state()
                warnings.warn(f"the wall-clock budget (Budget(seconds={search.budget.seconds:g})) ended "
                              f"{len(self.interrupted)} candidate(s) in training "
                              f"({', '.join(r.arch.string for r in self.interrupted)}): not recorded; a resumed "
                              "search with a larger budget runs them again", BudgetWarning, stacklevel=2)
            if 0 < len(self.first_outcomes) < SYSTEMATIC_FAILURES:  # a short run: all it evaluated
                self.raise_if_systematic()
        except BaseException:
            self.executor.cancel([r.handle for r in self.running if r.handle is not None])
            raise
        finally:
            self.executor.shutdown()
            if self.bar is not None:
                self.bar.close()
        return SearchResult(history=self.history, space=search.space, seconds=self.elapsed(),
                            setup_seconds=float(self.strategy.setup_seconds), config=search.config())

    def fill(self) -> None:
        """Start proposals until every worker is busy, the budget is spent or the strategy has none now."""
        budget = self.search.budget
        while (len(self.running) < self.executor.workers
               and not budget.exhausted(len(self.history) + len(self.running), self.epochs_used, self.elapsed(),
                                             self.cost_used)):
            if self.repeats >= REPEAT_LIMIT:
                if not self.stalled:
                    self.stalled = True
                    warnings.warn(f"strategy {self.strategy.name!r} proposed only architectures already evaluated "
                                  f"for {self.repeats} proposals in a row; ending the search (repeats cost no "
                                  "epochs or seconds, so no other budget would end it)", EvaluationWarning,
                                  stacklevel=3)
                return
            if not self.queued:
                proposed = check_proposals(self.strategy, self.search.space, self.strategy.ask())
                if not proposed:
                    return
                self.queued.extend(proposed)
                self.save_state()
            arch = self.queued.popleft()
            prev = self.done.get(arch.string)
            if prev is not None:
                self.repeats += 1
                self.record(self.cached(arch, prev))
            elif any(r.arch == arch for r in self.running):
                self.repeats += 1
                self.running.append(_InFlight(arch))  # takes the result of its twin in flight
            else:
                self.repeats = 0
                self.running.append(_InFlight(arch, self.submit(arch), started=time.monotonic()))

    def submit(self, arch: Architecture) -> Any:
        return self.executor.submit(evaluate_candidate, *self.task_args, arch, *self.limits)

    def wait(self, handles: list[Any]) -> list[Any]:
        """The executor's ``wait``; with a deadline or a time limit and tasks outside this process, a wait that
        ends :data:`STOP_GRACE_SECONDS` after them, stopping the tasks still running past them."""
        if not self.executor.remote or not self.limits:
            return self.executor.wait(handles)
        grace, limit = STOP_GRACE_SECONDS, self.search.evaluation_seconds
        ends = [r.started + limit + grace for r in self.running if r.handle is not None and limit is not None]
        if self.deadline_monotonic is not None:
            ends.append(self.deadline_monotonic + grace)
        finished = self.executor.wait(handles, timeout=max(0.0, min(ends) - time.monotonic()))
        if not finished:
            self.stop_overdue()
        return finished

    def stop_overdue(self) -> None:
        """Stop the tasks that run past the deadline or their time limit by more than the grace period (a
        plugin that blocks without training): interrupted, or failed with ``"time limit: ..."``."""
        now, grace, limit = time.monotonic(), STOP_GRACE_SECONDS, self.search.evaluation_seconds
        for r in [r for r in self.running if r.handle is not None]:
            if self.deadline_monotonic is not None and now >= self.deadline_monotonic + grace:
                self.executor.cancel([r.handle])
                self.complete(r, Outcome(WORST_SCORE, status=INTERRUPTED, reason="interrupted: stopped"))
            elif limit is not None and now >= r.started + limit + grace:
                self.executor.cancel([r.handle])
                self.complete(r, Outcome(WORST_SCORE, now - r.started, status="failed",
                                         reason=f"time limit: the evaluation ran past evaluation_seconds={limit:g} "
                                                f"and did not stop within {grace:g} s more; its worker was stopped"))

    def complete(self, r: _InFlight, out: Outcome | None = None) -> None:
        """Record the result of ``r`` (and of proposals waiting for it), or run it again if its worker died;
        an interrupted one (and proposals waiting for it) is pending again."""
        try:
            out = self.executor.result(r.handle) if out is None else out
        except WorkerDied as exc:
            if r.attempts <= self.executor.max_retries:
                warnings.warn(f"the worker evaluating {r.arch.string} died ({exc}); running it again "
                              f"(attempt {r.attempts + 1} of {self.executor.max_retries + 1})",
                              EvaluationWarning, stacklevel=2)
                r.attempts += 1
                r.handle, r.started = self.submit(r.arch), time.monotonic()
                return
            out = Outcome(WORST_SCORE, status="failed", reason=f"worker died: {exc} (after {r.attempts} attempts)")
        if out.status == INTERRUPTED:
            for w in [r, *(w for w in self.running if w.handle is None and w.arch == r.arch)]:
                self.running.remove(w)
                self.interrupted.append(replace(w, handle=None))
            return
        if out.error is not None:
            verb = "gave" if isinstance(out.error, InvalidOutput) else "raised"
            warnings.warn(f"evaluating {r.arch.string} {verb} {out.reason}; recorded as failed (score -inf)"
                          + (f"\n{out.traceback}" if out.traceback else ""), EvaluationWarning, stacklevel=2)
        self.running.remove(r)
        ev = Evaluation(index=len(self.history), arch=r.arch, score=out.score, cost_seconds=out.cost_seconds,
                        epochs=out.epochs, status=out.status, reason=out.reason, curve=out.curve,
                        seed=self.search.ctx.arch_seed(r.arch),
                        info=out.info if r.attempts == 1 else {**out.info, "attempts": r.attempts})
        self.record(ev)
        for twin in [w for w in self.running if w.handle is None and w.arch == r.arch]:
            self.running.remove(twin)
            self.record(self.cached(twin.arch, ev))
        if len(self.first_outcomes) < SYSTEMATIC_FAILURES:
            self.first_outcomes.append(out)
            if len(self.first_outcomes) == SYSTEMATIC_FAILURES:
                self.raise_if_systematic()

    def cached(self, arch: Architecture, prev: Evaluation) -> Evaluation:
        return Evaluation(index=len(self.history), arch=arch, score=prev.score, cost_seconds=0.0, epochs=0.0,
                          status=prev.status, reason=prev.reason, curve=prev.curve, seed=prev.seed,
                          cached=True, info=dict(prev.info))

    def record(self, ev: Evaluation) -> None:
        """Append ``ev`` to the history, tell the strategy, and store both in one transaction."""
        rec = None
        if self.store is not None:
            try:
                rec = ev.to_record()  # its info is plain JSON data (jsonable), or it raises
            except (TypeError, ValueError) as exc:  # e.g. an executor of its own returned odd data
                ev = replace(ev, score=WORST_SCORE, status="failed", info={}, curve=None,
                             reason=f"unstorable result: {exc}")
                rec = ev.to_record()
        self.history.append(ev)
        if not ev.cached:
            self.done[ev.arch.string] = ev
        self.epochs_used += ev.epochs
        self.cost_used += ev.cost_seconds
        self.strategy.tell([ev])
        if self.store is not None:
            self.store.record({**rec, "elapsed": self.elapsed()}, self.state())
        if self.bar is not None:
            self.bar.update(1)
            best = max((e.score for e in self.history if e.ok), default=math.nan)
            self.bar.set_postfix(best=f"{best:.4g}")

    def raise_if_systematic(self) -> None:
        """Raise the error of the first evaluations if they all failed with the same exception type."""
        first = self.first_outcomes[0]
        if first.error is None or any(o.error is None or type(o.error) is not type(first.error)
                                      for o in self.first_outcomes):
            return
        note = (f"the first {len(self.first_outcomes)} evaluation(s) of this search run all failed with "
                f"{type(first.error).__name__}: a bug or a broken setup rather than bad candidates "
                "(they are recorded as failed)")
        if hasattr(first.error, "add_note"):
            first.error.add_note(note)
        if first.error.__traceback__ is None and first.traceback:  # raised in a worker process
            raise first.error from RemoteTraceback(first.traceback)
        raise first.error
