"""DARTS / NAS-Bench-301 peer check: our network's size and zero-cost scores vs NASLib's.

``peer-reference/naslib_zc_nasbench301.json`` (shared data) holds NASLib's
values (NAS-Bench-Suite-Zero) for 725 DARTS architectures on CIFAR-10, keyed
by NASLib's compact encoding: ``params`` and ``flops`` (``score`` in millions),
the zero-cost proxies, and ``val_accuracy`` (predicted by NAS-Bench-301).

**Size.**  NASLib computed them on its ``NasBench301SearchSpace`` graph as it
was before NASLib commit a4412f18 (2022-10-06, "Reduce number of channels in
NB301 graph"): ``channels = [32, 64, 128]``, i.e. ``C=32``, 8 cells
(``layers=8``, our ``N=2``), 32x32 input, 10 classes, no auxiliary head in the
counted forward pass.  Its params / flops are tensorwatch's ``ModelStats`` of
one ``1x3x32x32`` input divided by 1e6 (``find_measures`` in
``naslib/predictors/utils/pruners/predictive.py``): torchstat's rules -- the
parameters of every leaf module that runs; FLOPs = conv and linear
multiply-accumulates (no factor 2), plus one per element for ReLU, one
(non-affine) or two (affine) per element for BatchNorm, ``k*k`` per output
element of a pooling, ``(h+1)(w+1)`` per channel for the global pooling.
NASLib's cell ops differ from the DARTS ``NetworkCIFAR`` (ours) only in their
BatchNorms: sep/dil convs and the reduction cell's FactorizedReduce skip have
``affine=False`` BatchNorms, and the pooling ops are followed by a
``BatchNorm2d(affine=False)``.

Part 1 (``costs.csv``): for every architecture, NASLib's values, ours as the
engine counts them (:func:`nas_engine.costs.count_params`, every parameter;
:func:`nas_engine.costs.count_flops`, torch's counter, 2 FLOPs per
multiply-add, convs and matmuls only) and ours recounted under NASLib's
definition (:func:`naslib_counts`: torchstat's rules on our network, its
cell-op BatchNorms taken as NASLib's).

Part 2 (``scores.csv``): our zero-cost proxies
(:func:`nas_engine.estimators.zero_cost.zero_cost_scores`, seed 0, one fixed
minibatch of 32 un-augmented images from the shared ``data_batch_1``; NASLib's
batch is 32 too: its jacov values, <= -32 and >= -32.38, say so) at NASLib's
size.  Architectures are visited in a seeded random order and the proxies in
tiers (data-free on all, then the data-dependent ones on the first
``--limit``, then grasp on the first ``--grasp-limit``), so an interrupted
run leaves each proxy scored on a uniformly random subset; rerun with
``--resume`` to continue.  ``summary.md`` / ``summary.csv`` are rewritten at
the end (``--summarize`` rebuilds them from the CSVs alone).  ``--start N`` begins the
data-dependent tiers at the N-th architecture of the order, so that two
processes (different ``--out``) can share the work; their ``scores.csv`` rows
are then concatenated.

    OMP_NUM_THREADS=1 python reproduce/darts_peer_check.py [--shared ../shared/data] [--out DIR]

The default ``--out`` is a new directory named after the current UTC time;
an existing non-empty ``--out`` is refused unless ``--resume`` or
``--summarize`` is given, so committed results are never overwritten by
accident.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from nas_engine.criteria import spearman  # noqa: E402
from nas_engine.estimators.zero_cost import MEASURES  # noqa: E402

PEER_FILE = ("peer-reference", "naslib_zc_nasbench301.json")
#: NASLib's network size for these values: NasBench301SearchSpace with channels [32, 64, 128] (8 cells)
C, LAYERS, RESOLUTION, NUM_CLASSES = 32, 8, 32, 10
BATCH_SIZE = 32
#: our proxy name -> NASLib's key
NASLIB_KEY = {"grad-norm": "grad_norm"}
FREE = ("synflow", "params", "flops")
DATA = ("nwot", "jacov", "snip", "grad-norm", "fisher", "plain")
EXPENSIVE = ("grasp",)
PROXIES = FREE + DATA + EXPENSIVE
COST_COLUMNS = ["naslib_params", "naslib_flops", "ours_params", "ours_flops", "ours_params_naslib_def",
                "ours_flops_naslib_def"]


def load_peer(shared: Path) -> pd.DataFrame:
    """NASLib's 725 architectures: index = compact text, one column per proxy score, ``val_accuracy``."""
    raw = json.loads(shared.joinpath(*PEER_FILE).read_text())["cifar10"]
    rows = {}
    for key, entry in raw.items():
        rows[key] = {k: (v["score"] if isinstance(v, dict) else v) for k, v in entry.items()
                     if k not in ("arch", "idx")}
        rows[key]["idx"] = int(entry["idx"])
    return pd.DataFrame.from_dict(rows, orient="index")


