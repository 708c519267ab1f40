"""Bayesian optimisation with a Gaussian process (``bo``), on BoTorch.

Needs the ``bo`` extra (``pip install "nas-engine[bo]"``); this module imports
without BoTorch, so the registry always lists ``bo``, and ``setup`` explains
what to install when it is missing.

Each proposal after the initial random phase:

1. encodes every observed architecture (``encoding``, below) as a float64
   vector and fits a ``SingleTaskGP`` to the scores, standardised by a
   ``Standardize`` outcome transform, by maximising the exact marginal
   likelihood (``fit_gpytorch_mll``);
2. builds the candidate set: every architecture of the space when it is
   :class:`~nas_engine.spaces.base.Enumerable` with at most ``max_candidates``
   members (NB201: all 15,625), otherwise a fresh pool of ``pool_size``
   architectures, half of them one-step mutations of the ``n_incumbents``
   best observed ones (when the space is ``Mutable``) and the rest uniform
   samples.  Candidates are de-duplicated by encoding (the first of each
   encoding in enumeration/pool order represents it), and those whose encoding
   was already observed or is pending are removed, so a proposal never
   repeats an evaluated architecture;
3. scores the candidates with a log-EI acquisition -- the analytic
   ``LogExpectedImprovement`` for a single proposal with nothing pending, and
   ``qLogExpectedImprovement`` (quasi-MC, ``mc_samples`` samples) for a batch
   of ``batch_size`` > 1 and whenever earlier proposals are still being
   evaluated (they are passed as ``X_pending``, so parallel workers get
   different proposals) -- and picks the best with ``optimize_acqf_discrete``
   (greedy sequential conditioning for a batch).  The incumbent value
   ``best_f`` is the best observed score.

Encodings: ``"onehot"`` (default) is the space's own
:meth:`~nas_engine.spaces.base.Encodable.encode`, flattened (NB201: one-hot of
6 edges x 5 ops, 30 features); ``"path"`` (NB201 only) is the path encoding of
White et al. (BANANAS), see :func:`nb201_path_encoding` (84 features).  The GP
uses the encodings as they are; they should lie in [0, 1], as both of these do.

Failed evaluations (score ``-inf``, or any non-finite score) are kept as
observations and imputed with the worst finite score observed so far (recomputed
at every fit): the GP learns that the region is poor without an infinite value
ever reaching it.  The GP phase starts once ``initial_points`` uniform random
proposals (without repeats) have been made and at least two finite scores have
been observed; until then proposals stay random.

Determinism: every random choice comes from the strategy's RNG; BoTorch's own
randomness (quasi-MC base samples, restarts of a failed GP fit) is seeded from
it inside a ``torch.random.fork_rng``, so the same search makes the same
proposals without touching the global torch RNG.  The GP is refitted from the
observations at every proposal, so the state (observations, pending
proposals, RNG, counters) is all a resumed search needs to continue
identically.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import networkx as nx
import numpy as np

from ..config import check_choice, check_int
from ..registry import strategies
from ..spaces.base import Architecture, Encodable, Enumerable, Mutable, SearchSpace
from ..threads import torch_threads
from .base import Strategy

__all__ = ["BayesianOptimization", "nb201_path_encoding", "PATH_ENCODING_LENGTH", "ENCODINGS"]

INSTALL_HINT = 'the "bo" strategy needs BoTorch; install it with: pip install "nas-engine[bo]"'
ENCODINGS = ("onehot", "path")
_MAX_REJECTIONS = 10_000
#: scores beyond this size are divided by the largest before the GP sees them (squaring them would overflow)
_HUGE_SCORE = 1e150

#: Length of :func:`nb201_path_encoding` for NB201's five ops: 4 + 4**2 + 4**3 = 84.
PATH_ENCODING_LENGTH = 84


@lru_cache(maxsize=8)
def _path_labels(ops: tuple[str, ...]) -> dict[tuple[str, ...], int]:
    """The path encoding's features: every sequence of 1..3 non-``none`` ops of ``ops``, shortest first."""
    return {
        seq: i for i, seq in enumerate(
            seq for length in range(1, 4) for seq in itertools.product([op for op in ops if op != "none"],
                                                                         repeat=length))
    }


