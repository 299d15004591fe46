"""StyleGAN (Karras et al. 2019): defaults and sources, AdaIN (eq. 1) in float64, the generator against a
hand-written forward on the reference ops, the resampling against the released nearest + conv + blur form away
from the border, ProGAN's discriminator, truncation, mixing and training through the trainer."""

import dataclasses
import math
import re

import pytest
import torch
import torch.nn.functional as F

import ganfast
from ganfast.data import GANDataset
from ganfast.models import build, names
from ganfast.models.nets.stylegan import AdaIN, instance_norm
from ganfast.models.nets.stylegan2 import StyleGAN2Discriminator
from ganfast.ref import modulated_conv2d as ref_mc
from ganfast.train import TrainConfig, Trainer

TINY = {"z_dim": 8, "w_dim": 8, "mapping_layers": 2, "channel_base": 32, "channel_max": 4}


def tiny(side=8, **options):
    torch.manual_seed(0)
    return build("stylegan", sample_shape=[1, side, side], **{**TINY, **options}).double()


def test_registered_before_stylegan2_with_the_papers_defaults_and_sources():
    assert names().index("stylegan") == names().index("stylegan2") - 1
    m = build("stylegan", sample_shape=[3, 32, 32], channel_base=64, channel_max=8)
    o = m.options
    assert (o.z_dim, o.w_dim, o.mapping_layers, o.mapping_lr, o.w_avg_beta, o.style_mixing) == \
        (512, 512, 8, 0.01, 0.995, 0.9)
    assert (o.betas, o.eps, o.r1_gamma, o.r1_interval, o.pl_weight, o.ema_rampup, o.mbstd_group_size) == \
        ([0.0, 0.99], 1e-8, 10.0, 1, 0.0, None, 4)
    assert build("stylegan", sample_shape=[3, 32, 32]).options.channel_base == 16384
    assert [p.name for p in m.phases()] == ["Gmain", "Dmain", "Dreg"]  # R1 every step, no path length
    assert not any(p.lazy for p in m.phases())
    lrs = [build("stylegan", sample_shape=[3, r, r], channel_base=64, channel_max=8).options.lr
           for r in (32, 128, 256, 1024)]
    assert lrs == [0.001, 0.0015, 0.002, 0.003]
    assert all(f.metadata["source"] for f in dataclasses.fields(o) if f.name != "sample_shape")
    with pytest.raises(ValueError, match="power of two"):
        build("stylegan", sample_shape=[1, 24, 24])


