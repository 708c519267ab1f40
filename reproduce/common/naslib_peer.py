"""The peer checks' shared machinery: our network sizes and zero-cost scores vs NASLib's recorded values.

NASLib's zero-cost benchmark files (NAS-Bench-Suite-Zero; the shared
``peer-reference/naslib_zc_*.json``) hold, per architecture of a space on
CIFAR-10, NASLib's ``params`` and ``flops`` (millions), its zero-cost proxy
scores and the benchmark's ``val_accuracy``.  A space's peer check
(``python -m reproduce.darts_peer_check``, ``python -m reproduce.nb101_peer_check``)
calls :func:`main` with its space's :class:`Target` (:mod:`reproduce.common.darts_peer`,
:mod:`reproduce.common.nb101_peer`), which writes

* ``costs.csv``: NASLib's params / FLOPs, ours as the engine counts them
  (:func:`nas_engine.costs.count_params`, every parameter;
  :func:`nas_engine.costs.count_flops`, torch's counter, 2 FLOPs per
  multiply-add, convs and matmuls only) and ours under NASLib's definition
  (:func:`torchstat_counts`);
* ``scores.csv``: our zero-cost proxies
  (:func:`nas_engine.estimators.zero_cost.zero_cost_scores`, one fixed
  minibatch of 32 un-augmented images from the shared ``data_batch_1``;
  NASLib's batch is 32 too) at NASLib's network size.  Architectures are
  visited in the target's seeded order and the proxies in tiers (data-free on
  all, then the data-dependent ones on the first ``--limit``, then grasp on
  the first ``--grasp-limit``), so an interrupted run leaves each proxy scored
  on a random subset; ``--resume`` continues;
* ``summary.md`` / ``summary.csv``: agreement tables (``--summarize`` rebuilds
  them from the CSVs alone).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas_engine.criteria import rank_agreement, spearman
from nas_engine.estimators.zero_cost import MEASURES

#: our proxy name -> NASLib's key
NASLIB_KEY = {"grad-norm": "grad_norm"}
FREE = ("synflow", "params", "flops")
DATA = ("nwot", "jacov", "snip", "grad-norm", "fisher", "plain")
EXPENSIVE = ("grasp",)
PROXIES = FREE + DATA + EXPENSIVE
COST_COLUMNS = ["naslib_params", "naslib_flops", "ours_params", "ours_flops", "ours_params_naslib_def",
                "ours_flops_naslib_def"]
BATCH_SIZE = 32
RESOLUTION, NUM_CLASSES = 32, 10


@dataclass
class Target:
    """One space's peer check: where NASLib's values are and how to build our network at NASLib's size."""

    name: str                                   #: results directory prefix, e.g. "darts_peer_check"
    peer_file: tuple[str, ...]                  #: path under the shared data directory
    space: Any                                  #: the engine's search space
    decode: Callable[[str], Any]                #: NASLib key -> Architecture
    build_size: dict[str, int]                  #: NASLib's size in the space's own size parameters ({}: its default)
    size_text: str                              #: e.g. "C=32, 8 cells"
    truth_text: str                             #: e.g. "NB301 val acc"
    naslib_counts: Callable[[Any], tuple[int, int]]  #: (params, FLOPs) of a built network, NASLib's definition
    order: Callable[[pd.DataFrame, int], list[str]] = field(default=None)  # type: ignore[assignment]

    def __post_init__(self):
        if self.order is None:
            self.order = seeded_order


def load_peer(shared: Path, peer_file: Sequence[str]) -> pd.DataFrame:
    """NASLib's architectures on CIFAR-10: index = NASLib's key text, one column per score, ``val_accuracy``."""
    raw = json.loads(Path(shared).joinpath(*peer_file).read_text())
    while "cifar10" not in raw:  # NB101's file nests the dataset under the space's name
        if len(raw) != 1:
            raise ValueError(f"{Path(shared).joinpath(*peer_file)}: no 'cifar10' entry, found {sorted(raw)}")
        raw = next(iter(raw.values()))
    rows = {}
    for key, entry in raw["cifar10"].items():
        rows[key] = {k: (v["score"] if isinstance(v, dict) else v) for k, v in entry.items()
                     if k not in ("arch", "idx")}
        if "idx" in entry:
            rows[key]["idx"] = int(entry["idx"])
    return pd.DataFrame.from_dict(rows, orient="index")


