"""One-shot NAS: the NB201 supernet, the supernet strategies and estimators from inherited weights."""

from __future__ import annotations

import copy
import hashlib
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nas_engine import Budget, Search
from nas_engine.cli import main
from nas_engine.context import Context
from nas_engine.estimators import TSE, TLMini, ValAcc
from nas_engine.registry import create
from nas_engine.spaces.nb201 import EDGES, OPS, NB201Network, NB201Space
from nas_engine.store import RunStore
from nas_engine.strategies.evolution import RegularizedEvolution
from nas_engine.strategies.oneshot import CHECKPOINT, SupernetTrainer, fair_paths, uniform_paths
from nas_engine.strategies.oneshot import supernet as supernet_module
from nas_engine.testing import check_registered as check_plugin
from nas_engine.training import train

from .conftest import TINY, digits_subset

SPACE = NB201Space()
METHODS = ("randnas", "spos", "fairnas", "multipath", "reptile", "metaprox")
A = SPACE.from_ops(["nor_conv_3x3", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "none", "nor_conv_3x3"])
# shares A's conv3 on edge 0->1, differs everywhere else
B = SPACE.from_ops(["nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "nor_conv_1x1", "skip_connect", "nor_conv_1x1"])
# shares nothing parametric with A in the cells
C = SPACE.from_ops(["nor_conv_1x1", "nor_conv_3x3", "nor_conv_3x3", "nor_conv_1x1", "nor_conv_1x1", "skip_connect"])
# one-shot settings for tests: 1 supernet epoch, fine-tuning "epochs" of 5 minibatches
TINY_ONESHOT = {"epochs": 1, "finetune_batches": 5}


def digits():
    return digits_subset()


def tiny_supernet(seed=0):
    torch.manual_seed(seed)
    return SPACE.supernet(10, in_channels=1, C=4, N=1)


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def oneshot_ctx(method="randnas", seed=0, store_dir=None, **kw):
    strategy = create("strategy", method, **{**TINY_ONESHOT, **kw})
    ctx = Context(space=SPACE, data=digits(), protocol=TINY, seed=seed, store_dir=store_dir)
    strategy.setup(SPACE, ctx)
    ctx.strategy = strategy
    return strategy, ctx


# -- the supernet ---------------------------------------------------------------------
def test_supernet_structure_and_bn_policy():
    net = tiny_supernet()
    cell = net.cells[0]
    assert len(cell.edges) == len(EDGES)
    assert all(set(edge) == set(OPS) - {"none"} for edge in cell.edges)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.affine and not m.track_running_stats for m in bns)
    with pytest.raises(ValueError, match="unknown op 'conv'"):
        net(torch.zeros(2, 1, 8, 8), ["conv"] * 6)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1, got 0"):
        SPACE.supernet(0)


def test_extract_computes_the_same_function_with_a_copy_of_the_weights():
    net = tiny_supernet()
    x = torch.randn(16, 1, 8, 8)
    for arch in (A, B, C, SPACE.from_ops(["none"] * 6)):
        sub = net.extract(arch)
        assert isinstance(sub, NB201Network)
        torch.testing.assert_close(sub(x), net(x, arch), rtol=0, atol=1e-6)
        # the copy shares no storage with the supernet
        shared = {p.data_ptr() for p in net.parameters()}
        assert not any(p.data_ptr() in shared for p in sub.parameters())
    # extracted parameters are exactly the path's: stem, reductions, classifier and the path's ops
    n_sub = sum(p.numel() for p in net.extract(A).parameters())
    n_fresh = sum(p.numel() for p in NB201Network(A.spec, 10, in_channels=1, C=4, N=1, affine=False).parameters())
    assert n_sub == n_fresh


def test_weight_sharing_is_real():
    """Training path A changes the weights path B reads through their shared edge op, and B's output."""
    net = tiny_supernet()
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    out_b, out_c = net(x, B).detach(), net(x, C).detach()
    before = snapshot(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    F.cross_entropy(net(x, A), y).backward()
    opt.step()
    after = net.state_dict()
    shared = "cells.0.edges.0.nor_conv_3x3.1.weight"  # conv3 on edge 0->1 of the first cell: in A and in B
    assert not torch.equal(before[shared], after[shared])
    assert not torch.allclose(net(x, B), out_b)
    # ops A does not use are untouched (C's cell ops) ...
    for k in range(len(EDGES)):
        key = f"cells.0.edges.{k}.{C.spec[k]}.1.weight"
        if C.spec[k] != A.spec[k] and key in before:
            assert torch.equal(before[key], after[key]), key
    # ... but C still changes through the shared stem, reduction blocks and classifier
    assert not torch.allclose(net(x, C), out_c)


def test_fine_tuning_an_extracted_path_leaves_the_supernet_unchanged():
    strategy, ctx = oneshot_ctx()
    before = snapshot(strategy.supernet)
    model, curve = ctx.train_model(A, 2, validate=True)
    assert curve.epochs == 2 and [len(e) for e in curve.minibatch_losses] == [5, 5]
    assert curve.info["source"] == "fine-tuned" and curve.info["inherited_from"] == "randnas"
    after = strategy.supernet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # while the fine-tuned network did move away from the inherited weights
    inherited = strategy.initial_weights(A).state_dict()
    assert any(not torch.equal(inherited[k], v) for k, v in model.state_dict().items())


# -- path sampling and supernet training ------------------------------------------------
def test_fairnas_strict_fairness():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(50):
        paths = fair_paths(SPACE, rng)
        assert len(paths) == len(OPS)
        for e in range(len(EDGES)):  # every op on every edge exactly once per step
            assert sorted(p.spec[e] for p in paths) == sorted(OPS)
        seen.update(p.string for p in paths)
    assert len(seen) > 200  # the pairing across edges is random, not a fixed set of paths


def test_fairnas_step_updates_every_op_on_every_edge_once_per_step():
    data = digits()
    proto = TINY.replace(schedule_epochs=1, batch_size=64, lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.0)
    calls = []

    def recording(space, rng):
        paths = fair_paths(space, rng)
        calls.append(paths)
        return paths

    net = tiny_supernet()
    trainer = SupernetTrainer(net, SPACE, data, proto, recording, seed=0)
    before = snapshot(net)
    trainer.train_epoch()
    assert len(calls) == trainer.steps_per_epoch and trainer.paths_trained == len(OPS) * trainer.steps_per_epoch
    after = net.state_dict()
    convs = [k for k in before if ".edges." in k and "conv" in k]
    assert convs and all(not torch.equal(before[k], after[k]) for k in convs)


def test_multi_path_step_averages_the_gradients_of_its_paths():
    """One plain-SGD step on paths [A, B] moves the weights by the mean of the steps on [A] and on [B]."""
    data = digits()
    proto = TINY.replace(schedule_epochs=1, batch_size=2000, lr=0.5, lr_min=0.5, momentum=0.0, nesterov=False,
                         weight_decay=0.0, augment=False)
    init = snapshot(tiny_supernet())

    def step(paths):
        net = tiny_supernet()
        trainer = SupernetTrainer(net, SPACE, data, proto, lambda space, rng: list(paths), seed=0)
        assert trainer.steps_per_epoch == 1  # the whole training split in one step
        trainer.train_epoch()
        return {k: v - init[k] for k, v in net.state_dict().items()}

    both, only_a, only_b, twice_a = step([A, B]), step([A]), step([B]), step([A, A])
    for k in init:
        torch.testing.assert_close(both[k], (only_a[k] + only_b[k]) / 2, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(twice_a[k], only_a[k], rtol=1e-4, atol=1e-6)  # averaged, not summed
    assert any(not torch.equal(both[k], only_a[k]) for k in init)


class _OnePath(torch.nn.Module):
    """A "supernet" with a single path: ``forward(x, path)`` ignores the path and runs ``net``."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, path):
        return self.net(x)


@pytest.mark.parametrize("proto", [TINY.replace(schedule_epochs=3, batch_size=64),  # augmentation, channels_last,
                                   # Nesterov
                                   TINY.replace(schedule_epochs=3, amp="bf16", channels_last=False, nesterov=False,
                                                weight_decay=0.0)])
def test_one_path_supernet_training_is_train_bit_for_bit(proto):
    """``SupernetTrainer`` and ``train`` share one optimisation (set-up and step): on a one-path supernet the
    trainer's epochs reproduce ``train``'s exactly, weights and losses (the two loops must not drift apart)."""
    data = digits()
    torch.manual_seed(0)
    net = SPACE.build(A, data.num_classes, in_channels=1, C=4, N=1)
    wrapped = _OnePath(copy.deepcopy(net))
    curve = train(net, data, proto, epochs=2, seed=3, validate=False)
    trainer = SupernetTrainer(wrapped, SPACE, data, proto, uniform_paths(1), seed=3)
    losses = [trainer.train_epoch() for _ in range(2)]
    assert trainer.steps_per_epoch == curve.info["steps_per_epoch"]
    for name, value in net.state_dict().items():
        assert torch.equal(wrapped.net.state_dict()[name], value), name
    # the trainer sums its losses in float32 on the device, the curve averages them in float64
    assert losses == pytest.approx(list(curve.train_loss), rel=1e-6)
    assert trainer.optimizer.param_groups[0]["lr"] < proto.lr  # the schedule advanced, as in train


def test_supernet_trainer_and_train_take_the_shared_step(monkeypatch):
    """Both loops step through ``training.Optimization``: one ``step`` per minibatch (single- and multi-path),
    one ``update`` per meta-step."""
    from nas_engine.training import Optimization

    calls = {"step": 0, "update": 0}
    step, update = Optimization.step, Optimization.update

    def counting_step(self, *a, **k):
        calls["step"] += 1
        return step(self, *a, **k)

    def counting_update(self):
        calls["update"] += 1
        return update(self)

    monkeypatch.setattr(Optimization, "step", counting_step)
    monkeypatch.setattr(Optimization, "update", counting_update)
    data, proto = digits(), TINY.replace(schedule_epochs=1, batch_size=512)
    steps = math.ceil(data.n_train / proto.batch_size)
    train(SPACE.build(A, data.num_classes, in_channels=1, C=4, N=1), data, proto, validate=False)
    assert calls == {"step": steps, "update": steps}
    SupernetTrainer(tiny_supernet(), SPACE, data, proto, uniform_paths(4), seed=0).train_epoch()
    assert calls == {"step": 2 * steps, "update": 2 * steps}
    SupernetTrainer(tiny_supernet(), SPACE, data, proto, uniform_paths(1), seed=0, inner_steps=2).train_epoch()
    assert calls == {"step": 2 * steps, "update": 3 * steps}


def _one_step(paths, proto, **meta):
    """A tiny supernet after one supernet step on the whole digits training split (and its initial state)."""
    net = tiny_supernet()
    init = snapshot(net)
    trainer = SupernetTrainer(net, SPACE, digits(), proto, lambda space, rng: list(paths), seed=0, **meta)
    assert trainer.steps_per_epoch == 1
    trainer.train_epoch()
    return init, net.state_dict()


def _manual_inner(paths, proto, steps, prox):
    """The adapted weights of each path after ``steps`` plain SGD steps (with the proximal pull) by hand."""
    data = digits()
    perm = torch.randperm(data.n_train, generator=torch.Generator().manual_seed(0))  # the trainer's data order
    x, y = data.x_train[perm], data.y_train[perm]
    out = []
    for path in paths:
        net = tiny_supernet()
        theta = snapshot(net)
        for _ in range(steps):
            net.zero_grad(set_to_none=True)
            F.cross_entropy(net(x, path), y).backward()
            with torch.no_grad():
                for name, p in net.named_parameters():
                    if p.grad is not None:
                        p -= proto.lr * (p.grad + prox * (p - theta[name]))
        out.append((theta, snapshot(net)))
    return out


META_PROTO = TINY.replace(schedule_epochs=1, batch_size=2000, lr=0.2, lr_min=0.2, momentum=0.0, nesterov=False,
                          weight_decay=0.0, augment=False, channels_last=False)


def test_meta_step_with_one_inner_step_is_single_path_training():
    _, plain = _one_step([A], META_PROTO)
    _, meta = _one_step([A], META_PROTO, inner_steps=1, prox=1e-3)  # prox is 0 at the first inner step
    for k in plain:
        torch.testing.assert_close(meta[k], plain[k], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("prox", [0.0, 10.0])
def test_reptile_and_metaprox_step_moves_towards_the_mean_adapted_weights(prox):
    """Plain SGD outer step: θ + (mean over paths of θ̂ - θ) / inner_steps, θ̂ from 3 inner steps by hand."""
    paths = [A, B]
    init, after = _one_step(paths, META_PROTO, inner_steps=3, prox=prox)
    adapted = _manual_inner(paths, META_PROTO, 3, prox)
    moved = 0
    for k in init:
        expected = init[k] + sum(a[k] - t[k] for t, a in adapted) / len(paths) / 3
        torch.testing.assert_close(after[k], expected, rtol=1e-4, atol=1e-6)
        moved += not torch.equal(after[k], init[k])
    assert moved > 0
    if prox:  # the proximal term really changes the adaptation
        plain = _manual_inner([A], META_PROTO, 3, 0.0)[0][1]
        pulled = adapted[0][1]
        assert any(not torch.allclose(plain[k], pulled[k]) for k in plain)


def test_meta_strategies_train_their_supernet_with_inner_steps():
    strategy, _ = oneshot_ctx("metaprox")
    assert strategy.get_params()["inner_steps"] == 4 and strategy.get_params()["prox"] == 10.0
    assert strategy.trainer_options() == {"inner_steps": 4, "prox": 10.0}
    assert create("strategy", "reptile").trainer_options() == {"inner_steps": 4, "prox": 0.0}
    with pytest.raises(ValueError, match="inner_steps must be an integer >= 1, got 0"):
        create("strategy", "reptile", inner_steps=0)
    with pytest.raises(ValueError, match="prox must be a finite number >= 0, got -1"):
        create("strategy", "metaprox", prox=-1)
    with pytest.raises(ValueError, match="inner_steps must be an integer >= 1"):
        SupernetTrainer(tiny_supernet(), SPACE, digits(), META_PROTO, uniform_paths(1), inner_steps=0)


def test_uniform_paths_validation():
    with pytest.raises(ValueError, match="k must be a positive integer"):
        uniform_paths(0)
    assert len(uniform_paths(4)(SPACE, np.random.default_rng(0))) == 4


# -- strategies -----------------------------------------------------------------------
@pytest.mark.parametrize("name", METHODS)
def test_conformance(name):
    strategy = check_plugin("strategy", name)
    assert strategy.epochs == 100 and strategy.batch_size == 64 and strategy.lr == 0.025
    assert strategy.lr_min == 0.001 and strategy.momentum == 0.9 and strategy.weight_decay == 5e-4
    assert strategy.default_finetune_lr == (0.01 if name in ("randnas", "spos") else 0.001)


@pytest.mark.parametrize("name", ["valacc-inherited", "valacc-mini"])
def test_inherited_estimator_conformance(name):
    check_plugin("estimator", name)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        create("strategy", "fairnas", epochs=0)
    with pytest.raises(ValueError, match="lr_min=0.1 must not exceed lr=0.01"):
        create("strategy", "randnas", lr=0.01, lr_min=0.1)
    with pytest.raises(ValueError, match="MultiPath: k must be an integer >= 1, got 0"):
        create("strategy", "multipath", k=0)
    with pytest.raises(ValueError, match="needs a dataset"):
        create("strategy", "randnas").setup(SPACE, Context(space=SPACE, data=None, protocol=TINY))
    with pytest.raises(ValueError, match="batch_size must be an integer >= 2"):
        create("estimator", "valacc-mini", batch_size=1)
    with pytest.raises(ValueError, match="needs a one-shot strategy"):
        Search("random", "nb201", "valacc-inherited", data=digits_subset(), protocol=TINY, progress=False)


def test_strategy_state_is_json_and_proposes_distinct_candidates():
    strategy, _ = oneshot_ctx("multipath", candidates=3)
    assert strategy.trainer_summary["epochs"] == 1 and strategy.setup_seconds > 0
    asked = [a for _ in range(5) for a in strategy.ask()]
    assert len(asked) == 3 and len(set(asked)) == 3  # stops after `candidates`
    state = strategy.state_dict()
    assert json.loads(json.dumps(state)) == state


def test_estimators_from_inherited_weights():
    strategy, ctx = oneshot_ctx("fairnas")
    assert strategy.fine_tuning.protocol.lr == 0.001 == strategy.fine_tuning.protocol.lr_min
    assert strategy.fine_tuning.steps_per_epoch == 5 and strategy.fine_tuning.protocol.batch_size == 64
    full = create("estimator", "valacc-inherited").estimate(A, ctx)
    model = strategy.initial_weights(A)
    model.eval()
    with torch.no_grad():
        acc = (model(ctx.data.x_val).argmax(1) == ctx.data.y_val).float().mean().item()
    assert full.score == pytest.approx(acc) and full.epochs == 0 and full.info["images"] == ctx.data.n_val
    mini = create("estimator", "valacc-mini", batch_size=32)
    e1, e2 = mini.estimate(A, ctx), mini.estimate(A, ctx)
    assert e1.score == e2.score and e1.info["images"] == 32 and 0 <= e1.score <= 1
    # TSE over B fine-tuning minibatches: epochs=T is B = 5T; prefixes of one run
    curve = ctx.learning_curve(A, 3, validate=True)
    losses = [x for e in curve.minibatch_losses for x in e]
    assert len(losses) == 15
    for T in (1, 2, 3):
        assert TSE(epochs=T).score(curve) == pytest.approx(-sum(losses[:5 * T]) / 5)
    # TLmini from the inherited weights: the first fine-tuning minibatch, before any update
    first = TLMini(epochs=1, batch=0).score(curve)
    assert first == -losses[0]
    assert ValAcc(epochs=1).score(curve) == curve.val_acc[0]


def test_inherited_weights_are_a_capability_not_duck_typing():
    """Context asks isinstance(strategy, InheritsWeights): the one-shot strategies and their worker view are;
    an object that merely has an ``initial_weights`` method is not."""
    from nas_engine.api import InheritsWeights
    from nas_engine.context import FineTuning
    from nas_engine.strategies.oneshot import InheritedWeights

    class LooksLikeIt:
        fine_tuning = None

        def initial_weights(self, arch):
            raise AssertionError("not asked")

    space = NB201Space()
    ctx = Context(space=space, data=None, protocol=TINY)
    for strategy, inherits in ((create("strategy", "spos"), True), (create("strategy", "random"), False),
                               (LooksLikeIt(), False), (None, False)):
        assert isinstance(strategy, InheritsWeights) is inherits
        assert Context(space=space, data=None, protocol=TINY, strategy=strategy).inherits_weights is inherits
    assert not ctx.inherits_weights
    weights = InheritedWeights(torch.nn.Identity(), FineTuning(TINY, 2), "spos")  # what for_workers() gives
    assert isinstance(weights, InheritsWeights) and Context(space=space, data=None, protocol=TINY,
                                                            strategy=weights).inherits_weights
    with pytest.raises(TypeError):
        InheritsWeights()  # abstract: initial_weights


def test_chunked_epochs_in_train_stream_the_data():
    data = digits()
    model = NB201Network(A.spec, 10, in_channels=1, C=4, N=1)
    curve = train(model, data, TINY.replace(schedule_epochs=3, batch_size=100), epochs=3, validate=False,
                  steps_per_epoch=7)
    assert [len(e) for e in curve.minibatch_losses] == [7, 7, 7] and curve.info["steps_per_epoch"] == 7
    with pytest.raises(ValueError, match="steps_per_epoch must be a positive integer"):
        train(model, data, TINY, epochs=1, steps_per_epoch=0)


# -- searches: API, store, resume, CLI ----------------------------------------------
def test_search_fairnas_tse_api(tmp_path):
    store = tmp_path / "run"
    r = Search(create("strategy", "fairnas", **TINY_ONESHOT), "nb201", TSE(epochs=2), data=digits_subset(),
               protocol=TINY, budget=Budget(evaluations=3), seed=1, store=str(store), progress=False).run()
    assert len(r.history) == 3 and all(e.ok and e.score < 0 for e in r.history)
    assert all(e.curve.info["source"] == "fine-tuned" and e.curve.epochs == 2 for e in r.history)
    assert r.setup_seconds > 0
    assert r.total_cost_seconds == pytest.approx(r.setup_seconds + sum(e.cost_seconds for e in r.history))
    assert r.seconds >= r.setup_seconds
    assert (store / CHECKPOINT).exists()
    ref = RunStore(store).artifacts()[CHECKPOINT]  # referenced from the database with its checksum
    assert ref["sha256"] == hashlib.sha256((store / CHECKPOINT).read_bytes()).hexdigest()
    assert ref["size"] == (store / CHECKPOINT).stat().st_size and ref["meta"]["fingerprint"]["seed"] == 1
    state = RunStore(store).state()
    assert state["setup_seconds"] == r.setup_seconds and state["strategy"]["supernet"]["epochs"] == 1


def test_resume_reloads_the_supernet_instead_of_retraining(tmp_path, monkeypatch):
    def search(evaluations):
        return Search(create("strategy", "randnas", **TINY_ONESHOT), "nb201", TSE(epochs=1), data=digits_subset(),
                      protocol=TINY, budget=Budget(evaluations=evaluations), store=str(tmp_path / "run"),
                      progress=False)

    first = search(2).run()

    def refuse(self):
        raise AssertionError("the supernet was trained again")

    monkeypatch.setattr(supernet_module.SupernetTrainer, "train_epoch", refuse)
    resumed = search(4).run()
    assert [e.arch.string for e in resumed.history[:2]] == [e.arch.string for e in first.history]
    assert [e.score for e in resumed.history[:2]] == [e.score for e in first.history]
    assert len(resumed.history) == 4 and resumed.setup_seconds == first.setup_seconds
    # a store holding another supernet is refused
    monkeypatch.undo()
    other = Search(create("strategy", "randnas", **{**TINY_ONESHOT, "lr": 0.05}), "nb201", TSE(epochs=1),
                   data=digits_subset(), protocol=TINY, budget=Budget(evaluations=1), store=str(tmp_path / "run"),
                   progress=False)
    with pytest.raises(ValueError, match="holds a different search"):
        other.run()


def test_interrupted_supernet_training_resumes_from_its_checkpoint(tmp_path):
    store = str(tmp_path / "ckpt")
    full, _ = oneshot_ctx("randnas", epochs=2)
    calls = []
    original = supernet_module.SupernetTrainer.train_epoch

    def once_then_die(self):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return original(self)

    supernet_module.SupernetTrainer.train_epoch = once_then_die
    try:
        with pytest.raises(KeyboardInterrupt):
            oneshot_ctx("randnas", epochs=2, store_dir=store)
    finally:
        supernet_module.SupernetTrainer.train_epoch = original
    resumed, _ = oneshot_ctx("randnas", epochs=2, store_dir=store)
    assert resumed.trainer_summary["epochs"] == 2
    a, b = full.supernet.state_dict(), resumed.supernet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit-identical to an uninterrupted training


def test_spos_evolves_over_inherited_weights():
    r = Search(create("strategy", "spos", population_size=4, sample_size=2, **TINY_ONESHOT), "nb201",
               "valacc-mini", data=digits_subset(), protocol=TINY, budget=Budget(evaluations=6), progress=False).run()
    assert len(r.history) == 6 and all(e.ok and 0 <= e.score <= 1 and e.epochs == 0 for e in r.history)
    assert r.setup_seconds > 0


def test_spos_selector_is_regularized_evolution():
    strategy, _ = oneshot_ctx("spos", population_size=4, sample_size=2)
    assert isinstance(strategy._selector, RegularizedEvolution) and strategy._selector.P == 4


def test_cli_search_fairnas(capsys, tmp_path):
    args = ["search", "--strategy", "fairnas", "--strategy-arg", "epochs=1", "--strategy-arg",
            "finetune_batches=5", "--space", "nb201", "--estimator", "tse", "--epochs", "2", "--data", "digits",
            "--evaluations", "2", "--C", "4", "--N", "1", "--device", "cpu", "--json",
            "--out", str(tmp_path / "run")]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["strategy"]["name"] == "fairnas" and len(out["evaluations"]) == 2
    assert all(math.isfinite(e["score"]) for e in out["evaluations"])
    assert (tmp_path / "run" / CHECKPOINT).exists()


@pytest.mark.slow
def test_worker_processes_fine_tune_from_the_same_inherited_weights():
    from nas_engine.executors import InlineExecutor, ProcessExecutor

    def search(executor):
        return Search(create("strategy", "randnas", **TINY_ONESHOT, candidates=4), "nb201", TSE(epochs=1),
                      data=digits_subset(), protocol=TINY, budget=Budget(evaluations=4), executor=executor,
                      progress=False).run()

    inline = search(InlineExecutor(threads=1))
    parallel = search(ProcessExecutor(workers=2, threads=1))
    assert sorted((e.arch.string, e.score) for e in parallel.history) == \
        sorted((e.arch.string, e.score) for e in inline.history)
    assert all(e.curve.info["source"] == "fine-tuned" for e in parallel.history)
