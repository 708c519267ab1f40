"""Image-classification datasets for architecture evaluation, as plugins.

:func:`load_dataset` returns a :class:`Dataset`: whole train / validation / test
splits as in-memory float32 NCHW tensors, normalised per channel with the mean
and standard deviation of the training split.  Datasets are plugins of the
``dataset`` registry (:data:`nas_engine.registry.datasets`, entry-point group
``nas_engine.datasets``); the built-ins:

``digits``
    scikit-learn's bundled 8x8 grey-scale digits (1,797 images, 10 classes).
    No files are needed; it is the engine's embedded demo dataset.
``cifar10``
    CIFAR-10 read from the standard "python version" batch directory
    (``cifar-10-batches-py``).  Every ``data_batch_N`` file present forms the
    training pool and ``test_batch`` (optional) the test set.
``synthetic-cifar10``
    FEAR's Synthetic CIFAR-10, generated from the seed (no files).
``cifar100`` (:mod:`nas_engine.data.cifar100`)
    CIFAR-100's ``cifar-100-python`` directory (``train``, ``test``, ``meta``);
    ``labels="fine"`` (100 classes, the default) or ``"coarse"`` (20).
``imagenet16-120`` (:mod:`nas_engine.data.imagenet16`)
    NAS-Bench-201's 16x16 downsampled ImageNet, its 120-class subset.
``imagefolder`` (:mod:`nas_engine.data.imagefolder`)
    A directory of PNG/JPEG files, one sub-directory per class.
``npz``
    An ``.npz`` file with ``x_train``, ``y_train`` (and ``x_test``, ``y_test``).

:meth:`Dataset.from_arrays` / :meth:`Dataset.from_tensors` make a dataset of
arrays already in memory through the same code.

**The plugin contract.**  A dataset plugin is a callable registered under a
name (``@register("dataset", "my-data")`` or an entry point).  It reads or makes
the raw images and returns a :class:`RawData`: the training pool (and an
optional test set) as NCHW arrays of integers or floats in ``[0,
spec.max_value]``, integer labels ``0..num_classes-1``, and a
:class:`DatasetSpec` (pixel range and NB201-style augmentation).  Everything
else is shared: the class-balanced ``n_val`` / ``n_train`` split drawn from the
pool (deterministic given ``seed``), resizing to ``resolution``, per-channel
normalisation, the in-process cache and the fingerprint.  :func:`load_dataset`
passes the plugin the arguments its signature names: ``root`` (the
``root=`` / ``--data-root`` argument or the ``PATH`` of ``"name:PATH"``, as a
:class:`~pathlib.Path`, or ``None``), ``download``, ``seed``, ``resolution``
(a plugin that decodes images at a size of its own choosing), ``n_train`` and
``n_val``, and any dataset-specific options (``labels="coarse"``).  An option
the plugin does not take is refused with a message naming the datasets that
do take it.  A plugin that makes its own splits (``synthetic-cifar10``, which
generates exactly the images asked for) returns a finished :class:`Dataset`
instead; it must then take ``n_train``, ``n_val``, ``resolution`` and ``seed``.

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
import inspect
import logging
import math
import numbers
import os
import re
import shutil
import tarfile
import tempfile
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..registry import datasets
from ..safeload import safe_pickle_load

__all__ = [
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "Dataset",
    "DatasetSpec",
    "RawData",
    "augment_batch",
    "available_datasets",
    "clear_cache",
    "default_root",
    "load_dataset",
    "synthetic_cifar10_arrays",
]

logger = logging.getLogger(__name__)

#: Official CIFAR-10 "python version" archive and the md5 of that archive.
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_DIRNAME = "cifar-10-batches-py"
#: Environment variable naming a directory that contains the datasets' directories (``cifar-10-batches-py``, ...).
DATA_ENV_VAR = "NAS_ENGINE_DATA"
DEFAULT_DATA_ROOT = Path("~/.cache/nas-engine")

_VAL_FRACTION = 0.2  # default share of the training pool held out for validation
_DIGITS_TEST_FRACTION = 0.2
_DIGITS_TEST_SEED = 0  # the digits test split is fixed, whatever ``seed`` is
_DATA_BATCH_RE = re.compile(r"data_batch_(\d+)")
_CIFAR_SIDE = 32
#: the arguments load_dataset itself interprets; a plugin receives each one its signature names
_SHARED = ("root", "download", "n_train", "n_val", "resolution", "seed")
#: what a plugin that returns a finished Dataset must take (it made the splits)
_SPLITS = ("n_train", "n_val", "resolution", "seed")
_CACHE_SIZE = 4


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


_DIGITS_SPEC = DatasetSpec(max_value=16.0, crop_padding=1, flip=False)
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
    def from_tensors(
        cls,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        x_test: torch.Tensor | None = None,
        y_test: torch.Tensor | None = None,
        name: str = "tensors",
        num_classes: int | None = None,
        n_train: int | None = None,
        n_val: int | None = None,
        resolution: int | None = None,
        seed: int = 0,
        layout: str | None = None,
        crop_padding: int = 0,
        flip: bool = False,
    ) -> Dataset:
        """:meth:`from_arrays` for torch tensors (on any device; copied to the CPU): the same rules."""

        def array(t: Any, what: str) -> np.ndarray | None:
            if t is None:
                return None
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"Dataset.from_tensors: {what} must be a torch.Tensor, got {type(t).__name__}")
            return t.detach().cpu().numpy()

        return cls.from_arrays(array(x, "x"), array(y, "y"), x_test=array(x_test, "x_test"),
                               y_test=array(y_test, "y_test"), name=name, num_classes=num_classes,
                               n_train=n_train, n_val=n_val, resolution=resolution, seed=seed, layout=layout,
                               crop_padding=crop_padding, flip=flip)

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


def available_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`: the ``dataset`` registry's (built-ins and entry points)."""
    return datasets.names()


