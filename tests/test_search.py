import math
import os
import textwrap
from pathlib import Path

import pytest

from nas_engine import Budget, Search, SearchResult
from nas_engine.context import Context
from nas_engine.estimators import TSEEMA, ValAcc
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.store import RunStore, StoreMismatchError
from nas_engine.strategies import FixedList

from .conftest import TINY, digits_subset, kill_after_records

ROOT = Path(__file__).resolve().parents[1]


def tiny_search(strategy="regularized-evolution", evaluations=12, **kw):
    kw.setdefault("progress", False)
    return Search(strategy, "nb201", kw.pop("estimator", TSEEMA(epochs=2)), data=digits_subset(), protocol=TINY,
                  budget=Budget(evaluations=evaluations), **kw)


def summary(result):
    return [(e.arch.string, e.score, e.status, e.cached) for e in result.history]


def test_re_nb201_tse_ema_twelve_evaluations_reproducible():
    r1 = tiny_search().run()
    assert len(r1.history) == 12
    assert all(e.ok and math.isfinite(e.score) and e.score < 0 for e in r1.history)
    assert [e.index for e in r1.history] == list(range(12))
    best = r1.best
    assert best.score == max(e.score for e in r1.history)
    space = NB201Space()
    assert space.to_string(space.from_string(best.arch.string)) == best.arch.string
    assert all(e.curve is not None and e.curve.epochs == 2 for e in r1.history if not e.cached)
    r2 = tiny_search().run()
    assert summary(r1) == summary(r2)
    df = r1.to_dataframe()
    assert list(df["arch"]) == [e.arch.string for e in r1.history] and len(df) == 12
    assert summary(tiny_search(seed=1).run()) != summary(r1)


def test_repeated_proposal_reuses_result_and_counts():
    a = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    b = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
    r = tiny_search(FixedList([a, b, a])).run()
    assert [e.cached for e in r.history] == [False, False, True]
    assert r.history[2].score == r.history[0].score and r.history[2].cost_seconds == 0.0


def test_budget_in_epochs_and_strategy_exhaustion():
    r = Search("random", "nb201", TSEEMA(epochs=2), data=digits_subset(), protocol=TINY,
               budget=Budget(epochs=5), progress=False).run()
    assert len(r.history) == 3 and sum(e.epochs for e in r.history) == 6
    one = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    assert len(tiny_search(FixedList([one]), evaluations=5).run().history) == 1


class PoisonedNB201(NB201Space):
    """NB201 whose network for one chosen architecture outputs NaN (a diverging candidate)."""

    def __init__(self, poisoned):
        self.poisoned = poisoned

    def build(self, a, num_classes, **kw):
        model = super().build(a, num_classes, **kw)
        if a.string == self.poisoned:
            model.register_forward_hook(lambda m, i, out: out * float("nan"))
        return model


def test_diverging_candidate_is_recorded_failed_and_search_goes_on(tmp_path):
    archs = [NB201Space().sample(__import__("numpy").random.default_rng(i)).string for i in range(4)]
    space = PoisonedNB201(archs[1])
    r = Search(FixedList(archs), space, TSEEMA(epochs=2), data=digits_subset(), protocol=TINY,
               budget=Budget(evaluations=4), progress=False, store=str(tmp_path / "s")).run()
    assert [e.status for e in r.history] == ["ok", "failed", "ok", "ok"]
    bad = r.history[1]
    assert bad.score == -math.inf and bad.reason.startswith("diverged")
    assert r.best.arch.string != archs[1]
    rec = RunStore(tmp_path / "s").records()
    assert rec[1]["status"] == "failed" and rec[1]["score"] is None  # strict JSON: no -Infinity
    assert SearchResult.load(tmp_path / "s", space=space).history[1].score == -math.inf


def test_store_mismatch_is_refused(tmp_path):
    tiny_search(evaluations=2, store=str(tmp_path)).run()
    with pytest.raises(StoreMismatchError, match="differs in: seed"):
        tiny_search(evaluations=2, store=str(tmp_path), seed=5).run()


def test_resume_in_process_continues_to_a_larger_budget(tmp_path):
    from nas_engine.strategies import RegularizedEvolution

    def re():
        return RegularizedEvolution(population_size=3, sample_size=2, scale_to_budget=False)

    full = summary(tiny_search(re(), evaluations=8).run())
    first = tiny_search(re(), evaluations=5, store=str(tmp_path)).run()
    assert summary(first) == full[:5]
    assert summary(tiny_search(re(), evaluations=8, store=str(tmp_path)).run()) == full


