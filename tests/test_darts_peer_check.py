"""The DARTS peer check (reproduce/darts_peer_check.py): its params / FLOPs part reproduces the committed values."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from .conftest import load_reproduce_script, shared_path

COSTS = Path(__file__).resolve().parents[1] / "reproduce" / "results" / "darts_peer_check" / "costs.csv"


@pytest.fixture(scope="module")
def script():
    return load_reproduce_script("darts_peer_check")


@pytest.fixture(scope="module")
def committed() -> pd.DataFrame:
    return pd.read_csv(COSTS).set_index("compact")


def test_costs_of_three_peer_architectures_reproduce_the_committed_values(script, committed, tmp_path):
    peer = script.load_peer(shared_path(*script.PEER_FILE).parents[1])
    archs = list(committed.index[:3])
    got = script.compute_costs(peer, tmp_path / "costs.csv", archs).set_index("compact")
    pd.testing.assert_frame_equal(got[script.COST_COLUMNS], committed.loc[archs, script.COST_COLUMNS],
                                  check_dtype=False)
    # ... and NASLib's recorded values exactly, under NASLib's definition
    assert (got["ours_params_naslib_def"] == got["naslib_params"]).all()
    assert (got["ours_flops_naslib_def"] == got["naslib_flops"]).all()
    assert (got["ours_params"] > got["naslib_params"]).all()  # the cell ops' affine BatchNorm parameters


def test_refuses_to_overwrite_a_non_empty_out(script, tmp_path, capsys):
    shared = shared_path(*script.PEER_FILE).parents[1]
    (tmp_path / "scores.csv").write_text("compact,proxy,score,cost_seconds\n")
    with pytest.raises(SystemExit):
        script.main(["--shared", str(shared), "--out", str(tmp_path)])
    assert "exists and is not empty" in capsys.readouterr().err
