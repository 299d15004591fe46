"""ganfast.data's folder layouts (paired, unpaired, frames, captions) on images written here, pixel-exact."""

import csv

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ganfast.data as gd
from ganfast.data import Batch
from ganfast.train.loader import ShardedBatches

from PIL import Image  # noqa: E402  (a dependency: missing it fails, not skips)


# -- helpers --------------------------------------------------------------------------------------


def save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


def rand_image(seed, h, w, c=3):
    shape = (h, w) if c == 1 else (h, w, c)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def as_tensor(array):
    """uint8 (H, W) or (H, W, C) -> float32 (C, H, W) in [-1, 1], the way the loaders scale."""
    t = torch.from_numpy(np.asarray(array)).float()
    t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
    return t / 127.5 - 1


def flat(value, h=4, w=4):
    return np.full((h, w), value, dtype=np.uint8)


def values(x):
    """The constant uint8 value of each flat image in a (B, ...) batch."""
    return [int(round((v.flatten()[0].item() + 1) * 127.5)) for v in x]


def ab_folder(root, n=3, h=4, w=4, c=3):
    """n side-by-side AB images; returns [(A array, B array)]."""
    pairs = []
    for i in range(n):
        a, b = rand_image(2 * i, h, w, c), rand_image(2 * i + 1, h, w, c)
        save(root / f"{i:03d}.png", np.concatenate([a, b], axis=1))
        pairs.append((a, b))
    return pairs


def two_folders(root, names=("x1", "x2", "y3")):
    """A/ (gray .png) and B/ (RGB .bmp) matched by stem; returns {stem: (A array, B array)}."""
    out = {}
    for k, stem in enumerate(names):
        a, b = rand_image(10 + k, 4, 6, 1), rand_image(20 + k, 4, 6, 3)
        save(root / "A" / f"{stem}.png", a)
        save(root / "B" / f"{stem}.bmp", b)
        out[stem] = (a, b)
    return out


def unpaired_folder(root, na=3, nb=5, prefix="train"):
    for i in range(na):
        save(root / f"{prefix}A" / f"a{i}.png", flat(10 + i))
    for j in range(nb):
        save(root / f"{prefix}B" / f"b{j}.png", flat(100 + j))
    return root


def clip(root, name, numbers, h=4, w=4):
    """Frames frame_<k>.png, each flat with the value k % 256."""
    for k in numbers:
        save(root / name / f"frame_{k}.png", flat(k % 256, h, w))


# -- paired ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("eager", [True, False])
@pytest.mark.parametrize("direction", ["AtoB", "BtoA"])
def test_paired_side_by_side(tmp_path, direction, eager):
    pairs = ab_folder(tmp_path)
    ds = gd.load_paired(tmp_path, direction=direction, eager=eager)
    assert (ds.layout, ds.fields, ds.kind, len(ds), ds.in_memory) == ("paired", ("image", "target"), "image", 3, eager)
    assert ds.sample_shape == ds.target_shape == (3, 4, 4) and ds.tensors is None
    batch = ds.batch(torch.tensor([2, 0]))
    for k, i in enumerate([2, 0]):
        a, b = (as_tensor(p) for p in pairs[i])
        image, target = (a, b) if direction == "AtoB" else (b, a)
        assert torch.equal(ds[i]["image"], image) and torch.equal(ds[i]["target"], target)
        assert torch.equal(batch.image[k], image) and torch.equal(batch.target[k], target)
    same = gd.load(tmp_path, layout="paired", direction=direction)  # the registry route
    assert torch.equal(same[1]["image"], ds[1]["image"])


@pytest.mark.parametrize("direction", ["AtoB", "BtoA"])
def test_paired_a_b_folders_detected(tmp_path, direction):
    pairs = two_folders(tmp_path)
    ds = gd.load(tmp_path, direction=direction)  # exactly A/ and B/: detected as paired
    assert isinstance(ds, gd.PairedImages) and len(ds) == 3
    shapes = ((1, 4, 6), (3, 4, 6)) if direction == "AtoB" else ((3, 4, 6), (1, 4, 6))
    assert (ds.sample_shape, ds.target_shape) == shapes
    for i, stem in enumerate(sorted(pairs)):
        a, b = (as_tensor(p) for p in pairs[stem])
        image, target = (a, b) if direction == "AtoB" else (b, a)
        assert torch.equal(ds[i]["image"], image) and torch.equal(ds[i]["target"], target)
    as_classes = gd.load(tmp_path, layout="images", channels=3)  # the explicit way back to class folders
    assert as_classes.classes == ["A", "B"] and len(as_classes) == 6


