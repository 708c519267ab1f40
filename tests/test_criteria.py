import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas_engine.criteria import (
    best_ranking_at_k,
    evaluate_ranking,
    kendall,
    pearson,
    precision_at_bottom_k,
    precision_at_top_k,
    rank_agreement,
    spearman,
    top_k_mean,
    worst_ranking_at_k,
)

SET_CRITERIA = (precision_at_top_k, precision_at_bottom_k, best_ranking_at_k, worst_ranking_at_k, top_k_mean)

TRUTH = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]  # item i has true rank 10 - i


def test_perfect_and_reversed_rankings():
    best = evaluate_ranking(TRUTH, TRUTH, ks=(0.1, 0.5))
    assert best["spearman"] == pytest.approx(1) and best["kendall"] == pytest.approx(1)
    assert best["pearson"] == pytest.approx(1)
    assert best["p@top10%"] == best["p@bottom10%"] == best["p@top50%"] == 1.0
    assert best["br@10%"] == best["wr@10%"] == pytest.approx(0.1)  # picks only the true best
    assert best["wr@50%"] == pytest.approx(0.5)
    assert best["top50%_mean"] == pytest.approx(0.8)

    worst = evaluate_ranking(TRUTH[::-1], TRUTH, ks=(0.1, 0.5))
    assert worst["spearman"] == pytest.approx(-1) and worst["kendall"] == pytest.approx(-1)
    assert worst["pearson"] == pytest.approx(-1)
    assert worst["p@top10%"] == worst["p@bottom10%"] == worst["p@top50%"] == 0.0
    assert worst["br@10%"] == worst["wr@10%"] == pytest.approx(1.0)  # picks only the true worst
    assert worst["br@50%"] == pytest.approx(0.6) and worst["wr@50%"] == pytest.approx(1.0)
    assert worst["top50%_mean"] == pytest.approx(0.3)


def test_hand_computed_small_case():
    truth = [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]  # true ranks 1..6
    scores = [0.3, 0.9, 0.8, 0.1, 0.2, 0.0]  # score ranks 3, 1, 2, 5, 4, 6
    # k = 1/3 -> 2 items; by score {1, 2} (true ranks 2, 3); true top-2 {0, 1}; bottom {5, 3} vs {5, 4}
    assert precision_at_top_k(scores, truth, 1 / 3) == pytest.approx(0.5)
    assert precision_at_bottom_k(scores, truth, 1 / 3) == pytest.approx(0.5)
    assert best_ranking_at_k(scores, truth, 1 / 3) == pytest.approx(2 / 6)
    assert worst_ranking_at_k(scores, truth, 1 / 3) == pytest.approx(3 / 6)
    assert top_k_mean(scores, truth, 1 / 3) == pytest.approx(3.5)
    # k = 0.5 -> 3 items {1, 2, 0}: exactly the true top 3
    assert precision_at_top_k(scores, truth, 0.5) == pytest.approx(1.0)
    assert precision_at_bottom_k(scores, truth, 0.5) == pytest.approx(1.0)
    assert worst_ranking_at_k(scores, truth, 0.5) == pytest.approx(3 / 6)
    # rank differences d = (2, -1, -1, 1, -1, 0): rho = 1 - 6 * 8 / (6 * 35)
    assert spearman(scores, truth) == pytest.approx(1 - 48 / 210)
    # concordant pairs 12, discordant 3 (items 0-1, 0-2, 3-4)
    assert kendall(scores, truth) == pytest.approx((12 - 3) / 15)
    assert pearson(scores, truth) == pytest.approx(np.corrcoef(scores, truth)[0, 1])


