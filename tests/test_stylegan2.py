"""StyleGAN2 (Karras et al. 2020): defaults and sources, the networks against a hand-written forward on the
reference ops, truncation and style mixing, lazy regularisation, path length and R1 through the fused ops
against the reference ops in float64, exact resume."""

import csv
import dataclasses
import math
import shutil

import pytest
import torch
import torch.nn.functional as F

import ganfast
from ganfast.data import Batch, GANDataset
from ganfast.models import StepContext, build, names
from ganfast.ref import bias_act as ref_bias_act
from ganfast.ref import modulated_conv2d as ref_mc
from ganfast.ref import upfirdn2d as ref_ufd
from ganfast.train import TrainConfig, Trainer

TINY = {"z_dim": 8, "w_dim": 8, "mapping_layers": 2, "channel_base": 32, "channel_max": 4}


def tiny(side=8, **options):
    torch.manual_seed(0)
    return build("stylegan2", sample_shape=[1, side, side], **{**TINY, **options}).double()


def test_registered_with_the_papers_defaults_and_sources():
    assert "stylegan2" in names()
    o = build("stylegan2", sample_shape=[3, 32, 32], channel_base=64, channel_max=8).options
    assert (o.z_dim, o.w_dim, o.mapping_layers, o.mapping_lr, o.w_avg_beta) == (512, 512, 8, 0.01, 0.995)
    assert (o.betas, o.eps, o.r1_interval, o.pl_interval, o.pl_weight, o.pl_decay, o.pl_batch_shrink) == \
        ([0.0, 0.99], 1e-8, 16, 4, 2.0, 0.01, 2)
    assert (o.style_mixing, o.mbstd_group_size, o.channel_base, o.channel_max) == (0.9, 4, 64, 8)
    assert (o.lr, o.r1_gamma) == (0.0025, 0.01)  # 32x32: the cifar config
    o256 = build("stylegan2", sample_shape=[3, 256, 256], channel_base=64, channel_max=8).options
    o1024 = build("stylegan2", sample_shape=[3, 1024, 1024], channel_base=64, channel_max=8).options
    assert (o256.lr, o256.r1_gamma, o1024.lr, o1024.r1_gamma) == (0.002, 1.0, 0.002, 10.0)
    assert all(f.metadata["source"] for f in dataclasses.fields(o) if f.name != "sample_shape")
    with pytest.raises(ValueError, match="power of two"):
        build("stylegan2", sample_shape=[1, 24, 24])


def _fc(layer, x, act):
    y = F.linear(x, layer.weight * layer.weight_gain, layer.bias * layer.bias_gain)
    return F.leaky_relu(y, 0.2) * math.sqrt(2) if act else y


def test_generator_is_the_architecture_written_out_on_the_reference_ops():
    """G at 8x8 by hand: mapping (2nd-moment norm, lrelu FCs), const 4x4, modulated convs (ref, eqs. 1-3) with
    const noise, bias + lrelu * sqrt 2, toRGB without demodulation, the skip sum with the [1,3,3,1] upsampling;
    ws indices 0 (conv1 4x4), 1 (toRGB 4x4 and conv0 8x8), 2 (conv1 8x8), 3 (toRGB 8x8)."""
    m = tiny(8)
    G = m.G
    for p in G.parameters():  # non-trivial noise strengths and biases
        with torch.no_grad():
            p.add_(torch.randn_like(p) * 0.1)
    z = torch.randn(3, 8, dtype=torch.float64)
    x = z / torch.sqrt(z.square().mean(1, keepdim=True) + 1e-8)
    for layer in G.mapping.layers:
        x = _fc(layer, x, True)
    assert G.num_ws == 4
    f = ganfast.ops.setup_filter(dtype=torch.float64)

    def layer(lay, h, w, up=1):
        styles = _fc(lay.affine, w, False)
        y = ref_mc.modulated_conv2d(h, lay.weight, styles, lay.noise_const * lay.noise_strength, f, True, up, 1, 1)
        return ref_bias_act.bias_act(y, lay.bias, act="leaky_relu", negative_slope=0.2, gain=math.sqrt(2))

    def torgb(t, h, w):
        styles = _fc(t.affine, w, False) / math.sqrt(h.shape[1])
        return ref_mc.modulated_conv2d(h, t.weight, styles, None, None, False) + t.bias.view(1, -1, 1, 1)

    b4, b8 = G.blocks
    h = b4.const.unsqueeze(0).expand(3, -1, -1, -1)
    h = layer(b4.conv1, h, x)
    img = torgb(b4.torgb, h, x)
    h = layer(b8.conv0, h, x, up=2)
    h = layer(b8.conv1, h, x)
    img = ref_ufd.upfirdn2d(img, f, (2, 2), (1, 1), (2, 1, 2, 1), False, 4.0) + torgb(b8.torgb, h, x)
    torch.testing.assert_close(G(z, noise_mode="const"), img, rtol=1e-10, atol=1e-12)