def space_ops(space: SearchSpace) -> tuple[str, ...]:
    """The op names of a cell space: its ``OPS`` attribute (NB201's :data:`~nas_engine.spaces.nb201.OPS`),
    for a restricted space its base space's; ``ValueError`` when it has none."""
    s = space
    while s is not None:
        ops = getattr(s, "OPS", None)
        if ops is not None:
            return tuple(ops)
        s = getattr(s, "base", None)
    raise ValueError(f"space {space.name!r} has no op set (an OPS attribute) for the path encoding")


def nb201_path_encoding(graph: nx.DiGraph, ops: Sequence[str]) -> np.ndarray:
    """The path encoding (White et al., BANANAS) of an NB201 cell graph, float64 of length 84.

    ``ops`` is the space's op set (``space.OPS``, see :func:`space_ops`),
    which fixes the order of the features.  One binary feature per possible
    input->output path labelled by its op sequence: the cell's paths run from
    node 0 to node 3 over the edges of ``graph`` (``space.to_graph(a)``, edges
    carrying ``op``); a path through a ``none`` edge carries nothing and does
    not count, so the labels are the sequences of 1 to 3 of the four other
    ops: 4 + 16 + 64 = 84 features, in order of length, then lexicographically
    by ``ops`` order (:data:`~nas_engine.spaces.nb201.OPS` for NB201).  The
    two 2-edge paths (0->1->3, 0->2->3) share their labels, as in BANANAS.
    NASLib's NB201 variant keeps ``none`` as an op (155 features); here paths
    through ``none`` are absent, so cells that differ only in edges no
    input->output path uses get the same encoding.
    """
    labels = _path_labels(tuple(ops))
    out = np.zeros(len(labels))
    for path in nx.all_simple_paths(graph, 0, graph.number_of_nodes() - 1):
        seq = tuple(graph.edges[u, v]["op"] for u, v in zip(path, path[1:]))
        if "none" not in seq:
            out[labels[seq]] = 1.0
    return out


def _require_botorch() -> None:
    try:
        import botorch  # noqa: F401
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc


@dataclass(frozen=True, eq=False)
class _Candidates:
    """Architectures with distinct encodings: ``X[i]`` encodes ``archs[i]``; ``rows`` maps encoding bytes to i."""

    archs: tuple[Architecture, ...]
    X: np.ndarray
    rows: dict[bytes, int]  # in row order

    @classmethod
    def build(cls, archs: Iterable[Architecture], encode: Callable[[Architecture], np.ndarray]) -> _Candidates:
        kept, codes, rows = [], [], {}
        for a in archs:
            x = encode(a)
            key = x.tobytes()
            if key not in rows:
                rows[key] = len(kept)
                kept.append(a)
                codes.append(x)
        return cls(tuple(kept), np.stack(codes), rows)


def _encoder(space: SearchSpace, encoding: str) -> Callable[[Architecture], np.ndarray]:
    if encoding == "path":
        ops = space_ops(space)
        return lambda a: nb201_path_encoding(space.to_graph(a), ops)
    return lambda a: np.asarray(space.encode(a), dtype=np.float64).ravel()


@lru_cache(maxsize=4)
def _space_candidates(space: SearchSpace, encoding: str) -> _Candidates:
    """Every architecture of an enumerable ``space`` (cached: NB201 takes a fraction of a second)."""
    return _Candidates.build(space.enumerate(), _encoder(space, encoding))