def test_k_rounding():
    scores = np.arange(100.0)
    # ceil(k * n), with k * n rounded first: 0.07 * 100 is 7.000000000000001 in floating point
    assert 0.07 * 100 > 7
    assert top_k_mean(scores, scores, 0.07) == pytest.approx(np.mean(np.arange(93, 100)))
    assert top_k_mean(scores, scores, 0.071) == pytest.approx(np.mean(np.arange(92, 100)))
    # at least one item
    assert top_k_mean(scores, scores, 0.001) == pytest.approx(99)
    assert best_ranking_at_k(scores[::-1], scores, 0.001) == pytest.approx(1.0)
    # k = 1 takes everything
    assert precision_at_top_k(scores[::-1], scores, 1) == 1.0
    assert best_ranking_at_k(scores[::-1], scores, 1) == pytest.approx(0.01)
    assert worst_ranking_at_k(scores[::-1], scores, 1) == pytest.approx(1.0)
    # n = 4, k = 0.3 -> ceil(1.2) = 2 items
    assert top_k_mean([4, 3, 2, 1], [10, 20, 30, 40], 0.3) == pytest.approx(15)


def test_score_ties_are_averaged_over_tie_breaking():
    truth = [4.0, 3.0, 2.0, 1.0]
    # top-1 by score is item 0 or 1 with probability 1/2 each (true ranks 1 and 2)
    scores = [1.0, 1.0, 0.0, 0.0]
    assert precision_at_top_k(scores, truth, 0.25) == pytest.approx(0.5)
    assert best_ranking_at_k(scores, truth, 0.25) == pytest.approx(1.5 / 4)
    assert worst_ranking_at_k(scores, truth, 0.25) == pytest.approx(1.5 / 4)
    assert top_k_mean(scores, truth, 0.25) == pytest.approx(3.5)
    # top-2: both, deterministically
    assert precision_at_top_k(scores, truth, 0.5) == 1.0
    assert best_ranking_at_k(scores, truth, 0.5) == pytest.approx(1 / 4)
    assert worst_ranking_at_k(scores, truth, 0.5) == pytest.approx(2 / 4)
    # top-3: items 0, 1 plus item 2 or 3; wr = (3 + 4) / 2 / 4
    assert worst_ranking_at_k(scores, truth, 0.75) == pytest.approx(3.5 / 4)
    # all scores tied: 2 random items of 4; best rank of a random pair is 5/3 on average
    assert best_ranking_at_k([0] * 4, truth, 0.5) == pytest.approx(5 / 3 / 4)
    assert worst_ranking_at_k([0] * 4, truth, 0.5) == pytest.approx((5 - 5 / 3) / 4)
    assert precision_at_top_k([0] * 4, truth, 0.5) == pytest.approx(0.5)


def test_truth_ties_make_a_fractional_true_top_set():
    # the true top-1 is item 0 or item 1
    truth = [1.0, 1.0, 0.0, 0.0]
    assert precision_at_top_k([3, 2, 1, 0], truth, 0.25) == pytest.approx(0.5)
    assert precision_at_top_k([3, 2, 1, 0], truth, 0.5) == 1.0
    # the picked item shares ranks 1-2 with item 1: rank 1.5 on average
    assert best_ranking_at_k([3, 2, 1, 0], truth, 0.25) == pytest.approx(1.5 / 4)
    # both tied items picked: one of them has rank 1
    assert best_ranking_at_k([3, 2, 1, 0], truth, 0.5) == pytest.approx(1 / 4)
    assert worst_ranking_at_k([3, 2, 1, 0], truth, 0.5) == pytest.approx(2 / 4)
    # a constant truth: every criterion is that of a random ranking
    assert precision_at_top_k([3, 2, 1, 0], [7] * 4, 0.25) == pytest.approx(0.25)
    assert best_ranking_at_k([3, 2, 1, 0], [7] * 4, 0.25) == pytest.approx(2.5 / 4)


def test_ties_on_both_sides():
    truth = [2.0, 2.0, 1.0, 1.0, 0.0]
    scores = [0.0, 5.0, 5.0, 1.0, 1.0]
    # top-1 by score: item 1 (true ranks 1-2) or item 2 (true ranks 3-4), each with probability 1/2
    assert precision_at_top_k(scores, truth, 0.2) == pytest.approx(0.5 * 0.5)
    assert best_ranking_at_k(scores, truth, 0.2) == pytest.approx((1.5 + 3.5) / 2 / 5)
    # the crossing convention does not depend on item order
    perm = [4, 2, 0, 3, 1]
    for f in SET_CRITERIA:
        assert f(np.take(scores, perm), np.take(truth, perm), 0.4) == pytest.approx(f(scores, truth, 0.4))


