"""ganfast.data: built-in datasets, image folders and NumPy files, against hand-computed truths."""

import math
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import ganfast.data as gd
from ganfast.data import folder as folder_mod

from PIL import Image  # noqa: E402  (a dependency: missing it fails, not skips)

SQRT2 = math.sqrt(2.0)
RING8_CENTRES = [(2, 0), (SQRT2, SQRT2), (0, 2), (-SQRT2, SQRT2), (-2, 0), (-SQRT2, -SQRT2), (0, -2), (SQRT2, -SQRT2)]


# -- registry -------------------------------------------------------------------------------


def test_names_and_describe():
    assert gd.names() == ["ring8", "grid25", "digits", "fashion-mnist", "mnist5k", "lfw-faces", "astronaut", "coffee",
                          "chelsea", "camera", "rocket", "brick", "grass", "gravel", "china", "flower",
                          "fashion-edges", "fashion-shoes", "fashion-shoes-clips"]
    described = dict(gd.describe())
    assert list(described)[:len(gd.names())] == gd.names()
    assert "<folder>" in described and "<file>.npy|.npz" in described
    assert all(isinstance(v, str) and v and "\n" not in v for v in described.values())


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="ring8, grid25, digits") as info:
        gd.load("cifar10")
    assert isinstance(info.value, FileNotFoundError)  # a bare word may also have been meant as a path


@pytest.mark.parametrize("spec", ["no/such/folder", "missing.npz"])
def test_missing_path(tmp_path, spec):
    with pytest.raises(FileNotFoundError, match=spec.split("/")[-1]):
        gd.load(tmp_path / spec)


def test_unsupported_file_and_spec_type(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hello")
    with pytest.raises(ValueError, match=r"\.txt"):
        gd.load(f)
    with pytest.raises(TypeError, match="spec"):
        gd.load(3)


@pytest.mark.parametrize(
    "kwargs, exc, arg",
    [
        (dict(image_size=0), ValueError, "image_size"),
        (dict(image_size=-8), ValueError, "image_size"),
        (dict(image_size="32"), TypeError, "image_size"),
        (dict(image_size=True), TypeError, "image_size"),
        (dict(channels=2), ValueError, "channels"),
        (dict(channels=3.0), TypeError, "channels"),
        (dict(num_samples=0), ValueError, "num_samples"),
        (dict(num_samples=2.5), TypeError, "num_samples"),
        (dict(seed="a"), TypeError, "seed"),
    ],
)
def test_bad_arguments(kwargs, exc, arg):
    with pytest.raises(exc, match=arg):
        gd.load("digits", **kwargs)


# -- Gaussian mixtures ----------------------------------------------------------------------


def test_mixture_centres_exact():
    ring = gd.load("ring8", num_samples=10)
    assert ring.modes.dtype == torch.float32 and ring.mode_std == 0.02
    assert torch.equal(ring.modes, torch.tensor(RING8_CENTRES, dtype=torch.float32))
    grid = gd.load("grid25", num_samples=10)
    assert grid.mode_std == 0.05
    assert sorted(map(tuple, grid.modes.tolist())) == [(a, b) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)]


@pytest.mark.parametrize("name, std, num_modes", [("ring8", 0.02, 8), ("grid25", 0.05, 25)])
def test_mixture_statistics(name, std, num_modes):
    ds = gd.load(name)
    x, y = ds.tensors
    assert y is None and x.shape == (100_000, 2) and x.dtype == torch.float32
    which = torch.cdist(x, ds.modes).argmin(dim=1)
    counts = torch.bincount(which, minlength=num_modes).double()
    # Equal weights: each share is binomial, std sqrt(p(1-p)/N) <= 0.0011; 5 sigma.
    p = 1 / num_modes
    assert (counts / len(x) - p).abs().max() < 5 * math.sqrt(p * (1 - p) / len(x))
    for m in range(num_modes):
        pts = x[which == m].double()
        n = len(pts)
        # Mean within 5 standard errors of the centre, std within 5 of its own
        # standard error (about std / sqrt(2n)) of the spec.
        assert (pts.mean(0) - ds.modes[m].double()).abs().max() < 5 * std / math.sqrt(n)
        assert (pts.std(0) / std - 1).abs().max() < 5 / math.sqrt(2 * n)


