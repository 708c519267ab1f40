"""The NAS-Bench-101 peer check (``python -m reproduce.nb101_peer_check``, its helpers in ``reproduce.common``) and
the TSE scripts built on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reproduce.common import nb101_peer
from reproduce.common.naslib_peer import COST_COLUMNS
from reproduce.common.peer_tse import wall_all_runs

from .conftest import run_reproduce, shared_path

RESULTS = Path(__file__).resolve().parents[1] / "reproduce" / "results"


@pytest.fixture(scope="module")
def peer() -> pd.DataFrame:
    return nb101_peer.load_peer(shared_path(*nb101_peer.PEER_FILE).parents[1])


def test_params_and_flops_of_peer_cells_equal_naslibs_under_its_definition(peer, tmp_path):
    order = nb101_peer.seeded_order(peer, 0)
    got = nb101_peer.compute_costs(peer, tmp_path / "costs.csv", order[:3]).set_index("compact")
    assert (got["ours_params_naslib_def"] == got["naslib_params"]).all()
    assert (got["ours_flops_naslib_def"] == got["naslib_flops"]).all()
    assert (got["ours_params"] == got["naslib_params"]).all()  # the same network: every parameter counted
    # the engine's counter: 2 FLOPs per multiply-add of convs and matmuls only, NASLib's adds BN/ReLU/pool terms
    ratio = got["ours_flops"] / got["naslib_flops"]
    assert ((ratio > 1.9) & (ratio < 2.0)).all()
    committed = RESULTS / "nb101_peer_check" / "costs.csv"
    if committed.exists():
        old = pd.read_csv(committed).set_index("compact").loc[got.index, COST_COLUMNS]
        pd.testing.assert_frame_equal(got[COST_COLUMNS], old, check_dtype=False)


def test_seeded_order_puts_each_distinct_cell_first(peer):
    order = nb101_peer.seeded_order(peer, 0)
    assert sorted(order) == sorted(peer.index)
    cells = [nb101_peer.canonical(k) for k in order]
    distinct = len(set(cells))
    assert distinct == 292  # the 500 keys are 292 cells by the benchmark's hash
    assert len(set(cells[:distinct])) == distinct  # every cell once before any repeat
    assert nb101_peer.distinct_cells(peer, 0) == order[:distinct]
    assert nb101_peer.seeded_order(peer, 0) == order and nb101_peer.seeded_order(peer, 1) != order


def test_cell_accuracy_is_the_mean_over_a_cells_keys(peer):
    acc = nb101_peer.cell_accuracy(peer)
    assert len(acc) == 292
    groups: dict[str, list[float]] = {}
    for k in peer.index:
        groups.setdefault(nb101_peer.canonical(k), []).append(float(peer.at[k, "val_accuracy"]))
    biggest = max(groups, key=lambda c: len(groups[c]))
    assert len(groups[biggest]) == 55  # the bare input -> output cell
    assert acc[biggest] == pytest.approx(np.mean(groups[biggest]))
    assert min(groups[biggest]) < acc[biggest] < max(groups[biggest])  # its keys carry different repeats


@pytest.mark.parametrize("name", ["nb101_peer_check", "tse_nb101", "tse_randwired"])
def test_scripts_refuse_to_overwrite_a_non_empty_out(name, tmp_path):
    shared = shared_path("peer-reference", "naslib_zc_nasbench101.json").parents[1]
    (tmp_path / "summary.md").write_text("committed\n")
    done = run_reproduce(name, "--shared", shared, "--out", tmp_path)
    assert done.returncode != 0 and "exists and is not empty" in done.stderr
    assert (tmp_path / "summary.md").read_text() == "committed\n"


def test_a_resumed_tse_run_keeps_the_wall_time_of_the_runs_before_it(tmp_path):
    assert wall_all_runs(tmp_path, 2.5) == 2.5  # no summary yet: this run only
    (tmp_path / "summary.json").write_text(json.dumps({"wall_seconds_this_run": 900.0}))
    assert wall_all_runs(tmp_path, 1.5) == 901.5  # a summary written before the field existed
    (tmp_path / "summary.json").write_text(json.dumps({"wall_seconds_this_run": 1.5, "wall_seconds_all_runs": 901.5}))
    assert wall_all_runs(tmp_path, 2.0) == 903.5
    (tmp_path / "summary.json").write_text("{not json")
    assert wall_all_runs(tmp_path, 2.0) == 2.0