def test_discriminator_is_the_architecture_written_out():
    m = tiny(8)
    D = m.D
    img = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    f = ganfast.ops.setup_filter(dtype=torch.float64)

    def conv(c, h, act=True, gain=1.0):
        w = c.weight * c.weight_gain
        if c.down > 1:
            h = F.conv2d(ref_ufd.upfirdn2d(h, f, (1, 1), (1, 1), (c.padding + 1,) * 4, False, 1.0), w, stride=2)
        else:
            h = F.conv2d(h, w, padding=c.padding)
        if c.bias is not None:
            h = h + c.bias.view(1, -1, 1, 1)
        return F.leaky_relu(h, 0.2) * math.sqrt(2) * gain if act else h * gain

    (blk,) = D.blocks
    h = conv(blk.fromrgb, img)
    skip = conv(blk.skip, h, act=False, gain=math.sqrt(0.5))
    h = skip + conv(blk.conv1, conv(blk.conv0, h), gain=math.sqrt(0.5))
    groups = h.view(4, 1, *h.shape[1:])  # group size min(4, N) = 4: one group
    std = (groups.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))
    h = torch.cat([h, std.view(1, 1, 1, 1).expand(4, 1, 4, 4)], dim=1)
    h = conv(D.conv, h)
    want = _fc(D.out, _fc(D.fc, h.flatten(1), True), False).squeeze(1)
    torch.testing.assert_close(D(img), want, rtol=1e-10, atol=1e-12)


def test_truncation_w_avg_and_style_mixing():
    m = tiny(8)
    G = m.G
    z = torch.randn(5, 8, dtype=torch.float64)
    ws = G.mapping(z, update_w_avg=True)
    w = ws[:, 0]
    torch.testing.assert_close(G.mapping.w_avg, w.mean(0) * 0.005, rtol=1e-6, atol=1e-9)  # lerp(mean, 0, 0.995)
    G.mapping.w_avg.copy_(torch.randn(8, dtype=torch.float64))
    cut = G.mapping(z, truncation_psi=0.0, truncation_cutoff=2)
    assert torch.allclose(cut[:, :2], G.mapping.w_avg.expand(5, 2, 8)) and torch.allclose(cut[:, 2:], ws[:, 2:])
    half = G.mapping(z, truncation_psi=0.5)
    torch.testing.assert_close(half, G.mapping.w_avg + 0.5 * (ws - G.mapping.w_avg))
    rows, cols = torch.randn(2, 8, dtype=torch.float64), torch.randn(3, 8, dtype=torch.float64)
    grid = m.style_mix(rows, cols, cutoff=2)
    assert grid.shape == (6, 1, 8, 8)
    wr, wc = G.mapping(rows), G.mapping(cols)
    want = G.synthesis(torch.cat([wr[1:2, :2], wc[2:3, 2:]], dim=1), noise_mode="const")
    torch.testing.assert_close(grid[1 * 3 + 2:1 * 3 + 3], want)
    assert m.sample(2, truncation_psi=0.7, noise_mode="none").shape == (2, 1, 8, 8)
    za, zb = torch.randn(2, 8, dtype=torch.float64), torch.randn(2, 8, dtype=torch.float64)
    strip = m.interpolate(za, zb, 4).view(2, 4, 1, 8, 8)
    torch.testing.assert_close(strip[:, 0], m.sample(latent=za))  # the ends are the two latents' images
    torch.testing.assert_close(strip[:, -1], m.sample(latent=zb))
    mid = G.synthesis(torch.lerp(G.mapping(za), G.mapping(zb), 1 / 3), noise_mode="const")
    torch.testing.assert_close(strip[:, 1], mid)  # a straight line in w
    with pytest.raises(ValueError, match="steps must be an int >= 2"):
        m.interpolate(za, zb, 1)
    with pytest.raises(ValueError, match="noise_mode"):
        m.sample(2, noise_mode="fixed")


