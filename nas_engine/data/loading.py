"""Loading a dataset by name: :func:`load_dataset`, the registry glue, the cache and the file helpers.

:func:`load_dataset` looks the name up in the ``dataset`` registry, passes the
reader the arguments its signature names, checks what it returns and builds
the :class:`~nas_engine.data.types.Dataset` through the shared code path of
:mod:`nas_engine.data.types`; loads are cached in-process (:func:`clear_cache`).
It installs itself as the dataset registry's creator.  The helpers the readers
of files share are here too: where a dataset's directory is
(:func:`default_root`, ``_dataset_directory``), the rows of a pickled CIFAR /
ImageNet16 batch (``_pixel_rows``), and downloading, md5-checking and safely
extracting an archive (``_download_archive``).

This module imports no reader: the readers import it.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..registry import datasets
from .types import Dataset, RawData, _build, _check_raw, _check_split_args

__all__ = ["DATA_ENV_VAR", "DEFAULT_DATA_ROOT", "available_datasets", "clear_cache", "default_root", "load_dataset"]


logger = logging.getLogger(__name__)

#: Environment variable naming a directory that contains the datasets' directories (``cifar-10-batches-py``, ...).
DATA_ENV_VAR = "NAS_ENGINE_DATA"
DEFAULT_DATA_ROOT = Path("~/.cache/nas-engine")
#: the arguments load_dataset itself interprets; a plugin receives each one its signature names
_SHARED = ("root", "download", "n_train", "n_val", "resolution", "seed")
#: what a plugin that returns a finished Dataset must take (it made the splits)
_SPLITS = ("n_train", "n_val", "resolution", "seed")
_CACHE_SIZE = 4


def available_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`: the ``dataset`` registry's (built-ins and entry points)."""
    return datasets.names()


def default_root() -> Path:
    """Where file-based datasets are looked for when no root is given: ``$NAS_ENGINE_DATA``, else
    ``~/.cache/nas-engine`` (absolute)."""
    return Path(os.environ.get(DATA_ENV_VAR) or DEFAULT_DATA_ROOT).expanduser().absolute()


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
        TypeError: one of those counts is not an integer; ``download`` is not a bool.
        FileNotFoundError: the dataset's files are missing (and ``download``
            is false or not offered); the message names the expected path.
        RuntimeError: a downloaded archive fails its md5 check (it is deleted)
            or holds unsafe paths or no data files.
    """
    key, root = _parse_name(name, root)
    key, factory = _factory(key)
    n_train, n_val, resolution, seed = _check_split_args(n_train, n_val, resolution, seed)
    if not isinstance(download, (bool, np.bool_)):  # bool("no") would download
        raise TypeError(f"download must be True or False, got download={download!r}")
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
    """Forget every dataset cached by :func:`load_dataset` (and by the readers that keep a cache of their own)."""
    _CACHE.clear()
    for clear in _READER_CACHES:
        clear()


def _on_clear_cache(clear: Callable[[], None]) -> None:
    """Have :func:`clear_cache` call ``clear`` too (a reader's own cache: synthetic-cifar10's)."""
    _READER_CACHES.append(clear)


#: the cache-clearing functions of the readers that keep a cache of their own
_READER_CACHES: list[Callable[[], None]] = []


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


# --------------------------------------------------------------------------- #
# Files: the dataset's directory, pickled pixel rows, downloads


def _dataset_directory(root: str | os.PathLike[str] | None, dirname: str,
                       holds_data: Callable[[Path], bool]) -> Path:
    """The ``dirname`` directory that ``root`` designates: ``root`` itself when it is named so or holds the
    data files, else ``root/dirname``; ``root`` defaults to :func:`default_root`."""
    root = default_root() if root is None else Path(root).expanduser().absolute()
    if root.name == dirname or holds_data(root):
        return root
    return root / dirname


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
