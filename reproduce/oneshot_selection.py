"""One-shot NAS selection at CPU scale: TSE after short fine-tuning vs inherited-weight validation metrics.

Reproduces the protocol of the TSE paper's Table 2 and the SoTL thesis' Table
4.1 on NAS-Bench-201 / CIFAR-10: for each supernet training method (RandNAS,
FairNAS, MultiPath; Reptile and MetaMinibatchProx on request) and supernet
seed, train the supernet through the strategy's ``setup`` (checkpointed,
resumable), then for one fixed set of architectures (the same for every method and seed):

* fine-tune each architecture from its inherited weights for 300 minibatches
  (batch 64, constant lr: 0.01 for RandNAS/SPOS, 0.001 for the variants) in
  one run recorded in chunks of 100, and read from that one run
  ``TSE`` at B = 100, 200, 300 (prefixes of the same run: the sum of the
  first B minibatch losses, divided by 100), ``ValAcc`` on the whole
  validation split after B minibatches (TSE paper Table 2's "Val Acc"), and
  ``TLmini`` (the first fine-tuning minibatch's loss, i.e. with the inherited
  weights, before any update);
* with the inherited weights and no training: ``ValAcc-inherited`` (whole
  validation split) and ``ValAccMini`` (one random validation minibatch of 64)
  (the thesis' Table 4.1 baselines);

and rank them against the benchmark's 200-epoch CIFAR-10 test accuracy
(Spearman, Kendall, mean true accuracy of the top 10), mean and std over
supernet seeds.  Everything runs through the library: the strategies
(``randnas``, ``fairnas``, ``multipath``), ``Context.learning_curve`` for the
fine-tuning (``training.train`` from inherited weights) and the registered
estimators.  SPOS trains exactly RandNAS's supernet (uniform single path) and
fine-tunes at the same lr, so on a fixed architecture set it is RandNAS; its
evolutionary selection is exercised in the tests, not here.

CPU scale (every choice is a flag): NB201 width C=8, N=1 cell per stage,
16x16 inputs, 5,000 training and 2,000 validation images from CIFAR-10's first
batch, no data augmentation (``--augment`` turns random crop + flip on for the
supernet and the fine-tuning; at this scale it leaves the supernet underfitted
and roughly halves every estimator's correlation, see the README), supernet
protocol of the thesis (batch 64, SGD lr 0.025 cosine to 0.001, momentum 0.9,
wd 5e-4, 100 epochs for RandNAS) with the same number of path passes for every
method: 100 epochs for RandNAS (one path per step), 25 for MultiPath (4) and 20
for FairNAS (5); 100 architectures, 2 supernet seeds.  One torch thread per
process (``--threads``).  The table ranks the architectures that every method
and seed finished (a run is scored architecture by architecture).

    python -m reproduce.oneshot_selection run --seed 0   # one seed: every method's supernet (resumable)
    python -m reproduce.oneshot_selection summarize                        # the table from what ran

Scores are appended to ``<out>/runs/<method>-seed<k>.csv`` one architecture at
a time, so a partial run still gives a table; ``run`` skips what is already
there.  ``summarize`` writes ``criteria_per_seed.csv``, ``table.csv``,
``table.md`` and ``supernets.csv`` (supernet training seconds and final loss).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nas_engine.benchmarks import NB201Table
from nas_engine.context import Context
from nas_engine.correlate import sample_architectures
from nas_engine.criteria import kendall, spearman, top_k_mean
from nas_engine.data import load_dataset
from nas_engine.estimators import TSE, TLMini, ValAcc, score_curve
from nas_engine.registry import create
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.training import Protocol

ROOT = Path(__file__).resolve().parents[1]

SHARED = ROOT.parent / "shared" / "data"
#: supernet epochs giving every method the same number of path forward/backward passes (40 x 79 x 1 ...)
DEFAULT_SUPERNET_EPOCHS = {"randnas": 100, "spos": 100, "multipath": 25, "fairnas": 20, "reptile": 25,
                           "metaprox": 25}
SCORE_FIELDS = ["method", "seed", "arch", "estimator", "B", "score", "seconds"]
LABELS = {"tse": "TSE", "valacc": "ValAcc (after B)", "tlmini": "TLmini", "valacc-inherited": "ValAcc",
          "valacc-mini": "ValAccMini"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["run", "summarize"])
    p.add_argument("--methods", default="randnas,multipath,fairnas",
                   help="run: comma-separated supernet methods (randnas, spos, fairnas, multipath, reptile, "
                        "metaprox)")
    p.add_argument("--seed", type=int, default=0, help="run: supernet seed")
    p.add_argument("--only", default=None,
                   help="summarize: comma-separated methods to tabulate (default: every method that ran)")
    p.add_argument("--out", default=str(ROOT / "reproduce" / "results" / "oneshot_selection"))
    p.add_argument("--work", default=None, help="supernet checkpoints (default <out>/supernets, not committed)")
    p.add_argument("--data-root", default=str(SHARED))
    p.add_argument("--truth", default=str(SHARED / "nas-bench-201" / "nb201_cifar10_200ep.csv"))
    p.add_argument("--archs", type=int, default=100)
    p.add_argument("--arch-seed", type=int, default=0, help="seed of the fixed architecture sample")
    p.add_argument("--supernet-epochs", type=int, default=None,
                   help="default: 100 single-path epochs' worth of path forward/backward passes "
                        "(randnas/spos 100, multipath 25, fairnas 20, reptile/metaprox 25 with 4 inner steps)")
    p.add_argument("--batches", type=int, default=100, help="fine-tuning minibatches per chunk (B step)")
    p.add_argument("--chunks", type=int, default=3, help="chunks of fine-tuning: B = batches x 1..chunks")
    p.add_argument("--C", type=int, default=8)
    p.add_argument("--N", type=int, default=1)
    p.add_argument("--resolution", type=int, default=16)
    p.add_argument("--n-train", type=int, default=5000)
    p.add_argument("--n-val", type=int, default=2000)
    p.add_argument("--augment", action="store_true",
                   help="random crop + flip in supernet training and fine-tuning (off by default: at this CPU "
                        "scale augmentation leaves the supernet underfitted and halves TSE's correlation)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--quiet", action="store_true")
    return p


def _done(path: Path, method: str, seed: int) -> set[str]:
    if not path.exists():
        return set()
    df = pd.read_csv(path)
    df = df[(df["method"] == method) & (df["seed"] == seed)]
    return set(df["arch"])


def run(args) -> None:
    """Train (or reload) every method's supernet for one seed, then score the architectures in rounds:
    architecture i for every method before architecture i+1, so that an interrupted run leaves every
    method with the same architectures."""
    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else out / "supernets"
    space = NB201Space()
    data = load_dataset("cifar10", root=args.data_root, n_train=args.n_train, n_val=args.n_val,
                        resolution=args.resolution)
    truth = NB201Table(args.truth).ground_truth()
    archs = sample_architectures(space, args.archs, seed=args.arch_seed, among=None)
    missing = [a.string for a in archs if a.string not in truth]
    if missing:
        raise SystemExit(f"{len(missing)} sampled architectures have no ground truth, e.g. {missing[0]}")
    protocol = Protocol(schedule_epochs=max(200, args.chunks), size={"C": args.C, "N": args.N}, device=args.device,
                        augment=args.augment)
    curve_estimators = {("tlmini", 0): TLMini(epochs=1, batch=0)}
    for c in range(1, args.chunks + 1):
        curve_estimators[("tse", c * args.batches)] = TSE(epochs=c)
        curve_estimators[("valacc", c * args.batches)] = ValAcc(epochs=c)
    inherited = {name: create("estimator", name) for name in ("valacc-inherited", "valacc-mini")}

    contexts = {}
    for method in args.methods.split(","):
        epochs = args.supernet_epochs or DEFAULT_SUPERNET_EPOCHS[method]
        strategy = create("strategy", method, epochs=epochs, finetune_batches=args.batches)
        ctx = Context(space=space, data=data, protocol=protocol, seed=args.seed, progress=not args.quiet,
                      store_dir=str(work / f"{method}-seed{args.seed}"))
        t0 = time.perf_counter()
        strategy.setup(space, ctx)  # trains the supernet, or reloads its checkpoint
        print(f"{method} seed {args.seed}: supernet {strategy.trainer_summary} "
              f"(this call {time.perf_counter() - t0:.0f} s)", flush=True)
        row = {"method": method, "seed": args.seed, **strategy.trainer_summary,
               "finetune_lr": strategy.fine_tuning.protocol.lr, "C": args.C, "N": args.N,
               "resolution": args.resolution, "n_train": args.n_train, "n_val": args.n_val,
               "augment": args.augment}
        (out / "runs" / f"{method}-seed{args.seed}.json").write_text(json.dumps(row, indent=2))
        ctx.strategy = strategy
        contexts[method] = ctx

    for i, arch in enumerate(archs):
        for method, ctx in contexts.items():
            scores_path = out / "runs" / f"{method}-seed{args.seed}.csv"  # one file per run
            if arch.string in _done(scores_path, method, args.seed):
                continue
            t = time.perf_counter()
            curve = ctx.learning_curve(arch, args.chunks, validate=True)
            ft_seconds = time.perf_counter() - t
            rows = []
            for (name, B), value in score_curve(curve, dict(curve_estimators)).items():
                secs = sum(curve.epoch_seconds[: max(B // args.batches, 1)])
                rows.append({"method": method, "seed": args.seed, "arch": arch.string, "estimator": name,
                             "B": B, "score": value, "seconds": secs})
            for name, est in inherited.items():
                e = est.estimate(arch, ctx)
                rows.append({"method": method, "seed": args.seed, "arch": arch.string, "estimator": name,
                             "B": 0, "score": e.score, "seconds": e.cost_seconds})
            new_file = not scores_path.exists()
            with open(scores_path, "a", newline="", encoding="utf-8") as f:
                w = csv.DictWriter(f, fieldnames=SCORE_FIELDS)
                if new_file:
                    w.writeheader()
                w.writerows(rows)
            if not args.quiet:
                print(f"[{i + 1}/{len(archs)}] {method} {arch.string} fine-tuned in {ft_seconds:.1f} s", flush=True)


def summarize(args) -> pd.DataFrame:
    out = Path(args.out)
    scores = pd.concat([pd.read_csv(p) for p in sorted((out / "runs").glob("*.csv"))], ignore_index=True)
    only = args.only.split(",") if args.only else None
    if only is not None:
        scores = scores[scores["method"].isin(only)]
    # only the architectures every (method, seed) has finished: all columns rank the same set
    complete = scores.groupby(["method", "seed", "arch"]).size().reset_index()
    n_runs = complete.groupby(["method", "seed"]).ngroups
    common = complete.groupby("arch").size()
    common = set(common[common == n_runs].index)
    scores = scores[scores["arch"].isin(common)]
    runs = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    runs = [r for r in runs if only is None or r["method"] in only]
    pd.DataFrame(runs).to_csv(out / "supernets.csv", index=False)
    truth = NB201Table(args.truth).ground_truth()
    rows = []
    for (method, seed, name, B), g in scores.groupby(["method", "seed", "estimator", "B"]):
        s = g["score"].to_numpy(float)
        t = np.array([truth[a] for a in g["arch"]])
        k = min(10, len(g))
        rows.append({"method": method, "seed": seed, "estimator": name, "B": B, "archs": len(g),
                     "spearman": spearman(s, t), "kendall": kendall(s, t),
                     "top10_acc": 100 * top_k_mean(s, t, k / len(g))})
    per_seed = pd.DataFrame(rows)
    per_seed.to_csv(out / "criteria_per_seed.csv", index=False)
    agg = (per_seed.groupby(["method", "estimator", "B"])
           .agg(seeds=("seed", "nunique"), archs=("archs", "min"),
                spearman_mean=("spearman", "mean"), spearman_std=("spearman", "std"),
                kendall_mean=("kendall", "mean"), kendall_std=("kendall", "std"),
                top10_mean=("top10_acc", "mean"), top10_std=("top10_acc", "std"))
           .reset_index())
    agg.to_csv(out / "table.csv", index=False)
    lines = _markdown(agg)
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return agg


def _fmt(m, s, digits=2) -> str:
    if m is None or (isinstance(m, float) and math.isnan(m)):
        return "-"
    return f"{m:.{digits}f} ({0.0 if s is None or math.isnan(s) else s:.{digits}f})"


def _markdown(agg: pd.DataFrame) -> list[str]:
    methods = [m for m in ("randnas", "spos", "fairnas", "multipath", "reptile", "metaprox")
               if m in set(agg["method"])]
    order = [("tse", b) for b in sorted(agg.loc[agg.estimator == "tse", "B"].unique())]
    order += [("valacc", b) for b in sorted(agg.loc[agg.estimator == "valacc", "B"].unique())]
    order += [(n, 0) for n in ("tlmini", "valacc-inherited", "valacc-mini")]
    head = (["estimator", "B"] + [f"Spearman {m}" for m in methods] + [f"Kendall {m}" for m in methods]
            + [f"top-10 acc {m}" for m in methods])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, B in order:
        cells = [LABELS[name], "inherited" if B == 0 else str(B)]
        for col, digits in (("spearman", 2), ("kendall", 2), ("top10", 2)):
            for m in methods:
                r = agg[(agg.method == m) & (agg.estimator == name) & (agg.B == B)]
                cells.append(_fmt(r[f"{col}_mean"].iloc[0], r[f"{col}_std"].iloc[0], digits) if len(r) else "-")
        lines.append("| " + " | ".join(cells) + " |")
    seeds = agg.groupby("method")["seeds"].max().to_dict()
    lines.append("")
    lines.append("mean (std) over supernet seeds: " + ", ".join(f"{m}: {seeds[m]}" for m in methods)
                 + f"; architectures per seed: {int(agg['archs'].min())}")
    return lines


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.command == "run":
        run(args)
    else:
        summarize(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