def test_bad_inputs_are_refused_early():
    with pytest.raises(ValueError, match=r"TSEEMA\(epochs=20\) needs at least 20 epochs"):
        Search("random", "nb201", TSEEMA(epochs=20), data=digits_subset(), protocol=TINY)
    with pytest.raises(ValueError, match="Budget needs at least one limit"):
        Budget()
    with pytest.raises(LookupError, match="unknown strategy 'evolution'.*regularized-evolution"):
        Search("evolution", "nb201", "tse-ema", data=digits_subset(), protocol=TINY)
    with pytest.raises(ValueError, match="unknown executor 'slurm'"):
        Search("random", "nb201", ValAcc(epochs=1), data=digits_subset(), protocol=TINY, executor="slurm")



@pytest.mark.parametrize("kw, msg", [
    ({"evaluations": 0}, "Budget: evaluations must be an integer >= 1 or None, got 0"),
    ({"evaluations": 2.5}, "Budget: evaluations must be an integer >= 1 or None, got 2.5"),
    ({"evaluations": math.inf}, "Budget: evaluations must be an integer >= 1 or None, got inf"),
    ({"evaluations": True}, "Budget: evaluations must be an integer >= 1 or None, got True"),
    ({"epochs": 0}, "Budget: epochs must be a finite number > 0 or None, got 0"),
    ({"epochs": math.inf}, "Budget: epochs must be a finite number > 0 or None, got inf"),
    ({"seconds": -1.0}, "Budget: seconds must be a finite number > 0 or None, got -1.0"),
    ({"seconds": math.nan}, "Budget: seconds must be a finite number > 0 or None, got nan"),
    ({"cost_seconds": True}, "Budget: cost_seconds must be a finite number > 0 or None, got True"),
    ({"evaluations": 5, "cost_seconds": "60"}, "Budget: cost_seconds must be a finite number > 0 or None, got '60'"),
])
def test_budget_refuses_bad_limits(kw, msg):
    with pytest.raises(ValueError) as info:
        Budget(**kw)
    assert str(info.value) == msg


def test_budget_accepts_numbers_and_normalises_evaluations():
    import numpy as np

    b = Budget(evaluations=np.int64(3), epochs=0.5, seconds=10, cost_seconds=1e-3)
    assert type(b.evaluations) is int and b.evaluations == 3 and b.seconds == 10


def test_budget_default_is_the_one_default_number_of_evaluations():
    from nas_engine.budget import DEFAULT_EVALUATIONS

    assert DEFAULT_EVALUATIONS == 20 and Budget.default() == Budget(evaluations=20)


_WORKER = textwrap.dedent("""
    import sys
    from nas_engine import Budget, Search
    from nas_engine.estimators import TSEEMA
    from tests.conftest import TINY, digits_subset
    Search("regularized-evolution", "nb201", TSEEMA(epochs=2), data=digits_subset(), protocol=TINY,
           budget=Budget(evaluations=int(sys.argv[2])), store=sys.argv[1], progress=False, workers=1).run()
""")


def test_resume_after_kill_loses_nothing_and_retrains_nothing(tmp_path, monkeypatch):
    """A search process killed with SIGKILL mid-run resumes to the uninterrupted result."""
    n = 10
    store = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done_before = [r["arch"] for r in kill_after_records(["-c", _WORKER, str(store), str(n)],
                                                         store, 4, env=env, cwd=ROOT, timeout=120)]
    assert 4 <= len(done_before) < n

    trained = []
    original = Context.learning_curve

    def counting(self, arch, epochs, *, validate):
        trained.append(arch.string)
        return original(self, arch, epochs, validate=validate)

    monkeypatch.setattr(Context, "learning_curve", counting)
    resumed = tiny_search(evaluations=n, store=str(store)).run()
    assert not set(trained) & set(done_before), "a finished evaluation was trained again"
    assert len(trained) == sum(1 for e in resumed.history[len(done_before):] if not e.cached)
    monkeypatch.setattr(Context, "learning_curve", original)
    assert summary(resumed) == summary(tiny_search(evaluations=n).run())
