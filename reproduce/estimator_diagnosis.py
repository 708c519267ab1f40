"""Ning et al.'s estimator diagnosis at CPU scale (issue 32, item 5): zero-cost proxies, voting ensembles and
one-shot estimators.

"Evaluating Efficient Performance Estimators of Neural Architectures" (Ning et al.; the shared
``papers/evaluating-one-shot-and-zero-shot-estimators.md``) ranks estimators with NAS-oriented
criteria (§3) and asks where their rankings go wrong (§5).  This script applies the library's
diagnosis (:mod:`nas_engine.diagnosis`) and criteria (:mod:`nas_engine.criteria`) to scores this
repository has already recorded on real CIFAR-10, and the registered ``ensemble`` estimator's vote
to combinations of them.  Subcommands (each writes into ``--out``):

``zero-cost``
    The zero-cost proxies of the committed NB201 peer check
    (``reproduce/results/zero_cost_peer_check/scores.csv``: NASLib's 725 NB201 cells, the
    benchmark's full network C=16, N=5, on one minibatch of 32 real CIFAR-10 images, seed 0), with
    #params and #FLOPs beside them as estimators, against NB201's 200-epoch CIFAR-10 test accuracy:
    every criterion; complexity-level bias over five FLOPs groups (Kendall's tau and mean ranking
    difference RD per group, Fig. 5); op-level bias over the mutation pairs among the 725, all and
    inside the largest FLOPs group (§5.1); each estimator's five best and worst cells with their true
    ranks and what its top 5% looks like (arch-level bias, §5.2, Fig. 6).  Nothing is trained or
    scored anew.  Writes ``zc_*.csv`` and ``zc_summary.md``.

``ensembles``
    Voting ensembles against each of their members (§4.2: "this simple form of voting does not bring
    improvements over the best constituent ZSE"), on every space with recorded curves: NB201
    (``tse_rank_correlation``), NB101 (``tse_nb101``), RandWired (``tse_randwired``) and DARTS
    (``tse_darts``).  Zero-cost ensembles: the three best zero-cost proxies of the space (by Kendall's
    tau against the truth, as the paper chose its voting experts) and synflow + jacov + snip (the vote
    of Abdelfattah et al., the ensemble's default members), on the architectures where our proxies
    were recorded.  Training-based ensembles: TSE-EMA or TSE-E at T = 1, 3, 12 epochs (read off the
    recorded learning curves) with #params or #FLOPs, on the trained architectures.  Both votes
    (``majority``, ``mean-rank``); the reference sample is the recorded population itself, and
    ``--draws`` random references of the ensemble's default size (32) for comparison.  RandWired's
    zero-cost scores were not kept per network by ``tse_randwired``: they are computed again here, at
    its setting, into ``randwired_zero_cost.csv`` (reused when present).  Writes
    ``ensembles.csv`` and ``ensembles.md``.

``oneshot``
    One-shot estimators on NB201 at the CPU proxy scale of ``reproduce/oneshot_selection.py`` (C=8,
    N=1, 16x16, 5,000 training / 2,000 validation CIFAR-10 images, no augmentation, 100 supernet
    epochs of the thesis' protocol), all through the library: the ``randnas`` strategy's ``setup``
    with a store (SPOS trains the same uniform single-path supernet and differs only in how it
    selects), the registered ``valacc-inherited`` estimator under its inherited weights.  The
    population: ``--os-archs`` cells, one per isomorphism class, the classes drawn uniformly from
    NB201's 6,466, plus ``--os-neighbours`` one-edge mutation neighbours for the op-level analysis.
    Scored: the baseline supernet (seed = the first of ``--os-seeds``) at three points of its training
    (``--os-points``, its kept checkpoints ``supernet-epoch-EEEE.pt``), temporal ensembles of its last
    3 and 5 checkpoints in both modes (``ensemble_mode="scores"``: the mean of the checkpoints'
    scores, checked against the library's own score ensemble on ``--os-check`` cells; ``"weights"``),
    a ``deiso=True`` supernet, a ``bn_affine=True`` supernet and the baseline at the other seeds.
    Criteria (BR@0.5%, P@top5%, Kendall τ, ...) over the uniform sample, complexity-level bias over
    five FLOPs groups (the benchmark's networks' FLOPs), op-level bias over the mutation pairs,
    ranking stability, and each variant's change against the baseline with a paired bootstrap
    interval over the cells.  Supernets and per-pass scores are kept in ``--os-work`` (default
    ``runs/estimator_diagnosis_oneshot``, not committed), so a rerun retrains and rescores nothing.
    Writes ``os_*.csv`` and ``os_summary.md``.

A subcommand refuses to overwrite its own files in an existing ``--out`` unless ``--overwrite``; the
default ``--out`` is a new directory ``reproduce/results/estimator_diagnosis-<UTC time>``.  Each
subcommand writes only its own files, so all three share one ``--out``.

    OMP_NUM_THREADS=1 python -m reproduce.estimator_diagnosis zero-cost [--out DIR]
    OMP_NUM_THREADS=1 python -m reproduce.estimator_diagnosis ensembles [--out DIR]
    OMP_NUM_THREADS=1 python -m reproduce.estimator_diagnosis oneshot [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nas_engine.criteria import best_ranking_at_k, evaluate_ranking, kendall, precision_at_top_k
from nas_engine.diagnosis import (
    complexity_bias,
    complexity_groups,
    extremes,
    mutation_pairs,
    op_bias,
    ranking_stability,
)
from reproduce.common.estimator_diagnosis import (
    NB201_OPS,
    checkpoint_epochs,
    class_sample,
    fmt,
    markdown_table,
    mutation_neighbours,
    nb201_op_counts,
    op_family,
    paired_bootstrap,
    pick_traits,
    population_votes,
    reference_draws,
)
from reproduce.common.recorded_curves import store_curves
from reproduce.common.subcommands import run_subcommand

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "reproduce" / "results"
NAME = "estimator_diagnosis"

#: zero-cost proxies proper (the paper's ZSEs); params and flops are the free baselines beside them
ZERO_COST = ("synflow", "snip", "grad-norm", "fisher", "grasp", "plain", "jacov", "nwot")
FREE = ("params", "flops")
#: the vote of Abdelfattah et al. ("Zero-cost proxies for lightweight NAS"): the ensemble's default members
ABDELFATTAH = ("synflow", "jacov", "snip")
#: the paper's K portions (BR@0.5%, P@5%) and one more
KS = (0.005, 0.05, 0.1)
BUDGETS = (1, 3, 12)
VOTES = ("majority", "mean-rank")
GROUPS = 5
#: RandWired's zero-cost setting in tse_randwired (its defaults), all our proxies but grasp
RANDWIRED_ZC = ("synflow", "snip", "grad-norm", "fisher", "plain", "jacov", "nwot")
RANDWIRED = {"n_train": 3000, "n_val": 1000, "resolution": 16, "seed": 0, "batch_size": 64,
             "size": {"C": 16, "stages": 3}, "schedule_epochs": 20, "lr": 0.1}

FILES = {"zero-cost": ("zc_criteria.csv", "zc_complexity_bias.csv", "zc_op_bias.csv", "zc_extremes.csv",
                       "zc_picks.csv", "zc_summary.md"),
         "ensembles": ("ensembles.csv", "ensembles.md", "ensembles_populations.json"),
         "oneshot": ("os_scores.csv", "os_criteria.csv", "os_complexity_bias.csv", "os_op_bias.csv",
                     "os_stability.csv", "os_differences.csv", "os_picks.csv", "os_extremes.csv",
                     "os_supernets.csv", "os_summary.md")}


# ---------------------------------------------------------------------------------------------------
# zero-cost: the NB201 diagnosis
# ---------------------------------------------------------------------------------------------------
def load_nb201_zero_cost(scores_csv: Path, truth_csv: Path) -> tuple[pd.DataFrame, pd.Series]:
    """``(scores [arch_str x estimator], truth)``: the peer check's scores and the 200-epoch test accuracy.

    A score recorded as NaN becomes ``-inf`` (the worst, as the criteria count it); ``+inf`` marks a proxy
    not scored on an architecture (grasp outside its subset), which that proxy's analysis leaves out."""
    long = pd.read_csv(scores_csv)
    if not {"arch_str", "proxy", "score"} <= set(long.columns):
        raise ValueError(f"{scores_csv}: expected the columns arch_str, proxy, score (a zero_cost_peer_check "
                         f"scores.csv), got {list(long.columns)}")
    long = long.drop_duplicates(["arch_str", "proxy"])
    wide = long.pivot(index="arch_str", columns="proxy", values="score")
    # a proxy recorded as NaN (e.g. a diverged jacov) is scored, and the criteria rank it last; a proxy not
    # recorded for an architecture (grasp outside its subset) is left out of that proxy's analysis: +inf marks it
    scored = long.assign(one=1.0).pivot(index="arch_str", columns="proxy", values="one").notna()
    wide = wide.where(~(scored & wide.isna()), -np.inf).where(scored, np.inf)
    if "flops" not in wide.columns:
        raise ValueError(f"{scores_csv}: no 'flops' scores, which the complexity groups need")
    wide = wide[np.isfinite(wide["flops"])]
    table = pd.read_csv(truth_csv).set_index("arch_str")["cifar10_test_acc"]
    missing = wide.index.difference(table.index)
    if len(missing):
        raise ValueError(f"{len(missing)} architectures of {scores_csv} are not in {truth_csv}, e.g. {missing[0]!r}")
    order = [e for e in (*ZERO_COST, *FREE) if e in wide.columns]
    return wide[order], table.loc[wide.index]


