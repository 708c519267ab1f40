"""FEAR: the training-loop extensions it needs, the estimator, its shallow-learner threshold,
early rejection, and the Synthetic CIFAR-10 dataset."""

import json
import math

import numpy as np
import pytest
import torch

from nas_engine import Budget, Search
from nas_engine.context import Context
from nas_engine.data import clear_cache, load_dataset
from nas_engine.estimators import fear as fear_module
from nas_engine.estimators.fear import (
    FASTEST_KEY,
    FEAR,
    CandidateRejected,
    hog_features,
    shallow_learner_threshold,
    trainable_names,
)
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.strategies.fixed import FixedList
from nas_engine.testing import check_registered as check_plugin
from nas_engine.training import build_model, train

from .conftest import TINY

SPACE = NB201Space()
ARCH = SPACE.from_string("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|")
ARCH2 = SPACE.from_string("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|skip_connect~1|none~2|")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", n_train=600, n_val=100)  # 5 steps of 128 per epoch


def model(data, seed=3):
    return build_model(SPACE, ARCH, data, TINY, seed)


# -- training.train: stop at a running training accuracy, time limit, frozen parameters ----


def test_stop_at_train_acc_is_the_first_epoch_that_reaches_it(digits):
    steps = math.ceil(digits.n_train / TINY.batch_size)
    full = train(model(digits), digits, TINY, epochs=6, seed=5, validate=False)
    assert "stopped" not in full.info
    accs = full.train_acc
    # a threshold first reached at some epoch e > 1: above every earlier epoch's accuracy
    e = next(i for i in range(2, 6) if accs[i] > max(accs[:i]) + 1e-9)
    thr = (max(accs[:e]) + accs[e]) / 2
    # checked only at epoch ends, the running accuracy is the epoch's accuracy: stops exactly after epoch e+1
    c = train(model(digits), digits, TINY, epochs=6, seed=5, validate=False, stop_at_train_acc=thr,
              check_every=steps)
    assert c.epochs == e + 1 and c.train_acc == accs[:e + 1]
    assert c.minibatch_losses == full.minibatch_losses[:e + 1]  # the same run, cut short
    s = c.info["stopped"]
    assert s["reason"] == "train-acc" and s["steps"] == (e + 1) * steps and s["epochs"] == e + 1
    assert s["train_acc"] == pytest.approx(accs[e]) and s["train_acc"] >= thr
    # checked after every step: stops no later, mid-epoch, the partial epoch recorded as the last one
    c1 = train(model(digits), digits, TINY, epochs=6, seed=5, validate=True, stop_at_train_acc=thr)
    s1 = c1.info["stopped"]
    assert s1["steps"] <= (e + 1) * steps and s1["train_acc"] >= thr
    assert sum(len(mb) for mb in c1.minibatch_losses) == s1["steps"]
    assert s1["epochs"] == pytest.approx(s1["steps"] / steps)
    assert [x for mb in c1.minibatch_losses for x in mb] == [x for mb in full.minibatch_losses
                                                             for x in mb][:s1["steps"]]
    assert len(c1.val_acc) == c1.epochs  # the partial epoch is validated too


def test_time_limit_and_bad_stop_arguments(digits):
    c = train(model(digits), digits, TINY, epochs=5, seed=1, validate=False, max_seconds=1e-9)
    assert c.info["stopped"]["reason"] == "time-limit" and c.info["stopped"]["steps"] == 1
    with pytest.raises(ValueError, match="stop_at_train_acc must be a fraction"):
        train(model(digits), digits, TINY, epochs=1, stop_at_train_acc=1.5)
    with pytest.raises(ValueError, match="max_seconds must be a positive number"):
        train(model(digits), digits, TINY, epochs=1, max_seconds=0)
    with pytest.raises(ValueError, match="check_every must be a positive integer"):
        train(model(digits), digits, TINY, epochs=1, check_every=0)