def test_paired_image_size_resizes_each_half(tmp_path):
    pairs = ab_folder(tmp_path, n=2, h=6, w=9)
    ds = gd.load(tmp_path, layout="paired", image_size=4)
    for i, (a, b) in enumerate(pairs):
        for got, src in ((ds[i]["image"], a), (ds[i]["target"], b)):
            # shorter side 6 -> 4: (6, 9) -> (4, 6), then the centre 4 columns
            want = F.interpolate(as_tensor(src)[None], size=(4, 6), mode="bilinear", antialias=True,
                                 align_corners=False)[0, :, :, 1:5].clamp(-1, 1)
            torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    two_folders(tmp_path / "ab")
    resized = gd.load(tmp_path / "ab", image_size=2, channels=3)
    assert resized.sample_shape == resized.target_shape == (3, 2, 2)


def test_paired_splits(tmp_path):
    train = ab_folder(tmp_path / "train", n=2)
    (tmp_path / "test").mkdir()
    save(tmp_path / "test" / "t.png", np.zeros((4, 8, 3), np.uint8))
    assert len(gd.load(tmp_path, layout="paired")) == 2 and gd.load(tmp_path, layout="paired").split == "train"
    assert torch.equal(gd.load(tmp_path, layout="paired")[1]["target"], as_tensor(train[1][1]))
    test = gd.load(tmp_path, layout="paired", split="test")
    assert len(test) == 1 and test.split == "test" and test[0]["image"].eq(-1).all()
    with pytest.raises(ValueError, match=r"split='val'.*train, test"):
        gd.load(tmp_path, layout="paired", split="val")
    with pytest.raises(ValueError, match="no split sub-folders"):
        gd.load(tmp_path / "test", layout="paired", split="test")


def test_paired_subset(tmp_path):
    ab_folder(tmp_path, n=5)
    ds = gd.load(tmp_path, layout="paired", num_samples=3, seed=1)
    assert len(ds) == 3
    again = gd.load(tmp_path, layout="paired", num_samples=3, seed=1)
    assert torch.equal(ds.batch(torch.arange(3)).image, again.batch(torch.arange(3)).image)


def test_paired_errors(tmp_path):
    save(tmp_path / "odd" / "a.png", rand_image(0, 4, 7))
    with pytest.raises(ValueError, match=r"a\.png.*odd width \(7"):
        gd.load(tmp_path / "odd", layout="paired")

    two_folders(tmp_path / "lonely", names=("p", "q"))
    save(tmp_path / "lonely" / "A" / "only_a.png", flat(1, 4, 6))
    save(tmp_path / "lonely" / "B" / "only_b.png", flat(1, 4, 6))
    with pytest.raises(ValueError, match=r"no partner.*only_a") as info:
        gd.load(tmp_path / "lonely")
    assert str(tmp_path / "lonely" / "A") in str(info.value)

    for k in range(7):
        save(tmp_path / "many" / "A" / f"m{k}.png", flat(1))
    save(tmp_path / "many" / "B" / "other.png", flat(1))
    with pytest.raises(ValueError, match=r"7 image\(s\).*m0, m1, m2, m3, m4 and 2 more"):
        gd.load(tmp_path / "many")

    save(tmp_path / "half" / "A" / "a.png", flat(1))
    (tmp_path / "half" / "C").mkdir()
    with pytest.raises(ValueError, match="has A/ but no B/"):
        gd.load(tmp_path / "half", layout="paired")

    save(tmp_path / "dup" / "A" / "a.png", flat(1))
    save(tmp_path / "dup" / "A" / "a.bmp", flat(1))
    save(tmp_path / "dup" / "B" / "a.png", flat(1))
    with pytest.raises(ValueError, match="two images named 'a'"):
        gd.load(tmp_path / "dup")

    save(tmp_path / "sizes" / "A" / "a.png", flat(1, 4, 4))
    save(tmp_path / "sizes" / "B" / "a.png", flat(1, 4, 6))
    with pytest.raises(ValueError, match="image_size="):
        gd.load(tmp_path / "sizes")
    assert gd.load(tmp_path / "sizes", image_size=4).target_shape == (1, 4, 4)

    save(tmp_path / "chan" / "A" / "a.png", flat(1))
    save(tmp_path / "chan" / "A" / "b.png", rand_image(0, 4, 4))
    for s in "ab":
        save(tmp_path / "chan" / "B" / f"{s}.png", flat(1))
    with pytest.raises(ValueError, match="channels="):
        gd.load(tmp_path / "chan")

    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        gd.load(tmp_path / "empty", layout="paired")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        gd.load_paired(tmp_path / "nowhere")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"x\.png"):
        gd.load(tmp_path / "bad", layout="paired")
    with pytest.raises(ValueError, match="direction"):
        gd.load(tmp_path / "odd", layout="paired", direction="AB")


