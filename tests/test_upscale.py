"""ganfast upscale: a trained SRResNet on files the test writes; outputs equal the model's; PSNR/SSIM equal
scikit-image's; errors."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ganfast.cli import main
from ganfast.data import GANDataset
from ganfast.train import TrainConfig, Trainer
from ganfast.train.upscale import psnr_ssim


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("upscale")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 16, 16, generator=g) * 2 - 1
    cfg = TrainConfig(model="srresnet", data="tiny", steps=2, batch_size=4, out=str(root / "run"), progress=False,
                      sample_every=100, model_options={"width": 4, "n_blocks": 1})
    t = Trainer(cfg, dataset=GANDataset("tiny", x))
    t.fit()
    rng = np.random.default_rng(1)
    for name in ("a.png", "sub/b.png"):
        (root / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((rng.random((10, 12, 3)) * 255).astype(np.uint8)).save(root / "in" / name)
    Image.fromarray((rng.random((18, 17, 3)) * 255).astype(np.uint8)).save(root / "in" / "big.png")
    Image.fromarray((rng.random((6, 9, 3)) * 255).astype(np.uint8)).save(root / "small.png")
    return root, t.model


def _read(path):
    return torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1).float().div(127.5).sub(1)


def test_images_are_upscaled_at_their_own_size(run, capsys):
    root, model = run
    assert main(["upscale", "--ckpt", str(root / "run"), "--input", str(root / "in"), "--out", str(root / "out")]) == 0
    assert "wrote 3 images (x4, srresnet)" in capsys.readouterr().out
    x = _read(root / "in" / "a.png")
    model.eval()
    with torch.no_grad():
        want = model.translate(x[None])[0].clamp(-1, 1)
    got = _read(root / "out" / "a.png")
    assert got.shape == (3, 40, 48) and (got - want).abs().max() <= 1 / 127.5 + 1e-6
    assert _read(root / "out" / "sub" / "b.png").shape == (3, 40, 48)


def test_evaluate_reports_scikit_image_psnr_and_ssim(run, capsys):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from ganfast.models.srgan import bicubic_downsample, bicubic_upsample

    root, model = run
    assert main(["upscale", "--ckpt", str(root / "run"), "--input", str(root / "in" / "big.png"), "--out",
                 str(root / "eval"), "--evaluate"]) == 0
    out = capsys.readouterr().out
    assert "bicubic" in out and "srresnet" in out
    metrics = json.loads((root / "eval" / "metrics.json").read_text())
    row = metrics["rows"][0]
    hr = _read(root / "in" / "big.png")[:, :16, :16]  # cropped to multiples of 4
    lr = bicubic_downsample(hr[None], 4)
    bic = bicubic_upsample(lr, 4)[0]
    t = ((hr + 1) / 2).permute(1, 2, 0).double().numpy()
    b = ((bic + 1) / 2).permute(1, 2, 0).double().numpy()
    # 1e-6: the command decodes in float32 its own way
    assert abs(row["bicubic_psnr"] - peak_signal_noise_ratio(t, b, data_range=1.0)) < 1e-6
    assert abs(row["bicubic_ssim"] - structural_similarity(t, b, data_range=1.0, channel_axis=2)) < 1e-6
    with torch.no_grad():
        sr = model.translate(lr)[0].clamp(-1, 1)
    assert abs(row["srresnet_psnr"] - psnr_ssim(sr, hr)["psnr"]) < 1e-6
    assert (root / "eval" / "grid.png").exists() and (root / "eval" / "big.png").exists()


@pytest.mark.parametrize("args,words", [
    (["--input", "{root}/nope"], "does not exist"),
    (["--input", "{root}/small.png", "--evaluate"], "at least 7 pixels"),
])
def test_bad_arguments_exit_2_with_one_line(run, capsys, args, words):
    root, _ = run
    argv = ["upscale", "--ckpt", str(root / "run"), "--out", str(root / "bad")] + [a.format(root=root) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert words.format(root=root) in err and "\n" not in err


def test_a_model_that_does_not_super_resolve_is_refused(tmp_path, capsys):
    x = torch.rand(8, 1, 8, 8) * 2 - 1
    cfg = TrainConfig(model="gan", data="tiny", steps=1, batch_size=4, out=str(tmp_path / "run"), progress=False,
                      sample_every=100, model_options={"hidden": [8], "latent_dim": 4})
    Trainer(cfg, dataset=GANDataset("tiny", x)).fit()
    Image.fromarray(np.zeros((8, 8), np.uint8) + 7).save(tmp_path / "x.png")
    assert main(["upscale", "--ckpt", str(tmp_path / "run"), "--input", str(tmp_path / "x.png"), "--out",
                 str(tmp_path / "o")]) == 2
    assert "not a super-resolution model" in capsys.readouterr().err


def test_psnr_ssim_checks_shapes():
    with pytest.raises(ValueError, match="one shape"):
        psnr_ssim(torch.zeros(3, 8, 8), torch.zeros(3, 8, 9))
    with pytest.raises(ValueError, match=">= 7"):
        psnr_ssim(torch.zeros(1, 5, 5), torch.zeros(1, 5, 5))


def test_an_output_that_would_replace_the_input_is_refused_and_bare_names_work(run, capsys, tmp_path,
                                                                                 monkeypatch):
    root, _ = run
    single = tmp_path / "one"
    single.mkdir()
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(single / "x.png")
    assert main(["upscale", "--ckpt", str(root / "run"), "--input", str(single / "x.png"), "--out",
                 str(single)]) == 2
    assert "would replace the input" in capsys.readouterr().err
    assert Image.open(single / "x.png").size == (8, 8)
    monkeypatch.chdir(single)  # a bare output folder name, relative to the working directory
    assert main(["upscale", "--ckpt", str(root / "run"), "--input", "x.png", "--out", "up"]) == 0
    assert Image.open(single / "up" / "x.png").size == (32, 32)


def test_write_png_takes_a_bare_file_name(tmp_path, monkeypatch):
    from ganfast.train.translate import write_png

    monkeypatch.chdir(tmp_path)
    write_png(torch.rand(1, 4, 4) * 2 - 1, "bare.png")
    assert Image.open(tmp_path / "bare.png").size == (4, 4)


def test_sample_on_a_super_resolution_model_points_to_upscale(run, capsys):
    root, _ = run
    assert main(["sample", "--ckpt", str(root / "run"), "--out", str(root / "s.png")]) == 2
    assert "ganfast upscale" in capsys.readouterr().err