def seeded_order(peer: pd.DataFrame, seed: int) -> list[str]:
    return list(np.random.default_rng(seed).permutation(list(peer.index)))


def rank_corr(a, b) -> float:
    """Spearman over pairs, NaN scores ranked lowest on either side."""
    a = np.where(np.isnan(a), -np.inf, np.asarray(a, float))
    b = np.where(np.isnan(b), -np.inf, np.asarray(b, float))
    return float(stats.spearmanr(stats.rankdata(a), stats.rankdata(b)).statistic)


# ---------------------------------------------------------------------------------
# part 1: params and FLOPs
# ---------------------------------------------------------------------------------
def naslib_counts(model) -> tuple[int, int]:
    """(params, FLOPs) of our DARTS network under NASLib's definition (tensorwatch / torchstat, see the docstring).

    One ``1x3x32x32`` random input in eval mode; each leaf module that runs
    counts its parameters once and its FLOPs by torchstat's rules.  The
    BatchNorms inside the cell ops count as NASLib's ``affine=False`` ones (no
    parameters, one FLOP per element), and each pooling op adds the elements
    of NASLib's ``BatchNorm2d(affine=False)`` after it.
    """
    import torch
    from torch import nn

    op_bn, leaves = set(), [m for m in model.modules() if not list(m.children())]
    for cell in model.cells:
        for op in cell.ops:
            op_bn.update(m for m in op.modules() if isinstance(m, nn.BatchNorm2d))
    found: dict[nn.Module, tuple[int, int]] = {}

    def pair(v):
        return v if isinstance(v, tuple) else (v, v)

    def hook(m, inputs, out):
        x = inputs[0]
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            pos = out.shape[0] * out.shape[2] * out.shape[3]
            f = kh * kw * x.shape[1] * (out.shape[1] // m.groups) * pos + (out.shape[1] * pos if m.bias is not None
                                                                          else 0)
        elif isinstance(m, nn.BatchNorm2d):
            f = x.numel() * (1 if m in op_bn else 2)
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            (k, _), (s, _), (p, _) = pair(m.kernel_size), pair(m.stride), pair(m.padding)
            ow = math.floor((x.shape[3] + 2 * p - k) / float(s) + 1)
            oh = math.floor((x.shape[2] + 2 * p - k) / float(s) + 1)
            f = x.shape[0] * x.shape[1] * ow * oh * k * k + out.numel()  # + the BatchNorm NASLib puts after a pool
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            h, w = x.shape[2], x.shape[3]
            oh, ow = out.shape[2], out.shape[3]
            f = sum(x.shape[0] * x.shape[1] * (math.ceil((i + 1) * h / oh) - math.floor(i * h / oh) + 1)
                    * (math.ceil((j + 1) * w / ow) - math.floor(j * w / ow) + 1) for i in range(oh) for j in range(ow))
        elif isinstance(m, nn.ReLU):
            f = x.numel()
        elif isinstance(m, nn.Linear):
            f = x.shape[0] * x.shape[1] * out.shape[1]
        else:
            f = 0
        found[m] = (0 if m in op_bn else sum(q.numel() for q in m.parameters()), int(f))

    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.rand(1, 3, RESOLUTION, RESOLUTION))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return sum(p for p, _ in found.values()), sum(f for _, f in found.values())


def arch_costs(compact: str) -> dict[str, int]:
    """Ours (engine's counters and NASLib's definition) for one architecture at NASLib's size."""
    import torch

    from nas_engine.costs import count_flops, count_params
    from nas_engine.spaces.darts import DartsSpace

    space = DartsSpace()
    torch.manual_seed(0)
    model = space.build(space.from_compact(compact), NUM_CLASSES, C=C, layers=LAYERS)
    params_nd, flops_nd = naslib_counts(model)
    return {"ours_params": count_params(model),
            "ours_flops": count_flops(model, torch.zeros(1, 3, RESOLUTION, RESOLUTION)),
            "ours_params_naslib_def": params_nd, "ours_flops_naslib_def": flops_nd}


