"""Reliability, round two (issue 33), data loading: hostile ``.npz`` files, absurd labels, images of every mode and
of absurd shapes, and augmentation or size options that would blank or exhaust memory are refused before they cost
anything, in one line naming the value; images Pillow reads in 16-bit or with alpha decode to the right pixels."""

from __future__ import annotations

import io
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nas_engine.cli import main
from nas_engine.data import Dataset, DatasetSpec, RawData, clear_cache, content_tag, load_dataset
from nas_engine.data.imagefolder import imagefolder
from nas_engine.registry import datasets, register


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def _refused(call, match: str, error=ValueError) -> str:
    """Run ``call``, expect ``error`` matching ``match`` in one line; the message."""
    with pytest.raises(error, match=match) as info:
        call()
    text = str(info.value)
    assert "\n" not in text, text
    return text


@contextmanager
def _registered(name: str, factory):
    """``factory`` registered as the dataset ``name`` for the block."""
    register("dataset", name)(factory)
    try:
        yield
    finally:
        datasets._factories.pop(name)


def _arrays(n=40, side=8, classes=4):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 1, side, side), dtype=np.uint8), np.arange(n) % classes


def _npy(header_shape, dtype="|u1", data=b"") -> bytes:
    """An .npy file whose header declares ``header_shape`` of ``dtype``, followed by ``data``."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": dtype, "fortran_order": False, "shape": header_shape})
    return out.getvalue() + data


def _lying_npz(path: Path) -> Path:
    """x_train.npy declares 3e14 uint8 elements (300 TB) but holds 100 bytes; y_train is honest."""
    y = io.BytesIO()
    np.save(y, np.arange(4))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x_train.npy", _npy((300_000_000_000_000,), data=bytes(100)))
        z.writestr("y_train.npy", y.getvalue())
    return path


# --------------------------------------------------------------------------- #
# .npz files


def test_an_npz_header_declaring_3e14_elements_is_refused_before_allocating(tmp_path, monkeypatch):
    path = _lying_npz(tmp_path / "lie.npz")
    read = []
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: read.append(a))
    start = time.perf_counter()
    text = _refused(lambda: load_dataset(f"npz:{path}"),
                    r"x_train declares shape \(300000000000000,\) of uint8 \(300000000000000 elements, 300 TB\) "
                    r"but its member holds 100 bytes of data")
    assert text.startswith(str(path)) and not read and time.perf_counter() - start < 1
    # the same with an honest size in the zip directory but a header that declares more than the member holds
    with zipfile.ZipFile(tmp_path / "short.npz", "w") as z:
        z.writestr("x_train.npy", _npy((4, 1, 8, 8), data=bytes(10)))
        z.writestr("y_train.npy", _npy((4,), "<i8", bytes(32)))
    _refused(lambda: load_dataset(f"npz:{tmp_path / 'short.npz'}"), r"x_train declares shape \(4, 1, 8, 8\) of "
             r"uint8 \(256 elements, 256 bytes\) but its member holds 10 bytes")
    with zipfile.ZipFile(tmp_path / "v3.npz", "w") as z:  # a header version numpy's readers do not know
        z.writestr("x_train.npy", b"\x93NUMPY\x07\x00" + bytes(20))
        z.writestr("y_train.npy", _npy((4,), "<i8", bytes(32)))
    _refused(lambda: load_dataset(f"npz:{tmp_path / 'v3.npz'}"), r"not a readable npz file of plain arrays "
             r"\(x_train: ValueError: ")


def test_an_npz_that_decompresses_beyond_the_memory_limit_is_refused_before_reading(tmp_path, monkeypatch):
    # a 2 MB member of zeros compresses to a few kB; the limit is lowered to 1 MB so the test stays small
    # (the default, what this process may still allocate, refuses the 1.9 MB file expanding to 7.7 GB
    # the same way on a machine with less free memory than that)
    x = np.zeros((2000, 1, 32, 32), np.uint8)
    np.savez_compressed(tmp_path / "bomb.npz", x_train=x, y_train=np.arange(2000) % 2)
    assert (tmp_path / "bomb.npz").stat().st_size < 50_000
    monkeypatch.setenv("NAS_ENGINE_DATA_MAX_BYTES", "1000000")
    read = []
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: read.append(a))
    _refused(lambda: load_dataset(f"npz:{tmp_path / 'bomb.npz'}"),
             r"bomb\.npz: its arrays, decompressed, would take 2\.06 MB in memory, more than the limit of 1 MB "
             r"\(\$NAS_ENGINE_DATA_MAX_BYTES\)")
    # under the limit decompressed, over it with the float32 tensors the dataset becomes (4 bytes per pixel)
    np.savez_compressed(tmp_path / "big.npz", x_train=x[:300], y_train=np.arange(300) % 2)
    _refused(lambda: load_dataset(f"npz:{tmp_path / 'big.npz'}"),
             r"big\.npz: its arrays and their float32 copies would take 1\.54 MB in memory, more than the limit")
    assert not read
    monkeypatch.setenv("NAS_ENGINE_DATA_MAX_BYTES", "lots")
    _refused(lambda: load_dataset(f"npz:{tmp_path / 'big.npz'}"),
             r"NAS_ENGINE_DATA_MAX_BYTES must be a positive number of bytes, got 'lots'")
    monkeypatch.undo()
    ds = load_dataset(f"npz:{tmp_path / 'big.npz'}", n_val=10)  # the default limit reads it
    assert ds.n_train == 290 and float(ds.x_train.abs().max()) == 0


def test_npz_options_are_checked_before_the_file_is_read(tmp_path):
    missing = f"npz:{tmp_path / 'absent.npz'}"  # the option errors come first: nothing is read
    _refused(lambda: load_dataset(missing, num_classes=0), r"num_classes must be >= 2, got num_classes=0")
    _refused(lambda: load_dataset(missing, crop_padding=-1), r"crop_padding must be >= 0, got crop_padding=-1")
    _refused(lambda: load_dataset(missing, flip="yes"), r"flip must be True or False, got 'yes'")
    _refused(lambda: load_dataset(missing, layout="CHWN"), r"layout must be 'NCHW', 'NHWC' or None")
    _refused(lambda: load_dataset(missing, num_classes=2.5), r"num_classes must be an integer", TypeError)
    _refused(lambda: load_dataset(missing, download="no"), r"download must be True or False, got download='no'",
             TypeError)
    for option, value in (("n_train", 0), ("n_val", -1), ("resolution", 0), ("seed", -1)):
        _refused(lambda o=option, v=value: load_dataset(missing, **{o: v}),
                 rf"{option} must be >= \d, got {option}={value}")


# --------------------------------------------------------------------------- #
# Labels


def test_a_label_of_10_to_the_9_is_refused_before_anything_scales_with_it(tmp_path):
    x, y = _arrays()
    y[5] = 10**9
    start = time.perf_counter()
    _refused(lambda: Dataset.from_arrays(x, y), r"y holds the label 1000000000, which makes 1000000001 classes for "
             r"40 images; labels must be class indices 0\.\.K-1 with K at most the number of images")
    np.savez(tmp_path / "huge.npz", x_train=x, y_train=y)
    _refused(lambda: load_dataset(f"npz:{tmp_path / 'huge.npz'}"), r"huge\.npz: y holds the label 1000000000")
    _refused(lambda: Dataset.from_arrays(x, y, num_classes=10**9 + 1),
             r"1000000001 classes for the 40 images of the training pool")
    assert time.perf_counter() - start < 1


def test_test_labels_outside_the_training_classes_are_refused_unless_num_classes_says_so():
    x, y = _arrays()
    text = _refused(lambda: Dataset.from_arrays(x, y, x_test=x[:4], y_test=np.arange(10, 14)),
                    r"y_test holds the label 13, outside the training labels 0\.\.3 \(y\); pass num_classes=")
    assert text.startswith("Dataset.from_arrays('arrays'): ")
    ds = Dataset.from_arrays(x, y, x_test=x[:4], y_test=np.arange(10, 14), num_classes=14, n_val=8)
    assert ds.num_classes == 14 and ds.y_test.tolist() == [10, 11, 12, 13]
    _refused(lambda: Dataset.from_arrays(x, y, x_test=x[:4], y_test=np.arange(10, 14), num_classes=12),
             r"labels must lie in 0\.\.11 \(num_classes=12\), got the label 13")


def test_one_class_is_refused_everywhere(tmp_path):
    x, _ = _arrays()
    _refused(lambda: Dataset.from_arrays(x, np.zeros(40, int)), r"every training label \(y\) is 0: one class; "
             r"classification needs at least two")
    _refused(lambda: Dataset.from_arrays(x, np.full(40, 3), num_classes=4), r"every training label \(y\) is 3")
    _refused(lambda: Dataset.from_arrays(x, np.zeros(40, int), num_classes=1), r"num_classes must be >= 2")
    for name in ("a", "b"):
        (tmp_path / "one" / name).mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "one" / "a" / "0.png")
    (tmp_path / "one" / "b").rmdir()
    _refused(lambda: load_dataset(f"imagefolder:{tmp_path / 'one'}"),
             r"one: one class directory \(a\); classification needs at least two")

    def one_class(pool=False):
        y = np.arange(8) % 2
        return RawData(x=np.zeros((8, 1, 4, 4), np.uint8), y=y if pool else np.zeros(8, int), num_classes=2,
                       spec=DatasetSpec(255, 0, False), pool_indices=np.arange(0, 8, 2) if pool else None)

    with _registered("test-one-class", one_class):
        _refused(lambda: load_dataset("test-one-class"), r"dataset 'test-one-class': every training label "
                 r"\(the pool's labels\) is 0: one class")
        _refused(lambda: load_dataset("test-one-class", pool=True), r"the pool's labels\) is 0")  # rows 0, 2, 4, 6


def test_a_uint64_label_beyond_int64_is_reported_as_itself():
    x, _ = _arrays()
    y = (np.arange(40) % 4).astype(np.uint64)
    y[3] = 2**63 + 5
    text = _refused(lambda: Dataset.from_arrays(x, y), r"y holds the label 9223372036854775813, which makes "
                    r"9223372036854775814 classes")
    assert "-92" not in text
    _refused(lambda: Dataset.from_arrays(x, y, num_classes=4), r"got the label 9223372036854775813")

    with _registered("test-uint64", lambda: RawData(x=x, y=y, num_classes=4, spec=DatasetSpec(255, 0, False))):
        _refused(lambda: load_dataset("test-uint64"), r"labels must lie in 0\.\.3, got 0\.\.9223372036854775813")


# --------------------------------------------------------------------------- #
# Images


def _folder(root: Path, images: dict[str, Image.Image], fmt: str = "PNG") -> Path:
    """One class directory per entry (the class name is the key), holding its image as ``0.png``."""
    for name, im in images.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        im.save(root / name / "0.png", format=fmt)
    return root


def test_a_1_by_2000000_png_is_refused_from_its_header_in_bounded_time(tmp_path):
    root = _folder(tmp_path / "thin", {"a": Image.new("L", (1, 2_000_000), 90), "b": Image.new("L", (4, 4))})
    assert (root / "a" / "0.png").stat().st_size < 10_000
    start = time.perf_counter()
    _refused(lambda: load_dataset(f"imagefolder:{root}"),
             r"a/0\.png: a 1x2000000 image resized to 32 pixels on its shorter side would be 32x64000000 "
             r"\(2,048,000,000 pixels\), more than Pillow's Image\.MAX_IMAGE_PIXELS \(89,478,485\); crop it")
    assert time.perf_counter() - start < 1  # it took 37 s and 10.5 GB


def test_images_beyond_pillows_pixel_limit_or_the_memory_limit_are_refused_before_decoding(tmp_path, monkeypatch):
    root = _folder(tmp_path / "big", {"a": Image.new("RGB", (40, 40)), "b": Image.new("RGB", (4, 4))})
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1,600 pixels: Pillow warns; here it is an error
    _refused(lambda: imagefolder(root, resolution=4), r"a/0\.png: not a readable image \(DecompressionBombWarning: "
             r"Image size \(1600 pixels\) exceeds limit of 1000 pixels")
    monkeypatch.undo()
    monkeypatch.setenv("NAS_ENGINE_DATA_MAX_BYTES", "10000")
    _refused(lambda: imagefolder(root, resolution=32), r"big: 2 images of 3x32x32 would take 36.9 kB in memory, "
             r"more than the limit of 10 kB")


def _decoded(tmp_path: Path, im: Image.Image, fmt: str = "PNG") -> np.ndarray:
    """``im`` saved in class ``a`` (a black class ``b`` beside it) and read back at its own size: (H, W, 3)."""
    root = _folder(tmp_path / f"decode-{im.mode}-{fmt}", {"a": im, "b": Image.new("RGB", im.size)}, fmt)
    raw = imagefolder(root, resolution=im.size[0])
    return raw.x[raw.y == 0][0].transpose(1, 2, 0)


def test_a_16_bit_png_decodes_to_its_values_scaled_to_8_bits(tmp_path):
    values = np.array([0, 257, 1000, 32896, 128, 129, 385, 386, 12345, 23456, 54321, 65000, 65279, 65534, 65535,
                       40000], np.uint16).reshape(4, 4)
    im = Image.fromarray(values)
    assert im.mode == "I;16"
    im.save(tmp_path / "probe.png")
    assert Image.open(tmp_path / "probe.png").mode == "I;16"  # what Pillow reads back: 16-bit grey
    got = _decoded(tmp_path, im)
    expected = np.rint(values / 257).astype(np.uint8)  # v * 255 / 65535, rounded
    assert expected[:2].tolist() == [[0, 1, 4, 128], [0, 1, 1, 2]] and expected[3, 2:].tolist() == [255, 156]
    assert np.array_equal(got[..., 0], expected) and np.array_equal(got[..., 1], expected)
    assert np.array_equal(got[..., 2], expected)  # it used to be 255 (white) everywhere but at 0
    # mode "I" (32-bit integers) holding 16-bit values decodes the same; values beyond 16 bits are refused
    wide = Image.fromarray(values.reshape(4, 4).astype(np.int32))
    assert wide.mode == "I"
    assert np.array_equal(_decoded(tmp_path / "i", wide, "TIFF")[..., 2], expected)  # PNG cannot hold mode I
    _refused(lambda: _decoded(tmp_path / "w", Image.fromarray(np.full((4, 4), 70000, np.int32)), "TIFF"),
             r"0\.png: a mode 'I' image with values 70000\.\.70000, expected 16-bit values 0\.\.65535")


def test_palette_alpha_and_other_modes_decode_to_the_right_colours(tmp_path):
    p = Image.new("P", (4, 4), 0)
    p.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    p.paste(1, (0, 0, 2, 4))  # left half: index 1 (green), made transparent
    p.info["transparency"] = 1
    got = _decoded(tmp_path, p)
    assert got[0, 0].tolist() == [0, 0, 0] and got[0, 3].tolist() == [255, 0, 0]  # transparent -> black
    rgba = _decoded(tmp_path, Image.new("RGBA", (4, 4), (200, 100, 50, 128)))  # composited over black
    assert np.abs(rgba[0, 0].astype(int) - [100, 50, 25]).max() <= 1
    la = _decoded(tmp_path, Image.new("LA", (4, 4), (200, 0)))  # fully transparent grey
    assert la.max() == 0
    assert _decoded(tmp_path, Image.new("1", (4, 4), 1))[0, 0].tolist() == [255, 255, 255]
    assert _decoded(tmp_path, Image.new("L", (4, 4), 77))[0, 0].tolist() == [77, 77, 77]
    cmyk = _decoded(tmp_path, Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG")  # red in CMYK
    assert np.abs(cmyk[4, 4].astype(int) - [255, 0, 0]).max() <= 6
    # a float image (a TIFF named .png) is refused naming the mode
    _refused(lambda: _decoded(tmp_path, Image.new("F", (4, 4), 0.5), "TIFF"),
             r"0\.png: image mode 'F' is not supported \(expected 1, L, P, RGB, RGBA, LA, CMYK, YCbCr or 16-bit")


# --------------------------------------------------------------------------- #
# Augmentation, zero sizes, memory


def test_crop_padding_beyond_half_the_image_side_is_refused(tmp_path):
    x, y = _arrays()  # 8x8
    _refused(lambda: Dataset.from_arrays(x, y, crop_padding=100), r"crop_padding=100 is more than half the 8-pixel "
             r"image side \(at most 4\); a random crop would shift most of the image out of view")
    assert Dataset.from_arrays(x, y, crop_padding=4).crop_padding == 4
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    _refused(lambda: load_dataset(f"npz:{tmp_path / 'd.npz'}", crop_padding=5), r"d\.npz: crop_padding=5 is more")
    # imagefolder: against the resolution it decodes at, before the directory is even looked at
    _refused(lambda: load_dataset(f"imagefolder:{tmp_path / 'absent'}", resolution=8, crop_padding=100),
             r"imagefolder \(resolution 8\): crop_padding=100 is more than half the 8-pixel image side")

    with _registered("test-padding", lambda: RawData(x=x, y=y, num_classes=4, spec=DatasetSpec(255, 100, False))):
        _refused(lambda: load_dataset("test-padding"), r"dataset 'test-padding': crop_padding=100 is more than half")
    # a padding scaled down with the resolution stays within half the side (1 pixel at 8x8 is 0 at 1x1)
    assert Dataset.from_arrays(x, y, crop_padding=1, resolution=1).crop_padding == 0
    assert Dataset.from_arrays(x, y, crop_padding=1, resolution=2).crop_padding == 1


def test_zero_size_dimensions_and_empty_splits_are_one_line_errors():
    y = np.arange(4) % 2
    for shape in ((4, 3, 0, 0), (4, 1, 0, 5), (4, 0, 5, 3)):
        _refused(lambda s=shape: Dataset.from_arrays(np.zeros(s, np.uint8), y, layout="NCHW"),
                 rf"x has shape \({', '.join(map(str, shape))}\), a zero-size image dimension")
    _refused(lambda: Dataset.from_arrays(np.zeros((4, 0, 5), np.uint8), y), r"a zero-size image dimension")
    x = np.zeros((4, 1, 2, 2), np.uint8)
    _refused(lambda: Dataset.from_arrays(x, y, x_test=x[:0], y_test=y[:0]),
             r"x_test holds no images; give x_test=None and y_test=None for no test set")
    _refused(lambda: Dataset.from_arrays(x[:0], y[:0]), r"x holds no images")
    assert content_tag(np.zeros((0, 3))).startswith("sha256-")  # used to be a memoryview TypeError


def test_sizes_that_would_exhaust_memory_are_refused_with_the_numbers():
    start = time.perf_counter()
    x, y = _arrays()
    _refused(lambda: Dataset.from_arrays(x, y, resolution=100_000), r"dataset 'arrays': 40 images of 1x100000x100000 "
             r"as float32 would take 1.6 TB in memory, more than the limit of .* \(the memory this process may use: "
             r"MemAvailable, cgroup memory.max; set NAS_ENGINE_DATA_MAX_BYTES to change it\)")
    _refused(lambda: load_dataset("synthetic-cifar10", side=100_000, n_train=10, n_val=10, n_test=0),
             r"synthetic-cifar10: 20 images of 3x100000x100000 and labelling networks on 30000000000 inputs")
    assert time.perf_counter() - start < 2


# --------------------------------------------------------------------------- #
# The command line


def test_the_cli_refuses_hostile_data_in_one_line_with_exit_2(tmp_path, capsys):
    lie = _lying_npz(tmp_path / "lie.npz")
    x, y = _arrays()
    np.savez(tmp_path / "ok.npz", x_train=x, y_train=y)
    base = ["search", "--strategy", "random", "--space", "nb201", "--estimator", "tse-ema", "--epochs", "1",
            "--evaluations", "1", "--device", "cpu"]
    cases = [
        (["--data", f"npz:{lie}"], "x_train declares shape (300000000000000,) of uint8"),
        (["--data", f"npz:{tmp_path / 'ok.npz'}", "--data-arg", "crop_padding=100"], "crop_padding=100 is more than"),
        (["--data", f"npz:{tmp_path / 'ok.npz'}", "--data-arg", "num_classes=1"], "num_classes must be >= 2"),
        # refused before the data is read by the CLI's memory check (one minibatch at that size)
        (["--data", f"npz:{tmp_path / 'ok.npz'}", "--resolution", "100000"], "images at 100000x100000"),
        # refused by the parser (the CLI's range checks), before anything is read
        (["--data", f"npz:{tmp_path / 'ok.npz'}", "--n-train", "0"], "argument --n-train: expected an integer in 1.."),
        (["--data", f"imagefolder:{tmp_path}", "--resolution", "0"], "argument --resolution: expected an integer in 1"),
    ]
    for extra, fragment in cases:
        assert main(base + extra) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("nas-engine") and ": error: " in err and err.count("\n") == 1 and fragment in err, err
