"""Tabular mode: the same Search runs on recorded curves (``table=``) or live, unchanged."""

from __future__ import annotations

import bz2
import pickle

import pytest

from nas_engine import Budget, Search
from nas_engine.benchmarks import JsonlCurveTable, NATSBench, NB201Table
from nas_engine.estimators import TSE, TSEEMA, ValAcc
from nas_engine.search import EvaluationWarning
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.store import StoreMismatchError
from nas_engine.strategies import FixedList, RandomSearch

from .conftest import TINY, shared_path

NATS_DIR = ("nas-bench-201", "nats-tss-v1_0-3ffb9-simple")


@pytest.fixture(scope="module")
def nats():
    return NATSBench(shared_path(*NATS_DIR))


def recorded_train_seconds(index, epochs):
    """Seconds NATS-Bench recorded for the first ``epochs`` epochs (cifar10-valid, hp 200, mean of seeds)."""
    with bz2.open(shared_path(*NATS_DIR, f"{index:06d}.pickle.pbz2"), "rb") as f:
        runs = [r for (ds, _), r in pickle.load(f)["200"]["all_results"].items() if ds == "cifar10-valid"]
    return sum(r["train_times"][e] for r in runs for e in range(epochs)) / len(runs)


def test_same_search_runs_on_the_nats_table_and_live(nats):
    space = nats.restrict(NB201Space())

    def search(**mode):
        return Search("regularized-evolution", space, TSEEMA(epochs=5), budget=Budget(evaluations=6),
                      progress=False, **mode)

    tabular = search(data=None, table=nats).run()
    assert len(tabular.history) == 6 and all(e.ok for e in tabular.history)
    assert {e.arch.string for e in tabular.history} <= set(nats.archs())
    for e in tabular.history:
        assert e.score == TSEEMA(epochs=5).score(nats.curve(e.arch))
        if e.cached:
            assert e.cost_seconds == 0
        else:
            assert e.curve.epochs == 5 and e.epochs == 5
            assert e.cost_seconds == pytest.approx(recorded_train_seconds(nats.index(e.arch), 5))
    assert tabular.total_cost_seconds == pytest.approx(sum(e.cost_seconds for e in tabular.history if not e.cached))
    assert [(e.arch, e.score) for e in search(data=None, table=nats).run().history] == \
        [(e.arch, e.score) for e in tabular.history]

    live = search(data="digits", protocol=TINY).run()
    assert len(live.history) == 6 and all(e.ok for e in live.history)
    assert {e.arch.string for e in live.history} <= set(nats.archs())
    trained = [e for e in live.history if not e.cached]
    assert all(e.curve.info["device"] == "cpu" and e.curve.epochs == 5 and e.cost_seconds > 0 for e in trained)
    assert all(e.curve.minibatch_losses for e in trained)  # trained here, not read from the table


def test_random_search_over_the_restricted_space(nats):
    r = Search(RandomSearch(repeats=False), nats.restrict(NB201Space()), "tse-ema", data=None, table=nats,
               budget=Budget(evaluations=10), progress=False).run()
    assert sorted(e.arch.string for e in r.history) == sorted(nats.archs())  # each once, then exhausted
    assert all(e.ok and not e.cached and e.epochs == 10 for e in r.history)
    best = max(nats.archs(), key=lambda a: TSEEMA().score(nats.curve(a, 10)))
    assert r.best.arch.string == best


def test_jsonl_table_backed_search(tmp_path):
    nb201 = NB201Table(shared_path("nas-bench-201", "nb201_cifar10_200ep.csv"),
                       shared_path("nas-bench-201", "nb201_cifar10valid_curves_200archs.jsonl"))
    archs = nb201.archs()[:30]
    table = JsonlCurveTable.write(tmp_path / "table.jsonl", (
        {"arch": a, "space": "nb201", "curve": nb201.curve(a, 20), "final_accuracy": nb201.final_accuracy(a),
         "params": nb201.params(a)} for a in archs))
    assert table.max_epochs == 20 and table.archs() == archs
    r = Search("regularized-evolution", table.restrict(NB201Space()), ValAcc(epochs=12), data=None, table=table,
               budget=Budget(evaluations=15), progress=False).run()
    assert len(r.history) == 15 and all(e.ok for e in r.history)
    for e in r.history:
        assert e.score == nb201.curve(e.arch).val_acc[11] and e.cost_seconds == 0  # the table records no times
    assert 0 < table.final_accuracy(r.best.arch) < 1


