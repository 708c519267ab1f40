"""NAS-Bench-101 peer check: our network's size and zero-cost scores vs NASLib's.

``peer-reference/naslib_zc_nasbench101.json`` (shared data) holds NASLib's
values (NAS-Bench-Suite-Zero) for 500 NAS-Bench-101 architectures on
CIFAR-10, keyed by NASLib's encoding (the flattened 7x7 adjacency matrix,
then the 7 op indices): ``params`` and ``flops`` (millions), the zero-cost
proxies, and ``val_accuracy`` (the benchmark's 108-epoch validation accuracy).

**The keys.**  They are raw, unpruned specs: the 500 are 292 distinct cells
(by the benchmark's graph hash, ``NB101Space.canonical``), 55 of them pruning
to the bare input -> output cell.  Copies of one cell carry slightly different
``val_accuracy`` values (the benchmark's ``query`` samples one of its 3
training repeats) and zero-cost scores (a fresh initialisation each).  The
seeded order visits every distinct cell once (its first key in a seeded
permutation) before any repeat, so ``--limit 150`` scores the data-dependent
proxies on 150 distinct cells -- the ones ``tse_nb101.py`` trains.

**Size.**  NASLib's NAS-Bench-101 network is the benchmark's own (the
PyTorch port in ``naslib/search_spaces/nasbench101``): stem 128 channels,
3 stacks of 3 cells, 32x32 input, 10 classes -- our ``nb101`` space's default
size.  Its params / flops are tensorwatch's ``ModelStats`` of one
``1x3x32x32`` input divided by 1e6 (``naslib_peer.torchstat_counts``); the
network's modules are ours one for one (conv-BN-ReLU, 3x3 max-pools,
2x2 max-pool downsampling, the mean over pixels outside any module), so no
correction is needed.

Part 1 (``costs.csv``) and part 2 (``scores.csv``) are described in
``naslib_peer.py``; ``summary.md`` adds the duplicate-key statistics.

    OMP_NUM_THREADS=1 python reproduce/nb101_peer_check.py [--shared ../shared/data] [--limit 150] [--out DIR]

The default ``--out`` is a new directory named after the current UTC time;
an existing non-empty ``--out`` is refused unless ``--resume`` or
``--summarize`` is given, so committed results are never overwritten by
accident.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import naslib_peer  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from naslib_peer import COST_COLUMNS, PROXIES  # noqa: E402,F401

from nas_engine.spaces.nb101 import NB101Space  # noqa: E402

PEER_FILE = ("peer-reference", "naslib_zc_nasbench101.json")
SPACE = NB101Space()


def load_peer(shared: Path) -> pd.DataFrame:
    """NASLib's 500 architectures: index = NASLib's key text, one column per proxy score, ``val_accuracy``."""
    return naslib_peer.load_peer(shared, PEER_FILE)


def canonical(key: str) -> str:
    return SPACE.canonical(SPACE.from_naslib(key))


def seeded_order(peer: pd.DataFrame, seed: int) -> list[str]:
    """A seeded permutation of the keys with each distinct cell's first key moved ahead of all repeats."""
    keys = naslib_peer.seeded_order(peer, seed)
    seen, first, repeats = set(), [], []
    for k in keys:
        c = canonical(k)
        (repeats if c in seen else first).append(k)
        seen.add(c)
    return first + repeats


def distinct_cells(peer: pd.DataFrame, seed: int) -> list[str]:
    """The first key of every distinct cell, in :func:`seeded_order`."""
    seen, out = set(), []
    for k in seeded_order(peer, seed):
        c = canonical(k)
        if c not in seen:
            seen.add(c)
            out.append(k)
    return out


def cell_accuracy(peer: pd.DataFrame) -> dict[str, float]:
    """Each distinct cell's mean recorded ``val_accuracy`` over its keys (the truth ``tse_nb101.py`` uses)."""
    groups: dict[str, list[float]] = {}
    for k in peer.index:
        groups.setdefault(canonical(k), []).append(float(peer.at[k, "val_accuracy"]))
    return {c: float(np.mean(v)) for c, v in groups.items()}


def duplicate_lines(peer: pd.DataFrame, out: Path, args) -> tuple[list[str], list[dict]]:
    groups: dict[str, list[str]] = {}
    for k in peer.index:
        groups.setdefault(canonical(k), []).append(k)
    repeated = [g for g in groups.values() if len(g) > 1]
    spread = [peer.loc[g, "val_accuracy"].max() - peer.loc[g, "val_accuracy"].min() for g in repeated]
    bare = SPACE.canonical(SPACE.from_spec(np.array([[0, 1], [0, 0]]), ["input", "output"]))
    r = {"part": "keys", "keys": len(peer), "distinct_cells": len(groups), "cells_with_repeats": len(repeated),
         "bare_input_output_keys": len(groups.get(bare, [])), "max_val_acc_spread": float(max(spread)),
         "mean_val_acc_spread": float(np.mean(spread))}
    lines = ["## The 500 keys", "",
             f"{r['keys']} keys = {r['distinct_cells']} distinct cells by the benchmark's graph hash; "
             f"{r['cells_with_repeats']} cells appear more than once, {r['bare_input_output_keys']} keys prune to the "
             f"bare input -> output cell. Across a cell's keys `val_accuracy` differs by up to "
             f"{r['max_val_acc_spread']:.2f} points (mean {r['mean_val_acc_spread']:.2f}): the benchmark samples one "
             "of its 3 training repeats per query."]
    return lines, [r]


TARGET = naslib_peer.Target(
    name="nb101_peer_check", peer_file=PEER_FILE, space=SPACE, decode=SPACE.from_naslib, build_size={},
    protocol_size={"C": 128, "N": 3}, size_text="stem 128, 3 stacks x 3 cells", truth_text="NB101 val acc",
    naslib_counts=naslib_peer.torchstat_counts, order=seeded_order)


def compute_costs(peer: pd.DataFrame, path: Path, archs=None) -> pd.DataFrame:
    return naslib_peer.compute_costs(TARGET, peer, path, archs)


def main(argv=None) -> int:
    return naslib_peer.main(TARGET, __doc__, ROOT.parent / "shared" / "data", ROOT / "reproduce" / "results", argv,
                            extra=duplicate_lines)


if __name__ == "__main__":
    sys.exit(main())
