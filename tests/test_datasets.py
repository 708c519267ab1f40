"""Datasets as plugins: the registry, the file-format readers (on small files the tests write in each real
format), arrays and npz, the shared split/normalisation path, clear errors, and a third-party dataset found
through an entry point."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from nas_engine import Budget, Search, create, list_plugins
from nas_engine import data as data_module
from nas_engine.cli import main
from nas_engine.data import Dataset, DatasetSpec, RawData, clear_cache, load_dataset, loading
from nas_engine.data import cifar100 as cifar100_module
from nas_engine.registry import datasets, register
from nas_engine.testing import ConformanceError, check_dataset, check_plugin

from .conftest import TINY


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def _one_line(info) -> str:
    text = str(info.value)
    assert "\n" not in text, text
    return text


def _denormalise(x: torch.Tensor, ds: Dataset, max_value: float = 255.0) -> torch.Tensor:
    mean = torch.tensor(ds.mean).view(1, -1, 1, 1)
    std = torch.tensor(ds.std).view(1, -1, 1, 1)
    return torch.round((x * std + mean) * max_value).to(torch.int64)


def _balanced(y: torch.Tensor, num_classes: int) -> bool:
    counts = torch.bincount(y, minlength=num_classes)
    return int(counts.max() - counts.min()) <= 1


# --------------------------------------------------------------------------- #
# Writers of small files in the real formats


def _cifar100_split(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    fine = [i % 100 for i in range(n)]
    return {b"filenames": [f"img{i}.png".encode() for i in range(n)], b"batch_label": b"training batch 1 of 1",
            b"fine_labels": fine, b"coarse_labels": [f // 5 for f in fine],
            b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)}


def write_cifar100(parent: Path, n_train: int = 300, n_test: int = 100, *, meta: bool = True,
                   test: bool = True) -> Path:
    """A ``cifar-100-python`` directory as the official archive has it (pickled dicts with bytes keys)."""
    d = parent / "cifar-100-python"
    d.mkdir(parents=True)
    files = {"train": _cifar100_split(n_train, 1)}
    if test:
        files["test"] = _cifar100_split(n_test, 2)
    if meta:
        files["meta"] = {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
                         b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]}
    for name, content in files.items():
        with open(d / name, "wb") as f:
            pickle.dump(content, f)
    return d


def _imagenet16_labels(batch: int, n_in: int, outside: tuple[int, ...]) -> list[int]:
    inside = [(batch * n_in + i) % 120 + 1 for i in range(n_in)]
    return inside + list(outside)


def write_imagenet16(parent: Path, *, n_in: int = 24, val: bool = True, batches: int = 10) -> tuple[Path, dict]:
    """An ``ImageNet16`` directory: ``train_data_batch_1..10`` and ``val_data``, pickled dicts with str keys
    'data' ((N, 768) uint8) and 'labels' (1-based ints in 1..1000), plus 'mean' in training batches."""
    d = parent / "ImageNet16"
    d.mkdir(parents=True)
    written = {}
    for b in range(1, batches + 1):
        labels = _imagenet16_labels(b, n_in, outside=(121, 500, 1000, 999, 121, 200))
        rng = np.random.default_rng(b)
        written[f"train_data_batch_{b}"] = {"data": rng.integers(0, 256, size=(len(labels), 768), dtype=np.uint8),
                                            "labels": labels, "mean": np.zeros(768)}
    if val:
        labels = [i % 120 + 1 for i in range(120)] + [121 + i for i in range(30)]
        written["val_data"] = {"data": np.random.default_rng(0).integers(0, 256, size=(150, 768), dtype=np.uint8),
                               "labels": labels}
    for name, content in written.items():
        with open(d / name, "wb") as f:
            pickle.dump(content, f, protocol=2)
    return d, written


COLOURS = {"ant": (250, 10, 10), "bee": (10, 250, 10), "cat": (10, 10, 250)}


def write_imagefolder(root: Path, per_class: int = 4, classes=("cat", "ant", "bee")) -> Path:
    """Class directories of tiny PNG and JPEG files of several sizes and modes, plus files to skip."""
    from PIL import Image

    sizes = [(20, 12), (12, 20), (16, 16), (9, 9), (40, 30)]
    modes = ["RGB", "RGBA", "L", "P", "RGB"]
    for name in classes:
        d = root / name
        d.mkdir(parents=True)
        for i in range(per_class):
            colour = COLOURS.get(name, (100, 100, 100))
            im = Image.new("RGB", sizes[i % len(sizes)], colour)
            im.putpixel((0, 0), (i * 40 % 256, 7, 9))  # images of a class differ
            mode = modes[i % len(modes)]
            im = im.convert(mode) if mode != "P" else im.convert("P", palette=Image.Palette.ADAPTIVE)
            if i % 2 and mode in ("RGB", "L"):
                im.save(d / f"img{i}.jpg", quality=95)
            else:
                im.save(d / f"img{i}.png")
        (d / "notes.txt").write_text("not an image")
        (d / ".hidden.png").write_bytes(b"not read")
    return root


# --------------------------------------------------------------------------- #
# The registry


def test_the_dataset_registry_lists_every_builtin_and_creates_datasets():
    names = list_plugins("dataset")
    assert {"digits", "cifar10", "synthetic-cifar10", "cifar100", "imagenet16-120", "imagefolder", "npz"} <= set(names)
    assert list_plugins()["dataset"] == names and data_module.available_datasets() == names
    ds = create("dataset", "digits", n_train=100, n_val=20, seed=1)  # create() loads through load_dataset
    assert isinstance(ds, Dataset) and ds.fingerprint() == "digits:8px:pool1438:train100:val20:test359:seed1"
    assert ds is load_dataset("DIGITS", n_train=100, n_val=20, seed=1)  # case-insensitive, cached


def test_nas_engine_list_shows_datasets(capsys):
    assert main(["list", "--json"]) == 0
    assert "imagenet16-120" in json.loads(capsys.readouterr().out)["dataset"]
    assert main(["list"]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert {"cifar100", "digits", "npz"} <= set(lines["dataset"].split(", "))


def _file_options(name: str, tmp_path: Path) -> dict | None:
    """Small files for each built-in that reads files, and the options that load them."""
    if name == "cifar10":
        d = tmp_path / "cifar-10-batches-py"
        d.mkdir()
        for i, n in ((1, 40), (2, 40)):
            batch = {b"labels": [j % 10 for j in range(n)],
                     b"data": np.random.default_rng(i).integers(0, 256, size=(n, 3072), dtype=np.uint8)}
            (d / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
        return {"root": tmp_path, "n_val": 20}
    if name == "cifar100":
        write_cifar100(tmp_path)
        return {"root": tmp_path, "n_val": 100}
    if name == "imagenet16-120":
        write_imagenet16(tmp_path)
        return {"root": tmp_path, "n_val": 120}
    if name == "imagefolder":
        write_imagefolder(tmp_path / "folder")
        return {"root": tmp_path / "folder", "n_val": 3, "resolution": 8}
    if name == "npz":
        rng = np.random.default_rng(0)
        np.savez(tmp_path / "d.npz", x_train=rng.integers(0, 256, (60, 8, 8, 3), dtype=np.uint8),
                 y_train=np.arange(60) % 4)
        return {"root": tmp_path / "d.npz", "n_val": 8}
    return None


@pytest.mark.parametrize("name", list_plugins("dataset"))
def test_every_registered_dataset_conforms(name, tmp_path):
    options = _file_options(name, tmp_path)
    if options is not None:
        check_dataset(name, **options)
    elif "root" in data_module._parameters(datasets.get(name))[0]:
        pytest.skip(f"{name!r} reads files this test does not know how to write")
    else:  # needs no files: its fast configuration
        check_plugin("dataset", name)


def test_the_conformance_check_catches_a_plugin_that_ignores_its_seed():
    calls = []

    @register("dataset", "test-seedless")
    def seedless(n_train=None, n_val=None, resolution=None, seed=0):
        calls.append(seed)
        ds = load_dataset("digits", n_train=n_train, n_val=n_val, resolution=resolution)  # seed dropped
        return Dataset(**{**{f: getattr(ds, f) for f in ds.__dataclass_fields__}, "name": "test-seedless"})

    try:
        with pytest.raises(ConformanceError, match="seed=1 gave the fingerprint of seed=0"):
            check_dataset("test-seedless", n_train=50, n_val=10)
        assert 1 in calls
    finally:
        datasets._factories.pop("test-seedless")


# --------------------------------------------------------------------------- #
# CIFAR-100


def test_cifar100_fine_labels_splits_and_exact_pixels(tmp_path):
    d = write_cifar100(tmp_path)
    ds = load_dataset("cifar100", root=tmp_path, n_train=100, n_val=100, seed=3)
    assert (ds.num_classes, ds.in_channels, ds.resolution, ds.crop_padding, ds.flip) == (100, 3, 32, 4, True)
    assert (ds.n_train, ds.n_val, ds.n_test, ds.info["pool_size"]) == (100, 100, 100, 300)
    assert _balanced(ds.y_train, 100) and _balanced(ds.y_val, 100)  # one image per class each
    assert not set(ds.info["train_indices"]) & set(ds.info["val_indices"])
    assert ds.info["classes"][:2] == ("fine0", "fine1") and len(ds.info["classes"]) == 100
    assert ds.fingerprint() == "cifar100:32px:pool300:train100:val100:test100:seed3"
    train = pickle.loads((d / "train").read_bytes())
    idx = ds.info["val_indices"]
    expected = torch.from_numpy(train[b"data"][idx].reshape(-1, 3, 32, 32)).long()
    assert torch.equal(_denormalise(ds.x_val, ds), expected)  # R, G, B planes in turn, like CIFAR-10
    assert ds.y_val.tolist() == [train[b"fine_labels"][i] for i in idx]
    test = pickle.loads((d / "test").read_bytes())
    assert ds.y_test.tolist() == test[b"fine_labels"]
    # the directory itself is accepted as root; the same seed gives the same split, another seed another
    assert np.array_equal(load_dataset("cifar100", root=d, n_train=100, n_val=100, seed=3).info["val_indices"], idx)
    assert not np.array_equal(load_dataset("cifar100", root=d, n_train=100, n_val=100, seed=4).info["val_indices"],
                              idx)


def test_cifar100_coarse_labels_are_another_dataset(tmp_path):
    write_cifar100(tmp_path)
    fine = load_dataset("cifar100", root=tmp_path, n_val=40)
    coarse = load_dataset("cifar100", root=tmp_path, n_val=40, labels="coarse")
    assert coarse.num_classes == 20 and coarse.info["classes"][0] == "coarse0"
    assert coarse.fingerprint().startswith("cifar100:coarse:32px:") and fine.fingerprint() != coarse.fingerprint()
    assert _balanced(coarse.y_val, 20) and torch.equal(torch.bincount(coarse.y_val), torch.full((20,), 2))
    assert coarse.y_test.tolist() == [(i % 100) // 5 for i in range(100)]
    with pytest.raises(ValueError, match="labels must be 'fine' .* or 'coarse' .*, got 'medium'"):
        load_dataset("cifar100", root=tmp_path, labels="medium")


def test_cifar100_without_test_file_and_resolution(tmp_path):
    write_cifar100(tmp_path, test=False)
    ds = load_dataset("cifar100", root=tmp_path, n_train=100, n_val=0, resolution=16)
    assert ds.x_test is None and ds.x_train.shape == (100, 3, 16, 16) and ds.crop_padding == 2


@pytest.mark.parametrize("what, match", [
    ("no-dir", "CIFAR-100 data not found in .*cifar-100-python \\(the directory does not exist\\)"),
    ("no-meta", "CIFAR-100 data not found in .*cifar-100-python \\(no meta file\\)"),
    ("no-train", "CIFAR-100 data not found in .*cifar-100-python \\(no train file\\)"),
])
def test_cifar100_missing_files_are_named(tmp_path, what, match):
    if what == "no-meta":
        write_cifar100(tmp_path, meta=False)
    elif what == "no-train":
        (write_cifar100(tmp_path) / "train").unlink()
    with pytest.raises(FileNotFoundError, match=match) as info:
        load_dataset("cifar100", root=tmp_path)
    assert "download=True" in _one_line(info) and "train and meta" in str(info.value)


@pytest.mark.parametrize("file, content, match", [
    ("train", {b"data": np.zeros((3, 3072), np.float32), b"fine_labels": [0, 1, 2], b"coarse_labels": [0, 0, 0]},
     r"train: b'data' has dtype float32, expected integers"),
    ("train", {b"data": np.zeros((3, 1024), np.uint8), b"fine_labels": [0, 1, 2], b"coarse_labels": [0, 0, 0]},
     r"train: expected data of shape \(N, 3072\) and N labels, got \(3, 1024\)"),
    ("train", {b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 100], b"coarse_labels": [0, 0]},
     r"train: labels \(b'fine_labels'\) outside 0\.\.99 \(min 0, max 100\)"),
    ("train", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]},
     r"train is not a CIFAR-100 python split \(no b'data'/b'fine_labels'"),
    ("test", [1, 2, 3], r"test is not a CIFAR-100 split \(a pickled dict\), it holds a list"),
    ("meta", {b"fine_label_names": [b"a"] * 99}, r"meta: expected b'fine_label_names' to list 100 class names, "
                                                  r"got a list of 99"),
])
def test_cifar100_malformed_files_are_named(tmp_path, file, content, match):
    d = write_cifar100(tmp_path)
    (d / file).write_bytes(pickle.dumps(content))
    with pytest.raises(ValueError, match=match) as info:
        load_dataset("cifar100", root=tmp_path)
    assert _one_line(info).startswith(str(d / file))


def test_cifar100_pickles_go_through_the_restricted_unpickler(tmp_path):
    d = write_cifar100(tmp_path)
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (d / "meta").write_bytes(pickle.dumps({b"fine_label_names": Evil()}))
    with pytest.raises(ValueError, match="refuses to load 'pathlib.*' .*CIFAR-100's meta file"):
        load_dataset("cifar100", root=tmp_path)
    assert not marker.exists()


def test_cifar100_download_extracts_a_verified_archive(tmp_path, monkeypatch):
    source = write_cifar100(tmp_path / "src")
    archive = tmp_path / "fake.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("train", "test", "meta"):
            payload = (source / name).read_bytes()
            member = tarfile.TarInfo(f"cifar-100-python/{name}")
            member.size = len(payload)
            tar.addfile(member, io.BytesIO(payload))
    fetched = []
    monkeypatch.setattr(loading, "_fetch", lambda url, dest: (fetched.append(url),
                                                              dest.write_bytes(archive.read_bytes())))
    monkeypatch.setattr(cifar100_module, "CIFAR100_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    root = tmp_path / "root"
    ds = load_dataset("cifar100", root=root, download=True, n_val=100)
    assert fetched == [cifar100_module.CIFAR100_URL] and (ds.n_train, ds.n_test) == (200, 100)
    assert sorted(p.name for p in root.iterdir()) == ["cifar-100-python"]  # the archive was removed
    monkeypatch.setattr(cifar100_module, "CIFAR100_MD5", "0" * 32)
    with pytest.raises(RuntimeError, match="md5 mismatch"):
        load_dataset("cifar100", root=tmp_path / "other", download=True)


def test_a_changed_file_is_read_again(tmp_path):
    d = write_cifar100(tmp_path)
    first = load_dataset("cifar100", root=tmp_path, n_val=0)
    assert load_dataset("cifar100", root=tmp_path, n_val=0) is first  # cached while the files are unchanged
    split = _cifar100_split(150, 9)
    (d / "train").write_bytes(pickle.dumps(split))
    second = load_dataset("cifar100", root=tmp_path, n_val=0)
    assert second is not first and second.n_train == 150


# --------------------------------------------------------------------------- #
# ImageNet16-120


def test_imagenet16_keeps_labels_1_to_120_as_0_to_119_in_file_order(tmp_path):
    d, written = write_imagenet16(tmp_path)
    ds = load_dataset("imagenet16-120", root=tmp_path, n_val=0)
    assert (ds.num_classes, ds.in_channels, ds.resolution, ds.crop_padding, ds.flip) == (120, 3, 16, 2, True)
    assert ds.info["pool_size"] == 240 and ds.n_train == 240 and ds.n_test == 120  # 10 x 24 kept of 10 x 30
    # the kept images, batches 1..10 in order, each row's planes R, G, B, labels L - 1
    rows, labels = [], []
    for b in range(1, 11):
        batch = written[f"train_data_batch_{b}"]
        keep = np.asarray(batch["labels"]) <= 120
        rows.append(batch["data"][keep])
        labels += [lab - 1 for lab in batch["labels"] if lab <= 120]
    expected = torch.from_numpy(np.concatenate(rows).reshape(-1, 3, 16, 16)).long()
    assert torch.equal(_denormalise(ds.x_train, ds), expected) and ds.y_train.tolist() == labels
    assert sorted(set(labels)) == list(range(120)) and torch.equal(torch.bincount(ds.y_train), torch.full((120,), 2))
    val = written["val_data"]
    assert ds.y_test.tolist() == [lab - 1 for lab in val["labels"] if lab <= 120]
    assert torch.equal(_denormalise(ds.x_test, ds), torch.from_numpy(val["data"][:120].reshape(-1, 3, 16, 16)).long())
    assert ds.fingerprint() == "imagenet16-120:16px:pool240:train240:val0:test120:seed0"


def test_imagenet16_splits_are_balanced_and_seeded(tmp_path):
    write_imagenet16(tmp_path)
    a = load_dataset("imagenet16-120", root=tmp_path / "ImageNet16", n_train=120, n_val=120, seed=1)
    assert _balanced(a.y_train, 120) and _balanced(a.y_val, 120)
    b = load_dataset("imagenet16-120", root=tmp_path, n_train=120, n_val=120, seed=2)
    assert not np.array_equal(a.info["val_indices"], b.info["val_indices"])
    clear_cache()
    again = load_dataset("imagenet16-120", root=tmp_path, n_train=120, n_val=120, seed=1)
    assert torch.equal(again.x_val, a.x_val) and again.fingerprint() == a.fingerprint()
    up = load_dataset("imagenet16-120", root=tmp_path, n_val=0, resolution=32)
    assert up.x_train.shape[1:] == (3, 32, 32) and up.crop_padding == 4


def test_imagenet16_accepts_bytes_keys_and_no_val_data(tmp_path):
    d, written = write_imagenet16(tmp_path, val=False)
    batch = written["train_data_batch_3"]
    (d / "train_data_batch_3").write_bytes(pickle.dumps({b"data": batch["data"], b"labels": batch["labels"]}))
    ds = load_dataset("imagenet16-120", root=tmp_path, n_val=0)
    assert ds.n_train == 240 and ds.x_test is None


def test_imagenet16_missing_and_malformed_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"ImageNet16 data not found in .*ImageNet16 \(the directory does "
                                                r"not exist\).*train_data_batch_1 \.\.\. train_data_batch_10") as i:
        load_dataset("imagenet16-120", root=tmp_path)
    _one_line(i)
    d, written = write_imagenet16(tmp_path)
    (d / "train_data_batch_7").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing: train_data_batch_7\)"):
        load_dataset("imagenet16-120", root=tmp_path)
    cases = [
        ({"data": written["val_data"]["data"], "labels": [0] + written["val_data"]["labels"][1:]},
         r"val_data: labels \('labels'\) outside 1\.\.1000 \(min 0, max 150\)"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [1, 2]},
         r"val_data: expected data of shape \(N, 768\) and N labels, got \(2, 3072\)"),
        ({"data": np.zeros((2, 768), np.int16) - 1, "labels": [1, 2]}, r"val_data: pixel values outside 0\.\.255"),
        ({"images": np.zeros((2, 768), np.uint8), "labels": [1, 2]},
         r"val_data is not an ImageNet16 batch \(no 'data' entry"),
    ]
    (d / "train_data_batch_7").write_bytes(pickle.dumps(written["train_data_batch_7"]))
    for content, match in cases:
        (d / "val_data").write_bytes(pickle.dumps(content))
        with pytest.raises(ValueError, match=match) as info:
            load_dataset("imagenet16-120", root=tmp_path)
        assert _one_line(info).startswith(str(d / "val_data"))


# --------------------------------------------------------------------------- #
# Image folders


def test_imagefolder_decodes_png_and_jpeg_by_sorted_class_names(tmp_path):
    root = write_imagefolder(tmp_path / "pics")
    ds = load_dataset(f"imagefolder:{root}", n_val=3, resolution=8)
    assert ds.info["classes"] == ("ant", "bee", "cat") and ds.num_classes == 3
    assert (ds.n_train, ds.n_val, ds.x_test) == (9, 3, None) and ds.x_train.shape == (9, 3, 8, 8)
    assert _balanced(ds.y_val, 3) and (ds.crop_padding, ds.flip) == (0, False)
    fp = ds.fingerprint()
    assert fp.startswith("imagefolder:sha256-") and fp.endswith(":8px:pool12:train9:val3:test0:seed0")
    # every image of a class has its colour away from the corner pixel (JPEG: within a few levels; L mode: grey)
    pixels = _denormalise(torch.cat([ds.x_train, ds.x_val]), ds)[:, :, 4, 4]
    labels = torch.cat([ds.y_train, ds.y_val])
    for k, name in enumerate(ds.info["classes"]):
        colour = torch.tensor(COLOURS[name])
        grey = round(0.299 * colour[0].item() + 0.587 * colour[1].item() + 0.114 * colour[2].item())
        for p in pixels[labels == k]:
            assert (p - colour).abs().max() <= 6 or (p - grey).abs().max() <= 6, (name, p)
    assert load_dataset("imagefolder", root=root, n_val=3, resolution=8) is ds  # NAME:PATH is root=PATH; cached


def test_imagefolder_default_resolution_train_test_layout_and_options(tmp_path):
    write_imagefolder(tmp_path / "split" / "train")
    write_imagefolder(tmp_path / "split" / "test", per_class=2, classes=("bee", "cat"))
    ds = load_dataset("imagefolder", root=tmp_path / "split", n_val=0, crop_padding=4, flip=True)
    assert ds.x_train.shape == (12, 3, 32, 32) and ds.n_test == 4 and ds.info["classes"] == ("ant", "bee", "cat")
    assert ds.y_test.tolist() == [1, 1, 2, 2] and (ds.crop_padding, ds.flip) == (4, True)
    (tmp_path / "split" / "test" / "dog").mkdir()
    (tmp_path / "split" / "test" / "dog" / "a.png").write_bytes((tmp_path / "split" / "test" / "bee" / "img0.png")
                                                                .read_bytes())
    with pytest.raises(ValueError, match=r"test: class directories dog are not classes of the training images") as i:
        load_dataset("imagefolder", root=tmp_path / "split")
    _one_line(i)


def test_imagefolder_fingerprint_follows_the_content(tmp_path):
    from PIL import Image

    root = write_imagefolder(tmp_path / "pics")
    before = load_dataset("imagefolder", root=root, n_val=3, resolution=8).fingerprint()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(root / "ant" / "img0.png")  # same name, other pixels
    after = load_dataset("imagefolder", root=root, n_val=3, resolution=8).fingerprint()
    assert before != after and before.split(":")[2:] == after.split(":")[2:]


def test_imagefolder_errors_name_the_path(tmp_path):
    with pytest.raises(ValueError, match=r"dataset 'imagefolder' needs its directory"):
        load_dataset("imagefolder")
    with pytest.raises(FileNotFoundError, match=r"image folder not found: .*nowhere"):
        load_dataset("imagefolder", root=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: no class directories"):
        load_dataset("imagefolder", root=tmp_path / "empty")
    root = write_imagefolder(tmp_path / "pics")
    (root / "dog").mkdir()
    (root / "dog" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match=r"pics/dog: no images \(expected files ending in \.png, \.jpg, \.jpeg\)"):
        load_dataset("imagefolder", root=root)
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    with pytest.raises(ValueError, match=r"pics/dog/broken\.jpg: not a readable image \(") as info:
        load_dataset("imagefolder", root=root)
    _one_line(info)


# --------------------------------------------------------------------------- #
# Arrays, tensors and npz


def _arrays(n=40, side=6, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8), np.arange(n) % classes


def test_from_arrays_nhwc_uint8_split_and_normalise():
    x, y = _arrays()
    ds = Dataset.from_arrays(x, y, n_train=20, n_val=8, seed=2)
    assert ds.x_train.shape == (20, 3, 6, 6) and ds.num_classes == 4 and ds.n_test == 0
    assert _balanced(ds.y_train, 4) and _balanced(ds.y_val, 4)
    idx = ds.info["train_indices"]
    assert torch.equal(_denormalise(ds.x_train, ds), torch.from_numpy(x[idx].transpose(0, 3, 1, 2)).long())
    assert torch.allclose(ds.x_train.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    fp = ds.fingerprint()
    assert fp.startswith("arrays:sha256-") and fp.endswith(":6px:pool40:train20:val8:test0:seed2")
    again = Dataset.from_arrays(x.copy(), y.copy(), n_train=20, n_val=8, seed=2)
    assert again.fingerprint() == fp and torch.equal(again.x_val, ds.x_val)
    x2 = x.copy()
    x2[0, 0, 0, 0] ^= 1
    assert Dataset.from_arrays(x2, y, n_train=20, n_val=8, seed=2).fingerprint() != fp  # other content
    assert not np.array_equal(Dataset.from_arrays(x, y, n_train=20, n_val=8, seed=3).info["val_indices"],
                              ds.info["val_indices"])


def test_from_arrays_nchw_float_greyscale_test_split_and_resolution():
    x, y = _arrays(n=30, side=8, classes=3)
    xf = x.transpose(0, 3, 1, 2).astype(np.float32) / 255
    ds = Dataset.from_arrays(xf, y, x_test=xf[:6], y_test=y[:6], name="mine", n_val=6, resolution=4,
                             crop_padding=2, flip=True)
    assert ds.x_train.shape == (24, 3, 4, 4) and ds.n_test == 6 and (ds.crop_padding, ds.flip) == (1, True)
    assert ds.fingerprint().startswith("mine:sha256-")
    grey = Dataset.from_arrays(x[..., 0], y)  # (N, H, W)
    assert grey.in_channels == 1 and grey.resolution == 8
    t = Dataset.from_tensors(torch.from_numpy(xf), torch.from_numpy(y), n_val=6, resolution=4)
    a = Dataset.from_arrays(xf, y, n_val=6, resolution=4, name="tensors")
    assert t.fingerprint() == a.fingerprint() and torch.equal(t.x_train, a.x_train)
    wide = Dataset.from_arrays(np.zeros((9, 4, 6, 3), np.uint8), np.arange(9) % 3, resolution=5, n_val=3)
    assert wide.x_train.shape == (6, 3, 5, 5)


@pytest.mark.parametrize("kwargs, match", [
    ({"x": np.full((4, 3, 2, 2), 1.5, np.float32)},
     r"float images \(x\) must lie in \[0, 1\], got min 1\.5, max 1\.5; scale them"),
    ({"x": np.linspace(-2, 1, 48).reshape(4, 3, 2, 2)}, r"got min -2, max 1"),
    ({"x": np.zeros((4, 3, 2, 2), np.int64)}, r"x has dtype int64, expected uint8 \(0\.\.255\) or floats"),
    ({"x": np.zeros((4, 3, 3, 3), np.uint8)}, r"cannot tell whether x of shape \(4, 3, 3, 3\) is NCHW or NHWC"),
    ({"x": np.zeros((4, 3, 2, 5), np.uint8)}, r"images are 2x5, not square; pass resolution="),
    ({"y": np.array([0, 1, 2, 3.0])}, r"y has dtype float64, expected integer class indices"),
    ({"y": np.array([0, 1, 2])}, r"y has shape \(3,\), expected \(4,\), one label per image"),
    ({"y": np.array([0, 1, -1, 0])}, r"holds the negative label -1"),
    ({"y": np.array([0, 1, 2, 5]), "num_classes": 4}, r"labels must lie in 0\.\.3 \(num_classes=4\), got the label 5"),
    ({"x_test": np.zeros((2, 3, 2, 2), np.uint8)}, r"give both x_test and y_test, or neither"),
    ({"x": np.zeros((4, 3, 2, 2), np.uint8), "x_test": np.zeros((2, 3, 4, 4), np.uint8), "y_test": np.zeros(2, int)},
     r"x_test images are \(3, 4, 4\) \(C, H, W\), x images \(3, 2, 2\)"),
    ({"layout": "CHWN"}, r"layout must be 'NCHW', 'NHWC' or None"),
])
def test_from_arrays_refuses_bad_input_in_one_line(kwargs, match):
    args = {"x": np.zeros((4, 3, 2, 2), np.uint8), "y": np.array([0, 1, 2, 3]), **kwargs}
    x, y = args.pop("x"), args.pop("y")
    with pytest.raises(ValueError, match=match) as info:
        Dataset.from_arrays(x, y, **args)
    assert _one_line(info).startswith("Dataset.from_arrays('arrays'): ")


def test_npz_file(tmp_path):
    x, y = _arrays(n=40, side=6)
    path = tmp_path / "mine.npz"
    np.savez_compressed(path, x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
    ds = load_dataset(f"npz:{path}", n_val=8, seed=1)
    arrays = Dataset.from_arrays(x, y, x_test=x[:8], y_test=y[:8], n_val=8, seed=1)
    assert torch.equal(ds.x_train, arrays.x_train) and torch.equal(ds.y_test, arrays.y_test)
    assert ds.fingerprint() == "npz" + arrays.fingerprint()[len("arrays"):]  # same content, same hash
    assert ds.info["source"] == str(path)
    assert load_dataset("npz", root=path, n_val=8, seed=1) is ds
    flipped = load_dataset(f"npz:{path}", n_val=8, flip=True, crop_padding=1)
    assert (flipped.flip, flipped.crop_padding) == (True, 1)


@pytest.mark.parametrize("content, match", [
    ({"x_train": np.zeros((4, 3, 2, 2), np.uint8)}, r"no y_train; an npz dataset holds x_train, y_train"),
    ({"x_train": np.zeros((4, 3, 2, 2), np.uint8), "y_train": np.arange(4), "x_val": np.zeros(1)},
     r"unexpected arrays x_val; an npz dataset holds"),
    ({"x_train": np.array([object()] * 4), "y_train": np.arange(4)}, r"not a readable npz file of plain arrays"),
    ({"x_train": np.full((4, 3, 2, 2), 2.0), "y_train": np.arange(4)}, r"must lie in \[0, 1\], got min 2, max 2"),
])
def test_npz_errors_name_the_file(tmp_path, content, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **content)
    with pytest.raises(ValueError, match=match) as info:
        load_dataset(f"npz:{path}")
    assert _one_line(info).startswith(str(path))


def test_npz_missing_file_or_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"npz file not found: .*nothing\.npz"):
        load_dataset(f"npz:{tmp_path / 'nothing.npz'}")
    with pytest.raises(ValueError, match=r"dataset 'npz' needs the file: load_dataset\('npz:PATH'\)"):
        load_dataset("npz")
    with pytest.raises(ValueError, match=r"expected NAME:PATH with a path after the colon"):
        load_dataset("npz:")
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(ValueError, match=r"one\.npy: a single array \(\.npy\), not an \.npz archive"):
        load_dataset("npz", root=tmp_path / "one.npy")


# --------------------------------------------------------------------------- #
# Options and the plugin contract


def test_options_a_dataset_does_not_take_are_refused_naming_the_ones_that_do(tmp_path):
    with pytest.raises(ValueError, match=r"labels is an option of 'cifar100' only; dataset 'digits' does not take it"):
        load_dataset("digits", labels="coarse")
    with pytest.raises(ValueError, match=r"dataset 'cifar100' takes no option 'colour' \(got colour='red'\); "
                                         r"its own options: labels"):
        load_dataset("cifar100", root=tmp_path, colour="red")
    with pytest.raises(ValueError, match=r"dataset 'digits' reads no files"):
        load_dataset(f"digits:{tmp_path}")
    with pytest.raises(ValueError, match=r"names the path .* and root=.* another one"):
        load_dataset(f"npz:{tmp_path / 'a.npz'}", root=tmp_path / "b.npz")
    with pytest.raises(TypeError, match="a dataset name must be a string"):
        load_dataset(3)


def test_names_are_found_as_registered_or_lower_cased():
    @register("dataset", "Test-Case")
    def cased():
        return RawData(x=np.zeros((6, 1, 2, 2), np.uint8), y=np.arange(6) % 2, num_classes=2,
                       spec=DatasetSpec(255, 0, False), files=())

    try:
        assert load_dataset("Test-Case", n_val=2).name == "Test-Case"  # a third party's own spelling
        with pytest.raises(ValueError, match="unknown dataset 'test-case'"):
            load_dataset("test-case")
    finally:
        datasets._factories.pop("Test-Case")
    assert load_dataset("Digits", n_train=10).name == "digits"  # the built-ins' lower-case names


def test_plugin_contract_errors_name_the_plugin():
    @register("dataset", "test-bad")
    def bad(kind="list"):
        x = np.zeros((4, 1, 4, 4), np.uint8)
        if kind == "list":
            return [x]
        if kind == "labels":
            return RawData(x=x, y=np.array([0, 1, 2, 9]), num_classes=3, spec=DatasetSpec(255, 0, False))
        if kind == "pixels":
            return RawData(x=x + 20, y=np.arange(4) % 2, num_classes=2, spec=DatasetSpec(16, 0, False))
        return load_dataset("digits")  # a finished Dataset without taking the split arguments

    try:
        with pytest.raises(TypeError, match=r"'test-bad' \(.*bad\) returned a list, expected a nas_engine\.data\.Raw"):
            load_dataset("test-bad")
        with pytest.raises(ValueError, match=r"dataset 'test-bad': labels must lie in 0\.\.2, got 0\.\.9"):
            load_dataset("test-bad", kind="labels")
        with pytest.raises(ValueError, match=r"dataset 'test-bad': images: pixel values must lie in 0\.\.16, got min "
                                             r"20, max 20"):
            load_dataset("test-bad", kind="pixels")
        with pytest.raises(TypeError, match=r"returned a finished Dataset but does not take n_train, n_val, "
                                            r"resolution, seed"):
            load_dataset("test-bad", kind="dataset")
    finally:
        datasets._factories.pop("test-bad")


def test_cli_reads_npz_and_dataset_options(tmp_path, capsys):
    x, y = _arrays(n=60, side=8)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    args = ["search", "--strategy", "random", "--space", "nb201", "--estimator", "tse-ema", "--epochs", "1",
            "--evaluations", "1", "--schedule-epochs", "2", "--C", "4", "--N", "1", "--batch-size", "32",
            "--device", "cpu", "--json", "--data", f"npz:{tmp_path / 'd.npz'}", "--data-arg", "flip=true"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["config"]["data"].startswith("npz:sha256-")
    assert main(["search", "--data", "cifar100", "--data-root", str(tmp_path / "none"), "--evaluations", "1"]) == 2
    assert "CIFAR-100 data not found" in capsys.readouterr().err
    assert main(["search", "--data", "digits", "--data-arg", "labels=coarse", "--evaluations", "1"]) == 2
    assert "labels is an option of 'cifar100' only" in capsys.readouterr().err


# --------------------------------------------------------------------------- #
# A third-party dataset through an entry point

PLUGIN = '''
import numpy as np
from nas_engine.data import DatasetSpec, RawData


def blobs(seed=0, classes=3):
    """Bright squares whose position is the class: 20 images per class, 8x8 grey, values 0..255."""
    rng = np.random.default_rng(seed)
    y = np.arange(20 * classes) % classes
    x = rng.integers(0, 60, size=(len(y), 1, 8, 8), dtype=np.uint8)
    for i, c in enumerate(y):
        x[i, 0, 2 * c:2 * c + 3, 2:6] = 250
    return RawData(x=x, y=y, num_classes=classes, spec=DatasetSpec(max_value=255, crop_padding=1, flip=False),
                   source="blobs", tag="" if classes == 3 else f"classes{classes}", files=())
'''


def test_a_third_party_dataset_from_an_entry_point_drives_a_search(tmp_path, monkeypatch, capsys):
    (tmp_path / "blobs_plugin.py").write_text(PLUGIN)
    info = tmp_path / "blobs_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: blobs-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[nas_engine.datasets]\nblobs = blobs_plugin:blobs\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(datasets, "_factories", dict(datasets._factories))  # restored afterwards
    monkeypatch.setattr(datasets, "_entry_points_loaded", False)
    monkeypatch.delitem(sys.modules, "blobs_plugin", raising=False)

    assert "blobs" in list_plugins("dataset")
    ds = load_dataset("blobs", n_val=15, seed=1, classes=4)
    assert ds.fingerprint() == "blobs:classes4:8px:pool80:train65:val15:test0:seed1" and _balanced(ds.y_val, 4)
    search = Search("random", "nb201", create("estimator", "tse-ema", epochs=1), data="blobs", protocol=TINY,
                    budget=Budget(evaluations=2), progress=False)
    result = search.run()
    assert len(result.history) == 2 and search.config()["data"] == "blobs:8px:pool60:train48:val12:test0:seed0"
    assert all(e.status == "ok" and np.isfinite(e.score) and e.epochs == 1 for e in result.history)
    check_dataset("blobs", n_val=6)
    assert main(["list", "--json"]) == 0
    assert "blobs" in json.loads(capsys.readouterr().out)["dataset"]
    monkeypatch.delitem(sys.modules, "blobs_plugin", raising=False)


def test_the_digits_read_from_scikit_learns_file_equal_load_digits():
    """The digits plugin reads scikit-learn's bundled CSV itself (no 1.5 s import of sklearn.datasets in every
    process); it must give exactly what load_digits gives."""
    from sklearn.datasets import load_digits

    from nas_engine.data.digits import _load_digits

    images, target = _load_digits()
    bunch = load_digits()
    assert np.array_equal(images, bunch.images) and np.array_equal(target, bunch.target)
    assert images.shape == (1797, 8, 8)
