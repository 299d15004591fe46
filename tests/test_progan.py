"""ProGAN (Karras et al. 2018): fade-in blends, equalized lr, pixel norm, the lod schedule, optimiser
resets, exact resume in the middle of a fade-in, and the WGAN-GP + drift loss."""

import csv
import dataclasses
import math
import shutil

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

from ganfast.data import Batch, GANDataset
from ganfast.models import StepContext, build, describe, names
from ganfast.models.nets.progan import blend_reals, level
from ganfast.models.progan import lod_at
from ganfast.nn import BiasLeakyReLUPixelNorm, PixelNorm
from ganfast.train import TrainConfig, Trainer

SQRT2 = math.sqrt(2.0)
TINY = {"fmap_base": 16, "fmap_max": 8}  # nf: 8, 8, 4, 2, ...


def tiny(side=8, **options):
    """A float64 ProGAN on (1, side, side) images with a few channels per layer."""
    m = build("progan", sample_shape=[1, side, side], **{**TINY, **options})
    return m.double()


def images(n, side, gen, channels=1):
    return (torch.rand(n, channels, side, side, generator=gen, dtype=torch.float64) * 2 - 1)


def down(x):
    """2x2 box filter, written out."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).mean(dim=(3, 5))


def up(x, f=2):
    """Nearest-neighbour upscaling by f, written out."""
    return x.repeat_interleave(f, dim=2).repeat_interleave(f, dim=3)


def g_features_4x4(G, z):
    zn = z / torch.sqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
    x = G.dense(zn).view(len(z), -1, 4, 4)
    return G.conv_act(G.conv(G.dense_act(x)))


def d_tail(D, h):
    h = D.mbstd(h)
    h = F.leaky_relu(D.conv(h), 0.2)
    h = F.leaky_relu(D.dense0(h.flatten(1)), 0.2)
    return D.dense1(h).squeeze(1)


# -- 1. fade-in blends ------------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_generator_output_is_the_fade_in_blend(alpha, gen):
    m = tiny(8)
    G = m.G
    z = torch.randn(5, m.options.latent_dim, generator=gen, dtype=torch.float64)
    lod = 1.0 - alpha  # R = 8: lod 1 is 4x4, lod 0 is 8x8; alpha = 1 - frac(lod)
    with torch.no_grad():
        h4 = g_features_4x4(G, z)
        h8 = G.blocks[0](h4)
        expected = (1 - alpha) * up(G.to_rgb[0](h4)) + alpha * G.to_rgb[1](h8)
        out = G(z, lod)
    assert out.shape == (5, 1, 8, 8)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_generator_output_is_always_full_resolution(gen):
    m = tiny(16)
    G = m.G
    z = torch.randn(3, m.options.latent_dim, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        h4 = g_features_4x4(G, z)
        torch.testing.assert_close(G(z, 2.0), up(G.to_rgb[0](h4), 4), rtol=1e-12, atol=1e-12)
        h8 = G.blocks[0](h4)
        mid = 0.25 * up(G.to_rgb[0](h4)) + 0.75 * G.to_rgb[1](h8)  # lod 1.25: 8x8 fading in at alpha 0.75
        torch.testing.assert_close(G(z, 1.25), up(mid, 2), rtol=1e-12, atol=1e-12)
        G.lod.fill_(1.25)  # no lod given: the buffer's (what EMA copies and checkpoints carry)
        torch.testing.assert_close(G(z), up(mid, 2), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_discriminator_input_path_is_the_fade_in_blend(alpha, gen):
    m = tiny(8)
    D = m.D
    x = images(8, 8, gen)
    with torch.no_grad():
        old = F.leaky_relu(D.from_rgb[0](down(x)), 0.2)            # fromRGB at 4x4 of the pooled image
        new = D.blocks[0](F.leaky_relu(D.from_rgb[1](x), 0.2))      # the 8x8 block on fromRGB at 8x8
        expected = d_tail(D, (1 - alpha) * old + alpha * new)
        out = D(x, 1.0 - alpha)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_discriminator_pools_its_input_to_the_current_resolution(gen):
    m = tiny(16)
    D = m.D
    x = images(4, 16, gen)
    with torch.no_grad():
        expected = d_tail(D, F.leaky_relu(D.from_rgb[0](down(down(x))), 0.2))
        torch.testing.assert_close(D(x, 2.0), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_real_images_are_blended_like_the_generator(alpha, gen):
    x = images(3, 8, gen, channels=2)
    expected = (1 - alpha) * up(down(x)) + alpha * x
    torch.testing.assert_close(blend_reals(x, 1.0 - alpha), expected, rtol=1e-12, atol=1e-12)
    # at R = 16, lod 1 + (1 - alpha): the 8x8 level blended the same way, then upscaled to 16x16
    x16 = images(3, 16, gen)
    x8 = down(x16)
    expected16 = up((1 - alpha) * up(down(x8)) + alpha * x8)
    torch.testing.assert_close(blend_reals(x16, 2.0 - alpha), expected16, rtol=1e-12, atol=1e-12)


# -- 2. equalized learning rate ---------------------------------------------------------------------------

def scale(layer):
    return layer.parametrizations.weight[0].scale


def test_equalized_lr_on_every_layer_with_the_codes_gains():
    m = tiny(16, latent_dim=6)
    G, D = m.G, m.D
    layers = [mod for net in (G, D) for mod in net.modules() if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == 2 + 2 * 2 + 3 + 3 + 2 * 2 + 3  # G: dense, conv, 2 blocks, 3 toRGB; D: 3 fromRGB, ...
    assert all(parametrize.is_parametrized(mod, "weight") for mod in layers)
    nf1, nf2, nf3 = 8, 4, 2
    expect = [
        (G.dense, SQRT2 / 4 / math.sqrt(6)),             # latent -> 4x4, the code's sqrt(2)/4
        (G.conv, SQRT2 / math.sqrt(9 * nf1)),
        (G.blocks[0].conv0, SQRT2 / math.sqrt(9 * nf1)),
        (G.blocks[1].conv0, SQRT2 / math.sqrt(9 * nf2)),
        (G.blocks[1].conv1, SQRT2 / math.sqrt(9 * nf3)),
        (G.to_rgb[0], 1 / math.sqrt(nf1)),              # toRGB: gain 1
        (G.to_rgb[2], 1 / math.sqrt(nf3)),
        (D.from_rgb[2], SQRT2 / math.sqrt(1)),
        (D.blocks[1].conv0, SQRT2 / math.sqrt(9 * nf3)),
        (D.blocks[1].conv1, SQRT2 / math.sqrt(9 * nf3)),
        (D.conv, SQRT2 / math.sqrt(9 * (nf1 + 1))),     # after the minibatch-stddev channel
        (D.dense0, SQRT2 / math.sqrt(16 * nf1)),
        (D.dense1, 1 / math.sqrt(8)),                   # the score: gain 1, fan-in nf(0)
    ]
    for layer, value in expect:
        assert scale(layer) == pytest.approx(value, rel=1e-12), layer
    stored = G.blocks[0].conv0.parametrizations.weight.original
    assert 0.5 < float(stored.detach().std()) < 1.5 and G.dense_act.bias.abs().max() == 0  # N(0, 1) weights, 0 biases


# -- 3. pixel norm --------------------------------------------------------------------------------------

def test_pixel_norm_on_z_and_after_every_generator_conv(gen):
    m = tiny(16, fmap_base=64, fmap_max=16)
    G = m.G
    norms = [mod for mod in G.modules() if isinstance(mod, (PixelNorm, BiasLeakyReLUPixelNorm))]
    assert len(norms) == 1 + 2 + 2 * 2  # z, dense, 4x4 conv, two per block
    seen = []
    hooks = [mod.register_forward_hook(lambda mod, inp, out: seen.append(out)) for mod in norms]
    z = 3 * torch.randn(4, m.options.latent_dim, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        G(z, 0.0)
    for h in hooks:
        h.remove()
    assert len(seen) == len(norms)
    for out in seen:
        # mean_c(y^2) = m / (m + 1e-8) for the input's mean square m: 1 up to eps / m
        ms = out.square().mean(dim=1)
        torch.testing.assert_close(ms, torch.ones_like(ms), rtol=0, atol=1e-4)


# -- 4. the schedule ------------------------------------------------------------------------------------

@pytest.mark.parametrize("nimg, lod", [
    (0, 2.0), (1999, 2.0), (2000, 2.0),     # 4x4 stable for 2 kimg
    (2500, 1.5), (2750, 1.25),              # 8x8 fading in over 1 kimg
    (3000, 1.0), (4999, 1.0),               # 8x8 stable
    (5250, 0.75), (5900, 0.1),              # 16x16 fading in
    (6000, 0.0), (10 ** 6, 0.0),            # full resolution from then on
])
def test_lod_schedule_by_hand(nimg, lod):
    assert lod_at(nimg, 4, 4, 2.0, 1.0) == pytest.approx(lod, abs=1e-12)


def test_lod_schedule_of_the_method_counts_images_per_step():
    m = tiny(16, lod_training_kimg=2.0, lod_transition_kimg=1.0)
    assert m.lod(250, 10) == pytest.approx(1.5)       # 2500 images
    assert m.lod(275, 10) == pytest.approx(1.25)
    assert level(1.25, 4) == (3, 0.75)                 # 8x8, alpha 0.75
    assert level(1.0, 4) == (3, 1.0) and level(0.0, 4) == (4, 1.0)
    assert lod_at(0, 5, 8, 1.0, 1.0) == 2.0            # starting at 8x8 of 32x32
    assert lod_at(1500, 4, 4, 1.0, 0.0) == 1.0         # no transition: the resolution doubles at once


# -- 5. optimiser resets --------------------------------------------------------------------------------

def run_steps(m, steps, batch=8, gen=None):
    opts = m.make_optimizers()
    x = images(32, m.sample_shape[-1], gen)
    order = torch.randperm(32, generator=gen)
    ctx = StepContext()
    history = []
    for s in range(steps):
        ctx.step = s
        idx = order[(s * batch) % 32:(s * batch) % 32 + batch]
        m.train_step(lambda: (x[idx], None), opts, ctx)
        p = m.G.dense.parametrizations.weight.original
        st = opts["G"].state[p]
        q = m.D.dense1.parametrizations.weight.original
        history.append((float(st["step"]), float(opts["D"].state[q]["step"]),
                        torch.equal(st["exp_avg_sq"], (1 - 0.99) * p.grad * p.grad)))
    return history


def test_optimiser_state_is_reset_when_a_new_level_starts(gen):
    # 4 steps of 8 images per half phase: 4x4 stable on steps 0-4 (lod 1), 8x8 fading in on 5-7
    # (lod 0.75, 0.5, 0.25), 8x8 stable from step 8 (lod 0): resets on steps 5 and 8 only
    m = tiny(8, lod_training_kimg=0.032, lod_transition_kimg=0.032)
    assert [m.lod(s, 8) for s in range(10)] == [1, 1, 1, 1, 1, 0.75, 0.5, 0.25, 0, 0]
    history = run_steps(m, 12, gen=gen)
    steps_g = [h[0] for h in history]
    assert steps_g == [1, 2, 3, 4, 5, 1, 2, 3, 1, 2, 3, 4]
    assert [h[1] for h in history] == steps_g
    # right after a reset Adam's second moment holds only this step's gradient (beta1 = 0: exp_avg is
    # the gradient either way), so the old moments are gone; on other steps they are not
    assert [h[2] for h in history] == [True, False, False, False, False, True, False, False, True, False,
                                       False, False]


def test_reset_clears_adam_state_and_can_be_turned_off(gen):
    m = tiny(8)
    opts = m.make_optimizers()
    p = next(m.G.parameters())
    p.grad = torch.randn_like(p)
    opts["G"].step()
    assert opts["G"].state[p]["exp_avg"].abs().sum() > 0
    assert not m.enter_step(1.0, 1.0, opts) and len(opts["G"].state) == 1    # same level: kept
    assert m.enter_step(0.9, 1.0, opts) and len(opts["G"].state) == 0        # a fade-in starts: cleared
    assert float(m.G.lod) == float(m.D.lod) == 0.9
    off = tiny(8, reset_optimizers=False, lod_training_kimg=0.032, lod_transition_kimg=0.032)
    assert [h[0] for h in run_steps(off, 10, gen=gen)] == list(range(1, 11))


# -- 6. exact resume in the middle of a fade-in ---------------------------------------------------------

def read_metrics(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def trainer(out, steps=20):
    g = torch.Generator().manual_seed(3)
    data = GANDataset("tiny", torch.rand(64, 1, 8, 8, generator=g) * 2 - 1)
    # 8 images a step, 6 steps stable and 6 fading: lod 1 on steps 0-6, fading on 7-11, 0 from 12
    cfg = TrainConfig(model="progan", data="tiny", steps=steps, batch_size=8, out=str(out), progress=False,
                      log_every=1, checkpoint_every=9, sample_every=100, grid_size=4,
                      model_options={**TINY, "lod_training_kimg": 0.048, "lod_transition_kimg": 0.048})
    return Trainer(cfg, dataset=data)


def test_resume_in_the_middle_of_a_fade_in_is_exact(tmp_path):
    a = trainer(tmp_path / "a")
    a.fit()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    b = trainer(tmp_path / "b")
    assert b.resume(str(tmp_path / "b" / "checkpoints" / "ckpt-00000009.pt")) and b.step == 9
    assert 0 < float(b.model.G.lod) < 1  # the checkpoint was taken mid-fade
    b.fit()
    ra, rb = read_metrics(tmp_path / "a" / "metrics.csv"), read_metrics(tmp_path / "b" / "metrics.csv")
    assert [float(r["lod"]) for r in ra] == pytest.approx([1.0] * 7 + [1 - k / 6 for k in range(1, 6)] + [0.0] * 8,
                                                          abs=1e-7)  # logged in float32
    assert len(ra) == len(rb) == 20
    for x, y in zip(ra, rb):
        assert {k: v for k, v in x.items() if k != "images_per_s"} == {k: v for k, v in y.items()
                                                                      if k != "images_per_s"}
    for (k, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), k
    for p, q in zip(a.emas["G"].module.state_dict().values(), b.emas["G"].module.state_dict().values()):
        assert torch.equal(p, q)
    assert float(a.emas["G"].module.lod) == 0.0  # the EMA generator samples at the full resolution
    assert (tmp_path / "a" / "samples" / "step-00000020.png").exists()


# -- 7. the loss ----------------------------------------------------------------------------------------

def test_d_loss_is_wgan_gp_plus_drift(gen):
    m = tiny(8, lod_training_kimg=0.032, lod_transition_kimg=0.032)
    x = images(8, 8, gen)
    ctx = StepContext()
    ctx.step = 6  # lod 0.5: mid fade-in
    lod = m.lod(6, 8)
    assert lod == 0.5
    rng = torch.get_rng_state()
    loss, logs = m.d_main(Batch.from_any((x, None)), ctx)
    torch.set_rng_state(rng)
    real = blend_reals(x, lod)
    z = torch.randn(8, m.options.latent_dim, dtype=torch.float64)
    with torch.no_grad():
        fake = m.G(z, lod)
    d_real, d_fake = m.D(real, lod), m.D(fake, lod)
    eps = torch.rand(8).double().view(8, 1, 1, 1)  # losses.gradient_penalty draws eps in float32
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(m.D(x_hat, lod).sum(), x_hat)
    gp = (grad.flatten(1).norm(dim=1) - 1).square().mean()
    drift = d_real.square().mean()
    expected = d_fake.mean() - d_real.mean() + 10.0 * gp + 0.001 * drift
    torch.testing.assert_close(logs["gp"], gp.detach(), rtol=1e-10, atol=0)
    torch.testing.assert_close(logs["drift"], drift.detach(), rtol=1e-10, atol=0)
    torch.testing.assert_close(logs["d_loss"], expected.detach(), rtol=1e-10, atol=0)
    torch.testing.assert_close(loss.detach(), expected.detach(), rtol=1e-10, atol=0)
    assert float(drift.detach()) > 0 and float(gp.detach()) > 0
    # both terms are in the loss the optimiser sees: its gradient reaches D through the penalty
    g_loss, g_logs = m.g_main(Batch.from_any((x, None)), ctx)
    assert torch.isfinite(g_loss) and "g_loss" in g_logs


# -- the registry ----------------------------------------------------------------------------------------

def test_registered_with_paper_defaults_and_sources():
    assert "progan" in names() and "fading" in dict(describe())["progan"]
    m = build("progan", sample_shape=[3, 16, 16])
    o = m.options
    assert (o.fmap_base, o.fmap_max, o.latent_dim) == (8192, 512, 512)
    assert (o.lr, o.betas, o.eps, o.gradient_penalty, o.drift) == (1e-3, [0.0, 0.99], 1e-8, 10.0, 1e-3)
    assert (o.lod_training_kimg, o.lod_transition_kimg, o.mbstd_group_size) == (600.0, 600.0, 4)
    assert all(f.metadata["source"] for f in dataclasses.fields(o) if f.name != "sample_shape")
    with pytest.raises(ValueError, match="power of two"):
        build("progan", sample_shape=[1, 12, 12])


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_trains_through_a_fade_in_on_every_backend(backend, gen):
    import ganfast
    m = build("progan", sample_shape=[1, 8, 8], **TINY, lod_training_kimg=0.008, lod_transition_kimg=0.008)
    x = images(20, 8, gen).float()
    opts = m.make_optimizers()
    ctx = StepContext()
    with ganfast.use_backend(backend):
        for s in range(5):  # 4 images a step: lod 1, 1, 1, 0.5, 0
            ctx.step = s
            logs = m.train_step(lambda: (x[s * 4:(s + 1) * 4], None), opts, ctx)
            assert all(math.isfinite(float(v)) for v in logs.values()), logs
    assert float(logs["lod"]) == 0.0
    with torch.no_grad():
        assert m.sample(3).shape == (3, 1, 8, 8)


@pytest.mark.parametrize("lod", [0.5, 0.0])
def test_checkpointed_blocks_give_the_same_values_gradients_and_gradient_penalty(lod, monkeypatch):
    """-o checkpoint_blocks=true recomputes the blocks in the backward: D's WGAN-GP penalty (a double backward
    through the checkpointed blocks) and G's gradients equal the plain networks' in float64."""
    torch.manual_seed(0)
    plain = tiny(16).double()
    torch.manual_seed(0)
    ckpt = tiny(16, checkpoint_blocks=True).double()
    assert ckpt.G.checkpoint_blocks and ckpt.D.checkpoint_blocks and not plain.D.checkpoint_blocks
    ckpt.load_state_dict(plain.state_dict())
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 1, 16, 16, generator=gen, dtype=torch.float64)
    z = torch.randn(4, plain.G.latent_dim, generator=gen, dtype=torch.float64)

    def grads(m):
        xr = x.clone().requires_grad_()
        (gx,) = torch.autograd.grad(m.D(xr, lod).sum(), [xr], create_graph=True)
        penalty = (gx.flatten(1).norm(dim=1) - 1).square().mean()  # WGAN-GP's term, differentiated again
        d_params = [p for p in m.D.parameters() if p.requires_grad]
        gd = torch.autograd.grad(penalty, d_params, allow_unused=True)
        fake = m.G(z, lod)
        gg = torch.autograd.grad(m.D(fake, lod).sum(), list(m.G.parameters()), allow_unused=True)
        return penalty.detach(), fake.detach(), gd, gg

    from ganfast.models.nets import progan as nets

    calls = []
    real = nets.checkpoint
    monkeypatch.setattr(nets, "checkpoint", lambda *a, **k: calls.append(k) or real(*a, **k))
    pa, fa, gda, gga = grads(plain)
    assert calls == []
    pb, fb, gdb, ggb = grads(ckpt)
    assert calls and all(k == {"use_reentrant": False} for k in calls)  # every block ran checkpointed
    torch.testing.assert_close(pb, pa, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(fb, fa, rtol=1e-12, atol=1e-14)
    for a, b in zip(gda + gga, gdb + ggb):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
    assert any(g is not None and g.abs().sum() > 0 for g in gdb)  # the penalty reaches D's block weights


# -- per-resolution batch sizes (the code's minibatch_dict) -----------------------------------------------

def _images_before(step, sizes, L, r0, t_kimg, f_kimg):
    """Images shown before ``step``, counted one step at a time (the code's cur_nimg += minibatch)."""
    nimg = 0
    for _ in range(step):
        res = 2 ** (L - math.floor(lod_at(nimg, L, r0, t_kimg, f_kimg)))
        nimg += sizes(res)
    return nimg


@pytest.mark.parametrize("t_kimg,f_kimg,r0", [(0.5, 0.5, 4), (0.0, 0.3, 4), (0.7, 0.0, 4), (0.25, 0.33, 8),
                                              (0.0, 0.0, 4)])
def test_images_shown_with_per_resolution_batches_match_a_step_by_step_count(t_kimg, f_kimg, r0):
    from ganfast.models.progan import nimg_at_step
    sizes = {4: 48, 8: 32, 16: 7}
    for step in list(range(0, 120)) + [500, 1001]:
        want = _images_before(step, lambda r: sizes.get(r, 5), 5, r0, t_kimg, f_kimg)
        assert nimg_at_step(step, lambda r: sizes.get(r, 5), 5, r0, t_kimg, f_kimg) == want, step
    with pytest.raises(ValueError, match="step"):
        nimg_at_step(-1, lambda r: 4, 5)


def test_minibatch_dict_sets_each_steps_batch_and_resumes_exactly(tmp_path):
    """-o minibatch_dict: a step at resolution r draws minibatch_dict[r] images (the rest --batch-size), the
    lod follows the images shown, and a run resumed mid fade-in is the uninterrupted run."""
    g = torch.Generator().manual_seed(3)
    data = GANDataset("tiny", torch.rand(64, 1, 8, 8, generator=g) * 2 - 1)
    options = {**TINY, "lod_training_kimg": 0.032, "lod_transition_kimg": 0.032, "minibatch_dict": {"4": 8, "8": 2}}

    def make(out):
        cfg = TrainConfig(model="progan", data="tiny", steps=24, batch_size=4, out=str(out), progress=False,
                          log_every=1, checkpoint_every=12, sample_every=100, grid_size=4, model_options=options)
        return Trainer(cfg, dataset=data)

    a = make(tmp_path / "a")
    seen = []
    d_main = a.model.d_main
    spy = lambda b, c: seen.append((c.step, len(b))) or d_main(b, c)  # noqa: E731
    a.model.phases = lambda: [dataclasses.replace(p, loss=spy) if p.name == "D" else p
                              for p in type(a.model).phases(a.model)]
    a.fit()
    # 4x4 draws 8 images a step up to 32 images: steps 0-4 (step 4 starts at 32, still lod 1); the fade-in
    # to 8x8 draws 2 a step from 40 images on, lod = 1 - (nimg - 32) / 32
    assert seen[:7] == [(0, 8), (1, 8), (2, 8), (3, 8), (4, 8), (5, 2), (6, 2)]
    assert len(seen) == 24 and all(n == 2 for _, n in seen[5:])
    assert a.model.nimg(5, 4) == 40 and a.model.nimg(9, 4) == 48 and a.model.nimg(21, 4) == 72
    ra = read_metrics(tmp_path / "a" / "metrics.csv")
    lods = [float(r["lod"]) for r in ra]
    want = [min(1.0, max(0.0, 1 - (a.model.nimg(s, 4) - 32) / 32)) for s in range(24)]
    assert lods == pytest.approx(want, abs=1e-7) and want[5] == 0.75 and want[12] == pytest.approx(0.3125)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    b = make(tmp_path / "b")
    assert b.resume(str(tmp_path / "b" / "checkpoints" / "ckpt-00000012.pt")) and b.step == 12
    assert 0 < float(b.model.G.lod) < 1 and b.batches.offset == 40 + 7 * 2  # the cursor counts images
    b.fit()
    rb = read_metrics(tmp_path / "b" / "metrics.csv")
    assert len(ra) == len(rb) == 24
    for x, y in zip(ra, rb):
        assert {k: v for k, v in x.items() if k != "images_per_s"} == {k: v for k, v in y.items()
                                                                      if k != "images_per_s"}
    for (k, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), k
    with pytest.raises(ValueError, match="minibatch_dict"):
        build("progan", sample_shape=[1, 8, 8], minibatch_dict={"3": 4})
    with pytest.raises(ValueError, match="minibatch_dict"):
        build("progan", sample_shape=[1, 8, 8], minibatch_dict={"4": 0})
    with pytest.raises(ValueError, match="minibatch_dict"):
        build("progan", sample_shape=[1, 8, 8], minibatch_dict=[4, 8])
    for md, says in (({"4": 6}, r"minibatch_dict\['4'\] 6 is not divisible"), ({"8": 65}, "larger than the dataset")):
        with pytest.raises(ValueError, match=says):  # refused before training, not when 8x8 is reached
            Trainer(TrainConfig(model="progan", data="tiny", steps=1, batch_size=4, progress=False,
                                model_options={**TINY, "minibatch_dict": md}), dataset=data)
    m = build("progan", sample_shape=[1, 8, 8], minibatch_dict={"4": 8})
    with pytest.raises(ValueError, match="'minibatch_dict' needs the trainer's loader"):
        m.train_step(lambda: (torch.rand(4, 1, 8, 8), None), m.make_optimizers(), StepContext())