def default_root() -> Path:
    """Where file-based datasets are looked for when no root is given: ``$NAS_ENGINE_DATA``, else
    ``~/.cache/nas-engine`` (absolute)."""
    return Path(os.environ.get(DATA_ENV_VAR) or DEFAULT_DATA_ROOT).expanduser().absolute()


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
    **options: Any,
) -> Dataset:
    """Load a dataset's splits as normalised in-memory tensors.

    Args:
        name: a registered dataset (:func:`available_datasets`; case-insensitive),
            or ``"name:PATH"``, short for ``name`` with ``root=PATH``
            (``"npz:data/train.npz"``, ``"imagefolder:~/pets"``).
        root: where the dataset's files are: for CIFAR-10 the
            ``cifar-10-batches-py`` directory or its parent, for CIFAR-100
            ``cifar-100-python`` or its parent, for ImageNet16-120 ``ImageNet16``
            or its parent (default for these: ``$NAS_ENGINE_DATA`` if set, else
            ``~/.cache/nas-engine``); the image folder for ``imagefolder`` and
            the file for ``npz`` (required).  Ignored by datasets that read no
            files (``digits``, ``synthetic-cifar10``).
        download: CIFAR-10 and CIFAR-100: if the files are missing, download the
            official archive into the parent directory, check its md5 and
            extract it.  Already-extracted files are never checksummed.
            Ignored by the other datasets.
        n_val: images held out of the training pool for validation,
            class-balanced (default: 20% of the pool; 0 allowed).
        n_train: size of the class-balanced training subset drawn from the rest
            of the pool (default: all of it).
        resolution: resize every image once to ``resolution`` x ``resolution``
            (bilinear, antialiased when shrinking); augmentation padding scales
            with it.  Default: the native size (32 for CIFAR-10/100, 16 for
            ImageNet16-120, 8 for digits).  ``imagefolder`` decodes the files at
            this size directly (default 32).
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
        options: the dataset's own options, e.g. ``labels="coarse"`` for
            ``cifar100``; ``layout``, ``crop_padding``, ``flip`` for ``npz`` and
            ``imagefolder`` (see docs/data.md).

    Counts that are not a multiple of the number of classes are spread as
    evenly as the classes allow, extra images going to the lowest class
    indices.  The digits test split (20%, class-balanced) is fixed.

    Results are cached per argument set (a few entries; :func:`clear_cache`
    empties the cache), so repeated calls return the *same* :class:`Dataset`:
    treat its tensors as read-only.  For datasets read from files the cache
    entry holds while the sizes and modification times of the files (and
    directories) read stay the same.

    Raises:
        ValueError: unknown ``name``; an option the dataset does not take;
            ``n_train``, ``n_val``, ``resolution``, ``side`` or ``seed`` out of
            range (negative, zero where not allowed, or more images than
            available); malformed files (the message names the file and what
            was expected).
        TypeError: one of those counts is not an integer.
        FileNotFoundError: the dataset's files are missing (and ``download``
            is false or not offered); the message names the expected path.
        RuntimeError: a downloaded archive fails its md5 check (it is deleted)
            or holds unsafe paths or no data files.
    """
    key, root = _parse_name(name, root)
    key, factory = _factory(key)
    n_train, n_val, resolution, seed = _check_split_args(n_train, n_val, resolution, seed)
    options = {**options, **{k: v for k, v in (("n_test", n_test), ("side", side)) if v is not None}}
    accepted, var_keyword = _parameters(factory)
    for option, value in options.items():
        if option not in accepted and not var_keyword:
            raise ValueError(_unknown_option(key, option, value))
    if root is not None and "root" not in accepted and ":" in str(name):
        raise ValueError(f"dataset {key!r} reads no files, so {str(name)!r} names a path it cannot use")
    shared = {"root": None if root is None else Path(root).expanduser(), "download": bool(download),
              "n_train": n_train, "n_val": n_val, "resolution": resolution, "seed": seed}
    kwargs = {**{k: v for k, v in shared.items() if k in accepted}, **options}

    cache_key = _cache_key(key, factory, kwargs, (n_train, n_val, resolution, seed))
    hit = _CACHE.get(cache_key) if cache_key is not None else None
    if hit is not None and hit[1] == _stamps(hit[2]):
        _CACHE.move_to_end(cache_key)
        return hit[0]

    result = factory(**kwargs)
    if isinstance(result, Dataset):
        missing = [k for k in _SPLITS if k not in accepted]
        if missing:
            raise TypeError(f"dataset plugin {key!r} ({_qualname(factory)}) returned a finished Dataset but does "
                            f"not take {', '.join(missing)}: a plugin that makes its own splits must take "
                            f"{', '.join(_SPLITS)} (or return a RawData and leave the splits to the engine)")
        return result
    if not isinstance(result, RawData):
        raise TypeError(f"dataset plugin {key!r} ({_qualname(factory)}) returned a {type(result).__name__}, "
                        "expected a nas_engine.data.RawData (or a finished Dataset)")
    _check_raw(result, f"dataset {key!r}", resolution)
    dataset = _build(key, result, n_train, n_val, resolution, seed)
    if cache_key is not None and result.files is not None:
        files = tuple(Path(f) for f in result.files)
        _CACHE[cache_key] = (dataset, _stamps(files), files)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return dataset


