"""scikit-learn's bundled 8x8 digits: the ``digits`` dataset plugin (the engine's embedded demo dataset).

1,797 grey-scale images with values 0..16, 10 classes; no files are needed.  A
fixed, class-balanced 20% forms the test set whatever ``seed`` is.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from ..registry import datasets
from .types import DatasetSpec, RawData, _balanced_pick

__all__ = ["digits"]


_DIGITS_TEST_FRACTION = 0.2
_DIGITS_TEST_SEED = 0  # the digits test split is fixed, whatever ``seed`` is
_DIGITS_SPEC = DatasetSpec(max_value=16.0, crop_padding=1, flip=False)


@datasets.register("digits")
def digits() -> RawData:
    """scikit-learn's 8x8 digits: 1,797 images with values 0..16; a fixed, class-balanced 20% test split."""
    images, target = _load_digits()
    x = images.astype(np.uint8)[:, None]  # integer values 0..16
    y = target.astype(np.int64)
    everything = np.arange(len(y))
    rng = np.random.default_rng(_DIGITS_TEST_SEED)
    test_idx = _balanced_pick(y, everything, round(_DIGITS_TEST_FRACTION * len(y)), 10, rng)
    pool_idx = np.setdiff1d(everything, test_idx, assume_unique=True)
    return RawData(x=x, y=y, num_classes=10, spec=_DIGITS_SPEC, x_test=x, y_test=y, pool_indices=pool_idx,
                   test_indices=test_idx, source="sklearn.datasets.load_digits", files=())


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """``(images [1797, 8, 8], target)`` of ``sklearn.datasets.load_digits``, read from the CSV file scikit-learn
    ships (``sklearn/datasets/data/digits.csv.gz``: 64 pixel columns and the label) the way ``load_digits`` reads
    it, without importing ``sklearn.datasets`` (about a second and a half of imports for every process that
    loads the digits: each ``nas-engine search`` on them).  Falls back to ``load_digits`` itself where the file
    is not where this version of scikit-learn keeps it; ``tests/test_datasets.py`` checks both agree."""
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.images, bunch.target
    with gzip.open(path, "rt") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)
