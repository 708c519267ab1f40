"""The estimator diagnosis of Ning et al. (nas_engine.diagnosis) on hand-made inputs with known answers."""

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from nas_engine import create
from nas_engine.diagnosis import (
    complexity_bias,
    extremes,
    forgetting_values,
    mutation_pairs,
    op_bias,
    rank_difference,
    rank_spread,
    ranking_stability,
)

SKIP, C1, C3, POOL = "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"


def test_rank_difference_is_true_rank_minus_estimated_rank():
    truth = [4.0, 3.0, 2.0, 1.0]  # true ranks 1, 2, 3, 4
    assert rank_difference([1.0, 2.0, 3.0, 4.0], truth).tolist() == [-3.0, -1.0, 1.0, 3.0]
    assert rank_difference([9.0, 5.0, 1.0, 0.0], truth).tolist() == [0.0] * 4
    # a NaN score ranks last: the truly best architecture is then underestimated by 3 places
    assert rank_difference([np.nan, 5.0, 1.0, 0.0], truth).tolist() == [-3.0, 1.0, 1.0, 1.0]
    # ties share their average rank: ranks 2.5, 2.5 by score
    assert rank_difference([3.0, 1.0, 1.0, 0.0], truth).tolist() == [0.0, -0.5, 0.5, 0.0]


def test_complexity_bias_groups_tau_and_mean_rd():
    rng = np.random.default_rng(0)
    c = rng.permutation(10).astype(float)  # complexities 0..9 in a shuffled order
    truth = c.copy()                       # bigger is truly better ...
    scores = -c                            # ... the estimator prefers small models: true rank 10-c, estimated c+1
    table = complexity_bias(scores, truth, c, groups=5)
    assert table["group"].tolist() == [0, 1, 2, 3, 4]
    assert table["n"].tolist() == [2] * 5
    assert table["complexity_min"].tolist() == [0, 2, 4, 6, 8]
    assert table["complexity_max"].tolist() == [1, 3, 5, 7, 9]
    # RD = (10 - c) - (c + 1) = 9 - 2c: group means 8, 4, 0, -4, -8 (small overestimated, large under)
    assert table["mean_rd"].tolist() == [8.0, 4.0, 0.0, -4.0, -8.0]
    assert table["kendall"].tolist() == [-1.0] * 5
    # the order of the input does not matter
    perm = rng.permutation(10)
    pd.testing.assert_frame_equal(complexity_bias(scores[perm], truth[perm], c[perm], groups=5), table)


def test_tied_complexities_share_a_group():
    c = [1, 1, 1, 1, 2, 3]  # complexity ranks 2.5 x4, 5, 6 -> groups floor((r - .5) * 3 / 6): 1, 1, 1, 1, 2, 2
    table = complexity_bias([1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6], c, groups=3)
    assert table["group"].tolist() == [1, 2] and table["n"].tolist() == [4, 2]
    assert table["kendall"].tolist() == [1.0, 1.0] and table["mean_rd"].tolist() == [0.0, 0.0]
    single = complexity_bias([1, 2, 3], [3, 2, 1], [0, 1, 2], groups=3)
    assert single["n"].tolist() == [1, 1, 1] and single["kendall"].isna().all()
    with pytest.raises(ValueError, match="groups must be an integer from 1 to the number of architectures"):
        complexity_bias([1, 2], [1, 2], [1, 2], groups=3)
    with pytest.raises(ValueError, match=r"complexity must have 2 values"):
        complexity_bias([1, 2], [1, 2], [1, 2, 3])


@pytest.fixture(scope="module")
def nb201():
    return create("space", "nb201")


def _arch(space, ops):
    return space.from_ops(ops)