def test_adain_gives_each_channel_the_styles_mean_and_deviation():
    """Eq. 1: after the epilogue, channel c of sample n has mean y_b and (biased) std y_s (eps 1e-8 aside)."""
    torch.manual_seed(1)
    layer = AdaIN(5, 6, 8).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    x, w = torch.randn(3, 5, 8, 8, dtype=torch.float64) * 3 + 1, torch.randn(3, 6, dtype=torch.float64)
    y = layer(x, w, noise_mode="const")
    a = layer.affine
    style = F.linear(w, a.weight * a.weight_gain, a.bias * a.bias_gain)
    ys, yb = style[:, :5], style[:, 5:]
    torch.testing.assert_close(y.mean(dim=(2, 3)), yb, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(y.std(dim=(2, 3), unbiased=False), ys.abs(), rtol=1e-6, atol=1e-10)
    # the written-out epilogue: noise * per-channel strength, bias, lrelu, instance norm, style
    h = x + layer.noise_const * layer.noise_strength.view(1, -1, 1, 1)
    h = F.leaky_relu(h + layer.bias.view(1, -1, 1, 1), 0.2)
    h = (h - h.mean((2, 3), keepdim=True)) / torch.sqrt(h.var((2, 3), unbiased=False, keepdim=True) + 1e-8)
    torch.testing.assert_close(y, h * ys[:, :, None, None] + yb[:, :, None, None], rtol=1e-10, atol=1e-12)
    assert not torch.equal(layer(x, w, "random"), layer(x, w, "random"))  # fresh noise each call
    torch.testing.assert_close(layer(x, w, "none"), layer(x, w, "none"))
    h16 = torch.randn(2, 3, 4, 4, dtype=torch.bfloat16) * 100
    out = instance_norm(h16)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    torch.testing.assert_close(out.float().std(dim=(2, 3), unbiased=False), torch.ones(2, 3), atol=2e-2, rtol=0)


def test_generator_is_the_architecture_written_out_on_the_reference_ops():
    """G at 8x8: mapping, const 4x4 (ones) -> epilogue(w0) -> conv -> epilogue(w1) -> up-conv -> epilogue(w2) ->
    conv -> epilogue(w3) -> toRGB (1x1, gain 1, bias); convs with gain sqrt 2 / sqrt(fan_in)."""
    m = tiny(8)
    G = m.G
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    z = torch.randn(3, 8, dtype=torch.float64)
    ws = G.mapping(z)
    assert G.num_ws == 4 and ws.shape == (3, 4, 8)
    f = ganfast.ops.setup_filter(dtype=torch.float64)

    def epilogue(e, h, w):
        a = e.affine
        style = F.linear(w, a.weight * a.weight_gain, a.bias * a.bias_gain)
        h = F.leaky_relu(h + e.noise_const * e.noise_strength.view(1, -1, 1, 1) + e.bias.view(1, -1, 1, 1), 0.2)
        h = (h - h.mean((2, 3), keepdim=True)) / torch.sqrt(h.var((2, 3), unbiased=False, keepdim=True) + 1e-8)
        c = h.shape[1]
        return h * style[:, :c, None, None] + style[:, c:, None, None]

    def conv(c, h, up=1):
        w = c.weight * math.sqrt(2) / math.sqrt(c.weight[0].numel())
        return ref_mc.conv2d_resample(h, w, f, up=up, padding=1)

    b4, b8 = G.blocks
    h = epilogue(b4.epilogue0, b4.const.unsqueeze(0).expand(3, -1, -1, -1), ws[:, 0])
    h = epilogue(b4.epilogue1, conv(b4.conv1, h), ws[:, 1])
    h = epilogue(b8.epilogue0, conv(b8.conv0, h, up=2), ws[:, 2])
    h = epilogue(b8.epilogue1, conv(b8.conv1, h), ws[:, 3])
    img = F.conv2d(h, G.torgb_weight / math.sqrt(h.shape[1]), G.torgb_bias)
    torch.testing.assert_close(G.synthesis(ws, noise_mode="const"), img, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(G(z, noise_mode="const"), img, rtol=1e-10, atol=1e-12)
    assert torch.equal(torch.ones_like(b4.const), build("stylegan", sample_shape=[1, 8, 8], **TINY).G.blocks[0].const)


def _blur121(x):
    k = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype)
    k = (k[:, None] * k[None, :] / 16).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(x, k, padding=1, groups=x.shape[1])


def test_resampling_equals_the_released_nearest_conv_blur_away_from_the_border():
    """NVlabs/stylegan: G's up layer is nearest x2, conv, [1,2,1] blur; D's down layer is blur, conv, 2x2 average
    pool.  ganfast's [1,3,3,1] conv2d_resample equals them in the interior and differs on the one-pixel border
    (the released code zero-pads between the stages), as the module docstring says."""
    g = torch.Generator().manual_seed(3)
    f = ganfast.ops.setup_filter(dtype=torch.float64)
    x = torch.randn(2, 3, 6, 6, generator=g, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64)
    released = _blur121(F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), w, padding=1))
    ours = ganfast.ops.conv2d_resample(x, w, f, up=2, padding=1)
    assert ours.shape == released.shape == (2, 4, 12, 12)
    torch.testing.assert_close(ours[..., 1:-1, 1:-1], released[..., 1:-1, 1:-1], rtol=1e-12, atol=1e-12)
    assert not torch.allclose(ours[..., 0, :], released[..., 0, :])
    x = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    released = F.avg_pool2d(F.conv2d(_blur121(x), w, padding=1), 2)
    ours = ganfast.ops.conv2d_resample(x, w, f, down=2, padding=1)
    assert ours.shape == released.shape == (2, 4, 4, 4)
    torch.testing.assert_close(ours[..., 1:-1, 1:-1], released[..., 1:-1, 1:-1], rtol=1e-12, atol=1e-12)
    assert not torch.allclose(ours[..., 0, :], released[..., 0, :])


def test_discriminator_is_stylegan2s_without_the_residual_skips():
    m = tiny(16)
    D = m.D
    assert D.architecture == "orig" and not any("skip" in k for k in D.state_dict())
    img = torch.randn(4, 1, 16, 16, dtype=torch.float64)
    h = D.blocks[0].fromrgb(img)
    for blk in D.blocks:
        h = blk.conv1(blk.conv0(h))
    h = D.conv(D.mbstd(h))
    torch.testing.assert_close(D(img), D.out(D.fc(h.flatten(1))).squeeze(1), rtol=0, atol=0)
    with pytest.raises(ValueError, match="architecture must be 'resnet' or 'orig'; got 'skip'"):
        StyleGAN2Discriminator(16, 1, 64, 8, architecture="skip")


