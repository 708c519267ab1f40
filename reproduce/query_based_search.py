"""Query-based NAS with TSE-EMA vs validation accuracy (TSE paper §4.3, Fig. 4), in tabular mode.

Regularised evolution, Bayesian optimisation and random search, each driven by
one of three estimators -- TSE-EMA at T=10, ValAcc at T=10 and ValAcc at the
end of the schedule (T_end) -- search a tabular benchmark, every evaluation
charged the training time the table recorded for the epochs it reads
(``Budget(cost_seconds=...)``).  For every (strategy, estimator) pair and many
seeds we follow the incumbent (the best architecture *by the estimator's
score* so far) and plot the mean and standard error over seeds of its *true*
test error against the cumulative charged training time.

The table is either one built with ``nas-engine bench build`` (a
:class:`~nas_engine.benchmarks.JsonlCurveTable`; its truth is the test
accuracy after the whole schedule) or the NATS-Bench topology release
directory (``--nats DIR``; truth = its 200-epoch test accuracy), e.g.::

    nas-engine bench build --archs 200 --data cifar10 --data-root ../shared/data \\
        --n-train 2000 --n-val 1000 --resolution 16 --C 8 --N 1 --batch-size 64 \\
        --epochs 40 --seed 0 --out /tmp/qbs-table
    python -m reproduce.query_based_search --table /tmp/qbs-table/table.jsonl \\
        --nb201-csv ../shared/data/nas-bench-201/nb201_cifar10_200ep.csv --seeds 10

With ``--nb201-csv`` the incumbents' NAS-Bench-201 200-epoch CIFAR-10 test
error is tracked too (a second figure), so the search at small scale can be
judged against the benchmark's full-scale truth.  The charged time does not
include the strategies' own compute (BO's model fitting); ``wall_seconds`` in
``summary.json`` (per strategy and estimator, all seeds) shows it.

Outputs in ``--out``: ``traces.csv`` (one row per evaluation of every run),
``summary.csv`` / ``summary.json`` (mean +- standard error of the incumbent's
true test error at fractions of the budget; paired BO-vs-random differences),
``incumbent_error.png`` (the figure) and, with ``--nb201-csv``,
``incumbent_error_nb201.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nas_engine.benchmarks import JsonlCurveTable, NATSBench, NB201Table
from nas_engine.estimators import TSEEMA, ValAcc
from nas_engine.search import Budget, Search
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.strategies import BayesianOptimization, RandomSearch, RegularizedEvolution

ROOT = Path(__file__).resolve().parents[1]

FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)


def strategies(names: list[str], bo_fit_maxiter: int) -> dict[str, callable]:
    """Fresh strategy instances by label (10 random initial points each, as in the paper)."""
    # RE: a small population (P=10, tournament 3) suited to a table of a few hundred architectures, and
    # no re-proposals (on a small table nearest-neighbour mutations otherwise cycle among a few architectures).
    made = {"RE": lambda: RegularizedEvolution(population_size=10, sample_size=3, scale_to_budget=False,
                                               repeats=False),
            "BO": lambda: BayesianOptimization(initial_points=10, fit_maxiter=bo_fit_maxiter),
            "Random": lambda: RandomSearch(repeats=False)}
    unknown = [n for n in names if n not in made]
    if unknown:
        raise SystemExit(f"unknown strategies {unknown}; expected some of {list(made)}")
    return {n: made[n] for n in names}


def estimators(T: int, T_end: int) -> dict[str, callable]:
    return {f"TSE-EMA (T={T})": lambda: TSEEMA(epochs=T), f"ValAcc (T={T})": lambda: ValAcc(epochs=T),
            f"ValAcc (T={T_end})": lambda: ValAcc(epochs=T_end)}


def run_one(strategy, estimator, table, space, budget_seconds: float, seed: int) -> tuple[pd.DataFrame, float]:
    """One search; its evaluations in order with cumulative charged time and the incumbent after each."""
    t0 = time.perf_counter()
    # the evaluations cap only guards against endless zero-cost repeats once a strategy has seen everything
    r = Search(strategy, space, estimator, data=None, table=table, seed=seed, progress=False,
               budget=Budget(cost_seconds=budget_seconds, evaluations=20 * len(space))).run()
    wall = time.perf_counter() - t0
    rows, best, best_arch, charged = [], -math.inf, None, 0.0
    for e in r.history:
        charged += e.cost_seconds
        if e.ok and e.score > best:
            best, best_arch = e.score, e.arch.string
        rows.append({"eval": e.index, "arch": e.arch.string, "score": e.score, "cost": e.cost_seconds,
                     "cached": e.cached, "charged": charged, "incumbent": best_arch})
    return pd.DataFrame(rows), wall


def on_grid(trace: pd.DataFrame, truth: dict[str, float], grid: np.ndarray) -> np.ndarray:
    """The incumbent's true error at each grid time (NaN before the first result)."""
    err = np.array([np.nan if a is None else 1.0 - truth[a] for a in trace["incumbent"]])
    idx = np.searchsorted(trace["charged"].to_numpy(), grid, side="right") - 1
    return np.where(idx >= 0, err[np.clip(idx, 0, None)], np.nan)


