"""PacGAN (Lin et al. 2018): packing, the packed discriminator, training steps, the registry entry."""

import math

import pytest
import torch

from ganfast.data import GANDataset
from ganfast.models import StepContext, build, describe, families, get, names
from ganfast.models.pacgan import PackedDiscriminator, pack, packed_shape


def tiny_points(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return GANDataset("tiny-points", torch.randn(n, 2, generator=g))


def tiny_images(n=24, side=8, channels=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return GANDataset("tiny-images", torch.rand(n, channels, side, side, generator=g) * 2 - 1)


def batches(ds, batch_size, seed=0):
    (x, _) = ds.tensors
    g = torch.Generator().manual_seed(seed)

    def next_batch():
        return x[torch.randint(0, len(x), (batch_size,), generator=g)], None
    return next_batch


SMALL_POINTS = {"hidden": [16, 16], "latent_dim": 4}
SMALL_IMAGES = {"width": 4, "hidden": [16, 16], "latent_dim": 8}


def concat_packs(x, m):
    """The packs spelled out: pack i is cat(x[m*i], ..., x[m*i + m - 1]) along dim 1 (features or channels)."""
    return torch.stack([torch.cat([x[m * i + j] for j in range(m)], dim=0) for i in range(x.shape[0] // m)])


@pytest.mark.parametrize("shape, m, packed", [((2,), 2, (4,)), ((5,), 3, (15,)), ((3, 8, 8), 2, (6, 8, 8)),
                                              ((1, 4, 4), 4, (4, 4, 4))])
def test_pack_shapes_and_contents(shape, m, packed, gen):
    assert packed_shape(shape, m) == packed
    x = torch.randn(6 * m, *shape, generator=gen)
    p = pack(x, m)
    assert p.shape == (6, *packed)
    torch.testing.assert_close(p, concat_packs(x, m), rtol=0, atol=0)
    assert pack(x, 1).shape == x.shape  # m = 1: the plain GAN's D


@pytest.mark.parametrize("batch, m, hint", [(5, 2, "4 or 6"), (7, 3, "6 or 9"), (1, 2, "2")])
def test_batch_not_a_multiple_of_m_is_refused(batch, m, hint):
    with pytest.raises(ValueError, match=rf"multiple of {m}; got a batch of {batch} \(use a batch size of {hint}\)"):
        pack(torch.zeros(batch, 2), m)
    model = build("pacgan", dataset=tiny_points(), pack=m, **SMALL_POINTS)
    with pytest.raises(ValueError, match=f"multiple of {m}"):
        model.D(torch.zeros(batch, 2))
    if batch > 1:  # (G's BatchNorm refuses a batch of one before D sees it)
        with pytest.raises(ValueError, match=f"multiple of {m}"):
            model.train_step(batches(tiny_points(), batch), model.make_optimizers(), StepContext())


def test_packing_degree_is_checked():
    with pytest.raises(ValueError, match="pack"):
        build("pacgan", dataset=tiny_points(), pack=0)
    with pytest.raises(ValueError, match="m"):
        PackedDiscriminator(torch.nn.Identity(), 0)


@pytest.mark.parametrize("m", [1, 2, 3])
def test_points_discriminator_scores_concatenated_samples(m, gen):
    model = build("pacgan", dataset=tiny_points(), pack=m, **SMALL_POINTS)
    assert isinstance(model.D, PackedDiscriminator) and model.D.m == m
    assert model.D.net.blocks[0].linear.in_features == 2 * m  # the first layer takes m x d inputs
    x = torch.randn(4 * m, 2, generator=gen)
    out = model.D(x)
    assert out.shape == (4,)
    torch.testing.assert_close(out, model.D.net(concat_packs(x, m)), rtol=0, atol=0)
    # one pack, by hand: D(x_1, ..., x_m) on the concatenated features
    torch.testing.assert_close(out[1], model.D.net(torch.cat(list(x[m:2 * m]))[None])[0], rtol=1e-6, atol=1e-6)
    logits, feats = model.D(x, return_features=True)
    torch.testing.assert_close(logits, out, rtol=0, atol=0)
    assert feats.shape == (4, model.D.feature_dim)


def test_image_discriminator_concatenates_channels(gen):
    ds = tiny_images()
    model = build("pacgan", dataset=ds, pack=2, **SMALL_IMAGES)
    first = next(m for m in model.D.net.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 2 * 3  # m x C input channels, as the paper's image experiments
    x = torch.rand(6, 3, 8, 8, generator=gen) * 2 - 1
    model.eval()
    out = model.D(x)
    assert out.shape == (3,)
    torch.testing.assert_close(out, model.D.net(torch.cat([x[0::2], x[1::2]], dim=1)))
    assert model.sample(5).shape == (5, 3, 8, 8)  # G is the base method's: one sample per latent


@pytest.mark.parametrize("data, small, batch", [(tiny_points, SMALL_POINTS, 8), (tiny_images, SMALL_IMAGES, 6)])
def test_training_steps_are_finite_and_move_g(data, small, batch):
    ds = data()
    model = build("pacgan", dataset=ds, **small)
    opts = model.make_optimizers()
    before = {k: v.detach().clone() for k, v in model.G.named_parameters()}
    for _ in range(3):
        logs = model.train_step(batches(ds, batch), opts, StepContext())
    assert {"d_loss", "g_loss"} <= set(logs)
    assert all(math.isfinite(float(v)) for v in logs.values()), logs
    assert any(not torch.equal(p, before[k]) for k, p in model.G.named_parameters())


def test_options_of_the_classic_methods_apply_to_packs():
    ds = tiny_points()
    model = build("pacgan", dataset=ds, pack=2, gradient_penalty=1.0, r1=1.0, r2=1.0, feature_matching=1.0,
                  **SMALL_POINTS)
    logs = model.train_step(batches(ds, 8), model.make_optimizers(), StepContext())
    assert all(math.isfinite(float(logs[k])) for k in ("gp", "r1", "r2", "feature_matching")), logs


def test_r1_is_the_squared_gradient_norm_of_d_per_pack(gen):
    model = build("pacgan", dataset=tiny_points(), pack=2, r1=1.0, **SMALL_POINTS)
    real = torch.randn(8, 2, generator=gen)
    logs = {}
    total = model.add_penalties(torch.zeros(()), real, None, torch.randn(8, 2, generator=gen), None,
                                StepContext(), logs)
    packs = pack(real, 2).requires_grad_(True)
    (grad,) = torch.autograd.grad(model.D.net(packs).sum(), packs)
    torch.testing.assert_close(logs["r1"], grad.pow(2).sum(1).mean())
    torch.testing.assert_close(total, 0.5 * logs["r1"])


def test_rebuild_from_config_keeps_the_packing():
    ds = tiny_points()
    a = build("pacgan", dataset=ds, pack=3, **SMALL_POINTS)
    b = build("pacgan", **a.config)
    b.load_state_dict(a.state_dict())
    assert b.config == a.config and b.D.m == 3
    x = torch.randn(6, 2)
    torch.testing.assert_close(a.D(x), b.D(x))


def test_registry_lists_pacgan_with_its_paper():
    assert "pacgan" in names()
    cls = get("pacgan")
    assert "Lin" in cls.paper and "PacGAN" in cls.paper and "1712.04086" in cls.paper
    assert "pacgan" in dict(describe())
    assert cls in dict(families())["mode collapse"]
    model = build("pacgan", dataset=tiny_points())
    assert model.config["pack"] == 2 and model.loss == "non-saturating"
