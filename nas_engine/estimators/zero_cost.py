"""Zero-cost proxies: scores of an architecture's network at initialisation.

Each proxy is a *measure* -- a function ``(model, x, y) -> float`` of a freshly
initialised network and one minibatch -- registered in this module's small
measure registry with ``@measure(name)`` (the NASLib / zero-cost-nas design),
and exposed as an estimator of the same name:

=============  ===============================================================
``synflow``    Tanaka et al. 2020: with every parameter replaced by its absolute
               value, BatchNorm switched off and an all-ones input of one image,
               R = sum of the logits; score = sum over conv/linear weights of
               ``|theta * dR/dtheta|``.  Data-free (only the input shape); in
               float64 to avoid overflow, as the reference implementation.
``snip``       Lee et al. 2019: ``sum |theta * dL/dtheta|`` (cross-entropy L).
``grasp``      Wang et al. 2020: ``sum -theta * (H g)`` with g = dL/dtheta and
               H the Hessian of L (a Hessian-vector product).
``fisher``     Theis et al. 2018 / Turner et al. 2020: per output channel of a
               conv/linear layer, ``0.5 * mean_n (sum_spatial a * dL/da)^2``,
               summed with each channel weighted by its parameter count (as the
               reference broadcasts channel values to the channel's parameters).
``grad-norm``  sum over conv/linear layers of ``||dL/dW||_2``.
``plain``      ``sum theta * dL/dtheta`` (signed).
``jacov``      Mellor et al. 2021 (v1): ``-sum_i log(v_i + k) + 1/(v_i + k)``,
               v the eigenvalues of the correlation matrix of the per-image
               input Jacobians of the summed logits, k = 1e-5.
``nwot``       Mellor et al. 2021 (v2, "relu_logdet"): ``log|K|`` with
               ``K = sum over ReLU modules of c c^T + (1-c)(1-c)^T``, c the
               binary codes (pre-activation > 0) of the minibatch's images.
``params``     number of parameters.
``flops``      forward FLOPs for one image (:func:`nas_engine.costs.count_flops`).
=============  ===============================================================

Sums "over conv/linear weights" run over every ``Conv*d`` and ``nn.Linear``
module's ``weight``, as the reference implementations do (BatchNorm and bias
parameters are not scored).  Scores are the measures as defined, higher is
better as the papers use them (NASLib reports ``log(synflow)``; the ranking is
the same).  Undefined values stay visible: ``nwot`` is ``-inf`` when ``K`` is
singular and ``jacov`` ``NaN`` when an input Jacobian is constant (e.g. a
network whose cells are all ``none``); a search records such a candidate as
failed with the worst score, and :func:`nas_engine.criteria` ranks it last.

The estimator builds the space's network at the protocol's size (``protocol.size_for(space)``),
initialised from ``ctx.arch_seed(arch)`` (:func:`~nas_engine.training.build_model`),
on the protocol's device in training mode (BatchNorm uses batch statistics),
and scores it on one minibatch of ``batch_size`` (default: the protocol's)
training images drawn from ``ctx.data`` by a generator seeded with the
search seed ``ctx.seed`` -- the same minibatch for every architecture of a
search, without augmentation.  ``Estimate.cost_seconds`` is the wall time of
building, drawing and measuring; ``epochs`` is 0 and ``curve`` None.
Nothing global changes: the torch RNG is forked, and on CUDA cuDNN is made
deterministic (no autotuning) only inside the measurement, its previous
settings restored afterwards.

:func:`zero_cost_scores` scores many architectures with many proxies on any
:class:`~nas_engine.data.Dataset`, in the ``{name: {arch string: score}}``
form that :func:`nas_engine.correlate.correlate` takes as ``baselines``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import check_int
from ..costs import count_flops, count_params
from ..registry import estimators
from .base import Context, Estimate, Estimator

if TYPE_CHECKING:  # pragma: no cover
    from ..data import Dataset
    from ..spaces.base import Architecture, SearchSpace
    from ..training import Protocol

__all__ = [
    "MEASURES", "ZERO_COST_PROXIES", "Measure", "measure", "compute_measure", "draw_minibatch",
    "zero_cost_scores", "ZeroCostEstimator",
    "SynFlow", "SNIP", "GraSP", "Fisher", "GradNorm", "Plain", "JacCov", "NWOT", "Params", "FLOPs",
]


# ---------------------------------------------------------------------------------
# the measure registry
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measure:
    """A zero-cost measure: ``fn(model, x, y) -> float``; ``uses_data``: whether it reads the images."""

    name: str
    fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], float]
    uses_data: bool = True


#: name -> :class:`Measure`
MEASURES: dict[str, Measure] = {}


def measure(name: str, *, uses_data: bool = True):
    """Decorator registering ``fn(model, x, y) -> float`` as the zero-cost measure ``name``."""

    def decorator(fn):
        if name in MEASURES:
            raise ValueError(f"zero-cost measure {name!r} is already registered")
        MEASURES[name] = Measure(name, fn, uses_data)
        return fn

    return decorator


def compute_measure(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The measure ``name`` of ``model`` on the minibatch ``(x, y)``.

    ``model`` may be modified (synflow takes absolute values of its weights and
    removes its BatchNorm): pass a fresh network.  Gradients are enabled inside.
    """
    try:
        m = MEASURES[name]
    except KeyError:
        raise ValueError(f"unknown zero-cost measure {name!r}; known: {', '.join(MEASURES)}") from None
    with torch.enable_grad():
        return float(m.fn(model, x, y))


