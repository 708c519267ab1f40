"""The engine's own benchmark builder: fully-trained ground truth for any space and data.

Harness code (it runs searches), so it sits above the search loop, beside
:mod:`nas_engine.correlate`; the tables it writes live below, in
:mod:`nas_engine.benchmarks`.  (It was ``nas_engine.benchmarks.builder``.)

:func:`build_table` trains a sample of architectures for the **whole**
schedule of a protocol (T_end = ``protocol.schedule_epochs``), records their complete
learning curves (minibatch losses, validation loss/accuracy, seconds per epoch)
and their final test accuracy, and writes them as a
:class:`~nas_engine.benchmarks.table.JsonlCurveTable` (``DIR/table.jsonl``)
that tabular mode, the correlation harness and search comparisons read.

Training runs go through an ordinary :class:`~nas_engine.search.Search` over a
:class:`~nas_engine.strategies.FixedList` with its store in ``DIR/store``, so a
build is seeded (each architecture's torch seed derives from the build seed and
its string), resumable (rerun the same command: finished architectures are not
retrained) and uses whatever executor the search uses.

``final_accuracy`` is the accuracy on the dataset's test split after the last
epoch (the validation split's when the data has no test split, noted in
``info["truth_split"]``).  Failed (diverged / out-of-memory) architectures are
left out of the table and listed in ``DIR/failed.json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .benchmarks.table import JsonlCurveTable
from .config import check_int
from .correlate import sample_architectures
from .data import Dataset
from .estimators.base import CurveEstimator, Estimate
from .registry import spaces as space_registry
from .results import Evaluation
from .search import Budget, Search
from .spaces.base import Architecture, SearchSpace
from .store import RunStore
from .strategies.fixed import FixedList
from .training import Protocol, evaluate

__all__ = ["build_table", "table_from_store", "FullTraining"]


class FullTraining(CurveEstimator):
    """Train for the whole schedule with validation, then measure the held-out test split.

    Its score is the final validation accuracy (never the test accuracy, so that
    using it in a search does not select on test data); the test accuracy, test
    loss and parameter count go to ``Estimate.info``.
    """

    needs_validation = True

    def validate_context(self, ctx) -> None:
        super().validate_context(ctx)
        if ctx.table is not None:
            raise ValueError("FullTraining trains live; it cannot run in tabular mode")

    def estimate(self, arch: Architecture, ctx) -> Estimate:
        model, curve = ctx.train_model(arch, self.epochs, validate=True)
        data = ctx.data
        if data.x_test is not None and len(data.x_test):
            loss, acc = evaluate(model, data.x_test, data.y_test, ctx.protocol)
            split = "test"
        else:
            loss, acc = curve.val_loss[-1], curve.val_acc[-1]
            split = "val"
        info = {"final_accuracy": acc, "final_loss": loss, "truth_split": split,
                "params": sum(p.numel() for p in model.parameters())}
        return Estimate(self._score(curve), curve.total_seconds, self.epochs, curve, info)

    def _score(self, curve) -> float:
        return curve.val_acc[-1]


def build_table(space: SearchSpace, data: Dataset, protocol: Protocol, *,
                archs: int | Sequence[Architecture | str], out: str | Path, seed: int = 0,
                progress: bool = True, executor: Any = None, workers: int | None = None) -> JsonlCurveTable:
    """Train ``archs`` (a number to sample distinct classes, or a list) for ``protocol.schedule_epochs``; write the
    table.

    ``executor`` / ``workers`` are :class:`~nas_engine.search.Search`'s (e.g.
    ``executor="processes", workers=2`` trains two architectures at once).
    """
    if isinstance(archs, (int, float)):  # a number of architectures: 0 is refused, not "the default"
        archs = check_int(archs, "archs", who="build_table")
    if not str(out).strip():  # Path("") is the current directory
        raise ValueError(f"build_table: out must be a directory path, got {out!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(archs, int):
        archs = sample_architectures(space, archs, seed=seed)
    archs = [a.string if isinstance(a, Architecture) else a for a in archs]
    Search(FixedList(archs), space, FullTraining(epochs=protocol.schedule_epochs), data=data, protocol=protocol,
           budget=Budget(evaluations=len(archs)), seed=seed, store=str(out / "store"), progress=progress,
           executor=executor, workers=workers).run()
    return table_from_store(out, space)


def table_from_store(out: str | Path, space: SearchSpace | None = None) -> JsonlCurveTable:
    """Write ``out/table.jsonl`` (and ``out/failed.json``) from what the build in ``out/store`` has finished.

    :func:`build_table` ends with this; called on its own, it turns a build that
    was stopped part-way (or is still running) into a table of the
    architectures trained so far.  ``space`` defaults to the registered space
    named in the store's config.
    """
    out = Path(out)
    config, records, _ = RunStore(out / "store").read()
    if config is None:
        raise FileNotFoundError(f"no benchmark build in {str(out)!r}: expected a search store at {str(out / 'store')!r}"
                                " (written by build_table / nas-engine bench build)")
    if space is None:
        space = space_registry.create(config["space"] if isinstance(config["space"], str) else config["space"]["name"])
    protocol = {k: v for k, v in config["protocol"].items() if k != "device"}
    rows: list[dict[str, Any]] = []
    failed = []
    for rec in records:
        ev = Evaluation.from_record(rec, space)
        if ev.cached:
            continue
        if not ev.ok:
            failed.append({"arch": ev.arch.string, "reason": ev.reason})
            continue
        info = {k: ev.info[k] for k in ("final_loss", "truth_split")}
        rows.append({"arch": ev.arch.string, "space": space.name, "curve": ev.curve.to_dict(),
                     "final_accuracy": ev.info["final_accuracy"], "params": int(ev.info["params"]),
                     "info": {**info, "seed": ev.seed, "data": config["data"], "protocol": protocol}})
    if not rows:
        raise ValueError(f"the build in {str(out)!r} has no finished architecture yet")
    (out / "failed.json").write_text(json.dumps(failed, indent=2))
    return JsonlCurveTable.write(out / "table.jsonl", rows)