def test_mixture_seeding():
    a = gd.load("ring8", num_samples=500, seed=3).tensors[0]
    b = gd.load("ring8", num_samples=500, seed=3).tensors[0]
    c = gd.load("ring8", num_samples=500, seed=4).tensors[0]
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    torch.randn(10)  # the draw uses a private generator: global RNG state does not matter
    assert torch.equal(gd.load("ring8", num_samples=500, seed=3).tensors[0], a)


def test_points_dataset_contract():
    ds = gd.load("grid25", num_samples=64)
    assert (ds.name, ds.kind, ds.sample_shape, ds.num_classes, ds.classes) == ("grid25", "points", (2,), 0, None)
    assert len(ds) == 64
    x, y = ds[5]
    assert torch.equal(x, ds.tensors[0][5]) and y.dtype == torch.int64 and y.ndim == 0 and y.item() == -1
    assert "grid25" in repr(ds) and "N=64" in repr(ds) and "unlabeled" in repr(ds)


def test_points_refuse_image_options():
    with pytest.raises(ValueError, match="image_size"):
        gd.load("ring8", image_size=32)
    with pytest.raises(ValueError, match="channels"):
        gd.load("ring8", channels=3)


def test_require_labels():
    ds = gd.load("ring8", num_samples=10)
    with pytest.raises(ValueError) as info:
        ds.require_labels("cgan")
    msg = str(info.value)
    assert msg.startswith("model 'cgan' is conditional and needs labels, but dataset 'ring8' has none")
    assert "digits" in msg and "sub-folder" in msg and "'y'" in msg
    with pytest.raises(ValueError, match="^model 'acgan' is conditional"):
        ds.require_labels("model 'acgan'")


# -- digits ---------------------------------------------------------------------------------


def _sklearn_digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images, d.target


def test_digits_default():
    images, target = _sklearn_digits()
    ds = gd.load("digits")
    x, y = ds.tensors
    assert (ds.kind, ds.sample_shape, ds.num_classes) == ("image", (1, 16, 16), 10)
    assert ds.classes == [str(d) for d in range(10)]
    assert x.shape == (1797, 1, 16, 16) and x.dtype == torch.float32
    assert x.min() == -1 and x.max() == 1
    # sklearn's top-left pixel is 0 in every digit, and at 2x the output corner pixel samples only it
    assert x[:, :, :1, :1].eq(-1).all()
    assert torch.equal(y, torch.as_tensor(target, dtype=torch.int64))
    ds.require_labels("cgan")


def test_digits_native_size_is_exact():
    images, _ = _sklearn_digits()
    x = gd.load("digits", image_size=8).tensors[0]
    assert torch.equal(x[:, 0], torch.as_tensor(images / 8.0 - 1.0, dtype=torch.float32))


def test_digits_upscale_matches_hand_bilinear():
    images, _ = _sklearn_digits()
    src = torch.as_tensor(images[7] / 8.0 - 1.0, dtype=torch.float64)
    out = gd.load("digits", image_size=16).tensors[0][7, 0].double()
    # 2x bilinear, half-pixel centres: output j samples source (j + 0.5) / 2 - 0.5, so
    # odd j = 2i+1 is 3/4 src[i] + 1/4 src[i+1], even j = 2i+2 is 1/4 src[i] + 3/4 src[i+1];
    # the borders repeat the edge pixel.
    w = torch.zeros(16, 8, dtype=torch.float64)
    w[0, 0] = w[15, 7] = 1
    for i in range(7):
        w[2 * i + 1, i], w[2 * i + 1, i + 1] = 0.75, 0.25
        w[2 * i + 2, i], w[2 * i + 2, i + 1] = 0.25, 0.75
    torch.testing.assert_close(out, w @ src @ w.T, atol=1e-6, rtol=0)


def test_digits_downscale_averages():
    x16 = gd.load("digits", image_size=16).tensors[0]
    x8 = gd.load("digits", image_size=8).tensors[0]
    x64 = gd.load("digits", image_size=64).tensors[0]
    assert x64.shape[-2:] == (64, 64) and x64.min() >= -1 and x64.max() <= 1
    # Resizing with non-negative weights summing to one keeps the mean intensity.
    torch.testing.assert_close(x16.mean(dim=(2, 3)), x8.mean(dim=(2, 3)), atol=0.03, rtol=0)


