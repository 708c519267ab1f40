"""The NAS-Bench-101 peer file and its keys (see ``nb101_peer_check``).

``peer-reference/naslib_zc_nasbench101.json`` (shared data) holds NASLib's values for 500
NAS-Bench-101 keys on CIFAR-10: raw, unpruned specs, 292 distinct cells by the benchmark's graph hash
(:func:`canonical`).  :func:`seeded_order` visits every distinct cell once before any repeat;
:func:`distinct_cells` and :func:`cell_accuracy` give the cells ``tse_nb101`` trains and their truth.
NASLib's network is the benchmark's own, our ``nb101`` space's default size, so :data:`TARGET` counts
it with :func:`~reproduce.common.naslib_peer.torchstat_counts` unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nas_engine.spaces.nb101 import NB101Space

from . import naslib_peer

__all__ = ["PEER_FILE", "SPACE", "TARGET", "load_peer", "canonical", "seeded_order", "distinct_cells",
           "cell_accuracy", "duplicate_lines", "compute_costs"]

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
    """Each distinct cell's mean recorded ``val_accuracy`` over its keys (the truth ``tse_nb101`` uses)."""
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
    size_text="stem 128, 3 stacks x 3 cells", truth_text="NB101 val acc",
    naslib_counts=naslib_peer.torchstat_counts, order=seeded_order)


def compute_costs(peer: pd.DataFrame, path: Path, archs=None) -> pd.DataFrame:
    return naslib_peer.compute_costs(TARGET, peer, path, archs)
