"""Reliability, round two (issue 33), files and directories: the writer lock of final training, planted symlinks
and FIFOs, a full disk, a vanished write-ahead log, and pickles that ask for huge buffers through the restricted
unpickler's admitted globals."""

from __future__ import annotations

import io
import pickle
import tracemalloc

import numpy as np
import pytest

from nas_engine.safeload import safe_pickle_load

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1
    from numpy.core.multiarray import _reconstruct

HUGE = 1_460_000_000  # the 1.46 GB of the attack


class Reduce:
    """Pickles as ``func(*args)`` (with ``state`` given to the result's ``__setstate__`` when not None)."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _flagged_void() -> np.dtype:
    """A void dtype flagged as holding object pointers (what ``dtype.__setstate__`` lets a pickle make)."""
    dt = np.dtype("V8")
    dt.__setstate__((3, "|", None, None, None, 8, 1, 0x3F))
    assert dt.hasobject
    return dt


SIZED = {  # a buffer or array of a size the file does not hold, through an admitted global
    "bytearray(numpy.int64)": (Reduce(bytearray, (np.int64(HUGE),)), "bytearray(int64) is not admitted"),
    "bytes(numpy.int64)": (Reduce(bytes, (np.int64(HUGE),)), "bytes(int64) is not admitted"),
    "bytearray(0-d array)": (Reduce(bytearray, (np.array(HUGE),)), "bytearray(ndarray) is not admitted"),
    "bytes(str, utf-32)": (Reduce(bytes, ("a", "utf-32")), "bytes(str, str) is not admitted"),
    "ndarray(shape)": (Reduce(np.ndarray, ((HUGE,), "u1")), "is not admitted"),
    "_reconstruct(shape)": (Reduce(_reconstruct, (np.ndarray, (HUGE,), b"u1")),
                            "_reconstruct is admitted only as _reconstruct(ndarray, (0,), b'b')"),
    "array state larger than its data": (Reduce(_reconstruct, (np.ndarray, (0,), b"b"),
                                                (1, (HUGE,), np.dtype("u1"), False, b"ab")),
                                         "buffer size does not match array size"),
    "object array, short list": (Reduce(_reconstruct, (np.ndarray, (0,), b"b"),
                                        (1, (HUGE // 8,), np.dtype("O"), False, [1])),
                                 f"an object array of shape ({HUGE // 8},) needs a list of {HUGE // 8} objects"),
    "void dtype flagged as objects": (Reduce(_reconstruct, (np.ndarray, (0,), b"b"),
                                             (1, (1,), _flagged_void(), False, b"\x01" * 8)),
                                      "is not one numpy makes; not admitted"),
    "zero item size": (Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, (10**12,), np.dtype([]), False, b"")),
                       "item size 0"),
}


@pytest.mark.parametrize("protocol", [2, 5])
@pytest.mark.parametrize("name", list(SIZED))
def test_admitted_globals_never_allocate_what_the_file_does_not_hold(name, protocol):
    """``bytearray(numpy.int64(n))`` allocated 1.46 GB from a 239-byte file before the refusal; every sized
    constructor reachable through the admitted globals is refused (or checked by numpy against the data's size)
    before it allocates: the traced peak stays under 1 MB."""
    payload, message = SIZED[name]
    raw = pickle.dumps(payload, protocol=protocol)
    assert len(raw) < 400
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as err:
            safe_pickle_load(io.BytesIO(raw), path_for_errors="crafted.pkl", what="a CIFAR-10 batch")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"{name}: {peak} bytes allocated"
    line = str(err.value)
    assert line.startswith("crafted.pkl: ") and "\n" not in line and message in line


def test_what_numpy_pickles_still_loads():
    """The checked forms are the ones numpy writes: arrays (plain, structured, objects), scalars, protocols 2-5."""
    obj = {"u8": np.arange(6, dtype=np.uint8).reshape(2, 3), "rec": np.zeros(2, [("a", "<i4"), ("b", "<f8", (2,))]),
           "obj": np.array([1, "a", None], dtype=object), "s": np.float32(2.5), "str": np.array(["ab", "c"]),
           "b": bytearray(b"xy"), "e": b""}
    for protocol in (2, 3, 4, 5):
        back = safe_pickle_load(io.BytesIO(pickle.dumps(obj, protocol=protocol)), path_for_errors="x", what="a test")
        for k, v in obj.items():
            assert type(back[k]) is type(v)
            if isinstance(v, np.ndarray):
                assert back[k].dtype == v.dtype and back[k].shape == v.shape
                assert back[k].tolist() == v.tolist() if v.dtype.hasobject else back[k].tobytes() == v.tobytes()
            else:
                assert back[k] == v