datasets.set_creator(load_dataset)  # create("dataset", name, **kwargs) loads the dataset


def clear_cache() -> None:
    """Forget every dataset cached by :func:`load_dataset`."""
    _CACHE.clear()
    _load_synthetic.cache_clear()


#: cache key -> (dataset, stamps of the files read, those files)
_CACHE: OrderedDict[Any, tuple[Dataset, tuple, tuple[Path, ...]]] = OrderedDict()


def _parse_name(name: Any, root: str | os.PathLike[str] | None) -> tuple[str, str | os.PathLike[str] | None]:
    """``(registered name, root)`` from ``"name"`` or ``"name:PATH"``."""
    if not isinstance(name, str):
        raise TypeError(f"a dataset name must be a string, got {type(name).__name__}: {name!r}")
    key, sep, path = name.partition(":")
    key = key.strip()
    if sep:
        if not path:
            raise ValueError(f"dataset {name!r}: expected NAME:PATH with a path after the colon")
        if root is not None and Path(root).expanduser() != Path(path).expanduser():
            raise ValueError(f"dataset {name!r} names the path {path!r} and root={str(root)!r} another one; "
                             "give one of them")
        root = path
    return key, root


def _factory(key: str) -> tuple[str, Callable[..., Any]]:
    """The registered name (``key`` as registered, else lower-cased: names are case-insensitive) and its
    factory."""
    for candidate in (key, key.lower()):
        if candidate in datasets:
            return candidate, datasets.get(candidate)
    raise ValueError(f"unknown dataset {key!r}; available: {', '.join(available_datasets())}")