def _brute_force(scores, truth, k: float) -> dict[str, float]:
    """Each set criterion averaged, by the paper's no-ties formula, over every way of breaking the ties."""
    n = len(scores)
    m = max(1, math.ceil(round(k * n, 9)))
    s = np.where(np.isnan(scores), -np.inf, scores)

    def orders(values):  # every strict best-first order consistent with the values
        return {tuple(sorted(range(n), key=lambda i: (-values[i], p[i]))) for p in itertools.permutations(range(n))}

    results = []
    for by_score, by_truth in itertools.product(orders(s), orders(truth)):
        rank = {item: r + 1 for r, item in enumerate(by_truth)}
        picks = by_score[:m]
        results.append({
            "precision_at_top_k": len(set(picks) & set(by_truth[:m])) / m,
            "precision_at_bottom_k": len(set(by_score[-m:]) & set(by_truth[-m:])) / m,
            "best_ranking_at_k": min(rank[i] for i in picks) / n,
            "worst_ranking_at_k": max(rank[i] for i in picks) / n,
            "top_k_mean": float(np.mean([truth[i] for i in picks])),
        })
    return {name: float(np.mean([r[name] for r in results])) for name in results[0]}


values = st.sampled_from([0.0, 1.0, 2.0, 3.0, math.nan])


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 5).flatmap(lambda n: st.tuples(
    st.lists(values, min_size=n, max_size=n),
    st.lists(values.filter(lambda v: not math.isnan(v)), min_size=n, max_size=n),
    st.sampled_from([0.1, 0.25, 1 / 3, 0.5, 0.8, 1.0]),
)))
def test_set_criteria_equal_the_average_over_tie_breakings(case):
    scores, truth, k = case
    expected = _brute_force(scores, truth, k)
    for f in SET_CRITERIA:
        assert f(scores, truth, k) == pytest.approx(expected[f.__name__], abs=1e-9)


def test_nan_scores_count_as_worst():
    truth = [5.0, 4.0, 3.0, 2.0, 1.0]
    scores = [math.nan, 4.0, 3.0, 2.0, 1.0]  # the true best failed
    assert precision_at_top_k(scores, truth, 0.2) == 0.0
    assert best_ranking_at_k(scores, truth, 0.2) == pytest.approx(2 / 5)
    assert worst_ranking_at_k(scores, truth, 1.0) == pytest.approx(1.0)
    # it is ranked last: bottom-1 by score is item 0, the true best
    assert precision_at_bottom_k(scores, truth, 0.2) == 0.0
    assert spearman(scores, truth) == pytest.approx(spearman([-1e9, 4, 3, 2, 1], truth))
    assert kendall(scores, truth) == pytest.approx(kendall([-1e9, 4, 3, 2, 1], truth))
    assert math.isnan(pearson(scores, truth))
    # NaN scores tie with each other (and with -inf) at the bottom
    two_failed = [math.nan, -math.inf, 3.0, 2.0, 1.0]
    assert precision_at_bottom_k(two_failed, [1, 2, 3, 4, 5], 0.2) == pytest.approx(0.5)


def test_constant_side_gives_nan_correlations():
    for f in (spearman, kendall, pearson):
        assert math.isnan(f([1, 1, 1], [1, 2, 3]))
        assert math.isnan(f([1, 2, 3], [0, 0, 0]))
        assert math.isnan(f([math.nan, math.nan], [1, 2]))


