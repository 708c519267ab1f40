"""The query-based comparison script (``python -m reproduce.query_based_search``) on a small built table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nas_engine.benchmarks import JsonlCurveTable
from nas_engine.correlate import sample_architectures
from nas_engine.spaces.nb201 import NB201Space

from .conftest import run_reproduce


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A 12-architecture table with made-up curves (the script's logic does not depend on how they were trained)."""
    rng = np.random.default_rng(5)
    space = NB201Space()
    rows = []
    for a in sample_architectures(space, 12, seed=2):
        loss = np.sort(rng.uniform(0.5, 2.3, 3))[::-1]
        rows.append({"arch": a.string, "space": "nb201", "final_accuracy": float(rng.uniform(0.3, 0.9)),
                     "curve": {"minibatch_losses": [[float(v)] * 4 for v in loss], "train_loss": loss.tolist(),
                               "val_loss": loss.tolist(), "val_acc": np.sort(rng.uniform(0.1, 0.9, 3)).tolist(),
                               "epoch_seconds": rng.uniform(1.0, 5.0, 3).tolist()}})
    return JsonlCurveTable.write(tmp_path_factory.mktemp("qbs") / "table.jsonl", rows)


def test_traces_charge_recorded_time_and_track_the_incumbent(table, tmp_path):
    out = tmp_path / "out"
    done = run_reproduce("query_based_search", "--table", table.path, "--T", "1", "--seeds", "2", "--budget", "100",
                         "--strategies", "RE,Random", "--out", out)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    full = np.mean([table.curve(a).total_seconds for a in table.archs()])
    assert summary["T_end"] == 3 and summary["budget_seconds"] == pytest.approx(100 * full)
    assert (out / "incumbent_error.png").stat().st_size > 0
    traces = pd.read_csv(out / "traces.csv", keep_default_na=False)
    for (strategy, estimator, _seed), tr in traces.groupby(["strategy", "estimator", "seed"]):
        epochs = 1 if "T=1" in estimator else 3
        validate = estimator.startswith("ValAcc")
        for _, row in tr.iterrows():
            expected = 0.0 if row["cached"] else table.curve(row["arch"], epochs, validate=validate).total_seconds
            assert row["cost"] == pytest.approx(expected)
        assert np.allclose(tr["charged"], np.cumsum(tr["cost"]))
        # the incumbent is the best by the estimator's score so far (not by the truth)
        best = tr["score"].cummax()
        assert all(tr.loc[tr["score"] == b, "arch"].eq(a).any() for a, b in zip(tr["incumbent"], best))
        if strategy == "Random":  # 100 full trainings' worth covers the 12-architecture table
            assert sorted(tr["arch"]) == sorted(table.archs())
    s = pd.read_csv(out / "summary.csv")
    final = s[(s.truth == "table") & (s.strategy == "Random") & (s.estimator == "ValAcc (T=3)")
              & (s.budget_fraction == 1.0)]
    pick = max(table.archs(), key=lambda a: table.curve(a).val_acc[-1])
    assert final["mean_error"].iloc[0] == pytest.approx(1 - table.final_accuracy(pick))
    assert final["se_error"].iloc[0] == pytest.approx(0.0)


def test_refuses_an_early_budget_not_below_the_schedule(table, tmp_path):
    done = run_reproduce("query_based_search", "--table", table.path, "--T", "3", "--out", tmp_path)
    assert done.returncode != 0 and "T_end=3" in done.stderr
