"""An ``.npz`` file of arrays: the ``npz`` dataset plugin.

The file holds ``x_train``, ``y_train`` and optionally ``x_test``, ``y_test``,
read with ``allow_pickle=False`` and checked under the rules of
:meth:`~nas_engine.data.types.Dataset.from_arrays` (``_raw_from_arrays``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..registry import datasets
from .types import RawData, _raw_from_arrays

__all__ = ["npz"]


_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@datasets.register("npz")
def npz(root: Path | None = None, *, layout: str | None = None, num_classes: int | None = None,
        crop_padding: int = 0, flip: bool = False, resolution: int | None = None) -> RawData:
    """An ``.npz`` file (``root``; ``"npz:PATH"``) holding ``x_train``, ``y_train`` and optionally ``x_test``,
    ``y_test``, under :meth:`Dataset.from_arrays`'s rules; read with ``allow_pickle=False``."""
    if root is None:
        raise ValueError("dataset 'npz' needs the file: load_dataset('npz:PATH') or root=PATH "
                         "(CLI: --data npz:PATH)")
    path = Path(root)
    if not path.is_file():
        raise FileNotFoundError(f"npz file not found: {path} (expected an .npz with x_train, y_train and "
                                "optionally x_test, y_test)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path}: not a readable npz file of plain arrays ({_one_line(e)})") from e
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: a single array (.npy), not an .npz archive of x_train, y_train (x_test, y_test)")
    with loaded as archive:
        unknown = sorted(set(archive.files) - set(_NPZ_KEYS))
        if unknown:
            raise ValueError(f"{path}: unexpected arrays {', '.join(unknown)}; an npz dataset holds "
                             "x_train, y_train and optionally x_test, y_test")
        missing = [k for k in ("x_train", "y_train") if k not in archive.files]
        if missing:
            raise ValueError(f"{path}: no {' or '.join(missing)}; an npz dataset holds x_train, y_train "
                             "and optionally x_test, y_test")
        try:
            arrays = {k: archive[k] if k in archive.files else None for k in _NPZ_KEYS}
        except (ValueError, OSError, EOFError) as e:  # an object array (pickle), a damaged member
            raise ValueError(f"{path}: not a readable npz file of plain arrays ({_one_line(e)})") from e
    raw = _raw_from_arrays(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                           where=str(path), num_classes=num_classes, layout=layout, crop_padding=crop_padding,
                           flip=flip, resolution=resolution, source=str(path))
    return dataclasses.replace(raw, files=(path,))


def _one_line(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())