def test_batch_sizes_the_discriminator_cannot_group_are_refused_before_training():
    data = GANDataset("tiny", torch.rand(64, 1, 8, 8) * 2 - 1)
    cfg = TrainConfig(model="stylegan2", data="tiny", steps=1, batch_size=6, progress=False, model_options=TINY)
    with pytest.raises(ValueError, match=r"--batch-size 6 is not divisible by the minibatch-stddev group .* = 4"):
        Trainer(cfg, dataset=data)
    cfg = TrainConfig(model="stylegan2", data="tiny", steps=1, batch_size=6, progress=False,
                      model_options={**TINY, "mbstd_group_size": 3})
    Trainer(cfg, dataset=data)  # a group of 3 divides 6
    with pytest.raises(ValueError, match="ema_rampup"):
        build("stylegan2", sample_shape=[1, 8, 8], ema_rampup=-1.0)


def test_lazy_regularisation_intervals_and_adam_correction():
    m = tiny(8, r1_interval=16, pl_interval=4)
    phases = {p.name: p for p in m.phases()}
    assert [p.name for p in m.phases()] == ["Gmain", "Greg", "Dmain", "Dreg"]
    assert phases["Greg"].interval == 4 and phases["Greg"].lazy and phases["Dreg"].interval == 16
    opts = m.make_optimizers(fused=False)
    g, d = opts["G"].param_groups[0], opts["D"].param_groups[0]
    assert g["lr"] == pytest.approx(0.0025 * 4 / 5) and d["lr"] == pytest.approx(0.0025 * 16 / 17)
    assert g["betas"][1] == pytest.approx(0.99 ** (4 / 5)) and d["betas"][1] == pytest.approx(0.99 ** (16 / 17))
    ran = []
    ctx = StepContext()
    x = torch.rand(8, 1, 8, 8, dtype=torch.float64) * 2 - 1
    for s in range(17):
        ctx.step = s
        logs = m.train_step(lambda: (x, None), opts, ctx)
        ran.append(("pl_penalty" in logs, "r1" in logs))
    assert [s for s, (pl, _) in enumerate(ran) if pl] == [0, 4, 8, 12, 16]
    assert [s for s, (_, r1) in enumerate(ran) if r1] == [0, 16]
    assert float(m.pl_mean) > 0


def _reference_ops(monkeypatch):
    """Route the networks' op calls to ganfast.ref (the reference ops), for a fused-vs-reference comparison."""
    from ganfast.models.nets import stylegan2 as nets

    ref_ops = type("RefOps", (), {})()
    ref_ops.modulated_conv2d = lambda x, w, s, demodulate=True, up=1, down=1, padding=0, resample_filter=None, \
        noise=None: ref_mc.modulated_conv2d(x, w, s, noise, resample_filter, demodulate, up, down, padding)
    ref_ops.bias_act = ref_bias_act.bias_act
    ref_ops.upsample2d = lambda x, f: ref_ufd.upfirdn2d(x, f, (2, 2), (1, 1), (2, 1, 2, 1), False, 4.0)
    ref_ops.conv2d_resample = lambda x, w, f, down=1, padding=0: ref_mc.conv2d_resample(x, w, f, 1, down, padding)
    ref_ops.setup_filter = ganfast.ops.setup_filter
    monkeypatch.setattr(nets, "ops", ref_ops)