def test_tabular_search_errors(nats):
    space = nats.restrict(NB201Space())
    with pytest.raises(ValueError, match=r"TSEEMA\(epochs=20\) needs at least 20 epochs, but NATSBench.* records 12"):
        Search("random", space, TSEEMA(epochs=20), data=None, table=NATSBench(nats.path, hp="12"))
    Search("random", space, TSEEMA(epochs=12), data=None, table=NATSBench(nats.path, hp="12"))
    with pytest.raises(TypeError, match="table must be a CurveTable"):
        Search("random", space, "tse-ema", data=None, table=str(nats.path))
    outside = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    # errors in every evaluation are recorded as failed (with a warning), then raised (see nas_engine.search)
    with pytest.raises(KeyError, match=r"'\|none~0\|.*is not in NATSBench.*table\.restrict\(space\)"), \
            pytest.warns(EvaluationWarning):
        Search(FixedList([outside]), "nb201", "tse-ema", data=None, table=nats, progress=False).run()
    nb201 = NB201Table(shared_path("nas-bench-201", "nb201_cifar10_200ep.csv"),
                       shared_path("nas-bench-201", "nb201_cifar10valid_curves_200archs.jsonl"))
    with pytest.raises(ValueError, match=r"TSE needs LearningCurve\.train_loss.*no losses"), \
            pytest.warns(EvaluationWarning):
        Search("random", nb201.restrict(NB201Space()), TSE(epochs=5), data=None, table=nb201,
               progress=False).run()
    with pytest.raises(ValueError, match="this context has no dataset"), \
            pytest.warns(EvaluationWarning):  # live, without data
        Search("random", space, TSE(epochs=1), data=None, protocol=TINY, progress=False).run()


def test_store_keeps_live_and_tabular_runs_apart(nats, tmp_path):
    space = nats.restrict(NB201Space())

    def search(n, **mode):
        return Search("regularized-evolution", space, TSEEMA(epochs=2), budget=Budget(evaluations=n),
                      store=str(tmp_path), progress=False, **mode)

    first = search(3, data=None, table=nats).run()
    config = search(3, data=None, table=nats).config()
    assert config["table"]["type"] == "NATSBench" and config["space_subset"]["architectures"] == 3
    assert len(search(5, data=None, table=nats).run().history) == 5  # resumes the tabular run
    assert search(5, data=None, table=nats).run().history[:3] == first.history
    with pytest.raises(StoreMismatchError, match="differs in: .*table"):
        search(5, data="digits", protocol=TINY).run()
    with pytest.raises(StoreMismatchError, match="differs in: .*table"):
        search(5, data=None, table=NATSBench(nats.path, hp="12")).run()


def test_budget_in_charged_seconds_stops_on_recorded_time(nats):
    """``Budget(cost_seconds=)`` counts the table's recorded training time, not this process's wall time."""
    space = nats.restrict(NB201Space())
    per_arch = {a: recorded_train_seconds(nats.index(space.from_string(a)), 4) for a in nats.archs()}
    limit = 1.5 * min(per_arch.values())  # reached by the second distinct evaluation at the latest
    r = Search(RandomSearch(repeats=False), space, TSE(epochs=4), data=None, table=nats,
               budget=Budget(cost_seconds=limit), progress=False).run()
    charged = [e.cost_seconds for e in r.history]
    assert charged == pytest.approx([per_arch[e.arch.string] for e in r.history])
    assert sum(charged[:-1]) < limit <= sum(charged)  # stopped at the first candidate that reached the limit
    assert r.seconds < limit  # tabular: far less wall time than charged
    with pytest.raises(ValueError, match="cost_seconds"):
        Budget(cost_seconds=0)