def _parameters(factory: Callable[..., Any]) -> tuple[frozenset[str], bool]:
    """The keyword names ``factory`` takes, and whether it takes ``**kwargs``."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: pass it nothing it did not ask for
        return frozenset(), False
    names = frozenset(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def _unknown_option(key: str, option: str, value: Any) -> str:
    takers = [n for n in available_datasets() if option in _parameters(datasets.get(n))[0]]
    if takers:
        return (f"{option} is an option of {', '.join(repr(n) for n in takers)} only; dataset {key!r} does not "
                f"take it (got {option}={value!r})")
    own = sorted(_parameters(datasets.get(key))[0] - set(_SHARED))
    return (f"dataset {key!r} takes no option {option!r} (got {option}={value!r}); its own options: "
            f"{', '.join(own) or 'none'}")


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _cache_key(key: str, factory: Callable[..., Any], kwargs: dict[str, Any], splits: tuple) -> Any:
    """A hashable key for one load, or ``None`` when an option is not hashable (then it is not cached)."""
    frozen = tuple(sorted((k, str(v) if isinstance(v, Path) else v) for k, v in kwargs.items()))
    candidate = (key, factory, frozen, splits, os.environ.get(DATA_ENV_VAR))  # the default root follows the env
    try:
        hash(candidate)
    except TypeError:
        return None
    return candidate


def _stamps(files: Sequence[Path]) -> tuple:
    """Size and modification time of each file or directory (``None`` for one that is gone)."""
    out = []
    for f in files:
        try:
            st = f.stat()
        except OSError:
            out.append(None)
        else:
            out.append((st.st_size, st.st_mtime_ns))
    return tuple(out)


def _check_int(what: str, value: Any, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be an integer, got {what}={value!r}")
    if value < low:
        raise ValueError(f"{what} must be >= {low}, got {what}={value}")
    return int(value)


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
    num_classes = _check_int(f"{who}: num_classes", raw.num_classes, low=1)
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
        if len(y) and not 0 <= y.min() <= y.max() < num_classes:
            raise ValueError(f"{who}: {part}labels must lie in 0..{num_classes - 1}, got {y.min()}..{y.max()}")
        if idx is not None and (not isinstance(idx, np.ndarray) or idx.ndim != 1 or idx.dtype.kind not in "iu"
                                or (len(idx) and not 0 <= idx.min() <= idx.max() < len(x))):
            raise ValueError(f"{who}: {part or 'pool '}indices must be a 1-D integer array of rows of the "
                             f"{part}images")


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
    if resolution != native and crop_padding:
        crop_padding = max(1, round(spec.crop_padding * resolution / native))
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
# Arrays in memory and .npz files


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
        digest.update(memoryview(a).cast("B"))
    return "sha256-" + digest.hexdigest()[:16]


def _channels_first(x: Any, what: str, where: str, layout: str | None) -> np.ndarray:
    """``x`` as an ``(N, C, H, W)`` array (from NCHW, NHWC or ``(N, H, W)``), dtype checked."""
    if isinstance(x, torch.Tensor):
        raise TypeError(f"{where}: {what} is a torch.Tensor; use Dataset.from_tensors")
    x = np.asarray(x)
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


def _labels(y: Any, what: str, where: str, n: int) -> np.ndarray:
    if isinstance(y, torch.Tensor):
        raise TypeError(f"{where}: {what} is a torch.Tensor; use Dataset.from_tensors")
    y = np.asarray(y)
    if y.dtype.kind not in "iu":
        raise ValueError(f"{where}: {what} has dtype {y.dtype}, expected integer class indices")
    if y.shape != (n,):
        raise ValueError(f"{where}: {what} has shape {y.shape}, expected ({n},), one label per image")
    if n and y.min() < 0:
        raise ValueError(f"{where}: {what} holds the negative label {y.min()}; labels are 0..K-1")
    return y.astype(np.int64, copy=False)


def _raw_from_arrays(x: Any, y: Any, x_test: Any, y_test: Any, *, where: str, num_classes: int | None,
                     layout: str | None, crop_padding: Any, flip: Any, resolution: int | None,
                     source: str) -> RawData:
    """Validated :class:`RawData` of arrays in memory (the content hash is its tag)."""
    if (x_test is None) != (y_test is None):
        raise ValueError(f"{where}: give both x_test and y_test, or neither")
    x = _channels_first(x, "x", where, layout)
    y = _labels(y, "y", where, len(x))
    if len(x) == 0:
        raise ValueError(f"{where}: x holds no images")
    if x_test is not None:
        x_test = _channels_first(x_test, "x_test", where, layout)
        y_test = _labels(y_test, "y_test", where, len(x_test))
        if x_test.shape[1:] != x.shape[1:]:
            raise ValueError(f"{where}: x_test images are {x_test.shape[1:]} (C, H, W), x images {x.shape[1:]}")
        if x_test.dtype.kind != x.dtype.kind:
            raise ValueError(f"{where}: x is {x.dtype} and x_test {x_test.dtype}; give both as uint8 or both "
                             "as floats")
    max_value = 255.0 if x.dtype == np.uint8 else 1.0
    for what, images in (("x", x), ("x_test", x_test)):
        if images is not None and images.dtype.kind == "f" and images.size:
            lo, hi = float(np.min(images)), float(np.max(images))
            if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo and hi <= 1):
                raise ValueError(f"{where}: float images ({what}) must lie in [0, 1], got min {lo:.6g}, "
                                 f"max {hi:.6g}; scale them, or pass uint8 values 0..255")
    largest = max(int(y.max()), int(y_test.max()) if y_test is not None and len(y_test) else -1)
    if num_classes is None:
        num_classes = largest + 1
    num_classes = _check_int("num_classes", num_classes, low=1)
    if largest >= num_classes:
        raise ValueError(f"{where}: labels must lie in 0..{num_classes - 1} (num_classes={num_classes}), "
                         f"got the label {largest}")
    crop_padding = _check_int("crop_padding", crop_padding, low=0)
    if not isinstance(flip, bool):
        raise ValueError(f"{where}: flip must be True or False, got {flip!r}")
    if x.shape[2] != x.shape[3] and resolution is None:
        raise ValueError(f"{where}: images are {x.shape[2]}x{x.shape[3]}, not square; pass resolution= to "
                         "resize them")
    return RawData(x=x, y=y, num_classes=num_classes, spec=DatasetSpec(max_value, crop_padding, flip),
                   x_test=x_test, y_test=y_test, source=source, tag=content_tag(x, y, x_test, y_test))


_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@datasets.register("npz")
def npz(root: Path | None = None, *, layout: str | None = None, num_classes: int | None = None,
        crop_padding: int = 0, flip: bool = False, resolution: int | None = None) -> RawData:
    """An ``.npz`` file (``root``; ``"npz:PATH"``) holding ``x_train``, ``y_train`` and optionally ``x_test``,
    ``y_test``, under :meth:`Dataset.from_arrays`'s rules; read with ``allow_pickle=False``."""
    if root is None:
        raise ValueError("dataset 'npz' needs the file: load_dataset('npz:PATH') or root=PATH "
                         "(CLI: --data npz:PATH)")
    path = Path(root)
    if not path.is_file():
        raise FileNotFoundError(f"npz file not found: {path} (expected an .npz with x_train, y_train and "
                                "optionally x_test, y_test)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path}: not a readable npz file of plain arrays ({_one_line(e)})") from e
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: a single array (.npy), not an .npz archive of x_train, y_train (x_test, y_test)")
    with loaded as archive:
        unknown = sorted(set(archive.files) - set(_NPZ_KEYS))
        if unknown:
            raise ValueError(f"{path}: unexpected arrays {', '.join(unknown)}; an npz dataset holds "
                             "x_train, y_train and optionally x_test, y_test")
        missing = [k for k in ("x_train", "y_train") if k not in archive.files]
        if missing:
            raise ValueError(f"{path}: no {' or '.join(missing)}; an npz dataset holds x_train, y_train "
                             "and optionally x_test, y_test")
        try:
            arrays = {k: archive[k] if k in archive.files else None for k in _NPZ_KEYS}
        except (ValueError, OSError, EOFError) as e:  # an object array (pickle), a damaged member
            raise ValueError(f"{path}: not a readable npz file of plain arrays ({_one_line(e)})") from e
    raw = _raw_from_arrays(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                           where=str(path), num_classes=num_classes, layout=layout, crop_padding=crop_padding,
                           flip=flip, resolution=resolution, source=str(path))
    return dataclasses.replace(raw, files=(path,))