def test_path_length_and_r1_through_the_fused_ops_equal_the_reference_ops(monkeypatch):
    """Greg (the gradient of G's output w.r.t. w, differentiated again) and Dreg (R1: D's double backward) give
    the same losses and parameter gradients on ganfast's ops as on the reference ops, in float64."""
    x = torch.rand(8, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2 - 1

    def run():
        m = tiny(8)
        out = []
        for phase in (m.g_reg, m.d_reg):
            torch.manual_seed(5)
            loss, _ = phase(Batch.from_any((x, None)), StepContext())
            params = [p for p in m.parameters() if p.requires_grad]
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            out.append((loss.detach(), [g for g in grads if g is not None]))
        return out

    fused = run()
    _reference_ops(monkeypatch)
    reference = run()
    for (lf, gf), (lr, gr) in zip(fused, reference):
        torch.testing.assert_close(lf, lr, rtol=1e-10, atol=1e-12)
        assert len(gf) == len(gr) > 0 and any(g.abs().max() > 0 for g in gf)
        for a, b in zip(gf, gr):
            torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_resume_is_exact(tmp_path):
    g = torch.Generator().manual_seed(3)
    data = GANDataset("tiny", torch.rand(64, 1, 8, 8, generator=g) * 2 - 1)

    def make(out):
        cfg = TrainConfig(model="stylegan2", data="tiny", steps=10, batch_size=8, out=str(out), progress=False,
                          log_every=1, checkpoint_every=5, sample_every=100, grid_size=4,
                          model_options={**TINY, "r1_interval": 4, "pl_interval": 2})
        return Trainer(cfg, dataset=data)

    a = make(tmp_path / "a")
    a.fit()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    b = make(tmp_path / "b")
    assert b.resume(str(tmp_path / "b" / "checkpoints" / "ckpt-00000005.pt")) and b.step == 5
    b.fit()
    ra = list(csv.DictReader(open(tmp_path / "a" / "metrics.csv")))
    rb = list(csv.DictReader(open(tmp_path / "b" / "metrics.csv")))
    assert len(ra) == len(rb) == 10
    for x, y in zip(ra, rb):
        assert {k: v for k, v in x.items() if k != "images_per_s"} == {k: v for k, v in y.items()
                                                                      if k != "images_per_s"}
    for (k, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), k
    assert float(a.model.pl_mean) > 0  # the path-length mean is part of the checkpoint


def test_cli_sample_truncation_and_style_mixing_grid(tmp_path):
    """`ganfast sample --truncation PSI` and `--style-mix [CUTOFF]` on a StyleGAN2 checkpoint; clear errors."""
    import os
    import subprocess
    import sys

    import numpy as np
    from PIL import Image

    def ganfast_cli(*args, check=True):
        p = subprocess.run([sys.executable, "-m", "ganfast", *map(str, args)], capture_output=True, text=True,
                           env=dict(os.environ, PYTHONWARNINGS="ignore"), timeout=300)
        assert not check or p.returncode == 0, p.stderr[-2000:]
        return p

    out = tmp_path / "run"
    opts = [x for k, v in {**TINY, "mapping_layers": 1}.items() for x in ("-o", f"{k}={v}")]
    ganfast_cli("train", "--model", "stylegan2", "--data", "digits", "--image-size", 8, "--steps", 2, "--batch-size",
                8, "--out", out, "--no-progress", *opts)
    ganfast_cli("sample", "--ckpt", out, "--n", 5, "--out", tmp_path / "a.npy", "--truncation", 0.0)
    ganfast_cli("sample", "--ckpt", out, "--n", 5, "--out", tmp_path / "b.npy", "--truncation", 0.0, "--seed", 9)
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    # psi = 0: every sample is G(w_avg) up to the noise (const noise: identical)
    assert a.shape == (5, 1, 8, 8) and np.allclose(a, a[:1], atol=1e-5) and np.allclose(a, b, atol=1e-5)
    ganfast_cli("sample", "--ckpt", out, "--n", 5, "--out", tmp_path / "c.npy")
    assert not np.allclose(np.load(tmp_path / "c.npy"), a, atol=1e-3)
    ganfast_cli("sample", "--ckpt", out, "--out", tmp_path / "mix.png", "--style-mix", 2)
    w, h = Image.open(tmp_path / "mix.png").size
    assert w > h > 0  # 7 columns x 5 rows of tiles
    ganfast_cli("sample", "--ckpt", out, "--out", tmp_path / "strip.png", "--interpolate", 5, "--n", 3)
    assert Image.open(tmp_path / "strip.png").size[0] > Image.open(tmp_path / "strip.png").size[1]
    bad = ganfast_cli("sample", "--ckpt", out, "--out", tmp_path / "mix.png", "--style-mix", 7, check=False)
    assert bad.returncode == 2 and "--style-mix CUTOFF must be between 1 and 3" in bad.stderr
    for args, says in ((["--style-mix", -1], "--style-mix CUTOFF must be between 1 and 3"),
                       (["--truncation", "nan"], "--truncation must be a finite number"),
                       (["--truncation-cutoff", 2], "--truncation-cutoff needs --truncation"),
                       (["--truncation", 0.5, "--truncation-cutoff", 9], "--truncation-cutoff must be between 1 and 4"),
                       (["--style-mix", "--interpolate", 3], "--style-mix and --interpolate"),
                       (["--batch-size", 0], "--batch-size must be a positive int; got 0"),
                       (["--device", "foo"], "--device:")):
        bad = ganfast_cli("sample", "--ckpt", out, "--out", tmp_path / "x.png", *args, check=False)
        assert bad.returncode == 2 and says in bad.stderr and "Traceback" not in bad.stderr, (args, bad.stderr)
    ganfast_cli("train", "--model", "dcgan", "--data", "digits", "--image-size", 8, "--steps", 1, "--batch-size", 8,
                "--out", tmp_path / "dc", "--no-progress", "-o", "width=4")
    bad = ganfast_cli("sample", "--ckpt", tmp_path / "dc", "--out", tmp_path / "d.png", "--truncation", 0.7,
                      check=False)
    assert bad.returncode == 2 and "--truncation needs a style-based model" in bad.stderr
