"""The estimator-diagnosis script (``python -m reproduce.estimator_diagnosis``): its pure parts on hand-made
inputs with known answers, and its ``zero-cost`` subcommand end to end on a six-cell input.  The ``oneshot``
subcommand has no end-to-end test here: even at its smallest (3 supernet epochs on 128 digits, 10 cells) it takes
about 12 s (four supernets, the benchmark networks' FLOPs, the isomorphism table); its pure parts are tested."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nas_engine.criteria import kendall, precision_at_top_k
from reproduce.common.estimator_diagnosis import (
    checkpoint_epochs,
    class_sample,
    mutation_neighbours,
    nb201_op_counts,
    op_family,
    paired_bootstrap,
    pick_traits,
    population_votes,
    reference_draws,
)

from .conftest import run_reproduce

# three architectures X, Y, Z scored by three members: members 1 and 2 prefer X > Y > Z, member 3 Y > Z > X
VOTERS = np.array([[3.0, 3.0, 1.0], [2.0, 2.0, 3.0], [1.0, 1.0, 2.0]])
MEMBERS = ["synflow", "jacov", "snip"]


def test_votes_against_the_whole_population():
    # mean-rank: each member's percentile among the population (a tie, i.e. itself, counts half), averaged:
    # X: (2.5 + 2.5 + 0.5) / 9, Y: (1.5 + 1.5 + 2.5) / 9, Z: (0.5 + 0.5 + 1.5) / 9
    assert np.allclose(population_votes(VOTERS, MEMBERS, "mean-rank"), [5.5 / 9, 5.5 / 9, 2.5 / 9])
    # majority: X beats Y and Z 2 votes to 1 and ties itself; Y loses to X, ties itself, beats Z 3-0
    assert np.allclose(population_votes(VOTERS, MEMBERS, "majority"), [2.5 / 3, 1.5 / 3, 0.5 / 3])


def test_votes_against_a_reference_subset_and_nan_as_worst():
    # against Y and Z only: X wins both, Y ties itself and beats Z, Z loses to Y and ties itself
    assert np.allclose(population_votes(VOTERS, MEMBERS, "majority", reference=[1, 2]), [1.0, 0.75, 0.25])
    low = VOTERS.copy()
    low[2, 2] = -100.0
    nan = VOTERS.copy()
    nan[2, 2] = np.nan  # a NaN member score is that member's worst score
    for vote in ("majority", "mean-rank"):
        assert np.allclose(population_votes(nan, MEMBERS, vote), population_votes(low, MEMBERS, vote))
    with pytest.raises(ValueError, match=r"member_scores must be \[architectures, 2 members\]"):
        population_votes(VOTERS, MEMBERS[:2], "majority")
    with pytest.raises(ValueError, match="reference must be 2 or more row indices"):
        population_votes(VOTERS, MEMBERS, "majority", reference=[0, 3])


def test_reference_draws():
    draws = reference_draws(10, 4, 3, seed=1)
    assert len(draws) == 3 and all(len(d) == 4 and len(set(d)) == 4 and d.max() < 10 for d in draws)
    assert all((a == b).all() for a, b in zip(draws, reference_draws(10, 4, 3, seed=1)))
    with pytest.raises(ValueError, match=r"needs 2\.\.10"):
        reference_draws(10, 11, 1)


def test_nb201_op_counts_count_live_edges():
    s = "|nor_conv_1x1~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    assert nb201_op_counts(s) == {"none": 2, "skip_connect": 1, "nor_conv_1x1": 1, "nor_conv_3x3": 1,
                                  "avg_pool_3x3": 1}
    # node 2 no longer feeds the output: conv1x1 (0->1) and conv3x3 (1->2) compute nothing the network uses
    dead = "|nor_conv_1x1~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|"
    assert nb201_op_counts(dead) == {"none": 3, "skip_connect": 1, "nor_conv_1x1": 0, "nor_conv_3x3": 0,
                                     "avg_pool_3x3": 0}
    assert nb201_op_counts(dead, live=False)["nor_conv_3x3"] == 1
    with pytest.raises(ValueError, match="not an NB201 architecture string"):
        nb201_op_counts("|conv~0|")


def test_pick_traits():
    traits = pd.DataFrame({"a": [1, 0, 1, 1]})
    # the estimator's top half is the truly worst two: true ranks 4 and 3 of 4, complexity ranks 1 and 2 of 4
    p = pick_traits([4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0], [10, 20, 30, 40], traits, k=0.5)
    assert p == {"n_picks": 2, "true_rank_pct": 87.5, "complexity_pct": 37.5, "a": 0.5}
    # a NaN score is never picked before a finite one; ties go by position
    p = pick_traits([np.nan, 1.0, 1.0, 0.0], [1.0, 2.0, 3.0, 4.0], [10, 20, 30, 40], k=0.25)
    assert p["true_rank_pct"] == 75.0 and p["complexity_pct"] == 50.0


def test_op_family_pools_by_pairs():
    table = pd.DataFrame({"from_op": ["skip_connect", "skip_connect", "none"],
                          "to_op": ["nor_conv_3x3", "none", "skip_connect"], "pairs": [3, 1, 4],
                          "true_increase": [1.0, 0.0, 0.5], "estimated_increase": [1.0, 1.0, 0.25]})
    f = op_family(table, from_op="skip_connect")
    assert f == {"pairs": 4, "true_increase": 0.75, "estimated_increase": 1.0, "gap": 0.25}
    assert op_family(table, to_op="skip_connect")["gap"] == -0.25
    assert op_family(table, from_op="avg_pool_3x3")["pairs"] == 0


# six NB201 cells: a base and five one-edge mutations of it (five mutation pairs, each with the base)
BASE = ["nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_3x3", "nor_conv_3x3"]
SWAPS = [(0, "nor_conv_1x1"), (1, "none"), (2, "avg_pool_3x3"), (3, "nor_conv_3x3"), (5, "skip_connect")]


def _string(ops):
    return f"|{ops[0]}~0|+|{ops[1]}~0|{ops[2]}~1|+|{ops[3]}~0|{ops[4]}~1|{ops[5]}~2|"


def test_zero_cost_subcommand_on_six_cells(tmp_path):
    cells = [BASE] + [BASE[:e] + [op] + BASE[e + 1:] for e, op in SWAPS]
    archs = [_string(c) for c in cells]
    truth = np.array([94.0, 92.0, 90.0, 91.0, 93.0, 89.0])
    shared = tmp_path / "shared"
    (shared / "nas-bench-201").mkdir(parents=True)
    pd.DataFrame({"arch_str": archs, "cifar10_test_acc": truth}).to_csv(
        shared / "nas-bench-201" / "nb201_cifar10_200ep.csv", index=False)
    scores = {"synflow": truth, "params": -truth, "flops": np.arange(6.0)}
    pd.DataFrame([{"arch_str": a, "proxy": p, "score": v[i], "cost_seconds": 0.0}
                  for p, v in scores.items() for i, a in enumerate(archs)]).to_csv(tmp_path / "scores.csv",
                                                                                     index=False)
    out = tmp_path / "out"
    args = ["zero-cost", "--shared", shared, "--zc-scores", tmp_path / "scores.csv", "--out", out]
    done = run_reproduce("estimator_diagnosis", *args)
    assert done.returncode == 0, done.stderr
    crit = pd.read_csv(out / "zc_criteria.csv").set_index("estimator")
    assert crit.loc["synflow", "kendall"] == pytest.approx(1.0) and crit.loc["params", "kendall"] == pytest.approx(-1.0)
    assert crit.loc["synflow", "n"] == 6 and crit.loc["synflow", "br@0.5%"] == pytest.approx(1 / 6)
    ops = pd.read_csv(out / "zc_op_bias.csv")
    every = ops[ops["scope"] == "all"]
    assert every.groupby("estimator")["pairs"].sum().to_dict() == {"flops": 10, "params": 10, "synflow": 10}
    syn = every[every["estimator"] == "synflow"]
    assert (syn["estimated_increase"] == syn["true_increase"]).all()  # the truth itself: no op-level bias
    par = every[every["estimator"] == "params"]
    assert (par["estimated_increase"] == 1 - par["true_increase"]).all()  # the reversed truth
    groups = pd.read_csv(out / "zc_complexity_bias.csv")
    assert groups.groupby("estimator")["n"].sum().to_dict() == {"flops": 6, "params": 6, "synflow": 6}
    assert (groups.loc[groups["estimator"] == "synflow", "mean_rd"] == 0).all()
    picks = pd.read_csv(out / "zc_picks.csv").set_index("estimator")
    assert picks.loc["synflow", "true_rank_pct"] == pytest.approx(100 / 6)  # its one pick is the best cell
    assert "## Op-level bias" in (out / "zc_summary.md").read_text()
    # the subcommand's files are not overwritten without --overwrite: a one-line error
    again = run_reproduce("estimator_diagnosis", *args)
    assert again.returncode == 2 and "pass --overwrite" in again.stderr.strip().splitlines()[-1]


# -- the oneshot subcommand's pure parts ----------------------------------------------------------------------


def test_class_sample_is_uniform_over_classes_and_seeded():
    classes = [("a",), ("b1", "b2", "b3"), ("c1", "c2")]
    picks = class_sample(classes, 3, seed=4)
    assert sorted(p[0] for p in picks) == ["a", "b", "c"]  # every class once, whatever its size
    assert picks == class_sample(classes, 3, seed=4)
    # a class is drawn with probability 1/3 whatever its size (not 1/6, 3/6, 2/6 as over the members)
    firsts = [class_sample(classes, 1, seed=s)[0][0] for s in range(600)]
    assert all(150 < firsts.count(c) < 250 for c in "abc")
    with pytest.raises(ValueError, match="from 1 to the number of classes"):
        class_sample(classes, 4)


def test_mutation_neighbours_are_one_edge_away_and_of_new_classes():
    from nas_engine.spaces.nb201 import NB201Space

    space = NB201Space()
    archs = [space.from_string(_string(c)) for c in [BASE] + [BASE[:e] + [op] + BASE[e + 1:] for e, op in SWAPS]]
    got = mutation_neighbours(space, archs, 4, seed=0)
    assert [i for _, i in got] == [0, 1, 2, 3] and got == mutation_neighbours(space, archs, 4, seed=0)
    classes = {space.isomorphism_class(a) for a in archs}
    for a, i in got:
        assert sum(x != y for x, y in zip(space.ops(a), space.ops(archs[i]))) == 1
        assert space.isomorphism_class(a) not in classes  # a new class, and no two neighbours share one
        classes.add(space.isomorphism_class(a))
    # the all-none cell: every mutation that leaves it all-zero is its own class, so its neighbour is a live one
    zero = space.from_ops(["none"] * 6)
    (a, _), = mutation_neighbours(space, [zero], 1, seed=1)
    assert space.isomorphism_class(a) != space.isomorphism_class(zero)
    assert mutation_neighbours(space, archs, 0) == []


def test_checkpoint_epochs():
    assert checkpoint_epochs(100, [25, 50, 100]) == [25, 50, 100]
    assert checkpoint_epochs(5, [40, 60, 100]) == [2, 3, 5]
    assert checkpoint_epochs(10, [5, 100]) == [1, 10]  # 0.5 rounds half up
    # no 100; repeated; zero; two percents that both round to epoch 1 of 4
    for epochs, bad in ((100, [25, 50]), (100, [50, 50, 100]), (100, [0, 100]), (4, [3, 5, 100])):
        with pytest.raises(ValueError, match="must be distinct, increasing, positive and end at 100"):
            checkpoint_epochs(epochs, bad)


def test_paired_bootstrap_known_answers():
    truth = np.arange(20.0)
    crit = {"tau": kendall, "p": lambda s, t: precision_at_top_k(s, t, 0.1)}
    # the reversed truth against the truth: tau -1 -> 1 in every resample (ties of duplicates on both sides alike)
    d = paired_bootstrap(-truth, truth, truth, crit, draws=50, seed=3).set_index("criterion")
    assert d.loc["tau", ["base", "other", "delta", "lo", "hi"]].tolist() == pytest.approx([-1, 1, 2, 2, 2])
    assert d.loc["p", "delta"] == pytest.approx(1.0)
    # the same scores on both sides: no change at all
    same = paired_bootstrap(truth % 7, truth % 7, truth, crit, draws=20)
    assert (same[["delta", "lo", "hi"]].to_numpy() == 0).all()
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap(truth, truth[:5], truth, crit)
