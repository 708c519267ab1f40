"""Differentiable NAS with and without TSE on NAS-Bench-201 at CPU scale (TSE paper Fig. 5a; SoTL thesis §4.3.1).

Runs DARTS (first order), DARTS-TSE (SoTL-DARTS), DrNAS and DrNAS-TSE on the
NB201 space with ``--seeds`` search seeds each, through
:class:`nas_engine.Search` (the strategies' search phase, then one proposal per
search epoch: the architecture derived after that epoch).  Each proposal's
NAS-Bench-201 accuracy (200 epochs, CIFAR-10 test; and the ``cifar10-valid``
validation accuracy) is read from the benchmark's table
(``nas-bench-201/nb201_cifar10_200ep.csv``); the search itself scores
proposals with the free ``params`` estimator (it does not steer anything:
differentiable strategies ignore their evaluations).

Reduced scale (defaults; every choice is a flag): the NB201 supernet at C=8,
N=1 (one cell per stage), 16x16 CIFAR-10 inputs, ``--n-train`` training
images (weights; and the architecture of the TSE variants) and ``--n-val``
validation images (DARTS's and DrNAS's architecture steps, the half of the
training set DARTS holds out), batch 64, ``--epochs`` search epochs on the
papers' optimiser settings (weights SGD 0.025 cosine to 0.001, momentum 0.9,
weight decay 5e-4, clip 5; architecture Adam 3e-4, betas (0.5, 0.999),
weight decay 1e-3).  ``--T`` is the TSE variants' minibatches per architecture
step (the papers' 100; an epoch here has ``ceil(n_train / 64)`` minibatches,
and a chunk never crosses an epoch, as in the thesis' code).  Two searches
run at once (``--workers`` processes, one torch thread each).

    OMP_NUM_THREADS=1 python -m reproduce.differentiable [--epochs 50] [--seeds 0 1 2] [--out DIR]

The default ``--out`` is a new directory named after the current UTC time; an
existing non-empty ``--out`` is refused unless ``--resume`` (each search keeps
its store under ``--out/runs``, checkpointed every epoch, so a resumed run
continues where it stopped).  Writes ``trajectory.csv`` (one row per method,
seed and epoch), ``summary.md`` and ``differentiable_nb201.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

METHODS = ("darts", "darts-tse", "drnas", "drnas-tse")
TABLE = ("data", "nas-bench-201", "nb201_cifar10_200ep.csv")


def run_search(job: dict) -> dict:
    """One (method, seed) search in this process (one torch thread); returns its trajectory."""
    import torch

    torch.set_num_threads(1)
    from nas_engine import Budget, Search
    from nas_engine.data import load_dataset
    from nas_engine.executors import InlineExecutor
    from nas_engine.registry import create
    from nas_engine.training import Protocol

    a = job["args"]
    data = load_dataset("cifar10", str(Path(a["shared"]) / "data"), n_train=a["n_train"], n_val=a["n_val"],
                        resolution=a["resolution"], seed=0)
    protocol = Protocol(schedule_epochs=a["epochs"], batch_size=a["batch_size"], size={"C": a["C"], "N": a["N"]},
                        device=a["device"])
    extra = {"T": a["T"]} if job["method"].endswith("-tse") else {}
    strategy = create("strategy", job["method"], epochs=a["epochs"], batch_size=a["batch_size"], **extra)
    search = Search(strategy, "nb201", "params", data=data, protocol=protocol, seed=job["seed"],
                    budget=Budget(evaluations=a["epochs"]), store=job["store"], executor=InlineExecutor(threads=1),
                    progress=False)
    t0 = time.perf_counter()
    result = search.run()
    t = search.strategy.trainer
    return {"method": job["method"], "seed": job["seed"], "history": t.history, "arch_steps": t.arch_steps,
            "search_seconds": t.seconds, "wall_seconds": time.perf_counter() - t0,
            "proposals": [e.arch.string for e in result.history]}


def summarise(rows: pd.DataFrame, runs: list[dict], args, out: Path) -> str:
    last = rows[rows.epoch == rows.epoch.max()]
    lines = [
        "# Differentiable NAS on NAS-Bench-201 at CPU scale",
        "",
        f"NB201 supernet C={args.C}, N={args.N}, {args.resolution}x{args.resolution} CIFAR-10, "
        f"{args.n_train} training / {args.n_val} validation images, batch {args.batch_size}, "
        f"{args.epochs} search epochs, T={args.T} for the TSE variants, seeds {' '.join(map(str, args.seeds))}. "
        "Accuracy: NAS-Bench-201's 200-epoch CIFAR-10 test accuracy of the architecture derived after each epoch.",
        "",
        "| method | final test acc. (mean ± sd) | min-max | best epoch's mean | skip share at end | none share | "
        "arch steps | s / search epoch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in args.methods:
        f = last[last.method == m]
        if f.empty:
            continue
        per_epoch = rows[rows.method == m].groupby("epoch").test_acc.mean()
        steps = np.mean([r["arch_steps"] for r in runs if r["method"] == m])
        spe = np.mean([r["search_seconds"] / len(r["history"]) for r in runs if r["method"] == m])
        lines.append(f"| {m} | {f.test_acc.mean():.2f} ± {f.test_acc.std(ddof=1) if len(f) > 1 else 0:.2f} | "
                     f"{f.test_acc.min():.2f}-{f.test_acc.max():.2f} | {per_epoch.max():.2f} (epoch "
                     f"{int(per_epoch.idxmax())}) | {f.skip_share.mean():.2f} | {f.none_share.mean():.2f} | "
                     f"{steps:.0f} | {spe:.1f} |")
    lines += ["", "Final derived architectures:", ""]
    for _, r in last.sort_values(["method", "seed"]).iterrows():
        lines.append(f"- {r.method} seed {r.seed}: `{r.arch}` ({r.test_acc:.2f}%)")
    return "\n".join(lines) + "\n"


def plot(rows: pd.DataFrame, methods, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colours = {"darts": "tab:green", "drnas": "tab:olive", "darts-tse": "tab:red", "drnas-tse": "tab:purple"}
    for m in methods:
        g = rows[rows.method == m].groupby("epoch")
        for ax, col in zip(axes, ("test_acc", "skip_share")):
            mean, lo, hi = g[col].mean(), g[col].min(), g[col].max()
            ax.plot(mean.index, mean.values, label=m, color=colours.get(m))
            ax.fill_between(mean.index, lo.values, hi.values, alpha=0.15, color=colours.get(m))
    axes[0].set(xlabel="search epoch", ylabel="NB201 CIFAR-10 test accuracy (%) of the derived cell",
                title="derived architecture (mean, min-max over seeds)")
    axes[1].set(xlabel="search epoch", ylabel="share of skip_connect edges", ylim=(-0.02, 1.02),
                title="skip-connection share")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out / "differentiable_nb201.png", dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    shared = ROOT.parent / "shared"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", default=str(shared))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--T", type=int, default=100, help="TSE variants: training minibatches per architecture step")
    p.add_argument("--C", type=int, default=8)
    p.add_argument("--N", type=int, default=1)
    p.add_argument("--resolution", type=int, default=16)
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--n-val", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2, help="searches run at once (one thread each)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="results directory (default: a new one, "
                   "reproduce/results/differentiable-<UTC time>); an existing non-empty one needs --resume")
    p.add_argument("--resume", action="store_true", help="continue in an existing --out")
    args = p.parse_args(argv)
    table_path = Path(args.shared).joinpath(*TABLE)
    if not table_path.exists():
        p.error(f"needs {table_path} (pass --shared)")
    out = Path(args.out) if args.out else ROOT / "reproduce" / "results" / (
        "differentiable-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    if out.exists() and any(out.iterdir()) and not args.resume:
        p.error(f"{out} exists and is not empty; pass --resume to continue there, or another --out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(vars(args), indent=2) + "\n")

    from nas_engine.benchmarks.nb201_table import NB201Table
    from nas_engine.spaces.nb201 import NB201Space

    jobs = [{"method": m, "seed": s, "store": str(out / "runs" / f"{m}-seed{s}"), "args": vars(args)}
            for s in args.seeds for m in args.methods]
    t0 = time.perf_counter()
    runs = []
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn")) as pool:
        for r in pool.map(run_search, jobs):
            runs.append(r)
            print(f"{r['method']} seed {r['seed']}: {r['search_seconds']:.0f} s search, "
                  f"final {r['history'][-1]['arch']}", flush=True)
    wall = time.perf_counter() - t0

    table, space = NB201Table(table_path), NB201Space()
    rows = []
    for r in runs:
        for h in r["history"]:
            ops = space.ops(space.from_string(h["arch"]))
            rows.append({"method": r["method"], "seed": r["seed"], "epoch": h["epoch"], "arch": h["arch"],
                         "test_acc": 100 * table.final_accuracy(h["arch"], "cifar10_test_acc"),
                         "valid_acc": 100 * table.final_accuracy(h["arch"], "cifar10_valid_acc"),
                         "skip_share": ops.count("skip_connect") / len(ops),
                         "none_share": ops.count("none") / len(ops), "train_loss": h["train_loss"],
                         "arch_loss": h["arch_loss"], "search_seconds": h["seconds"]})
    df = pd.DataFrame(rows).sort_values(["method", "seed", "epoch"])
    df.to_csv(out / "trajectory.csv", index=False, float_format="%.6g")
    text = summarise(df, runs, args, out)
    text += f"\nWall time {wall / 60:.1f} min with {args.workers} searches at once.\n"
    (out / "summary.md").write_text(text)
    plot(df, args.methods, out)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
