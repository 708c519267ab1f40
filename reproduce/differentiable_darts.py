"""DARTS vs DARTS-TSE on the DARTS space at CPU scale, the derived cells trained from scratch (thesis §4.3.2).

No NAS-Bench-301 surrogate is available here, so the derived cells are judged
the way the papers' "8 layers eval" does, scaled down: each method's final
cell is trained from scratch with ``--final-seeds`` seeds and its CIFAR-10
test accuracy (the full 10,000-image test batch) compared.

Search phase (through :class:`nas_engine.Search`, proposals scored by the
free ``params`` estimator): the DARTS space's relaxed supernet at C=8 with
``N=1`` (5 cells, reductions after cells 1 and 3; the papers search with
C=16 and 8 cells), 16x16 CIFAR-10, ``--n-train`` training and ``--n-val``
validation images, batch 64, ``--epochs`` search epochs with the papers'
optimiser settings (weights SGD 0.025 cosine to 0.001, momentum 0.9, weight
decay 3e-4, clip 5; architecture Adam 3e-4, betas (0.5, 0.999), weight decay
1e-3).  ``--T``: DARTS-TSE's minibatches per architecture step.  An epoch
here has only ``ceil(n_train / 64)`` minibatches, so the default T=4 keeps
the thesis' number of architecture steps per epoch (about 4: T=100 over
CIFAR-10's 391 minibatches) instead of its T.

Final training (:func:`nas_engine.final.train_final`): the DARTS evaluation
network at C=8, N=1, no auxiliary head, no drop path, 16x16, ``--final-train``
training images, batch 64, SGD 0.025 (momentum 0.9, weight decay 3e-4) on a
cosine schedule of ``--final-epochs`` epochs, random crop and flip.

    OMP_NUM_THREADS=1 python -m reproduce.differentiable_darts [--epochs 10] [--out DIR]

The default ``--out`` is a new directory named after the current UTC time; an
existing non-empty ``--out`` is refused unless ``--resume`` (searches and
trainings are checkpointed every epoch under ``--out`` and continue where they
stopped).  Writes ``trajectory.csv``, ``final.csv`` and ``summary.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

METHODS = ("darts", "darts-tse")
PARAMETER_FREE = ("skip_connect", "max_pool_3x3", "avg_pool_3x3")


def _data(a: dict, n_train: int, n_val: int):
    from nas_engine.data import load_dataset

    return load_dataset("cifar10", str(Path(a["shared"]) / "data"), n_train=n_train, n_val=n_val,
                        resolution=a["resolution"], seed=0)


def run_search(job: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    from nas_engine import Budget, Search
    from nas_engine.executors import InlineExecutor
    from nas_engine.registry import create
    from nas_engine.spaces.darts import DartsSpace
    from nas_engine.training import Protocol

    a = job["args"]
    data = _data(a, a["n_train"], a["n_val"])
    # --C / --N: the initial channels and normal cells per stage (3N + 2 cells), the DARTS space's legacy_size
    protocol = Protocol(schedule_epochs=a["epochs"], batch_size=64, size=DartsSpace().legacy_size(a["C"], a["N"]),
                        device=a["device"])
    extra = {"T": a["T"]} if job["method"].endswith("-tse") else {}
    strategy = create("strategy", job["method"], epochs=a["epochs"], batch_size=64, **extra)
    search = Search(strategy, "darts", "params", data=data, protocol=protocol, seed=a["seed"],
                    budget=Budget(evaluations=a["epochs"]), store=job["store"], executor=InlineExecutor(threads=1),
                    progress=False)
    search.run()
    t = search.strategy.trainer
    return {"method": job["method"], "history": t.history, "arch_steps": t.arch_steps, "search_seconds": t.seconds}


def run_final(job: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    from nas_engine.final import train_final
    from nas_engine.spaces.darts import DartsSpace
    from nas_engine.training import Protocol

    a = job["args"]
    data = _data(a, a["final_train"], 0)
    protocol = Protocol(schedule_epochs=a["final_epochs"], batch_size=64, lr=0.025, nesterov=False,
                        weight_decay=3e-4, size=DartsSpace().legacy_size(a["C"], a["N"]), device=a["device"])
    r = train_final("darts", job["arch"], data, protocol, out=job["out"], seed=job["seed"], threads=1,
                    progress=False)
    return {"method": job["method"], "seed": job["seed"], "arch": job["arch"], "test_acc": 100 * r.final_test_acc,
            "train_acc": 100 * r.curve.train_acc[-1], "seconds": r.seconds}


def cell_stats(space, arch_string: str) -> dict:
    normal, reduce = space.cells(space.from_string(arch_string))
    out = {}
    for name, cell in (("normal", normal), ("reduce", reduce)):
        ops = [op for op, _ in cell]
        out[f"{name}_skip"] = ops.count("skip_connect")
        out[f"{name}_param_free"] = sum(ops.count(o) for o in PARAMETER_FREE)
        g = space.cell_graph(space.from_string(arch_string), name)
        out[f"{name}_depth"] = _depth(g)
    return out


def _depth(g) -> int:
    """Shu et al.'s cell depth: the longest path, in edges, from a cell input to the cell output (2..5 here)."""
    import networkx as nx

    return nx.dag_longest_path_length(g)


