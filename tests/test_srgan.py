"""SRResNet and SRGAN: the networks' layout, the content losses, the phases and schedule, PSNR against the library."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganfast.data import Batch
from ganfast.models import StepContext, build
from ganfast.models.nets import SRDiscriminator, SRResNetGenerator, VGG19Features
from ganfast.models.nets.srgan import VGG19_LAYERS, VGG19_WEIGHTS_FILE
from ganfast.models.srgan import SRGANDecay, batch_psnr, bicubic_downsample

TINY = {"width": 4, "n_blocks": 1}
TINY_GAN = {**TINY, "ndf": 4, "dense": 8}


def images(n, c=3, side=16, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, side, side, generator=g, dtype=dtype) * 2 - 1


def test_generator_and_discriminator_layout():
    g = SRResNetGenerator(3, 64, 16, 4)
    assert len(g.blocks) == 16 and sum(isinstance(m, nn.PixelShuffle) for m in g.modules()) == 2
    assert g.head[0].kernel_size == (9, 9) and g.tail.kernel_size == (9, 9)
    assert all(m.num_parameters == 64 for m in g.modules() if isinstance(m, nn.PReLU))  # one slope per channel
    assert g(torch.rand(2, 3, 6, 6)).shape == (2, 3, 24, 24)
    d = SRDiscriminator(3, 96, 64, 1024)
    convs = [m for m in d.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2]
    assert d.head[1].in_features == 512 * 6 * 6 and d(torch.rand(2, 3, 96, 96)).shape == (2,)
    with pytest.raises(ValueError, match="power of two"):
        SRResNetGenerator(scale=3)
    with pytest.raises(ValueError, match="multiple of 16"):
        SRDiscriminator(side=40)


def test_vgg19_features_load_torchvisions_keys_from_a_file(tmp_path):
    torch.manual_seed(0)
    net = VGG19Features(None, "relu5_4")
    keys = [k for k in net.state_dict()]
    convs = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]  # torchvision's vgg19().features indices
    assert keys == [f"features.{i}.{p}" for i in convs for p in ("weight", "bias")]
    assert VGG19_LAYERS["relu5_4"] == 35 and VGG19_LAYERS["relu2_2"] == 8
    state = {k: torch.randn_like(v) for k, v in net.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    path = tmp_path / VGG19_WEIGHTS_FILE
    torch.save(state, path)
    loaded = VGG19Features(path, "relu5_4")
    assert torch.equal(loaded.features[34].weight, state["features.34.weight"])
    x = images(1, 3, 16).float()
    want = ((x + 1) / 2 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / \
        torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(loaded(x), loaded.features(want))
    with pytest.raises(FileNotFoundError, match=VGG19_WEIGHTS_FILE):
        VGG19Features(tmp_path / "nope.pth")
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not torchvision's VGG19"):
        VGG19Features(tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="unknown VGG19 layer"):
        VGG19Features(None, "relu9_9")


def test_psnr_equals_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio

    hr = images(4, seed=1).float()
    sr = (hr + 0.1 * images(4, seed=2).float()).clamp(-1, 1)
    want = sum(peak_signal_noise_ratio(h.numpy(), s.numpy(), data_range=2.0) for h, s in zip(hr, sr)) / 4
    assert abs(float(batch_psnr(sr, hr)) - want) < 1e-4


def test_srresnet_loss_is_the_pixel_mse_of_the_bicubic_input():
    m = build("srresnet", sample_shape=[3, 16, 16], **TINY).double()
    hr = images(3)
    loss, logs = m.mse_loss(Batch(image=hr), StepContext())
    lr = F.interpolate(hr, size=(4, 4), mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)
    torch.testing.assert_close(loss, ((m.G(lr) - hr) ** 2).mean(), rtol=1e-12, atol=0)
    assert "psnr" in logs
    assert torch.equal(bicubic_downsample(hr, 4), lr)


def test_srgan_losses_with_each_content_network(tmp_path):
    torch.manual_seed(0)
    m = build("srgan", sample_shape=[3, 16, 16], **TINY_GAN).double()
    hr = images(2, seed=3)
    lr = bicubic_downsample(hr, 4)

    def bce(logit, t):
        return F.binary_cross_entropy_with_logits(logit, torch.full_like(logit, float(t)))

    with pytest.warns(UserWarning, match="pixel MSE"):
        loss, logs = m.g_loss(Batch(image=hr), StepContext())
    sr = m.G(lr)
    torch.testing.assert_close(loss, F.mse_loss(sr, hr) + 1e-3 * bce(m.D(sr), 1), rtol=1e-12, atol=0)
    d, _ = m.d_loss(Batch(image=hr), StepContext())
    torch.testing.assert_close(d, bce(m.D(hr), 1) + bce(m.D(sr.detach()), 0), rtol=1e-12, atol=0)
    feature = nn.Conv2d(3, 5, 3).double()
    m.set_content_network(feature)
    assert m.content_kind() == "network"
    with pytest.warns(UserWarning, match="Conv2d"):
        loss = m.g_loss(Batch(image=hr), StepContext())[0]
    torch.testing.assert_close(loss, F.mse_loss(feature(sr), feature(hr)) + 1e-3 * bce(m.D(sr), 1), rtol=1e-12, atol=0)
    # the VGG loss: relu2_2 maps of a weights file written here, rescaled by 1/12.75
    vgg = VGG19Features(None, "relu2_2")
    torch.save({k: torch.randn_like(v) * 0.1 for k, v in vgg.state_dict().items()}, tmp_path / VGG19_WEIGHTS_FILE)
    mv = build("srgan", sample_shape=[3, 16, 16], vgg_weights=str(tmp_path / VGG19_WEIGHTS_FILE),
               vgg_layer="relu2_2", **TINY_GAN)
    assert mv.content_kind() == "vgg"
    srf, hrf = images(2, seed=4).float(), images(2, seed=5).float()
    with pytest.warns(UserWarning, match="VGG19 relu2_2"):
        got = mv.content_loss(srf, hrf)
    torch.testing.assert_close(got, F.mse_loss(mv._vgg(srf) / 12.75, mv._vgg(hrf) / 12.75))
    with pytest.raises(FileNotFoundError, match=VGG19_WEIGHTS_FILE):
        build("srgan", sample_shape=[3, 16, 16], vgg_weights=str(tmp_path / "missing.pth"), **TINY_GAN)
    with pytest.raises(ValueError, match="set_content_network"):
        build("srgan", sample_shape=[3, 16, 16], content="network", **TINY_GAN).content_kind()


def test_pretraining_phase_and_learning_rate_schedule():
    m = build("srgan", sample_shape=[3, 16, 16], pretrain_fraction=0.5, **TINY_GAN)
    opts = m.make_optimizers()
    ctx = StepContext()
    ctx.total_steps = 4
    seen = []
    for step in range(4):
        ctx.step = step
        with pytest.warns(UserWarning) if step == 2 else _nothing():
            logs = m.train_step(lambda: Batch(image=images(2).float()), opts, ctx)
        seen.append("d_loss" in logs)
        assert all(math.isfinite(float(v)) for v in logs.values())
    assert seen == [False, False, True, True]
    decay = SRGANDecay(0.5, 0.1)
    assert [decay(s, 100) for s in (0, 49, 74, 75, 99)] == [1.0, 1.0, 1.0, 0.1, 0.1]


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_grids_and_sampling():
    m = build("srresnet", sample_shape=[3, 16, 16], **TINY).eval()
    batch = Batch(image=images(3).float())
    inputs = m.sample_inputs(3, batch=batch)
    assert inputs["condition"].shape == (3, 3, 4, 4)
    s = m.sample(**inputs)
    assert s.shape == (3, 3, 16, 16) and s.abs().max() <= 1
    grid, nrow = m.grid_images(s, inputs, batch)
    assert nrow == 6 and grid.shape == (9, 3, 16, 16) and torch.equal(grid[2], batch.image[0])
    with pytest.raises(ValueError, match="upscales"):
        m.translate(images(1, 1, 4).float())


def test_residual_generator_starts_at_bicubic():
    """residual=True: G(x) = bicubic(x) + a learned residual whose last conv starts at 0."""
    g = SRResNetGenerator(3, 4, 1, 4, residual=True).double()
    x = images(2, 3, 4)
    torch.testing.assert_close(g(x), F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False))
    m = build("srresnet", sample_shape=[3, 16, 16], residual=True, **TINY)
    assert m.G.residual and not build("srresnet", sample_shape=[3, 16, 16], **TINY).G.residual


def test_content_network_missing_fails_at_the_first_step_and_bad_weight_files_are_named(tmp_path):
    m = build("srgan", sample_shape=[3, 16, 16], content="network", **TINY_GAN)
    ctx = StepContext()
    ctx.total_steps = 4
    with pytest.raises(ValueError, match="-o content=mse"):
        m.train_step(lambda: Batch(image=images(2).float()), m.make_optimizers(), ctx)  # step 0: pre-training
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable torch state dict"):
        VGG19Features(tmp_path / "junk.pth")
