"""The learning curves this repository has recorded on real CIFAR-10, with their ground truth, ready to score.

Every population is read from committed results (nothing is trained):

* ``NB201``: ``tse_rank_correlation/store`` -- 100 NAS-Bench-201 cells (C=8, N=1, 16x16, 5,000
  images, 12 of a 200-epoch cosine schedule); truth: NB201's 200-epoch CIFAR-10 test accuracy;
* ``NB101``: ``tse_nb101/store`` -- 150 NAS-Bench-101 cells (stem 16, 3 stacks x 1 cell, 16x16,
  3,000 images, 12 of 108 epochs), the first 150 distinct cells of the NB101 peer check's seeded
  order; truth: the peer file's 108-epoch validation accuracy (mean over a cell's keys);
* ``DARTS``: ``tse_darts/store`` -- 100 DARTS-space cells (C=8, 5 cells, 16x16, 3,000 images, 12 of
  100 epochs), the first 100 of the DARTS peer check's seeded order; truth: NAS-Bench-301's predicted
  validation accuracy;
* ``RandWired``: ``tse_randwired/bench`` -- 64 randomly wired networks (8 generator settings x 8
  seeds, n=16, 16x16, 3,000 images, a whole 20-epoch schedule); truth: each network's final CIFAR-10
  test accuracy;
* ``NB201-real`` (:func:`nb201_real`): the benchmark's own cifar10-valid curves of NB201
  architectures 0-199 (validation accuracy only, no training losses; 200 epochs); truth: the 200-epoch
  CIFAR-10 test accuracy.

The first four curves keep every minibatch loss (NB201: 79 minibatches per epoch, the others 47).
Truths are fractions in [0, 1] (percentages are divided by 100).  ``costs`` are the architecture
features the curve predictors use: #params and #FLOPs at the predictors' reference setting
(:data:`nas_engine.estimators.predictor.REFERENCE_INPUT` with the space's ``default_size``), except
NB101 and DARTS, whose values are NASLib's recorded ones at the benchmark's size (C=32 for NB301).

:func:`paired_delta_ci` compares two estimators' Spearman correlations on the same architectures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "reproduce" / "results"

#: where each recorded population is read from, by default
DEFAULT_SOURCES = {"NB201": RESULTS / "tse_rank_correlation" / "store", "NB101": RESULTS / "tse_nb101" / "store",
                   "DARTS": RESULTS / "tse_darts" / "store", "RandWired": RESULTS / "tse_randwired" / "bench"}


@dataclass
class Recorded:
    """One population: ``archs`` (Architecture objects), ``curves`` and ``truth`` by architecture string."""

    name: str
    archs: list
    curves: dict
    truth: dict[str, float]
    epochs: int
    note: str
    costs: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def strings(self) -> list[str]:
        return [a.string for a in self.archs]


def _fraction(values: dict[str, float]) -> dict[str, float]:
    scale = 100.0 if max(values.values()) > 1.5 else 1.0
    return {k: float(v) / scale for k, v in values.items()}


def store_curves(path: Path) -> dict:
    """``{arch string: curve}`` of a stored search (None for a failed evaluation)."""
    from nas_engine.results import SearchResult

    return {ev.arch.string: (ev.curve if ev.ok else None) for ev in SearchResult.load(path).history}


def _reference_costs(space, archs) -> dict[str, dict[str, float]]:
    from nas_engine.costs import model_costs
    from nas_engine.estimators.predictor import REFERENCE_INPUT

    return model_costs(space, archs, **REFERENCE_INPUT, **space.default_size)


def nb201(shared: Path, store: Path, *, costs: bool = True) -> Recorded:
    import pandas as pd

    from nas_engine.spaces.nb201 import NB201Space

    space = NB201Space()
    curves = store_curves(store)
    archs = [space.from_string(s) for s in curves]
    table = pd.read_csv(Path(shared) / "nas-bench-201" / "nb201_cifar10_200ep.csv").set_index("arch_str")
    truth = _fraction({a.string: float(table.at[a.string, "cifar10_test_acc"]) for a in archs})
    return Recorded("NB201", archs, curves, truth, 12, "tse_rank_correlation: 100 cells, C=8, N=1, 16x16, "
                    "5,000 images, 12 of 200 epochs; truth: NB201 200-epoch test accuracy",
                    _reference_costs(space, archs) if costs else {})


def nb101(shared: Path, store: Path, *, costs: bool = True) -> Recorded:
    from nas_engine.spaces.nb101 import NB101Space
    from reproduce.common.nb101_peer import canonical, cell_accuracy, distinct_cells, load_peer

    peer = load_peer(Path(shared))
    curves = store_curves(store)
    keys = distinct_cells(peer, 0)[:len(curves)]
    space = NB101Space()
    archs = [space.from_naslib(k) for k in keys]
    if {a.string for a in archs} != set(curves):
        raise ValueError(f"{store}: its architectures are not the first {len(curves)} distinct cells of the NB101 "
                         "peer check's seeded order (tse_nb101's choice)")
    acc = cell_accuracy(peer)
    truth = _fraction({a.string: acc[canonical(k)] for a, k in zip(archs, keys)})
    cost = {a.string: {"params": float(peer.at[k, "params"]), "flops": float(peer.at[k, "flops"])}
            for a, k in zip(archs, keys)}
    return Recorded("NB101", archs, curves, truth, 12, "tse_nb101: 150 cells, stem 16, 3x1 cells, 16x16, "
                    "3,000 images, 12 of 108 epochs; truth: NB101 108-epoch val accuracy", cost if costs else {})


def darts(shared: Path, store: Path, *, costs: bool = True) -> Recorded:
    from nas_engine.spaces.darts import DartsSpace
    from reproduce.common.darts_peer import load_peer, seeded_order

    peer = load_peer(Path(shared))
    curves = store_curves(store)
    keys = seeded_order(peer, 0)[:len(curves)]
    space = DartsSpace()
    archs = [space.from_compact(k) for k in keys]
    if {a.string for a in archs} != set(curves):
        raise ValueError(f"{store}: its architectures are not the first {len(curves)} of the DARTS peer check's "
                         "seeded order (tse_darts's choice)")
    truth = _fraction({a.string: float(peer.at[k, "val_accuracy"]) for a, k in zip(archs, keys)})
    cost = {a.string: {"params": float(peer.at[k, "params"]), "flops": float(peer.at[k, "flops"])}
            for a, k in zip(archs, keys)}
    return Recorded("DARTS", archs, curves, truth, 12, "tse_darts: 100 cells, C=8, 5 cells, 16x16, 3,000 "
                    "images, 12 of 100 epochs; truth: NB301 predicted val accuracy", cost if costs else {})


def randwired(shared: Path, bench: Path, *, costs: bool = True) -> Recorded:
    from nas_engine.benchmarks.table import JsonlCurveTable
    from nas_engine.spaces.randwired import RandWiredSpace

    table = JsonlCurveTable(Path(bench) / "table.jsonl")
    space = RandWiredSpace()
    archs = [space.from_string(s) for s in table.archs()]
    curves = {a.string: table.curve(a.string) for a in archs}
    truth = _fraction(table.ground_truth())
    return Recorded("RandWired", archs, curves, {a.string: truth[a.string] for a in archs}, 20,
                    "tse_randwired: 64 networks (8 settings x 8 seeds), n=16, 16x16, 3,000 images, a whole "
                    "20-epoch schedule; truth: final test accuracy", _reference_costs(space, archs) if costs else {})


def nb201_real(shared: Path, *, costs: bool = True) -> Recorded:
    """The benchmark's own cifar10-valid curves of NB201 architectures 0-199 (no training losses)."""
    from nas_engine.benchmarks import NB201Table
    from nas_engine.spaces.nb201 import NB201Space

    nb = Path(shared) / "nas-bench-201"
    table = NB201Table(nb / "nb201_cifar10_200ep.csv", nb / "nb201_cifar10valid_curves_200archs.jsonl")
    space = NB201Space()
    archs = [space.from_string(s) for s in table.archs()]
    curves = {a.string: table.curve(a) for a in archs}
    truth = _fraction({a.string: table.final_accuracy(a) for a in archs})
    return Recorded("NB201-real", archs, curves, truth, 200, "NB201's recorded cifar10-valid curves of "
                    "architectures 0-199 (mean of 3 seeds, 200 epochs, validation accuracy only); truth: "
                    "200-epoch test accuracy", _reference_costs(space, archs) if costs else {})


