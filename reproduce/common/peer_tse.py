"""TSE on a peer file's architectures: what ``tse_darts`` and ``tse_nb101`` share.

Both train architectures of one of NASLib's zero-cost benchmark files from
scratch at CPU scale (:func:`nas_engine.correlate.collect_curves`), score
every curve prefix with the training-speed estimators and early ValAcc, and
rank them against the benchmark's accuracy next to the free baselines
(NASLib's params / FLOPs at the benchmark's size, #params of the proxy
network, NASLib's zero-cost values and ours from the script's peer check).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from nas_engine.correlate import collect_curves, correlate, plot_correlation
from nas_engine.costs import count_params
from nas_engine.data import load_dataset
from nas_engine.training import Protocol

from .naslib_peer import PROXIES

ESTIMATORS = ("tse", "tse-e", "tse-ema", "sovl", "valacc")
#: budgets shown in summary.md
SHOWN = (1, 2, 3, 5, 8, 12)


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


def baselines_for(peer: pd.DataFrame, keys: list[str], strings: dict[str, str], ours: Path | None,
                  proxy_params: dict[str, int], *, size_label: str,
                  naslib_proxies: Sequence[tuple[str, str]]) -> dict[str, dict[str, float]]:
    """Free scores by name -> {arch string: value}: NASLib's params/FLOPs and zero-cost values, and ours.

    ``naslib_proxies``: (our name, NASLib's column) of the zero-cost values
    to take from the peer file; ours (``ours``, a peer check's
    ``scores.csv``) are added for every proxy scored on all of ``keys``.
    """
    out = {f"params ({size_label})": {strings[k]: float(peer.at[k, "params"]) for k in keys},
           f"flops ({size_label})": {strings[k]: float(peer.at[k, "flops"]) for k in keys},
           "params (proxy net)": {strings[k]: float(proxy_params[k]) for k in keys}}
    for name, col in naslib_proxies:
        out[f"{name} (NASLib)"] = {strings[k]: float(peer.at[k, col]) for k in keys}
    if ours is not None and ours.exists():
        scores = pd.read_csv(ours)
        for p in PROXIES:
            if p in ("params", "flops"):
                continue
            mine = scores[(scores.proxy == p) & scores.compact.isin(keys)].drop_duplicates("compact")
            if len(mine) == len(keys):  # only proxies we scored on every trained architecture
                out[f"{p} (ours)"] = {strings[k]: float(v) for k, v in zip(mine.compact, mine.score)}
    return out


def parser(doc: str, *, archs: int, schedule_epochs: int, C: int, N: int, N_help: str, lr: float,
           weight_decay: float, zero_cost: Path, name: str, C_help: str | None = None,
           default_shared: Path) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", default=str(default_shared))
    p.add_argument("--archs", type=int, default=archs)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--schedule-epochs", type=int, default=schedule_epochs)
    p.add_argument("--C", type=int, default=C, help=C_help)
    p.add_argument("--N", type=int, default=N, help=N_help)
    p.add_argument("--resolution", type=int, default=16)
    p.add_argument("--n-train", type=int, default=3000)
    p.add_argument("--n-val", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--weight-decay", type=float, default=weight_decay)
    p.add_argument("--workers", type=int, default=2, help="candidates trained at once (one thread each)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--zero-cost", default=str(zero_cost), help="our zero-cost scores from the peer check "
                   "(used where they cover every trained arch)")
    p.add_argument("--out", default=None, help="results directory (default: a new one, "
                   f"reproduce/results/{name}-<UTC time>); an existing non-empty one needs --resume")
    p.add_argument("--resume", action="store_true", help="continue in an existing --out")
    return p


def output_dir(p: argparse.ArgumentParser, args, results: Path, name: str, peer_file: Sequence[str]) -> Path:
    """Check the peer file is there; the new (or resumed) results directory."""
    if not Path(args.shared).joinpath(*peer_file).exists():
        p.error(f"needs {Path(args.shared).joinpath(*peer_file)} (pass --shared)")
    out = Path(args.out) if args.out else results / (name + "-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    if out.exists() and any(out.iterdir()) and not args.resume:
        p.error(f"{out} exists and is not empty; pass --resume to continue there, or another --out")
    out.mkdir(parents=True, exist_ok=True)
    return out


def wall_all_runs(out: Path, wall: float) -> float:
    """This run's wall time plus that of the runs before it in ``out`` (from its ``summary.json``, which only a
    resumed run finds: a new ``out`` must be empty), so that a resumed run (which may only re-score) does not
    lose what the training cost."""
    try:
        before = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return wall
    return float(before.get("wall_seconds_all_runs", before.get("wall_seconds_this_run", 0.0))) + wall


def run(args, out: Path, *, space, archs: Mapping[str, Any], truth: Mapping[str, float], peer: pd.DataFrame,
        size_label: str, naslib_proxies: Sequence[tuple[str, str]], what: str, title: str, header: list[str],
        shown_proxies: Sequence[str], protocol_kw: dict | None = None) -> int:
    """Train ``archs`` (NASLib key -> Architecture), correlate against ``truth`` (arch string -> accuracy),
    write ``criteria.csv``, ``spearman_vs_budget.png``, ``summary.json`` and ``summary.md`` to ``out``."""
    keys = list(archs)
    strings = {k: a.string for k, a in archs.items()}
    data = load_dataset("cifar10", args.shared, n_train=args.n_train, n_val=args.n_val,
                        resolution=args.resolution, seed=args.seed)
    # the scripts' --C / --N keep their meaning of before the space owned its size (DARTS: N normal cells per
    # stage, 3N + 2 cells; NB101: stem channels and cells per stack): the space converts them
    size = space.legacy_size(args.C, args.N)
    protocol = Protocol(schedule_epochs=args.schedule_epochs, batch_size=args.batch_size, lr=args.lr,
                        weight_decay=args.weight_decay, size=size, device=args.device, **(protocol_kw or {}))
    t0 = time.perf_counter()
    curves = collect_curves(space, list(archs.values()), epochs=args.epochs, data=data, protocol=protocol,
                            seed=args.seed, store=str(out / "store"), executor="processes", workers=args.workers)
    wall = time.perf_counter() - t0
    proxy_params = {k: count_params(space.build(a, 10, **size)) for k, a in archs.items()}
    baselines = baselines_for(peer, keys, strings, Path(args.zero_cost) if args.zero_cost else None, proxy_params,
                              size_label=size_label, naslib_proxies=naslib_proxies)
    df = correlate(curves, truth, estimators=ESTIMATORS, baselines=baselines, ks=(0.1,))
    df.to_csv(out / "criteria.csv", index=False)
    shown = [n for n in dict.fromkeys(df["estimator"]) if n in ESTIMATORS or n.startswith(("params (NB", "flops"))
             or n in shown_proxies]
    plot_correlation(df[df["estimator"].isin(shown)], str(out / "spearman_vs_budget.png"),
                     baselines=[n for n in shown if n not in ESTIMATORS], title=title)
    train_seconds = sum(c.total_seconds for c in curves.values() if c is not None)
    summary = {
        "archs": len(keys), "failed": sum(c is None or "failed" in c.info for c in curves.values()),
        "protocol": protocol.to_dict(), "data": data.fingerprint(), "epochs": args.epochs,
        "workers": args.workers, "train_seconds": train_seconds, "wall_seconds_this_run": wall,
        "wall_seconds_all_runs": wall_all_runs(out, wall),
        "seconds_per_arch_epoch": train_seconds / max(1, len(keys) * args.epochs),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    budgets = [t for t in SHOWN if t <= args.epochs] + ([args.epochs] if args.epochs not in SHOWN else [])
    lines = list(header)
    for crit in ("spearman", "kendall"):
        lines += table(df, crit, budgets, what) + [""]
    lines.append(f"training: {train_seconds:.0f} s of candidate time, {wall:.0f} s wall this run "
                 f"({summary['wall_seconds_all_runs']:.0f} s all runs), "
                 f"{summary['seconds_per_arch_epoch']:.2f} s per architecture-epoch, {summary['failed']} failed")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0
