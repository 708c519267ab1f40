"""Diagnosing an estimator: where and how its ranking goes wrong (Ning et al., §5).

The analyses of "Evaluating Efficient Performance Estimators of Neural Architectures"
(../shared/papers/evaluating-one-shot-and-zero-shot-estimators.md) beside the ranking
criteria of :mod:`nas_engine.criteria`, with the same conventions: ``scores`` and ``truth``
are equal-length 1-D array-likes, **higher is better on both**, a NaN score counts as the
worst score (``-inf``) and the truth must be finite.

Ranks follow the paper (§3): the best architecture has rank 1 and the worst ``M``; tied
values share their average rank (scipy's ``rankdata(method="average")``).

* :func:`rank_difference` -- the true-estimated ranking difference ``RD_i = r_i - n_i``
  (true rank minus estimated rank): positive when the estimator *over*-estimates
  architecture ``i`` (ranks it better than it is), negative when it underestimates it.
* :func:`complexity_bias` -- §5.1 "complexity-level bias" (Fig. 5): the architectures split
  into groups of (nearly) equal size by a complexity measure (FLOPs or #params, ascending),
  Kendall's tau *within* each group and the mean RD of each group (RD over the whole
  population).
* :func:`mutation_pairs` and :func:`op_bias` -- §5.1 "op-level bias": over pairs of
  architectures that differ in exactly one operation (edit distance 1), per mutation type
  ``from_op -> to_op``, how often the true performance increases and how often the estimate
  does.
* :func:`extremes` -- §5.2 "arch-level bias" (Fig. 6): the best and worst architectures by
  the estimator, with their true ranks.
* :func:`forgetting_values`, :func:`ranking_stability`, :func:`rank_spread` -- §5.3
  "variance": the forgetting value ``acc_2 - acc_1`` of one-shot training, the ranking
  stability between checkpoints (the later one taken as the truth, as in Fig. 7) or between
  seeds, and each architecture's rank spread across them.

Architectures are given as their cell graphs (``networkx`` graphs, or any object with a
``graph`` attribute such as :class:`~nas_engine.spaces.base.Architecture`): an operation is an
``op`` attribute on a node (NB-101, RandWired) or on an edge (NB-201, DARTS), so the op-level
analysis works on every space without knowing it.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
from scipy import stats

# _prepare: the criteria's own input checks (1-D, equal lengths, at least 2, finite truth; a NaN score is -inf)
from .criteria import _prepare, kendall, precision_at_bottom_k, precision_at_top_k, spearman

__all__ = [
    "rank_difference", "complexity_groups", "complexity_bias", "mutation_pairs", "op_bias", "extremes",
    "forgetting_values", "ranking_stability", "rank_spread",
]


# -- input handling ------------------------------------------------------------
def _vector(values: Any, what: str, *, n: int | None = None, finite: bool = False) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if v.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {v.shape}")
    if n is not None and len(v) != n:
        raise ValueError(f"{what} must have {n} values (one per architecture), got {len(v)}")
    if finite and not np.isfinite(v).all():
        bad = int(np.flatnonzero(~np.isfinite(v))[0])
        raise ValueError(f"{what} must be finite; {what}[{bad}] is {v[bad]}")
    return v


def _ranks(values: np.ndarray) -> np.ndarray:
    """Rank 1 = the highest value; ties share their average rank."""
    return stats.rankdata(-values, method="average")


# -- complexity-level bias -------------------------------------------------------
def rank_difference(scores: Any, truth: Any) -> np.ndarray:
    """``RD_i = r_i - n_i``: true rank minus the rank by ``scores`` (1 = best); > 0 is overestimated."""
    s, t = _prepare(scores, truth)
    return _ranks(t) - _ranks(s)


def complexity_groups(complexity: Any, groups: int = 5) -> np.ndarray:
    """The complexity group (0 = smallest) of each architecture, as :func:`complexity_bias` forms them."""
    c = _vector(complexity, "complexity", finite=True)
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or not 1 <= groups <= len(c):
        raise ValueError(f"groups must be an integer from 1 to the number of architectures ({len(c)}), "
                         f"got {groups!r}")
    return np.minimum(groups - 1, np.floor((stats.rankdata(c, method="average") - 0.5) * groups / len(c))).astype(int)


def complexity_bias(scores: Any, truth: Any, complexity: Any, *, groups: int = 5) -> pd.DataFrame:
    """Kendall's tau and the mean ranking difference within each complexity group (Fig. 5).

    The architectures are split into ``groups`` groups by ascending ``complexity`` (FLOPs or
    #params): architecture ``i`` with complexity rank ``c_i`` (1 = smallest, ties averaged) goes
    to group ``floor((c_i - 1/2) * groups / M)``, so without ties the groups have equal sizes
    (to one), tied complexities always share a group, and the split does not depend on the
    order of the input.  ``mean_rd`` averages :func:`rank_difference`, computed over *all*
    architectures, within the group: a negative value means the group is underestimated.
    ``kendall`` (tau-b) compares scores and truth inside the group only; it is NaN for a
    group of fewer than 2 architectures or with a constant side.

    Returns one row per non-empty group: ``group`` (0 = smallest), ``n``,
    ``complexity_min``, ``complexity_max``, ``kendall``, ``mean_rd``.
    """
    s, t = _prepare(scores, truth)
    c = _vector(complexity, "complexity", n=len(s), finite=True)
    member = complexity_groups(c, groups)
    rd = _ranks(t) - _ranks(s)
    rows = []
    for g in range(groups):
        idx = np.flatnonzero(member == g)
        if len(idx) == 0:
            continue
        tau = kendall(s[idx], t[idx]) if len(idx) >= 2 else math.nan
        rows.append({"group": g, "n": len(idx), "complexity_min": float(c[idx].min()),
                     "complexity_max": float(c[idx].max()), "kendall": tau, "mean_rd": float(rd[idx].mean())})
    return pd.DataFrame(rows, columns=["group", "n", "complexity_min", "complexity_max", "kendall", "mean_rd"])


# -- op-level bias ----------------------------------------------------------------
def _graph(arch: Any, i: int) -> nx.Graph:
    g = arch if isinstance(arch, nx.Graph) else getattr(arch, "graph", None)
    if not isinstance(g, nx.Graph):
        raise TypeError(f"architecture {i} must be a networkx graph or have a 'graph' attribute that is one, "
                        f"got {type(arch).__name__}")
    return g


def _labelled(g: nx.Graph) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(structure key, element names, op labels) of a cell graph: its nodes, edges and graph attributes
    fix the structure; every ``op`` attribute of a node or an edge is one labelled element."""
    elements = [(("node", repr(n)), str(d["op"])) for n, d in g.nodes(data=True) if "op" in d]
    elements += [(("edge", repr(u), repr(v)), str(d["op"])) for u, v, d in g.edges(data=True) if "op" in d]
    elements.sort()
    structure = repr((sorted(map(repr, g.nodes)), sorted(repr(e) for e in g.edges),
                      sorted((str(k), repr(v)) for k, v in g.graph.items()), [e for e, _ in elements]))
    return structure, tuple(" ".join(e) for e, _ in elements), tuple(op for _, op in elements)


def mutation_pairs(archs: Sequence[Any]) -> pd.DataFrame:
    """Every pair of architectures that differ in exactly one operation (edit distance 1).

    Two architectures pair when their cell graphs have the same nodes, edges and graph
    attributes and their ``op`` labels differ at exactly one node or edge.  Returns one row per
    unordered pair ``i < j``: ``i``, ``j`` (positions in ``archs``), ``element`` (the node or edge
    that differs, e.g. ``"edge 0 1"``), ``op_i``, ``op_j``.  Duplicates (no difference) are no pair.
    """
    buckets: dict[tuple, list[tuple[int, str, str]]] = defaultdict(list)
    for i, arch in enumerate(archs):
        structure, names, ops = _labelled(_graph(arch, i))
        for p in range(len(ops)):
            buckets[(structure, p, ops[:p] + ops[p + 1:])].append((i, names[p], ops[p]))
    rows = [(a, b, name, op_a, op_b)
            for members in buckets.values() if len(members) > 1
            for (a, name, op_a), (b, _, op_b) in itertools.combinations(members, 2) if op_a != op_b]
    rows.sort()
    return pd.DataFrame(rows, columns=["i", "j", "element", "op_i", "op_j"])


def op_bias(archs: Sequence[Any], scores: Any, truth: Any, *, subset: Any = None,
            pairs: pd.DataFrame | None = None) -> pd.DataFrame:
    """How often mutating one op into another raises the true performance vs the estimate (§5.1).

    Every mutation pair (:func:`mutation_pairs`, or the ``pairs`` given) counts in both
    directions: a pair of ``X`` and ``Y`` versions is one ``X -> Y`` mutation and one ``Y -> X``.
    Per mutation type: ``pairs`` (how many), ``true_increase`` (the fraction whose true
    performance strictly increases), ``estimated_increase`` (the fraction whose score strictly
    increases; a NaN score is the worst) and ``gap = estimated_increase - true_increase`` (> 0:
    the estimator overestimates what ``to_op`` brings).  ``subset`` (a boolean mask or indices)
    keeps only pairs with both architectures in it, e.g. the largest complexity group.
    Rows are sorted by ``from_op``, ``to_op``.
    """
    s, t = _prepare(scores, truth)
    if len(archs) != len(s):
        raise ValueError(f"archs must have {len(s)} entries (one per score), got {len(archs)}")
    if pairs is None:
        pairs = mutation_pairs(archs)
    keep = np.ones(len(s), dtype=bool)
    if subset is not None:
        sub = np.asarray(subset)
        if sub.dtype == bool:
            if sub.shape != (len(s),):
                raise ValueError(f"a boolean subset must have shape ({len(s)},), got {sub.shape}")
            keep = sub
        else:
            if sub.ndim != 1 or not np.issubdtype(sub.dtype, np.integer) or (sub.size and (
                    sub.min() < 0 or sub.max() >= len(s))):
                raise ValueError(f"subset must be a boolean mask or indices in 0..{len(s) - 1}")
            keep = np.zeros(len(s), dtype=bool)
            keep[sub] = True
    i, j = pairs["i"].to_numpy(dtype=int), pairs["j"].to_numpy(dtype=int)
    inside = keep[i] & keep[j]
    i, j = i[inside], j[inside]
    op_i, op_j = pairs["op_i"].to_numpy()[inside], pairs["op_j"].to_numpy()[inside]
    both = pd.DataFrame({
        "from_op": np.concatenate([op_i, op_j]), "to_op": np.concatenate([op_j, op_i]),
        "true_up": np.concatenate([t[j] > t[i], t[i] > t[j]]),
        "est_up": np.concatenate([s[j] > s[i], s[i] > s[j]]),
    })
    out = both.groupby(["from_op", "to_op"], sort=True).agg(
        pairs=("true_up", "size"), true_increase=("true_up", "mean"), estimated_increase=("est_up", "mean"))
    out = out.reset_index()
    out["gap"] = out["estimated_increase"] - out["true_increase"]
    return out


# -- arch-level bias --------------------------------------------------------------
def extremes(scores: Any, truth: Any, *, k: int = 5, names: Sequence[Any] | None = None) -> pd.DataFrame:
    """The ``k`` best and ``k`` worst architectures by ``scores``, with their true ranks (Fig. 6).

    Ties in the scores are broken by position in the input.  Columns: ``side`` (``"best"`` /
    ``"worst"``), ``position`` (1 = the estimator's best, or its worst), ``index``, ``name``
    (``names[index]``: a string, or an architecture's ``string``), ``score``, ``truth``,
    ``true_rank`` (1 = truly best, ties averaged) and ``true_rank_fraction`` (``true_rank / M``).
    """
    s, t = _prepare(scores, truth)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if names is not None and len(names) != len(s):
        raise ValueError(f"names must have {len(s)} entries (one per score), got {len(names)}")
    k = min(int(k), len(s))
    order = np.lexsort((np.arange(len(s)), -s))  # best first, ties by position
    true_rank = _ranks(t)
    rows = []
    for side, picks in (("best", order[:k]), ("worst", order[::-1][:k])):
        for position, idx in enumerate(picks, 1):
            name = names[idx] if names is not None else str(idx)
            rows.append({"side": side, "position": position, "index": int(idx),
                         "name": getattr(name, "string", name) if not isinstance(name, str) else name,
                         "score": float(s[idx]), "truth": float(t[idx]), "true_rank": float(true_rank[idx]),
                         "true_rank_fraction": float(true_rank[idx] / len(s))})
    return pd.DataFrame(rows)


# -- variance ---------------------------------------------------------------------
def forgetting_values(acc_after_step: Any, acc_after_epoch: Any) -> np.ndarray:
    """The forgetting value ``FV = acc_2 - acc_1`` of each architecture trained in one epoch (§5.3).

    ``acc_after_step`` (``acc_1``): each architecture's validation accuracy right after its own
    training step; ``acc_after_epoch`` (``acc_2``): its accuracy once every architecture of the
    epoch has been trained.  Negative values are forgetting (the steps of others overwrote the
    shared weights it uses); positive ones a transfer.
    """
    a1 = _vector(acc_after_step, "acc_after_step", finite=True)
    a2 = _vector(acc_after_epoch, "acc_after_epoch", n=len(a1), finite=True)
    return a2 - a1


def _score_sets(score_sets: Any) -> tuple[list[str], list[np.ndarray]]:
    if isinstance(score_sets, Mapping):
        labels, sets = [str(k) for k in score_sets], list(score_sets.values())
    elif isinstance(score_sets, Sequence) and not isinstance(score_sets, (str, bytes)):
        labels, sets = [str(i) for i in range(len(score_sets))], list(score_sets)
    else:
        raise TypeError(f"score_sets must be a sequence or a mapping of score arrays, got {type(score_sets).__name__}")
    if len(sets) < 2:
        raise ValueError(f"stability needs at least 2 sets of scores (checkpoints or seeds), got {len(sets)}")
    first = _vector(sets[0], f"score set {labels[0]!r}")
    arrays = [first] + [_vector(v, f"score set {label!r}", n=len(first)) for label, v in zip(labels[1:], sets[1:])]
    if len(first) < 2:
        raise ValueError(f"stability needs at least 2 architectures, got {len(first)}")
    return labels, [np.where(np.isnan(a), -np.inf, a) for a in arrays]


def _as_truth(a: np.ndarray) -> np.ndarray:
    """Scores used as the reference side: non-finite values rank below every finite one."""
    finite = np.isfinite(a)
    if finite.all():
        return a
    low = a[finite].min() - 1.0 if finite.any() else 0.0
    high = a[finite].max() + 1.0 if finite.any() else 1.0
    return np.where(np.isposinf(a), high, np.where(finite, a, low))


def ranking_stability(score_sets: Any, *, ks: Sequence[float] = (0.05, 0.5),
                      pairs: str = "consecutive") -> pd.DataFrame:
    """How stable the ranking is between checkpoints or seeds (Fig. 7).

    ``score_sets``: a sequence (or a mapping ``label -> scores``) of score arrays over the same
    architectures, e.g. one per supernet checkpoint in training order, or one per seed.  With
    ``pairs="consecutive"`` each set is compared with the next, the later one taken as the
    truth (the paper's relative KD and relative P@top/bottomK); with ``pairs="all"`` every pair
    (seeds have no order).  Columns: ``reference`` and ``compared`` (labels), ``kendall``,
    ``spearman`` and ``P@topK`` / ``P@bottomK`` for each ``K`` in ``ks``.  A NaN score is the worst
    on either side.
    """
    labels, sets = _score_sets(score_sets)
    if pairs == "consecutive":
        index_pairs = [(a + 1, a) for a in range(len(sets) - 1)]
    elif pairs == "all":
        index_pairs = [(b, a) for a, b in itertools.combinations(range(len(sets)), 2)]
    else:
        raise ValueError(f"pairs must be 'consecutive' or 'all', got {pairs!r}")
    rows = []
    for ref, cmp_ in index_pairs:
        truth, scores = _as_truth(sets[ref]), sets[cmp_]
        row = {"reference": labels[ref], "compared": labels[cmp_],
               "kendall": kendall(scores, truth), "spearman": spearman(scores, truth)}
        for k in ks:
            pct = f"{100 * k:g}%"
            row[f"P@top{pct}"] = precision_at_top_k(scores, truth, k)
            row[f"P@bottom{pct}"] = precision_at_bottom_k(scores, truth, k)
        rows.append(row)
    return pd.DataFrame(rows)


def rank_spread(score_sets: Any) -> pd.DataFrame:
    """Each architecture's rank across checkpoints or seeds: ``mean_rank`` and ``rank_std`` (population
    standard deviation), both as fractions of ``M`` (1/M = best), plus ``best_rank`` and ``worst_rank``.

    A stable estimator gives every architecture a small ``rank_std``; a NaN score is the worst.
    """
    _, sets = _score_sets(score_sets)
    ranks = np.stack([_ranks(s) for s in sets]) / len(sets[0])
    return pd.DataFrame({"mean_rank": ranks.mean(axis=0), "rank_std": ranks.std(axis=0),
                         "best_rank": ranks.min(axis=0), "worst_rank": ranks.max(axis=0)})