def test_frozen_parameters_do_not_change_and_the_others_do(digits):
    m = model(digits)
    keep = trainable_names(m, 1)
    assert keep == ["cells.4", "lastact", "classifier"]
    frozen = [n for n, _ in m.named_parameters() if not n.startswith(tuple(keep))]
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    train(m, digits, TINY, epochs=2, seed=0, validate=False, frozen=frozen)
    for n, p in m.named_parameters():
        if n in frozen:
            assert torch.equal(p, before[n]), n
        else:
            assert not torch.equal(p, before[n]), n
        assert p.requires_grad  # restored after the call
    with pytest.raises(ValueError, match="does not have: \\['nope'\\]"):
        train(m, digits, TINY, epochs=1, frozen=["nope"])
    with pytest.raises(ValueError, match="nothing would be trained"):
        train(m, digits, TINY, epochs=1, frozen=[n for n, _ in m.named_parameters()])


# -- HoG + MLP threshold ------------------------------------------------------------------


def test_hog_features_shape_orientation_and_contrast_invariance():
    x = torch.zeros(2, 3, 32, 32)
    x[0, :, :, 16:] = 1.0  # a vertical edge: horizontal gradient, orientation 0 degrees
    x[1, :, 16:, :] = 1.0  # a horizontal edge: 90 degrees
    h = hog_features(x, cell=8)
    assert h.shape == (2, 3 * 3 * 2 * 2 * 9)
    per_bin = h.view(2, -1, 9).sum(1)
    assert per_bin[0].argmax() in (0, 8) and per_bin[1].argmax() in (4,)
    y = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(hog_features(y, cell=4), hog_features(3 * y, cell=4), atol=1e-5)
    with pytest.raises(ValueError, match="fewer than one block"):
        hog_features(y, cell=16)


def test_shallow_learner_threshold_is_computed_and_cached(digits, tmp_path, monkeypatch):
    fear_module._THRESHOLD_CACHE.clear()
    d = shallow_learner_threshold(digits, cell=2, cache_dir=tmp_path, details=True)
    assert 0.3 < d["threshold"] <= 1.0 and d["features"] == 3 * 3 * 4 * 9 and d["dataset"] == digits.fingerprint()
    stored = json.loads((tmp_path / "fear_thresholds.json").read_text())
    assert [v["threshold"] for v in stored.values()] == [d["threshold"]]

    def no_fit(*a, **k):
        raise AssertionError("the threshold should come from the cache")

    monkeypatch.setattr("sklearn.neural_network.MLPClassifier.fit", no_fit)
    assert shallow_learner_threshold(digits, cell=2, cache_dir=tmp_path) == d["threshold"]  # in-process
    fear_module._THRESHOLD_CACHE.clear()
    assert shallow_learner_threshold(digits, cell=2, cache_dir=tmp_path) == d["threshold"]  # from the file


# -- the estimator ------------------------------------------------------------------------


def test_fear_conformance_and_bad_arguments():
    est = check_plugin("estimator", "fear")
    assert est.threshold is None and est.reject_factor is None
    for kwargs, msg in [({"threshold": 0}, "threshold must be"), ({"stage2_epochs": 0}, "stage2_epochs"),
                        ({"score": "loss"}, "score must be"), ({"reject_factor": 0.5}, "reject_factor"),
                        ({"unfrozen": "classifier"}, "unfrozen must be")]:
        with pytest.raises(ValueError, match=msg):
            FEAR(**kwargs)


