"""Zero-cost proxies vs FEAR on Synthetic CIFAR-10 (FEAR paper Table 2), CPU scale.

Synthetic CIFAR-10 (FEAR Appendix A.4; ``load_dataset("synthetic-cifar10")``)
has Gaussian images labelled by the argmax of ten random ReLU networks, so
nothing a network "knows" about natural images helps.  The FEAR paper's point:
zero-cost proxies that rank NB201 well on CIFAR-10 lose their signal there,
while FEAR (which trains) keeps it.

Steps, all at one CPU-feasible scale (NB201 cells at ``--C``/``--N``,
``--n-train`` training images, images generated at ``--side`` x ``--side``:
32 is the paper's dataset; a smaller side is the same construction with
labelling networks on ``3 * side**2`` inputs, which a network learns from far
fewer images -- at 32 and CPU-sized training sets every cell stays at chance):

1. ground truth: every sampled architecture is trained for the whole
   ``--epochs`` schedule with :func:`nas_engine.build.build_table` (its
   store makes this resumable); truth = test accuracy after the last epoch;
2. the ten zero-cost proxies (:func:`nas_engine.estimators.zero_cost.zero_cost_scores`)
   on one minibatch of the synthetic training set;
3. FEAR with a given ``--fear-threshold`` (the HoG shallow learner is near
   chance on these images, so its default threshold is meaningless here);
4. short regular training read from the same runs: ValAcc and training
   accuracy after each of ``--short-epochs`` epochs of the schedule;
5. if the shared NB201 table is there (``--shared``), each cell's NB201
   CIFAR-10 test accuracy (200 epochs) as one more "estimator": does a cell
   that is good on CIFAR-10 stay good here?

Outputs in ``--out``: ``scores.csv`` (every score and cost per architecture)
and ``summary.csv`` / ``summary.md`` (Spearman and Kendall vs the truth, mean
cost per architecture; also over the cells whose truth is in the top half).

    python -m reproduce.zero_cost_synthetic --archs 24 --n-train 3000 --epochs 15
    python -m reproduce.zero_cost_synthetic --side 8 --archs 100 --n-train 10000 --epochs 15 --workers 2
    python -m reproduce.zero_cost_synthetic --combine DIR_SEED0,DIR_SEED1 --out DIR   # mean/min/max over runs
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nas_engine import Protocol, load_dataset
from nas_engine.build import build_table
from nas_engine.correlate import sample_architectures
from nas_engine.criteria import kendall, spearman
from nas_engine.estimators import FEAR
from nas_engine.estimators.zero_cost import ZERO_COST_PROXIES, zero_cost_scores
from nas_engine.search import Budget, Search
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.strategies import FixedList

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", type=int, default=24)
    p.add_argument("--n-train", type=int, default=3000)
    p.add_argument("--n-val", type=int, default=500)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=15, help="whole schedule T_end of the ground-truth runs")
    p.add_argument("--short-epochs", default="3", help="comma-separated budgets (epochs) of the short regular "
                   "training baseline")
    p.add_argument("--side", type=int, default=32, help="side of the generated images (32: the paper's)")
    p.add_argument("--workers", type=int, default=1, help="train this many architectures at once (processes)")
    p.add_argument("--C", type=int, default=8)
    p.add_argument("--N", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--fear-threshold", type=float, default=0.5)
    p.add_argument("--fear-stage2-epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"),
                   help="shared data directory (for the NB201 CIFAR-10 accuracies; skipped if missing)")
    p.add_argument("--out", default=str(ROOT / "reproduce" / "results" / "zero_cost_synthetic"))
    p.add_argument("--combine", default=None, help="comma-separated result directories of finished runs: write "
                   "combined.csv / combined.md (mean, min, max of each correlation) in --out and stop")
    args = p.parse_args(argv)
    if args.combine:
        return combine([Path(d) for d in args.combine.split(",")], Path(args.out))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    space = NB201Space()
    data = load_dataset("synthetic-cifar10", n_train=args.n_train, n_val=args.n_val, n_test=args.n_test,
                        seed=args.seed, side=args.side)
    parallel = {"executor": "processes", "workers": args.workers} if args.workers > 1 else {"executor": "inline"}
    protocol = Protocol(schedule_epochs=args.epochs, batch_size=args.batch_size, lr=0.1, size={"C": args.C,
                                                                                               "N": args.N},
                        device="cpu")
    archs = sample_architectures(space, args.archs, seed=args.seed)
    strings = [a.string for a in archs]

    t0 = time.perf_counter()
    table = build_table(space, data, protocol, archs=strings, out=out / "build", seed=args.seed, progress=True,
                        **parallel)
    print(f"ground truth: {len(table)} architectures x {args.epochs} epochs in {time.perf_counter() - t0:.0f} s "
          f"(resumed runs count as 0)", flush=True)
    strings = [s for s in strings if s in table]
    truth = {s: table.final_accuracy(s) for s in strings}

    rows = {s: {"arch": s, "truth": truth[s], "full_seconds": table.curve(s).total_seconds} for s in strings}
    short = [int(v) for v in str(args.short_epochs).split(",")]
    for T in short:
        for s in strings:
            c = table.curve(s, T)
            rows[s].update({f"val_acc@{T}": c.val_acc[-1], f"train_acc@{T}": c.train_acc[-1],
                            f"val_acc@{T}_seconds": c.total_seconds, f"train_acc@{T}_seconds": c.total_seconds})

    t0 = time.perf_counter()
    zc = zero_cost_scores(space, strings, data, protocol, proxies=ZERO_COST_PROXIES, seed=args.seed)
    zc_seconds = (time.perf_counter() - t0) / len(strings)
    for name, scores in zc.items():
        for s in strings:
            rows[s][name] = scores[s]
            rows[s][f"{name}_seconds"] = zc_seconds / len(zc)

    fear = FEAR(threshold=args.fear_threshold, max_epochs=args.epochs, stage2_epochs=args.fear_stage2_epochs)
    r = Search(FixedList(strings), space, fear, data=data, protocol=protocol, seed=args.seed,
               budget=Budget(evaluations=len(strings)), store=str(out / "fear_store"), progress=True, **parallel).run()
    for e in r.history:
        rows[e.arch.string].update({"fear": e.score if e.ok else np.nan, "fear_seconds": e.cost_seconds,
                                    "fear_epochs_to_threshold": e.info.get("epochs_to_threshold", np.nan)})

    nb201 = Path(args.shared) / "nas-bench-201" / "nb201_cifar10_200ep.csv"
    nb201_name = "NB201 CIFAR-10 test acc (200 ep)"
    if nb201.exists():
        cifar = pd.read_csv(nb201).set_index("arch_str")["cifar10_test_acc"]
        for s in strings:
            rows[s].update({nb201_name: float(cifar.get(s, np.nan)), f"{nb201_name}_seconds": np.nan})
    else:
        print(f"no NB201 table at {nb201}: skipping the CIFAR-10 comparison", flush=True)

    df = pd.DataFrame(list(rows.values()))
    df.to_csv(out / "scores.csv", index=False)
    names = ["fear", *(f"{m}@{T}" for T in short for m in ("val_acc", "train_acc")), *ZERO_COST_PROXIES,
             *([nb201_name] if nb201_name in df else [])]
    top = (df["truth"] >= df["truth"].median()).to_numpy()
    summary = []

    def row(name, x, seconds):
        return {"estimator": name, "spearman": spearman(x, df["truth"]), "kendall": kendall(x, df["truth"]),
                "spearman_top50": spearman(x[top], df["truth"][top]), "mean_seconds_per_arch": seconds}

    for name in names:
        summary.append(row(name, df[name].to_numpy(dtype=float), float(df[f"{name}_seconds"].mean())))
    if "fear_epochs_to_threshold" in df:
        summary.append(row("fear epochs-to-threshold (fewer is better)",
                           -df["fear_epochs_to_threshold"].to_numpy(dtype=float), float(df["fear_seconds"].mean())))
    sm = pd.DataFrame(summary)
    sm.to_csv(out / "summary.csv", index=False)
    header = (f"Synthetic CIFAR-10 generated at {args.side}x{args.side}, {len(strings)} NB201 cells (C={args.C}, "
              f"N={args.N}), {args.n_train} training images, batch {args.batch_size}, FEAR threshold "
              f"{args.fear_threshold} + {args.fear_stage2_epochs} stage-2 epochs; spearman_top50: over the "
              f"{int(top.sum())} cells with truth >= the median; truth = test accuracy ({args.n_test} images) after "
              f"{args.epochs} epochs (mean {df['truth'].mean():.3f}, range {df['truth'].min():.3f}-"
              f"{df['truth'].max():.3f}); mean full training {df['full_seconds'].mean():.1f} s per cell.\n\n")
    lines = ["| " + " | ".join(sm.columns) + " |", "|" + "---|" * len(sm.columns)]
    lines += ["| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |"
              for row in sm.itertuples(index=False)]
    (out / "summary.md").write_text(header + "\n".join(lines) + "\n")
    print(header + sm.round(3).to_string(index=False))
    return 0


def combine(dirs: list[Path], out: Path) -> int:
    """Mean, min and max of each estimator's correlations over finished runs (one ``summary.csv`` each)."""
    missing = [str(d / "summary.csv") for d in dirs if not (d / "summary.csv").exists()]
    if missing:
        raise SystemExit(f"--combine: no summary.csv in {', '.join(missing)} (run the script there first)")
    runs = pd.concat([pd.read_csv(d / "summary.csv").assign(run=d.name) for d in dirs])
    order = list(dict.fromkeys(runs["estimator"]))
    stats = runs.groupby("estimator", sort=False).agg(
        runs=("run", "count"),
        spearman_mean=("spearman", "mean"), spearman_min=("spearman", "min"), spearman_max=("spearman", "max"),
        top50_mean=("spearman_top50", "mean"), top50_min=("spearman_top50", "min"),
        top50_max=("spearman_top50", "max"), seconds_mean=("mean_seconds_per_arch", "mean")).loc[order]
    out.mkdir(parents=True, exist_ok=True)
    stats.to_csv(out / "combined.csv")
    lines = [f"Combined over {len(dirs)} runs: {', '.join(d.name for d in dirs)}.\n",
             "| estimator | spearman mean (min..max) | top-half spearman mean (min..max) | s per arch |",
             "|---|---|---|---|"]
    lines += [f"| {name} | {r.spearman_mean:.2f} ({r.spearman_min:.2f}..{r.spearman_max:.2f}) | "
              f"{r.top50_mean:.2f} ({r.top50_min:.2f}..{r.top50_max:.2f}) | {r.seconds_mean:.2f} |"
              for name, r in stats.iterrows()]
    (out / "combined.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