def _one_line(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())


# --------------------------------------------------------------------------- #
# digits


@datasets.register("digits")
def digits() -> RawData:
    """scikit-learn's 8x8 digits: 1,797 images with values 0..16; a fixed, class-balanced 20% test split."""
    from sklearn.datasets import load_digits  # imported lazily: it is slow to import

    bunch = load_digits()
    x = bunch.images.astype(np.uint8)[:, None]  # integer values 0..16
    y = bunch.target.astype(np.int64)
    everything = np.arange(len(y))
    rng = np.random.default_rng(_DIGITS_TEST_SEED)
    test_idx = _balanced_pick(y, everything, round(_DIGITS_TEST_FRACTION * len(y)), 10, rng)
    pool_idx = np.setdiff1d(everything, test_idx, assume_unique=True)
    return RawData(x=x, y=y, num_classes=10, spec=_DIGITS_SPEC, x_test=x, y_test=y, pool_indices=pool_idx,
                   test_indices=test_idx, source="sklearn.datasets.load_digits", files=())


# --------------------------------------------------------------------------- #
# Synthetic CIFAR-10 (FEAR, Appendix A.4)

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


# --------------------------------------------------------------------------- #


# --------------------------------------------------------------------------- #
# CIFAR-10 files


@datasets.register("cifar10")
def cifar10(root: Path | None = None, download: bool = False) -> RawData:
    """CIFAR-10's python-version batches: every ``data_batch_N`` present is the pool, ``test_batch`` the test set."""
    directory = _cifar_directory(root)
    if not _data_batch_files(directory):
        if not download:
            raise FileNotFoundError(_missing_cifar_message(directory))
        _download_cifar(directory.parent)
    return _read_cifar(directory)