def test_digits_channels_and_subset():
    ds = gd.load("digits", image_size=8, channels=3, num_samples=100, seed=1)
    x, y = ds.tensors
    assert x.shape == (100, 3, 8, 8) and len(y) == 100
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])
    again = gd.load("digits", image_size=8, channels=3, num_samples=100, seed=1).tensors[0]
    assert torch.equal(x, again)
    with pytest.raises(ValueError, match="1797"):
        gd.load("digits", num_samples=5000)


@pytest.mark.parametrize("size", [12, 128])
def test_digits_bad_size(size):
    with pytest.raises(ValueError, match=r"image_size.*\(8, 16, 32, 64\)"):
        gd.load("digits", image_size=size)


# -- image folders --------------------------------------------------------------------------


def _save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array), mode).save(path) if mode else Image.fromarray(np.asarray(array)).save(path)
    return path


def _px(value):
    """A uint8 pixel value as the loaders map it (computed in float32, as they do)."""
    return torch.tensor(float(value)) / 127.5 - 1


def _gray(value, h=4, w=4):
    return np.full((h, w), value, dtype=np.uint8)


def _rgb(r, g, b, h=4, w=4):
    return np.stack([_gray(r, h, w), _gray(g, h, w), _gray(b, h, w)], axis=-1)


def test_folder_classes_from_subfolders(tmp_path):
    pixels = np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5
    _save(tmp_path / "dog" / "b.png", _rgb(0, 0, 0))
    _save(tmp_path / "cat" / "a.png", pixels)
    _save(tmp_path / "cat" / "nested" / "c.png", _rgb(255, 255, 255))
    (tmp_path / "empty_class").mkdir()
    (tmp_path / "cat" / "readme.txt").write_text("not an image")
    _save(tmp_path / ".hidden" / "d.png", _rgb(9, 9, 9))
    ds = gd.load(tmp_path)
    assert ds.classes == ["cat", "dog"] and ds.num_classes == 2
    x, y = ds.tensors
    assert x.shape == (3, 3, 4, 4) and ds.sample_shape == (3, 4, 4)
    assert y.tolist() == [0, 0, 1]
    # cat/a.png comes first: its pixels exactly, as x / 127.5 - 1, channels first.
    expected = torch.from_numpy(pixels).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.equal(x[0], expected)
    assert x[1].eq(1).all() and x[2].eq(-1).all()
    assert "2 classes [cat, dog]" in repr(ds)


def test_flat_folder_is_unlabeled(tmp_path):
    for i in range(3):
        _save(tmp_path / f"{i}.jpg", _gray(40 * i, 6, 6))
    ds = gd.load(str(tmp_path))
    assert ds.num_classes == 0 and ds.classes is None and ds.tensors[1] is None
    assert ds.sample_shape == (1, 6, 6)
    assert ds[2][1].item() == -1
    with pytest.raises(ValueError, match="conditional"):
        ds.require_labels("cgan")


def test_folder_mixed_root_and_subfolders(tmp_path):
    _save(tmp_path / "a.png", _gray(1))
    _save(tmp_path / "cls" / "b.png", _gray(2))
    with pytest.raises(ValueError, match="both directly"):
        gd.load(tmp_path)


def test_folder_unreadable_file(tmp_path):
    _save(tmp_path / "good.png", _gray(1))
    (tmp_path / "broken.png").write_bytes(b"this is not a png")
    with pytest.raises(ValueError, match="broken.png"):
        gd.load(tmp_path)


def test_folder_mixed_channels(tmp_path):
    _save(tmp_path / "gray.png", _gray(100))
    _save(tmp_path / "rgb.png", _rgb(10, 20, 30))
    with pytest.raises(ValueError, match="channels=") as info:
        gd.load(tmp_path)
    msg = str(info.value)
    assert "gray.png has 1" in msg and "rgb.png has 3" in msg
    x = gd.load(tmp_path, channels=3).tensors[0]
    assert torch.equal(x[0], _px(100).expand(3, 4, 4))
    x = gd.load(tmp_path, channels=1).tensors[0]
    # PIL's BT.601 luma, rounded to uint8: 0.299*10 + 0.587*20 + 0.114*30 = 18.15 -> 18
    assert torch.equal(x[1], _px(18).expand(1, 4, 4))


