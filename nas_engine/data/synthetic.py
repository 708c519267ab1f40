"""FEAR's Synthetic CIFAR-10 (Appendix A.4), generated from the seed: the ``synthetic-cifar10`` dataset plugin.

It generates exactly the splits asked for, so it returns a finished
:class:`~nas_engine.data.types.Dataset` (and keeps a small cache of its own,
emptied by :func:`~nas_engine.data.loading.clear_cache`).
"""

from __future__ import annotations

import functools
import math
from types import MappingProxyType

import numpy as np
import torch
import torch.nn.functional as F

from ..registry import datasets
from .loading import _on_clear_cache
from .types import _CIFAR_SIDE, Dataset, _check_int, _check_memory, _read_only

__all__ = ["synthetic_cifar10", "synthetic_cifar10_arrays"]


_SYNTHETIC_CLASSES = 10
_SYNTHETIC_DEFAULTS = {"n_train": 40_000, "n_val": 10_000, "n_test": 10_000}  # the paper's 50k + 10k


@datasets.register("synthetic-cifar10")
def synthetic_cifar10(*, n_train: int | None = None, n_val: int | None = None, resolution: int | None = None,
                      seed: int = 0, n_test: int | None = None, side: int | None = None) -> Dataset:
    """FEAR's Synthetic CIFAR-10 (see :func:`synthetic_cifar10_arrays`): generates exactly the splits asked
    for, so it returns a finished :class:`Dataset` (defaults: the paper's 40,000 / 10,000 / 10,000)."""
    side = _CIFAR_SIDE if side is None else _check_int("side", side, low=1)
    sizes = {"n_train": n_train, "n_val": n_val,
             "n_test": _check_int("n_test", n_test, low=0) if n_test is not None else None}
    sizes = {k: _SYNTHETIC_DEFAULTS[k] if v is None else v for k, v in sizes.items()}
    dim, n, res = 3 * side * side, sum(sizes.values()), side if resolution is None else resolution
    # float32: a labelling network's first layer, the images generated and the images at ``resolution``
    _check_memory("synthetic-cifar10", f"{n} images of 3x{side}x{side} and labelling networks on {dim} inputs",
                  4 * (dim * dim + n * (dim + 3 * res * res)))
    return _load_synthetic(sizes["n_train"], sizes["n_val"], sizes["n_test"],
                           side if resolution is None else resolution, seed, side)


#: a fast configuration for the conformance checks (nas_engine.testing.check_plugin)
synthetic_cifar10.conformance_options = {"n_train": 60, "n_val": 20, "n_test": 20, "side": 8}


