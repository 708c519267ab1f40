"""Ranking criteria: how well estimator scores rank architectures by their true performance.

The criteria of "Evaluating Efficient Performance Estimators of Neural Architectures" (§3):
Pearson, Kendall τ (tau-b), Spearman, P@topK, P@bottomK, BR@K, WR@K, plus the mean true
value of the top-K picks.  Every function takes ``(scores, truth)``: two equal-length 1-D
array-likes, **higher is better on both** (negate losses before calling).

Conventions
-----------
**K.**  ``k`` is a fraction of the population in (0, 1]; a K-portion of ``n`` architectures
is ``m = max(1, ceil(k * n))`` architectures.  ``k * n`` is rounded to 9 decimals before the
ceiling, so floating-point noise does not add an item (``0.07 * 100`` is 7, not 8).

**Ranks.**  The true rank of the best architecture is 1 and of the worst ``n``, as in the
paper; BR@K and WR@K report ranks normalised by ``n``, so they lie in [1/n, 1] and lower is
better.  P@topK and P@bottomK divide by ``m``, so they lie in [0, 1] and higher is better.

**Ties.**  The set-based criteria (P@topK, P@bottomK, BR@K, WR@K, top-K mean) are the
*expected value of the paper's formula under uniformly random tie-breaking*, done
independently for scores and for truth.  They do not depend on the order of the input, and
without ties they equal the paper's formulas exactly.  Concretely, when the K-portion cuts
through a group of tied values, each member of the group belongs to the portion with
probability (places left) / (group size): the true top-K set is well defined as such a
fractional set, and P@topK is ``sum_i P(i in score top-K) * P(i in true top-K) / m``.  For
BR@K/WR@K a tied true value spans several ranks, which are shared out at random among the
tied architectures.  The correlations use scipy's tie handling: average ranks for
Spearman, tau-b for Kendall.

**Missing values.**  A NaN score (e.g. a candidate whose training failed) counts as the
worst possible score, ``-inf``; NaN scores therefore tie with each other (and with
``-inf``) at the bottom.  Pearson, a correlation of values rather than ranks, is NaN when
any score is not finite.  The truth must be finite: NaN or infinite truth raises
``ValueError``.  A correlation with a constant side is undefined and returns NaN.

**Two scorings.**  :func:`rank_agreement` compares two estimators' scores of the same
architectures (ours against a peer implementation's, or two seeds of one proxy): Spearman
with both sides treated as scores, so a NaN on *either* side ranks lowest (as ``-inf``),
infinite values on either side are ranked, and fewer than 2 pairs give NaN instead of an
error.  Where the second side is finite it equals ``spearman(a, b)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats
from scipy.special import gammaln

__all__ = [
    "spearman", "kendall", "pearson", "rank_agreement", "precision_at_top_k", "precision_at_bottom_k",
    "best_ranking_at_k", "worst_ranking_at_k", "top_k_mean", "evaluate_ranking",
]


# -- input handling ------------------------------------------------------------
def _prepare(scores, truth) -> tuple[np.ndarray, np.ndarray]:
    """Validated float arrays; NaN scores become ``-inf``."""
    s = np.asarray(scores, dtype=float)
    t = np.asarray(truth, dtype=float)
    if s.ndim != 1 or t.ndim != 1:
        raise ValueError(f"scores and truth must be 1-D; got shapes {s.shape} and {t.shape}")
    if len(s) != len(t):
        raise ValueError(f"scores and truth must have the same length; got {len(s)} and {len(t)}")
    if len(s) < 2:
        raise ValueError(f"ranking criteria need at least 2 items; got {len(s)}")
    if not np.isfinite(t).all():
        bad = int(np.flatnonzero(~np.isfinite(t))[0])
        raise ValueError(f"truth must be finite; truth[{bad}] is {t[bad]}")
    return np.where(np.isnan(s), -np.inf, s), t


def _portion(k: float, n: int) -> int:
    """Number of items in a K-portion of ``n``: ``max(1, ceil(k * n))``."""
    if not 0 < k <= 1:
        raise ValueError(f"k must be a fraction in (0, 1]; got {k!r}")
    return max(1, math.ceil(round(k * n, 9)))


# -- top-m sets under random tie-breaking ----------------------------------------
class _Top(NamedTuple):
    """The ``m`` largest of some values, ties broken uniformly at random.

    The set is every ``sure`` item plus a uniformly random ``draws``-subset of the ``tied``
    items (those equal to the m-th largest value).
    """

    sure: np.ndarray
    tied: np.ndarray
    draws: int

    @property
    def membership(self) -> np.ndarray:
        """Probability that each item is in the set (sums to ``m``)."""
        return self.sure + self.tied * (self.draws / self.tied.sum())


def _top(values: np.ndarray, m: int) -> _Top:
    cut = np.sort(values)[-m]
    sure = values > cut
    return _Top(sure, values == cut, m - int(sure.sum()))


def _log_comb(n, k) -> np.ndarray:
    """log C(n, k), elementwise; ``-inf`` where ``k < 0`` or ``k > n``."""
    n, k = np.broadcast_arrays(np.asarray(n, dtype=float), np.asarray(k, dtype=float))
    out = np.full(n.shape, -np.inf)
    ok = (k >= 0) & (k <= n)
    out[ok] = gammaln(n[ok] + 1) - gammaln(k[ok] + 1) - gammaln(n[ok] - k[ok] + 1)
    return out


def _expected_best_rank(picks: _Top, truth: np.ndarray) -> float:
    """Expected best (smallest) true rank among ``picks``, true ties broken at random.

    The true values form groups of equal value, best first.  The best pick lies in the first
    group that holds a pick; if that group has ``h`` items after ``a`` strictly better ones
    and holds ``c`` picks, the picks take ``c`` random ranks of ``a+1 .. a+h``, whose minimum
    is ``a + (h + 1) / (c + 1)`` on average.  The number of random (tied) picks landing in
    each group follows from counting subsets.
    """
    _, group, sizes = np.unique(-truth, return_inverse=True, return_counts=True)
    sure = np.bincount(group, weights=picks.sure, minlength=len(sizes)).astype(int)
    tied = np.bincount(group, weights=picks.tied, minlength=len(sizes)).astype(int)
    n_tied, draws = int(picks.tied.sum()), picks.draws
    expected, better, tied_in_better = 0.0, 0, 0
    for h, s, g in zip(sizes, sure, tied):
        # P(no random pick in a better group, and exactly t of them in this group)
        t = np.arange(g + 1)
        p = np.exp(_log_comb(g, t) + _log_comb(n_tied - tied_in_better - g, draws - t)
                   - _log_comb(n_tied, draws))
        c = s + t
        expected += float(np.sum(p[c > 0] * (better + (h + 1) / (c[c > 0] + 1))))
        better += h
        tied_in_better += g
        if s > 0 or n_tied - tied_in_better < draws:  # no pick can be left for worse groups
            break
    return expected


# -- correlations ----------------------------------------------------------------
def _constant(x: np.ndarray) -> bool:
    return bool(np.all(x == x[0]))


def spearman(scores, truth) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN if either side is constant."""
    s, t = _prepare(scores, truth)
    if _constant(s) or _constant(t):
        return math.nan
    return float(stats.spearmanr(s, t).statistic)


