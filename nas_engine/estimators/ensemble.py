"""A voting ensemble of estimators: several estimators' scores combined by rank.

Zero-cost proxies disagree, and each has its biases (Ning et al. §5.2: *synflow* prefers
large networks, *snip*/*grad_norm*/*fisher* networks with exploding gradients, *jacov*/*nwot*
small receptive fields).  The *vote* proxy of Abdelfattah et al. ("Zero-cost proxies for
lightweight NAS") compares two architectures by the majority of several proxies; Ning et al.
(§4.2) find that this vote of three good proxies does not beat its best member and suggest
better ensembles, always reported beside #params and #FLOPs.  :class:`Ensemble` makes any
such combination a plugin: ``create("estimator", "ensemble", members=["synflow", "jacov",
"snip"])``, members given by registered name or as ``{"name": ..., "params": {...}}``.

Scores of different estimators live on different scales, so they are combined by rank, and a
rank needs a population.  The ensemble ranks a candidate against a fixed **reference
sample**: ``reference`` architectures drawn from the space with a seed derived from the
search's seed, each scored once by every member (per process: worker processes and resumed
runs score it again, and the evaluation that does so is charged for it).  It does not rank
against the candidates evaluated so far, because then an architecture's score would depend
on the order of the search -- a resumed or a parallel search would score it differently, and
a strategy comparing scores would compare numbers measured against different populations.
Against a fixed sample the score is a pure function of the architecture and the context.

``vote="majority"`` (the *vote* proxy): for each reference architecture the members vote on
which of the two is better (a tie is no vote); the candidate wins that comparison with the
majority, half of it on a tied vote; the score is the fraction of the reference it beats.
``vote="mean-rank"`` (a Borda count): the mean over the members of the candidate's
percentile among the reference's scores (a tie counts half).  Both scores lie in [0, 1],
higher is better; a NaN member score (e.g. a reference network whose training diverged)
counts as that member's worst score.
"""

from __future__ import annotations

import copy
import json
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import check_int
from ..registry import create, estimators
from .base import Context, Estimate, Estimator, derive_seed

if TYPE_CHECKING:  # pragma: no cover
    from ..spaces.base import Architecture

__all__ = ["Ensemble", "VOTES"]

#: how members' scores are combined (module docstring)
VOTES = ("majority", "mean-rank")


def _member_config(m: Any, i: int) -> Any:
    """A member as given (a registered name, or ``{"name": ..., "params": {...}}``), checked and copied."""
    if isinstance(m, str) and m:
        return m
    if isinstance(m, dict) and set(m) <= {"name", "params"} and isinstance(m.get("name"), str) and m["name"] \
            and isinstance(m.get("params", {}), dict):
        return {"name": m["name"], "params": copy.deepcopy(dict(m.get("params", {})))}
    raise ValueError(f"Ensemble: members[{i}] must be a registered estimator name or "
                     f"{{'name': ..., 'params': {{...}}}}, got {m!r}")