def test_fear_two_stages(digits, monkeypatch):
    """Stage 1 stops at the threshold; stage 2 trains only the unfrozen tail, with larger batches."""
    calls = []
    real_train = fear_module.train

    def spy(m, data, protocol, **kw):
        before = {n: p.detach().clone() for n, p in m.named_parameters()}
        curve = real_train(m, data, protocol, **kw)
        calls.append((kw, protocol, before, {n: p.detach().clone() for n, p in m.named_parameters()}))
        return curve

    monkeypatch.setattr(fear_module, "train", spy)
    ctx = Context(space=SPACE, data=digits, protocol=TINY, seed=0)
    est = FEAR(0.5, stage2_epochs=2, score="val_acc").estimate(ARCH, ctx)
    (kw1, p1, _, _), (kw2, p2, before, after) = calls
    assert kw1["stop_at_train_acc"] == 0.5 and kw1.get("frozen") is None
    info = est.info
    assert info["reached_threshold"] and info["stage1_train_acc"] >= 0.5
    assert info["time_to_threshold"] == info["stage1_seconds"] > 0 and 0 < info["epochs_to_threshold"] <= 10
    assert p2.batch_size == 4 * TINY.batch_size and p2.schedule_epochs == 2 and info["stage2_batch_size"] == 512
    assert info["unfrozen"] == ["cells.4", "lastact", "classifier"] and 0 < info["trainable_fraction"] < 1
    for n in before:
        assert torch.equal(before[n], after[n]) == (n in kw2["frozen"]), n
    assert set(kw2["frozen"]) and not any(n.startswith(("cells.4.", "classifier.")) for n in kw2["frozen"])
    assert est.score == info["final_val_acc"] and 0 <= est.score <= 1
    assert est.curve.epochs == est.curve.info["stage1_curve_epochs"] + 2
    assert est.epochs == pytest.approx(info["stage1_epochs"] + 2)
    assert ctx.extras[FASTEST_KEY] == info["time_to_threshold"]
    # a threshold it cannot reach: stage 1 runs to max_epochs, stage 2 still runs
    calls.clear()
    est = FEAR(1.0, max_epochs=2, stage2_epochs=1).estimate(ARCH, ctx)
    assert not est.info["reached_threshold"] and "time_to_threshold" not in est.info
    assert est.info["stage1_epochs"] == 2 and est.score == est.info["final_train_acc"]


def test_fear_threshold_from_the_shallow_learner(digits):
    ctx = Context(space=SPACE, data=digits, protocol=TINY, seed=0)
    est = FEAR(max_epochs=3, stage2_epochs=1).estimate(ARCH, ctx)
    assert est.info["threshold_source"] == "shallow-learner"
    assert est.info["threshold"] == shallow_learner_threshold(digits)


def test_early_rejection_is_visible_in_the_search(digits):
    # with the fastest time to threshold preset to almost nothing, every candidate is rejected
    s = Search(FixedList([ARCH, ARCH2]), SPACE, FEAR(0.3, stage2_epochs=1, reject_factor=1.2), data=digits,
               protocol=TINY, budget=Budget(evaluations=2), progress=False)
    s.ctx.extras[FASTEST_KEY] = 1e-6
    res = s.run()
    assert [e.status for e in res.history] == ["failed", "failed"]
    assert all(e.reason.startswith("rejected: stage 1 ran") and "1.2 x the fastest" in e.reason
               for e in res.history)
    assert all(e.score == -math.inf and e.curve is not None for e in res.history)
    df = res.to_dataframe()
    assert df["reason"].str.startswith("rejected").all()
    # without a preset, the first candidate sets the fastest time; a huge factor rejects nothing
    s = Search(FixedList([ARCH, ARCH2]), SPACE, FEAR(0.3, stage2_epochs=1, reject_factor=1000.0), data=digits,
               protocol=TINY, budget=Budget(evaluations=2), progress=False)
    res = s.run()
    assert [e.status for e in res.history] == ["ok", "ok"]
    assert res.history[1].info["fastest_time_to_threshold"] == res.history[0].info["time_to_threshold"]
    assert s.ctx.extras[FASTEST_KEY] == min(e.info["time_to_threshold"] for e in res.history)


def test_rejection_raises_candidate_rejected(digits):
    ctx = Context(space=SPACE, data=digits, protocol=TINY, seed=0, extras={FASTEST_KEY: 1e-6})
    with pytest.raises(CandidateRejected) as info:
        FEAR(0.9, reject_factor=1.2).estimate(ARCH, ctx)
    assert info.value.reason == "rejected" and info.value.curve.info["reached_threshold"] is False


# -- Synthetic CIFAR-10 ------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic-cifar10", n_train=300, n_val=100, n_test=100, seed=3)


