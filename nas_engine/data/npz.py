"""An ``.npz`` file of arrays: the ``npz`` dataset plugin.

The file holds ``x_train``, ``y_train`` and optionally ``x_test``, ``y_test``,
read with ``allow_pickle=False`` and checked under the rules of
:meth:`~nas_engine.data.types.Dataset.from_arrays` (``_raw_from_arrays``).

Nothing is allocated before the archive has been checked: the members'
decompressed sizes (``ZipInfo.file_size``, which :mod:`zipfile` never reads
past) and the shape and dtype each ``.npy`` header declares, which must account
for exactly its member's size, are compared with the memory limit
(``types._memory_limit``: ``$NAS_ENGINE_DATA_MAX_BYTES``, else what this process may
still allocate) before any array is read.
"""

from __future__ import annotations

import dataclasses
import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..registry import datasets
from ..threads import format_bytes
from .types import RawData, _check_array_options, _check_memory, _raw_from_arrays

__all__ = ["npz"]


_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
#: what reading a damaged, hostile or unsupported archive may raise (zipfile, zlib and numpy's .npy reader)
_READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError)


@datasets.register("npz")
def npz(root: Path | None = None, *, layout: str | None = None, num_classes: int | None = None,
        crop_padding: int = 0, flip: bool = False, resolution: int | None = None) -> RawData:
    """An ``.npz`` file (``root``; ``"npz:PATH"``) holding ``x_train``, ``y_train`` and optionally ``x_test``,
    ``y_test``, under :meth:`Dataset.from_arrays`'s rules; read with ``allow_pickle=False``, its declared sizes
    checked against the memory limit before any array is read."""
    if root is None:
        raise ValueError("dataset 'npz' needs the file: load_dataset('npz:PATH') or root=PATH "
                         "(CLI: --data npz:PATH)")
    path = Path(root)
    _check_array_options(str(path), num_classes, crop_padding, flip, layout)  # before the file is read
    if not path.is_file():
        raise FileNotFoundError(f"npz file not found: {path} (expected an .npz with x_train, y_train and "
                                "optionally x_test, y_test)")
    arrays = _read_npz(path)
    raw = _raw_from_arrays(arrays.get("x_train"), arrays.get("y_train"), arrays.get("x_test"),
                           arrays.get("y_test"), where=str(path), num_classes=num_classes, layout=layout,
                           crop_padding=crop_padding, flip=flip, resolution=resolution, source=str(path))
    return dataclasses.replace(raw, files=(path,))


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of the archive at ``path``, after its members and their ``.npy`` headers have been checked."""
    try:
        archive = zipfile.ZipFile(path)
    except _READ_ERRORS as e:
        with open(path, "rb") as f:
            if f.read(len(np.lib.format.MAGIC_PREFIX)) == np.lib.format.MAGIC_PREFIX:
                raise ValueError(f"{path}: a single array (.npy), not an .npz archive of x_train, y_train "
                                 "(x_test, y_test)") from e
        raise ValueError(f"{path}: not a readable npz file of plain arrays ({_one_line(e)})") from e
    with archive:
        members = {(i.filename[:-4] if i.filename.endswith(".npy") else i.filename): i for i in archive.infolist()}
        unknown = sorted(set(members) - set(_NPZ_KEYS))
        if unknown:
            raise ValueError(f"{path}: unexpected arrays {', '.join(unknown)}; an npz dataset holds "
                             "x_train, y_train and optionally x_test, y_test")
        missing = [k for k in ("x_train", "y_train") if k not in members]
        if missing:
            raise ValueError(f"{path}: no {' or '.join(missing)}; an npz dataset holds x_train, y_train "
                             "and optionally x_test, y_test")
        _check_memory(str(path), "its arrays, decompressed,", sum(i.file_size for i in members.values()))
        need = 0
        for key, info in members.items():
            need += _declared_bytes(path, archive, key, info)
        _check_memory(str(path), "its arrays and their float32 copies", need)
        try:
            arrays = {}
            for key, info in members.items():
                with archive.open(info) as f:
                    arrays[key] = np.lib.format.read_array(f, allow_pickle=False)
        except _READ_ERRORS as e:  # a damaged member (a wrong CRC, truncated data)
            raise ValueError(f"{path}: not a readable npz file of plain arrays ({key}: {_one_line(e)})") from e
    return arrays


def _declared_bytes(path: Path, archive: zipfile.ZipFile, key: str, info: zipfile.ZipInfo) -> int:
    """What member ``key`` takes in memory as its array plus a float32 copy, from its ``.npy`` header, which
    must account for exactly the member's decompressed size."""
    try:
        with archive.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f".npy format version {version[0]}.{version[1]} (expected 1.0 or 2.0)")
            offset = f.tell()
    except _READ_ERRORS as e:
        raise ValueError(f"{path}: not a readable npz file of plain arrays ({key}: {_one_line(e)})") from e
    if dtype.hasobject:
        raise ValueError(f"{path}: not a readable npz file of plain arrays ({key} holds Python objects, dtype "
                         f"{dtype}, which only pickle could read)")
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    if offset + nbytes != info.file_size:
        raise ValueError(f"{path}: {key} declares shape {shape} of {dtype} ({count} elements, "
                         f"{format_bytes(nbytes)}) but its member holds {info.file_size - offset} bytes of data")
    return nbytes + 4 * count


def _one_line(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())