def seeded_order(peer: pd.DataFrame, seed: int) -> list[str]:
    return list(np.random.default_rng(seed).permutation(list(peer.index)))


# ---------------------------------------------------------------------------------
# part 1: params and FLOPs
# ---------------------------------------------------------------------------------
def torchstat_counts(model, resolution: int = RESOLUTION, *, unparametrised_bn=frozenset(),
                     bn_after_pool: bool = False) -> tuple[int, int]:
    """(params, FLOPs) of ``model`` by the rules of tensorwatch's ``ModelStats`` (torchstat), NASLib's counter.

    One ``1x3xRxR`` random input in eval mode; each leaf module that runs
    counts its parameters once and its FLOPs: conv and linear
    multiply-accumulates (no factor 2, plus one per output element for a
    conv bias), one per element for ReLU, two per element for an affine
    BatchNorm, ``k*k`` per output element of a pooling, ``(h+1)(w+1)`` per
    channel for an adaptive average pooling.  ``unparametrised_bn``: our
    BatchNorms that NASLib's network has as ``affine=False`` ones (no
    parameters, one FLOP per element); ``bn_after_pool``: NASLib's network
    has a non-affine BatchNorm after every pooling op (one FLOP per output
    element more).
    """
    import torch
    from torch import nn

    leaves = [m for m in model.modules() if not list(m.children())]
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
            f = x.numel() * (1 if m in unparametrised_bn else 2)
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            (k, _), (s, _), (p, _) = pair(m.kernel_size), pair(m.stride), pair(m.padding)
            ceil = getattr(m, "ceil_mode", False)
            rnd = math.ceil if ceil else math.floor
            ow = rnd((x.shape[3] + 2 * p - k) / float(s) + 1)
            oh = rnd((x.shape[2] + 2 * p - k) / float(s) + 1)
            f = x.shape[0] * x.shape[1] * ow * oh * k * k + (out.numel() if bn_after_pool else 0)
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
        found[m] = (0 if m in unparametrised_bn else sum(q.numel() for q in m.parameters()), int(f))

    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.rand(1, 3, resolution, resolution))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return sum(p for p, _ in found.values()), sum(f for _, f in found.values())


def arch_costs(target: Target, key: str) -> dict[str, int]:
    """Ours (engine's counters and NASLib's definition) for one architecture at NASLib's size."""
    import torch

    from nas_engine.costs import count_flops, count_params

    torch.manual_seed(0)
    model = target.space.build(target.decode(key), NUM_CLASSES, **target.build_size)
    params_nd, flops_nd = target.naslib_counts(model)
    return {"ours_params": count_params(model),
            "ours_flops": count_flops(model, torch.zeros(1, 3, RESOLUTION, RESOLUTION)),
            "ours_params_naslib_def": params_nd, "ours_flops_naslib_def": flops_nd}


def compute_costs(target: Target, peer: pd.DataFrame, path: Path, archs=None) -> pd.DataFrame:
    rows = []
    for key in (archs if archs is not None else peer.index):
        rows.append({"compact": key, "naslib_params": int(round(peer.at[key, "params"] * 1e6)),
                     "naslib_flops": int(round(peer.at[key, "flops"] * 1e6)), **arch_costs(target, key)})
    df = pd.DataFrame(rows, columns=["compact", *COST_COLUMNS])
    df.to_csv(path, index=False)
    return df