def test_synthetic_cifar10_shapes_balance_and_no_augmentation(synthetic):
    d = synthetic
    assert d.x_train.shape == (300, 3, 32, 32) and d.x_val.shape == (100, 3, 32, 32)
    assert d.x_test.shape == (100, 3, 32, 32) and d.num_classes == 10 and d.x_train.dtype == torch.float32
    assert d.fingerprint() == "synthetic-cifar10:32px:pool400:train300:val100:test100:seed3"
    assert d.crop_padding == 0 and not d.flip
    counts = np.bincount(torch.cat([d.y_train, d.y_val, d.y_test]).numpy(), minlength=10)
    assert counts.min() >= 0.05 * 500 and counts.max() <= 0.15 * 500, counts  # balanced-ish (expected 50 each)
    # Gaussian images: about zero mean and unit variance per pixel before normalisation
    assert abs(float(d.x_train.mean())) < 0.05 and abs(float(d.x_train.std()) - 1) < 0.05


def test_synthetic_cifar10_is_deterministic_per_seed(synthetic):
    clear_cache()  # generated afresh: the same seed gives the same networks and images
    small = load_dataset("synthetic-cifar10", n_train=50, n_val=0, n_test=0, seed=3, resolution=16)
    assert small.x_train.shape == (50, 3, 16, 16) and small.n_val == 0 and small.n_test == 0
    assert torch.equal(small.y_train, synthetic.y_train[:50])
    shrunk = torch.nn.functional.interpolate(synthetic.x_train[:50] * torch.tensor(synthetic.std).view(1, 3, 1, 1)
                                             + torch.tensor(synthetic.mean).view(1, 3, 1, 1), size=(16, 16),
                                             mode="bilinear", antialias=True)
    unnormalised = small.x_train * torch.tensor(small.std).view(1, 3, 1, 1) + torch.tensor(small.mean).view(1, 3, 1, 1)
    assert torch.allclose(unnormalised, shrunk, atol=1e-4)
    other = load_dataset("synthetic-cifar10", n_train=50, n_val=0, n_test=0, seed=4)
    assert not torch.equal(other.y_train, synthetic.y_train[:50])
    with pytest.raises(ValueError, match="n_test is an option of 'synthetic-cifar10' only"):
        load_dataset("digits", n_test=10)


def test_synthetic_cifar10_side_generates_smaller_images_with_their_own_labelling_networks(synthetic):
    from sklearn.linear_model import LogisticRegression

    d = load_dataset("synthetic-cifar10", n_train=3000, n_val=1000, n_test=10, side=4, seed=3)
    assert d.x_train.shape == (3000, 3, 4, 4) and d.resolution == 4 and d.info["side"] == 4
    assert d.fingerprint() == "synthetic-cifar10:4px:side4:pool4000:train3000:val1000:test10:seed3"
    assert "generated at 4x4" in d.info["source"]
    counts = np.bincount(torch.cat([d.y_train, d.y_val]).numpy(), minlength=10)
    assert counts.min() >= 0.05 * 4000 and counts.max() <= 0.15 * 4000, counts
    # labelled by networks on 48 inputs, not the 32x32 labels resized: a linear model learns them
    # from 3,000 images (on the 3,072-dim paper version it needs ~20,000 for 0.38, see the README)
    x, xv = d.x_train.reshape(3000, -1).numpy(), d.x_val.reshape(1000, -1).numpy()
    assert LogisticRegression(max_iter=300).fit(x, d.y_train.numpy()).score(xv, d.y_val.numpy()) > 0.5
    resized = load_dataset("synthetic-cifar10", n_train=300, n_val=0, n_test=0, resolution=4, seed=3)
    assert torch.equal(resized.y_train, synthetic.y_train) and resized.fingerprint() != d.fingerprint()
    # resolution still resizes what `side` generated
    assert load_dataset("synthetic-cifar10", n_train=20, n_val=0, n_test=0, side=8, resolution=4).x_train.shape[-1] == 4
    with pytest.raises(ValueError, match="side must be >= 1"):
        load_dataset("synthetic-cifar10", n_train=20, side=0)
    with pytest.raises(ValueError, match="side is an option of 'synthetic-cifar10' only.*got side=8"):
        load_dataset("digits", side=8)
