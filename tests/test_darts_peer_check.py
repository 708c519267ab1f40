"""The DARTS peer check (``python -m reproduce.darts_peer_check``): its params / FLOPs part reproduces the committed
values."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from reproduce.common import darts_peer
from reproduce.common.naslib_peer import COST_COLUMNS

from .conftest import run_reproduce, shared_path

COSTS = Path(__file__).resolve().parents[1] / "reproduce" / "results" / "darts_peer_check" / "costs.csv"


@pytest.fixture(scope="module")
def committed() -> pd.DataFrame:
    return pd.read_csv(COSTS).set_index("compact")


def test_costs_of_three_peer_architectures_reproduce_the_committed_values(committed, tmp_path):
    peer = darts_peer.load_peer(shared_path(*darts_peer.PEER_FILE).parents[1])
    archs = list(committed.index[:3])
    got = darts_peer.compute_costs(peer, tmp_path / "costs.csv", archs).set_index("compact")
    pd.testing.assert_frame_equal(got[COST_COLUMNS], committed.loc[archs, COST_COLUMNS], check_dtype=False)
    # ... and NASLib's recorded values exactly, under NASLib's definition
    assert (got["ours_params_naslib_def"] == got["naslib_params"]).all()
    assert (got["ours_flops_naslib_def"] == got["naslib_flops"]).all()
    assert (got["ours_params"] > got["naslib_params"]).all()  # the cell ops' affine BatchNorm parameters


def test_refuses_to_overwrite_a_non_empty_out(tmp_path):
    shared = shared_path(*darts_peer.PEER_FILE).parents[1]
    (tmp_path / "scores.csv").write_text("compact,proxy,score,cost_seconds\n")
    done = run_reproduce("darts_peer_check", "--shared", shared, "--out", tmp_path)
    assert done.returncode != 0 and "exists and is not empty" in done.stderr
    assert (tmp_path / "scores.csv").read_text() == "compact,proxy,score,cost_seconds\n"
