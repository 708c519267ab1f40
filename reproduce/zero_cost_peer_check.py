"""Zero-cost proxies against a peer: our scores vs NASLib's on the same NB201 architectures.

``naslib_zerocost_nb201.csv`` (shared data) holds NASLib's zero-cost scores
(NAS-Bench-Suite-Zero) for 725 NB201 architectures on CIFAR-10.  For each of
our proxies this script reports, over those architectures,

* Spearman(ours, NASLib's) -- do the two implementations rank alike;
* Spearman(ours, 200-epoch CIFAR-10 test accuracy) next to
  Spearman(NASLib's, the same accuracy), on the same architectures.

Setting (NASLib's, as far as it can be checked): the full NB201 network
(C=16, N=5) on 32x32 CIFAR-10, PyTorch default initialisation, training mode,
one minibatch of 32 images (NASLib's ``zc_config.yaml`` has ``batch_size: 32``,
and its jacov values confirm it: jacov <= -batch for any batch, and NASLib's
reach -32.23).  Our minibatch is drawn from the shared ``data_batch_1`` (one
fixed minibatch for all architectures, seed 0); NASLib drew a fresh augmented
one per architecture from the full training set, so data-dependent proxies
cannot agree exactly.

Scores are appended to ``scores.csv`` as they are computed (resumable: rerun
to continue); architectures are visited in a seeded random order, proxies in
tiers (the data-free ones on every architecture first, then the
data-dependent ones, then ``grasp``), and the expensive ``grasp`` only on the
first ``--subset`` of that order, so that an interrupted run leaves each proxy
scored on a uniformly random subset.  ``--seed-check N`` scores the first N
architectures again with seed + 1 (new initialisation and minibatch) to show
how much a proxy's ranking moves between two of our own runs.  ``summary.csv`` / ``summary.md`` are rewritten at the end
(``--summarize`` rewrites them from ``scores.csv`` alone).

    OMP_NUM_THREADS=1 python -m reproduce.zero_cost_peer_check [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nas_engine.context import Context
from nas_engine.criteria import rank_agreement, spearman
from nas_engine.estimators.zero_cost import MEASURES, ZERO_COST_PROXIES
from nas_engine.registry import create
from reproduce.common.naslib_peer import score_rows

ROOT = Path(__file__).resolve().parents[1]

#: our proxy name -> NASLib's column
NASLIB_COLUMN = {"grad-norm": "grad_norm"}
EXPENSIVE = ("grasp",)
#: computed in this order, each over all architectures before the next: cheap data-free ones first
TIERS = (("synflow", "params", "flops"), ("nwot", "jacov", "snip", "grad-norm", "fisher", "plain"), EXPENSIVE)


def naslib_column(proxy: str) -> str:
    return NASLIB_COLUMN.get(proxy, proxy)


def load_tables(shared: Path) -> pd.DataFrame:
    nb = shared / "nas-bench-201"
    peer = pd.read_csv(nb / "naslib_zerocost_nb201.csv")
    peer = peer[peer.dataset == "cifar10"].drop_duplicates("arch_str").set_index("arch_str")
    truth = pd.read_csv(nb / "nb201_cifar10_200ep.csv").set_index("arch_str")["cifar10_test_acc"]
    peer["test_acc"] = truth.reindex(peer.index)
    if peer["test_acc"].isna().any():
        raise ValueError(f"{int(peer['test_acc'].isna().sum())} NASLib architectures have no NB201 test accuracy")
    return peer


def compute(args, peer: pd.DataFrame, out: Path, *, seed: int, path: Path, limit: int | None = None,
            proxies=None) -> None:
    """Score the architectures (in the seed-``args.seed`` random order, the first ``limit``) into ``path``."""
    import torch

    from nas_engine.data import load_dataset
    from nas_engine.spaces.nb201 import NB201Space
    from nas_engine.training import Protocol

    torch.set_num_threads(args.threads)
    space = NB201Space()
    data = load_dataset("cifar10", root=args.shared, n_train=args.n_train, n_val=0)
    protocol = Protocol(batch_size=args.batch_size, size={"C": 16, "N": 5}, device=args.device)
    ctx = Context(space=space, data=data, protocol=protocol, seed=seed)
    ests = {p: create("estimator", p) for p in (proxies or args.proxies)}
    order = list(np.random.default_rng(args.seed).permutation(list(peer.index)))[:limit]
    with score_rows(path, "arch_str") as (done, w, f):
        t0 = time.time()
        for tier in TIERS:
            tier_ests = {p: est for p, est in ests.items() if p in tier}
            for i, s in enumerate(order):
                todo = [p for p in tier_ests if (s, p) not in done and not (p in EXPENSIVE and i >= args.subset)]
                if not todo:
                    continue
                arch = space.from_string(s)
                for p in todo:
                    e = tier_ests[p].estimate(arch, ctx)
                    w.writerow([s, p, repr(e.score), f"{e.cost_seconds:.4f}"])
                f.flush()
                if (i + 1) % 25 == 0:
                    print(f"{'/'.join(tier)}: {i + 1}/{len(order)} architectures, {time.time() - t0:.0f} s",
                          flush=True)


def has_dead_ops(arch_str: str) -> bool:
    """Whether a conv or pooling edge of the cell feeds a node that cannot reach the output.

    NB201's and NASLib's networks still compute such edges (and count their
    FLOPs); ours skips them.
    """
    import networkx as nx

    from nas_engine.spaces.nb201 import NB201Space

    g = NB201Space().to_graph(NB201Space().from_string(arch_str))
    live = nx.DiGraph([(u, v) for u, v, op in g.edges(data="op") if op != "none"])
    needed = {3} | (nx.ancestors(live, 3) if 3 in live else set())
    return any(op not in ("none", "skip_connect") and v not in needed for u, v, op in g.edges(data="op"))


def flops_breakdown(ours: pd.DataFrame, peer: pd.DataFrame) -> list[str]:
    """Spearman(ours, NASLib) for flops on the architectures where the counting conventions agree."""
    mine = ours[ours.proxy == "flops"].drop_duplicates("arch_str").set_index("arch_str")["score"]
    if mine.empty:
        return []
    theirs = peer.loc[mine.index, "flops"]
    dead = np.array([has_dead_ops(a) for a in mine.index])
    pool = np.array(["avg_pool_3x3" in a for a in mine.index])
    lines = ["", "flops, ρ(ours, NASLib) by subset (NASLib also counts pooling and edges whose result never "
             "reaches the cell output):", ""]
    for name, keep in (("all", np.ones(len(mine), bool)), ("no dead conv/pool edges", ~dead),
                       ("no dead edges and no pooling", ~dead & ~pool)):
        rho = rank_agreement(mine[keep].to_numpy(), theirs[keep].to_numpy())
        lines.append(f"- {name}: n={int(keep.sum())}, ρ={rho:.3f}")
    return lines


def summarize(peer: pd.DataFrame, out: Path, args) -> pd.DataFrame:
    ours = pd.read_csv(out / "scores.csv")
    check_path = out / f"scores_seed{args.seed + 1}.csv"
    other = pd.read_csv(check_path) if check_path.exists() else None
    rows = []
    dead_ops = {a: has_dead_ops(a) for a in ours.arch_str.unique()}
    for p in ZERO_COST_PROXIES:
        mine = ours[ours.proxy == p].drop_duplicates("arch_str").set_index("arch_str")
        if mine.empty:
            continue
        theirs = peer.loc[mine.index]
        s_ours = mine["score"].to_numpy(float)
        s_peer = theirs[naslib_column(p)].to_numpy(float)
        acc = theirs["test_acc"].to_numpy(float)
        live = ~np.array([dead_ops[a] for a in mine.index])
        rows.append({
            "proxy": p, "n": len(mine), "data_free": not MEASURES[p].uses_data,
            "spearman_ours_vs_naslib": rank_agreement(s_ours, s_peer),
            "n_no_dead_edges": int(live.sum()),
            "spearman_ours_vs_naslib_no_dead_edges": rank_agreement(s_ours[live], s_peer[live]),
            "spearman_ours_vs_test_acc": spearman(s_ours, acc),
            "spearman_naslib_vs_test_acc": spearman(s_peer, acc),
            "ours_nonfinite": int((~np.isfinite(s_ours)).sum()),
            "naslib_nonfinite_or_-1e8": int((~np.isfinite(s_peer) | (s_peer == -1e8)).sum()),
            "mean_seconds": float(mine["cost_seconds"].mean()),
        })
        if other is not None and (other.proxy == p).any():
            again = other[other.proxy == p].drop_duplicates("arch_str").set_index("arch_str")
            both = again.index.intersection(mine.index)
            rows[-1]["n_seed_check"] = len(both)
            rows[-1]["spearman_ours_vs_ours_other_seed"] = rank_agreement(mine.loc[both, "score"].to_numpy(float),
                                                                     again.loc[both, "score"].to_numpy(float))
    df = pd.DataFrame(rows)
    df.to_csv(out / "summary.csv", index=False)
    lines = [
        f"NASLib's 725 NB201 CIFAR-10 architectures; ours: C=16, N=5, batch {args.batch_size}, seed {args.seed}, "
        "CPU, 1 thread. 'No dead edges': the architectures without conv/pool edges whose result never reaches "
        "the cell output (NASLib's network computes them, ours skips them).",
        "",
        "| proxy | n | ρ(ours, NASLib) | same, no dead edges | ρ(ours, test acc) | ρ(NASLib, test acc) | "
        f"s per arch | ρ(ours, ours seed {args.seed + 1}) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        check = r.get("spearman_ours_vs_ours_other_seed")
        check = "" if check is None or pd.isna(check) else f"{check:.3f} (n={r['n_seed_check']})"
        lines.append(f"| {r['proxy']} | {r['n']} | {r['spearman_ours_vs_naslib']:.3f} | "
                     f"{r['spearman_ours_vs_naslib_no_dead_edges']:.3f} (n={r['n_no_dead_edges']}) | "
                     f"{r['spearman_ours_vs_test_acc']:.3f} | {r['spearman_naslib_vs_test_acc']:.3f} | "
                     f"{r['mean_seconds']:.2f} | {check} |")
    lines += flops_breakdown(ours, peer)
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return df


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--out", default=str(ROOT / "reproduce" / "results" / "zero_cost_peer_check"))
    p.add_argument("--proxies", default=",".join(ZERO_COST_PROXIES))
    p.add_argument("--subset", type=int, default=200, help="architectures for the expensive proxies (grasp)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--n-train", type=int, default=10000, help="training pool the minibatch is drawn from")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--summarize", action="store_true", help="only rewrite the summary from scores.csv")
    p.add_argument("--seed-check", type=int, default=0, metavar="N",
                   help="instead of the main run: score the first N architectures again with seed+1 "
                        "(new initialisation and minibatch), data-dependent proxies only, for the summary's "
                        "seed-to-seed column")
    args = p.parse_args(argv)
    args.proxies = [x for x in args.proxies.split(",") if x]
    unknown = [x for x in args.proxies if x not in MEASURES]
    if unknown:
        p.error(f"unknown proxies {unknown}; known: {', '.join(MEASURES)}")
    shared = Path(args.shared)
    if not (shared / "nas-bench-201" / "naslib_zerocost_nb201.csv").exists():
        p.error(f"needs {shared / 'nas-bench-201' / 'naslib_zerocost_nb201.csv'} (pass --shared)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    peer = load_tables(shared)
    if args.seed_check:
        compute(args, peer, out, seed=args.seed + 1, path=out / f"scores_seed{args.seed + 1}.csv",
                limit=args.seed_check, proxies=[x for x in args.proxies if MEASURES[x].uses_data])
    elif not args.summarize:
        compute(args, peer, out, seed=args.seed, path=out / "scores.csv")
    summarize(peer, out, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