# -- unpaired -------------------------------------------------------------------------------------


def test_unpaired_epoch_pairing(tmp_path):
    ds = gd.load(unpaired_folder(tmp_path))  # trainA/ + trainB/: detected
    assert isinstance(ds, gd.UnpairedImages) and (ds.layout, ds.fields) == ("unpaired", ("image", "target"))
    assert len(ds) == 5 and ds.sample_shape == (1, 4, 4) and ds.split == "train"
    everything = torch.arange(5)
    perms = []
    for epoch in range(4):
        b = ds.batch(everything, epoch)
        assert values(b.image) == [10, 11, 12, 10, 11]  # A[i % NA]
        perm = [v - 100 for v in values(b.target)]
        assert sorted(perm) == list(range(5))  # every B once per pass over NB samples
        ds.set_epoch(epoch)
        assert [values(ds[i]["target"][None])[0] - 100 for i in range(5)] == perm  # __getitem__ agrees
        perms.append(perm)
    assert len({tuple(p) for p in perms}) > 1  # the pairs change with the epoch
    again = gd.load(tmp_path)
    assert [[v - 100 for v in values(again.batch(everything, e).target)] for e in range(4)] == perms
    other = gd.load(tmp_path, seed=5)
    assert [[v - 100 for v in values(other.batch(everything, e).target)] for e in range(4)] != perms


def test_unpaired_splits_channels_and_subset(tmp_path):
    unpaired_folder(tmp_path, 2, 2, "train")
    unpaired_folder(tmp_path, 4, 1, "test")
    ds = gd.load(tmp_path, split="test")
    assert len(ds) == 4 and ds.split == "test" and values(ds.batch(torch.arange(4)).target) == [100] * 4
    with pytest.raises(ValueError, match=r"valA/ and valB/.*split='test', 'train'"):
        gd.load(tmp_path, layout="unpaired", split="val")
    assert len(gd.load(tmp_path, num_samples=3, split="test")) == 3
    with pytest.raises(ValueError, match="num_samples=5"):
        gd.load(tmp_path, num_samples=5, split="test")

    save(tmp_path / "rgb" / "trainA" / "a.png", flat(3))
    save(tmp_path / "rgb" / "trainB" / "b.png", rand_image(1, 4, 4))
    with pytest.raises(ValueError, match="channels="):
        gd.load(tmp_path / "rgb")
    ds = gd.load(tmp_path / "rgb", channels=3)
    assert ds.sample_shape == (3, 4, 4) and torch.equal(ds[0]["target"], as_tensor(rand_image(1, 4, 4)))


def test_unpaired_errors(tmp_path):
    save(tmp_path / "cls" / "cat" / "a.png", flat(1))
    with pytest.raises(ValueError, match=r"layout 'unpaired' expects sub-folders trainA/ and trainB/.*cat"):
        gd.load(tmp_path / "cls", layout="unpaired")
    (tmp_path / "empty" / "trainA").mkdir(parents=True)
    save(tmp_path / "empty" / "trainB" / "b.png", flat(1))
    with pytest.raises(ValueError, match=r"no images found in domain folder .*trainA"):
        gd.load(tmp_path / "empty")
    with pytest.raises(ValueError, match=r"direction='AtoB' does not apply.*unpaired"):
        gd.load(unpaired_folder(tmp_path / "ok"), direction="AtoB")


# -- frames ---------------------------------------------------------------------------------------