def compute_costs(peer: pd.DataFrame, path: Path, archs=None) -> pd.DataFrame:
    rows = []
    for key in (archs if archs is not None else peer.index):
        rows.append({"compact": key, "naslib_params": int(round(peer.at[key, "params"] * 1e6)),
                     "naslib_flops": int(round(peer.at[key, "flops"] * 1e6)), **arch_costs(key)})
    df = pd.DataFrame(rows, columns=["compact", *COST_COLUMNS])
    df.to_csv(path, index=False)
    return df


def cost_lines(costs: pd.DataFrame) -> tuple[list[str], list[dict]]:
    lines = [f"## Params and FLOPs ({len(costs)} architectures; C={C}, {LAYERS} cells, 32x32, 10 classes)", "",
             "| quantity | ours | exact agreement | max abs diff | max rel diff | Spearman |",
             "|---|---|---|---|---|---|"]
    rows = []
    for what in ("params", "flops"):
        theirs = costs[f"naslib_{what}"].to_numpy(float)
        for col, label in ((f"ours_{what}_naslib_def", "NASLib's definition"), (f"ours_{what}", "engine's counter")):
            mine = costs[col].to_numpy(float)
            diff = np.abs(mine - theirs)
            r = {"quantity": what, "ours": label, "n": len(costs), "exact": int((diff == 0).sum()),
                 "max_abs_diff": float(diff.max()), "max_rel_diff": float((diff / theirs).max()),
                 "spearman": rank_corr(mine, theirs)}
            rows.append(r)
            lines.append(f"| {what} | {label} | {r['exact']}/{r['n']} | {r['max_abs_diff']:.0f} | "
                         f"{r['max_rel_diff']:.4f} | {r['spearman']:.4f} |")
    ratio = costs["ours_flops"] / costs["naslib_flops"]
    lines += ["", f"engine FLOPs / NASLib FLOPs: {ratio.min():.3f} .. {ratio.max():.3f}; "
              f"engine params - NASLib params: {int((costs.ours_params - costs.naslib_params).min())} .. "
              f"{int((costs.ours_params - costs.naslib_params).max())}"]
    return lines, rows


# ---------------------------------------------------------------------------------
# part 2: zero-cost proxies
# ---------------------------------------------------------------------------------
def compute_scores(args, peer: pd.DataFrame, path: Path) -> None:
    import torch

    from nas_engine.data import load_dataset
    from nas_engine.estimators.zero_cost import zero_cost_scores
    from nas_engine.spaces.darts import DartsSpace
    from nas_engine.training import Protocol

    torch.set_num_threads(args.threads)
    space = DartsSpace()
    data = load_dataset("cifar10", root=args.shared, n_train=args.n_train, n_val=0)
    protocol = Protocol(batch_size=BATCH_SIZE, C=C, N=(LAYERS - 2) // 3, device=args.device)
    order = seeded_order(peer, args.seed)
    limits = {FREE: len(order), DATA: args.limit, EXPENSIVE: args.grasp_limit}
    done = set()
    if path.exists():
        done = {(r["compact"], r["proxy"]) for r in csv.DictReader(path.open())}
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["compact", "proxy", "score", "cost_seconds"])
        t0 = time.time()
        for tier in (FREE, DATA, EXPENSIVE):
            limit = len(order) if limits[tier] is None else min(limits[tier], len(order))
            free = tier == FREE
            tier = [p for p in tier if p in args.proxies]
            if not tier:
                continue
            start = 0 if free else min(args.start, limit)
            for i, key in enumerate(order[start:limit], start):
                arch = space.from_compact(key)
                for p in tier:
                    if (key, p) in done:
                        continue
                    t = time.perf_counter()
                    score = zero_cost_scores(space, [arch], data, protocol, proxies=[p], seed=args.seed,
                                             batch_size=BATCH_SIZE if MEASURES[p].uses_data else None)[p][arch.string]
                    w.writerow([key, p, repr(score), f"{time.perf_counter() - t:.4f}"])
                f.flush()
                if (i + 1) % 25 == 0:
                    print(f"{'/'.join(tier)}: {i + 1}/{limit} architectures, {time.time() - t0:.0f} s", flush=True)


