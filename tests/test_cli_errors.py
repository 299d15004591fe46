"""Every user mistake on the command line ends with one line on stderr naming the flag and exit status 2,
never a traceback (issue 22, item 6): a table of wrong types, zero or negative sizes, NaN, wrong devices,
missing paths and files of the wrong kind, over every verb; and API errors that name what is wrong."""

import os

import numpy as np
import pytest
import torch

from ganfast.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-errors")
    run = root / "run"
    assert main(["train", "--model", "wgan-gp", "--data", "ring8", "--num-samples", "256", "--batch-size", "32",
                 "-o", "hidden=[8]", "--steps", "1", "--no-progress", "--out", str(run)]) == 0
    (root / "notes.txt").write_text("not an image, not a checkpoint")
    (root / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip")
    np.save(root / "ints.npy", np.arange(12, dtype=np.int64).reshape(3, 4))
    (root / "empty").mkdir()
    return {"root": str(root), "ckpt": str(run / "checkpoints" / "ckpt-00000001.pt"), "run": str(run)}


CASES = [
    # (argv with {root}/{ckpt} placeholders, text the one line must contain)
    (["train", "--batch-size", "0"], "--batch-size must be a positive int; got 0"),
    (["train", "--steps", "-3"], "--steps must be a positive int; got -3"),
    (["train", "--steps", "two"], "--steps: invalid int value: 'two'"),
    (["train", "--image-size", "0"], "--image-size must be a positive int"),
    (["train", "--data", "digits", "--num-samples", "2000"], "--num-samples 2000 asks for more than"),
    (["train", "--data", "nosuch"], "unknown dataset 'nosuch'"),
    (["train", "--model", "nosuch"], "unknown model 'nosuch'"),
    (["train", "--data", "{root}/missing"], "missing"),
    (["train", "--data", "{root}/notes.txt"], "notes.txt"),
    (["train", "--data", "{root}/empty"], "empty"),
    (["train", "--data", "{root}/garbage.npz"], "garbage.npz"),
    (["train", "--lr-g", "nan"], "--lr-g must be a finite number; got nan"),
    (["train", "--lr-d", "0"], "--lr-d must be"),
    (["train", "--n-critic", "0"], "--n-critic must be"),
    (["train", "--device", "gpu"], "device must be cpu, cuda or cuda:N; got 'gpu'"),
    (["train", "--device", "meta"], "device must be cpu, cuda or cuda:N; got 'meta'"),
    (["train", "--ema-decay", "2"], "--ema-decay must be in [0, 1)"),
    (["train", "--device", "cuda"] if not torch.cuda.is_available() else ["train", "--device", "tpu"], "cuda"),
    (["train", "--channels", "2"], "--channels: invalid choice: 2"),
    (["train", "--amp", "fp8"], "--amp: invalid choice: 'fp8'"),
    (["train", "-o", "no_such_option=1"], "no_such_option"),
    (["train", "--resume", "{root}/missing.pt"], "--resume: no checkpoint at"),
    (["train", "--resume", "{root}/notes.txt"], "notes.txt"),
    (["sample", "--ckpt", "{ckpt}", "--n", "0", "--out", "{root}/s.npy"], "--n must be a positive int; got 0"),
    (["sample", "--ckpt", "{ckpt}", "--batch-size", "0", "--out", "{root}/s.npy"], "--batch-size must be a positive"),
    (["sample", "--ckpt", "{ckpt}", "--out", "{root}/s.jpg"], "--out must end in .png or .npy"),
    (["sample", "--ckpt", "{root}/missing.pt", "--out", "{root}/s.npy"], "--ckpt: no checkpoint at"),
    (["sample", "--ckpt", "{root}/notes.txt", "--out", "{root}/s.npy"], "notes.txt"),
    (["sample", "--ckpt", "{ckpt}", "--out", "{root}/s.npy", "--label", "1"], "is not conditional"),
    (["sample", "--ckpt", "{ckpt}", "--out", "{root}/s.npy", "--truncation", "0.5"], "needs a style-based model"),
    (["sample", "--ckpt", "{ckpt}", "--n", "x", "--out", "{root}/s.npy"], "--n: invalid int value: 'x'"),
    (["fid", "{root}/missing", "{root}/empty"], "missing"),
    (["fid", "{root}/garbage.npz", "{root}/garbage.npz"], "garbage.npz"),
    (["translate", "--ckpt", "{ckpt}", "--input", "{root}/empty", "--out", "{root}/t"], ""),
    (["upscale", "--ckpt", "{ckpt}", "--input", "{root}/empty", "--out", "{root}/u"], ""),
    (["inpaint", "--ckpt", "{ckpt}", "--image", "{root}/notes.txt", "--out", "{root}/i.png"], ""),
]


@pytest.mark.parametrize("argv, says", CASES, ids=[" ".join(a[:3]) for a, _ in CASES])
def test_a_cli_mistake_is_one_line_and_exit_2(argv, says, files, capsys):
    argv = [a.format(**files) for a in argv]
    if argv[0] == "train":
        argv += ["--out", os.path.join(files["root"], "never"), "--no-progress", "--steps", "1"] \
            if "--steps" not in argv else ["--out", os.path.join(files["root"], "never"), "--no-progress"]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors: usage line + one error line, status 2
        code = e.code
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("usage:", " "))
             and "Warning" not in ln and not ln.startswith("ganfast train: resuming")]
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert says in lines[0], lines[0]
    assert not os.path.exists(os.path.join(files["root"], "never", "metrics.csv"))  # nothing started


@pytest.mark.parametrize("layer", ["ConvBNLeakyReLU2d", "ConvTransposeBNReLU2d", "ConvInstanceNormAct2d"])
def test_a_fused_layer_names_a_dtype_mismatch(layer):
    """conv_bn_act with a half input and float32 weights said "expected scalar type Half but found Float"."""
    import ganfast.nn as gnn

    cls = getattr(gnn, layer)
    m = cls(3, 4, 3, padding=1) if layer != "ConvTransposeBNReLU2d" else cls(3, 4, 4, stride=2, padding=1)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match=rf"{layer}: x is float16 but the layer's weights are float32: convert"):
        m(x.half())
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast casts for the layer: no error
        assert torch.isfinite(m(x.bfloat16()).float()).all()
    assert m.double()(x.double()).dtype == torch.float64