def test_frames_numeric_order_and_windows(tmp_path):
    clip(tmp_path, "walk", range(1, 13))  # frame_2 must come before frame_10
    clip(tmp_path, "run", [7, 30, 200, 1000])
    clip(tmp_path, "blink", [1, 2])
    with pytest.warns(UserWarning, match=r"1 clip\(s\).*blink \(2\)"):
        ds = gd.load(tmp_path, layout="frames")
    assert (ds.layout, ds.fields, ds.frames_per_sample, ds.sample_shape) == ("frames", ("frames",), 3, (1, 4, 4))
    assert ds.clips == [["run", "walk"]] and len(ds) == 2 + 10
    windows = [[7, 30, 200], [30, 200, 1000]] + [[k, k + 1, k + 2] for k in range(1, 11)]
    got = ds.batch(torch.arange(len(ds))).frames
    assert got.shape == (12, 3, 1, 4, 4)
    assert [values(w) for w in got] == [[v % 256 for v in w] for w in windows]
    assert torch.equal(ds[5]["frames"], got[5])
    with pytest.warns(UserWarning):
        five = gd.load(tmp_path, layout="frames", frames_per_sample=5)
    assert len(five) == 8 and five[0]["frames"].shape == (5, 1, 4, 4)


def test_frames_two_domains(tmp_path):
    clip(tmp_path / "A", "c1", range(1, 5))
    clip(tmp_path / "B", "d1", range(50, 53))
    clip(tmp_path / "B", "d2", range(60, 63))
    ds = gd.load(tmp_path, layout="frames", frames_per_sample=2)
    assert ds.fields == ("frames", "target_frames") and len(ds) == 4  # max(3 windows, 2 + 2 windows)
    for epoch in range(3):
        b = ds.batch(torch.arange(4), epoch)
        assert [values(w) for w in b.frames] == [[1, 2], [2, 3], [3, 4], [1, 2]]
        starts = sorted(values(w)[0] for w in b.target_frames)
        assert starts == [50, 51, 60, 61]
        assert all(values(w)[1] == values(w)[0] + 1 for w in b.target_frames)
    clip(tmp_path / "v" / "testA", "c", range(1, 4))
    clip(tmp_path / "v" / "testB", "d", range(1, 4))
    with pytest.raises(ValueError, match=r"expects sub-folders trainA/ and trainB/.*split='test'"):
        gd.load(tmp_path / "v", layout="frames")
    assert gd.load(tmp_path / "v", layout="frames", split="test").fields == ("frames", "target_frames")


def test_frames_errors(tmp_path):
    clip(tmp_path / "nonum", "c", [1, 2, 3])
    save(tmp_path / "nonum" / "c" / "cover.png", flat(0))
    with pytest.raises(ValueError, match=r"cover\.png has no number"):
        gd.load(tmp_path / "nonum", layout="frames")
    clip(tmp_path / "dup", "c", [1, 2, 3])
    save(tmp_path / "dup" / "c" / "frame_01.png", flat(0))
    with pytest.raises(ValueError, match="same number 1"):
        gd.load(tmp_path / "dup", layout="frames")
    clip(tmp_path / "short", "c", [1, 2])
    with pytest.raises(ValueError, match=r"no clip .* frames_per_sample=3.*c \(2\)"):
        gd.load(tmp_path / "short", layout="frames")
    save(tmp_path / "flat" / "frame_1.png", flat(0))
    with pytest.raises(ValueError, match="one sub-folder per clip"):
        gd.load(tmp_path / "flat", layout="frames")
    clip(tmp_path / "sizes", "a", [1, 2, 3], 4, 4)
    clip(tmp_path / "sizes", "b", [1, 2, 3], 4, 6)
    with pytest.raises(ValueError, match="image_size="):
        gd.load(tmp_path / "sizes", layout="frames")
    assert gd.load(tmp_path / "sizes", layout="frames", image_size=2).sample_shape == (1, 2, 2)
    with pytest.raises(ValueError, match="frames_per_sample"):
        gd.load(tmp_path / "sizes", layout="frames", frames_per_sample=0)
    with pytest.raises(TypeError, match="frames_per_sample"):
        gd.load(tmp_path / "sizes", layout="frames", frames_per_sample=2.0)


# -- captions -------------------------------------------------------------------------------------


