"""The search's value types: :class:`Evaluation`, :class:`SearchResult`, :class:`Outcome`.

They live below the search loop (:mod:`nas_engine.search`, which re-exports
them) so that strategies, stores and harnesses can use them without importing
the loop.  :class:`Budget` lives in :mod:`nas_engine.budget` (re-exported here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .budget import Budget  # re-exported: it was defined here
from .curves import LearningCurve
from .registry import estimator_class, from_config, spaces
from .training import Protocol, upgrade_protocol_dict

if TYPE_CHECKING:  # pragma: no cover
    import os

    from torch import nn

    from .data import Dataset
    from .final import FinalTraining
    from .spaces.base import Architecture, SearchSpace

__all__ = ["Budget", "Evaluation", "SearchResult", "Outcome", "WORST_SCORE", "jsonable", "ROW_COLUMNS",
           "evaluation_accuracy", "accuracies", "format_score", "upgrade_config"]

#: the score of a failed evaluation
WORST_SCORE = -math.inf

#: the columns of :meth:`Evaluation.to_row`, the one flat serialisation of an evaluation (tables, CSV, JSON)
ROW_COLUMNS = ("index", "arch", "score", "status", "reason", "cost_seconds", "epochs", "seed", "cached")


def jsonable(obj: Any, where: str = "value") -> Any:
    """``obj`` as plain JSON data: numpy scalars and arrays become numbers and lists, tuples lists, and
    non-finite floats ``None`` (strict JSON has no NaN/Infinity).

    Raises ``TypeError`` naming the offending entry (``info['x'][2]``) for
    anything else that JSON cannot hold (objects, tensors, non-string keys).
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where} has a key {k!r} of type {type(k).__name__}; JSON keys are strings")
            out[k] = jsonable(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist(), where)
    if isinstance(obj, np.generic):
        return jsonable(obj.item(), where)
    raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, which JSON cannot hold "
                    "(expected numbers, strings, booleans, None, lists, dicts, numpy scalars or arrays)")



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

    def build(self, data: Dataset, protocol: Protocol | None = None, *, seed: int = 0) -> nn.Module:
        """The freshly initialised network of this architecture for ``data`` at ``protocol``'s size (default
        :class:`~nas_engine.training.Protocol`'s, NB201's C=16, N=5), initialised from ``seed``
        (:func:`nas_engine.final.build_network`; the space is the architecture's own)."""
        from .final import build_network

        return build_network(self.arch.space, self.arch, data, protocol, seed=seed)

    def train(self, data: Dataset, protocol: Protocol | None = None, *, schedule_epochs: int | None = None,
              out: str | os.PathLike[str], seed: int = 0, threads: int | None = None,
              progress: Any = True) -> FinalTraining:
        """Train this architecture to completion on ``data`` and export it into ``out``
        (:func:`nas_engine.final.train_final`: checkpointed every epoch, resumable, ``out/model.pt``,
        ``out/model.pt2``, ``out/summary.json``).  ``protocol`` defaults to
        :class:`~nas_engine.training.Protocol`'s (NB201's full recipe); the search's own recipe is
        ``result.protocol()``."""
        from .final import train_final

        return train_final(self.arch.space, self.arch, data, protocol, schedule_epochs=schedule_epochs, out=out,
                           seed=seed,
                           threads=threads, progress=progress)

    def to_row(self) -> dict[str, Any]:
        """The flat serialisation (:data:`ROW_COLUMNS`), strict JSON: a failed score is ``None`` beside its
        status.  Tables, ``to_dataframe``, the CLI's JSON and CSV and the store all start from it."""
        return {
            "index": self.index, "arch": self.arch.string,
            "score": self.score if math.isfinite(self.score) else None, "status": self.status,
            "reason": self.reason, "cost_seconds": self.cost_seconds, "epochs": self.epochs, "seed": self.seed,
            "cached": self.cached,
        }

    def to_record(self) -> dict[str, Any]:
        """:meth:`to_row` plus ``info`` (as plain JSON, see :func:`jsonable`) and the curve: what is stored."""
        return {**self.to_row(), "info": jsonable(self.info, "info"),
                "curve": self.curve.to_dict() if self.curve is not None else None}

    @classmethod
    def from_record(cls, rec: dict[str, Any], space: SearchSpace) -> Evaluation:
        """The evaluation of a stored record (``score`` ``None``: a failed one, score ``-inf``)."""
        if not isinstance(rec, dict):
            raise ValueError(f"an evaluation record must be a JSON object, got {type(rec).__name__}")
        missing = [k for k in ("index", "arch", "score", "cost_seconds", "epochs", "status", "seed") if k not in rec]
        if missing:
            raise ValueError(f"evaluation record {rec.get('index', '?')} lacks {', '.join(map(repr, missing))} "
                             f"(it has {', '.join(sorted(rec))})")
        curve = rec.get("curve")
        score = rec["score"]
        return cls(
            index=int(rec["index"]), arch=space.from_string(rec["arch"]),
            score=WORST_SCORE if score is None else float(score),
            cost_seconds=float(rec["cost_seconds"]), epochs=float(rec["epochs"]), status=rec["status"],
            reason=rec.get("reason"), curve=LearningCurve.from_dict(curve) if curve else None,
            seed=int(rec["seed"]), cached=bool(rec.get("cached", False)), info=rec.get("info") or {},
        )