def diagnose_zero_cost(scores: pd.DataFrame, truth: pd.Series) -> dict[str, pd.DataFrame]:
    """Every table of the ``zero-cost`` subcommand, from the scores and the truth alone."""
    from nas_engine.spaces.nb201 import NB201Space

    space = NB201Space()
    names = list(scores.index)
    archs = [space.from_string(a) for a in names]
    y = truth.to_numpy(dtype=float)
    flops = scores["flops"].to_numpy(dtype=float)
    group = complexity_groups(flops, GROUPS)
    largest = group == GROUPS - 1
    pairs = mutation_pairs(archs)
    traits = pd.DataFrame([nb201_op_counts(a) for a in names])
    traits = traits.rename(columns={op: f"live_{op}" for op in NB201_OPS if op != "none"})
    traits["no_live_skip"] = (traits["live_skip_connect"] == 0).astype(float)
    crit, groups, ops, ext, picks = [], [], [], [], []
    for est in list(scores.columns) + ["truth"]:
        s = y if est == "truth" else scores[est].to_numpy(dtype=float)
        have = np.ones(len(s), dtype=bool) if est == "truth" else s != np.inf
        idx = np.flatnonzero(have)
        kind = "truth" if est == "truth" else ("free" if est in FREE else "zero-cost")
        p = pick_traits(s[idx], y[idx], flops[idx], traits.iloc[idx].reset_index(drop=True), k=0.05)
        picks.append({"estimator": est, "kind": kind, "n": len(idx), **p})
        if est == "truth":
            continue
        crit.append({"estimator": est, "kind": kind, "n": len(idx), **evaluate_ranking(s[idx], y[idx], ks=KS)})
        cb = complexity_bias(s[idx], y[idx], flops[idx], groups=GROUPS)
        groups.append(cb.assign(estimator=est, n_scored=len(idx)))
        for scope, sub in (("all", have), ("largest FLOPs group", have & largest)):
            # pairs with an unscored member are left out by ``subset``
            t = op_bias(archs, np.where(have, s, -np.inf), y, subset=sub, pairs=pairs)
            ops.append(t.assign(estimator=est, scope=scope))
        e = extremes(s[idx], y[idx], k=5, names=[names[i] for i in idx])
        ext.append(e.assign(estimator=est))
    first = ["estimator"]
    return {
        "criteria": pd.DataFrame(crit),
        "complexity_bias": _front(pd.concat(groups, ignore_index=True), first),
        "op_bias": _front(pd.concat(ops, ignore_index=True), ["estimator", "scope"]),
        "extremes": _front(pd.concat(ext, ignore_index=True), first),
        "picks": pd.DataFrame(picks),
        "meta": pd.DataFrame([{"archs": len(names), "distinct_functions": len({space.canonical(a) for a in archs}),
                               "mutation_pairs": len(pairs),
                               "mutation_pairs_largest_group": int((largest[pairs["i"]] & largest[pairs["j"]]).sum()),
                               "largest_group_flops_min": float(flops[largest].min())}]),
    }


