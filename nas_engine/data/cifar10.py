"""CIFAR-10 from its "python version" batch directory: the ``cifar10`` dataset plugin.

The official archive (``cifar-10-python.tar.gz``) extracts to a directory
``cifar-10-batches-py``: ``data_batch_1`` ... ``data_batch_5`` (10,000 images
each) and ``test_batch``, pickled dicts with bytes keys ``b'data'`` ((N, 3072)
uint8 rows holding the R, G and B planes of a 32x32 image in turn) and
``b'labels'`` (0..9).  Every ``data_batch_N`` present forms the training pool
and ``test_batch`` (optional) the test set.  Every file is read with the
restricted unpickler (:func:`~nas_engine.safeload.safe_pickle_load`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..registry import datasets
from ..safeload import safe_pickle_load
from .loading import DATA_ENV_VAR, _dataset_directory, _download_archive, _pixel_rows
from .types import _CIFAR_SIDE, _CIFAR_SPEC, RawData

__all__ = ["CIFAR10_URL", "CIFAR10_MD5", "CIFAR10_DIRNAME", "cifar10"]


#: Official CIFAR-10 "python version" archive and the md5 of that archive.
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_DIRNAME = "cifar-10-batches-py"
_DATA_BATCH_RE = re.compile(r"data_batch_(\d+)")


@datasets.register("cifar10")
def cifar10(root: Path | None = None, download: bool = False) -> RawData:
    """CIFAR-10's python-version batches: every ``data_batch_N`` present is the pool, ``test_batch`` the test set."""
    directory = _cifar_directory(root)
    if not _data_batch_files(directory):
        if not download:
            raise FileNotFoundError(_missing_cifar_message(directory))
        _download_cifar(directory.parent)
    return _read_cifar(directory)


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


def _download_cifar(parent: Path) -> None:
    """Download, verify and extract the official CIFAR-10 archive into ``parent``."""
    _download_archive(CIFAR10_URL, CIFAR10_MD5, CIFAR10_DIRNAME, parent,
                      lambda d: bool(_data_batch_files(d)), "data_batch_*")
