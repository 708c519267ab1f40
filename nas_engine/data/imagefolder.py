"""A directory of image files, one sub-directory per class: the ``imagefolder`` dataset plugin.

Two layouts are accepted::

    ROOT/                       ROOT/
      cat/  a.png b.jpg ...       train/  cat/ ...  dog/ ...
      dog/  ...                   test/   cat/ ...  dog/ ...   (optional)

On the left every image is in the training pool and there is no test set; on
the right (``ROOT`` holds a ``train`` directory that itself holds
directories) ``train/`` is the pool and ``test/`` the test set.  Class ``k``
is the ``k``-th class directory name in sorted order (of ``train/`` in the
second layout; ``test/`` may lack classes but holds no others).  A class
directory's images may sit in sub-directories of it; they are read in sorted
path order.  Files ending in ``.png``, ``.jpg`` or ``.jpeg`` (any case) are
images; hidden files and directories (``.name``) and other files are skipped.
A class directory without images, an empty root and an unreadable image file
are errors naming the path.

Each image is decoded with Pillow, converted to RGB, its shorter side resized
to ``resolution`` (bilinear, antialiased) and the centre cropped to
``resolution`` x ``resolution``; the dataset is held in memory as uint8.  The
fingerprint carries a sha256 of the decoded images, labels and class names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..registry import datasets
from .types import DatasetSpec, RawData, _check_int, content_tag

__all__ = ["IMAGE_SUFFIXES", "DEFAULT_RESOLUTION", "imagefolder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DEFAULT_RESOLUTION = 32


@datasets.register("imagefolder")
def imagefolder(root: Path | None = None, *, resolution: int | None = None, crop_padding: int = 0,
                flip: bool = False) -> RawData:
    """Images under ``root`` (``"imagefolder:DIR"``), one sub-directory per class, decoded at ``resolution``
    (default 32); ``crop_padding`` / ``flip``: the training augmentation (default none)."""
    if root is None:
        raise ValueError("dataset 'imagefolder' needs its directory: load_dataset('imagefolder:DIR') or "
                         "root=DIR (CLI: --data imagefolder:DIR), DIR holding one sub-directory of images per class")
    size = DEFAULT_RESOLUTION if resolution is None else _check_int("resolution", resolution, low=1)
    crop_padding = _check_int("crop_padding", crop_padding, low=0)
    if not isinstance(flip, bool):
        raise ValueError(f"imagefolder: flip must be True or False, got {flip!r}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root} (expected a directory with one sub-directory "
                                "of PNG/JPEG images per class, or train/ and test/ directories of those)")
    train_dir, test_dir = root, None
    if (root / "train").is_dir() and _class_dirs(root / "train"):
        train_dir = root / "train"
        test_dir = root / "test" if (root / "test").is_dir() else None
    classes = _class_dirs(train_dir)
    if not classes:
        raise ValueError(f"{train_dir}: no class directories (expected one sub-directory of PNG/JPEG images "
                         "per class)")
    names = tuple(d.name for d in classes)
    x, y, files = _read_split(train_dir, {n: k for k, n in enumerate(names)}, size)
    x_test = y_test = None
    if test_dir is not None:
        x_test, y_test, test_files = _read_split(test_dir, {n: k for k, n in enumerate(names)}, size)
        files += test_files
    return RawData(x=x, y=y, num_classes=len(names), spec=DatasetSpec(255.0, crop_padding, flip),
                   x_test=x_test, y_test=y_test, source=str(root), classes=names,
                   tag=content_tag(x, y, x_test, y_test, extra="\n".join(names)), files=(root, *files))


def _class_dirs(directory: Path) -> list[Path]:
    return sorted((p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def _images(class_dir: Path) -> list[Path]:
    """The image files under ``class_dir`` (recursively, hidden entries skipped), in sorted path order."""
    found = []
    for p in class_dir.rglob("*"):
        rel = p.relative_to(class_dir)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            found.append(p)
    return sorted(found, key=lambda p: p.relative_to(class_dir).parts)


def _read_split(directory: Path, index: dict[str, int], size: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Images ``(N, 3, size, size)`` uint8, labels and the paths read (class directories and files)."""
    dirs = _class_dirs(directory)
    unknown = [d.name for d in dirs if d.name not in index]
    if unknown:
        raise ValueError(f"{directory}: class directories {', '.join(unknown)} are not classes of the "
                         f"training images ({', '.join(index)})")
    images, labels, read = [], [], []
    for d in dirs:
        files = _images(d)
        if not files:
            raise ValueError(f"{d}: no images (expected files ending in {', '.join(IMAGE_SUFFIXES)}) in this "
                             "class directory; remove it or add images")
        images.extend(_decode(f, size) for f in files)
        labels.extend([index[d.name]] * len(files))
        read.append(d)
        read.extend(files)
    if not images:
        raise ValueError(f"{directory}: no class directories with images")
    x = np.stack(images).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x), np.asarray(labels, dtype=np.int64), (directory, *read)


def _decode(path: Path, size: int) -> np.ndarray:
    """``path`` as an RGB ``(size, size, 3)`` uint8 array: shorter side to ``size``, centre crop."""
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - Pillow comes with matplotlib
        raise ImportError("the imagefolder dataset needs Pillow: pip install pillow") from e
    try:
        with Image.open(path) as im:
            im.draft("RGB", (size, size))  # JPEG: decode at a reduced scale that is still >= size
            im = im.convert("RGB")
            w, h = im.size
            scale = size / min(w, h)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            im = im.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=None)
            left, top = (nw - size) // 2, (nh - size) // 2
            im = im.crop((left, top, left + size, top + size))
            return np.asarray(im, dtype=np.uint8)
    except Exception as e:  # Pillow raises many kinds (UnidentifiedImageError, OSError, SyntaxError, ...)
        detail = " ".join(f"{type(e).__name__}: {e}".split())
        raise ValueError(f"{path}: not a readable image ({detail})") from e
