"""TSE on NAS-Bench-101 at CPU scale (TSE paper §4 / the thesis' §3.2.1 question on NB101).

Trains NAS-Bench-101 peer architectures (``peer-reference/naslib_zc_nasbench101.json``:
500 keys = 292 distinct cells with the benchmark's 108-epoch CIFAR-10
validation accuracy) from scratch on the real CIFAR-10 subset with a reduced
protocol, scores every curve prefix t = 1..T with TSE, TSE-E, TSE-EMA, SoVL
and early ValAcc, and ranks them against the benchmark accuracy (Spearman and
Kendall), next to the free baselines: #params and #FLOPs (NASLib's values at
the benchmark's size, which our network reproduces exactly), #params of the
proxy network, and every zero-cost proxy as NASLib recorded it for the same
key (and ours, from the committed NB101 peer check, where it scored all the
trained cells).

The architectures are the first ``--archs`` distinct cells of the NB101 peer
check's seeded order (``nb101_peer_check.distinct_cells``, seed 0), a
uniformly random subset of the 292.  A cell's truth is the mean of the
``val_accuracy`` values recorded for its keys (each one of the benchmark's 3
repeats).

Reduced protocol (defaults; every choice is a flag): the NAS-Bench-101
network with a 16-channel stem (the benchmark's 128) and 3 stacks of 1 cell
(the benchmark's 3), 16x16 inputs, 3,000 class-balanced training and 1,000
validation images from CIFAR-10's first training batch, random crop and flip,
batch 64, SGD lr 0.1 (Nesterov momentum 0.9, weight decay 5e-4; the benchmark
used RMSProp at batch 256) on a cosine schedule of 108 epochs (the
benchmark's length) of which the first T=12 are run.  Candidates train two at
a time (processes executor, one torch thread each).

    OMP_NUM_THREADS=1 python reproduce/tse_nb101.py [--archs 150] [--epochs 12] [--out DIR]

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
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from naslib_peer import NASLIB_KEY, PROXIES  # noqa: E402
from nb101_peer_check import PEER_FILE, canonical, cell_accuracy, distinct_cells, load_peer  # noqa: E402
from tse_darts import ESTIMATORS, SHOWN, table  # noqa: E402

from nas_engine.correlate import collect_curves, correlate, plot_correlation  # noqa: E402
from nas_engine.costs import count_params  # noqa: E402
from nas_engine.data import load_dataset  # noqa: E402
from nas_engine.spaces.nb101 import NB101Space  # noqa: E402
from nas_engine.training import Protocol  # noqa: E402


def baselines_for(peer: pd.DataFrame, keys: list[str], strings: dict[str, str], ours: Path | None,
                  proxy_params: dict[str, int]) -> dict[str, dict[str, float]]:
    """Free scores by name -> {arch string: value}: NASLib's params/FLOPs and zero-cost values, and ours."""
    out = {"params (NB101 size)": {strings[k]: float(peer.at[k, "params"]) for k in keys},
           "flops (NB101 size)": {strings[k]: float(peer.at[k, "flops"]) for k in keys},
           "params (proxy net)": {strings[k]: float(proxy_params[k]) for k in keys}}
    ours_name = {v: k for k, v in NASLIB_KEY.items()}
    for col in peer.columns:  # NASLib's NB101 file has epe_nas and l2_norm (not ours) and no nwot
        if col in ("params", "flops", "val_accuracy", "idx"):
            continue
        out[f"{ours_name.get(col, col)} (NASLib)"] = {strings[k]: float(peer.at[k, col]) for k in keys}
    if ours is not None and ours.exists():
        scores = pd.read_csv(ours)
        for p in PROXIES:
            if p in ("params", "flops"):
                continue
            mine = scores[(scores.proxy == p) & scores.compact.isin(keys)].drop_duplicates("compact")
            if len(mine) == len(keys):  # only proxies we scored on every trained architecture
                out[f"{p} (ours)"] = {strings[k]: float(v) for k, v in zip(mine.compact, mine.score)}
    return out