def cost_lines(target: Target, costs: pd.DataFrame) -> tuple[list[str], list[dict]]:
    lines = [f"## Params and FLOPs ({len(costs)} architectures; {target.size_text}, 32x32, 10 classes)", "",
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
                 "spearman": rank_agreement(mine, theirs)}
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
@contextmanager
def score_rows(path: Path, key: str) -> Iterator[tuple[set[tuple[str, str]], Any, Any]]:
    """A resumable scores file: ``(done, writer, file)``, the ``(key, proxy)`` pairs ``path`` already holds, a
    CSV writer appending to it (the header ``key, proxy, score, cost_seconds`` written when the file is new)
    and the open file (to flush)."""
    done = {(r[key], r["proxy"]) for r in csv.DictReader(path.open())} if path.exists() else set()
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow([key, "proxy", "score", "cost_seconds"])
        yield done, w, f


def compute_scores(args, target: Target, peer: pd.DataFrame, path: Path) -> None:
    import torch

    from nas_engine.data import load_dataset
    from nas_engine.estimators.zero_cost import zero_cost_scores
    from nas_engine.training import Protocol

    torch.set_num_threads(args.threads)
    data = load_dataset("cifar10", root=args.shared, n_train=args.n_train, n_val=0)
    protocol = Protocol(batch_size=BATCH_SIZE, device=args.device, size=target.build_size)
    order = target.order(peer, args.seed)
    limits = {FREE: len(order), DATA: args.limit, EXPENSIVE: args.grasp_limit}
    with score_rows(path, "compact") as (done, w, f):
        t0 = time.time()
        for tier in (FREE, DATA, EXPENSIVE):
            limit = len(order) if limits[tier] is None else min(limits[tier], len(order))
            free = tier == FREE
            tier = [p for p in tier if p in args.proxies]
            if not tier:
                continue
            start = 0 if free else min(args.start, limit)
            for i, key in enumerate(order[start:limit], start):
                arch = target.decode(key)
                for p in tier:
                    if (key, p) in done:
                        continue
                    t = time.perf_counter()
                    score = zero_cost_scores(target.space, [arch], data, protocol, proxies=[p], seed=args.seed,
                                             batch_size=BATCH_SIZE if MEASURES[p].uses_data else None)[p][arch.string]
                    w.writerow([key, p, repr(score), f"{time.perf_counter() - t:.4f}"])
                f.flush()
                if (i + 1) % 25 == 0:
                    print(f"{'/'.join(tier)}: {i + 1}/{limit} architectures, {time.time() - t0:.0f} s", flush=True)


def score_lines(target: Target, scores: pd.DataFrame, peer: pd.DataFrame, args) -> tuple[list[str], list[dict]]:
    lines = [f"## Zero-cost proxies ({target.size_text}, batch {BATCH_SIZE}, seed {args.seed}, CPU, "
             f"{args.threads} thread)", "",
             f"| proxy | n | ρ(ours, NASLib) | ρ(ours, {target.truth_text}) | ρ(NASLib, {target.truth_text}), same n | "
             f"ρ(NASLib, {target.truth_text}), all {len(peer)} | s per arch |", "|---|---|---|---|---|---|---|"]
    rows = []
    for p in PROXIES:
        mine = scores[scores.proxy == p].drop_duplicates("compact").set_index("compact")
        if len(mine) < 3:
            continue
        theirs = peer.loc[mine.index]
        col = NASLIB_KEY.get(p, p)
        s_ours = mine["score"].to_numpy(float)
        acc = theirs["val_accuracy"].to_numpy(float)
        nan = math.nan
        r = {"proxy": p, "n": len(mine), "spearman_ours_vs_naslib": nan,
             "spearman_ours_vs_val_acc": spearman(s_ours, acc), "spearman_naslib_vs_val_acc": nan,
             "spearman_naslib_vs_val_acc_all": nan,
             "ours_nonfinite": int((~np.isfinite(s_ours)).sum()), "mean_seconds": float(mine["cost_seconds"].mean())}
        if col in peer.columns:  # else a proxy the peer's file does not record
            s_peer = theirs[col].to_numpy(float)
            r.update(spearman_ours_vs_naslib=rank_agreement(s_ours, s_peer),
                     spearman_naslib_vs_val_acc=spearman(s_peer, acc),
                     spearman_naslib_vs_val_acc_all=spearman(peer[col].to_numpy(float),
                                                             peer["val_accuracy"].to_numpy(float)))
        rows.append(r)

        def fmt(v):
            return "—" if math.isnan(v) else f"{v:.3f}"

        lines.append(f"| {p} | {r['n']} | {fmt(r['spearman_ours_vs_naslib'])} | {r['spearman_ours_vs_val_acc']:.3f} | "
                     f"{fmt(r['spearman_naslib_vs_val_acc'])} | {fmt(r['spearman_naslib_vs_val_acc_all'])} | "
                     f"{r['mean_seconds']:.2f} |")
    return lines, rows


