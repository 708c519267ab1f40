"""Loading files from disk without running code from them.

A pickle is a program: unpickling calls whatever callables the file names
(``os.system``, ``builtins.exec``, ...).  The engine reads two kinds of
pickles it did not write, and its own torch checkpoints:

* :func:`safe_pickle_load` reads a pickle with :class:`RestrictedUnpickler`,
  which admits only the globals that CIFAR-10/CIFAR-100 "python version"
  batches and the NATS-Bench ``*.pickle.pbz2`` files need (see
  :data:`ADMITTED`): numpy arrays, numpy scalars and dtypes,
  ``collections.OrderedDict`` and a few builtin constructors that protocol 2
  pickles use for sets, bytes and complex numbers.  Anything else raises
  :class:`UnsafePickleError` when the file names it, before it is called.
  Dicts, lists, tuples, sets, str, bytes, numbers, booleans and None need no
  global at all.
* :func:`save_checkpoint` / :func:`load_checkpoint` write and read a torch
  checkpoint with a JSON manifest beside it (``<file>.json``: what the
  checkpoint was made for, its size and sha256).  Loading checks the
  manifest's fingerprint and the file's size and sha256 before the bytes reach
  ``torch.load``, which then runs with ``weights_only=True`` (tensors, dicts,
  lists, tuples, str, numbers: no arbitrary globals).

Errors are one line and name the file.  The restricted unpickler stops code
from running, and no admitted global allocates more than the file holds: the
sized constructors are admitted only in the forms numpy's and Python's own
pickles use (``bytes()``/``bytearray()`` of bytes or of a latin-1 str, never of
an integer or anything with ``__index__``; ``_reconstruct(ndarray, (0,), b'b')``,
then the array's shape, dtype and data from its state, which numpy checks
against the data's size before allocating; ``numpy.ndarray`` only as that
argument), and every dtype must be one numpy makes itself (a pickle can set a
dtype's item size and flags: a void dtype "holding objects" would make numpy
read pointers from the file).  An object array's list must hold exactly one
object per element.  Decompression is not bounded here (a ``bz2`` file can
expand a lot; its callers read files of known kinds).
"""

from __future__ import annotations

import collections
import hashlib
import importlib
import io
import json
import math
import os
import pickle
import pickletools
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .files import UnsafeFileError, atomic_write, read_regular

__all__ = [
    "ADMITTED",
    "UnsafePickleError",
    "RestrictedUnpickler",
    "safe_pickle_load",
    "save_checkpoint",
    "load_checkpoint",
    "manifest_path",
    "checkpoint_manifests",
]


class UnsafePickleError(ValueError):
    """A pickle names a global the restricted unpickler does not admit (it was not called)."""


