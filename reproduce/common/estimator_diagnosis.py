"""The pure parts of ``estimator_diagnosis``: voting over a recorded population, arch-level traits of an
estimator's picks, op-level families and table formatting (importable by the tests).

Ning et al. ("Evaluating Efficient Performance Estimators of Neural Architectures", §4.2, §5.1-5.2)
diagnose an estimator by where its ranking goes wrong; the analyses themselves are the library's
(:mod:`nas_engine.diagnosis`), the ensembles are the registered ``ensemble`` estimator
(:class:`nas_engine.estimators.ensemble.Ensemble`).  This module only applies them to *recorded* scores:

* :func:`population_votes` -- the registered ensemble's vote (``Ensemble.combine``) of every architecture
  of a recorded population against a reference that is part of that population (all of it, or a
  random subset of the ensemble's default size, :func:`reference_draws`);
* :func:`nb201_op_counts` -- how many of an NB201 cell's six edges carry each operation;
* :func:`pick_traits` -- what an estimator's top-K picks look like (true rank, complexity, op counts),
  the arch-level bias of §5.2 (Fig. 6) as numbers;
* :func:`op_family` -- op-level bias (§5.1) pooled over a family of mutation types;
* :func:`class_sample`, :func:`mutation_neighbours`, :func:`checkpoint_epochs` -- the one-shot part's
  architecture sample (uniform over isomorphism classes, plus one-edge mutations for the op-level
  analysis) and the supernet epochs it is scored at;
* :func:`paired_bootstrap` -- how much a criterion differs between two estimators on the same
  architectures, with a bootstrap interval over the architectures (sampling noise of a small sample);
* :func:`fmt` and :func:`markdown_table` -- the summaries' number format.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from nas_engine.registry import create

__all__ = ["NB201_OPS", "population_votes", "reference_draws", "nb201_op_counts", "pick_traits", "op_family",
           "class_sample", "mutation_neighbours", "checkpoint_epochs", "paired_bootstrap", "fmt", "markdown_table"]

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def population_votes(member_scores: Any, members: Sequence[Any], vote: str, reference: Any = None) -> np.ndarray:
    """The registered ensemble's score of every architecture of a recorded population.

    ``member_scores``: ``[architectures, members]``, each member's recorded score (higher is better;
    NaN is that member's worst).  ``members``: the ensemble's member configurations (registered names
    or ``{"name", "params"}``), one per column, as ``create("estimator", "ensemble", members=...)``
    takes them.  ``reference``: indices (rows of ``member_scores``) of the reference sample; None
    (default) is the whole population.  Each architecture is scored by ``Ensemble.combine`` against
    the reference's rows, so the result is what the ensemble estimator would return if its reference
    sample were those architectures.
    """
    s = np.asarray(member_scores, dtype=float)
    if s.ndim != 2 or s.shape[1] != len(members):
        raise ValueError(f"member_scores must be [architectures, {len(members)} members], got shape {s.shape}")
    ref_rows = np.arange(len(s)) if reference is None else np.asarray(reference, dtype=int)
    if ref_rows.ndim != 1 or len(ref_rows) < 2 or ref_rows.min() < 0 or ref_rows.max() >= len(s):
        raise ValueError(f"reference must be 2 or more row indices in 0..{len(s) - 1}")
    ens = create("estimator", "ensemble", members=list(members), vote=vote, reference=len(ref_rows))
    ref = s[ref_rows]
    return np.array([ens.combine(row, ref) for row in s])


def reference_draws(n: int, size: int, draws: int, seed: int = 0) -> list[np.ndarray]:
    """``draws`` random reference samples of ``size`` distinct rows out of ``n`` (sorted indices)."""
    if not 2 <= size <= n:
        raise ValueError(f"a reference of {size} architectures needs 2..{n} (the population)")
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(n, size=size, replace=False)) for _ in range(draws)]


def nb201_op_counts(arch_str: str, *, live: bool = True) -> dict[str, int]:
    """How many of the six edges of an NB201 cell (the benchmark's string) carry each operation.

    ``live`` (default): only edges whose result can reach the cell output from its input count for
    the non-``none`` ops (a conv on a branch that ends in ``none`` edges computes nothing the
    network uses); ``none`` always counts every ``none`` edge.
    """
    nodes = arch_str.strip("|").split("|+|")
    edges = []  # (source, target, op)
    for target, node in enumerate(nodes, 1):
        for tok in node.strip("|").split("|"):
            op, _, src = tok.partition("~")
            edges.append((int(src) if src.isdigit() else -1, target, op))
    if len(edges) != 6 or any(op not in NB201_OPS or not 0 <= u < v for u, v, op in edges):
        raise ValueError(f"not an NB201 architecture string: {arch_str!r}")
    on = [(u, v) for u, v, op in edges if op != "none"]
    reached, reaching = {0}, {3}
    for u, v in sorted(on):  # sources before targets: nodes are numbered in topological order
        if u in reached:
            reached.add(v)
    for u, v in sorted(on, reverse=True):
        if v in reaching:
            reaching.add(u)
    counts = dict.fromkeys(NB201_OPS, 0)
    for u, v, op in edges:
        if op == "none" or not live or (u in reached and v in reaching):
            counts[op] += 1
    return counts


def pick_traits(scores: Any, truth: Any, complexity: Any, traits: pd.DataFrame | None = None, *,
                k: float = 0.05) -> dict[str, float]:
    """What the top-``k`` portion by ``scores`` looks like: the arch-level bias of Ning et al. §5.2 as numbers.

    The portion is the ``ceil(k * M)`` best scores (NaN is the worst score; ties broken by position,
    as :func:`nas_engine.diagnosis.extremes`).  Returns ``n_picks``; ``true_rank_pct``, the picks'
    mean true rank as a percentage of ``M`` (1 = the best architecture, ties averaged; lower is
    better); ``complexity_pct``, their mean complexity percentile (rank of ``complexity``, 100 = the
    most complex); and the mean of every column of ``traits`` (one row per architecture) over the picks.
    """
    s = np.asarray(scores, dtype=float)
    t = np.asarray(truth, dtype=float)
    c = np.asarray(complexity, dtype=float)
    if s.ndim != 1 or t.shape != s.shape or c.shape != s.shape or (traits is not None and len(traits) != len(s)):
        raise ValueError("scores, truth, complexity (and traits) must describe the same architectures")
    if not 0 < k <= 1:
        raise ValueError(f"k must be a fraction in (0, 1], got {k!r}")
    m = max(1, math.ceil(round(k * len(s), 9)))
    s = np.where(np.isnan(s), -np.inf, s)
    picks = np.lexsort((np.arange(len(s)), -s))[:m]
    true_rank = stats.rankdata(-t, method="average")
    c_pct = stats.rankdata(c, method="average") / len(c) * 100
    out = {"n_picks": m, "true_rank_pct": float(true_rank[picks].mean() / len(s) * 100),
           "complexity_pct": float(c_pct[picks].mean())}
    if traits is not None:
        for col in traits.columns:
            out[str(col)] = float(traits[col].to_numpy(dtype=float)[picks].mean())
    return out


def op_family(table: pd.DataFrame, *, from_op: str | None = None, to_op: str | None = None) -> dict[str, float]:
    """Op-level bias pooled over the mutation types ``from_op -> to_op`` (None: any op) of an
    :func:`nas_engine.diagnosis.op_bias` table: ``pairs`` and the pair-weighted ``true_increase``,
    ``estimated_increase`` and ``gap``; NaN rates when no pair is in the family."""
    keep = np.ones(len(table), dtype=bool)
    if from_op is not None:
        keep &= (table["from_op"] == from_op).to_numpy()
    if to_op is not None:
        keep &= (table["to_op"] == to_op).to_numpy()
    sub = table[keep]
    n = int(sub["pairs"].sum())
    if n == 0:
        return {"pairs": 0, "true_increase": math.nan, "estimated_increase": math.nan, "gap": math.nan}
    true = float((sub["pairs"] * sub["true_increase"]).sum() / n)
    est = float((sub["pairs"] * sub["estimated_increase"]).sum() / n)
    return {"pairs": n, "true_increase": true, "estimated_increase": est, "gap": est - true}


def class_sample(classes: Sequence[Sequence[Any]], n: int, seed: int = 0) -> list[Any]:
    """``n`` of ``classes`` drawn uniformly without replacement, each by a uniformly random member (draw order).

    Every class is equally likely, whatever its size: for NB201's isomorphism classes
    (``space.isomorphism_classes()``) the sample is uniform over the 6,466 distinct structures, not over
    the 15,625 strings (which would favour the large classes of degenerate cells).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 < n <= len(classes):
        raise ValueError(f"n must be an integer from 1 to the number of classes ({len(classes)}), got {n!r}")
    if any(len(c) == 0 for c in classes):
        raise ValueError("every class needs at least one member")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(classes), size=int(n), replace=False)
    return [classes[i][int(rng.integers(len(classes[i])))] for i in picks]


