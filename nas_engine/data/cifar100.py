"""CIFAR-100 from its "python version" directory: the ``cifar100`` dataset plugin.

The official archive (``cifar-100-python.tar.gz``) extracts to a directory
``cifar-100-python`` with three pickles: ``train`` (50,000 images), ``test``
(10,000) and ``meta`` (the class names).  ``train`` and ``test`` are dicts with
bytes keys: ``b'data'`` (N, 3072) uint8 rows holding the R, G and B planes of a
32x32 image in turn, ``b'fine_labels'`` (0..99) and ``b'coarse_labels'``
(0..19), plus ``b'filenames'`` and ``b'batch_label'``; ``meta`` holds
``b'fine_label_names'`` (100) and ``b'coarse_label_names'`` (20).  Every file
is read with the restricted unpickler (:func:`~nas_engine.safeload.safe_pickle_load`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..registry import datasets
from ..safeload import safe_pickle_load
from .loading import DATA_ENV_VAR, _dataset_directory, _download_archive, _pixel_rows
from .types import _CIFAR_SIDE, _CIFAR_SPEC, RawData

__all__ = ["CIFAR100_URL", "CIFAR100_MD5", "CIFAR100_DIRNAME", "cifar100"]

#: Official CIFAR-100 "python version" archive and the md5 of that archive.
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR100_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
CIFAR100_DIRNAME = "cifar-100-python"
_LABELS = {"fine": (b"fine_labels", b"fine_label_names", 100), "coarse": (b"coarse_labels", b"coarse_label_names", 20)}
_HOLDS = "numpy arrays, lists, dicts, str, bytes and numbers"


@datasets.register("cifar100")
def cifar100(root: Path | None = None, download: bool = False, labels: str = "fine") -> RawData:
    """CIFAR-100: ``train`` is the pool, ``test`` the test set; ``labels="fine"`` (100 classes) or
    ``"coarse"`` (20 superclasses).  ``root``: the ``cifar-100-python`` directory or its parent (default
    ``$NAS_ENGINE_DATA`` or ``~/.cache/nas-engine``); ``download``: fetch and md5-check the official archive
    when the files are missing."""
    if labels not in _LABELS:
        raise ValueError(f"cifar100: labels must be 'fine' (100 classes) or 'coarse' (20), got {labels!r}")
    directory = _dataset_directory(root, CIFAR100_DIRNAME, _complete)
    if not _complete(directory):
        if not download:
            raise FileNotFoundError(_missing_message(directory))
        _download_archive(CIFAR100_URL, CIFAR100_MD5, CIFAR100_DIRNAME, directory.parent, _complete,
                          "train and meta")
    label_key, names_key, num_classes = _LABELS[labels]
    names = _class_names(directory / "meta", names_key, num_classes)
    x, y = _read_split(directory / "train", label_key, num_classes)
    test = directory / "test"
    x_test, y_test = _read_split(test, label_key, num_classes) if test.is_file() else (None, None)
    return RawData(x=x, y=y, num_classes=num_classes, spec=_CIFAR_SPEC, x_test=x_test, y_test=y_test,
                   source=str(directory), tag="" if labels == "fine" else labels, classes=names,
                   files=(directory, directory / "meta", directory / "train", test))


def _complete(directory: Path) -> bool:
    return (directory / "train").is_file() and (directory / "meta").is_file()


def _missing_message(directory: Path) -> str:
    present = [n for n in ("train", "meta") if (directory / n).is_file()]
    missing = [n for n in ("train", "meta") if n not in present]
    what = "the directory does not exist" if not directory.is_dir() else f"no {' or '.join(missing)} file"
    return (f"CIFAR-100 data not found in {directory} ({what}): expected the 'CIFAR-100 python version' files "
            f"train and meta (and test, optional, for the test set). Either pass download=True to download "
            f"{CIFAR100_URL} and extract it into {directory.parent}, or point root= (or the {DATA_ENV_VAR} "
            f"environment variable) at a directory containing an extracted '{CIFAR100_DIRNAME}' directory "
            "(root= may also be that directory itself).")


def _load(path: Path, what: str) -> dict:
    content = safe_pickle_load(path, what=what, encoding="bytes", holds=_HOLDS)
    if not isinstance(content, dict):
        raise ValueError(f"{path} is not {what} (a pickled dict), it holds a {type(content).__name__}")
    return content


def _class_names(path: Path, key: bytes, num_classes: int) -> tuple[str, ...]:
    meta = _load(path, "CIFAR-100's meta file")
    names = meta.get(key)
    if not isinstance(names, (list, tuple)) or len(names) != num_classes \
            or not all(isinstance(n, (bytes, str)) for n in names):
        raise ValueError(f"{path}: expected {key!r} to list {num_classes} class names, got "
                         f"{_describe(names)}")
    return tuple(n.decode("latin-1") if isinstance(n, bytes) else n for n in names)


def _read_split(path: Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    split = _load(path, "a CIFAR-100 split")
    if b"data" not in split or label_key not in split:
        raise ValueError(f"{path} is not a CIFAR-100 python split (no b'data'/{label_key!r}; it has "
                         f"{sorted(map(repr, split))[:6]})")
    return _pixel_rows(path, split[b"data"], split[label_key], side=_CIFAR_SIDE, classes=range(num_classes),
                       keys=("b'data'", repr(label_key)))


def _describe(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)}"
    return "nothing" if value is None else f"a {type(value).__name__}"