def test_folder_modes(tmp_path):
    _save(tmp_path / "rgba" / "a.png", np.full((4, 4, 4), 200, np.uint8), "RGBA")
    _save(tmp_path / "la" / "a.png", np.full((4, 4, 2), 60, np.uint8), "LA")
    _save(tmp_path / "p" / "a.gif", _rgb(255, 0, 0))
    _save(tmp_path / "i16" / "a.png", np.full((4, 4), 65535, np.uint16))
    assert gd.load(tmp_path / "rgba").sample_shape == (4, 4, 4)
    assert torch.equal(gd.load(tmp_path / "la").tensors[0], _px(60).expand(1, 1, 4, 4))
    red = gd.load(tmp_path / "p").tensors[0][0]
    assert red.shape == (3, 4, 4) and red[0].eq(1).all() and red[1:].eq(-1).all()
    assert gd.load(tmp_path / "i16").tensors[0].eq(1).all()  # 16-bit white is white, not clipped garbage


def test_folder_sizes(tmp_path):
    _save(tmp_path / "a.png", _gray(0, 8, 8))
    # 16 wide, 8 high; column c holds 10 * c.
    _save(tmp_path / "b.png", np.tile(np.arange(16, dtype=np.uint8) * 10, (8, 1)))
    with pytest.raises(ValueError, match="image_size") as info:
        gd.load(tmp_path)
    assert "a.png" in str(info.value) and "b.png" in str(info.value)
    x = gd.load(tmp_path, image_size=8).tensors[0]
    assert x.shape == (2, 1, 8, 8)
    # shorter side already 8: no resampling, centre crop keeps columns 4..11
    expected = (torch.arange(4, 12).float() * 10 / 127.5 - 1).expand(8, 8)
    assert torch.equal(x[1, 0], expected)
    assert gd.load(tmp_path, image_size=4).tensors[0].shape == (2, 1, 4, 4)


def test_folder_common_nonsquare_size_is_kept(tmp_path):
    for i in range(2):
        _save(tmp_path / f"{i}.png", _gray(i, 3, 5))
    assert gd.load(tmp_path).sample_shape == (1, 3, 5)


def test_folder_empty_and_missing(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty.*\.png, \.jpg"):
        gd.load(tmp_path / "empty")
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="no images"):
        gd.load(tmp_path / "texts")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        gd.load_image_folder(tmp_path / "nowhere")


def _small_folder(root):
    for k, cls in enumerate(["a", "b"]):
        for i in range(3):
            _save(root / cls / f"{i}.png", _rgb(40 * i, 10 * k, 200, 6, 10))
    return root


def test_folder_lazy_matches_eager(tmp_path, monkeypatch):
    root = _small_folder(tmp_path)
    eager = gd.load_image_folder(root, image_size=4, eager=True)
    lazy = gd.load_image_folder(root, image_size=4, eager=False)
    assert lazy.tensors is None and isinstance(lazy, gd.LazyImageFolder) and "lazy" in repr(lazy)
    assert len(lazy) == 6 and lazy.sample_shape == eager.sample_shape == (3, 4, 4) and lazy.classes == ["a", "b"]
    for i in range(6):
        xl, yl = lazy[i]
        xe, ye = eager[i]
        assert torch.equal(xl, xe) and torch.equal(yl, ye)
    monkeypatch.setattr(folder_mod, "EAGER_MAX_IMAGES", 5)  # load() decides by size
    assert gd.load(root).tensors is None


def test_folder_subset(tmp_path):
    root = _small_folder(tmp_path)
    ds = gd.load(root, num_samples=4, seed=2)
    assert len(ds) == 4 and ds.classes == ["a", "b"]
    assert torch.equal(ds.tensors[0], gd.load(root, num_samples=4, seed=2).tensors[0])


# -- .npy / .npz ----------------------------------------------------------------------------