@estimators.register("ensemble")
class Ensemble(Estimator):
    """Several estimators combined by a vote against a fixed reference sample (module docstring).

    ``members``: two or more estimators (registered names or ``{"name", "params"}`` dicts);
    ``vote``: ``"majority"`` (default, the *vote* proxy) or ``"mean-rank"``; ``reference``: the
    size of the reference sample.
    """

    score_description = "fraction of a fixed reference sample that the members' vote ranks below it"

    @classmethod
    def conformance_params(cls) -> dict[str, Any]:
        return {"members": ["params", "synflow"], "reference": 4}

    def __init__(self, members: Any = ("synflow", "jacov", "snip"), vote: str = "majority", reference: int = 32):
        if isinstance(members, (str, bytes, dict)) or not hasattr(members, "__iter__"):
            raise ValueError(f"Ensemble: members must be a list of two or more estimators, got {members!r}")
        self.members = [_member_config(m, i) for i, m in enumerate(members)]
        if len(self.members) < 2:
            raise ValueError(f"Ensemble: members must name two or more estimators, got {len(self.members)}")
        if vote not in VOTES:
            raise ValueError(f"Ensemble: vote must be one of {', '.join(VOTES)}, got {vote!r}")
        self.vote = vote
        self.reference = check_int(reference, "reference", low=2, who="Ensemble")
        self._estimators = [create("estimator", m) if isinstance(m, str)
                            else create("estimator", m["name"], **m["params"]) for m in self.members]
        self.labels = _labels(self._estimators)
        self._reference: dict[str, np.ndarray] = {}

    def validate_context(self, ctx: Context) -> None:
        for est in self._estimators:
            est.validate_context(ctx)

    # -- the reference sample -----------------------------------------------------
    def reference_architectures(self, ctx: Context) -> list[Architecture]:
        """The reference sample of ``ctx``: ``reference`` distinct architectures (by canonical form) of its space,
        drawn with a seed derived from the search's seed."""
        rng = np.random.default_rng(derive_seed(ctx.seed, "ensemble reference"))
        seen, out = set(), []
        for _ in range(100 * self.reference):
            a = ctx.space.sample(rng)
            key = ctx.space.canonical(a)
            if key not in seen:
                seen.add(key)
                out.append(a)
                if len(out) == self.reference:
                    return out
        raise ValueError(f"Ensemble: space {ctx.space.name!r} gave fewer than reference={self.reference} distinct "
                         f"architectures in {100 * self.reference} samples; lower reference")

    def _reference_scores(self, ctx: Context) -> tuple[np.ndarray, float, float]:
        """``(scores [reference, members], cost_seconds, epochs)``; cost and epochs are 0 once cached."""
        key = _context_key(ctx)
        if key in self._reference:
            return self._reference[key], 0.0, 0.0
        t0 = time.perf_counter()
        epochs = 0.0
        rows = []
        for a in self.reference_architectures(ctx):
            row = []
            for est in self._estimators:
                e = est.estimate(a, ctx)
                row.append(float(e.score))
                epochs += float(e.epochs)
            rows.append(row)
        scores = _worst_for_nan(np.array(rows, dtype=float))
        self._reference[key] = scores
        return scores, time.perf_counter() - t0, epochs

    # -- scoring ----------------------------------------------------------------------
    def estimate(self, arch: Architecture, ctx: Context) -> Estimate:
        self.validate_context(ctx)
        reference, cost, epochs = self._reference_scores(ctx)
        mine, curve = [], None
        for est in self._estimators:
            e = est.estimate(arch, ctx)
            mine.append(float(e.score))
            cost += float(e.cost_seconds)
            epochs += float(e.epochs)
            if curve is None and e.curve is not None:
                curve = e.curve
        s = _worst_for_nan(np.array(mine, dtype=float))
        score = self.combine(s, reference)
        info = {"vote": self.vote, "reference": self.reference,
                "members": {label: (v if np.isfinite(v) else None) for label, v in zip(self.labels, mine)}}
        return Estimate(score, cost, epochs, curve, info)

    def combine(self, member_scores: Any, reference: Any) -> float:
        """The ensemble score of one candidate: its members' scores (``[members]``) against the reference's
        (``[reference, members]``), by :attr:`vote`.  NaN counts as a member's worst score."""
        s = _worst_for_nan(np.asarray(member_scores, dtype=float))
        ref = _worst_for_nan(np.asarray(reference, dtype=float))
        if s.shape != (len(self._estimators),) or ref.ndim != 2 or ref.shape[1] != len(s):
            raise ValueError(f"Ensemble.combine: expected {len(self._estimators)} member scores and a "
                             f"[reference, {len(self._estimators)}] array, got {s.shape} and {ref.shape}")
        if self.vote == "mean-rank":
            below = (ref < s).sum(axis=0) + 0.5 * (ref == s).sum(axis=0)
            return float(np.mean(below / len(ref)))
        votes = ((s > ref).astype(int) - (s < ref).astype(int)).sum(axis=1)  # -inf ties -inf: no vote
        return float(np.mean(np.where(votes > 0, 1.0, np.where(votes == 0, 0.5, 0.0))))


def _labels(members: list[Estimator]) -> list[str]:
    """Member names, numbered where one name occurs twice (``tse-e#1``, ``tse-e#2``)."""
    names = [m.name for m in members]
    return [f"{n}#{names[:i + 1].count(n)}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def _worst_for_nan(a: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(a), -np.inf, a)


def _context_key(ctx: Context) -> str:
    """What the reference scores depend on: the space, the data, the protocol, the seed and the table."""
    data = ctx.data.fingerprint() if ctx.data is not None else None
    table = None if ctx.table is None else f"{type(ctx.table).__qualname__}@{id(ctx.table)}"
    return json.dumps([ctx.space.to_config(), data, repr(ctx.protocol), int(ctx.seed), table], default=repr)