def _weighted_layers(model: nn.Module) -> list[nn.Module]:
    """The conv and linear modules, whose weights the parameter-level measures score."""
    return [m for m in model.modules() if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]


def _loss_grads(model: nn.Module, x, y, *, create_graph: bool = False):
    """(weights, dL/dweights) of the cross-entropy on ``(x, y)``; unused weights get ``None``."""
    weights = [m.weight for m in _weighted_layers(model)]
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, weights, create_graph=create_graph, allow_unused=True)
    return weights, grads


@measure("synflow", uses_data=False)
def _synflow(model, x, y) -> float:
    # BatchNorm off (the reference's bn=False copy), |theta| in float64, one all-ones image
    _remove_batchnorm(model)
    model.double()
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.abs_()
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    weights = [m.weight for m in _weighted_layers(model)]
    out = model(ones)
    grads = torch.autograd.grad(out.sum(), weights, allow_unused=True)
    return sum(float((w.detach() * g).abs().sum()) for w, g in zip(weights, grads) if g is not None)


def _remove_batchnorm(model: nn.Module) -> None:
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, name, nn.Identity())


@measure("snip")
def _snip(model, x, y) -> float:
    weights, grads = _loss_grads(model, x, y)
    return sum(float((w.detach() * g).abs().sum()) for w, g in zip(weights, grads) if g is not None)


@measure("plain")
def _plain(model, x, y) -> float:
    weights, grads = _loss_grads(model, x, y)
    return sum(float((w.detach() * g).sum()) for w, g in zip(weights, grads) if g is not None)


@measure("grad-norm")
def _grad_norm(model, x, y) -> float:
    _, grads = _loss_grads(model, x, y)
    return sum(float(g.norm()) for g in grads if g is not None)


@measure("grasp")
def _grasp(model, x, y) -> float:
    weights, grads = _loss_grads(model, x, y, create_graph=True)
    used = [(w, g) for w, g in zip(weights, grads) if g is not None]
    if not used:
        return 0.0
    z = sum((g.detach() * g).sum() for _, g in used)  # g^T g with one factor held fixed: d/dtheta = H g
    hg = torch.autograd.grad(z, [w for w, _ in used], allow_unused=True)
    return sum(float((-w.detach() * h).sum()) for (w, _), h in zip(used, hg) if h is not None)


@measure("fisher")
def _fisher(model, x, y) -> float:
    layers = _weighted_layers(model)
    fisher: dict[nn.Module, torch.Tensor] = {}

    def forward_hook(module, inputs, output):
        act = output.detach()

        def grad_hook(grad):
            g_nk = (act * grad).sum(dim=tuple(range(2, act.dim()))) if act.dim() > 2 else act * grad
            del_k = 0.5 * g_nk.pow(2).mean(0)
            fisher[module] = del_k if module not in fisher else fisher[module] + del_k

        if output.requires_grad:
            output.register_hook(grad_hook)

    handles = [m.register_forward_hook(forward_hook) for m in layers]
    try:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
    finally:
        for h in handles:
            h.remove()
    # each channel's value counts once per parameter of that channel (the reference's broadcast)
    return sum(float(f.sum()) * math.prod(m.weight.shape[1:]) for m, f in fisher.items())


