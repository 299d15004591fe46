"""``ganfast fid`` on folders of images the tests write, .npz statistics, and the image reading behind it."""

import math
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from ganfast import cli
from ganfast.metrics import FeatureStats, InceptionV3, frechet_distance, load_inception
from ganfast.metrics import images as im

ROOT = Path(__file__).resolve().parents[1]


# -- a PNG writer for every colour type and bit depth (Pillow cannot write 16-bit RGB or 2-bit gray) --


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _filter_row(ftype, row, prev, bpp):
    row, prev = row.astype(np.int32), prev.astype(np.int32)
    left = np.concatenate([np.zeros(bpp, np.int32), row[:-bpp]])
    upleft = np.concatenate([np.zeros(bpp, np.int32), prev[:-bpp]])
    pred = {0: 0, 1: left, 2: prev, 3: (left + prev) // 2, 4: _paeth(left, prev, upleft)}[ftype]
    return ((row - pred) % 256).astype(np.uint8)


def write_png(path, rows: np.ndarray, width: int, color_type: int, depth: int, palette=None):
    """rows: (H, stride) uint8 of packed scanlines.  Row y uses filter type y % 5."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    bpp = max(1, channels * depth // 8)
    raw = b""
    prev = np.zeros(rows.shape[1], np.uint8)
    for y, row in enumerate(rows):
        raw += bytes([y % 5]) + _filter_row(y % 5, row, prev, bpp).tobytes()
        prev = row

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, rows.shape[0], depth, color_type, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
    if palette is not None:
        png += chunk(b"PLTE", palette.astype(np.uint8).tobytes())
    # two IDAT chunks: readers must join them
    data = zlib.compress(raw)
    png += chunk(b"IDAT", data[: len(data) // 2]) + chunk(b"IDAT", data[len(data) // 2:]) + chunk(b"IEND", b"")
    Path(path).write_bytes(png)


def write_rgb_png(path, rgb: np.ndarray):
    h, w, _ = rgb.shape
    write_png(path, rgb.reshape(h, w * 3), w, 2, 8)


# -- reading images (Pillow) ------------------------------------------------------------------


def _hwc(path) -> np.ndarray:
    return im.load_image(str(path)).permute(1, 2, 0).numpy()


def test_load_image_color_types_and_depths(tmp_path):
    """Every PNG colour type and bit depth becomes RGB uint8: alpha dropped, gray repeated, 16 bits -> high byte."""
    rng = np.random.default_rng(0)
    h, w = 7, 11
    rgb = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, size=(h, w, 1), dtype=np.uint8)
    gray = rng.integers(0, 256, size=(h, w), dtype=np.uint8)
    gray3 = np.repeat(gray[..., None], 3, 2)

    write_rgb_png(tmp_path / "rgb.png", rgb)
    np.testing.assert_array_equal(_hwc(tmp_path / "rgb.png"), rgb)

    write_png(tmp_path / "rgba.png", np.concatenate([rgb, alpha], 2).reshape(h, w * 4), w, 6, 8)
    np.testing.assert_array_equal(_hwc(tmp_path / "rgba.png"), rgb)  # alpha dropped

    write_png(tmp_path / "gray.png", gray, w, 0, 8)
    np.testing.assert_array_equal(_hwc(tmp_path / "gray.png"), gray3)

    write_png(tmp_path / "ga.png", np.stack([gray, alpha[..., 0]], 2).reshape(h, w * 2), w, 4, 8)
    np.testing.assert_array_equal(_hwc(tmp_path / "ga.png"), gray3)

    # 16 bits keep the high byte, whatever the colour type (Pillow alone would saturate 16-bit gray at 255).
    rgb16 = rng.integers(0, 65536, size=(h, w, 3), dtype=np.uint16)
    write_png(tmp_path / "rgb16.png", rgb16.astype(">u2").view(np.uint8).reshape(h, w * 6), w, 2, 16)
    np.testing.assert_array_equal(_hwc(tmp_path / "rgb16.png"), (rgb16 >> 8).astype(np.uint8))
    gray16 = rng.integers(0, 65536, size=(h, w), dtype=np.uint16)
    write_png(tmp_path / "gray16.png", gray16.astype(">u2").view(np.uint8).reshape(h, w * 2), w, 0, 16)
    high3 = np.repeat((gray16 >> 8).astype(np.uint8)[..., None], 3, 2)
    np.testing.assert_array_equal(_hwc(tmp_path / "gray16.png"), high3)
    ga16 = np.stack([gray16, rng.integers(0, 65536, size=(h, w), dtype=np.uint16)], 2)
    write_png(tmp_path / "ga16.png", ga16.astype(">u2").view(np.uint8).reshape(h, w * 4), w, 4, 16)
    np.testing.assert_array_equal(_hwc(tmp_path / "ga16.png"), high3)

    palette = rng.integers(0, 256, size=(16, 3), dtype=np.uint8)
    for depth in (4, 8):
        idx = rng.integers(0, 16, size=(h, w), dtype=np.uint8)
        packed = np.packbits(np.unpackbits(idx[..., None], axis=2)[..., 8 - depth:].reshape(h, -1), axis=1) \
            if depth < 8 else idx
        write_png(tmp_path / f"pal{depth}.png", packed, w, 3, depth, palette=palette)
        np.testing.assert_array_equal(_hwc(tmp_path / f"pal{depth}.png"), palette[idx])

    for depth in (1, 2, 4):
        levels = rng.integers(0, 1 << depth, size=(h, w), dtype=np.uint8)
        packed = np.packbits(np.unpackbits(levels[..., None], axis=2)[..., 8 - depth:].reshape(h, -1), axis=1)
        write_png(tmp_path / f"g{depth}.png", packed, w, 0, depth)
        want = (levels.astype(np.uint16) * 255 // ((1 << depth) - 1)).astype(np.uint8)
        np.testing.assert_array_equal(_hwc(tmp_path / f"g{depth}.png"), np.repeat(want[..., None], 3, 2))


def test_load_image_other_formats_and_errors(tmp_path):
    from PIL import Image
    rgb = np.random.default_rng(1).integers(0, 256, size=(9, 13, 3), dtype=np.uint8)
    for ext in ("bmp", "ppm", "tiff", "webp"):
        Image.fromarray(rgb).save(tmp_path / f"x.{ext}", **({"lossless": True} if ext == "webp" else {}))
        np.testing.assert_array_equal(_hwc(tmp_path / f"x.{ext}"), rgb, err_msg=ext)

    (tmp_path / "fake.png").write_bytes(b"GIF89a....")
    with pytest.raises(ValueError, match="cannot read the image .*fake.png"):
        im.load_image(str(tmp_path / "fake.png"))
    write_rgb_png(tmp_path / "whole.png", rgb)
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:120])
    with pytest.raises(ValueError, match="cannot read the image .*cut.png"):
        im.load_image(str(tmp_path / "cut.png"))
    with pytest.raises(FileNotFoundError, match="nowhere.png"):
        im.load_image(str(tmp_path / "nowhere.png"))


def test_load_image_listing_and_batches(tmp_path):
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    write_rgb_png(tmp_path / "b.png", a)
    np.save(tmp_path / "a.npy", a.astype(np.float32) / 255)  # float HWC in [0, 1]
    np.save(tmp_path / "c.npy", np.moveaxis(a, 2, 0))  # uint8 CHW
    (tmp_path / "sub").mkdir()
    np.save(tmp_path / "sub" / "d.npy", rng.integers(0, 256, size=(8, 8), dtype=np.uint8))  # gray, another size
    (tmp_path / "notes.txt").write_text("not an image")
    files = im.list_images(str(tmp_path))
    assert [Path(f).name for f in files] == ["a.npy", "b.png", "c.npy"]
    assert len(im.list_images(str(tmp_path), recursive=True)) == 4
    want = torch.from_numpy(a).permute(2, 0, 1)
    for f in files:
        t = im.load_image(f)
        assert t.dtype == torch.uint8 and torch.equal(t, want), f
    out = list(im.batches(im.list_images(str(tmp_path), recursive=True), batch_size=3))
    assert [tuple(b.shape) for b in out] == [(3, 3, 6, 5), (1, 3, 8, 8)]
    np.save(tmp_path / "bad.npy", np.full((4, 4, 3), 2.0))
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        im.load_image(str(tmp_path / "bad.npy"))


# -- the command ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Two folders of PNG images and a weights file (the real architecture with random weights)."""
    base = tmp_path_factory.mktemp("fid")
    rng = np.random.default_rng(3)
    for name, lo, n in (("A", 0, 3), ("B", 60, 4)):
        folder = base / name
        folder.mkdir()
        for i in range(n):
            write_rgb_png(folder / f"{i:03d}.png", rng.integers(lo, 256, size=(24, 20, 3), dtype=np.uint8))
    torch.manual_seed(9)
    weights = base / "inception_random.pth"
    torch.save(InceptionV3().state_dict(), weights)
    return base, weights


def _expected(base, weights):
    net = load_inception(weights)
    stats = []
    for name in "AB":
        x = torch.stack([im.load_image(f) for f in im.list_images(str(base / name))])
        with torch.no_grad():
            stats.append(FeatureStats().update(net(x.float() / 255)))
    return frechet_distance(stats[0].mean(), stats[0].covariance(), stats[1].mean(), stats[1].covariance()), stats


def _fid_line(out: str) -> float:
    lines = [ln for ln in out.splitlines() if ln.startswith("FID: ")]
    assert len(lines) == 1, out
    return float(lines[0].split()[1])


def test_fid_two_folders_and_stats_files(setup, capsys):
    base, weights = setup
    want, stats = _expected(base, weights)
    rc = cli.main(["fid", str(base / "A"), str(base / "B"), "--weights", str(weights), "--batch-size", "2",
                   "--device", "cpu", "--save-stats", str(base / "A.npz"), "--save-stats", str(base / "B.npz")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert _fid_line(out.out) == pytest.approx(want, abs=1e-6)
    assert "A" in out.err and "4/4 images" in out.err  # the progress bar ends at the total
    # a handful of samples: the number comes with a warning naming the count and the minimum
    assert "ganfast fid: warning: FID from 3 A samples is unreliable: below 2,048" in out.err, out.err
    assert "pixel(s) on a side" not in out.err  # 24x20 images are large enough
    np.testing.assert_allclose(FeatureStats.load(base / "A.npz").covariance().numpy(), stats[0].covariance().numpy(),
                               rtol=1e-6, atol=1e-9)
    # statistics files instead of folders (and mixed), no weights needed for .npz
    rc = cli.main(["fid", str(base / "A.npz"), str(base / "B.npz")])
    out = capsys.readouterr()
    assert rc == 0 and _fid_line(out.out) == pytest.approx(want, abs=1e-6)
    # one folder with --save-stats: statistics only
    rc = cli.main(["fid", str(base / "B"), "--weights", str(weights), "--save-stats", str(base / "B2.npz"),
                   "--no-progress"])
    out = capsys.readouterr()
    assert rc == 0 and "FID" not in out.out and out.err.startswith("wrote the statistics")
    assert FeatureStats.load(base / "B2.npz").count == 4


def test_fid_warns_about_tiny_images_and_few_samples(setup, capsys):
    """FID from 1x1-pixel images printed a number without a word: it still does, with the reason it means little;
    the API warns about the sample counts too."""
    from ganfast.metrics import FID

    base, weights = setup
    for name in ("tiny_a", "tiny_b"):
        (base / name).mkdir(exist_ok=True)
        for i in range(3):
            write_rgb_png(base / name / f"{i}.png", np.full((1, 1, 3), 40 * i + (name == "tiny_b") * 9, np.uint8))
    rc = cli.main(["fid", str(base / "tiny_a"), str(base / "tiny_b"), "--weights", str(weights), "--no-progress"])
    out = capsys.readouterr()
    assert rc == 0 and math.isfinite(_fid_line(out.out))
    warnings_ = [ln for ln in out.err.splitlines() if ln.startswith("ganfast fid: warning: ")]
    assert len(warnings_) == 3, out.err  # A's count, B's count, the size
    assert "images of 1 pixel(s) on a side are below the 16-pixel minimum" in warnings_[-1]
    g = torch.Generator().manual_seed(0)
    fid = FID(feature_extractor=lambda x: x.flatten(1)[:, :4].double())
    fid.update_features(torch.randn(10, 4, generator=g, dtype=torch.float64), real=True)
    fid.update_features(torch.randn(3, 4, generator=g, dtype=torch.float64), real=False)
    with pytest.warns(UserWarning, match="FID from 3 generated samples is unreliable: below 4"):
        fid.compute()


def test_fid_command_line_entry_point(setup):
    """`python -m ganfast fid A B` in a fresh process, weights from the environment."""
    base, weights = setup
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env["GANFAST_INCEPTION_WEIGHTS"] = str(weights)
    env.pop("TRITON_INTERPRET", None)
    proc = subprocess.run([sys.executable, "-m", "ganfast", "fid", str(base / "A"), str(base / "B"), "--device", "cpu"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    want, _ = _expected(base, weights)
    assert _fid_line(proc.stdout) == pytest.approx(want, abs=1e-6)


def test_fid_command_errors(setup, capsys, monkeypatch, tmp_path):
    base, weights = setup
    monkeypatch.delenv("GANFAST_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert cli.main(["fid", str(base / "A"), str(base / "B")]) == 2  # a missing weights file is a user mistake
    err = capsys.readouterr().err
    assert "pt_inception-2015-12-05-6726825d.pth" in err and "GANFAST_INCEPTION_WEIGHTS" in err
    assert cli.main(["fid", str(base / "A")]) == 2
    assert "--save-stats" in capsys.readouterr().err
    assert cli.main(["fid", str(base / "A"), str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "one").mkdir()
    write_rgb_png(tmp_path / "one" / "x.png", np.zeros((4, 4, 3), np.uint8))
    assert cli.main(["fid", str(tmp_path / "one"), str(base / "B"), "--weights", str(weights)]) == 2
    assert "FID needs at least 2" in capsys.readouterr().err
    assert cli.main(["fid", str(base / "A"), str(base / "B"), "--batch-size", "0"]) == 2
    capsys.readouterr()
    (tmp_path / "two").mkdir()
    write_rgb_png(tmp_path / "two" / "a.png", np.full((4, 4, 3), 7, np.uint8))
    (tmp_path / "two" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert cli.main(["fid", str(tmp_path / "two"), str(base / "B"), "--weights", str(weights), "--no-progress"]) == 2
    assert "cannot read the image" in (err := capsys.readouterr().err) and "b.png" in err, err
    with pytest.raises(SystemExit):
        cli.main(["fid"])


def test_every_reader_decodes_a_file_to_the_same_pixels(tmp_path):
    """FID folders, training folders (eager and lazy), and translate/upscale/inpaint's decode_image read each
    kind of file through one decoder: the same RGB pixels from every path (16-bit PNGs were read three ways:
    clipped at 255, the high byte, and divided by 257)."""
    from PIL import Image
    import ganfast.data as gd
    from ganfast.data.folder import LazyImageFolder, decode_image

    rng = np.random.default_rng(5)
    h, w = 6, 9
    rgb = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, size=(h, w), dtype=np.uint8)
    alpha = rng.integers(0, 256, size=(h, w), dtype=np.uint8)
    gray16 = rng.integers(0, 65536, size=(h, w), dtype=np.uint16)
    rgb16 = rng.integers(0, 65536, size=(h, w, 3), dtype=np.uint16)
    palette = rng.integers(0, 256, size=(16, 3), dtype=np.uint8)
    idx = rng.integers(0, 16, size=(h, w), dtype=np.uint8)
    g3 = lambda g: np.repeat(g[..., None], 3, 2)  # noqa: E731
    kinds = {}  # name -> expected RGB pixels (None: whatever Pillow's JPEG decoder gives)
    write_png(tmp_path / "palette.png", idx, w, 3, 8, palette=palette)
    kinds["palette.png"] = palette[idx]
    write_png(tmp_path / "gray.png", gray, w, 0, 8)
    kinds["gray.png"] = g3(gray)
    write_png(tmp_path / "gray_alpha.png", np.stack([gray, alpha], 2).reshape(h, w * 2), w, 4, 8)
    kinds["gray_alpha.png"] = g3(gray)
    write_png(tmp_path / "rgba.png", np.concatenate([rgb, alpha[..., None]], 2).reshape(h, w * 4), w, 6, 8)
    kinds["rgba.png"] = rgb
    write_png(tmp_path / "gray16.png", gray16.astype(">u2").view(np.uint8).reshape(h, w * 2), w, 0, 16)
    kinds["gray16.png"] = g3((gray16 >> 8).astype(np.uint8))
    write_png(tmp_path / "rgb16.png", rgb16.astype(">u2").view(np.uint8).reshape(h, w * 6), w, 2, 16)
    kinds["rgb16.png"] = (rgb16 >> 8).astype(np.uint8)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", "JPEG", quality=95)
    kinds["cmyk.jpg"] = None
    Image.fromarray(rgb).save(tmp_path / "progressive.jpg", "JPEG", quality=95, progressive=True)
    kinds["progressive.jpg"] = None
    with Image.open(tmp_path / "cmyk.jpg") as f:
        assert f.mode == "CMYK"
    with Image.open(tmp_path / "progressive.jpg") as f:
        assert f.info.get("progressive") or f.info.get("progression")

    def back(x):  # training's [-1, 1] floats to the uint8 pixels they came from (exact)
        return np.rint((x.numpy() + 1) * 127.5).astype(np.uint8).transpose(1, 2, 0)

    for name, want in kinds.items():
        path = str(tmp_path / name)
        folder = tmp_path / f"only_{name}"
        folder.mkdir()
        (folder / name).write_bytes((tmp_path / name).read_bytes())
        reads = {
            "fid": _hwc(path),
            "decode_image": back(decode_image(path, 3)),
            "training folder": back(gd.load(str(folder), channels=3).tensors[0][0]),
            "lazy training folder": back(LazyImageFolder("lazy", [path], None, None, 3, (h, w), None)[0][0]),
        }
        if want is None:  # JPEG: Pillow's decoder is the truth
            with Image.open(path) as f:
                want = np.asarray(f.convert("RGB"))
        for how, got in reads.items():
            np.testing.assert_array_equal(got, want, err_msg=f"{name} read by {how}")
