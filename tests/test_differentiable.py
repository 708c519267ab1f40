"""Differentiable NAS: the continuous relaxation of the spaces and the darts / darts-tse / drnas / drnas-tse
strategies (correctness on tiny problems, derivation rules, bit-exact resume, Search and CLI)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nas_engine import Budget, Search
from nas_engine.cli import main
from nas_engine.context import Context
from nas_engine.data import load_dataset
from nas_engine.registry import create
from nas_engine.spaces.darts import EDGES as DARTS_EDGES
from nas_engine.spaces.darts import RELAXED_OPS, DartsSpace
from nas_engine.spaces.nb201 import EDGES, OPS, NB201Space
from nas_engine.strategies.differentiable import CHECKPOINT, RelaxedTrainer, hessian_vector_product
from nas_engine.strategies.differentiable import trainer as trainer_module
from nas_engine.training import Protocol

from .conftest import TINY, digits_subset

NB201 = NB201Space()
DARTS = DartsSpace()
METHODS = ("darts", "darts-tse", "drnas", "drnas-tse")
TINY_SEARCH = TINY.replace(schedule_epochs=2, batch_size=64, lr=0.025, lr_min=0.001, momentum=0.9, nesterov=False,
                           weight_decay=5e-4)


def digits():
    return digits_subset()


def small_digits():
    """512 training and 128 validation images: enough minibatches for the trainer tests, half the time."""
    return load_dataset("digits", n_train=512, n_val=128)


def float64_supernet(space, seed=0, **size):
    torch.manual_seed(seed)
    return space.supernet(10, in_channels=1, **size).double()


def softmax_weights(alphas, groups):
    return {g: F.softmax(a, dim=-1) for g, a in zip(groups, alphas)}


def random_alphas(space, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64).requires_grad_(True)
            for shape in space.relaxation().values()]


# -- the relaxation -------------------------------------------------------------------------
def test_one_hot_mixing_weights_compute_the_single_path():
    """With one-hot weights the mixture is the path itself (NB201, none included)."""
    net = float64_supernet(NB201, C=4, N=1)
    x = torch.randn(8, 1, 8, 8, dtype=torch.float64)
    for ops in (["nor_conv_3x3", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "none", "nor_conv_3x3"],
                ["skip_connect"] * 6, ["nor_conv_1x1", "none", "nor_conv_3x3", "none", "avg_pool_3x3", "none"]):
        w = torch.zeros(len(EDGES), len(OPS), dtype=torch.float64)
        for k, op in enumerate(ops):
            w[k, OPS.index(op)] = 1.0
        torch.testing.assert_close(net.mixed(x, {"cell": w}), net(x, NB201.from_ops(ops)))


def test_darts_one_hot_mixing_weights_compute_the_single_path():
    net = float64_supernet(DARTS, C=4, layers=3)
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    arch = DARTS.sample(np.random.default_rng(3))
    normal, reduce = DARTS.cells(arch)
    weights = {}
    for group, cell in (("normal", normal), ("reduce", reduce)):
        w = torch.zeros(len(DARTS_EDGES), len(RELAXED_OPS), dtype=torch.float64)
        for k, (op, j) in enumerate(cell):
            w[DARTS_EDGES.index((j, 2 + k // 2)), RELAXED_OPS.index(op)] = 1.0
        weights[group] = w
    torch.testing.assert_close(net.mixed(x, weights), net(x, arch))


@pytest.mark.parametrize("space, size", [(NB201, {"C": 3, "N": 1}), (DARTS, {"C": 3, "layers": 3})],
                         ids=["nb201", "darts"])
def test_architecture_gradient_matches_finite_differences(space, size):
    net = float64_supernet(space, **size)
    groups = list(space.relaxation())
    x, y = torch.randn(6, 1, 8, 8, dtype=torch.float64), torch.arange(6) % 10
    alphas = random_alphas(space)

    def loss():
        return F.cross_entropy(net.mixed(x, softmax_weights(alphas, groups)), y)

    grads = torch.autograd.grad(loss(), alphas)
    rng = np.random.default_rng(0)
    eps = 1e-6
    for a, g in zip(alphas, grads):
        for _ in range(6):
            idx = tuple(int(rng.integers(n)) for n in a.shape)
            with torch.no_grad():
                a[idx] += eps
                up = float(loss())
                a[idx] -= 2 * eps
                down = float(loss())
                a[idx] += eps
            assert float(g[idx]) == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-9)


def test_second_order_hessian_vector_product_matches_the_exact_one():
    """DARTS's finite-difference grad^2_{alpha,w} L . v against autograd's exact mixed second derivative."""
    net = float64_supernet(NB201, C=3, N=1)
    params = list(net.parameters())
    x, y = torch.randn(8, 1, 8, 8, dtype=torch.float64), torch.arange(8) % 10
    alphas = random_alphas(NB201, seed=1)

    def loss():
        return F.cross_entropy(net.mixed(x, softmax_weights(alphas, ["cell"])), y)

    g = torch.Generator().manual_seed(2)
    v = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params]
    grad_w = torch.autograd.grad(loss(), params, create_graph=True)
    exact = torch.autograd.grad(sum((gw * vi).sum() for gw, vi in zip(grad_w, v)), alphas)
    before = [p.detach().clone() for p in params]
    # DARTS's r=0.01 straddles ReLU kinks on this tiny network; the method converges to the exact product
    approx = hessian_vector_product(loss, params, alphas, v, r=1e-5)
    assert all(torch.equal(p, b) for p, b in zip(params, before))  # the weights are restored exactly
    for e, a in zip(exact, approx):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-7)


def test_unrolled_gradient_matches_exact_unrolled_differentiation():
    """Second-order DARTS: grad_alpha L_val(w - eta * (mu*buf + grad_w L_train + wd*w), alpha), exactly by
    autograd through the SGD step, against the trainer's finite-difference approximation."""
    data = digits()
    proto = Protocol(schedule_epochs=2, batch_size=16, lr=0.05, lr_min=0.0, momentum=0.9, nesterov=False,
                     weight_decay=5e-4, device="cpu", channels_last=False, augment=False, size={"C": 3, "N": 1})
    torch.manual_seed(0)
    net = NB201.supernet(10, in_channels=1, C=3, N=1).double()
    t = RelaxedTrainer(net, NB201, data, proto, order=2, seed=0, grad_clip=None, hvp_r=1e-5)
    with torch.no_grad():
        for a in t.alphas:
            a.copy_(torch.randn(a.shape, generator=torch.Generator().manual_seed(5)))
        t.alphas[0].data = t.alphas[0].data.double()
    t.alphas = [t.alphas[0].detach().double().requires_grad_(True)]
    xt, yt = data.x_train[:16].double(), data.y_train[:16]
    xv, yv = data.x_val[:16].double(), data.y_val[:16]
    # one real SGD step first, so the momentum buffers take part
    t._weight_step(xt, yt)
    approx = t.unrolled_gradient(xt, yt, xv, yv)

    opt = t.optimization.optimizer
    eta, mu, wd = (opt.param_groups[0][k] for k in ("lr", "momentum", "weight_decay"))
    params = t.params
    alpha = t.alphas[0]
    w_train = {"cell": F.softmax(alpha, -1).detach()}
    g = torch.autograd.grad(F.cross_entropy(net.mixed(xt, {"cell": F.softmax(alpha, -1)}), yt), params,
                            create_graph=True)
    names = [n for n, _ in net.named_parameters()]
    unrolled = {n: p - eta * (mu * opt.state[p]["momentum_buffer"] + gp + wd * p)
                for n, p, gp in zip(names, params, g)}

    class Mixed(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x, w):
            return self.inner.mixed(x, w)

    out = torch.func.functional_call(Mixed(net), {f"inner.{n}": v for n, v in unrolled.items()},
                                     (xv, {"cell": F.softmax(alpha, -1)}))
    exact = torch.autograd.grad(F.cross_entropy(out, yv), alpha)[0]
    del w_train
    assert exact.abs().max() > 1e-3  # not trivially zero
    torch.testing.assert_close(approx[0], exact, rtol=1e-3, atol=1e-5)