def main(argv=None) -> int:
    shared = ROOT.parent / "shared" / "data"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", default=str(shared))
    p.add_argument("--archs", type=int, default=150, help="distinct cells to train (at most 292)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--schedule-epochs", type=int, default=108)
    p.add_argument("--C", type=int, default=16, help="stem channels (the benchmark's 128)")
    p.add_argument("--N", type=int, default=1, help="cells per stack (the benchmark's 3); 3 stacks")
    p.add_argument("--resolution", type=int, default=16)
    p.add_argument("--n-train", type=int, default=3000)
    p.add_argument("--n-val", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--workers", type=int, default=2, help="candidates trained at once (one thread each)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--zero-cost", default=str(ROOT / "reproduce" / "results" / "nb101_peer_check" / "scores.csv"),
                   help="our zero-cost scores from nb101_peer_check.py (used where they cover every trained cell)")
    p.add_argument("--out", default=None, help="results directory (default: a new one, "
                   "reproduce/results/tse_nb101-<UTC time>); an existing non-empty one needs --resume")
    p.add_argument("--resume", action="store_true", help="continue in an existing --out")
    args = p.parse_args(argv)
    if not Path(args.shared).joinpath(*PEER_FILE).exists():
        p.error(f"needs {Path(args.shared).joinpath(*PEER_FILE)} (pass --shared)")
    out = Path(args.out) if args.out else ROOT / "reproduce" / "results" / (
        "tse_nb101-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    if out.exists() and any(out.iterdir()) and not args.resume:
        p.error(f"{out} exists and is not empty; pass --resume to continue there, or another --out")
    out.mkdir(parents=True, exist_ok=True)

    peer = load_peer(Path(args.shared))
    keys = distinct_cells(peer, args.seed)[:args.archs]
    space = NB101Space()
    archs = {k: space.from_naslib(k) for k in keys}
    strings = {k: a.string for k, a in archs.items()}
    by_cell = cell_accuracy(peer)
    truth = {strings[k]: by_cell[canonical(k)] for k in keys}
    data = load_dataset("cifar10", args.shared, n_train=args.n_train, n_val=args.n_val,
                        resolution=args.resolution, seed=args.seed)
    protocol = Protocol(epochs=args.schedule_epochs, batch_size=args.batch_size, lr=args.lr,
                        weight_decay=args.weight_decay, C=args.C, N=args.N, device=args.device)
    t0 = time.perf_counter()
    curves = collect_curves(space, list(archs.values()), epochs=args.epochs, data=data, protocol=protocol,
                            seed=args.seed, store=str(out / "store"), executor="processes", workers=args.workers)
    wall = time.perf_counter() - t0
    proxy_params = {k: count_params(space.build(a, 10, C=args.C, N=args.N)) for k, a in archs.items()}
    baselines = baselines_for(peer, keys, strings, Path(args.zero_cost) if args.zero_cost else None, proxy_params)
    df = correlate(curves, truth, estimators=ESTIMATORS, baselines=baselines, ks=(0.1,))
    df.to_csv(out / "criteria.csv", index=False)
    shown = [n for n in dict.fromkeys(df["estimator"]) if n in ESTIMATORS or n.startswith(("params (NB", "flops"))
             or n in ("synflow (NASLib)", "jacov (NASLib)")]
    plot_correlation(
        df[df["estimator"].isin(shown)], str(out / "spearman_vs_budget.png"),
        baselines=[n for n in shown if n not in ESTIMATORS],
        title=(f"NAS-Bench-101, {len(keys)} peer cells; truth: NB101 108-epoch val acc\n"
               f"CIFAR-10 {args.n_train} imgs @{args.resolution}px, stem {args.C}, 3 stacks x {args.N} cell(s)"))
    train_seconds = sum(c.total_seconds for c in curves.values() if c is not None)
    acc = np.array(list(truth.values()))
    summary = {
        "archs": len(keys), "failed": sum(c is None or "failed" in c.info for c in curves.values()),
        "truth": {"min": float(acc.min()), "max": float(acc.max()), "std": float(acc.std())},
        "protocol": protocol.to_dict(), "data": data.fingerprint(), "epochs": args.epochs,
        "workers": args.workers, "train_seconds": train_seconds, "wall_seconds_this_run": wall,
        "seconds_per_arch_epoch": train_seconds / max(1, len(keys) * args.epochs),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    budgets = [t for t in SHOWN if t <= args.epochs] + ([args.epochs] if args.epochs not in SHOWN else [])
    lines = [f"# TSE on NAS-Bench-101: {len(keys)} peer cells, T = 1..{args.epochs}", "",
             f"truth (NB101 val acc, %): {acc.min():.2f} .. {acc.max():.2f}, std {acc.std():.2f}", ""]
    for crit in ("spearman", "kendall"):
        lines += table(df, crit, budgets, "NB101 acc") + [""]
    lines.append(f"training: {train_seconds:.0f} s of candidate time, {wall:.0f} s wall this run, "
                 f"{summary['seconds_per_arch_epoch']:.2f} s per architecture-epoch, {summary['failed']} failed")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