def test_mutation_pairs_on_nb201_edges(nb201):
    base = [SKIP] * 6
    archs = [
        _arch(nb201, base),                               # 0
        _arch(nb201, [C3] + base[1:]),                    # 1: edge 0 of 0 mutated
        _arch(nb201, [C3, C3] + base[2:]),                # 2: edge 1 of 1 mutated (2 from 0)
        _arch(nb201, [POOL] + base[1:]),                  # 3: edge 0 of 0 and of 1 mutated
        _arch(nb201, base),                               # 4: a duplicate of 0 (no pair with it)
    ]
    pairs = mutation_pairs(archs)
    got = {(r.i, r.j, r.op_i, r.op_j) for r in pairs.itertuples()}
    assert got == {(0, 1, SKIP, C3), (0, 3, SKIP, POOL), (1, 2, SKIP, C3), (1, 3, C3, POOL),
                   (1, 4, C3, SKIP), (3, 4, POOL, SKIP)}
    edge0 = nb201.EDGES[0]
    assert set(pairs.loc[(pairs.i == 0) & (pairs.j == 1), "element"]) == {f"edge {edge0[0]!r} {edge0[1]!r}"}
    # plain graphs with ops on nodes (NB-101 style) pair the same way; another edge set never pairs
    def chain(*ops, extra_edge=False):
        g = nx.DiGraph()
        for n, op in enumerate(("input", *ops, "output")):
            g.add_node(n, op=op)
        nx.add_path(g, range(len(ops) + 2))
        if extra_edge:
            g.add_edge(0, len(ops) + 1)
        return g
    graphs = [chain("conv3x3", "maxpool"), chain("conv1x1", "maxpool"), chain("conv3x3", "maxpool", extra_edge=True)]
    assert [tuple(r) for r in mutation_pairs(graphs)[["i", "j", "op_i", "op_j"]].itertuples(index=False)] == [
        (0, 1, "conv3x3", "conv1x1")]
    with pytest.raises(TypeError, match="architecture 0 must be a networkx graph"):
        mutation_pairs(["|skip_connect~0|"])


def test_op_bias_counts_both_directions_against_known_answers(nb201):
    base = [SKIP] * 6
    skips = [_arch(nb201, [SKIP, SKIP, op, SKIP, SKIP, SKIP]) for op in (SKIP, C1, POOL)]
    convs = [_arch(nb201, [C3, SKIP, op, SKIP, SKIP, SKIP]) for op in (SKIP, C1, POOL)]
    archs = skips + convs + [_arch(nb201, [POOL] + base[1:])]
    # skip -> conv3x3 on edge 0 (pairs (0,3), (1,4), (2,5)): the truth rises in 2 of 3, the estimate in all 3
    truth = np.array([1.0, 5.0, 3.0, 2.0, 4.0, 4.0, 0.5])
    scores = np.array([0.0, 1.0, 2.0, 5.0, 6.0, 7.0, np.nan])
    table = op_bias(archs, scores, truth).set_index(["from_op", "to_op"])
    up = table.loc[(SKIP, C3)]
    assert up["pairs"] == 3
    assert up["true_increase"] == pytest.approx(2 / 3) and up["estimated_increase"] == 1.0
    assert up["gap"] == pytest.approx(1 / 3)
    down = table.loc[(C3, SKIP)]
    assert down["pairs"] == 3 and down["true_increase"] == pytest.approx(1 / 3) and down["estimated_increase"] == 0.0
    # skip -> avg_pool: on edge 2 (0 -> 2, 3 -> 5) both rise; on edge 0 (0 -> 6) the truth falls and so does the
    # estimate, because the NaN score of arch 6 counts as the worst
    assert table.loc[(SKIP, POOL), "pairs"] == 3
    assert table.loc[(SKIP, POOL), ["true_increase", "estimated_increase"]].tolist() == pytest.approx([2 / 3, 2 / 3])
    assert table.loc[(C3, POOL), ["pairs", "true_increase", "estimated_increase"]].tolist() == [1, 0.0, 0.0]
    # restricted to a subset: only the pairs with both ends inside it
    sub = op_bias(archs, scores, truth, subset=[0, 3, 1, 4]).set_index(["from_op", "to_op"])
    # (0, 3) rises, (1, 4) falls in truth; both rise in the estimate
    assert sub.loc[(SKIP, C3), ["pairs", "true_increase", "estimated_increase"]].tolist() == [2, 0.5, 1.0]
    mask = np.zeros(7, dtype=bool)
    mask[[0, 3, 1, 4]] = True
    pd.testing.assert_frame_equal(op_bias(archs, scores, truth, subset=mask), sub.reset_index())
    with pytest.raises(ValueError, match="archs must have 7 entries"):
        op_bias(archs[:3], scores, truth)


def test_extremes_lists_the_estimators_best_and_worst_with_true_ranks():
    scores = [0.9, 0.1, 0.5, 0.7, np.nan]
    truth = [10.0, 40.0, 30.0, 20.0, 50.0]  # true ranks 5, 2, 3, 4, 1
    table = extremes(scores, truth, k=2, names=["a", "b", "c", "d", "e"])
    best, worst = table[table.side == "best"], table[table.side == "worst"]
    assert best["name"].tolist() == ["a", "d"] and best["true_rank"].tolist() == [5.0, 4.0]
    assert worst["name"].tolist() == ["e", "b"] and worst["true_rank"].tolist() == [1.0, 2.0]
    assert worst["true_rank_fraction"].tolist() == [0.2, 0.4]
    assert extremes([1, 1, 1], [1, 2, 3], k=1)["index"].tolist() == [0, 2]  # ties by position


