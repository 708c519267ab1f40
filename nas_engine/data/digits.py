"""scikit-learn's bundled 8x8 digits: the ``digits`` dataset plugin (the engine's embedded demo dataset).

1,797 grey-scale images with values 0..16, 10 classes; no files are needed.  A
fixed, class-balanced 20% forms the test set whatever ``seed`` is.
"""

from __future__ import annotations

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
