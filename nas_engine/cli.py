"""The ``nas-engine`` command.

    nas-engine --version
    nas-engine list [--json]
    nas-engine show DIR [--top N] [--json] [--csv PATH]
    nas-engine report DIR [--out PATH] [--truth TABLE] [--top K]
    nas-engine diagnose DIR --truth TABLE [--out PATH] [--complexity params|flops] [--groups G] [--top K]
    nas-engine migrate DIR
    nas-engine search --strategy S --space SP --estimator E --data D [--data-root PATH]
                      --evaluations N --epochs T [--protocol small|nb201] [--size KEY=VALUE] [--out DIR]
                      [--seed K] [--json] [--executor auto|inline|processes|ray] [--workers W] ...

The CLI only parses, calls the library and prints: every default is the
library's (``nas-engine search`` alone is ``Search(...)`` with its defaults:
the protocol preset :data:`nas_engine.training.DEFAULT_PRESET`, the budget
:data:`nas_engine.budget.DEFAULT_EVALUATIONS`, the "auto" executor, the
estimator's own T); ``nas-engine COMMAND --help`` lists them.

Words: ``--epochs T`` is always an estimator's training budget T (``search``,
``correlate``); ``--schedule-epochs`` is always the length of the cosine
schedule (``Protocol.schedule_epochs``; the whole training for ``train`` and
``bench build``); ``--budget-epochs`` the total training epochs of a search.
``--size KEY=VALUE`` sets one of the space's size parameters (``--C`` and
``--N`` are shorthands for ``--size C=...`` / ``--size N=...``).

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
import math
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

# the TSE-paper estimators (mirrors nas_engine.correlate.DEFAULT_ESTIMATORS; kept here so parsing stays light)
_DEFAULT_ESTIMATORS = ("tse", "tse-e", "tse-ema", "tlmini", "sovl", "valacc")

#: the largest value an integer option takes (a count: epochs, evaluations, channels, rows, ...), the largest
#: signed 32-bit integer: larger values are refused before anything runs (seeds: any 64-bit one)
_MAX_COUNT = 2**31 - 1
_MAX_SEED = 2**63 - 1
#: --workers: evaluations at once (each holds a slot up front; no machine or cluster here runs more at once)
_MAX_WORKERS = 65_536
#: --archs: architectures sampled up front, then each trained (more would only fill the memory before training)
_MAX_ARCHS = 100_000


def _integer(low: int = 1, high: int = _MAX_COUNT):
    """An argparse ``type``: an integer in ``[low, high]``, else a one-line usage error naming the option."""
    def integer(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer in {low}..{high}, got {text!r}")
        return value

    return integer


_SEED = _integer(0, _MAX_SEED)


def _positive_number(text: str) -> float:
    """An argparse ``type``: a finite number > 0 (no NaN, no infinity)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def _path(text: str) -> str:
    """An argparse ``type``: a path, not empty (an empty one would mean the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a path, got {text!r}")
    return text


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to an option's help, unless its help already says it or the default is
    None/False (there the help says what happens without the option)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("%(default)" in text or "default:" in text or not action.option_strings
                or action.default is None or action.default is False or action.default == argparse.SUPPRESS
                or action.default == []):
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose help shows the defaults (and so do its subcommands' parsers)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def _get_values(self, action, arg_strings):
        # argparse drops a '--' given as an option's value (``--top=--``) and stores [] unconverted (3.11)
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            self.error(f"argument {'/'.join(action.option_strings)}: expected a value, got '--'")
        return super()._get_values(action, arg_strings)

    def error(self, message: str):
        """A usage error as one line (argparse's own adds the usage above it), exit status 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _version() -> str:
    """The installed package's version, else ``nas_engine.__version__``."""
    from importlib import metadata

    try:
        return metadata.version("nas-engine")
    except metadata.PackageNotFoundError:
        from . import __version__

        return __version__


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


def _add_executor_args(p: argparse.ArgumentParser) -> None:
    """--executor, --workers, --threads, --executor-arg (search and bench build)."""
    from .executors import available_executors  # light: standard library only

    p.add_argument("--executor", default="auto", choices=["auto", *available_executors()],
                   help="where candidates are evaluated: auto (the library's choice: worker processes, one per "
                        "CPU, when several CPUs are available and the candidates train on the CPU; else this "
                        "process), inline (this process), processes (local worker processes) or ray")
    p.add_argument("--workers", type=_integer(1, _MAX_WORKERS), default=None,
                   help="evaluations at once (default: inline 1; processes one per CPU; ray what the cluster "
                        "fits); --workers 1 is the one-worker, reproducible mode")
    p.add_argument("--threads", type=_integer(), default=None,
                   help="torch threads per evaluation (default: the engine's thread policy, one for small "
                        "candidates); part of the stored configuration")
    p.add_argument("--executor-arg", action="append", type=_kv, default=[], metavar="KEY=VALUE",
                   help="a constructor argument of the executor, e.g. max_memory_mb=4000 or address=auto; "
                        "repeatable")


def _add_training_args(p: argparse.ArgumentParser, T: bool = True) -> None:
    """Data and protocol options shared by ``search``, ``correlate``, ``bench build`` and ``train``; ``T``: the
    command takes an estimator's budget ``--epochs`` (train and bench build train whole schedules, whose length
    is ``--schedule-epochs``)."""
    from .training import PRESETS

    p.add_argument("--data", default="digits",
                   help="dataset: a registered name (digits, cifar10, cifar100, imagenet16-120, synthetic-cifar10, "
                        "...: see `nas-engine list`), or NAME:PATH to read it from PATH "
                        "(npz:FILE.npz, imagefolder:DIR)")
    p.add_argument("--data-root", type=_path, default=None, help="directory of the dataset files")
    p.add_argument("--data-arg", action="append", type=_kv, default=[], metavar="KEY=VALUE",
                   help="a dataset's own option, e.g. labels=coarse for cifar100, flip=true for imagefolder")
    p.add_argument("--download", action="store_true", help="download the dataset if missing")
    p.add_argument("--n-train", type=_integer(), default=None,
                   help="class-balanced training subset size (default: the dataset's whole training split)")
    p.add_argument("--n-val", type=_integer(0), default=None,
                   help="validation images held out of training (default: the dataset's own split)")
    p.add_argument("--resolution", type=_integer(), default=None,
                   help="resize images to this side length (default: the dataset's own)")
    p.add_argument("--side", type=_integer(), default=None,
                   help="synthetic-cifar10 only: generate side x side images (default 32, the paper's)")
    p.add_argument("--protocol", choices=list(PRESETS), default="nb201",
                   help="training recipe (nas_engine.training.PRESETS): " + "; ".join(
                       f"{name}: the space's {v['scale']} size, batch {v['batch_size']}, lr {v['lr']}, "
                       f"{v['schedule_epochs']}-epoch schedule" for name, v in PRESETS.items())
                   + " (the options below override it)")
    if T:
        p.add_argument("--epochs", type=_integer(), default=None,
                       help="training epochs T per candidate, the estimator's budget: search: default the "
                            "estimator's own (10 for the curve estimators); correlate: the longest budget scored "
                            "(required)")
    p.add_argument("--schedule-epochs", type=_integer(), default=None,
                   help="length T_end of the cosine training schedule: " + (
                       "T epochs are a prefix of it (default: the protocol's)" if T else
                       "the whole training (required)"))
    p.add_argument("--batch-size", type=_integer(), default=None, help="minibatch size (default: the protocol's)")
    p.add_argument("--lr", type=_positive_number, default=None, help="initial learning rate (default: the protocol's)")
    p.add_argument("--size", action="append", type=_kv, default=[], metavar="KEY=VALUE",
                   help="a size parameter of the space's network, e.g. C=8 or layers=5 for darts (default: the "
                        "protocol's size: the space's small or benchmark network); repeatable")
    p.add_argument("--C", type=_integer(), default=None,
                   help="shorthand for --size C=VALUE (nb201, darts, randwired: initial channels)")
    p.add_argument("--N", type=_integer(), default=None, help="shorthand for --size N=VALUE (nb201: cells per stage)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--amp", choices=["bf16", "fp16"], default=None,
                   help="mixed precision (default: none, float32)")


def _parser() -> argparse.ArgumentParser:
    from .budget import DEFAULT_EVALUATIONS
    from .registry import list_plugins  # the package is imported already; listing the built-ins takes ~10 ms
    from .training import DEFAULT_PRESET

    plugins = list_plugins()

    def one_of(kind: str) -> str:
        return "one of: " + ", ".join(plugins[kind])

    p = _Parser(prog="nas-engine", description="Neural architecture search engine. `nas-engine COMMAND --help` "
                                               "shows the options of a command and their defaults.")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ls = sub.add_parser("list", help="list the registered plugins per kind")
    ls.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser("search", help="run an architecture search",
                       description="Run an architecture search: Search(...) with the library's defaults "
                                   "for what is not given. Without options: regularised evolution over NB201 "
                                   "cells, each scored by TSE-EMA after its T=10 epochs of training the space's "
                                   f"small network (--protocol {DEFAULT_PRESET}) on the embedded digits, "
                                   f"{DEFAULT_EVALUATIONS} evaluations.")
    s.add_argument("--strategy", default="regularized-evolution", choices=plugins["strategy"], metavar="NAME",
                   help="the search strategy; " + one_of("strategy"))
    s.add_argument("--space", default="nb201", choices=plugins["space"], metavar="NAME",
                   help="the search space; " + one_of("space"))
    s.add_argument("--estimator", default="tse-ema", choices=plugins["estimator"], metavar="NAME",
                   help="what scores each candidate; " + one_of("estimator"))
    s.add_argument("--strategy-arg", action="append", type=_kv, default=[], metavar="KEY=VALUE",
                   help="a constructor argument of the strategy (VALUE parsed as JSON when it can be), e.g. "
                        "population_size=20; repeatable")
    s.add_argument("--estimator-arg", action="append", type=_kv, default=[], metavar="KEY=VALUE",
                   help="a constructor argument of the estimator, e.g. gamma=0.9; repeatable")
    s.add_argument("--evaluations", type=_integer(), default=None,
                   help=f"budget: number of evaluations (default: {DEFAULT_EVALUATIONS} when no other budget "
                        "is given, else none)")
    s.add_argument("--budget-epochs", type=_positive_number, default=None,
                   help="budget: total training epochs (default: no limit)")
    s.add_argument("--budget-seconds", type=_positive_number, default=None,
                   help="budget: wall-clock seconds; candidates still training then are stopped and left pending "
                        "for a resume (default: no limit)")
    s.add_argument("--budget-cost-seconds", type=_positive_number, default=None,
                   help="budget: charged training seconds, the sum of the evaluations' costs (default: no limit)")
    s.add_argument("--evaluation-seconds", type=_positive_number, default=None,
                   help="time limit of one evaluation: a candidate over it is stopped and recorded as failed "
                        "('time limit: ...'); stored with the search (default: no limit)")
    _add_training_args(s)
    s.set_defaults(protocol=DEFAULT_PRESET)
    s.add_argument("--seed", type=_SEED, default=0,
                   help="search seed (strategy and every evaluation derive theirs)")
    _add_executor_args(s)
    s.add_argument("--out", type=_path, default=None, metavar="DIR",
                   help="store directory: results as they complete, and resume with the same command "
                        "(default: nothing is stored)")
    s.add_argument("--top", type=_integer(0), default=10, help="rows of the results table to print")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--quiet", action="store_true", help="no progress bar")

    c = sub.add_parser("correlate", help="rank correlation of estimators vs ground truth (TSE paper Fig. 1)")
    c.add_argument("--space", default="nb201", choices=plugins["space"], metavar="NAME",
                   help="the search space; " + one_of("space"))
    c.add_argument("--archs", type=_integer(1, _MAX_ARCHS), default=20,
                   help="number of distinct architectures to sample")
    c.add_argument("--estimators", default=",".join(_DEFAULT_ESTIMATORS),
                   help="comma-separated curve estimators scored at every budget t=1..T, and zero-cost "
                        "proxies (synflow, snip, grasp, fisher, grad-norm, plain, jacov, nwot, params, flops) "
                        "scored once at initialisation")
    c.add_argument("--truth", type=_path, required=True, metavar="TABLE",
                   help="ground truth (required): an NB201 CSV (cifar10_test_acc) or an engine JSONL table")
    _add_training_args(c)
    c.add_argument("--seed", type=_SEED, default=0,
                   help="seed of the sample and of every training run")
    c.add_argument("--out", type=_path, required=True, metavar="DIR", help="output directory (required): store, "
                                                                "criteria.csv, figure")
    c.add_argument("--quiet", action="store_true", help="no progress bar")

    sh = sub.add_parser("show", help="summary of a search's store (running or finished); reads without writing")
    sh.add_argument("store", type=_path, metavar="DIR", help="the store directory (--out of a search)")
    sh.add_argument("--top", type=_integer(0), default=10, help="rows of the results table to print")
    sh.add_argument("--json", action="store_true", help="machine-readable output (strict JSON)")
    sh.add_argument("--csv", type=_path, default=None, metavar="PATH",
                    help="also write every evaluation as CSV to PATH ('-': standard output, instead of the table)")

    rp = _page_command(sub, "report", "report",
                       "an HTML page of a search's store (running or finished): progress, scores, best cells, "
                       "failures; reads the store without writing to it",
                       "about the search stored in DIR")
    rp.add_argument("--truth", type=_path, default=None, metavar="TABLE",
                    help="ground truth, an NB201 CSV or an engine JSONL table: adds the score against the true "
                         "accuracy with Spearman's rho and Kendall's tau (default: none)")
    rp.add_argument("--top", type=_integer(0), default=3, help="best architectures drawn as cells")

    dg = _page_command(sub, "diagnose", "diagnosis",
                       "an HTML page diagnosing a stored search's estimator against ground truth (Ning et al.): "
                       "complexity-level, op-level and arch-level bias",
                       "with the bias analyses of Ning et al. (nas_engine.diagnosis) of the estimator whose scores "
                       "DIR stores")
    dg.add_argument("--truth", type=_path, required=True, metavar="TABLE",
                    help="ground truth: an NB201 CSV or an engine JSONL table")
    dg.add_argument("--complexity", choices=["params", "flops"], default="params",
                    help="the complexity measure of the groups: the table's recorded value, else counted on the "
                         "space's benchmark-size network (default: params)")
    dg.add_argument("--groups", type=_integer(1), default=5, help="complexity groups (default: 5)")
    dg.add_argument("--top", type=_integer(1), default=5, help="best and worst architectures drawn (default: 5)")

    mg = sub.add_parser("migrate", help="convert a JSONL store of an earlier version into a database store "
                                        "(the old files move to DIR/legacy-jsonl)")
    mg.add_argument("store", type=_path, metavar="DIR", help="the store directory to convert")

    b = sub.add_parser("bench", help="tabular benchmarks")
    bsub = b.add_subparsers(dest="bench_command", required=True, metavar="COMMAND")
    bb = bsub.add_parser("build", help="train architectures for a whole schedule and write a table")
    bb.add_argument("--space", default="nb201", choices=plugins["space"], metavar="NAME",
                    help="the search space; " + one_of("space"))
    bb.add_argument("--archs", type=_integer(1, _MAX_ARCHS), required=True,
                    help="number of distinct architectures to sample (required)")
    _add_training_args(bb, T=False)
    bb.add_argument("--seed", type=_SEED, default=0,
                    help="seed of the sample and of every training run")
    _add_executor_args(bb)
    bb.add_argument("--out", type=_path, required=True, metavar="DIR",
                    help="output directory (required): store + table.jsonl")
    bb.add_argument("--quiet", action="store_true", help="no progress bar")
    bt = bsub.add_parser("table", help="write DIR/table.jsonl from the architectures a (stopped or running) "
                                       "build in DIR has finished")
    bt.add_argument("--out", type=_path, required=True, metavar="DIR", help="the build's output directory (required)")

    t = sub.add_parser("train", help="train one architecture to completion (checkpointed every epoch, resumable) "
                                     "and export it (docs/final-training.md)")
    which = t.add_mutually_exclusive_group(required=True)
    which.add_argument("--arch", default=None, help="the architecture's string (in --space)")
    which.add_argument("--from", dest="from_store", type=_path, default=None, metavar="STORE_DIR",
                       help="a search's store directory: train its --rank-th best architecture, in its space, "
                            "with its training recipe where no option here overrides it")
    t.add_argument("--space", default=None, help="the space of --arch (default nb201)")
    t.add_argument("--rank", type=_integer(), default=None,
                   help="with --from: 1 is the best distinct architecture (default), 2 the next, ...")
    _add_training_args(t, T=False)
    t.add_argument("--seed", type=_SEED, default=0,
                   help="network initialisation, data order and data split")
    t.add_argument("--threads", type=_integer(), default=None,
                   help="torch intra-op threads (default: torch's); part of the checkpoint's configuration")
    t.add_argument("--out", type=_path, required=True, metavar="DIR",
                   help="output directory: checkpoint.pt (resume: the same command again), model.pt, model.pt2, "
                        "summary.json")
    t.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    return p


def _protocol(args):
    """The ``--protocol`` preset with the options given on top (the library's :meth:`Protocol.preset`)."""
    from .training import Protocol

    size = dict(args.size)
    for key in ("C", "N"):
        value = getattr(args, key)
        if value is not None:
            if key in size and size[key] != value:
                raise ValueError(f"--{key} {value} and --size {key}={size[key]} disagree; give one of them")
            size[key] = value
    changes = {k: v for k, v in {"batch_size": args.batch_size, "lr": args.lr, "amp": args.amp,
                                 "schedule_epochs": args.schedule_epochs}.items() if v is not None}
    return Protocol.preset(args.protocol, device=args.device, **changes, **({"size": size} if size else {}))


def _data(args):
    from .data import load_dataset
    from .memory import check_input_memory
    from .training import DEFAULT_PRESET, PRESETS

    if args.resolution is not None and args.resolution > 0:  # before the data is resized: one minibatch must fit
        preset = PRESETS.get(getattr(args, "protocol", None) or DEFAULT_PRESET, PRESETS[DEFAULT_PRESET])
        images = sum(n for n in (args.n_train, args.n_val) if isinstance(n, int) and n > 0)
        check_input_memory(getattr(args, "batch_size", None) or preset["batch_size"], args.resolution, images=images)
    return load_dataset(args.data, args.data_root, download=args.download, n_train=args.n_train,
                        n_val=args.n_val, resolution=args.resolution, seed=args.seed,
                        **({} if args.side is None else {"side": args.side}), **dict(args.data_arg))


def _cmd_correlate(args) -> int:
    from pathlib import Path

    from .benchmarks import load_truth_table
    from .correlate import collect_curves, correlate, plot_correlation, sample_architectures
    from .costs import model_costs
    from .estimators.zero_cost import MEASURES, zero_cost_scores
    from .registry import spaces
    from .spaces.base import Enumerable

    if args.epochs is None:
        raise ValueError("correlate needs --epochs T (the longest budget to score)")
    space = spaces.create(args.space)
    table = load_truth_table(args.truth)
    truth = table.ground_truth()
    names = [e.strip() for e in args.estimators.split(",") if e.strip()]
    protocol = _protocol(args).resolved(space)
    covers_space = isinstance(space, Enumerable) and len(truth) >= len(space)
    archs = sample_architectures(space, args.archs, seed=args.seed, among=None if covers_space else sorted(truth))
    data = _data(args)  # once the options are checked
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
    from .build import build_table, table_from_store
    from .registry import spaces

    if args.bench_command == "table":
        table = table_from_store(args.out)
        print(f"wrote {len(table)} finished architectures to {table.path}")
        return 0

    if args.schedule_epochs is None:
        raise ValueError("bench build needs --schedule-epochs T_end (the whole schedule every architecture is "
                         "trained for)")
    from .correlate import sample_architectures

    protocol = _protocol(args)
    executor = _executor(args, protocol)  # its options are checked before the data is loaded
    space = spaces.create(args.space)
    archs = sample_architectures(space, args.archs, seed=args.seed)  # what build_table samples, checked here
    table = build_table(space, _data(args), protocol, archs=archs,
                        out=args.out, seed=args.seed, progress=not args.quiet, executor=executor)
    accs = sorted(table.final_accuracy(a) for a in table.archs())
    print(f"wrote {len(table)} architectures x {protocol.schedule_epochs} epochs to {table.path}; "
          f"final accuracy min/median/max {accs[0]:.4f}/{accs[len(accs) // 2]:.4f}/{accs[-1]:.4f}")
    return 0


def _cmd_train(args) -> int:
    from .final import train_final
    from .registry import spaces
    from .training import TrainingFailed

    if args.schedule_epochs is None:
        raise ValueError("train needs --schedule-epochs E (the whole schedule the architecture is trained for)")
    if args.threads is not None:  # before the data is loaded (train_final checks it again)
        from .threads import check_threads

        check_threads(args.threads, "--threads")
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
        given = _protocol(args)  # the options given here override the stored recipe
        kw = {k: getattr(given, k) for k, v in {"batch_size": args.batch_size, "lr": args.lr,
                                                "amp": args.amp}.items() if v is not None}
        protocol = result.protocol(size=dict(given.size), schedule_epochs=args.schedule_epochs,
                                   device=args.device, **kw)
        source = f"rank {rank} of {args.from_store} (score {ranked[rank - 1].score:.6g})"
    else:
        if args.rank is not None:
            raise ValueError("--rank goes with --from STORE_DIR, not with --arch")
        space = spaces.create(args.space or "nb201")
        arch = space.from_string(args.arch)
        protocol = _protocol(args)
        source = f"space {space.name}"
    data = _data(args)
    if not args.quiet:
        size = ", ".join(f"{k}={v}" for k, v in protocol.size_for(space).items())
        print(f"training {arch.string} ({source}) on {data.fingerprint()} for {protocol.schedule_epochs} epochs "
              f"({size}, batch {protocol.batch_size}, lr {protocol.lr:g}) into {args.out}", flush=True)
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


def _stored_evaluations(out: str | None) -> int:
    """How many evaluations the store ``out`` holds before a search resumes it (0 for none or a new one)."""
    from .store import RunStore, StoreError

    if out is None or not RunStore(out).database.exists():
        return 0
    try:
        return len(RunStore(out).records())
    except StoreError:  # empty or damaged: the search's own open reports what is wrong
        return 0


def _cmd_search(args) -> int:
    import time

    from .registry import create
    from .search import Budget, Search

    est_kw = dict(args.estimator_arg)
    if args.epochs is not None:
        est_kw["epochs"] = args.epochs
    strategy = create("strategy", args.strategy, **dict(args.strategy_arg))
    estimator = create("estimator", args.estimator, **est_kw)
    protocol = _protocol(args)
    limits = {"evaluations": args.evaluations, "epochs": args.budget_epochs, "seconds": args.budget_seconds,
              "cost_seconds": args.budget_cost_seconds}
    budget = Budget(**limits) if any(v is not None for v in limits.values()) else None  # None: the library's
    executor = _executor(args, protocol)  # its options are checked before the data is loaded
    search = Search(strategy, args.space, estimator, data=_data(args), protocol=protocol, budget=budget,
                    seed=args.seed, store=args.out, executor=executor,
                    progress=not (args.quiet or args.json), evaluation_seconds=args.evaluation_seconds)
    earlier = _stored_evaluations(args.out)
    t0 = time.perf_counter()
    result = search.run()
    this_run = {"seconds": time.perf_counter() - t0, "evaluations": len(result.history) - earlier,
                "earlier_evaluations": earlier}
    ex = search.executor
    ran_on = {"executor": ex.name, "workers": ex.workers, "threads": search.threads,
              "threads_from_policy": ex.threads_from_policy}
    status = _report(result, args, label=repr(estimator), out=args.out, this_run=this_run,
                     extra={"this_run": this_run, "ran_on": ran_on})
    if not args.json:
        print(f"ran on: the {ex.name} executor, {ex.workers} worker{'s' if ex.workers > 1 else ''}, "
              f"{search.threads} torch thread{'s' if search.threads > 1 else ''} per evaluation"
              f"{' (the thread policy)' if ex.threads_from_policy else ''}")
    return status


def _executor(args, protocol):
    """The executor of ``--executor / --workers / --threads / --executor-arg`` (``auto``: the library's choice,
    :func:`nas_engine.executors.create_executor`)."""
    from .executors import create_executor

    executor_args = dict(args.executor_arg)
    if args.threads is not None:
        executor_args["threads"] = args.threads
    return create_executor(args.executor, args.workers, device=protocol.device, **executor_args)


def _report(result, args, *, label: str, out: str | None = None, extra: dict[str, Any] | None = None,
            this_run: dict[str, Any] | None = None) -> int:
    """Print a search result as a table or (``--json``) strict JSON; 1 when no evaluation succeeded.

    Both outputs, and ``--csv``, start from the one serialisation of an
    evaluation (:meth:`~nas_engine.results.Evaluation.to_row`); the table adds
    an ``accuracy`` column where the evaluations have one
    (:func:`~nas_engine.report.evaluation_accuracy`).  ``this_run`` (a search
    command): this run's seconds and evaluations, told apart from the stored
    total of a resumed search.
    """
    from .registry import estimator_class
    from .results import accuracies, format_score

    best = result.best
    description = getattr(estimator_class(result.config), "score_description", "") or None
    status = 0 if best is not None else 1
    if getattr(args, "csv", None) is not None:
        df = result.to_dataframe()
        if args.csv == "-":
            df.to_csv(sys.stdout, index=False)
            return status
        try:
            df.to_csv(args.csv, index=False)
        except OSError as exc:  # pandas' own words name the directory, not the option
            raise OSError(f"--csv {args.csv}: cannot write it ({exc.strerror or exc})") from None
    if args.json:
        print(json.dumps({
            **(extra or {}),
            "config": result.config,
            "score_description": description,
            "best": None if best is None else {**best.to_row(), "canonical": result.space.canonical(best.arch),
                                               "accuracy": accuracies(result)[best.index]},
            "evaluations": [e.to_row() for e in result.history],
            "failed": sum(not e.ok for e in result.history),
            "seconds": result.seconds, "setup_seconds": result.setup_seconds,
            "total_cost_seconds": result.total_cost_seconds,
        }, indent=2, allow_nan=False))
        return status
    df = result.to_dataframe()
    import pandas as pd

    if len(df) and args.top > 0:  # --top 0: the summary alone
        accs = accuracies(result)
        with pd.option_context("display.max_colwidth", 100, "display.width", 200):
            cols = ["index", "arch", "score", "status", "cost_seconds", "cached"]
            if any(a is not None for a in accs):
                df["accuracy"] = [float("nan") if a is None else a for a in accs]
                cols.insert(3, "accuracy")
            print(df.sort_values("score", ascending=False)[cols].head(args.top).to_string(index=False))
    n_failed = int((df["status"] != "ok").sum())
    head = f"\n{len(df)} evaluations ({n_failed} failed)"
    if this_run is None:  # a stored search, shown
        print(f"{head} in {result.seconds:.1f} s (the stored total of all its runs); "
              f"training time {result.total_cost_seconds:.1f} s")
    elif this_run["earlier_evaluations"]:  # a resumed search
        def n(k: int) -> str:
            return f"{k} evaluation{'' if k == 1 else 's'}"

        print(f"{head}; this run: {this_run['seconds']:.1f} s ({n(this_run['evaluations'])}); "
              f"stored total: {result.seconds:.1f} s ({n(this_run['earlier_evaluations'])} from earlier runs); "
              f"training time {result.total_cost_seconds:.1f} s (all runs)")
    else:
        print(f"{head}; this run: {this_run['seconds']:.1f} s; training time {result.total_cost_seconds:.1f} s")
    if best is None:
        print("no successful evaluation")
        return 1
    print(f"best: {best.arch.string}  score={format_score(best.score)}  ({label})")
    if description:
        print(f"score: {description}")
    if out:
        print(f"results stored in {out}")
    return 0


def _cmd_show(args) -> int:
    from .registry import describe_plugin
    from .results import SearchResult
    from .store import RunStore

    if args.json and args.csv == "-":
        raise ValueError("--json and --csv - both write to standard output; give one of them, or --csv PATH to "
                         "write the CSV to a file beside the JSON")
    store = RunStore(args.store)
    result = SearchResult.load(args.store)
    holder = store.holder()
    running = ("running: " + (f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
                              if holder else "holder unknown")) if holder is not None else "not running"
    cfg = result.config or {}
    plugin = describe_plugin
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


def _page_command(sub, name: str, default_dir: str, summary: str, about: str) -> argparse.ArgumentParser:
    """A command that writes an HTML page about a store: its parser, with the store and ``--out``."""
    p = sub.add_parser(name, help=summary, description="Write a self-contained HTML page (figures embedded, and "
                                                       f"as PNG files beside it) {about}.")
    p.add_argument("store", type=_path, metavar="DIR", help="the store directory (--out of a search)")
    p.add_argument("--out", type=_path, default=None, metavar="PATH",
                   help="the page (a .html path, or a directory for index.html); the PNGs go beside it "
                        f"(default: DIR/{default_dir}/index.html)")
    return p


def _cmd_report(args) -> int:
    from .report import write_report

    report = write_report(args.store, args.out, truth=args.truth, top=args.top)
    n = report.numbers
    print(f"wrote {report.path} ({n['evaluations']} evaluations, {n['failed']} failed; figures "
          f"{', '.join(p.name for p in report.figures.values()) or 'none'} beside it)")
    return 0


def _cmd_diagnose(args) -> int:
    from .report import write_diagnosis

    report = write_diagnosis(args.store, args.truth, args.out, complexity=args.complexity, groups=args.groups,
                             top=args.top)
    n = report.numbers
    print(f"wrote {report.path} ({n['architectures']} architectures in the table: Spearman {n['spearman']:.4f}, "
          f"Kendall {n['kendall']:.4f}; figures {', '.join(p.name for p in report.figures.values())} beside it)")
    return 0


def _cmd_migrate(args) -> int:
    from .store import migrate

    store = migrate(args.store)
    print(f"converted {args.store} into {store.database} ({len(store.records())} evaluations); "
          f"the old files are in {store.path / 'legacy-jsonl'}")
    return 0


def _terminated(signum, frame):
    raise KeyboardInterrupt


def _stdout_closed() -> int:
    """Standard output's reader is gone: exit quietly with status 1, as Python's documentation recommends
    (the signal module's "Note on SIGPIPE"), after pointing standard output at devnull so that the
    interpreter's final flush does not report the broken pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor (e.g. stdout replaced in-process): nothing to redirect
        pass
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error: argparse has printed what it had to say
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    # SIGTERM (kill, a scheduler's stop) does what Ctrl-C does: work in flight is cancelled, everything finished
    # is kept (a search's store, final training's checkpoint), exit 130
    previous = signal.signal(signal.SIGTERM, _terminated) \
        if threading.current_thread() is threading.main_thread() else None
    try:
        return _main(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(args) -> int:
    try:
        status = {"list": _cmd_list, "search": _cmd_search, "correlate": _cmd_correlate, "show": _cmd_show,
                  "report": _cmd_report, "diagnose": _cmd_diagnose, "migrate": _cmd_migrate, "bench": _cmd_bench,
                  "train": _cmd_train}[args.command](args)
        sys.stdout.flush()  # here, so that a closed pipe is reported below and not at the interpreter's exit
        return status
    except BrokenPipeError:  # the reader of standard output went away (`nas-engine show DIR | head`)
        return _stdout_closed()
    except (ValueError, TypeError, LookupError, OSError, ImportError) as exc:
        print(f"nas-engine: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nas-engine: interrupted; finished evaluations are in the store (if --out was given)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
