"""The one-shot mitigations and diagnostics of Ning et al. (§5.3, §6) as options of the supernet strategies:
isomorphism classes and deiso / post-deiso, S samples per step, BN affine, temporal ensembles, one-shot pruning,
kept checkpoints, forgetting and stability records; each resumes exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nas_engine.context import Context
from nas_engine.registry import create
from nas_engine.spaces.base import IsomorphismClasses
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.strategies.oneshot import CHECKPOINT, FORGETTING_FILE, repeated, snapshot_name, uniform_paths
from nas_engine.strategies.oneshot import supernet as supernet_module
from nas_engine.strategies.oneshot.supernet import path_accuracy
from nas_engine.testing import check_strategy

from .conftest import TINY, digits_subset

SPACE = NB201Space()
BASE = {"epochs": 3, "finetune_batches": 5}
STEPS = 6  # 384 training images (digits_subset) in the supernet's batches of 64


def setup_strategy(method="randnas", store_dir=None, **kw):
    strategy = create("strategy", method, **{**BASE, **kw})
    ctx = Context(space=SPACE, data=digits_subset(), protocol=TINY, seed=0, store_dir=store_dir)
    strategy.setup(SPACE, ctx)
    ctx.strategy = strategy
    return strategy, ctx


def val_accuracy(net, arch, ctx):
    return path_accuracy(net, arch, ctx.data.x_val, ctx.data.y_val, TINY)


# -- isomorphism classes ---------------------------------------------------------------
def test_nb201_has_the_6466_isomorphism_classes_of_the_benchmark():
    assert isinstance(SPACE, IsomorphismClasses)
    classes = SPACE.isomorphism_classes()
    assert len(classes) == 6466  # Ning et al. §6.2, the NAS-Bench-201 paper: 6466 unique structures of 15,625
    assert sum(len(c) for c in classes) == 15625 == len({a.string for c in classes for a in c})
    for i in (0, 17, 6465):
        members = classes[i]
        assert len({SPACE.unique_str(a) for a in members}) == 1  # one benchmark unique string per class
        assert all(SPACE.isomorphism_class(a) == i and SPACE.representative(a) == members[0] for a in members)
        assert members[0] == min(members, key=SPACE.index)
    assert len({SPACE.unique_str(c[0]) for c in classes}) == 6466
    # known answers: a single conv3 from the input to the output, any dead or zero branch beside it
    conv = SPACE.from_string("|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|")
    assert len(SPACE.isomorphic(conv)) == 275 and SPACE.representative(conv) == conv
    via_node1 = SPACE.from_string("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|")
    assert SPACE.isomorphism_class(via_node1) == SPACE.isomorphism_class(conv)
    # the benchmark's string keeps node 2's zero term ("#+(0)@nor_conv_3x3"): another of its 6,466 classes
    via_node2 = SPACE.from_string("|none~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|skip_connect~2|")
    assert len(SPACE.isomorphic(via_node2)) == 62
    assert SPACE.isomorphism_class(via_node2) != SPACE.isomorphism_class(conv)
    residual = SPACE.from_string("|skip_connect~0|+|none~0|none~1|+|nor_conv_3x3~0|skip_connect~1|none~2|")
    assert SPACE.isomorphism_class(residual) != SPACE.isomorphism_class(conv)  # conv(x) + x


def test_deiso_trains_only_class_representatives_and_inherits_their_weights():
    strategy, ctx = setup_strategy(deiso=True, record_forgetting=True, epochs=1)
    trained = {a for rec in strategy.forgetting for a in rec["archs"]}
    assert trained and all(SPACE.representative(SPACE.from_string(a)).string == a for a in trained)
    member = SPACE.from_string("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|")
    rep = SPACE.representative(member)
    assert rep == SPACE.from_string("|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|")
    x = ctx.data.x_val[:16]
    with torch.no_grad():
        assert torch.equal(strategy.initial_weights(member).eval()(x), strategy.supernet.extract(rep).eval()(x))
    # candidates: one per isomorphism class
    asked = [a for _ in range(6) for a in strategy.ask()]
    assert len({SPACE.isomorphism_class(a) for a in asked}) == 6
    # uniform over the 6,466 representatives, not the 15,625 strings
    reps = [c[0] for c in SPACE.isomorphism_classes()]
    draws = uniform_paths(1, reps)
    rng = np.random.default_rng(0)
    assert all(SPACE.representative(p) == p for _ in range(50) for p in draws(SPACE, rng))


def test_post_deiso_averages_the_estimates_of_the_isomorphism_class():
    strategy, ctx = setup_strategy(post_deiso=True, epochs=1)
    # a class of three: the three ways to place a skip and two conv3 on the paths to node 3
    arch = SPACE.from_string("|skip_connect~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|skip_connect~1|"
                             "nor_conv_3x3~2|")
    members = SPACE.isomorphic(arch)
    assert len(members) == 3 and arch in members
    est = create("estimator", "valacc-inherited").estimate(arch, ctx)
    expected = sum(val_accuracy(strategy.supernet, m, ctx) for m in members) / len(members)
    assert est.info["variants"] == 3 and est.score == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="deiso=True and post_deiso=True exclude each other"):
        create("strategy", "randnas", deiso=True, post_deiso=True)


# -- S samples per step, BN affine ----------------------------------------------------------
def test_samples_per_step_repeat_the_methods_sampler():
    strategy, _ = setup_strategy("randnas", samples=3, epochs=1)
    assert strategy.trainer_summary["paths_trained"] == 3 * STEPS
    fair, _ = setup_strategy("fairnas", samples=2, epochs=1)
    assert fair.trainer_summary["paths_trained"] == 2 * 5 * STEPS  # two fair groups of |O| = 5 paths
    paths = repeated(uniform_paths(2), 3)(SPACE, np.random.default_rng(0))
    assert len(paths) == 6
    with pytest.raises(ValueError, match="repeated: times must be a positive integer, got 0"):
        repeated(uniform_paths(1), 0)


def test_bn_affine_supernet_and_its_extracted_paths():
    off = SPACE.supernet(10, in_channels=1, C=4, N=1)
    on = SPACE.supernet(10, in_channels=1, C=4, N=1, affine=True)
    bns = [m for m in on.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.affine and not m.track_running_stats for m in bns)
    assert not any(m.affine for m in off.modules() if isinstance(m, torch.nn.BatchNorm2d))
    arch = SPACE.from_string("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|")
    with torch.no_grad():
        for m in bns:
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.5, 0.5)
        x = torch.randn(8, 1, 8, 8)
        torch.testing.assert_close(on.extract(arch).eval()(x), on.eval()(x, arch), rtol=0, atol=1e-6)
    strategy, _ = setup_strategy(bn_affine=True, epochs=1)
    assert all(m.affine for m in strategy.supernet.modules() if isinstance(m, torch.nn.BatchNorm2d))


# -- temporal ensembles ---------------------------------------------------------------------
def test_weight_ensemble_averages_the_last_k_epochs_weights():
    strategy, ctx = setup_strategy(ensemble=2, keep_checkpoints=3, record_stability=True)
    plain, _ = setup_strategy()
    assert strategy.snapshot_epochs == [1, 2, 3] and strategy.trainer_summary["ensemble_epochs"] == [2, 3]
    snaps = strategy._stability_nets
    final = snaps[3].state_dict()
    assert all(torch.equal(final[k], v) for k, v in plain.supernet.state_dict().items())  # same training
    avg = strategy.supernet.state_dict()
    for k, v in avg.items():
        torch.testing.assert_close(v, (snaps[2].state_dict()[k] + final[k]) / 2, rtol=0, atol=1e-7)


def test_score_ensemble_averages_the_estimates_of_the_last_k_checkpoints():
    strategy, ctx = setup_strategy(ensemble=2, ensemble_mode="scores", keep_checkpoints=3, record_stability=True)
    arch = strategy.ask()[0]
    est = create("estimator", "valacc-inherited").estimate(arch, ctx)
    per_checkpoint = strategy.stability[arch.string]
    assert len(per_checkpoint) == 3 and est.info["variants"] == 2
    assert est.score == pytest.approx(sum(per_checkpoint[-2:]) / 2, abs=1e-12)
    assert per_checkpoint[-1] == val_accuracy(strategy.supernet, arch, ctx)  # the final weights are inherited


# -- one-shot pruning ------------------------------------------------------------------------
def test_one_shot_pruning_keeps_the_top_fraction_and_trains_and_proposes_only_it():
    strategy, ctx = setup_strategy("randnas", epochs=3, prune_fraction=0.25, prune_pool=12, prune_epoch=1,
                                   record_forgetting=True)
    assert strategy.trainer_summary["pruned_after_epoch"] == 1 and strategy.trainer_summary["kept"] == 3
    scores = strategy.prune_scores  # every pool member's validation accuracy after epoch 1
    assert len(scores) == 12
    pool = list(scores)
    best = sorted(pool, key=lambda a: (-scores[a], pool.index(a)))[:3]
    assert strategy.kept == best
    kept = set(best)
    assert {a for rec in strategy.forgetting[1:] for a in rec["archs"]} <= kept  # epochs 2, 3: only the kept
    assert not {a for a in strategy.forgetting[0]["archs"]} <= kept
    asked = [a for _ in range(5) for a in strategy.ask()]
    assert {a.string for a in asked} == kept and all(a.space is SPACE for a in asked)
    with pytest.raises(ValueError, match="needs epochs > 2"):
        create("strategy", "randnas", epochs=2, prune_fraction=0.5, prune_epoch=2)
    with pytest.raises(ValueError, match="FairNAS: one-shot pruning samples paths from a set"):
        create("strategy", "fairnas", epochs=3, prune_fraction=0.5)
    assert create("strategy", "spos", prune_fraction=0.1).pruning_epoch() == 60  # 600 of 1000 in Ning et al.


# -- resume ------------------------------------------------------------------------------------
def _interrupted_then_resumed(tmp_path, method, **kw):
    store = str(tmp_path / method)
    calls = []
    original = supernet_module.SupernetTrainer.train_epoch

    def twice_then_die(self):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return original(self)

    supernet_module.SupernetTrainer.train_epoch = twice_then_die
    try:
        with pytest.raises(KeyboardInterrupt):
            setup_strategy(method, store_dir=store, epochs=4, **kw)
    finally:
        supernet_module.SupernetTrainer.train_epoch = original
    return setup_strategy(method, store_dir=store, epochs=4, **kw), store


@pytest.mark.parametrize("method, options", [
    ("randnas", {"samples": 2, "deiso": True, "ensemble": 2, "keep_checkpoints": 3, "record_forgetting": True,
                 "record_stability": True, "prune_fraction": 0.5, "prune_pool": 8, "prune_epoch": 3}),
    ("spos", {"post_deiso": True, "bn_affine": True, "ensemble": 3, "ensemble_mode": "scores",
              "prune_fraction": 0.25, "prune_pool": 8, "prune_epoch": 1, "population_size": 3, "sample_size": 2}),
])
def test_interrupted_training_with_mitigations_resumes_bit_identically(tmp_path, method, options):
    full, full_ctx = setup_strategy(method, epochs=4, **options)
    (resumed, ctx), store = _interrupted_then_resumed(tmp_path, method, **options)
    a, b = full.supernet.state_dict(), resumed.supernet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.kept == full.kept and resumed.snapshot_epochs == full.snapshot_epochs
    assert resumed.forgetting == full.forgetting
    for e in full._stability_nets:
        sa, sb = full._stability_nets[e].state_dict(), resumed._stability_nets[e].state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    kept_files = sorted(p.name for p in (tmp_path / method).glob("supernet-epoch-*.pt"))
    assert kept_files == [snapshot_name(e) for e in full.snapshot_epochs]  # older snapshots deleted
    assert full.trainer_summary["paths_trained"] == resumed.trainer_summary["paths_trained"]
    est = create("estimator", "valacc-inherited")
    arch = full.ask()[0]
    assert resumed.ask()[0] == arch
    assert est.estimate(arch, ctx).score == est.estimate(arch, full_ctx).score
    if options.get("record_forgetting"):
        record = json.loads((tmp_path / method / FORGETTING_FILE).read_text())
        assert record["epochs"] == full.forgetting and len(record["epochs"]) == 4


def test_a_resumed_search_with_mitigations_continues_as_an_uninterrupted_one(tmp_path, monkeypatch):
    from nas_engine import Budget, Search
    from nas_engine.store import RunStore

    options = {**BASE, "deiso": True, "samples": 2, "ensemble": 2, "ensemble_mode": "scores", "keep_checkpoints": 2,
               "record_stability": True, "prune_fraction": 0.5, "prune_pool": 10, "prune_epoch": 2}

    def search(evaluations, store):
        return Search(create("strategy", "randnas", **options), "nb201", "valacc-inherited", data=digits_subset(),
                      protocol=TINY, budget=Budget(evaluations=evaluations), store=store, progress=False)

    whole = search(4, str(tmp_path / "whole")).run()
    search(2, str(tmp_path / "resumed")).run()

    def refuse(self):
        raise AssertionError("the supernet was trained again")

    monkeypatch.setattr(supernet_module.SupernetTrainer, "train_epoch", refuse)
    resumed = search(4, str(tmp_path / "resumed")).run()
    assert [(e.arch.string, e.score) for e in resumed.history] == [(e.arch.string, e.score) for e in whole.history]
    assert RunStore(tmp_path / "resumed").state()["strategy"]["stability"] == \
        RunStore(tmp_path / "whole").state()["strategy"]["stability"]


def test_a_store_trained_with_other_options_is_refused(tmp_path):
    store = str(tmp_path / "run")
    setup_strategy(store_dir=store, epochs=1)
    assert (tmp_path / "run" / CHECKPOINT).exists()
    with pytest.raises(ValueError, match="samples"):
        setup_strategy(store_dir=store, epochs=1, samples=2)


# -- forgetting -----------------------------------------------------------------------------------
def test_forgetting_is_recorded_without_changing_the_training():
    recorded, ctx = setup_strategy(record_forgetting=True, epochs=2)
    plain, _ = setup_strategy(epochs=2)
    a, b = recorded.supernet.state_dict(), plain.supernet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the extra forwards draw no random number
    assert [r["epoch"] for r in recorded.forgetting] == [1, 2]
    last = recorded.forgetting[-1]
    assert len(last["archs"]) == len(last["acc_after_step"]) == len(last["acc_after_epoch"]) == STEPS
    # acc_after_epoch is the accuracy of the final weights on the fixed validation minibatch
    probe = recorded.supernet  # no ensemble: the final supernet
    gen = torch.Generator().manual_seed((supernet_module_seed(ctx) + 0xF0A6E7) % (2**63))
    idx = torch.randperm(ctx.data.n_val, generator=gen)[:min(supernet_module.FORGETTING_IMAGES, ctx.data.n_val)]
    for arch, acc in zip(last["archs"], last["acc_after_epoch"]):
        assert acc == path_accuracy(probe, SPACE.from_string(arch), ctx.data.x_val[idx], ctx.data.y_val[idx], TINY)
    # the last step's path saw no later step: right after its step is the end of the epoch
    assert last["acc_after_step"][-1] == last["acc_after_epoch"][-1]


def supernet_module_seed(ctx):
    from nas_engine.context import derive_seed

    return derive_seed(ctx.seed, "supernet-data/randnas")


# -- validation and conformance ---------------------------------------------------------------------
@pytest.mark.parametrize("kw, message", [
    ({"samples": 0}, "samples must be an integer >= 1, got 0"),
    ({"deiso": "yes"}, "deiso must be True or False, got 'yes'"),
    ({"ensemble_mode": "mean"}, "ensemble_mode must be .weights. or .scores., got .mean."),
    ({"prune_fraction": 1.0}, "prune_fraction must be"),
    ({"prune_epoch": 3}, "prune_epoch=3 needs prune_fraction"),
    ({"record_stability": True, "keep_checkpoints": 1}, "needs keep_checkpoints >= 2, got 1"),
    ({"keep_checkpoints": -1}, "keep_checkpoints must be an integer >= 0, got -1"),
])
def test_bad_options_are_named(kw, message):
    with pytest.raises(ValueError, match=message) as err:
        create("strategy", "randnas", **kw)
    assert "\n" not in str(err.value)


def test_deiso_needs_a_space_with_isomorphism_classes():
    darts = create("space", "darts")
    strategy = create("strategy", "randnas", deiso=True, epochs=1)
    with pytest.raises(TypeError, match="IsomorphismClasses capability"):
        strategy.setup(darts, Context(space=darts, data=digits_subset(), protocol=TINY))


@pytest.mark.parametrize("method, options", [
    ("randnas", {"deiso": True, "samples": 2, "ensemble": 2, "ensemble_mode": "scores", "keep_checkpoints": 2,
                 "record_stability": True}),
    ("spos", {"post_deiso": True, "bn_affine": True, "ensemble": 2, "prune_fraction": 0.5, "prune_pool": 6,
              "prune_epoch": 1, "epochs": 2}),
    ("multipath", {"k": 2, "prune_fraction": 0.5, "prune_pool": 6, "epochs": 2}),  # (samples: randnas, fairnas)
    ("fairnas", {"bn_affine": True, "ensemble": 2, "post_deiso": True}),  # (its samples: the path-count test)
    ("reptile", {"deiso": True, "record_forgetting": True, "inner_steps": 2}),
])
def test_mitigated_strategies_pass_the_conformance_checks(method, options):
    cls = type(create("strategy", method))
    check_strategy(create("strategy", method, **{**cls.conformance_params(), **options}))


# -- the diagnosis page of a one-shot store ------------------------------------------------------------
def test_diagnose_page_of_a_oneshot_store_shows_forgetting_and_stability(tmp_path, capsys):
    import math
    import re

    from nas_engine import Budget, Search
    from nas_engine.cli import main
    from nas_engine.diagnosis import forgetting_values, rank_spread, ranking_stability
    from nas_engine.report import oneshot_records, write_diagnosis
    from nas_engine.results import SearchResult

    from .conftest import shared_path

    csv = shared_path("nas-bench-201", "nb201_cifar10_200ep.csv")
    store = tmp_path / "run"
    strategy = create("strategy", "randnas", epochs=3, keep_checkpoints=3, record_forgetting=True,
                      record_stability=True, finetune_batches=5)
    Search(strategy, "nb201", "valacc-inherited", data=digits_subset(), protocol=TINY, budget=Budget(evaluations=6),
           store=str(store), progress=False).run()
    report = write_diagnosis(store, csv, out=tmp_path / "page.html", groups=2, top=2)
    assert set(report.figures) >= {"forgetting", "stability"}
    assert (tmp_path / "forgetting.png").stat().st_size > 0 and (tmp_path / "stability.png").stat().st_size > 0
    text = (tmp_path / "page.html").read_text()
    assert "One-shot: forgetting" in text and "One-shot: stability across kept checkpoints" in text

    def on_page(key):
        return float(re.search(rf'<span id="{re.escape(key)}">([^<]+)</span>', text).group(1))

    def same(key, value):
        shown = on_page(key)
        return math.isnan(shown) if math.isnan(value) else shown == round(value, 4)

    records = oneshot_records(store)
    assert [r["epoch"] for r in records["forgetting"]] == [1, 2, 3]
    for rec in records["forgetting"]:
        fv = forgetting_values(rec["acc_after_step"], rec["acc_after_epoch"])
        assert len(fv) == STEPS
        assert same(f"fv-mean-{rec['epoch']}", fv.mean()) and same(f"fv-std-{rec['epoch']}", fv.std())
        assert same(f"fv-negative-{rec['epoch']}", (fv < 0).mean())
    stability = records["stability"]
    assert stability["epochs"] == [1, 2, 3]
    history = SearchResult.load(store).history
    assert sorted(stability["scores"]) == sorted(e.arch.string for e in history)
    for e in history:  # the last kept checkpoint is the supernet the search's estimator scored
        assert stability["scores"][e.arch.string][-1] == e.score
    archs = sorted(stability["scores"])
    sets = {f"epoch {ep}": [stability["scores"][a][i] for a in archs] for i, ep in enumerate([1, 2, 3])}
    table = ranking_stability(sets, ks=(0.05, 0.5))
    assert table[["compared", "reference"]].values.tolist() == [["epoch 1", "epoch 2"], ["epoch 2", "epoch 3"]]
    for i, row in table.iterrows():
        assert same(f"stab-kendall-{i}", row["kendall"]) and same(f"stab-P@top5%-{i}", row["P@top5%"])
    assert same("spread-mean", rank_spread(sets)["rank_std"].mean())
    # the command line writes the same page
    assert main(["diagnose", str(store), "--truth", str(csv), "--out", str(tmp_path / "cli.html"), "--groups", "2",
                 "--top", "2"]) == 0
    assert "One-shot: forgetting" in (tmp_path / "cli.html").read_text()
    capsys.readouterr()