def test_truncation_style_mixing_and_interpolation_use_stylegans_ws():
    m = tiny(8)
    G = m.G
    G.mapping.w_avg.copy_(torch.randn(8, dtype=torch.float64))
    a, b = m.sample(3, truncation_psi=0.0), m.sample(3, truncation_psi=0.0)
    torch.testing.assert_close(a, a[:1].expand_as(a))  # psi 0, const noise: every sample is G(w_avg)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(m.sample(3), a)
    rows, cols = torch.randn(2, 8, dtype=torch.float64), torch.randn(3, 8, dtype=torch.float64)
    grid = m.style_mix(rows, cols, cutoff=2)
    wr, wc = G.mapping(rows), G.mapping(cols)
    torch.testing.assert_close(grid[1 * 3 + 2:1 * 3 + 3],
                               G.synthesis(torch.cat([wr[1:2, :2], wc[2:3, 2:]], dim=1), noise_mode="const"))
    strip = m.interpolate(rows, cols[:2], 3).view(2, 3, 1, 8, 8)
    torch.testing.assert_close(strip[:, 0], m.sample(latent=rows))


def test_trains_through_the_trainer_with_r1_every_step(tmp_path):
    data = GANDataset("tiny", torch.rand(32, 1, 8, 8) * 2 - 1)
    cfg = TrainConfig(model="stylegan", data="tiny", steps=3, batch_size=8, progress=False, log_every=1,
                      sample_every=100, checkpoint_every=100, out=str(tmp_path), model_options=TINY)
    t = Trainer(cfg, dataset=data)
    before = [p.detach().clone() for p in t.model.G.parameters()]
    t.fit()
    assert len(t.history) == 3 and all("r1" in row and math.isfinite(row["r1"]) and row["r1"] > 0
                                       for row in t.history), t.history
    assert all(math.isfinite(row["g_loss"]) and math.isfinite(row["d_loss"]) for row in t.history)
    moved = [not torch.equal(p, q) for p, q in zip(before, t.model.G.parameters())]
    assert all(moved), "every G parameter (noise strengths, styles, const) gets a gradient"


def test_register_before_an_unknown_method_is_refused_and_changes_nothing():
    from ganfast.models import REGISTRY, register
    from ganfast.models.stylegan import StyleGAN

    class Later(StyleGAN):
        name = "stylegan-later"

    order = list(REGISTRY)
    with pytest.raises(ValueError, match=r"register\(before='nope'\): no such method; registered: gan, dcgan"):
        register(Later, before="nope")
    assert list(REGISTRY) == order
    with pytest.raises(ValueError, match="model name 'stylegan' is taken by StyleGAN"):
        register(type("Other", (StyleGAN,), {"name": "stylegan"}), before="gan")
    assert list(REGISTRY) == order


def test_bad_arguments_name_the_argument():
    """From a new user's trial: each of these was silent or crashed deep inside (matmul, slicing, range)."""
    from ganfast.models.nets.stylegan import StyleGANGenerator

    m = tiny(8)  # num_ws 4
    z = torch.randn(3, 8, dtype=torch.float64)
    cases = [
        (lambda: StyleGANGenerator(8, 8, 12, 1), "img_resolution must be a power of two >= 4; got 12"),
        (lambda: StyleGAN2Discriminator(2, 1), "img_resolution must be a power of two >= 4; got 2"),
        (lambda: m.G.synthesis(m.G.mapping(z), noise_mode="cosnt"), "noise_mode must be 'random', 'const' or"),
        (lambda: m.G.synthesis(torch.randn(3, 8, 8, dtype=torch.float64)), "ws must be (N, num_ws=4, w_dim=8)"),
        (lambda: m.style_mix(z, z, 4), "cutoff must be an int in [1, 3]"),
        (lambda: m.style_mix(z, z, 2.5), "cutoff must be an int in [1, 3]"),
        (lambda: m.style_mix(z, torch.randn(2, 7, dtype=torch.float64), 2), "cols must be (P, z_dim=8)"),
        (lambda: m.sample(latent=z, truncation_psi=0.5, truncation_cutoff=0), "truncation_cutoff must be an int"),
        (lambda: m.sample(latent=z, truncation_psi=0.5, truncation_cutoff=5), "in [1, 4]"),
        (lambda: m.sample(0), "n must be a positive int; got 0"),
        (lambda: m.sample(5, latent=z), "n (5) must equal the number of latents (3)"),
        (lambda: m.sample(latent=torch.randn(3, 7)), "latent must be (P, z_dim=8)"),
        (lambda: m.interpolate(torch.randn(8), torch.randn(8), 3), "start must be (P, z_dim=8)"),
    ]
    for call, words in cases:
        with pytest.raises(ValueError, match=re.escape(words)):
            call()
    assert m.sample(latent=z, truncation_psi=0.5, truncation_cutoff=4).shape == (3, 1, 8, 8)
