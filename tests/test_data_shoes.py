"""fashion-shoes and fashion-shoes-clips: Fashion-MNIST sneakers (A) and ankle boots (B), against the raw files."""

import gzip
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ganfast.data as gd
from ganfast.data import Batch, shoes
from ganfast.train.loader import ShardedBatches

FASHION = "/usr/share/datasets/fashion-mnist"
SNEAKER, ANKLE_BOOT = 7, 9


def raw(split, kind):
    """Fashion-MNIST images (N, 28, 28) or labels (N,) as uint8, read here with gzip + NumPy."""
    prefix = {"train": "train", "test": "t10k"}[split]
    name, header = {"images": ("images-idx3", 16), "labels": ("labels-idx1", 8)}[kind]
    with gzip.open(os.path.join(FASHION, f"{prefix}-{name}-ubyte.gz"), "rb") as fh:
        a = np.frombuffer(fh.read()[header:], dtype=np.uint8)
    return a.reshape(-1, 28, 28) if kind == "images" else a


def upscaled(images_u8, size=32):
    """What fashion-mnist does to 28x28 uint8 images: [-1, 1], bilinear (antialiased) to size x size."""
    x = torch.from_numpy(images_u8.copy()).float().unsqueeze(1) / 127.5 - 1
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(-1, 1)


def everything(ds, epoch=0):
    return ds.batch(torch.arange(len(ds)), epoch)


# -- fashion-shoes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "test"])
def test_shoes_classes_pixels_and_sizes(split):
    ds = gd.load("fashion-shoes", split=split)
    labels, images = raw(split, "labels"), raw(split, "images")
    assert isinstance(ds, gd.UnpairedImages) and ds.layout == "unpaired" and ds.fields == ("image", "target")
    assert ds.in_memory and ds.split == split and ds.sample_shape == (1, 32, 32)
    for src, cls in zip(ds.sources, (SNEAKER, ANKLE_BOOT)):  # every image of the class, in file order
        assert torch.equal(src, torch.from_numpy(np.flatnonzero(labels == cls)))
    assert len(ds) == {"train": 6000, "test": 1000}[split]
    b = ds.batch(torch.arange(0, len(ds), 97))
    assert isinstance(b, Batch) and b.fields() == ("image", "target")
    assert b.image.shape == b.target.shape == (len(range(0, len(ds), 97)), 1, 32, 32)
    assert b.image.dtype == b.target.dtype == torch.float32
    for x in (b.image, b.target):
        assert x.min() == -1 and 0.5 < x.max() <= 1
    a_idx, b_idx = ds.pairs(torch.arange(0, len(ds), 97), len(ds.domains[0]), len(ds.domains[1]))
    torch.testing.assert_close(b.image, upscaled(images[ds.sources[0][a_idx].numpy()]), atol=1e-5, rtol=0)
    torch.testing.assert_close(b.target, upscaled(images[ds.sources[1][b_idx].numpy()]), atol=1e-5, rtol=0)


def test_shoes_subset_options_and_determinism():
    one, two = (gd.load("fashion-shoes", num_samples=50, seed=3, split="test") for _ in range(2))
    assert len(one) == 50 and all(len(d) == 50 for d in one.domains)
    labels = raw("test", "labels")
    assert (labels[one.sources[0].numpy()] == SNEAKER).all() and (labels[one.sources[1].numpy()] == ANKLE_BOOT).all()
    for epoch in (0, 1):
        x, y = everything(one, epoch), everything(two, epoch)
        assert torch.equal(x.image, y.image) and torch.equal(x.target, y.target)
    other = gd.load("fashion-shoes", num_samples=50, seed=4, split="test")
    assert not torch.equal(other.sources[0], one.sources[0])
    # the A and B subsets are drawn independently: not the same positions within their classes
    pos = [np.searchsorted(np.flatnonzero(labels == c), s.numpy()) for c, s in zip((SNEAKER, ANKLE_BOOT), one.sources)]
    assert not np.array_equal(*pos)
    rgb = gd.load("fashion-shoes", num_samples=8, image_size=28, channels=3, split="test")
    b = rgb.batch(torch.arange(8))
    assert b.image.shape == (8, 3, 28, 28) and torch.equal(b.image[:, 0], b.image[:, 2])
    raw_a = torch.from_numpy(raw("test", "images")[rgb.sources[0].numpy()].copy()).float() / 127.5 - 1
    torch.testing.assert_close(b.image[:, 1], raw_a, atol=1e-6, rtol=0)  # 28 keeps the originals


