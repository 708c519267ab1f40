"""``reproduce.tse_appendix``: TSE-E's fractional windows, TSE-EMA's decay and the curve predictors on the committed
recorded curves (what the script shares is in ``reproduce.common.recorded_curves``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from nas_engine.estimators import TSEE, TSEEMA
from reproduce.common.recorded_curves import RESULTS, load, paired_delta_ci, spearman_rows

from .conftest import run_reproduce, shared_path


def test_spearman_rows_and_the_paired_bootstrap():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 30)), rng.normal(size=(5, 30))
    x[0, :3] = x[0, 3]  # ties get average ranks, as scipy's
    assert np.allclose(spearman_rows(x, y), [spearmanr(a, b).statistic for a, b in zip(x, y)])
    truth = rng.normal(size=40)
    good, bad = truth + rng.normal(scale=0.1, size=40), rng.normal(size=40)
    assert paired_delta_ci(good, good, truth, draws=50) == (0.0, 0.0)
    lo, hi = paired_delta_ci(good, bad, truth, draws=200)
    assert 0 < lo < hi and paired_delta_ci(bad, good, truth, draws=200) == pytest.approx((-hi, -lo))


def test_recorded_scores_are_the_committed_ones():
    """TSE-E (E=1) and TSE-EMA scored from the committed NB201 curves reproduce tse_rank_correlation's criteria."""
    pop = load("NB201", shared_path(), costs=False)
    assert len(pop.archs) == 100 and pop.epochs == 12 and 0.1 < min(pop.truth.values()) < max(pop.truth.values()) < 1
    assert {len(c.minibatch_losses[-1]) for c in pop.curves.values()} == {79}
    committed = pd.read_csv(RESULTS / "tse_rank_correlation" / "criteria.csv").set_index(["estimator", "epochs"])
    y = [pop.truth[a] for a in pop.strings]
    for est, name in ((TSEE(epochs=12), "tse-e"), (TSEEMA(epochs=12), "tse-ema")):
        rho = spearmanr([est.score(pop.curves[a]) for a in pop.strings], y).statistic
        assert rho == pytest.approx(committed.loc[(name, 12), "spearman"], abs=1e-12)


def test_fractional_e_subcommand(tmp_path):
    out = tmp_path / "out"
    args = ["fractional-e", "--shared", shared_path(), "--draws", "20", "--out", out]
    done = run_reproduce("tse_appendix", *args)
    assert done.returncode == 0, done.stderr
    df = pd.read_csv(out / "fractional_e.csv").set_index(["space", "T", "E"])
    assert set(df.index.get_level_values("space")) == {"NB201", "NB101", "DARTS", "RandWired"}
    # E = 1 is the committed TSE-E of each script at its last budget
    for space, script, T in (("NB201", "tse_rank_correlation", 12), ("NB101", "tse_nb101", 12),
                             ("DARTS", "tse_darts", 12), ("RandWired", "tse_randwired", 20)):
        committed = pd.read_csv(RESULTS / script / "criteria.csv").set_index(["estimator", "epochs"])
        assert df.loc[(space, T, 1.0), "spearman"] == pytest.approx(committed.loc[("tse-e", T), "spearman"])
    assert df.loc[("NB201", 12, 0.1), "B"] == 79 and df.loc[("NB101", 12, 0.1), "B"] == 47
    assert ("NB201", 3, 5.0) not in df.index and ("NB201", 12, 10.0) in df.index  # E <= T
    assert "## Summary" in (out / "fractional_e.md").read_text()
    again = run_reproduce("tse_appendix", *args)
    assert again.returncode == 2 and "pass --overwrite" in again.stderr.strip().splitlines()[-1]
