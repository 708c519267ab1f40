"""The ``nas-engine`` command.

    nas-engine list [--json]
    nas-engine show DIR [--top N] [--json] [--csv PATH]
    nas-engine migrate DIR
    nas-engine search --strategy S --space SP --estimator E --data D [--data-root PATH]
                      --evaluations N --epochs T [--out DIR] [--seed K] [--json]
                      [--executor inline|processes|ray] [--workers W] ...

``--strategy-arg KEY=VALUE`` / ``--estimator-arg KEY=VALUE`` pass constructor
arguments to the plugins (values are parsed as JSON when possible, e.g.
``--strategy-arg population_size=20``, ``--estimator-arg gamma=0.9``);
``--executor-arg`` does the same for the executor (e.g. ``--executor ray
--executor-arg address=auto --executor-arg num_gpus=0.5``, ``--executor
processes --executor-arg max_memory_mb=4000``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

# the TSE-paper estimators (mirrors nas_engine.correlate.DEFAULT_ESTIMATORS; kept here so parsing stays light)
_DEFAULT_ESTIMATORS = ("tse", "tse-e", "tse-ema", "tlmini", "sovl", "valacc")


def _kv(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    if not key.isidentifier():
        raise argparse.ArgumentTypeError(f"invalid argument name {key!r} in {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _add_training_args(p: argparse.ArgumentParser) -> None:
    """Data and protocol options shared by ``search`` and ``correlate``."""
    p.add_argument("--data", default="digits",
                   help="dataset: a registered name (digits, cifar10, cifar100, imagenet16-120, synthetic-cifar10, "
                        "...: see `nas-engine list`), or NAME:PATH to read it from PATH "
                        "(npz:FILE.npz, imagefolder:DIR)")
    p.add_argument("--data-root", default=None, help="directory of the dataset files")
    p.add_argument("--data-arg", action="append", type=_kv, default=[], metavar="KEY=VALUE",
                   help="a dataset's own option, e.g. labels=coarse for cifar100, flip=true for imagefolder")
    p.add_argument("--download", action="store_true", help="download the dataset if missing")
    p.add_argument("--n-train", type=int, default=None, help="class-balanced training subset size")
    p.add_argument("--n-val", type=int, default=None, help="validation images held out of training")
    p.add_argument("--resolution", type=int, default=None, help="resize images to this side length")
    p.add_argument("--side", type=int, default=None,
                   help="synthetic-cifar10 only: generate side x side images (default 32, the paper's)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs T per candidate (estimator budget)")
    p.add_argument("--schedule-epochs", type=int, default=None,
                   help="length T_end of the training schedule (cosine); default max(200, T)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--C", type=int, default=None, help="network width (initial channels)")
    p.add_argument("--N", type=int, default=None, help="cells per stage")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--amp", choices=["bf16", "fp16"], default=None)


def _parser() -> argparse.ArgumentParser:
    from .executors import available_executors  # light: standard library only

    p = argparse.ArgumentParser(prog="nas-engine", description="Neural architecture search engine.")
    sub = p.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("list", help="list the registered plugins per kind")
    ls.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser("search", help="run an architecture search")
    s.add_argument("--strategy", default="regularized-evolution")
    s.add_argument("--space", default="nb201")
    s.add_argument("--estimator", default="tse-ema")
    s.add_argument("--strategy-arg", action="append", type=_kv, default=[], metavar="KEY=VALUE")
    s.add_argument("--estimator-arg", action="append", type=_kv, default=[], metavar="KEY=VALUE")
    s.add_argument("--evaluations", type=int, default=None, help="budget: number of evaluations")
    s.add_argument("--budget-epochs", type=float, default=None, help="budget: total training epochs")
    s.add_argument("--budget-seconds", type=float, default=None, help="budget: wall-clock seconds")
    s.add_argument("--budget-cost-seconds", type=float, default=None,
                   help="budget: charged training seconds (sum of the evaluations' costs)")
    _add_training_args(s)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--executor", default="inline", choices=available_executors(),
                   help="where candidates are evaluated: this process, local worker processes, or Ray")
    s.add_argument("--workers", type=int, default=None,
                   help="evaluations at once (processes: default one per CPU; ray: what the cluster fits)")
    s.add_argument("--executor-arg", action="append", type=_kv, default=[], metavar="KEY=VALUE")
    s.add_argument("--out", default=None, help="store directory (results + resume)")
    s.add_argument("--top", type=int, default=10, help="rows of the results table to print")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--quiet", action="store_true", help="no progress bar")

    c = sub.add_parser("correlate", help="rank correlation of estimators vs ground truth (TSE paper Fig. 1)")
    c.add_argument("--space", default="nb201")
    c.add_argument("--archs", type=int, default=20, help="number of distinct architectures to sample")
    c.add_argument("--estimators", default=",".join(_DEFAULT_ESTIMATORS),
                   help="comma-separated curve estimators scored at every budget t=1..T, and zero-cost "
                        "proxies (synflow, snip, grasp, fisher, grad-norm, plain, jacov, nwot, params, flops) "
                        "scored once at initialisation")
    c.add_argument("--truth", required=True,
                   help="ground truth: an NB201 CSV (cifar10_test_acc) or an engine JSONL table")
    _add_training_args(c)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", required=True, help="output directory (store, criteria.csv, figure)")
    c.add_argument("--quiet", action="store_true", help="no progress bar")

    sh = sub.add_parser("show", help="summary of a search's store (running or finished); reads without writing")
    sh.add_argument("store", metavar="DIR", help="the store directory (--out of a search)")
    sh.add_argument("--top", type=int, default=10, help="rows of the results table to print")
    sh.add_argument("--json", action="store_true", help="machine-readable output (strict JSON)")
    sh.add_argument("--csv", default=None, metavar="PATH",
                    help="also write every evaluation as CSV to PATH ('-': standard output, instead of the table)")

    mg = sub.add_parser("migrate", help="convert a JSONL store of an earlier version into a database store "
                                        "(the old files move to DIR/legacy-jsonl)")
    mg.add_argument("store", metavar="DIR")

    b = sub.add_parser("bench", help="tabular benchmarks")
    bsub = b.add_subparsers(dest="bench_command", required=True)
    bb = bsub.add_parser("build", help="train architectures for a whole schedule and write a table")
    bb.add_argument("--space", default="nb201")
    bb.add_argument("--archs", type=int, required=True, help="number of distinct architectures to sample")
    _add_training_args(bb)
    bb.add_argument("--seed", type=int, default=0)
    bb.add_argument("--out", required=True, help="output directory (store + table.jsonl)")
    bb.add_argument("--quiet", action="store_true", help="no progress bar")
    bt = bsub.add_parser("table", help="write DIR/table.jsonl from the architectures a (stopped or running) "
                                       "build in DIR has finished")
    bt.add_argument("--out", required=True, help="the build's output directory")

    t = sub.add_parser("train", help="train one architecture to completion (checkpointed every epoch, resumable) "
                                     "and export it (docs/final-training.md)")
    which = t.add_mutually_exclusive_group(required=True)
    which.add_argument("--arch", default=None, help="the architecture's string (in --space)")
    which.add_argument("--from", dest="from_store", default=None, metavar="STORE_DIR",
                       help="a search's store directory: train its --rank-th best architecture, in its space, "
                            "with its training recipe where no option here overrides it")
    t.add_argument("--space", default=None, help="the space of --arch (default nb201)")
    t.add_argument("--rank", type=int, default=None,
                   help="with --from: 1 is the best distinct architecture (default), 2 the next, ...")
    _add_training_args(t)
    for action in t._actions:
        if action.dest == "epochs":
            action.help = "epochs E to train: the whole (cosine) schedule; required"
        elif action.dest == "schedule_epochs":
            action.help = "must equal --epochs (or be left out): the schedule is trained to its end"
    t.add_argument("--seed", type=int, default=0, help="network initialisation, data order and data split")
    t.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's); part of the checkpoint's configuration")
    t.add_argument("--out", required=True, metavar="DIR",
                   help="output directory: checkpoint.pt (resume: the same command again), model.pt, model.pt2, "
                        "summary.json")
    t.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    return p


def _protocol(args, T: int):
    from .training import Protocol

    kw = {k: v for k, v in {"batch_size": args.batch_size, "lr": args.lr, "C": args.C, "N": args.N,
                            "amp": args.amp}.items() if v is not None}
    return Protocol(epochs=args.schedule_epochs or max(200, T), device=args.device, **kw)


def _data(args):
    from .data import load_dataset

    return load_dataset(args.data, args.data_root, download=args.download, n_train=args.n_train,
                        n_val=args.n_val, resolution=args.resolution, seed=args.seed,
                        **({} if args.side is None else {"side": args.side}), **dict(args.data_arg))


def _cmd_correlate(args) -> int:
    from pathlib import Path

    from .correlate import collect_curves, correlate, plot_correlation, sample_architectures
    from .costs import model_costs
    from .estimators.zero_cost import MEASURES, zero_cost_scores
    from .registry import spaces
    from .spaces.base import Enumerable

    if args.epochs is None:
        raise ValueError("correlate needs --epochs T (the longest budget to score)")
    space = spaces.create(args.space)
    truth_path = Path(args.truth)
    if truth_path.suffix == ".csv":
        from .benchmarks import NB201Table

        table = NB201Table(truth_path)
    else:
        from .benchmarks import JsonlCurveTable

        table = JsonlCurveTable(truth_path)
    truth = table.ground_truth()
    names = [e.strip() for e in args.estimators.split(",") if e.strip()]
    data, protocol = _data(args), _protocol(args, args.epochs)
    covers_space = isinstance(space, Enumerable) and len(truth) >= len(space)
    archs = sample_architectures(space, args.archs, seed=args.seed, among=None if covers_space else sorted(truth))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    curves = collect_curves(space, archs, epochs=args.epochs, data=data, protocol=protocol, seed=args.seed,
                            store=str(out / "store"), progress=not args.quiet)
    costs = model_costs(space, archs, num_classes=data.num_classes, in_channels=data.in_channels,
                        resolution=data.resolution, **protocol.size)
    baselines = {k: {a: c[k] for a, c in costs.items()} for k in ("params", "flops")}
    zero_cost = [n for n in names if n in MEASURES]
    if zero_cost:
        baselines.update(zero_cost_scores(space, archs, data, protocol, proxies=zero_cost, seed=args.seed))
    names = [n for n in names if n not in MEASURES]
    df = correlate(curves, truth, estimators=names, baselines=baselines)
    df.to_csv(out / "criteria.csv", index=False)
    plot_correlation(df, str(out / "spearman_vs_budget.png"))
    print(df.pivot(index="epochs", columns="estimator", values="spearman").round(3).to_string())
    print(f"\nwrote {out / 'criteria.csv'} and {out / 'spearman_vs_budget.png'}")
    return 0


def _cmd_bench(args) -> int:
    from .benchmarks import build_table, table_from_store
    from .registry import spaces

    if args.bench_command == "table":
        table = table_from_store(args.out)
        print(f"wrote {len(table)} finished architectures to {table.path}")
        return 0

    if args.epochs is None:
        raise ValueError("bench build needs --epochs T_end (the whole schedule every architecture is trained for)")
    if args.schedule_epochs not in (None, args.epochs):
        raise ValueError(f"bench build trains whole schedules: --schedule-epochs {args.schedule_epochs} "
                         f"must equal --epochs {args.epochs} (or be left out)")
    args.schedule_epochs = args.epochs
    table = build_table(spaces.create(args.space), _data(args), _protocol(args, args.epochs), archs=args.archs,
                        out=args.out, seed=args.seed, progress=not args.quiet)
    accs = sorted(table.final_accuracy(a) for a in table.archs())
    print(f"wrote {len(table)} architectures x {args.epochs} epochs to {table.path}; "
          f"final accuracy min/median/max {accs[0]:.4f}/{accs[len(accs) // 2]:.4f}/{accs[-1]:.4f}")
    return 0


def _cmd_train(args) -> int:
    from .final import train_final
    from .registry import spaces
    from .training import Protocol, TrainingFailed

    if args.epochs is None:
        raise ValueError("train needs --epochs E (the whole schedule the architecture is trained for)")
    if args.schedule_epochs not in (None, args.epochs):
        raise ValueError(f"train trains whole schedules: --schedule-epochs {args.schedule_epochs} must equal "
                         f"--epochs {args.epochs} (or be left out)")
    args.schedule_epochs = args.epochs
    if args.from_store is not None:
        from .results import SearchResult

        if args.space is not None:
            raise ValueError("--space goes with --arch; with --from the space is the stored search's")
        result = SearchResult.load(args.from_store)
        ranked = result.ranked()
        rank = 1 if args.rank is None else args.rank
        if not ranked:
            raise ValueError(f"--from {args.from_store}: the store holds no successful evaluation to train")
        if not 1 <= rank <= len(ranked):
            raise ValueError(f"--rank {rank}: the store {args.from_store} ranks {len(ranked)} distinct "
                             f"architecture(s); expected a rank in 1..{len(ranked)}")
        space, arch = result.space, ranked[rank - 1].arch
        stored = dict((result.config or {}).get("protocol") or {})
        kw = {k: v for k, v in {"batch_size": args.batch_size, "lr": args.lr, "C": args.C, "N": args.N,
                                "amp": args.amp}.items() if v is not None}
        protocol = Protocol.from_dict({**stored, **kw, "epochs": args.epochs, "device": args.device})
        source = f"rank {rank} of {args.from_store} (score {ranked[rank - 1].score:.6g})"
    else:
        if args.rank is not None:
            raise ValueError("--rank goes with --from STORE_DIR, not with --arch")
        space = spaces.create(args.space or "nb201")
        arch = space.from_string(args.arch)
        protocol = _protocol(args, args.epochs)
        source = f"space {space.name}"
    data = _data(args)
    if not args.quiet:
        print(f"training {arch.string} ({source}) on {data.fingerprint()} for {args.epochs} epochs "
              f"(C={protocol.C}, N={protocol.N}, batch {protocol.batch_size}, lr {protocol.lr:g}) into {args.out}",
              flush=True)
    try:
        final = train_final(space, arch, data, protocol, out=args.out, seed=args.seed, threads=args.threads,
                            progress=not args.quiet)
    except TrainingFailed as exc:
        print(f"nas-engine: training failed: {exc}; the checkpoint of the last finished epoch is in {args.out}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"nas-engine: interrupted; run the same command again to resume from the checkpoint in {args.out}",
              file=sys.stderr)
        return 130
    acc = final.final_test_acc
    print(("no test split: final validation accuracy "
           f"{final.curve.val_acc[-1]:.4f}" if acc is None and final.curve.val_acc else
           "no test split" if acc is None else f"final test accuracy {acc:.4f}")
          + f" after {final.epochs} epochs ({final.seconds:.1f} s of training"
          + (f", resumed at epoch {final.resumed_from}" if final.resumed_from else "") + ")")
    if final.export_error is not None:
        print(f"export failed ({final.export_error}); model.pt holds the trained weights")
    print("wrote " + ", ".join(str(p) for p in final.files.values()))
    return 0


def _cmd_list(args) -> int:
    from .registry import list_plugins

    plugins = list_plugins()
    if args.json:
        print(json.dumps(plugins, indent=2))
    else:
        for kind, names in plugins.items():
            print(f"{kind}: {', '.join(names)}")
    return 0


def _cmd_search(args) -> int:
    from .executors import create_executor
    from .registry import create
    from .search import Budget, Search

    est_kw = dict(args.estimator_arg)
    if args.epochs is not None:
        est_kw["epochs"] = args.epochs
    strategy = create("strategy", args.strategy, **dict(args.strategy_arg))
    estimator = create("estimator", args.estimator, **est_kw)
    protocol = _protocol(args, getattr(estimator, "epochs", 1))
    data = _data(args)
    if all(v is None for v in (args.evaluations, args.budget_epochs, args.budget_seconds, args.budget_cost_seconds)):
        args.evaluations = 10
    budget = Budget(evaluations=args.evaluations, epochs=args.budget_epochs, seconds=args.budget_seconds,
                    cost_seconds=args.budget_cost_seconds)
    executor = create_executor(args.executor, args.workers, **dict(args.executor_arg))
    search = Search(strategy, args.space, estimator, data=data, protocol=protocol, budget=budget,
                    seed=args.seed, store=args.out, executor=executor, progress=not (args.quiet or args.json))
    result = search.run()
    return _report(result, args, label=repr(estimator), out=args.out)


def _report(result, args, *, label: str, out: str | None = None, extra: dict[str, Any] | None = None) -> int:
    """Print a search result as a table or (``--json``) strict JSON; 1 when no evaluation succeeded.

    Both outputs, and ``--csv``, start from the one serialisation of an
    evaluation (:meth:`~nas_engine.results.Evaluation.to_row`).
    """
    best = result.best
    status = 0 if best is not None else 1
    if getattr(args, "csv", None):
        df = result.to_dataframe()
        if args.csv == "-":
            df.to_csv(sys.stdout, index=False)
            return status
        df.to_csv(args.csv, index=False)
    if args.json:
        print(json.dumps({
            **(extra or {}),
            "config": result.config,
            "best": None if best is None else {**best.to_row(), "canonical": result.space.canonical(best.arch)},
            "evaluations": [e.to_row() for e in result.history],
            "failed": sum(not e.ok for e in result.history),
            "seconds": result.seconds, "setup_seconds": result.setup_seconds,
            "total_cost_seconds": result.total_cost_seconds,
        }, indent=2, allow_nan=False))
        return status
    df = result.to_dataframe()
    import pandas as pd

    if len(df):
        with pd.option_context("display.max_colwidth", 100, "display.width", 200):
            cols = ["index", "arch", "score", "status", "cost_seconds", "cached"]
            print(df.sort_values("score", ascending=False)[cols].head(args.top).to_string(index=False))
    n_failed = int((df["status"] != "ok").sum())
    print(f"\n{len(df)} evaluations ({n_failed} failed) in {result.seconds:.1f} s; "
          f"training time {result.total_cost_seconds:.1f} s")
    if best is None:
        print("no successful evaluation")
        return 1
    print(f"best: {best.arch.string}  score={best.score:.6g}  ({label})")
    if out:
        print(f"results stored in {out}")
    return 0


def _cmd_show(args) -> int:
    from .results import SearchResult
    from .store import RunStore

    store = RunStore(args.store)
    result = SearchResult.load(args.store)
    holder = store.holder()
    running = ("running: " + (f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
                              if holder else "holder unknown")) if holder is not None else "not running"
    cfg = result.config or {}

    def short(v):
        if isinstance(v, (list, tuple, dict)) and len(v) > 3:
            return f"<{len(v)} items>"
        text = repr(v)
        return text if len(text) <= 40 else text[:37] + "..."

    def plugin(c):
        if isinstance(c, dict):
            params = ", ".join(f"{k}={short(v)}" for k, v in c.get("params", {}).items())
            return f"{c.get('name')}({params})"
        return str(c)

    label = plugin(cfg.get("estimator"))
    if not args.json and args.csv != "-":
        legacy = " (JSONL store of an earlier version, read-only)" if store.is_legacy else ""
        print(f"store {args.store}{legacy}: {running}")
        print(f"strategy {plugin(cfg.get('strategy'))}; space {plugin(cfg.get('space'))}; estimator {label}; "
              f"seed {cfg.get('seed')}" + (f"; execution {cfg['execution']}" if cfg.get("execution") else ""))
        print()
    extra = {"store": str(args.store), "running": holder is not None,
             "holder": holder or None, "legacy": store.is_legacy}
    return _report(result, args, label=label, extra=extra)


def _cmd_migrate(args) -> int:
    from .store import migrate

    store = migrate(args.store)
    print(f"converted {args.store} into {store.database} ({len(store.records())} evaluations); "
          f"the old files are in {store.path / 'legacy-jsonl'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"list": _cmd_list, "search": _cmd_search, "correlate": _cmd_correlate, "show": _cmd_show,
                "migrate": _cmd_migrate, "bench": _cmd_bench, "train": _cmd_train}[args.command](args)
    except (ValueError, TypeError, LookupError, OSError, ImportError) as exc:
        print(f"nas-engine: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nas-engine: interrupted; finished evaluations are in the store (if --out was given)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