def _dataset_directory(root: str | os.PathLike[str] | None, dirname: str,
                       holds_data: Callable[[Path], bool]) -> Path:
    """The ``dirname`` directory that ``root`` designates: ``root`` itself when it is named so or holds the
    data files, else ``root/dirname``; ``root`` defaults to :func:`default_root`."""
    root = default_root() if root is None else Path(root).expanduser().absolute()
    if root.name == dirname or holds_data(root):
        return root
    return root / dirname


def _cifar_directory(root: str | os.PathLike[str] | None) -> Path:
    """The ``cifar-10-batches-py`` directory that ``root`` designates."""
    return _dataset_directory(root, CIFAR10_DIRNAME, lambda d: bool(_data_batch_files(d)))


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


def _missing_cifar_message(directory: Path) -> str:
    return (
        f"CIFAR-10 data not found: expected the batch files of the 'CIFAR-10 python version' "
        f"in {directory} (at least one of data_batch_1 ... data_batch_5 for training; "
        f"test_batch, optional, for the test set). Either pass download=True to download "
        f"{CIFAR10_URL} and extract it into {directory.parent}, or point root= (or the "
        f"{DATA_ENV_VAR} environment variable) at a directory containing an extracted "
        f"'{CIFAR10_DIRNAME}' directory (root= may also be that directory itself)."
    )


def _read_cifar(directory: Path) -> RawData:
    files = _data_batch_files(directory)
    xs, ys = zip(*(_read_cifar_batch(p) for p in files))
    x_pool, y_pool = np.concatenate(xs), np.concatenate(ys)
    test_path = directory / "test_batch"
    x_test, y_test = _read_cifar_batch(test_path) if test_path.is_file() else (None, None)
    return RawData(x=x_pool, y=y_pool, num_classes=10, spec=_CIFAR_SPEC, x_test=x_test, y_test=y_test,
                   source=str(directory), files=(directory, *files, test_path))


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
    return _pixel_rows(path, raw_data, raw_labels, side=_CIFAR_SIDE, classes=range(10))


