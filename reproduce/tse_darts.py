"""TSE on the DARTS space at CPU scale (TSE paper Fig. 2 / Table 1 style).

Trains NAS-Bench-301 peer architectures (``peer-reference/naslib_zc_nasbench301.json``:
725 DARTS-space cells with NAS-Bench-301's predicted CIFAR-10 validation
accuracy) from scratch on the real CIFAR-10 subset with a reduced protocol,
scores every curve prefix t = 1..T with TSE, TSE-E, TSE-EMA, SoVL and early
ValAcc, and ranks them against the NAS-Bench-301 accuracy (Spearman and
Kendall), next to the free baselines: #params and #FLOPs (NASLib's values at
NAS-Bench-301's size, C=32 and 8 cells), and every zero-cost proxy as NASLib
recorded it for the same architectures (and ours, from the committed DARTS
peer check, where it scored them).

The architectures are the first ``--archs`` of the DARTS peer check's seeded
order (``darts_peer_check.seeded_order``, seed 0): a uniformly random subset
of the 725 on which that check also computed our data-dependent zero-cost
proxies (its first 120).

Reduced protocol (defaults; every choice is a flag): the DARTS evaluation
network at C=8 with 5 cells (``N=1``: reductions after cells 1 and 3), no
auxiliary head, no drop path, 16x16 inputs, 3,000 class-balanced training and
1,000 validation images from CIFAR-10's first training batch, random crop and
flip, batch 64, SGD lr 0.025 (momentum 0.9, weight decay 3e-4, DARTS's
evaluation recipe) on a cosine schedule of 100 epochs, of which the first
T=12 are run.  Candidates train two at a time (processes executor, one torch
thread each).  The algorithm is unchanged; only the scale is reduced.

    OMP_NUM_THREADS=1 python reproduce/tse_darts.py [--archs 100] [--epochs 12] [--out DIR]

The default ``--out`` is a new directory named after the current UTC time; an
existing non-empty ``--out`` is refused unless ``--resume`` (the training runs
are stored in ``--out/store`` and a resumed run continues where it stopped).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
from darts_peer_check import NASLIB_KEY, PEER_FILE, PROXIES, load_peer, seeded_order  # noqa: E402

from nas_engine.correlate import collect_curves, correlate, plot_correlation  # noqa: E402
from nas_engine.costs import count_params  # noqa: E402
from nas_engine.data import load_dataset  # noqa: E402
from nas_engine.spaces.darts import DartsSpace  # noqa: E402
from nas_engine.training import Protocol  # noqa: E402

ESTIMATORS = ("tse", "tse-e", "tse-ema", "sovl", "valacc")
#: budgets shown in summary.md
SHOWN = (1, 2, 3, 5, 8, 12)


def baselines_for(peer: pd.DataFrame, keys: list[str], strings: dict[str, str], ours: Path | None,
                  proxy_params: dict[str, int]) -> dict[str, dict[str, float]]:
    """Free scores by name -> {arch string: value}: NASLib's params/FLOPs and zero-cost values, and ours."""
    out = {"params (NB301 size)": {strings[k]: float(peer.at[k, "params"]) for k in keys},
           "flops (NB301 size)": {strings[k]: float(peer.at[k, "flops"]) for k in keys},
           "params (proxy net)": {strings[k]: float(proxy_params[k]) for k in keys}}
    for p in PROXIES:
        if p in ("params", "flops"):
            continue
        col = NASLIB_KEY.get(p, p)
        out[f"{p} (NASLib)"] = {strings[k]: float(peer.at[k, col]) for k in keys}
    if ours is not None and ours.exists():
        scores = pd.read_csv(ours)
        for p in PROXIES:
            if p in ("params", "flops"):
                continue
            mine = scores[(scores.proxy == p) & scores.compact.isin(keys)].drop_duplicates("compact")
            if len(mine) == len(keys):  # only proxies we scored on every trained architecture
                out[f"{p} (ours)"] = {strings[k]: float(v) for k, v in zip(mine.compact, mine.score)}
    return out


