"""Files from disk never run code: CIFAR-10 batches, NATS-Bench pickles and supernet checkpoints.

Each attack writes a pickle whose ``__reduce__`` would create a marker file
when unpickled (through ``builtins.exec`` or ``os.system``), puts it where the
engine reads a file of that kind, loads it through the public path and checks
that the marker does not exist and that the error is one line naming the file.
The payload itself is checked to work under a plain ``pickle.load``.
"""

from __future__ import annotations

import bz2
import collections
import hashlib
import io
import json
import os
import pickle
import pickletools
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from nas_engine import data
from nas_engine.benchmarks.nats import NATSBench
from nas_engine.context import Context
from nas_engine.data import load_dataset
from nas_engine.registry import create
from nas_engine.safeload import (
    UnsafePickleError,
    load_checkpoint,
    manifest_path,
    safe_pickle_load,
    save_checkpoint,
)
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.strategies.oneshot import CHECKPOINT

from .conftest import TINY, shared_path

SPACE = NB201Space()
NATS_DIR = ("nas-bench-201", "nats-tss-v1_0-3ffb9-simple")
ARCH0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


@pytest.fixture(autouse=True)
def _fresh_cache():
    data.clear_cache()
    yield
    data.clear_cache()


class ExecPayload:
    """Unpickling it runs ``builtins.exec``, which writes ``marker``."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('pwned')",)


class SystemPayload:
    """Unpickling it runs ``os.system`` (``posix.system``), which touches ``marker``."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    return msg


def test_the_payloads_do_run_under_a_plain_pickle_load(tmp_path):
    """The control: what the tests below refuse would have run."""
    for payload in (ExecPayload, SystemPayload):
        marker = tmp_path / f"{payload.__name__}.marker"
        pickle.loads(pickle.dumps({b"data": payload(marker)}))
        assert marker.exists()


# -- the restricted unpickler ----------------------------------------------------------------------
@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_admits_numpy_arrays_scalars_and_plain_containers(protocol):
    obj = {b"data": np.arange(12, dtype=np.uint8).reshape(3, 4), "f": np.zeros((2, 2), np.float32),
           "structured": np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")]), "objects": np.array([1, "a"], dtype=object),
           "scalars": [np.float64(1.5), np.int64(-3), np.bool_(True)], "od": collections.OrderedDict(a=1),
           "set": {1, 2}, "frozen": frozenset({"x"}), "bytes": b"\xff\x00", "empty": b"", "ba": bytearray(b"ab"),
           "c": 1 + 2j, "t": (1, None, True, 2.5, "s"), "big": 2**100}
    back = safe_pickle_load(io.BytesIO(pickle.dumps(obj, protocol=protocol)), path_for_errors="x", what="a test")
    assert back.keys() == obj.keys()
    for k in obj:
        if isinstance(obj[k], np.ndarray):
            assert back[k].dtype == obj[k].dtype and np.array_equal(back[k], obj[k])
        else:
            assert back[k] == obj[k] and type(back[k]) is type(obj[k])


def test_admits_the_numpy_1_module_names():
    """numpy 1.x writes ``numpy.core.multiarray``; numpy 2.x ``numpy._core.multiarray``: both load."""
    raw = pickle.dumps({"a": np.arange(3, dtype=np.int16), "s": np.float32(2.0)}, protocol=2)
    assert b"numpy._core.multiarray\n" in raw or b"numpy.core.multiarray\n" in raw
    old = raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    back = safe_pickle_load(io.BytesIO(old), path_for_errors="x", what="a test")
    assert back["a"].tolist() == [0, 1, 2] and back["s"] == np.float32(2.0)


@pytest.mark.parametrize("payload", [ExecPayload, SystemPayload])
def test_refuses_any_other_global_before_calling_it(tmp_path, payload):
    marker = tmp_path / "marker"
    raw = pickle.dumps([1, {"x": payload(marker)}])
    with pytest.raises(UnsafePickleError, match=r"^/the/file: refuses to load '(builtins\.exec|posix\.system)' "
                                                r"\(a test file holds only numpy arrays"):
        safe_pickle_load(io.BytesIO(raw), path_for_errors="/the/file", what="a test file")
    assert not marker.exists()


def test_refuses_codecs_encode_with_another_codec_and_sized_bytes():
    bad_codec = pickle.dumps(b"x", protocol=2).replace(b"latin1", b"rot_13")
    with pytest.raises(ValueError, match=r"^f: not a readable pickle: expected a test.*latin1"):
        safe_pickle_load(io.BytesIO(bad_codec), path_for_errors="f", what="a test")
    sized = b"\x80\x02c__builtin__\nbytearray\nJ\x00\x00\x00\x7f\x85R."  # bytearray(2**31 - 1 ... )
    with pytest.raises(ValueError, match=r"bytearray\(int\) is not admitted"):
        safe_pickle_load(io.BytesIO(sized), path_for_errors="f", what="a test")


