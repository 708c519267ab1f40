"""Tests for nas_engine.data: dataset loading, splitting and augmentation."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from nas_engine import data
from nas_engine.data import augment_batch, available_datasets, load_dataset, loading
from nas_engine.data import cifar10 as cifar10_module

SHARED_DATA = Path(
    os.environ.get("NAS_ENGINE_SHARED_DATA")
    or Path(__file__).resolve().parents[2] / "shared" / "data"
)
SHARED_CIFAR = SHARED_DATA / "cifar-10-batches-py"


@pytest.fixture(autouse=True)
def _fresh_cache():
    data.clear_cache()
    yield
    data.clear_cache()


def _denormalise(x: torch.Tensor, ds: data.Dataset, max_value: float) -> torch.Tensor:
    """Raw integer pixel values back from normalised images."""
    mean = torch.tensor(ds.mean).view(1, -1, 1, 1)
    std = torch.tensor(ds.std).view(1, -1, 1, 1)
    return torch.round((x * std + mean) * max_value).to(torch.int64)


# --------------------------------------------------------------------------- #
# digits


def test_available_and_unknown():
    builtins = ["cifar10", "cifar100", "digits", "imagefolder", "imagenet16-120", "npz", "synthetic-cifar10"]
    assert set(builtins) <= set(available_datasets())  # the dataset registry: built-ins and entry points
    with pytest.raises(ValueError, match="available: cifar10, cifar100, digits, imagefolder, imagenet16-120, npz"):
        load_dataset("mnist")


def test_digits_shapes_and_splits():
    ds = load_dataset("digits")
    assert (ds.in_channels, ds.resolution, ds.num_classes) == (1, 8, 10)
    assert (ds.crop_padding, ds.flip) == (1, False)
    assert ds.n_train + ds.n_val + ds.n_test == 1797
    assert ds.n_test == round(0.2 * 1797)
    assert ds.n_val == round(0.2 * (1797 - ds.n_test))
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape == (len(y), 1, 8, 8)
        assert 0 <= y.min() and y.max() < 10
    for y in (ds.y_val, ds.y_test):  # held-out splits are class-balanced
        counts = torch.bincount(y, minlength=10)
        assert counts.max() - counts.min() <= 1
    assert ds.fingerprint() == "digits:8px:pool1438:train1150:val288:test359:seed0"


def test_digits_splits_are_disjoint_and_match_source():
    from sklearn.datasets import load_digits

    ds = load_dataset("digits", n_train=500, n_val=100, seed=3)
    train, val, test = (ds.info[k] for k in ("train_indices", "val_indices", "test_indices"))
    assert (len(train), len(val), len(test)) == (500, 100, ds.n_test)
    assert not set(train) & set(val) and not set(train) & set(test) and not set(val) & set(test)
    digits = load_digits()
    splits = (
        (ds.x_train, ds.y_train, train),
        (ds.x_val, ds.y_val, val),
        (ds.x_test, ds.y_test, test),
    )
    for x, y, idx in splits:
        expected = torch.from_numpy(digits.images[idx]).long()
        assert torch.equal(_denormalise(x, ds, 16.0)[:, 0], expected)
        assert torch.equal(y, torch.from_numpy(digits.target[idx]).long())
    assert torch.equal(torch.bincount(ds.y_train), torch.full((10,), 50))
    assert torch.equal(torch.bincount(ds.y_val), torch.full((10,), 10))


def test_digits_normalisation():
    ds = load_dataset("digits")
    assert torch.allclose(ds.x_train.mean(dim=(0, 2, 3)), torch.zeros(1), atol=1e-5)
    assert torch.allclose(ds.x_train.std(dim=(0, 2, 3), correction=0), torch.ones(1), atol=1e-5)
    # val/test use the training statistics, so they are only roughly standardised
    assert abs(ds.x_test.mean().item()) < 0.1
    assert 0.0 < ds.mean[0] < 1.0 and 0.0 < ds.std[0] < 1.0  # in [0, 1] pixel units


def test_digits_determinism_and_seed():
    a = load_dataset("digits", n_train=300, n_val=50, seed=1)
    assert load_dataset("digits", n_train=300, n_val=50, seed=1) is a  # cached
    data.clear_cache()
    b = load_dataset("digits", n_train=300, n_val=50, seed=1)
    assert b is not a
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert a.fingerprint() == b.fingerprint()
    c = load_dataset("digits", n_train=300, n_val=50, seed=2)
    assert not np.array_equal(a.info["val_indices"], c.info["val_indices"])
    assert np.array_equal(a.info["test_indices"], c.info["test_indices"])  # test split is fixed
    assert a.fingerprint() != c.fingerprint()
    assert not a.info["train_indices"].flags.writeable


def test_uneven_counts_are_spread_over_classes():
    ds = load_dataset("digits", n_train=95, n_val=13)
    assert torch.equal(torch.bincount(ds.y_train), torch.tensor([10] * 5 + [9] * 5))
    assert torch.equal(torch.bincount(ds.y_val), torch.tensor([2] * 3 + [1] * 7))


def test_balanced_counts_fill_up_when_a_class_runs_short():
    counts = data._balanced_counts(np.array([2, 10, 10]), 15)
    assert counts.tolist() == [2, 7, 6]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_train": 100_000}, ValueError, "n_train=100000"),
        ({"n_val": 5000}, ValueError, "n_val=5000"),
        ({"n_val": -1}, ValueError, "n_val=-1"),
        ({"n_train": 0}, ValueError, "n_train=0"),
        ({"n_val": 1000, "n_train": 439}, ValueError, "n_train=439"),
        ({"resolution": 0}, ValueError, "resolution=0"),
        ({"resolution": 2.5}, TypeError, "resolution=2.5"),
    ],
)
def test_invalid_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        load_dataset("digits", **kwargs)


def test_digits_resolution_and_zero_val():
    ds = load_dataset("digits", resolution=16, n_val=0)
    assert ds.x_train.shape[1:] == (1, 16, 16) and ds.x_val.shape == (0, 1, 16, 16)
    assert ds.crop_padding == 2
    assert ds.n_train == 1797 - ds.n_test


def test_to_device():
    ds = load_dataset("digits", n_train=100, n_val=20)
    assert ds.to("cpu") is ds
    meta = ds.to("meta")
    assert meta is not ds and meta.x_train.is_meta and meta.y_test.is_meta
    assert meta.fingerprint() == ds.fingerprint() and ds.x_train.device.type == "cpu"


# --------------------------------------------------------------------------- #
# CIFAR-10: real subset


@pytest.mark.parametrize("resolution", [16, 32])
def test_cifar10_shared_data(resolution):
    if not (SHARED_CIFAR / "data_batch_1").is_file():
        pytest.skip(f"shared CIFAR-10 data not found at {SHARED_CIFAR}")
    kwargs = {"n_train": 1000, "n_val": 500, "resolution": resolution}
    ds = load_dataset("cifar10", root=SHARED_DATA, **kwargs)
    assert ds.x_train.shape == (1000, 3, resolution, resolution)
    assert ds.x_val.shape == (500, 3, resolution, resolution)
    assert ds.x_test.shape == (10_000, 3, resolution, resolution)
    assert torch.equal(torch.bincount(ds.y_train, minlength=10), torch.full((10,), 100))
    assert torch.equal(torch.bincount(ds.y_val, minlength=10), torch.full((10,), 50))
    assert 0 <= ds.y_test.min() and ds.y_test.max() < 10
    assert ds.crop_padding == resolution // 8 and ds.flip
    assert torch.allclose(ds.x_train.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert not set(ds.info["train_indices"]) & set(ds.info["val_indices"])
    expected = f"cifar10:{resolution}px:pool10000:train1000:val500:test10000:seed0"
    assert ds.fingerprint() == expected
    # the batch directory itself is accepted as root
    same = load_dataset("cifar10", root=SHARED_CIFAR, **kwargs)
    assert torch.equal(same.x_val, ds.x_val)


# --------------------------------------------------------------------------- #
# CIFAR-10: files


def test_cifar10_missing_directory(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("cifar10", root=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "data_batch_1" in message and "download=True" in message and "NAS_ENGINE_DATA" in message
    monkeypatch.setenv("NAS_ENGINE_DATA", str(tmp_path / "elsewhere"))
    expected = re.escape(str(tmp_path / "elsewhere" / "cifar-10-batches-py"))
    with pytest.raises(FileNotFoundError, match=expected):
        load_dataset("cifar10")


def _fake_batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"fake",
        b"labels": [i % 10 for i in range(n)],
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        b"filenames": [b"x.png"] * n,
    }


def _write_fake_cifar(directory: Path, with_test: bool = True) -> dict[str, dict]:
    directory.mkdir(parents=True)
    batches = {"data_batch_1": _fake_batch(20, 1), "data_batch_2": _fake_batch(30, 2)}
    if with_test:
        batches["test_batch"] = _fake_batch(10, 3)
    # a known pixel: image 4 of data_batch_2, row y=5, column x=7, RGB (11, 22, 33)
    row = batches["data_batch_2"][b"data"][4]
    row[0 * 1024 + 5 * 32 + 7], row[1 * 1024 + 5 * 32 + 7], row[2 * 1024 + 5 * 32 + 7] = 11, 22, 33
    for name, batch in batches.items():
        with open(directory / name, "wb") as f:
            pickle.dump(batch, f)
    return batches


def test_cifar10_fake_directory_exact_pixels(tmp_path):
    batches = _write_fake_cifar(tmp_path / "cifar-10-batches-py")
    ds = load_dataset("cifar10", root=tmp_path, n_val=10)
    assert (ds.n_train, ds.n_val, ds.n_test) == (40, 10, 10) and ds.info["pool_size"] == 50
    pool = np.concatenate([batches["data_batch_1"][b"data"], batches["data_batch_2"][b"data"]])
    pool_labels = batches["data_batch_1"][b"labels"] + batches["data_batch_2"][b"labels"]
    splits = (
        (ds.x_train, ds.y_train, ds.info["train_indices"]),
        (ds.x_val, ds.y_val, ds.info["val_indices"]),
    )
    for x, y, idx in splits:
        expected = torch.from_numpy(pool[idx].reshape(-1, 3, 32, 32)).long()
        assert torch.equal(_denormalise(x, ds, 255.0), expected)
        assert y.tolist() == [pool_labels[i] for i in idx]
    test = batches["test_batch"]
    expected = torch.from_numpy(test[b"data"].reshape(-1, 3, 32, 32)).long()
    assert torch.equal(_denormalise(ds.x_test, ds, 255.0), expected)
    assert ds.y_test.tolist() == test[b"labels"]
    # channel-major decoding: the known pixel's R, G, B land at [c, y, x]; with no
    # validation split the training set is the whole pool in file order (batch 1 first)
    whole = load_dataset("cifar10", root=tmp_path / "cifar-10-batches-py", n_val=0)
    assert _denormalise(whole.x_train[24:25], whole, 255.0)[0, :, 5, 7].tolist() == [11, 22, 33]


def test_cifar10_without_test_batch_and_env_root(tmp_path, monkeypatch):
    _write_fake_cifar(tmp_path / "cifar-10-batches-py", with_test=False)
    monkeypatch.setenv("NAS_ENGINE_DATA", str(tmp_path))
    ds = load_dataset("cifar10", n_train=20, n_val=0, resolution=8)
    assert ds.x_test is None and ds.y_test is None and ds.n_test == 0
    assert ds.x_train.shape == (20, 3, 8, 8) and ds.crop_padding == 1


def _fake_archive(path: Path, members: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            member = tarfile.TarInfo(name)
            member.size = len(payload)
            tar.addfile(member, io.BytesIO(payload))
    return hashlib.md5(path.read_bytes()).hexdigest()


def _serve(monkeypatch, archive: Path, md5: str) -> list[str]:
    """Make the downloader copy ``archive`` instead of fetching; returns the URLs asked for."""
    fetched = []

    def fake_fetch(url: str, dest: Path) -> None:
        fetched.append(url)
        dest.write_bytes(archive.read_bytes())

    monkeypatch.setattr(loading, "_fetch", fake_fetch)  # where the downloader looks it up
    monkeypatch.setattr(cifar10_module, "CIFAR10_MD5", md5)
    return fetched


def test_cifar10_download_extracts_verified_archive(tmp_path, monkeypatch):
    source = tmp_path / "src"
    batches = _write_fake_cifar(source)
    archive = tmp_path / "fake.tar.gz"
    members = {f"cifar-10-batches-py/{n}": (source / n).read_bytes() for n in batches}
    fetched = _serve(monkeypatch, archive, _fake_archive(archive, members))
    root = tmp_path / "root"
    ds = load_dataset("cifar10", root=root, download=True, n_val=10)
    assert fetched == [data.CIFAR10_URL]
    assert (ds.n_train, ds.n_test) == (40, 10)
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]  # archive removed
    # data present: download=True does not fetch again
    load_dataset("cifar10", root=root, download=True, n_val=0)
    assert len(fetched) == 1


def test_cifar10_download_md5_mismatch(tmp_path, monkeypatch):
    archive = tmp_path / "fake.tar.gz"
    _fake_archive(archive, {"cifar-10-batches-py/data_batch_1": b"x"})
    _serve(monkeypatch, archive, "0" * 32)
    root = tmp_path / "root"
    with pytest.raises(RuntimeError, match="md5 mismatch"):
        load_dataset("cifar10", root=root, download=True)
    assert list(root.iterdir()) == []  # the bad archive was deleted


def test_cifar10_download_refuses_unsafe_paths(tmp_path, monkeypatch):
    archive = tmp_path / "fake.tar.gz"
    _serve(monkeypatch, archive, _fake_archive(archive, {"cifar-10-batches-py/../../evil": b"x"}))
    root = tmp_path / "root"
    with pytest.raises(RuntimeError, match="unsafe path"):
        load_dataset("cifar10", root=root, download=True)
    assert not (tmp_path / "evil").exists()
    assert not (root / "cifar-10-batches-py").exists()


# --------------------------------------------------------------------------- #
# augmentation


def _position_image(n: int, c: int = 2, h: int = 6, w: int = 7) -> torch.Tensor:
    """Images whose pixels encode (sample, channel, row, column), all nonzero."""
    return torch.arange(1, n * c * h * w + 1, dtype=torch.float32).view(n, c, h, w)


def _shifted(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``out[..., i, j] = img[..., i + dy, j + dx]``, zero outside the image."""
    out = torch.zeros_like(img)
    h, w = img.shape[-2:]
    out[..., max(0, -dy) : min(h, h - dy), max(0, -dx) : min(w, w - dx)] = img[
        ..., max(0, dy) : min(h, h + dy), max(0, dx) : min(w, w + dx)
    ]
    return out


