import json
import math

import numpy as np
import pandas as pd
import pytest

from nas_engine.benchmarks import JsonlCurveTable
from nas_engine.build import build_table, table_from_store
from nas_engine.cli import main
from nas_engine.correlate import collect_curves, correlate, model_costs, sample_architectures
from nas_engine.curves import LearningCurve
from nas_engine.data import load_dataset
from nas_engine.estimators import TSEEMA
from nas_engine.search import Budget, Search
from nas_engine.spaces.nb201 import NB201Space

from .conftest import TINY

SPACE = NB201Space()


def test_sample_architectures_distinct_classes_and_restriction():
    archs = sample_architectures(SPACE, 50, seed=1)
    assert len({SPACE.canonical(a) for a in archs}) == 50
    assert archs == sample_architectures(SPACE, 50, seed=1)
    pool = [a.string for a in archs[:5]]
    sub = sample_architectures(SPACE, 5, seed=2, dedupe="string", among=pool)
    assert sorted(a.string for a in sub) == sorted(pool)
    with pytest.raises(ValueError, match="6 distinct architectures asked, but only 5 are given to sample from"):
        sample_architectures(SPACE, 6, among=pool, dedupe="string")


def _curve(losses, val_acc):
    return LearningCurve(minibatch_losses=[[x, x] for x in losses], val_loss=[1.0] * len(losses), val_acc=val_acc)


def test_correlate_criteria_per_estimator_and_budget():
    # truth order a < b < c < d; training losses agree with it, validation accuracy is reversed
    names = ["a", "b", "c", "d"]
    truth = {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4}
    curves = {n: _curve([2.0 - 0.1 * i, 1.5 - 0.2 * i, 1.0 - 0.2 * i], [0.5 - 0.1 * i] * 3)
              for i, n in enumerate(names)}
    curves["e"] = None  # a failed candidate: scores NaN, ranked last
    truth["e"] = 0.0
    df = correlate(curves, truth, estimators=["tse-ema", "valacc"], baselines={"params": {"a": 1, "b": 2, "c": 3,
                                                                                            "d": 4, "e": 0}})
    assert len(df) == 3 * 3 and set(df["estimator"]) == {"tse-ema", "valacc", "params"}
    assert list(df[df.estimator == "tse-ema"]["epochs"]) == [1, 2, 3]
    assert np.allclose(df[df.estimator == "tse-ema"]["spearman"], 1.0)
    assert np.allclose(df[df.estimator == "params"]["spearman"], 1.0)
    # valacc: reversed among a..d (sum of squared rank differences 20), while the failed
    # candidate ranks last on both sides: rho = 1 - 6*20/(5*24) = 0 exactly
    assert df[df.estimator == "valacc"]["spearman"].iloc[0] == pytest.approx(0.0)
    del curves["e"], truth["e"]
    assert correlate(curves, truth, estimators=["valacc"], budgets=[1])["spearman"].iloc[0] == pytest.approx(-1.0)
    with pytest.raises(KeyError, match="no ground truth"):
        correlate({"x": curves["a"], "a": curves["a"]}, truth)


def test_model_costs_counts_params_and_flops():
    archs = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
             "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_1x1~1|nor_conv_1x1~2|",
             "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|"]
    c = model_costs(SPACE, archs, num_classes=10, in_channels=3, resolution=32, C=16, N=5)
    assert c[archs[0]]["params"] == 1_531_546  # the benchmark's own count
    assert c[archs[0]]["flops"] > c[archs[1]]["flops"] > c[archs[2]]["flops"] > 0


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    data = load_dataset("digits")
    proto = TINY.replace(schedule_epochs=3)
    table = build_table(SPACE, data, proto, archs=4, out=out, seed=3, progress=False)
    return out, table, data, proto


def test_build_table_writes_full_curves_and_test_accuracy(built):
    out, table, data, proto = built
    assert len(table) == 4 and table.max_epochs == 3
    for a in table.archs():
        c = table.curve(a)
        assert c.epochs == 3 and len(c.val_acc) == 3 and c.minibatch_losses and c.total_seconds > 0
        assert 0.0 < table.final_accuracy(a) <= 1.0
    assert json.loads((out / "failed.json").read_text()) == []
    # rebuilding resumes from the store: same table, nothing retrained
    again = build_table(SPACE, data, proto, archs=4, out=out, seed=3, progress=False)
    assert [again.curve(a) for a in again.archs()] == [table.curve(a) for a in table.archs()]
    # a stopped build's store alone gives the same table (here: the finished build's)
    (out / "table.jsonl").unlink()
    assert main(["bench", "table", "--out", str(out)]) == 0
    from_store = JsonlCurveTable(out / "table.jsonl")
    assert from_store.archs() == table.archs()
    assert all(from_store.curve(a) == table.curve(a) and from_store.final_accuracy(a) == table.final_accuracy(a)
               for a in table.archs())
    with pytest.raises(FileNotFoundError, match="no benchmark build"):
        table_from_store(out / "nothing-here")


def test_search_and_correlate_on_a_built_table(built):
    out, table, data, proto = built
    r = Search("regularized-evolution", table.restrict(SPACE), TSEEMA(epochs=2), data=None, table=table,
               budget=Budget(evaluations=6), progress=False).run()
    assert all(e.ok for e in r.history)
    for e in r.history:
        if not e.cached:
            assert e.score == TSEEMA(epochs=2).score(table.curve(e.arch))
            assert e.cost_seconds == pytest.approx(table.curve(e.arch, 2, validate=False).total_seconds)
    curves = collect_curves(table.restrict(SPACE), table.archs(), epochs=3, table=table, progress=False)
    assert all(curves[a] == table.curve(a) for a in table.archs())
    df = correlate(curves, table.ground_truth(), estimators=["valacc"], budgets=[3])
    # the table's truth is the test accuracy after the last epoch: ValAcc at T_end tracks it
    assert df["spearman"].iloc[0] > 0 or math.isnan(df["spearman"].iloc[0])


def test_cli_bench_build_and_correlate(tmp_path, capsys):
    common = ["--C", "4", "--N", "1", "--batch-size", "128", "--device", "cpu", "--quiet"]
    assert main(["bench", "build", "--archs", "3", "--schedule-epochs", "2", "--workers", "1", "--out",
                 str(tmp_path / "b")]
                + common) == 0
    assert "wrote 3 architectures x 2 epochs" in capsys.readouterr().out
    assert main(["correlate", "--archs", "3", "--epochs", "2", "--schedule-epochs", "4", "--estimators",
                 "tse-ema,valacc,synflow,nwot", "--truth", str(tmp_path / "b" / "table.jsonl"),
                 "--out", str(tmp_path / "c")] + common) == 0
    assert (tmp_path / "c" / "criteria.csv").exists() and (tmp_path / "c" / "spearman_vs_budget.png").exists()
    crit = pd.read_csv(tmp_path / "c" / "criteria.csv")
    assert {"tse-ema", "valacc", "synflow", "nwot", "params", "flops"} <= set(crit.estimator)
    assert main(["bench", "build", "--archs", "3", "--out", str(tmp_path / "x")] + common) == 2
    assert "needs --schedule-epochs" in capsys.readouterr().err
