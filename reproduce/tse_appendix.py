"""The TSE paper's robustness and baseline appendices on the learning curves this repository has recorded.

Ru et al., "Speedy Performance Estimation for NAS" (the shared
``papers/tse-speedy-performance-estimation.md``), §4.1 with Appendix D and Appendix H, at CPU scale.
Nothing is trained: every score is computed from the curves recorded by ``tse_rank_correlation``
(NB201, 100 cells), ``tse_nb101`` (NB101, 150), ``tse_darts`` (DARTS, 100) and ``tse_randwired``
(RandWired, 64 networks), against the truth those scripts used (see
:mod:`reproduce.common.recorded_curves`).  Subcommands (each writes ``<name>.csv`` and ``<name>.md``
into ``--out``):

``fractional-e``
    TSE-E's summation window (Appendix D): E in {0.1, 0.3, 0.5, 0.7} (the last ceil(E*B) of epoch T's
    B minibatch losses) against E = 1 (the whole last epoch) and whole-epoch windows E = 2, 3, 5, 10
    (the paper's E = 1, 10, ..., 70 at T up to 200 epochs; here E <= T <= 12, or 20 for RandWired),
    at every budget T of :data:`BUDGETS`: every ranking criterion on every architecture.

``gamma``
    TSE-EMA's decay (§4.1, Appendix D): gamma in {0.9, 0.95, 0.99, 0.999}, with TSE-E (E = 1) and TSE
    (gamma = 1) beside them, at the same budgets.

``gbm``
    XGBoost and LightGBM curve predictors against LcSVR (Appendix H): ``lc-xgb``, ``lc-lgbm`` and
    ``lcsvr`` (the same features: validation-accuracy curve up to T, #params, #FLOPs, op counts), each
    fitted on a random half of a population (its curves up to T against the truth, hyperparameters by
    3-fold cross-validation) and ranking the other half, for ``--seeds`` random halves; TSE-E, TSE-EMA
    and early ValAcc rank the same half.  Besides the four recorded populations, the benchmark's own
    NB201 curves of architectures 0-199 (``NB201-real``, validation accuracy only: LcSVR's earlier study
    ``lcsvr_real_curves``) at T = 5, 10, 25, 50.

A subcommand refuses to overwrite its own files in an existing ``--out`` unless ``--overwrite``; the
default ``--out`` is a new directory ``reproduce/results/tse_appendix-<UTC time>``.  The committed
results are in ``reproduce/results/tse_appendix`` (``docs/results/tse_appendix.md``).

    OMP_NUM_THREADS=1 python -m reproduce.tse_appendix fractional-e [--out DIR]
    OMP_NUM_THREADS=1 python -m reproduce.tse_appendix gamma [--out DIR]
    OMP_NUM_THREADS=1 python -m reproduce.tse_appendix gbm [--seeds 0,1,2,3,4] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from nas_engine.criteria import evaluate_ranking
from nas_engine.registry import create
from reproduce.common import recorded_curves
from reproduce.common.estimator_diagnosis import markdown_table
from reproduce.common.recorded_curves import paired_delta_ci
from reproduce.common.subcommands import run_subcommand

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "reproduce" / "results"
NAME = "tse_appendix"

#: budgets T at which the TSE variants are scored (those <= a population's recorded epochs)
BUDGETS = (1, 2, 3, 5, 8, 12, 20)
#: fractional windows (Appendix D) and whole-epoch ones
FRACTIONS = (0.1, 0.3, 0.5, 0.7)
WHOLE = (1, 2, 3, 5, 10)
GAMMAS = (0.9, 0.95, 0.99, 0.999)
#: the gbm study's budgets per population
GBM_BUDGETS = {"NB201": (1, 3, 6, 12), "NB101": (1, 3, 6, 12), "DARTS": (1, 3, 6, 12), "RandWired": (1, 3, 6, 12),
               "NB201-real": (5, 10, 25, 50)}
PREDICTORS = ("lcsvr", "lc-xgb", "lc-lgbm")
KS = (0.1,)
CRITERIA = ("spearman", "kendall", "p@top10%")

FILES = {"fractional-e": ("fractional_e.csv", "fractional_e.md"), "gamma": ("gamma.csv", "gamma.md"),
         "gbm": ("gbm.csv", "gbm.md")}


def populations(args, *, costs: bool = False) -> list[recorded_curves.Recorded]:
    sources = {"NB201": args.nb201_store, "NB101": args.nb101_store, "DARTS": args.darts_store,
               "RandWired": args.randwired_bench}
    return [recorded_curves.load(n, Path(args.shared), sources[n], costs=costs) for n in recorded_curves.LOADERS]


def _scores(pop: recorded_curves.Recorded, est, archs: Sequence[str] | None = None) -> np.ndarray:
    out = []
    for a in (pop.strings if archs is None else archs):
        c = pop.curves[a]
        ok = c is not None and c.epochs >= est.epochs and "failed" not in c.info
        out.append(est.score(c) if ok else math.nan)
    return np.array(out)


def _crit(scores, truth) -> dict[str, float]:
    return evaluate_ranking(scores, truth, ks=KS)


def _pivot_table(df: pd.DataFrame, rows: str, criterion: str, row_label=str) -> list[str]:
    pv = df.pivot(index=rows, columns="T", values=criterion)
    cols = list(pv.columns)
    lines = [f"| {criterion} | " + " | ".join(f"T={t}" for t in cols) + " |", "|---|" + "---|" * len(cols)]
    for r, vals in pv.iterrows():
        lines.append(f"| {row_label(r)} | " + " | ".join("" if pd.isna(v) else f"{v:.3f}" for v in vals) + " |")
    return lines


# ---------------------------------------------------------------------------------------------------
def cmd_fractional_e(args, out: Path) -> int:
    t0 = time.process_time()
    pops = populations(args)
    load = time.process_time() - t0
    rows = []
    for pop in pops:
        y = np.array([pop.truth[a] for a in pop.strings])
        batches = sorted({len(c.minibatch_losses[-1]) for c in pop.curves.values() if c is not None})
        for T in [t for t in BUDGETS if t <= pop.epochs]:
            scores = {E: _scores(pop, create("estimator", "tse-e", epochs=T, E=E))
                      for E in [*FRACTIONS, *[e for e in WHOLE if e <= T]]}
            for E, sc in scores.items():
                lo, hi = paired_delta_ci(sc, scores[1], y, draws=args.draws) if E != 1 else (0.0, 0.0)
                rows.append({"space": pop.name, "T": T, "E": E, "n": len(y), "B": batches[0], **_crit(sc, y),
                             "d_spearman_vs_E1_lo": lo, "d_spearman_vs_E1_hi": hi})
    df = pd.DataFrame(rows)
    df.to_csv(out / "fractional_e.csv", index=False)
    cpu = time.process_time() - t0
    lines = ["# TSE-E: fractional and whole-epoch summation windows (TSE paper §4.1, Appendix D)", "",
             "E < 1: the last ceil(E·B) minibatch losses of epoch T, divided by B (the minibatches per epoch); "
             "E >= 1: the mean training losses of the last E epochs. Spearman / Kendall / P@top10% against each "
             "population's truth, every recorded architecture.", ""]
    for pop in pops:
        sub = df[df["space"] == pop.name]
        lines += [f"## {pop.name} ({len(pop.archs)} architectures, B = {int(sub['B'].iloc[0])})", "", pop.note, ""]
        for crit in ("spearman", "kendall"):
            lines += _pivot_table(sub, "E", crit, lambda e: f"E={e:g}") + [""]
    lines += fractional_verdict(df)
    lines += ["", f"CPU seconds: loading {load:.1f}, all ({len(df)} rows) {cpu:.1f}"]
    (out / "fractional_e.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def fractional_verdict(df: pd.DataFrame) -> list[str]:
    """Where E = 1 stands among the windows, and how far each fraction is from it, per (space, T)."""
    lines = ["## Summary", ""]
    rows = []
    for space, sub in df.groupby("space", sort=False):
        for crit in ("spearman", "kendall"):
            at = sub.pivot(index="T", columns="E", values=crit)
            one = at[1]
            best_all = at.idxmax(axis=1)
            frac = at[[e for e in FRACTIONS]]
            row = {"space": space, "criterion": crit,
                   "E=1 >= every fraction": f"{int((one.values[:, None] >= frac.values - 1e-12).all(axis=1).sum())}"
                                            f"/{len(at)}",
                   "best E (per T)": ", ".join(f"{t}:{e:g}" for t, e in best_all.items())}
            for e in FRACTIONS:
                row[f"mean Δ(E={e:g} − E=1)"] = f"{float((at[e] - one).mean()):+.3f}"
            rows.append(row)
    lines += markdown_table(rows, list(rows[0]))
    lines += ["", "Paired bootstrap (architectures resampled, the same resample for both windows) of "
              "ρ(E) − ρ(E=1): in how many budgets T its 95% interval lies below 0 (E=1 significantly better), "
              "contains 0, or lies above 0 (E significantly better).", ""]
    rows = []
    for space, sub in df.groupby("space", sort=False):
        for e in [*FRACTIONS, *[w for w in WHOLE if w > 1]]:
            s = sub[sub["E"] == e]
            if s.empty:
                continue
            lo, hi = s["d_spearman_vs_E1_lo"], s["d_spearman_vs_E1_hi"]
            rows.append({"space": space, "E": f"{e:g}", "budgets": len(s), "E=1 better": int((hi < 0).sum()),
                         "no difference": int(((lo <= 0) & (hi >= 0)).sum()), "E better": int((lo > 0).sum())})
    lines += markdown_table(rows, list(rows[0]))
    return lines


# ---------------------------------------------------------------------------------------------------
def cmd_gamma(args, out: Path) -> int:
    t0 = time.process_time()
    pops = populations(args)
    load = time.process_time() - t0
    rows = []
    for pop in pops:
        y = np.array([pop.truth[a] for a in pop.strings])
        for T in [t for t in BUDGETS if t <= pop.epochs]:
            variants = [(f"tse-ema γ={g:g}", create("estimator", "tse-ema", epochs=T, gamma=g)) for g in GAMMAS]
            variants += [("tse-e E=1", create("estimator", "tse-e", epochs=T)),
                         ("tse (γ=1)", create("estimator", "tse", epochs=T))]
            scores = {label: _scores(pop, est) for label, est in variants}
            ref = scores["tse-ema γ=0.999"]
            for label, sc in scores.items():
                lo, hi = (paired_delta_ci(sc, ref, y, draws=args.draws) if label != "tse-ema γ=0.999" and T > 1
                          else (0.0, 0.0))
                rows.append({"space": pop.name, "T": T, "estimator": label, "n": len(y), **_crit(sc, y),
                             "d_spearman_vs_0.999_lo": lo, "d_spearman_vs_0.999_hi": hi})
    df = pd.DataFrame(rows)
    df.to_csv(out / "gamma.csv", index=False)
    cpu = time.process_time() - t0
    lines = ["# TSE-EMA: the decay γ (TSE paper §4.1, Appendix D)", "",
             "TSE-EMA = Σ_t γ^(T−t) L_t for γ in {0.9, 0.95, 0.99, 0.999}, beside TSE-E (E = 1) and TSE (γ = 1); "
             "every recorded architecture.", ""]
    order = {lab: i for i, lab in enumerate([f"tse-ema γ={g:g}" for g in GAMMAS] + ["tse-e E=1", "tse (γ=1)"])}
    for pop in pops:
        sub = df[df["space"] == pop.name].copy()
        sub["_o"] = sub["estimator"].map(order)
        sub = sub.sort_values(["_o", "T"])
        lines += [f"## {pop.name} ({len(pop.archs)} architectures)", "", pop.note, ""]
        for crit in ("spearman", "kendall"):
            pv = _pivot_table(sub, "estimator", crit)
            head, body = pv[:2], sorted(pv[2:], key=lambda ln: order[ln.split(" | ")[0][2:]])
            lines += head + body + [""]
    lines += gamma_verdict(df)
    lines += ["", f"CPU seconds: loading {load:.1f}, all ({len(df)} rows) {cpu:.1f}"]
    (out / "gamma.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def gamma_verdict(df: pd.DataFrame) -> list[str]:
    """Per space and T: the spread of the criterion over the four γ against |TSE-EMA(0.999) − TSE-E|."""
    rows = []
    for (space, T), sub in df.groupby(["space", "T"], sort=False):
        s = sub.set_index("estimator")["spearman"]
        k = sub.set_index("estimator")["kendall"]
        g = s[[f"tse-ema γ={x:g}" for x in GAMMAS]]
        gk = k[[f"tse-ema γ={x:g}" for x in GAMMAS]]
        rows.append({"space": space, "T": T, "ρ spread over γ": g.max() - g.min(),
                     "best γ": g.idxmax().split("=")[1] if g.max() > g.min() else "(all equal)",
                     "|ρ(γ=0.999) − ρ(TSE-E)|": abs(s["tse-ema γ=0.999"] - s["tse-e E=1"]),
                     "τ spread over γ": gk.max() - gk.min(),
                     "|τ(γ=0.999) − τ(TSE-E)|": abs(k["tse-ema γ=0.999"] - k["tse-e E=1"])})
    t = pd.DataFrame(rows)
    t = t[t["T"] > 1]  # at T = 1 every variant is L_1
    smaller = int((t["ρ spread over γ"] < t["|ρ(γ=0.999) − ρ(TSE-E)|"]).sum())
    lines = ["## Summary: spread over γ against the TSE-EMA − TSE-E gap", ""]
    lines += markdown_table(rows, list(rows[0]))
    lines += ["", "Paired bootstrap of ρ(variant) − ρ(TSE-EMA γ=0.999), T > 1: in how many budgets its 95% interval "
              "lies below 0, contains 0, or lies above 0.", ""]
    ci = []
    for space, sub in df[df["T"] > 1].groupby("space", sort=False):
        for label in [*(f"tse-ema γ={g:g}" for g in GAMMAS[:-1]), "tse-e E=1", "tse (γ=1)"]:
            s = sub[sub["estimator"] == label]
            lo, hi = s["d_spearman_vs_0.999_lo"], s["d_spearman_vs_0.999_hi"]
            ci.append({"space": space, "variant": label, "budgets": len(s), "below (0.999 better)": int((hi < 0).sum()),
                       "contains 0": int(((lo <= 0) & (hi >= 0)).sum()), "above (variant better)": int((lo > 0).sum())})
    lines += markdown_table(ci, list(ci[0]))
    lines += ["", f"- the Spearman spread over the four γ is smaller than the TSE-EMA(0.999) − TSE-E gap at "
              f"{smaller} of {len(t)} (space, T) with T > 1 (at T = 1 every variant is L_1); median spread "
              f"{t['ρ spread over γ'].median():.3f}, median gap "
              f"{t['|ρ(γ=0.999) − ρ(TSE-E)|'].median():.3f}"]
    return lines


# ---------------------------------------------------------------------------------------------------
def _gbm_population(pop: recorded_curves.Recorded, seeds: Sequence[int], n_fit: int | None,
                    losses: bool) -> tuple[list[dict], dict[str, float]]:
    rows, cpu = [], {p: 0.0 for p in PREDICTORS}
    archs = pop.archs
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(len(archs))
        k = n_fit or len(archs) // 2
        fit_set = [archs[i] for i in order[:k]]
        test_set = [archs[i] for i in order[k:]]
        y_fit = [pop.truth[a.string] for a in fit_set]
        y = np.array([pop.truth[a.string] for a in test_set])
        test_str = [a.string for a in test_set]
        for T in GBM_BUDGETS[pop.name]:
            base = {"space": pop.name, "seed": seed, "T": T, "n_fit": len(fit_set), "n": len(test_set)}
            for name in PREDICTORS:
                t0 = time.process_time()
                est = create("estimator", name, epochs=T, seed=seed)
                est.fit([pop.curves[a.string] for a in fit_set], y_fit, fit_set, costs=pop.costs)
                pred = est.predict([pop.curves[a] for a in test_str], test_set, costs=pop.costs)
                cpu[name] += time.process_time() - t0
                rows.append({**base, "estimator": name, **_crit(pred, y), "best_params": json.dumps(est.best_params_)})
            refs = [("valacc", create("estimator", "valacc", epochs=T))]
            if losses:
                refs += [("tse-e", create("estimator", "tse-e", epochs=T)),
                         ("tse-ema", create("estimator", "tse-ema", epochs=T))]
            for name, est in refs:
                rows.append({**base, "estimator": name, **_crit(_scores(pop, est, test_str), y), "best_params": ""})
            for name in ("params", "flops"):  # the free baselines among the predictors' features
                free = np.array([pop.costs[a][name] for a in test_str])
                rows.append({**base, "estimator": name, **_crit(free, y), "best_params": ""})
    return rows, cpu


def cmd_gbm(args, out: Path) -> int:
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)  # sklearn's notes on lightgbm's feature names
    seeds = [int(s) for s in args.seeds.split(",")]
    t0 = time.process_time()
    pops = [*populations(args, costs=True), recorded_curves.nb201_real(Path(args.shared))]
    seconds = {"loading and #params/#FLOPs": time.process_time() - t0}
    rows = []
    for pop in pops:
        r, cpu = _gbm_population(pop, seeds, None, losses=pop.name != "NB201-real")
        rows += r
        for k, v in cpu.items():
            seconds[f"{k} fits"] = seconds.get(f"{k} fits", 0.0) + v
        print(f"{pop.name}: {', '.join(f'{k} {v:.0f} s' for k, v in cpu.items())}", flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(out / "gbm.csv", index=False)
    seconds["all"] = time.process_time() - t0
    lines = ["# XGBoost and LightGBM curve predictors against LcSVR (TSE paper Appendix H)", "",
             f"Each predictor is fitted on a random half of the population (its validation-accuracy curve up to T, "
             f"#params, #FLOPs, op counts against the truth; hyperparameters by 3-fold cross-validation) and ranks "
             f"the other half; TSE-E (E=1), TSE-EMA (γ=0.999) and ValAcc at T rank the same half. Mean ± std over "
             f"{len(seeds)} random halves (seeds {args.seeds}). #params and #FLOPs (two of the predictors' features, "
             f"the same at every T) rank the same half as free baselines.", ""]
    order = {n: i for i, n in enumerate([*PREDICTORS, "tse-e", "tse-ema", "valacc", "params", "flops"])}
    for pop in pops:
        sub = df[df["space"] == pop.name]
        lines += [f"## {pop.name} ({len(pop.archs)} architectures: fit on {int(sub['n_fit'].iloc[0])}, rank "
                  f"{int(sub['n'].iloc[0])})", "", pop.note, ""]
        for crit in ("spearman", "kendall"):
            g = sub.groupby(["estimator", "T"])[crit].agg(["mean", "std"]).reset_index()
            g["cell"] = [f"{m:.3f} ± {s:.3f}" for m, s in zip(g["mean"], g["std"])]
            pv = g.pivot(index="estimator", columns="T", values="cell")
            pv = pv.loc[sorted(pv.index, key=order.get)]
            lines += [f"| {crit} | " + " | ".join(f"T={t}" for t in pv.columns) + " |",
                      "|---|" + "---|" * len(pv.columns)]
            lines += [f"| {e} | " + " | ".join(pv.loc[e]) + " |" for e in pv.index] + [""]
    lines += gbm_verdict(df)
    lines += ["", "CPU seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items())]
    (out / "gbm.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def gbm_verdict(df: pd.DataFrame) -> list[str]:
    """Per (space, T): the mean Spearman of each predictor and the best TSE variant, and who wins."""
    mean = df.groupby(["space", "T", "estimator"], sort=False)["spearman"].mean().unstack()
    rows = []
    for (space, T), r in mean.iterrows():
        row = {"space": space, "T": T, **{n: f"{r[n]:.3f}" for n in PREDICTORS}}
        tse = [n for n in ("tse-e", "tse-ema") if n in r and not pd.isna(r[n])]
        row["best TSE"] = f"{max(r[n] for n in tse):.3f}" if tse else ""
        row["valacc"] = f"{r['valacc']:.3f}"
        row["best free"] = f"{max(r['params'], r['flops']):.3f}"
        cands = [*PREDICTORS, *tse, "valacc", "params", "flops"]
        row["best"] = max(cands, key=lambda n: r[n])
        rows.append(row)
    t = mean.reset_index()
    lines = ["## Summary: mean Spearman over the halves", ""]
    lines += markdown_table(rows, list(rows[0]))
    for g in ("lc-xgb", "lc-lgbm"):
        lines.append(f"- {g} above LcSVR at {int((t[g] > t['lcsvr']).sum())} of {len(t)} (space, T); mean difference "
                     f"{float((t[g] - t['lcsvr']).mean()):+.3f}")
    has = t.dropna(subset=["tse-e"])
    best_tse = has[["tse-e", "tse-ema"]].max(axis=1)
    best_pred = has[list(PREDICTORS)].max(axis=1)
    lines.append(f"- the better TSE variant above the best of the three predictors at "
                 f"{int((best_tse > best_pred).sum())} of {len(has)} (space, T) of the recorded populations")
    best_free = t[["params", "flops"]].max(axis=1)
    above = int((t[list(PREDICTORS)].max(axis=1) > best_free).sum())
    lines.append(f"- the best predictor above the better of #params and #FLOPs at {above} of {len(t)} (space, T)")
    return lines


#: subcommand -> its function (a new subcommand also lists its files in FILES)
COMMANDS = {"fractional-e": cmd_fractional_e, "gamma": cmd_gamma, "gbm": cmd_gbm}


def main(argv=None) -> int:
    shared = ROOT.parent / "shared" / "data"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=sorted(COMMANDS), help="what to run (see above)")
    p.add_argument("--out", default=None, help=f"results directory (default: a new reproduce/results/{NAME}-<UTC "
                   "time>); the subcommand's own files in it are not overwritten without --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace this subcommand's files in --out")
    p.add_argument("--shared", default=str(shared), help="the shared data directory (NB201 truth, peer files)")
    src = recorded_curves.DEFAULT_SOURCES
    p.add_argument("--nb201-store", default=str(src["NB201"]))
    p.add_argument("--nb101-store", default=str(src["NB101"]))
    p.add_argument("--darts-store", default=str(src["DARTS"]))
    p.add_argument("--randwired-bench", default=str(src["RandWired"]))
    p.add_argument("--seeds", default="0,1,2,3,4", help="gbm: the random halves (each also seeds the predictors)")
    p.add_argument("--draws", type=int, default=1000, help="fractional-e, gamma: paired bootstrap resamples")
    args = p.parse_args(argv)
    needed = [Path(args.shared) / "nas-bench-201" / "nb201_cifar10_200ep.csv", Path(args.shared) / "peer-reference",
              Path(args.nb201_store), Path(args.nb101_store), Path(args.darts_store),
              Path(args.randwired_bench) / "table.jsonl"]
    missing = [str(x) for x in needed if not x.exists()]
    if missing:
        p.error(f"missing input: {', '.join(missing)} (pass --shared or the path's option)")
    if args.command == "gbm":
        from nas_engine.estimators.gbm import LcLGBM, LcXGB

        absent = [c.package for c in (LcXGB, LcLGBM) if not c.available()]
        if absent:
            p.error(f"gbm needs {' and '.join(absent)}: pip install \"nas-engine[gbm]\"")
    return run_subcommand(p, args, name=NAME, results=RESULTS, files=FILES, commands=COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