#: the populations with training losses, by name: (loader, its default source)
LOADERS: dict[str, Callable[..., Recorded]] = {"NB201": nb201, "NB101": nb101, "DARTS": darts,
                                                "RandWired": randwired}


def load(name: str, shared: Path, source: Path | None = None, **kw: Any) -> Recorded:
    """The recorded population ``name`` (one of :data:`LOADERS`) from ``source`` (default: the committed one)."""
    return LOADERS[name](Path(shared), Path(source) if source else DEFAULT_SOURCES[name], **kw)


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row of ``x`` with the same row of ``y`` (average ranks for ties; NaN worst)."""
    from scipy.stats import rankdata

    rx = rankdata(np.where(np.isnan(x), -np.inf, x), axis=1)
    ry = rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    return (rx * ry).sum(axis=1) / np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))


def paired_delta_ci(a: np.ndarray, b: np.ndarray, y: np.ndarray, *, draws: int = 1000, seed: int = 0,
                    level: float = 0.95) -> tuple[float, float]:
    """The ``level`` percentile interval of rho(a, y) - rho(b, y) over ``draws`` paired bootstrap resamples of the
    architectures (the same resample for both estimators)."""
    idx = np.random.default_rng(seed).integers(0, len(y), size=(draws, len(y)))
    d = spearman_rows(a[idx], y[idx]) - spearman_rows(b[idx], y[idx])
    d = d[np.isfinite(d)]
    q = (1 - level) / 2
    return float(np.quantile(d, q)), float(np.quantile(d, 1 - q))