def test_forgetting_values_are_accuracy_after_the_epoch_minus_after_the_own_step():
    assert forgetting_values([0.5, 0.6, 0.7], [0.4, 0.6, 0.9]).tolist() == pytest.approx([-0.1, 0.0, 0.2])
    with pytest.raises(ValueError, match="acc_after_epoch must have 3 values"):
        forgetting_values([0.5, 0.6, 0.7], [0.4])


def test_ranking_stability_between_checkpoints_and_seeds():
    a = np.arange(20.0)
    checkpoints = {"epoch 40": a, "epoch 80": a * 2 + 1, "epoch 120": -a}
    table = ranking_stability(checkpoints, ks=(0.1,))
    assert table[["reference", "compared"]].values.tolist() == [["epoch 80", "epoch 40"], ["epoch 120", "epoch 80"]]
    assert table["kendall"].tolist() == [1.0, -1.0]
    assert table["P@top10%"].tolist() == [1.0, 0.0] and table["P@bottom10%"].tolist() == [1.0, 0.0]
    seeds = ranking_stability([a, a, -a], pairs="all")
    assert len(seeds) == 3 and seeds["kendall"].tolist() == [1.0, -1.0, -1.0]
    nan_side = ranking_stability([a, np.where(a < 2, np.nan, a)])  # NaN ranks last on the reference side
    assert nan_side["spearman"].iloc[0] < 1.0
    with pytest.raises(ValueError, match="at least 2 sets"):
        ranking_stability([a])


def test_rank_spread_per_architecture():
    spread = rank_spread([[3.0, 2.0, 1.0, 0.0], [0.0, 2.0, 1.0, 3.0]])
    assert spread["mean_rank"].tolist() == [0.625, 0.5, 0.75, 0.625]
    assert spread["rank_std"].tolist() == [0.375, 0.0, 0.0, 0.375]
    assert spread["best_rank"].tolist() == [0.25, 0.5, 0.75, 0.25]


def test_diagnose_page_of_a_committed_store_states_the_functions_numbers(tmp_path, capsys):
    import re

    from nas_engine.benchmarks import load_truth_table
    from nas_engine.cli import main
    from nas_engine.criteria import spearman
    from nas_engine.report import truth_pairs
    from nas_engine.results import SearchResult

    from .conftest import shared_path

    csv = shared_path("nas-bench-201", "nb201_cifar10_200ep.csv")
    store = "reproduce/results/tse_rank_correlation/store"  # ValAcc at T=12 of 100 NB201 cells, committed
    out = tmp_path / "page.html"
    assert main(["diagnose", store, "--truth", str(csv), "--out", str(out), "--top", "2"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (tmp_path / "complexity.png").stat().st_size > 0 and (tmp_path / "extremes.png").stat().st_size > 0
    text = out.read_text()

    def on_page(key):
        return float(re.search(rf'<span id="{re.escape(key)}">([^<]+)</span>', text).group(1))

    table = load_truth_table(csv)
    archs, scores, truths = truth_pairs(SearchResult.load(store).history, table)
    assert on_page("architectures") == len(archs) == 100
    assert on_page("spearman") == round(spearman(scores, truths), 4)
    groups = complexity_bias(scores, truths, [table.params(a) for a in archs])
    for g in groups.itertuples():
        assert on_page(f"kendall-{g.group}") == round(g.kendall, 4)
        assert on_page(f"rd-{g.group}") == round(g.mean_rd, 4)
    # ValAcc after 12 epochs overestimates the smallest cells and underestimates the largest (Ning et al. Fig. 5)
    assert groups["mean_rd"].iloc[0] > 0 > groups["mean_rd"].iloc[-1]
    best = extremes(scores, truths, k=2, names=archs)
    assert on_page("true-rank-best-1") == best["true_rank"].iloc[0]
    ops = op_bias([create("space", "nb201").from_string(a) for a in archs], scores, truths)
    for r in ops.itertuples():
        assert on_page(f"op-true-{r.from_op}-{r.to_op}") == round(r.true_increase, 4)
    # bad input: one line, exit 2
    assert main(["diagnose", store, "--truth", str(csv), "--groups", "0", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
