"""The zero-cost vs FEAR script (``python -m reproduce.zero_cost_synthetic``) end to end at a tiny scale, and
--combine."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from .conftest import SHARED_DATA as SHARED
from .conftest import run_reproduce

pytestmark = pytest.mark.xdist_group("zero_cost_synthetic_script")  # one worker runs the script once


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("zcs")
    args = ["--side", "4", "--archs", "5", "--n-train", "300", "--n-val", "100", "--n-test", "200", "--epochs", "2",
            "--short-epochs", "1,2", "--batch-size", "100", "--C", "4", "--fear-threshold", "0.15",
            "--fear-stage2-epochs", "1", "--shared", str(SHARED), "--out", str(out)]
    done = run_reproduce("zero_cost_synthetic", *args)
    assert done.returncode == 0, done.stderr
    return out


def test_scores_and_summary_cover_every_estimator(run):
    scores = pd.read_csv(run / "scores.csv")
    assert len(scores) == 5 and scores["arch"].is_unique
    build = pd.read_json(run / "build" / "table.jsonl", lines=True)
    assert len(build) == 5
    # the truth is the test accuracy of the last epoch, an accuracy on 200 images
    assert ((scores["truth"] * 200).round(6) % 1 == 0).all() and scores["truth"].between(0, 1).all()
    summary = pd.read_csv(run / "summary.csv").set_index("estimator")
    expected = {"fear", "val_acc@1", "train_acc@1", "val_acc@2", "train_acc@2", "synflow", "snip", "grasp", "fisher",
                "grad-norm", "jacov", "nwot", "plain", "params", "flops",
                "fear epochs-to-threshold (fewer is better)"}
    assert expected <= set(summary.index)
    finite = summary["spearman"].dropna()
    assert len(finite) >= 10 and finite.between(-1, 1).all()
    # short regular training is read off the ground-truth runs: its cost is that of the first epochs
    assert (scores["val_acc@1_seconds"] < scores["full_seconds"]).all()
    assert (scores["val_acc@2_seconds"] == scores["full_seconds"]).all()
    assert "generated at 4x4" in (run / "summary.md").read_text()
    if (SHARED / "nas-bench-201" / "nb201_cifar10_200ep.csv").exists():
        nb = pd.read_csv(SHARED / "nas-bench-201" / "nb201_cifar10_200ep.csv").set_index("arch_str")
        col = "NB201 CIFAR-10 test acc (200 ep)"
        assert np.allclose(scores[col], nb.loc[scores["arch"], "cifar10_test_acc"].to_numpy())
        assert col in summary.index


def test_combine_gives_mean_min_max_over_runs(run, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    first = pd.read_csv(run / "summary.csv")
    shifted = first.assign(spearman=first["spearman"] - 0.2)
    shifted.to_csv(other / "summary.csv", index=False)
    done = run_reproduce("zero_cost_synthetic", "--combine", f"{run},{other}", "--out", tmp_path / "c")
    assert done.returncode == 0, done.stderr
    combined = pd.read_csv(tmp_path / "c" / "combined.csv").set_index("estimator")
    for row in first.itertuples(index=False):
        if math.isnan(row.spearman):
            continue
        got = combined.loc[row.estimator]
        assert got["runs"] == 2
        assert got["spearman_mean"] == pytest.approx(row.spearman - 0.1)
        assert got["spearman_min"] == pytest.approx(row.spearman - 0.2)
        assert got["spearman_max"] == pytest.approx(row.spearman)
    assert "| fear |" in (tmp_path / "c" / "combined.md").read_text()
    done = run_reproduce("zero_cost_synthetic", "--combine", tmp_path / "missing", "--out", tmp_path / "c")
    assert done.returncode != 0 and "no summary.csv in" in done.stderr