def _front(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    return df[cols + [c for c in df.columns if c not in cols]]


#: op-level families shown in the summary: (label, from_op, to_op)
FAMILIES = (("skip → any", "skip_connect", None), ("any → skip", None, "skip_connect"),
            ("conv3x3 → conv1x1", "nor_conv_3x3", "nor_conv_1x1"),
            ("conv1x1 → conv3x3", "nor_conv_1x1", "nor_conv_3x3"),
            ("any → none", None, "none"), ("any → pool", None, "avg_pool_3x3"))


def zero_cost_summary(t: dict[str, pd.DataFrame], seconds: float) -> list[str]:
    meta = t["meta"].iloc[0]
    crit = t["criteria"]
    lines = [f"# Zero-cost proxies on NB201: Ning et al.'s diagnosis ({int(meta['archs'])} cells)", "",
             "Scores: reproduce/results/zero_cost_peer_check/scores.csv (C=16, N=5, batch 32 of real CIFAR-10, "
             "seed 0); truth: NB201 200-epoch CIFAR-10 test accuracy. "
             f"{int(meta['distinct_functions'])} distinct functions among them (isomorphic cells kept, as in the "
             "benchmark). grasp was scored on a random 300 only.", "",
             "## Criteria", ""]
    rows = [{"estimator": r["estimator"], "n": r["n"], "Kendall τ": r["kendall"], "Spearman ρ": r["spearman"],
             "P@top5%": r["p@top5%"], "P@bottom5%": r["p@bottom5%"], "BR@0.5%": r["br@0.5%"], "BR@5%": r["br@5%"],
             "WR@5%": r["wr@5%"]} for _, r in crit.sort_values("kendall", ascending=False).iterrows()]
    lines += markdown_table(rows, list(rows[0])) + [""]
    cb = t["complexity_bias"]
    order = list(crit.sort_values("kendall", ascending=False)["estimator"])
    for what, col in (("Kendall τ within each FLOPs group (G1 = smallest)", "kendall"),
                      ("mean RD in each FLOPs group (> 0: overestimated; RD over the whole population)", "mean_rd")):
        lines += [f"## Complexity-level bias: {what}", ""]
        rows = []
        for est in order:
            g = cb[cb["estimator"] == est].set_index("group")
            rows.append({"estimator": est, **{f"G{k + 1}": g.at[k, col] if k in g.index else math.nan
                                              for k in range(GROUPS)}})
        lines += markdown_table(rows, ["estimator"] + [f"G{k + 1}" for k in range(GROUPS)],
                                digits=3 if col == "kendall" else 1) + [""]
    ob = t["op_bias"]
    for scope, n_pairs in (("all", meta["mutation_pairs"]),
                           ("largest FLOPs group", meta["mutation_pairs_largest_group"])):
        lines += [f"## Op-level bias, {scope} ({int(n_pairs)} mutation pairs, each counted both ways): "
                  "estimated / true increase rate", ""]
        rows = []
        for est in order:
            tab = ob[(ob["estimator"] == est) & (ob["scope"] == scope)]
            row = {"estimator": est}
            for label, a, b in FAMILIES:
                f = op_family(tab, from_op=a, to_op=b)
                row[label] = "—" if f["pairs"] == 0 else (
                    f"{f['estimated_increase']:.2f} / {f['true_increase']:.2f} ({f['pairs']})")
            rows.append(row)
        lines += markdown_table(rows, ["estimator"] + [f[0] for f in FAMILIES]) + [""]
    pk = t["picks"].set_index("estimator")
    lines += ["## Arch-level bias: the top 5% by each estimator", "",
              "Mean over the picks: true rank (% of the population, lower is better), FLOPs percentile, "
              "live ops per cell (an op on a branch that cannot reach the output does not count), share of cells "
              "without a live skip connection.", ""]
    rows = []
    for est in [*order, "truth"]:
        r = pk.loc[est]
        rows.append({"estimator": est if est != "truth" else "truth (the true top 5%)", "picks": int(r["n_picks"]),
                     "true rank %": r["true_rank_pct"], "FLOPs pct": r["complexity_pct"],
                     "conv3x3": r["live_nor_conv_3x3"], "conv1x1": r["live_nor_conv_1x1"],
                     "skip": r["live_skip_connect"], "pool": r["live_avg_pool_3x3"], "none": r["none"],
                     "no live skip": r["no_live_skip"]})
    lines += markdown_table(rows, list(rows[0]), digits=2) + [""]
    ex = t["extremes"]
    lines += ["## Arch-level bias: true rank (% of the population) of each estimator's 5 best and 5 worst cells", ""]
    rows = []
    for est in order:
        e = ex[ex["estimator"] == est]
        rows.append({"estimator": est,
                     **{side: ", ".join(f"{v * 100:.0f}" for v in e[e["side"] == side]["true_rank_fraction"])
                        for side in ("best", "worst")}})
    lines += markdown_table(rows, ["estimator", "best", "worst"]) + [""]
    lines.append(f"analysis: {seconds:.1f} s CPU (no network built or trained)")
    return lines


def cmd_zero_cost(args, out: Path) -> int:
    t0 = time.process_time()
    scores, truth = load_nb201_zero_cost(Path(args.zc_scores), Path(args.shared) / "nas-bench-201" /
                                         "nb201_cifar10_200ep.csv")
    t = diagnose_zero_cost(scores, truth)
    for key in ("criteria", "complexity_bias", "op_bias", "extremes", "picks"):
        t[key].to_csv(out / f"zc_{key}.csv", index=False)
    lines = zero_cost_summary(t, time.process_time() - t0)
    (out / "zc_summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


# ---------------------------------------------------------------------------------------------------
# ensembles
# ---------------------------------------------------------------------------------------------------
@dataclass
class Population:
    """Recorded scores of one set of architectures: ``scores`` maps an estimator label to one value per
    architecture; ``members`` maps the label to the registered estimator configuration it stands for."""

    space: str
    name: str
    archs: list[str]
    truth: np.ndarray
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    members: dict[str, object] = field(default_factory=dict)
    note: str = ""

    def add(self, label: str, values: Sequence[float], member: object) -> None:
        v = np.asarray(values, dtype=float)
        if v.shape != (len(self.archs),):
            raise ValueError(f"{self.space}/{self.name}: {label} has {v.shape} values for {len(self.archs)} archs")
        self.scores[label], self.members[label] = v, member


def curve_scores(pop: Population, curves: dict, max_epochs: int) -> None:
    """TSE-EMA and TSE-E at each budget of :data:`BUDGETS` (<= ``max_epochs``) from the recorded curves."""
    from nas_engine.registry import create

    for name in ("tse-ema", "tse-e"):
        # at T=1 both are the first epoch's summed training loss: TSE-E@1 would repeat TSE-EMA@1
        for T in [b for b in BUDGETS if b <= max_epochs and (b > 1 or name == "tse-ema")]:
            est = create("estimator", name, epochs=T)
            vals = []
            for a in pop.archs:
                c = curves[a]
                ok = c is not None and c.epochs >= T and "failed" not in c.info
                vals.append(est.score(c) if ok else math.nan)
            pop.add(f"{name}@{T}", vals, {"name": name, "params": {"epochs": T}})


def zero_cost_from(pop: Population, long: pd.DataFrame, key_col: str, keys: Sequence[str],
                   proxies: Sequence[str]) -> None:
    """Add every proxy of ``long`` (a peer check's scores.csv) recorded on all of ``keys``."""
    for p in proxies:
        sub = long[long["proxy"] == p].drop_duplicates(key_col).set_index(key_col)["score"]
        if all(k in sub.index for k in keys):
            pop.add(p, sub.loc[list(keys)].to_numpy(dtype=float), p)


def nb201_populations(args) -> list[Population]:
    from nas_engine.costs import model_costs
    from nas_engine.spaces.nb201 import NB201Space

    shared = Path(args.shared)
    truth = pd.read_csv(shared / "nas-bench-201" / "nb201_cifar10_200ep.csv").set_index("arch_str")["cifar10_test_acc"]
    long = pd.read_csv(args.zc_scores)
    zc_archs = [a for a in dict.fromkeys(long["arch_str"])]
    zc = Population("NB201", "zero-cost", zc_archs, truth.loc[zc_archs].to_numpy(float),
                    note="NASLib's 725 cells; ours: C=16, N=5, batch 32")
    zero_cost_from(zc, long, "arch_str", zc_archs, ZERO_COST + FREE)
    curves = store_curves(Path(args.nb201_store))
    archs = list(curves)
    tr = Population("NB201", "trained", archs, truth.loc[archs].to_numpy(float),
                    note="tse_rank_correlation: C=8, N=1, 16x16, 5,000 images, 12 epochs")
    costs = model_costs(NB201Space(), archs, num_classes=10, in_channels=3, resolution=32, C=16, N=5)
    tr.add("params", [costs[a]["params"] for a in archs], "params")
    tr.add("flops", [costs[a]["flops"] for a in archs], "flops")
    curve_scores(tr, curves, 12)
    return [zc, tr]


def nb101_populations(args) -> list[Population]:
    from nas_engine.spaces.nb101 import NB101Space
    from reproduce.common.nb101_peer import canonical, cell_accuracy, distinct_cells, load_peer

    peer = load_peer(Path(args.shared))
    curves = store_curves(Path(args.nb101_store))
    keys = distinct_cells(peer, 0)[:len(curves)]
    space = NB101Space()
    strings = [space.from_naslib(k).string for k in keys]
    if set(strings) != set(curves):
        raise ValueError(f"{args.nb101_store}: its architectures are not the first {len(curves)} distinct cells of "
                         "the NB101 peer check's seeded order (tse_nb101's choice)")
    acc = cell_accuracy(peer)
    pop = Population("NB101", "trained = zero-cost", strings, np.array([acc[canonical(k)] for k in keys]),
                     note="tse_nb101: stem 16, 3x1 cells, 16x16, 3,000 images, 12 epochs; zero-cost: "
                          "nb101_peer_check (the benchmark's network, batch 32)")
    zero_cost_from(pop, pd.read_csv(args.nb101_zc), "compact", keys, ZERO_COST + FREE)
    curve_scores(pop, curves, 12)
    return [pop]


def darts_populations(args) -> list[Population]:
    from nas_engine.spaces.darts import DartsSpace
    from reproduce.common.darts_peer import load_peer, seeded_order

    peer = load_peer(Path(args.shared))
    long = pd.read_csv(args.darts_zc)
    space = DartsSpace()
    order = seeded_order(peer, 0)
    scored = set(long.loc[long["proxy"] == "nwot", "compact"])
    zc_keys = [k for k in order if k in scored]
    zc = Population("DARTS", "zero-cost", zc_keys, peer.loc[zc_keys, "val_accuracy"].to_numpy(float),
                    note="darts_peer_check: C=32, 8 cells, batch 32; truth: NB301's predicted accuracy")
    zero_cost_from(zc, long, "compact", zc_keys, ZERO_COST + FREE)
    curves = store_curves(Path(args.darts_store))
    keys = order[:len(curves)]
    strings = [space.from_compact(k).string for k in keys]
    if set(strings) != set(curves):
        raise ValueError(f"{args.darts_store}: its architectures are not the first {len(curves)} of the DARTS peer "
                         "check's seeded order (tse_darts's choice)")
    tr = Population("DARTS", "trained", strings, peer.loc[keys, "val_accuracy"].to_numpy(float),
                    note="tse_darts: C=8, 5 cells, 16x16, 3,000 images, 12 epochs")
    zero_cost_from(tr, long, "compact", keys, FREE)
    curves = {s: curves[s] for s in strings}
    curve_scores(tr, curves, 12)
    return [zc, tr]


def randwired_populations(args, out: Path) -> tuple[list[Population], float]:
    """The 64 trained networks; zero-cost scores computed (once) at tse_randwired's setting."""
    from nas_engine.benchmarks.table import JsonlCurveTable
    from nas_engine.costs import model_costs
    from nas_engine.spaces.randwired import RandWiredSpace

    table = JsonlCurveTable(Path(args.randwired_bench) / "table.jsonl")
    archs = table.archs()
    truth = table.ground_truth()
    space = RandWiredSpace()
    cache = out / "randwired_zero_cost.csv"
    cpu = 0.0
    if not cache.exists():
        import torch

        from nas_engine.data import load_dataset
        from nas_engine.estimators.zero_cost import zero_cost_scores
        from nas_engine.training import Protocol

        torch.set_num_threads(1)
        t0 = time.process_time()
        rw = RANDWIRED
        data = load_dataset("cifar10", args.shared, n_train=rw["n_train"], n_val=rw["n_val"],
                            resolution=rw["resolution"], seed=rw["seed"])
        protocol = Protocol(schedule_epochs=rw["schedule_epochs"], batch_size=rw["batch_size"], lr=rw["lr"],
                            size=rw["size"], device="cpu")
        zc = zero_cost_scores(space, archs, data, protocol, proxies=RANDWIRED_ZC, seed=rw["seed"],
                              batch_size=rw["batch_size"])
        cpu = time.process_time() - t0
        pd.DataFrame([{"arch": a, "proxy": p, "score": v[a]} for p, v in zc.items() for a in archs]).to_csv(
            cache, index=False)
        print(f"RandWired zero-cost proxies: {cpu:.0f} s CPU", flush=True)
    pop = Population("RandWired", "trained = zero-cost", archs, np.array([truth[a] for a in archs]),
                     note="tse_randwired: 8 settings x 8 seeds, n=16, 16x16, 3,000 images, 20-epoch schedule; "
                          "zero-cost at the same size, batch 64")
    zero_cost_from(pop, pd.read_csv(cache), "arch", archs, RANDWIRED_ZC)
    costs = model_costs(space, archs, num_classes=10, in_channels=3, resolution=RANDWIRED["resolution"],
                        **RANDWIRED["size"])
    pop.add("params", [costs[a]["params"] for a in archs], "params")
    pop.add("flops", [costs[a]["flops"] for a in archs], "flops")
    curve_scores(pop, {a: table.curve(a) for a in archs}, 20)
    return [pop], cpu


def ensemble_specs(pop: Population) -> list[tuple[str, list[str]]]:
    """(title, member labels) of every ensemble evaluated on ``pop``."""
    specs = []
    zc = [p for p in ZERO_COST if p in pop.scores]  # recorded on every architecture (a NaN is a worst score)
    if len(zc) >= 3:
        best = sorted(zc, key=lambda p: -kendall(pop.scores[p], pop.truth))[:3]
        specs.append(("top-3 zero-cost", best))
    if all(p in pop.scores for p in ABDELFATTAH):
        specs.append(("synflow+jacov+snip", list(ABDELFATTAH)))
    for T in BUDGETS:
        for tse in ("tse-ema", "tse-e"):
            for base in FREE:
                if f"{tse}@{T}" in pop.scores and base in pop.scores:
                    specs.append((f"{tse}@{T}+{base}", [f"{tse}@{T}", base]))
    return specs


def evaluate_population(pop: Population, *, draws: int, size: int, seed: int) -> list[dict]:
    """Criteria of every ensemble (both votes; reference = the population, and ``draws`` random references
    of ``size``) and of each of its members, on ``pop``."""
    rows = []
    base = {"space": pop.space, "population": pop.name, "n": len(pop.archs)}
    refs = reference_draws(len(pop.archs), size, draws, seed) if size <= len(pop.archs) and draws else []
    for title, labels in ensemble_specs(pop):
        m = np.column_stack([pop.scores[lab] for lab in labels])
        members = [pop.members[lab] for lab in labels]
        for lab in labels:
            rows.append({**base, "ensemble": title, "role": "member", "estimator": lab, "vote": "", "reference": "",
                         **evaluate_ranking(pop.scores[lab], pop.truth, ks=KS)})
        for vote in VOTES:
            s = population_votes(m, members, vote)
            rows.append({**base, "ensemble": title, "role": "ensemble", "estimator": title, "vote": vote,
                         "reference": f"population ({len(pop.archs)})", **evaluate_ranking(s, pop.truth, ks=KS)})
            if refs:
                crits = [evaluate_ranking(population_votes(m, members, vote, r), pop.truth, ks=KS) for r in refs]
                mean = {k: float(np.mean([c[k] for c in crits])) for k in crits[0]}
                rows.append({**base, "ensemble": title, "role": "ensemble", "estimator": title, "vote": vote,
                             "reference": f"random {size} (mean of {len(refs)})", **mean})
    return rows


def ensembles_summary(df: pd.DataFrame, pops: list[Population], seconds: dict[str, float], size: int,
                      draws: int) -> list[str]:
    lines = ["# Voting ensembles against their members", "",
             "Ensemble scores: the registered `ensemble` estimator's vote (`Ensemble.combine`) of each architecture "
             "against a reference sample drawn from the recorded population; 'pop' = the whole population as the "
             f"reference, 'ref {size}' = a random {size} of it (the ensemble's default size; mean of {draws} "
             "draws). τ = Kendall, P = P@top5%, BR = BR@5% (lower is better).", ""]
    for pop in pops:
        sub = df[(df["space"] == pop.space) & (df["population"] == pop.name)]
        if sub.empty:
            continue
        lines += [f"## {pop.space}, {pop.name} ({len(pop.archs)} architectures)", "", pop.note, ""]
        rows = []
        for title in dict.fromkeys(sub["ensemble"]):
            e = sub[sub["ensemble"] == title]
            mem = e[e["role"] == "member"]
            best = mem.sort_values("kendall", ascending=False).iloc[0]
            row = {"ensemble": title,
                   "members τ": ", ".join(f"{r['estimator']} {fmt(r['kendall'])}" for _, r in mem.iterrows())}
            pop_ref = e["reference"].str.startswith("population")
            maj = e[(e["vote"] == "majority") & pop_ref].iloc[0]
            mr = e[(e["vote"] == "mean-rank") & pop_ref].iloc[0]
            rr = e[(e["vote"] == "mean-rank") & e["reference"].str.startswith("random")]
            row.update({"τ maj": maj["kendall"], "τ mr": mr["kendall"],
                        f"τ mr ref {size}": rr["kendall"].iloc[0] if len(rr) else math.nan,
                        "Δτ mr − best member": mr["kendall"] - best["kendall"],
                        "members P": ", ".join(fmt(v, 2) for v in mem["p@top5%"]),
                        "P maj": fmt(maj["p@top5%"], 2), "P mr": fmt(mr["p@top5%"], 2),
                        "members BR": ", ".join(fmt(v, 3) for v in mem["br@5%"]),
                        "BR maj": maj["br@5%"], "BR mr": mr["br@5%"]})
            rows.append(row)
        lines += markdown_table(rows, list(rows[0])) + [""]
    ens = df[(df["role"] == "ensemble") & df["reference"].str.startswith("population")]
    tally = []
    for (space, popn, title), e in ens.groupby(["space", "population", "ensemble"], sort=False):
        mem = df[(df["space"] == space) & (df["population"] == popn) & (df["ensemble"] == title)
                 & (df["role"] == "member")]
        for _, r in e.iterrows():
            tally.append({"τ": r["kendall"] > mem["kendall"].max(), "P": r["p@top5%"] > mem["p@top5%"].max(),
                          "BR": r["br@5%"] < mem["br@5%"].min(), "zc": not title.startswith("tse")})
    t = pd.DataFrame(tally)
    for label, part in (("zero-cost ensembles", t[t["zc"]]), ("TSE + free-baseline ensembles", t[~t["zc"]])):
        lines.append(f"- {label}: better than their best member in τ {int(part['τ'].sum())}/{len(part)}, "
                     f"in P@top5% {int(part['P'].sum())}/{len(part)}, in BR@5% {int(part['BR'].sum())}/{len(part)} "
                     "(both votes, reference = population)")
    lines += ["", "CPU seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items())]
    return lines


def cmd_ensembles(args, out: Path) -> int:
    seconds = {}
    pops: list[Population] = []
    for name, load in (("NB201", nb201_populations), ("NB101", nb101_populations), ("DARTS", darts_populations)):
        t0 = time.process_time()
        pops += load(args)
        seconds[f"{name} loading"] = time.process_time() - t0
    t0 = time.process_time()
    rw, zc_cpu = randwired_populations(args, out)
    pops += rw
    seconds["RandWired loading"] = time.process_time() - t0 - zc_cpu
    if zc_cpu:
        seconds["RandWired zero-cost scoring"] = zc_cpu
    t0 = time.process_time()
    rows = [r for pop in pops for r in evaluate_population(pop, draws=args.draws, size=args.reference, seed=args.seed)]
    seconds["votes and criteria"] = time.process_time() - t0
    df = pd.DataFrame(rows)
    df.to_csv(out / "ensembles.csv", index=False)
    lines = ensembles_summary(df, pops, seconds, args.reference, args.draws)
    (out / "ensembles.md").write_text("\n".join(lines) + "\n")
    (out / "ensembles_populations.json").write_text(json.dumps(
        [{"space": p.space, "population": p.name, "archs": len(p.archs), "estimators": list(p.scores), "note": p.note}
         for p in pops], indent=2))
    print("\n".join(lines))
    return 0


# ---------------------------------------------------------------------------------------------------
# oneshot: RandNAS / SPOS one-shot scores on NB201, their biases and the mitigations
# ---------------------------------------------------------------------------------------------------
#: the supernets trained (all ``randnas``; SPOS trains the same uniform single-path supernet): name -> options
OS_SUPERNETS = {"baseline": {}, "deiso": {"deiso": True}, "bn-affine": {"bn_affine": True}}
#: the paper's K portions of §6.2 (BR@0.5%, P@5%)
OS_KS = (0.005, 0.05)
OS_CRITERIA = {"Kendall τ": kendall,
               "P@top5%": lambda s, t: precision_at_top_k(s, t, 0.05),
               "BR@0.5%": lambda s, t: best_ranking_at_k(s, t, 0.005)}
#: the network whose FLOPs form the complexity groups: the benchmark's (as for the zero-cost part)
BENCHMARK_SIZE = {"C": 16, "N": 5, "resolution": 32}


@dataclass
class OneShotPass:
    """One set of inherited-weight scores: which supernet, which weights, how it was scored, what it cost."""

    label: str
    supernet: str
    seed: int
    weights: str
    scores: np.ndarray
    cpu_seconds: float
    cached: bool = False


def _ints(text: str, what: str) -> list[int]:
    try:
        out = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{what}: expected comma-separated integers, got {text!r}") from None
    if not out:
        raise ValueError(f"{what}: expected comma-separated integers, got {text!r}")
    return out


class OneShotRunner:
    """Trains (or reloads) the supernets through the ``randnas`` strategy's ``setup`` with a store, and scores
    the population with the registered ``valacc-inherited`` estimator under each strategy's inherited weights.
    Each pass's scores are cached in ``<work>/scores/<label>.json`` (reused when the configuration and the
    architectures match), so an interrupted run loses at most one pass."""

    def __init__(self, args, archs, n_sample: int):
        from nas_engine.data import load_dataset
        from nas_engine.registry import create
        from nas_engine.spaces.nb201 import NB201Space
        from nas_engine.training import Protocol

        self.args, self.archs, self.n_sample = args, archs, n_sample
        self.space = NB201Space()
        self.work = Path(args.os_work)
        (self.work / "scores").mkdir(parents=True, exist_ok=True)
        opts = {"resolution": args.os_resolution} if args.os_resolution else {}
        self.data = load_dataset(args.os_data, root=args.shared, n_train=args.os_n_train, n_val=args.os_n_val,
                                 **opts)
        self.protocol = Protocol(schedule_epochs=args.os_epochs, size={"C": args.os_C, "N": args.os_N},
                                 device="cpu", augment=False)
        self.estimator = create("estimator", "valacc-inherited")
        self.config = {"data": args.os_data, "n_train": args.os_n_train, "n_val": args.os_n_val,
                       "resolution": args.os_resolution, "C": args.os_C, "N": args.os_N, "epochs": args.os_epochs}
        self.supernets: list[dict] = []
        self.passes: list[OneShotPass] = []

    def strategy(self, supernet: str, seed: int, **options):
        """The ``randnas`` strategy with ``supernet``'s options, set up on its store (trained there once)."""
        from nas_engine.context import Context
        from nas_engine.registry import create

        strategy = create("strategy", "randnas", epochs=self.args.os_epochs, **OS_SUPERNETS[supernet], **options)
        store = self.work / f"{supernet}-seed{seed}"
        ctx = Context(space=self.space, data=self.data, protocol=self.protocol, seed=seed, progress=False,
                      store_dir=str(store))
        trained = (store / "supernet.pt").exists()
        t0 = time.process_time()
        strategy.setup(self.space, ctx)
        cpu = time.process_time() - t0
        if not any(r["supernet"] == supernet and r["seed"] == seed for r in self.supernets):
            summary = strategy.trainer_summary
            self.supernets.append({"supernet": supernet, "seed": seed, "epochs": summary["epochs"],
                                   "training_seconds": round(summary["seconds"], 1),
                                   "final_loss": summary["final_loss"], "paths_trained": summary["paths_trained"],
                                   "setup_cpu_seconds_this_run": round(cpu, 1), "reloaded": trained,
                                   "options": json.dumps({**OS_SUPERNETS[supernet], **options})})
            print(f"supernet {supernet} seed {seed}: {'reloaded' if trained else 'trained'}, training "
                  f"{summary['seconds']:.0f} s, final path loss {summary['final_loss']:.3f}", flush=True)
        return strategy

    def score(self, label: str, supernet: str, seed: int, weights_label: str, weights, *, full: bool) -> OneShotPass:
        """The ``valacc-inherited`` score of every architecture (``full``) or of the uniform sample only (NaN for
        the mutation neighbours) under ``weights`` (an ``InheritsWeights``)."""
        from nas_engine.context import Context

        archs = self.archs if full else self.archs[:self.n_sample]
        strings = [a.string for a in archs]
        cache = self.work / "scores" / (label.replace("/", "_").replace(" ", "_") + ".json")
        key = {**self.config, "supernet": supernet, "seed": seed, "weights": weights_label}
        values, cpu, cached = None, 0.0, False
        if cache.exists():
            saved = json.loads(cache.read_text())
            if saved.get("config") == key and saved.get("archs") == strings:
                values, cpu, cached = saved["scores"], float(saved["cpu_seconds"]), True
        if values is None:
            ctx = Context(space=self.space, data=self.data, protocol=self.protocol, seed=seed, progress=False)
            ctx.strategy = weights
            t0 = time.process_time()
            values = [self.estimator.estimate(a, ctx).score for a in archs]
            cpu = time.process_time() - t0
            cache.write_text(json.dumps({"config": key, "archs": strings, "scores": values, "cpu_seconds": cpu}))
        full_values = np.full(len(self.archs), np.nan)
        full_values[:len(values)] = values
        p = OneShotPass(label, supernet, seed, weights_label, full_values, cpu, cached)
        self.passes.append(p)
        print(f"  {label}: {len(values)} architectures, {cpu:.0f} s CPU{' (cached)' if cached else ''}", flush=True)
        return p


def oneshot_population(space, args) -> tuple[list, int, list[int]]:
    """(architectures, size of the uniform sample at their head, base index of each mutation neighbour)."""
    sample = class_sample(space.isomorphism_classes(), args.os_archs, seed=args.os_arch_seed)
    neighbours = mutation_neighbours(space, sample, args.os_neighbours, seed=args.os_arch_seed)
    return sample + [a for a, _ in neighbours], len(sample), [i for _, i in neighbours]


def cmd_oneshot(args, out: Path) -> int:
    import torch

    from nas_engine.costs import model_costs
    from nas_engine.strategies.oneshot import InheritedWeights

    torch.set_num_threads(1)
    t_start = time.process_time()
    E = args.os_epochs
    points = checkpoint_epochs(E, _ints(args.os_points, "--os-points"))
    sizes = sorted(set(_ints(args.os_ensembles, "--os-ensembles")))
    seeds = _ints(args.os_seeds, "--os-seeds")
    if min(sizes) < 2 or max(sizes) > E:
        raise ValueError(f"--os-ensembles: temporal ensembles of 2 to {E} checkpoints, got {sizes}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--os-seeds: distinct seeds, got {seeds}")
    keep = max(E - points[0] + 1, max(sizes))  # the snapshots from the first point on
    last = list(range(E - max(sizes) + 1, E + 1))

    from nas_engine.spaces.nb201 import NB201Space

    space = NB201Space()
    archs, n, bases = oneshot_population(space, args)
    strings = [a.string for a in archs]
    table = pd.read_csv(Path(args.shared) / "nas-bench-201" / "nb201_cifar10_200ep.csv").set_index("arch_str")
    missing = [a for a in strings if a not in table.index]
    if missing:
        raise ValueError(f"{len(missing)} sampled architectures have no ground truth, e.g. {missing[0]!r}")
    y = table.loc[strings, "cifar10_test_acc"].to_numpy(dtype=float)
    t0 = time.process_time()
    costs = model_costs(space, archs, num_classes=10, in_channels=3, **BENCHMARK_SIZE)
    flops = np.array([costs[a]["flops"] for a in strings])
    cpu = {"FLOPs of the benchmark's networks": time.process_time() - t0}

    run = OneShotRunner(args, archs, n)
    s0 = seeds[0]
    base = run.strategy("baseline", s0, keep_checkpoints=keep)
    # the kept snapshots as supernets: the same store reloaded with a score ensemble over all of them
    snap = run.strategy("baseline", s0, keep_checkpoints=keep, ensemble=keep, ensemble_mode="scores")
    nets = dict(zip(snap.trainer_summary["ensemble_epochs"], snap.weights.score_supernets))
    per_epoch = {}
    for e in sorted(set(points) | set(last)):
        w = base if e == E else InheritedWeights(nets[e], base.fine_tuning, "randnas")
        per_epoch[e] = run.score(f"baseline@{e}", "baseline", s0, f"epoch {e}", w, full=e in points)
    del snap, nets
    ensembles = {}
    for k in sizes:
        mean = np.mean([per_epoch[e].scores for e in range(E - k + 1, E + 1)], axis=0)
        ensembles[f"scores-{k}"] = OneShotPass(f"scores-{k}", "baseline", s0, f"mean score, epochs {E - k + 1}-{E}",
                                               mean, 0.0)
        # the library's score ensemble is that mean: checked on the first --os-check architectures
        if args.os_check:
            from nas_engine.context import Context

            strat = run.strategy("baseline", s0, keep_checkpoints=keep, ensemble=k, ensemble_mode="scores")
            ctx = Context(space=space, data=run.data, protocol=run.protocol, seed=s0, progress=False)
            ctx.strategy = strat
            t0 = time.process_time()
            got = np.array([run.estimator.estimate(a, ctx).score for a in archs[:args.os_check]])
            cpu[f"library check of scores-{k} ({len(got)} architectures)"] = time.process_time() - t0
            if not np.allclose(got, mean[:len(got)], rtol=0, atol=1e-9):
                raise ValueError(f"the library's scores-{k} ensemble {got[:3]} is not the mean of the checkpoints' "
                                 f"scores {mean[:3]}")
        strat = run.strategy("baseline", s0, keep_checkpoints=keep, ensemble=k, ensemble_mode="weights")
        ensembles[f"weights-{k}"] = run.score(f"weights-{k}", "baseline", s0, f"mean weights, epochs {E - k + 1}-{E}",
                                              strat, full=False)
    others = {}
    for s in seeds[1:]:
        others[f"baseline seed {s}"] = run.score(f"baseline seed {s}", "baseline", s, f"epoch {E}",
                                                 run.strategy("baseline", s), full=False)
    for name in ("deiso", "bn-affine"):
        others[name] = run.score(name, name, s0, f"epoch {E}", run.strategy(name, s0), full=name == "deiso")

    t0 = time.process_time()
    final = per_epoch[E]
    variants = {**{f"baseline@{e}": per_epoch[e] for e in points}, **ensembles, **others}
    tables = oneshot_tables(space, archs, n, y, flops, variants, per_epoch, final, seeds, args)
    cpu["analysis (criteria, biases, bootstrap)"] = time.process_time() - t0
    # per-architecture scores, wide: every pass (the epochs kept for the score ensembles included)
    wide = pd.DataFrame({"arch_str": strings, "in_sample": np.arange(len(archs)) < n,
                         "neighbour_of": [-1] * n + bases, "iso_class_size": [len(space.isomorphic(a)) for a in archs],
                         "flops": flops, "truth": y})
    for p in [*per_epoch.values(), *ensembles.values(), *others.values()]:
        wide[p.label] = p.scores
    wide.to_csv(out / "os_scores.csv", index=False, float_format="%.6g")
    for key in ("criteria", "complexity_bias", "op_bias", "stability", "differences", "picks", "extremes"):
        tables[key].to_csv(out / f"os_{key}.csv", index=False)
    supernets = pd.DataFrame(run.supernets)
    supernets.to_csv(out / "os_supernets.csv", index=False)
    passes = pd.DataFrame([{"label": p.label, "supernet": p.supernet, "seed": p.seed, "weights": p.weights,
                            "architectures": int(np.isfinite(p.scores).sum()), "cpu_seconds": round(p.cpu_seconds, 1),
                            "cached": p.cached} for p in run.passes])
    cpu["total (this invocation)"] = time.process_time() - t_start
    lines = oneshot_summary(tables, supernets, passes, cpu, args, n=n, neighbours=len(bases), points=points,
                            keep=keep)
    (out / "os_summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def _interval(r) -> str:
    return f"{fmt(r['delta'])} [{fmt(r['lo'])}, {fmt(r['hi'])}]"


def oneshot_summary(t: dict[str, pd.DataFrame], supernets: pd.DataFrame, passes: pd.DataFrame, cpu: dict,
                    args, *, n: int, neighbours: int, points: list[int], keep: int) -> list[str]:
    meta = t["meta"].iloc[0]
    E = args.os_epochs
    lines = [f"# One-shot estimators on NB201: Ning et al.'s diagnosis and mitigations ({n} cells)", "",
             f"Supernets: `randnas` (uniform single path; SPOS's supernet is the same), NB201 C={args.os_C}, "
             f"N={args.os_N}, {args.os_data} {args.os_n_train} training / {args.os_n_val} validation images at "
             f"{args.os_resolution or 'native'} px, no augmentation, batch 64, SGD lr 0.025 cosine to 0.001, "
             f"momentum 0.9, wd 5e-4, {E} epochs. Score: `valacc-inherited` (accuracy of the inherited weights on "
             f"the {args.os_n_val} validation images). Population: {n} NB201 cells, one per isomorphism class, classes "
             f"drawn uniformly from the 6,466 (seed {args.os_arch_seed}), plus {neighbours} one-edge mutation "
             f"neighbours for the op-level analysis ({int(meta['mutation_pairs'])} mutation pairs in all, "
             f"{int(meta['mutation_pairs_largest_group'])} inside the largest FLOPs group). Criteria over the {n}: "
             f"BR@0.5% is the best true rank among the top {int(meta['top_0.5%'])} by score (/ {n}), P@top5% the "
             f"overlap of the top {int(meta['top_5%'])}. Truth: NB201 200-epoch CIFAR-10 test accuracy.", ""]
    crit = t["criteria"].set_index("variant")
    pk = t["picks"]
    top = pk[pk["k"] == 0.05].set_index("variant")
    lines += ["## Criteria", ""]
    rows = []
    for v, r in crit.iterrows():
        rows.append({"variant": v, "weights": r["weights"], "Kendall τ": r["kendall"], "Spearman ρ": r["spearman"],
                     "BR@0.5%": r["br@0.5%"], "P@top5%": r["p@top5%"], "BR@5%": r["br@5%"],
                     "P@bottom5%": r["p@bottom5%"], "top-5% true rank %": top.at[v, "true_rank_pct"],
                     "top-5% FLOPs pct": top.at[v, "complexity_pct"],
                     "top-5% iso class size": top.at[v, "iso_class_size"]})
    rows.append({"variant": "truth (the true top 5%)", "top-5% true rank %": top.at["truth", "true_rank_pct"],
                 "top-5% FLOPs pct": top.at["truth", "complexity_pct"],
                 "top-5% iso class size": top.at["truth", "iso_class_size"]})
    lines += markdown_table(rows, list(rows[0])) + [""]
    seeds = crit[crit["supernet"] == "baseline"]
    seeds = seeds[seeds["weights"] == f"epoch {E}"]
    if len(seeds) >= 2:
        lines += [f"Baseline at epoch {E} over {len(seeds)} supernet seeds, mean ± sample std: " + "; ".join(
            f"{c} {fmt(seeds[k].mean())} ± {fmt(seeds[k].std())}"
            for c, k in (("Kendall τ", "kendall"), ("BR@0.5%", "br@0.5%"), ("P@top5%", "p@top5%"))), ""]
    ex = t["extremes"]
    lines += ["## The three best cells by each estimate (Ning et al. Fig. 9, left)", ""]
    rows = [{"variant": r["variant"], "position": r["position"], "cell": "`" + r["name"].replace("|", "\\|") + "`",
             "score": r["score"],
             "true acc": r["truth"], "true rank": f"{r['true_rank']:.0f} / {n}", "iso class size": r["iso_class_size"]}
            for _, r in ex.iterrows()]
    lines += markdown_table(rows, list(rows[0])) + [""]
    d = t["differences"]
    if len(d):
        lines += [f"## Against the baseline at epoch {E} (seed {crit.at[f'baseline@{E}', 'seed']}): change and 95% "
                  f"bootstrap interval over the {n} cells ({args.os_bootstrap} resamples; BR: lower is better)", ""]
        rows = []
        for v in dict.fromkeys(d["variant"]):
            e = d[d["variant"] == v].set_index("criterion")
            rows.append({"variant": v, **{c: _interval(e.loc[c]) for c in OS_CRITERIA}})
        lines += markdown_table(rows, ["variant", *OS_CRITERIA]) + [""]
    cb = t["complexity_bias"]
    for what, col in (("Kendall τ within each FLOPs group (G1 = smallest)", "kendall"),
                      ("mean RD in each FLOPs group (> 0: overestimated)", "mean_rd")):
        lines += [f"## Complexity-level bias: {what}", ""]
        rows = []
        for v in dict.fromkeys(cb["variant"]):
            g = cb[cb["variant"] == v].set_index("group")
            rows.append({"variant": v, **{f"G{k + 1}": g.at[k, col] if k in g.index else math.nan
                                          for k in range(GROUPS)}})
        lines += markdown_table(rows, ["variant"] + [f"G{k + 1}" for k in range(GROUPS)],
                                digits=3 if col == "kendall" else 1) + [""]
    ob = t["op_bias"]
    for scope, n_pairs in (("all", meta["mutation_pairs"]),
                           ("largest FLOPs group", meta["mutation_pairs_largest_group"])):
        lines += [f"## Op-level bias, {scope} ({int(n_pairs)} mutation pairs, each counted both ways): "
                  "estimated / true increase rate (pairs)", ""]
        rows = []
        for v in dict.fromkeys(ob["variant"]):
            tab = ob[(ob["variant"] == v) & (ob["scope"] == scope)]
            row = {"variant": v}
            for label, a, b in FAMILIES:
                f = op_family(tab, from_op=a, to_op=b)
                row[label] = "—" if f["pairs"] == 0 else (
                    f"{f['estimated_increase']:.2f} / {f['true_increase']:.2f} ({f['pairs']})")
            rows.append(row)
        lines += markdown_table(rows, ["variant"] + [f[0] for f in FAMILIES]) + [""]
    st = t["stability"]
    lines += ["## Ranking stability (the reference's scores taken as the truth)", ""]
    rows = [{"what": r["what"], "between": f"{r['compared']} → {r['reference']}", "Kendall τ": r["kendall"],
             "P@top0.5%": r["P@top0.5%"], "P@top5%": r["P@top5%"], "P@bottom5%": r["P@bottom5%"]}
            for _, r in st.iterrows()]
    lines += markdown_table(rows, list(rows[0])) + [""]
    lines += ["## Supernets", ""]
    lines += markdown_table(supernets.to_dict("records"), ["supernet", "seed", "epochs", "training_seconds",
                                                           "final_loss", "paths_trained", "reloaded",
                                                           "setup_cpu_seconds_this_run"]) + [""]
    lines += [f"Snapshots kept of the baseline (seed {crit.at[f'baseline@{E}', 'seed']}): the last {keep} epochs "
              f"(points {', '.join(map(str, points))})."]
    lines += ["", "## CPU seconds (one torch thread)", ""]
    rows = [{"what": f"scoring: {r['label']}", "architectures": r["architectures"], "CPU s": r["cpu_seconds"],
             "cached": r["cached"]} for _, r in passes.iterrows()]
    rows += [{"what": k, "CPU s": round(v, 1)} for k, v in cpu.items()]
    lines += markdown_table(rows, ["what", "architectures", "CPU s", "cached"], digits=1)
    return lines


def _traits(space, archs) -> pd.DataFrame:
    t = pd.DataFrame([nb201_op_counts(a.string) for a in archs])
    t = t.rename(columns={op: f"live_{op}" for op in NB201_OPS if op != "none"})
    t["no_live_skip"] = (t["live_skip_connect"] == 0).astype(float)
    t["iso_class_size"] = [float(len(space.isomorphic(a))) for a in archs]
    return t


def oneshot_tables(space, archs, n, y, flops, variants, per_epoch, final, seeds, args) -> dict[str, pd.DataFrame]:
    """Every table of the ``oneshot`` subcommand from the scores: criteria and picks over the uniform sample,
    complexity-level bias over it, op-level bias over the mutation pairs of the whole population (sample and
    neighbours) where a pass scored it, ranking stability, and each variant's change against the baseline."""
    ys, fs = y[:n], flops[:n]
    traits = _traits(space, archs[:n])
    pairs = mutation_pairs(archs)
    crit, groups, ops, picks, ext = [], [], [], [], []
    names = [a.string for a in archs[:n]]
    for label, p in [*variants.items(), ("truth", None)]:
        s = ys if p is None else p.scores[:n]
        for k in OS_KS:
            picks.append({"variant": label, "k": k, **pick_traits(s, ys, fs, traits, k=k)})
        if p is None:
            continue
        crit.append({"variant": label, "supernet": p.supernet, "seed": p.seed, "weights": p.weights, "n": n,
                     **evaluate_ranking(s, ys, ks=OS_KS)})
        groups.append(complexity_bias(s, ys, fs, groups=GROUPS).assign(variant=label))
        if label == f"baseline@{args.os_epochs}" or p.weights == f"epoch {args.os_epochs}":
            e = extremes(s, ys, k=3, names=names)
            e = e[e["side"] == "best"]
            ext.append(e.assign(variant=label, iso_class_size=traits["iso_class_size"].to_numpy()[e["index"]]))
        if np.isfinite(p.scores).all():
            largest = complexity_groups(flops, GROUPS) == GROUPS - 1
            for scope, sub in (("all", None), ("largest FLOPs group", largest)):
                ops.append(op_bias(archs, p.scores, y, subset=sub, pairs=pairs).assign(variant=label, scope=scope))
    E = args.os_epochs
    stab = []
    point_sets = {f"epoch {e}": per_epoch[e].scores[:n] for e in sorted(per_epoch) if f"baseline@{e}" in variants}
    stab.append(ranking_stability(point_sets, ks=OS_KS).assign(what="the points of training (later = reference)"))
    last = [e for e in sorted(per_epoch) if e > E - 5]
    if len(last) >= 2:
        stab.append(ranking_stability({f"epoch {e}": per_epoch[e].scores[:n] for e in last}, ks=OS_KS).assign(
            what="consecutive final epochs (later = reference)"))
    seed_sets = {f"seed {seeds[0]}": final.scores[:n],
                 **{f"seed {s}": variants[f"baseline seed {s}"].scores[:n] for s in seeds[1:]}}
    if len(seed_sets) >= 2:
        stab.append(ranking_stability(seed_sets, ks=OS_KS, pairs="all").assign(what="supernet seeds"))
    diffs = []
    for label, p in variants.items():
        if p is final or label == f"baseline@{E}":
            continue
        d = paired_bootstrap(final.scores[:n], p.scores[:n], ys, OS_CRITERIA, draws=args.os_bootstrap, seed=0)
        diffs.append(d.assign(variant=label))
    return {
        "criteria": pd.DataFrame(crit),
        "complexity_bias": _front(pd.concat(groups, ignore_index=True), ["variant"]),
        "op_bias": _front(pd.concat(ops, ignore_index=True), ["variant", "scope"]),
        "stability": _front(pd.concat(stab, ignore_index=True), ["what"]),
        "differences": _front(pd.concat(diffs, ignore_index=True), ["variant"]) if diffs else pd.DataFrame(),
        "picks": pd.DataFrame(picks),
        "extremes": _front(pd.concat(ext, ignore_index=True), ["variant"]),
        "meta": pd.DataFrame([{"archs": len(archs), "sample": n, "mutation_pairs": len(pairs),
                               "mutation_pairs_largest_group": int(((complexity_groups(flops, GROUPS) == GROUPS - 1)[
                                   pairs["i"]] & (complexity_groups(flops, GROUPS) == GROUPS - 1)[pairs["j"]]).sum()),
                               "top_0.5%": math.ceil(round(0.005 * n, 9)), "top_5%": math.ceil(round(0.05 * n, 9))}]),
    }

#: subcommand -> its function (a new subcommand also lists its files in FILES)
COMMANDS = {"zero-cost": cmd_zero_cost, "ensembles": cmd_ensembles, "oneshot": cmd_oneshot}


# ---------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    shared = ROOT.parent / "shared" / "data"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=sorted(COMMANDS), help="what to run (see above)")
    p.add_argument("--out", default=None, help=f"results directory (default: a new reproduce/results/{NAME}-<UTC "
                   "time>); the subcommand's own files in it are not overwritten without --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace this subcommand's files in --out")
    p.add_argument("--shared", default=str(shared), help="the shared data directory (NB201 truth, peer files)")
    p.add_argument("--zc-scores", default=str(RESULTS / "zero_cost_peer_check" / "scores.csv"),
                   help="NB201 zero-cost scores (a zero_cost_peer_check scores.csv)")
    p.add_argument("--nb201-store", default=str(RESULTS / "tse_rank_correlation" / "store"))
    p.add_argument("--nb101-store", default=str(RESULTS / "tse_nb101" / "store"))
    p.add_argument("--nb101-zc", default=str(RESULTS / "nb101_peer_check" / "scores.csv"))
    p.add_argument("--darts-store", default=str(RESULTS / "tse_darts" / "store"))
    p.add_argument("--darts-zc", default=str(RESULTS / "darts_peer_check" / "scores.csv"))
    p.add_argument("--randwired-bench", default=str(RESULTS / "tse_randwired" / "bench"))
    p.add_argument("--reference", type=int, default=32, help="size of the random reference samples (ensembles)")
    p.add_argument("--draws", type=int, default=20, help="random reference samples per ensemble (0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random reference samples")
    o = p.add_argument_group("oneshot", "the one-shot subcommand (its defaults: the CPU proxy scale of "
                             "reproduce/oneshot_selection.py)")
    o.add_argument("--os-epochs", type=int, default=100, help="supernet epochs")
    o.add_argument("--os-points", default="25,50,100", help="the points of supernet training scored, in percent "
                   "of --os-epochs (the last must be 100)")
    o.add_argument("--os-ensembles", default="3,5", help="temporal ensembles: numbers of final checkpoints")
    o.add_argument("--os-seeds", default="0,1", help="baseline supernet seeds; the first is the one every "
                   "mitigation and the points of training use")
    o.add_argument("--os-archs", type=int, default=400, help="cells in the uniform sample of isomorphism classes")
    o.add_argument("--os-neighbours", type=int, default=100,
                   help="one-edge mutation neighbours added (of the first sample cells) for the op-level analysis")
    o.add_argument("--os-arch-seed", type=int, default=0, help="seed of the architecture sample")
    o.add_argument("--os-data", default="cifar10", help="dataset (cifar10 from --shared; digits for a quick check)")
    o.add_argument("--os-n-train", type=int, default=5000)
    o.add_argument("--os-n-val", type=int, default=2000)
    o.add_argument("--os-resolution", type=int, default=16, help="input resolution (0: the dataset's own)")
    o.add_argument("--os-C", type=int, default=8)
    o.add_argument("--os-N", type=int, default=1)
    o.add_argument("--os-bootstrap", type=int, default=1000, help="bootstrap resamples of the differences")
    o.add_argument("--os-check", type=int, default=10, help="architectures on which the library's score ensemble "
                   "is checked against the mean of the checkpoints' scores (0: no check)")
    o.add_argument("--os-work", default=str(ROOT / "runs" / f"{NAME}_oneshot"),
                   help="supernet stores and cached scores (resumable; not results: runs/ is not committed)")
    args = p.parse_args(argv)
    if args.reference < 2 or args.draws < 0:
        p.error(f"--reference must be at least 2 and --draws at least 0, got {args.reference} and {args.draws}")
    needed = [Path(args.shared) / "nas-bench-201" / "nb201_cifar10_200ep.csv"]
    if args.command in ("zero-cost", "ensembles"):
        needed.append(Path(args.zc_scores))
    if args.command == "oneshot" and args.os_data == "cifar10":
        needed.append(Path(args.shared) / "cifar-10-batches-py")
    if args.command == "ensembles":
        needed += [Path(args.shared) / "peer-reference", Path(args.nb201_store), Path(args.nb101_store),
                   Path(args.nb101_zc), Path(args.darts_store), Path(args.darts_zc),
                   Path(args.randwired_bench) / "table.jsonl"]
    missing = [str(x) for x in needed if not x.exists()]
    if missing:
        p.error(f"missing input: {', '.join(missing)} (pass --shared or the path's option)")
    return run_subcommand(p, args, name=NAME, results=RESULTS, files=FILES, commands=COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