def _pixel_rows(path: Path, raw_data: Any, raw_labels: Any, *, side: int, classes: range,
                keys: tuple[str, str] = ("b'data'", "b'labels'")) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, side, side)`` uint8 and labels ``(N,)`` int64 from a batch's ``data`` rows (the R, G and
    B planes in turn, as CIFAR and downsampled ImageNet store them) and labels in ``classes``; ``keys``: how
    the two entries are named in the file, for the errors."""
    data = _integer_array(path, keys[0], raw_data, pixels=True)
    labels = _integer_array(path, keys[1], raw_labels)
    if data.ndim != 2 or data.shape[1] != 3 * side * side or labels.ndim != 1 or len(data) != len(labels):
        raise ValueError(
            f"{path}: expected data of shape (N, {3 * side * side}) and N labels, "
            f"got {data.shape} and {labels.shape}"
        )
    if data.size and not 0 <= data.min() <= data.max() <= 255:
        raise ValueError(f"{path}: pixel values outside 0..255 (min {data.min()}, max {data.max()})")
    if len(labels) and not classes.start <= labels.min() <= labels.max() < classes.stop:
        raise ValueError(f"{path}: labels ({keys[1]}) outside {classes.start}..{classes.stop - 1} "
                         f"(min {labels.min()}, max {labels.max()})")
    data = data.astype(np.uint8, copy=False).reshape(-1, 3, side, side)  # rows hold the R, G, B planes in turn
    return data, labels.astype(np.int64, copy=False)


def _integer_array(path: Path, key: str, value: Any, *, pixels: bool = False) -> np.ndarray:
    """``value`` (an array or a list) as an integer array, or a ``ValueError`` naming ``path``, the entry ``key``
    (as the file names it, e.g. ``b'data'``) and the dtype."""
    if isinstance(value, (list, tuple)) and not value:
        return np.zeros(0, dtype=np.int64)
    if not isinstance(value, (np.ndarray, list, tuple)):
        raise ValueError(f"{path}: {key} is a {type(value).__name__}, expected an integer array or list")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as e:  # ragged nesting
        raise ValueError(f"{path}: {key} is not a rectangular integer array ({e})") from e
    if array.dtype.kind not in "iu":
        raise ValueError(f"{path}: {key} has dtype {array.dtype}, expected integers "
                         f"({'uint8 pixel values' if pixels else 'class indices'}); it is not cast")
    return array


def _download_cifar(parent: Path) -> None:
    """Download, verify and extract the official CIFAR-10 archive into ``parent``."""
    _download_archive(CIFAR10_URL, CIFAR10_MD5, CIFAR10_DIRNAME, parent,
                      lambda d: bool(_data_batch_files(d)), "data_batch_*")


def _download_archive(url: str, md5: str, dirname: str, parent: Path, complete: Callable[[Path], bool],
                      expected: str) -> None:
    """Download ``url`` into ``parent``, check its ``md5`` and extract its ``dirname/`` files (see
    :func:`_extract_archive`); ``complete(directory)`` says whether the extracted directory holds the data
    (``expected`` names the files for the error)."""
    parent.mkdir(parents=True, exist_ok=True)
    archive = parent / url.rsplit("/", 1)[1]
    logger.info("downloading %s to %s", url, archive)
    _fetch(url, archive)
    digest = _md5(archive)
    if digest != md5:
        archive.unlink()
        raise RuntimeError(
            f"md5 mismatch for {archive} downloaded from {url}: got {digest}, "
            f"expected {md5}; the file was deleted, try again"
        )
    _extract_archive(archive, parent, dirname, complete, expected)
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


def _extract_archive(archive: Path, parent: Path, dirname: str, complete: Callable[[Path], bool],
                     expected: str) -> None:
    """Extract the regular files under ``dirname/`` into ``parent``.

    Members are written by hand: absolute paths and ``..`` are refused and
    links or devices are skipped.  Files are first extracted to a staging
    directory and moved into place only once all of them are complete.
    """
    staging = Path(tempfile.mkdtemp(prefix=f".{dirname}-extract-", dir=parent))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                path = PurePosixPath(member.name)
                if path.is_absolute() or ".." in path.parts:
                    raise RuntimeError(f"refusing unsafe path {member.name!r} in {archive}")
                if member.isfile() and path.parts[:1] == (dirname,):
                    target = staging.joinpath(*path.parts)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        extracted = staging / dirname
        if not complete(extracted):
            raise RuntimeError(f"{archive} holds no {dirname}/{expected} files")
        destination = parent / dirname
        destination.mkdir(exist_ok=True)
        for p in extracted.iterdir():
            os.replace(p, destination / p.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
