"""NAS-Bench-201's 16x16 downsampled ImageNet: the ``imagenet16-120`` dataset plugin.

The files are those of Chrabaszcz et al.'s downsampled ImageNet (16x16) as
NAS-Bench-201 uses them, in a directory ``ImageNet16``: ``train_data_batch_1``
... ``train_data_batch_10`` (training) and ``val_data`` (ImageNet's validation
images, NB201's test data).  Each is a pickled dict with ``'data'``, an (N, 768)
uint8 array whose rows hold the R, G and B planes of a 16x16 image in turn, and
``'labels'``, 1-based class indices in 1..1000 (training batches also hold a
``'mean'``, unused).

Read as NAS-Bench-201's ``ImageNet16(root, train, transform,
use_num_of_class_only=120)`` reads them (AutoDL-Projects,
``lib/datasets/DownsampledImageNet.py``): the ten training batches in order
1..10 concatenated, then ``val_data``; only images with a label ``1 <= L <=
120`` are kept, in file order, and relabelled ``L - 1`` (0..119).  On the
official files that gives 151,700 training and 6,000 test images (the counts
NB201's ``get_datasets`` asserts).  Augmentation as NB201's: random crop with
2-pixel padding at 16x16 and horizontal flips.  Differences, as for the other
datasets: the engine holds its own class-balanced validation split out of the
training images (NB201 splits ``val_data`` into its x-valid and x-test halves),
normalises with statistics of the training split (NB201 uses fixed ImageNet16
means and standard deviations) and does not md5-check the files (NB201 checks
all eleven before loading).  Batches are filtered one at a time, so the 1.3M
images of the full files are never all in memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..registry import datasets
from ..safeload import safe_pickle_load
from .loading import DATA_ENV_VAR, _dataset_directory, _pixel_rows
from .types import DatasetSpec, RawData

__all__ = ["IMAGENET16_DIRNAME", "imagenet16_120"]

IMAGENET16_DIRNAME = "ImageNet16"
TRAIN_FILES = tuple(f"train_data_batch_{i}" for i in range(1, 11))
TEST_FILE = "val_data"
_SIDE = 16
_SPEC = DatasetSpec(max_value=255.0, crop_padding=2, flip=True)  # NB201: RandomCrop(16, padding=2), flip
_HOLDS = "numpy arrays, lists, dicts, str, bytes and numbers"


@datasets.register("imagenet16-120")
def imagenet16_120(root: Path | None = None) -> RawData:
    """The 120-class ImageNet16 of NAS-Bench-201 (labels 1..120 of the files, as 0..119).

    ``root``: the ``ImageNet16`` directory or its parent (default ``$NAS_ENGINE_DATA`` or
    ``~/.cache/nas-engine``).  All ten ``train_data_batch_N`` files are required (as NB201 requires them);
    ``val_data`` (the test set) is optional."""
    return read_imagenet16(root, classes=120)


def read_imagenet16(root: Path | None, classes: int) -> RawData:
    """ImageNet16 restricted to the labels ``1..classes`` (relabelled ``0..classes-1``)."""
    directory = _dataset_directory(root, IMAGENET16_DIRNAME, lambda d: (d / TRAIN_FILES[0]).is_file())
    missing = [n for n in TRAIN_FILES if not (directory / n).is_file()]
    if missing:
        where = "the directory does not exist" if not directory.is_dir() else f"missing: {', '.join(missing)}"
        raise FileNotFoundError(
            f"ImageNet16 data not found in {directory} ({where}): expected NAS-Bench-201's downsampled ImageNet "
            f"16x16 pickles {TRAIN_FILES[0]} ... {TRAIN_FILES[-1]} (and {TEST_FILE}, optional, for the test "
            f"set). Point root= (or the {DATA_ENV_VAR} environment variable) at the '{IMAGENET16_DIRNAME}' "
            "directory or its parent.")
    xs, ys = zip(*(_read_batch(directory / n, classes) for n in TRAIN_FILES))
    test = directory / TEST_FILE
    x_test, y_test = _read_batch(test, classes) if test.is_file() else (None, None)
    return RawData(x=np.concatenate(xs), y=np.concatenate(ys), num_classes=classes, spec=_SPEC,
                   x_test=x_test, y_test=y_test, source=str(directory),
                   files=(directory, *(directory / n for n in TRAIN_FILES), test))


def _read_batch(path: Path, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One batch's images with labels ``1..classes``, as (N, 3, 16, 16) uint8 and labels ``0..classes-1``."""
    # latin1, as NB201 reads them: Python 2 str keys come back as str (and numpy arrays decode either way)
    batch = safe_pickle_load(path, what="an ImageNet16 batch", encoding="latin1", holds=_HOLDS)
    if not isinstance(batch, dict):
        raise ValueError(f"{path} is not an ImageNet16 batch (a pickled dict), it holds a {type(batch).__name__}")
    keys = {}
    for key in ("data", "labels"):
        found = [k for k in (key, key.encode()) if k in batch]
        if not found:
            raise ValueError(f"{path} is not an ImageNet16 batch (no {key!r} entry; it has "
                             f"{sorted(map(repr, batch))[:6]})")
        keys[key] = found[0]
    x, labels = _pixel_rows(path, batch[keys["data"]], batch[keys["labels"]], side=_SIDE, classes=range(1, 1001),
                            keys=(repr(keys["data"]), repr(keys["labels"])))
    keep = labels <= classes  # labels are >= 1 (checked)
    return x[keep], labels[keep] - 1