def table(df: pd.DataFrame, criterion: str, budgets, what: str = "NB301 acc") -> list[str]:
    """A markdown table of ``criterion`` per estimator (rows) and budget (columns); free baselines in one cell."""
    pivot = df.pivot(index="estimator", columns="epochs", values=criterion)
    order = list(dict.fromkeys(df["estimator"]))
    cols = [t for t in budgets if t in pivot.columns]
    lines = [f"| {criterion} vs {what} | " + " | ".join(f"T={t}" for t in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for name in order:
        vals = pivot.loc[name, cols]
        if name in ESTIMATORS:
            lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
        else:  # a free baseline: one value
            lines.append(f"| {name}, free | {vals.iloc[0]:.3f} |" + " |" * (len(cols) - 1))
    return lines


def main(argv=None) -> int:
    shared = ROOT.parent / "shared" / "data"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", default=str(shared))
    p.add_argument("--archs", type=int, default=100)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--schedule-epochs", type=int, default=100)
    p.add_argument("--C", type=int, default=8)
    p.add_argument("--N", type=int, default=1, help="cells per stage; the network has 3N+2 cells")
    p.add_argument("--resolution", type=int, default=16)
    p.add_argument("--n-train", type=int, default=3000)
    p.add_argument("--n-val", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.025)
    p.add_argument("--weight-decay", type=float, default=3e-4)
    p.add_argument("--workers", type=int, default=2, help="candidates trained at once (one thread each)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--zero-cost", default=str(ROOT / "reproduce" / "results" / "darts_peer_check" / "scores.csv"),
                   help="our zero-cost scores from darts_peer_check.py (used where they cover every trained arch)")
    p.add_argument("--out", default=None, help="results directory (default: a new one, "
                   "reproduce/results/tse_darts-<UTC time>); an existing non-empty one needs --resume")
    p.add_argument("--resume", action="store_true", help="continue in an existing --out")
    args = p.parse_args(argv)
    if not Path(args.shared).joinpath(*PEER_FILE).exists():
        p.error(f"needs {Path(args.shared).joinpath(*PEER_FILE)} (pass --shared)")
    out = Path(args.out) if args.out else ROOT / "reproduce" / "results" / (
        "tse_darts-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    if out.exists() and any(out.iterdir()) and not args.resume:
        p.error(f"{out} exists and is not empty; pass --resume to continue there, or another --out")
    out.mkdir(parents=True, exist_ok=True)

    peer = load_peer(Path(args.shared))
    keys = seeded_order(peer, args.seed)[:args.archs]
    space = DartsSpace()
    archs = {k: space.from_compact(k) for k in keys}
    strings = {k: a.string for k, a in archs.items()}
    truth = {strings[k]: float(peer.at[k, "val_accuracy"]) for k in keys}
    data = load_dataset("cifar10", args.shared, n_train=args.n_train, n_val=args.n_val,
                        resolution=args.resolution, seed=args.seed)
    protocol = Protocol(epochs=args.schedule_epochs, batch_size=args.batch_size, lr=args.lr,
                        nesterov=False, weight_decay=args.weight_decay, C=args.C, N=args.N, device=args.device)
    t0 = time.perf_counter()
    curves = collect_curves(space, list(archs.values()), epochs=args.epochs, data=data, protocol=protocol,
                            seed=args.seed, store=str(out / "store"), executor="processes", workers=args.workers)
    wall = time.perf_counter() - t0
    proxy_params = {k: count_params(space.build(a, 10, C=args.C, N=args.N)) for k, a in archs.items()}
    baselines = baselines_for(peer, keys, strings, Path(args.zero_cost) if args.zero_cost else None, proxy_params)
    df = correlate(curves, truth, estimators=ESTIMATORS, baselines=baselines, ks=(0.1,))
    df.to_csv(out / "criteria.csv", index=False)
    shown = [n for n in dict.fromkeys(df["estimator"]) if n in ESTIMATORS or n.startswith(("params (NB", "flops"))
             or n in ("synflow (NASLib)", "nwot (NASLib)")]
    plot_correlation(
        df[df["estimator"].isin(shown)], str(out / "spearman_vs_budget.png"),
        baselines=[n for n in shown if n not in ESTIMATORS],
        title=(f"DARTS space, {len(keys)} NB301 peer archs; truth: NB301 predicted val acc\n"
               f"CIFAR-10 {args.n_train} imgs @{args.resolution}px, C={args.C}, {3 * args.N + 2} cells"))
    train_seconds = sum(c.total_seconds for c in curves.values() if c is not None)
    summary = {
        "archs": len(keys), "failed": sum(c is None or "failed" in c.info for c in curves.values()),
        "protocol": protocol.to_dict(), "data": data.fingerprint(), "epochs": args.epochs,
        "workers": args.workers, "train_seconds": train_seconds, "wall_seconds_this_run": wall,
        "seconds_per_arch_epoch": train_seconds / max(1, len(keys) * args.epochs),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    budgets = [t for t in SHOWN if t <= args.epochs] + ([args.epochs] if args.epochs not in SHOWN else [])
    lines = [f"# TSE on the DARTS space: {len(keys)} NB301 peer architectures, T = 1..{args.epochs}", ""]
    for crit in ("spearman", "kendall"):
        lines += table(df, crit, budgets) + [""]
    lines.append(f"training: {train_seconds:.0f} s of candidate time, {wall:.0f} s wall this run, "
                 f"{summary['seconds_per_arch_epoch']:.2f} s per architecture-epoch, {summary['failed']} failed")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
