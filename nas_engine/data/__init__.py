"""Image-classification datasets for architecture evaluation.

:func:`load_dataset` returns a :class:`Dataset`: whole train / validation / test
splits as in-memory float32 NCHW tensors, normalised per channel with the mean
and standard deviation of the training split.  Two datasets are built in:

``digits``
    scikit-learn's bundled 8x8 grey-scale digits (1,797 images, 10 classes).
    No files are needed; it is the engine's embedded demo dataset.
``cifar10``
    CIFAR-10 read from the standard "python version" batch directory
    (``cifar-10-batches-py``).  Every ``data_batch_N`` file present forms the
    training pool and ``test_batch`` (optional) the test set.

Validation images are held out of the training pool, class-balanced and
deterministic given ``seed``; the training split is a class-balanced subset of
the rest.  :func:`augment_batch` applies NAS-Bench-201's training augmentation
(random crop with padding plus horizontal flip) to a batch on any device.

Loads are cached in-process (see :func:`load_dataset`): the returned tensors are
shared between callers and must be treated as read-only.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import math
import numbers
import os
import re
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..safeload import safe_pickle_load

__all__ = [
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "Dataset",
    "augment_batch",
    "available_datasets",
    "clear_cache",
    "load_dataset",
    "synthetic_cifar10_arrays",
]

logger = logging.getLogger(__name__)

#: Official CIFAR-10 "python version" archive and the md5 of that archive.
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_DIRNAME = "cifar-10-batches-py"
#: Environment variable naming a directory that contains ``cifar-10-batches-py``.
DATA_ENV_VAR = "NAS_ENGINE_DATA"
DEFAULT_DATA_ROOT = Path("~/.cache/nas-engine")

_VAL_FRACTION = 0.2  # default share of the training pool held out for validation
_DIGITS_TEST_FRACTION = 0.2
_DIGITS_TEST_SEED = 0  # the digits test split is fixed, whatever ``seed`` is
_DATA_BATCH_RE = re.compile(r"data_batch_(\d+)")
_CIFAR_SIDE = 32


class _Spec(NamedTuple):
    """Static properties of a built-in dataset."""

    native_resolution: int
    max_value: float  # raw pixel values lie in [0, max_value]
    crop_padding: int  # augmentation padding at the native resolution
    flip: bool


_SPECS = {
    "cifar10": _Spec(native_resolution=_CIFAR_SIDE, max_value=255.0, crop_padding=4, flip=True),
    "digits": _Spec(native_resolution=8, max_value=16.0, crop_padding=1, flip=False),
    "synthetic-cifar10": _Spec(native_resolution=_CIFAR_SIDE, max_value=1.0, crop_padding=0, flip=False),
}
_SYNTHETIC_CLASSES = 10
_SYNTHETIC_DEFAULTS = {"n_train": 40_000, "n_val": 10_000, "n_test": 10_000}  # the paper's 50k + 10k


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Train / validation / test splits held in memory as tensors.

    Images are float32 NCHW, scaled to [0, 1] then normalised per channel with
    ``mean`` and ``std`` (in [0, 1] pixel units) computed on the training split.
    Labels are int64.  ``x_val`` may have zero rows; ``x_test`` is ``None`` when
    the dataset has no test set.  ``crop_padding`` and ``flip`` are the
    arguments to give :func:`augment_batch` for this dataset.

    ``info`` records provenance: ``train_indices`` and ``val_indices`` (sorted
    positions in the training source, i.e. the concatenated ``data_batch`` files
    for CIFAR-10), ``test_indices`` (positions in the test source, or ``None``),
    ``pool_size`` (images in the training pool) and ``source``.  For ``digits``
    both sources are the 1,797 images of ``load_digits``, so all three index
    arrays point into the same array and are pairwise disjoint.

    Instances may be shared through the load cache: treat every tensor as
    read-only.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int
    flip: bool
    seed: int = 0
    info: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def in_channels(self) -> int:
        return self.x_train.shape[1]

    @property
    def resolution(self) -> int:
        """Image height (images are square)."""
        return self.x_train.shape[2]

    @property
    def n_train(self) -> int:
        return self.y_train.shape[0]

    @property
    def n_val(self) -> int:
        return self.y_val.shape[0]

    @property
    def n_test(self) -> int:
        return 0 if self.y_test is None else self.y_test.shape[0]

    def to(self, device: torch.device | str) -> Dataset:
        """A copy with every tensor on ``device``; ``self`` if they already are."""
        target = torch.empty(0, device=device).device  # resolves e.g. "cuda" to "cuda:0"
        names = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
        tensors = {n: getattr(self, n) for n in names}
        if all(t is None or t.device == target for t in tensors.values()):
            return self
        moved = {n: None if t is None else t.to(target) for n, t in tensors.items()}
        return dataclasses.replace(self, **moved)

    def __reduce__(self):
        # picklable (for worker processes and Ray's object store) although ``info`` is a read-only mapping view
        state = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        state["info"] = dict(self.info)
        return _rebuild_dataset, (state,)

    def fingerprint(self) -> str:
        """Short stable description of the data configuration.

        Two loads with the same name, pool size, resolution, split sizes and
        seed have the same fingerprint; a resumed search compares it with the
        one it was started with.
        """
        side = self.info.get("side", _CIFAR_SIDE)
        return (
            f"{self.name}:{self.resolution}px" + ("" if side == _CIFAR_SIDE else f":side{side}")
            + f":pool{self.info.get('pool_size', '?')}"
            f":train{self.n_train}:val{self.n_val}:test{self.n_test}:seed{self.seed}"
        )

    def __repr__(self) -> str:
        return (
            f"Dataset({self.fingerprint()}, channels={self.in_channels}, "
            f"classes={self.num_classes}, device={self.x_train.device})"
        )


def _rebuild_dataset(state: dict[str, Any]) -> Dataset:
    return Dataset(**{**state, "info": MappingProxyType(state["info"])})


def available_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return sorted(_SPECS)


def augment_batch(
    x: torch.Tensor, generator: torch.Generator, *, padding: int, flip: bool
) -> torch.Tensor:
    """NAS-Bench-201's training augmentation, applied to a whole batch.

    Each sample is zero-padded by ``padding`` pixels on every side and cropped
    back to its size at a random offset, then mirrored horizontally with
    probability 0.5 (if ``flip``).  Offsets and flips are drawn per sample from
    ``generator`` on the generator's device and moved to ``x``'s device, so a
    CPU generator can drive augmentation of a CUDA batch; the result is
    deterministic given the generator state.

    The data are already normalised, so zero padding is padding with the
    per-channel mean colour (NB201 pads with black before normalising).

    Returns ``x`` itself when ``padding == 0`` and not ``flip`` (no randomness is
    drawn then); otherwise a new tensor of the same shape.
    """
    if x.dim() != 4:
        raise ValueError(f"augment_batch expects an NCHW batch, got shape {tuple(x.shape)}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if padding == 0 and not flip:
        return x
    n, c, h, w = x.shape
    draw_on = generator.device
    if padding:
        offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device=draw_on)
        offsets = offsets.to(x.device)
        x = F.pad(x, (padding, padding, padding, padding))
    else:
        offsets = torch.zeros(2, n, dtype=torch.long, device=x.device)
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # (n, h)
    cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # (n, w)
    if flip:
        flipped = torch.rand(n, generator=generator, device=draw_on).to(x.device) < 0.5
        cols = torch.where(flipped[:, None], cols.flip(1), cols)
    # One gather over the flattened padded planes: index = row * padded_width + col.
    index = (rows[:, :, None] * x.shape[3] + cols[:, None, :]).reshape(n, 1, h * w)
    return x.flatten(2).gather(2, index.expand(n, c, h * w)).view(n, c, h, w)


def load_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    *,
    n_train: int | None = None,
    n_val: int | None = None,
    resolution: int | None = None,
    seed: int = 0,
    n_test: int | None = None,
    side: int | None = None,
) -> Dataset:
    """Load a dataset's splits as normalised in-memory tensors.

    Args:
        name: one of :func:`available_datasets` (case-insensitive).
        root: CIFAR-10 only: the ``cifar-10-batches-py`` directory or its parent.
            Default: ``$NAS_ENGINE_DATA`` if set, else ``~/.cache/nas-engine``.
            Ignored for ``digits``.
        download: CIFAR-10 only: if the batch files are missing, download the
            official archive into the parent directory, check its md5 and
            extract it.  Already-extracted files are never checksummed.
        n_val: images held out of the training pool for validation,
            class-balanced (default: 20% of the pool; 0 allowed).
        n_train: size of the class-balanced training subset drawn from the rest
            of the pool (default: all of it).
        resolution: resize every image once to ``resolution`` x ``resolution``
            (bilinear, antialiased when shrinking); augmentation padding scales
            with it.  Default: the native size (32 for CIFAR-10, 8 for digits).
        seed: drives which images go to validation and training.  The test set
            never depends on it.  ``synthetic-cifar10``: generates everything
            (the labelling networks and every split's images).
        n_test: ``synthetic-cifar10`` only: test images to generate (default
            10,000).  For ``synthetic-cifar10`` the defaults are the paper's
            sizes, ``n_train=40_000``, ``n_val=10_000`` (a 50,000-image
            training pool) and ``n_test=10_000``; only the images asked for
            are generated (about 0.2 GFLOP each, ~2 ms on one CPU core).
        side: ``synthetic-cifar10`` only: generate ``side`` x ``side`` images
            labelled by networks on ``3 * side**2`` inputs (default 32, the
            paper's); a CPU-scale version of the same construction, unlike
            ``resolution``, which resizes the 32x32 images after labelling.
            ``resolution`` defaults to ``side``.

    Counts that are not a multiple of the number of classes are spread as
    evenly as the classes allow, extra images going to the lowest class
    indices.  The digits test split (20%, class-balanced) is fixed.

    Results are cached per argument set (a few entries; :func:`clear_cache`
    empties the cache), so repeated calls return the *same* :class:`Dataset`:
    treat its tensors as read-only.  For CIFAR-10 the cache key includes the
    batch files' sizes and modification times.

    Raises:
        ValueError: unknown ``name``; ``n_train``, ``n_val``, ``resolution``,
            ``side`` or ``seed`` out of range (negative, zero where not allowed, or more
            images than available).
        TypeError: one of those counts is not an integer.
        FileNotFoundError: CIFAR-10 files missing and ``download`` is false.
        RuntimeError: a downloaded archive fails its md5 check (it is deleted)
            or holds unsafe paths or no batch files.
    """
    key = str(name).lower()
    if key not in _SPECS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(available_datasets())}")
    resolution = _check_int("resolution", resolution, low=1) if resolution is not None else None
    n_train = _check_int("n_train", n_train, low=1) if n_train is not None else None
    n_val = _check_int("n_val", n_val, low=0) if n_val is not None else None
    seed = _check_int("seed", seed, low=0)
    if key == "synthetic-cifar10":
        side = _CIFAR_SIDE if side is None else _check_int("side", side, low=1)
        sizes = {"n_train": n_train, "n_val": n_val, "n_test": _check_int("n_test", n_test, low=0)
                 if n_test is not None else None}
        sizes = {k: _SYNTHETIC_DEFAULTS[k] if v is None else v for k, v in sizes.items()}
        return _load_synthetic(sizes["n_train"], sizes["n_val"], sizes["n_test"],
                               side if resolution is None else resolution, seed, side)
    if resolution is None:
        resolution = _SPECS[key].native_resolution
    for option, value in (("n_test", n_test), ("side", side)):
        if value is not None:
            raise ValueError(f"{option} is an option of 'synthetic-cifar10' only; {name!r} has fixed images "
                             f"and a fixed test set (got {option}={value!r})")
    source = None
    if key == "cifar10":
        directory = _cifar_directory(root)
        if not _data_batch_files(directory):
            if not download:
                raise FileNotFoundError(_missing_cifar_message(directory))
            _download_cifar(directory.parent)
        source = _cifar_source_key(directory)
    return _load_cached(key, source, n_train, n_val, resolution, seed)


def clear_cache() -> None:
    """Forget every dataset cached by :func:`load_dataset`."""
    _load_cached.cache_clear()
    _load_synthetic.cache_clear()


# --------------------------------------------------------------------------- #
# Synthetic CIFAR-10 (FEAR, Appendix A.4)


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


# --------------------------------------------------------------------------- #
# Loading and splitting


class _Raw(NamedTuple):
    """Undecoded source arrays: uint8 NCHW images and int64 labels."""

    x_pool: np.ndarray
    y_pool: np.ndarray
    pool_indices: np.ndarray  # rows of x_pool that form the training pool
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    test_indices: np.ndarray | None  # rows of x_test that form the test set
    num_classes: int
    source: str


@functools.lru_cache(maxsize=4)
def _load_cached(
    name: str,
    source: tuple[str, tuple[tuple[str, int, int], ...]] | None,
    n_train: int | None,
    n_val: int | None,
    resolution: int,
    seed: int,
) -> Dataset:
    raw = _read_cifar(Path(source[0])) if name == "cifar10" else _read_digits()
    spec = _SPECS[name]
    train_idx, val_idx = _split_pool(raw, n_train, n_val, seed)

    def images(x: np.ndarray, idx: np.ndarray) -> torch.Tensor:
        out = torch.from_numpy(x[idx]).float().div_(spec.max_value)
        if resolution != spec.native_resolution:
            out = F.interpolate(
                out, size=(resolution, resolution), mode="bilinear",
                align_corners=False, antialias=resolution < spec.native_resolution,
            )
        return out

    def labels(y: np.ndarray, idx: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(y[idx])

    x_train = images(raw.x_pool, train_idx)
    var, mean = torch.var_mean(x_train, dim=(0, 2, 3), correction=0, keepdim=True)
    std = var.sqrt().clamp_min(1e-8)  # a constant channel stays finite

    def normalised(x: torch.Tensor) -> torch.Tensor:
        return x.sub_(mean).div_(std)

    has_test = raw.test_indices is not None
    crop_padding = spec.crop_padding
    if resolution != spec.native_resolution:
        crop_padding = max(1, round(spec.crop_padding * resolution / spec.native_resolution))
    return Dataset(
        name=name,
        x_train=normalised(x_train),
        y_train=labels(raw.y_pool, train_idx),
        x_val=normalised(images(raw.x_pool, val_idx)),
        y_val=labels(raw.y_pool, val_idx),
        x_test=normalised(images(raw.x_test, raw.test_indices)) if has_test else None,
        y_test=labels(raw.y_test, raw.test_indices) if has_test else None,
        num_classes=raw.num_classes,
        mean=tuple(mean.flatten().tolist()),
        std=tuple(std.flatten().tolist()),
        crop_padding=crop_padding,
        flip=spec.flip,
        seed=seed,
        info=MappingProxyType({
            "train_indices": _read_only(train_idx),
            "val_indices": _read_only(val_idx),
            "test_indices": _read_only(raw.test_indices) if has_test else None,
            "pool_size": len(raw.pool_indices),
            "source": raw.source,
        }),
    )


def _split_pool(
    raw: _Raw, n_train: int | None, n_val: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced (validation, then training) indices drawn from the pool."""
    pool = raw.pool_indices
    if n_val is None:
        n_val = round(_VAL_FRACTION * len(pool))
    elif n_val > len(pool):
        raise ValueError(f"n_val={n_val} exceeds the {len(pool)} images of the training pool")
    rng = np.random.default_rng([seed, 0])
    val_idx = _balanced_pick(raw.y_pool, pool, n_val, raw.num_classes, rng)
    rest = np.setdiff1d(pool, val_idx, assume_unique=True)
    if n_train is None:
        if len(rest) == 0:
            raise ValueError(f"n_val={n_val} leaves no training images in a pool of {len(pool)}")
        return rest, val_idx
    if n_train > len(rest):
        raise ValueError(
            f"n_train={n_train} exceeds the {len(rest)} images left in the training pool "
            f"({len(pool)}) after holding out n_val={n_val}"
        )
    rng = np.random.default_rng([seed, 1])
    return _balanced_pick(raw.y_pool, rest, n_train, raw.num_classes, rng), val_idx


def _balanced_pick(
    labels: np.ndarray, candidates: np.ndarray, k: int, num_classes: int, rng: np.random.Generator
) -> np.ndarray:
    """``k`` of ``candidates`` (sorted), spread over the classes as evenly as possible."""
    by_class = [candidates[labels[candidates] == c] for c in range(num_classes)]
    counts = _balanced_counts(np.array([len(members) for members in by_class]), k)
    picked = [rng.permutation(members)[:count] for members, count in zip(by_class, counts)]
    return np.sort(np.concatenate(picked))


def _balanced_counts(available: np.ndarray, k: int) -> np.ndarray:
    """Per-class counts summing to ``k`` (<= ``available.sum()``), as equal as possible.

    Water-filling: every class gets ``min(available, level)`` for the highest
    level that does not overshoot ``k``; the remaining images go one each to
    the lowest-indexed classes that still have some left.
    """
    levels = np.arange(available.max(initial=0) + 1)
    totals = np.minimum(available[None, :], levels[:, None]).sum(axis=1)
    level = np.searchsorted(totals, k, side="right") - 1
    counts = np.minimum(available, level)
    extra = k - counts.sum()
    counts[np.flatnonzero(available > level)[:extra]] += 1
    return counts


def _check_int(what: str, value: Any, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be an integer, got {what}={value!r}")
    if value < low:
        raise ValueError(f"{what} must be >= {low}, got {what}={value}")
    return int(value)


def _read_only(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.int64)  # a fresh array, so freezing it affects no one else
    a.flags.writeable = False
    return a


def _read_digits() -> _Raw:
    from sklearn.datasets import load_digits  # imported lazily: it is slow to import

    digits = load_digits()
    x = digits.images.astype(np.uint8)[:, None]  # integer values 0..16
    y = digits.target.astype(np.int64)
    everything = np.arange(len(y))
    rng = np.random.default_rng(_DIGITS_TEST_SEED)
    test_idx = _balanced_pick(y, everything, round(_DIGITS_TEST_FRACTION * len(y)), 10, rng)
    pool_idx = np.setdiff1d(everything, test_idx, assume_unique=True)
    return _Raw(
        x, y, pool_idx, x, y, test_idx, num_classes=10, source="sklearn.datasets.load_digits"
    )


# --------------------------------------------------------------------------- #
# CIFAR-10 files


def _cifar_directory(root: str | os.PathLike[str] | None) -> Path:
    """The ``cifar-10-batches-py`` directory that ``root`` designates."""
    if root is None:
        root = os.environ.get(DATA_ENV_VAR) or DEFAULT_DATA_ROOT
    root = Path(root).expanduser().absolute()
    if root.name == CIFAR10_DIRNAME or _data_batch_files(root):
        return root
    return root / CIFAR10_DIRNAME


def _data_batch_files(directory: Path) -> list[Path]:
    """``data_batch_N`` files in ``directory``, in increasing N."""
    if not directory.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in directory.iterdir()
        if (m := _DATA_BATCH_RE.fullmatch(p.name)) and p.is_file()
    ]
    return [p for _, p in sorted(found)]


def _cifar_source_key(directory: Path) -> tuple[str, tuple[tuple[str, int, int], ...]]:
    """Cache key: the directory and the size and mtime of every file read."""
    files = _data_batch_files(directory)
    if (directory / "test_batch").is_file():
        files.append(directory / "test_batch")
    stamps = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return str(directory), stamps


def _missing_cifar_message(directory: Path) -> str:
    return (
        f"CIFAR-10 data not found: expected the batch files of the 'CIFAR-10 python version' "
        f"in {directory} (at least one of data_batch_1 ... data_batch_5 for training; "
        f"test_batch, optional, for the test set). Either pass download=True to download "
        f"{CIFAR10_URL} and extract it into {directory.parent}, or point root= (or the "
        f"{DATA_ENV_VAR} environment variable) at a directory containing an extracted "
        f"'{CIFAR10_DIRNAME}' directory (root= may also be that directory itself)."
    )


def _read_cifar(directory: Path) -> _Raw:
    xs, ys = zip(*(_read_cifar_batch(p) for p in _data_batch_files(directory)))
    x_pool, y_pool = np.concatenate(xs), np.concatenate(ys)
    test_path = directory / "test_batch"
    x_test, y_test = _read_cifar_batch(test_path) if test_path.is_file() else (None, None)
    return _Raw(
        x_pool, y_pool, np.arange(len(y_pool)),
        x_test, y_test, None if y_test is None else np.arange(len(y_test)),
        num_classes=10, source=str(directory),
    )


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one pickled batch.

    The batch is unpickled with :func:`~nas_engine.safeload.safe_pickle_load`
    (numpy arrays, dicts, lists, str, bytes and numbers only: a file naming
    anything else is refused, nothing in it runs).  ``data`` must be an
    integer array with values in 0..255 (the real files hold uint8) and the
    labels integers in 0..9; nothing is cast silently.
    """
    batch = safe_pickle_load(path, what="a CIFAR-10 batch", encoding="bytes",
                             holds="numpy arrays, lists, dicts, str, bytes and numbers")
    try:
        raw_data, raw_labels = batch[b"data"], batch[b"labels"]
    except (KeyError, TypeError, IndexError) as e:
        raise ValueError(f"{path} is not a CIFAR-10 python batch (no b'data'/b'labels')") from e
    data = _integer_array(path, "data", raw_data)
    labels = _integer_array(path, "labels", raw_labels)
    side = _CIFAR_SIDE
    if data.ndim != 2 or data.shape[1] != 3 * side * side or labels.ndim != 1 or len(data) != len(labels):
        raise ValueError(
            f"{path}: expected data of shape (N, {3 * side * side}) and N labels, "
            f"got {data.shape} and {labels.shape}"
        )
    if data.size and not 0 <= data.min() <= data.max() <= 255:
        raise ValueError(f"{path}: pixel values outside 0..255 (min {data.min()}, max {data.max()})")
    if len(labels) and not 0 <= labels.min() <= labels.max() < 10:
        raise ValueError(f"{path}: labels outside 0..9")
    data = data.astype(np.uint8, copy=False).reshape(-1, 3, side, side)  # rows hold the R, G, B planes in turn
    return data, labels.astype(np.int64, copy=False)


def _integer_array(path: Path, key: str, value: Any) -> np.ndarray:
    """``value`` (an array or a list) as an integer array, or a ``ValueError`` naming ``path`` and the dtype."""
    if isinstance(value, (list, tuple)) and not value:
        return np.zeros(0, dtype=np.int64)
    if not isinstance(value, (np.ndarray, list, tuple)):
        raise ValueError(f"{path}: b'{key}' is a {type(value).__name__}, expected an integer array or list")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as e:  # ragged nesting
        raise ValueError(f"{path}: b'{key}' is not a rectangular integer array ({e})") from e
    if array.dtype.kind not in "iu":
        raise ValueError(f"{path}: b'{key}' has dtype {array.dtype}, expected integers "
                         f"({'uint8 pixel values' if key == 'data' else 'class indices'}); it is not cast")
    return array


def _download_cifar(parent: Path) -> None:
    """Download, verify and extract the official archive into ``parent``."""
    parent.mkdir(parents=True, exist_ok=True)
    archive = parent / CIFAR10_URL.rsplit("/", 1)[1]
    logger.info("downloading %s to %s", CIFAR10_URL, archive)
    _fetch(CIFAR10_URL, archive)
    digest = _md5(archive)
    if digest != CIFAR10_MD5:
        archive.unlink()
        raise RuntimeError(
            f"md5 mismatch for {archive} downloaded from {CIFAR10_URL}: got {digest}, "
            f"expected {CIFAR10_MD5}; the file was deleted, try again"
        )
    _extract_cifar(archive, parent)
    archive.unlink()


def _fetch(url: str, dest: Path) -> None:
    """Download ``url`` to ``dest`` (through a ``.part`` file)."""
    partial = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _extract_cifar(archive: Path, parent: Path) -> None:
    """Extract the regular files under ``cifar-10-batches-py/`` into ``parent``.

    Members are written by hand: absolute paths and ``..`` are refused and
    links or devices are skipped.  Files are first extracted to a staging
    directory and moved into place only once all of them are complete.
    """
    staging = Path(tempfile.mkdtemp(prefix=".cifar-10-extract-", dir=parent))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                path = PurePosixPath(member.name)
                if path.is_absolute() or ".." in path.parts:
                    raise RuntimeError(f"refusing unsafe path {member.name!r} in {archive}")
                if member.isfile() and path.parts[:1] == (CIFAR10_DIRNAME,):
                    target = staging.joinpath(*path.parts)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        extracted = staging / CIFAR10_DIRNAME
        if not _data_batch_files(extracted):
            raise RuntimeError(f"{archive} holds no {CIFAR10_DIRNAME}/data_batch_* files")
        destination = parent / CIFAR10_DIRNAME
        destination.mkdir(exist_ok=True)
        for p in extracted.iterdir():
            os.replace(p, destination / p.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