def test_captions_from_text_files(tmp_path):
    bird, cat = rand_image(1, 4, 4), rand_image(2, 4, 4)
    save(tmp_path / "bird_01.png", bird)
    (tmp_path / "bird_01.txt").write_text("a small red bird\n\n  a bird on a branch  \n")
    save(tmp_path / "sub" / "cat.png", cat)
    (tmp_path / "sub" / "cat.txt").write_text("a cat\n")
    ds = gd.load(tmp_path, layout="captions")
    assert (ds.layout, ds.fields, len(ds), ds.sample_shape) == ("captions", ("image", "text"), 2, (3, 4, 4))
    assert ds.captions == [["a small red bird", "a bird on a branch"], ["a cat"]]
    assert torch.equal(ds[0]["image"], as_tensor(bird)) and torch.equal(ds[1]["image"], as_tensor(cat))
    chosen = [ds.batch(torch.tensor([0, 1]), epoch).text for epoch in range(12)]
    assert all(isinstance(t, list) and len(t) == 2 and t[1] == "a cat" for t in chosen)
    assert {t[0] for t in chosen} == {"a small red bird", "a bird on a branch"}  # both get their turn
    again = gd.load(tmp_path, layout="captions")
    assert [again.batch(torch.tensor([0, 1]), epoch).text for epoch in range(12)] == chosen
    ds.set_epoch(7)
    assert ds[0]["text"] == chosen[7][0]


