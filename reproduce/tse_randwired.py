"""TSE on randomly wired networks at CPU scale (TSE paper Fig. 1d and Appendix E's question).

No public ground truth for RandWiredNN is in reach here, so the script builds
one with the engine's own benchmark builder
(:func:`nas_engine.build.build_table`, what ``nas-engine bench build``
runs): several generator settings of the ``randwired`` space (Watts-Strogatz,
Erdos-Renyi, Barabasi-Albert), each with several graph seeds (the paper's
"8 networks per hyperparameter value"), every network trained for a whole
short schedule on the real CIFAR-10 subset; the truth is each network's final
accuracy on CIFAR-10's 10,000 test images.  The curves' prefixes t = 1..T are
then scored with TSE, TSE-E, TSE-EMA, SoVL and early ValAcc and ranked against
that truth (Spearman and Kendall), next to the free baselines: #params,
#FLOPs, and zero-cost proxies at the training size.

Two levels, as the paper: **networks** (every trained graph) and **settings**
(Appendix E, choosing generator hyperparameters: each setting's estimator
score and truth averaged over its seeds).

Reduced protocol (defaults; every choice is a flag): ``n=16`` nodes per stage
(the paper's small regime uses 32), 3 random-graph stages with C=16, 32, 64
channels, 16x16 inputs, 3,000 class-balanced training and 1,000 validation
images, random crop and flip, batch 64, SGD lr 0.1 (Nesterov momentum 0.9,
weight decay 5e-4) on a cosine schedule of 20 epochs run to the end.
Networks train two at a time (processes executor, one torch thread each).

    OMP_NUM_THREADS=1 python -m reproduce.tse_randwired [--seeds 8] [--epochs 20] [--out DIR]

The default ``--out`` is a new directory named after the current UTC time; an
existing non-empty ``--out`` is refused unless ``--resume`` (the build's store
is in ``--out/bench/store``, so a resumed run does not retrain what finished).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nas_engine.build import build_table
from nas_engine.correlate import correlate, plot_correlation
from nas_engine.costs import model_costs
from nas_engine.criteria import evaluate_ranking
from nas_engine.data import load_dataset
from nas_engine.estimators.zero_cost import zero_cost_scores
from nas_engine.registry import create
from nas_engine.spaces.randwired import RandWiredSpace
from nas_engine.training import Protocol
from reproduce.common.peer_tse import ESTIMATORS, table, wall_all_runs

ROOT = Path(__file__).resolve().parents[1]

ZERO_COST = ("synflow", "nwot", "snip", "jacov", "grad-norm")
#: the generator settings (generator, hyperparameters); n comes from --nodes
SETTINGS = (("ws", {"k": 4, "p": 0.75}), ("ws", {"k": 4, "p": 0.25}), ("ws", {"k": 8, "p": 0.5}),
            ("er", {"p": 0.1}), ("er", {"p": 0.25}), ("er", {"p": 0.5}),
            ("ba", {"m": 1}), ("ba", {"m": 5}))
SHOWN = (1, 2, 3, 5, 8, 12, 16, 20)


def setting_level(space: RandWiredSpace, curves, truth, baselines, budgets) -> pd.DataFrame:
    """Appendix E: each setting's mean score over its seeds vs its mean truth, per estimator and budget."""
    settings: dict[str, list[str]] = {}
    for a in curves:
        settings.setdefault(space.setting(space.from_string(a)), []).append(a)
    names = list(settings)
    y = np.array([np.mean([truth[a] for a in settings[s]]) for s in names])
    rows = []
    for est_name in ESTIMATORS:
        for t in budgets:
            est = create("estimator", est_name, epochs=t)
            s = np.array([np.mean([est.score(curves[a]) for a in settings[k]]) for k in names])
            rows.append({"estimator": est_name, "epochs": t, "n": len(names), **evaluate_ranking(s, y, ks=(0.25,))})
    for base, values in baselines.items():
        s = np.array([np.mean([values[a] for a in settings[k]]) for k in names])
        crit = evaluate_ranking(s, y, ks=(0.25,))
        rows.extend({"estimator": base, "epochs": t, "n": len(names), **crit} for t in budgets)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"), help="directory with "
                   "cifar-10-batches-py/")
    p.add_argument("--seeds", type=int, default=8, help="graph seeds per generator setting")
    p.add_argument("--nodes", type=int, default=16, help="nodes per random graph (n)")
    p.add_argument("--epochs", type=int, default=20, help="the whole schedule every network is trained for")
    p.add_argument("--C", type=int, default=16, help="channels of the first random-graph stage")
    p.add_argument("--N", type=int, default=3, help="random-graph stages")
    p.add_argument("--resolution", type=int, default=16)
    p.add_argument("--n-train", type=int, default=3000)
    p.add_argument("--n-val", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--workers", type=int, default=2, help="networks trained at once (one thread each)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="results directory (default: a new one, "
                   "reproduce/results/tse_randwired-<UTC time>); an existing non-empty one needs --resume")
    p.add_argument("--resume", action="store_true", help="continue in an existing --out")
    args = p.parse_args(argv)
    if not Path(args.shared, "cifar-10-batches-py").is_dir():
        p.error(f"needs {Path(args.shared, 'cifar-10-batches-py')} (pass --shared)")
    out = Path(args.out) if args.out else ROOT / "reproduce" / "results" / (
        "tse_randwired-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    if out.exists() and any(out.iterdir()) and not args.resume:
        p.error(f"{out} exists and is not empty; pass --resume to continue there, or another --out")
    out.mkdir(parents=True, exist_ok=True)

    space = RandWiredSpace()
    archs = [a for gen, hp in SETTINGS
             for a in space.from_hyperparameters(gen, args.nodes, range(args.seeds), **hp)]
    data = load_dataset("cifar10", args.shared, n_train=args.n_train, n_val=args.n_val,
                        resolution=args.resolution, seed=args.seed)
    size = {"C": args.C, "stages": args.N}  # --N: the random-graph stages
    protocol = Protocol(schedule_epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, size=size,
                        device=args.device)
    t0 = time.perf_counter()
    bench = build_table(space, data, protocol, archs=archs, out=out / "bench", seed=args.seed,
                        executor="processes", workers=args.workers)
    wall = time.perf_counter() - t0
    names = bench.archs()
    curves = {a: bench.curve(a) for a in names}
    truth = bench.ground_truth()

    costs = model_costs(space, names, num_classes=data.num_classes, in_channels=data.in_channels,
                        resolution=args.resolution, **size)
    baselines = {"params": {a: float(costs[a]["params"]) for a in names},
                 "flops": {a: float(costs[a]["flops"]) for a in names}}
    t1 = time.perf_counter()
    zc = zero_cost_scores(space, names, data, protocol, proxies=ZERO_COST, seed=args.seed, batch_size=64)
    zc_seconds = time.perf_counter() - t1
    baselines.update(zc)

    budgets = list(range(1, args.epochs + 1))
    df = correlate(curves, truth, estimators=ESTIMATORS, baselines=baselines, ks=(0.1,))
    df.to_csv(out / "criteria.csv", index=False)
    settings_df = setting_level(space, curves, truth, baselines, budgets)
    settings_df.to_csv(out / "criteria_settings.csv", index=False)
    title = (f"RandWired, {len(names)} networks ({len(SETTINGS)} settings x {args.seeds} seeds, n={args.nodes})\n"
             f"truth: CIFAR-10 test acc after {args.epochs} epochs on {args.n_train} imgs @{args.resolution}px")
    plot_correlation(df[df["estimator"].isin([*ESTIMATORS, "params", "flops", "synflow", "nwot"])],
                     str(out / "spearman_vs_budget.png"), baselines=["params", "flops", "synflow", "nwot"],
                     title=title)
    plot_correlation(settings_df[settings_df["estimator"].isin([*ESTIMATORS, "params", "flops"])],
                     str(out / "spearman_vs_budget_settings.png"), baselines=["params", "flops"],
                     title=f"RandWired settings (mean over {args.seeds} seeds each), {len(SETTINGS)} settings")

    accs = np.array([truth[a] for a in names])
    by_setting = {}
    for a in names:
        by_setting.setdefault(space.setting(space.from_string(a)), []).append(truth[a])
    train_seconds = sum(c.total_seconds for c in curves.values())
    summary = {"networks": len(names), "failed": len(archs) - len(names), "settings": len(SETTINGS),
               "seeds": args.seeds, "nodes": args.nodes, "protocol": protocol.to_dict(),
               "data": data.fingerprint(), "train_seconds": train_seconds, "wall_seconds_this_run": wall,
               "wall_seconds_all_runs": wall_all_runs(out, wall),
               "zero_cost_seconds": zc_seconds,
               "truth": {"min": float(accs.min()), "median": float(np.median(accs)), "max": float(accs.max()),
                         "std": float(accs.std())},
               "truth_by_setting": {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v)}
                                    for k, v in sorted(by_setting.items(), key=lambda kv: -np.mean(kv[1]))}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    shown = [t for t in SHOWN if t <= args.epochs]
    lines = [f"# TSE on RandWired: {len(names)} networks, T = 1..{args.epochs} of {args.epochs}", "",
             f"truth (test acc): min {accs.min():.4f}, median {np.median(accs):.4f}, max {accs.max():.4f}, "
             f"std {accs.std():.4f}", "", "## Networks", ""]
    for crit in ("spearman", "kendall"):
        lines += table(df, crit, shown, "test acc") + [""]
    lines += [f"## Settings (mean over seeds; {len(SETTINGS)} settings)", ""]
    for crit in ("spearman", "kendall"):
        lines += table(settings_df, crit, shown, "mean test acc") + [""]
    lines += ["| setting | mean test acc | std over seeds |", "|---|---|---|"]
    lines += [f"| {k} | {v['mean']:.4f} | {v['std']:.4f} |" for k, v in summary["truth_by_setting"].items()]
    lines += ["", f"training: {train_seconds:.0f} s of network time, {wall:.0f} s wall this run "
              f"({summary['wall_seconds_all_runs']:.0f} s all runs), "
              f"{train_seconds / max(1, len(names) * args.epochs):.2f} s per network-epoch, "
              f"{summary['failed']} failed; zero-cost proxies {zc_seconds:.0f} s"]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