def upgrade_config(config: dict[str, Any] | None, space: SearchSpace) -> dict[str, Any] | None:
    """A stored search configuration in this version's vocabulary: a protocol written before the schedule
    length was named ``schedule_epochs`` and the size became the space's mapping (``epochs``, ``C``, ``N``)
    is converted (:func:`~nas_engine.training.upgrade_protocol_dict`; the size the space gives ``C`` and
    ``N``, e.g. DARTS' ``layers = 3N + 2``).  Other configurations are returned unchanged."""
    if not isinstance(config, dict) or not isinstance(config.get("protocol"), dict):
        return config
    protocol = upgrade_protocol_dict(config["protocol"], space)
    if protocol is config["protocol"]:
        return config
    return {**config, "protocol": protocol}


@dataclass
class SearchResult:
    """What a search produced: the full ``history`` and the ``best`` evaluation.

    ``seconds`` is the search's wall-clock time, ``setup_seconds`` what the
    strategy's setup was charged (a one-shot strategy's supernet training; 0
    otherwise).  Both include earlier runs of a resumed search.
    """

    history: list[Evaluation]
    space: SearchSpace
    seconds: float = 0.0
    setup_seconds: float = 0.0
    config: dict[str, Any] | None = None

    @classmethod
    def load(cls, path, space: SearchSpace | None = None) -> SearchResult:
        """The result stored in the store directory ``path`` (a running, finished or read-only store; also a
        JSONL store of an earlier version).  Reads only: the store is not modified.

        ``space`` parses the stored architectures; by default the space the
        stored configuration names (``config["space"]``) is created.
        """
        from .store import RunStore, StoreError

        store = RunStore(path)
        if not store.exists():
            raise StoreError(f"store {str(store.path)!r}: no store here (expected {RunStore.DATABASE})")
        config, records, state = store.read()
        if space is None:
            cfg = config.get("space") if isinstance(config, dict) else None
            try:
                space = spaces.create(cfg) if isinstance(cfg, str) else from_config("space", cfg)
            except (LookupError, TypeError, ValueError) as exc:
                raise StoreError(f"store {str(store.path)!r}: cannot create the stored space {cfg!r} to read "
                                 f"its architectures ({exc}); pass space=") from None
        config = upgrade_config(config, space)
        history = [Evaluation.from_record(r, space) for r in records]
        if state is not None:
            seconds = float(state.get("elapsed", 0.0))
        else:
            seconds = float(records[-1].get("elapsed") or 0.0) if records else 0.0
        setup = float(state.get("setup_seconds", 0.0)) if state is not None else 0.0
        return cls(history=history, space=space, seconds=seconds, setup_seconds=setup, config=config)

    @property
    def best(self) -> Evaluation | None:
        """The successful evaluation with the highest score (earliest on ties), or None."""
        ok = [e for e in self.history if e.ok and not math.isnan(e.score)]
        return max(ok, key=lambda e: (e.score, -e.index)) if ok else None

    def protocol(self, *, size: dict[str, Any] | None = None, **changes: Any) -> Protocol:
        """The stored search's recipe (its size spelled out for its space), with ``changes`` to any other field
        and ``size`` merged into the stored size (e.g. ``result.protocol(schedule_epochs=200, size={"C": 16})``
        to train the winner to the end at another width); ``nas-engine train --from`` uses it."""
        stored = Protocol.from_dict(dict((self.config or {}).get("protocol") or {}), space=self.space)
        resolved = stored.resolved(self.space)
        return resolved.replace(size={**resolved.size, **(size or {})}, **changes)

    def ranked(self) -> list[Evaluation]:
        """One successful evaluation per distinct architecture (its best: highest score, earliest on ties),
        best first; ``ranked()[0]`` is :attr:`best`.  Rank k (1-based) is ``ranked()[k - 1]``."""
        ok = [e for e in self.history if e.ok and not math.isnan(e.score)]
        ok.sort(key=lambda e: (-e.score, e.index))
        seen: set[str] = set()
        out = []
        for e in ok:
            if e.arch.string not in seen:
                seen.add(e.arch.string)
                out.append(e)
        return out

    @property
    def best_arch(self) -> Architecture | None:
        return self.best.arch if self.best is not None else None

    @property
    def total_cost_seconds(self) -> float:
        """Seconds charged: every evaluation's cost plus the strategy's setup (a supernet's training)."""
        return math.fsum([self.setup_seconds, *(e.cost_seconds for e in self.history)])

    def to_dataframe(self):
        """One row per evaluation (:meth:`Evaluation.to_row`; a failed score is NaN beside its status)."""
        import pandas as pd

        df = pd.DataFrame([e.to_row() for e in self.history], columns=list(ROW_COLUMNS))
        df["score"] = df["score"].astype(float)
        return df

    def __repr__(self) -> str:
        b = self.best
        return (f"SearchResult(evaluations={len(self.history)}, "
                f"best={b.arch.string if b else None!r}, best_score={b.score if b else None})")


