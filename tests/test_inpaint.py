"""Semantic inpainting (Yeh et al. 2017): the weighted mask against eq. 3 by loops, the latent search, restarts,
Poisson blending, and ganfast inpaint on files the test writes, with its one-line errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from ganfast.cli import main
from ganfast.models import build
from ganfast.train import TrainConfig, Trainer
from ganfast.train.inpaint import center_mask, contextual_weights, inpaint, poisson_blend, random_mask

import cv2  # noqa: E402, F401  (a dependency: missing it fails, not skips)


def _weights_by_loops(mask, window):
    """Eq. 3 read literally, in float64: W_i = sum_{j in N(i)} (1 - M_j) / |N(i)| for M_i = 1, else 0."""
    h, w = mask.shape
    r = window // 2
    out = np.zeros((h, w), np.float64)
    for i in range(h):
        for j in range(w):
            if mask[i, j] == 0:
                continue
            total, count = 0.0, 0
            for a in range(i - r, i + r + 1):
                for b in range(j - r, j + r + 1):
                    if 0 <= a < h and 0 <= b < w:
                        total += 1.0 - mask[a, b]
                        count += 1
            out[i, j] = total / count
    return out


@pytest.mark.parametrize("window", [7, 3, 1])
def test_contextual_weights_are_eq3(window):
    mask = np.ones((9, 11))
    mask[3:6, 4:8] = 0
    mask[0, 10] = 0  # a hole in a corner: the window is cut at the border
    mask[8, 0:2] = 0
    got = contextual_weights(torch.from_numpy(mask), window)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), _weights_by_loops(mask, window), rtol=0, atol=1e-12)
    f32 = contextual_weights(torch.from_numpy(mask).float()[None], window)
    assert f32.shape == (1, 9, 11) and f32.dtype == torch.float32
    if window == 7:  # a known pixel beside the hole weighs more than one farther off; unknown pixels weigh 0
        assert got[3, 3] > got[0, 0] and got[4, 5] == 0


def test_contextual_weights_refuse_bad_input():
    with pytest.raises(ValueError, match="odd"):
        contextual_weights(torch.ones(4, 4), 4)
    with pytest.raises(ValueError, match="only 0"):
        contextual_weights(torch.full((4, 4), 0.5))


def test_masks():
    m = center_mask(32)
    assert m.shape == (32, 32) and m[8:24, 8:24].sum() == 0 and m.sum() == 32 * 32 - 16 * 16
    r = random_mask(64, generator=torch.Generator().manual_seed(0))
    assert set(r.unique().tolist()) == {0.0, 1.0} and 0.75 < 1 - r.mean().item() < 0.85


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build("dcgan", sample_shape=(1, 16, 16), width=8, latent_dim=8).eval()


def _target(model):
    """An image G can make, so the search has something to find."""
    with torch.no_grad():
        z = model.sample_inputs(1, generator=torch.Generator().manual_seed(5))["latent"]
        return model.sample(latent=z)[0]


def test_the_loss_falls_and_restarts_pick_the_lowest(model):
    image = _target(model)
    mask = center_mask(16)
    res = inpaint(model, image, mask, steps=40, restarts=3, lr=0.05, generator=torch.Generator().manual_seed(0))
    assert res.history.shape == (41, 1, 3) and res.loss.shape == (1, 3)
    start, end = res.history[0, 0], res.history[-1, 0]
    assert bool((end < start).all()), (start, end)
    assert res.best.item() == res.loss[0].argmin().item()
    assert torch.equal(res.history[-1], res.loss)
    # raw is G of the kept code, and the kept code's loss is eq. 2 of it
    with torch.no_grad():
        g = model.sample(latent=res.latent)
    torch.testing.assert_close(res.raw, g)
    w = contextual_weights(mask)
    contextual = (w * (g[0] - image)).abs().sum()
    torch.testing.assert_close(res.contextual[0], contextual)
    torch.testing.assert_close(res.loss[0, res.best[0]], res.contextual[0] + 0.003 * res.prior[0])
    assert model.training is False and all(p.requires_grad for p in model.parameters())


def test_restart_selection_over_a_batch_of_images(model):
    images = torch.stack([_target(model), -_target(model)])
    res = inpaint(model, images, center_mask(16), steps=3, restarts=4, blend=False,
                  generator=torch.Generator().manual_seed(1))
    assert torch.equal(res.best, res.loss.argmin(1))
    assert res.raw.shape == (2, 1, 16, 16) and res.latent.shape == (2, 8)
    # sphere constraint: every kept code has norm sqrt(d)
    torch.testing.assert_close(res.latent.norm(dim=1), torch.full((2,), 8 ** 0.5))


def test_blending_keeps_known_pixels_and_follows_the_fills_gradients():
    # the fill is the truth shifted by a constant: Poisson blending (eq. 5) removes the shift inside the hole
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    truth = torch.stack([xx, yy, (xx + yy) / 2]) / 40.0 - 0.6
    fill = truth + 0.3
    mask = center_mask(32)
    image = truth.clone()
    image[:, mask == 0] = -1.0  # what the hole holds is never read
    out = poisson_blend(image[None], fill[None], mask[None])[0]
    known = mask.bool()
    assert torch.equal(out[:, known], image[:, known])
    assert (out[:, ~known] - truth[:, ~known]).abs().max() < 2.5 / 127.5  # 8-bit solver
    assert (fill[:, ~known] - truth[:, ~known]).abs().min() > 0.29


def test_blended_results_keep_the_known_pixels(model):
    image = _target(model)
    mask = random_mask(16, missing=0.5, generator=torch.Generator().manual_seed(2))
    res = inpaint(model, image, mask, steps=2, restarts=2, generator=torch.Generator().manual_seed(0))
    known = mask.bool()
    torch.testing.assert_close(res.blended[0, 0][known], image[0][known], rtol=0, atol=1e-6)
    assert res.blended.abs().max() <= 1


def test_bad_library_input(model):
    image = _target(model)
    with pytest.raises(ValueError, match="no hole"):
        inpaint(model, image, torch.ones(16, 16), steps=1)
    with pytest.raises(ValueError, match="no known pixel"):
        inpaint(model, image, torch.zeros(16, 16), steps=1)
    with pytest.raises(ValueError, match="mask must be"):
        inpaint(model, image, torch.ones(8, 8), steps=1)
    with pytest.raises(ValueError, match="sample shape"):
        inpaint(model, image.expand(3, -1, -1), center_mask(16), steps=1)
    with pytest.raises(ValueError, match="steps"):
        inpaint(model, image, center_mask(16), steps=0)
    with pytest.raises(ValueError, match="translates images"):
        inpaint(build("pix2pix", sample_shape=(1, 16, 16), ngf=4, ndf=4, n_layers_d=1), image, center_mask(16))
    with pytest.raises(ValueError, match="conditional"):
        inpaint(build("cgan", sample_shape=(1, 16, 16), num_classes=3), image, center_mask(16))
    with pytest.raises(ValueError, match="does not sample images"):
        inpaint(build("gan", sample_shape=(2,)), image, center_mask(16))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("inpaint")
    np.save(root / "data.npy", np.random.default_rng(1).integers(0, 256, (8, 16, 16), dtype=np.uint8))
    cfg = TrainConfig(model="dcgan", data=str(root / "data.npy"), steps=1, batch_size=8, out=str(root / "dc"),
                      progress=False, model_options={"width": 8})
    Trainer(cfg).fit()
    pixels = (np.random.default_rng(0).random((16, 16)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(root / "x.png")
    hole = np.full((16, 16), 255, np.uint8)
    hole[4:10, 5:12] = 0
    Image.fromarray(hole).save(root / "m.png")
    return root, pixels, hole


def test_the_command_writes_the_blend_and_the_raw_fill(run, capsys):
    root, pixels, hole = run
    assert main(["inpaint", "--ckpt", str(root / "dc"), "--image", str(root / "x.png"), "--mask", str(root / "m.png"),
                 "--out", str(root / "o" / "b.png"), "--raw", str(root / "o" / "g.png"), "--steps", "3",
                 "--restarts", "2"]) == 0
    assert "wrote" in capsys.readouterr().out
    out = np.asarray(Image.open(root / "o" / "b.png"))
    assert out.shape == (16, 16) and np.array_equal(out[hole > 0], pixels[hole > 0])
    assert np.asarray(Image.open(root / "o" / "g.png")).shape == (16, 16)
    for kind in ("center", "random"):
        assert main(["inpaint", "--ckpt", str(root / "dc"), "--image", str(root / "x.png"), "--mask", kind,
                     "--out", str(root / f"{kind}.png"), "--steps", "2", "--restarts", "1"]) == 0


@pytest.mark.parametrize("change, words", [
    ({"--image": "{root}/nope.png"}, "--image {root}/nope.png does not exist"),
    ({"--mask": "{root}/nope.png"}, "is neither center, random nor an existing mask image"),
    ({"--mask": "{root}/big.png"}, "the mask must be the image's size"),
    ({"--mask": "{root}/full.png"}, "no hole"),
    ({"--mask": "{root}/empty.png"}, "no known pixel"),
    ({"--ckpt": "{root}/none"}, "--ckpt:"),
    ({"--out": "{root}/o.jpg"}, "--out must end in .png"),
    ({"--image": "{root}/bad.png"}, "cannot read the image"),
    ({"--steps": "0"}, "steps must be a positive int"),
    ({"--window": "4"}, "window must be a positive odd int"),
    ({"--raw": "{root}/x.png"}, "--raw {root}/x.png would replace the input image"),
])
def test_command_errors_are_one_line(run, capsys, change, words):
    root, _, _ = run
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(root / "big.png")
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(root / "full.png")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "empty.png")
    (root / "bad.png").write_bytes(b"not a png")
    args = {"--ckpt": f"{root}/dc", "--image": f"{root}/x.png", "--mask": "center", "--out": f"{root}/e.png",
            "--steps": "1", "--restarts": "1"}
    args.update({k: v.format(root=root) for k, v in change.items()})
    assert main(["inpaint"] + [x for kv in args.items() for x in kv]) == 2
    err = capsys.readouterr().err
    assert words.format(root=root) in err and "Traceback" not in err and err.count("\n") == 1, err


def test_a_translation_checkpoint_is_refused(tmp_path, capsys):
    from ganfast.data.edges import PairedTensors

    a = torch.rand(8, 1, 16, 16) * 2 - 1
    cfg = TrainConfig(model="pix2pix", data="tiny", steps=1, batch_size=4, out=str(tmp_path / "p"), progress=False,
                      sample_every=100, model_options={"ngf": 4, "ndf": 4, "n_layers_d": 1})
    Trainer(cfg, dataset=PairedTensors("tiny", a, -a)).fit()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "x.png")
    assert main(["inpaint", "--ckpt", str(tmp_path / "p"), "--image", str(tmp_path / "x.png"), "--mask", "center",
                 "--out", str(tmp_path / "o.png")]) == 2
    assert "translates images rather than sampling them" in capsys.readouterr().err


def test_missing_opencv_is_named(run, capsys, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_cv2(name, *a, **k):
        if name == "cv2":
            raise ImportError("no cv2")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_cv2)
    root, _, _ = run
    assert main(["inpaint", "--ckpt", str(root / "dc"), "--image", str(root / "x.png"), "--mask", "center",
                 "--out", str(root / "n.png"), "--steps", "1"]) == 2
    assert "pip install opencv-python-headless" in capsys.readouterr().err
    # --no-blend needs no OpenCV
    assert main(["inpaint", "--ckpt", str(root / "dc"), "--image", str(root / "x.png"), "--mask", "center",
                 "--out", str(root / "n.png"), "--steps", "1", "--restarts", "1", "--no-blend"]) == 0
