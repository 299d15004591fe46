"""pix2pix (Isola et al. 2017): U-Net and PatchGAN shapes and wiring, the losses by hand, the paired jitter, training.

Tiny widths (ngf = ndf = 2..4) and 16x16 images keep the whole file to a few seconds on a CPU.
"""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

import ganfast.models.pix2pix as p2p  # registers "pix2pix" on import
from ganfast.data import Batch, load
from ganfast.models import StepContext
from ganfast.models.nets.pix2pix import AlwaysDropout, PatchDiscriminator, UNetGenerator, patch_output_size
from ganfast.train import TrainConfig, Trainer


def tiny(**kw):
    opts = dict(sample_shape=[3, 16, 16], target_channels=2, ngf=4, ndf=4, n_layers_d=2)
    opts.update(kw)
    return p2p.Pix2Pix(**opts)


def pair_batch(n=4, ca=3, cb=2, side=16, dtype=torch.float32):
    return Batch(image=torch.rand(n, ca, side, side, dtype=dtype) * 2 - 1,
                 target=torch.rand(n, cb, side, side, dtype=dtype) * 2 - 1)


# -- the U-Net ---------------------------------------------------------------------------------------------


def test_unet_output_shape_and_tanh_range():
    G = UNetGenerator(3, 2, num_downs=4, ngf=4)
    y = G(torch.randn(5, 3, 16, 16) * 3)
    assert y.shape == (5, 2, 16, 16)
    assert y.abs().max() < 1
    assert isinstance(G.model.up[-1], nn.Tanh)
    assert G(torch.randn(2, 3, 32, 48)).shape == (2, 2, 32, 48)  # any multiple of 2 ** num_downs


def test_unet_levels_and_skips_are_wired():
    """Hand-check: level i (0 = outermost) sees (B, width_{i-1}, R / 2^i, R / 2^i) and returns its input with
    the decoder's output concatenated; the innermost reaches 1x1 with ngf*8 channels and has no norm."""
    ngf, B = 4, 3
    G = UNetGenerator(3, 2, num_downs=4, ngf=ngf, dropout=0.0)
    levels = G.levels()
    assert len(levels) == 4
    seen = {}
    for i, lv in enumerate(levels):
        lv.register_forward_hook(lambda mod, inp, out, i=i: seen.__setitem__(i, (inp[0], out)))
    bottleneck = {}
    levels[-1].down.register_forward_hook(lambda mod, inp, out: bottleneck.__setitem__("x", out))
    x = torch.randn(B, 3, 16, 16)
    G(x)
    widths = [ngf, 2 * ngf, 4 * ngf, 8 * ngf]
    assert seen[0][0].shape == (B, 3, 16, 16) and seen[0][1].shape == (B, 2, 16, 16)
    for i in range(1, 4):
        inp, out = seen[i]
        side = 16 >> i
        assert inp.shape == (B, widths[i - 1], side, side)
        assert out.shape == (B, 2 * widths[i - 1], side, side)
        assert torch.equal(out[:, :widths[i - 1]], inp)  # the skip: the level's input, unchanged, first
    assert bottleneck["x"].shape == (B, 8 * ngf, 1, 1)
    inner = levels[-1]
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) for m in inner.down)
    assert isinstance(inner.up[-1], nn.BatchNorm2d)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) for m in levels[0].down)


