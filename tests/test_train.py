"""The trainer: files it writes, checkpoints, exact resume, Ctrl-C, the CLI, and torchrun."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from ganfast.data import GANDataset
from ganfast.train import TrainConfig, Trainer, model_from_checkpoint
from ganfast.train.checkpoint import load_checkpoint
from ganfast.train.loader import ShardedBatches
from ganfast.train.log import read_metrics


def images(n=40, side=8, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return GANDataset("tiny", torch.rand(n, 1, side, side, generator=g) * 2 - 1,
                      torch.randint(0, classes, (n,), generator=g), classes=[str(i) for i in range(classes)])


def points(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    return GANDataset("pts", torch.randn(n, 2, generator=g))


CASES = {
    "dcgan": (images, {"width": 4, "latent_dim": 8}, {}),
    "wgan-gp-linear": (points, {"hidden": [16, 16], "latent_dim": 4}, {"lr_schedule": "linear"}),
    "dcgan-bf16": (images, {"width": 4, "latent_dim": 8}, {"amp": "bf16"}),
    "wgan-gp": (points, {"hidden": [16, 16], "latent_dim": 4}, {}),
    "infogan": (images, {"width": 4, "noise_dim": 4}, {}),
}


def trainer(tmp, case, steps, **kw):
    make, options, extra = CASES[case]
    name = case.replace("-bf16", "").replace("-linear", "")
    cfg = TrainConfig(model=name, data="tiny", steps=steps, batch_size=8, out=str(tmp), progress=False,
                      log_every=1, checkpoint_every=3, sample_every=2, model_options=options, **{**extra, **kw})
    return Trainer(cfg, dataset=make())


def test_fit_writes_its_files(tmp_path):
    t = trainer(tmp_path, "dcgan", 4)
    summary = t.fit()
    assert summary["step"] == 4 and not summary["stopped"]
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert {"d_loss", "g_loss", "images_per_s"} <= set(rows[0])
    assert (tmp_path / "losses.png").exists()
    assert sorted(os.listdir(tmp_path / "samples")) == ["step-00000002.png", "step-00000004.png"]
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["model"]["name"] == "dcgan" and cfg["resolved"]["steps"] == 4
    ck = sorted(os.listdir(tmp_path / "checkpoints"))
    assert "ckpt-00000003.pt" in ck and "ckpt-00000004.pt" in ck
    state = load_checkpoint(summary["checkpoint"])  # weights_only: no arbitrary pickle
    assert state["step"] == 4 and set(state["optimizers"]) == {"D", "G"}
    assert state["ema"]["G"]["num_updates"] == 4 and len(state["rng"]) == 1


def _run_split(tmp, case, total, split):
    """Run ``total`` steps; then, in a copy of the run directory, resume from the step-``split``
    checkpoint as an interrupted run would (a linear learning-rate schedule included)."""
    import shutil

    a = trainer(tmp / "a", case, total)
    a.fit()
    shutil.copytree(tmp / "a", tmp / "b")
    c = trainer(tmp / "b", case, total)
    assert c.resume(str(tmp / "b" / "checkpoints" / f"ckpt-{split:08d}.pt")) is True and c.step == split
    c.fit()
    return a, c


@pytest.mark.parametrize("case", list(CASES))
def test_resume_reproduces_the_uninterrupted_run(tmp_path, case):
    a, c = _run_split(tmp_path, case, total=6, split=3)
    ra = read_metrics(tmp_path / "a" / "metrics.csv")
    rc = read_metrics(tmp_path / "b" / "metrics.csv")
    assert [r["step"] for r in rc] == list(range(1, 7))  # rows after the resume point replaced, none lost
    for x, y in zip(ra, rc):
        for k in x:
            if k != "images_per_s":
                assert x[k] == y[k], (case, x["step"], k, x[k], y[k])  # bit for bit
    for (k, p), q in zip(a.model.state_dict().items(), c.model.state_dict().values()):
        assert torch.equal(p, q), k
    for p, q in zip(a.ema.module.state_dict().values(), c.ema.module.state_dict().values()):
        assert torch.equal(p, q)


def test_checkpoint_rebuilds_the_model(tmp_path):
    t = trainer(tmp_path, "infogan", 2)
    summary = t.fit()
    state = load_checkpoint(summary["checkpoint"])
    m = model_from_checkpoint(state)
    z = t.grid_inputs["latent"][:5]
    torch.testing.assert_close(m.eval().generate(z), t.sample(latent=z))  # the EMA generator, in eval mode


def test_bad_configs(tmp_path):
    with pytest.raises(ValueError, match="amp"):
        Trainer(TrainConfig(amp="fp8"), dataset=images())
    with pytest.raises(ValueError, match="steps"):
        Trainer(TrainConfig(steps=0), dataset=images())
    with pytest.raises(ValueError, match="unknown training option"):
        Trainer({"stpes": 3}, dataset=images())
    with pytest.raises(ValueError, match="labels"):
        Trainer(TrainConfig(model="cgan"), dataset=points())
    with pytest.raises(ValueError, match="batch_size"):
        Trainer(TrainConfig(model="gan", batch_size=1000, out=str(tmp_path)), dataset=points()).fit()
    with pytest.raises(ValueError, match="backend"):
        Trainer(TrainConfig(backend="tpu"), dataset=images())
    # a backend that cannot run on the device is refused before anything is written, not at the first step
    with pytest.raises(ValueError, match="--backend cuda cannot run on cpu: the cuda backend runs on CUDA tensors"):
        Trainer(TrainConfig(backend="cuda", device="cpu", out=str(tmp_path / "never")), dataset=images())
    assert not (tmp_path / "never").exists()


def test_divergence_is_reported(tmp_path):
    t = trainer(tmp_path, "wgan-gp", 3)
    with torch.no_grad():
        t.model.G.output.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="diverged"):
        t.fit()


def test_sharded_batches_are_disjoint_deterministic_and_resumable():
    ds = points(n=50)
    r0 = ShardedBatches(ds, 4, rank=0, world_size=2, seed=1)
    r1 = ShardedBatches(ds, 4, rank=1, world_size=2, seed=1)
    assert r0.batches_per_epoch == 6
    x0 = torch.cat([r0().image for _ in range(6)])
    x1 = torch.cat([r1().image for _ in range(6)])
    rows = {tuple(r.tolist()) for r in torch.cat([x0, x1])}
    assert len(rows) == 48  # no sample on both ranks, 50 - 2 (ragged tail) seen
    again = ShardedBatches(ds, 4, rank=0, world_size=2, seed=1)
    again.load_state_dict({"epoch": 0, "position": 4, "seed": 1})
    torch.testing.assert_close(again().image, x0[16:20])
    epoch1 = torch.cat([r0().image for _ in range(6)])
    assert not torch.equal(epoch1, x0) and r0.epoch == 1  # a new order each epoch


@pytest.mark.parametrize("lazy", [False, True])
def test_sharded_batches_of_varying_size_follow_the_same_order_and_resume(lazy):
    """A call may draw a batch size other than the loader's (ProGAN's minibatch_dict): the samples are the next
    ones of the same epoch order, an epoch ends when fewer remain than asked for, and the image cursor resumes."""
    ds = points(n=50)
    if lazy:  # through a DataLoader, as image folders are (no tensors, not in memory)
        class Lazy(torch.utils.data.Dataset):
            def __init__(self, x):
                self.x = x

            def __len__(self):
                return len(self.x)

            def __getitem__(self, i):
                return self.x[i], -1
        ds = Lazy(ds.tensors[0])
    fixed = ShardedBatches(ds, 1, seed=5)
    order = torch.cat([fixed().image for _ in range(50)])  # the epoch's order, one sample at a time
    b = ShardedBatches(ds, 4, seed=5)
    sizes = [4, 7, 1, 4, 9]
    got = [b(n).image if n != 4 else b().image for n in sizes]
    assert [len(x) for x in got] == sizes
    torch.testing.assert_close(torch.cat(got), order[:25])
    assert b.offset == 25 and b.delivered_samples == 25 and b.state_dict()["offset"] == 25
    again = ShardedBatches(ds, 4, seed=5)
    again.load_state_dict(b.state_dict())
    torch.testing.assert_close(again(3).image, order[25:28])
    torch.testing.assert_close(b(3).image, order[25:28])
    # 22 left in the epoch: a batch of 23 starts the next epoch (the ragged tail is dropped)
    nxt = b(23)
    assert b.epoch == 1 and b.offset == 23 and not torch.equal(nxt.image, order[28:50])
    # a checkpoint written before the image cursor existed (batch position only) resumes at position * batch
    old = ShardedBatches(ds, 4, seed=5)
    old.load_state_dict({"epoch": 0, "position": 3, "seed": 5})
    torch.testing.assert_close(old().image, order[12:16])
    for bad in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            b(bad)
    with pytest.raises(ValueError, match="larger than this process's share"):
        b(51)


# -- the CLI ---------------------------------------------------------------------------------------


def ganfast(*args, check=True, timeout=240, **kw):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    p = subprocess.run([sys.executable, "-m", "ganfast", *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, env=env, **kw)
    if check:
        assert p.returncode == 0, p.stderr[-3000:]
    return p


def npz_digits(path, n=40, side=8):
    g = np.random.default_rng(0)
    np.savez(path, x=(g.random((n, 1, side, side)) * 255).astype(np.uint8), y=g.integers(0, 10, n))
    return path


def test_cli_list():
    out = ganfast("list").stdout
    for word in ("dcgan", "wgan-gp", "unrolled", "ring8", "grid25", "digits", "hinge", "least-squares", "r1"):
        assert word in out
    # families, papers, network families, datasets with their batch fields, batch layouts
    for word in ("foundational", "mode collapse", "arXiv:1511.06434", "network families", "fashion-mnist",
                 "[image, label]", "unpaired", "captions"):
        assert word in out, word
    opts = ganfast("list", "models", "--options").stdout
    assert "options of dcgan" in opts and "Radford et al. 2015, sec. 4" in opts


def test_cli_trains_dcgan_on_packaged_fashion_mnist(tmp_path):
    out = tmp_path / "run"
    ganfast("train", "--data", "fashion-mnist", "--split", "test", "--num-samples", 64, "--steps", 2,
            "--batch-size", 8, "-o", "width=4", "--out", out, "--no-progress")
    state = load_checkpoint(str(out / "checkpoints" / "ckpt-00000002.pt"))
    assert state["config"]["train"]["data"] == "fashion-mnist" and state["config"]["train"]["split"] == "test"
    assert state["config"]["model"]["sample_shape"] == [1, 32, 32]  # 28x28 served at DCGAN's 32x32
    bad = ganfast("train", "--data", "digits", "--split", "test", "--steps", 1, "--out", tmp_path / "x", check=False)
    assert bad.returncode != 0 and "split" in bad.stderr


def test_cli_train_sample_points(tmp_path):
    out = tmp_path / "run"
    ganfast("train", "--model", "wgan-gp", "--data", "ring8", "--steps", 3, "--batch-size", 32, "--num-samples", 500,
            "--out", out, "-o", "hidden=[16,16]", "--no-progress")
    ckpt = load_checkpoint(str(out / "checkpoints" / "ckpt-00000003.pt"))
    assert ckpt["config"]["model"]["hidden"] == [16, 16]
    p = ganfast("sample", "--ckpt", out / "checkpoints" / "ckpt-00000003.pt", "--n", 300, "--out", tmp_path / "s.npy")
    assert np.load(tmp_path / "s.npy").shape == (300, 2)
    assert "modes covered" in p.stdout  # ring8 coverage is reported
    ganfast("sample", "--ckpt", out / "checkpoints" / "ckpt-00000003.pt", "--n", 100, "--out", tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 0
    # same seed, same samples
    ganfast("sample", "--ckpt", out / "checkpoints" / "ckpt-00000003.pt", "--n", 300, "--out", tmp_path / "t.npy")
    assert np.array_equal(np.load(tmp_path / "s.npy"), np.load(tmp_path / "t.npy"))
    # the run directory, its checkpoints directory and the `latest` pointer name the newest checkpoint
    for where in (out, out / "checkpoints", out / "checkpoints" / "latest"):
        ganfast("sample", "--ckpt", where, "--n", 300, "--out", tmp_path / "u.npy")
        assert np.array_equal(np.load(tmp_path / "s.npy"), np.load(tmp_path / "u.npy")), where
    bad = ganfast("sample", "--ckpt", tmp_path, "--n", 3, "--out", tmp_path / "v.npy", check=False)
    assert bad.returncode == 2 and "--ckpt: no checkpoint in" in bad.stderr and "Traceback" not in bad.stderr
    bad = ganfast("sample", "--ckpt", tmp_path / "nothing.pt", "--n", 3, "--out", tmp_path / "v.npy", check=False)
    assert bad.returncode == 2 and "no checkpoint at" in bad.stderr and "Traceback" not in bad.stderr
    # a bad option value or dataset is a configuration error: one line naming it, exit 2, no traceback
    for args, says in ((("-o", "fmap_base=-1", "--model", "progan"), "option 'fmap_base' must be >= 1; got -1"),
                       (("--data", "no-such-data"), "unknown dataset 'no-such-data'"),
                       (("--model", "progan", "-o", 'minibatch_dict={"5": 2}'), "powers of two from 4 to 16")):
        bad = ganfast("train", *args, "--steps", 1, "--out", tmp_path / "bad", check=False)
        assert bad.returncode == 2 and "ganfast train: error: " in bad.stderr and says in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr


def test_cli_conditional_images_and_errors(tmp_path):
    data = npz_digits(tmp_path / "d.npz")
    out = tmp_path / "run"
    ganfast("train", "--model", "cgan", "--data", data, "--steps", 2, "--batch-size", 8, "--out", out,
            "-o", "width=4", "--no-progress")
    ck = out / "checkpoints" / "ckpt-00000002.pt"
    ganfast("sample", "--ckpt", ck, "--n", 20, "--out", tmp_path / "g.png", "--label", 3)
    from PIL import Image
    assert Image.open(tmp_path / "g.png").size[0] >= 64
    ganfast("sample", "--ckpt", ck, "--n", 7, "--out", tmp_path / "g.npy")
    assert np.load(tmp_path / "g.npy").shape == (7, 1, 8, 8)
    bad = ganfast("sample", "--ckpt", ck, "--n", 4, "--out", tmp_path / "g.png", "--label", 99, check=False)
    assert bad.returncode == 2 and "--label" in bad.stderr
    bad = ganfast("sample", "--ckpt", ck, "--n", 4, "--out", tmp_path / "g.jpg", check=False)
    assert bad.returncode == 2 and ".png or .npy" in bad.stderr
    bad = ganfast("train", "--model", "cgan", "--data", "ring8", "--steps", 1, "--out", tmp_path / "x", check=False)
    assert bad.returncode != 0 and "labels" in bad.stderr
    bad = ganfast("train", "--model", "nope", check=False)
    assert bad.returncode == 2 and "unknown model" in bad.stderr
    bad = ganfast("train", "--data", tmp_path / "missing-folder", "--steps", 1, check=False)
    assert bad.returncode != 0 and "missing-folder" in bad.stderr
    # resuming cannot change the experiment
    bad = ganfast("train", "--model", "lsgan", "--data", data, "--out", out, "--resume", ck, check=False)
    assert bad.returncode == 2 and "cannot change" in bad.stderr


def test_cli_ctrl_c_saves_and_resume_continues(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ganfast", "train", "--model", "gan", "--data", "ring8", "--num-samples", 2000,
           "--steps", 100000, "--batch-size", 32, "--log-every", 1, "--checkpoint-every", 100000, "--out", str(out),
           "--no-progress", "-o", "hidden=[8]"]
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 4):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "--resume" in err
    rows = read_metrics(metrics)
    stopped = rows[-1]["step"]
    state = load_checkpoint(str(out / "checkpoints" / f"ckpt-{stopped:08d}.pt"))
    assert state["step"] == stopped
    ganfast("train", "--model", "gan", "--data", "ring8", "--num-samples", 2000, "--out", out, "--resume",
            "--steps", stopped + 3, "--batch-size", 32, "--log-every", 1, "-o", "hidden=[8]", "--no-progress")
    rows = read_metrics(metrics)
    assert [r["step"] for r in rows] == list(range(1, stopped + 4))


def test_torchrun_two_processes_on_gloo(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "ganfast", "train", "--model", "wgan-gp", "--data", "ring8", "--num-samples", 1000, "--steps", 4,
           "--batch-size", 16, "--out", str(out), "--log-every", 1, "--no-progress", "-o", "hidden=[16,16]"]
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=240, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = read_metrics(out / "metrics.csv")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # one writer
    state = load_checkpoint(str(out / "checkpoints" / "ckpt-00000004.pt"))
    assert len(state["rng"]) == 2 and state["world_size"] == 2
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])  # ranks draw different noise
    assert p.stdout.count("ganfast train: step 4") == 1


@pytest.mark.slow
def test_wgan_gp_covers_every_ring8_mode(tmp_path):
    """The mode-collapse benchmark, shortened to fit CI: wgan-gp with its 2-D defaults, fewer steps."""
    from ganfast.metrics import mode_coverage

    t = Trainer(TrainConfig(model="wgan-gp", data="ring8", steps=2500, out=str(tmp_path), progress=False,
                            sample_every=10_000, checkpoint_every=10_000))
    t.fit()
    g = torch.Generator().manual_seed(0)
    cov = mode_coverage(t.sample(latent=t.model.sample_latent(2500, generator=g)), "ring8")
    assert cov.modes_covered == 8, str(cov)
    # 2500 steps (a third of the default run, to fit CI) already concentrate the samples: about 40%
    # lie within 3 std of a mode at seed 0 (a ring-shaped spread would put a few % there)
    assert cov.high_quality >= 0.25, str(cov)


def test_recommended_settings_and_linear_schedule(tmp_path):
    from ganfast.models import REGISTRY
    from ganfast.train import recommended

    rec = recommended(REGISTRY["wgan-gp"], "points")
    assert rec["lr_schedule"] == "linear" and rec["options"]["gradient_penalty"] == 0.1
    assert recommended(REGISTRY["dcgan"], "image")["lr_schedule"] == "constant"
    t = Trainer(TrainConfig(model="wgan-gp", data="tiny", steps=4, batch_size=8, out=str(tmp_path), progress=False,
                            model_options={"latent_dim": 4}), dataset=points())
    assert t.model.config["hidden"] == [128, 128, 128]  # the 2-D recommendation applies
    assert t.model.config["latent_dim"] == 4            # what the user set wins
    seen = []
    step = t.model.train_step

    def spy(*a, **k):
        seen.append(t.optimizers["G"].param_groups[0]["lr"])
        return step(*a, **k)
    t.model.train_step = spy
    t.fit()
    lr = t.model.config["lr_g"]
    assert seen == pytest.approx([lr, 0.75 * lr, 0.5 * lr, 0.25 * lr])


@pytest.mark.parametrize("name, options, side", [
    ("dcgan", {"width": 4, "latent_dim": 8}, 8),
    ("cgan", {"width": 4, "latent_dim": 8}, 8),
    ("infogan", {"width": 4, "noise_dim": 4}, 8),  # noise and codes from the one generator
    ("lapgan", {"width_g": 4, "width_d": 4, "hidden_g": [16], "hidden_d": [16], "latent_dim": 8}, 16),  # planes
])
def test_sample_is_a_function_of_the_seed_not_of_the_batching(name, options, side, tmp_path, capsys):
    """`ganfast sample --seed S` drew its latents batch by batch, so --batch-size 1 and 16 gave other images.
    The whole request is drawn from the seed first: every batching gives the same samples."""
    from ganfast.cli import main

    cfg = TrainConfig(model=name, data="tiny", steps=1, batch_size=8, out=str(tmp_path / "run"), progress=False,
                      sample_every=100, checkpoint_every=100, grid_size=4, model_options=options)
    Trainer(cfg, dataset=images(side=side)).fit()
    ckpt = str(tmp_path / "run" / "checkpoints" / "ckpt-00000001.pt")
    got = {}
    for bs, n in ((1, 11), (16, 11), (4, 11), (3, 11)):
        out = str(tmp_path / f"s{bs}-{n}.npy")
        args = ["sample", "--ckpt", ckpt, "--n", str(n), "--seed", "3", "--batch-size", str(bs), "--out", out]
        assert main(args) == 0
        got[bs, n] = np.load(out)
    want = got[16, 11]  # one batch
    assert want.shape == (11, 1, side, side) and np.ptp(want) > 0 and not np.allclose(want[0], want[1])
    for key, x in got.items():
        np.testing.assert_allclose(x, want, rtol=1e-5, atol=1e-6, err_msg=str(key))
    other = str(tmp_path / "other.npy")
    main(["sample", "--ckpt", ckpt, "--n", "11", "--seed", "4", "--out", other])
    assert not np.allclose(np.load(other), want)  # the seed matters


def test_cli_folder_mixing_gray_rgb_and_rgba_takes_channels(tmp_path, capsys):
    """A folder of RGB PNGs with one gray and one RGBA image stopped with a traceback suggesting `channels=...`,
    an option the CLI lacked: the error is one line naming --channels, and --channels converts every image."""
    from PIL import Image

    from ganfast.cli import main

    rng = np.random.default_rng(0)
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"rgb{i}.png")
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(folder / "gray.png")
    rgba = rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(folder / "rgba.png")
    common = ["train", "--data", str(folder), "--steps", "1", "--batch-size", "4", "--no-progress", "-o", "width=4"]
    assert main(common + ["--out", str(tmp_path / "r0")]) == 2
    err = capsys.readouterr().err
    assert "different channel counts" in err and "--channels 1, 3 or 4" in err and "Traceback" not in err
    for channels in (3, 1):
        out = tmp_path / f"r{channels}"
        assert main(common + ["--channels", str(channels), "--out", str(out)]) == 0
        state = load_checkpoint(str(out / "checkpoints" / "ckpt-00000001.pt"))
        assert state["config"]["train"]["channels"] == channels
        assert state["config"]["model"]["sample_shape"] == [channels, 8, 8]
    t = Trainer(TrainConfig(data=str(folder), channels=3, steps=1, batch_size=4, out=str(tmp_path / "api"),
                            progress=False, model_options={"width": 4}))
    x = t.dataset.tensors[0][sorted(os.listdir(folder)).index("rgba.png")]  # files are read in name order
    rgb = Image.fromarray(rgba).convert("RGB")  # Pillow's conversion, as `ganfast fid` reads such files
    np.testing.assert_allclose(((x.numpy() + 1) * 127.5).transpose(1, 2, 0), np.asarray(rgb), atol=1e-3)
    with pytest.raises(ValueError, match="channels must be 1"):
        TrainConfig(channels=2).validate()
    with pytest.raises(SystemExit):
        main(common + ["--channels", "2", "--out", str(tmp_path / "r2")])
    assert "invalid choice: 2" in capsys.readouterr().err


def test_frames_per_sample_reaches_the_loader(tmp_path):
    t = Trainer(TrainConfig(model="recyclegan", data="fashion-shoes-clips", image_size=16, num_samples=16,
                            frames_per_sample=4, steps=1, batch_size=2, out=str(tmp_path), progress=False,
                            model_options={"ngf": 4, "ndf": 4, "n_layers_d": 1, "n_blocks": 0}))
    assert t.dataset[0]["frames"].shape == (4, 1, 16, 16)
    with pytest.raises(ValueError, match="frames_per_sample must be a positive int"):
        TrainConfig(frames_per_sample=0).validate()


def _flip(path, n=16):
    """Flip n bytes in the middle of the checkpoint's largest record (a tensor's storage)."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)
    data = bytearray(open(path, "rb").read())
    name_len, extra_len = np.frombuffer(bytes(data[info.header_offset + 26:info.header_offset + 30]), dtype="<u2")
    at = info.header_offset + 30 + int(name_len) + int(extra_len) + max(0, info.file_size // 2 - n // 2)
    for k in range(n):
        data[at + k] ^= 0xFF
    open(path, "wb").write(bytes(data))


def test_resume_passes_over_damaged_checkpoints_and_refuses_when_none_is_good(tmp_path, capsys):
    """--resume takes the newest checkpoint that passes its checksums, naming each one it passes over; with
    only damaged ones it refuses (it started from step 0 and replaced the metrics) and the run is untouched."""
    from ganfast.cli import main

    out = tmp_path / "run"
    common = ["train", "--model", "wgan-gp", "--data", "ring8", "--num-samples", "256", "--batch-size", "32",
              "-o", "hidden=[8]", "--no-progress", "--out", str(out), "--log-every", "1", "--keep", "0"]
    assert main(common + ["--steps", "3", "--checkpoint-every", "1"]) == 0
    ckpts = out / "checkpoints"
    _flip(ckpts / "ckpt-00000003.pt")
    capsys.readouterr()
    assert main(common + ["--steps", "4", "--resume"]) == 0
    err = capsys.readouterr().err
    assert "passing over" in err and "ckpt-00000003.pt is corrupt" in err and "CRC-32" in err
    assert "resuming wgan-gp from step 2" in err
    assert [int(r["step"]) for r in read_metrics(str(out / "metrics.csv"))] == [1, 2, 3, 4]  # 3 logged again
    for name in os.listdir(ckpts):
        if name.endswith(".pt"):
            open(ckpts / name, "r+b").truncate(300)
    metrics = (out / "metrics.csv").read_bytes()
    assert main(common + ["--steps", "6", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "--resume: no intact checkpoint in" in err and "ckpt-00000004.pt is truncated" in err
    assert "Traceback" not in err and (out / "metrics.csv").read_bytes() == metrics
    assert main(["sample", "--ckpt", str(ckpts / "ckpt-00000001.pt"), "--n", "4", "--out",
                 str(tmp_path / "s.npy")]) == 2
    assert "ckpt-00000001.pt is truncated" in capsys.readouterr().err


def test_a_fresh_run_into_a_run_directory_is_refused(tmp_path, capsys):
    """Running `ganfast train` twice into one folder overwrote metrics.csv and config.json and mixed the
    checkpoints: the second run is refused before it writes anything, and --resume still continues it."""
    from ganfast.cli import main

    out = tmp_path / "run"
    common = ["train", "--model", "wgan-gp", "--data", "ring8", "--num-samples", "256", "--batch-size", "32",
              "-o", "hidden=[8]", "--no-progress", "--out", str(out), "--steps", "2"]
    assert main(common) == 0
    before = {p: (out / p).read_bytes() for p in ("metrics.csv", "config.json", "checkpoints/ckpt-00000002.pt")}
    capsys.readouterr()
    assert main(common) == 2
    err = capsys.readouterr().err
    assert f"{out} already holds a run" in err and "--resume" in err and "Traceback" not in err
    assert all((out / p).read_bytes() == b for p, b in before.items())
    with pytest.raises(FileExistsError, match="already holds a run"):
        Trainer(TrainConfig(model="wgan-gp", data="ring8", num_samples=256, batch_size=32, steps=1, out=str(out),
                            progress=False, model_options={"hidden": [8]})).fit()
    assert main(common[:-1] + ["3", "--resume"]) == 0  # continuing it is fine


def test_kill_drill_sigkill_at_random_moments_loses_nothing_but_the_last_steps(tmp_path):
    """SIGKILL `ganfast train` ten times at random steps (a checkpoint every 2 steps, so several kills land in or
    near a checkpoint write), resuming each time: no checkpoint is ever unreadable or fails its checksum, no
    more than the steps since the last checkpoint are lost, no temporary file survives the next run, and the
    final losses equal an uninterrupted run's with the same seed, row for row."""
    import random

    from ganfast.train.checkpoint import CheckpointManager

    steps, every = 80, 2
    base = [sys.executable, "-m", "ganfast", "train", "--model", "wgan-gp", "--data", "ring8", "--num-samples",
            "512", "--batch-size", "32", "-o", "hidden=[16,16]", "--steps", str(steps), "--checkpoint-every",
            str(every), "--log-every", "1", "--keep", "0", "--no-progress", "--seed", "3", "--threads", "1"]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    ref, run = tmp_path / "reference", tmp_path / "killed"
    subprocess.run(base + ["--out", str(ref)], check=True, capture_output=True, env=env, timeout=600)

    def logged_steps():
        try:
            return [int(r["step"]) for r in read_metrics(str(run / "metrics.csv"))]
        except (OSError, ValueError, KeyError):
            return []

    rng = random.Random(0)
    kills, lost, checked, temporaries = 0, [], 0, 0
    while kills < 10:
        done = max(logged_steps(), default=0)
        target = rng.randint(done + 1, min(done + 12, steps - 1))
        p = subprocess.Popen(base + ["--out", str(run)] + (["--resume"] if kills else []), env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while p.poll() is None and max(logged_steps(), default=0) < target and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.02))  # anywhere in the step or the checkpoint write that follows
        if p.poll() is not None:  # finished before the kill: the drill needs a longer run
            pytest.fail(f"the run ended before kill {kills + 1} (target step {target})")
        p.send_signal(signal.SIGKILL)
        p.wait()
        kills += 1
        reached = max(logged_steps(), default=0)
        manager = CheckpointManager(str(run / "checkpoints"))
        for path in manager.list():  # every file under a checkpoint's name is whole and passes its checksums
            load_checkpoint(path)
            checked += 1
        newest = int(os.path.basename(manager.latest())[5:13]) if manager.latest() else 0
        lost.append(reached - newest)
        temporaries += sum(n.endswith(".tmp") for d in (run, run / "checkpoints", run / "samples") if d.is_dir()
                           for n in os.listdir(d))
        assert reached - newest <= every, (kills, reached, newest)
    subprocess.run(base + ["--out", str(run), "--resume"], check=True, capture_output=True, env=env, timeout=600)
    leftovers = [n for d in (run, run / "checkpoints", run / "samples") for n in os.listdir(d) if n.endswith(".tmp")]
    assert leftovers == []
    got, want = read_metrics(str(run / "metrics.csv")), read_metrics(str(ref / "metrics.csv"))
    assert [int(r["step"]) for r in got] == list(range(1, steps + 1))
    for a, b in zip(got, want):
        assert {k: v for k, v in a.items() if k != "images_per_s"} == \
            {k: v for k, v in b.items() if k != "images_per_s"}, a["step"]
    print(f"kill drill: {kills} kills, {kills} resumes, {checked} checkpoint files checked, 0 corrupt, "
          f"steps lost per kill {lost} (at most {every}), {temporaries} temporary files left by kills (removed)")


def test_the_closing_line_labels_values_with_the_step_they_were_logged_at():
    """After Ctrl-C at step 14 with --log-every 10 the summary said "step 14" for step 10's values."""
    from ganfast.train.command import _summary_line

    row = {"step": 10, "d_loss": 0.5, "g_loss": 1.25}
    assert _summary_line({"step": 14, "last": row}, 100) == \
        "ganfast train: stopped at step 14; last logged, step 10: d_loss 0.5, g_loss 1.25"
    assert _summary_line({"step": 10, "last": row}, 100) == "ganfast train: step 10: d_loss 0.5, g_loss 1.25"
    assert "already at its last step (100)" in _summary_line({"step": 100, "last": {}}, 100)
    assert "stopped at step 3 before its first logged step" in _summary_line({"step": 3, "last": {}}, 100)


def test_resume_with_nothing_to_resume_starts_afresh_and_sample_falls_back(tmp_path, capsys):
    """A run killed before its first checkpoint left config.json and metrics.csv: --resume refused it as an
    existing run although its help says it starts fresh. And `sample --ckpt RUNDIR` refused a corrupt newest
    checkpoint instead of taking the newest intact one, as its help says."""
    from ganfast.cli import main

    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "metrics.csv").write_text("step,d_loss\n1,0.5\n")
    common = ["train", "--model", "wgan-gp", "--data", "ring8", "--num-samples", "256", "--batch-size", "32",
              "-o", "hidden=[8]", "--no-progress", "--out", str(out), "--checkpoint-every", "1", "--keep", "0",
              "--log-every", "1"]
    assert main(common + ["--steps", "2"]) == 2  # without --resume: refused
    assert main(common + ["--steps", "2", "--resume"]) == 0
    assert "no checkpoint in" in capsys.readouterr().err
    assert [int(r["step"]) for r in read_metrics(str(out / "metrics.csv"))] == [1, 2]
    _flip(out / "checkpoints" / "ckpt-00000002.pt")
    for where in (out, out / "checkpoints", out / "checkpoints" / "latest"):
        with pytest.warns(UserWarning, match="passing over .*ckpt-00000002.pt is corrupt"):
            assert main(["sample", "--ckpt", str(where), "--n", "4", "--out", str(tmp_path / "s.npy")]) == 0
    assert main(["sample", "--ckpt", str(out / "checkpoints" / "ckpt-00000002.pt"), "--n", "4", "--out",
                 str(tmp_path / "s.npy")]) == 2  # the damaged file itself, asked for by name: refused