_LATIN1 = frozenset({"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "iso_8859_1", "l1"})


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol 2 pickles of ``bytes`` use it (``encode(str, 'latin1')``), nothing else."""
    if not isinstance(text, str) or not isinstance(encoding, str) or encoding.lower() not in _LATIN1:
        raise pickle.UnpicklingError(f"_codecs.encode is admitted only as encode(str, 'latin1'), "
                                     f"not with {encoding!r}")
    return text.encode("latin-1")


def _no_size(constructor: type) -> Callable[..., Any]:
    """``bytes``/``bytearray`` in the forms pickles use: no argument, a ``bytes``/``bytearray`` to copy, or a
    ``str`` with a latin-1 encoding (protocol 2).  Nothing else: ``bytes(n)`` allocates ``n`` bytes for any ``n``
    with ``__index__`` (a numpy integer, a 0-d integer array), before anything could check it."""
    def make(*args):
        ok = (not args or (len(args) == 1 and type(args[0]) in (bytes, bytearray))
              or (len(args) == 2 and type(args[0]) is str and type(args[1]) is str and args[1].lower() in _LATIN1))
        if not ok:
            given = ", ".join("ndarray" if type(a).__name__ == "_PendingArray" else type(a).__name__ for a in args)
            raise pickle.UnpicklingError(f"{constructor.__name__}({given}) "
                                         f"is not admitted (only {constructor.__name__}(), "
                                         f"{constructor.__name__}(bytes) and {constructor.__name__}(str, 'latin1'))")
        return constructor(*args)
    return make


#: the dtype kinds an array or scalar in an admitted pickle may have (``O``, objects, only as a whole dtype)
_DTYPE_KINDS = frozenset("biufcSUVMm")


def _check_dtype(dtype: Any, objects: bool = True) -> None:
    """Refuse a dtype unless it equals, flags and item size included, the one numpy makes from its description
    (recursively for records and subarrays; objects only as the plain ``O`` dtype).  A pickle can give a dtype
    any item size and flags (``dtype.__setstate__``): a void dtype flagged as holding object pointers (numpy
    would read pointers from the file's bytes), or an item size of 0 (10**12 elements in 0 bytes)."""
    import numpy

    if not isinstance(dtype, numpy.dtype):
        raise pickle.UnpicklingError(f"expected a numpy dtype, got {type(dtype).__name__}")
    try:
        if dtype.names is not None:
            for name in dtype.names:
                _check_dtype(dtype.fields[name][0], objects=False)
            canonical = numpy.dtype({"names": list(dtype.names), "itemsize": dtype.itemsize,
                                     "formats": [dtype.fields[n][0] for n in dtype.names],
                                     "offsets": [dtype.fields[n][1] for n in dtype.names]})
        elif dtype.subdtype is not None:
            _check_dtype(dtype.subdtype[0], objects=False)
            canonical = numpy.dtype(dtype.subdtype)
        elif dtype.kind in _DTYPE_KINDS or (objects and dtype.kind == "O"):
            canonical = numpy.dtype(dtype.str)
        else:
            canonical = None
    except (TypeError, ValueError, KeyError):
        canonical = None
    if (canonical is None or dtype.itemsize <= 0 or canonical != dtype or canonical.flags != dtype.flags
            or canonical.itemsize != dtype.itemsize):
        raise pickle.UnpicklingError(f"numpy dtype {_printable(repr(dtype), 60)} (item size {dtype.itemsize}, "
                                     f"flags {dtype.flags:#x}) is not one numpy makes; not admitted")


def _check_array_state(state: Any) -> None:
    """An ndarray's ``__setstate__`` argument: (version, shape, dtype, fortran, data) with a checked dtype, bytes
    for a plain dtype, a list of exactly one object per element for an object array (numpy reads past a
    shorter list)."""
    if not (isinstance(state, tuple) and len(state) == 5 and type(state[1]) is tuple
            and all(type(n) is int and n >= 0 for n in state[1])):
        raise pickle.UnpicklingError("a numpy array's state must be (version, shape, dtype, fortran, data) with "
                                     "a shape of non-negative ints")
    _check_dtype(state[2])
    data = state[4]
    if state[2].kind == "O":
        if type(data) is not list or len(data) != math.prod(state[1]):
            raise pickle.UnpicklingError(f"an object array of shape {state[1]} needs a list of "
                                         f"{math.prod(state[1])} objects")
    elif type(data) not in (bytes, str):
        raise pickle.UnpicklingError(f"a numpy array's data must be bytes, got {type(data).__name__}")


def _ndarray_class():
    import numpy

    class _PendingArray(numpy.ndarray):
        """What ``_reconstruct`` gives: an empty array whose ``__setstate__`` (the pickle's BUILD) checks the
        dtype and that the data is bytes before numpy sets them (numpy then checks that the shape matches the
        data's size before it allocates anything).  :func:`_plain` turns it into an ``ndarray`` after loading."""

        def __setstate__(self, state):
            _check_array_state(state)
            super().__setstate__(state)

    return _PendingArray


_PENDING: list[type] = []


def _pending_class() -> type:
    if not _PENDING:
        _PENDING.append(_ndarray_class())
    return _PENDING[0]


class _NdarrayName:
    """``numpy.ndarray`` as a pickle names it: only an argument of ``_reconstruct`` (calling ``ndarray(shape)``
    would allocate any size)."""

    def __call__(self, *args, **kwargs):
        raise pickle.UnpicklingError("numpy.ndarray(...) is not admitted (only as _reconstruct's argument)")

    def __repr__(self) -> str:
        return "numpy.ndarray"


_NDARRAY = _NdarrayName()


def _reconstruct(cls: Any, shape: Any, dtype: Any) -> Any:
    """``numpy._core.multiarray._reconstruct`` in the one form ndarray pickles use: ``(ndarray, (0,), b'b')``;
    the array's shape, dtype and data come from its ``__setstate__``."""
    if cls is not _NDARRAY or shape != (0,) or type(shape) is not tuple or dtype not in (b"b", "b"):
        raise pickle.UnpicklingError("numpy _reconstruct is admitted only as _reconstruct(ndarray, (0,), b'b')")
    return _pending_class()((0,), "b")


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> Any:
    """``numpy._core.numeric._frombuffer`` (protocol 5 arrays) with the dtype checked; numpy checks the size."""
    import numpy

    _check_dtype(dtype)
    if type(buf) not in (bytes, bytearray, pickle.PickleBuffer):
        raise pickle.UnpicklingError(f"numpy _frombuffer needs a bytes buffer, got {type(buf).__name__}")
    return numpy.frombuffer(buf, dtype).reshape(shape, order=order)


def _scalar(dtype: Any, *args: Any) -> Any:
    """``numpy._core.multiarray.scalar`` with the dtype checked and bytes data (numpy checks the size)."""
    _check_dtype(dtype)
    if len(args) != 1 or (dtype.kind != "O" and type(args[0]) not in (bytes, str)):
        raise pickle.UnpicklingError("numpy scalar is admitted only as scalar(dtype, bytes)")
    return _numpy("multiarray.scalar")()(dtype, *args)


def _plain(obj: Any) -> Any:
    """``obj`` with every array :func:`_reconstruct` made turned into a plain ``numpy.ndarray`` (in place in
    lists and dicts, rebuilt tuples; shared and cyclic references kept)."""
    if not _PENDING:
        return obj
    pending = _PENDING[0]
    done: dict[int, Any] = {}

    def walk(x: Any) -> Any:
        if isinstance(x, pending):
            return x.view(pending.__mro__[1])
        key = id(x)
        if key in done:
            return done[key]
        if isinstance(x, list):
            done[key] = x
            for i, v in enumerate(x):
                x[i] = walk(v)
        elif isinstance(x, dict):
            done[key] = x
            for k, v in x.items():
                x[k] = walk(v)
        elif type(x) is tuple:
            done[key] = x  # a cycle through a tuple alone cannot be built by a pickle
            new = tuple(walk(v) for v in x)
            if any(a is not b for a, b in zip(new, x)):
                done[key] = x = new
        return x

    return walk(obj)


def _numpy(name: str) -> Callable[[], Any]:
    """Resolve ``numpy._core.<name>`` (numpy 2) or ``numpy.core.<name>`` (numpy 1), whichever this numpy has."""
    module, attr = name.rsplit(".", 1)

    def resolve():
        for prefix in ("numpy._core.", "numpy.core."):
            try:
                return getattr(importlib.import_module(prefix + module), attr)
            except (ImportError, AttributeError):
                continue
        raise pickle.UnpicklingError(f"this numpy has no {name}")
    return resolve


def _const(obj: Any) -> Callable[[], Any]:
    return lambda: obj


def _np_attr(attr: str) -> Callable[[], Any]:
    def resolve():
        import numpy
        return getattr(numpy, attr)
    return resolve


#: ``(module, name)`` a pickle may name -> the object it gets (resolved on first use).  Numpy writes
#: ``numpy.core.*`` (1.x) or ``numpy._core.*`` (2.x); both map to this numpy's object.
ADMITTED: dict[tuple[str, str], Callable[[], Any]] = {
    # arrays: ndarray.__reduce__ (protocols 2-4) and __reduce_ex__(5) (in-band buffer)
    # (each in the one form numpy's pickles use, with the dtype checked: see _reconstruct, _frombuffer, _scalar)
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _const(_reconstruct) for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _const(_frombuffer) for core in ("core", "_core")},
    ("numpy", "ndarray"): _const(_NDARRAY),
    ("numpy", "dtype"): _np_attr("dtype"),
    # numpy scalars (np.float64(...) etc.; the NATS-Bench files hold some)
    **{(f"numpy.{core}.multiarray", "scalar"): _const(_scalar) for core in ("core", "_core")},
    # NATS-Bench's per-architecture files are OrderedDicts
    ("collections", "OrderedDict"): _const(collections.OrderedDict),
    # what protocol 2 pickles (Python 2 or 3) name for sets, bytes and complex numbers
    **{(b, "set"): _const(set) for b in ("builtins", "__builtin__")},
    **{(b, "frozenset"): _const(frozenset) for b in ("builtins", "__builtin__")},
    **{(b, "complex"): _const(complex) for b in ("builtins", "__builtin__")},
    **{(b, "bytes"): _const(_no_size(bytes)) for b in ("builtins", "__builtin__")},
    **{(b, "bytearray"): _const(_no_size(bytearray)) for b in ("builtins", "__builtin__")},
    ("_codecs", "encode"): _const(_latin1_encode),
}

#: what the admitted globals build, for the refusal message (callers may say it for their kind of file)
_HOLDS = "numpy arrays and scalars, dicts, lists, tuples, sets, str, bytes and numbers"


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` admits only :data:`ADMITTED`; ``what`` and ``path`` name the file in
    the refusal (``"<path>: refuses to load 'os.system' (<what> holds only ...)"``)."""

    def __init__(self, file: IO[bytes], *, path: str, what: str, holds: str = _HOLDS, encoding: str = "ASCII"):
        super().__init__(file, encoding=encoding)
        self._path, self._what, self._holds = path, what, holds

    def find_class(self, module: str, name: str) -> Any:
        resolve = ADMITTED.get((module, name))
        if resolve is None:
            raise UnsafePickleError(f"{self._path}: refuses to load {_printable(_py3(module) + '.' + name)!r} "
                                    f"({self._what} holds only {self._holds})")
        return resolve()

    def load(self) -> Any:
        return _plain(super().load())

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._path}: refuses a persistent id ({self._what} holds only {self._holds})")


def _py3(module: str) -> str:
    """The Python 3 name of a module a protocol 2 pickle names (``__builtin__`` -> ``builtins``)."""
    return {"__builtin__": "builtins", "copy_reg": "copyreg"}.get(module, module)


def _printable(s: str, limit: int = 120) -> str:
    s = re.sub(r"\s+", " ", s)
    return s if len(s) <= limit else s[:limit] + "..."


def _one_line(e: BaseException) -> str:
    return _printable(f"{type(e).__name__}: {e}", 200)


def safe_pickle_load(file: IO[bytes] | str | os.PathLike[str], *, path_for_errors: str | os.PathLike[str] | None = None,
                     what: str, holds: str = _HOLDS, encoding: str = "ASCII") -> Any:
    """Unpickle ``file`` (an open binary file, or a path) with :class:`RestrictedUnpickler`.

    ``what`` names the kind of file in errors (``"a CIFAR-10 batch"``);
    ``path_for_errors`` the file (default: ``file`` itself when it is a path,
    else its ``name``).  ``encoding`` as for :func:`pickle.load` (CIFAR
    batches, written by Python 2, are read with ``"bytes"``).  Raises
    :class:`UnsafePickleError` for a global that is not admitted and
    ``ValueError`` for any other failure (truncated or garbage data); both
    one line, naming the file.  Decompression errors of a wrapping file object
    (``bz2.open``) are reported the same way.
    """
    if isinstance(file, (str, os.PathLike)):
        where = str(path_for_errors if path_for_errors is not None else file)
        with open(file, "rb") as f:  # OSError (FileNotFoundError...) as it comes: it names the file
            return safe_pickle_load(f, path_for_errors=where, what=what, holds=holds, encoding=encoding)
    where = str(path_for_errors if path_for_errors is not None else getattr(file, "name", "<stream>"))
    try:
        return RestrictedUnpickler(file, path=where, what=what, holds=holds, encoding=encoding).load()
    except UnsafePickleError:
        raise
    except Exception as e:  # truncated, garbage, not a pickle, bad compression: all data errors here
        raise ValueError(f"{where}: not a readable pickle: expected {what} ({_one_line(e)})") from e


# -- torch checkpoints ----------------------------------------------------------------------------

_MANIFEST_FORMAT = "nas-engine checkpoint manifest"
_MANIFEST_VERSION = 1


def manifest_path(path: str | os.PathLike[str]) -> Path:
    """The manifest beside checkpoint ``path`` (``supernet.pt`` -> ``supernet.pt.json``)."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _tmp(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not supported here (Windows): the renames are still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _jsonable(fingerprint: Any) -> Any:
    """``fingerprint`` as it reads back from JSON (tuples become lists); refuses what JSON cannot hold."""
    try:
        return json.loads(json.dumps(fingerprint, allow_nan=False, sort_keys=True))
    except (TypeError, ValueError) as e:
        raise TypeError(f"a checkpoint fingerprint must be JSON data ({_one_line(e)})") from e


def save_checkpoint(path: str | os.PathLike[str], obj: Any, *, fingerprint: Any) -> None:
    """Write ``obj`` with ``torch.save`` to ``path`` and a manifest beside it (see :func:`manifest_path`).

    ``obj`` must load with ``torch.load(weights_only=True)`` (tensors, dicts,
    lists, tuples, str, numbers, None); that is checked before anything is
    written.  ``fingerprint`` (JSON data) records what the checkpoint is for.
    Crash-safe: the new file is written and fsynced beside the old one, the
    manifest (naming the new file's sha256) is replaced atomically, then the
    file is renamed into place; a crash between the last two steps is completed
    by the next :func:`load_checkpoint`.
    """
    import torch

    path = Path(path)
    fingerprint = _jsonable(fingerprint)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getvalue()
    # the globals the pickle names, read without deserialising the tensors (a full load would cost a second
    # copy of every tensor on each save)
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(payload))
    if unsafe:
        raise TypeError(f"{path}: the checkpoint holds objects that torch.load(weights_only=True) refuses "
                        f"({', '.join(unsafe)}); convert them to tensors, dicts, lists, str or numbers")
    manifest = {"format": _MANIFEST_FORMAT, "version": _MANIFEST_VERSION, "file": path.name,
                "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest(), "fingerprint": fingerprint}
    path.parent.mkdir(parents=True, exist_ok=True)
    # each file is made exclusively under a fresh name and renamed (a link planted as NAME.tmp is replaced)
    atomic_write(_tmp(path), payload)
    atomic_write(manifest_path(path), (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())  # commit
    os.replace(_tmp(path), path)
    _fsync_directory(path.parent)


def _differences(there: Any, here: Any, prefix: str = "") -> list[str]:
    """Key paths where two fingerprints differ, with both values."""
    if isinstance(there, dict) and isinstance(here, dict):
        out = []
        for k in sorted(set(there) | set(here), key=str):
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in there:
                out.append(f"{key}: absent there, {_printable(repr(here[k]), 60)} here")
            elif k not in here:
                out.append(f"{key}: {_printable(repr(there[k]), 60)} there, absent here")
            else:
                out.extend(_differences(there[k], here[k], key))
        return out
    if there == here:
        return []
    return [f"{prefix or 'fingerprint'}: {_printable(repr(there), 60)} there, {_printable(repr(here), 60)} here"]


def _trained_for(fingerprint: Any) -> str:
    if isinstance(fingerprint, dict):
        parts = [f"{k} {_printable(repr(fingerprint[k]), 60)}" for k in ("strategy", "arch", "seed")
                 if k in fingerprint]
        if parts:
            return "trained for " + ", ".join(parts)
    return "made for another fingerprint"


def _read_manifest(path: Path) -> dict[str, Any]:
    mpath = manifest_path(path)
    if not mpath.exists():
        raise ValueError(f"{path}: refuses to load a checkpoint without its manifest {mpath.name} (written by an "
                         f"older version, or not by nas-engine); delete {path.name} to start afresh")
    try:
        manifest = json.loads(read_regular(mpath, what="checkpoint manifest"))
    except UnsafeFileError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{mpath}: unreadable checkpoint manifest ({_one_line(e)}); "
                         f"delete it and {path.name} to start afresh") from e
    ok = (isinstance(manifest, dict) and manifest.get("format") == _MANIFEST_FORMAT
          and manifest.get("version") == _MANIFEST_VERSION and isinstance(manifest.get("size"), int)
          and isinstance(manifest.get("sha256"), str) and "fingerprint" in manifest)
    if not ok:
        raise ValueError(f"{mpath}: not a nas-engine checkpoint manifest (expected format {_MANIFEST_FORMAT!r} "
                         f"version {_MANIFEST_VERSION} with size, sha256 and fingerprint)")
    return manifest


def checkpoint_manifests(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The well-formed checkpoint manifests in ``directory`` whose checkpoint file exists (by file name)."""
    out = []
    for mpath in sorted(Path(directory).glob("*.json")):
        target = mpath.with_name(mpath.name[:-len(".json")])
        if not target.is_file():
            continue
        try:
            out.append(_read_manifest(target))
        except ValueError:
            continue  # not a manifest (another JSON file), or a damaged one: its loader reports it
    return out


def _matches(data: bytes, manifest: dict[str, Any]) -> bool:
    return len(data) == manifest["size"] and hashlib.sha256(data).hexdigest() == manifest["sha256"]


def _read_if_regular(path: Path, what: str, *, refuse: bool) -> bytes | None:
    """``path``'s bytes; None when it does not exist (or, without ``refuse``, is a link or not a regular file)."""
    try:
        return read_regular(path, follow=refuse, what=what)  # a pending .tmp is never read through a link
    except FileNotFoundError:
        return None
    except UnsafeFileError:
        if refuse:
            raise
        return None


def load_checkpoint(path: str | os.PathLike[str], *, fingerprint: Any, map_location: Any = None,
                    made_for: str = "this search", remedy: str = "use a new store directory") -> Any:
    """What :func:`save_checkpoint` wrote to ``path``, for a checkpoint made for ``fingerprint``.

    In this order, each failure a one-line ``ValueError`` naming the file: the
    manifest must exist and be well formed; its fingerprint must equal
    ``fingerprint`` (the message names the differing keys and what the
    checkpoint was trained for, says it is not for ``made_for`` and ends with
    ``remedy``); the file's size and sha256 must be the
    manifest's; only then are the (already read, checked) bytes given to
    ``torch.load(..., map_location=map_location, weights_only=True)``.
    ``FileNotFoundError`` when ``path`` does not exist.
    """
    import torch

    path = Path(path)
    manifest = _read_manifest(path) if path.exists() or manifest_path(path).exists() else None
    if manifest is None:
        raise FileNotFoundError(f"checkpoint not found: {path}")
    here = _jsonable(fingerprint)
    if manifest["fingerprint"] != here:
        diffs = _differences(manifest["fingerprint"], here)
        shown = "; ".join(diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")
        raise ValueError(f"{path}: holds a checkpoint {_trained_for(manifest['fingerprint'])}, not for "
                         f"{made_for} (differs in {shown}); {remedy}")
    data = _read_if_regular(path, "checkpoint", refuse=True)
    if data is None or not _matches(data, manifest):
        tmp = _tmp(path)  # a save interrupted after its commit point: finish it (never through a link)
        pending = _read_if_regular(tmp, "pending checkpoint", refuse=False)
        if pending is not None and _matches(pending, manifest):
            os.replace(tmp, path)
            _fsync_directory(path.parent)
            data = pending
    if data is None:
        raise ValueError(f"{path}: missing, but its manifest {manifest_path(path).name} exists; "
                         f"delete the manifest to start afresh")
    if not _matches(data, manifest):
        raise ValueError(f"{path}: corrupt or replaced checkpoint: {len(data)} bytes with sha256 "
                         f"{hashlib.sha256(data).hexdigest()[:16]}..., the manifest says {manifest['size']} bytes "
                         f"with sha256 {manifest['sha256'][:16]}...; refusing to load it")
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        foreign = [g for g in _pickle_globals(data) if not g.startswith(_TORCH_GLOBALS)]
        if foreign:
            what = repr(_printable(foreign[0]))
        else:
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            what = "it: " + _printable(next((ln for ln in lines if "Unsupported" in ln or "GLOBAL" in ln),
                                           lines[0] if lines else type(e).__name__), 160)
        raise UnsafePickleError(f"{path}: refuses to load {what} (a checkpoint holds only tensors, dicts, lists, "
                                f"tuples, str and numbers; torch.load(weights_only=True) refused it)") from e
    except Exception as e:
        raise ValueError(f"{path}: not a readable torch checkpoint ({_one_line(e)})") from e


#: globals of an ordinary torch checkpoint (not named as the reason of a refusal)
_TORCH_GLOBALS = ("torch.", "collections.OrderedDict", "builtins.set")


def _pickle_globals(data: bytes) -> list[str]:
    """The globals a torch checkpoint's pickle names (parsed with :mod:`pickletools`, nothing executed);
    for error messages only, so best effort."""
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    except (zipfile.BadZipFile, StopIteration, KeyError, OSError):
        pass  # the legacy format, or a plain pickle
    found, memo, strings, last = [], {}, [], None
    stream = io.BytesIO(data)
    try:
        while stream.tell() < len(data):  # the legacy format is several pickles in a row
            for op, arg, _ in pickletools.genops(stream):
                if op.name in ("MEMOIZE", "BINPUT", "LONG_BINPUT", "PUT"):
                    memo[len(memo) if op.name == "MEMOIZE" else arg] = last
                    continue
                last = memo.get(arg) if op.name in ("BINGET", "LONG_BINGET", "GET") else arg
                if isinstance(last, str):
                    strings.append(last)
                if op.name == "GLOBAL":
                    module, _, name = str(arg).partition(" ")
                    found.append(f"{_py3(module)}.{name}")
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{_py3(strings[-2])}.{strings[-1]}")
    except Exception:  # garbage after what parsed: report what was found
        pass
    return found