# -- the derivation rules ----------------------------------------------------------------------
def test_nb201_derive_takes_the_strongest_op_per_edge():
    w = np.full((6, 5), 0.1)
    chosen = ["none", "skip_connect", "nor_conv_3x3", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3"]
    for k, op in enumerate(chosen):
        w[k, OPS.index(op)] = 0.6
    assert NB201.derive({"cell": w}).spec == tuple(chosen)
    assert NB201.derive({"cell": torch.tensor(w)}).spec == tuple(chosen)  # tensors too
    assert NB201.derive({"cell": np.zeros((6, 5))}).spec == ("none",) * 6  # ties: the first op
    with pytest.raises(ValueError, match=r"must have shape \(6, 5\)"):
        NB201.derive({"cell": np.zeros((5, 5))})
    with pytest.raises(ValueError, match=r"with keys \['cell'\]"):
        NB201.derive({"normal": w})
    with pytest.raises(ValueError, match="non-finite"):
        NB201.derive({"cell": np.full((6, 5), np.nan)})


def test_darts_derive_follows_the_darts_rule():
    """Per node: the two incoming edges with the strongest non-none op (none excluded even when it is the
    largest weight), each with its strongest non-none op, strongest edge first."""
    rng = np.random.default_rng(0)
    w = {g: rng.uniform(0, 0.1, size=(14, 8)) for g in ("normal", "reduce")}
    # node 2 (inputs 0, 1): none dominates edge (0, 2) but is ignored
    e02, e12 = DARTS_EDGES.index((0, 2)), DARTS_EDGES.index((1, 2))
    w["normal"][e02, RELAXED_OPS.index("none")] = 0.99
    w["normal"][e02, RELAXED_OPS.index("sep_conv_3x3")] = 0.5
    w["normal"][e12, RELAXED_OPS.index("dil_conv_5x5")] = 0.6
    # node 5: edges from 4 and 0 are the strongest, 4 first
    w["normal"][DARTS_EDGES.index((4, 5)), RELAXED_OPS.index("skip_connect")] = 0.9
    w["normal"][DARTS_EDGES.index((0, 5)), RELAXED_OPS.index("max_pool_3x3")] = 0.8
    w["normal"][DARTS_EDGES.index((3, 5)), RELAXED_OPS.index("none")] = 0.95  # none only: not picked
    normal, reduce = DARTS.cells(DARTS.derive(w))
    assert normal[0:2] == (("dil_conv_5x5", 1), ("sep_conv_3x3", 0))
    assert normal[6:8] == (("skip_connect", 4), ("max_pool_3x3", 0))
    # brute force the rule on every node of both cells
    for group, cell in (("normal", normal), ("reduce", reduce)):
        W = w[group][:, 1:]
        for i in range(4):
            node = 2 + i
            strength = {j: W[DARTS_EDGES.index((j, node))].max() for j in range(node)}
            best = sorted(strength, key=lambda j: -strength[j])[:2]
            assert [j for _, j in cell[2 * i:2 * i + 2]] == best
            for op, j in cell[2 * i:2 * i + 2]:
                assert op == DARTS.OPS[int(np.argmax(W[DARTS_EDGES.index((j, node))]))]


# -- the strategies ------------------------------------------------------------------------------
def trainer(update="darts", mixing="softmax", seed=0, data=None, protocol=TINY_SEARCH, **kw):
    data = data if data is not None else small_digits()
    torch.manual_seed(seed)
    net = NB201.supernet(data.num_classes, in_channels=data.in_channels, **protocol.size_for(NB201))
    torch.manual_seed(seed + 1)
    return RelaxedTrainer(net, NB201, data, protocol, update=update, mixing=mixing, seed=seed, **kw)


def state_of(t):
    return [a.detach().clone() for a in t.alphas] + [p.detach().clone() for p in t.params]


@pytest.mark.parametrize("mixing", ["softmax", "dirichlet"])
def test_tse_with_T1_is_first_order_darts_on_the_training_split(mixing):
    data = small_digits()
    a = trainer("tse", mixing, T=1, data=data, protocol=TINY_SEARCH.replace(schedule_epochs=1))
    b = trainer("darts", mixing, arch_split="train", data=data, protocol=TINY_SEARCH.replace(schedule_epochs=1))
    if mixing == "dirichlet":  # the samples come from torch's global RNG: the same stream for both
        torch.manual_seed(7)
        a.train_epoch()
        torch.manual_seed(7)
        b.train_epoch()
    else:
        a.train_epoch()
        b.train_epoch()
    assert a.arch_steps == b.arch_steps == a.steps_per_epoch
    for x, y in zip(state_of(a), state_of(b)):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
    assert a.trajectory == b.trajectory


def test_tse_takes_one_architecture_step_per_T_minibatches_and_restores_the_weights_between():
    t = trainer("tse", T=4, protocol=TINY_SEARCH.replace(schedule_epochs=1, batch_size=128))
    steps = t.steps_per_epoch
    before = [a.detach().clone() for a in t.alphas]
    t.train_epoch()
    assert t.arch_steps == math.ceil(steps / 4)
    assert not torch.equal(before[0], t.alphas[0])
    # the weights saw each minibatch twice but the schedule advanced once per minibatch
    assert t.optimization.scheduler.last_epoch == steps


@pytest.mark.parametrize("kw", [{"update": "darts"}, {"update": "tse", "T": 3},
                                {"update": "darts", "mixing": "dirichlet", "kl_reg": 0.01},
                                {"update": "tse", "mixing": "dirichlet", "T": 3}],
                         ids=["darts", "darts-tse", "drnas-kl", "drnas-tse"])
def test_resume_after_an_epoch_is_bit_exact(kw, tmp_path):
    from nas_engine.safeload import load_checkpoint, save_checkpoint

    proto = TINY_SEARCH.replace(schedule_epochs=2, batch_size=128)
    torch.manual_seed(123)
    full = trainer(protocol=proto, **kw)
    full.run()
    torch.manual_seed(123)
    first = trainer(protocol=proto, **kw)
    first.train_epoch()
    save_checkpoint(tmp_path / "c.pt", first.state_dict(), fingerprint={"t": 1})
    torch.manual_seed(999)  # another global RNG state: the checkpoint must restore it
    resumed = trainer(protocol=proto, **kw)
    resumed.load_state_dict(load_checkpoint(tmp_path / "c.pt", fingerprint={"t": 1}))
    resumed.run()
    assert all(torch.equal(x, y) for x, y in zip(state_of(full), state_of(resumed)))
    assert resumed.trajectory == full.trajectory and len(full.trajectory) == 2


def test_darts_needs_validation_data_and_refuses_bad_options():
    no_val = load_dataset("digits", n_train=256, n_val=0)
    with pytest.raises(ValueError, match="n_val=0"):
        trainer("darts", data=no_val)
    trainer("tse", data=no_val)  # the TSE variant needs none
    with pytest.raises(ValueError, match="order=2 .* DARTS only"):
        trainer("tse", order=2)
    with pytest.raises(ValueError, match="T must be an integer >= 1"):
        trainer("tse", T=0)
    with pytest.raises(ValueError, match="fp16"):
        trainer(protocol=TINY_SEARCH.replace(amp="fp16"))
    with pytest.raises(ValueError, match="order must be 1 or 2, got 3"):
        create("strategy", "darts", order=3)
    with pytest.raises(ValueError, match="T must be an integer >= 1, got 0"):
        create("strategy", "drnas-tse", T=0)


@pytest.mark.parametrize("name", METHODS)
def test_strategy_proposes_the_derived_architecture_of_every_epoch(name):
    strategy = create("strategy", name, epochs=2, batch_size=64, **({"T": 3} if "tse" in name else {}))
    ctx = Context(space=NB201, data=digits(), protocol=TINY, seed=0)
    strategy.setup(NB201, ctx)
    traj = [h["arch"] for h in strategy.trainer.history]
    assert len(traj) == 2 and strategy.setup_seconds > 0
    assert [a.string for a in strategy.ask()] == traj[:1]
    assert [a.string for a in strategy.ask()] == traj[1:]
    assert strategy.ask() == []
    weights = strategy.mixing_weights()["cell"]
    assert weights.shape == (6, 5) and np.allclose(weights.sum(1), 1)
    assert NB201.derive({"cell": weights}).string == traj[-1]


def test_search_api_runs_darts_tse_and_resumes_from_the_store(tmp_path, monkeypatch):
    def search():
        return Search(create("strategy", "darts-tse", epochs=2, T=3), "nb201", create("estimator", "tse-ema", epochs=1),
                      data=digits_subset(),
                      protocol=TINY.replace(schedule_epochs=2), budget=Budget(evaluations=10),
                      store=str(tmp_path / "run"),
                      progress=False)

    r = search().run()
    assert len(r.history) == 2 and all(e.ok for e in r.history)  # one proposal per search epoch
    assert r.setup_seconds > 0 and (tmp_path / "run" / CHECKPOINT).exists()

    def refuse(self):
        raise AssertionError("the search phase ran again")

    monkeypatch.setattr(trainer_module.RelaxedTrainer, "train_epoch", refuse)
    again = search().run()  # a finished search resumes from its checkpoint and store
    assert [e.arch.string for e in again.history] == [e.arch.string for e in r.history]


def test_cli_search_darts_tse(capsys, tmp_path):
    args = ["search", "--strategy", "darts-tse", "--strategy-arg", "epochs=2", "--strategy-arg", "T=5",
            "--space", "nb201", "--estimator", "tse", "--epochs", "1", "--data", "digits", "--evaluations", "5",
            "--C", "4", "--N", "1", "--device", "cpu", "--workers", "1", "--json", "--out", str(tmp_path / "run")]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["strategy"]["name"] == "darts-tse" and len(out["evaluations"]) == 2
    assert all(math.isfinite(e["score"]) for e in out["evaluations"])
    assert (tmp_path / "run" / CHECKPOINT).exists()


def test_darts_space_search_runs():
    strategy = create("strategy", "darts-tse", epochs=1, batch_size=64, T=2)
    data = load_dataset("digits", n_train=128, n_val=32)
    ctx = Context(space=DARTS, data=data, protocol=TINY.replace(size={"C": 2, "layers": 5}), seed=0)
    strategy.setup(DARTS, ctx)
    w = strategy.mixing_weights()
    assert set(w) == {"normal", "reduce"} and w["normal"].shape == (14, 8)
    arch = strategy.ask()[0]
    assert arch == DARTS.derive(w)