def test_shoes_pairing_changes_every_epoch():
    ds = gd.load("fashion-shoes", num_samples=40, split="test")
    e0, e1, again = everything(ds, 0), everything(ds, 1), everything(ds, 0)
    assert torch.equal(e0.image, e1.image)  # A in order; B re-paired
    assert not torch.equal(e0.target, e1.target) and torch.equal(e0.target, again.target)
    key = lambda t: sorted(t.flatten(1).sum(1).tolist())  # noqa: E731 - every B image once per epoch
    assert key(e0.target) == key(e1.target) == key(ds.domains[1].memory)
    stream = ShardedBatches(ds, 8, seed=0)
    assert stream().target.shape == (8, 1, 32, 32)


# -- fashion-shoes-clips -------------------------------------------------------------------------


def test_clips_shapes_classes_and_windows():
    ds = gd.load("fashion-shoes-clips", num_samples=20, split="test")
    assert isinstance(ds, gd.FrameClips) and ds.layout == "frames" and ds.fields == ("frames", "target_frames")
    assert len(ds) == 20 and ds.frames_per_sample == 3 and ds.sample_shape == (1, 32, 32) and ds.in_memory
    assert [len(c) for c in ds.clips] == [4, 4]  # ceil(20 / 6) clips of 8 frames, 6 windows of 3 each
    labels = raw("test", "labels")
    for src, cls, names in zip(ds.sources, (SNEAKER, ANKLE_BOOT), ds.clips):
        assert (labels[src.numpy()] == cls).all() and names == [f"test-{i}" for i in src.tolist()]
    b = ds.batch(torch.arange(20))
    assert b.fields() == ("frames", "target_frames")
    assert b.frames.shape == b.target_frames.shape == (20, 3, 1, 32, 32) and b.frames.dtype == torch.float32
    assert b.frames.min() == -1 and b.frames.max() <= 1 and b.target_frames.min() == -1
    clip = ds.domains[0].frames.memory.view(-1, 8, 1, 32, 32)
    for i in range(20):  # window i: frames i % 6 .. i % 6 + 2 of clip i // 6
        assert torch.equal(b.frames[i], clip[i // 6, i % 6:i % 6 + 3])
        if i % 6 != 5 and i < 19:  # the next window of the same clip starts one frame later
            assert torch.equal(b.frames[i, 1:], b.frames[i + 1, :2])
    # each clip is its source image moving: the untransformed image is half-way between frames 3 and 4
    mid = upscaled(raw("test", "images")[ds.sources[0].numpy()])
    assert (clip[:, 3:5].mean(1) - mid).abs().mean() < 0.1


def test_clips_motion_is_smooth_and_deterministic():
    one, two = (gd.load("fashion-shoes-clips", num_samples=60, seed=5) for _ in range(2))
    for d1, d2 in zip(one.domains, two.domains):
        assert torch.equal(d1.frames.memory, d2.frames.memory)
    assert all(torch.equal(m1.velocity, m2.velocity) for m1, m2 in zip(one.motion, two.motion))
    frames = one.domains[0].frames.memory.view(-1, 8, 32 * 32)
    step = (frames[:, 1:] - frames[:, :-1]).abs().mean()
    other = (frames[:, 0] - frames[:, 0].roll(1, 0)).abs().mean()  # the same frame of another clip
    assert step < other / 3
    speed = one.motion[0].velocity.norm(dim=1)
    assert ((speed >= 0.25) & (speed <= 1.0)).all()
    assert (one.motion[0].turn.abs() <= 3).all() and (one.motion[0].zoom.abs() <= 0.02).all()
    e0, e1 = everything(one, 0), everything(one, 1)
    assert torch.equal(e0.frames, e1.frames) and not torch.equal(e0.target_frames, e1.target_frames)
    different = gd.load("fashion-shoes-clips", num_samples=60, seed=6)
    assert not torch.equal(different.sources[0], one.sources[0])


def blob(size=32, x=0.0, y=0.0):
    """A Gaussian blob at (x, y) pixels from the centre (x right, y down), in [-1, 1] on a -1 background."""
    c = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-((c[None, :] - x) ** 2 + (c[:, None] - y) ** 2) / (2 * 1.5 ** 2))
    return (2 * g - 1).float()[None, None]


def centroid(frames):
    """(x, y) centroid, from the centre, of each frame's mass above the background: (F, 2)."""
    m = (frames[:, 0] + 1).double()
    c = torch.arange(frames.shape[-1], dtype=torch.float64) - (frames.shape[-1] - 1) / 2
    xy = torch.stack([(m * c[None, None, :]).sum((1, 2)), (m * c[None, :, None]).sum((1, 2))], 1)
    return xy / m.sum((1, 2))[:, None]


def motion(vx=0.0, vy=0.0, turn=0.0, zoom=0.0):
    t = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    return shoes.ClipMotion(torch.tensor([[vx, vy]], dtype=torch.float64), t(turn), t(zoom))


@pytest.mark.parametrize("size", [32, 64])
def test_render_follows_the_documented_motion(size):
    k = size / 32  # the motion is in pixels of a 32-pixel frame
    still = shoes.render_clips(blob(size), motion())[0]
    torch.testing.assert_close(still, blob(size).expand(8, -1, -1, -1), atol=1e-5, rtol=0)
    tau = torch.arange(8, dtype=torch.float64) - 3.5
    moved = centroid(shoes.render_clips(blob(size), motion(vx=0.8, vy=-0.3))[0])
    torch.testing.assert_close(moved, torch.stack([0.8 * k * tau, -0.3 * k * tau], 1), atol=1e-3, rtol=0)
    turned = centroid(shoes.render_clips(blob(size, x=6 * k), motion(turn=2.0))[0])  # clockwise: right -> down
    angle = torch.deg2rad(2.0 * tau)
    torch.testing.assert_close(turned, torch.stack([angle.cos(), angle.sin()], 1) * 6 * k, atol=2e-2, rtol=0)
    zoomed = centroid(shoes.render_clips(blob(size, x=6 * k), motion(zoom=0.02))[0])
    torch.testing.assert_close(zoomed[:, 0], torch.exp(0.02 * tau) * 6 * k, atol=5e-2, rtol=0)  # vs 0.4 px zoomed
    far = shoes.render_clips(blob(size), motion(vx=40.0))[0]
    assert (far[0] == -1).all()  # outside the source: the background, exactly


def test_clips_options():
    long = gd.load("fashion-shoes-clips", num_samples=7, frames_per_sample=8, image_size=16, channels=3,
                   split="test")
    assert len(long) == 7 and [len(c) for c in long.clips] == [7, 7]  # one 8-frame window per clip
    b = long.batch(torch.arange(7))
    assert b.frames.shape == (7, 8, 3, 16, 16) and torch.equal(b.frames[:, :, 0], b.frames[:, :, 1])
    assert len(gd.load("fashion-shoes-clips", num_samples=1, frames_per_sample=1, split="test")) == 1
    default = gd.load("fashion-shoes-clips", split="test")  # DEFAULT_CLIPS = 1000 clips: all 1000 test images
    labels = raw("test", "labels")
    assert len(default) == shoes.DEFAULT_CLIPS * 6 == 6000
    for src, cls in zip(default.sources, (SNEAKER, ANKLE_BOOT)):
        assert torch.equal(src, torch.from_numpy(np.flatnonzero(labels == cls)))


# -- registry and errors -------------------------------------------------------------------------


def test_registered_and_listed():
    described = dict(gd.describe())
    for name, layout, fields in [("fashion-shoes", "unpaired", ("image", "target")),
                                 ("fashion-shoes-clips", "frames", ("frames", "target_frames"))]:
        assert name in gd.names() and described[name] and "\n" not in described[name]
        assert gd.registry.batch_fields(name) == fields and gd.registry._BUILTINS[name].layout == layout


@pytest.mark.parametrize(
    "name, kwargs, exc, match",
    [
        ("fashion-shoes", dict(frames_per_sample=3), ValueError,
         "frames_per_sample=3 does not apply to dataset 'fashion-shoes'; it applies to fashion-shoes-clips"),
        ("fashion-shoes", dict(direction="AtoB"), ValueError, "direction='AtoB' does not apply to dataset"),
        ("fashion-shoes-clips", dict(direction="BtoA"), ValueError, "direction='BtoA' does not apply"),
        ("fashion-shoes", dict(split="val"), ValueError,
         r"split for 'fashion-shoes' must be one of \('train', 'test'\)"),
        ("fashion-shoes-clips", dict(split="val"), ValueError, "split for 'fashion-shoes-clips'"),
        ("fashion-shoes", dict(split=1), TypeError, "split"),
        ("fashion-shoes", dict(layout="paired"), ValueError, "whose layout is 'unpaired'"),
        ("fashion-shoes-clips", dict(layout="unpaired"), ValueError, "whose layout is 'frames'"),
        ("fashion-shoes", dict(num_samples=1001, split="test"), ValueError, "num_samples=1001 asks for more than"),
        ("fashion-shoes-clips", dict(num_samples=6001, split="test"), ValueError,
         r"num_samples=6001 asks for more than the 6000 windows .*frames_per_sample=3"),
        ("fashion-shoes-clips", dict(frames_per_sample=9), ValueError, "frames_per_sample=9 is more than the 8 frames"),
        ("fashion-shoes-clips", dict(frames_per_sample=0), ValueError, "frames_per_sample"),
        ("fashion-shoes", dict(channels=2), ValueError, "channels"),
        ("fashion-shoes-clips", dict(image_size=0), ValueError, "image_size"),
    ],
)
def test_bad_options(name, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        gd.load(name, **kwargs)


def test_missing_fashion_mnist(monkeypatch, tmp_path):
    monkeypatch.setenv("GANFAST_FASHION_MNIST_DIR", str(tmp_path))
    for name in ("fashion-shoes", "fashion-shoes-clips"):
        with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
            gd.load(name)