def test_captions_from_csv(tmp_path):
    for k in range(3):
        save(tmp_path / f"im{k}.png", flat(10 * k))
    with open(tmp_path / "captions.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["caption", "file"])
        w.writerows([["zero, with a comma", "im0.png"], ["one", "im1.png"], ["one again", "im1.png"],
                     ["two", "im2.png"]])
    ds = gd.load(tmp_path, layout="captions")
    assert ds.captions == [["zero, with a comma"], ["one", "one again"], ["two"]]
    assert values(ds.batch(torch.tensor([2, 0])).image) == [20, 0]


def test_captions_errors(tmp_path):
    save(tmp_path / "txt" / "a.png", flat(1))
    save(tmp_path / "txt" / "b.png", flat(1))
    (tmp_path / "txt" / "a.txt").write_text("fine\n")
    (tmp_path / "txt" / "b.txt").write_text("\n  \n")
    with pytest.raises(ValueError, match=r"1 image\(s\).*no caption.*b\.png"):
        gd.load(tmp_path / "txt", layout="captions")

    save(tmp_path / "csv" / "a.png", flat(1))
    save(tmp_path / "csv" / "b.png", flat(1))
    (tmp_path / "csv" / "captions.csv").write_text("file,caption\na.png,hello\nmissing.png,ghost\n")
    with pytest.raises(ValueError, match=r"line 3: no image 'missing\.png'"):
        gd.load(tmp_path / "csv", layout="captions")
    (tmp_path / "csv" / "captions.csv").write_text("file,caption\na.png,hello\n")
    with pytest.raises(ValueError, match=r"no caption.*rows in .*captions\.csv.*b\.png"):
        gd.load(tmp_path / "csv", layout="captions")
    (tmp_path / "csv" / "captions.csv").write_text("name,text\na.png,hello\n")
    with pytest.raises(ValueError, match=r"columns \('file', 'caption'\)"):
        gd.load(tmp_path / "csv", layout="captions")
    (tmp_path / "none").mkdir()
    with pytest.raises(ValueError, match="no images"):
        gd.load(tmp_path / "none", layout="captions")


# -- the registry ---------------------------------------------------------------------------------


def test_layouts_and_describe():
    assert gd.layouts() == list(gd.LAYOUTS.items())
    described = dict(gd.describe())
    for layout in ("paired", "unpaired", "frames", "captions"):
        assert f"<folder> (layout {layout})" in described


def test_registry_refuses_options(tmp_path):
    save(tmp_path / "imgs" / "a.png", flat(1))
    cases = [
        (("digits",), dict(split="train"), "split='train' does not apply to dataset 'digits'"),
        (("ring8",), dict(frames_per_sample=3), "frames_per_sample=3 does not apply"),
        (("digits",), dict(layout="paired"), "layout='paired' does not fit dataset 'digits'"),
        ((tmp_path / "imgs",), dict(direction="BtoA"), r"direction='BtoA' does not apply to folder .*'images'"),
        ((tmp_path / "imgs",), dict(frames_per_sample=2, layout="paired"), "frames_per_sample=2 does not apply"),
        ((tmp_path / "imgs",), dict(split="test"), "split='test' does not apply"),
        ((tmp_path / "imgs",), dict(layout="points"), "layout='points' does not fit folder"),
        ((tmp_path / "imgs",), dict(layout="captions", split="train"), "split='train' does not apply"),
        (("digits",), dict(layout="pairs"), "layout must be one of"),
    ]
    for args, kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            gd.load(*args, **kwargs)
    with pytest.raises(TypeError, match="layout"):
        gd.load("digits", layout=1)
    with pytest.raises(TypeError, match="split"):
        gd.load("digits", split=0)
    np.save(tmp_path / "p.npy", np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="split='train' does not apply to array file"):
        gd.load(tmp_path / "p.npy", split="train")
    with pytest.raises(ValueError, match="holds points"):
        gd.load(tmp_path / "p.npy", layout="images")
    assert gd.load(tmp_path / "p.npy", layout="points").layout == "points"
    assert gd.load(tmp_path / "imgs", layout="images").layout == "images"


# -- the trainer's batch stream -------------------------------------------------------------------


def build(kind, root, eager):
    if kind == "paired-ab":
        ab_folder(root, n=5)
        return gd.load_paired(root, eager=eager)
    if kind == "paired-folders":
        two_folders(root, names=tuple("abcde"))
        return gd.load_paired(root, eager=eager, direction="BtoA")
    if kind == "unpaired":
        return gd.load_unpaired(unpaired_folder(root, 3, 5), eager=eager, seed=2)
    if kind == "frames":
        clip(root, "c", range(1, 8))
        return gd.load_frames(root, eager=eager)
    if kind == "frames-two":
        clip(root / "trainA", "c", range(1, 7))
        clip(root / "trainB", "d", range(20, 25))
        return gd.load_frames(root, eager=eager, frames_per_sample=2)
    for k in range(5):
        save(root / f"{k}.png", flat(k))
        (root / f"{k}.txt").write_text(f"image {k}\npicture {k}\n")
    return gd.load_captions(root, eager=eager)


KINDS = ["paired-ab", "paired-folders", "unpaired", "frames", "frames-two", "captions"]


def same(x, y):
    if isinstance(x, list):
        return x == y
    return torch.equal(x, y)


@pytest.mark.parametrize("kind", KINDS)
def test_sharded_batches_every_layout(tmp_path, kind):
    eager, lazy = build(kind, tmp_path / "e", True), build(kind, tmp_path / "l", False)
    assert eager.in_memory and not lazy.in_memory
    streams = [ShardedBatches(ds, 2, seed=3) for ds in (eager, lazy)]
    assert streams[0].batches_per_epoch == 2
    seen = [[s() for _ in range(5)] for s in streams]  # crosses two epoch boundaries
    for b_eager, b_lazy in zip(*seen):
        assert isinstance(b_eager, Batch) and isinstance(b_lazy, Batch)
        assert b_eager.fields() == b_lazy.fields() == eager.fields and len(b_eager) == 2
        assert all(same(getattr(b_eager, f), getattr(b_lazy, f)) for f in eager.fields)
    if "frames" in kind:
        assert seen[0][0].frames.shape == (2, eager.frames_per_sample, *eager.sample_shape)
    else:
        assert seen[0][0].image.shape == (2, *eager.sample_shape)
    for ds in (eager, lazy):  # resume from each point: the same next batch
        for start in (1, 3):
            resumed = ShardedBatches(ds, 2, seed=3)
            first = ShardedBatches(ds, 2, seed=3)
            for _ in range(start):
                first()
            resumed.load_state_dict(first.state_dict())
            nxt, again = first(), resumed()
            assert all(same(getattr(nxt, f), getattr(again, f)) for f in ds.fields)
            assert all(same(getattr(nxt, f), getattr(seen[0][start], f)) for f in ds.fields)


def test_sharded_batches_worker_processes_see_the_epoch(tmp_path):
    eager, lazy = (gd.load_unpaired(unpaired_folder(tmp_path / k, 3, 5), eager=k == "e", seed=2) for k in "el")
    main, workers = ShardedBatches(eager, 2, seed=1), ShardedBatches(lazy, 2, seed=1, num_workers=2)
    for _ in range(6):  # three epochs: each worker's copy must pair B as the main process does
        a, b = main(), workers()
        assert torch.equal(a.image, b.image) and torch.equal(a.target, b.target)
