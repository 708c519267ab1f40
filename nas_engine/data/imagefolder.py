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

Conversion to RGB by mode: ``1``, ``L``, ``RGB``, ``CMYK`` and ``YCbCr`` as
Pillow converts them; 16-bit grey (``I;16``, ``I;16B``, ``I;16L``, and ``I``
with values 0..65535) scaled to 8 bits (``round(v / 257)``); images with
alpha (``RGBA``, ``LA``, ``PA``, and ``P`` with a transparent colour)
composited over black.  Other modes are refused naming the file and the mode.

Before anything is decoded (Pillow reads the size from the header): at least
two class directories; the decoded dataset (uint8, and its float32 tensors)
within the memory limit (``$NAS_ENGINE_DATA_MAX_BYTES``, else what this process may still
allocate); each image within Pillow's ``Image.MAX_IMAGE_PIXELS`` (its
decompression-bomb limit, an error here rather than a warning), and so is the
image resized to ``resolution`` on its shorter side (a 1 x 2,000,000 PNG would
become 32 x 64,000,000); ``crop_padding`` at most half of ``resolution``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..registry import datasets
from .types import DatasetSpec, RawData, _check_crop_padding, _check_int, _check_memory, content_tag

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
    _check_crop_padding(f"imagefolder (resolution {size})", crop_padding, size)
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
    if len(names) < 2:
        raise ValueError(f"{train_dir}: one class directory ({names[0]}); classification needs at least two")
    index = {n: k for k, n in enumerate(names)}
    splits = [_list_split(train_dir, index)] + ([] if test_dir is None else [_list_split(test_dir, index)])
    n = sum(len(images) for images, _, _ in splits)
    # the decoded uint8 images (twice while they are stacked) and the dataset's float32 tensors
    _check_memory(str(root), f"{n} images of 3x{size}x{size}", n * 3 * size * size * (2 + 4))
    (x, y), files = _decode_split(splits[0], size), splits[0][2]
    x_test = y_test = None
    if test_dir is not None:
        (x_test, y_test), test_files = _decode_split(splits[1], size), splits[1][2]
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


def _list_split(directory: Path, index: dict[str, int]) -> tuple[list[Path], list[int], tuple]:
    """The image files of a split, their labels and the paths read (class directories and files)."""
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
        images.extend(files)
        labels.extend([index[d.name]] * len(files))
        read.append(d)
        read.extend(files)
    if not images:
        raise ValueError(f"{directory}: no class directories with images")
    return images, labels, (directory, *read)


def _decode_split(split: tuple[list[Path], list[int], tuple], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, size, size)`` uint8 and labels of a listed split."""
    files, labels, _ = split
    x = np.stack([_decode(f, size) for f in files]).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x), np.asarray(labels, dtype=np.int64)


#: the modes Pillow's ``convert("RGB")`` handles faithfully
_RGB_MODES = ("1", "L", "RGB", "CMYK", "YCbCr")
#: 16-bit grey (``I``: 32-bit integers, accepted when they hold 16-bit values)
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
#: modes with transparency, composited over black (``P`` too when it has a transparent colour)
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def _decode(path: Path, size: int) -> np.ndarray:
    """``path`` as an RGB ``(size, size, 3)`` uint8 array: shorter side to ``size``, centre crop."""
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - Pillow comes with matplotlib
        raise ImportError("the imagefolder dataset needs Pillow: pip install pillow") from e
    try:
        with warnings.catch_warnings():  # Pillow's decompression-bomb warning is an error here
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)  # lazy: reads the header only
    except Exception as e:  # Pillow raises many kinds (UnidentifiedImageError, OSError, SyntaxError, ...)
        raise ValueError(f"{path}: not a readable image ({_one_line(e)})") from e
    with im:
        w, h = im.size
        limit = Image.MAX_IMAGE_PIXELS
        if min(w, h) < 1:
            raise ValueError(f"{path}: a {w}x{h} image holds no pixels")
        nw, nh = _resized(w, h, size)
        if limit and nw * nh > limit:
            raise ValueError(f"{path}: a {w}x{h} image resized to {size} pixels on its shorter side would be "
                             f"{nw}x{nh} ({nw * nh:,} pixels), more than Pillow's Image.MAX_IMAGE_PIXELS "
                             f"({limit:,}); crop it nearer to a square")
        mode = im.mode
        if mode not in _RGB_MODES + _WIDE_MODES + _ALPHA_MODES + ("P",):
            raise ValueError(f"{path}: image mode {mode!r} is not supported (expected 1, L, P, RGB, RGBA, LA, "
                             "CMYK, YCbCr or 16-bit grey I;16)")
        try:
            im.draft("RGB", (size, size))  # JPEG: decode at a reduced scale that is still >= size
            rgb = _rgb(im, path)
            nw, nh = _resized(*rgb.size, size)
            rgb = rgb.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=None)
            left, top = (nw - size) // 2, (nh - size) // 2
            rgb = rgb.crop((left, top, left + size, top + size))
            return np.asarray(rgb, dtype=np.uint8)
        except _Refused:
            raise
        except Exception as e:
            raise ValueError(f"{path}: not a readable image ({_one_line(e)})") from e


class _Refused(ValueError):
    """A decoded image refused (not a decoding failure)."""


def _resized(w: int, h: int, size: int) -> tuple[int, int]:
    """The size of a ``w`` x ``h`` image whose shorter side is resized to ``size``."""
    scale = size / min(w, h)
    return max(size, round(w * scale)), max(size, round(h * scale))


def _rgb(im, path: Path):
    """``im`` (any supported mode) as an 8-bit RGB image."""
    from PIL import Image

    mode = im.mode
    if mode in _WIDE_MODES:
        values = np.asarray(im)
        if values.size and not 0 <= int(values.min()) <= int(values.max()) <= 65535:
            raise _Refused(f"{path}: a mode {mode!r} image with values {int(values.min())}..{int(values.max())}, "
                           "expected 16-bit values 0..65535")
        grey = np.rint(values.astype(np.float64) / 257.0).astype(np.uint8)  # 0..65535 -> 0..255
        return Image.fromarray(grey, "L").convert("RGB")
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba).convert("RGB")
    return im.convert("RGB")


def _one_line(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())