def main(argv=None) -> int:
    shared = ROOT.parent / "shared"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", default=str(shared))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--T", type=int, default=4)
    p.add_argument("--C", type=int, default=8)
    p.add_argument("--N", type=int, default=1)
    p.add_argument("--resolution", type=int, default=16)
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--n-val", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0, help="search seed")
    p.add_argument("--final-seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--final-epochs", type=int, default=25)
    p.add_argument("--final-train", type=int, default=4000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="results directory (default: a new one, "
                   "reproduce/results/differentiable_darts-<UTC time>); an existing non-empty one needs --resume")
    p.add_argument("--resume", action="store_true")
    args = p.parse_args(argv)
    if not (Path(args.shared) / "data" / "cifar-10-batches-py").exists():
        p.error(f"needs {Path(args.shared) / 'data' / 'cifar-10-batches-py'} (pass --shared)")
    out = Path(args.out) if args.out else ROOT / "reproduce" / "results" / (
        "differentiable_darts-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    if out.exists() and any(out.iterdir()) and not args.resume:
        p.error(f"{out} exists and is not empty; pass --resume to continue there, or another --out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(vars(args), indent=2) + "\n")

    from nas_engine.spaces.darts import DartsSpace

    space = DartsSpace()
    t0 = time.perf_counter()
    ctx = get_context("spawn")
    jobs = [{"method": m, "store": str(out / "runs" / m), "args": vars(args)} for m in METHODS]
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=ctx) as pool:
        searches = list(pool.map(run_search, jobs))
    search_wall = time.perf_counter() - t0
    rows = []
    for s in searches:
        for h in s["history"]:
            rows.append({"method": s["method"], "epoch": h["epoch"], "arch": h["arch"], "train_loss": h["train_loss"],
                         "arch_loss": h["arch_loss"], "search_seconds": h["seconds"], **cell_stats(space, h["arch"])})
    traj = pd.DataFrame(rows)
    traj.to_csv(out / "trajectory.csv", index=False, float_format="%.6g")

    finals = {s["method"]: s["history"][-1]["arch"] for s in searches}
    jobs = [{"method": m, "arch": a, "seed": k, "out": str(out / "final" / f"{m}-seed{k}"), "args": vars(args)}
            for m, a in finals.items() for k in args.final_seeds]
    t1 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=ctx) as pool:
        trained = list(pool.map(run_final, jobs))
    final_wall = time.perf_counter() - t1
    fdf = pd.DataFrame(trained)
    fdf.to_csv(out / "final.csv", index=False, float_format="%.6g")

    lines = ["# DARTS vs DARTS-TSE on the DARTS space at CPU scale", "",
             f"Search: relaxed DARTS supernet C={args.C}, N={args.N} ({3 * args.N + 2} cells), "
             f"{args.resolution}x{args.resolution} CIFAR-10, {args.n_train} training / {args.n_val} validation "
             f"images, {args.epochs} epochs, seed {args.seed}; DARTS-TSE T={args.T}. "
             f"Final training: C={args.C}, N={args.N}, {args.final_train} images, {args.final_epochs} epochs, "
             f"seeds {' '.join(map(str, args.final_seeds))}; accuracy on the 10,000 CIFAR-10 test images "
             f"at {args.resolution}x{args.resolution}. No NAS-Bench-301 surrogate is available here.", "",
             "| method | test acc. of the final cell (mean ± sd over training seeds) | arch steps | "
             "s / search epoch | normal cell: skip / parameter-free ops / depth | reduce cell: same |",
             "|---|---|---|---|---|---|"]
    for s in searches:
        m = s["method"]
        f = fdf[fdf.method == m]
        last = traj[(traj.method == m) & (traj.epoch == traj.epoch.max())].iloc[0]
        lines.append(f"| {m} | {f.test_acc.mean():.2f} ± {f.test_acc.std(ddof=1):.2f} "
                     f"({', '.join(f'{v:.2f}' for v in f.test_acc)}) | {s['arch_steps']} | "
                     f"{s['search_seconds'] / len(s['history']):.0f} | {last.normal_skip} / {last.normal_param_free} / "
                     f"{last.normal_depth} | {last.reduce_skip} / {last.reduce_param_free} / {last.reduce_depth} |")
    lines += ["", "Final cells:", ""] + [f"- {m}: `{a}`" for m, a in finals.items()]
    lines += ["", f"Wall time: search {search_wall / 60:.1f} min, final training {final_wall / 60:.1f} min "
              f"({args.workers} processes, one thread each)."]
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
