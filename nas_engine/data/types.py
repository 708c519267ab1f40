"""The data's value types and the code every dataset goes through.

:class:`DatasetSpec` (a dataset's pixel range and augmentation), :class:`RawData`
(what a reader returns) and :class:`Dataset` (the normalised splits as tensors),
with the shared code path that turns one into the other: validation of the raw
data, the class-balanced split of the pool (deterministic given the seed),
resizing and per-channel normalisation (``_build``).  Arrays in memory enter
through the same path (:meth:`Dataset.from_arrays`, ``_raw_from_arrays``, which
the ``npz`` reader shares); :func:`content_tag` fingerprints data that has no
fixed identity.  :func:`augment_batch` is NB201's training augmentation.

The readers (one module each beside this one) and :mod:`nas_engine.data.loading`
import from here; this module imports no other module of the data package (only
:mod:`nas_engine.threads`, below it, for the memory this process may use).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..threads import available_memory, format_bytes

__all__ = ["Dataset", "DatasetSpec", "RawData", "augment_batch", "content_tag"]

_VAL_FRACTION = 0.2  # default share of the training pool held out for validation
_CIFAR_SIDE = 32
#: environment variable: the most bytes one dataset load may take in memory (default: what this process may
#: still allocate, :func:`~nas_engine.threads.available_memory`)
MEMORY_ENV_VAR = "NAS_ENGINE_DATA_MAX_BYTES"


class DatasetSpec(NamedTuple):
    """Static properties of a dataset's raw images.

    ``max_value``: raw pixel values lie in ``[0, max_value]`` (255 for uint8
    photographs, 16 for scikit-learn's digits, 1 for floats in [0, 1]).
    ``crop_padding`` and ``flip``: NB201-style training augmentation at the
    native resolution (random crop after zero-padding by ``crop_padding``
    pixels, horizontal flip); the padding scales with ``resolution``.
    """

    max_value: float
    crop_padding: int
    flip: bool


#: CIFAR-10's and CIFAR-100's images (32x32 uint8; NB201's crop padding and flip)
_CIFAR_SPEC = DatasetSpec(max_value=255.0, crop_padding=4, flip=True)


@dataclass(frozen=True, eq=False, repr=False)
class RawData:
    """What a dataset plugin returns: the raw images before splitting and normalisation.

    ``x``: the training source, ``(N, C, H, W)`` with ``H == W`` (the native
    resolution), integers (uint8 for 8-bit images) or floats, all in ``[0,
    spec.max_value]``.  ``y``: ``(N,)`` integer labels in ``0..num_classes-1``.
    ``x_test`` / ``y_test``: the test set, or ``None``.  ``pool_indices`` /
    ``test_indices``: the rows of ``x`` / ``x_test`` that form the training
    pool / test set (default: all rows; digits draws both from one array).

    ``source`` says where the data came from (``info["source"]``).  ``tag``
    goes into the fingerprint after the name: options that change the data
    (``"coarse"``) or a content hash (:func:`content_tag`) for data that has no
    fixed identity (arrays, an image folder), so that a stored search never
    resumes on other data under the same name.  ``classes``: class names
    (``info["classes"]``), if known.  ``files``: the files and directories the
    plugin read; the load is cached while their sizes and modification times
    stay the same (``()``: the data depend on the arguments alone; ``None``:
    never cached).
    """

    x: np.ndarray
    y: np.ndarray
    num_classes: int
    spec: DatasetSpec
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    pool_indices: np.ndarray | None = None
    test_indices: np.ndarray | None = None
    source: str = ""
    tag: str = ""
    classes: tuple[str, ...] | None = None
    files: tuple[str | os.PathLike[str], ...] | None = None


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
    ``pool_size`` (images in the training pool) and ``source``; ``tag`` and
    ``classes`` when the plugin gave them.  For ``digits`` both sources are the
    1,797 images of ``load_digits``, so all three index arrays point into the
    same array and are pairwise disjoint.

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

    @classmethod
    def from_arrays(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        *,
        x_test: np.ndarray | None = None,
        y_test: np.ndarray | None = None,
        name: str = "arrays",
        num_classes: int | None = None,
        n_train: int | None = None,
        n_val: int | None = None,
        resolution: int | None = None,
        seed: int = 0,
        layout: str | None = None,
        crop_padding: int = 0,
        flip: bool = False,
    ) -> Dataset:
        """A dataset of images already in memory, split and normalised as :func:`load_dataset` does.

        ``x`` (and ``x_test``): ``(N, H, W)`` grey-scale or ``(N, C, H, W)`` /
        ``(N, H, W, C)`` images, either **uint8** (0..255) or **floating point
        in [0, 1]** (a float array outside [0, 1] is refused, naming its
        minimum and maximum; other integer types are refused: convert them to
        uint8).  The layout is told from the shape when one of the two
        candidate channel axes has 1 or 3 entries and the other does not;
        otherwise pass ``layout="NCHW"`` or ``"NHWC"``.  ``y`` (and
        ``y_test``): integer labels in ``0..num_classes-1``; ``num_classes``
        defaults to the largest label plus one.  Images must be square unless
        ``resolution`` resizes them.

        ``x`` is the training pool: ``n_val`` validation images (default 20%)
        are held out of it class-balanced, ``n_train`` (default: the rest) are
        drawn from the remainder, both determined by ``seed``; ``x_test`` is
        the test set, used whole.  ``crop_padding`` / ``flip``: the training
        augmentation at the arrays' resolution (default none).  The name and a
        sha256 of the arrays form the fingerprint (``arrays:sha256-...``).
        """
        name = _check_name(name)
        n_train, n_val, resolution, seed = _check_split_args(n_train, n_val, resolution, seed)
        raw = _raw_from_arrays(x, y, x_test, y_test, where=f"Dataset.from_arrays({name!r})",
                               num_classes=num_classes, layout=layout, crop_padding=crop_padding, flip=flip,
                               resolution=resolution, source="arrays in memory")
        return _build(name, raw, n_train, n_val, resolution, seed)

    @classmethod
    def from_tensors(cls, x: torch.Tensor, y: torch.Tensor, *, x_test: torch.Tensor | None = None,
                     y_test: torch.Tensor | None = None, name: str = "tensors", **options: Any) -> Dataset:
        """:meth:`from_arrays` for torch tensors (on any device; copied to the CPU): the same rules and the same
        keyword options (``num_classes``, ``n_train``, ``n_val``, ``resolution``, ``seed``, ``layout``,
        ``crop_padding``, ``flip``)."""

        def array(t: Any, what: str) -> np.ndarray | None:
            if t is None:
                return None
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"Dataset.from_tensors: {what} must be a torch.Tensor, got {type(t).__name__}")
            return t.detach().cpu().numpy()

        return cls.from_arrays(array(x, "x"), array(y, "y"), x_test=array(x_test, "x_test"),
                               y_test=array(y_test, "y_test"), name=name, **options)

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

        Two loads with the same name, tag (options that change the data, or a
        hash of the content for arrays and image folders), pool size,
        resolution, split sizes and seed have the same fingerprint; a resumed
        search compares it with the one it was started with.
        """
        side = self.info.get("side", _CIFAR_SIDE)
        tag = self.info.get("tag")
        return (
            f"{self.name}" + (f":{tag}" if tag else "") + f":{self.resolution}px"
            + ("" if side == _CIFAR_SIDE else f":side{side}")
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


def _check_int(what: str, value: Any, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be an integer, got {what}={value!r}")
    if value < low:
        raise ValueError(f"{what} must be >= {low}, got {what}={value}")
    return int(value)


def _memory_limit() -> tuple[int | None, str]:
    """The most bytes one dataset load may take, and where that number comes from: ``$NAS_ENGINE_DATA_MAX_BYTES``,
    else what this process may still allocate (:func:`~nas_engine.threads.available_memory`; ``None``: unknown,
    nothing is checked)."""
    value = os.environ.get(MEMORY_ENV_VAR, "").strip()
    if value:
        try:
            limit = int(value)
        except ValueError:
            limit = 0
        if limit < 1:
            raise ValueError(f"{MEMORY_ENV_VAR} must be a positive number of bytes, got {value!r}")
        return limit, f"${MEMORY_ENV_VAR}"
    return available_memory(), (f"the memory this process may use: MemAvailable, cgroup memory.max; set "
                                f"{MEMORY_ENV_VAR} to change it")


def _check_memory(who: str, what: str, nbytes: int) -> None:
    """A one-line ``ValueError`` when ``nbytes`` (what ``what`` would take in memory) exceeds the limit."""
    limit, source = _memory_limit()
    if limit is not None and nbytes > limit:
        raise ValueError(f"{who}: {what} would take {format_bytes(nbytes)} in memory, more than the limit of "
                         f"{format_bytes(limit)} ({source})")


def _check_crop_padding(who: str, padding: int, side: int) -> None:
    """``padding`` (NB201's random-crop padding) at most half the image ``side``: a larger shift moves most of
    the image out of the crop (``padding >= side`` leaves some crops blank)."""
    if padding > side // 2:
        raise ValueError(f"{who}: crop_padding={padding} is more than half the {side}-pixel image side (at most "
                         f"{side // 2}); a random crop would shift most of the image out of view")


def _check_split_args(n_train: Any, n_val: Any, resolution: Any, seed: Any) -> tuple[int | None, int | None,
                                                                                      int | None, int]:
    resolution = _check_int("resolution", resolution, low=1) if resolution is not None else None
    n_train = _check_int("n_train", n_train, low=1) if n_train is not None else None
    n_val = _check_int("n_val", n_val, low=0) if n_val is not None else None
    return n_train, n_val, resolution, _check_int("seed", seed, low=0)


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or ":" in name:
        raise ValueError(f"a dataset name must be a non-empty string without ':', got {name!r}")
    return name


# --------------------------------------------------------------------------- #
# The shared code path: validation, splits, resizing, normalisation


def _check_raw(raw: RawData, who: str, resolution: int | None) -> None:
    """A one-line ``ValueError`` naming ``who`` for a malformed :class:`RawData`."""
    spec = raw.spec
    if not isinstance(spec, DatasetSpec):
        raise TypeError(f"{who}: RawData.spec must be a DatasetSpec, got {type(spec).__name__}")
    if not (isinstance(spec.max_value, (int, float)) and math.isfinite(spec.max_value) and spec.max_value > 0):
        raise ValueError(f"{who}: spec.max_value must be a finite number > 0, got {spec.max_value!r}")
    _check_int(f"{who}: spec.crop_padding", spec.crop_padding, low=0)
    if not isinstance(spec.flip, bool):
        raise ValueError(f"{who}: spec.flip must be True or False, got {spec.flip!r}")
    num_classes = _check_int(f"{who}: num_classes", raw.num_classes, low=2)
    shape = None
    for part, x, y, idx in (("", raw.x, raw.y, raw.pool_indices), ("test ", raw.x_test, raw.y_test, raw.test_indices)):
        if x is None and y is None:
            if part == "":
                raise ValueError(f"{who}: RawData has no training images")
            continue
        if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
            raise TypeError(f"{who}: {part}images and labels must be numpy arrays, got "
                            f"{type(x).__name__} and {type(y).__name__}")
        if x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"{who}: expected {part}images of shape (N, C, H, W) and N labels, "
                             f"got {x.shape} and {y.shape}")
        if shape is None:
            shape = x.shape[1:]
            if shape[1] != shape[2] and resolution is None:
                raise ValueError(f"{who}: images are {shape[1]}x{shape[2]}, not square; pass resolution= to "
                                 "resize them")
            if min(shape) < 1:
                raise ValueError(f"{who}: images of shape {x.shape[1:]} hold no pixels")
        elif x.shape[1:] != shape:
            raise ValueError(f"{who}: test images are {x.shape[1:]} (C, H, W), training images {shape}")
        _check_pixels(x, spec.max_value, f"{who}: {part}images")
        if y.dtype.kind not in "iu":
            raise ValueError(f"{who}: {part}labels have dtype {y.dtype}, expected integers")
        if len(y) and not 0 <= int(y.min()) <= int(y.max()) < num_classes:  # int(): exact for uint64
            raise ValueError(f"{who}: {part}labels must lie in 0..{num_classes - 1}, got "
                             f"{int(y.min())}..{int(y.max())}")
        if idx is not None and (not isinstance(idx, np.ndarray) or idx.ndim != 1 or idx.dtype.kind not in "iu"
                                or (len(idx) and not 0 <= int(idx.min()) <= int(idx.max()) < len(x))):
            raise ValueError(f"{who}: {part or 'pool '}indices must be a 1-D integer array of rows of the "
                             f"{part}images")
        if part == "":
            _check_classes(who, y if idx is None else y[idx], num_classes, "the pool's labels")
            _check_crop_padding(who, spec.crop_padding, min(shape[1:]))


def _check_pixels(x: np.ndarray, max_value: float, what: str) -> None:
    """Integers or finite floats in ``[0, max_value]``; nothing else."""
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        if x.size and (info.min < 0 or info.max > max_value) and not 0 <= x.min() <= x.max() <= max_value:
            raise ValueError(f"{what}: pixel values must lie in 0..{max_value:g}, got min {x.min()}, max {x.max()}")
    elif x.dtype.kind == "f":
        if x.size:
            lo, hi = float(np.min(x)), float(np.max(x))
            if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo and hi <= max_value):
                raise ValueError(f"{what}: pixel values must lie in [0, {max_value:g}], got min {lo:.6g}, "
                                 f"max {hi:.6g}")
    else:
        raise ValueError(f"{what} have dtype {x.dtype}, expected integers (uint8) or floats")


def _build(name: str, raw: RawData, n_train: int | None, n_val: int | None, resolution: int | None,
           seed: int) -> Dataset:
    """Split, resize and normalise validated raw data: the code every dataset goes through."""
    spec = raw.spec
    native = raw.x.shape[2]
    if resolution is None:
        resolution = native
    pool = np.arange(len(raw.y)) if raw.pool_indices is None else raw.pool_indices
    train_idx, val_idx = _split_pool(raw.y, pool, raw.num_classes, n_train, n_val, seed)
    n_test = 0 if raw.y_test is None else len(raw.y_test if raw.test_indices is None else raw.test_indices)
    n, channels = len(train_idx) + len(val_idx) + n_test, raw.x.shape[1]
    pixels = raw.x.shape[2] * raw.x.shape[3] + resolution * resolution  # float32 at the native size, then resized
    _check_memory(f"dataset {name!r}", f"{n} images of {channels}x{resolution}x{resolution} as float32",
                  4 * n * channels * pixels)

    def images(x: np.ndarray, idx: np.ndarray) -> torch.Tensor:
        out = torch.from_numpy(x[idx]).float().div_(spec.max_value)
        if out.shape[2:] != (resolution, resolution):
            out = F.interpolate(
                out, size=(resolution, resolution), mode="bilinear",
                align_corners=False, antialias=resolution < max(out.shape[2:]),
            )
        return out

    def labels(y: np.ndarray, idx: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(y[idx].astype(np.int64, copy=False))

    x_train = images(raw.x, train_idx)
    var, mean = torch.var_mean(x_train, dim=(0, 2, 3), correction=0, keepdim=True)
    std = var.sqrt().clamp_min(1e-8)  # a constant channel stays finite

    def normalised(x: torch.Tensor) -> torch.Tensor:
        return x.sub_(mean).div_(std)

    has_test = raw.y_test is not None
    test_idx = None
    if has_test:
        test_idx = np.arange(len(raw.y_test)) if raw.test_indices is None else raw.test_indices
    crop_padding = spec.crop_padding
    if resolution != native and crop_padding:  # scaled, kept at most half the side (see _check_crop_padding)
        crop_padding = min(max(1, round(spec.crop_padding * resolution / native)), resolution // 2)
    info: dict[str, Any] = {
        "train_indices": _read_only(train_idx),
        "val_indices": _read_only(val_idx),
        "test_indices": _read_only(test_idx) if has_test else None,
        "pool_size": len(pool),
        "source": raw.source,
    }
    if raw.tag:
        info["tag"] = raw.tag
    if raw.classes is not None:
        info["classes"] = tuple(raw.classes)
    return Dataset(
        name=name,
        x_train=normalised(x_train),
        y_train=labels(raw.y, train_idx),
        x_val=normalised(images(raw.x, val_idx)),
        y_val=labels(raw.y, val_idx),
        x_test=normalised(images(raw.x_test, test_idx)) if has_test else None,
        y_test=labels(raw.y_test, test_idx) if has_test else None,
        num_classes=raw.num_classes,
        mean=tuple(mean.flatten().tolist()),
        std=tuple(std.flatten().tolist()),
        crop_padding=crop_padding,
        flip=spec.flip,
        seed=seed,
        info=MappingProxyType(info),
    )


def _split_pool(
    y: np.ndarray, pool: np.ndarray, num_classes: int, n_train: int | None, n_val: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced (training, validation) indices drawn from the pool (validation first)."""
    if n_val is None:
        n_val = round(_VAL_FRACTION * len(pool))
    elif n_val > len(pool):
        raise ValueError(f"n_val={n_val} exceeds the {len(pool)} images of the training pool")
    rng = np.random.default_rng([seed, 0])
    val_idx = _balanced_pick(y, pool, n_val, num_classes, rng)
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
    return _balanced_pick(y, rest, n_train, num_classes, rng), val_idx


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


def _read_only(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.int64)  # a fresh array, so freezing it affects no one else
    a.flags.writeable = False
    return a


# --------------------------------------------------------------------------- #
# Arrays in memory


def content_tag(*arrays: np.ndarray | None, extra: str = "") -> str:
    """``"sha256-"`` and 16 hex digits of a sha256 over the arrays' dtypes, shapes and bytes (and ``extra``):
    the :attr:`RawData.tag` of data that has no fixed identity."""
    digest = hashlib.sha256(extra.encode())
    for a in arrays:
        if a is None:
            digest.update(b"none;")
            continue
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape};".encode())
        if a.size:  # memoryview cannot cast a view with a zero in its shape
            digest.update(memoryview(a).cast("B"))
    return "sha256-" + digest.hexdigest()[:16]


def _channels_first(x: Any, what: str, where: str, layout: str | None) -> np.ndarray:
    """``x`` as an ``(N, C, H, W)`` array (from NCHW, NHWC or ``(N, H, W)``), dtype checked."""
    if isinstance(x, torch.Tensor):
        raise TypeError(f"{where}: {what} is a torch.Tensor; use Dataset.from_tensors")
    x = np.asarray(x)
    if x.ndim in (3, 4) and 0 in x.shape[1:]:
        raise ValueError(f"{where}: {what} has shape {x.shape}, a zero-size image dimension; images need pixels")
    if x.dtype != np.uint8 and x.dtype.kind != "f":
        raise ValueError(f"{where}: {what} has dtype {x.dtype}, expected uint8 (0..255) or floats in [0, 1]")
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise ValueError(f"{where}: {what} has shape {x.shape}, expected (N, H, W), (N, C, H, W) or (N, H, W, C)")
    if layout is None:
        first, last = x.shape[1] in (1, 3), x.shape[3] in (1, 3)
        if first == last:
            raise ValueError(f"{where}: cannot tell whether {what} of shape {x.shape} is NCHW or NHWC; "
                             "pass layout='NCHW' or layout='NHWC'")
        layout = "NCHW" if first else "NHWC"
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"{where}: layout must be 'NCHW', 'NHWC' or None, got {layout!r}")
    return x if layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _labels(y: Any, what: str, where: str, n: int) -> tuple[np.ndarray, int]:
    """``y`` checked (integers, one per image, none negative) and its largest label as a Python int (exact for
    uint64; ``-1`` when empty); not yet cast."""
    if isinstance(y, torch.Tensor):
        raise TypeError(f"{where}: {what} is a torch.Tensor; use Dataset.from_tensors")
    y = np.asarray(y)
    if y.dtype.kind not in "iu":
        raise ValueError(f"{where}: {what} has dtype {y.dtype}, expected integer class indices")
    if y.shape != (n,):
        raise ValueError(f"{where}: {what} has shape {y.shape}, expected ({n},), one label per image")
    if n and int(y.min()) < 0:
        raise ValueError(f"{where}: {what} holds the negative label {int(y.min())}; labels are 0..K-1")
    return y, int(y.max()) if n else -1


def _check_classes(who: str, y: np.ndarray, num_classes: int, what: str = "y") -> None:
    """At least two classes among the training labels ``y`` and no more classes than training images (a class
    needs images; this also bounds everything that scales with the number of classes)."""
    if num_classes > len(y):
        raise ValueError(f"{who}: {num_classes} classes for the {len(y)} images of the training pool; labels must "
                         "be class indices 0..K-1 with K at most the number of images")
    present = np.unique(y)
    if len(present) < 2:
        raise ValueError(f"{who}: every training label ({what}) is {int(present[0])}: one class; classification "
                         "needs at least two")


def _raw_from_arrays(x: Any, y: Any, x_test: Any, y_test: Any, *, where: str, num_classes: int | None,
                     layout: str | None, crop_padding: Any, flip: Any, resolution: int | None,
                     source: str) -> RawData:
    """Validated :class:`RawData` of arrays in memory (the content hash is its tag)."""
    num_classes, crop_padding, flip, layout = _check_array_options(where, num_classes, crop_padding, flip, layout)
    if (x_test is None) != (y_test is None):
        raise ValueError(f"{where}: give both x_test and y_test, or neither")
    x = _channels_first(x, "x", where, layout)
    y, largest = _labels(y, "y", where, len(x))
    if len(x) == 0:
        raise ValueError(f"{where}: x holds no images")
    largest_test = -1
    if x_test is not None:
        x_test = _channels_first(x_test, "x_test", where, layout)
        y_test, largest_test = _labels(y_test, "y_test", where, len(x_test))
        if len(x_test) == 0:
            raise ValueError(f"{where}: x_test holds no images; give x_test=None and y_test=None for no test set")
        if x_test.shape[1:] != x.shape[1:]:
            raise ValueError(f"{where}: x_test images are {x_test.shape[1:]} (C, H, W), x images {x.shape[1:]}")
        if x_test.dtype.kind != x.dtype.kind:
            raise ValueError(f"{where}: x is {x.dtype} and x_test {x_test.dtype}; give both as uint8 or both "
                             "as floats")
    # the labels, before anything that scales with their values (the classes, the balanced split)
    if num_classes is None:
        if largest >= len(y):
            raise ValueError(f"{where}: y holds the label {largest}, which makes {largest + 1} classes for "
                             f"{len(y)} images; labels must be class indices 0..K-1 with K at most the number "
                             "of images")
        if largest_test > largest:
            raise ValueError(f"{where}: y_test holds the label {largest_test}, outside the training labels "
                             f"0..{largest} (y); pass num_classes= to declare classes the training images lack")
        num_classes = largest + 1
    elif max(largest, largest_test) >= num_classes:
        raise ValueError(f"{where}: labels must lie in 0..{num_classes - 1} (num_classes={num_classes}), "
                         f"got the label {max(largest, largest_test)}")
    _check_classes(where, y, num_classes)
    y = y.astype(np.int64, copy=False)
    y_test = None if y_test is None else y_test.astype(np.int64, copy=False)
    max_value = 255.0 if x.dtype == np.uint8 else 1.0
    for what, images in (("x", x), ("x_test", x_test)):
        if images is not None and images.dtype.kind == "f" and images.size:
            lo, hi = float(np.min(images)), float(np.max(images))
            if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo and hi <= 1):
                raise ValueError(f"{where}: float images ({what}) must lie in [0, 1], got min {lo:.6g}, "
                                 f"max {hi:.6g}; scale them, or pass uint8 values 0..255")
    if x.shape[2] != x.shape[3] and resolution is None:
        raise ValueError(f"{where}: images are {x.shape[2]}x{x.shape[3]}, not square; pass resolution= to "
                         "resize them")
    _check_crop_padding(where, crop_padding, min(x.shape[2:]))
    return RawData(x=x, y=y, num_classes=num_classes, spec=DatasetSpec(max_value, crop_padding, flip),
                   x_test=x_test, y_test=y_test, source=source, tag=content_tag(x, y, x_test, y_test))


def _check_array_options(where: str, num_classes: Any, crop_padding: Any, flip: Any,
                         layout: Any) -> tuple[int | None, int, bool, str | None]:
    """The options of arrays and ``npz`` files, range-checked before any data is read."""
    if num_classes is not None:
        num_classes = _check_int("num_classes", num_classes, low=2)
    crop_padding = _check_int("crop_padding", crop_padding, low=0)
    if not isinstance(flip, bool):
        raise ValueError(f"{where}: flip must be True or False, got {flip!r}")
    if layout not in (None, "NCHW", "NHWC"):
        raise ValueError(f"{where}: layout must be 'NCHW', 'NHWC' or None, got {layout!r}")
    return num_classes, crop_padding, flip, layout