def test_npy_points(tmp_path):
    pts = np.random.default_rng(0).normal(size=(50, 3))
    np.save(tmp_path / "p.npy", pts)
    ds = gd.load(tmp_path / "p.npy")
    assert (ds.kind, ds.sample_shape, ds.num_classes, ds.modes) == ("points", (3,), 0, None)
    assert torch.equal(ds.tensors[0], torch.from_numpy(pts.astype(np.float32)))
    with pytest.raises(ValueError, match="image_size"):
        gd.load(tmp_path / "p.npy", image_size=8)


@pytest.mark.parametrize(
    "shape, to_nchw",
    [
        ((5, 6, 7), lambda a: a[:, None]),
        ((5, 3, 6, 7), lambda a: a),
        ((5, 6, 7, 3), lambda a: a.transpose(0, 3, 1, 2)),
        ((5, 6, 7, 4), lambda a: a.transpose(0, 3, 1, 2)),
        ((5, 1, 6, 1), lambda a: a),  # ambiguous: channels-first wins
        ((5, 3, 4, 3), lambda a: a),
    ],
)
def test_npy_image_layouts(tmp_path, shape, to_nchw):
    a = np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8)
    np.save(tmp_path / "im.npy", a)
    ds = gd.load(tmp_path / "im.npy")
    expected = torch.from_numpy(np.ascontiguousarray(to_nchw(a))).float() / 127.5 - 1
    assert ds.kind == "image" and ds.sample_shape == tuple(expected.shape[1:])
    assert torch.equal(ds.tensors[0], expected)


def test_npy_float_images_taken_as_given_and_resized(tmp_path):
    a = np.random.default_rng(2).uniform(-1, 1, size=(4, 1, 8, 8)).astype(np.float64)
    np.save(tmp_path / "f.npy", a)
    assert torch.equal(gd.load(tmp_path / "f.npy").tensors[0], torch.from_numpy(a.astype(np.float32)))
    # Antialiased bilinear at scale 1/2 is a triangle filter two source pixels
    # wide: output i centred on source 2i + 0.5 weighs sources 2i-1..2i+2 by
    # 1, 3, 3, 1 (/8), renormalised where the image edge cuts it off.
    w = torch.zeros(4, 8, dtype=torch.float64)
    for i in range(4):
        for j in range(8):
            w[i, j] = max(0.0, 1 - abs(j - (2 * i + 0.5)) / 2)
    w /= w.sum(dim=1, keepdim=True)
    small = gd.load(tmp_path / "f.npy", image_size=4).tensors[0].double()
    torch.testing.assert_close(small, w @ torch.from_numpy(a) @ w.T, atol=1e-5, rtol=0)
    assert gd.load(tmp_path / "f.npy", channels=3).sample_shape == (3, 8, 8)