def mutation_neighbours(space: Any, archs: Sequence[Any], n: int, seed: int = 0) -> list[tuple[Any, int]]:
    """One-edge mutations of the first ``n`` of ``archs``, each of an isomorphism class not yet present.

    For each of ``archs[:n]`` in order: its mutations (one edge's op replaced by another op) in a random
    order (seeded), the first whose ``space.isomorphism_class`` is neither among ``archs`` nor among the
    neighbours already chosen; none if every mutation is.  ``space`` needs ``ops``, ``OPS``, ``from_ops`` and
    ``isomorphism_class`` (NB201).  Returns ``(neighbour, index of its base in archs)`` pairs: each is an
    edit-distance-1 (mutation) pair for the op-level analysis, and the population stays one cell per class.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= len(archs):
        raise ValueError(f"n must be an integer from 0 to {len(archs)}, got {n!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5E1B]))
    seen = {space.isomorphism_class(a) for a in archs}
    out = []
    for i in range(int(n)):
        ops = list(space.ops(archs[i]))
        moves = [(e, op) for e in range(len(ops)) for op in space.OPS if op != ops[e]]
        for k in rng.permutation(len(moves)):
            e, op = moves[int(k)]
            cand = space.from_ops(ops[:e] + [op] + ops[e + 1:])
            cls = space.isomorphism_class(cand)
            if cls not in seen:
                seen.add(cls)
                out.append((cand, i))
                break
    return out


def checkpoint_epochs(epochs: int, percents: Sequence[float]) -> list[int]:
    """The supernet epochs at ``percents`` of ``epochs`` (rounded half up, at least 1): strictly increasing,
    the last one the final epoch (100%)."""
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    out = [max(1, int(math.floor(float(p) * epochs / 100 + 0.5))) for p in percents]
    if not out or any(b <= a for a, b in zip(out, out[1:])) or out[-1] != epochs or any(float(p) <= 0 for p in
                                                                                          percents):
        raise ValueError(f"percents {list(percents)} of {epochs} epochs give epochs {out}: they must be distinct, "
                         "increasing, positive and end at 100 (the final epoch)")
    return out


def paired_bootstrap(base: Any, other: Any, truth: Any, criteria: Mapping[str, Callable[[Any, Any], float]], *,
                     draws: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """How much each criterion changes from ``base`` scores to ``other`` scores of the same architectures.

    One row per criterion (``criteria``: name -> ``f(scores, truth)``): ``base`` and ``other`` (the criterion on
    the whole population), ``delta = other - base``, and ``lo``/``hi``, the central ``level`` interval of the
    delta over ``draws`` bootstrap resamples of the architectures (with replacement, the same resample for
    both: paired).  It measures the sampling noise of a population of this size, not the noise of supernet
    training (a second seed measures that).
    """
    b, o, t = (np.asarray(v, dtype=float) for v in (base, other, truth))
    if b.ndim != 1 or o.shape != b.shape or t.shape != b.shape or len(b) < 2:
        raise ValueError("base, other and truth must be 1-D with the same length (at least 2)")
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1 or not 0 < level < 1:
        raise ValueError(f"draws must be a positive integer and level in (0, 1), got {draws!r}, {level!r}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(len(b), size=(int(draws), len(b)))
    rows = []
    for name, f in criteria.items():
        deltas = np.array([f(o[i], t[i]) - f(b[i], t[i]) for i in idx])
        lo, hi = np.quantile(deltas, [(1 - level) / 2, (1 + level) / 2])
        full_b, full_o = f(b, t), f(o, t)
        rows.append({"criterion": name, "base": full_b, "other": full_o, "delta": full_o - full_b,
                     "lo": float(lo), "hi": float(hi)})
    return pd.DataFrame(rows)


def fmt(v: Any, digits: int = 3) -> str:
    """A table cell: a number to ``digits`` decimals, "—" for NaN/None, anything else as text."""
    if v is None:
        return "—"
    if isinstance(v, (float, np.floating)):
        return "—" if math.isnan(v) else f"{v:.{digits}f}".replace("-", "−")
    return str(v)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, digits: int = 3) -> list[str]:
    """A markdown table (one line per row) of ``columns`` of ``rows``."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c), digits) for c in columns) + " |" for r in rows]
    return lines