@pytest.mark.parametrize("raw", [b"", b"\x80\x04garbage", pickle.dumps(list(range(100)))[:-30], b"not a pickle"])
def test_truncated_or_garbage_is_a_one_line_value_error(raw):
    with pytest.raises(ValueError, match=r"^/d/f: not a readable pickle: expected a thing \(") as e:
        safe_pickle_load(io.BytesIO(raw), path_for_errors="/d/f", what="a thing")
    assert not isinstance(e.value, UnsafePickleError)
    _one_line(e)


# -- CIFAR-10 batches ------------------------------------------------------------------------------
def _batch(n=10, data_dtype=np.uint8):
    return {b"batch_label": b"x", b"labels": [i % 10 for i in range(n)],
            b"data": np.random.default_rng(0).integers(0, 256, size=(n, 3072)).astype(data_dtype),
            b"filenames": [b"x.png"] * n}


def _cifar_dir(tmp_path: Path, payload: bytes) -> Path:
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    (d / "data_batch_1").write_bytes(payload)
    return d


@pytest.mark.parametrize("payload", [ExecPayload, SystemPayload])
def test_malicious_cifar_batch_is_refused_and_does_not_run(tmp_path, payload):
    marker = tmp_path / "marker"
    batch = {**_batch(), b"data": payload(marker)}
    d = _cifar_dir(tmp_path, pickle.dumps(batch, protocol=2))
    with pytest.raises(UnsafePickleError) as e:
        load_dataset("cifar10", root=tmp_path, n_val=0)
    assert _one_line(e).startswith(f"{d / 'data_batch_1'}: refuses to load '")
    assert "(a CIFAR-10 batch holds only numpy arrays, lists, dicts, str, bytes and numbers)" in str(e.value)
    assert not marker.exists()


def test_float_cifar_batch_is_refused_naming_the_dtype(tmp_path):
    d = _cifar_dir(tmp_path, pickle.dumps(_batch(data_dtype=np.float32)))
    with pytest.raises(ValueError, match=r"data_batch_1: b'data' has dtype float32, expected integers") as e:
        load_dataset("cifar10", root=tmp_path, n_val=0)
    assert str(d / "data_batch_1") in _one_line(e)


def test_out_of_range_pixels_and_float_labels_are_refused(tmp_path):
    wide = {**_batch(), b"data": np.full((10, 3072), 256, dtype=np.int64)}
    d = _cifar_dir(tmp_path, pickle.dumps(wide))
    with pytest.raises(ValueError, match=r"data_batch_1: pixel values outside 0\.\.255"):
        load_dataset("cifar10", root=tmp_path, n_val=0)
    (d / "data_batch_1").write_bytes(pickle.dumps({**_batch(), b"labels": [0.5] * 10}))
    data.clear_cache()
    with pytest.raises(ValueError, match=r"data_batch_1: b'labels' has dtype float64, expected integers"):
        load_dataset("cifar10", root=tmp_path, n_val=0)


def test_truncated_cifar_batch_is_named(tmp_path):
    d = _cifar_dir(tmp_path, pickle.dumps(_batch())[:5000])
    with pytest.raises(ValueError, match=r"not a readable pickle: expected a CIFAR-10 batch") as e:
        load_dataset("cifar10", root=tmp_path, n_val=0)
    assert _one_line(e).startswith(f"{d / 'data_batch_1'}: ")


class _Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 ``str`` (BINSTRING), as the original CIFAR-10 files have them."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _binstring(self, raw: bytes) -> None:
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)

    def save_bytes(self, obj):
        self._binstring(obj)
        self.memoize(obj)

    def save_str(self, obj):
        self._binstring(obj.encode("latin-1"))
        self.memoize(obj)

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def test_an_original_python2_numpy1_cifar_batch_loads(tmp_path):
    batch = _batch(20)
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(batch)
    raw = buf.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    assert b"numpy.core.multiarray\n_reconstruct" in raw
    assert not {op.name for op, _, _ in pickletools.genops(raw)} & {"BINUNICODE", "SHORT_BINUNICODE", "UNICODE"}
    _cifar_dir(tmp_path, raw)
    ds = load_dataset("cifar10", root=tmp_path, n_val=0)
    assert ds.n_train == 20 and ds.info["pool_size"] == 20


def test_the_shared_cifar10_subset_still_loads():
    root = shared_path("cifar-10-batches-py")
    ds = load_dataset("cifar10", root=root, n_train=100, n_val=10)
    assert ds.info["pool_size"] == 10_000 and ds.n_test == 10_000