def test_npy_float_images_outside_training_range_are_refused(tmp_path):
    """A float .npy of 0..255 images trained silently as if in [-1, 1]: refused with the conversion to make;
    [0, 1] images (in range, but surely not meant as [-1, 1]) load with a warning; [-1, 1] ones load quietly."""
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, size=(3, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "px.npy", pixels)
    with pytest.raises(ValueError, match=r"px.npy: float images must be in \[-1, 1\].*from \d+ to 255.*uint8"):
        gd.load(tmp_path / "px.npy")
    np.save(tmp_path / "wide.npy", rng.uniform(-3, 3, size=(3, 8, 8)).astype(np.float32))
    with pytest.raises(ValueError, match="wide.npy: float images must be in .*rescale them to"):
        gd.load(tmp_path / "wide.npy")
    unit = rng.uniform(0, 1, size=(3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "unit.npy", unit)
    with pytest.warns(UserWarning, match=r"unit.npy: every value of these float images lies in \[0, "):
        ds = gd.load(tmp_path / "unit.npy")
    assert torch.equal(ds.tensors[0][:, 0], torch.from_numpy(unit))
    signed = (unit * 2 - 1).astype(np.float32)
    np.save(tmp_path / "signed.npy", signed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(gd.load(tmp_path / "signed.npy").tensors[0][:, 0], torch.from_numpy(signed))
    pts = rng.uniform(0, 300, size=(20, 2)).astype(np.float32)  # points have no range convention
    np.save(tmp_path / "pts.npy", pts)
    assert torch.equal(gd.load(tmp_path / "pts.npy").tensors[0], torch.from_numpy(pts))


def test_npz_with_labels(tmp_path):
    x = np.random.default_rng(3).integers(0, 256, size=(6, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 2, 2, 1, 0, 4]))
    ds = gd.load(tmp_path / "d.npz")
    assert ds.num_classes == 5 and ds.classes == ["0", "1", "2", "3", "4"]
    assert ds.tensors[1].dtype == torch.int64 and ds.tensors[1].tolist() == [0, 2, 2, 1, 0, 4]
    assert ds.sample_shape == (3, 8, 8)
    np.savez(tmp_path / "e.npz", images=x, labels=np.array([0, 1, 0, 1, 0, 1], dtype=np.float32))
    assert gd.load(tmp_path / "e.npz").num_classes == 2  # whole-number float labels are fine
    np.savez(tmp_path / "f.npz", samples=x[:, :, :, 0])
    ds = gd.load(tmp_path / "f.npz")
    assert ds.sample_shape == (1, 8, 8) and ds.num_classes == 0


@pytest.mark.parametrize(
    "arrays, match",
    [
        (dict(x=np.zeros((0, 2))), "empty"),
        (dict(x=np.array([[0.0, np.nan]])), "finite"),
        (dict(x=np.array([[0.0, np.inf]])), "finite"),
        (dict(x=np.zeros(5)), r"shape \(5,\)"),
        (dict(x=np.zeros((2, 3, 3, 3, 3))), "shape"),
        (dict(x=np.zeros((2, 5, 6, 7))), "channel axis"),
        (dict(x=np.zeros((3, 2)), y=np.array([0, 1])), "one label per sample"),
        (dict(x=np.zeros((2, 2)), y=np.array([[0], [1]])), "1-D"),
        (dict(x=np.zeros((2, 2)), y=np.array([0.5, 1.0])), "integers"),
        (dict(x=np.zeros((2, 2)), y=np.array(["a", "b"])), "integers"),
        (dict(x=np.zeros((2, 2)), y=np.array([0, -1])), "non-negative"),
        (dict(a=np.zeros((2, 2)), b=np.zeros((2, 2))), "which array"),
        (dict(x=np.zeros((2, 4, 4), dtype=np.int16)), "uint8"),
    ],
)
def test_npz_errors(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match) as info:
        gd.load(path)
    assert str(path) in str(info.value)


def test_npy_corrupt(tmp_path):
    (tmp_path / "junk.npy").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="junk.npy"):
        gd.load(tmp_path / "junk.npy")


# -- DataLoader -----------------------------------------------------------------------------


def test_dataloader_collation(tmp_path):
    ring = DataLoader(gd.load("ring8", num_samples=40), batch_size=16)
    x, y = next(iter(ring))
    assert x.shape == (16, 2) and x.dtype == torch.float32 and torch.equal(y, torch.full((16,), -1))
    digits = DataLoader(gd.load("digits", image_size=8), batch_size=10, shuffle=True)
    x, y = next(iter(digits))
    assert x.shape == (10, 1, 8, 8) and y.dtype == torch.int64 and y.shape == (10,)
    lazy = gd.load_image_folder(_small_folder(tmp_path), eager=False)
    batches = list(DataLoader(lazy, batch_size=4))
    assert [b[0].shape for b in batches] == [(4, 3, 6, 10), (2, 3, 6, 10)]
    assert torch.cat([b[1] for b in batches]).tolist() == [0, 0, 0, 1, 1, 1]


def test_gandataset_from_tensors():
    ds = gd.GANDataset("mine", torch.zeros(3, 1, 2, 2), torch.tensor([0, 2, 1]))
    assert ds.kind == "image" and ds.num_classes == 3 and ds.classes == ["0", "1", "2"]
    with pytest.raises(ValueError, match="float32"):
        gd.GANDataset("bad", torch.zeros(3, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="one label per sample"):
        gd.GANDataset("bad", torch.zeros(3, 2), torch.tensor([0, 1]))
