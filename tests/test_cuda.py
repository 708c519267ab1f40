"""CUDA paths: run on a machine with a GPU (skipped elsewhere)."""

import math

import pytest
import torch

from nas_engine import Budget, Search
from nas_engine.data import load_dataset
from nas_engine.estimators import TSEEMA, ValAcc
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.training import Protocol, TrainingOutOfMemory, build_model, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SPACE = NB201Space()
ARCH = SPACE.from_string("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|")
GPU = Protocol(schedule_epochs=10, batch_size=128, lr=0.05, device="cuda", size={"C": 8, "N": 1})


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize("amp", [None, "bf16", "fp16"])
def test_trains_on_cuda(digits, amp):
    proto = GPU.replace(amp=amp)
    c = train(build_model(SPACE, ARCH, digits, proto, 1), digits, proto, epochs=4, seed=1)
    assert c.info["device"].startswith("cuda") and c.is_finite()
    assert c.train_loss[-1] < c.train_loss[0] and c.val_acc[-1] > 0.3


def test_cuda_matches_cpu_closely(digits):
    cpu = GPU.replace(device="cpu")
    a = train(build_model(SPACE, ARCH, digits, cpu, 2), digits, cpu, epochs=2, seed=2, validate=False)
    b = train(build_model(SPACE, ARCH, digits, GPU, 2), digits, GPU, epochs=2, seed=2, validate=False)
    # same initialisation, data order and augmentation: the first loss (before any update) agrees
    # closely; later ones differ by float rounding (cuDNN may use TF32 on Ampere/Hopper), which SGD
    # amplifies over the steps
    assert b.minibatch_losses[0][0] == pytest.approx(a.minibatch_losses[0][0], rel=1e-3)
    assert b.minibatch_losses[0][1:3] == pytest.approx(a.minibatch_losses[0][1:3], rel=0.05)
    assert b.train_loss[-1] < b.train_loss[0] and a.train_loss[-1] < a.train_loss[0]


def test_search_auto_device_uses_cuda(digits):
    r = Search("regularized-evolution", "nb201", TSEEMA(epochs=2), data=digits,
               protocol=GPU.replace(device="auto"), budget=Budget(evaluations=4), progress=False).run()
    assert all(e.ok and e.curve.info["device"].startswith("cuda") for e in r.history)


class OOMSpace(NB201Space):
    """NB201 whose network for one architecture asks the GPU for far more memory than it has."""

    def __init__(self, poisoned):
        self.poisoned = poisoned

    def build(self, a, num_classes, **kw):
        model = super().build(a, num_classes, **kw)
        if a.string == self.poisoned:
            def hog(module, inputs):
                free, total = torch.cuda.mem_get_info()
                torch.empty(int(total * 4), dtype=torch.uint8, device="cuda")
            model.register_forward_pre_hook(hog)
        return model


def test_cuda_oom_is_recorded_failed_and_search_goes_on(digits):
    import numpy as np

    from .test_search import FixedList

    archs = [SPACE.sample(np.random.default_rng(i)).string for i in range(3)]
    r = Search(FixedList(archs), OOMSpace(archs[1]), ValAcc(epochs=1), data=digits, protocol=GPU,
               budget=Budget(evaluations=3), progress=False).run()
    assert [e.status for e in r.history] == ["ok", "failed", "ok"]
    assert r.history[1].reason.startswith("out-of-memory") and r.history[1].score == -math.inf
    with pytest.raises(TrainingOutOfMemory):
        proto = GPU
        train(OOMSpace(archs[1]).build(SPACE.from_string(archs[1]), 10, in_channels=1, C=8, N=1),
              digits, proto, epochs=1)


def test_processes_executor_trains_on_cuda(digits):
    import numpy as np

    from nas_engine.strategies import FixedList

    archs = [SPACE.sample(np.random.default_rng(i)).string for i in range(4)]
    r = Search(FixedList(archs), "nb201", TSEEMA(epochs=2), data=digits, protocol=GPU, executor="processes",
               workers=2, budget=Budget(evaluations=4), progress=False).run()
    assert sorted(e.arch.string for e in r.history) == sorted(archs)
    assert all(e.ok and e.curve.info["device"].startswith("cuda") for e in r.history)


def test_zero_cost_proxies_on_cuda(digits):
    from nas_engine.context import Context
    from nas_engine.estimators.zero_cost import ZERO_COST_PROXIES
    from nas_engine.registry import create

    proto = GPU.replace(batch_size=32)
    gpu = Context(space=SPACE, data=digits, protocol=proto, seed=0)
    cpu = Context(space=SPACE, data=digits, protocol=proto.replace(device="cpu"), seed=0)
    cudnn = torch.backends.cudnn
    before = (cudnn.benchmark, cudnn.deterministic)
    for name in ZERO_COST_PROXIES:
        a, b = (create("estimator", name).estimate(ARCH, gpu) for _ in range(2))
        assert a.score == b.score and math.isfinite(a.score), name  # deterministic on the GPU too
        c = create("estimator", name).estimate(ARCH, cpu)
        if name not in ("jacov", "nwot"):  # TF32 rounding can move eigenvalues / ReLU codes a little
            assert a.score == pytest.approx(c.score, rel=5e-2), name
    assert (cudnn.benchmark, cudnn.deterministic) == before


def test_several_candidates_at_once_on_one_gpu_score_as_one_at_a_time(digits):
    """The multi-candidate GPU path: worker processes sharing the device give the scores of one at a time."""
    from nas_engine.executors import InlineExecutor, ProcessExecutor
    from nas_engine.strategies import FixedList

    rng = __import__("numpy").random.default_rng(0)
    archs = [SPACE.sample(rng).string for _ in range(4)]

    def run(executor):
        result = Search(FixedList(archs), SPACE, TSEEMA(epochs=2), data=digits, protocol=GPU,
                        budget=Budget(evaluations=4), executor=executor, progress=False).run()
        assert all(ev.ok for ev in result.history)
        return {ev.arch.string: ev.score for ev in result.history}

    one = run(InlineExecutor(threads=1))
    many = run(ProcessExecutor(workers=4, threads=1, devices=[0]))
    assert one.keys() == many.keys()
    for a in archs:  # cuDNN's backward kernels may sum in another order: equal to float rounding
        assert math.isclose(one[a], many[a], rel_tol=1e-3), (a, one[a], many[a])