# -- NATS-Bench files -------------------------------------------------------------------------------
def _nats_dir(tmp_path: Path, meta, arch0=None) -> Path:
    d = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    d.mkdir()
    (d / "meta.pickle.pbz2").write_bytes(bz2.compress(meta if isinstance(meta, bytes) else pickle.dumps(meta)))
    if arch0 is not None:
        (d / "000000.pickle.pbz2").write_bytes(bz2.compress(arch0))
    return d


def test_malicious_nats_meta_file_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "marker"
    d = _nats_dir(tmp_path, pickle.dumps({"meta_archs": [ARCH0], "x": ExecPayload(marker)}))
    with pytest.raises(UnsafePickleError) as e:
        NATSBench(d)
    assert _one_line(e).startswith(f"{d / 'meta.pickle.pbz2'}: refuses to load 'builtins.exec' "
                                   "(a NATS-Bench meta file holds only")
    assert not marker.exists()


def test_malicious_nats_arch_file_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "marker"
    arch = collections.OrderedDict({"200": {"arch_str": ARCH0, "all_results": SystemPayload(marker)}})
    d = _nats_dir(tmp_path, {"meta_archs": [ARCH0], "total_archs": 1}, pickle.dumps(arch))
    bench = NATSBench(d)  # the architecture files are read when first asked for
    with pytest.raises(UnsafePickleError) as e:
        bench.curve(ARCH0)
    assert _one_line(e).startswith(f"{d / '000000.pickle.pbz2'}: refuses to load 'posix.system' "
                                   "(a NATS-Bench architecture file holds only")
    assert not marker.exists()


def test_truncated_nats_files_are_named(tmp_path):
    d = _nats_dir(tmp_path, {"meta_archs": [ARCH0]}, b"")
    (d / "000000.pickle.pbz2").write_bytes(bz2.compress(pickle.dumps({"200": {}}))[:20])
    with pytest.raises(ValueError, match=r"000000\.pickle\.pbz2: not a readable pickle: expected a NATS-Bench "
                                         r"architecture file") as e:
        NATSBench(d).curve(ARCH0)
    _one_line(e)
    (d / "meta.pickle.pbz2").write_bytes(b"BZh9 garbage")
    with pytest.raises(ValueError, match=r"meta\.pickle\.pbz2: not a readable pickle: expected a NATS-Bench meta"):
        NATSBench(d)
    (d / "meta.pickle.pbz2").write_bytes(bz2.compress(pickle.dumps({"no": "archs"})))
    with pytest.raises(ValueError, match=r"meta\.pickle\.pbz2' is not a NATS-Bench meta file"):
        NATSBench(d)


def test_the_shared_nats_files_still_load():
    d = shared_path(*NATS_DIR)
    for f in sorted(d.glob("*.pickle.pbz2")):  # every file present, through the restricted unpickler
        with bz2.open(f, "rb") as fh:
            assert safe_pickle_load(fh, path_for_errors=f, what="a NATS-Bench file")
    bench = NATSBench(d)
    assert len(bench.archs()) >= 3 and 0.5 < bench.final_accuracy(bench.archs()[0]) < 1


# -- checkpoints -------------------------------------------------------------------------------------
FP = {"strategy": "randnas", "seed": 0, "params": {"lr": 0.025, "epochs": 1}}


def test_checkpoint_round_trip_and_manifest(tmp_path):
    path = tmp_path / "c.pt"
    state = {"w": torch.arange(4.0), "rng": {"state": {"state": 2**127 + 1, "inc": 3}, "name": "PCG64"},
             "losses": [1.5, 2.0], "n": 3, "t": (1, "a"), "none": None}
    save_checkpoint(path, state, fingerprint=FP)
    manifest = json.loads(manifest_path(path).read_text())
    assert manifest["fingerprint"] == FP and manifest["size"] == path.stat().st_size
    assert manifest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    back = load_checkpoint(path, fingerprint=FP, map_location="cpu")
    assert torch.equal(back["w"], state["w"]) and back["rng"] == state["rng"] and back["t"] == (1, "a")
    assert not list(tmp_path.glob("*.tmp"))


