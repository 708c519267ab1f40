import math

import pytest
import torch

from nas_engine.data import load_dataset
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.training import Protocol, TrainingDiverged, build_model, train

SPACE = NB201Space()
ARCH = SPACE.from_string("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def run(data, protocol, epochs, seed=7, validate=True):
    model = build_model(SPACE, ARCH, data, protocol, seed)
    return train(model, data, protocol, epochs=epochs, seed=seed, validate=validate)


def test_curve_records_everything(digits, tiny_protocol):
    c = run(digits, tiny_protocol, epochs=3)
    steps = math.ceil(digits.n_train / tiny_protocol.batch_size)
    assert c.epochs == 3
    assert [len(e) for e in c.minibatch_losses] == [steps] * 3
    assert len(c.train_acc) == len(c.val_loss) == len(c.val_acc) == len(c.epoch_seconds) == 3
    assert all(0.0 <= a <= 1.0 for a in c.train_acc + c.val_acc)
    assert c.train_loss[0] == pytest.approx(sum(c.minibatch_losses[0]) / steps)
    # it learns: loss falls well below chance (ln 10 = 2.30) and accuracy rises
    assert c.train_loss[-1] < c.train_loss[0] and c.train_loss[-1] < 2.0
    assert c.val_acc[-1] > 0.3


def test_same_seed_same_curve_and_seed_matters(digits, tiny_protocol):
    a, b = run(digits, tiny_protocol, 2), run(digits, tiny_protocol, 2)
    assert a.minibatch_losses == b.minibatch_losses and a.val_acc == b.val_acc
    assert run(digits, tiny_protocol, 2, seed=8).minibatch_losses != a.minibatch_losses


def test_short_run_is_a_prefix_of_the_full_schedule(digits, tiny_protocol):
    """T epochs of a T_end schedule are exactly the first T epochs of a longer run."""
    short, longer = run(digits, tiny_protocol, 2, validate=False), run(digits, tiny_protocol, 4, validate=False)
    assert longer.minibatch_losses[:2] == short.minibatch_losses
    assert not short.val_acc


def test_divergence_raises_with_partial_curve(digits):
    proto = Protocol(schedule_epochs=5, batch_size=128, lr=1e12, device="cpu", nesterov=False, momentum=0.0,
                     size={"C": 4, "N": 1})
    with pytest.raises(TrainingDiverged) as info:
        run(digits, proto, 5)
    c = info.value.curve
    assert c is not None and 1 <= c.epochs <= 5
    assert not c.is_finite()


def test_oom_is_reported_as_training_failure(digits, tiny_protocol, monkeypatch):
    from nas_engine.training import TrainingOutOfMemory

    model = build_model(SPACE, ARCH, digits, tiny_protocol, 0)

    def boom(*a, **k):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(model, "forward", boom)
    with pytest.raises(TrainingOutOfMemory, match="out of memory"):
        train(model, digits, tiny_protocol, epochs=1)


def test_bf16_autocast_trains(digits, tiny_protocol):
    c = run(digits, tiny_protocol.replace(amp="bf16"), 2)
    assert c.is_finite() and c.train_loss[-1] < c.train_loss[0]


@pytest.mark.parametrize("kw, msg", [
    ({"schedule_epochs": 0}, "Protocol: schedule_epochs must be an integer >= 1, got 0"),
    ({"schedule_epochs": 2.5}, "Protocol: schedule_epochs must be an integer >= 1, got 2.5"),
    ({"batch_size": True}, "Protocol: batch_size must be an integer >= 1, got True"),
    ({"size": 8}, "Protocol: size must be a mapping of size names to values, e.g. {'C': 8, 'N': 1}, got 8"),
    ({"scale": ""}, "Protocol: scale must be the name of one of the space's sizes, e.g. 'default' or 'small', got ''"),
    ({"eval_batch_size": 0}, "Protocol: eval_batch_size must be an integer >= 1, got 0"),
    ({"lr": -1.0}, "Protocol: lr must be a finite number > 0 and <= 3.40282e+38, got -1.0"),
    ({"lr": 0}, "Protocol: lr must be a finite number > 0 and <= 3.40282e+38, got 0"),
    ({"lr": math.inf}, "Protocol: lr must be a finite number > 0 and <= 3.40282e+38, got inf"),
    ({"lr": "0.1"}, "Protocol: lr must be a finite number > 0 and <= 3.40282e+38, got '0.1'"),
    ({"lr": 1e39}, "Protocol: lr must be a finite number > 0 and <= 3.40282e+38, got 1e+39"),  # not a float32
    ({"weight_decay": 1e300}, "Protocol: weight_decay must be a finite number >= 0 and <= 3.40282e+38, got 1e+300"),
    ({"lr_min": -0.1}, "Protocol: lr_min must be a finite number >= 0, got -0.1"),
    ({"lr_min": math.nan}, "Protocol: lr_min must be a finite number >= 0, got nan"),
    ({"lr_min": 0.2}, "Protocol: lr_min must be <= lr=0.1, got 0.2"),
    ({"momentum": 2.0}, "Protocol: momentum must be a finite number >= 0 and < 1, got 2.0"),
    ({"momentum": 1}, "Protocol: momentum must be a finite number >= 0 and < 1, got 1"),
    ({"momentum": -0.5}, "Protocol: momentum must be a finite number >= 0 and < 1, got -0.5"),
    ({"weight_decay": -1e-4}, "Protocol: weight_decay must be a finite number >= 0 and <= 3.40282e+38, got -0.0001"),
    ({"weight_decay": math.inf}, "Protocol: weight_decay must be a finite number >= 0 and <= 3.40282e+38, got inf"),
    ({"nesterov": 1}, "Protocol: nesterov must be True or False, got 1"),
    ({"momentum": 0.0}, "Protocol: nesterov=True needs momentum > 0 (or nesterov=False), got momentum=0.0"),
    ({"channels_last": "yes"}, "Protocol: channels_last must be True, False or None, got 'yes'"),
    ({"augment": None}, "Protocol: augment must be True or False, got None"),
    ({"amp": "fp8"}, "Protocol: amp must be one of None, 'bf16', 'fp16', got 'fp8'"),
    ({"device": "tpu"}, "Protocol: device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu'"),
])
def test_protocol_validation(kw, msg):
    with pytest.raises(ValueError) as info:
        Protocol(**kw)
    assert str(info.value) == msg
    with pytest.raises(ValueError) as info:  # replace() checks the same way
        Protocol().replace(**kw)
    assert str(info.value) == msg


def test_size_belongs_to_the_space_and_is_checked_when_resolved():
    from nas_engine.registry import spaces

    nb201, darts = spaces.create("nb201"), spaces.create("darts")
    assert Protocol().size_for(nb201) == {"C": 16, "N": 5}  # the benchmark's network
    assert Protocol.preset("small").size_for(darts) == {"C": 8, "layers": 5}
    assert Protocol(size={"C": 4}, scale="small").size_for(nb201) == {"C": 4, "N": 1}
    resolved = Protocol.preset("small").resolved(nb201)
    assert resolved == Protocol.preset("nb201", size={"C": 8, "N": 1}, batch_size=128, schedule_epochs=50)
    assert hash(resolved) == hash(resolved.replace())
    with pytest.raises(ValueError, match="space 'nb201': size N must be an integer >= 1, got 0"):
        Protocol(size={"N": 0}).size_for(nb201)
    with pytest.raises(ValueError, match="space 'darts' has no size parameter 'N'; its size parameters: C, layers"):
        Protocol(size={"C": 8, "N": 1}).size_for(darts)
    with pytest.raises(ValueError, match="space 'nb201' has no size named 'huge'; its sizes: default, small, tiny"):
        Protocol(scale="huge").size_for(nb201)
    assert Protocol(scale="huge", size={"C": 2, "N": 1}).size_for(nb201) == {"C": 2, "N": 1}  # every key given
    with pytest.raises(ValueError, match="unknown protocol preset 'big'; known: small, nb201"):
        Protocol.preset("big")
    with pytest.raises(TypeError, match="cannot change"):
        resolved.size["C"] = 2


def test_protocols_of_an_earlier_version_convert():
    from nas_engine.registry import spaces

    old = {"epochs": 50, "batch_size": 128, "lr": 0.1, "C": 8, "N": 1}
    assert Protocol.from_dict(old) == Protocol(schedule_epochs=50, batch_size=128, size={"C": 8, "N": 1})
    assert Protocol.from_dict(old, space=spaces.create("darts")).size == {"C": 8, "layers": 5}
    assert Protocol.from_dict(old, space=spaces.create("randwired")).size == {"C": 8, "stages": 1}
    with pytest.raises(ValueError, match=r"unknown Protocol field\(s\) \['width'\]"):
        Protocol.from_dict({"width": 3})


def test_protocol_accepts_the_edges_and_normalises_integers():
    import numpy as np

    p = Protocol(schedule_epochs=np.int64(3), lr=1, lr_min=1, momentum=0.0, nesterov=False, weight_decay=0,
                 channels_last=False, amp="bf16", device="cpu")
    assert type(p.schedule_epochs) is int and p.schedule_epochs == 3 and p.to_dict()["lr_min"] == 1
    assert p.replace(momentum=0.99, nesterov=True).momentum == 0.99
    assert Protocol.from_dict(p.to_dict()) == p


def test_epochs_beyond_schedule_refused(digits, tiny_protocol):
    model = build_model(SPACE, ARCH, digits, tiny_protocol, 0)
    with pytest.raises(ValueError, match=r"epochs must be an integer in \[1, protocol.schedule_epochs=10\]"):
        train(model, digits, tiny_protocol, epochs=11)


def test_build_model_is_seeded_and_leaves_global_rng_alone(digits, tiny_protocol):
    state = torch.random.get_rng_state()
    m1 = build_model(SPACE, ARCH, digits, tiny_protocol, 3)
    m2 = build_model(SPACE, ARCH, digits, tiny_protocol, 3)
    assert torch.equal(torch.random.get_rng_state(), state)
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p, q)