def mean_se(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over axis 0, ignoring NaN (runs with no result yet); NaN where undefined."""
    ok = ~np.isnan(x)
    n = ok.sum(axis=0)
    v = np.where(ok, x, 0.0)
    mean = v.sum(axis=0) / np.maximum(n, 1)
    var = (np.where(ok, x - mean, 0.0) ** 2).sum(axis=0) / np.maximum(n - 1, 1)
    return np.where(n > 0, mean, np.nan), np.where(n > 1, np.sqrt(var / np.maximum(n, 1)), np.nan)


def plot(curves: dict, grid: np.ndarray, path: Path, title: str, best_error: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strat_names = list(dict.fromkeys(s for s, _ in curves))
    fig, axes = plt.subplots(1, len(strat_names), figsize=(5.2 * len(strat_names), 4.2), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, s in zip(axes, strat_names):
        for (s2, est), (m, se) in curves.items():
            if s2 != s:
                continue
            line, = ax.plot(grid, 100 * m, label=est)
            ax.fill_between(grid, 100 * (m - se), 100 * (m + se), color=line.get_color(), alpha=0.2)
        ax.axhline(100 * best_error, color="k", ls="--", lw=0.8, label="best in table")
        ax.set_xscale("log")
        ax.set_xlabel("cumulative charged training time (s)")
        ax.set_title(s)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("incumbent test error (%)")
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--table", help="an engine JSONL table (nas-engine bench build)")
    src.add_argument("--nats", help="NATS-Bench topology 'simple' release directory")
    p.add_argument("--nats-dataset", default="cifar10-valid")
    p.add_argument("--nb201-csv", help="also track the incumbents' NB201 200-epoch CIFAR-10 test error")
    p.add_argument("--strategies", default="RE,BO,Random")
    p.add_argument("--T", type=int, default=10, help="early budget of TSE-EMA and early ValAcc")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--bo-seeds", type=int, default=None, help="seeds for BO (default: --seeds; BO is the slow one)")
    p.add_argument("--bo-fit-maxiter", type=int, default=50,
                   help="L-BFGS iterations per GP fit (the strategy's default is 200)")
    p.add_argument("--budget", type=float, default=30.0,
                   help="charged-time budget per run, in units of the mean full-schedule training time")
    p.add_argument("--out", default=str(ROOT / "reproduce" / "results" / "query_based_search"))
    args = p.parse_args(argv)

    if args.table:
        table = JsonlCurveTable(args.table)
        source = f"JSONL table {Path(args.table).name} ({len(table)} architectures)"
    else:
        table = NATSBench(args.nats, dataset=args.nats_dataset)
        source = f"NATS-Bench {args.nats_dataset} ({len(table)} architectures)"
    T_end = table.max_epochs
    if T_end is None or args.T >= T_end:
        raise SystemExit(f"--T {args.T} must be below the table's schedule length T_end={T_end}")
    space = table.restrict(NB201Space())
    archs = table.archs()
    truth = {a: table.final_accuracy(a) for a in archs}
    full_seconds = float(np.mean([table.curve(a, validate=True).total_seconds for a in archs]))
    budget_seconds = args.budget * full_seconds
    truths = {"table": truth}
    if args.nb201_csv:
        nb201 = NB201Table(args.nb201_csv)
        truths["nb201"] = {a: nb201.final_accuracy(a) for a in archs}

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grid = np.geomspace(full_seconds * 0.05, budget_seconds, 200)
    strats, ests = strategies(args.strategies.split(","), args.bo_fit_maxiter), estimators(args.T, T_end)
    traces, grids, walls = [], {k: {} for k in truths}, {}
    for s_name, make_s in strats.items():
        for e_name, make_e in ests.items():
            per_seed = {k: [] for k in truths}
            t0 = time.perf_counter()
            n_seeds = args.bo_seeds if s_name == "BO" and args.bo_seeds else args.seeds
            for seed in range(n_seeds):
                tr, _ = run_one(make_s(), make_e(), table, space, budget_seconds, seed)
                traces.append(tr.assign(strategy=s_name, estimator=e_name, seed=seed))
                for k, t in truths.items():
                    per_seed[k].append(on_grid(tr, t, grid))
            walls[(s_name, e_name)] = time.perf_counter() - t0
            for k in truths:
                grids[k][(s_name, e_name)] = np.stack(per_seed[k])
            m = grids["table"][(s_name, e_name)][:, -1]
            print(f"{s_name:7s} {e_name:16s} final error {100 * np.nanmean(m):.2f} +- "
                  f"{100 * np.nanstd(m, ddof=1) / np.sqrt(len(m)):.2f} %  ({walls[(s_name, e_name)]:.1f} s)",
                  flush=True)

    pd.concat(traces).to_csv(out / "traces.csv", index=False)
    rows, summary = [], {"source": source, "T": args.T, "T_end": T_end, "seeds": args.seeds,
                         "bo_seeds": args.bo_seeds or args.seeds, "bo_fit_maxiter": args.bo_fit_maxiter,
                         "mean_full_training_seconds": full_seconds, "budget_seconds": budget_seconds,
                         "budget_full_trainings": args.budget, "wall_seconds": {}, "results": {}}
    for k, g in grids.items():
        best_err = 1.0 - max(truths[k].values())
        summary[f"best_error_in_table_{k}"] = best_err
        curves = {key: mean_se(x) for key, x in g.items()}
        name = "incumbent_error.png" if k == "table" else f"incumbent_error_{k}.png"
        what = "table's test error after T_end" if k == "table" else "NB201 200-epoch CIFAR-10 test error"
        n_runs = f"{args.seeds} seeds" + (f" ({args.bo_seeds} for BO)" if args.bo_seeds else "")
        plot(curves, grid, out / name, f"{source}; truth: {what}; mean +- SE over {n_runs}", best_err)
        for (s_name, e_name), x in g.items():
            for f in FRACTIONS:
                j = int(np.searchsorted(grid, f * budget_seconds, side="left").clip(0, len(grid) - 1))
                col = x[:, j]
                mean, se = mean_se(col[:, None])
                rows.append({"truth": k, "strategy": s_name, "estimator": e_name, "budget_fraction": f,
                             "charged_seconds": grid[j], "mean_error": float(mean[0]), "se_error": float(se[0]),
                             "runs_with_result": int(np.sum(~np.isnan(col)))})
        # paired (same seed) BO - random difference at each fraction, per estimator
        if "BO" in strats and "Random" in strats:
            for e_name in ests:
                n = min(len(g[("BO", e_name)]), len(g[("Random", e_name)]))  # paired: the same seeds
                d = g[("BO", e_name)][:n] - g[("Random", e_name)][:n]
                for f in FRACTIONS:
                    j = int(np.searchsorted(grid, f * budget_seconds, side="left").clip(0, len(grid) - 1))
                    col = d[:, j][~np.isnan(d[:, j])]
                    summary["results"].setdefault(k, {}).setdefault("bo_minus_random", {}).setdefault(e_name, {})[
                        str(f)] = {"mean": float(col.mean()) if len(col) else None,
                                   "se": float(col.std(ddof=1) / np.sqrt(len(col))) if len(col) > 1 else None,
                                   "bo_better_seeds": int(np.sum(col < 0)), "ties": int(np.sum(col == 0)),
                                   "n": int(len(col))}
    df = pd.DataFrame(rows)
    df.to_csv(out / "summary.csv", index=False)
    summary["wall_seconds"] = {f"{s}|{e}": w for (s, e), w in walls.items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    final = df[(df.truth == "table") & (df.budget_fraction.isin([0.1, 0.25, 1.0]))]
    print(final.pivot_table(index=["strategy", "estimator"], columns="budget_fraction",
                            values="mean_error").mul(100).round(2).to_string())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