def test_checkpoint_refusals_are_one_line_and_name_the_file(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    with pytest.raises(FileNotFoundError, match="c.pt"):
        load_checkpoint(path, fingerprint=FP)
    save_checkpoint(path, {"w": torch.ones(3)}, fingerprint=FP)
    # another search
    other = {**FP, "params": {"lr": 0.05, "epochs": 1}}
    with pytest.raises(ValueError) as e:
        load_checkpoint(path, fingerprint=other)
    assert _one_line(e) == (f"{path}: holds a checkpoint trained for strategy 'randnas', seed 0, not for this search "
                            "(differs in params.lr: 0.025 there, 0.05 here); use a new store directory")
    # corrupt / truncated: refused before torch.load is reached
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    good = path.read_bytes()
    path.write_bytes(good[:-10])
    with pytest.raises(ValueError, match=r"c\.pt: corrupt or replaced checkpoint") as e:
        load_checkpoint(path, fingerprint=FP)
    _one_line(e)
    path.write_bytes(good)
    # no manifest: refused, not loaded
    manifest_path(path).unlink()
    with pytest.raises(ValueError, match=r"c\.pt: refuses to load a checkpoint without its manifest c\.pt\.json"):
        load_checkpoint(path, fingerprint=FP)
    manifest_path(path).write_text("{not json")
    with pytest.raises(ValueError, match=r"c\.pt\.json: unreadable checkpoint manifest"):
        load_checkpoint(path, fingerprint=FP)


def test_save_refuses_what_weights_only_cannot_load(tmp_path):
    from fractions import Fraction

    with pytest.raises(TypeError, match=r"weights_only=True\) refuses"):
        save_checkpoint(tmp_path / "c.pt", {"x": Fraction(1, 3)}, fingerprint=FP)
    assert not list(tmp_path.iterdir())


def test_a_save_interrupted_after_its_manifest_is_completed_on_load(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"epoch": 1}, fingerprint=FP)
    real_replace = os.replace

    def crash_on_the_checkpoint(src, dst):
        if Path(dst) == path:
            raise KeyboardInterrupt  # after the manifest was replaced, before the file
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_the_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"epoch": 2}, fingerprint=FP)
    monkeypatch.undo()
    assert load_checkpoint(path, fingerprint=FP) == {"epoch": 2}
    assert not list(tmp_path.glob("*.tmp"))


# -- the supernet checkpoint of a store ---------------------------------------------------------------
def _oneshot_setup(store: Path, **kw):
    strategy = create("strategy", "randnas", epochs=1, finetune_batches=5, **kw)
    ctx = Context(space=SPACE, data=load_dataset("digits"), protocol=TINY, seed=0, store_dir=str(store))
    strategy.setup(SPACE, ctx)
    return strategy


def _forge(store: Path, payload: bytes, *, checksum: bool) -> Path:
    """Replace the store's supernet checkpoint by ``payload``; with ``checksum`` forge the manifest to match."""
    path = store / CHECKPOINT
    path.write_bytes(payload)
    if checksum:
        mpath = manifest_path(path)
        manifest = json.loads(mpath.read_text())
        manifest.update(size=len(payload), sha256=hashlib.sha256(payload).hexdigest())
        mpath.write_text(json.dumps(manifest))
    return path


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4:UserWarning")
@pytest.mark.parametrize("how", ["torch.save", "plain pickle"])
def test_malicious_supernet_checkpoint_with_a_forged_manifest_does_not_run(tmp_path, how):
    store = tmp_path / "run"
    _oneshot_setup(store)
    marker = tmp_path / "marker"
    evil = {"model": ExecPayload(marker)}
    if how == "torch.save":
        buf = io.BytesIO()
        torch.save(evil, buf)
        payload = buf.getvalue()
    else:
        payload = pickle.dumps(evil)
    path = _forge(store, payload, checksum=True)  # the fingerprint matches: only weights_only stands in the way
    with pytest.raises(UnsafePickleError) as e:
        _oneshot_setup(store)
    assert _one_line(e).startswith(f"{path}: refuses to load 'builtins.exec' (a checkpoint holds only tensors")
    assert not marker.exists()


def test_malicious_supernet_checkpoint_with_a_wrong_checksum_is_refused_before_loading(tmp_path, monkeypatch):
    store = tmp_path / "run"
    _oneshot_setup(store)
    marker = tmp_path / "marker"
    path = _forge(store, pickle.dumps({"model": SystemPayload(marker)}), checksum=False)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    with pytest.raises(ValueError, match=r"corrupt or replaced checkpoint") as e:
        _oneshot_setup(store)
    assert _one_line(e).startswith(f"{path}: ")
    assert not marker.exists()


def test_a_store_of_another_supernet_names_the_difference(tmp_path):
    store = tmp_path / "run"
    _oneshot_setup(store)
    with pytest.raises(ValueError, match=r"supernet\.pt: holds a checkpoint trained for strategy 'randnas', seed 0, "
                                         r"not for this search \(differs in params\.lr: 0\.025 there, 0\.05 here; "
                                         r"protocol\.lr: 0\.025 there, 0\.05 here\); use a new store directory$"):
        _oneshot_setup(store, lr=0.05)


def test_a_supernet_checkpoint_without_manifest_is_refused(tmp_path):
    store = tmp_path / "run"
    _oneshot_setup(store)
    manifest_path(store / CHECKPOINT).unlink()
    with pytest.raises(ValueError, match=r"supernet\.pt: refuses to load a checkpoint without its manifest"):
        _oneshot_setup(store)