def test_rank_agreement_treats_both_sides_as_scores():
    """Two scorings of the same architectures (ours vs a peer's): NaN on either side ranks lowest."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=20), rng.normal(size=20)
    assert rank_agreement(a, b) == spearman(a, b)  # a finite second side: Spearman itself
    a[3], b[5] = math.nan, math.nan  # NaN truth would be refused by spearman
    with pytest.raises(ValueError, match="truth must be finite"):
        spearman(a, b)
    ranks_a = np.argsort(np.argsort(np.where(np.isnan(a), -1e9, a)))
    ranks_b = np.argsort(np.argsort(np.where(np.isnan(b), -1e9, b)))  # no ties: ranks are exact
    assert rank_agreement(a, b) == pytest.approx(np.corrcoef(ranks_a, ranks_b)[0, 1])
    # NaN ties with -inf, infinite values are ranked, and ties get average ranks
    assert rank_agreement([math.nan, -math.inf, 1, 2], [1, 2, 3, 4]) == pytest.approx(
        np.corrcoef([1.5, 1.5, 3, 4], [1, 2, 3, 4])[0, 1])
    assert rank_agreement([1, 2, 3], [math.inf, 0, math.nan]) == pytest.approx(-1.0)  # ranks 3, 2, 1
    # undefined: a constant side or fewer than 2 pairs
    assert math.isnan(rank_agreement([1, 1, 1], [1, 2, 3])) and math.isnan(rank_agreement([1, 2], [math.nan] * 2))
    assert math.isnan(rank_agreement([1.0], [2.0])) and math.isnan(rank_agreement([], []))
    with pytest.raises(ValueError, match="same length"):
        rank_agreement([1, 2, 3], [1, 2])


def test_kendall_is_tau_b():
    scores, truth = [1, 1, 2, 3], [1, 2, 3, 4]
    # concordant 5, discordant 0, one tie in scores: 5 / sqrt((6 - 1) * 6)
    assert kendall(scores, truth) == pytest.approx(5 / math.sqrt(30))
    # spearman with average ranks (1.5, 1.5, 3, 4)
    assert spearman(scores, truth) == pytest.approx(np.corrcoef([1.5, 1.5, 3, 4], [1, 2, 3, 4])[0, 1])


@pytest.mark.parametrize(("scores", "truth", "k", "message"), [
    ([1, 2, 3], [1, 2], 0.5, "same length; got 3 and 2"),
    ([1], [1], 0.5, "at least 2 items; got 1"),
    ([[1, 2], [3, 4]], [[1, 2], [3, 4]], 0.5, r"must be 1-D; got shapes \(2, 2\)"),
    ([1, 2, 3], [1, math.nan, 3], 0.5, r"truth must be finite; truth\[1\] is nan"),
    ([1, 2, 3], [1, 2, math.inf], 0.5, r"truth\[2\] is inf"),
    ([1, 2, 3], [1, 2, 3], 0, r"k must be a fraction in \(0, 1\]; got 0"),
    ([1, 2, 3], [1, 2, 3], 1.5, "got 1.5"),
    ([1, 2, 3], [1, 2, 3], math.nan, "got nan"),
])
def test_invalid_input(scores, truth, k, message):
    with pytest.raises(ValueError, match=message):
        precision_at_top_k(scores, truth, k)


def test_invalid_input_in_correlations_and_evaluate_ranking():
    with pytest.raises(ValueError, match="same length"):
        spearman([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="truth must be finite"):
        kendall([1, 2], [1, math.nan])
    with pytest.raises(ValueError, match="got 2"):
        evaluate_ranking([1, 2], [1, 2], ks=(0.5, 2))
    with pytest.raises(ValueError, match="distinct percentages"):
        evaluate_ranking([1, 2], [1, 2], ks=(0.5, 0.5))


def test_evaluate_ranking_keys_and_values():
    scores, truth = [0.3, 0.9, 0.8, 0.1, 0.2, 0.0], [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]
    out = evaluate_ranking(scores, truth, ks=(0.005, 0.5))
    assert list(out) == [
        "spearman", "kendall", "pearson",
        "p@top0.5%", "p@bottom0.5%", "br@0.5%", "wr@0.5%", "top0.5%_mean",
        "p@top50%", "p@bottom50%", "br@50%", "wr@50%", "top50%_mean",
    ]
    assert out["br@50%"] == best_ranking_at_k(scores, truth, 0.5)
    assert out["top0.5%_mean"] == top_k_mean(scores, truth, 0.005) == 4.0
    assert set(evaluate_ranking(scores, truth)) >= {"p@top5%", "p@bottom10%", "br@50%", "wr@5%", "top10%_mean"}
