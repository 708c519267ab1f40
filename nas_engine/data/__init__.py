"""Image-classification datasets for architecture evaluation, as plugins.

:func:`load_dataset` returns a :class:`Dataset`: whole train / validation / test
splits as in-memory float32 NCHW tensors, normalised per channel with the mean
and standard deviation of the training split.  Datasets are plugins of the
``dataset`` registry (:data:`nas_engine.registry.datasets`, entry-point group
``nas_engine.datasets``); the built-ins:

``digits`` (:mod:`nas_engine.data.digits`)
    scikit-learn's bundled 8x8 grey-scale digits (1,797 images, 10 classes).
    No files are needed; it is the engine's embedded demo dataset.
``cifar10`` (:mod:`nas_engine.data.cifar10`)
    CIFAR-10 read from the standard "python version" batch directory
    (``cifar-10-batches-py``).  Every ``data_batch_N`` file present forms the
    training pool and ``test_batch`` (optional) the test set.
``synthetic-cifar10`` (:mod:`nas_engine.data.synthetic`)
    FEAR's Synthetic CIFAR-10, generated from the seed (no files).
``cifar100`` (:mod:`nas_engine.data.cifar100`)
    CIFAR-100's ``cifar-100-python`` directory (``train``, ``test``, ``meta``);
    ``labels="fine"`` (100 classes, the default) or ``"coarse"`` (20).
``imagenet16-120`` (:mod:`nas_engine.data.imagenet16`)
    NAS-Bench-201's 16x16 downsampled ImageNet, its 120-class subset.
``imagefolder`` (:mod:`nas_engine.data.imagefolder`)
    A directory of PNG/JPEG files, one sub-directory per class.
``npz`` (:mod:`nas_engine.data.npz`)
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

**Layout.**  :mod:`nas_engine.data.types` holds the value types and the shared
code path (validation, splits, resizing, normalisation, arrays in memory,
:func:`augment_batch`); :mod:`nas_engine.data.loading` holds :func:`load_dataset`,
the registry glue, the cache and the helpers that readers of files share
(directories, pickled pixel rows, downloads); each reader is a module of its
own that imports those two and no other reader.  This package re-exports the
public names.
"""


from __future__ import annotations

# The package is split into modules: ``types`` (the value types and the shared RawData -> Dataset code path),
# ``loading`` (load_dataset, the registry glue, the cache, the file and download helpers) and one module per
# reader.  The readers imported here are the core built-ins, registered whenever nas_engine.data is imported;
# the registry imports ``cifar100``, ``imagenet16`` and ``imagefolder`` when it is first asked for a name.
# The names imported "as themselves" stay importable from here as they were before the split: the constants,
# content_tag (for readers), helpers the tests use and _rebuild_dataset (which pickles of a Dataset name).
from . import cifar10, digits, npz, synthetic  # noqa: F401  (registers the core built-ins)
from .cifar10 import CIFAR10_MD5, CIFAR10_URL
from .loading import DATA_ENV_VAR as DATA_ENV_VAR
from .loading import DEFAULT_DATA_ROOT as DEFAULT_DATA_ROOT
from .loading import _parameters as _parameters
from .loading import available_datasets, clear_cache, default_root, load_dataset
from .synthetic import synthetic_cifar10 as synthetic_cifar10
from .synthetic import synthetic_cifar10_arrays
from .types import Dataset, DatasetSpec, RawData, augment_batch
from .types import _balanced_counts as _balanced_counts
from .types import _rebuild_dataset as _rebuild_dataset
from .types import content_tag as content_tag

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