@strategies.register("bo")
class BayesianOptimization(Strategy):
    """GP-based Bayesian optimisation (see the module docstring for the algorithm).

    ``initial_points``: uniform random proposals before the GP takes over.
    ``batch_size`` (q): architectures per ``ask`` (a q-batch of the
    acquisition; the random phase also proposes up to q at a time).
    ``encoding``: ``"onehot"`` (the space's ``encode``) or ``"path"`` (NB201).
    ``max_candidates``: largest enumerable space whose every architecture is
    scored; beyond it, a pool of ``pool_size`` mutations of the
    ``n_incumbents`` best observed architectures and random samples.
    ``mc_samples``: quasi-MC samples of ``qLogExpectedImprovement``.
    ``fit_maxiter``: L-BFGS iterations of the GP's hyperparameter fit (the
    marginal likelihood flattens long before SciPy's default limit, which can
    cost seconds per fit).  ``threads``: torch intra-op threads while fitting
    and scoring (restored afterwards; None leaves torch's setting): the GP's
    matrices are small, so more threads gain little, while threads competing
    for busy cores slow the fit down many times over; one thread also makes
    the proposals independent of the machine's core count.
    """

    requires = (Encodable,)

    def __init__(self, initial_points: int = 10, batch_size: int = 1, encoding: str = "onehot",
                 max_candidates: int = 20_000, pool_size: int = 1000, n_incumbents: int = 10,
                 mc_samples: int = 128, fit_maxiter: int = 200, threads: int | None = 1):
        who = "BayesianOptimization"
        self.initial_points = check_int(initial_points, "initial_points", low=0, who=who)
        self.batch_size = check_int(batch_size, "batch_size", who=who)
        self.encoding = check_choice(encoding, "encoding", ENCODINGS, who=who)
        self.max_candidates = check_int(max_candidates, "max_candidates", low=0, who=who)
        self.pool_size = check_int(pool_size, "pool_size", who=who)
        self.n_incumbents = check_int(n_incumbents, "n_incumbents", who=who)
        self.mc_samples = check_int(mc_samples, "mc_samples", who=who)
        self.fit_maxiter = check_int(fit_maxiter, "fit_maxiter", who=who)
        self.threads = check_int(threads, "threads", none=True, who=who)

    @classmethod
    def conformance_params(cls) -> dict[str, Any]:
        return {"initial_points": 3, "pool_size": 50, "max_candidates": 200, "n_incumbents": 3, "mc_samples": 16,
                "fit_maxiter": 20}

    def setup(self, space, ctx) -> None:
        super().setup(space, ctx)
        _require_botorch()
        if self.encoding == "path" and space.name != "nb201":
            raise ValueError(f"BayesianOptimization(encoding='path') is defined for the nb201 space, "
                             f"not {space.name!r}; use encoding='onehot'")
        self._encode_arch = _encoder(space, self.encoding)
        self._codes: dict[str, np.ndarray] = {}  # encodings of the observed and pending architectures
        enumerable = isinstance(space, Enumerable) and len(space) <= self.max_candidates
        self._space_table = _space_candidates(space, self.encoding) if enumerable else None
        self._observations: dict[str, tuple[Architecture, float | None]] = {}  # None: failed
        self._pending: dict[str, Architecture] = {}
        self._n_proposed = 0

    # -- encodings -----------------------------------------------------------------
    def encode(self, a: Architecture) -> np.ndarray:
        """The float64 feature vector the GP sees for ``a``."""
        return self._encode_arch(a)

    def _code(self, a: Architecture) -> np.ndarray:
        """``encode(a)`` for an observed or pending architecture (memoised)."""
        x = self._codes.get(a.string)
        if x is None:
            x = self._codes[a.string] = self._encode_arch(a)
        return x

    def _taken(self) -> set[bytes]:
        """Encodings that may not be proposed: those observed or pending."""
        return {self._code(a).tobytes()
                for a in itertools.chain((a for a, _ in self._observations.values()), self._pending.values())}

    # -- ask / tell ------------------------------------------------------------------
    def ask(self) -> list[Architecture]:
        q = self.batch_size
        train = None
        if self._n_proposed < self.initial_points:
            q = min(q, self.initial_points - self._n_proposed)
        else:
            train = self._training_data()
        proposals = self._random(q) if train is None else self._optimize(*train, q)
        self._n_proposed += len(proposals)
        self._pending.update((a.string, a) for a in proposals)
        return proposals

    def tell(self, evaluations: Sequence) -> None:
        for ev in evaluations:
            self._pending.pop(ev.arch.string, None)
            if ev.arch.string not in self._observations:  # a repeated (cached) evaluation adds nothing
                score = float(ev.score)
                self._observations[ev.arch.string] = (ev.arch, score if math.isfinite(score) else None)

    def _training_data(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(X, y)`` with failures imputed by the worst finite score; None with fewer than 2 finite scores."""
        finite = [s for _, s in self._observations.values() if s is not None]
        if len(finite) < 2:
            return None
        worst = min(finite)
        X = np.stack([self._code(a) for a, _ in self._observations.values()])
        y = np.array([worst if s is None else s for _, s in self._observations.values()])
        return X, y

    def _random(self, n: int) -> list[Architecture]:
        """Up to ``n`` uniform samples whose encodings are new (fewer when the space seems exhausted)."""
        taken = self._taken()
        out: list[Architecture] = []
        for _ in range(_MAX_REJECTIONS):
            if len(out) == n:
                break
            a = self.space.sample(self.rng)
            key = self.encode(a).tobytes()
            if key not in taken:
                taken.add(key)
                out.append(a)
        return out

    def _pool(self) -> _Candidates:
        """Mutations of the incumbents plus uniform samples (for spaces too large to enumerate)."""
        archs: list[Architecture] = []
        if isinstance(self.space, Mutable):
            ranked = sorted((x for x in self._observations.values() if x[1] is not None), key=lambda x: -x[1])
            incumbents = [a for a, _ in ranked[:self.n_incumbents]]
            archs = [self.space.mutate(incumbents[int(self.rng.integers(len(incumbents)))], self.rng)
                     for _ in range(self.pool_size // 2)]
        archs += [self.space.sample(self.rng) for _ in range(self.pool_size - len(archs))]
        return _Candidates.build(archs, self.encode)

    def _optimize(self, X: np.ndarray, y: np.ndarray, q: int) -> list[Architecture]:
        import torch
        from botorch.acquisition import LogExpectedImprovement, qLogExpectedImprovement
        from botorch.optim import optimize_acqf_discrete
        from botorch.sampling import SobolQMCNormalSampler

        cands = self._space_table if self._space_table is not None else self._pool()
        taken = self._taken()
        free = [i for i, key in enumerate(cands.rows) if key not in taken]
        if not free:
            return []
        choices = torch.from_numpy(cands.X[free])
        pending = (torch.from_numpy(np.stack([self._code(a) for a in self._pending.values()]))
                   if self._pending else None)
        seed = int(self.rng.integers(2**31 - 1))
        scale = float(np.abs(y).max())
        if scale > _HUGE_SCORE:  # standardising would overflow (y**2): the GP sees y / max|y|, which neither the
            y = y / scale        # Standardize transform nor the ranking by expected improvement can tell apart
        with torch_threads(self.threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = self._fit_gp(torch.from_numpy(X), torch.from_numpy(y).unsqueeze(-1))
            best_f = float(y.max())
            if q == 1 and pending is None:
                acq = LogExpectedImprovement(model, best_f=best_f)
            else:
                sampler = SobolQMCNormalSampler(torch.Size([self.mc_samples]), seed=seed)
                acq = qLogExpectedImprovement(model, best_f=best_f, sampler=sampler, X_pending=pending)
            picked, _ = optimize_acqf_discrete(acq, q=min(q, len(free)), choices=choices)
        return [cands.archs[cands.rows[x.numpy().tobytes()]] for x in picked]

    def _fit_gp(self, X, y):
        """A fitted ``SingleTaskGP``; with its initial hyperparameters (and a warning) if every fit attempt fails."""
        from botorch.exceptions.errors import ModelFittingError
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from botorch.models.transforms.outcome import Standardize
        from gpytorch.mlls import ExactMarginalLogLikelihood

        model = SingleTaskGP(X, y, outcome_transform=Standardize(m=1))
        try:
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model),
                             optimizer_kwargs={"options": {"maxiter": self.fit_maxiter}})
        except ModelFittingError as exc:  # botorch has rolled the model back to its initial state
            warnings.warn(f"BayesianOptimization: the GP hyperparameter fit on {len(y)} observations failed "
                          f"({exc}); proposing with the GP's initial hyperparameters", RuntimeWarning, stacklevel=2)
        return model

    # -- inspection and resume ----------------------------------------------------------
    @property
    def observations(self) -> list[tuple[Architecture, float]]:
        """Observed ``(architecture, score)`` in order of arrival; failures have score ``-inf``."""
        return [(a, -math.inf if s is None else s) for a, s in self._observations.values()]

    @property
    def pending(self) -> list[Architecture]:
        """Proposals not yet told, in order of proposal."""
        return list(self._pending.values())

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "n_proposed": self._n_proposed,
                "observations": [[s, score] for s, (_, score) in self._observations.items()],
                "pending": list(self._pending)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._n_proposed = int(state["n_proposed"])
        self._observations = {s: (self.space.from_string(s), None if score is None else float(score))
                              for s, score in state["observations"]}
        self._pending = {s: self.space.from_string(s) for s in state["pending"]}