def test_augment_shape_determinism_and_identity():
    x = torch.randn(16, 3, 8, 8)
    a = augment_batch(x, torch.Generator().manual_seed(5), padding=2, flip=True)
    b = augment_batch(x, torch.Generator().manual_seed(5), padding=2, flip=True)
    c = augment_batch(x, torch.Generator().manual_seed(6), padding=2, flip=True)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(augment_batch(x, torch.Generator(), padding=0, flip=False), x)


def test_augment_crop_shifts_content_by_offset():
    padding = 2
    x = _position_image(64)
    out = augment_batch(x, torch.Generator().manual_seed(0), padding=padding, flip=False)
    shifts = set()
    for img, got in zip(x, out):
        matches = [
            (dy, dx)
            for dy in range(-padding, padding + 1)
            for dx in range(-padding, padding + 1)
            if torch.equal(got, _shifted(img, dy, dx))
        ]
        assert len(matches) == 1, "each sample is its image shifted by one offset"
        shifts.add(matches[0])
    assert len(shifts) > 5  # offsets are drawn per sample


def test_augment_flip_only():
    x = _position_image(64)
    out = augment_batch(x, torch.Generator().manual_seed(1), padding=0, flip=True)
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x)]
    assert all(f or torch.equal(o, i) for f, o, i in zip(flipped, out, x))
    assert 10 < sum(flipped) < 54


def test_augment_crop_then_flip_matches_reference():
    x = _position_image(32)
    out = augment_batch(x, torch.Generator().manual_seed(2), padding=1, flip=True)
    for img, got in zip(x, out):
        candidates = [
            _shifted(img, dy, dx).flip(-1) if f else _shifted(img, dy, dx)
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            for f in (False, True)
        ]
        assert any(torch.equal(got, cand) for cand in candidates)