def _torch_seed(seed: int, stream: int) -> int:
    """An independent torch seed per (dataset seed, stream)."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1, dtype=np.uint64)[0] % (2**63))


def synthetic_cifar10_arrays(sizes: tuple[int, ...], seed: int = 0, *, side: int = _CIFAR_SIDE,
                             chunk: int = 4096) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Images and labels of Synthetic CIFAR-10: one ``(x, y)`` pair per entry of ``sizes``.

    Images are standard-Gaussian float32 ``(n, 3, 32, 32)`` tensors.  Ten
    labelling networks ``f_k(x) = w2_k . relu(W1_k x + b1_k) + b2_k`` with
    ``W1_k`` of shape 3072 x 3072 are initialised as PyTorch initialises
    ``nn.Linear`` (uniform in +-1/sqrt(3072) for weights and biases); an
    image's label is ``argmax_k f_k(x)`` (FEAR, Appendix A.4).

    One detail the paper leaves open: with the output bias drawn at random,
    each network's mean output ``w2_k . E[relu(W1_k x + b1_k)]`` differs from
    the others by about one standard deviation of the outputs, so a few
    networks win most images (class shares of 0.5% to 25%), while the paper
    reports balanced classes.  The output bias ``b2_k`` is therefore set to
    ``-w2_k . E[relu(W1_k x + b1_k)]``, computed exactly for Gaussian ``x``
    (each pre-activation is ``N(b1_j, |W1_j|^2)``, and ``E relu(N(m, s^2)) =
    m Phi(m/s) + s phi(m/s)``): every network's output has mean zero and the
    classes come out balanced to within a few percent.

    Every split uses its own random stream, so the networks and each split's
    images depend on ``seed`` only (not on the other sizes).  Float32 matmuls:
    bit-identical on one machine; elsewhere an image at an exact near-tie of
    two networks could get the other label.

    ``side`` scales the construction down (not in the paper): images are
    ``(n, 3, side, side)`` and the labelling networks ``D -> D -> 1`` with
    ``D = 3 * side**2``, initialised the same way.  A smaller ``D`` needs far
    fewer training images before a network generalises (see the README).
    """
    side = _check_int("side", side, low=1)
    dim = 3 * side * side
    bound = 1.0 / math.sqrt(dim)
    xs = []
    for i, n in enumerate(sizes):
        g = torch.Generator().manual_seed(_torch_seed(seed, 1 + i))
        xs.append(torch.randn(n, dim, generator=g))
    scores = [torch.empty(n, _SYNTHETIC_CLASSES, dtype=torch.float64) for n in sizes]
    g = torch.Generator().manual_seed(_torch_seed(seed, 0))
    normal = torch.distributions.Normal(0.0, 1.0)
    for k in range(_SYNTHETIC_CLASSES):
        w1 = torch.empty(dim, dim).uniform_(-bound, bound, generator=g)
        b1 = torch.empty(dim).uniform_(-bound, bound, generator=g)
        w2 = torch.empty(dim).uniform_(-bound, bound, generator=g)
        s = torch.linalg.vector_norm(w1, dim=1, dtype=torch.float64)
        m = b1.double()
        z = m / s
        mean_relu = m * normal.cdf(z) + s * torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        b2 = -float(w2.double() @ mean_relu)
        for x, out in zip(xs, scores):
            for a in range(0, len(x), chunk):
                h = torch.relu(torch.addmm(b1, x[a:a + chunk], w1.t()))
                out[a:a + chunk, k] = (h @ w2).double() + b2
    return ([x.view(-1, 3, side, side) for x in xs],
            [s.argmax(1) for s in scores])


@functools.lru_cache(maxsize=4)
def _load_synthetic(n_train: int, n_val: int, n_test: int, resolution: int, seed: int,
                    side: int = _CIFAR_SIDE) -> Dataset:
    if n_train < 1:
        raise ValueError(f"n_train must be >= 1, got n_train={n_train}")
    (x_train, x_val, x_test), (y_train, y_val, y_test) = synthetic_cifar10_arrays(
        (n_train, n_val, n_test), seed, side=side)

    def resized(x: torch.Tensor) -> torch.Tensor:
        if resolution == side:
            return x
        return F.interpolate(x, size=(resolution, resolution), mode="bilinear",
                             align_corners=False, antialias=resolution < side)

    x_train, x_val, x_test = resized(x_train), resized(x_val), resized(x_test)
    var, mean = torch.var_mean(x_train, dim=(0, 2, 3), correction=0, keepdim=True)
    std = var.sqrt().clamp_min(1e-8)
    return Dataset(
        name="synthetic-cifar10",
        x_train=(x_train - mean) / std, y_train=y_train,
        x_val=(x_val - mean) / std, y_val=y_val,
        x_test=(x_test - mean) / std, y_test=y_test,
        num_classes=_SYNTHETIC_CLASSES,
        mean=tuple(mean.flatten().tolist()), std=tuple(std.flatten().tolist()),
        crop_padding=0, flip=False, seed=seed,
        info=MappingProxyType({
            "train_indices": _read_only(np.arange(n_train)),
            "val_indices": _read_only(np.arange(n_val)),
            "test_indices": _read_only(np.arange(n_test)),
            "pool_size": n_train + n_val,
            "source": f"synthetic (FEAR Appendix A.4), seed {seed}"
                      + ("" if side == _CIFAR_SIDE else f", generated at {side}x{side}"),
            "side": side,
        }),
    )


_on_clear_cache(_load_synthetic.cache_clear)