def kendall(scores, truth) -> float:
    """Kendall's tau-b (corrects for ties on either side); NaN if either side is constant."""
    s, t = _prepare(scores, truth)
    if _constant(s) or _constant(t):
        return math.nan
    return float(stats.kendalltau(s, t, variant="b").statistic)


def pearson(scores, truth) -> float:
    """Pearson's linear correlation; NaN if any score is non-finite or either side is constant."""
    s, t = _prepare(scores, truth)
    if not np.isfinite(s).all() or _constant(s) or _constant(t):
        return math.nan
    return float(stats.pearsonr(s, t).statistic)


def rank_agreement(a, b) -> float:
    """Spearman's rank correlation between two scorings of the same architectures (average ranks for ties).

    Both sides are scores: NaN on either side ranks lowest (as ``-inf``, tied with it), infinite
    values are ranked like any other.  NaN if either side is constant or there are fewer than 2
    pairs.  Where ``b`` is finite this is :func:`spearman` ``(a, b)``.
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.ndim != 1 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"a and b must be 1-D of the same length; got shapes {x.shape} and {y.shape}")
    if len(x) < 2:
        return math.nan
    x, y = np.where(np.isnan(x), -np.inf, x), np.where(np.isnan(y), -np.inf, y)
    if _constant(x) or _constant(y):
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


# -- set-based criteria ------------------------------------------------------------
def precision_at_top_k(scores, truth, k: float) -> float:
    """P@topK: the fraction of the top-K portion by score that is also in the true top-K portion.

    In [0, 1], higher is better; 1 means the estimator finds exactly the true top-K.
    """
    s, t = _prepare(scores, truth)
    m = _portion(k, len(s))
    return float(np.dot(_top(s, m).membership, _top(t, m).membership) / m)


def precision_at_bottom_k(scores, truth, k: float) -> float:
    """P@bottomK: the fraction of the bottom-K portion by score that is also in the true bottom-K.

    In [0, 1], higher is better.  NaN scores, being the worst, fall in the bottom portion.
    """
    s, t = _prepare(scores, truth)
    m = _portion(k, len(s))
    return float(np.dot(_top(-s, m).membership, _top(-t, m).membership) / m)


def best_ranking_at_k(scores, truth, k: float) -> float:
    """BR@K: the best true rank among the top-K portion by score, divided by ``n``.

    True rank 1 is the best architecture, so BR@K is in [1/n, 1] and lower is better: 1/n
    means the true best architecture is among the picks.
    """
    s, t = _prepare(scores, truth)
    return _expected_best_rank(_top(s, _portion(k, len(s))), t) / len(s)


def worst_ranking_at_k(scores, truth, k: float) -> float:
    """WR@K: the worst true rank among the top-K portion by score, divided by ``n``.

    In [1/n, 1], lower is better: 1 means the true worst architecture is among the picks.
    """
    s, t = _prepare(scores, truth)
    n = len(s)
    # ranks counted from the worst end are n + 1 - ranks counted from the best end
    return (n + 1 - _expected_best_rank(_top(s, _portion(k, n)), -t)) / n


def top_k_mean(scores, truth, k: float) -> float:
    """The mean true value of the top-K portion by score (in the units of ``truth``)."""
    s, t = _prepare(scores, truth)
    m = _portion(k, len(s))
    return float(np.dot(_top(s, m).membership, t) / m)


def _percent(k: float) -> str:
    return f"{k * 100:g}%"


def evaluate_ranking(scores, truth, ks=(0.05, 0.1, 0.5)) -> dict[str, float]:
    """Every criterion at once.

    Keys: ``"spearman"``, ``"kendall"``, ``"pearson"`` and, for each ``k`` in ``ks`` written
    as a percentage ``P`` (``0.05`` → ``"5%"``, ``0.005`` → ``"0.5%"``): ``"p@topP"``,
    ``"p@bottomP"``, ``"br@P"``, ``"wr@P"`` and ``"topP_mean"`` — e.g. ``"p@top5%"``,
    ``"br@5%"``, ``"top5%_mean"``.
    """
    labels = [_percent(k) for k in ks]
    if len(set(labels)) != len(labels):
        raise ValueError(f"ks must give distinct percentages; got {list(ks)!r} -> {labels}")
    out = {"spearman": spearman(scores, truth), "kendall": kendall(scores, truth),
           "pearson": pearson(scores, truth)}
    for k, p in zip(ks, labels):
        out[f"p@top{p}"] = precision_at_top_k(scores, truth, k)
        out[f"p@bottom{p}"] = precision_at_bottom_k(scores, truth, k)
        out[f"br@{p}"] = best_ranking_at_k(scores, truth, k)
        out[f"wr@{p}"] = worst_ranking_at_k(scores, truth, k)
        out[f"top{p}_mean"] = top_k_mean(scores, truth, k)
    return out