@measure("jacov")
def _jacov(model, x, y) -> float:
    if x.shape[0] < 2:
        raise ValueError(f"jacov needs a minibatch of at least 2 images, got {x.shape[0]}")
    x = x.detach().clone().requires_grad_(True)
    out = model(x)
    (jac,) = torch.autograd.grad(out, x, grad_outputs=torch.ones_like(out), allow_unused=True)
    if jac is None:  # the output does not depend on the input
        return math.nan
    jac = jac.reshape(jac.shape[0], -1).double().cpu().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.corrcoef(jac)
    if not np.isfinite(corr).all():  # an image's Jacobian is constant: the correlation is undefined
        return math.nan
    v = np.linalg.eigvalsh(corr)
    k = 1e-5
    with np.errstate(invalid="ignore"):
        return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


@measure("nwot")
def _nwot(model, x, y) -> float:
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"nwot needs a minibatch of at least 2 images, got {n}")
    K = torch.zeros(n, n, dtype=torch.float64, device=x.device)

    def pre_hook(module, inputs):
        c = (inputs[0].detach().reshape(n, -1) > 0).float()
        K.add_((c @ c.T + (1.0 - c) @ (1.0 - c).T).double())  # float32 counts are exact below 2**24

    handles = [m.register_forward_pre_hook(pre_hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    sign, logdet = torch.linalg.slogdet(K.cpu())
    return float(logdet) if float(sign) > 0 else -math.inf


@measure("params", uses_data=False)
def _params(model, x, y) -> float:
    return float(count_params(model))


@measure("flops", uses_data=False)
def _flops(model, x, y) -> float:
    return float(count_flops(model, x[:1]))


#: every registered zero-cost proxy, in a fixed order
ZERO_COST_PROXIES = tuple(MEASURES)


# ---------------------------------------------------------------------------------
# data and scoped settings
# ---------------------------------------------------------------------------------
def draw_minibatch(data: Dataset, batch_size: int, seed: int, device: torch.device | str = "cpu"
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` training images (all, if fewer) drawn without replacement by a generator seeded with ``seed``."""
    check_int(batch_size, "batch_size")
    if data.n_train == 0:
        raise ValueError(f"dataset {data.name!r} has no training images")
    gen = torch.Generator().manual_seed(int(seed) % (2**63))
    idx = torch.randperm(data.n_train, generator=gen)[:batch_size]
    return data.x_train[idx].to(device), data.y_train[idx].to(device)


@contextlib.contextmanager
def _deterministic(device: torch.device):
    """On CUDA: deterministic cuDNN without autotuning inside the block, previous settings restored."""
    if device.type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    previous = cudnn.benchmark, cudnn.deterministic
    cudnn.benchmark, cudnn.deterministic = False, True
    try:
        yield
    finally:
        cudnn.benchmark, cudnn.deterministic = previous


# ---------------------------------------------------------------------------------
# estimators
# ---------------------------------------------------------------------------------
class ZeroCostEstimator(Estimator):
    """Score = the zero-cost measure :attr:`measure` of the network at initialisation (module docstring).

    ``batch_size``: images in the minibatch (default ``None``: the protocol's
    ``batch_size``); only for measures that read data.
    """

    measure: str = ""

    def __init__(self, batch_size: int | None = None):
        if self.measure not in MEASURES:
            raise TypeError(f"{type(self).__name__}.measure must name a registered zero-cost measure "
                            f"({', '.join(MEASURES)}), got {self.measure!r}")
        check_int(batch_size, "batch_size", none=True, who=type(self).__name__)
        if batch_size is not None and not MEASURES[self.measure].uses_data:
            raise ValueError(f"{type(self).__name__} does not read data; batch_size must be None, "
                             f"got {batch_size!r}")
        self.batch_size = batch_size

    def validate_context(self, ctx: Context) -> None:
        if ctx.data is None:
            raise ValueError(f"{type(self).__name__} builds the network for a dataset's input shape and "
                             "classes, but this context has no dataset (pass data=...)")
        if MEASURES[self.measure].uses_data and ctx.data.n_train == 0:
            raise ValueError(f"{type(self).__name__} needs training images, but dataset {ctx.data.name!r} has none")

    def estimate(self, arch: Architecture, ctx: Context) -> Estimate:
        from ..training import build_model, resolve_device, seeded

        self.validate_context(ctx)
        t0 = time.perf_counter()
        device = resolve_device(ctx.protocol.device)
        seed = ctx.arch_seed(arch)
        model = build_model(ctx.space, arch, ctx.data, ctx.protocol, seed).to(device).train()
        n = self.batch_size if self.batch_size is not None else ctx.protocol.batch_size
        if not MEASURES[self.measure].uses_data:
            n = 1  # only the input shape is used
        x, y = draw_minibatch(ctx.data, n, ctx.seed, device)
        with _deterministic(device), seeded(seed):
            score = compute_measure(self.measure, model, x, y)
        info = {"measure": self.measure}
        if MEASURES[self.measure].uses_data:
            info["batch_size"] = int(x.shape[0])
        return Estimate(score, time.perf_counter() - t0, 0.0, None, info)


@estimators.register("synflow")
class SynFlow(ZeroCostEstimator):
    """SynFlow (data-free): ``sum |theta * dR/dtheta|``, R the logit sum for |theta| and an all-ones input."""

    measure = "synflow"
    score_description = "SynFlow saliency of the network at initialisation (data-free), higher is better"


@estimators.register("snip")
class SNIP(ZeroCostEstimator):
    """SNIP: ``sum |theta * dL/dtheta|`` at initialisation."""

    measure = "snip"
    score_description = "SNIP saliency sum |theta * dL/dtheta| at initialisation, higher is better"


@estimators.register("grasp")
class GraSP(ZeroCostEstimator):
    """GraSP: ``sum -theta * H g`` at initialisation."""

    measure = "grasp"
    score_description = "GraSP score sum -theta * H g at initialisation, higher is better"


@estimators.register("fisher")
class Fisher(ZeroCostEstimator):
    """Fisher: channel-wise ``0.5 * mean (sum a * dL/da)^2``, weighted by parameters per channel."""

    measure = "fisher"
    score_description = "Fisher saliency of the activations at initialisation, higher is better"


@estimators.register("grad-norm")
class GradNorm(ZeroCostEstimator):
    """grad_norm: sum over conv/linear layers of the gradient's L2 norm."""

    measure = "grad-norm"
    score_description = "sum of the layers' gradient norms at initialisation, higher is better"


@estimators.register("plain")
class Plain(ZeroCostEstimator):
    """plain: ``sum theta * dL/dtheta`` at initialisation."""

    measure = "plain"
    score_description = "sum theta * dL/dtheta at initialisation, higher is better"


@estimators.register("jacov")
class JacCov(ZeroCostEstimator):
    """Jacobian covariance (Mellor et al., NASWOT v1)."""

    measure = "jacov"
    score_description = "Jacobian covariance score at initialisation (NASWOT v1), higher is better"


@estimators.register("nwot")
class NWOT(ZeroCostEstimator):
    """NASWOT / relu_logdet (Mellor et al., v2): log-determinant of the ReLU-code kernel."""

    measure = "nwot"
    score_description = "log-determinant of the ReLU-code kernel at initialisation (NASWOT), higher is better"


@estimators.register("params")
class Params(ZeroCostEstimator):
    """#params of the network."""

    measure = "params"
    score_description = "number of parameters of the network"


@estimators.register("flops")
class FLOPs(ZeroCostEstimator):
    """Forward FLOPs of the network for one image."""

    measure = "flops"
    score_description = "forward FLOPs of the network for one image"


# ---------------------------------------------------------------------------------
# many architectures, many proxies
# ---------------------------------------------------------------------------------
def zero_cost_scores(space: SearchSpace, archs: Iterable[Architecture | str], data: Dataset,
                     protocol: Protocol | None = None, *, proxies: Sequence[str] = ZERO_COST_PROXIES,
                     seed: int = 0, batch_size: int | None = None, progress: bool = False
                     ) -> dict[str, dict[str, float]]:
    """``{proxy: {arch string: score}}`` for every architecture and proxy.

    Exactly what the estimators give in a search with seed ``seed`` (same
    networks, same minibatch), in the form :func:`nas_engine.correlate.correlate`
    takes as ``baselines``.  ``protocol`` (default ``Protocol()``) gives the
    network size, device and, unless ``batch_size`` is set, the minibatch size.
    """
    from ..registry import create
    from ..training import Protocol

    unknown = [p for p in proxies if p not in MEASURES]
    if unknown:
        raise ValueError(f"unknown zero-cost proxies {unknown}; known: {', '.join(MEASURES)}")
    protocol = protocol if protocol is not None else Protocol()
    ctx = Context(space=space, data=data, protocol=protocol, seed=seed)
    ests = {p: create("estimator", p, **({"batch_size": batch_size} if MEASURES[p].uses_data else {}))
            for p in proxies}
    archs = [space.from_string(a) if isinstance(a, str) else a for a in archs]
    out: dict[str, dict[str, float]] = {p: {} for p in proxies}
    it = archs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(archs, desc="zero-cost", unit="arch")
    for a in it:
        for p, est in ests.items():
            out[p][a.string] = est.estimate(a, ctx).score
    return out