def format_score(score: float | None) -> str:
    """A score as the report page and the CLI's summary line print it: 6 significant digits (``n/a`` for a
    missing or non-finite one)."""
    return "n/a" if score is None or not math.isfinite(score) else f"{score:.6g}"


def evaluation_accuracy(ev: Evaluation, score_is_accuracy: bool) -> float | None:
    """The accuracy of a successful evaluation, or None: the ``accuracy`` column of the CLI's tables and of
    the report.  The score itself when the estimator's score is an accuracy
    (:attr:`Estimator.score_is_accuracy <nas_engine.estimators.base.Estimator.score_is_accuracy>`), else a
    final validation accuracy the evaluation recorded (``info["final_val_acc"]``, or the last entry of its
    curve's ``val_acc``)."""
    if not ev.ok:
        return None
    if score_is_accuracy:
        return ev.score
    candidates = [ev.info.get("final_val_acc")]
    if ev.curve is not None and ev.curve.val_acc:
        candidates.append(ev.curve.val_acc[-1])
    for v in candidates:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
    return None


def accuracies(result: SearchResult) -> list[float | None]:
    """:func:`evaluation_accuracy` of every evaluation of ``result``, for its stored estimator
    (:func:`nas_engine.registry.estimator_class` of ``result.config``)."""
    cls = estimator_class(result.config)
    is_acc = bool(getattr(cls, "score_is_accuracy", False))
    return [evaluation_accuracy(e, is_acc) for e in result.history]


@dataclass
class Outcome:
    """What evaluating one candidate produced, as plain data (it travels back from worker processes).

    The fields are those of an :class:`Evaluation` that the evaluation itself
    decides; ``error`` and ``traceback`` are set for a failure by an exception
    that is not a training failure (see the module docstring).
    """

    score: float
    cost_seconds: float = 0.0
    epochs: float = 0.0
    status: str = "ok"
    reason: str | None = None
    curve: LearningCurve | None = None
    info: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None
    traceback: str | None = None