def summarize(target: Target, peer: pd.DataFrame, out: Path, args, extra: Callable | None = None) -> None:
    lines, rows = [], []
    if (out / "costs.csv").exists():
        part, r = cost_lines(target, pd.read_csv(out / "costs.csv"))
        lines += part + [""]
        rows += [{"part": "costs", **x} for x in r]
    if (out / "scores.csv").exists():
        part, r = score_lines(target, pd.read_csv(out / "scores.csv"), peer, args)
        lines += part + [""]
        rows += [{"part": "zero-cost", **x} for x in r]
    if extra is not None:
        part, r = extra(peer, out, args)
        lines += part + [""]
        rows += r
    pd.DataFrame(rows).to_csv(out / "summary.csv", index=False)
    (out / "summary.md").write_text("\n".join(lines))
    print("\n".join(lines))


def parser(target: Target, doc: str, default_shared: Path) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", default=str(default_shared))
    p.add_argument("--out", default=None, help=f"results directory (default: a new one, "
                   f"reproduce/results/{target.name}-<UTC time>); an existing non-empty one needs --resume")
    p.add_argument("--resume", action="store_true", help="continue in an existing --out (skips what is done)")
    p.add_argument("--summarize", action="store_true", help="only rewrite the summary from the CSVs in --out")
    p.add_argument("--proxies", default=",".join(PROXIES))
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="data-dependent proxies on the first N architectures of the seeded order (default: all)")
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
    return p


def main(target: Target, doc: str, default_shared: Path, results: Path, argv=None,
         extra: Callable | None = None) -> int:
    p = parser(target, doc, default_shared)
    args = p.parse_args(argv)
    args.proxies = [x for x in args.proxies.split(",") if x]
    unknown = [x for x in args.proxies if x not in PROXIES]
    if unknown:
        p.error(f"unknown proxies {unknown}; known: {', '.join(PROXIES)}")
    if args.grasp_limit is None:
        args.grasp_limit = args.limit
    shared = Path(args.shared)
    if not shared.joinpath(*target.peer_file).exists():
        p.error(f"needs {shared.joinpath(*target.peer_file)} (pass --shared)")
    out = Path(args.out) if args.out else results / (target.name + "-" + time.strftime("%Y%m%dT%H%M%SZ",
                                                                                        time.gmtime()))
    if out.exists() and any(out.iterdir()) and not (args.resume or args.summarize):
        p.error(f"{out} exists and is not empty; pass --resume to continue there, --summarize to rebuild its "
                "summary, or another --out")
    if args.summarize and not out.exists():
        p.error(f"--summarize: {out} does not exist")
    out.mkdir(parents=True, exist_ok=True)
    peer = load_peer(shared, target.peer_file)
    if not args.summarize:
        if not args.no_costs and not (out / "costs.csv").exists():
            t = time.time()
            compute_costs(target, peer, out / "costs.csv")
            print(f"costs: {len(peer)} architectures, {time.time() - t:.0f} s", flush=True)
        compute_scores(args, target, peer, out / "scores.csv")
    summarize(target, peer, out, args, extra)
    return 0
