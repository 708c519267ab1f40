"""Ning et al.'s estimator diagnosis at CPU scale (issue 32, item 5): zero-cost proxies and voting ensembles.

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

A subcommand refuses to overwrite its own files in an existing ``--out`` unless ``--overwrite``; the
default ``--out`` is a new directory ``reproduce/results/estimator_diagnosis-<UTC time>``.

    OMP_NUM_THREADS=1 python -m reproduce.estimator_diagnosis zero-cost [--out DIR]
    OMP_NUM_THREADS=1 python -m reproduce.estimator_diagnosis ensembles [--out DIR]

The one-shot estimators (RandNAS / SPOS scores, de-isomorphic sampling, temporal ensembles, BN
affine) are not part of this script yet.
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

from nas_engine.criteria import evaluate_ranking, kendall
from nas_engine.diagnosis import complexity_bias, complexity_groups, extremes, mutation_pairs, op_bias
from reproduce.common.estimator_diagnosis import (
    NB201_OPS,
    fmt,
    markdown_table,
    nb201_op_counts,
    op_family,
    pick_traits,
    population_votes,
    reference_draws,
)
from reproduce.common.recorded_curves import store_curves

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
         "ensembles": ("ensembles.csv", "ensembles.md", "ensembles_populations.json")}


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


#: subcommand -> its function (a new subcommand also lists its files in FILES)
COMMANDS = {"zero-cost": cmd_zero_cost, "ensembles": cmd_ensembles}


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
    args = p.parse_args(argv)
    if args.reference < 2 or args.draws < 0:
        p.error(f"--reference must be at least 2 and --draws at least 0, got {args.reference} and {args.draws}")
    needed = [Path(args.shared) / "nas-bench-201" / "nb201_cifar10_200ep.csv", Path(args.zc_scores)]
    if args.command == "ensembles":
        needed += [Path(args.shared) / "peer-reference", Path(args.nb201_store), Path(args.nb101_store),
                   Path(args.nb101_zc), Path(args.darts_store), Path(args.darts_zc),
                   Path(args.randwired_bench) / "table.jsonl"]
    missing = [str(x) for x in needed if not x.exists()]
    if missing:
        p.error(f"missing input: {', '.join(missing)} (pass --shared or the path's option)")
    out = Path(args.out) if args.out else RESULTS / (NAME + "-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    clash = [f for f in FILES[args.command] if (out / f).exists()]
    if clash and not args.overwrite:
        p.error(f"{out} already holds {', '.join(clash)}; pass --overwrite to replace them, or another --out")
    out.mkdir(parents=True, exist_ok=True)
    try:
        return COMMANDS[args.command](args, out)
    except (ValueError, KeyError) as exc:
        print(f"estimator_diagnosis: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
