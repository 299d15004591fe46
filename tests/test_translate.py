"""ganfast translate: a trained pix2pix on a folder the test writes; outputs equal Pix2Pix.translate; errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from ganfast.cli import main
from ganfast.data.edges import PairedTensors
from ganfast.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("translate")
    g = torch.Generator().manual_seed(0)
    a = torch.rand(16, 1, 16, 16, generator=g) * 2 - 1
    cfg = TrainConfig(model="pix2pix", data="tiny", steps=2, batch_size=4, out=str(root / "run"), progress=False,
                      sample_every=100, model_options={"ngf": 4, "ndf": 4, "n_layers_d": 1})
    t = Trainer(cfg, dataset=PairedTensors("tiny", a, -a))
    t.fit()
    return root, t.model


def _write(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def test_a_folder_is_translated_image_by_image(run, capsys):
    root, model = run
    rng = np.random.default_rng(1)
    gray = [(rng.random((16, 16)) * 255).astype(np.uint8) for _ in range(3)]
    _write(root / "in" / "a.png", gray[0])
    _write(root / "in" / "sub" / "b.png", gray[1])
    _write(root / "in" / "c.png", np.stack([gray[2]] * 3, axis=-1))  # RGB: converted to the model's 1 channel
    assert main(["translate", "--ckpt", str(root / "run"), "--input", str(root / "in"), "--out",
                 str(root / "out")]) == 0
    assert "wrote 3 images (pix2pix, AtoB)" in capsys.readouterr().out
    x = torch.from_numpy(np.stack(gray)).float().div(127.5).sub(1)[:, None]
    model.eval()
    with torch.no_grad():  # 16x16: a 4-level U-Net has no dropout level, so the translation is deterministic
        want = model.translate(x)
    for k, name in enumerate(["a.png", "sub/b.png", "c.png"]):
        got = np.asarray(Image.open(root / "out" / name))
        assert got.shape == (16, 16)
        expected = np.rint((want[k, 0].clamp(-1, 1).numpy() + 1) * 127.5)
        assert np.abs(got.astype(np.float64) - expected).max() <= 1  # one 8-bit step (luma rounding of c.png)
    # one file
    assert main(["translate", "--ckpt", str(root / "run"), "--input", str(root / "in" / "a.png"), "--out",
                 str(root / "one")]) == 0
    assert np.array_equal(np.asarray(Image.open(root / "one" / "a.png")), np.asarray(Image.open(root / "out" /
                                                                                                 "a.png")))


@pytest.mark.parametrize("args,words", [
    (["--input", "{root}/nope"], "--input {root}/nope does not exist"),
    (["--input", "{root}/empty"], "holds no image files"),
    (["--input", "{root}/in", "--out", "{root}/in"], "--out must not be the --input folder"),
    (["--input", "{root}/in/a.png", "--out", "{root}/in"], "would replace the input {root}/in/a.png"),
    (["--direction", "BtoA"], "pix2pix translates the one way it was trained (AtoB)"),
    (["--batch-size", "0"], "--batch-size must be a positive int"),
    (["--ckpt", "{root}/missing"], "--ckpt:"),
])
def test_bad_arguments_exit_2_with_one_line(run, capsys, args, words):
    root, _ = run
    (root / "empty").mkdir(exist_ok=True)
    _write(root / "in" / "a.png", np.zeros((16, 16), np.uint8) + 7)
    base = {"--ckpt": str(root / "run"), "--input": str(root / "in"), "--out": str(root / "o")}
    args = [a.format(root=root) for a in args]
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    code = main(["translate"] + [x for kv in base.items() for x in kv])
    err = capsys.readouterr().err
    assert code == 2 and words.format(root=root) in err and "Traceback" not in err, err


def test_a_model_that_does_not_translate_is_refused(tmp_path, capsys):
    cfg = TrainConfig(model="dcgan", data="digits", steps=1, batch_size=8, out=str(tmp_path / "dc"),
                      progress=False, image_size=8, model_options={"width": 4})
    Trainer(cfg).fit()
    _write(tmp_path / "x.png", np.zeros((8, 8), np.uint8))
    assert main(["translate", "--ckpt", str(tmp_path / "dc"), "--input", str(tmp_path / "x.png"), "--out",
                 str(tmp_path / "o")]) == 2
    assert "model 'dcgan' does not translate images" in capsys.readouterr().err


def test_colliding_names_are_refused_and_outputs_inside_the_input_are_not_reread(run, capsys):
    """From a new user's trial: x.jpg and x.png both became x.png (one result lost); an --out inside --input was
    translated again on the next run."""
    root, _ = run
    _write(root / "in2" / "x.png", np.zeros((16, 16), np.uint8) + 9)
    _write(root / "in2" / "x.jpg", np.zeros((16, 16), np.uint8) + 200)
    assert main(["translate", "--ckpt", str(root / "run"), "--input", str(root / "in2"), "--out",
                 str(root / "o2")]) == 2
    assert "would both be written as x.png; rename one" in capsys.readouterr().err
    (root / "in2" / "x.jpg").unlink()
    for _ in range(2):
        assert main(["translate", "--ckpt", str(root / "run"), "--input", str(root / "in2"), "--out",
                     str(root / "in2" / "res")]) == 0
        assert "wrote 1 image (pix2pix, AtoB)" in capsys.readouterr().out
    assert not (root / "in2" / "res" / "res").exists()


def test_sample_on_a_translation_model_points_to_translate(run, capsys):
    root, _ = run
    assert main(["sample", "--ckpt", str(root / "run"), "--out", str(root / "s.png")]) == 2
    assert "model 'pix2pix' translates images rather than sampling them: use ganfast translate" in \
        capsys.readouterr().err



def test_cyclegan_translates_both_ways_reading_each_domains_channels(tmp_path, capsys):
    """A 1-channel A and a 3-channel B: --direction BtoA reads RGB inputs and writes G_BA's 1-channel outputs."""
    g = torch.Generator().manual_seed(0)
    a = torch.rand(8, 1, 8, 8, generator=g) * 2 - 1
    b = torch.rand(8, 3, 8, 8, generator=g) * 2 - 1
    cfg = TrainConfig(model="cyclegan", data="tiny", steps=1, batch_size=4, out=str(tmp_path / "run"), progress=False,
                      sample_every=100, model_options={"ngf": 4, "ndf": 4, "n_layers_d": 1, "n_blocks": 1,
                                                       "lambda_identity": 0.0})
    t = Trainer(cfg, dataset=PairedTensors("tiny", a, b))
    t.fit()
    rgb = (np.random.default_rng(2).random((8, 8, 3)) * 255).astype(np.uint8)
    _write(tmp_path / "in" / "x.png", rgb)
    assert main(["translate", "--ckpt", str(tmp_path / "run"), "--input", str(tmp_path / "in"), "--out",
                 str(tmp_path / "out"), "--direction", "BtoA"]) == 0
    assert "(cyclegan, BtoA)" in capsys.readouterr().out
    model = t.model.eval()
    x = torch.from_numpy(rgb).float().div(127.5).sub(1).permute(2, 0, 1)[None]
    with torch.no_grad():
        want = model.translate(x, direction="BtoA")
    got = np.asarray(Image.open(tmp_path / "out" / "x.png"))
    assert got.shape == (8, 8)
    assert np.abs(got.astype(np.float64) - np.rint((want[0, 0].numpy() + 1) * 127.5)).max() <= 1
    assert main(["translate", "--ckpt", str(tmp_path / "run"), "--input", str(tmp_path / "in"), "--out",
                 str(tmp_path / "ab")]) == 0  # AtoB reads the RGB file as A's 1 channel
    assert np.asarray(Image.open(tmp_path / "ab" / "x.png")).shape == (8, 8, 3)