def test_optimization_setup_follows_the_protocol(digits, tiny_protocol):
    from nas_engine.training import Optimization

    model = build_model(SPACE, ARCH, digits, tiny_protocol, 0)
    opt = Optimization(model.parameters(), tiny_protocol, torch.device("cpu"), steps_per_epoch=9)
    group = opt.optimizer.param_groups[0]
    assert isinstance(opt.optimizer, torch.optim.SGD) and group["nesterov"] and group["momentum"] == 0.9
    assert opt.lr == tiny_protocol.lr and group["weight_decay"] == tiny_protocol.weight_decay
    assert opt.scheduler.T_max == 9 * tiny_protocol.schedule_epochs and opt.scheduler.eta_min == tiny_protocol.lr_min
    assert opt.scaler is None  # fp16 loss scaling is for CUDA only
    fp16 = Optimization(model.parameters(), tiny_protocol.replace(amp="fp16"), torch.device("cpu"), 9)
    assert fp16.scaler is None


def test_optimization_step_with_the_fp16_scaler_takes_the_same_step(digits, tiny_protocol):
    """The gradient-scaler branch of the shared step (CUDA fp16; forced here on CPU in float32, where scaling
    by a power of two is exact) updates the weights exactly as the plain branch, and advances the schedule."""
    from nas_engine.training import Optimization, training_batch

    proto = tiny_protocol.replace(augment=False)
    data = digits
    idx = torch.arange(proto.batch_size)
    results = []
    for scaled in (False, True):
        model = build_model(SPACE, ARCH, data, proto, 0).to(memory_format=torch.channels_last)
        opt = Optimization(model.parameters(), proto, torch.device("cpu"), steps_per_epoch=4)
        if scaled:
            opt.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
        xb, yb = training_batch(data, idx, proto, torch.Generator())
        losses = [float(opt.step(model, xb, yb)[0][1]) for _ in range(3)]
        results.append((losses, model.state_dict(), opt.lr))
    (plain_losses, plain, plain_lr), (scaled_losses, scaled, scaled_lr) = results
    assert scaled_losses == plain_losses and scaled_lr == plain_lr < proto.lr
    for name, value in plain.items():
        assert torch.equal(scaled[name], value), name