def test_unet_bias_only_without_batch_norm_and_init():
    G = UNetGenerator(3, 3, num_downs=5, ngf=8, norm="batch")
    convs = [m for m in G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with_bias = [m for m in convs if m.bias is not None]
    assert with_bias == [G.model.up[1]]  # only the outermost transposed conv (followed by tanh)
    w = torch.cat([m.weight.flatten() for m in convs])
    assert abs(w.mean()) < 2e-3 and abs(w.std() - 0.02) < 2e-3
    bn = torch.cat([m.weight for m in G.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(bn.mean() - 1) < 0.01 and 0.005 < bn.std() < 0.04
    Gi = UNetGenerator(3, 3, num_downs=5, ngf=8, norm="instance")
    assert all(m.bias is not None for m in Gi.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))
    assert not any(p for m in Gi.modules() if isinstance(m, nn.InstanceNorm2d) for p in m.parameters())


def test_dropout_on_the_ngf8_levels_and_kept_in_eval():
    count = lambda G: sum(isinstance(m, AlwaysDropout) for m in G.modules())  # noqa: E731
    assert count(UNetGenerator(3, 3, num_downs=8, ngf=2)) == 3  # unet_256: the three C512 levels next to the innermost
    assert count(UNetGenerator(3, 3, num_downs=5, ngf=2)) == 0  # 32x32: no ngf*8 middle level
    G = UNetGenerator(3, 3, num_downs=6, ngf=2, dropout=0.5).eval()
    assert count(G) == 1
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert not torch.equal(G(x), G(x))  # dropout still on in eval mode (paper sec. 3.1)
        h = torch.ones(1000)
        kept = AlwaysDropout(0.5).eval()(h)
        assert set(kept.unique().tolist()) == {0.0, 2.0} and 400 < int((kept == 0).sum()) < 600
    G0 = UNetGenerator(3, 3, num_downs=6, ngf=2, dropout=0.0).eval()
    assert count(G0) == 0
    with torch.no_grad():
        assert torch.equal(G0(x), G0(x))


# -- the PatchGAN --------------------------------------------------------------------------------------------


def test_patch_discriminator_shapes_and_bias():
    D = PatchDiscriminator(5, ndf=4, n_layers=3)
    assert D(torch.randn(2, 5, 256, 256)).shape == (2, 1, 30, 30)  # the paper's 30x30 map at 256x256
    assert D(torch.randn(2, 5, 32, 32)).shape == (2, 1, 2, 2)
    assert patch_output_size(256, 3) == 30 and patch_output_size(16, 2) == 2
    convs = [m for m in D.model if isinstance(m, nn.Conv2d)]
    assert [m.bias is not None for m in convs] == [True, False, False, False, True]
    assert [m.stride[0] for m in convs] == [2, 2, 2, 1, 1]
    assert [m.out_channels for m in convs] == [4, 8, 16, 32, 1]
    assert PatchDiscriminator(5, ndf=4, n_layers=1).receptive_field == 16
    assert PatchDiscriminator(5, ndf=4, n_layers=2).receptive_field == 34


def test_patch_discriminator_receptive_field_is_70():
    """The gradient of one output logit w.r.t. a 128x128 input is nonzero exactly on a 70x70 window."""
    D = PatchDiscriminator(2, ndf=2, n_layers=3).double().eval()  # eval: BatchNorm is then per pixel
    assert D.receptive_field == 70
    x = torch.randn(1, 2, 128, 128, dtype=torch.float64, requires_grad=True)
    out = D(x)
    assert out.shape == (1, 1, 14, 14)
    out[0, 0, 7, 7].backward()
    nz = x.grad[0].abs().sum(0) != 0
    rows, cols = nz.any(1).nonzero().flatten(), nz.any(0).nonzero().flatten()
    h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
    assert (h, w) == (70, 70)
    assert int(rows.min()) == 7 * 8 - 23  # stride 8, offset: the paddings 1 + 2 + 4 + 8 + 8
    assert nz[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()


# -- the losses by hand ------------------------------------------------------------------------------------------


def test_one_iteration_losses_match_the_formulas():
    """L_D = (-mean log s(D(A,B)) - mean log(1 - s(D(A,G(A))))) / 2 with D, G before the step;
    L_G = -mean log s(D'(A,G(A))) + 100 mean |G(A) - B| with D' after D's step, G before."""
    torch.set_default_dtype(torch.float64)
    try:
        m = tiny(dropout=0.0, jitter=False)
        batch = pair_batch(dtype=torch.float64)
    finally:
        torch.set_default_dtype(torch.float32)
    m = m.double()
    before = copy.deepcopy(m)
    opts = m.make_optimizers()
    logs = m.train_step(lambda: batch, opts, StepContext())
    a, b = batch.image, batch.target
    sig = torch.sigmoid
    with torch.no_grad():
        fake = before.G(a)  # train mode: batch statistics, as in the step
        d_real = before.D(torch.cat([a, b], 1))
        d_fake = before.D(torch.cat([a, fake], 1))
        d_hand = 0.5 * (-torch.log(sig(d_real)).mean() - torch.log(1 - sig(d_fake)).mean())
        g_gan = -torch.log(sig(m.D(torch.cat([a, fake], 1)))).mean()
        g_hand = g_gan + 100 * (fake - b).abs().mean()
    assert d_real.shape == (4, 1, 2, 2)
    torch.testing.assert_close(logs["d_loss"], d_hand, rtol=1e-10, atol=0)
    torch.testing.assert_close(logs["g_gan"], g_gan, rtol=1e-10, atol=0)
    torch.testing.assert_close(logs["g_loss"], g_hand, rtol=1e-10, atol=0)
    # both networks moved, and G's BatchNorm saw one forward per iteration (not one per phase)
    assert not torch.equal(m.D.model[0].weight, before.D.model[0].weight)
    assert not torch.equal(m.G.model.down[0].weight, before.G.model.down[0].weight)
    assert int(m.G.model.inner.down[-1].num_batches_tracked) == 1


def test_schedule_is_constant_then_linear():
    s = tiny().schedules()["lr"]
    assert [s(k, 100) for k in (0, 50, 75, 99, 100)] == [1.0, 1.0, 0.5, 0.02, 0.0]
    assert tiny(decay_fraction=0.0).schedules() == {}


# -- jitter --------------------------------------------------------------------------------------------------------


def test_jitter_is_the_same_for_input_and_target():
    n = 64
    a = torch.rand(n, 2, 16, 16) * 1.0 - 0.5  # small range: bicubic overshoot is never clamped
    b = -0.5 * a[:, :1] + 0.25  # target = f(input), pixelwise and affine (commutes with the resize)
    torch.manual_seed(1)
    ja, jb = p2p.jitter_pairs(a, b)
    assert ja.shape == a.shape and jb.shape == b.shape
    torch.testing.assert_close(jb, -0.5 * ja[:, :1] + 0.25, rtol=0, atol=1e-6)
    assert not torch.allclose(ja, a)
    torch.manual_seed(1)  # drawn from torch's global RNG: the trainer's seed reproduces it
    assert torch.equal(p2p.jitter_pairs(a, b)[0], ja)
    # without the resize: each pair is itself or its mirror image, both about half of the time
    sa, sb = p2p.jitter_pairs(a, b, scale=1.0)
    same = (sa == a).flatten(1).all(1)
    mirrored = (sa == a.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 10 < int(mirrored.sum()) < 54
    assert torch.equal(sb, torch.where(mirrored[:, None, None, None], b.flip(-1), b))


def test_iteration_jitters_once_per_batch(monkeypatch):
    """D and G see one jittered pair per iteration (the released loader jitters each pair once)."""
    m = tiny(dropout=0.0)
    calls = []
    real = p2p.jitter_pairs
    monkeypatch.setattr(p2p, "jitter_pairs", lambda a, b, **kw: calls.append(1) or real(a, b, **kw))
    m.train_step(lambda: pair_batch(), m.make_optimizers(), StepContext())
    assert len(calls) == 1


# -- training, sampling and errors --------------------------------------------------------------------------------


def paired_folder(root, n=12, side=16):
    from PIL import Image

    rng = np.random.default_rng(0)
    for s in ("A", "B"):
        (root / s).mkdir(parents=True)
    for i in range(n):
        a = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(a).save(root / "A" / f"{i}.png")
        Image.fromarray(255 - a[..., 0]).save(root / "B" / f"{i}.png")  # B: one channel
    return root


def test_trainer_runs_a_few_steps(tmp_path):
    data = load(paired_folder(tmp_path / "data"), layout="paired")
    assert data.target_shape == (1, 16, 16)
    cfg = TrainConfig(model="pix2pix", data=str(tmp_path / "data"), steps=3, batch_size=4, out=str(tmp_path / "run"),
                      progress=False, log_every=1, sample_every=3, grid_size=4,
                      model_options={"ngf": 4, "ndf": 4, "n_layers_d": 2})
    t = Trainer(cfg, dataset=data)
    assert isinstance(t.model, p2p.Pix2Pix) and t.model.options.target_channels == 1
    t.fit()
    assert t.emas == {}  # pix2pix keeps no moving average of G
    assert len(t.history) == 3
    for row in t.history:
        for k in ("d_loss", "g_loss", "g_l1"):
            assert math.isfinite(row[k])
    assert (tmp_path / "run" / "samples" / "step-00000003.png").exists()
    assert set(t.grid_inputs) == {"condition"} and t.grid_inputs["condition"].shape == (4, 3, 16, 16)
    from PIL import Image

    # the trainer's grid is Pix2Pix.grid_images': 4 pairs x (input | output | target), two triplets a row
    w, h = Image.open(tmp_path / "run" / "samples" / "step-00000003.png").size
    assert w * (2 * 18 + 2) == h * (6 * 18 + 2), (w, h)  # 6 x 2 tiles of 16 + 2 pixels (the grid upscales)


def test_sample_translate_and_grid():
    m = tiny().eval()
    batch = pair_batch(n=3)
    inputs = m.sample_inputs(2, batch=batch)
    y = m.sample(**inputs)
    assert y.shape == (2, 2, 16, 16)
    assert m.translate(batch.image).shape == (3, 2, 16, 16)
    grid, nrow = m.grid_images(y, inputs, batch)
    assert grid.shape == (6, 2, 16, 16) and nrow == 6
    assert torch.equal(grid[1], y[0]) and torch.equal(grid[2], batch.target[0])
    assert torch.equal(grid[3], batch.image[1, :2])
    with pytest.raises(ValueError, match="condition"):
        m.sample(2)
    with pytest.raises(ValueError, match="needs a batch"):
        m.sample_inputs(2)
    with pytest.raises(ValueError, match=r"translates \(N, 3, 16, 16\)"):
        m.translate(torch.zeros(1, 3, 8, 8))


@pytest.mark.parametrize("opts, match", [
    (dict(sample_shape=[3, 24, 24]), "power of two"),
    (dict(norm="layer"), "norm"),
    (dict(n_layers_d=3), "n_layers_d=3 needs images of side >= 24"),
    (dict(dropout=1.0), "dropout"),
    (dict(lambda_l1=-1.0), "lambda_l1"),
    (dict(betas=[0.5]), "betas"),
])
def test_bad_options_raise(opts, match):
    with pytest.raises(ValueError, match=match):
        tiny(**opts)


def test_bad_network_arguments_raise():
    with pytest.raises(ValueError, match="in_channels"):
        UNetGenerator(0, 3, 4)
    with pytest.raises(ValueError, match="num_downs must be >= 2"):
        UNetGenerator(3, 3, 1)
    with pytest.raises(ValueError, match="norm"):
        UNetGenerator(3, 3, 4, norm="group")
    with pytest.raises(ValueError, match="dropout"):
        UNetGenerator(3, 3, 4, dropout=1.5)
    with pytest.raises(ValueError, match="multiples of 16"):
        UNetGenerator(3, 3, 4, ngf=2)(torch.zeros(1, 3, 24, 24))
    with pytest.raises(ValueError, match="ndf"):
        PatchDiscriminator(6, ndf=0)
    with pytest.raises(ValueError, match="needs sides >= 24"):
        PatchDiscriminator(6, ndf=2, n_layers=3)(torch.zeros(1, 6, 16, 16))
    with pytest.raises(ValueError, match="jitter_pairs"):
        p2p.jitter_pairs(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 4, 4))


def test_fashion_edges_pairs_train(tmp_path):
    import ganfast.data.edges as edges
    try:
        data = edges.load_fashion_edges(image_size=16, num_samples=32)
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST is not installed")
    assert (data.layout, data.fields, data.sample_shape, data.target_shape) == \
        ("paired", ("image", "target"), (1, 16, 16), (1, 16, 16))
    b = data.batch(torch.arange(4))
    assert set(b.image.unique().tolist()) <= {-1.0, 1.0} and b.target.min() >= -1 and b.target.max() <= 1
    assert edges.edge_maps(b.target, "sobel").shape == (4, 1, 16, 16)
    cfg = TrainConfig(model="pix2pix", data="fashion-edges", steps=2, batch_size=8, out=str(tmp_path / "run"),
                      progress=False, log_every=1, sample_every=2, checkpoint_every=2, grid_size=4,
                      model_options={"ngf": 4, "ndf": 4, "n_layers_d": 2})
    t = Trainer(cfg, dataset=data)
    t.fit()
    assert all(math.isfinite(r["g_loss"]) for r in t.history)