def score_lines(scores: pd.DataFrame, peer: pd.DataFrame, args) -> tuple[list[str], list[dict]]:
    lines = [f"## Zero-cost proxies (C={C}, {LAYERS} cells, batch {BATCH_SIZE}, seed {args.seed}, CPU, "
             f"{args.threads} thread)", "",
             "| proxy | n | ρ(ours, NASLib) | ρ(ours, NB301 val acc) | ρ(NASLib, NB301 val acc), same n | "
             "ρ(NASLib, NB301 val acc), all 725 | s per arch |", "|---|---|---|---|---|---|---|"]
    rows = []
    for p in PROXIES:
        mine = scores[scores.proxy == p].drop_duplicates("compact").set_index("compact")
        if len(mine) < 3:
            continue
        theirs = peer.loc[mine.index]
        col = NASLIB_KEY.get(p, p)
        s_ours, s_peer = mine["score"].to_numpy(float), theirs[col].to_numpy(float)
        acc = theirs["val_accuracy"].to_numpy(float)
        r = {"proxy": p, "n": len(mine), "spearman_ours_vs_naslib": rank_corr(s_ours, s_peer),
             "spearman_ours_vs_val_acc": spearman(s_ours, acc), "spearman_naslib_vs_val_acc": spearman(s_peer, acc),
             "spearman_naslib_vs_val_acc_all": spearman(peer[col].to_numpy(float),
                                                        peer["val_accuracy"].to_numpy(float)),
             "ours_nonfinite": int((~np.isfinite(s_ours)).sum()), "mean_seconds": float(mine["cost_seconds"].mean())}
        rows.append(r)
        lines.append(f"| {p} | {r['n']} | {r['spearman_ours_vs_naslib']:.3f} | {r['spearman_ours_vs_val_acc']:.3f} | "
                     f"{r['spearman_naslib_vs_val_acc']:.3f} | {r['spearman_naslib_vs_val_acc_all']:.3f} | "
                     f"{r['mean_seconds']:.2f} |")
    return lines, rows


def summarize(peer: pd.DataFrame, out: Path, args) -> None:
    lines, rows = [], []
    if (out / "costs.csv").exists():
        part, r = cost_lines(pd.read_csv(out / "costs.csv"))
        lines += part + [""]
        rows += [{"part": "costs", **x} for x in r]
    if (out / "scores.csv").exists():
        part, r = score_lines(pd.read_csv(out / "scores.csv"), peer, args)
        lines += part + [""]
        rows += [{"part": "zero-cost", **x} for x in r]
    pd.DataFrame(rows).to_csv(out / "summary.csv", index=False)
    (out / "summary.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--out", default=None, help="results directory (default: a new one, "
                   "reproduce/results/darts_peer_check-<UTC time>); an existing non-empty one needs --resume")
    p.add_argument("--resume", action="store_true", help="continue in an existing --out (skips what is done)")
    p.add_argument("--summarize", action="store_true", help="only rewrite the summary from the CSVs in --out")
    p.add_argument("--proxies", default=",".join(PROXIES))
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="data-dependent proxies on the first N architectures of the seeded order (default: all 725)")
    p.add_argument("--grasp-limit", type=int, default=None, metavar="N",
                   help="grasp on the first N architectures of the seeded order (default: --limit)")
    p.add_argument("--start", type=int, default=0, metavar="N",
                   help="data-dependent proxies and grasp from the N-th architecture of the seeded order on "
                   "(to split the work between processes writing to different --out directories)")
    p.add_argument("--no-costs", action="store_true", help="skip part 1 (params and FLOPs)")
    p.add_argument("--n-train", type=int, default=10000, help="training pool the minibatch is drawn from")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    args.proxies = [x for x in args.proxies.split(",") if x]
    unknown = [x for x in args.proxies if x not in PROXIES]
    if unknown:
        p.error(f"unknown proxies {unknown}; known: {', '.join(PROXIES)}")
    if args.grasp_limit is None:
        args.grasp_limit = args.limit
    shared = Path(args.shared)
    if not shared.joinpath(*PEER_FILE).exists():
        p.error(f"needs {shared.joinpath(*PEER_FILE)} (pass --shared)")
    out = Path(args.out) if args.out else ROOT / "reproduce" / "results" / (
        "darts_peer_check-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    if out.exists() and any(out.iterdir()) and not (args.resume or args.summarize):
        p.error(f"{out} exists and is not empty; pass --resume to continue there, --summarize to rebuild its "
                "summary, or another --out")
    if args.summarize and not out.exists():
        p.error(f"--summarize: {out} does not exist")
    out.mkdir(parents=True, exist_ok=True)
    peer = load_peer(shared)
    if not args.summarize:
        if not args.no_costs and not (out / "costs.csv").exists():
            t = time.time()
            compute_costs(peer, out / "costs.csv")
            print(f"costs: {len(peer)} architectures, {time.time() - t:.0f} s", flush=True)
        compute_scores(args, peer, out / "scores.csv")
    summarize(peer, out, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
