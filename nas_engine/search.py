"""The search loop: ask -> estimate -> tell, with budgets, a store and resume.

Determinism: the strategy's RNG derives from the search seed, and every
evaluation's torch seed from (search seed, architecture string), so the same
``Search`` gives the same history on the same machine, and a stored search that
is interrupted and resumed gives the same history as an uninterrupted one.

An architecture proposed a second time is not trained again: its earlier
result is reused (same seed, same result) and recorded with ``cached=True`` and
zero cost; it still counts as an evaluation (a query) against the budget.

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
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .benchmarks.table import CurveTable, RestrictedSpace
from .curves import LearningCurve
from .data import Dataset, load_dataset
from .estimators.base import Context, Estimator
from .registry import estimators as estimator_registry
from .registry import spaces as space_registry
from .registry import strategies as strategy_registry
from .spaces.base import Architecture, SearchSpace
from .store import RunStore
from .strategies.base import Strategy
from .training import Protocol, TrainingFailed

__all__ = ["Search", "SearchResult", "Budget", "Evaluation"]

WORST_SCORE = -math.inf


@dataclass(frozen=True)
class Budget:
    """Limits of a search: any of evaluations, charged training epochs, wall seconds.

    The search stops before starting a candidate once a limit is reached (a
    candidate in progress is finished, so ``epochs``/``seconds`` may be exceeded
    by at most one candidate).
    """

    evaluations: int | None = None
    epochs: float | None = None
    seconds: float | None = None

    def __post_init__(self):
        if self.evaluations is None and self.epochs is None and self.seconds is None:
            raise ValueError("Budget needs at least one limit: evaluations=, epochs= or seconds=")
        for name in ("evaluations", "epochs", "seconds"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0):
                raise ValueError(f"Budget.{name} must be a positive number or None, got {v!r}")

    def exhausted(self, n_evaluations: int, epochs: float, seconds: float) -> bool:
        return ((self.evaluations is not None and n_evaluations >= self.evaluations)
                or (self.epochs is not None and epochs >= self.epochs)
                or (self.seconds is not None and seconds >= self.seconds))


@dataclass
class Evaluation:
    """One finished evaluation.  ``status`` is ``"ok"`` or ``"failed"`` (then ``reason`` says why)."""

    index: int
    arch: Architecture
    score: float
    cost_seconds: float
    epochs: float
    status: str = "ok"
    reason: str | None = None
    curve: LearningCurve | None = None
    seed: int = 0
    cached: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def arch_string(self) -> str:
        return self.arch.string

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_record(self) -> dict[str, Any]:
        return {
            "index": self.index, "arch": self.arch.string, "score": self.score,
            "cost_seconds": self.cost_seconds, "epochs": self.epochs, "status": self.status,
            "reason": self.reason, "seed": self.seed, "cached": self.cached, "info": self.info,
            "curve": self.curve.to_dict() if self.curve is not None else None,
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any], space: SearchSpace) -> Evaluation:
        curve = rec.get("curve")
        return cls(
            index=rec["index"], arch=space.from_string(rec["arch"]), score=float(rec["score"]),
            cost_seconds=float(rec["cost_seconds"]), epochs=float(rec["epochs"]), status=rec["status"],
            reason=rec.get("reason"), curve=LearningCurve.from_dict(curve) if curve else None,
            seed=int(rec["seed"]), cached=bool(rec.get("cached", False)), info=rec.get("info") or {},
        )


@dataclass
class SearchResult:
    """What a search produced: the full ``history`` and the ``best`` evaluation."""

    history: list[Evaluation]
    space: SearchSpace
    seconds: float = 0.0

    @property
    def best(self) -> Evaluation | None:
        """The successful evaluation with the highest score (earliest on ties), or None."""
        ok = [e for e in self.history if e.ok and not math.isnan(e.score)]
        return max(ok, key=lambda e: (e.score, -e.index)) if ok else None

    @property
    def best_arch(self) -> Architecture | None:
        return self.best.arch if self.best is not None else None

    @property
    def total_cost_seconds(self) -> float:
        return math.fsum(e.cost_seconds for e in self.history)

    def to_dataframe(self):
        import pandas as pd

        rows = [{
            "index": e.index, "arch": e.arch.string, "score": e.score, "status": e.status,
            "reason": e.reason, "cost_seconds": e.cost_seconds, "epochs": e.epochs,
            "seed": e.seed, "cached": e.cached,
        } for e in self.history]
        cols = ["index", "arch", "score", "status", "reason", "cost_seconds", "epochs", "seed", "cached"]
        return pd.DataFrame(rows, columns=cols)

    def __repr__(self) -> str:
        b = self.best
        return (f"SearchResult(evaluations={len(self.history)}, "
                f"best={b.arch.string if b else None!r}, best_score={b.score if b else None})")


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
    :class:`~nas_engine.data.Dataset`; ``protocol`` the training recipe
    (default: :class:`~nas_engine.training.Protocol` ()); ``budget`` the limits;
    ``store`` a directory for durable results and resume; ``progress`` a tqdm
    bar over evaluations (``"all"``: also one per candidate's training);
    ``table`` a :class:`~nas_engine.benchmarks.table.CurveTable` for a tabular
    search (see the module docstring).
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
        executor: str | None = None,
        progress: bool | str = True,
        table: CurveTable | None = None,
    ):
        self.strategy = _resolve(strategy, strategy_registry, "strategy", Strategy)
        self.space = _resolve(space, space_registry, "space", SearchSpace)
        self.estimator = _resolve(estimator, estimator_registry, "estimator", Estimator)
        if isinstance(data, str):
            data = load_dataset(data)
        if data is not None and not isinstance(data, Dataset):
            raise TypeError(f"data must be a dataset name, a Dataset or None, got {type(data).__name__}")
        self.data = data
        self.protocol = protocol if protocol is not None else Protocol()
        if not isinstance(self.protocol, Protocol):
            raise TypeError(f"protocol must be a Protocol, got {type(self.protocol).__name__}")
        self.budget = budget if budget is not None else Budget(evaluations=10)
        if not isinstance(self.budget, Budget):
            raise TypeError(f"budget must be a Budget, got {type(self.budget).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = seed
        if executor not in (None, "inline"):
            raise ValueError(f"unknown executor {executor!r}; available: 'inline'")
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
                           budget=self.budget, progress=progress == "all", strategy=self.strategy, table=table)
        self.estimator.validate_context(self.ctx)

    # -- configuration identity (for the store) ---------------------------------
    def config(self) -> dict[str, Any]:
        """What the search is, as stored with its results.

        A tabular search adds ``table`` (the table's fingerprint) and a search
        over a :class:`~nas_engine.benchmarks.table.RestrictedSpace` adds
        ``space_subset`` (the subset's fingerprint), so that a store never mixes
        live and tabular runs or different subsets; the keys are absent
        otherwise, so stores of live searches over whole spaces are unchanged.
        """
        extra: dict[str, Any] = {}
        if self.table is not None:
            extra["table"] = self.table.fingerprint()
        if isinstance(self.space, RestrictedSpace):
            extra["space_subset"] = self.space.fingerprint()
        return {
            "strategy": {"name": self.strategy.name, "params": self.strategy.get_params()},
            "space": self.space.name,
            "estimator": {"name": self.estimator.name, "params": self.estimator.get_params()},
            "data": self.data.fingerprint() if self.data is not None else None,
            "protocol": {k: v for k, v in self.protocol.to_dict().items() if k != "device"},
            "seed": self.seed,
            **extra,
        }

    # -- one candidate ----------------------------------------------------------
    def _evaluate(self, index: int, arch: Architecture, done: dict[str, Evaluation]) -> Evaluation:
        seed = self.ctx.arch_seed(arch)
        prev = done.get(arch.string)
        if prev is not None:
            return Evaluation(index=index, arch=arch, score=prev.score, cost_seconds=0.0, epochs=0.0,
                              status=prev.status, reason=prev.reason, curve=prev.curve, seed=seed,
                              cached=True, info=dict(prev.info))
        t0 = time.perf_counter()
        try:
            est = self.estimator.estimate(arch, self.ctx)
        except TrainingFailed as exc:
            curve = exc.curve
            return Evaluation(index=index, arch=arch, score=WORST_SCORE,
                              cost_seconds=time.perf_counter() - t0,
                              epochs=float(curve.epochs) if curve is not None else 0.0,
                              status="failed", reason=f"{exc.reason}: {exc}", curve=curve, seed=seed)
        score = float(est.score)
        if not math.isfinite(score):
            return Evaluation(index=index, arch=arch, score=WORST_SCORE, cost_seconds=est.cost_seconds,
                              epochs=est.epochs, status="failed", reason=f"non-finite score {score}",
                              curve=est.curve, seed=seed, info=est.info)
        return Evaluation(index=index, arch=arch, score=score, cost_seconds=est.cost_seconds,
                          epochs=est.epochs, curve=est.curve, seed=seed, info=est.info)

    # -- the loop -----------------------------------------------------------------
    def run(self) -> SearchResult:
        self.strategy.setup(self.space, self.ctx)
        history: list[Evaluation] = []
        pending: deque[Architecture] = deque()
        elapsed_before = 0.0
        if self.store is not None:
            self.store.open(self.config())
            history, pending, elapsed_before = self._restore()
        done = {e.arch.string: e for e in history if not e.cached}
        epochs_used = math.fsum(e.epochs for e in history)
        t_start = time.perf_counter()

        def elapsed() -> float:
            return elapsed_before + time.perf_counter() - t_start

        def save_state() -> None:
            if self.store is not None:
                self.store.write_state({
                    "n_records": len(history), "strategy": self.strategy.state_dict(),
                    "pending": [a.string for a in pending], "elapsed": elapsed(),
                })

        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.budget.evaluations, initial=len(history), desc="search", unit="arch")
        try:
            save_state()
            while not self.budget.exhausted(len(history), epochs_used, elapsed()):
                if not pending:
                    pending.extend(self.strategy.ask())
                    if not pending:
                        break  # the strategy has nothing more to propose
                    save_state()
                arch = pending[0]
                self.space.check_architecture(arch)
                ev = self._evaluate(len(history), arch, done)
                pending.popleft()
                history.append(ev)
                if not ev.cached:
                    done[arch.string] = ev
                epochs_used += ev.epochs
                if self.store is not None:
                    self.store.append({**ev.to_record(), "elapsed": elapsed()})
                self.strategy.tell([ev])
                save_state()
                if bar is not None:
                    bar.update(1)
                    best = max((e.score for e in history if e.ok), default=math.nan)
                    bar.set_postfix(best=f"{best:.4g}")
        finally:
            if bar is not None:
                bar.close()
        return SearchResult(history=history, space=self.space, seconds=elapsed())

    def _restore(self) -> tuple[list[Evaluation], deque, float]:
        """Reload history and strategy state from the store (see :mod:`nas_engine.store`)."""
        records = self.store.records()
        state = self.store.state()
        history = [Evaluation.from_record(r, self.space) for r in records]
        if state is None:
            if history:
                raise RuntimeError(f"store {self.store.path} has evaluations but no state.json; it is damaged")
            return history, deque(), 0.0
        n = int(state["n_records"])
        self.strategy.load_state_dict(state["strategy"])
        pending = deque(self.space.from_string(s) for s in state["pending"])
        elapsed = float(state["elapsed"])
        if n == len(history) - 1:
            # crashed after appending the last record but before saving the state that
            # follows its tell: replay that tell (deterministic) to catch up
            last = history[-1]
            if not pending or pending[0] != last.arch:
                raise RuntimeError(f"store {self.store.path} is inconsistent: the last record "
                                   f"{last.arch.string!r} is not the pending proposal")
            pending.popleft()
            self.strategy.tell([last])
            elapsed = max(elapsed, float(records[-1].get("elapsed", elapsed)))
        elif n != len(history):
            raise RuntimeError(f"store {self.store.path} is inconsistent: state reflects {n} evaluations, "
                               f"evaluations.jsonl has {len(history)}")
        return history, pending, elapsed
