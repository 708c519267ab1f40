"""Zero-cost proxies (``synflow``, ``snip``, ``grasp``, ``fisher``, ``grad-norm``, ``plain``, ``jacov``,
``nwot``, ``params``, ``flops``): hand-computed values, orderings, determinism, no global side effects."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nas_engine import Budget, Search
from nas_engine.context import Context
from nas_engine.correlate import correlate
from nas_engine.data import load_dataset
from nas_engine.estimators.zero_cost import (
    MEASURES,
    ZERO_COST_PROXIES,
    ZeroCostEstimator,
    _deterministic,
    compute_measure,
    draw_minibatch,
    zero_cost_scores,
)
from nas_engine.registry import create
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.strategies import FixedList
from nas_engine.testing import check_registered as check_plugin

from .conftest import TINY

SPACE = NB201Space()
ALL = ("synflow", "snip", "grasp", "fisher", "grad-norm", "plain", "jacov", "nwot", "params", "flops")
CONV3 = SPACE.from_ops(["nor_conv_3x3"] * 6)
CONV1 = SPACE.from_ops(["nor_conv_1x1"] * 6)
SKIP = SPACE.from_ops(["skip_connect"] * 6)
NONE = SPACE.from_ops(["none"] * 6)
MIXED = SPACE.from_string("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def ctx(digits):
    return Context(space=SPACE, data=digits, protocol=TINY.replace(batch_size=32), seed=0)


def test_every_proxy_is_registered_and_conforms():
    assert set(ZERO_COST_PROXIES) == set(ALL) == set(MEASURES)
    for name in ALL:
        est = check_plugin("estimator", name)
        # every constructor parameter is visible, also where a measure reads no data (it must stay None)
        assert est.get_params() == {"batch_size": None}
    assert create("estimator", "snip", batch_size=16).get_params() == {"batch_size": 16}


def test_bad_configuration_is_rejected_early(digits):
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1 or None, got 0"):
        create("estimator", "snip", batch_size=0)
    with pytest.raises(ValueError, match="SynFlow does not read data; batch_size must be None"):
        create("estimator", "synflow", batch_size=8)
    with pytest.raises(TypeError, match="ZeroCostEstimator.measure must name a registered zero-cost measure"):
        ZeroCostEstimator()
    with pytest.raises(ValueError, match="unknown zero-cost measure 'snap'"):
        compute_measure("snap", nn.Linear(2, 2), torch.zeros(2, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="this context has no dataset"):
        Search("random", "nb201", "nwot", data=None, protocol=TINY, progress=False)
    ctx1 = Context(space=SPACE, data=digits, protocol=TINY, seed=0)
    with pytest.raises(ValueError, match="nwot needs a minibatch of at least 2 images, got 1"):
        create("estimator", "nwot", batch_size=1).estimate(MIXED, ctx1)


def test_synflow_by_hand_on_a_linear_network():
    # |W1| = [[1, 2], [3, 4]], |W2| = [[1, 2]]; input ones: h = |W1| 1 = (3, 7), R = 1*3 + 2*7 = 17.
    # dR/dW2 = h -> sum |W2| h = 17; dR/dW1[i, j] = |W2|_i -> sum |W1| (x) |W2| = 1+2+6+8 = 17.  Total 34.
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, 4.0]]))
        net[2].weight.copy_(torch.tensor([[-1.0, 2.0]]))
    x = torch.randn(5, 2)  # synflow reads only the shape
    assert compute_measure("synflow", net, x, torch.zeros(5, dtype=torch.long)) == 34.0
    # BatchNorm is switched off, as in the reference: the same value with a BN in between
    bn_net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.BatchNorm1d(2), nn.ReLU(), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        bn_net[0].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, 4.0]]))
        bn_net[3].weight.copy_(torch.tensor([[-1.0, 2.0]]))
    assert compute_measure("synflow", bn_net, x, torch.zeros(5, dtype=torch.long)) == 34.0


def test_gradient_measures_by_hand_on_a_linear_model():
    # one linear layer, logits z = W x, cross-entropy: dL/dW = (softmax(z) - onehot(y)) x^T / n
    torch.manual_seed(0)
    net = nn.Linear(3, 2, bias=False)
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 1, 0])
    w = net.weight.detach()
    g = (torch.softmax(x @ w.T, 1) - nn.functional.one_hot(y, 2)).T @ x / 4
    assert compute_measure("snip", net, x, y) == pytest.approx(float((w * g).abs().sum()), rel=1e-5)
    assert compute_measure("plain", net, x, y) == pytest.approx(float((w * g).sum()), rel=1e-5)
    assert compute_measure("grad-norm", net, x, y) == pytest.approx(float(g.norm()), rel=1e-5)
    # fisher: per output k, 0.5 * mean_n (a_nk * dL/da_nk)^2, times the 3 parameters of channel k
    a = x @ w.T
    da = (torch.softmax(a, 1) - nn.functional.one_hot(y, 2)) / 4
    assert compute_measure("fisher", net, x, y) == pytest.approx(float(3 * 0.5 * (a * da).pow(2).mean(0).sum()),
                                                                 rel=1e-5)
    # grasp: -w . (H g), H the Hessian of L in w (by torch.autograd.functional.hessian)
    def loss(wflat):
        return nn.functional.cross_entropy(x @ wflat.view(2, 3).T, y)

    H = torch.autograd.functional.hessian(loss, w.reshape(-1))
    expect = float(-(w.reshape(-1) @ (H @ g.reshape(-1))))
    assert compute_measure("grasp", net, x, y) == pytest.approx(expect, rel=1e-4)


def test_params_and_flops_by_hand_on_a_small_nb201_network():
    # node1 = conv1x1(x) reaches node 3 only through `none` edges (dead: built, never run);
    # node2 = x; node3 = x + conv1x1(node2)
    arch = SPACE.from_string("|nor_conv_1x1~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|")
    model = SPACE.build(arch, 3, in_channels=1, C=2, N=1)
    x = torch.zeros(4, 1, 8, 8)
    # params: stem 1*2*9 + BN 4 = 22; cells (2 conv1x1 + BN each) at C=2, 4, 8: 16 + 48 + 160;
    # reductions 2->4: 80 + 152 + 8 = 240, 4->8: 304 + 592 + 32 = 928; last BN 16; classifier 8*3 + 3 = 27
    assert compute_measure("params", model, x, None) == 22 + 16 + 240 + 48 + 928 + 160 + 16 + 27 == 1457
    # FLOPs of one 8x8 image (2 per multiply-add): stem 2*128*9; each cell runs one conv1x1 (2*C*H*W*C);
    # reductions: conv_a 2*out*9*Cin, conv_b 2*out*9*Cout, shortcut 2*out*Cin; classifier 2*8*3
    stem = 2 * 128 * 9
    cells = 2 * 128 * 2 + 2 * 64 * 4 + 2 * 32 * 8
    red1 = 2 * 64 * 18 + 2 * 64 * 36 + 2 * 64 * 2
    red2 = 2 * 32 * 36 + 2 * 32 * 72 + 2 * 32 * 4
    assert compute_measure("flops", model, x, None) == stem + cells + red1 + red2 + 48 == 18224


@pytest.mark.parametrize("name", ALL)
def test_deterministic_finite_and_costed(name, ctx):
    est = create("estimator", name)
    a, b = est.estimate(MIXED, ctx), create("estimator", name).estimate(MIXED, ctx)
    assert a.score == b.score and math.isfinite(a.score)
    assert a.epochs == 0 and a.curve is None and a.cost_seconds > 0 and a.info["measure"] == name
    if MEASURES[name].uses_data:
        assert a.info["batch_size"] == 32


def test_scores_depend_on_the_seed_and_the_data(ctx, digits):
    other = Context(space=SPACE, data=digits, protocol=ctx.protocol, seed=1)
    for name in ("synflow", "snip", "nwot"):  # new weights (synflow, snip) and a new minibatch (all three)
        est = create("estimator", name)
        assert est.estimate(MIXED, ctx).score != est.estimate(MIXED, other).score
    for name in ("params", "flops"):
        est = create("estimator", name)
        assert est.estimate(MIXED, ctx).score == est.estimate(MIXED, other).score
    x1, y1 = draw_minibatch(digits, 32, 0)
    x2, y2 = draw_minibatch(digits, 32, 0)
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and x1.shape == (32, 1, 8, 8)
    assert not torch.equal(draw_minibatch(digits, 32, 1)[0], x1)


def test_known_orderings(ctx):
    def score(name, arch):
        return create("estimator", name).estimate(arch, ctx).score

    # sizes: every conv3x3 > every conv1x1 > skips only
    for name in ("params", "flops", "synflow"):
        assert score(name, CONV3) > score(name, CONV1) > score(name, SKIP), name
    # nwot: more ReLU layers add more positive semi-definite terms to K
    assert score("nwot", CONV3) > score("nwot", SKIP)
    # gradient sensitivities are non-negative sums; jacov <= -batch (log v + 1/v >= 1 for v > 0)
    for name in ("snip", "grad-norm", "fisher"):
        assert score(name, CONV3) > 0 and score(name, SKIP) > 0
    assert score("jacov", CONV3) <= -32 and score("jacov", SKIP) <= -32


def test_a_network_without_connections_gets_undefined_or_zero_scores(ctx):
    # all-`none` cells: the logits do not depend on the input or on any conv weight
    est = {n: create("estimator", n).estimate(NONE, ctx).score for n in ALL}
    assert math.isnan(est["jacov"]) and est["nwot"] == -math.inf
    assert est["synflow"] == 0.0 and est["snip"] == 0.0 and est["params"] > 0


def test_no_global_side_effects(ctx):
    cudnn = torch.backends.cudnn

    def flags():
        return (cudnn.enabled, cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32,
                torch.backends.cuda.matmul.allow_tf32, torch.are_deterministic_algorithms_enabled(),
                torch.is_grad_enabled(), torch.get_default_dtype(), torch.get_num_threads())

    before, rng = flags(), torch.random.get_rng_state()
    with torch.no_grad():  # the measures enable gradients themselves
        scores = [create("estimator", n).estimate(MIXED, ctx).score for n in ALL]
    assert all(math.isfinite(s) for s in scores)
    assert flags() == before and torch.equal(torch.random.get_rng_state(), rng)


def test_cudnn_settings_are_scoped_to_the_measurement():
    cudnn = torch.backends.cudnn
    before = (cudnn.benchmark, cudnn.deterministic)
    with _deterministic(torch.device("cuda")):
        assert (cudnn.benchmark, cudnn.deterministic) == (False, True)
    assert (cudnn.benchmark, cudnn.deterministic) == before
    with _deterministic(torch.device("cpu")):
        assert (cudnn.benchmark, cudnn.deterministic) == before


def test_in_a_search_and_in_correlate(digits, ctx):
    res = Search("random", "nb201", "synflow", data=digits, protocol=ctx.protocol, budget=Budget(evaluations=3),
                 seed=0, progress=False).run()
    assert len(res.history) == 3 and all(ev.ok and ev.epochs == 0 for ev in res.history)
    direct = create("estimator", "synflow")
    assert [ev.score for ev in res.history] == [direct.estimate(ev.arch, ctx).score for ev in res.history]
    # a network with an undefined score is recorded as failed; the search goes on
    res = Search(FixedList([NONE.string, MIXED.string]), "nb201", "jacov", data=digits, protocol=ctx.protocol,
                 budget=Budget(evaluations=2), progress=False).run()
    assert [ev.ok for ev in res.history] == [False, True] and "non-finite" in res.history[0].reason
    # zero_cost_scores gives the estimators' scores, in correlate's baseline form
    archs = [CONV3, CONV1, SKIP, MIXED]
    zc = zero_cost_scores(SPACE, archs, digits, ctx.protocol, proxies=("params", "nwot"), seed=0)
    assert zc["nwot"][MIXED.string] == create("estimator", "nwot").estimate(MIXED, ctx).score
    truth = {CONV3.string: 0.9, CONV1.string: 0.8, SKIP.string: 0.3, MIXED.string: 0.85}
    df = correlate(None, truth, baselines=zc)
    assert list(df.estimator) == ["params", "nwot"] and list(df.epochs) == [0, 0]
    assert df.set_index("estimator").loc["params", "spearman"] == pytest.approx(1.0)
